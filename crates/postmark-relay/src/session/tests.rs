//! In-memory session tests: the sans-I/O state machine fed byte slices, and the async driver
//! over `tokio::io::duplex`.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;

use super::*;
use crate::envelope::Via;
use crate::shutdown::Shutdown;
use crate::spool::{Area, QueueId, Spool};

fn cfg() -> Arc<SessionConfig> {
    Arc::new(SessionConfig::default())
}

fn small_cfg(max_message_size: usize) -> Arc<SessionConfig> {
    Arc::new(SessionConfig { max_message_size, ..SessionConfig::default() })
}

/// Feeds `input` in one piece; every completed message is answered `250 queued` and collected.
fn feed(proto: &mut Protocol, input: &[u8]) -> (String, Vec<(Envelope, Vec<u8>)>, bool) {
    let mut out = Vec::new();
    let mut messages = Vec::new();
    let mut bytes = input.iter();
    let closed = loop {
        match proto.feed(&mut bytes, &mut out) {
            Event::NeedInput => break false,
            Event::Message(env, raw) => {
                messages.push((env, raw));
                Reply::new(250, "2.0.0", "queued").write_to(&mut out);
            }
            Event::Close => break true,
            other => panic!("unexpected {other:?} (no TLS or AUTH configured here)"),
        }
    };
    (String::from_utf8(out).unwrap(), messages, closed)
}

fn codes(out: &str) -> Vec<&str> {
    out.lines().map(|l| &l[..3]).collect()
}

fn ready(cfg: Arc<SessionConfig>) -> Protocol {
    let mut p = Protocol::new(cfg);
    let (out, _, _) = feed(&mut p, b"EHLO client.example\r\n");
    assert!(out.starts_with("250-"), "{out}");
    p
}

#[test]
fn ehlo_lists_our_extensions_with_our_own_greeting_line() {
    let mut p = Protocol::new(cfg());
    let mut greeting = Vec::new();
    p.greeting().write_to(&mut greeting);
    assert_eq!(greeting, b"220 localhost ESMTP postmark-relay ready\r\n");
    let (out, _, _) = feed(&mut p, b"EHLO client.example\r\n");
    assert_eq!(
        out,
        "250-localhost Hello client.example\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n\
         250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n"
    );
    let (out, _, _) = feed(&mut p, b"HELO old.example\r\n");
    assert_eq!(out, "250 localhost Hello old.example\r\n");
}

#[test]
fn a_transaction_yields_the_exact_unstuffed_bytes_and_envelope() {
    let mut p = ready(cfg());
    let (out, msgs, closed) = feed(
        &mut p,
        b"MAIL FROM:<sender@example.com> BODY=8BITMIME SIZE=100\r\n\
          RCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n\
          ..first line had a dot\r\nSubject: x\r\n\r\n\xc3\xa9t\xc3\xa9\r\n..\r\n.x\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(codes(&out), ["250", "250", "250", "354", "250", "221"], "{out}");
    assert!(closed);
    assert_eq!(msgs.len(), 1);
    let (env, raw) = &msgs[0];
    assert_eq!(env.mail_from, "sender@example.com");
    assert_eq!(env.rcpt_to, ["a@example.com", "b@example.com"]);
    assert_eq!(raw.as_slice(), b".first line had a dot\r\nSubject: x\r\n\r\n\xc3\xa9t\xc3\xa9\r\n.\r\nx\r\n");
}

#[test]
fn an_empty_message_ends_at_a_dot_on_the_first_line() {
    let mut p = ready(cfg());
    let (out, msgs, _) = feed(&mut p, b"MAIL FROM:<>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n.\r\nNOOP\r\n");
    assert_eq!(codes(&out), ["250", "250", "354", "250", "250"], "{out}");
    assert_eq!(msgs[0].0.mail_from, "");
    assert!(msgs[0].1.is_empty());
}

#[test]
fn input_split_at_every_byte_gives_the_same_result() {
    let input: &[u8] = b"MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n\
        line 1\r\n..dot\r\n\r\n.\r\nRSET\r\n";
    let mut whole = ready(cfg());
    let (expected_out, expected_msgs, _) = feed(&mut whole, input);
    let mut p = ready(cfg());
    let mut out = String::new();
    let mut msgs = Vec::new();
    for b in input {
        let (o, m, _) = feed(&mut p, std::slice::from_ref(b));
        out.push_str(&o);
        msgs.extend(m);
    }
    assert_eq!(out, expected_out);
    assert_eq!(msgs, expected_msgs);
    assert_eq!(msgs[0].1, b"line 1\r\n.dot\r\n\r\n");
}

#[test]
fn the_1001st_recipient_gets_452_and_the_first_1000_are_kept() {
    let mut p = ready(cfg());
    let mut input = b"MAIL FROM:<s@example.com>\r\n".to_vec();
    for i in 0..1002 {
        input.extend_from_slice(format!("RCPT TO:<r{i}@example.com>\r\n").as_bytes());
    }
    input.extend_from_slice(b"DATA\r\nhi\r\n.\r\n");
    let (out, msgs, _) = feed(&mut p, &input);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[1..1001].iter().all(|l| l.starts_with("250 2.1.5")), "{out}");
    assert_eq!(lines[1001], "452 4.5.3 Too many recipients; at most 1000 per message, send the rest separately");
    assert!(lines[1002].starts_with("452 4.5.3 "), "{}", lines[1002]);
    assert_eq!(msgs[0].0.rcpt_to.len(), 1000);
    assert_eq!(msgs[0].0.rcpt_to[999], "r999@example.com");

    // The limit is a setting.
    let mut p = ready(Arc::new(SessionConfig { max_recipients: 2, ..SessionConfig::default() }));
    let (out, _, _) =
        feed(&mut p, b"MAIL FROM:<s@example.com>\r\nRCPT TO:<a@x.org>\r\nRCPT TO:<b@x.org>\r\nRCPT TO:<c@x.org>\r\n");
    assert!(out.lines().nth(3).is_some_and(|l| l.starts_with("452 4.5.3 Too many recipients; at most 2 ")), "{out}");
}

#[test]
fn duplicate_recipients_are_accepted_once() {
    let mut p = ready(cfg());
    let (out, msgs, _) = feed(
        &mut p,
        b"MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<A@Example.com>\r\n\
          DATA\r\nx\r\n.\r\n",
    );
    assert_eq!(codes(&out), ["250", "250", "250", "354", "250"]);
    assert_eq!(msgs[0].0.rcpt_to, ["a@example.com"]);
}

#[test]
fn oversized_message_gets_552_without_buffering_more_than_the_limit() {
    let limit = 1000;
    let mut p = ready(small_cfg(limit));
    let (out, _, _) = feed(&mut p, b"MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n");
    assert_eq!(codes(&out), ["250", "250", "354"]);
    let line = [b'x'; 98];
    let mut max_buffered = 0;
    for _ in 0..50 {
        let mut chunk = line.to_vec();
        chunk.extend_from_slice(b"\r\n");
        let (out, msgs, _) = feed(&mut p, &chunk);
        assert!(out.is_empty() && msgs.is_empty());
        max_buffered = max_buffered.max(p.buffered());
    }
    assert!(max_buffered <= limit, "buffered {max_buffered} bytes");
    assert!(p.in_data(), "still reading to the end of the message");
    let (out, msgs, _) = feed(&mut p, b".\r\n");
    assert!(msgs.is_empty());
    assert!(out.starts_with("552 5.3.4 "), "{out}");
    // The session goes on normally.
    let (out, msgs, _) =
        feed(&mut p, b"MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nDATA\r\nsmall\r\n.\r\n");
    assert_eq!(codes(&out), ["250", "250", "354", "250"]);
    assert_eq!(msgs[0].1, b"small\r\n");
}

#[test]
fn a_message_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not() {
    for (size, accepted) in [(1000, true), (1001, false)] {
        let mut p = ready(small_cfg(1000));
        let mut body = vec![b'y'; size - 2];
        body.extend_from_slice(b"\r\n");
        let mut input = b"MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n".to_vec();
        input.extend_from_slice(&body);
        input.extend_from_slice(b".\r\n");
        // Also split right between the CR and LF of the terminator.
        let split = input.len() - 1;
        let (mut out, mut msgs, _) = feed(&mut p, &input[..split]);
        let (o2, m2, _) = feed(&mut p, &input[split..]);
        out.push_str(&o2);
        msgs.extend(m2);
        if accepted {
            assert_eq!(msgs.len(), 1, "{out}");
            assert_eq!(msgs[0].1, body);
        } else {
            assert!(msgs.is_empty());
            assert!(
                out.ends_with("552 5.3.4 Message size exceeds fixed maximum message size of 1000 bytes\r\n"),
                "{out}"
            );
        }
    }
}

#[test]
fn declared_size_over_the_limit_is_refused_at_mail_from() {
    let mut p = ready(cfg());
    let (out, _, _) = feed(&mut p, b"MAIL FROM:<s@example.com> SIZE=10000001\r\n");
    assert!(out.starts_with("552 5.3.4 "), "{out}");
    let (out, _, _) = feed(&mut p, b"MAIL FROM:<s@example.com> SIZE=10000000\r\n");
    assert!(out.starts_with("250 2.1.0"), "{out}");
}

#[test]
fn commands_out_of_sequence_are_refused() {
    let mut p = Protocol::new(cfg());
    let (out, _, _) = feed(&mut p, b"MAIL FROM:<s@example.com>\r\n");
    assert!(out.starts_with("503 5.5.1"), "{out}");
    let (out, _, _) = feed(&mut p, b"EHLO c\r\nRCPT TO:<a@example.com>\r\nDATA\r\n");
    let lines: Vec<&str> = out.lines().skip(6).collect();
    assert!(lines[0].starts_with("503 5.5.1"), "{out}");
    assert!(lines[1].starts_with("503 5.5.1"), "{out}");
    let (out, _, _) = feed(&mut p, b"MAIL FROM:<s@example.com>\r\nMAIL FROM:<t@example.com>\r\nDATA\r\n");
    assert_eq!(codes(&out), ["250", "503", "503"], "{out}");
    let (out, _, _) = feed(&mut p, b"RSET\r\nRCPT TO:<a@example.com>\r\n");
    assert_eq!(codes(&out), ["250", "503"], "{out}");
}

#[test]
fn syntax_errors_get_5xx_and_the_session_continues() {
    let mut p = ready(cfg());
    let (out, _, _) = feed(
        &mut p,
        b"MAIL FROM:<not an address>\r\nXYZZY\r\nMAIL FROM:<s@example.com> FOO=BAR\r\n\
          MAIL FROM:<s@example.com> BODY=BINARYMIME\r\nRCPT TO:<x>\r\nMAIL FROM:<s@example.com>\r\n\
          RCPT TO:<postmaster>\r\nSTARTTLS\r\nAUTH PLAIN\r\nBDAT 10 LAST\r\nNOOP\r\n",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("501 5.1.7"), "{out}");
    assert!(lines[1].starts_with("500 5.5.1"), "{out}");
    assert!(lines[2].starts_with("555 5.5.4"), "{out}");
    assert!(lines[3].starts_with("555 5.5.4"), "{out}");
    assert!(lines[4].starts_with("503 5.5.1") || lines[4].starts_with("501"), "{out}");
    assert!(lines[5].starts_with("250 2.1.0"), "{out}");
    assert!(lines[6].starts_with("550 5.1.1"), "{out}");
    assert!(lines[7].starts_with("502 5.5.1"), "{out}");
    assert!(lines[8].starts_with("502 5.5.1"), "{out}");
    assert!(lines[9].starts_with("502 5.5.1"), "{out}");
    assert!(lines[10].starts_with("250 2.0.0"), "{out}");
}

#[test]
fn an_overlong_line_is_refused_and_skipped() {
    let mut p = ready(cfg());
    // Refused as soon as it passes 512 octets, whether it arrives in one read or several.
    let mut first = b"NOOP ".to_vec();
    first.extend(std::iter::repeat_n(b'a', 5_000));
    let (out1, _, _) = feed(&mut p, &first);
    let mut rest = vec![b'a'; 5_000];
    rest.extend_from_slice(b"\r\nNOOP\r\n");
    let (out2, _, closed) = feed(&mut p, &rest);
    let out = out1 + &out2;
    assert!(!closed);
    assert_eq!(out, "500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n");
}

#[test]
fn too_many_errors_close_the_session() {
    let mut p = ready(cfg());
    let input = b"BOGUS\r\n".repeat(25);
    let (out, _, closed) = feed(&mut p, &input);
    assert!(closed);
    assert_eq!(out.lines().count(), 21, "{out}");
    assert!(out.lines().last().unwrap().starts_with("421 4.7.0"), "{out}");
}

#[test]
fn non_ascii_addresses_need_smtputf8_idn_domains_become_a_labels_and_local_parts_get_553_5_6_7() {
    let mut p = ready(cfg());
    let (out, _, _) = feed(&mut p, "MAIL FROM:<info@bücher.de>\r\n".as_bytes());
    assert_eq!(out, "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n");
    // With SMTPUTF8 an internationalized domain is taken, as its A-label; a non-ASCII local part
    // has no ASCII form Postmark could take: refused, named in UTF-8.
    let (out, msgs, _) = feed(
        &mut p,
        "MAIL FROM:<info@bücher.de> SMTPUTF8\r\nRCPT TO:<zoë@example.com>\r\nRCPT TO:<kunde@Bücher.de>\r\n\
         RCPT TO:<zoe@example.com>\r\nDATA\r\nx\r\n.\r\n"
            .as_bytes(),
    );
    assert_eq!(codes(&out), ["250", "553", "250", "250", "354", "250"], "{out}");
    assert!(
        out.contains(
            "553 5.6.7 Postmark cannot send to zoë@example.com: its local part (before the @) is not ASCII; \
             only the domain may be internationalized\r\n"
        ),
        "{out}"
    );
    assert_eq!(msgs[0].0.mail_from, "info@xn--bcher-kva.de");
    assert_eq!(msgs[0].0.rcpt_to, ["kunde@xn--bcher-kva.de", "zoe@example.com"]);
    let (out, _, _) = feed(&mut p, "MAIL FROM:<jürgen@example.com> SMTPUTF8\r\n".as_bytes());
    assert!(out.starts_with("553 5.6.7 Postmark cannot send from jürgen@example.com: "), "{out}");
    let (out, _, _) = feed(&mut p, "MAIL FROM:<a@example.com>\r\nRCPT TO:<zoë@example.com>\r\n".as_bytes());
    assert_eq!(codes(&out), ["250", "553"], "{out}");
    assert!(out.ends_with("553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n"), "{out}");
}

#[test]
fn recipients_postmark_refuses_get_553_5_1_3() {
    let mut p = ready(cfg());
    // (Address literals such as `a@[192.0.2.1]` and doubled dots are already syntax errors to
    // smtp-proto: 501.)
    for bad in ["\"john doe\"@example.com", "who?@example.com", "a@exa_mple.com", "a@example.com."] {
        let (out, _, _) = feed(&mut p, format!("MAIL FROM:<s@example.com>\r\nRCPT TO:<{bad}>\r\nRSET\r\n").as_bytes());
        assert_eq!(codes(&out), ["250", "553", "250"], "{bad}: {out}");
        assert!(out.contains("553 5.1.3"), "{out}");
    }
}

#[test]
fn every_reply_but_greeting_ehlo_and_354_has_an_enhanced_code() {
    let mut p = Protocol::new(cfg());
    let (out, _, _) = feed(
        &mut p,
        b"HELO c\r\nEHLO c\r\nNOOP\r\nVRFY x\r\nEXPN x\r\nHELP\r\nMAIL FROM:<s@example.com>\r\n\
          RCPT TO:<a@example.com>\r\nDATA\r\nx\r\n.\r\nRSET\r\nBAD\r\nMAIL FROM:<bad\r\nQUIT\r\n",
    );
    for line in out.lines() {
        if line.starts_with("250 localhost")
            || line.starts_with("250-")
            || line.starts_with("250 ENHANCED")
            || line.starts_with("354")
        {
            continue;
        }
        let mut parts = line.split(' ');
        let code = parts.next().unwrap();
        let esc = parts.next().unwrap_or("");
        let class = &code[..1];
        assert!(
            esc.starts_with(&format!("{class}.")) && esc.split('.').count() == 3,
            "no enhanced status code in {line:?}"
        );
    }
}

#[test]
fn after_shutdown_begins_commands_get_421_but_quit_still_works() {
    let mut p = ready(cfg());
    p.set_closing();
    let (out, _, closed) = feed(&mut p, b"MAIL FROM:<s@example.com>\r\n");
    assert!(closed);
    assert!(out.starts_with("421 4.3.0"), "{out}");
    let mut p = ready(cfg());
    p.set_closing();
    let (out, _, closed) = feed(&mut p, b"QUIT\r\n");
    assert!(closed);
    assert!(out.starts_with("221 2.0.0"), "{out}");
}

// ---- the async driver over an in-memory stream -------------------------------------------

struct Harness {
    _dir: tempfile::TempDir,
    spool: Arc<Spool>,
    queued: mpsc::UnboundedReceiver<crate::delivery::handoff::Queued>,
    shutdown: Shutdown,
    client: BufReader<DuplexStream>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Harness {
    fn start(cfg: Arc<SessionConfig>) -> Self {
        Self::start_via(cfg, Via::Smtp)
    }

    fn start_via(cfg: Arc<SessionConfig>, via: Via) -> Self {
        Self::start_with(cfg, via, Arc::default())
    }

    fn start_with(cfg: Arc<SessionConfig>, via: Via, handoff: Arc<crate::delivery::handoff::Budget>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path()).unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        let acceptor =
            Arc::new(Acceptor::new(Arc::clone(&spool), via, Default::default(), tx).unwrap().with_handoff(handoff));
        let shutdown = Shutdown::new();
        let (client, server) = tokio::io::duplex(64 * 1024);
        let session = Session::new(server, cfg, Arc::default(), acceptor, shutdown.signal());
        let task = tokio::spawn(session.run());
        Self { _dir: dir, spool, queued: rx, shutdown, client: BufReader::new(client), task }
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.client.read_line(&mut line))
            .await
            .expect("reply timed out")
            .unwrap();
        line
    }

    /// Reads one (possibly multi-line) reply.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let line = self.line().await;
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.client.get_mut().write_all(bytes).await.unwrap();
    }
}

#[tokio::test]
async fn the_250_comes_only_after_the_message_is_on_disk() {
    use crate::delivery::handoff::{Budget, HANDOFF_BYTES};
    const RAW: &[u8] = b"From: s@example.com\r\nSubject: durable\r\n\r\nbody\r\n";
    // Handed over to the worker in memory (then only in the journal until needed), or not (then
    // in a file of its own).
    for (via, budget) in [(Via::Api, HANDOFF_BYTES), (Via::Smtp, HANDOFF_BYTES), (Via::Api, 0)] {
        let mut h = Harness::start_with(cfg(), via, Arc::new(Budget::new(budget)));
        assert!(h.reply().await.starts_with("220 "));
        h.send(b"EHLO c\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n").await;
        assert!(h.reply().await.starts_with("250-localhost"));
        assert!(h.reply().await.starts_with("250 2.1.0"));
        assert!(h.reply().await.starts_with("250 2.1.5"));
        assert!(h.reply().await.starts_with("354 "));
        h.send(b"From: s@example.com\r\nSubject: durable\r\n\r\nbody\r\n.\r\n").await;
        let reply = h.reply().await;
        let id = reply.strip_prefix("250 2.0.0 Ok: queued as ").unwrap_or_else(|| panic!("{reply}")).trim();
        let id = QueueId::parse(id).expect("queue id");
        let queued = h.queued.recv().await.expect("announced to the worker");
        assert_eq!(queued.id, id);
        assert_eq!(h.spool.locate(&id), Some(Area::Queue));
        match queued.fresh {
            None => {
                assert_eq!(budget, 0, "handed over while there is room");
                // By the time the client reads 250 the file is complete and verifiable.
                let msg = h.spool.load(&id).expect("spooled");
                assert_eq!(msg.raw, RAW);
                assert_eq!(msg.header.envelope.rcpt_to, ["a@example.com"]);
            }
            Some(fresh) => {
                // By the time the client reads 250 the message is in the journal on disk; it has
                // no file of its own (the checkpoint writes one if it is still pending then).
                assert!(h.spool.is_unwritten(&id));
                assert!(!h.spool.root().join("queue").join(format!("{id}.msg")).exists());
                let mut journal = Vec::new();
                for segment in std::fs::read_dir(h.spool.root().join("journal")).unwrap() {
                    journal.extend(std::fs::read(segment.unwrap().path()).unwrap());
                }
                for needle in [RAW, id.as_str().as_bytes()] {
                    assert!(journal.windows(needle.len()).any(|w| w == needle), "in the journal");
                }
                let msg = &fresh.message;
                assert_eq!((&msg.id, msg.raw.as_slice()), (&id, RAW));
                assert_eq!(msg.header.envelope.rcpt_to, ["a@example.com"]);
                // With the requests delivery would build from it.
                match via {
                    Via::Api => assert_eq!(
                        fresh.requests.expect("API path: requests built at accept"),
                        crate::delivery::api::requests_for(msg, &Default::default()).unwrap()
                    ),
                    Via::Smtp => assert_eq!(fresh.requests, None),
                }
            }
        }
        h.send(b"QUIT\r\n").await;
        assert!(h.reply().await.starts_with("221 2.0.0"));
        h.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_spool_that_cannot_be_written_gives_451_and_keeps_nothing() {
    // Not handed over in memory: the message's own file is written (and fails).
    let mut h = Harness::start_with(cfg(), Via::Smtp, Arc::new(crate::delivery::handoff::Budget::new(0)));
    // Replace queue/ with a plain file: the rename into it fails (even for root).
    let queue = h.spool.root().join("queue");
    std::fs::remove_dir(&queue).unwrap();
    std::fs::write(&queue, b"not a directory").unwrap();
    h.reply().await;
    h.send(b"HELO c\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nDATA\r\nSubject: t\r\n\r\nx\r\n.\r\n")
        .await;
    for _ in 0..4 {
        h.reply().await;
    }
    let reply = h.reply().await;
    assert!(reply.starts_with("451 4.3.0 "), "{reply}");
    assert_eq!(std::fs::read_dir(h.spool.root().join("tmp")).unwrap().count(), 0);
    assert!(h.queued.try_recv().is_err());
    // The client may try again in the same session once the spool is back.
    std::fs::remove_file(&queue).unwrap();
    std::fs::create_dir(&queue).unwrap();
    h.send(b"MAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nDATA\r\nSubject: t\r\n\r\nx\r\n.\r\n").await;
    for _ in 0..3 {
        h.reply().await;
    }
    assert!(h.reply().await.starts_with("250 2.0.0"));
    assert_eq!(h.spool.ids(Area::Queue).unwrap().len(), 1);
}

#[tokio::test]
async fn shutdown_sends_421_to_an_idle_session() {
    let mut h = Harness::start(cfg());
    h.reply().await;
    h.send(b"EHLO c\r\n").await;
    h.reply().await;
    h.shutdown.trigger();
    let reply = h.reply().await;
    assert!(reply.starts_with("421 4.3.0 "), "{reply}");
    h.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_lets_a_message_in_progress_finish() {
    let mut h = Harness::start(cfg());
    h.reply().await;
    h.send(b"HELO c\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nDATA\r\nSubject: t\r\n\r\npart one\r\n")
        .await;
    for _ in 0..4 {
        h.reply().await;
    }
    h.shutdown.trigger();
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.send(b"part two\r\n.\r\nMAIL FROM:<s@example.com>\r\n").await;
    let reply = h.reply().await;
    let id = reply.strip_prefix("250 2.0.0 Ok: queued as ").unwrap_or_else(|| panic!("{reply}")).trim();
    assert!(h.reply().await.starts_with("421 4.3.0"));
    h.task.await.unwrap().unwrap();
    assert_eq!(h.spool.locate(&QueueId::parse(id).unwrap()), Some(Area::Queue));
}

#[tokio::test]
async fn an_idle_client_is_dropped_with_421_after_the_idle_timeout() {
    let cfg = Arc::new(SessionConfig { idle_timeout: Duration::from_millis(100), ..SessionConfig::default() });
    let mut h = Harness::start(cfg);
    h.reply().await;
    let reply = h.reply().await;
    assert!(reply.starts_with("421 4.4.2 "), "{reply}");
    let mut rest = Vec::new();
    h.client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order_in_one_write() {
    let mut h = Harness::start(cfg());
    h.reply().await;
    h.send(
        b"EHLO c\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n\
          DATA\r\n",
    )
    .await;
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(h.reply().await[..3].to_string());
    }
    assert_eq!(codes, ["250", "250", "250", "250", "354"]);
}

#[tokio::test]
async fn a_client_trickling_bytes_is_cut_off_at_the_session_limit() {
    let cfg = Arc::new(SessionConfig { max_session_duration: Duration::from_millis(300), ..SessionConfig::default() });
    let mut h = Harness::start(cfg);
    h.reply().await;
    let start = std::time::Instant::now();
    // One byte every 50 ms: never idle long enough for the command timeout.
    for b in b"NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP".iter().cycle() {
        if h.client.get_mut().write_all(std::slice::from_ref(b)).await.is_err()
            || start.elapsed() > Duration::from_secs(2)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reply = h.reply().await;
    assert!(reply.starts_with("421 4.4.2 "), "{reply:?}");
    assert!(start.elapsed() < Duration::from_secs(2), "cut off at the limit, not by the test");
}

// ---- the DATA reader on its own -----------------------------------------------------------

fn read_all(input: &[u8], limit: usize) -> (Option<Vec<u8>>, usize) {
    let mut reader = data::DataReader::new(limit);
    let mut rest = input;
    assert!(reader.feed(&mut rest), "the terminator was not found in {:?}", String::from_utf8_lossy(input));
    (reader.take().ok(), input.len() - rest.len())
}

#[test]
fn only_a_line_of_a_single_dot_ends_the_data() {
    // Smuggling separators: all of them are content, the message ends at the real CRLF.CRLF.
    for sep in [
        &b"\n.\n"[..],
        b"\n.\r\n",
        b"\r.\r",
        b"\r.\n",
        b"\r\n.\n",
        b"\r\n.\r",
        b"\n.\r",
        b"\r\n.\0\r\n",
        b"\r\n.\r\r\n",
    ] {
        let mut input = b"hello".to_vec();
        input.extend_from_slice(sep);
        input.extend_from_slice(b"MAIL FROM:<evil@example.com>\r\n.\r\nQUIT\r\n");
        let (msg, used) = read_all(&input, 1 << 20);
        let msg = msg.unwrap();
        assert_eq!(&input[used..], b"QUIT\r\n", "separator {sep:?}");
        assert!(msg.ends_with(b"MAIL FROM:<evil@example.com>\r\n"), "separator {sep:?}: {msg:?}");
    }
}

#[test]
fn line_initial_dots_are_removed_and_nothing_else_changes() {
    let (msg, _) = read_all(b".a\r\n..b\r\n. c\r\nd.e\r\n\r\n...\r\nx\r.y\n.z\r\n.\r\n", 1 << 20);
    assert_eq!(msg.unwrap(), b"a\r\n.b\r\n c\r\nd.e\r\n\r\n..\r\nx\r.y\n.z\r\n");
    let (msg, _) = read_all(b"\r\n.\r\r\n.\r\n", 1 << 20);
    assert_eq!(msg.unwrap(), b"\r\n\r\r\n", "CRLF . CR CR LF is content");
    let (msg, _) = read_all(b".\r\n", 1 << 20);
    assert_eq!(msg.unwrap(), b"");
}

#[test]
fn every_split_of_the_input_reads_the_same_message() {
    let input: &[u8] = b"..x\r\n\r.\r\n.\r\rz\r\n\n.\n.\r\n.\r\n";
    let (whole, used) = read_all(input, 1 << 20);
    for split in 0..input.len() {
        let mut reader = data::DataReader::new(1 << 20);
        let mut first = &input[..split];
        assert!(!reader.feed(&mut first), "ended early at split {split}");
        assert!(first.is_empty());
        let mut second = &input[split..];
        assert!(reader.feed(&mut second), "split {split}");
        assert_eq!(input.len() - second.len(), used);
        assert_eq!(reader.take().ok(), whole, "split {split}");
    }
}

#[test]
fn the_reader_never_holds_more_than_the_limit() {
    let limit = 10_000;
    let mut reader = data::DataReader::new(limit);
    let line = [b'q'; 998];
    for _ in 0..100 {
        let mut chunk = line.to_vec();
        chunk.extend_from_slice(b"\r\n");
        let mut input = &chunk[..];
        assert!(!reader.feed(&mut input));
        assert!(reader.buffered() <= limit, "{}", reader.buffered());
    }
    let mut end: &[u8] = b".\r\n";
    assert!(reader.feed(&mut end));
    assert_eq!(reader.take(), Err(data::Refusal::TooBig), "over the limit");
}

#[test]
fn a_text_line_over_998_octets_is_kept_and_only_the_size_limit_bounds_it() {
    let read = |input: &[u8], limit: usize| {
        let mut reader = data::DataReader::new(limit);
        let mut rest = input;
        assert!(reader.feed(&mut rest));
        reader.take()
    };
    let mut long = vec![b'a'; 5000];
    long.extend_from_slice(b"\r\n..b\r\n.\r\n");
    let mut kept = vec![b'a'; 5000];
    kept.extend_from_slice(b"\r\n.b\r\n");
    assert_eq!(read(&long, 1 << 20), Ok(kept));
    assert_eq!(read(&long, 4000), Err(data::Refusal::TooBig));
    // A line without end is dropped as soon as it passes the size limit, in pieces or whole.
    let mut reader = data::DataReader::new(100_000);
    for i in 0..1000 {
        let mut chunk: &[u8] = &[b'z'; 1000];
        assert!(!reader.feed(&mut chunk));
        assert!(reader.buffered() <= 100_000);
        if i >= 100 {
            assert_eq!(reader.buffered(), 0);
        }
    }
}

#[tokio::test]
async fn new_messages_are_handed_over_in_memory_only_within_the_budget() {
    use crate::delivery::handoff::Budget;
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let raw = b"From: s@example.com\r\nTo: a@example.com\r\nSubject: budget\r\n\r\nbody\r\n".to_vec();
    let envelope = || crate::envelope::Envelope::new("s@example.com", ["a@example.com"]);
    let accept = |budget: &Arc<Budget>| {
        let (tx, rx) = mpsc::unbounded_channel();
        let acceptor = Acceptor::new(Arc::clone(&spool), Via::Api, Default::default(), tx).unwrap();
        (acceptor.with_handoff(Arc::clone(budget)), rx)
    };
    // What one message holds: its bytes and its requests.
    let roomy = Arc::new(Budget::default());
    let (acceptor, mut rx) = accept(&roomy);
    assert!(acceptor.accept(envelope(), raw.clone()).await.to_string().starts_with("250 "));
    let one = rx.recv().await.unwrap();
    let held = roomy.held();
    assert!(held > raw.len(), "the raw message and its requests are held: {held}");
    assert!(one.fresh.unwrap().requests.is_some());
    assert_eq!(roomy.held(), 0);

    // Room for one message, not for two.
    let budget = Arc::new(Budget::new(held.max(3 * raw.len())));
    let (acceptor, mut rx) = accept(&budget);
    assert!(acceptor.accept(envelope(), raw.clone()).await.to_string().starts_with("250 "));
    let first = rx.recv().await.unwrap();
    assert!(first.fresh.is_some());
    assert_eq!(budget.held(), held);
    assert!(acceptor.accept(envelope(), raw.clone()).await.to_string().starts_with("250 "));
    let second = rx.recv().await.unwrap();
    assert!(second.fresh.is_none(), "over the budget: announced by id alone");
    assert_eq!(spool.load(&second.id).unwrap().raw, raw, "and on disk all the same");
    drop(first);
    assert_eq!(budget.held(), 0);
    assert!(acceptor.accept(envelope(), raw.clone()).await.to_string().starts_with("250 "));
    assert!(rx.recv().await.unwrap().fresh.is_some(), "room again once the worker took the first");
}
