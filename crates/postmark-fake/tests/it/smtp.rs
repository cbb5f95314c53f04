//! `FakeSmtp` answers `250` like Postmark's SMTP service and records, per message, whether Postmark would later
//! bounce it as an `SMTPApiError` (TypeCode 100007).

use std::time::Duration;

use lettre::address::Envelope;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use postmark_fake::rules::{Rules, SMTP_API_ERROR_TYPE_CODE};
use postmark_fake::smtp::FakeSmtp;

const NO_BODY: &str = "Provide either email TextBody or HtmlBody or both.";

/// Sends `raw` in clear text (the fake has no credentials by default) and asserts the `250`.
async fn send(fake: &FakeSmtp, to: &[&str], raw: &str) {
    let client = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(fake.addr().port())
        .timeout(Some(Duration::from_secs(10)))
        .build();
    let envelope =
        Envelope::new(Some("bounces@example.com".parse().unwrap()), to.iter().map(|t| t.parse().unwrap()).collect())
            .unwrap();
    let response = client.send_raw(&envelope, raw.as_bytes()).await.expect("Postmark's SMTP service answers 250");
    assert_eq!(response.code().to_string(), "250");
}

const HEAD: &str =
    "From: Scanner <scanner@example.com>\r\nTo: office@example.com\r\nSubject: Scan\r\nMIME-Version: 1.0\r\n";

fn multipart(kind: &str, parts: &[&str]) -> String {
    let mut s = format!("{HEAD}Content-Type: multipart/{kind}; boundary=\"XyZ\"\r\n\r\n");
    for p in parts {
        s.push_str(&format!("--XyZ\r\n{p}\r\n"));
    }
    s + "--XyZ--\r\n"
}

const PDF: &str = "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"scan.pdf\"\r\n\
                   Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK";

/// The bounce reason of the only message the fake received ("" when Postmark would send it).
async fn verdict(raw: &str) -> String {
    let fake = FakeSmtp::start().await.unwrap();
    send(&fake, &["office@example.com"], raw).await;
    let messages = fake.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].data, format!("{raw}\r\n").into_bytes(), "recorded as received");
    messages[0].smtp_api_error.as_ref().map(|r| r.message.clone()).unwrap_or_default()
}

#[tokio::test]
async fn an_attachment_only_message_is_accepted_then_bounced() {
    let fake = FakeSmtp::start().await.unwrap();
    send(&fake, &["office@example.com"], &multipart("mixed", &[PDF])).await;
    let errors = fake.smtp_api_errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].index, 0);
    assert_eq!(errors[0].rcpt_to, ["office@example.com"]);
    assert_eq!(errors[0].refusal.error_code, 300);
    assert_eq!(errors[0].refusal.message, NO_BODY);
    assert_eq!(SMTP_API_ERROR_TYPE_CODE, 100007);
}

#[tokio::test]
async fn a_proper_message_would_not_bounce() {
    let fake = FakeSmtp::start().await.unwrap();
    send(&fake, &["office@example.com"], &multipart("mixed", &["Content-Type: text/plain\r\n\r\nYour scan.", PDF]))
        .await;
    send(&fake, &["office@example.com"], &format!("{HEAD}\r\nJust text.")).await;
    assert_eq!(fake.messages().len(), 2);
    assert!(fake.messages().iter().all(|m| m.smtp_api_error.is_none()));
    assert!(fake.smtp_api_errors().is_empty());
}

#[tokio::test]
async fn an_empty_body_would_bounce() {
    assert_eq!(verdict(&format!("{HEAD}\r\n")).await, NO_BODY);
}

#[tokio::test]
async fn a_text_plain_body_of_white_space_would_bounce() {
    assert_eq!(verdict(&format!("{HEAD}Content-Type: text/plain; charset=us-ascii\r\n\r\n \t \r\n   ")).await, NO_BODY);
    assert_eq!(
        verdict(&format!("{HEAD}Content-Type: text/plain\r\n\r\n .")).await,
        "",
        "one visible character is a body"
    );
}

#[tokio::test]
async fn a_text_part_with_a_file_name_is_an_attachment_not_a_body() {
    let named = "Content-Type: text/plain; charset=utf-8\r\nContent-Disposition: inline; filename=\"log.txt\"\r\n\r\nLog lines.";
    assert_eq!(verdict(&multipart("mixed", &[named])).await, NO_BODY);
    assert_eq!(verdict(&multipart("mixed", &["Content-Type: text/plain\r\n\r\nLog attached.", named])).await, "");
}

#[tokio::test]
async fn a_multipart_digest_of_messages_is_not_a_body() {
    let digest = "Content-Type: multipart/digest; boundary=\"D\"\r\n\r\n--D\r\n\r\nFrom: a@example.com\r\nSubject: one\r\n\r\nFirst.\r\n--D--";
    assert_eq!(verdict(&multipart("mixed", &[digest])).await, NO_BODY);
    assert_eq!(verdict(&multipart("mixed", &["Content-Type: text/plain\r\n\r\nThis week:", digest])).await, "");
}

#[tokio::test]
async fn other_rules_of_the_bounce_model() {
    let exe = "Content-Type: application/octet-stream; name=\"tool.exe\"\r\n\r\nMZ";
    let fake = FakeSmtp::start().await.unwrap();
    send(&fake, &["office@example.com"], &multipart("mixed", &["Content-Type: text/plain\r\n\r\nHi", exe])).await;
    let recipients: Vec<String> = (0..51).map(|i| format!("r{i}@example.com")).collect();
    let refs: Vec<&str> = recipients.iter().map(String::as_str).collect();
    send(&fake, &refs, &format!("{HEAD}\r\nHi")).await;
    send(&fake, &["office@example.com"], "To: office@example.com\r\nSubject: no sender\r\n\r\nHi").await;
    let codes: Vec<(usize, i64)> = fake.smtp_api_errors().iter().map(|e| (e.index, e.refusal.error_code)).collect();
    assert_eq!(codes, [(0, 411), (1, 300), (2, 300)]);
}

#[tokio::test]
async fn inactive_recipients_and_unverified_senders_would_bounce() {
    let rules = Rules { verified_senders: Some(vec!["example.com".into()]), ..Rules::default() };
    let fake = FakeSmtp::builder().rules(rules).start().await.unwrap();
    fake.reject_recipient("gone@example.com", 406);
    send(&fake, &["office@example.com"], &format!("{HEAD}\r\nHi")).await;
    send(&fake, &["office@example.com", "gone@example.com"], &format!("{HEAD}\r\nHi")).await;
    send(&fake, &["office@example.com"], "From: x@example.net\r\n\r\nHi").await;
    let codes: Vec<(usize, i64)> = fake.smtp_api_errors().iter().map(|e| (e.index, e.refusal.error_code)).collect();
    assert_eq!(codes, [(1, 406), (2, 400)]);
    fake.set_rules(Rules::default());
    send(&fake, &["office@example.com"], "From: x@example.net\r\n\r\nHi").await;
    assert_eq!(fake.smtp_api_errors().len(), 2, "the new rules apply to the next message");
}
