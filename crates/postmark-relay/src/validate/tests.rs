use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/mime/{name}", env!("CARGO_MANIFEST_DIR"));
    let lf = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut crlf = Vec::with_capacity(lf.len() + lf.len() / 20);
    for &b in &lf {
        if b == b'\n' {
            crlf.push(b'\r');
        }
        crlf.push(b);
    }
    crlf
}

fn env(from: &str, to: &[&str]) -> Envelope {
    Envelope::new(from, to.iter().copied())
}

fn opts() -> ConvertOptions {
    ConvertOptions::default()
}

/// The refusal of `raw`, the same whether the requests are measured or built.
fn rejected(raw: &[u8], envelope: &Envelope, via: Via) -> Rejection {
    let refusal = validate(raw, envelope, via, &opts()).expect_err("the message must be refused");
    let built = validate_and_convert(raw, envelope, via, &opts()).expect_err("refused when built too");
    assert_eq!(refusal, built);
    refusal
}

const BOTH: [Via; 2] = [Via::Api, Via::Smtp];

#[test]
fn a_good_message_passes_and_the_api_path_measures_the_request_exactly() {
    let raw = fixture("related-inline.eml");
    let envelope = env("bounces@example.com", &["ann@example.org"]);
    let accepted = validate(&raw, &envelope, Via::Api, &opts()).unwrap();
    let requests = crate::convert::to_postmark(&raw, &envelope, &opts()).unwrap();
    let [request] = requests.as_slice() else { panic!("one request") };
    assert!(!request.attachments.is_empty());
    assert_eq!(accepted.json_len, Some(serde_json::to_vec(request).unwrap().len()));
    assert_eq!(accepted.repaired, None);

    let accepted = validate(&raw, &envelope, Via::Smtp, &opts()).unwrap();
    assert_eq!(accepted.json_len, None);
    assert_eq!(accepted.repaired, None);
}

#[test]
fn the_stream_is_decided_once_from_the_header_else_the_default_on_both_paths() {
    let raw = fixture("x-pm-headers.eml");
    let with_default = ConvertOptions { message_stream: Some("outbound".into()), ..opts() };
    for via in BOTH {
        let accepted = validate(&raw, &env("", &["ann@example.org"]), via, &with_default).unwrap();
        assert_eq!(accepted.routing.stream.as_deref(), Some("broadcasts"));
        // An encoded header means the same stream on both paths.
        let encoded = String::from_utf8(raw.clone())
            .unwrap()
            .replace("X-PM-Message-Stream: broadcasts", "X-PM-Message-Stream: =?UTF-8?Q?broadcasts?=");
        let accepted = validate(encoded.as_bytes(), &env("", &["ann@example.org"]), via, &opts()).unwrap();
        assert_eq!(accepted.routing.stream.as_deref(), Some("broadcasts"));
        let accepted = validate(&fixture("alternative.eml"), &env("", &["ann@example.org"]), via, &opts()).unwrap();
        assert_eq!(accepted.routing.stream, None);
        let accepted =
            validate(&fixture("alternative.eml"), &env("", &["ann@example.org"]), via, &with_default).unwrap();
        assert_eq!(accepted.routing.stream.as_deref(), Some("outbound"));
    }
}

#[test]
fn no_usable_sender_is_refused_on_both_paths() {
    for via in BOTH {
        let r = rejected(&fixture("no-from.eml"), &env("", &["ann@example.org"]), via);
        assert_eq!((r.code, r.enhanced), (550, "5.1.7"));
        assert!(r.text.contains("no usable sender"), "{r}");
    }
    // An envelope sender alone is enough.
    for via in BOTH {
        validate(&fixture("no-from.eml"), &env("app@example.com", &["ann@example.org"]), via, &opts()).unwrap();
    }
}

#[test]
fn more_than_fifty_recipients_are_accepted_on_both_paths() {
    // The session's max_recipients bounds a transaction; delivery splits it for Postmark.
    let raw = fixture("alternative.eml");
    let rcpt: Vec<String> = (0..1000).map(|i| format!("r{i}@example.org")).collect();
    for via in BOTH {
        validate(&raw, &Envelope::new("a@example.com", rcpt.clone()), via, &opts()).unwrap();
    }
}

#[test]
fn no_recipient_is_refused() {
    let r = rejected(&fixture("alternative.eml"), &env("a@example.com", &[]), Via::Smtp);
    assert_eq!((r.code, r.enhanced), (554, "5.5.0"));
}

#[test]
fn forbidden_extension_in_content_disposition_filename_is_refused() {
    for via in BOTH {
        let r = rejected(&fixture("forbidden-attachment.eml"), &env("", &["ann@example.org"]), via);
        assert_eq!((r.code, r.enhanced), (554, "5.6.1"));
        assert!(r.text.contains(".exe"), "{r}");
    }
}

#[test]
fn forbidden_extension_in_content_type_name_is_refused() {
    // The disposition says cleanup.txt but the Content-Type name (an encoded word) says .bat.
    for via in BOTH {
        let r = rejected(&fixture("forbidden-ct-name.eml"), &env("", &["ann@example.org"]), via);
        assert!(r.text.contains(".bat"), "{r}");
    }
}

#[test]
fn allowed_attachments_pass() {
    for via in BOTH {
        validate(&fixture("filenames.eml"), &env("", &["ann@example.org"]), via, &opts()).unwrap();
        validate(&fixture("forwarded.eml"), &env("", &["ann@example.org"]), via, &opts()).unwrap();
    }
}

/// A message whose 8-bit `text/csv` attachment holds about `bytes` bytes: the MIME stays that
/// size, the JSON grows by a third (base64).
fn with_attachment(bytes: usize) -> Vec<u8> {
    let mut raw = b"From: a@example.com\r\nTo: ann@example.org\r\nSubject: big\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nbig file\r\n\
--b\r\nContent-Type: text/csv; name=\"big.csv\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        .to_vec();
    let line = [b"\xe4;\xf6;\xfc;".as_slice(), &[b'x'; 70]].concat();
    let end = raw.len() + bytes;
    while raw.len() < end {
        raw.extend_from_slice(&line);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"--b--\r\n");
    raw
}

#[test]
fn over_ten_megabytes_of_json_is_refused_on_the_api_path_only() {
    // 7.6 MB of MIME (under the SMTP SIZE limit) is about 10.1 MB as JSON.
    let raw = with_attachment(7_600_000);
    assert!(raw.len() < MAX_MESSAGE_BYTES);
    let envelope = env("", &["ann@example.org"]);
    let r = rejected(&raw, &envelope, Via::Api);
    assert_eq!((r.code, r.enhanced), (552, "5.3.4"));
    assert!(r.text.contains("10 MB"), "{r}");
    validate(&raw, &envelope, Via::Smtp, &opts()).unwrap();

    // 7.45 MB (about 9.9 MB as JSON) passes, and the reported size is exact.
    let raw = with_attachment(7_450_000);
    let accepted = validate(&raw, &envelope, Via::Api, &opts()).unwrap();
    let json_len = accepted.json_len.unwrap();
    assert!(json_len > 9_900_000 && json_len <= MAX_MESSAGE_BYTES, "{json_len}");
    let request = &crate::convert::to_postmark(&raw, &envelope, &opts()).unwrap()[0];
    assert_eq!(json_len, serde_json::to_vec(request).unwrap().len());
    assert_eq!(request.attachments[0].name, "big.csv");
}

#[test]
fn a_body_over_five_megabytes_is_refused_on_the_api_path() {
    let mut raw = b"From: a@example.com\r\nTo: ann@example.org\r\n\r\n".to_vec();
    let line = [b'x'; 998];
    while raw.len() < MAX_BODY_BYTES + 2000 {
        raw.extend_from_slice(&line);
        raw.extend_from_slice(b"\r\n");
    }
    let envelope = env("", &["ann@example.org"]);
    let r = rejected(&raw, &envelope, Via::Api);
    assert_eq!((r.code, r.enhanced), (552, "5.3.4"));
    assert!(r.text.starts_with("TextBody is"), "{r}");
    validate(&raw, &envelope, Via::Smtp, &opts()).unwrap();
}

#[test]
fn control_header_values_postmark_cannot_take_are_refused_on_both_paths() {
    let envelope = env("", &["ann@example.org"]);
    let cases: Vec<(String, &str)> = vec![
        ("X-PM-TrackOpens: sometimes\r\n".into(), "X-PM-TrackOpens"),
        ("X-PM-TrackLinks: everywhere\r\n".into(), "X-PM-TrackLinks"),
        (format!("X-PM-Tag: {}\r\n", "t".repeat(1001)), "X-PM-Tag"),
        ((0..11).map(|i| format!("X-PM-Metadata-k{i}: v\r\n")).collect(), "X-PM-Metadata keys"),
        (format!("X-PM-Metadata-{}: v\r\n", "k".repeat(21)), "key is longer"),
        (format!("X-PM-Metadata-k: {}\r\n", "v".repeat(81)), "value is longer"),
    ];
    for (headers, needle) in cases {
        let raw = format!("From: a@example.com\r\nTo: ann@example.org\r\n{headers}\r\nbody\r\n");
        // Postmark's SMTP service reads the same headers and would bounce the message later.
        for via in BOTH {
            let r = rejected(raw.as_bytes(), &envelope, via);
            assert_eq!((r.code, r.enhanced), (554, "5.6.0"), "{needle}");
            assert!(r.text.contains(needle), "{needle}: {r}");
        }
    }
    // At the limits exactly, everything passes.
    let headers: String =
        (0..10).map(|i| format!("X-PM-Metadata-{}{i}: {}\r\n", "k".repeat(19), "v".repeat(80))).collect();
    let raw = format!("From: a@example.com\r\nX-PM-Tag: {}\r\n{headers}\r\nbody\r\n", "t".repeat(1000));
    validate(raw.as_bytes(), &envelope, Via::Api, &opts()).unwrap();
    validate(raw.as_bytes(), &envelope, Via::Smtp, &opts()).unwrap();
    assert_eq!(crate::convert::to_postmark(raw.as_bytes(), &envelope, &opts()).unwrap()[0].metadata.len(), 10);
}

#[test]
fn a_message_without_header_section_is_refused() {
    for via in BOTH {
        let r = rejected(b"", &env("a@example.com", &["ann@example.org"]), via);
        assert_eq!((r.code, r.enhanced), (554, "5.6.0"));
    }
}

#[test]
fn reply_lines_never_break() {
    let r = Rejection::new(Reject::Other, 554, "5.6.0", "two\r\nlines");
    assert_eq!(r.reply(), "554 5.6.0 two  lines\r\n");
}

#[test]
fn the_json_bound_is_never_below_the_json() {
    let envelope = env("", &["ann@example.org"]);
    let escapes: String = (0u8..0x20).map(char::from).chain("\"\\/ä€😀".chars()).collect();
    for raw in [fixture("filenames.eml"), fixture("related-inline.eml"), with_attachment(20_000)] {
        let mut request = crate::convert::to_postmark(&raw, &envelope, &opts()).unwrap().remove(0);
        let plain = serde_json::to_vec(&request).unwrap().len();
        assert!(json_bound(&request) >= plain, "{} < {plain}", json_bound(&request));
        // Every string at its worst: control characters, quotes, backslashes, non-ASCII.
        request.subject = Some(escapes.repeat(50));
        request.text_body = Some(escapes.repeat(500));
        request.tag = Some(escapes.clone());
        request.metadata.insert(escapes.clone(), escapes.clone());
        request.headers.push(postmark_server::types::MessageHeader { name: escapes.clone(), value: escapes.clone() });
        let json = serde_json::to_vec(&request).unwrap().len();
        assert!(json_bound(&request) >= json, "{} < {json}", json_bound(&request));
    }
    // When the bound comes near the limit (a 1.8 MB text: six times that is over 10 MB) the
    // requests are counted exactly, built or measured.
    let mut raw = b"From: a@example.com\r\nTo: ann@example.org\r\n\r\n".to_vec();
    while raw.len() < 1_800_000 {
        raw.extend_from_slice(&[b'x'; 98]);
        raw.extend_from_slice(b"\r\n");
    }
    let built = validate_and_convert(&raw, &envelope, Via::Api, &opts()).unwrap();
    assert!(built.json_len.is_some_and(|n| n > 1_800_000), "{:?}", built.json_len);
    assert_eq!(built.json_len, validate(&raw, &envelope, Via::Api, &opts()).unwrap().json_len);
    // Far from it they are not counted at all.
    let small = validate_and_convert(&fixture("filenames.eml"), &envelope, Via::Api, &opts()).unwrap();
    assert_eq!((small.json_len, small.requests.map(|r| r.len())), (None, Some(1)));
}

#[test]
fn json_len_matches_serde_json() {
    let raw = fixture("filenames.eml");
    let request = crate::convert::to_postmark(&raw, &env("", &["ann@example.org"]), &opts()).unwrap().remove(0);
    assert_eq!(json_len(&request), serde_json::to_vec(&request).unwrap().len());
}

#[test]
fn each_refusal_carries_its_metrics_reason() {
    let to = env("a@example.com", &["ann@example.org"]);
    let cases: [(Vec<u8>, Envelope, Reject); 5] = [
        (fixture("no-from.eml"), env("", &["ann@example.org"]), Reject::Sender),
        (fixture("forbidden-attachment.eml"), to.clone(), Reject::Attachment),
        (fixture("alternative.eml"), Envelope::new("a@example.com", Vec::<String>::new()), Reject::Recipients),
        (Vec::new(), to.clone(), Reject::Unparseable),
        (b"From: a@example.com\r\nX-PM-TrackOpens: maybe\r\n\r\nhi\r\n".to_vec(), to.clone(), Reject::Unrepresentable),
    ];
    for (raw, envelope, want) in cases {
        assert_eq!(rejected(&raw, &envelope, Via::Api).reason, want, "{}", rejected(&raw, &envelope, Via::Api));
    }
}
