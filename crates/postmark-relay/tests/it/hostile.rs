//! Hostile and broken input over real sockets (issue 7 §1): every reply checked, the relay
//! staying up, nothing spooled that was not acknowledged. The README's "Hostile input and faults"
//! table names these tests.

use std::time::{Duration, Instant};

use postmark_fake::http::FakeApi;
use postmark_fake::smtp::FakeSmtp;

use crate::binary::{Binary, RssSampler};
use crate::support::Smtp;
use crate::support::{TestRelay, wait_for};

const HEADER: &str = "From: s@example.com\r\nTo: r@example.com\r\nSubject: hostile\r\n\r\n";

/// A dry-run relay that writes the exact accepted bytes (`<id>.eml`), with `[limits]` from a
/// config file.
async fn relay_with_limits(limits: &str) -> (TestRelay, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(&config, format!("[limits]\n{limits}\n")).unwrap();
    let relay = TestRelay::start(&["--via", "smtp", "--dry-run", "--config", config.to_str().unwrap()], &[]).await;
    (relay, dir)
}

/// Messages the relay accepted (dry-run output), once the queue has drained.
async fn accepted(relay: &TestRelay) -> Vec<Vec<u8>> {
    wait_for("the queue to drain", Duration::from_secs(10), || relay.files("queue").is_empty().then_some(())).await;
    relay
        .files("dry-run")
        .iter()
        .filter(|n| n.ends_with(".eml"))
        .map(|n| std::fs::read(relay.spool.join("dry-run").join(n)).unwrap())
        .collect()
}

fn message(body: &[u8]) -> Vec<u8> {
    let mut m = HEADER.as_bytes().to_vec();
    m.extend_from_slice(body);
    m.extend_from_slice(b"\r\n.\r\n");
    m
}

#[tokio::test]
async fn command_lines_over_512_octets_get_500_5_5_2_and_the_session_goes_on() {
    let (mut relay, _dir) = relay_with_limits("").await;
    let mut c = Smtp::ready(relay.addr).await;
    // 512 octets with CRLF is the most RFC 5321 allows.
    let at_limit = format!("NOOP {}", "a".repeat(512 - 2 - 5));
    assert_eq!(at_limit.len() + 2, 512);
    assert!(c.command(&at_limit).await.starts_with("250 2.0.0"));
    let over = format!("NOOP {}", "a".repeat(512 - 2 - 5 + 1));
    assert_eq!(c.command(&over).await, "500 5.5.2 Line too long\r\n");
    // A long MAIL FROM is refused the same way, and does not start a transaction.
    let long_mail = format!("MAIL FROM:<{}@example.com>", "x".repeat(600));
    assert_eq!(c.command(&long_mail).await, "500 5.5.2 Line too long\r\n");
    assert!(c.command("RCPT TO:<r@example.com>").await.starts_with("503 5.5.1"));
    // Split across writes: the limit counts the whole line.
    c.send(b"NOOP ").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.send(&[b'b'; 300]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.send(&[b'b'; 300]).await;
    assert_eq!(c.reply().await, "500 5.5.2 Line too long\r\n", "refused before the line ends");
    c.send(b"bbb\r\n").await;
    assert!(c.command("NOOP").await.starts_with("250 2.0.0"), "the rest of the long line was skipped");
    // Still a working session.
    assert!(c.transaction("s@example.com", "r@example.com", &message(b"after long lines")).await.starts_with("250 "));
    assert_eq!(c.command("QUIT").await, "221 2.0.0 localhost Bye\r\n");
    assert_eq!(accepted(&relay).await.len(), 1);
    relay.stop().await;
}

#[tokio::test]
async fn text_lines_over_998_octets_are_accepted_and_re_encoded_for_the_smtp_path() {
    let (mut relay, _dir) = relay_with_limits("").await;
    let mut c = Smtp::ready(relay.addr).await;
    // A 5,000-octet line, and a stuffed dot in front of a 998-octet one.
    let mut body = vec![b'x'; 5000];
    body.extend_from_slice(b"\r\n..");
    body.extend(std::iter::repeat_n(b'z', 998));
    let sent = message(&body);
    let reply = c.transaction("s@example.com", "r@example.com", &sent).await;
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    let got = accepted(&relay).await;
    assert_eq!(got.len(), 1);
    let longest = got[0].split(|&b| b == b'\n').map(<[u8]>::len).max().unwrap();
    assert!(longest <= 1000, "a line of {longest} octets would go upstream");
    assert!(got[0].windows(43).any(|w| w == b"Content-Transfer-Encoding: quoted-printable"));
    // The content, decoded, is what the client sent (after dot-unstuffing).
    let mut original = HEADER.as_bytes().to_vec();
    original.extend_from_slice(&[b'x'; 5000]);
    original.extend_from_slice(b"\r\n.");
    original.extend(std::iter::repeat_n(b'z', 998));
    original.extend_from_slice(b"\r\n");
    let decode =
        |raw: &[u8]| mail_parser::MessageParser::default().parse(raw).unwrap().body_text(0).unwrap().into_owned();
    assert_eq!(decode(&got[0]), decode(&original));
    assert!(decode(&got[0]).starts_with(&"x".repeat(5000)));
    relay.stop().await;
}

#[tokio::test]
async fn text_lines_over_998_octets_reach_the_api_unchanged() {
    let fake = postmark_fake::http::FakeApi::start().await;
    let mut relay = TestRelay::with_api(&fake, "token", &[]).await;
    let html = format!("<html><body>{}</body></html>", "<td>caf\u{e9}</td>".repeat(1000));
    let raw = format!(
        "From: s@example.com\r\nTo: r@example.com\r\nSubject: minified\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{html}\r\n"
    );
    crate::support::send(relay.addr, "s@example.com", &["r@example.com"], raw.as_bytes()).await.expect("250");
    let emails = wait_for("the message at the fake", Duration::from_secs(10), || {
        let e = fake.emails();
        (!e.is_empty()).then_some(e)
    })
    .await;
    // The 14,000-octet line as sent (lettre's client ends the data with one more CRLF).
    let got = emails[0]["HtmlBody"].as_str().unwrap();
    assert!(got.trim_end_matches("\r\n") == html, "{} octets, not {}", got.len(), html.len());
    relay.stop().await;
}

/// 100 MB without a line end, first as a command line, then as one line of a message, against
/// the real binary: refused with `500 5.5.2` and `552 5.3.4`, and the relay's memory grows by
/// no more than the size limit.
#[tokio::test]
async fn a_100_mb_line_without_crlf_is_refused_and_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Binary::start(&dir.path().join("spool"), &["--via", "smtp", "--dry-run"], &[]).await;
    let mut c = Smtp::ready(relay.addr).await;
    assert!(c.command("NOOP").await.starts_with("250"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = relay.rss_kib();
    let sampler = RssSampler::start(relay.child.id());
    let chunk = vec![b'a'; 1 << 20];
    let started = Instant::now();

    // As a command line: refused after 512 octets, the rest skipped up to the LF.
    c.send(b"NOOP ").await;
    for _ in 0..100 {
        c.send(&chunk).await;
    }
    c.send(b"\r\n").await;
    assert_eq!(c.reply().await, "500 5.5.2 Line too long\r\n");
    assert!(c.command("NOOP").await.starts_with("250 2.0.0"));

    // As a line of a message: read to the final dot, kept nowhere, refused at the end.
    assert!(c.command("MAIL FROM:<s@example.com>").await.starts_with("250"));
    assert!(c.command("RCPT TO:<r@example.com>").await.starts_with("250"));
    assert!(c.command("DATA").await.starts_with("354"));
    c.send(HEADER.as_bytes()).await;
    for _ in 0..100 {
        c.send(&chunk).await;
    }
    c.send(b"\r\n.\r\n").await;
    // Over the size limit: the buffer grows to the 10 MB limit at most and is dropped there.
    assert_eq!(c.reply().await, "552 5.3.4 Message size exceeds fixed maximum message size of 10000000 bytes\r\n");
    assert!(c.command("NOOP").await.starts_with("250 2.0.0"), "the session goes on");
    let elapsed = started.elapsed();
    let peak = sampler.peak_kib();
    drop(sampler);
    let after = relay.rss_kib();
    println!(
        "100 MB line as a command, then 100 MB line in DATA, in {elapsed:?}: \
         VmRSS before {before} KiB, peak {peak} KiB, after {after} KiB"
    );
    assert!(peak < before + 14 * 1024, "RSS grew from {before} to {peak} KiB while reading 200 MB of long lines");
    assert!(crate::support::files(&dir.path().join("spool").join("queue")).is_empty());
}

#[tokio::test]
async fn binary_garbage_nul_bytes_and_invalid_utf8_get_5xx_and_the_relay_stays_up() {
    let (mut relay, _dir) = relay_with_limits("").await;
    let mut c = Smtp::ready(relay.addr).await;
    for (bytes, expected) in [
        (&b"\x00\x01\x02\x03\xff\xfe\r\n"[..], "500 5.5.1 "),
        (b"\x80\x81\x82 MAIL\r\n", "500 5.5.1 "),
        (b"NO\x00OP\r\n", "500 5.5.1 "),
        (b"\xc3\x28\xa0\xa1\r\n", "500 5.5.1 "),
        // Invalid UTF-8 in an address is refused, with or without SMTPUTF8 (smtp-proto would
        // have turned it into U+FFFD and the relay would have spooled an address nobody sent).
        (b"MAIL FROM:<\xff\xfe@example.com>\r\n", "501 5.1.7 "),
        (b"MAIL FROM:<\xff\xfe@example.com> SMTPUTF8\r\n", "501 5.1.7 "),
        (b"MAIL FROM:<s@example.com>\x00\r\n", "501 5.5.4 "),
        (b"MAIL FROM:<s@example.com> SMTPUTF8\r\n", "250 2.1.0 "),
        (b"RCPT TO:<\xff\xfe@example.com>\r\n", "501 5.1.3 "),
        (b"RCPT TO:<\xc3\x28@example.com>\r\n", "501 5.1.3 "),
        // Valid UTF-8 with SMTPUTF8, but Postmark takes no non-ASCII local part: refused, the
        // address named in UTF-8 (RFC 6531 allows it in a transaction begun with SMTPUTF8).
        (b"RCPT TO:<j\xc3\xbcrgen@example.com>\r\n", "553 5.6.7 Postmark cannot send to j\u{fc}rgen@example.com: "),
        (b"RSET\r\n", "250 2.0.0 "),
        (b"\r\n", "500 5.5.1 "),
        (b"\x1b[2J\x1b[H\x07\r\n", "500 5.5.1 "),
    ] {
        c.send(bytes).await;
        let reply = c.reply().await;
        assert!(reply.starts_with(expected), "{bytes:?} got {reply:?}");
        // Every reply is printable ASCII (or, naming an address sent with SMTPUTF8, printable
        // UTF-8) with an enhanced status code, whatever came in.
        assert!(
            reply.trim_end().chars().all(|c| (' '..'\u{7f}').contains(&c) || (!c.is_ascii() && !c.is_control())),
            "{reply:?}"
        );
        let enhanced = reply.split(' ').nth(1).unwrap_or_default();
        assert!(enhanced.split('.').count() == 3 && enhanced.starts_with(&reply[..1]), "{reply:?}");
    }
    // 4 KiB of random bytes with line ends sprinkled in: only complete replies, then a clean
    // transaction on a fresh connection (the garbage may have used up the error budget).
    let mut garbage = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for i in 0..4096 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage.push(if i % 97 == 96 { b'\n' } else { x as u8 });
    }
    c.send(&garbage).await;
    while let Some(reply) = c.try_reply().await {
        let code = &reply[..3];
        assert!(code.starts_with('5') || code.starts_with('2') || code == "421", "{reply:?}");
        if code == "421" {
            break;
        }
    }
    let mut c = Smtp::ready(relay.addr).await;
    let reply = c.transaction("s@example.com", "r@example.com", &message(b"still here")).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    assert_eq!(accepted(&relay).await.len(), 1);
    relay.stop().await;
}

#[tokio::test]
async fn unknown_commands_get_500_5_5_1_and_unsupported_ones_502_5_5_1() {
    let (mut relay, _dir) = relay_with_limits("").await;
    let mut c = Smtp::ready(relay.addr).await;
    for cmd in ["XYZZY", "GET / HTTP/1.1", "MAILFROM:<s@example.com>", "EHLOO x", "X"] {
        assert_eq!(c.command(cmd).await, "500 5.5.1 Command unrecognized\r\n", "{cmd}");
    }
    for cmd in ["EXPN staff", "BDAT 10 LAST", "ETRN example.com"] {
        assert!(c.command(cmd).await.starts_with("502 5.5.1 "), "{cmd}");
    }
    assert!(c.command("NOOP").await.starts_with("250 2.0.0"));
    relay.stop().await;
}

#[tokio::test]
async fn commands_out_of_sequence_get_503_5_5_1() {
    let (mut relay, _dir) = relay_with_limits("").await;
    let (mut c, greeting) = Smtp::connect(relay.addr).await;
    assert!(greeting.starts_with("220 "));
    assert!(c.command("MAIL FROM:<s@example.com>").await.starts_with("503 5.5.1 "), "MAIL before EHLO");
    assert!(c.command("EHLO client.example").await.starts_with("250"));
    assert!(c.command("RCPT TO:<r@example.com>").await.starts_with("503 5.5.1 "), "RCPT before MAIL");
    assert!(c.command("DATA").await.starts_with("503 5.5.1 "), "DATA before MAIL");
    assert!(c.command("MAIL FROM:<s@example.com>").await.starts_with("250 2.1.0"));
    assert!(c.command("MAIL FROM:<t@example.com>").await.starts_with("503 5.5.1 "), "a second MAIL");
    assert!(c.command("DATA").await.starts_with("503 5.5.1 "), "DATA before any RCPT");
    assert!(c.command("RCPT TO:<r@example.com>").await.starts_with("250 2.1.5"));
    assert!(c.command("RSET").await.starts_with("250"));
    assert!(c.command("DATA").await.starts_with("503 5.5.1 "), "DATA after RSET");
    // Pipelined out of order: each command answered in turn, nothing accepted.
    c.send(b"RCPT TO:<r@example.com>\r\nDATA\r\nMAIL FROM:<s@example.com>\r\nDATA\r\n").await;
    for expected in ["503 5.5.1 ", "503 5.5.1 ", "250 2.1.0 ", "503 5.5.1 "] {
        let reply = c.reply().await;
        assert!(reply.starts_with(expected), "{reply}");
    }
    assert!(accepted(&relay).await.is_empty());
    relay.stop().await;
}

#[tokio::test]
async fn bad_address_syntax_gets_501() {
    let (mut relay, _dir) = relay_with_limits("").await;
    let mut c = Smtp::ready(relay.addr).await;
    // The sender: 501 5.1.7 ("bad sender's mailbox address syntax", RFC 3463).
    for mail in ["MAIL FROM:<not an address>", "MAIL FROM:<a@b@c>", "MAIL FROM:<@>"] {
        let reply = c.command(mail).await;
        assert_eq!(reply, "501 5.1.7 Invalid sender address\r\n", "{mail}");
    }
    // A syntax error that may as well be in the parameters: the generic 501 5.5.4.
    let reply = c.command("MAIL FROM:<s@example.com").await;
    assert!(reply.starts_with("501 5.5.4 Syntax: MAIL FROM:"), "{reply}");
    assert!(c.command("MAIL FROM:<s@example.com>").await.starts_with("250"));
    // Recipients: 501 5.1.3 ("bad destination mailbox address syntax").
    for rcpt in ["RCPT TO:<>", "RCPT TO:<a b@example.com>", "RCPT TO:<r@example.com", "RCPT TO:r@@example.com"] {
        let reply = c.command(rcpt).await;
        assert!(reply.starts_with("501 5.1.3 "), "{rcpt}: {reply}");
    }
    // A bare local part is an address the relay could place with an alias or local_domain; with
    // neither, the reply says how to configure one.
    for rcpt in ["RCPT TO:<no-at-sign>", "RCPT TO:<postmaster>"] {
        let reply = c.command(rcpt).await;
        assert!(reply.starts_with("550 5.1.1 ") && reply.contains("[aliases]"), "{rcpt}: {reply}");
    }
    assert!(c.command("RCPT TO:<r@example.com>").await.starts_with("250"));
    relay.stop().await;
}

#[tokio::test]
async fn too_many_errors_get_421_4_7_0_and_the_connection_is_closed() {
    let (mut relay, _dir) = relay_with_limits("max_errors = 5").await;
    let mut c = Smtp::ready(relay.addr).await;
    for _ in 0..4 {
        assert!(c.command("BOGUS").await.starts_with("500 5.5.1 "));
    }
    // A good command in between does not reset the count.
    assert!(c.command("NOOP").await.starts_with("250"));
    c.send(b"BOGUS\r\n").await;
    assert!(c.reply().await.starts_with("500 5.5.1 "));
    assert_eq!(c.reply().await, "421 4.7.0 localhost Too many errors, closing\r\n");
    assert!(c.closed().await, "disconnected");
    // Others are not affected.
    let mut d = Smtp::ready(relay.addr).await;
    assert!(d.command("NOOP").await.starts_with("250"));
    relay.stop().await;
}

// ---- SMTP smuggling, both forward paths ------------------------------------------------------

/// The end-of-data look-alikes from SEC Consult's 2023 SMTP smuggling research and follow-ups.
/// Each goes inside one message, followed by a complete second transaction; only the real
/// `CRLF.CRLF` may end the message.
const SMUGGLING: &[(&str, &[u8])] = &[
    ("LF.LF", b"\n.\n"),
    ("LF.CRLF", b"\n.\r\n"),
    ("CRLF.LF", b"\r\n.\n"),
    ("CR.CR", b"\r.\r"),
    ("CR.LF", b"\r.\n"),
    ("CRLF.CR", b"\r\n.\r"),
    ("LF.CR", b"\n.\r"),
    ("CR.CRLF", b"\r.\r\n"),
    ("CRLF NUL.CRLF", b"\r\n\x00.\r\n"),
    ("CRLF.NUL CRLF", b"\r\n.\x00\r\n"),
    ("CRLF.CR CRLF", b"\r\n.\r\r\n"),
    ("CR CRLF.CR CRLF", b"\r\r\n.\r\r\n"),
];

const SMUGGLED: &[u8] = b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n\
From: evil@example.com\r\nTo: victim@example.com\r\nSubject: smuggled\r\n\r\nsmuggled body";

fn smuggling_message(separator: &[u8]) -> Vec<u8> {
    let mut m = b"From: s@example.com\r\nTo: r@example.com\r\nSubject: carrier\r\n\r\nfirst part".to_vec();
    m.extend_from_slice(separator);
    m.extend_from_slice(SMUGGLED);
    m.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
    m
}

/// Sends each payload in its own session and checks the client saw exactly one `250` for the
/// message and then the `221` for QUIT (no second transaction's `250`s).
/// What the relay stores of `data` sent after DATA: a dot that starts a line (at the start or
/// after CRLF) is removed, nothing else changes.
fn relay_unstuffed(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for (i, &b) in data.iter().enumerate() {
        if b == b'.' && (i == 0 || (i >= 2 && &data[i - 2..i] == b"\r\n")) {
            continue;
        }
        out.push(b);
    }
    out
}

/// What a strict upstream records of a stored message: mail-send stuffs every dot after a CR or
/// LF, the upstream removes only those after CRLF, so a dot after a bare CR or LF arrives doubled
/// (the one documented difference); everything else is byte for byte.
fn upstream_view(stored: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored.len());
    for (i, &b) in stored.iter().enumerate() {
        let bare = i >= 1 && (stored[i - 1] == b'\r' || (stored[i - 1] == b'\n' && (i < 2 || stored[i - 2] != b'\r')));
        if b == b'.' && bare {
            out.push(b'.');
        }
        out.push(b);
    }
    out
}

async fn send_smuggling_payloads(addr: std::net::SocketAddr) {
    for (name, separator) in SMUGGLING {
        let mut c = Smtp::ready(addr).await;
        let reply = c.transaction("s@example.com", "r@example.com", &smuggling_message(separator)).await;
        assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{name}: {reply}");
        let next = c.reply().await;
        assert_eq!(next, "221 2.0.0 localhost Bye\r\n", "{name}: the smuggled commands were answered");
        assert!(c.closed().await, "{name}");
    }
}

#[tokio::test]
async fn smtp_smuggling_payloads_stay_one_message_on_the_api_path() {
    let fake = FakeApi::start().await;
    let url = fake.url();
    let mut relay = TestRelay::start(&["--api-url", &url], &[("POSTMARK_SERVER_TOKEN", "t")]).await;
    send_smuggling_payloads(relay.addr).await;
    let emails = wait_for("every payload at Postmark", Duration::from_secs(20), || {
        let e = fake.emails();
        (e.len() >= SMUGGLING.len()).then_some(e)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.emails().len(), SMUGGLING.len(), "exactly one message per submission");
    for email in &emails {
        assert_eq!(email["Subject"], "carrier", "{email}");
        assert_eq!(email["To"], "r@example.com", "{email}");
        assert!(email.get("Bcc").is_none_or(|b| b.is_null()), "{email}");
        let text = email["TextBody"].as_str().unwrap();
        assert!(text.contains("MAIL FROM:<evil@example.com>") && text.contains("smuggled body"), "{email}");
    }
    relay.stop().await;
}

#[tokio::test]
async fn smtp_smuggling_payloads_stay_one_transaction_on_the_smtp_path() {
    let fake = FakeSmtp::builder().credentials("a", "s").start().await.unwrap();
    let mut relay =
        TestRelay::with_smtp(&fake, &[], &[("POSTMARK_SMTP_ACCESS_KEY", "a"), ("POSTMARK_SMTP_SECRET_KEY", "s")]).await;
    send_smuggling_payloads(relay.addr).await;
    let got = fake.wait_for_messages(SMUGGLING.len(), Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.messages().len(), SMUGGLING.len(), "exactly one upstream transaction per submission");
    for (t, (name, separator)) in got.iter().zip(SMUGGLING) {
        assert_eq!(t.mail_from, "s@example.com", "{name}");
        assert_eq!(t.rcpt_to, ["r@example.com"], "{name}");
        let sent = smuggling_message(separator);
        let data = &sent[..sent.len() - b".\r\nQUIT\r\n".len()];
        assert_eq!(
            String::from_utf8_lossy(&t.data),
            String::from_utf8_lossy(&upstream_view(&relay_unstuffed(data))),
            "{name}"
        );
    }
    relay.stop().await;
}

/// mail-send stuffs a dot after every CR or LF but not a dot at the very start of the message,
/// so a stored message whose first line is `.` would end the upstream DATA at once and the rest
/// would be read upstream as commands. The relay stuffs that first dot itself.
#[tokio::test]
async fn a_message_whose_first_line_is_a_dot_stays_one_transaction_on_the_smtp_path() {
    let fake = FakeSmtp::builder().credentials("a", "s").start().await.unwrap();
    let mut relay =
        TestRelay::with_smtp(&fake, &[], &[("POSTMARK_SMTP_ACCESS_KEY", "a"), ("POSTMARK_SMTP_SECRET_KEY", "s")]).await;
    for first_line in [&b".."[..], b".From: s@example.com"] {
        let mut data = first_line.to_vec();
        data.extend_from_slice(b"\r\n");
        data.extend_from_slice(SMUGGLED);
        data.extend_from_slice(b"\r\nFrom: s@example.com\r\nTo: r@example.com\r\n\r\nbody\r\n.\r\n");
        let mut c = Smtp::ready(relay.addr).await;
        let reply = c.transaction("s@example.com", "r@example.com", &data).await;
        assert!(reply.starts_with("250 "), "{reply}");
        let before = fake.messages().len();
        let got = fake.wait_for_messages(before + 1, Duration::from_secs(10)).await;
        let t = got.last().unwrap();
        assert_eq!(t.rcpt_to, ["r@example.com"]);
        // Byte for byte what the relay stored, leading dot included. A first line of only `.`
        // cannot be a header, so the relay starts the body there (a message without headers),
        // and Postmark needs a From: the envelope sender's is put in front.
        let stored = relay_unstuffed(&data[..data.len() - 3]);
        let stored = postmark_relay::repair::end_headers(&stored).unwrap_or(stored);
        let stored = if stored.starts_with(b"\r\n") {
            [b"From: s@example.com\r\n".as_slice(), &stored].concat()
        } else {
            stored
        };
        assert_eq!(String::from_utf8_lossy(&t.data), String::from_utf8_lossy(&upstream_view(&stored)));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = fake.messages();
    assert_eq!(all.len(), 2, "one upstream transaction per submission");
    assert!(all.iter().all(|t| t.rcpt_to == ["r@example.com"]), "nothing reached the victim");
    relay.stop().await;
}

// ---- slow clients ------------------------------------------------------------------------------

#[tokio::test]
async fn an_idle_client_gets_421_4_4_2_after_the_idle_timeout() {
    let (mut relay, _dir) = relay_with_limits("idle_timeout = \"1s\"").await;
    let mut c = Smtp::ready(relay.addr).await;
    let started = Instant::now();
    let reply = c.reply().await;
    let waited = started.elapsed();
    assert_eq!(reply, "421 4.4.2 localhost Idle timeout waiting for a command, closing\r\n");
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(5), "{waited:?}");
    assert!(c.closed().await);
    relay.stop().await;
}

#[tokio::test]
async fn a_command_trickled_byte_by_byte_gets_421_4_4_2_after_the_command_timeout() {
    let (mut relay, _dir) = relay_with_limits("idle_timeout = \"30s\"\ncommand_timeout = \"1s\"").await;
    let mut c = Smtp::ready(relay.addr).await;
    let started = Instant::now();
    // One byte every 200 ms: never idle for long, but the line never ends.
    for b in b"NOOP trickle trickle trickle".iter() {
        if !c.try_send(std::slice::from_ref(b)).await || started.elapsed() > Duration::from_secs(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reply = c.reply().await;
    let waited = started.elapsed();
    assert_eq!(reply, "421 4.4.2 localhost Timeout waiting for the end of the command, closing\r\n");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    relay.stop().await;
}

#[tokio::test]
async fn a_client_stalling_in_data_gets_421_4_4_2_and_nothing_is_spooled() {
    let (mut relay, _dir) = relay_with_limits("idle_timeout = \"30s\"\ndata_timeout = \"1s\"").await;
    let mut c = Smtp::ready(relay.addr).await;
    assert!(c.command("MAIL FROM:<s@example.com>").await.starts_with("250"));
    assert!(c.command("RCPT TO:<r@example.com>").await.starts_with("250"));
    assert!(c.command("DATA").await.starts_with("354"));
    c.send(HEADER.as_bytes()).await;
    c.send(b"half a message").await;
    let started = Instant::now();
    let reply = c.reply().await;
    assert_eq!(reply, "421 4.4.2 localhost Timeout waiting for message data, closing\r\n");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(c.closed().await);
    assert!(accepted(&relay).await.is_empty());
    assert!(relay.files("tmp").is_empty());
    relay.stop().await;
}

#[tokio::test]
async fn a_busy_session_is_closed_with_421_4_4_2_at_the_maximum_session_duration() {
    let (mut relay, _dir) = relay_with_limits("idle_timeout = \"30s\"\nmax_session_duration = \"2s\"").await;
    let mut c = Smtp::ready(relay.addr).await;
    let started = Instant::now();
    let mut answered = 0;
    let reply = loop {
        let reply = c.command("NOOP").await;
        if !reply.starts_with("250") {
            break reply;
        }
        answered += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(started.elapsed() < Duration::from_secs(6), "never cut off");
    };
    assert_eq!(reply, "421 4.4.2 localhost Session time limit reached, closing\r\n");
    assert!(answered >= 5, "busy until the limit ({answered} NOOPs)");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    relay.stop().await;
}

// ---- floods --------------------------------------------------------------------------------

#[tokio::test]
async fn connections_over_the_limit_get_421_4_7_0_at_once() {
    let (mut relay, _dir) = relay_with_limits("max_connections = 3").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(Smtp::ready(relay.addr).await);
    }
    for _ in 0..20 {
        let started = Instant::now();
        let (mut c, reply) = Smtp::connect(relay.addr).await;
        assert_eq!(reply, "421 4.7.0 localhost Too many connections, try again later\r\n");
        assert!(started.elapsed() < Duration::from_secs(1), "at once: {:?}", started.elapsed());
        assert!(c.closed().await);
    }
    // The held sessions still work, and a freed slot is usable again.
    assert!(held[0].command("QUIT").await.starts_with("221"));
    drop(held.remove(0));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = Smtp::ready(relay.addr).await;
    assert!(again.command("NOOP").await.starts_with("250"));
    relay.stop().await;
}

/// 1,000 connections in four waves of 250 against the real binary with `--max-connections 200`:
/// in each wave 200 are held mid-command and 50 are refused, then all are dropped. Memory must not
/// grow from wave to wave, and the peak is bounded per session.
#[tokio::test]
async fn memory_stays_flat_while_1000_connections_are_opened_and_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let relay =
        Binary::start(&dir.path().join("spool"), &["--via", "smtp", "--dry-run", "--max-connections", "200"], &[])
            .await;
    // Warm up (first connection, first transaction) before the baseline.
    let mut w = Smtp::ready(relay.addr).await;
    assert!(w.transaction("s@example.com", "r@example.com", &message(b"warm-up")).await.starts_with("250"));
    drop(w);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = relay.rss_kib();
    let (mut peaks, mut after_wave) = (Vec::new(), Vec::new());
    let (mut total_held, mut total_refused) = (0, 0);
    for wave in 0..4 {
        let sampler = RssSampler::start(relay.child.id());
        let mut conns = Vec::new();
        for _ in 0..250 {
            conns.push(tokio::net::TcpStream::connect(relay.addr).await.unwrap());
        }
        let mut held = Vec::new();
        let mut refused = 0;
        for stream in conns {
            let (r, mut w) = stream.into_split();
            let mut r = tokio::io::BufReader::new(r);
            let mut line = String::new();
            tokio::time::timeout(Duration::from_secs(20), tokio::io::AsyncBufReadExt::read_line(&mut r, &mut line))
                .await
                .expect("first line in time")
                .unwrap();
            if line.starts_with("220 ") {
                // Hold it with a transaction open and half a command sent.
                tokio::io::AsyncWriteExt::write_all(
                    &mut w,
                    b"EHLO flood\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<r@exa",
                )
                .await
                .unwrap();
                held.push((r, w));
            } else {
                assert!(line.starts_with("421 4.7.0 "), "{line}");
                refused += 1;
            }
        }
        assert_eq!(held.len(), 200, "wave {wave}");
        assert_eq!(refused, 50, "wave {wave}");
        total_held += held.len();
        total_refused += refused;
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(held);
        // The relay notices the closed connections and frees their sessions.
        tokio::time::sleep(Duration::from_millis(500)).await;
        peaks.push(sampler.peak_kib());
        after_wave.push(relay.rss_kib());
    }
    // Still serving normally.
    let mut c = Smtp::ready(relay.addr).await;
    assert!(c.transaction("s@example.com", "r@example.com", &message(b"after the flood")).await.starts_with("250"));
    let after = relay.rss_kib();
    let peak = peaks.iter().copied().max().unwrap_or_default();
    println!(
        "flood: {} connections in 4 waves ({total_held} held, 200 at a time; {total_refused} refused with 421 4.7.0); \
         VmRSS before {before} KiB, peak {peak} KiB (per wave {peaks:?}), after each wave {after_wave:?} KiB, \
         at the end {after} KiB; about {} KiB per held session",
        total_held + total_refused,
        (peaks[0].saturating_sub(before)) / 200
    );
    // The allocator keeps freed memory for reuse, so the test compares waves: sessions that
    // leaked even 15 KiB each would add 3 MiB per wave.
    for w in 1..4 {
        assert!(
            peaks[w] < peaks[..w].iter().max().unwrap() + 3 * 1024,
            "wave {w} peaked at {} KiB, above the earlier waves {peaks:?}",
            peaks[w]
        );
    }
    assert!(peak < before + 20 * 1024, "peak {peak} KiB vs {before} KiB before: over 100 KiB per session");
}
