//! Webhook payloads (every kind, from realistic samples), the parser's edge cases, `WebhookAuth`, and the example
//! receiver end to end.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, FixedOffset, Utc};
use postmark_server::types;
use postmark_server::webhooks::{WebhookAuth, WebhookAuthError, WebhookError, WebhookEvent, parse_webhook};
use serde_json::{Value, json};

const BOUNCE: &str = include_str!("../../../tests/fixtures/webhooks/bounce.json");
const DELIVERY: &str = include_str!("../../../tests/fixtures/webhooks/delivery.json");
const OPEN: &str = include_str!("../../../tests/fixtures/webhooks/open.json");
const CLICK: &str = include_str!("../../../tests/fixtures/webhooks/click.json");
const SPAM_COMPLAINT: &str = include_str!("../../../tests/fixtures/webhooks/spam_complaint.json");
const SUBSCRIPTION_CHANGE: &str = include_str!("../../../tests/fixtures/webhooks/subscription_change.json");
const INBOUND: &str = include_str!("../../../tests/fixtures/webhooks/inbound.json");
const UNKNOWN_RECORD_TYPE: &str = include_str!("../../../tests/fixtures/webhooks/unknown_record_type.json");

/// Every fixture of a known kind, with the kind it must parse as and the extra field it carries.
const TYPED: &[(&str, &str, &str)] = &[
    (BOUNCE, "Bounce", "FutureBounceField"),
    (DELIVERY, "Delivery", "FutureDeliveryField"),
    (OPEN, "Open", "FutureOpenField"),
    (CLICK, "Click", "FutureClickField"),
    (SPAM_COMPLAINT, "SpamComplaint", "FutureComplaintField"),
    (SUBSCRIPTION_CHANGE, "SubscriptionChange", "FutureSubscriptionField"),
    (INBOUND, "Inbound", "FutureInboundField"),
];

const MESSAGE_ID: &str = "8c3f2a61-0b7e-4d55-9a3c-1f6e2d4b7a90";

fn parse(body: &str) -> WebhookEvent {
    parse_webhook(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

/// The instant a Postmark timestamp (with its own offset) denotes.
fn at(rfc3339: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap()
}

fn metadata_of_order() -> serde_json::Map<String, Value> {
    json!({"customer_id": "c_8812", "order": "A-10442"}).as_object().unwrap().clone()
}

fn user_agent(name: &str, company: &str, family: &str) -> types::UserAgentInfo {
    types::UserAgentInfo { name: Some(name.into()), company: Some(company.into()), family: Some(family.into()) }
}

// ---------------------------------------------------------------- every payload kind

#[test]
fn bounce_parses_with_every_field() {
    let WebhookEvent::Bounce(b) = parse(BOUNCE) else { panic!("not a bounce") };
    assert_eq!(b.record_type, "Bounce");
    assert_eq!(b.message_stream.as_deref(), Some("outbound"));
    assert_eq!(b.id, Some(3_719_446_123));
    assert_eq!(b.type_.as_deref(), Some("HardBounce"));
    assert_eq!(b.type_code, Some(1));
    assert_eq!(b.name.as_deref(), Some("Hard bounce"));
    assert_eq!(b.tag.as_deref(), Some("password-reset"));
    assert_eq!(b.message_id.as_deref(), Some(MESSAGE_ID));
    assert_eq!(b.metadata, metadata_of_order());
    assert_eq!(b.server_id, Some(123_457));
    assert_eq!(
        b.description.as_deref(),
        Some("The server was unable to deliver your message (ex: unknown user, mailbox not found).")
    );
    assert_eq!(b.details.as_deref(), Some("smtp;550 5.1.1 The email account that you tried to reach does not exist."));
    assert_eq!(b.email.as_deref(), Some("gone.user@example.net"));
    assert_eq!(b.from.as_deref(), Some("no-reply@shop.example.com"));
    let bounced_at = b.bounced_at.unwrap();
    assert_eq!(bounced_at, at("2026-03-02T10:15:30.1234567-05:00"));
    assert_eq!(bounced_at.to_rfc3339(), "2026-03-02T15:15:30.123456700+00:00"); // the -05:00 offset was applied
    assert_eq!(b.dump_available, Some(true));
    assert_eq!(b.inactive, Some(true));
    assert_eq!(b.can_activate, Some(true));
    assert_eq!(b.subject.as_deref(), Some("Reset your password"));
    assert_eq!(
        b.content.as_deref(),
        Some("Return-Path: <>\r\nReceived: from mx.example.net ...\r\n\r\n550 5.1.1 user unknown")
    );
}

#[test]
fn delivery_parses_with_every_field() {
    let WebhookEvent::Delivery(d) = parse(DELIVERY) else { panic!("not a delivery") };
    assert_eq!(d.record_type, "Delivery");
    assert_eq!(d.message_stream.as_deref(), Some("outbound"));
    assert_eq!(d.server_id, Some(123_457));
    assert_eq!(d.message_id.as_deref(), Some(MESSAGE_ID));
    assert_eq!(d.recipient.as_deref(), Some("buyer@example.com"));
    assert_eq!(d.tag.as_deref(), Some("order-confirmation"));
    assert_eq!(d.delivered_at.unwrap(), at("2026-03-02T10:15:31.9070259-05:00"));
    assert_eq!(d.delivered_at.unwrap(), "2026-03-02T15:15:31.9070259Z".parse::<DateTime<Utc>>().unwrap());
    assert_eq!(d.details.as_deref(), Some("250 2.0.0 OK  1772464531 d75a77b69052e-4a1 - gsmtp"));
    assert_eq!(d.metadata, metadata_of_order());
}

#[test]
fn open_parses_with_client_os_and_geo() {
    let WebhookEvent::Open(o) = parse(OPEN) else { panic!("not an open") };
    assert_eq!(o.record_type, "Open");
    assert_eq!(o.message_stream.as_deref(), Some("outbound"));
    assert_eq!(o.first_open, Some(true));
    assert_eq!(o.client, Some(user_agent("Chrome 140.0.7339.80", "Google", "Chrome")));
    assert_eq!(o.os, Some(user_agent("macOS 15 Sequoia", "Apple Computer, Inc.", "macOS")));
    assert_eq!(o.platform.as_deref(), Some("WebMail"));
    assert_eq!(
        o.user_agent.as_deref(),
        Some(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 15_0) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/140.0.7339.80 Safari/537.36"
        )
    );
    assert_eq!(o.read_seconds, Some(12));
    assert_eq!(
        o.geo,
        Some(types::GeoLocation {
            country_iso_code: Some("US".into()),
            country: Some("United States".into()),
            region_iso_code: Some("TX".into()),
            region: Some("Texas".into()),
            city: Some("Houston".into()),
            zip: Some("77058".into()),
            coords: Some("29.5502,-95.0973".into()),
            ip: Some("203.0.113.42".into()),
        })
    );
    assert_eq!(o.message_id.as_deref(), Some(MESSAGE_ID));
    assert_eq!(o.metadata, metadata_of_order());
    assert_eq!(o.received_at.unwrap(), at("2026-03-02T10:42:07.5512904-05:00"));
    assert_eq!(o.tag.as_deref(), Some("order-confirmation"));
    assert_eq!(o.recipient.as_deref(), Some("buyer@example.com"));
}

#[test]
fn click_parses_with_client_os_and_partial_geo() {
    let WebhookEvent::Click(c) = parse(CLICK) else { panic!("not a click") };
    assert_eq!(c.record_type, "Click");
    assert_eq!(c.message_stream.as_deref(), Some("outbound"));
    assert_eq!(c.click_location.as_deref(), Some("HTML"));
    assert_eq!(c.client, Some(user_agent("Chrome 140.0.7339.80", "Google", "Chrome")));
    assert_eq!(c.os, Some(user_agent("macOS 15 Sequoia", "Apple Computer, Inc.", "macOS")));
    assert_eq!(c.platform.as_deref(), Some("Desktop"));
    assert!(c.user_agent.as_deref().unwrap().starts_with("Mozilla/5.0 (Macintosh;"));
    assert_eq!(c.original_link.as_deref(), Some("https://shop.example.com/orders/A-10442"));
    let geo = c.geo.unwrap();
    assert_eq!(geo.country_iso_code.as_deref(), Some("US"));
    assert_eq!(geo.country.as_deref(), Some("United States"));
    assert_eq!(geo.ip.as_deref(), Some("203.0.113.42"));
    assert_eq!((geo.region, geo.city, geo.zip, geo.coords), (None, None, None, None));
    assert_eq!(c.message_id.as_deref(), Some(MESSAGE_ID));
    assert_eq!(c.metadata, metadata_of_order());
    // seven fractional digits, the last one significant
    assert_eq!(c.received_at.unwrap(), at("2026-03-02T15:43:15.0000001Z"));
    assert_ne!(c.received_at.unwrap(), at("2026-03-02T15:43:15Z"));
    assert_eq!(c.tag.as_deref(), Some("order-confirmation"));
    assert_eq!(c.recipient.as_deref(), Some("buyer@example.com"));
}

#[test]
fn spam_complaint_parses_with_nulls() {
    let WebhookEvent::SpamComplaint(s) = parse(SPAM_COMPLAINT) else { panic!("not a spam complaint") };
    assert_eq!(s.record_type, "SpamComplaint");
    assert_eq!(s.message_stream.as_deref(), Some("outbound"));
    assert_eq!(s.id, Some(3_719_446_188));
    assert_eq!(s.type_.as_deref(), Some("SpamComplaint"));
    assert_eq!(s.type_code, Some(100_001));
    assert_eq!(s.name.as_deref(), Some("Spam complaint"));
    assert_eq!(s.tag, None); // null
    assert_eq!(s.message_id.as_deref(), Some(MESSAGE_ID));
    assert!(s.metadata.is_empty());
    assert_eq!(s.server_id, Some(123_457));
    assert_eq!(s.description.as_deref(), Some("The subscriber explicitly marked this message as spam."));
    assert_eq!(s.details.as_deref(), Some("Feedback report from the mailbox provider"));
    assert_eq!(s.email.as_deref(), Some("annoyed.reader@example.org"));
    assert_eq!(s.from.as_deref(), Some("news@shop.example.com"));
    assert_eq!(s.bounced_at.unwrap(), at("2026-03-02T11:20:01.0020304-05:00"));
    assert_eq!(s.dump_available, Some(true));
    assert_eq!(s.inactive, Some(true));
    assert_eq!(s.can_activate, Some(false));
    assert_eq!(s.subject.as_deref(), Some("March deals"));
    assert_eq!(s.content, None); // null
}

#[test]
fn subscription_change_parses_a_reactivation() {
    let WebhookEvent::SubscriptionChange(s) = parse(SUBSCRIPTION_CHANGE) else { panic!("not a subscription change") };
    assert_eq!(s.record_type, "SubscriptionChange");
    assert_eq!(s.message_id, None); // null for manual changes and reactivations
    assert_eq!(s.server_id, Some(123_457));
    assert_eq!(s.message_stream.as_deref(), Some("broadcast"));
    assert_eq!(s.changed_at.unwrap(), at("2026-03-02T12:00:45.4160710-05:00"));
    assert_eq!(s.changed_at.unwrap(), at("2026-03-02T17:00:45.416071Z"));
    assert_eq!(s.recipient.as_deref(), Some("annoyed.reader@example.org"));
    assert_eq!(s.origin.as_deref(), Some("Customer"));
    assert_eq!(s.suppress_sending, Some(false));
    assert_eq!(s.suppression_reason, None);
    assert_eq!(s.tag, None);
    assert!(s.metadata.is_empty());
}

fn address(email: &str, name: &str, mailbox_hash: &str) -> types::InboundMessageAddress {
    types::InboundMessageAddress {
        email: Some(email.into()),
        name: Some(name.into()),
        mailbox_hash: Some(mailbox_hash.into()),
    }
}

#[test]
fn inbound_parses_with_addresses_headers_and_attachments() {
    let WebhookEvent::Inbound(m) = parse(INBOUND) else { panic!("not inbound") };
    assert_eq!(m.from_name.as_deref(), Some("Dana Reyes"));
    assert_eq!(m.message_stream.as_deref(), Some("inbound"));
    assert_eq!(m.from.as_deref(), Some("dana@customer.example.org"));
    assert_eq!(m.from_full, Some(address("dana@customer.example.org", "Dana Reyes", "")));
    assert_eq!(m.to.as_deref(), Some("\"Support\" <7f3e9a1c2b4d+ticket-5521@inbound.postmarkapp.com>"));
    assert_eq!(m.to_full, [address("7f3e9a1c2b4d+ticket-5521@inbound.postmarkapp.com", "Support", "ticket-5521")]);
    assert_eq!(m.cc.as_deref(), Some("\"Lee Park\" <lee@customer.example.org>, ops@customer.example.org"));
    assert_eq!(
        m.cc_full,
        [address("lee@customer.example.org", "Lee Park", ""), address("ops@customer.example.org", "", "")]
    );
    assert_eq!(m.bcc.as_deref(), Some("7f3e9a1c2b4d@inbound.postmarkapp.com"));
    assert_eq!(m.bcc_full, [address("7f3e9a1c2b4d@inbound.postmarkapp.com", "", "")]);
    assert_eq!(m.original_recipient.as_deref(), Some("7f3e9a1c2b4d+ticket-5521@inbound.postmarkapp.com"));
    assert_eq!(m.subject.as_deref(), Some("Re: Order A-10442 arrived damaged"));
    assert_eq!(m.message_id.as_deref(), Some("0d6a1f3e-77c2-4b9a-8e51-2c4f0a9b6d13"));
    assert_eq!(m.reply_to.as_deref(), Some("dana@customer.example.org"));
    assert_eq!(m.mailbox_hash.as_deref(), Some("ticket-5521"));
    assert_eq!(m.date.as_deref(), Some("Mon, 2 Mar 2026 10:15:30 -0500")); // kept as sent
    assert_eq!(
        m.text_body.as_deref(),
        Some("The box was crushed, photo attached.\n\nOn Fri, Support wrote:\n> Your order shipped.")
    );
    assert_eq!(m.html_body.as_deref(), Some("<html><body><p>The box was crushed, photo attached.</p></body></html>"));
    assert_eq!(m.stripped_text_reply.as_deref(), Some("The box was crushed, photo attached."));
    assert_eq!(m.tag.as_deref(), Some(""));
    assert!(m.raw_email.as_deref().unwrap().starts_with("Return-Path: <dana@customer.example.org>\r\n"));

    let headers: Vec<(&str, &str)> = m.headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect();
    assert_eq!(headers.len(), 6);
    assert_eq!(
        headers[0],
        ("X-Spam-Checker-Version", "SpamAssassin 3.3.1 (2010-03-16) on p-pm-inboundg02a-aws-useast1a")
    );
    assert_eq!(headers[1], ("X-Spam-Status", "No"));
    assert_eq!(headers[2], ("X-Spam-Score", "-0.1"));
    assert_eq!(headers[3], ("X-Spam-Tests", "DKIM_SIGNED,DKIM_VALID,DKIM_VALID_AU,SPF_PASS"));
    assert!(headers[4].1.starts_with("pass (customer.example.org: 198.51.100.7 is authorized"));
    assert_eq!(headers[5], ("In-Reply-To", "<a1b2c3@mta.shop.example.com>"));

    let base64 = base64::engine::general_purpose::STANDARD;
    let [image, notes] = m.attachments.as_slice() else { panic!("two attachments expected") };
    assert_eq!(image.name.as_deref(), Some("damage.png"));
    assert_eq!(image.content_type.as_deref(), Some("image/png"));
    assert_eq!(image.content_id.as_deref(), Some("damage.png@01DC7342.75E71F80"));
    let png = base64.decode(image.content.as_deref().unwrap()).unwrap();
    assert_eq!(Some(png.len() as i64), image.content_length);
    assert_eq!(png.len(), 70);
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");

    assert_eq!(notes.name.as_deref(), Some("notes.txt"));
    assert_eq!(notes.content_type.as_deref(), Some("text/plain"));
    assert_eq!(notes.content_id.as_deref(), Some(""));
    let text = base64.decode(notes.content.as_deref().unwrap()).unwrap();
    assert_eq!(text, b"This is attachment contents, base-64 encoded.");
    assert_eq!(Some(text.len() as i64), notes.content_length);
}

#[test]
fn record_type_names_each_kind() {
    for (body, kind, _) in TYPED {
        assert_eq!(parse(body).record_type(), Some(*kind));
    }
    assert_eq!(parse(UNKNOWN_RECORD_TYPE).record_type(), Some("SomethingNew"));
    assert_eq!(parse(r#"{"Hello":"world"}"#).record_type(), None);
}

// ---------------------------------------------------------------- openness, unknown kinds, errors

#[test]
fn unknown_extra_fields_are_ignored() {
    for (body, kind, extra) in TYPED {
        let raw: Value = serde_json::from_str(body).unwrap();
        assert!(raw.get(*extra).is_some(), "{kind} fixture should carry {extra}");
        let event = parse(body);
        assert_eq!(event.record_type(), Some(*kind));
        let reserialized = serde_json::to_value(&event).unwrap();
        assert!(reserialized.get(*extra).is_none(), "{kind}: {extra} should have been dropped");

        // More unknown fields, of every JSON type, change nothing.
        let mut noisy = raw.clone();
        let object = noisy.as_object_mut().unwrap();
        object.insert("BrandNew".into(), json!({"deep": [1, {"x": null}]}));
        object.insert("AnotherOne".into(), json!(-1.5));
        assert_eq!(parse_webhook(noisy.to_string().as_bytes()).unwrap(), event);
    }
}

#[test]
fn unknown_record_type_is_kept_whole() {
    let original: Value = serde_json::from_str(UNKNOWN_RECORD_TYPE).unwrap();
    let event = parse(UNKNOWN_RECORD_TYPE);
    let WebhookEvent::Unknown(kept) = &event else { panic!("expected Unknown, got {event:?}") };
    assert_eq!(*kept, original);
    // It serializes back to exactly what came in, and parses again as the same event.
    let reserialized = serde_json::to_vec(&event).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&reserialized).unwrap(), original);
    assert_eq!(parse_webhook(&reserialized).unwrap(), event);
}

#[test]
fn neither_record_type_nor_inbound_fields_is_unknown() {
    for body in
        [r#"{}"#, r#"{"MessageID":"x","Recipient":"a@example.com"}"#, r#"{"From":"a@example.com","Subject":"s"}"#]
    {
        let event = parse(body);
        assert_eq!(event, WebhookEvent::Unknown(serde_json::from_str(body).unwrap()), "{body}");
    }
}

#[test]
fn record_type_that_is_not_a_string_is_unknown() {
    // Even with inbound fields: a RecordType is there, it just is not one we know.
    for body in [r#"{"RecordType":7,"MailboxHash":"x"}"#, r#"{"RecordType":["Bounce"],"Email":"a@example.com"}"#] {
        assert!(matches!(parse(body), WebhookEvent::Unknown(_)), "{body}");
    }
    // A null RecordType counts as none.
    assert!(matches!(parse(r#"{"RecordType":null,"MailboxHash":"x"}"#), WebhookEvent::Inbound(_)));
    // Record types are case-sensitive, as Postmark sends them.
    assert!(matches!(parse(r#"{"RecordType":"bounce"}"#), WebhookEvent::Unknown(_)));
}

#[test]
fn any_inbound_only_field_marks_an_inbound_message() {
    for marker in ["FromFull", "ToFull", "OriginalRecipient", "MailboxHash", "StrippedTextReply"] {
        let value = match marker {
            "FromFull" => json!({"Email": "a@example.com"}),
            "ToFull" => json!([]),
            _ => json!(""),
        };
        let body = json!({ marker: value, "Subject": "hi" }).to_string();
        let WebhookEvent::Inbound(m) = parse(&body) else { panic!("{marker} should mark inbound") };
        assert_eq!(m.subject.as_deref(), Some("hi"));
    }
}

#[test]
fn known_kind_with_a_wrong_field_type_is_invalid() {
    let cases = [
        (BOUNCE, "ServerID", json!("123457"), "Bounce"),
        (BOUNCE, "BouncedAt", json!("yesterday"), "Bounce"),
        (DELIVERY, "Metadata", json!(["not", "a", "map"]), "Delivery"),
        (OPEN, "Geo", json!("Houston"), "Open"),
        (CLICK, "Client", json!(42), "Click"),
        (SPAM_COMPLAINT, "Inactive", json!("yes"), "SpamComplaint"),
        (SUBSCRIPTION_CHANGE, "SuppressSending", json!(0), "SubscriptionChange"),
        (INBOUND, "ToFull", json!("support@example.com"), "Inbound"),
        (INBOUND, "Attachments", json!([{"ContentLength": "70"}]), "Inbound"),
    ];
    for (fixture, field, wrong, expected_kind) in cases {
        let mut value: Value = serde_json::from_str(fixture).unwrap();
        value[field] = wrong;
        match parse_webhook(value.to_string().as_bytes()) {
            Err(WebhookError::Invalid { kind, source }) => {
                assert_eq!(kind, expected_kind, "{field}");
                let message = WebhookError::Invalid { kind, source }.to_string();
                assert!(message.contains(expected_kind), "{message}");
            }
            other => panic!("{expected_kind}.{field}: expected Invalid, got {other:?}"),
        }
    }
}

#[test]
fn non_json_and_non_object_bodies_are_not_json() {
    let bodies: [&[u8]; 10] = [
        b"",
        b"not json",
        b"{\"RecordType\": \"Bounce\"",
        b"RecordType=Bounce&Email=a%40example.com",
        b"\xff\xfe{}",
        b"null",
        b"42",
        b"\"Bounce\"",
        b"[{\"RecordType\":\"Bounce\"}]",
        b"true",
    ];
    for body in bodies {
        assert!(
            matches!(parse_webhook(body), Err(WebhookError::NotJson(_))),
            "{:?} should be NotJson",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn every_typed_event_round_trips_through_serialization() {
    for (body, kind, _) in TYPED {
        let event = parse(body);
        // The event serializes as the bare payload, which parses back as the same event.
        let bytes = serde_json::to_vec(&event).unwrap();
        assert_eq!(parse_webhook(&bytes).unwrap(), event, "{kind}");
        // So does the typed payload inside it.
        let inner = match &event {
            WebhookEvent::Bounce(e) => serde_json::to_vec(e),
            WebhookEvent::Delivery(e) => serde_json::to_vec(e),
            WebhookEvent::Open(e) => serde_json::to_vec(e),
            WebhookEvent::Click(e) => serde_json::to_vec(e),
            WebhookEvent::SpamComplaint(e) => serde_json::to_vec(e),
            WebhookEvent::SubscriptionChange(e) => serde_json::to_vec(e),
            WebhookEvent::Inbound(e) => serde_json::to_vec(e),
            other => panic!("{kind} parsed as {other:?}"),
        }
        .unwrap();
        assert_eq!(inner, bytes, "{kind}");
    }
}

// ---------------------------------------------------------------- WebhookAuth

const USER: &str = "postmark-hooks";
const PASSWORD: &str = "Zq8:v3%Lr!xP0w";
const HEADER: &str = "X-Webhook-Token";
const TOKEN: &str = "tok_9f86d081884c7d659a2feaa0c55ad015";

fn basic(user: &str, password: &str) -> String {
    basic_raw(format!("{user}:{password}").as_bytes())
}

fn basic_raw(credentials: &[u8]) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials))
}

fn check(auth: &WebhookAuth, headers: &[(&str, &[u8])]) -> Result<(), WebhookAuthError> {
    auth.verify(headers.iter().copied())
}

#[test]
fn right_basic_credentials_are_accepted() {
    let auth = WebhookAuth::new().basic(USER, PASSWORD);
    assert!(PASSWORD.contains(':'));
    assert_eq!(check(&auth, &[("Authorization", basic(USER, PASSWORD).as_bytes())]), Ok(()));
    // Name and scheme are case-insensitive, surrounding whitespace does not matter, other headers are ignored.
    let lower_scheme = basic(USER, PASSWORD).replacen("Basic", "basic", 1);
    assert_eq!(
        check(&auth, &[("content-type", b"application/json"), ("AUTHORIZATION", lower_scheme.as_bytes())]),
        Ok(())
    );
    assert_eq!(check(&auth, &[("authorization", format!("  {}  ", basic(USER, PASSWORD)).as_bytes())]), Ok(()));

    let colons = WebhookAuth::new().basic("u", ":a:b:");
    assert_eq!(check(&colons, &[("Authorization", basic("u", ":a:b:").as_bytes())]), Ok(()));
    assert_eq!(
        check(&colons, &[("Authorization", basic("u", ":a:b").as_bytes())]),
        Err(WebhookAuthError::WrongCredentials)
    );
}

#[test]
fn right_header_is_accepted_whatever_the_case_of_its_name() {
    let auth = WebhookAuth::new().header(HEADER, TOKEN);
    for name in ["X-Webhook-Token", "x-webhook-token", "X-WEBHOOK-TOKEN"] {
        assert_eq!(check(&auth, &[(name, TOKEN.as_bytes())]), Ok(()), "{name}");
    }
    let lower = WebhookAuth::new().header("x-webhook-token", TOKEN);
    assert_eq!(check(&lower, &[("X-Webhook-Token", TOKEN.as_bytes())]), Ok(()));
}

#[test]
fn both_checks_together() {
    let auth = WebhookAuth::new().basic(USER, PASSWORD).header(HEADER, TOKEN);
    let right_basic = basic(USER, PASSWORD);
    assert_eq!(check(&auth, &[("Authorization", right_basic.as_bytes()), (HEADER, TOKEN.as_bytes())]), Ok(()));
    assert_eq!(check(&auth, &[("Authorization", right_basic.as_bytes())]), Err(WebhookAuthError::MissingHeader));
    assert_eq!(check(&auth, &[(HEADER, TOKEN.as_bytes())]), Err(WebhookAuthError::MissingAuthorization));
    assert_eq!(
        check(&auth, &[("Authorization", right_basic.as_bytes()), (HEADER, b"tok_wrong")]),
        Err(WebhookAuthError::WrongHeader)
    );
    assert_eq!(
        check(&auth, &[("Authorization", basic(USER, "nope").as_bytes()), (HEADER, TOKEN.as_bytes())]),
        Err(WebhookAuthError::WrongCredentials)
    );
}

#[test]
fn wrong_credentials_are_rejected() {
    let auth = WebhookAuth::new().basic(USER, PASSWORD);
    let wrong = [
        basic("postmark-hook", PASSWORD),                 // wrong user (a prefix)
        basic("postmark-hooks2", PASSWORD),               // wrong user (longer)
        basic("", PASSWORD),                              // no user
        basic(USER, "Zq8:v3%Lr!xP0W"),                    // wrong password (one letter's case)
        basic(USER, "Zq8:v3%Lr!xP0"),                     // wrong password (a prefix)
        basic(USER, &format!("{PASSWORD}\0")),            // wrong password (a NUL more)
        basic(USER, ""),                                  // no password
        basic("postmark", &format!("-hooks:{PASSWORD}")), // the split moved into the user name
    ];
    for header in &wrong {
        assert_eq!(
            check(&auth, &[("Authorization", header.as_bytes())]),
            Err(WebhookAuthError::WrongCredentials),
            "{header}"
        );
    }
}

#[test]
fn wrong_header_values_are_rejected() {
    let auth = WebhookAuth::new().header(HEADER, TOKEN);
    for value in [
        "",
        "tok_9f86d081884c7d659a2feaa0c55ad01",
        "tok_9f86d081884c7d659a2feaa0c55ad0155",
        "TOK_9F86D081884C7D659A2FEAA0C55AD015",
    ] {
        assert_eq!(check(&auth, &[(HEADER, value.as_bytes())]), Err(WebhookAuthError::WrongHeader), "{value:?}");
    }
    // Sent twice (even once right): ambiguous, refused.
    assert_eq!(check(&auth, &[(HEADER, TOKEN.as_bytes()), (HEADER, b"other")]), Err(WebhookAuthError::WrongHeader));
    assert_eq!(
        check(&auth, &[(HEADER, TOKEN.as_bytes()), ("x-webhook-token", TOKEN.as_bytes())]),
        Err(WebhookAuthError::WrongHeader)
    );
}

#[test]
fn missing_credentials_are_rejected() {
    let basic_auth = WebhookAuth::new().basic(USER, PASSWORD);
    assert_eq!(check(&basic_auth, &[]), Err(WebhookAuthError::MissingAuthorization));
    assert_eq!(check(&basic_auth, &[(HEADER, TOKEN.as_bytes())]), Err(WebhookAuthError::MissingAuthorization));
    let header_auth = WebhookAuth::new().header(HEADER, TOKEN);
    assert_eq!(check(&header_auth, &[]), Err(WebhookAuthError::MissingHeader));
    assert_eq!(
        check(&header_auth, &[("Authorization", basic(USER, PASSWORD).as_bytes())]),
        Err(WebhookAuthError::MissingHeader)
    );
}

#[test]
fn malformed_authorization_is_rejected() {
    let auth = WebhookAuth::new().basic(USER, PASSWORD);
    let right = basic(USER, PASSWORD);
    let encoded = right.strip_prefix("Basic ").unwrap();
    let malformed: Vec<Vec<u8>> = vec![
        Vec::new(),                                                      // empty
        b"   ".to_vec(),                                                 // blank
        b"Basic".to_vec(),                                               // no credentials
        b"Basic ".to_vec(),                                              // no credentials
        format!("Bearer {encoded}").into_bytes(),                        // not Basic
        format!("Digest username=\"{USER}\"").into_bytes(),              // not Basic
        encoded.as_bytes().to_vec(),                                     // no scheme
        b"Basic !!!not-base64!!!".to_vec(),                              // bad base64
        format!("Basic {}", &encoded[..encoded.len() - 1]).into_bytes(), // truncated base64
        basic_raw(b"postmark-hooksZq8v3").into_bytes(),                  // no colon
        basic_raw(b"postmark-\xffhooks:Zq8").into_bytes(),               // decoded user is not UTF-8
        basic_raw(b"postmark-hooks:\xc3\x28").into_bytes(),              // decoded password is not UTF-8
        b"Basic \xff\xfe\xfd".to_vec(),                                  // header bytes are not UTF-8
        [b"Basic ".as_slice(), encoded.as_bytes(), b"\x80"].concat(),    // trailing non-UTF-8 byte
    ];
    for value in &malformed {
        assert_eq!(
            check(&auth, &[("Authorization", value)]),
            Err(WebhookAuthError::MalformedAuthorization),
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
    // Two Authorization headers, even both right, are ambiguous.
    assert_eq!(
        check(&auth, &[("Authorization", right.as_bytes()), ("authorization", right.as_bytes())]),
        Err(WebhookAuthError::MalformedAuthorization)
    );
}

#[test]
fn nothing_configured_refuses_everything() {
    let everything: &[(&str, &[u8])] = &[("Authorization", b"Basic Og=="), (HEADER, b"")];
    for auth in [
        WebhookAuth::new(),
        WebhookAuth::default(),
        WebhookAuth::new().basic(USER, ""), // an empty password is no secret
        WebhookAuth::new().basic("", ""),
        WebhookAuth::new().header(HEADER, ""), // nor is an empty header value
        WebhookAuth::new().header("", TOKEN),  // a header without a name
        WebhookAuth::new().basic(USER, PASSWORD).header(HEADER, ""), // one empty secret spoils the lot
    ] {
        assert!(!auth.is_configured(), "{auth:?}");
        assert_eq!(check(&auth, everything), Err(WebhookAuthError::NotConfigured), "{auth:?}");
        assert_eq!(check(&auth, &[]), Err(WebhookAuthError::NotConfigured), "{auth:?}");
    }
    assert!(WebhookAuth::new().basic("", PASSWORD).is_configured());
    assert!(WebhookAuth::new().header(HEADER, TOKEN).is_configured());
}

#[test]
fn header_map_from_http_frameworks() {
    use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
    let auth = WebhookAuth::new().basic(USER, PASSWORD).header(HEADER, TOKEN);
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&basic(USER, PASSWORD)).unwrap());
    headers.insert("x-webhook-token", HeaderValue::from_static(TOKEN));
    assert_eq!(auth.verify_header_map(&headers), Ok(()));
    headers.append("X-Webhook-Token", HeaderValue::from_static("second value"));
    assert_eq!(auth.verify_header_map(&headers), Err(WebhookAuthError::WrongHeader));
    headers.remove("x-webhook-token");
    assert_eq!(auth.verify_header_map(&headers), Err(WebhookAuthError::MissingHeader));
    headers.insert(AUTHORIZATION, HeaderValue::from_bytes(b"Basic \xfe\xff").unwrap());
    assert_eq!(auth.verify_header_map(&headers), Err(WebhookAuthError::MalformedAuthorization));
}

#[test]
fn debug_and_errors_never_show_secrets() {
    let auth = WebhookAuth::new().basic(USER, PASSWORD).header(HEADER, TOKEN);
    for shown in [format!("{auth:?}"), format!("{auth:#?}"), format!("{:?}", auth.clone())] {
        for secret in [USER, PASSWORD, TOKEN, "Zq8", "tok_"] {
            assert!(!shown.contains(secret), "{shown} shows {secret}");
        }
        assert!(shown.contains("x-webhook-token"), "{shown}"); // header names are not secret
    }
    let errors = [
        check(&auth, &[]),
        check(&auth, &[("Authorization", basic(USER, "guess").as_bytes())]),
        check(&auth, &[("Authorization", basic(USER, PASSWORD).as_bytes()), (HEADER, b"tok_guess")]),
    ];
    for error in errors {
        let error = error.unwrap_err();
        for shown in [error.to_string(), format!("{error:?}")] {
            for secret in [USER, PASSWORD, TOKEN, "guess"] {
                assert!(!shown.contains(secret), "{shown} shows {secret}");
            }
        }
    }
}

// ---------------------------------------------------------------- the example receiver, end to end

/// The example process, killed when the test ends however it ends.
struct Receiver {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    /// `cargo run`s the example with only the given `WEBHOOK_*` variables set.
    fn spawn(env: &[(&str, &str)]) -> Receiver {
        let mut command = Command::new(env!("CARGO"));
        command
            .args(["run", "--quiet", "-p", "postmark-server", "--example", "webhook_receiver"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for name in
            ["WEBHOOK_USER", "WEBHOOK_PASSWORD", "WEBHOOK_HEADER_NAME", "WEBHOOK_HEADER_VALUE", "WEBHOOK_LISTEN"]
        {
            command.env_remove(name);
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn().expect("cargo run the example");
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Receiver { child, stdout, stderr }
    }

    /// The next stdout line; generous, since `cargo run` may have to build the example first.
    fn next_line(&self, timeout: Duration) -> String {
        self.stdout.recv_timeout(timeout).unwrap_or_else(|e| {
            let stderr: Vec<String> = self.stderr.try_iter().collect();
            panic!("no line from the example ({e}); stderr: {stderr:#?}")
        })
    }
}

fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

const STARTUP: Duration = Duration::from_secs(600);
const SHORT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn example_receiver_verifies_parses_and_prints() {
    let receiver = Receiver::spawn(&[
        ("WEBHOOK_LISTEN", "127.0.0.1:0"),
        ("WEBHOOK_USER", USER),
        ("WEBHOOK_PASSWORD", PASSWORD),
        ("WEBHOOK_HEADER_NAME", HEADER),
        ("WEBHOOK_HEADER_VALUE", TOKEN),
    ]);
    let banner = receiver.next_line(STARTUP);
    let url = banner
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {banner:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let http = reqwest::Client::new();
    let post = |path: &str, body: &'static str, user: &str, password: &str, token: &str| {
        http.post(format!("{url}{path}"))
            .basic_auth(user, Some(password))
            .header(HEADER, token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    // Right credentials: 200 and one line naming the kind, the MessageID and the recipient.
    let ok = post("/", BOUNCE, USER, PASSWORD, TOKEN).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        receiver.next_line(SHORT),
        format!("event=Bounce message_id=\"{MESSAGE_ID}\" recipient=\"gone.user@example.net\"")
    );
    let ok = post("/postmark/inbound", INBOUND, USER, PASSWORD, TOKEN).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        receiver.next_line(SHORT),
        "event=Inbound message_id=\"0d6a1f3e-77c2-4b9a-8e51-2c4f0a9b6d13\" \
         recipient=\"7f3e9a1c2b4d+ticket-5521@inbound.postmarkapp.com\""
    );
    let ok = post("/", UNKNOWN_RECORD_TYPE, USER, PASSWORD, TOKEN).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        receiver.next_line(SHORT),
        format!("event=Unknown record_type=\"SomethingNew\" message_id=\"{MESSAGE_ID}\" recipient=-")
    );

    // Wrong or missing credentials: 401 with nothing to learn from, and nothing printed.
    for (user, password, token) in
        [("intruder", PASSWORD, TOKEN), (USER, "guess", TOKEN), (USER, PASSWORD, "tok_guess"), (USER, PASSWORD, "")]
    {
        let refused = post("/", BOUNCE, user, password, token).await.unwrap();
        assert_eq!(refused.status(), 401);
        assert_eq!(refused.text().await.unwrap(), "");
    }
    let anonymous = http.post(&url).body(DELIVERY).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.text().await.unwrap(), "");

    // Right credentials, but not a webhook body: 400.
    assert_eq!(post("/", "not json", USER, PASSWORD, TOKEN).await.unwrap().status(), 400);
    assert_eq!(
        post("/", r#"{"RecordType":"Bounce","ServerID":"x"}"#, USER, PASSWORD, TOKEN).await.unwrap().status(),
        400
    );

    // Still alive and printing exactly one line per accepted event.
    assert_eq!(post("/", DELIVERY, USER, PASSWORD, TOKEN).await.unwrap().status(), 200);
    assert_eq!(
        receiver.next_line(SHORT),
        format!("event=Delivery message_id=\"{MESSAGE_ID}\" recipient=\"buyer@example.com\"")
    );
    assert!(receiver.stdout.try_recv().is_err(), "refused requests must print no event line");

    // Nothing the example printed shows a secret.
    drop(http);
    let Receiver { stdout, stderr, .. } = &receiver;
    let printed: Vec<String> = [banner].into_iter().chain(stdout.try_iter()).chain(stderr.try_iter()).collect();
    for line in &printed {
        for secret in [USER, PASSWORD, TOKEN] {
            assert!(!line.contains(secret), "{line:?} shows a secret");
        }
    }
}

#[test]
fn example_receiver_refuses_to_start_without_credentials() {
    for env in [
        &[("WEBHOOK_LISTEN", "127.0.0.1:0")][..],
        &[("WEBHOOK_LISTEN", "127.0.0.1:0"), ("WEBHOOK_USER", USER)][..], // a user without a password
        &[("WEBHOOK_LISTEN", "127.0.0.1:0"), ("WEBHOOK_HEADER_NAME", HEADER), ("WEBHOOK_HEADER_VALUE", "")][..],
        &[("WEBHOOK_LISTEN", "0.0.0.0:0"), ("WEBHOOK_HEADER_NAME", HEADER), ("WEBHOOK_HEADER_VALUE", TOKEN)][..],
    ] {
        let mut receiver = Receiver::spawn(env);
        let status = wait_with_timeout(&mut receiver.child, STARTUP);
        assert_eq!(status.code(), Some(2), "{env:?}");
        let stderr: Vec<String> = receiver.stderr.try_iter().collect();
        assert!(stderr.iter().any(|l| l.starts_with("webhook_receiver: ")), "{env:?}: {stderr:?}");
        assert!(receiver.stdout.try_recv().is_err(), "{env:?}: it must not have started listening");
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            // Let the reader threads drain what the process wrote.
            std::thread::sleep(Duration::from_millis(100));
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "the example did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}
