//! Messages without a body of their own, end to end over both paths against the strict fakes: a
//! scanner's attachment-only message and an empty one are acknowledged, reach Postmark as a
//! message it takes (the fake API accepts the request; the fake SMTP service records no
//! `SMTPApiError`), and nothing becomes a dead letter.

use std::time::Duration;

use postmark_fake::http::FakeApi;
use postmark_fake::smtp::FakeSmtp;

use crate::support::{TestRelay, send, wait_for};

const SCAN: &[u8] = b"From: Scanner <scanner@example.com>\r\nTo: office@example.com\r\nSubject: Scan from MFP\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"s\"\r\n\r\n--s\r\n\
Content-Type: application/pdf; name=\"scan_0001.pdf\"\r\nContent-Disposition: attachment; filename=\"scan_0001.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--s--\r\n";

const EMPTY: &[u8] = b"From: cron@example.com\r\nTo: office@example.com\r\nSubject: nothing to say\r\n\r\n";

#[tokio::test]
async fn no_body_messages_reach_the_api_with_the_empty_body_text_and_are_accepted() {
    let fake = FakeApi::start().await;
    let url = fake.url();
    let mut relay = TestRelay::start(
        &["--api-url", url.as_str(), "--empty-body-text", "Sent by the office scanner: {attachments}"],
        &[("POSTMARK_SERVER_TOKEN", "t")],
    )
    .await;
    send(relay.addr, "scanner@example.com", &["office@example.com"], SCAN).await.expect("250");
    send(relay.addr, "cron@example.com", &["office@example.com"], EMPTY).await.expect("250");
    let emails = wait_for("both messages accepted", Duration::from_secs(10), || {
        let e = fake.emails();
        (e.len() == 2).then_some(e)
    })
    .await;
    let scan = emails.iter().find(|e| e["Subject"] == "Scan from MFP").unwrap();
    assert_eq!(scan["TextBody"], "Sent by the office scanner: scan_0001.pdf");
    assert_eq!(scan["Attachments"][0]["Name"], "scan_0001.pdf");
    let empty = emails.iter().find(|e| e["Subject"] == "nothing to say").unwrap();
    assert_eq!(empty["TextBody"], "Sent by the office scanner: none");
    // The fake recorded them as accepted: no refusal came back, nothing died.
    wait_for("an empty queue", Duration::from_secs(5), || relay.files("queue").is_empty().then_some(())).await;
    assert!(relay.files("dead").is_empty(), "{:?}", relay.files("dead"));
    relay.stop().await;
}

#[tokio::test]
async fn no_body_messages_reach_the_smtp_service_with_a_text_part_and_do_not_bounce() {
    let fake = FakeSmtp::builder().credentials("k", "s").start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, fake.ca_pem()).unwrap();
    let url = fake.url();
    let mut relay = TestRelay::start(
        &["--smtp-url", &url, "--smtp-ca", ca.to_str().unwrap()],
        &[("POSTMARK_SMTP_ACCESS_KEY", "k"), ("POSTMARK_SMTP_SECRET_KEY", "s")],
    )
    .await;
    send(relay.addr, "scanner@example.com", &["office@example.com"], SCAN).await.expect("250");
    send(relay.addr, "cron@example.com", &["office@example.com"], EMPTY).await.expect("250");
    let got = fake.wait_for_messages(2, Duration::from_secs(10)).await;
    assert!(fake.smtp_api_errors().is_empty(), "{:?}", fake.smtp_api_errors());
    let scan = got.iter().find(|t| String::from_utf8_lossy(&t.data).contains("Scan from MFP")).unwrap();
    let parsed = postmark_relay::convert::parse(&scan.data).unwrap();
    assert!(parsed.body_text(0).unwrap().contains("scan_0001.pdf"));
    // The scan itself travels unchanged inside.
    assert!(scan.data.windows(12).any(|w| w == b"JVBERi0xLjQK"));
    wait_for("an empty queue", Duration::from_secs(5), || relay.files("queue").is_empty().then_some(())).await;
    assert!(relay.files("dead").is_empty());
    relay.stop().await;
}
