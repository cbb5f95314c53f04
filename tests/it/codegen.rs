//! Generation: the committed code is fresh, the generator behaves as the fixtures pin, and the API surface is
//! reviewed as a readable snapshot.

use std::path::PathBuf;

#[test]
fn generated_code_is_fresh() {
    if let Err(e) = xtask::codegen(xtask::Mode::Check, None) {
        panic!("generated code is stale; run `cargo xtask codegen` and commit.\n{e:#}");
    }
}

#[test]
fn stale_code_is_detected_with_a_diff() {
    // Editing one description in the spec must change the output, and the check must show that line.
    let root = xtask::workspace_root();
    let target = &xtask::TARGETS[0];
    let mut doc = xtask::load_bundled(&root.join(target.spec), &root.join(xtask::SHARED_SPEC)).expect("spec");
    let op = doc["paths"]["/email"]["post"].as_object_mut().expect("POST /email");
    op.insert("description".into(), "An edited description.".into());
    let edited = xtask::generate_code(&doc, target.spec).expect("generates");
    let committed = std::fs::read_to_string(root.join(target.output)).expect("committed file");
    assert!(!committed.contains("An edited description."));
    let diff = xtask::unified_diff(&committed, &edited, target.output);
    assert!(diff.contains("+An edited description."), "diff shows the new line:\n{diff}");
}

#[test]
fn generator_panics_name_the_spec_and_operation() {
    // A JSON response without a schema hits a `todo!` in progenitor; the error must say where.
    let mut doc: serde_json::Value = serde_json::from_str(include_str!("fixture_no_schema.json")).expect("json");
    doc["paths"]["/x"]["get"]["operationId"] = "get_x".into();
    let err = xtask::generate_code(&doc, "no_schema.json").expect_err("must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("no_schema.json"), "{msg}");
    assert!(msg.contains("get_x") && msg.contains("GET /x"), "{msg}");
}

#[test]
fn a_spelling_alias_without_its_field_fails_generation() {
    // A renamed schema or property must not silently drop the alias the spec asks for.
    let root = xtask::workspace_root();
    let code = xtask::generate_fixture(&root.join("openapi/fixtures/spelling_aliases.yaml")).expect("fixture");
    let mut file = syn::parse_file(&code).expect("generated code parses");
    let alias = |schema: &str, property: &str| xtask::SpellingAlias {
        schema: schema.into(),
        property: property.into(),
        aliases: vec!["x".into()],
    };
    let err = xtask::apply_aliases(&mut file, &[alias("BulkReceipt", "Status"), alias("BulkReceipt", "Gone")])
        .expect_err("no field is renamed Gone");
    assert_eq!(err.to_string(), "no generated field for BulkReceipt.Gone");
    let err = xtask::apply_aliases(&mut file, &[alias("Receipt", "ID")]).expect_err("no such type");
    assert_eq!(err.to_string(), "no generated field for Receipt.ID");
}

fn fixture_specs() -> Vec<PathBuf> {
    let dir = xtask::workspace_root().join("openapi/fixtures");
    let mut specs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("openapi/fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    specs.sort();
    specs
}

#[test]
fn generator_fixtures() {
    let specs = fixture_specs();
    assert!(specs.len() >= 5, "fixture specs are present");
    for spec in specs {
        let name = spec.file_stem().and_then(|s| s.to_str()).expect("name").to_string();
        let code = xtask::generate_fixture(&spec).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        insta::assert_snapshot!(format!("fixture_{name}"), code);
    }
}

#[test]
fn fixture_behaviours_hold() {
    // Compare without whitespace: prettyplease wraps long types over several lines.
    let generate = |n: &str| {
        let code =
            xtask::generate_fixture(&xtask::workspace_root().join(format!("openapi/fixtures/{n}.yaml"))).expect(n);
        code.split_whitespace().collect::<String>()
    };
    let squash = |s: &str| s.split_whitespace().collect::<String>();
    let auth = generate("header_auth");
    assert!(!auth.contains(&squash("x_postmark_server_token")), "the token must not become an argument");
    let err = generate("shared_error");
    assert!(err.contains(&squash("Error<::postmark_core::ApiErrorBody>")), "shared error type is used");
    assert!(!err.contains(&squash("pub struct ErrorResponse")), "no local error type");
    let enums = generate("open_enums");
    assert!(enums.contains(&squash("pub enum TrackLinksRequest")), "request enum is closed");
    assert!(
        enums.contains(&squash("pub track_links: ::std::option::Option<::std::string::String>")),
        "response stays a string"
    );
    let arrays = generate("top_level_arrays");
    assert!(
        arrays.contains(&squash("::std::vec::Vec<types::Item>"))
            && arrays.contains(&squash("::std::vec::Vec<types::ItemResult>"))
    );
    let maps = generate("maps");
    assert!(
        maps.contains(&squash(
            "pub metadata: ::std::collections::BTreeMap<::std::string::String, ::std::string::String"
        ))
    );
    assert!(maps.contains(&squash("pub extra: ::std::collections::BTreeMap<::std::string::String, i64>")));
    assert!(maps.contains(&squash("::serde_json::Map<::std::string::String, ::serde_json::Value>")));
}

#[test]
fn api_surface_server() {
    let surface = xtask::api_surface(&xtask::TARGETS[0]).expect("surface");
    assert_eq!(surface.lines().count(), 60, "the Server API has 60 operations");
    insta::assert_snapshot!("api_surface_server", surface);
}

#[test]
fn api_surface_account() {
    let surface = xtask::api_surface(&xtask::TARGETS[1]).expect("surface");
    assert_eq!(surface.lines().count(), 26, "the Account API has 26 operations");
    insta::assert_snapshot!("api_surface_account", surface);
}

#[test]
fn every_operation_follows_the_conventions() {
    let root = xtask::workspace_root();
    let mut ids = std::collections::BTreeSet::new();
    for target in xtask::client_targets() {
        let raw = xtask::load_document(&root.join(target.spec)).expect("spec");
        assert_eq!(raw["openapi"], "3.0.3", "{}", target.spec);
        assert!(raw["security"].is_array(), "{}: global security", target.spec);
        for (path, item) in raw["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("item") {
                if method == "parameters" {
                    continue;
                }
                let at = format!("{} {} {path}", target.spec, method.to_uppercase());
                let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{at}: operationId"));
                assert!(ids.insert(id.to_string()), "{at}: duplicate operationId {id}");
                assert!(id.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{at}: {id} is not snake_case");
                for key in ["summary", "description", "tags"] {
                    assert!(!op[key].is_null(), "{at}: {key}");
                }
                let responses = op["responses"].as_object().expect("responses");
                let success: Vec<_> = responses.keys().filter(|k| k.starts_with('2')).collect();
                assert_eq!(success, ["200"], "{at}: exactly one success response");
                for status in ["401", "404", "413", "422", "429", "500", "503"] {
                    assert!(
                        responses[status]["$ref"]
                            .as_str()
                            .is_some_and(|r| r.starts_with("shared.yaml#/components/responses/")),
                        "{at}: {status}"
                    );
                }
                for p in op["parameters"].as_array().into_iter().flatten() {
                    assert_ne!(p["in"], "header", "{at}: tokens are never header parameters");
                }
            }
        }
    }
    assert_eq!(ids.len(), 86);
}

#[test]
fn response_schemas_stay_open() {
    let root = xtask::workspace_root();
    for file in ["openapi/server.yaml", "openapi/account.yaml", "openapi/shared.yaml"] {
        let text = std::fs::read_to_string(root.join(file)).expect("spec");
        assert!(!text.contains("additionalProperties: false"), "{file} closes a schema");
    }
}

#[test]
fn every_spec_generates_a_client_a_cli_and_mocks() {
    use xtask::Kind;
    for spec in ["openapi/server.yaml", "openapi/account.yaml"] {
        let kinds: Vec<Kind> = xtask::TARGETS.iter().filter(|t| t.spec == spec).map(|t| t.kind).collect();
        assert!(kinds.contains(&Kind::Client), "{spec}: client");
        assert!(kinds.iter().any(|k| matches!(k, Kind::Cli { .. })), "{spec}: CLI");
        assert!(kinds.iter().any(|k| matches!(k, Kind::Httpmock { .. })), "{spec}: mocks");
    }
}

#[test]
fn the_cli_and_the_mocks_cover_every_operation() {
    let root = xtask::workspace_root();
    for target in xtask::TARGETS {
        let raw = xtask::load_document(&root.join(target.spec)).expect("spec");
        let ops: Vec<String> = raw["paths"]
            .as_object()
            .expect("paths")
            .values()
            .flat_map(|item| item.as_object().expect("item").values())
            .filter_map(|op| op["operationId"].as_str().map(str::to_string))
            .collect();
        let code = std::fs::read_to_string(root.join(target.output)).expect("generated file");
        let squashed: String = code.split_whitespace().collect();
        for op in &ops {
            let needle = match target.kind {
                xtask::Kind::Client => format!("pubfn{op}(&self"),
                xtask::Kind::Cli { .. } => format!("pubfncli_{op}()"),
                xtask::Kind::Httpmock { .. } => format!("fn{op}<F>(&self"),
            };
            assert!(squashed.contains(&needle), "{}: no {needle}", target.output);
        }
        if matches!(target.kind, xtask::Kind::Cli { .. }) {
            assert!(!code.contains("schemars"), "{}: the unused JsonSchema bound is removed", target.output);
        }
    }
}

#[test]
fn a_spec_edit_reaches_the_cli_help() {
    let root = xtask::workspace_root();
    let mut doc = xtask::load_bundled(&root.join("openapi/server.yaml"), &root.join(xtask::SHARED_SPEC)).expect("spec");
    doc["paths"]["/email"]["post"]["summary"] = "An edited summary.".into();
    let cli = xtask::generate_cli(&doc, "server.yaml", "crate::api::server").expect("generates");
    assert!(cli.contains("An edited summary."), "the CLI's about text comes from the spec");
    let mocks = xtask::generate_httpmock(&doc, "server.yaml", "postmark_server").expect("generates");
    assert!(mocks.contains("pub struct SendEmailWhen"));
}

#[test]
fn optional_collections_decode_null_in_generated_code() {
    let code = xtask::generate_fixture(&xtask::workspace_root().join("openapi/fixtures/maps.yaml")).expect("maps");
    let squashed: String = code.split_whitespace().collect();
    assert_eq!(squashed.matches(&format!("deserialize_with=\"{}\"", xtask::NULL_AS_DEFAULT)).count(), 3, "{code}");
    // Nullable optional collections are not turned into `Option<Vec<_>>`.
    let mut doc = serde_json::json!({"type": "object", "properties": {
        "A": {"type": "array", "nullable": true, "items": {"type": "string"}},
        "B": {"type": "array", "nullable": true, "items": {"type": "string"}},
        "S": {"type": "string", "nullable": true}}, "required": ["B"]});
    xtask::normalize_nullable_collections(&mut doc);
    assert_eq!(doc["properties"]["A"].get("nullable"), None, "optional collection");
    assert_eq!(doc["properties"]["B"]["nullable"], true, "a required one keeps `null` meaningful");
    assert_eq!(doc["properties"]["S"]["nullable"], true, "not a collection");
}
