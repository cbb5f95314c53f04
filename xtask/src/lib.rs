//! Project automation behind `cargo xtask`.
//!
//! The library half exists so that tests can call exactly what the command line calls: the staleness test in
//! `tests/it/codegen.rs` runs [`codegen`] in [`Mode::Check`], and the snapshot tests run [`generate_fixture`] and
//! [`api_surface`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// One generated file: which spec it comes from, what progenitor makes of it, and where the Rust goes.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Short name used on the command line (`cargo xtask codegen --only server`).
    pub name: &'static str,
    /// The OpenAPI document, relative to the workspace root.
    pub spec: &'static str,
    /// The generated file, relative to the workspace root.
    pub output: &'static str,
    /// Which of progenitor's generators produces it.
    pub kind: Kind,
}

/// What a [`Target`] generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The client: types, builders and `Client` (`Generator::generate_tokens`).
    Client,
    /// clap subcommands for every operation (`Generator::cli`), calling the client at this Rust path.
    Cli {
        /// Where the generated code finds `Client`, `builder`, `types`, `ResponseValue` and progenitor's `Error`.
        client_path: &'static str,
    },
    /// Typed `when`/`then` mocks for every operation on `httpmock` (`Generator::httpmock`).
    Httpmock {
        /// The client crate whose `types` the mocks take.
        client_path: &'static str,
    },
}

/// Every generated file. Adding a client is one line here plus a crate that declares `mod generated;`; its CLI and
/// mocks are one line each more.
pub const TARGETS: &[Target] = &[
    Target {
        name: "server",
        spec: "openapi/server.yaml",
        output: "crates/postmark-server/src/generated.rs",
        kind: Kind::Client,
    },
    Target {
        name: "account",
        spec: "openapi/account.yaml",
        output: "crates/postmark-account/src/generated.rs",
        kind: Kind::Client,
    },
    Target {
        name: "server-cli",
        spec: "openapi/server.yaml",
        output: "crates/postmark-cli/src/generated/server.rs",
        kind: Kind::Cli { client_path: "crate::api::server" },
    },
    Target {
        name: "account-cli",
        spec: "openapi/account.yaml",
        output: "crates/postmark-cli/src/generated/account.rs",
        kind: Kind::Cli { client_path: "crate::api::account" },
    },
    Target {
        name: "server-mock",
        spec: "openapi/server.yaml",
        output: "crates/postmark-httpmock/src/generated/server.rs",
        kind: Kind::Httpmock { client_path: "postmark_server" },
    },
    Target {
        name: "account-mock",
        spec: "openapi/account.yaml",
        output: "crates/postmark-httpmock/src/generated/account.rs",
        kind: Kind::Httpmock { client_path: "postmark_account" },
    },
];

/// The client targets (one per API), in [`TARGETS`] order.
pub fn client_targets() -> impl Iterator<Item = &'static Target> {
    TARGETS.iter().filter(|t| t.kind == Kind::Client)
}

/// The document of shared components that API documents refer to as `shared.yaml#/components/...`.
pub const SHARED_SPEC: &str = "openapi/shared.yaml";

/// Whether [`codegen`] writes files or only compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Regenerate and write every target whose output changed.
    Write,
    /// Regenerate in memory and fail with a diff if any committed output differs.
    Check,
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Regenerates the targets (all of them, or the one named `only`).
///
/// In [`Mode::Check`] nothing is written; a stale target yields an error whose message holds a unified diff and the
/// command to run. In [`Mode::Write`] files are only rewritten when their content changes. When the `CI` environment
/// variable is set, [`Mode::Write`] is refused so that CI can never paper over a stale file.
pub fn codegen(mode: Mode, only: Option<&str>) -> Result<Vec<String>> {
    if mode == Mode::Write && std::env::var_os("CI").is_some() {
        bail!("refusing to write generated files with CI set; run `cargo xtask codegen --check` instead");
    }
    let root = workspace_root();
    let targets: Vec<&Target> = TARGETS.iter().filter(|t| only.is_none_or(|o| o == t.name)).collect();
    if targets.is_empty() {
        bail!("no codegen target named {:?}; known: {}", only.unwrap_or_default(), target_names());
    }
    let mut report = Vec::new();
    let mut stale = Vec::new();
    for target in targets {
        let fresh = generate_target(&root, target)?;
        let path = root.join(target.output);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        let same = normalize_newlines(&committed) == normalize_newlines(&fresh);
        match (mode, same) {
            (_, true) => report.push(format!("{}: up to date ({})", target.name, target.output)),
            (Mode::Write, false) => {
                std::fs::write(&path, &fresh).with_context(|| format!("writing {}", path.display()))?;
                report.push(format!("{}: wrote {}", target.name, target.output));
            }
            (Mode::Check, false) => stale.push(format!(
                "{} is stale (spec {}):\n{}",
                target.output,
                target.spec,
                unified_diff(&committed, &fresh, target.output)
            )),
        }
    }
    if !stale.is_empty() {
        bail!("{}\nrun `cargo xtask codegen` and commit the result", stale.join("\n"));
    }
    Ok(report)
}

fn target_names() -> String {
    TARGETS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
}

fn normalize_newlines(s: &str) -> String {
    s.replace("\r\n", "\n")
}

/// A unified diff of `old` → `new`, cut after 200 lines so a wholesale change stays readable.
pub fn unified_diff(old: &str, new: &str, name: &str) -> String {
    let old = normalize_newlines(old);
    let new = normalize_newlines(new);
    let diff = similar::TextDiff::from_lines(&old, &new);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(&format!("{name} (committed)"), &format!("{name} (fresh)"))
        .to_string();
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() > 200 {
        format!("{}\n... ({} more diff lines)", lines[..200].join("\n"), lines.len() - 200)
    } else {
        text
    }
}

/// Generates one target's file content (header included) from its spec.
pub fn generate_target(root: &Path, target: &Target) -> Result<String> {
    let spec_path = root.join(target.spec);
    let doc = load_bundled(&spec_path, &root.join(SHARED_SPEC))?;
    let (code, what) = match target.kind {
        Kind::Client => (generate_code(&doc, target.spec)?, "client, builder interface"),
        Kind::Cli { client_path } => (generate_cli(&doc, target.spec, client_path)?, "clap CLI (`Generator::cli`)"),
        Kind::Httpmock { client_path } => {
            (generate_httpmock(&doc, target.spec, client_path)?, "httpmock mocks (`Generator::httpmock`)")
        }
    };
    Ok(format!(
        "// @generated by `cargo xtask codegen` from {} (with {}).\n\
         // Do not edit by hand: change the spec and regenerate. `cargo test` fails while this file is stale.\n\
         // Generator: progenitor {}, {what}, formatted with prettyplease.\n\n{}",
        target.spec, SHARED_SPEC, PROGENITOR_VERSION, code
    ))
}

/// The bound progenitor's CLI generator puts on every `CliConfig` method although the generated code never uses it;
/// [`generate_cli`] removes it so the client crates need not derive `schemars::JsonSchema` on every type.
const CLI_SCHEMARS_BOUND: &str = "schemars :: JsonSchema +";

/// Runs progenitor's clap CLI generator on a bundled document.
///
/// The output is a `Cli<T: CliConfig>` with one subcommand builder (`cli_<op>`) and one executor (`execute_<op>`)
/// per operation, calling the client found at `client_path`. One thing is changed: the unused
/// `schemars::JsonSchema` bound on `CliConfig`'s methods is removed (see [`CLI_SCHEMARS_BOUND`]); if progenitor stops
/// emitting it, generation fails so that this step is reviewed.
pub fn generate_cli(doc: &Value, spec_name: &str, client_path: &str) -> Result<String> {
    let spec = prepare_spec(doc, spec_name)?;
    let tokens = run_guarded(|| progenitor::Generator::new(&settings()).cli(&spec, client_path))
        .map_err(|e| anyhow!("progenitor's CLI generator failed on {spec_name}: {e}"))?;
    let text = tokens.to_string();
    let bounds = text.matches(CLI_SCHEMARS_BOUND).count();
    if bounds == 0 {
        bail!("progenitor's CLI output no longer has the `{CLI_SCHEMARS_BOUND}` bound; review generate_cli");
    }
    let tokens: proc_macro2::TokenStream =
        text.replace(CLI_SCHEMARS_BOUND, "").parse().map_err(|e| anyhow!("re-parsing CLI tokens: {e}"))?;
    let mut file: syn::File = syn::parse2(tokens).context("progenitor produced unparsable CLI code")?;
    null_tolerant_collections(&mut file);
    Ok(format_code(&file))
}

/// Runs progenitor's `httpmock` generator on a bundled document: a `MockServerExt` trait with one typed method per
/// operation (`server.send_email(|when, then| ...)`), whose `when`/`then` take the client crate's types.
pub fn generate_httpmock(doc: &Value, spec_name: &str, client_path: &str) -> Result<String> {
    let spec = prepare_spec(doc, spec_name)?;
    let tokens = run_guarded(|| progenitor::Generator::new(&settings()).httpmock(&spec, client_path))
        .map_err(|e| anyhow!("progenitor's httpmock generator failed on {spec_name}: {e}"))?;
    let file: syn::File = syn::parse2(tokens).context("progenitor produced unparsable mock code")?;
    Ok(format_code(&file))
}

/// Runs a generator with its panics caught and its `Err` kept, both as text.
fn run_guarded(
    f: impl FnOnce() -> std::result::Result<proc_macro2::TokenStream, progenitor::Error>,
) -> std::result::Result<proc_macro2::TokenStream, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    match out {
        Ok(Ok(tokens)) => Ok(tokens),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".to_string())),
    }
}

/// The progenitor version the workspace pins (kept in step with `Cargo.toml` by the staleness test).
pub const PROGENITOR_VERSION: &str = "0.15.1";

/// Reads a YAML or JSON document into a JSON value.
pub fn load_document(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    } else {
        serde_saphyr::from_str(&text).map_err(|e| anyhow!("parsing {}: {e}", path.display()))
    }
}

/// Loads an API document and copies into it every shared component it refers to, rewriting
/// `shared.yaml#/components/<kind>/<name>` references to local `#/components/<kind>/<name>` ones.
pub fn load_bundled(spec: &Path, shared: &Path) -> Result<Value> {
    let mut doc = load_document(spec)?;
    let shared_doc = if shared.exists() { load_document(shared)? } else { Value::Null };
    let shared_file = shared.file_name().and_then(|n| n.to_str()).unwrap_or("shared.yaml").to_string();
    let mut wanted: Vec<(String, String)> = Vec::new();
    rewrite_refs(&mut doc, &shared_file, &mut wanted);
    let mut seen = std::collections::BTreeSet::new();
    while let Some((kind, name)) = wanted.pop() {
        if !seen.insert((kind.clone(), name.clone())) {
            continue;
        }
        let mut component = shared_doc.pointer(&format!("/components/{kind}/{name}")).cloned().ok_or_else(|| {
            anyhow!("{} refers to {shared_file}#/components/{kind}/{name}, which does not exist", spec.display())
        })?;
        // References inside the shared document are local to it; collect them so they are copied too.
        collect_local_refs(&component, &mut wanted);
        rewrite_refs(&mut component, &shared_file, &mut wanted);
        let slot = doc
            .as_object_mut()
            .ok_or_else(|| anyhow!("{} is not a mapping", spec.display()))?
            .entry("components")
            .or_insert_with(|| Value::Object(Default::default()))
            .as_object_mut()
            .ok_or_else(|| anyhow!("components is not a mapping"))?
            .entry(kind.clone())
            .or_insert_with(|| Value::Object(Default::default()))
            .as_object_mut()
            .ok_or_else(|| anyhow!("components.{kind} is not a mapping"))?;
        if let Some(existing) = slot.get(&name)
            && existing != &component
        {
            bail!("{} defines components.{kind}.{name} and also refers to a different shared one", spec.display());
        }
        slot.insert(name, component);
    }
    Ok(doc)
}

fn rewrite_refs(value: &mut Value, shared_file: &str, wanted: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref") {
                // `shared.yaml#/...`, `./shared.yaml#/...` or `../shared.yaml#/...` (fixtures live one level down).
                let marker = format!("{shared_file}#/components/");
                let rest = r
                    .find(&marker)
                    .filter(|&i| i == 0 || r[..i].ends_with('/'))
                    .map(|i| r[i + marker.len()..].to_string());
                if let Some(rest) = rest {
                    if let Some((kind, name)) = rest.split_once('/') {
                        wanted.push((kind.to_string(), name.to_string()));
                    }
                    *r = format!("#/components/{rest}");
                }
            }
            map.values_mut().for_each(|v| rewrite_refs(v, shared_file, wanted));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, shared_file, wanted)),
        _ => {}
    }
}

fn collect_local_refs(value: &Value, wanted: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref")
                && let Some((kind, name)) = r.strip_prefix("#/components/").and_then(|rest| rest.split_once('/'))
            {
                wanted.push((kind.to_string(), name.to_string()));
            }
            map.values().for_each(|v| collect_local_refs(v, wanted));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_local_refs(v, wanted)),
        _ => {}
    }
}

/// The generator settings every client shares.
pub fn settings() -> progenitor::GenerationSettings {
    let mut s = progenitor::GenerationSettings::new();
    s.with_interface(progenitor::InterfaceStyle::Builder)
        .with_tag(progenitor::TagStyle::Merged)
        // Both crates implement `ClientHooks` (strip the `api-version` header, keep the status of non-JSON errors);
        // `Expected` makes a missing implementation a compile error instead of a silent default.
        .with_hooks(progenitor::HooksMode::Expected)
        // The client carries its retry policy to the `exec` hook.
        .with_inner_type(quote::quote!(::postmark_core::ClientState))
        .with_derive("PartialEq")
        // Deterministic key order for maps (metadata, dynamic-key stats).
        .with_map_type("::std::collections::BTreeMap")
        // Postmark's error body is one Rust type shared by both crates, so one typed error covers both.
        .with_replacement("ErrorResponse", "::postmark_core::ApiErrorBody", std::iter::empty());
    s
}

/// Runs progenitor on a bundled document and formats the result with prettyplease.
///
/// Generator panics (progenitor has several `todo!`/`assert!` paths) are caught; the message then names the spec
/// file and, by regenerating each operation alone, the operation that triggers the panic.
pub fn generate_code(doc: &Value, spec_name: &str) -> Result<String> {
    let spec = prepare_spec(doc, spec_name)?;
    let tokens = match run_generator(&spec) {
        Ok(Ok(tokens)) => tokens,
        Ok(Err(e)) => bail!("progenitor rejected {spec_name}{}: {e}", locate_failure(doc)),
        Err(panic) => bail!("progenitor panicked on {spec_name}{}: {panic}", locate_failure(doc)),
    };
    let mut file: syn::File = syn::parse2(tokens).context("progenitor produced unparsable Rust")?;
    null_tolerant_collections(&mut file);
    apply_aliases(&mut file, &spelling_aliases(doc)).with_context(|| format!("{spec_name}: {ALIASES_EXTENSION}"))?;
    Ok(format_code(&file))
}

/// The property extension that lists other spellings of a response field's JSON key (`x-postmark-aliases: [Id]` on
/// a property spelled `ID`). Postmark's JSON is case-insensitive and peers disagree on the case of some keys; the
/// generated field then decodes from every listed spelling (`#[serde(alias = ...)]`) and encodes as the spec spells it.
pub const ALIASES_EXTENSION: &str = "x-postmark-aliases";

/// One field that decodes from more than one spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpellingAlias {
    /// The component schema, which is also the generated type's name.
    pub schema: String,
    /// The property as the spec spells it (the field's `rename`).
    pub property: String,
    /// The other spellings.
    pub aliases: Vec<String>,
}

/// Every [`ALIASES_EXTENSION`] on a property of a component schema of a bundled document.
pub fn spelling_aliases(doc: &Value) -> Vec<SpellingAlias> {
    let mut out = Vec::new();
    let schemas = doc.pointer("/components/schemas").and_then(Value::as_object).into_iter().flatten();
    for (schema, body) in schemas {
        for (property, prop) in body.get("properties").and_then(Value::as_object).into_iter().flatten() {
            let Some(list) = prop.get(ALIASES_EXTENSION).and_then(Value::as_array) else { continue };
            let aliases = list.iter().filter_map(Value::as_str).map(str::to_string).collect();
            out.push(SpellingAlias { schema: schema.clone(), property: property.clone(), aliases });
        }
    }
    out
}

/// Adds `alias = "..."` to the serde attribute of each aliased field: the field of the struct named after the schema
/// whose `rename` is the property. Fails when an alias finds no such field (a renamed schema or property), so the
/// extension can never be silently dropped.
pub fn apply_aliases(file: &mut syn::File, aliases: &[SpellingAlias]) -> Result<()> {
    struct Visitor<'a> {
        aliases: &'a [SpellingAlias],
        applied: Vec<bool>,
    }
    impl syn::visit_mut::VisitMut for Visitor<'_> {
        fn visit_item_struct_mut(&mut self, item: &mut syn::ItemStruct) {
            for (i, alias) in self.aliases.iter().enumerate() {
                if item.ident != alias.schema {
                    continue;
                }
                let rename = format!("rename = \"{}\"", alias.property);
                for attr in item.fields.iter_mut().flat_map(|f| f.attrs.iter_mut()) {
                    let syn::Meta::List(list) = &mut attr.meta else { continue };
                    if !list.path.is_ident("serde") || !list.tokens.to_string().contains(&rename) {
                        continue;
                    }
                    for name in &alias.aliases {
                        let extra: proc_macro2::TokenStream =
                            format!(", alias = \"{name}\"").parse().expect("valid tokens");
                        list.tokens.extend(extra);
                    }
                    self.applied[i] = true;
                }
            }
            syn::visit_mut::visit_item_struct_mut(self, item);
        }
    }
    let mut v = Visitor { aliases, applied: vec![false; aliases.len()] };
    syn::visit_mut::VisitMut::visit_file_mut(&mut v, file);
    let missing: Vec<String> = aliases
        .iter()
        .zip(&v.applied)
        .filter(|(_, done)| !**done)
        .map(|(a, _)| format!("{}.{}", a.schema, a.property))
        .collect();
    if !missing.is_empty() {
        bail!("no generated field for {}", missing.join(", "));
    }
    Ok(())
}

/// Formats generated code. progenitor's usage snippets are ```ignore blocks, which rustdoc lists as ignored tests;
/// they are illustrations (they use undefined variables), so they are marked as text.
fn format_code(file: &syn::File) -> String {
    prettyplease::unparse(file).replace("```ignore", "```text")
}

/// Parses a bundled document for progenitor after [`normalize_nullable_collections`].
fn prepare_spec(doc: &Value, spec_name: &str) -> Result<openapiv3::OpenAPI> {
    let mut doc = doc.clone();
    normalize_nullable_collections(&mut doc);
    serde_json::from_value(doc).with_context(|| format!("{spec_name} is not a valid OpenAPI 3.0 document"))
}

/// Drops `nullable: true` from optional array and object properties before generation.
///
/// The spec marks them nullable because Postmark accepts (and real clients send) `"Attachments": null`. For a
/// collection, `null`, absent and empty all mean the same to Postmark, so instead of the `Option<Vec<T>>` typify would
/// make of a nullable property, the field stays a plain `Vec`/map and [`null_tolerant_collections`] makes it decode
/// `null` as empty.
pub fn normalize_nullable_collections(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let required: Vec<String> = map
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            if let Some(Value::Object(props)) = map.get_mut("properties") {
                for (name, prop) in props.iter_mut() {
                    let Some(prop) = prop.as_object_mut() else { continue };
                    let collection = matches!(prop.get("type").and_then(Value::as_str), Some("array" | "object"));
                    if collection && !required.contains(name) && prop.get("nullable") == Some(&Value::Bool(true)) {
                        prop.remove("nullable");
                    }
                }
            }
            map.values_mut().for_each(normalize_nullable_collections);
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_nullable_collections),
        _ => {}
    }
}

/// The function the generated code calls to decode `null` as an empty collection (see
/// [`null_tolerant_collections`]).
pub const NULL_AS_DEFAULT: &str = "::postmark_core::de::null_as_default";

/// Makes every optional collection field of the generated types decode `null` as empty.
///
/// typify marks an optional array or map field `#[serde(default, skip_serializing_if = "…is_empty")]`: absent decodes
/// as empty, but `null` is an error. This adds `deserialize_with = NULL_AS_DEFAULT` to exactly those fields. Returns
/// how many fields it changed.
pub fn null_tolerant_collections(file: &mut syn::File) -> usize {
    struct Visitor(usize);
    impl syn::visit_mut::VisitMut for Visitor {
        fn visit_field_mut(&mut self, field: &mut syn::Field) {
            for attr in &mut field.attrs {
                if !attr.path().is_ident("serde") {
                    continue;
                }
                let syn::Meta::List(list) = &mut attr.meta else { continue };
                let text = list.tokens.to_string();
                let words: Vec<&str> = text.split([',', ' ']).filter(|w| !w.is_empty()).collect();
                let optional_collection = words.contains(&"default") && text.contains("is_empty");
                if optional_collection && !text.contains("deserialize_with") {
                    let extra: proc_macro2::TokenStream =
                        format!(", deserialize_with = \"{NULL_AS_DEFAULT}\"").parse().expect("valid tokens");
                    list.tokens.extend(extra);
                    self.0 += 1;
                }
            }
        }
    }
    let mut v = Visitor(0);
    syn::visit_mut::VisitMut::visit_file_mut(&mut v, file);
    v.0
}

type GenResult = std::result::Result<std::result::Result<proc_macro2::TokenStream, progenitor::Error>, String>;

fn run_generator(spec: &openapiv3::OpenAPI) -> GenResult {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = catch_unwind(AssertUnwindSafe(|| progenitor::Generator::new(&settings()).generate_tokens(spec)));
    std::panic::set_hook(hook);
    out.map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".to_string())
    })
}

/// Finds the first operation that fails to generate on its own, as " (operation `id`, METHOD /path)".
fn locate_failure(doc: &Value) -> String {
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else { return String::new() };
    for (path, item) in paths {
        let Some(item) = item.as_object() else { continue };
        for (method, op) in item {
            if !matches!(method.as_str(), "get" | "put" | "post" | "delete" | "patch" | "head" | "options" | "trace") {
                continue;
            }
            let mut single = doc.clone();
            let mut only = serde_json::Map::new();
            only.insert(method.clone(), op.clone());
            if let Some(params) = item.get("parameters") {
                only.insert("parameters".into(), params.clone());
            }
            single["paths"] = Value::Object([(path.clone(), Value::Object(only))].into_iter().collect());
            let failed = match prepare_spec(&single, "") {
                Ok(spec) => !matches!(run_generator(&spec), Ok(Ok(_))),
                Err(_) => true,
            };
            if failed {
                let id = op.get("operationId").and_then(Value::as_str).unwrap_or("<no operationId>");
                return format!(" (operation `{id}`, {} {path})", method.to_uppercase());
            }
        }
    }
    String::new()
}

/// Generates a fixture spec (no header), for the generator snapshot tests.
pub fn generate_fixture(path: &Path) -> Result<String> {
    let root = workspace_root();
    let doc = load_bundled(path, &root.join(SHARED_SPEC))?;
    generate_code(&doc, &path.display().to_string())
}

/// One line per operation of a target: `METHOD /path -> method(params) -> Success / Error`.
///
/// Operation facts come from the spec; the Rust method name and the success and error types are read back from the
/// committed generated file, so the listing shows what users actually call.
pub fn api_surface(target: &Target) -> Result<String> {
    let root = workspace_root();
    let doc = load_bundled(&root.join(target.spec), &root.join(SHARED_SPEC))?;
    let generated = std::fs::read_to_string(root.join(target.output))?;
    let returns = send_return_types(&generated)?;
    let mut lines = Vec::new();
    let paths = doc.get("paths").and_then(Value::as_object).ok_or_else(|| anyhow!("no paths"))?;
    for (path, item) in paths {
        for (method, op) in item.as_object().into_iter().flatten() {
            let Some(id) = op.get("operationId").and_then(Value::as_str) else { continue };
            let mut params: Vec<String> = Vec::new();
            let shared = item.get("parameters").and_then(Value::as_array).into_iter().flatten();
            for p in shared.chain(op.get("parameters").and_then(Value::as_array).into_iter().flatten()) {
                let p = resolve(&doc, p);
                let name = p.get("name").and_then(Value::as_str).unwrap_or("?");
                let place = p.get("in").and_then(Value::as_str).unwrap_or("?");
                let req = if p.get("required").and_then(Value::as_bool).unwrap_or(false) { "" } else { "?" };
                params.push(format!("{place}:{name}{req}"));
            }
            if op.get("requestBody").is_some() {
                params.push("body".into());
            }
            let builder = to_pascal(id);
            let (ok, err) = returns.get(&builder).cloned().unwrap_or_else(|| ("?".into(), "?".into()));
            let deprecated =
                if op.get("deprecated").and_then(Value::as_bool).unwrap_or(false) { " [deprecated]" } else { "" };
            lines.push(format!(
                "{} {path} -> {id}({}) -> {ok} / {err}{deprecated}",
                method.to_uppercase(),
                params.join(", ")
            ));
        }
    }
    lines.sort();
    let mut out = String::new();
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    Ok(out)
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
        Some(pointer) => doc.pointer(pointer).unwrap_or(v),
        None => v,
    }
}

fn to_pascal(id: &str) -> String {
    id.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
        })
        .collect()
}

/// Maps each builder struct name to the (success, error) types of its `send` method.
fn send_return_types(generated: &str) -> Result<BTreeMap<String, (String, String)>> {
    let file: syn::File = syn::parse_str(generated).context("parsing generated code")?;
    let mut out = BTreeMap::new();
    let mut stack: Vec<&syn::Item> = file.items.iter().collect();
    while let Some(item) = stack.pop() {
        match item {
            syn::Item::Mod(m) => stack.extend(m.content.iter().flat_map(|(_, items)| items.iter())),
            syn::Item::Impl(imp) => {
                let syn::Type::Path(tp) = &*imp.self_ty else { continue };
                let Some(name) = tp.path.segments.last().map(|s| s.ident.to_string()) else { continue };
                for it in &imp.items {
                    let syn::ImplItem::Fn(f) = it else { continue };
                    if f.sig.ident != "send" {
                        continue;
                    }
                    if let syn::ReturnType::Type(_, ty) = &f.sig.output {
                        out.insert(name.clone(), split_result(ty));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// `Result<ResponseValue<A>, Error<B>>` → ("A", "B"), with paths shortened to their last segment.
fn split_result(ty: &syn::Type) -> (String, String) {
    let text = quote::ToTokens::to_token_stream(ty).to_string().replace(' ', "");
    let inner = |s: &str, wrapper: &str| -> String {
        s.find(wrapper)
            .map(|i| {
                let rest = &s[i + wrapper.len()..];
                let mut depth = 1usize;
                let end = rest
                    .char_indices()
                    .find(|&(_, c)| {
                        match c {
                            '<' => depth += 1,
                            '>' => depth -= 1,
                            _ => {}
                        }
                        depth == 0
                    })
                    .map(|(i, _)| i)
                    .unwrap_or(rest.len());
                rest[..end].to_string()
            })
            .unwrap_or_else(|| "?".into())
    };
    let shorten = |s: String| {
        s.replace("types::", "")
            .replace("::postmark_core::", "")
            .replace("::std::vec::", "")
            .replace("::serde_json::", "")
    };
    (shorten(inner(&text, "ResponseValue<")), shorten(inner(&text, "Error<")))
}
