//! Conversion tests over the `.eml` fixtures in `tests/fixtures/mime/`.
//!
//! Fixtures are stored with LF line ends (the repository normalises text files); [`fixture`]
//! turns them into CRLF, as they arrive over SMTP, except for `bare-lf.eml`.

use base64::Engine as _;

use super::*;

/// The one request of a message that names a recipient in To or Cc.
fn to_postmark(raw: &[u8], envelope: &Envelope, opts: &ConvertOptions) -> Result<SendEmailRequest, ConvertError> {
    let mut requests = super::to_postmark(raw, envelope, opts)?;
    assert_eq!(requests.len(), 1, "expected one request");
    Ok(requests.remove(0))
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/mime/{name}", env!("CARGO_MANIFEST_DIR"));
    let lf = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut crlf = Vec::with_capacity(lf.len() + lf.len() / 20);
    for (i, &b) in lf.iter().enumerate() {
        if b == b'\n' && (i == 0 || lf[i - 1] != b'\r') {
            crlf.push(b'\r');
        }
        crlf.push(b);
    }
    crlf
}

fn lf_fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/mime/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn env(from: &str, to: &[&str]) -> Envelope {
    Envelope::new(from, to.iter().copied())
}

fn convert_fixture(name: &str, envelope: &Envelope) -> SendEmailRequest {
    to_postmark(&fixture(name), envelope, &ConvertOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn decoded(att: &EmailAttachment) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(&att.content).expect("attachment content is base64")
}

fn header<'a>(req: &'a SendEmailRequest, name: &str) -> Option<&'a str> {
    req.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
}

fn header_names(req: &SendEmailRequest) -> Vec<&str> {
    req.headers.iter().map(|h| h.name.as_str()).collect()
}

const PDF: &[u8] = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";

fn png() -> Vec<u8> {
    let mut png = vec![0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
    png.extend(0u8..200);
    png
}

#[test]
fn multipart_alternative_with_qp_latin1_text_and_base64_html() {
    let req = convert_fixture("alternative.eml", &env("bounces@example.com", &["ann@example.org"]));
    assert_eq!(req.from, "Shop Team <shop@example.com>");
    assert_eq!(req.to, "Ann Customer <ann@example.org>");
    assert_eq!(req.cc, None);
    assert_eq!(req.bcc, None);
    assert_eq!(req.subject.as_deref(), Some("Your order"));
    assert_eq!(req.reply_to.as_deref(), Some("Support <support@example.com>"));
    // ISO-8859-1 + quoted-printable, soft line break joined. Like browsers (WHATWG Encoding),
    // mail-parser reads ISO-8859-1 as its superset Windows-1252, so =96 is an en dash.
    assert_eq!(
        req.text_body.as_deref(),
        Some(
            "Grüße aus Köln – the total is 5 EUR.\r\nA long line that is soft-wrapped by \
             quoted-printable encoding so that it stays under 76 characters.\r\n"
        )
    );
    assert_eq!(req.html_body.as_deref(), Some("<html><body><p>Grüße aus <b>Köln</b> – 5 €</p></body></html>\n"));
    assert!(req.attachments.is_empty());
    assert_eq!(
        req.headers,
        vec![
            MessageHeader { name: "Message-ID".into(), value: "<order-42@example.com>".into() },
            MessageHeader { name: "In-Reply-To".into(), value: "<question-41@example.org>".into() },
            MessageHeader {
                name: "References".into(),
                value: "<question-40@example.org> <question-41@example.org>".into()
            },
            MessageHeader {
                name: "List-Unsubscribe".into(),
                value: "<https://example.com/unsub?u=1>, <mailto:unsub@example.com>".into()
            },
            MessageHeader { name: "X-Mailer".into(), value: "LegacyApp 2.1".into() },
            MessageHeader { name: "X-Encoded".into(), value: "=?UTF-8?B?w6TDtsO8?=".into() },
        ]
    );
    assert_eq!(req.message_stream, None);
    assert_eq!(req.tag, None);
    assert!(req.metadata.is_empty());
    assert_eq!(req.track_opens, None);
    assert_eq!(req.track_links, None);
}

#[test]
fn default_message_stream_comes_from_the_options() {
    let opts = ConvertOptions { message_stream: Some("relay".into()), ..Default::default() };
    let req = to_postmark(&fixture("alternative.eml"), &env("", &["ann@example.org"]), &opts).unwrap();
    assert_eq!(req.message_stream.as_deref(), Some("relay"));
}

#[test]
fn multipart_related_inline_image_gets_a_content_id() {
    let req = convert_fixture("related-inline.eml", &env("", &["ann@example.org"]));
    assert_eq!(req.text_body.as_deref(), Some("Logo: [image]\r\n"));
    assert_eq!(
        req.html_body.as_deref(),
        Some(r#"<html><body><p>Logo: <img src="cid:logo@shop.example"></p></body></html>"#)
    );
    assert_eq!(req.attachments.len(), 3);

    let logo = &req.attachments[0];
    assert_eq!(logo.name, "logo.png");
    assert_eq!(logo.content_type, "image/png");
    assert_eq!(logo.content_id.as_deref(), Some("cid:logo@shop.example"));
    assert_eq!(decoded(logo), png());

    // A Content-ID the HTML never mentions is an ordinary attachment.
    let gif = &req.attachments[1];
    assert_eq!(gif.name, "attachment-1.gif");
    assert_eq!(gif.content_type, "image/gif");
    assert_eq!(gif.content_id, None);
    assert_eq!(decoded(gif), b"GIF89a-not-referenced");

    let pdf = &req.attachments[2];
    assert_eq!(pdf.name, "terms.pdf");
    assert_eq!(pdf.content_type, "application/pdf");
    assert_eq!(pdf.content_id, None);
    assert_eq!(decoded(pdf), PDF);
}

#[test]
fn rfc2231_and_rfc2047_file_names_are_decoded() {
    let req = convert_fixture("filenames.eml", &env("", &["ann@example.org"]));
    assert_eq!(req.text_body.as_deref(), Some("Three files attached."));
    let names: Vec<&str> = req.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["Rechnung März 2026.pdf", "Übersicht (entwurf).docx", "Kundenübersicht Teil 2.csv"]);
    assert_eq!(req.attachments[0].content_type, "application/pdf");
    assert_eq!(decoded(&req.attachments[0]), PDF);
    assert_eq!(
        req.attachments[1].content_type,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    );
    assert_eq!(decoded(&req.attachments[1]), b"PK\x03\x04docx-bytes");
    // A text attachment keeps its original charset: Latin-1 bytes, QP undone.
    assert_eq!(req.attachments[2].content_type, "text/csv; charset=iso-8859-1");
    assert_eq!(decoded(&req.attachments[2]), b"Name;Ort\r\nM\xfcller;K\xf6ln");
}

#[test]
fn latin1_8bit_body_is_decoded() {
    let req = convert_fixture("latin1-8bit.eml", &env("", &["ann@example.org"]));
    assert_eq!(req.text_body.as_deref(), Some("Süße Grüße, © 2026\r\n"));
}

#[test]
fn windows_1252_qp_body_and_subject_are_decoded() {
    let req = convert_fixture("windows-1252.eml", &env("", &["ann@example.org"]));
    assert_eq!(req.subject.as_deref(), Some("“Quoted” – € 5"));
    assert_eq!(req.text_body.as_deref(), Some("“Smart quotes” – price €10 …\r\n"));
}

#[test]
fn iso_2022_jp_body_subject_and_name_are_decoded() {
    let req = convert_fixture("iso-2022-jp.eml", &env("", &["ann@example.org"]));
    assert_eq!(req.from, "田中 <tanaka@example.jp>");
    assert_eq!(req.subject.as_deref(), Some("件名テスト"));
    assert_eq!(req.text_body.as_deref(), Some("これはテストです。\r\n"));
}

#[test]
fn shift_jis_base64_body_is_decoded() {
    let req = convert_fixture("shift-jis.eml", &env("", &["ann@example.org"]));
    assert_eq!(req.text_body.as_deref(), Some("これはテストです。\n"));
}

#[test]
fn encoded_words_and_display_names_with_commas_and_quotes() {
    let envelope = env("", &["jane@example.org", "bjoern@example.se", "carl@example.net", "pat@example.ie"]);
    let req = convert_fixture("encoded-words.eml", &envelope);
    assert_eq!(req.from, "\"Müller, Jürgen\" <juergen@example.de>");
    assert_eq!(req.to, r#""Doe, Jane \"JD\"" <jane@example.org>, Björn <bjoern@example.se>"#);
    // The group is flattened; its members keep their names.
    assert_eq!(req.cc.as_deref(), Some(r#"carl@example.net, "O'Brien, Pat" <pat@example.ie>"#));
    assert_eq!(req.bcc, None);
    assert_eq!(req.subject.as_deref(), Some("Rechnung für März – folded and a plain tail"));
    assert!(!header_names(&req).iter().any(|n| n.starts_with("X-Relay-Original")));
}

#[test]
fn forwarded_message_becomes_an_eml_attachment_byte_for_byte() {
    let raw = fixture("forwarded.eml");
    let req = to_postmark(&raw, &env("", &["ann@example.org"]), &ConvertOptions::default()).unwrap();
    assert_eq!(req.text_body.as_deref(), Some("See the forwarded message."));
    assert_eq!(req.attachments.len(), 2);

    let first = &req.attachments[0];
    assert_eq!(first.name, "forwarded-message.eml");
    assert_eq!(first.content_type, "message/rfc822");
    let inner = decoded(first);
    let start = find(&raw, b"From: Carol").unwrap();
    let end = find(&raw, b"--inner-b--\r\n").unwrap() + b"--inner-b--\r\n".len();
    assert_eq!(inner, &raw[start..end]);
    assert!(inner.ends_with(b"AAECAw==\r\n--inner-b--\r\n"));

    let second = &req.attachments[1];
    assert_eq!(second.name, "second.eml");
    assert_eq!(second.content_type, "message/rfc822");
    assert_eq!(decoded(second), b"From: x@example.net\r\nSubject: second\r\n\r\nSecond inner body.");
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn text_calendar_part_becomes_invite_ics() {
    let req = convert_fixture("calendar.eml", &env("", &["ann@example.org"]));
    // The line break before a boundary belongs to the boundary (RFC 2046 §5.1.1).
    assert_eq!(req.text_body.as_deref(), Some("You are invited."));
    assert_eq!(req.html_body.as_deref(), Some("<p>You are invited.</p>"));
    assert_eq!(req.attachments.len(), 1);
    let ics = &req.attachments[0];
    assert_eq!(ics.name, "invite.ics");
    assert_eq!(ics.content_type, "text/calendar; charset=utf-8; method=REQUEST");
    assert_eq!(ics.content_id, None);
    let expected = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example//Calendar//EN\r\n\
                    METHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:meeting-1@example.com\r\n\
                    DTSTART:20260310T100000Z\r\nDTEND:20260310T110000Z\r\nSUMMARY:Planning – Q2\r\n\
                    ORGANIZER:mailto:boss@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    assert_eq!(String::from_utf8(decoded(ics)).unwrap(), expected);
}

#[test]
fn bare_lf_input_converts() {
    let req = to_postmark(
        &lf_fixture("bare-lf.eml"),
        &env("root@host.example.com", &["admin@example.com"]),
        &ConvertOptions::default(),
    )
    .unwrap();
    assert_eq!(req.from, "Cron Daemon <root@host.example.com>");
    assert_eq!(req.to, "admin@example.com");
    assert_eq!(req.subject.as_deref(), Some("Cron <root@host> /usr/local/bin/backup"));
    assert_eq!(req.text_body.as_deref(), Some("backup finished\nline two"));
    assert_eq!(req.attachments.len(), 1);
    assert_eq!(req.attachments[0].name, "backup.log");
    assert_eq!(req.attachments[0].content_type, "text/plain; charset=utf-8");
    assert_eq!(decoded(&req.attachments[0]), b"log line 1\nlog line 2");
}

#[test]
fn lines_starting_with_a_dot_survive() {
    // The session removed the SMTP dot-stuffing; what remains are the author's own dots.
    let req = convert_fixture("dot-stuffed.eml", &env("", &["ann@example.org"]));
    assert_eq!(req.text_body.as_deref(), Some("first line\r\n.hidden line\r\n..\r\n.\r\nlast line\r\n"));
}

#[test]
fn missing_subject_stays_missing() {
    let req = convert_fixture("no-subject.eml", &env("", &["ann@example.org"]));
    assert_eq!(req.subject, None);
    assert_eq!(req.text_body.as_deref(), Some("No subject here.\r\n"));
    assert_eq!(header(&req, "Message-ID"), Some("<nosubj@example.com>"));
    let json = serde_json::to_value(&req).unwrap();
    assert!(json.get("Subject").is_none());
}

#[test]
fn missing_from_uses_the_envelope_sender() {
    let req = convert_fixture("no-from.eml", &env("daemon@host.example.com", &["ann@example.org"]));
    assert_eq!(req.from, "daemon@host.example.com");
    assert_eq!(req.subject.as_deref(), Some("who sent this"));
}

#[test]
fn missing_from_and_null_sender_is_an_error() {
    let err =
        to_postmark(&fixture("no-from.eml"), &env("", &["ann@example.org"]), &ConvertOptions::default()).unwrap_err();
    assert_eq!(err, ConvertError::NoSender);
    let raw = b"From: not an address\r\nTo: ann@example.org\r\n\r\nx\r\n";
    let err = to_postmark(raw, &env("also-not-valid", &["ann@example.org"]), &ConvertOptions::default()).unwrap_err();
    assert_eq!(err, ConvertError::NoSender);
}

#[test]
fn invalid_from_header_falls_back_to_the_envelope_sender() {
    let raw = b"From: Broken <no-at-sign>\r\nTo: ann@example.org\r\n\r\nx\r\n";
    let req = to_postmark(raw, &env("app@example.com", &["ann@example.org"]), &ConvertOptions::default()).unwrap();
    assert_eq!(req.from, "app@example.com");
}

#[test]
fn x_pm_headers_map_to_fields_and_leave_headers() {
    let opts = ConvertOptions { message_stream: Some("outbound".into()), ..Default::default() };
    let req = to_postmark(&fixture("x-pm-headers.eml"), &env("", &["ann@example.org"]), &opts).unwrap();
    // The header wins over the configured default.
    assert_eq!(req.message_stream.as_deref(), Some("broadcasts"));
    assert_eq!(req.tag.as_deref(), Some("welcome ✓"));
    assert_eq!(req.track_opens, Some(true));
    assert_eq!(req.track_links, Some(TrackLinks::HtmlOnly));
    assert_eq!(
        req.metadata,
        [("Customer-Id".to_owned(), "12345".to_owned()), ("plan".to_owned(), "pro".to_owned())].into_iter().collect()
    );
    assert_eq!(header_names(&req), ["X-PM-Bounce-Type", "X-Custom", "Message-ID"]);
    assert_eq!(header(&req, "X-Custom"), Some("kept"));
    assert_eq!(header(&req, "Message-ID"), Some("<ctl-1@example.com>"));

    let json = serde_json::to_value(&req).unwrap();
    assert_eq!(json["TrackLinks"], "HtmlOnly");
    assert_eq!(json["TrackOpens"], true);
    assert_eq!(json["Metadata"]["plan"], "pro");
}

#[test]
fn invalid_x_pm_track_values_are_errors() {
    let raw = b"From: a@example.com\r\nTo: ann@example.org\r\nX-PM-TrackOpens: yes\r\n\r\nx\r\n";
    let err = to_postmark(raw, &env("", &["ann@example.org"]), &ConvertOptions::default()).unwrap_err();
    assert!(matches!(err, ConvertError::InvalidHeader { header: "X-PM-TrackOpens", ref value, .. } if value == "yes"));
    let raw = b"From: a@example.com\r\nTo: ann@example.org\r\nX-PM-TrackLinks: Always\r\n\r\nx\r\n";
    let err = to_postmark(raw, &env("", &["ann@example.org"]), &ConvertOptions::default()).unwrap_err();
    assert!(matches!(err, ConvertError::InvalidHeader { header: "X-PM-TrackLinks", .. }));
    for (value, expected) in
        [("None", TrackLinks::None), ("HTMLANDTEXT", TrackLinks::HtmlAndText), ("textonly", TrackLinks::TextOnly)]
    {
        let raw = format!("From: a@example.com\r\nX-PM-TrackLinks: {value}\r\n\r\nx\r\n");
        let req = to_postmark(raw.as_bytes(), &env("", &["ann@example.org"]), &ConvertOptions::default()).unwrap();
        assert_eq!(req.track_links, Some(expected));
    }
}

#[test]
fn envelope_rule_adds_bcc_and_excludes_header_only_recipients() {
    let envelope = env("app@example.com", &["ann@example.org", "cy@example.org", "secret@hidden.example"]);
    let req = convert_fixture("envelope.eml", &envelope);
    assert_eq!(req.to, "Ann <ann@example.org>");
    assert_eq!(req.cc.as_deref(), Some("Cy <cy@EXAMPLE.org>"));
    assert_eq!(req.bcc.as_deref(), Some("secret@hidden.example"));
    assert_eq!(
        header(&req, "X-Relay-Original-To"),
        Some("Ann <ann@example.org>, Other Person <other@elsewhere.example>")
    );
    // Cc only repeated Ann (delivered through To), nobody outside the envelope.
    assert_eq!(header(&req, "X-Relay-Original-Cc"), None);

    // The delivery set equals the envelope set exactly.
    let mut delivered: Vec<String> = [req.to.as_str(), req.cc.as_deref().unwrap(), req.bcc.as_deref().unwrap()]
        .iter()
        .flat_map(|list| list.split(", "))
        .map(|m| {
            let addr = m.rsplit_once('<').map_or(m, |(_, a)| a.trim_end_matches('>'));
            address::key(addr)
        })
        .collect();
    delivered.sort();
    let mut expected: Vec<String> = envelope.rcpt_to.iter().map(|a| address::key(a)).collect();
    expected.sort();
    assert_eq!(delivered, expected);
}

#[test]
fn header_recipient_outside_the_envelope_gets_no_copy_even_if_it_empties_to() {
    let req = convert_fixture("envelope.eml", &env("", &["other@ELSEWHERE.example"]));
    assert_eq!(req.to, "Other Person <other@elsewhere.example>");
    assert_eq!(req.cc, None);
    assert_eq!(req.bcc, None);
    assert_eq!(header(&req, "X-Relay-Original-Cc"), Some("Cy <cy@EXAMPLE.org>, ann@example.org"));

    // Postmark requires To: the one hidden recipient is addressed To itself alone.
    let req = convert_fixture("envelope.eml", &env("", &["bcc-only@hidden.example"]));
    assert_eq!(req.to, "bcc-only@hidden.example");
    assert_eq!(req.cc, None);
    assert_eq!(req.bcc, None);
}

#[test]
fn more_than_fifty_recipients_become_requests_of_at_most_fifty_and_hidden_ones_stay_in_bcc() {
    // 60 visible recipients in To, 5 in Cc, 40 only in the envelope (Bcc).
    let to: Vec<String> = (0..60).map(|i| format!("To {i} <t{i}@example.org>")).collect();
    let raw = format!(
        "From: App <app@example.com>\r\nTo: {}\r\nCc: c0@example.org, c1@example.org, c2@example.org, \
         c3@example.org, c4@example.org\r\nSubject: many\r\n\r\nhello\r\n",
        to.join(", ")
    );
    let mut rcpt: Vec<String> = (0..60).map(|i| format!("t{i}@example.org")).collect();
    rcpt.extend((0..5).map(|i| format!("c{i}@example.org")));
    rcpt.extend((0..40).map(|i| format!("hidden{i}@bcc.example")));
    rcpt.push("T0@EXAMPLE.org".into()); // "T0" is another local part than "t0": a 106th recipient
    let envelope = Envelope::new("app@example.com", rcpt.clone());
    let requests = super::to_postmark(raw.as_bytes(), &envelope, &ConvertOptions::default()).unwrap();
    // 106 recipients: 50 + 50 + 6, the last six hidden only, so one request each (To alone).
    assert_eq!(requests.len(), 8);
    let mut delivered = Vec::new();
    for r in &requests {
        let got = super::request_recipients(r, &envelope);
        assert!(got.len() <= 50, "{} recipients in one request", got.len());
        // A hidden recipient is never in To or Cc next to anybody else.
        let visible = format!("{}, {}", r.to, r.cc.as_deref().unwrap_or(""));
        assert!(!visible.contains("hidden") || got.len() == 1, "{r:?}");
        assert_eq!(r.subject.as_deref(), Some("many"));
        assert_eq!(r.text_body.as_deref(), Some("hello\r\n"));
        delivered.extend(got);
    }
    assert_eq!(delivered, rcpt, "every envelope recipient once, in order, spelled as in the envelope");
    assert!(requests[0].to.starts_with("To 0 <t0@example.org>, To 1 <t1@example.org>"));
    assert_eq!(requests[0].cc, None);
    assert_eq!(requests[1].to.matches('@').count(), 10);
    assert_eq!(requests[1].cc.as_deref().map(|c| c.matches('@').count()), Some(5));
    assert_eq!(requests[1].bcc.as_deref().map(|c| c.matches('@').count()), Some(35));
    // A request that carries only part of To keeps the full header text.
    for r in &requests[..2] {
        assert!(header(r, "X-Relay-Original-To").is_some_and(|v| v.contains("t59@example.org")), "{r:?}");
    }
    assert!(header(&requests[0], "X-Relay-Original-Cc").is_some(), "none of Cc is in the first request");
    assert!(header(&requests[1], "X-Relay-Original-Cc").is_none(), "all of Cc is in the second");
    assert_eq!(requests[1].bcc.as_deref().map(|c| c.split(", ").last()), Some(Some("hidden34@bcc.example")));
    assert!(requests[2..].iter().all(|r| r.to.contains('@') && !r.to.contains(',') && r.bcc.is_none()));
    assert_eq!(requests[7].to, "T0@EXAMPLE.org");

    // Only hidden recipients: one request each (Postmark needs a To), however many.
    let rcpt: Vec<String> = (0..120).map(|i| format!("r{i}@example.org")).collect();
    let raw = fixture("alternative.eml");
    let requests = super::to_postmark(&raw, &Envelope::new("", rcpt.clone()), &ConvertOptions::default()).unwrap();
    assert_eq!(requests.len(), 120);
    assert!(requests.iter().zip(&rcpt).all(|(r, a)| &r.to == a && r.bcc.is_none() && r.cc.is_none()));

    // Exactly 50 stays one request; duplicates are not counted.
    let mut fifty: Vec<String> = (0..50).map(|i| format!("t{i}@example.org")).collect();
    fifty.push("t0@EXAMPLE.org".into());
    let to: Vec<String> = (0..50).map(|i| format!("t{i}@example.org")).collect();
    let raw = format!("From: a@example.com\r\nTo: {}\r\n\r\nx\r\n", to.join(", "));
    let requests = super::to_postmark(raw.as_bytes(), &Envelope::new("", fifty), &ConvertOptions::default()).unwrap();
    assert_eq!(requests.len(), 1);
    assert!(header(&requests[0], "X-Relay-Original-To").is_none());

    let err = super::to_postmark(raw.as_bytes(), &Envelope::new("", Vec::<String>::new()), &ConvertOptions::default())
        .unwrap_err();
    assert_eq!(err, ConvertError::NoRecipients);
}

#[test]
fn a_display_name_is_kept_when_the_envelope_spells_the_address_in_another_case() {
    let raw = b"From: a@example.com\r\nTo: Ann Example <Ann@Example.org>\r\n\r\nx\r\n";
    let req = to_postmark(raw, &env("", &["ann@example.org"]), &ConvertOptions::default()).unwrap();
    assert_eq!(req.to, "Ann Example <ann@example.org>");
    assert_eq!(req.bcc, None);
    assert_eq!(header(&req, "X-Relay-Original-To"), None);
}

#[test]
fn headers_postmark_builds_are_not_copied() {
    let req = convert_fixture("alternative.eml", &env("", &["ann@example.org"]));
    for dropped in [
        "From",
        "To",
        "Cc",
        "Subject",
        "Reply-To",
        "Date",
        "MIME-Version",
        "Content-Type",
        "Received",
        "Return-Path",
        "DKIM-Signature",
    ] {
        assert_eq!(header(&req, dropped), None, "{dropped} must not be copied");
    }
}

#[test]
fn no_header_section_is_unparseable() {
    let err = to_postmark(b"", &env("a@example.com", &["b@example.org"]), &ConvertOptions::default()).unwrap_err();
    assert_eq!(err, ConvertError::Unparseable);
}

#[test]
fn request_serialises_with_postmark_keys() {
    let req = convert_fixture("related-inline.eml", &env("", &["ann@example.org", "x@example.net"]));
    let json = serde_json::to_value(&req).unwrap();
    assert_eq!(json["From"], "shop@example.com");
    assert_eq!(json["To"], "ann@example.org");
    assert_eq!(json["Bcc"], "x@example.net");
    assert_eq!(json["Attachments"][0]["ContentID"], "cid:logo@shop.example");
    assert_eq!(json["Attachments"][0]["Name"], "logo.png");
    assert!(json["Attachments"][1].get("ContentID").is_none());
    assert!(json.get("Cc").is_none());
}

#[test]
fn html_only_message_has_no_text_body() {
    let raw =
        b"From: a@example.com\r\nTo: ann@example.org\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hi</p>\r\n";
    let req = to_postmark(raw, &env("", &["ann@example.org"]), &ConvertOptions::default()).unwrap();
    assert_eq!(req.html_body.as_deref(), Some("<p>Hi</p>\r\n"));
    assert_eq!(req.text_body, None);
    assert!(req.attachments.is_empty());
}

#[test]
fn attachment_only_message_gets_the_empty_body_text_naming_its_files() {
    let raw = b"From: scanner@example.com\r\nTo: ann@example.org\r\nSubject: Scan\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"s\"\r\n\r\n--s\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--s--\r\n";
    let req = to_postmark(raw, &env("", &["ann@example.org"]), &ConvertOptions::default()).unwrap();
    assert_eq!(req.text_body, Some(DEFAULT_EMPTY_BODY_TEXT.replace("{attachments}", "scan.pdf")));
    assert_eq!(req.html_body, None);
    assert_eq!(req.attachments.len(), 1);
    assert_eq!(req.attachments[0].name, "scan.pdf");
    assert_eq!(decoded(&req.attachments[0]), b"%PDF-");
}

#[test]
fn a_footer_after_the_alternative_is_appended_to_the_text_body() {
    let raw = b"From: list@example.com\r\nTo: ann@example.org\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n\
--a\r\nContent-Type: text/plain\r\n\r\nHello\r\nthere\r\n--a\r\nContent-Type: text/html\r\n\r\n<p>Hello</p>\r\n--a--\r\n\
--m\r\nContent-Type: text/plain\r\nContent-Disposition: inline\r\n\r\n-- \r\nList footer\r\n--m--\r\n";
    let req = to_postmark(raw, &env("", &["ann@example.org"]), &ConvertOptions::default()).unwrap();
    assert_eq!(req.text_body.as_deref(), Some("Hello\r\nthere\r\n-- \r\nList footer"));
    assert_eq!(req.html_body.as_deref(), Some("<p>Hello</p>"));
    assert!(req.attachments.is_empty());
}

#[test]
fn a_named_text_part_is_an_attachment_not_a_body() {
    let raw = b"From: a@example.com\r\nTo: ann@example.org\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nSee notes.\r\n\
--m\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: inline; filename=\"notes.txt\"\r\n\r\nnote 1\r\n--m--\r\n";
    let req = to_postmark(raw, &env("", &["ann@example.org"]), &ConvertOptions::default()).unwrap();
    assert_eq!(req.text_body.as_deref(), Some("See notes."));
    assert_eq!(req.attachments.len(), 1);
    assert_eq!(req.attachments[0].name, "notes.txt");
    assert_eq!(decoded(&req.attachments[0]), b"note 1");
}

#[test]
fn control_characters_in_decoded_control_headers_become_spaces() {
    let raw = b"From: a@example.com\r\nX-PM-Tag: =?UTF-8?Q?a=0D=0AX-Evil:_1?=\r\nX-PM-Metadata-k: =?UTF-8?Q?v=00w?=\r\n\r\nx\r\n";
    let req = to_postmark(raw, &env("", &["ann@example.org"]), &ConvertOptions::default()).unwrap();
    assert_eq!(req.tag.as_deref(), Some("a  X-Evil: 1"));
    assert_eq!(req.metadata["k"], "v w");
}

#[test]
fn control_headers_given_twice_keep_the_first() {
    let raw = b"From: a@example.com\r\nX-PM-Tag: first\r\nX-PM-Tag: second\r\nX-PM-Message-Stream: s1\r\n\
X-PM-Message-Stream: s2\r\nX-PM-Metadata-k: 1\r\nx-pm-metadata-k: 2\r\nX-PM-Track-Opens: false\r\n\r\nx\r\n";
    let req = to_postmark(raw, &env("", &["ann@example.org"]), &ConvertOptions::default()).unwrap();
    assert_eq!(req.tag.as_deref(), Some("first"));
    assert_eq!(req.message_stream.as_deref(), Some("s1"));
    assert_eq!(req.metadata.len(), 1);
    assert_eq!(req.metadata["k"], "1");
    assert_eq!(req.track_opens, Some(false));
    assert!(req.headers.is_empty());
}

/// Found by the property test `damaged_messages_never_panic_and_keep_the_envelope`
/// (tests/it/props_convert.rs, 2026-11-22): mail-parser reads `To: aaa@example.com>, …` as the
/// address `aaa@example.com>`, which matched the envelope by key and went to Postmark as
/// `"To": "aaa@example.com>"`, an address Postmark would refuse (or read as another mailbox).
#[test]
fn stray_angle_brackets_around_a_header_address_are_not_sent() {
    let raw = b"From: s@example.com\r\nTo: aaa@example.com>, <<ccc@example.com>\r\n\r\nx\r\n";
    let envelope = env("", &["aaa@example.com", "ccc@example.com"]);
    let req = to_postmark(raw, &envelope, &ConvertOptions::default()).unwrap();
    assert_eq!(req.to, "aaa@example.com, ccc@example.com");
    assert_eq!(req.bcc, None);
}

/// Found by the `convert` fuzz target (fuzz/fuzz_targets/convert.rs, 2026-11-22, minimised by
/// hand): a `message/rfc822` part whose inner message runs into the closing boundary, followed by
/// another part header block after it, trips a `debug_assert!` in mail-parser 0.11.9. A debug
/// build used to panic in `parse` (the session then answered `451` for ever); release builds
/// recover. Either way the result must be a conversion or `Unparseable`, never a panic.
#[test]
fn a_parser_panic_makes_the_message_unparseable() {
    let raw = b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
                Content-Type: message/rfc822\r\n\r\nX: y\r\n--b--\r\nContent-Type: message/rfc822\r\n\r\n\r\n--b--\r\n";
    match to_postmark(raw, &env("", &["ann@example.org"]), &ConvertOptions::default()) {
        Ok(_) | Err(ConvertError::Unparseable) => {}
        Err(e) => panic!("unexpected error {e}"),
    }
    let via = crate::envelope::Via::Smtp;
    match crate::validate::validate(raw, &env("", &["ann@example.org"]), via, &ConvertOptions::default()) {
        Ok(_) => {}
        Err(r) => assert_eq!((r.code, r.enhanced), (554, "5.6.0"), "{r}"),
    }
}

// ---- the messy corpus (tests/fixtures/messy/): what legacy senders really send ----------------

/// The request the API path makes of a message of the messy corpus, after the accept-time
/// repairs (as the relay stores it).
fn messy(name: &str, rcpt: &[&str]) -> Vec<SendEmailRequest> {
    let path = format!("{}/tests/fixtures/messy/{name}", env!("CARGO_MANIFEST_DIR"));
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let raw = crate::repair::end_headers(&raw).unwrap_or(raw);
    super::to_postmark(&raw, &env("app@example.com", rcpt), &ConvertOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn messy_one(name: &str) -> SendEmailRequest {
    let mut requests = messy(name, &["office@example.com"]);
    assert_eq!(requests.len(), 1, "{name}");
    requests.remove(0)
}

fn empty_body(names: &str) -> Option<String> {
    Some(DEFAULT_EMPTY_BODY_TEXT.replace("{attachments}", names))
}

fn attachment_list(req: &SendEmailRequest) -> Vec<(String, String)> {
    req.attachments.iter().map(|a| (a.name.clone(), a.content_type.clone())).collect()
}

#[test]
fn scanner_messages_get_a_text_naming_the_scan() {
    let req = messy_one("01-scan-to-email-pdf-only.eml");
    assert_eq!(req.text_body, empty_body("scan_0001.pdf"));
    assert_eq!(req.html_body, None);
    assert_eq!(attachment_list(&req), [("scan_0001.pdf".to_owned(), "application/pdf".to_owned())]);
    assert!(decoded(&req.attachments[0]).starts_with(b"%PDF-1.4"));

    let req = messy_one("02-scan-single-part-pdf.eml");
    assert_eq!(req.text_body, empty_body("doc.pdf"));
    assert_eq!(attachment_list(&req), [("doc.pdf".to_owned(), "application/pdf".to_owned())]);
}

#[test]
fn empty_and_blank_bodies_get_the_empty_body_text() {
    for name in [
        "03-empty-body.eml",
        "04-headers-only-no-separator.eml",
        "16-whitespace-only-text.eml",
        "19-alternative-both-empty.eml",
        "41-html-whitespace-only.eml",
        "42-only-blank-lines.eml",
        "53-empty-multipart.eml",
    ] {
        let req = messy_one(name);
        assert_eq!(req.text_body, empty_body("none"), "{name}");
        assert_eq!(req.html_body, None, "{name}");
        assert!(req.attachments.is_empty(), "{name}: {:?}", attachment_list(&req));
    }
}

#[test]
fn a_blank_text_alternative_leaves_the_html_alone() {
    let req = messy_one("17-whitespace-text-and-html.eml");
    assert_eq!(req.text_body, None);
    assert_eq!(req.html_body.as_deref(), Some("<p>Only the HTML says something.</p>"));
}

#[test]
fn a_body_without_a_blank_line_before_it_is_kept() {
    let req = messy_one("05-no-blank-line-before-body.eml");
    assert_eq!(
        req.text_body.as_deref(),
        Some("This line is the body but there is no blank line before it.\r\nSecond line.\r\n")
    );
    assert_eq!(req.subject.as_deref(), Some("no separator"));
    assert!(req.attachments.is_empty());
}

#[test]
fn invalid_content_types_mean_plain_text() {
    for (name, text) in [
        ("06-content-type-text-no-subtype.eml", "The body of a message whose Content-Type has no subtype.\r\n"),
        ("07-content-type-garbage.eml", "Body under an unparseable Content-Type.\r\n"),
        ("20-multipart-missing-boundary-param.eml", "This text sits in a multipart without a boundary.\r\n"),
        ("21-boundary-never-appears.eml", "The boundary is declared but never used.\r\n"),
        ("34-multipart-type-plain-body.eml", "no parts at all, just text\r\n"),
    ] {
        let req = messy_one(name);
        assert_eq!(req.text_body.as_deref(), Some(text), "{name}");
        assert!(req.attachments.is_empty(), "{name}: {:?}", attachment_list(&req));
    }
}

#[test]
fn readable_text_subtypes_become_the_body_data_ones_stay_attached() {
    let req = messy_one("08-text-x-unknown-only.eml");
    assert_eq!(req.text_body.as_deref(), Some("line 1 of the log\r\nline 2 of the log\r\n"));
    assert!(req.attachments.is_empty());
    let req = messy_one("40-text-enriched.eml");
    assert_eq!(req.text_body.as_deref(), Some("<bold>Hello</bold> in enriched text.\r\n"));

    let req = messy_one("36-calendar-only.eml");
    assert_eq!(req.text_body, empty_body("invite.ics"));
    assert_eq!(req.attachments[0].content_type, "text/calendar; method=REQUEST; charset=utf-8");
    let req = messy_one("54-vcard-only.eml");
    assert_eq!(req.text_body, empty_body("attachment-1.vcf"));
    let req = messy_one("15-text-csv-attachment-only.eml");
    assert_eq!(req.text_body, empty_body("report.csv"));
}

#[test]
fn digest_parts_are_messages_and_reports_keep_every_part() {
    let req = messy_one("11-multipart-digest.eml");
    assert_eq!(
        attachment_list(&req),
        [
            ("forwarded-message.eml".to_owned(), "message/rfc822".to_owned()),
            ("forwarded-message.eml".to_owned(), "message/rfc822".to_owned())
        ]
    );
    assert_eq!(decoded(&req.attachments[1]), b"From: b@example.org\r\nSubject: second\r\n\r\nsecond message");
    assert_eq!(req.text_body, empty_body("forwarded-message.eml, forwarded-message.eml"));

    let req = messy_one("12-multipart-report-bounce.eml");
    assert!(req.text_body.as_deref().unwrap().starts_with("This is the mail system."));
    assert_eq!(req.attachments.len(), 2);
    let req = messy_one("13-multipart-report-headers-only.eml");
    assert_eq!(req.attachments.len(), 2);
    assert!(req.text_body.as_deref().unwrap().starts_with("This message has no text of its own."));
}

#[test]
fn named_text_parts_stay_attachments_and_are_named_in_the_text() {
    let req = messy_one("14-inline-text-with-filename.eml");
    assert_eq!(req.text_body, empty_body("backup.log"));
    assert_eq!(decoded(&req.attachments[0]), b"backup finished: 42 files");
    let req = messy_one("52-text-plain-with-name-param-only.eml");
    assert_eq!(req.text_body, empty_body("notes.txt"));
}

#[test]
fn eight_bit_text_without_a_charset_is_read_as_windows_1252() {
    let req = messy_one("27-8bit-no-charset.eml");
    assert_eq!(req.text_body.as_deref(), Some("Grüße aus München\r\n"));
}

#[test]
fn an_unparseable_reply_to_is_kept_aside_instead_of_sinking_the_message() {
    let req = messy_one("48-invalid-reply-to.eml");
    assert_eq!(req.reply_to, None);
    assert_eq!(header(&req, "X-Relay-Original-Reply-To"), Some("not an address, also@@bad"));
}

#[test]
fn undisclosed_recipients_get_one_copy_each_addressed_to_them() {
    let req = messy_one("49-undisclosed-recipients.eml");
    assert_eq!(req.to, "office@example.com");
    assert_eq!(req.bcc, None);
    let requests = messy("49-undisclosed-recipients.eml", &["a@example.org", "b@example.org"]);
    let to: Vec<&str> = requests.iter().map(|r| r.to.as_str()).collect();
    assert_eq!(to, ["a@example.org", "b@example.org"]);
    assert!(requests.iter().all(|r| r.bcc.is_none() && r.text_body.as_deref() == Some("body\r\n")));
}

#[test]
fn only_cc_recipients_are_moved_to_to() {
    let raw = b"From: a@example.com\r\nCc: Ann <ann@example.org>\r\n\r\nhi\r\n";
    let req =
        to_postmark(raw, &env("", &["ann@example.org", "hidden@example.net"]), &ConvertOptions::default()).unwrap();
    assert_eq!(req.to, "Ann <ann@example.org>");
    assert_eq!(req.cc, None);
    assert_eq!(req.bcc.as_deref(), Some("hidden@example.net"));
}

#[test]
fn a_configured_empty_body_text_is_used_and_a_blank_one_is_not() {
    let raw = b"From: a@example.com\r\nTo: ann@example.org\r\n\r\n";
    let opts = ConvertOptions { empty_body_text: Some("Scan: {attachments}".into()), ..Default::default() };
    let req = to_postmark(raw, &env("", &["ann@example.org"]), &opts).unwrap();
    assert_eq!(req.text_body.as_deref(), Some("Scan: none"));
    let opts = ConvertOptions { empty_body_text: Some("  \n".into()), ..Default::default() };
    let req = to_postmark(raw, &env("", &["ann@example.org"]), &opts).unwrap();
    assert_eq!(req.text_body, empty_body("none"));
}

#[test]
fn internationalized_domains_in_headers_become_a_labels_and_match_the_envelope() {
    let raw = "From: Jürgen Müller <info@bücher.de>\r\nTo: Kunde <kunde@Bücher.de>\r\nSubject: grüße\r\n\r\nhallo\r\n";
    let req = to_postmark(
        raw.as_bytes(),
        &env("info@xn--bcher-kva.de", &["kunde@xn--bcher-kva.de"]),
        &ConvertOptions::default(),
    )
    .unwrap();
    assert_eq!(req.from, "Jürgen Müller <info@xn--bcher-kva.de>");
    assert_eq!(req.to, "Kunde <kunde@xn--bcher-kva.de>");
    assert_eq!(req.bcc, None);
    assert_eq!(req.subject.as_deref(), Some("grüße"));
}

#[test]
fn format_flowed_text_is_unwrapped_with_delsp() {
    // What Thunderbird and mutt (text_flowed) send.
    let raw =
        b"From: a@example.com\r\nTo: b@example.org\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\n\r\n\
        A paragraph that the client \r\nwrapped at 72 columns.\r\n\r\n> quoted \r\n> reply\r\n-- \r\nsig\r\n";
    let req = to_postmark(raw, &env("", &["b@example.org"]), &ConvertOptions::default()).unwrap();
    assert_eq!(
        req.text_body.as_deref(),
        Some("A paragraph that the client wrapped at 72 columns.\r\n\r\n> quoted reply\r\n-- \r\nsig\r\n")
    );
    let raw = b"From: a@example.com\r\nTo: b@example.org\r\nContent-Type: text/plain; format=Flowed; DelSp=Yes\r\n\r\n\
        Donaudampf \r\nschiff\r\n";
    let req = to_postmark(raw, &env("", &["b@example.org"]), &ConvertOptions::default()).unwrap();
    assert_eq!(req.text_body.as_deref(), Some("Donaudampfschiff\r\n"));
    // Without format=flowed a trailing space is just a space.
    let raw = b"From: a@example.com\r\nTo: b@example.org\r\n\r\nkept \r\nas is\r\n";
    let req = to_postmark(raw, &env("", &["b@example.org"]), &ConvertOptions::default()).unwrap();
    assert_eq!(req.text_body.as_deref(), Some("kept \r\nas is\r\n"));
}

#[test]
fn measuring_a_thousand_hidden_recipients_makes_a_copy_per_group_not_a_thousand() {
    let raw = fixture("alternative.eml");
    let mut rcpt: Vec<String> = (0..999).map(|i| format!("r{i}@example.org")).collect();
    rcpt.push("the-longest-address-of-all@example.org".into());
    let envelope = Envelope::new("", rcpt);
    let message = parse(&raw).unwrap();
    let measured = measure(&message, &envelope, &ConvertOptions::default()).unwrap();
    // One per group of 50, the group's longest address.
    assert_eq!(measured.len(), 20);
    assert_eq!(measured[19].request.to, "the-longest-address-of-all@example.org");
    for (m, group) in measured.iter().zip(envelope.rcpt_to.chunks(50)) {
        assert_eq!(m.request.to.len(), group.iter().map(String::len).max().unwrap());
    }
    assert_eq!(super::to_postmark(&raw, &envelope, &ConvertOptions::default()).unwrap().len(), 1000);
}
