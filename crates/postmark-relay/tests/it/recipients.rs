//! More recipients than Postmark takes in one message (50): accepted up to `max_recipients`
//! per transaction, delivered in requests (API) or transactions (SMTP) of at most 50, and a
//! refusal of some of them neither loses nor resends the others.

use std::time::Duration;

use postmark_fake::http::{FakeApi, split_addresses};
use postmark_fake::smtp::FakeSmtp;

use crate::support::{TestRelay, send, wait_for};

const TOKEN: &str = "server-token-for-tests";

fn sixty() -> Vec<String> {
    (0..60).map(|i| format!("r{i}@example.org")).collect()
}

/// To names the first 55 (with display names), the last five are only in the envelope.
fn message_to_55() -> Vec<u8> {
    let to: Vec<String> = (0..55).map(|i| format!("Reader {i} <r{i}@example.org>")).collect();
    format!("From: App <app@example.com>\r\nTo: {}\r\nSubject: sixty\r\n\r\nhello all\r\n", to.join(",\r\n "))
        .into_bytes()
}

fn recipients_of(email: &serde_json::Value) -> Vec<String> {
    ["To", "Cc", "Bcc"].iter().filter_map(|f| email[f].as_str()).flat_map(split_addresses).collect()
}

#[tokio::test]
async fn sixty_recipients_reach_the_api_in_requests_of_at_most_fifty_and_bcc_stays_hidden() {
    let fake = FakeApi::start().await;
    fake.set_server_token(TOKEN);
    let mut relay = TestRelay::with_api(&fake, TOKEN, &[]).await;
    let rcpt = sixty();
    let refs: Vec<&str> = rcpt.iter().map(String::as_str).collect();
    send(relay.addr, "app@example.com", &refs, &message_to_55()).await.expect("250 for all sixty");
    let emails = wait_for("both requests at the fake", Duration::from_secs(10), || {
        let e = fake.emails();
        (e.len() == 2).then_some(e)
    })
    .await;
    let mut got: Vec<String> = emails.iter().flat_map(recipients_of).collect();
    got.sort();
    let mut want = rcpt.clone();
    want.sort();
    assert_eq!(got, want, "every recipient exactly once");
    for email in &emails {
        assert!(recipients_of(email).len() <= 50, "{email}");
        assert_eq!(email["From"], "App <app@example.com>");
        assert_eq!(email["Subject"], "sixty");
        for hidden in &rcpt[55..] {
            assert!(!email["To"].as_str().unwrap_or("").contains(hidden.as_str()), "{email}");
        }
    }
    assert!(emails.iter().any(|e| e["To"].as_str().unwrap().starts_with("Reader 0 <r0@example.org>, Reader 1")));
    wait_for("the queue to empty", Duration::from_secs(10), || relay.files("queue").is_empty().then_some(())).await;
    assert!(relay.files("dead").is_empty());
    relay.stop().await;
}

#[tokio::test]
async fn a_refused_group_is_a_dead_letter_and_the_delivered_group_is_not_sent_again() {
    let fake = FakeApi::start().await;
    fake.set_server_token(TOKEN);
    // r55 is in the second request (recipients 51 to 60): Postmark refuses that one.
    fake.reject_recipient("r55@example.org", 406);
    let mut relay = TestRelay::with_api(&fake, TOKEN, &[]).await;
    let rcpt = sixty();
    let refs: Vec<&str> = rcpt.iter().map(String::as_str).collect();
    let id = send(relay.addr, "app@example.com", &refs, &message_to_55()).await.expect("250");
    wait_for("a dead copy and an empty queue", Duration::from_secs(10), || {
        (relay.files("queue").is_empty() && relay.files("dead").len() == 2).then_some(())
    })
    .await;
    let dead_json = relay.files("dead").into_iter().find(|f| f.ends_with(".json")).unwrap();
    assert!(!dead_json.starts_with(&id.to_string()), "the dead copy has its own id");
    let reason: serde_json::Value =
        serde_json::from_slice(&std::fs::read(relay.spool.join("dead").join(&dead_json)).unwrap()).unwrap();
    let dead: Vec<&str> = reason["recipients"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(dead, refs[50..].to_vec(), "the dead letter holds exactly the refused group");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let emails = fake.emails();
    assert_eq!(emails.len(), 1, "the accepted group went once, the refused one was not retried");
    let mut got = recipients_of(&emails[0]);
    got.sort();
    let mut want: Vec<String> = rcpt[..50].to_vec();
    want.sort();
    assert_eq!(got, want);
    relay.stop().await;
}

#[tokio::test]
async fn sixty_recipients_go_upstream_in_smtp_transactions_of_at_most_fifty() {
    let fake = FakeSmtp::builder().credentials("k", "s").start().await.unwrap();
    let mut relay =
        TestRelay::with_smtp(&fake, &[], &[("POSTMARK_SMTP_ACCESS_KEY", "k"), ("POSTMARK_SMTP_SECRET_KEY", "s")]).await;
    let rcpt = sixty();
    let refs: Vec<&str> = rcpt.iter().map(String::as_str).collect();
    let raw = message_to_55();
    send(relay.addr, "app@example.com", &refs, &raw).await.expect("250");
    let got = fake.wait_for_messages(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].rcpt_to, rcpt[..50].to_vec());
    assert_eq!(got[1].rcpt_to, rcpt[50..].to_vec());
    assert!(got.iter().all(|t| t.mail_from == "app@example.com"));
    assert!(fake.smtp_api_errors().is_empty(), "{:?}", fake.smtp_api_errors());
    wait_for("the queue to empty", Duration::from_secs(10), || relay.files("queue").is_empty().then_some(())).await;
    relay.stop().await;
}

#[tokio::test]
async fn copies_for_hidden_recipients_go_in_batches_of_about_a_megabyte_not_one_huge_batch() {
    let fake = FakeApi::start().await;
    fake.set_server_token(TOKEN);
    let mut relay = TestRelay::with_api(&fake, TOKEN, &[]).await;
    // Ten hidden recipients: ten copies of a 300 KB text, 3 MB in all.
    let rcpt: Vec<String> = (0..10).map(|i| format!("h{i}@example.org")).collect();
    let refs: Vec<&str> = rcpt.iter().map(String::as_str).collect();
    let body = "a line of text that is not short\r\n".repeat(9000);
    let raw = format!("From: app@example.com\r\nTo: undisclosed-recipients:;\r\nSubject: big\r\n\r\n{body}");
    send(relay.addr, "app@example.com", &refs, raw.as_bytes()).await.expect("250");
    let emails = wait_for("ten copies at the fake", Duration::from_secs(20), || {
        let e = fake.emails();
        (e.len() == 10).then_some(e)
    })
    .await;
    let mut to: Vec<&str> = emails.iter().map(|e| e["To"].as_str().unwrap()).collect();
    to.sort();
    assert_eq!(to, refs);
    let posts: Vec<_> = fake.requests().into_iter().filter(|r| r.path.starts_with("/email")).collect();
    assert!(posts.len() >= 3, "{} requests for 3 MB of copies", posts.len());
    for post in &posts {
        assert!(post.body.len() < 2_500_000, "a request of {} bytes", post.body.len());
    }
    relay.stop().await;
}
