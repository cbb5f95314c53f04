//! "250 ⇒ Postmark accepts" (issue 11): every message the relay acknowledges becomes what
//! Postmark takes, and every other message is refused before `250` with a 5xx and a reason.
//!
//! Each message goes through a real in-memory SMTP session (the public [`Session`] with a spool in
//! a temporary directory), once for each path. For each `250`, the spooled message is checked the
//! way Postmark would see it, with the strict model of `postmark-fake`:
//!
//! * API path: the requests delivery would send (converted from the spooled bytes, with the
//!   stream decided at accept time) must pass `postmark_fake::rules::validate` for `/email`;
//! * SMTP path: the spooled bytes must not be an `SMTPApiError` bounce
//!   (`postmark_fake::rules::check_mime` with the spooled envelope).
//!
//! Any other reply to the message must be a 5xx with a reason (never a 4xx: the message would
//! come back, and never silence).
//!
//! The messages: the messy corpus in `tests/fixtures/messy/` and the MIME fixtures, each with a
//! recipient named in its headers and with two hidden ones; and generated messy MIME (broken and
//! missing types, blank and missing bodies, digests, reports, nested multiparts without text,
//! bad boundaries, odd names, control headers, bare LF).

use std::sync::Arc;

use postmark_fake::rules::{self, Endpoint, Rules};
use postmark_relay::convert::{ConvertOptions, to_postmark};
use postmark_relay::delivery::handoff::Queued;
use postmark_relay::session::{Acceptor, Session, SessionConfig};
use postmark_relay::shutdown::Shutdown;
use postmark_relay::spool::{Spool, StoredMessage};
use postmark_relay::{Envelope, Via};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

thread_local! {
    static RT: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
}

/// What became of one submitted message.
#[derive(Debug)]
enum Fate {
    /// `250`, and what the spool holds.
    Acknowledged(StoredMessage),
    /// Any other final reply (of `RCPT` when every recipient was refused, else of `DATA`).
    Refused(String),
}

/// Submits `raw` (unstuffed message bytes) with `envelope` through a fresh session validating for
/// `via`.
fn submit(raw: &[u8], envelope: &Envelope, via: Via) -> Fate {
    // On /dev/shm when there is one: fsync costs nothing there, and the properties are not about
    // the disk.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("temp dir");
    let spool = Arc::new(Spool::open(dir.path()).expect("spool"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Queued>();
    let acceptor = Arc::new(Acceptor::new(Arc::clone(&spool), via, ConvertOptions::default(), tx).expect("acceptor"));
    let shutdown = Shutdown::new();
    let (client, server) = tokio::io::duplex(1024 * 1024);
    let session =
        Session::new(server, Arc::new(SessionConfig::default()), Default::default(), acceptor, shutdown.signal());
    let fate = RT.with(|rt| {
        rt.block_on(async {
            let run = tokio::spawn(session.run());
            let (r, mut w) = tokio::io::split(client);
            let mut r = BufReader::new(r);
            let greeting = read_reply(&mut r).await;
            assert!(greeting.starts_with("220 "), "{greeting}");
            w.write_all(b"EHLO client.test\r\n").await.unwrap();
            assert!(read_reply(&mut r).await.starts_with("250"));
            w.write_all(format!("MAIL FROM:<{}> SMTPUTF8\r\n", envelope.mail_from).as_bytes()).await.unwrap();
            let mail = read_reply(&mut r).await;
            if !mail.starts_with("250") {
                return Err(mail);
            }
            let mut last = String::new();
            let mut accepted = 0;
            for rcpt in &envelope.rcpt_to {
                w.write_all(format!("RCPT TO:<{rcpt}>\r\n").as_bytes()).await.unwrap();
                last = read_reply(&mut r).await;
                accepted += usize::from(last.starts_with("250"));
            }
            if accepted == 0 {
                return Err(last);
            }
            w.write_all(b"DATA\r\n").await.unwrap();
            assert!(read_reply(&mut r).await.starts_with("354"));
            w.write_all(&stuffed(raw)).await.unwrap();
            let answer = read_reply(&mut r).await;
            w.write_all(b"QUIT\r\n").await.unwrap();
            let _ = read_reply(&mut r).await;
            run.await.expect("session task").expect("session");
            Ok(answer)
        })
    });
    drop(shutdown);
    match fate {
        Ok(answer) if answer.starts_with("250 ") => {
            let queued = rx.try_recv().expect("announced to the worker");
            assert!(rx.try_recv().is_err(), "one message: {answer}");
            match queued.fresh {
                // Handed to the worker in memory, and in the journal only: as delivery gets it,
                // with the requests it then sends as they are.
                Some(fresh) => {
                    if let Some(requests) = &fresh.requests {
                        let opts =
                            ConvertOptions { message_stream: fresh.message.stream(), ..ConvertOptions::default() };
                        let again = to_postmark(&fresh.message.raw, &fresh.message.header.envelope, &opts);
                        assert_eq!(Some(requests), again.as_ref().ok(), "built at accept as delivery would build it");
                    }
                    Fate::Acknowledged(fresh.message)
                }
                None => Fate::Acknowledged(spool.load(&queued.id).expect("spooled message")),
            }
        }
        Ok(answer) | Err(answer) => Fate::Refused(answer),
    }
}

/// One SMTP reply, all its lines.
async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).await.expect("reply");
        all.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return all;
        }
    }
}

/// The DATA bytes for `raw`: a CRLF added when it does not end in one, leading dots doubled,
/// the final dot line.
fn stuffed(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 16);
    let mut at_line_start = true;
    for &b in raw {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Checks the invariant for one submission; returns whether it was acknowledged.
fn check(raw: &[u8], envelope: &Envelope, via: Via) -> Result<bool, String> {
    let what = || format!("{via} path, envelope {envelope:?}, message:\n{}", String::from_utf8_lossy(raw));
    match submit(raw, envelope, via) {
        Fate::Acknowledged(stored) => {
            postmark_accepts(&stored, via)
                .map_err(|e| format!("acknowledged, but Postmark refuses it: {e}\n{}", what()))?;
            Ok(true)
        }
        Fate::Refused(reply) => {
            let code = reply.get(..3).unwrap_or_default();
            let text = reply.get(4..).unwrap_or_default().trim();
            if code.starts_with('5') && text.len() > 6 {
                Ok(false)
            } else {
                Err(format!("refused without a 5xx and a reason: {reply:?}\n{}", what()))
            }
        }
    }
}

/// Whether Postmark takes the spooled message on `via`, per the fake's rules.
fn postmark_accepts(stored: &StoredMessage, via: Via) -> Result<(), String> {
    let envelope = &stored.header.envelope;
    match via {
        Via::Api => {
            let opts = ConvertOptions { message_stream: stored.stream(), ..ConvertOptions::default() };
            let requests =
                to_postmark(&stored.raw, envelope, &opts).map_err(|e| format!("delivery cannot convert: {e}"))?;
            for request in requests {
                let json = serde_json::to_value(&request).expect("request as JSON");
                rules::validate(Endpoint::Email, &json, &Rules::default())
                    .map_err(|r| format!("ErrorCode {}: {} in {json:#}", r.error_code, r.message))?;
                rules::validate(Endpoint::Batch, &json, &Rules::default())
                    .map_err(|r| format!("in a batch, ErrorCode {}: {}", r.error_code, r.message))?;
            }
            Ok(())
        }
        Via::Smtp => rules::check_mime(&stored.raw, &envelope.rcpt_to, &Rules::default())
            .map_err(|r| format!("SMTPApiError {}: {}", r.error_code, r.message)),
    }
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["messy", "mime"] {
        let path = format!("{}/tests/fixtures/{dir}", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<_> = std::fs::read_dir(&path).expect(&path).map(|e| e.expect("entry").path()).collect();
        names.sort();
        for file in names {
            let mut raw = std::fs::read(&file).expect("fixture");
            if dir == "mime" && file.file_name().is_some_and(|n| n != "bare-lf.eml") {
                // The MIME fixtures are stored with LF line ends; they arrive with CRLF.
                raw = String::from_utf8_lossy(&raw).replace("\r\n", "\n").replace('\n', "\r\n").into_bytes();
            }
            out.push((format!("{dir}/{}", file.file_name().unwrap().to_string_lossy()), raw));
        }
    }
    out
}

#[test]
fn every_acknowledged_message_of_the_messy_corpus_is_one_postmark_accepts() {
    let envelopes = [
        Envelope::new("app@example.com", ["office@example.com"]),
        Envelope::new("app@example.com", ["hidden-one@example.org", "hidden-two@example.net"]),
    ];
    let mut failures = Vec::new();
    let mut refused = std::collections::BTreeSet::new();
    let (mut messages, mut submissions, mut acknowledged) = (0, 0, 0);
    for (name, raw) in corpus() {
        messages += 1;
        for via in [Via::Api, Via::Smtp] {
            for envelope in &envelopes {
                submissions += 1;
                match check(&raw, envelope, via) {
                    Ok(true) => acknowledged += 1,
                    Ok(false) => {
                        refused.insert(format!("{name} ({via})"));
                    }
                    Err(e) => failures.push(format!("{name}: {e}")),
                }
            }
        }
    }
    println!("refused: {}", refused.into_iter().collect::<Vec<_>>().join(", "));
    println!(
        "messy corpus: {messages} messages, {submissions} submissions (2 paths x 2 envelopes), \
         {acknowledged} acknowledged, {} of them accepted by the fake, {} refused with a 5xx",
        acknowledged,
        submissions - acknowledged - failures.len(),
    );
    assert!(failures.is_empty(), "{} failures:\n\n{}", failures.len(), failures.join("\n\n"));
    // The corpus is mostly mail that should go through: most submissions are acknowledged.
    assert!(acknowledged * 10 >= submissions * 8, "{acknowledged} of {submissions}");
}

#[test]
fn the_scanner_message_is_acknowledged_and_sent_with_a_text_naming_the_scan_on_both_paths() {
    let raw =
        std::fs::read(format!("{}/tests/fixtures/messy/01-scan-to-email-pdf-only.eml", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
    let envelope = Envelope::new("scanner@example.com", ["office@example.com"]);
    for via in [Via::Api, Via::Smtp] {
        let Fate::Acknowledged(stored) = submit(&raw, &envelope, via) else { panic!("{via}: not acknowledged") };
        postmark_accepts(&stored, via).unwrap();
        let text = match via {
            Via::Api => to_postmark(&stored.raw, &envelope, &ConvertOptions::default()).unwrap()[0].text_body.clone(),
            Via::Smtp => {
                postmark_relay::convert::parse(&stored.raw).and_then(|m| m.body_text(0).map(|t| t.into_owned()))
            }
        };
        let text = text.unwrap();
        assert!(text.contains("scan_0001.pdf"), "{via}: {text}");
    }
}

// ---- generated messy MIME --------------------------------------------------------------------

/// One leaf part of a generated message.
#[derive(Debug, Clone)]
enum Leaf {
    Text { subtype: &'static str, body: String, named: bool, attachment: bool },
    NoType(String),
    BadType(&'static str, String),
    Binary { ctype: &'static str, name: Option<String>, base64: bool },
    Message,
}

fn leaf() -> impl Strategy<Value = Leaf> {
    let body = prop_oneof![
        Just(String::new()),
        Just("   \r\n\t\r\n".to_owned()),
        "[a-zA-Z0-9 .,]{1,40}",
        Just("Grüße ünd ümlauts".to_owned()),
    ];
    prop_oneof![
        (
            prop_oneof![Just("plain"), Just("html"), Just("x-log"), Just("calendar"), Just("csv")],
            body.clone(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(subtype, body, named, attachment)| Leaf::Text { subtype, body, named, attachment }),
        body.clone().prop_map(Leaf::NoType),
        (prop_oneof![Just("text"), Just(";;;"), Just("multipart/mixed"), Just("TEXT/PLAIN")], body)
            .prop_map(|(t, b)| Leaf::BadType(t, b)),
        (
            prop_oneof![Just("application/pdf"), Just("image/png"), Just("application/octet-stream")],
            proptest::option::of(prop_oneof![
                Just("scan.pdf".to_owned()),
                Just("Rechnung März.pdf".to_owned()),
                Just("data".to_owned()),
                Just("tool.exe".to_owned()),
                Just("a b  c.png".to_owned()),
            ]),
            any::<bool>()
        )
            .prop_map(|(ctype, name, base64)| Leaf::Binary { ctype, name, base64 }),
        Just(Leaf::Message),
    ]
}

fn render_leaf(leaf: &Leaf, eol: &str) -> String {
    match leaf {
        Leaf::Text { subtype, body, named, attachment } => {
            let mut h = format!("Content-Type: text/{subtype}; charset=utf-8");
            if *named {
                h.push_str("; name=\"notes.txt\"");
            }
            if *attachment {
                h.push_str(&format!("{eol}Content-Disposition: attachment"));
            }
            format!("{h}{eol}Content-Transfer-Encoding: 8bit{eol}{eol}{body}")
        }
        Leaf::NoType(body) => format!("{eol}{body}"),
        Leaf::BadType(t, body) => format!("Content-Type: {t}{eol}{eol}{body}"),
        Leaf::Binary { ctype, name, base64 } => {
            let name = name.as_ref().map(|n| format!("; name=\"{n}\"")).unwrap_or_default();
            if *base64 {
                format!(
                    "Content-Type: {ctype}{name}{eol}Content-Transfer-Encoding: base64{eol}{eol}JVBERi0xLjQKJcfs{eol}"
                )
            } else {
                format!("Content-Type: {ctype}{name}{eol}{eol}raw bytes")
            }
        }
        Leaf::Message => {
            format!("Content-Type: message/rfc822{eol}{eol}From: x@example.org{eol}Subject: in{eol}{eol}inner")
        }
    }
}

/// A generated message.
#[derive(Debug, Clone)]
struct Messy {
    from: &'static str,
    headers: Vec<&'static str>,
    structure: Structure,
    bare_lf: bool,
    no_separator: bool,
}

#[derive(Debug, Clone)]
enum Structure {
    Single(Leaf),
    Multi { subtype: &'static str, parts: Vec<Leaf>, nested: Option<Vec<Leaf>>, close: bool, boundary: bool },
}

fn messy() -> impl Strategy<Value = Messy> {
    let from = prop_oneof![
        Just("From: app@example.com"),
        Just("From: \"O'Brien, Pat\" <pat@example.com>"),
        Just("From: O'Brien <pat@example.com>"),
        Just("From: root (Cron Daemon)"),
        Just("From: a@example.com, b@example.com"),
        Just("From: =?UTF-8?B?SsO8cmdlbg==?= <j@example.com>"),
        Just(""),
    ];
    let header = prop_oneof![
        Just("To: office@example.com"),
        Just("To: undisclosed-recipients:;"),
        Just("Cc: Other <other@example.com>"),
        Just("Reply-To: not an address"),
        Just("Subject: hello"),
        Just("Subject:"),
        Just("X-PM-Tag: report"),
        Just("X-PM-Message-Stream: outbound"),
        Just("X-PM-Metadata-Key: v"),
        Just("X-PM-Metadata-key: w"),
        Just("X-PM-TrackOpens: maybe"),
        Just("MIME-Version: 1.0"),
    ];
    let structure = prop_oneof![
        leaf().prop_map(Structure::Single),
        (
            prop_oneof![Just("mixed"), Just("alternative"), Just("related"), Just("digest"), Just("report")],
            proptest::collection::vec(leaf(), 0..4),
            proptest::option::of(proptest::collection::vec(leaf(), 0..3)),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(subtype, parts, nested, close, boundary)| Structure::Multi {
                subtype,
                parts,
                nested,
                close: close || boundary,
                boundary
            }),
    ];
    (
        from,
        proptest::collection::vec(header, 0..5),
        structure,
        proptest::bool::weighted(0.2),
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(from, headers, structure, bare_lf, no_separator)| Messy {
            from,
            headers,
            structure,
            bare_lf,
            no_separator,
        })
}

impl Messy {
    fn render(&self) -> Vec<u8> {
        let eol = if self.bare_lf { "\n" } else { "\r\n" };
        let mut out = String::new();
        if !self.from.is_empty() {
            out.push_str(self.from);
            out.push_str(eol);
        }
        for h in &self.headers {
            out.push_str(h);
            out.push_str(eol);
        }
        match &self.structure {
            Structure::Single(leaf) => {
                let part = render_leaf(leaf, eol);
                if self.no_separator {
                    // Whatever follows the headers directly, without the blank line.
                    out.push_str(part.trim_start_matches(['\r', '\n']));
                } else {
                    out.push_str(&part);
                }
            }
            Structure::Multi { subtype, parts, nested, close, boundary } => {
                if *boundary {
                    out.push_str(&format!("Content-Type: multipart/{subtype}; boundary=\"B0\"{eol}{eol}"));
                } else {
                    out.push_str(&format!("Content-Type: multipart/{subtype}{eol}{eol}"));
                }
                for p in parts {
                    out.push_str(&format!("--B0{eol}{}{eol}", render_leaf(p, eol)));
                }
                if let Some(inner) = nested {
                    out.push_str(&format!("--B0{eol}Content-Type: multipart/alternative; boundary=\"B1\"{eol}{eol}"));
                    for p in inner {
                        out.push_str(&format!("--B1{eol}{}{eol}", render_leaf(p, eol)));
                    }
                    out.push_str(&format!("--B1--{eol}"));
                }
                if *close {
                    out.push_str(&format!("--B0--{eol}"));
                }
            }
        }
        out.into_bytes()
    }
}

/// 64 cases by default (each runs four sessions with a real spool); `PROPTEST_CASES=n` runs more.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn generated_messy_mime_is_acknowledged_only_when_postmark_accepts_it(m in messy()) {
        let raw = m.render();
        for via in [Via::Api, Via::Smtp] {
            for envelope in [
                Envelope::new("app@example.com", ["office@example.com"]),
                Envelope::new("", ["one@example.org", "two@example.net"]),
            ] {
                check(&raw, &envelope, via).map_err(TestCaseError::fail)?;
            }
        }
    }
}
