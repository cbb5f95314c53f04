use super::*;
use crate::envelope::Routing;
use crate::spool::Header;

fn stored(raw: &[u8], notice: bool) -> StoredMessage {
    StoredMessage {
        id: QueueId::generate(),
        header: Header {
            envelope: Envelope::new("app@example.com".to_owned(), ["user@example.net".to_owned()]),
            size: raw.len() as u64,
            checksum: String::new(),
            received_ms: 1_700_000_000_000,
            routing: Some(Routing { stream: None, notice }),
        },
        raw: raw.to_vec(),
    }
}

fn settings(per_hour: u32) -> NotifySettings {
    NotifySettings { to: "ops@example.com".into(), from: "relay@example.com".into(), per_hour }
}

const ORIGINAL: &[u8] = b"From: app@example.com\r\nTo: user@example.net\r\nSubject: Invoice 42\r\n\r\nHello\r\n";

fn death<'a>(id: &'a QueueId, rcpt: &'a [String]) -> Death<'a> {
    Death { id, reason: "Postmark refused it: 406 inactive recipient", attempts: 1, recipients: rcpt }
}

#[test]
fn notice_names_the_dead_letter_and_attaches_the_original() {
    let msg = stored(ORIGINAL, false);
    let mut n = Notifier::new(settings(20), "relay.test", 0);
    let (env, raw) = n.notice(&msg, death(&msg.id, &msg.header.envelope.rcpt_to), 1000).expect("a notice");
    assert_eq!(env.mail_from, "relay@example.com");
    assert_eq!(env.rcpt_to, vec!["ops@example.com".to_owned()]);

    let parsed = mail_parser::MessageParser::default().parse(&raw[..]).expect("the notice parses");
    let subject = parsed.subject().unwrap();
    assert!(subject.contains("Invoice 42") && subject.contains(&msg.id.to_string()), "{subject}");
    let text = parsed.body_text(0).unwrap();
    for needle in
        [&msg.id.to_string()[..], "406 inactive recipient", "user@example.net", "app@example.com", "queue retry"]
    {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    let attached = parsed.attachments().next().expect("the original is attached");
    assert!(attached.is_message(), "attached as message/rfc822");
    assert!(raw.windows(ORIGINAL.len()).any(|w| w == ORIGINAL), "the original is attached byte for byte");
    // The notice is a message Postmark takes.
    let opts = crate::convert::ConvertOptions::default();
    for request in crate::convert::to_postmark(&raw, &env, &opts).unwrap() {
        let json = serde_json::to_value(&request).unwrap();
        let rules = postmark_fake::rules::Rules::default();
        postmark_fake::rules::validate(postmark_fake::rules::Endpoint::Email, &json, &rules)
            .expect("Postmark takes it");
    }
}

#[test]
fn a_notice_never_notifies_about_itself() {
    let msg = stored(ORIGINAL, true);
    let mut n = Notifier::new(settings(20), "relay.test", 0);
    assert!(n.notice(&msg, death(&msg.id, &msg.header.envelope.rcpt_to), 0).is_none());
}

#[test]
fn rate_limited_per_hour_and_the_next_notice_counts_the_suppressed() {
    let msg = stored(ORIGINAL, false);
    let mut n = Notifier::new(settings(2), "relay.test", 0);
    let d = death(&msg.id, &msg.header.envelope.rcpt_to);
    assert!(n.notice(&msg, d, 0).is_some());
    assert!(n.notice(&msg, d, 0).is_some());
    assert!(n.notice(&msg, d, 0).is_none(), "third within the hour is suppressed");
    assert!(n.notice(&msg, d, 60_000).is_none(), "one minute refills 1/30 of a notice");
    // Half an hour refills one notice.
    let (_, raw) = n.notice(&msg, d, 30 * 60_000 + 1).expect("refilled");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let parsed = mail_parser::MessageParser::default().parse(text.as_bytes()).unwrap();
    assert!(parsed.body_text(0).unwrap().contains("2 more dead letters were not notified"));
}

#[test]
fn an_original_too_big_to_attach_sends_its_headers_only() {
    let mut big = b"From: app@example.com\r\nTo: user@example.net\r\nSubject: big\r\n\r\n".to_vec();
    big.resize(MAX_ATTACHED + 10, b'a');
    let msg = stored(&big, false);
    let mut n = Notifier::new(settings(20), "relay.test", 0);
    let (_, raw) = n.notice(&msg, death(&msg.id, &msg.header.envelope.rcpt_to), 0).unwrap();
    assert!(raw.len() < 100_000, "only the headers: {} bytes", raw.len());
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("text/rfc822-headers") && text.contains("Subject: big"));
}

#[test]
fn dates_are_rfc5322() {
    assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
    assert_eq!(encode_subject("plain"), "plain");
    assert!(encode_subject("Grüße").starts_with("=?UTF-8?B?"));
}
