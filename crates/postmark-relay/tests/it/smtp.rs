//! Forwarding over SMTP, against the fake Postmark SMTP endpoint (STARTTLS with a CA generated
//! for the test, AUTH, recording of envelope and exact bytes).

use std::path::PathBuf;
use std::time::Duration;

use postmark_fake::smtp::{FakeSmtp, Fault, Stage};
use postmark_fake::tls::TestPki;

use crate::support::{TestRelay, send, wait_for};

/// A message that exercises transparency and 8-bit content (no final CRLF: lettre adds one).
fn tricky(subject: &str) -> Vec<u8> {
    let mut m = format!(
        "From: Jürgen <sender@example.com>\r\nTo: rcpt@example.com\r\nSubject: {subject}\r\n\
         X-PM-Tag: tag-kept-as-is\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n.\r\n..two dots\r\nGrüße aus Köln\r\n\r\n\r\nend with blank lines above"
    )
    .into_bytes();
    m.extend_from_slice(b"\r\n\t trailing whitespace kept \t");
    m
}

fn write_ca(dir: &tempfile::TempDir, pem: &str) -> PathBuf {
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

#[tokio::test]
async fn smtp_token_path_is_byte_identical_with_the_envelope_and_reuses_the_connection() {
    let fake = FakeSmtp::builder().credentials("access-key", "secret-key").start().await.unwrap();
    let mut relay = TestRelay::with_smtp(
        &fake,
        &[],
        &[("POSTMARK_SMTP_ACCESS_KEY", "access-key"), ("POSTMARK_SMTP_SECRET_KEY", "secret-key")],
    )
    .await;
    let first = tricky("one");
    let second = tricky("two");
    send(relay.addr, "bounces@example.com", &["rcpt@example.com", "hidden@example.com"], &first).await.expect("250");
    let got = fake.wait_for_messages(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    send(relay.addr, "bounces@example.com", &["other@example.com"], &second).await.expect("250");
    let got = fake.wait_for_messages(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2);

    let mut expected = first.clone();
    expected.extend_from_slice(b"\r\n"); // what the relay received from lettre
    assert_eq!(got[0].data, expected, "byte-identical");
    assert_eq!(got[0].mail_from, "bounces@example.com");
    assert_eq!(got[0].rcpt_to, ["rcpt@example.com", "hidden@example.com"]);
    assert_eq!(got[0].auth_user.as_deref(), Some("access-key"));
    assert!(got[0].tls);
    let mut expected = second.clone();
    expected.extend_from_slice(b"\r\n");
    assert_eq!(got[1].data, expected);
    assert_eq!(got[1].rcpt_to, ["other@example.com"]);
    assert_eq!(fake.connections(), 1, "the upstream connection is reused");
    wait_for("an empty queue", Duration::from_secs(5), || relay.files("queue").is_empty().then_some(())).await;
    relay.stop().await;
}

#[tokio::test]
async fn server_token_path_uses_the_token_as_user_and_password() {
    let token = "server-token-as-smtp-login";
    let fake = FakeSmtp::builder().credentials(token, token).start().await.unwrap();
    let mut relay = TestRelay::with_smtp(&fake, &["--via", "smtp"], &[("POSTMARK_SERVER_TOKEN", token)]).await;
    let raw = tricky("server-token");
    send(relay.addr, "bounces@example.com", &["rcpt@example.com"], &raw).await.expect("250");
    let got = fake.wait_for_messages(1, Duration::from_secs(10)).await;
    let mut expected = raw.clone();
    expected.extend_from_slice(b"\r\n");
    assert_eq!(got[0].data, expected);
    assert_eq!(got[0].auth_user.as_deref(), Some(token));
    assert!(got[0].tls);
    relay.stop().await;
}

#[tokio::test]
async fn the_message_stream_header_picks_that_streams_token_pair() {
    let fake = FakeSmtp::builder()
        .credentials("default-access", "default-secret")
        .credentials("broadcast-access", "broadcast-secret")
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(&dir, fake.ca_pem());
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "smtp_url = \"{}\"\nsmtp_ca = \"{}\"\n\n[streams.broadcast]\naccess_key = \"broadcast-access\"\nsecret_key = \"broadcast-secret\"\n",
            fake.url(),
            ca.display()
        ),
    )
    .unwrap();
    let mut relay = TestRelay::start(
        &["--config", config.to_str().unwrap()],
        &[("POSTMARK_SMTP_ACCESS_KEY", "default-access"), ("POSTMARK_SMTP_SECRET_KEY", "default-secret")],
    )
    .await;
    let broadcast = b"From: a@example.com\r\nX-PM-Message-Stream: broadcast\r\nSubject: b\r\n\r\nnews";
    let plain = b"From: a@example.com\r\nSubject: p\r\n\r\nhello";
    send(relay.addr, "a@example.com", &["r@example.com"], broadcast).await.expect("250");
    fake.wait_for_messages(1, Duration::from_secs(10)).await;
    send(relay.addr, "a@example.com", &["r@example.com"], plain).await.expect("250");
    let got = fake.wait_for_messages(2, Duration::from_secs(10)).await;
    assert_eq!(got[0].auth_user.as_deref(), Some("broadcast-access"));
    assert_eq!(got[1].auth_user.as_deref(), Some("default-access"));
    relay.stop().await;
}

#[tokio::test]
async fn upstream_4xx_is_retried_and_5xx_is_a_dead_letter_for_that_recipient() {
    let fake = FakeSmtp::builder().credentials("k", "s").start().await.unwrap();
    fake.inject(Fault::new(Stage::Rcpt, 550, "5.1.1", "no such user").for_recipient("bad@example.com"));
    fake.inject(Fault::new(Stage::Data, 451, "4.3.0", "try later"));
    let mut relay = TestRelay::with_smtp(
        &fake,
        &["--max-retry-delay", "200ms"],
        &[("POSTMARK_SMTP_ACCESS_KEY", "k"), ("POSTMARK_SMTP_SECRET_KEY", "s")],
    )
    .await;
    let raw = b"From: a@example.com\r\nSubject: split\r\n\r\nbody";
    let id = send(relay.addr, "a@example.com", &["good@example.com", "bad@example.com"], raw).await.expect("250");
    let got = fake.wait_for_messages(1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_to, ["good@example.com"], "the retry goes to the remaining recipient only");
    wait_for("the dead letter and an empty queue", Duration::from_secs(10), || {
        (relay.files("queue").is_empty() && relay.files("dead").len() == 2).then_some(())
    })
    .await;
    let dead_json = relay.files("dead").into_iter().find(|f| f.ends_with(".json")).unwrap();
    let reason = std::fs::read_to_string(relay.spool.join("dead").join(&dead_json)).unwrap();
    assert!(reason.contains("550") && reason.contains("bad@example.com"), "{reason}");
    assert!(!dead_json.starts_with(&id), "the dead copy has its own id");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.messages().len(), 1, "no duplicate to the delivered recipient");
    relay.stop().await;
}

#[tokio::test]
async fn an_untrusted_upstream_certificate_pauses_delivery_and_keeps_the_mail() {
    let fake = FakeSmtp::builder().credentials("k", "s").start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let other_ca = TestPki::generate();
    let ca = write_ca(&dir, other_ca.ca_pem());
    let url = fake.url();
    let mut relay = TestRelay::start(
        &["--smtp-url", &url, "--smtp-ca", ca.to_str().unwrap(), "--max-retry-delay", "200ms"],
        &[("POSTMARK_SMTP_ACCESS_KEY", "k"), ("POSTMARK_SMTP_SECRET_KEY", "s")],
    )
    .await;
    let id = send(relay.addr, "a@example.com", &["r@example.com"], b"From: a@example.com\r\nSubject: s\r\n\r\nx")
        .await
        .expect("250");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(fake.messages().is_empty());
    assert!(relay.files("dead").is_empty(), "never bounced");
    assert!(relay.files("queue").contains(&format!("{id}.msg")));
    relay.stop().await;
}

#[tokio::test]
async fn each_stream_goes_to_its_own_host_with_its_own_token() {
    let transactional = FakeSmtp::builder().credentials("tx-access", "tx-secret").start().await.unwrap();
    let broadcast = FakeSmtp::builder().credentials("bc-access", "bc-secret").start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(&dir, &format!("{}\n{}", transactional.ca_pem(), broadcast.ca_pem()));
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[streams.outbound]\naccess_key = \"tx-access\"\nsecret_key = \"tx-secret\"\n\
             [streams.newsletters]\nkind = \"broadcast\"\nsmtp_url = \"{}\"\n\
             access_key = \"bc-access\"\nsecret_key = \"bc-secret\"\n",
            broadcast.url()
        ),
    )
    .unwrap();
    let url = transactional.url();
    let mut relay = TestRelay::start(
        &[
            "--via",
            "smtp",
            "--smtp-url",
            &url,
            "--smtp-ca",
            ca.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--message-stream",
            "outbound",
        ],
        &[],
    )
    .await;
    let mut news = b"X-PM-Message-Stream: newsletters\r\n".to_vec();
    news.extend_from_slice(&tricky("news"));
    send(relay.addr, "bounces@example.com", &["rcpt@example.com"], &tricky("receipt")).await.expect("250");
    send(relay.addr, "bounces@example.com", &["rcpt@example.com"], &news).await.expect("250");
    let tx = transactional.wait_for_messages(1, Duration::from_secs(10)).await;
    let bc = broadcast.wait_for_messages(1, Duration::from_secs(10)).await;
    assert_eq!(tx[0].auth_user.as_deref(), Some("tx-access"));
    assert!(String::from_utf8_lossy(&tx[0].data).contains("Subject: receipt"));
    assert_eq!(bc[0].auth_user.as_deref(), Some("bc-access"));
    assert!(String::from_utf8_lossy(&bc[0].data).contains("Subject: news"));
    wait_for("an empty queue", Duration::from_secs(5), || relay.files("queue").is_empty().then_some(())).await;
    assert_eq!((transactional.messages().len(), broadcast.messages().len()), (1, 1), "each host got only its stream");
    relay.stop().await;
}

/// Spools `count` distinct messages before the relay starts, so that all are due at once.
fn spool_with(count: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let spool = postmark_relay::spool::Spool::open(&spool_dir).unwrap();
    let envelope = postmark_relay::Envelope::new("sender@example.com", ["rcpt@example.com"]);
    for i in 0..count {
        let raw =
            format!("From: sender@example.com\r\nTo: rcpt@example.com\r\nSubject: parallel-{i}\r\n\r\nbody {i}\r\n");
        spool.store_blocking(&envelope, raw.as_bytes()).unwrap();
    }
    (dir, spool_dir)
}

/// The subjects of what the fake received, sorted.
fn subjects(got: &[postmark_fake::smtp::Transaction]) -> Vec<String> {
    let mut subjects: Vec<String> = got
        .iter()
        .map(|t| {
            let text = String::from_utf8_lossy(&t.data);
            text.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap_or_default().to_string()
        })
        .collect();
    subjects.sort();
    subjects
}

#[tokio::test]
async fn a_backlog_goes_out_over_several_connections_each_message_once() {
    let fake = FakeSmtp::builder().credentials("access-key", "secret-key").start().await.unwrap();
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = write_ca(&ca_dir, fake.ca_pem());
    let (dir, spool_dir) = spool_with(60);
    let url = fake.url();
    let mut relay = TestRelay::start_on(
        dir,
        spool_dir,
        &["--smtp-url", &url, "--smtp-ca", ca.to_str().unwrap(), "--smtp-connections", "3"],
        &[("POSTMARK_SMTP_ACCESS_KEY", "access-key"), ("POSTMARK_SMTP_SECRET_KEY", "secret-key")],
    )
    .await;
    fake.wait_for_messages(60, Duration::from_secs(20)).await;
    wait_for("an empty queue", Duration::from_secs(10), || relay.files("queue").is_empty().then_some(())).await;
    // Nothing more arrives once the queue is empty: every message exactly once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = fake.messages();
    let mut expected: Vec<String> = (0..60).map(|i| format!("parallel-{i}")).collect();
    expected.sort();
    assert_eq!(subjects(&got), expected, "each message delivered once");
    assert_eq!(fake.connections(), 3, "the backlog is spread over --smtp-connections connections");
    relay.stop().await;
}

#[tokio::test]
async fn parallel_connections_retry_refused_data_without_duplicates() {
    let fake = FakeSmtp::builder().credentials("access-key", "secret-key").start().await.unwrap();
    // Ten DATA replies are 451: those messages are retried later, and must still arrive once.
    fake.inject(Fault::new(Stage::Data, 451, "4.3.0", "try again").times(10));
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = write_ca(&ca_dir, fake.ca_pem());
    let (dir, spool_dir) = spool_with(40);
    let url = fake.url();
    let mut relay = TestRelay::start_on(
        dir,
        spool_dir,
        &["--smtp-url", &url, "--smtp-ca", ca.to_str().unwrap(), "--max-retry-delay", "200ms"],
        &[("POSTMARK_SMTP_ACCESS_KEY", "access-key"), ("POSTMARK_SMTP_SECRET_KEY", "secret-key")],
    )
    .await;
    fake.wait_for_messages(40, Duration::from_secs(20)).await;
    wait_for("an empty queue", Duration::from_secs(10), || relay.files("queue").is_empty().then_some(())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut expected: Vec<String> = (0..40).map(|i| format!("parallel-{i}")).collect();
    expected.sort();
    assert_eq!(subjects(&fake.messages()), expected, "each message delivered once");
    assert!(relay.files("dead").is_empty());
    assert_eq!(fake.connections(), 20, "the default is twenty connections");
    relay.stop().await;
}

/// With PIPELINING advertised, MAIL, every RCPT and DATA go in one group, the content after the
/// 354, and nothing breaks RFC 2920; without it, one command at a time. Either way the messages
/// arrive byte-identical with their envelopes, a refused recipient is a dead letter for that one.
#[tokio::test]
async fn pipelined_transactions_when_the_upstream_offers_pipelining_one_command_at_a_time_otherwise() {
    for pipelining in [true, false] {
        let fake = FakeSmtp::builder().credentials("k", "s").pipelining(pipelining).start().await.unwrap();
        fake.inject(Fault::new(Stage::Rcpt, 550, "5.1.1", "no such user").for_recipient("bad@example.com"));
        let mut relay = TestRelay::with_smtp(
            &fake,
            &["--max-retry-delay", "200ms"],
            &[("POSTMARK_SMTP_ACCESS_KEY", "k"), ("POSTMARK_SMTP_SECRET_KEY", "s")],
        )
        .await;
        let raw = tricky("pipelined");
        send(relay.addr, "a@example.com", &["one@example.com", "bad@example.com", "two@example.com"], &raw)
            .await
            .expect("250");
        let got = fake.wait_for_messages(1, Duration::from_secs(15)).await;
        let mut expected = raw.clone();
        expected.extend_from_slice(b"\r\n");
        assert_eq!(got[0].data, expected, "byte-identical (pipelining {pipelining})");
        assert_eq!(got[0].rcpt_to, ["one@example.com", "two@example.com"]);
        wait_for("the dead letter", Duration::from_secs(10), || {
            (relay.files("queue").is_empty() && relay.files("dead").len() == 2).then_some(())
        })
        .await;
        assert_eq!(fake.pipelining_violations(), Vec::<String>::new(), "pipelining {pipelining}");
        let groups = fake.command_groups();
        let transaction = ["MAIL", "RCPT", "RCPT", "RCPT", "DATA"];
        if pipelining {
            assert!(groups.iter().any(|g| g == &transaction), "one group for the envelope: {groups:?}");
        } else {
            assert!(groups.iter().all(|g| g.len() == 1), "one command at a time: {groups:?}");
        }
        relay.stop().await;
    }
}
