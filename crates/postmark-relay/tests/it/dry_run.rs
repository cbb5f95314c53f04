//! With no credentials the relay runs in dry-run and writes what it would send.

use std::time::Duration;

use crate::support::{TestRelay, message, send, wait_for};

#[tokio::test]
async fn without_credentials_messages_become_postmark_json_under_dry_run() {
    let mut relay = TestRelay::start(&[], &[]).await;
    let id = send(relay.addr, "sender@example.com", &["rcpt@example.com", "hidden@example.com"], &message("dry"))
        .await
        .expect("250");
    let name = format!("{id}.json");
    wait_for("the dry-run JSON", Duration::from_secs(10), || relay.files("dry-run").contains(&name).then_some(()))
        .await;
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(relay.spool.join("dry-run").join(&name)).unwrap()).unwrap();
    assert_eq!(json["From"], "Sender <sender@example.com>");
    assert_eq!(json["To"], "rcpt@example.com");
    assert_eq!(json["Bcc"], "hidden@example.com");
    assert_eq!(json["Subject"], "dry");
    assert_eq!(json["TextBody"], "Hello, dry.\r\n.leading dot line\r\n");
    // Nothing is left pending: the dry run counts as the delivery.
    wait_for("the queue to empty", Duration::from_secs(10), || relay.files("queue").is_empty().then_some(())).await;
    relay.stop().await;
}

#[tokio::test]
async fn dry_run_for_smtp_writes_the_exact_message_and_envelope() {
    let mut relay = TestRelay::start(&["--via", "smtp", "--dry-run"], &[]).await;
    let raw = message("eml");
    let id = send(relay.addr, "bounces@example.com", &["rcpt@example.com"], &raw).await.expect("250");
    let eml = format!("{id}.eml");
    wait_for("the dry-run .eml", Duration::from_secs(10), || relay.files("dry-run").contains(&eml).then_some(())).await;
    let written = std::fs::read(relay.spool.join("dry-run").join(&eml)).unwrap();
    let mut expected = raw.clone();
    expected.extend_from_slice(b"\r\n");
    assert_eq!(written, expected);
    let envelope: serde_json::Value = serde_json::from_slice(
        &std::fs::read(relay.spool.join("dry-run").join(format!("{id}.envelope.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(envelope["mail_from"], "bounces@example.com");
    assert_eq!(envelope["rcpt_to"], serde_json::json!(["rcpt@example.com"]));
    relay.stop().await;
}

#[tokio::test]
async fn a_message_postmark_would_refuse_is_refused_at_the_end_of_data() {
    let mut relay = TestRelay::start(&[], &[]).await;
    let raw = b"From: a@example.com\r\nSubject: bad\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"run.exe\"\r\n\r\nMZ\r\n--b--";
    let err = send(relay.addr, "a@example.com", &["b@example.com"], raw).await.expect_err("refused");
    assert!(err.is_permanent(), "{err}");
    assert!(err.to_string().contains("exe"), "{err}");
    assert!(relay.files("queue").is_empty());
    assert!(relay.files("dry-run").is_empty());
    relay.stop().await;
}
