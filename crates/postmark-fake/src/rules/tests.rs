//! Each rule with input that breaks it and the matching input that passes.

use serde_json::{Value, json};

use super::*;

/// A message Postmark accepts.
fn good() -> Value {
    json!({
        "From": "Sender <sender@example.com>",
        "To": "rcpt@example.com",
        "Subject": "Hello",
        "TextBody": "Hello there.",
    })
}

/// `good()` with `key` set to `value` (`Value::Null` removes the key).
fn with(key: &str, value: Value) -> Value {
    let mut m = good();
    match value {
        Value::Null => m.as_object_mut().unwrap().remove(key),
        v => m.as_object_mut().unwrap().insert(key.to_owned(), v),
    };
    m
}

/// The ErrorCode Postmark answers for one `/email` message (0 when accepted).
fn code(message: &Value) -> i64 {
    code_with(Endpoint::Email, message, &Rules::default())
}

fn code_with(endpoint: Endpoint, message: &Value, rules: &Rules) -> i64 {
    match validate(endpoint, message, rules) {
        Ok(()) => 0,
        Err(r) => r.error_code,
    }
}

fn refusal(message: &Value) -> Refusal {
    validate(Endpoint::Email, message, &Rules::default()).expect_err("refused")
}

#[test]
fn a_complete_message_is_accepted() {
    assert_eq!(code(&good()), 0);
    let full = json!({
        "From": "\"Sender, Inc.\" <sender@example.com>",
        "To": "a@example.com, \"B, Jr.\" <b@example.com>",
        "Cc": "c@example.com",
        "Bcc": "d@example.com",
        "Subject": "Hi",
        "Tag": "welcome",
        "HtmlBody": "<p>Hi</p>",
        "TextBody": "Hi",
        "ReplyTo": "reply@example.com",
        "Headers": [{"Name": "Message-ID", "Value": "<x@example.com>"}],
        "TrackOpens": true,
        "TrackLinks": "HtmlAndText",
        "Metadata": {"color": "blue", "client-id": "12345"},
        "Attachments": [{"Name": "readme.txt", "Content": "dGVzdCBjb250ZW50", "ContentType": "text/plain; charset=utf-8", "ContentID": "cid:part1"}],
        "MessageStream": "outbound",
    });
    assert_eq!(code(&full), 0);
}

// ---- the body ----

#[test]
fn an_attachment_only_message_with_an_empty_text_body_is_refused_with_300() {
    // Issue 11: a scanner's attachment-only message converted to "TextBody": "".
    let m = json!({
        "From": "scanner@example.com",
        "To": "office@example.com",
        "Subject": "Scan",
        "TextBody": "",
        "Attachments": [{"Name": "scan.pdf", "Content": "JVBERi0=", "ContentType": "application/pdf"}],
    });
    let r = refusal(&m);
    assert_eq!(r.error_code, 300);
    assert_eq!(r.message, "Provide either email TextBody or HtmlBody or both.");
    // The same message with one line of text is accepted.
    let mut fixed = m.clone();
    fixed["TextBody"] = json!("Scanned document attached.");
    assert_eq!(code(&fixed), 0);
}

#[test]
fn no_body_empty_bodies_null_bodies_and_white_space_are_refused() {
    assert_eq!(code(&with("TextBody", Value::Null)), 300, "no body at all");
    let mut both_empty = good();
    both_empty["TextBody"] = json!("");
    both_empty["HtmlBody"] = json!("");
    assert_eq!(code(&both_empty), 300);
    let mut nulls = good();
    nulls["TextBody"] = Value::Null;
    nulls["HtmlBody"] = Value::Null;
    assert_eq!(code(&nulls), 300);
    assert_eq!(code(&with("TextBody", json!(" \r\n\t\u{a0}\u{3000}"))), 300, "only white space");
    let mut ws = with("TextBody", json!("  "));
    ws["HtmlBody"] = json!("\n");
    assert_eq!(code(&ws), 300);
}

#[test]
fn either_body_alone_is_enough() {
    assert_eq!(code(&with("TextBody", json!("."))), 0);
    let mut html = with("TextBody", Value::Null);
    html["HtmlBody"] = json!("<p>Hi</p>");
    assert_eq!(code(&html), 0);
    let mut text_blank_html_full = with("TextBody", json!(" "));
    text_blank_html_full["HtmlBody"] = json!("<b>x</b>");
    assert_eq!(code(&text_blank_html_full), 0);
}

#[test]
fn a_body_over_5_mb_is_refused_and_one_at_the_limit_is_not() {
    let limit = Limits::default().max_body_bytes;
    assert_eq!(limit, 5_000_000);
    assert_eq!(code(&with("TextBody", json!("a".repeat(limit)))), 0);
    assert_eq!(code(&with("TextBody", json!("a".repeat(limit + 1)))), 300);
    let mut html = good();
    html["HtmlBody"] = json!("é".repeat(limit / 2 + 1)); // 2 bytes each in UTF-8
    assert_eq!(code(&html), 300);
}

#[test]
fn a_message_over_10_mb_with_its_attachments_is_refused() {
    let attachment =
        |len: usize| json!([{"Name": "big.pdf", "Content": "QUFB".repeat(len / 4), "ContentType": "application/pdf"}]);
    let base = serde_json::to_vec(&with("Attachments", attachment(0))).unwrap().len();
    let room = Limits::default().max_message_bytes - base;
    let fits = with("Attachments", attachment(room / 4 * 4));
    assert!(serde_json::to_vec(&fits).unwrap().len() <= 10_000_000);
    assert_eq!(code(&fits), 0);
    let over = with("Attachments", attachment(room / 4 * 4 + 4));
    assert!(serde_json::to_vec(&over).unwrap().len() > 10_000_000);
    assert_eq!(code(&over), 300);
}

// ---- recipients and addresses ----

#[test]
fn no_recipient_is_refused_but_cc_or_bcc_alone_is_enough() {
    assert_eq!(code(&with("To", Value::Null)), 300);
    assert_eq!(code(&with("To", json!(""))), 300);
    assert_eq!(code(&with("To", json!("  "))), 300);
    let mut bcc_only = with("To", json!(""));
    bcc_only["Bcc"] = json!("hidden@example.com");
    assert_eq!(code(&bcc_only), 0);
    let mut cc_only = with("To", Value::Null);
    cc_only["Cc"] = json!("copy@example.com");
    assert_eq!(code(&cc_only), 0);
    bcc_only["Bcc"] = json!(" ");
    assert_eq!(code(&bcc_only), 300);
}

#[test]
fn more_than_50_recipients_across_to_cc_and_bcc_are_refused() {
    let list =
        |from: usize, n: usize| (from..from + n).map(|i| format!("r{i}@example.com")).collect::<Vec<_>>().join(", ");
    let mut fifty = with("To", json!(list(0, 20)));
    fifty["Cc"] = json!(list(20, 20));
    fifty["Bcc"] = json!(list(40, 10));
    assert_eq!(code(&fifty), 0);
    let mut fifty_one = fifty.clone();
    fifty_one["Bcc"] = json!(list(40, 11));
    let r = refusal(&fifty_one);
    assert_eq!(r.error_code, 300);
    assert!(r.message.contains("50"), "{r}");
    assert_eq!(code(&with("To", json!(list(0, 51)))), 300);
}

#[test]
fn address_lists_split_like_postmark() {
    let list = parse_address_list("\"Name, Jr.\" <a@b.c>, d@e.f").unwrap();
    assert_eq!(
        list,
        [
            Mailbox { name: Some("Name, Jr.".into()), address: "a@b.c".into() },
            Mailbox { name: None, address: "d@e.f".into() }
        ]
    );
    let list = parse_address_list("Jane Doe <jane@example.com>,<x@y.z>, \"Q \\\"uote\\\"\" <q@example.com>").unwrap();
    assert_eq!(list[0].name.as_deref(), Some("Jane Doe"));
    assert_eq!(list[1], Mailbox { name: None, address: "x@y.z".into() });
    assert_eq!(list[2].name.as_deref(), Some("Q \"uote\""));
    assert_eq!(parse_address_list("Zoë Ångström <z@example.com>").unwrap()[0].name.as_deref(), Some("Zoë Ångström"));
}

#[test]
fn addresses_postmark_accepts() {
    for ok in [
        "a@b.c",
        "John.Doe@Example.COM",
        "o'brien@example.com",
        "a+tag@example.com",
        "x!#$%&'`*+-/=^_{}|~y@example.com",
        "a@sub-domain.example.co.uk",
        "a@localhost",
    ] {
        assert!(is_valid_address(ok), "{ok}");
        assert_eq!(code(&with("To", json!(ok))), 0, "{ok}");
    }
}

#[test]
fn addresses_postmark_refuses() {
    for bad in [
        "plainaddress",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a@example..com",
        "a@example.com.",
        "a b@example.com",
        "a@exa_mple.com",
        "\"quoted\"@example.com",
        "what?@example.com",
        "a@münchen.de",
        "jörg@example.com",
        "a@b@example.com",
        "@example.com",
        "a@",
    ] {
        assert!(!is_valid_address(bad), "{bad}");
        assert_eq!(code(&with("To", json!(bad))), 300, "{bad}");
    }
}

#[test]
fn address_lists_postmark_refuses() {
    for bad in [
        "Jane O'Brien <jane@example.com>",
        "Name, Jr. <a@example.com>",
        "Smith-Jones <a@example.com>",
        "a@example.com,",
        "a@example.com, , b@example.com",
        "Group: a@example.com;",
        "a@example.com (comment)",
        "<a@example.com",
        "\"Unterminated <a@example.com>",
        "\"Name\" Extra <a@example.com>",
        "Name <a@example.com> trailing",
        "Name <not-an-address>",
    ] {
        assert!(parse_address_list(bad).is_err(), "{bad}");
        let r = refusal(&with("To", json!(bad)));
        assert_eq!(r.error_code, 300, "{bad}");
        assert!(r.message.starts_with("Invalid 'To' address"), "{r}");
    }
    // The same names, quoted.
    for ok in
        ["\"Jane O'Brien\" <jane@example.com>", "\"Name, Jr.\" <a@example.com>", "\"Smith-Jones\" <a@example.com>"]
    {
        assert_eq!(code(&with("To", json!(ok))), 0, "{ok}");
    }
}

#[test]
fn every_address_field_is_checked() {
    for field in ["From", "Cc", "Bcc", "ReplyTo"] {
        let r = refusal(&with(field, json!("Bad, Name <x@example.com>")));
        assert_eq!(r.error_code, 300, "{field}");
        assert!(r.message.contains(&format!("Invalid '{field}' address")), "{r}");
        assert_eq!(code(&with(field, json!("\"Good, Name\" <x@example.com>"))), 0, "{field}");
    }
}

#[test]
fn from_is_exactly_one_address_of_at_most_255_characters() {
    assert_eq!(code(&with("From", Value::Null)), 300);
    assert_eq!(code(&with("From", json!(""))), 300);
    assert_eq!(code(&with("From", json!("a@example.com, b@example.com"))), 300);
    let name = |n: usize| format!("\"{}\" <s@example.com>", "n".repeat(n));
    let exact = name(255 - "\"\" <s@example.com>".len());
    assert_eq!(exact.len(), 255);
    assert_eq!(code(&with("From", json!(exact))), 0);
    assert_eq!(code(&with("From", json!(name(256 - "\"\" <s@example.com>".len())))), 300);
}

// ---- limits ----

#[test]
fn tag_and_subject_limits_count_utf16_code_units() {
    assert_eq!(code(&with("Tag", json!("t".repeat(1000)))), 0);
    assert_eq!(code(&with("Tag", json!("t".repeat(1001)))), 300);
    // An emoji outside the BMP counts twice.
    assert_eq!(code(&with("Tag", json!("😀".repeat(500)))), 0);
    assert_eq!(code(&with("Tag", json!("😀".repeat(501)))), 300);
    assert_eq!(code(&with("Subject", json!("s".repeat(2000)))), 0);
    assert_eq!(code(&with("Subject", json!("s".repeat(2001)))), 300);
}

#[test]
fn metadata_limits() {
    let keys = |n: usize| Value::Object((0..n).map(|i| (format!("k{i}"), json!("v"))).collect());
    assert_eq!(code(&with("Metadata", keys(10))), 0);
    assert_eq!(code(&with("Metadata", keys(11))), 300);
    assert_eq!(code(&with("Metadata", json!({"k".repeat(20): "v"}))), 0);
    assert_eq!(code(&with("Metadata", json!({"k".repeat(21): "v"}))), 300);
    assert_eq!(code(&with("Metadata", json!({"k": "v".repeat(80)}))), 0);
    assert_eq!(code(&with("Metadata", json!({"k": "v".repeat(81)}))), 300);
    assert_eq!(code(&with("Metadata", json!({"a_key": "1", "A_Key": "2"}))), 300, "keys differing only in case");
    assert_eq!(code(&with("Metadata", json!({"": "v"}))), 300);
    assert_eq!(code(&with("Metadata", json!({"k": 1}))), 403, "values are strings");
    assert_eq!(code(&with("Metadata", json!(["k"]))), 403);
}

#[test]
fn the_default_limits_are_postmarks() {
    let l = Limits::default();
    assert_eq!(
        (l.max_message_bytes, l.max_body_bytes, l.max_batch_messages, l.max_batch_bytes, l.max_recipients),
        (10_000_000, 5_000_000, 500, 50_000_000, 50)
    );
    assert_eq!((l.max_subject_chars, l.max_from_chars, l.max_tag_chars), (2000, 255, 1000));
    assert_eq!((l.max_metadata_keys, l.max_metadata_key_chars, l.max_metadata_value_chars), (10, 20, 80));
}

// ---- attachments ----

fn attachment(name: &str) -> Value {
    json!([{"Name": name, "Content": "dGVzdA==", "ContentType": "application/octet-stream"}])
}

#[test]
fn forbidden_attachment_extensions_are_refused_with_411() {
    for ext in FORBIDDEN_EXTENSIONS {
        let r = refusal(&with("Attachments", attachment(&format!("file.{ext}"))));
        assert_eq!(r.error_code, 411, "{ext}");
    }
    for name in ["SETUP.EXE", "run.Bat", "trailing.exe.", "spaced.scr  ", "archive.tar.vbs"] {
        assert_eq!(code(&with("Attachments", attachment(name))), 411, "{name}");
    }
    for name in ["report.pdf", "exe", "notes.exe.txt", "photo.jpeg", "binary.bin.zip"] {
        assert_eq!(code(&with("Attachments", attachment(name))), 0, "{name}");
    }
}

#[test]
fn attachment_fields_are_checked() {
    let a = |v: Value| with("Attachments", json!([v]));
    assert_eq!(code(&a(json!({"Name": "a.txt", "Content": "not base64!", "ContentType": "text/plain"}))), 403);
    assert_eq!(code(&a(json!({"Name": "a.txt", "Content": "dGVzdA=="}))), 403, "ContentType is required");
    assert_eq!(code(&a(json!({"Content": "dGVzdA==", "ContentType": "text/plain"}))), 403, "Name is required");
    assert_eq!(code(&a(json!({"Name": "a.txt", "Content": "dGVzdA==", "ContentType": "text/plain", "Size": 4}))), 403);
    // Postmark's "invalid" example: a file name as content type and content ID.
    let invalid = json!({"Name": "readme (1).txt", "Content": "dGVzdA==", "ContentType": "readme (1).txt"});
    assert_eq!(code(&a(invalid)), 300);
    let bad_id =
        json!({"Name": "a.png", "Content": "dGVzdA==", "ContentType": "image/png", "ContentID": "readme (1).txt"});
    assert_eq!(code(&a(bad_id)), 300);
    let non_ascii_id =
        json!({"Name": "a.png", "Content": "dGVzdA==", "ContentType": "image/png", "ContentID": "bild-ä"});
    assert_eq!(code(&a(non_ascii_id)), 300);
    let valid = json!({"Name": "readme(1).txt", "Content": "dGVzdA==", "ContentType": "text/plain", "ContentID": "c7d-2q41-zfw"});
    assert_eq!(code(&a(valid)), 0);
    let null_id = json!({"Name": "a.txt", "Content": "", "ContentType": "text/plain", "ContentID": null});
    assert_eq!(code(&a(null_id)), 0);
}

// ---- JSON types and fields ----

#[test]
fn fields_of_the_wrong_type_or_unknown_fields_are_refused_with_403() {
    for (key, value) in [
        ("To", json!(["a@example.com"])),
        ("From", json!(42)),
        ("Subject", json!(1)),
        ("TextBody", json!({"text": "x"})),
        ("TrackOpens", json!("true")),
        ("TrackLinks", json!("Sometimes")),
        ("TrackLinks", json!(true)),
        ("Headers", json!({"Name": "X", "Value": "y"})),
        ("Headers", json!([{"Name": "X"}])),
        ("Headers", json!([{"Name": "X", "Value": 1}])),
        ("Attachments", json!({})),
        ("MessageStream", json!(1)),
        ("textBody", json!("wrong case")),
        ("TemplateId", json!(1)),
        ("Sender", json!("x@example.com")),
    ] {
        let r = refusal(&with(key, value.clone()));
        assert_eq!(r.error_code, 403, "{key}: {value}");
        assert!(r.message.contains(key), "the refusal names the field: {r}");
    }
    assert_eq!(code_with(Endpoint::Email, &json!(["not", "an", "object"]), &Rules::default()), 403);
}

#[test]
fn null_optional_fields_count_as_absent() {
    let mut m = good();
    for key in ["Cc", "Bcc", "Subject", "Tag", "HtmlBody", "ReplyTo", "Headers", "TrackOpens", "TrackLinks", "Metadata"]
    {
        m[key] = Value::Null;
    }
    m["Attachments"] = Value::Null;
    m["MessageStream"] = Value::Null;
    assert_eq!(code(&m), 0);
    for value in TRACK_LINKS_VALUES {
        assert_eq!(code(&with("TrackLinks", json!(value))), 0, "{value}");
    }
}

#[test]
fn a_header_needs_a_name() {
    assert_eq!(code(&with("Headers", json!([{"Name": "", "Value": "y"}]))), 300);
    assert_eq!(code(&with("Headers", json!([{"Name": "X-Custom", "Value": ""}]))), 0);
}

// ---- template sends ----

fn templated() -> Value {
    json!({"From": "sender@example.com", "To": "rcpt@example.com", "TemplateAlias": "welcome", "TemplateModel": {"name": "Ann"}})
}

#[test]
fn a_template_send_takes_its_body_from_the_template() {
    for endpoint in [Endpoint::WithTemplate, Endpoint::BatchWithTemplates] {
        assert_eq!(code_with(endpoint, &templated(), &Rules::default()), 0);
        let mut by_id = templated();
        by_id.as_object_mut().unwrap().remove("TemplateAlias");
        by_id["TemplateId"] = json!(12345);
        assert_eq!(code_with(endpoint, &by_id, &Rules::default()), 0);
    }
}

#[test]
fn a_template_send_names_exactly_one_template_and_has_a_model() {
    let rules = Rules::default();
    let mut both = templated();
    both["TemplateId"] = json!(1);
    assert_eq!(code_with(Endpoint::WithTemplate, &both, &rules), 403);
    let mut neither = templated();
    neither.as_object_mut().unwrap().remove("TemplateAlias");
    assert_eq!(code_with(Endpoint::WithTemplate, &neither, &rules), 403);
    let mut no_model = templated();
    no_model.as_object_mut().unwrap().remove("TemplateModel");
    assert_eq!(code_with(Endpoint::WithTemplate, &no_model, &rules), 403);
    let mut id_as_text = templated();
    id_as_text.as_object_mut().unwrap().remove("TemplateAlias");
    id_as_text["TemplateId"] = json!("12345");
    assert_eq!(code_with(Endpoint::WithTemplate, &id_as_text, &rules), 403);
    // Bodies belong to the template: a template send with its own body is not a documented request.
    let mut with_body = templated();
    with_body["TextBody"] = json!("Hi");
    assert_eq!(code_with(Endpoint::WithTemplate, &with_body, &rules), 403);
    // The other rules apply to template sends too.
    let mut bad_to = templated();
    bad_to["To"] = json!("a..b@example.com");
    assert_eq!(code_with(Endpoint::WithTemplate, &bad_to, &rules), 300);
    let mut exe = templated();
    exe["Attachments"] = attachment("x.exe");
    assert_eq!(code_with(Endpoint::BatchWithTemplates, &exe, &rules), 411);
}

// ---- the account: senders and inactive recipients ----

#[test]
fn verified_senders_addresses_and_domains() {
    let rules =
        Rules { verified_senders: Some(vec!["alerts@example.org".into(), "Example.COM".into()]), ..Rules::default() };
    let from = |f: &str| code_with(Endpoint::Email, &with("From", json!(f)), &rules);
    assert_eq!(from("Sender <sender@example.com>"), 0, "domain, case-insensitive");
    assert_eq!(from("ALERTS@example.org"), 0, "address, case-insensitive");
    assert_eq!(from("other@example.org"), 400);
    assert_eq!(from("x@mail.example.com"), 400, "a subdomain is not the domain");
    assert_eq!(from("x@example.net"), 400);
    assert_eq!(code(&with("From", json!("x@example.net"))), 0, "without a list every sender is verified");
}

#[test]
fn unconfirmed_senders_get_401() {
    let rules = Rules { unconfirmed_senders: vec!["new@example.com".into()], ..Rules::default() };
    assert_eq!(code_with(Endpoint::Email, &with("From", json!("new@example.com")), &rules), 401);
    assert_eq!(code_with(Endpoint::Email, &good(), &rules), 0);
    let both = Rules {
        verified_senders: Some(vec!["example.com".into()]),
        unconfirmed_senders: vec!["pending.example".into()],
        ..Rules::default()
    };
    assert_eq!(code_with(Endpoint::Email, &with("From", json!("a@pending.example")), &both), 401);
    assert_eq!(code_with(Endpoint::Email, &with("From", json!("a@elsewhere.example")), &both), 400);
}

#[test]
fn inactive_recipients_get_their_code_in_any_field() {
    let mut rules = Rules::default();
    rules.reject_recipient("Gone@Example.com", 406);
    for field in ["To", "Cc", "Bcc"] {
        let mut m = good();
        m[field] = json!("ok@example.com, gone@example.com");
        let r = validate(Endpoint::Email, &m, &rules).expect_err(field);
        assert_eq!(r.error_code, 406);
        assert!(r.message.contains("gone@example.com"), "{r}");
    }
    assert_eq!(code_with(Endpoint::Email, &good(), &rules), 0);
}

#[test]
fn content_rules_come_before_the_account_rules() {
    let mut rules = Rules { verified_senders: Some(vec![]), ..Rules::default() };
    rules.reject_recipient("rcpt@example.com", 406);
    assert_eq!(code_with(Endpoint::Email, &with("TextBody", json!("")), &rules), 300);
    assert_eq!(code_with(Endpoint::Email, &good(), &rules), 400, "the sender before the recipients");
}

// ---- the request ----

fn request(endpoint: Endpoint, body: &[u8]) -> Result<Vec<Value>, RequestRefusal> {
    parse_request(endpoint, Some("application/json"), Some("application/json"), body, &Rules::default())
}

fn refused(r: Result<Vec<Value>, RequestRefusal>) -> (u16, Option<i64>) {
    let e = r.expect_err("refused");
    (e.status, e.refusal.map(|r| r.error_code))
}

#[test]
fn content_type_must_be_json_or_415() {
    let body = good().to_string();
    for ct in [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/jsonx")] {
        let r = parse_request(Endpoint::Email, ct, Some("application/json"), body.as_bytes(), &Rules::default());
        assert_eq!(refused(r), (415, None), "{ct:?}");
    }
    for ct in ["application/json", "application/json; charset=utf-8", "Application/JSON"] {
        let r = parse_request(Endpoint::Email, Some(ct), Some("application/json"), body.as_bytes(), &Rules::default());
        assert_eq!(r.unwrap().len(), 1, "{ct}");
    }
}

#[test]
fn accept_must_allow_json_or_409() {
    let body = good().to_string();
    for accept in [None, Some("text/html"), Some("*/*"), Some("")] {
        let r = parse_request(Endpoint::Email, Some("application/json"), accept, body.as_bytes(), &Rules::default());
        assert_eq!(refused(r), (422, Some(409)), "{accept:?}");
    }
    for accept in ["application/json", "text/html, application/json;q=0.9"] {
        let r =
            parse_request(Endpoint::Email, Some("application/json"), Some(accept), body.as_bytes(), &Rules::default());
        assert!(r.is_ok(), "{accept}");
    }
}

#[test]
fn a_body_that_is_not_json_is_402_and_one_of_the_wrong_shape_403() {
    assert_eq!(refused(request(Endpoint::Email, b"{From: 'x'}")), (422, Some(402)));
    assert_eq!(refused(request(Endpoint::Batch, b"")), (422, Some(402)));
    assert_eq!(refused(request(Endpoint::Email, b"[]")), (422, Some(403)));
    assert_eq!(refused(request(Endpoint::Batch, good().to_string().as_bytes())), (422, Some(403)));
    assert_eq!(refused(request(Endpoint::BatchWithTemplates, b"[]")), (422, Some(403)));
    assert_eq!(refused(request(Endpoint::BatchWithTemplates, b"{\"messages\": []}")), (422, Some(403)));
    assert_eq!(refused(request(Endpoint::BatchWithTemplates, b"{\"Messages\": [], \"Extra\": 1}")), (422, Some(403)));
    assert_eq!(request(Endpoint::BatchWithTemplates, b"{\"Messages\": [{}, {}]}").unwrap().len(), 2);
    // A batch element of the wrong type is refused on its own (the request is fine).
    let items = request(Endpoint::Batch, b"[1, {}]").unwrap();
    assert_eq!(code_with(Endpoint::Batch, &items[0], &Rules::default()), 403);
}

#[test]
fn batches_hold_at_most_500_messages() {
    let batch = |n: usize| Value::Array(vec![good(); n]).to_string();
    assert_eq!(request(Endpoint::Batch, batch(500).as_bytes()).unwrap().len(), 500);
    assert_eq!(refused(request(Endpoint::Batch, batch(501).as_bytes())), (422, Some(410)));
    let templated = |n: usize| json!({"Messages": vec![templated(); n]}).to_string();
    assert_eq!(refused(request(Endpoint::BatchWithTemplates, templated(501).as_bytes())), (422, Some(410)));
}

#[test]
fn requests_over_the_size_limits_are_413() {
    let single = vec![b' '; 10_000_001];
    assert_eq!(refused(request(Endpoint::Email, &single)), (413, None));
    assert_eq!(refused(request(Endpoint::WithTemplate, &single)), (413, None));
    // A batch may be bigger, up to 50 MB.
    let mut batch = b"[]".to_vec();
    batch.resize(10_000_001, b' ');
    assert!(request(Endpoint::Batch, &batch).unwrap().is_empty());
    batch.resize(50_000_001, b' ');
    assert_eq!(refused(request(Endpoint::Batch, &batch)), (413, None));
}

#[test]
fn endpoints_and_paths() {
    for e in [Endpoint::Email, Endpoint::Batch, Endpoint::WithTemplate, Endpoint::BatchWithTemplates] {
        assert_eq!(Endpoint::from_path(e.path()), Some(e));
    }
    assert_eq!(Endpoint::from_path("/email/bulk"), None);
    assert_eq!(Endpoint::from_path("/Email"), None);
}

// ---- the SMTP model ----

const FROM_TO: &str = "From: Sender <sender@example.com>\r\nTo: rcpt@example.com\r\nSubject: test\r\n";

fn mime(rest: &str) -> Vec<u8> {
    format!("{FROM_TO}{rest}").into_bytes()
}

fn smtp(raw: &[u8]) -> i64 {
    smtp_with(raw, &["rcpt@example.com".to_owned()], &Rules::default())
}

fn smtp_with(raw: &[u8], rcpt: &[String], rules: &Rules) -> i64 {
    match check_mime(raw, rcpt, rules) {
        Ok(()) => 0,
        Err(r) => r.error_code,
    }
}

const NO_BODY: &str = "Provide either email TextBody or HtmlBody or both.";

/// The bounce message for `raw` sent to rcpt@example.com ("" when it would be sent).
fn smtp_reason(raw: &[u8]) -> String {
    check_mime(raw, &["rcpt@example.com".to_owned()], &Rules::default()).err().map(|r| r.message).unwrap_or_default()
}

fn multipart(kind: &str, parts: &[&str]) -> Vec<u8> {
    let mut s = format!("MIME-Version: 1.0\r\nContent-Type: multipart/{kind}; boundary=\"b1\"\r\n\r\npreamble\r\n");
    for p in parts {
        s.push_str("--b1\r\n");
        s.push_str(p);
        s.push_str("\r\n");
    }
    s.push_str("--b1--\r\n");
    mime(&s)
}

const PDF: &str = "Content-Type: application/pdf; name=\"scan.pdf\"\r\nContent-Disposition: attachment; filename=\"scan.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK";

#[test]
fn smtp_a_plain_message_and_its_variants_have_a_body() {
    assert_eq!(smtp(&mime("\r\nHello.\r\n")), 0);
    assert_eq!(smtp(&mime("Content-Type: TEXT/PLAIN; charset=utf-8\r\n\r\nHello.\r\n")), 0);
    assert_eq!(smtp(&mime("Content-Type: text/html\r\n\r\n<p>Hi</p>\r\n")), 0);
    assert_eq!(smtp(&multipart("mixed", &["Content-Type: text/plain\r\n\r\nSee attached.", PDF])), 0);
    assert_eq!(
        smtp(&multipart(
            "alternative",
            &["Content-Type: text/plain\r\n\r\n ", "Content-Type: text/html\r\n\r\n<b>x</b>"]
        )),
        0,
        "an empty text part beside a real HTML part"
    );
    assert_eq!(smtp(&mime("Content-Type: text/plain\r\nContent-Disposition: inline\r\n\r\nHi\r\n")), 0);
    assert_eq!(
        smtp(&mime("Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=48i\r\n")),
        0
    );
}

#[test]
fn smtp_an_attachment_only_message_would_bounce() {
    let r = check_mime(&multipart("mixed", &[PDF]), &["rcpt@example.com".to_owned()], &Rules::default()).unwrap_err();
    assert_eq!(r.error_code, 300);
    assert_eq!(r.message, "Provide either email TextBody or HtmlBody or both.");
    assert_eq!(
        smtp_reason(&mime(&PDF.replace("\r\n\r\n", "\r\nMIME-Version: 1.0\r\n\r\n"))),
        NO_BODY,
        "a single-part PDF"
    );
}

#[test]
fn smtp_empty_and_white_space_bodies_would_bounce() {
    assert_eq!(smtp_reason(&mime("\r\n")), NO_BODY, "empty");
    assert_eq!(smtp_reason(&mime("\r\n \r\n\t\r\n")), NO_BODY);
    assert_eq!(smtp_reason(&mime("Content-Type: text/plain\r\n\r\n   \r\n\r\n")), NO_BODY);
    assert_eq!(
        smtp_reason(&mime("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nICAgDQoJ\r\n")),
        NO_BODY,
        "base64 of white space"
    );
    assert_eq!(
        smtp_reason(&mime(
            "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=20=20=0D=0A\r\n"
        )),
        NO_BODY
    );
    assert_eq!(
        smtp_reason(&multipart(
            "alternative",
            &["Content-Type: text/plain\r\n\r\n ", "Content-Type: text/html\r\n\r\n\r\n"]
        )),
        NO_BODY
    );
}

#[test]
fn smtp_text_parts_that_are_files_are_not_a_body() {
    let named = "Content-Type: text/plain\r\nContent-Disposition: inline; filename=\"notes.txt\"\r\n\r\nNotes.";
    assert_eq!(smtp_reason(&multipart("mixed", &[named])), NO_BODY, "filename=");
    let named = "Content-Type: text/plain; name=\"notes.txt\"\r\n\r\nNotes.";
    assert_eq!(smtp_reason(&multipart("mixed", &[named])), NO_BODY, "name=");
    let attached = "Content-Type: text/html\r\nContent-Disposition: ATTACHMENT\r\n\r\n<p>page</p>";
    assert_eq!(smtp_reason(&multipart("mixed", &[attached])), NO_BODY, "Content-Disposition: attachment");
    assert_eq!(smtp_reason(&multipart("mixed", &["Content-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR"])), NO_BODY);
    // Beside a real body they are simply attachments.
    assert_eq!(smtp(&multipart("mixed", &["Content-Type: text/plain\r\n\r\nHi", named, attached])), 0);
}

#[test]
fn smtp_parts_of_an_attached_message_are_not_a_body() {
    let forwarded = "Content-Type: message/rfc822\r\n\r\nFrom: a@example.com\r\nSubject: inner\r\n\r\nInner text.\r\n";
    assert_eq!(smtp_reason(&multipart("mixed", &[forwarded])), NO_BODY);
    assert_eq!(smtp(&multipart("mixed", &["Content-Type: text/plain\r\n\r\nForwarding:", forwarded])), 0);
}

#[test]
fn smtp_inside_multipart_digest_a_part_without_content_type_is_a_message() {
    let digest = "Content-Type: multipart/digest; boundary=\"d1\"\r\n\r\n--d1\r\n\r\nFrom: a@example.com\r\nSubject: one\r\n\r\nFirst.\r\n--d1\r\n\r\nFrom: b@example.com\r\nSubject: two\r\n\r\nSecond.\r\n--d1--";
    assert_eq!(smtp_reason(&multipart("mixed", &[digest])), NO_BODY, "the digest's entries are attached messages");
    let top = "MIME-Version: 1.0\r\nContent-Type: multipart/digest; boundary=\"d1\"\r\n\r\n--d1\r\n\r\nFrom: a@example.com\r\n\r\nFirst.\r\n--d1--\r\n";
    assert_eq!(smtp_reason(&mime(top)), NO_BODY);
    let explicit = "Content-Type: multipart/digest; boundary=\"d1\"\r\n\r\n--d1\r\nContent-Type: text/plain\r\n\r\nA real text part.\r\n--d1--";
    assert_eq!(smtp(&multipart("mixed", &[explicit])), 0, "an explicit text/plain in a digest is a body");
    assert_eq!(smtp(&multipart("mixed", &["Content-Type: text/plain\r\n\r\nThe digest:", digest])), 0);
}

#[test]
fn smtp_unparseable_or_malformed_mime_would_bounce() {
    assert_eq!(smtp(b""), 300);
    assert_eq!(smtp_reason(b""), "The message could not be parsed as MIME.");
    assert_eq!(smtp_reason(b"no header section at all"), "The message has a malformed MIME part.");
    let bad_base64 = mime("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!***\r\n");
    assert_eq!(smtp_reason(&bad_base64), "The message has a malformed MIME part.");
    let fine_base64 = mime("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nSGk=\r\n");
    assert_eq!(smtp(&fine_base64), 0);
    let unclosed =
        mime("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nHi\r\n");
    assert_eq!(smtp_reason(&unclosed), "The message has a malformed MIME part.", "no closing boundary");
}

#[test]
fn smtp_the_sender_must_be_one_valid_address() {
    assert_eq!(smtp(b"To: rcpt@example.com\r\nSubject: x\r\n\r\nHello.\r\n"), 300, "no From");
    assert_eq!(smtp(b"From: a@example.com, b@example.com\r\nTo: rcpt@example.com\r\n\r\nHello.\r\n"), 300);
    assert_eq!(smtp(b"From: a..b@example.com\r\nTo: rcpt@example.com\r\n\r\nHello.\r\n"), 300);
    assert_eq!(smtp(b"From: =?utf-8?q?J=C3=B6rg?= <j@example.com>\r\nTo: rcpt@example.com\r\n\r\nHello.\r\n"), 0);
    // 255 characters for `Name <address>`, decoded.
    let from = |n: usize| format!("From: {} <j@example.com>\r\n\r\nHello.\r\n", "n".repeat(n)).into_bytes();
    let fits = 255 - " <j@example.com>".len();
    assert_eq!(smtp(&from(fits)), 0);
    assert_eq!(smtp(&from(fits + 1)), 300);
}

#[test]
fn smtp_recipients_are_the_envelope() {
    let raw = mime("\r\nHello.\r\n");
    let rcpts = |n: usize| (0..n).map(|i| format!("r{i}@example.com")).collect::<Vec<_>>();
    assert_eq!(smtp_with(&raw, &rcpts(50), &Rules::default()), 0);
    assert_eq!(smtp_with(&raw, &rcpts(51), &Rules::default()), 300);
    assert_eq!(smtp_with(&raw, &["a..b@example.com".to_owned()], &Rules::default()), 300);
}

#[test]
fn smtp_forbidden_attachment_names_would_bounce_with_411() {
    let exe =
        "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"SETUP.EXE\"\r\n\r\nMZ";
    assert_eq!(smtp(&multipart("mixed", &["Content-Type: text/plain\r\n\r\nHi", exe])), 411);
    let scr = "Content-Type: application/octet-stream; name=\"x.scr\"\r\n\r\nMZ";
    assert_eq!(smtp(&multipart("mixed", &["Content-Type: text/plain\r\n\r\nHi", scr])), 411);
    assert_eq!(smtp(&multipart("mixed", &["Content-Type: text/plain\r\n\r\nHi", PDF])), 0);
    // Two names that disagree: either one with a forbidden extension counts, also RFC 2047-encoded.
    let disguised = "Content-Type: application/octet-stream; name=\"=?UTF-8?Q?cleanup.bat?=\"\r\n\
                     Content-Disposition: attachment; filename=\"cleanup.txt\"\r\n\r\nQGVjaG8=";
    assert_eq!(smtp(&multipart("mixed", &["Content-Type: text/plain\r\n\r\nHi", disguised])), 411);
    let disguised = "Content-Type: application/octet-stream; name=\"cleanup.txt\"\r\n\
                     Content-Disposition: attachment; filename*=UTF-8''clean%75p.bat\r\n\r\nQGVjaG8=";
    assert_eq!(smtp(&multipart("mixed", &["Content-Type: text/plain\r\n\r\nHi", disguised])), 411);
}

#[test]
fn smtp_control_headers_have_the_api_limits() {
    let tag = |n: usize| mime(&format!("X-PM-Tag: {}\r\n\r\nHi\r\n", "t".repeat(n)));
    assert_eq!(smtp(&tag(1000)), 0);
    assert_eq!(smtp(&tag(1001)), 300);
    let meta = |n: usize, value: &str| {
        let headers: String = (0..n).map(|i| format!("X-PM-Metadata-key{i}: {value}\r\n")).collect();
        mime(&format!("{headers}\r\nHi\r\n"))
    };
    assert_eq!(smtp(&meta(10, "v")), 0);
    assert_eq!(smtp(&meta(11, "v")), 300);
    assert_eq!(smtp(&meta(1, &"v".repeat(80))), 0);
    assert_eq!(smtp(&meta(1, &"v".repeat(81))), 300);
    let subject = |n: usize| format!("From: a@example.com\r\nSubject: {}\r\n\r\nHi\r\n", "s".repeat(n)).into_bytes();
    assert_eq!(smtp(&subject(2000)), 0);
    assert_eq!(smtp(&subject(2001)), 300);
}

#[test]
fn smtp_over_10_mb_would_bounce() {
    let mut raw = mime("\r\n");
    raw.resize(10_000_000, b'a');
    assert_eq!(smtp(&raw), 0);
    raw.push(b'a');
    assert_eq!(smtp(&raw), 300);
}

#[test]
fn smtp_senders_and_inactive_recipients() {
    let raw = mime("\r\nHello.\r\n");
    let rcpt = ["rcpt@example.com".to_owned()];
    let mut rules = Rules { verified_senders: Some(vec!["example.org".into()]), ..Rules::default() };
    assert_eq!(smtp_with(&raw, &rcpt, &rules), 400);
    rules.verified_senders = Some(vec!["example.com".into()]);
    assert_eq!(smtp_with(&raw, &rcpt, &rules), 0);
    rules.reject_recipient("rcpt@example.com", 406);
    assert_eq!(smtp_with(&raw, &rcpt, &rules), 406);
}
