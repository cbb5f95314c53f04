//! Spec fidelity rules, checked against every operation of both specs:
//!
//! * every optional array or object field of a request accepts `null` (real clients send `"Attachments": null` and
//!   Postmark accepts it), both in the spec (`nullable: true`) and in the generated types;
//! * every response schema declares every field of its realistic sample (`tests/fixtures/*/<op>.response.json`), and
//!   the samples carry the fields Postmark returns in practice (e.g. `RecordType` on bounces);
//! * every response decodes from only its required fields, and the empty objects Postmark sends (`{}` for a dump
//!   that is gone) decode through the client.

use serde::de::DeserializeOwned;
use serde_json::Value;

use postmark_fake::http::FakeApi;

use crate::contract::fixture;

fn decode<T: DeserializeOwned>(v: Value) -> Result<(), String> {
    serde_json::from_value::<T>(v).map(|_| ()).map_err(|e| e.to_string())
}

/// Decodes `v` as the request body of `op`; `None` when `op` has no body.
fn decode_request(op: &str, v: Value) -> Option<Result<(), String>> {
    use postmark_account::types as a;
    use postmark_server::types as s;
    Some(match op {
        "send_email" => decode::<s::SendEmailRequest>(v),
        "send_email_batch" => decode::<Vec<s::SendEmailRequest>>(v),
        "send_email_with_template" => decode::<s::SendEmailWithTemplateRequest>(v),
        "send_email_batch_with_templates" => decode::<s::SendEmailBatchWithTemplatesRequest>(v),
        "send_bulk_email" => decode::<s::SendBulkEmailRequest>(v),
        "create_template" => decode::<s::CreateTemplateRequest>(v),
        "edit_template" => decode::<s::EditTemplateRequest>(v),
        "validate_template" => decode::<s::ValidateTemplateRequest>(v),
        "edit_server" => decode::<s::EditServerRequest>(v),
        "create_inbound_rule" => decode::<s::CreateInboundRuleRequest>(v),
        "create_webhook" => decode::<s::CreateWebhookRequest>(v),
        "edit_webhook" => decode::<s::EditWebhookRequest>(v),
        "create_message_stream" => decode::<s::CreateMessageStreamRequest>(v),
        "edit_message_stream" => decode::<s::EditMessageStreamRequest>(v),
        "create_suppressions" | "delete_suppressions" => decode::<s::SuppressionsRequest>(v),
        "create_server" => decode::<a::CreateServerRequest>(v),
        "edit_server_by_id" => decode::<a::EditServerRequest>(v),
        "create_domain" => decode::<a::CreateDomainRequest>(v),
        "edit_domain" => decode::<a::EditDomainRequest>(v),
        "create_sender_signature" => decode::<a::CreateSenderSignatureRequest>(v),
        "edit_sender_signature" => decode::<a::EditSenderSignatureRequest>(v),
        "push_templates" => decode::<a::PushTemplatesRequest>(v),
        "create_data_removal" => decode::<a::CreateDataRemovalRequest>(v),
        _ => return None,
    })
}

/// Decodes `v` as the success body of `op`.
fn decode_response(op: &str, v: Value) -> Result<(), String> {
    use postmark_account::types as a;
    use postmark_core::ApiErrorBody as Standard;
    use postmark_server::types as s;
    match op {
        // Server API
        "send_email" | "send_email_with_template" => decode::<s::SendEmailResponse>(v),
        "send_email_batch" | "send_email_batch_with_templates" => decode::<Vec<s::SendEmailResponse>>(v),
        "send_bulk_email" => decode::<s::SendBulkEmailResponse>(v),
        "get_bulk_email_status" => decode::<s::BulkEmailStatus>(v),
        "get_delivery_stats" => decode::<s::DeliveryStats>(v),
        "list_bounces" => decode::<s::BounceListResponse>(v),
        "get_bounce" => decode::<s::Bounce>(v),
        "get_bounce_dump" => decode::<s::BounceDump>(v),
        "activate_bounce" => decode::<s::ActivateBounceResponse>(v),
        "list_templates" => decode::<s::TemplateListResponse>(v),
        "create_template" | "edit_template" => decode::<s::TemplateSummary>(v),
        "get_template" => decode::<s::Template>(v),
        "validate_template" => decode::<s::ValidateTemplateResponse>(v),
        "get_server" | "edit_server" => decode::<s::Server>(v),
        "list_outbound_messages" => decode::<s::OutboundMessageListResponse>(v),
        "get_outbound_message_details" => decode::<s::OutboundMessageDetails>(v),
        "get_outbound_message_dump" => decode::<s::OutboundMessageDump>(v),
        "list_inbound_messages" => decode::<s::InboundMessageListResponse>(v),
        "get_inbound_message_details" => decode::<s::InboundMessageDetails>(v),
        "list_opens" | "list_opens_for_message" => decode::<s::MessageOpenListResponse>(v),
        "list_clicks" | "list_clicks_for_message" => decode::<s::MessageClickListResponse>(v),
        "get_outbound_overview" => decode::<s::OutboundOverviewStats>(v),
        "get_sent_counts" => decode::<s::SentCountStats>(v),
        "get_bounce_counts" => decode::<s::BounceCountStats>(v),
        "get_spam_complaint_counts" => decode::<s::SpamComplaintStats>(v),
        "get_tracked_email_counts" => decode::<s::TrackedEmailStats>(v),
        "get_email_open_counts" => decode::<s::OpenCountStats>(v),
        "get_email_platform_usage" => decode::<s::OpenPlatformStats>(v),
        "get_email_client_usage" => decode::<s::EmailClientStats>(v),
        "get_email_read_times" => decode::<s::ReadTimeStats>(v),
        "get_click_counts" => decode::<s::ClickCountStats>(v),
        "get_browser_usage" => decode::<s::BrowserFamilyStats>(v),
        "get_browser_platform_usage" => decode::<s::ClickPlatformStats>(v),
        "get_click_location" => decode::<s::ClickLocationStats>(v),
        "list_inbound_rules" => decode::<s::InboundRuleListResponse>(v),
        "create_inbound_rule" => decode::<s::InboundRule>(v),
        "list_webhooks" => decode::<s::WebhookListResponse>(v),
        "get_webhook" | "create_webhook" | "edit_webhook" => decode::<s::Webhook>(v),
        "list_message_streams" => decode::<s::MessageStreamListResponse>(v),
        "get_message_stream" | "create_message_stream" | "edit_message_stream" | "unarchive_message_stream" => {
            decode::<s::MessageStream>(v)
        }
        "archive_message_stream" => decode::<s::ArchiveMessageStreamResponse>(v),
        "dump_suppressions" => decode::<s::SuppressionDumpResponse>(v),
        "create_suppressions" | "delete_suppressions" => decode::<s::SuppressionResultsResponse>(v),
        // Account API
        "list_servers" => decode::<a::ServerListResponse>(v),
        "get_server_by_id" | "create_server" | "edit_server_by_id" => decode::<a::Server>(v),
        "list_domains" => decode::<a::DomainListResponse>(v),
        "get_domain"
        | "create_domain"
        | "edit_domain"
        | "verify_domain_dkim"
        | "verify_domain_return_path"
        | "verify_domain_custom_tracking" => decode::<a::DomainDetails>(v),
        "verify_domain_spf" => decode::<a::DomainSpfVerification>(v),
        "rotate_domain_dkim" => decode::<a::DomainDkimRotation>(v),
        "list_sender_signatures" => decode::<a::SenderSignatureListResponse>(v),
        "get_sender_signature"
        | "create_sender_signature"
        | "edit_sender_signature"
        | "verify_sender_signature_spf" => decode::<a::SenderSignatureDetails>(v),
        "push_templates" => decode::<a::PushTemplatesResponse>(v),
        "create_data_removal" | "get_data_removal" => decode::<a::DataRemovalStatus>(v),
        // `{ErrorCode: 0, Message}` successes (deletes, bypass, retry, resend, new DKIM)
        "delete_template"
        | "delete_inbound_rule"
        | "delete_webhook"
        | "bypass_inbound_message"
        | "retry_inbound_message"
        | "delete_server"
        | "delete_domain"
        | "delete_sender_signature"
        | "resend_sender_signature_confirmation"
        | "request_new_sender_dkim" => decode::<Standard>(v),
        other => Err(format!("no decoder for {other}: add it to decode_response")),
    }
}

struct Op {
    api: &'static str,
    id: String,
    spec: &'static Value,
    request: Option<Value>,
    response: Value,
}

fn bundled(api: &str) -> &'static Value {
    use std::sync::OnceLock;
    static SERVER: OnceLock<Value> = OnceLock::new();
    static ACCOUNT: OnceLock<Value> = OnceLock::new();
    let (cell, file) =
        if api == "server" { (&SERVER, "openapi/server.yaml") } else { (&ACCOUNT, "openapi/account.yaml") };
    cell.get_or_init(|| {
        let root = xtask::workspace_root();
        xtask::load_bundled(&root.join(file), &root.join(xtask::SHARED_SPEC)).expect("spec loads")
    })
}

/// Every operation of both specs with its request body schema and 200 schema.
fn operations() -> Vec<(Op, Option<Value>, Value)> {
    let mut out = Vec::new();
    for api in ["server", "account"] {
        let spec = bundled(api);
        for item in spec["paths"].as_object().expect("paths").values() {
            for (method, op) in item.as_object().expect("path item") {
                if method == "parameters" {
                    continue;
                }
                let id = op["operationId"].as_str().expect("operationId").to_string();
                let req_schema = op.pointer("/requestBody/content/application~1json/schema").cloned();
                let res_schema =
                    op.pointer("/responses/200/content/application~1json/schema").cloned().expect("200 schema");
                let load = |kind: &str| {
                    fixture(api, &format!("{id}.{kind}.json")).map(|t| serde_json::from_str::<Value>(&t).expect("json"))
                };
                let request = load("request");
                let response = load("response").unwrap_or_else(|| panic!("{id}: no response fixture"));
                out.push((Op { api, id, spec, request, response }, req_schema, res_schema));
            }
        }
    }
    assert_eq!(out.len(), 86, "both APIs together have 86 operations");
    out
}

/// Follows `$ref`s (all local after bundling).
fn resolve<'a>(spec: &'a Value, mut schema: &'a Value) -> &'a Value {
    while let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        schema = spec.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("dangling {r}"));
    }
    schema
}

/// Visits every object schema reachable from `schema` (through `$ref`, `items` and properties), once each.
fn visit_objects<'a>(
    spec: &'a Value,
    schema: &'a Value,
    at: &str,
    seen: &mut Vec<String>,
    f: &mut dyn FnMut(&str, &Value),
) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        if seen.iter().any(|s| s == r) {
            return;
        }
        seen.push(r.to_string());
    }
    let s = resolve(spec, schema);
    if let Some(items) = s.get("items") {
        visit_objects(spec, items, &format!("{at}[]"), seen, f);
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        f(at, s);
        for (name, p) in props {
            visit_objects(spec, p, &format!("{at}.{name}"), seen, f);
        }
    }
}

fn is_collection(spec: &Value, prop: &Value) -> bool {
    let p = resolve(spec, prop);
    matches!(p.get("type").and_then(Value::as_str), Some("array" | "object"))
}

fn required_of(schema: &Value) -> Vec<&str> {
    schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect()
}

#[test]
fn optional_request_collections_are_nullable_in_the_spec() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for (op, req, _) in operations() {
        let Some(req) = req else { continue };
        visit_objects(op.spec, &req, &op.id, &mut Vec::new(), &mut |at, obj| {
            let required = required_of(obj);
            for (name, prop) in obj["properties"].as_object().expect("properties") {
                // A `$ref` to an object decodes into an `Option`, which already accepts null.
                if required.contains(&name.as_str()) || prop.get("$ref").is_some() || !is_collection(op.spec, prop) {
                    continue;
                }
                checked += 1;
                if prop.get("nullable") != Some(&Value::Bool(true)) {
                    problems.push(format!("{at}.{name}"));
                }
            }
        });
    }
    assert!(checked >= 15, "only {checked} optional request collections found");
    assert!(problems.is_empty(), "optional request collections without `nullable: true`:\n  {}", problems.join("\n  "));
}

/// Every optional array/object property (inline or `$ref`) of a request body, as a JSON pointer into the request
/// fixture; array items are visited through their first element.
fn nullable_pointers(spec: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let s = resolve(spec, schema);
    match value {
        Value::Array(items) => {
            if let (Some(first), Some(item_schema)) = (items.first(), s.get("items")) {
                nullable_pointers(spec, item_schema, first, &format!("{at}/0"), out);
            }
        }
        Value::Object(map) => {
            let required = required_of(s);
            for (name, prop) in s.get("properties").and_then(Value::as_object).into_iter().flatten() {
                let here = format!("{at}/{name}");
                if !required.contains(&name.as_str()) && is_collection(spec, prop) {
                    out.push(here.clone());
                }
                if let Some(child) = map.get(name) {
                    nullable_pointers(spec, prop, child, &here, out);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn optional_request_collections_accept_null() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for (op, req, _) in operations() {
        let (Some(schema), Some(fixture)) = (req, op.request.as_ref()) else { continue };
        decode_request(&op.id, fixture.clone())
            .unwrap_or_else(|| panic!("{}: no request decoder", op.id))
            .unwrap_or_else(|e| panic!("{}: the request fixture itself does not decode: {e}", op.id));
        let mut pointers = Vec::new();
        nullable_pointers(op.spec, &schema, fixture, "", &mut pointers);
        for pointer in pointers {
            let mut edited = fixture.clone();
            let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
            let parent = if parent.is_empty() { Some(&mut edited) } else { edited.pointer_mut(parent) };
            let Some(Value::Object(parent)) = parent else { panic!("{}: {pointer} has no object parent", op.id) };
            parent.insert(key.to_string(), Value::Null);
            checked += 1;
            if let Some(Err(e)) = decode_request(&op.id, edited) {
                problems.push(format!("{} {pointer}: {e}", op.id));
            }
        }
    }
    // Attachments, Headers, Metadata, TemplateModel, TestRenderModel, HttpAuth, Triggers, ...
    assert!(checked >= 25, "only {checked} optional request collections were tried");
    assert!(problems.is_empty(), "`null` refused:\n  {}", problems.join("\n  "));
}

#[test]
fn null_is_refused_where_a_collection_is_required() {
    // The rule is about optional fields; a required one still says what is missing.
    let mut v: Value =
        serde_json::from_str(&fixture("server", "send_email_batch_with_templates.request.json").expect("fixture"))
            .expect("json");
    v["Messages"] = Value::Null;
    let err =
        decode_request("send_email_batch_with_templates", v).expect("has a body").expect_err("Messages is required");
    assert!(err.contains("invalid type: null"), "{err}");
}

/// Fields of `value` that `schema` does not declare (an object schema with `additionalProperties` declares any key).
fn undeclared(spec: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let s = resolve(spec, schema);
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                undeclared(spec, s.get("items").unwrap_or(&Value::Null), item, &format!("{at}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            let props = s.get("properties").and_then(Value::as_object);
            for (k, v) in map {
                if k == "FutureField" {
                    continue; // the deliberately unknown field every sample carries
                }
                match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
                    (Some(p), _) => undeclared(spec, p, v, &format!("{at}.{k}"), out),
                    (None, Some(ap)) if ap.is_object() => undeclared(spec, ap, v, &format!("{at}.{k}"), out),
                    (None, Some(Value::Bool(true))) => {}
                    _ => out.push(format!("{at}.{k}")),
                }
            }
        }
        _ => {}
    }
}

#[test]
fn response_schemas_declare_every_field_of_their_samples() {
    let mut problems = Vec::new();
    for (op, _, res) in operations() {
        undeclared(op.spec, &res, &op.response, &format!("{}:{}", op.api, op.id), &mut problems);
    }
    assert!(problems.is_empty(), "fields Postmark returns that the spec drops:\n  {}", problems.join("\n  "));
}

#[test]
fn samples_carry_the_fields_postmark_returns_in_practice() {
    // (operation, JSON pointer, value) seen in recorded Postmark traffic.
    let facts = [
        ("list_bounces", "/Bounces/0/RecordType", "Bounce"),
        ("get_bounce", "/RecordType", "Bounce"),
        ("activate_bounce", "/Bounce/RecordType", "Bounce"),
        ("list_opens", "/Opens/0/RecordType", "Open"),
        ("list_clicks", "/Clicks/0/RecordType", "Click"),
    ];
    let ops = operations();
    for (id, pointer, expected) in facts {
        let (op, _, _) = ops.iter().find(|(o, _, _)| o.id == id).expect("operation");
        assert_eq!(op.response.pointer(pointer).and_then(Value::as_str), Some(expected), "{id}{pointer}");
        // ...and the decoded value keeps it.
        decode_response(id, op.response.clone()).unwrap_or_else(|e| panic!("{id}: {e}"));
    }
    let bounce: postmark_server::types::Bounce =
        serde_json::from_value(ops.iter().find(|(o, _, _)| o.id == "get_bounce").expect("op").0.response.clone())
            .expect("bounce");
    assert_eq!(bounce.record_type.as_deref(), Some("Bounce"));
}

/// The sample with every optional field removed, recursively.
fn required_only(spec: &Value, schema: &Value, value: &Value) -> Value {
    let s = resolve(spec, schema);
    match value {
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| required_only(spec, s.get("items").unwrap_or(&Value::Null), i)).collect())
        }
        Value::Object(map) if s.get("properties").is_some() => {
            let required = required_of(s);
            let props = s["properties"].as_object().expect("properties");
            Value::Object(
                map.iter()
                    .filter(|(k, _)| required.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), required_only(spec, &props[k], v)))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

#[test]
fn every_response_decodes_from_its_sample_and_from_its_required_fields_alone() {
    let mut problems = Vec::new();
    for (op, _, res) in operations() {
        if let Err(e) = decode_response(&op.id, op.response.clone()) {
            problems.push(format!("{}: sample: {e}", op.id));
        }
        let minimal = required_only(op.spec, &res, &op.response);
        if let Err(e) = decode_response(&op.id, minimal.clone()) {
            problems.push(format!("{}: required fields only {minimal}: {e}", op.id));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_decoder_refuses_a_sample_missing_a_required_field() {
    // The minimal-sample test above would prove nothing if decoding accepted anything.
    let err = decode_response("list_bounces", serde_json::json!({"Bounces": []})).expect_err("TotalCount is required");
    assert!(err.contains("TotalCount"), "{err}");
}

#[tokio::test]
async fn empty_dumps_decode_through_the_client() {
    let fake = FakeApi::start().await;
    fake.respond("GET", "/bounces/42/dump", 200, "{}");
    fake.respond("GET", "/messages/outbound/0ac29aee/dump", 200, "{}");
    let client = postmark_server::ServerClient::builder("t").base_url(fake.url()).build().expect("client");
    let bounce = client.get_bounce_dump().bounceid(42).send().await.expect("`{}` decodes").into_inner();
    assert_eq!(bounce.body, None);
    let message =
        client.get_outbound_message_dump().messageid("0ac29aee").send().await.expect("`{}` decodes").into_inner();
    assert_eq!(message.body, None);
}

#[test]
fn explicit_nulls_from_a_stored_request_round_trip() {
    // What a queue or outbox replays: optional collections as `null`, optional strings as `null`.
    let stored = r#"{"From":"a@example.com","To":"b@example.org","Subject":null,"TextBody":"hi",
        "Attachments":null,"Headers":null,"Metadata":null,"Cc":null}"#;
    let req: postmark_server::types::SendEmailRequest = serde_json::from_str(stored).expect("decodes");
    assert!(req.attachments.is_empty() && req.headers.is_empty() && req.metadata.is_empty());
    let back = serde_json::to_value(&req).expect("encodes");
    assert_eq!(back, serde_json::json!({"From":"a@example.com","To":"b@example.org","TextBody":"hi"}));
}

/// Response fields whose JSON key is spelled with another case in a recorded or peer-documented sample than in the
/// spec: (schema, property as the spec spells it, the other spelling, the operation whose sample holds it, who
/// spells it so). Postmark's JSON is case-insensitive and its docs do not settle these, so the spec lists the other
/// spelling in `x-postmark-aliases` and the field decodes from both.
const OTHER_SPELLINGS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "SendBulkEmailResponse",
        "ID",
        "Id",
        "send_bulk_email",
        "postmark.js 5.1 (BulkEmailSendingResponse), postmark-dotnet",
    ),
    ("BulkEmailStatus", "Id", "ID", "get_bulk_email_status", "postmark-rs (GetBulkStatusResponse encodes `ID`)"),
];

/// Decodes `v` as the success body of `op` and encodes it again (the spec's spellings).
fn reencoded(op: &str, v: Value) -> Result<Value, String> {
    use postmark_server::types as s;
    fn again<T: DeserializeOwned + serde::Serialize>(v: Value) -> Result<Value, String> {
        let t: T = serde_json::from_value(v).map_err(|e| e.to_string())?;
        serde_json::to_value(t).map_err(|e| e.to_string())
    }
    match op {
        "send_bulk_email" => again::<s::SendBulkEmailResponse>(v),
        "get_bulk_email_status" => again::<s::BulkEmailStatus>(v),
        other => Err(format!("no re-encoder for {other}: add it to reencoded")),
    }
}

#[test]
fn every_field_peers_spell_otherwise_decodes_both_ways() {
    let ops = operations();
    for &(schema, property, other, id, who) in OTHER_SPELLINGS {
        let (op, _, _) = ops.iter().find(|(o, _, _)| o.id == id).expect("operation");
        let sample = op.response.clone();
        let value = sample.get(property).unwrap_or_else(|| panic!("{id}: the sample spells it {property}")).clone();
        let mut respelled = sample.clone();
        let map = respelled.as_object_mut().expect("object");
        map.remove(property);
        map.insert(other.to_string(), value.clone());
        let spec = reencoded(id, sample).unwrap_or_else(|e| panic!("{id}: {e}"));
        let peer = reencoded(id, respelled.clone()).unwrap_or_else(|e| panic!("{schema}.{other} ({who}): {e}"));
        assert_eq!(peer, spec, "{schema}: `{other}` decodes to the same value as `{property}`");
        assert_eq!(peer.get(property), Some(&value), "{schema} encodes as the spec spells it");
        // Decoding is not case-blind: a spelling nobody uses is still a missing required field.
        let mut unknown = respelled;
        let map = unknown.as_object_mut().expect("object");
        map.remove(other);
        map.insert(property.to_lowercase(), value);
        let err = reencoded(id, unknown).expect_err("a third spelling is refused");
        assert!(err.contains(&format!("missing field `{property}`")), "{err}");
    }
}

#[test]
fn the_spec_lists_exactly_the_other_spellings_the_test_knows() {
    let mut declared: Vec<(String, String, String)> = Vec::new();
    for api in ["server", "account"] {
        for a in xtask::spelling_aliases(bundled(api)) {
            declared.extend(a.aliases.iter().map(|x| (a.schema.clone(), a.property.clone(), x.clone())));
        }
    }
    declared.sort();
    let mut known: Vec<(String, String, String)> =
        OTHER_SPELLINGS.iter().map(|(s, p, o, _, _)| (s.to_string(), p.to_string(), o.to_string())).collect();
    known.sort();
    assert_eq!(declared, known, "`x-postmark-aliases` in openapi/ and OTHER_SPELLINGS must agree");
}
