use mail_parser::{Message, MimeHeaders, PartType};

use super::*;
use crate::convert::parse;

fn opts() -> ConvertOptions {
    ConvertOptions::default()
}

#[test]
fn a_body_line_inside_the_header_section_starts_the_body() {
    let raw = b"From: a@example.com\r\nSubject: x\r\nThis is the body.\r\nMore.\r\n";
    let fixed = end_headers(raw).unwrap();
    assert_eq!(fixed, b"From: a@example.com\r\nSubject: x\r\n\r\nThis is the body.\r\nMore.\r\n");
    let message = parse(&fixed).unwrap();
    assert_eq!(message.body_text(0).as_deref(), Some("This is the body.\r\nMore.\r\n"));
}

#[test]
fn bare_lf_messages_get_a_bare_lf_blank_line() {
    let raw = b"From: a@example.com\nSubject: x\nbody here\n";
    assert_eq!(end_headers(raw).unwrap(), b"From: a@example.com\nSubject: x\n\nbody here\n");
}

#[test]
fn text_without_any_header_becomes_a_body() {
    assert_eq!(end_headers(b"just text\r\n").unwrap(), b"\r\njust text\r\n");
    assert_eq!(end_headers(b" starts with a blank\r\n").unwrap(), b"\r\n starts with a blank\r\n");
}

#[test]
fn proper_header_sections_are_left_alone() {
    for raw in [
        &b"From: a@example.com\r\nSubject: folded\r\n  on two lines\r\n\r\nbody\r\n"[..],
        b"From: a@example.com\r\nSubject : obsolete blank before the colon\r\n\r\nbody\r\n",
        b"From sender@example.com Tue Dec  1 09:00:00 2026\r\nFrom: a@example.com\r\n\r\nbody\r\n",
        b"Subject: headers only, no body\r\n",
        b"",
        b"\r\nno headers at all\r\n",
    ] {
        assert_eq!(end_headers(raw), None, "{:?}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn field_names_are_printable_ascii_without_blanks() {
    assert!(is_header_field(b"X-Foo: bar"));
    assert!(is_header_field(b"X-Foo:"));
    assert!(is_header_field(b"Subject\t: x"));
    assert!(!is_header_field(b"X Foo: bar"));
    assert!(!is_header_field(b": no name"));
    assert!(!is_header_field(b"no colon at all"));
    assert!(!is_header_field("Grüße: x".as_bytes()));
}

#[test]
fn usable_body_in_the_strict_reading() {
    let has = |raw: &[u8]| has_usable_body(&parse(raw).unwrap());
    assert!(has(b"Subject: x\r\n\r\nhello\r\n"));
    assert!(has(b"Content-Type: TEXT/HTML\r\n\r\n<p>hi</p>\r\n"));
    assert!(!has(b"Subject: x\r\n\r\n"));
    assert!(!has(b"Subject: x\r\n\r\n \t\r\n\r\n"));
    assert!(!has(b"Content-Type: text\r\n\r\nno subtype\r\n"));
    assert!(!has(b"Content-Type: text/plain; name=\"a.txt\"\r\n\r\nnamed\r\n"));
    assert!(!has(b"Content-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nattached\r\n"));
    assert!(!has(b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n"));
    // The text of an attached message is not the message's body.
    assert!(!has(b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner text\r\n"));
    assert!(!has(b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: in\r\n\r\ntext\r\n--d--\r\n"));
}

fn env() -> Envelope {
    Envelope::new("envelope@example.com", ["office@example.com"])
}

fn ensure_body(message: &Message<'_>, opts: &ConvertOptions) -> Option<Vec<u8>> {
    smtp(message, &env(), opts)
}

fn wrapped(raw: &[u8]) -> Vec<u8> {
    let message = parse(raw).unwrap();
    let out = ensure_body(&message, &opts()).expect("needs a body");
    let again = parse(&out).unwrap();
    assert!(has_usable_body(&again), "{}", String::from_utf8_lossy(&out));
    out
}

#[test]
fn an_attachment_only_message_gets_a_text_part_and_keeps_its_content_byte_for_byte() {
    let raw = b"From: scanner@example.com\r\nTo: office@example.com\r\nSubject: Scan\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"s\"\r\n\r\n--s\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--s--\r\n";
    let out = wrapped(raw);
    let text = String::from_utf8(out.clone()).unwrap();
    // The outer headers stay; the original Content-Type moves into the second part.
    assert!(text.starts_with("From: scanner@example.com\r\nTo: office@example.com\r\nSubject: Scan\r\n"), "{text}");
    assert_eq!(text.matches("MIME-Version").count(), 1);
    let message = parse(&out).unwrap();
    let body = message.body_text(0).unwrap();
    assert!(body.contains("scan.pdf"), "{body}");
    let original = message.parts.iter().find(|p| p.attachment_name() == Some("scan.pdf")).unwrap();
    assert_eq!(original.contents(), b"%PDF-");
    // The original body bytes are inside, unchanged.
    let tail = &raw[raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    assert!(out.windows(tail.len()).any(|w| w == tail));
}

#[test]
fn single_part_and_empty_messages_are_wrapped_too() {
    for raw in [
        &b"From: a@example.com\r\nSubject: empty\r\n\r\n"[..],
        b"From: a@example.com\r\nSubject: blank\r\nContent-Type: text/plain\r\n\r\n   \r\n",
        b"From: a@example.com\r\nContent-Type: application/pdf; name=doc.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n",
        b"From: a@example.com\r\nContent-Type: text\r\n\r\ninvalid type\r\n",
        b"From: a@example.com\r\nSubject: headers only\r\n",
    ] {
        let out = wrapped(raw);
        assert!(String::from_utf8_lossy(&out).starts_with("From: a@example.com\r\n"));
    }
}

#[test]
fn bare_lf_messages_are_wrapped_with_bare_lf() {
    let out = wrapped(b"From: a@example.com\nContent-Type: image/png\n\nPNGDATA\n");
    assert!(!out.windows(2).any(|w| w == b"\r\n"));
}

#[test]
fn the_default_text_names_the_attachments_and_can_be_configured() {
    let raw = b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: application/pdf; name=\"Rechnung M\xc3\xa4rz.pdf\"\r\n\r\nx\r\n--b--\r\n";
    let message = parse(raw).unwrap();
    let out = ensure_body(&message, &opts()).unwrap();
    // A non-ASCII name makes the text base64.
    assert!(String::from_utf8_lossy(&out).contains("Content-Transfer-Encoding: base64"));
    let text = parse(&out).unwrap().body_text(0).unwrap().into_owned();
    assert!(text.contains("Rechnung März.pdf"), "{text}");

    let custom = ConvertOptions { empty_body_text: Some("Scan attached: {attachments}".into()), ..opts() };
    let out = ensure_body(&message, &custom).unwrap();
    let text = parse(&out).unwrap().body_text(0).unwrap().into_owned();
    assert_eq!(text.trim_end(), "Scan attached: Rechnung März.pdf");
}

#[test]
fn messages_with_a_body_are_not_touched() {
    let raw = b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhello\r\n--b\r\n\
Content-Type: application/pdf; name=a.pdf\r\n\r\nx\r\n--b--\r\n";
    assert_eq!(ensure_body(&parse(raw).unwrap(), &opts()), None);
}

#[test]
fn the_boundary_never_collides_with_the_content() {
    let raw = b"From: a@example.com\r\nContent-Type: image/png\r\n\r\n=_postmark-relay_\r\n";
    let out = wrapped(raw);
    let message = parse(&out).unwrap();
    assert_eq!(message.parts.iter().filter(|p| matches!(p.body, PartType::Multipart(_))).count(), 1);
}

#[test]
fn a_from_postmark_cannot_use_is_replaced_and_kept_aside() {
    for (raw, want) in [
        // No From at all: the envelope sender.
        (&b"Subject: x\r\n\r\nhello\r\n"[..], "From: envelope@example.com\r\n"),
        // Cron's bare `root`: not an address Postmark takes.
        (b"From: root (Cron Daemon)\r\nSubject: x\r\n\r\nhello\r\n", "From: envelope@example.com\r\n"),
        // Two senders: the first valid one.
        (b"From: a@example.com, b@example.com\r\n\r\nhello\r\n", "From: a@example.com\r\n"),
        // A name that makes the value over 255 characters: the address alone.
        (
            format!("From: {} <long@example.com>\r\n\r\nhello\r\n", "n".repeat(260)).as_bytes(),
            "From: long@example.com\r\n",
        ),
    ] {
        let message = parse(raw).unwrap();
        let out = smtp(&message, &env(), &opts()).expect("repaired");
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with(want), "{text}");
        let again = parse(&out).unwrap();
        assert!(has_usable_body(&again));
        if raw.starts_with(b"From:") {
            assert!(text.contains("\r\nX-Original-From: "), "{text}");
        }
        assert!(text.ends_with("\r\n\r\nhello\r\n"), "{text}");
    }
    // A good From is left alone, non-ASCII name and all.
    let raw = "From: =?UTF-8?B?SsO8cmdlbg==?= <j@example.com>\r\n\r\nhello\r\n".as_bytes();
    assert_eq!(smtp(&parse(raw).unwrap(), &env(), &opts()), None);
}

#[test]
fn a_replaced_from_with_a_non_ascii_name_is_an_encoded_word() {
    let raw = "From: J\u{fc}rgen <j@example.com>, other@example.com\r\n\r\nhello\r\n".as_bytes();
    let out = smtp(&parse(raw).unwrap(), &env(), &opts()).unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.starts_with("From: =?UTF-8?B?"), "{text}");
    let again = parse(&out).unwrap();
    let from = again.from().unwrap().first().unwrap();
    assert_eq!((from.name(), from.address()), (Some("J\u{fc}rgen"), Some("j@example.com")));
}

#[test]
fn a_multipart_without_its_closing_delimiter_gets_one() {
    let raw =
        b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\r\nhello\r\n--b\r\n\
Content-Type: application/pdf; name=x.pdf\r\n\r\nJVBERi0=\r\n";
    let message = parse(raw).unwrap();
    assert!(message.parts.iter().any(|p| p.is_encoding_problem), "mail-parser flags it");
    let out = smtp(&message, &env(), &opts()).unwrap();
    assert!(out.starts_with(raw), "only appended to");
    assert_eq!(&out[raw.len()..], b"--b--\r\n");
    assert!(!parse(&out).unwrap().parts.iter().any(|p| p.is_encoding_problem));

    // Wrapped (no usable body) and unclosed: the original's delimiter closes it inside the wrapper.
    let raw = b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
Content-Type: application/pdf; name=x.pdf\r\n\r\nJVBERi0=\r\n";
    let out = smtp(&parse(raw).unwrap(), &env(), &opts()).unwrap();
    let again = parse(&out).unwrap();
    assert!(has_usable_body(&again));
    assert!(!again.parts.iter().any(|p| p.is_encoding_problem), "{}", String::from_utf8_lossy(&out));
    assert_eq!(again.parts.iter().find(|p| p.attachment_name() == Some("x.pdf")).unwrap().contents(), b"JVBERi0=");
}
