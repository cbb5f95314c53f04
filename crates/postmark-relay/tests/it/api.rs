//! Forwarding over the HTTP API, against the fake Postmark API.

use std::time::Duration;

use postmark_fake::http::{FakeApi, Fault};
use postmark_relay::Envelope;
use postmark_relay::spool::{QueueId, Spool};

use crate::support::{TestRelay, files, message, send, wait_for};

const TOKEN: &str = "server-token-for-tests";

async fn relay_for(fake: &FakeApi, extra: &[&str]) -> TestRelay {
    TestRelay::with_api(fake, TOKEN, extra).await
}

fn email_posts(fake: &FakeApi) -> usize {
    fake.requests().iter().filter(|r| r.path.starts_with("/email")).count()
}

#[tokio::test]
async fn messages_arrive_as_postmark_json_with_the_token() {
    let fake = FakeApi::start().await;
    fake.set_server_token(TOKEN);
    let mut relay = relay_for(&fake, &["--message-stream", "outbound"]).await;
    send(relay.addr, "sender@example.com", &["rcpt@example.com", "bcc@example.com"], &message("api"))
        .await
        .expect("250");
    let emails = wait_for("the message at the fake", Duration::from_secs(10), || {
        let e = fake.emails();
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(emails.len(), 1);
    let email = &emails[0];
    assert_eq!(email["From"], "Sender <sender@example.com>");
    assert_eq!(email["To"], "rcpt@example.com");
    assert_eq!(email["Bcc"], "bcc@example.com");
    assert_eq!(email["Subject"], "api");
    assert_eq!(email["MessageStream"], "outbound");
    let headers = email["Headers"].as_array().unwrap();
    assert!(headers.iter().any(|h| h["Name"] == "Message-ID" && h["Value"] == "<api@example.com>"), "{headers:?}");
    let request = fake.requests().into_iter().find(|r| r.path == "/email").unwrap();
    assert_eq!(request.header("x-postmark-server-token"), Some(TOKEN));
    wait_for("the queue to empty", Duration::from_secs(10), || relay.files("queue").is_empty().then_some(())).await;
    relay.stop().await;
}

#[tokio::test]
async fn retries_after_503s_until_postmark_accepts() {
    let fake = FakeApi::start().await;
    for _ in 0..3 {
        fake.push_fault(Fault::api_error(503, 100, "Maintenance"));
    }
    let mut relay = relay_for(&fake, &[]).await;
    let id = send(relay.addr, "sender@example.com", &["rcpt@example.com"], &message("retry")).await.expect("250");
    wait_for("delivery after the 503s", Duration::from_secs(20), || (fake.emails().len() == 1).then_some(())).await;
    assert_eq!(email_posts(&fake), 4, "three 503s, then success");
    wait_for("the queue to empty", Duration::from_secs(5), || relay.files("queue").is_empty().then_some(())).await;
    assert!(relay.files("dead").is_empty());
    assert!(!relay.files("queue").contains(&format!("{id}.msg")));
    relay.stop().await;
}

#[tokio::test]
async fn retries_after_429_500_and_a_reset_connection() {
    let fake = FakeApi::start().await;
    fake.push_fault(Fault::api_error(429, 429, "Rate limit exceeded"));
    fake.push_fault(Fault::Status { status: 500, body: "<html>oops</html>".into() });
    fake.push_fault(Fault::Reset);
    let mut relay = relay_for(&fake, &[]).await;
    send(relay.addr, "sender@example.com", &["rcpt@example.com"], &message("faults")).await.expect("250");
    wait_for("delivery after the faults", Duration::from_secs(20), || (fake.emails().len() == 1).then_some(())).await;
    assert_eq!(email_posts(&fake), 4);
    relay.stop().await;
}

#[tokio::test]
async fn an_inactive_recipient_goes_to_dead_letters_and_is_not_retried() {
    let fake = FakeApi::start().await;
    fake.reject_recipient("gone@example.com", 406);
    let mut relay = relay_for(&fake, &[]).await;
    let id = send(relay.addr, "sender@example.com", &["gone@example.com"], &message("inactive")).await.expect("250");
    let dead = format!("{id}.msg");
    wait_for("the dead letter", Duration::from_secs(10), || relay.files("dead").contains(&dead).then_some(())).await;
    let reason: serde_json::Value =
        serde_json::from_slice(&std::fs::read(relay.spool.join("dead").join(format!("{id}.json"))).unwrap()).unwrap();
    assert!(reason["reason"].as_str().unwrap().contains("406"), "{reason}");
    // The reason (which the delivery log line carries too) names Postmark's request id, for its support.
    let requests = fake.requests();
    let post = requests.iter().find(|r| r.path.starts_with("/email")).expect("the send");
    assert!(reason["reason"].as_str().unwrap().ends_with(&format!("(request id {})", post.request_id)), "{reason}");
    // Well past several retry delays: still exactly one attempt.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(email_posts(&fake), 1);
    assert!(relay.files("queue").is_empty());
    relay.stop().await;
}

#[tokio::test]
async fn several_due_messages_go_through_one_batch_with_per_item_results() {
    let fake = FakeApi::start().await;
    fake.reject_recipient("gone@example.com", 406);
    // Spool five messages before the relay starts: all are due at once.
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let spool = Spool::open(&spool_dir).unwrap();
    let mut ids: Vec<QueueId> = Vec::new();
    for i in 0..5 {
        let to = if i == 2 { "gone@example.com" } else { "rcpt@example.com" };
        let mut raw = message(&format!("batch-{i}"));
        raw.extend_from_slice(b"\r\n");
        ids.push(spool.store_blocking(&Envelope::new("sender@example.com", [to]), &raw).unwrap());
    }
    let url = fake.url();
    let mut relay = TestRelay::start_on(
        dir,
        spool_dir,
        &["--api-url", url.as_str(), "--max-retry-delay", "200ms"],
        &[("POSTMARK_SERVER_TOKEN", TOKEN)],
    )
    .await;
    wait_for("four deliveries and a dead letter", Duration::from_secs(10), || {
        (fake.emails().len() == 4 && relay.files("dead").len() == 2).then_some(())
    })
    .await;
    let batches: Vec<_> = fake.requests().into_iter().filter(|r| r.path == "/email/batch").collect();
    assert_eq!(batches.len(), 1, "one batch request");
    assert_eq!(batches[0].json().unwrap().as_array().unwrap().len(), 5);
    assert!(fake.requests().iter().all(|r| r.path != "/email"));
    assert_eq!(relay.files("dead"), [format!("{}.json", ids[2]), format!("{}.msg", ids[2])]);
    wait_for("the queue to empty", Duration::from_secs(5), || relay.files("queue").is_empty().then_some(())).await;
    relay.stop().await;
}

/// A long queue of big messages goes out in batches of at most `MAX_BATCH_RAW_BYTES` (a single
/// bigger message alone), so the relay's memory does not grow with the queue.
#[tokio::test]
async fn batches_are_bounded_in_bytes_as_well_as_in_messages() {
    let fake = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let spool = Spool::open(&spool_dir).unwrap();
    // 7 messages of 1.5 MB (2 fit in one batch, 3 do not), then one of 5 MB (over the cap alone).
    let sized = |subject: &str, len: usize| {
        let mut raw = message(subject);
        raw.extend_from_slice(b"\r\n");
        while raw.len() < len {
            raw.extend_from_slice(&[b'a'; 98]);
            raw.extend_from_slice(b"\r\n");
        }
        raw
    };
    let env = Envelope::new("sender@example.com", ["rcpt@example.com"]);
    for i in 0..7 {
        spool.store_blocking(&env, &sized(&format!("big-{i}"), 1_500_000)).unwrap();
    }
    spool.store_blocking(&env, &sized("huge", 5_000_000)).unwrap();
    let url = fake.url();
    let mut relay =
        TestRelay::start_on(dir, spool_dir, &["--api-url", url.as_str()], &[("POSTMARK_SERVER_TOKEN", TOKEN)]).await;
    wait_for("all eight", Duration::from_secs(30), || (fake.emails().len() == 8).then_some(())).await;
    let sizes: Vec<usize> = fake
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/email"))
        .map(|r| match r.json().unwrap() {
            serde_json::Value::Array(items) => items.len(),
            _ => 1,
        })
        .collect();
    let cap = postmark_relay::delivery::api::MAX_BATCH_RAW_BYTES;
    assert!(cap < 3 * 1_500_000, "the test assumes three messages exceed the cap");
    assert!(sizes.iter().all(|&n| n <= 2), "batches of at most two 1.5 MB messages: {sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 8);
    assert!(sizes.len() >= 5, "{sizes:?}");
    relay.stop().await;
}

#[tokio::test]
async fn a_rejected_token_pauses_delivery_without_bouncing_and_resumes() {
    let fake = FakeApi::start().await;
    fake.set_server_token("the-right-token");
    let mut relay = relay_for(&fake, &[]).await;
    let id = send(relay.addr, "sender@example.com", &["rcpt@example.com"], &message("paused")).await.expect("250");
    wait_for("the 401", Duration::from_secs(10), || (email_posts(&fake) >= 1).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(relay.files("dead").is_empty(), "an operator problem never bounces mail");
    assert!(relay.files("queue").contains(&format!("{id}.msg")));
    // The operator fixes the account (here: the fake starts accepting our token).
    fake.set_server_token(TOKEN);
    wait_for("delivery after the pause", Duration::from_secs(20), || (fake.emails().len() == 1).then_some(())).await;
    relay.stop().await;
    assert!(files(&relay.spool.join("queue")).is_empty());
}

#[tokio::test]
async fn a_message_past_its_lifetime_becomes_a_dead_letter() {
    let fake = FakeApi::start().await;
    for _ in 0..50 {
        fake.push_fault(Fault::api_error(503, 100, "Maintenance"));
    }
    let mut relay = relay_for(&fake, &["--message-lifetime", "600ms"]).await;
    let id = send(relay.addr, "sender@example.com", &["rcpt@example.com"], &message("expiring")).await.expect("250");
    wait_for("the expired message in dead letters", Duration::from_secs(10), || {
        relay.files("dead").contains(&format!("{id}.msg")).then_some(())
    })
    .await;
    let reason = std::fs::read_to_string(relay.spool.join("dead").join(format!("{id}.json"))).unwrap();
    assert!(reason.contains("gave up after"), "{reason}");
    assert!(fake.emails().is_empty());
    relay.stop().await;
}

#[tokio::test]
async fn a_request_that_times_out_is_retried() {
    let fake = FakeApi::start().await;
    // The first answer comes after the relay stopped waiting. (Postmark may have accepted that
    // copy: this is the documented duplicate window. The fake drops a request whose client
    // went away, so here the retry is the only copy.)
    fake.push_fault(Fault::Delay(Duration::from_millis(1500)));
    let mut relay = relay_for(&fake, &["--api-timeout", "300ms"]).await;
    send(relay.addr, "sender@example.com", &["rcpt@example.com"], &message("slow")).await.expect("250");
    wait_for("delivery by the retry", Duration::from_secs(15), || {
        (!fake.emails().is_empty() && relay.files("queue").is_empty()).then_some(())
    })
    .await;
    assert_eq!(email_posts(&fake), 2, "one timed-out request, one retry");
    assert!(!fake.emails().is_empty());
    assert!(relay.files("dead").is_empty());
    relay.stop().await;
}

#[tokio::test]
async fn a_slow_answer_within_the_timeout_is_simply_a_delivery() {
    let fake = FakeApi::start().await;
    fake.push_fault(Fault::Delay(Duration::from_millis(300)));
    let mut relay = relay_for(&fake, &[]).await;
    send(relay.addr, "sender@example.com", &["rcpt@example.com"], &message("slowish")).await.expect("250");
    wait_for("delivery", Duration::from_secs(10), || (!fake.emails().is_empty()).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(relay.files("queue").is_empty());
    assert_eq!(fake.emails().len(), 1);
    assert_eq!(email_posts(&fake), 1);
    relay.stop().await;
}

#[tokio::test]
async fn an_acknowledged_message_is_on_disk_and_survives_a_shutdown_until_postmark_takes_it() {
    // Postmark unreachable: nothing can leave the spool.
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let mut relay = TestRelay::start_on(
        dir,
        spool_dir.clone(),
        &["--api-url", "http://127.0.0.1:9", "--max-retry-delay", "200ms"],
        &[("POSTMARK_SERVER_TOKEN", TOKEN)],
    )
    .await;
    let raw = message("durable");
    let id = send(relay.addr, "sender@example.com", &["rcpt@example.com"], &raw).await.expect("250");
    // The moment the client has its 250, the message is complete on disk: in the journal (its
    // own file follows when the first attempt fails, or at the journal's checkpoint).
    let mut journal = Vec::new();
    for segment in std::fs::read_dir(spool_dir.join("journal")).unwrap() {
        journal.extend(std::fs::read(segment.unwrap().path()).unwrap());
    }
    for needle in [&raw[..], id.as_bytes()] {
        assert!(journal.windows(needle.len()).any(|w| w == needle), "in the journal at the 250");
    }
    let queued = QueueId::parse(&id).unwrap();
    let stored =
        wait_for("its file", Duration::from_secs(10), || Spool::open(&spool_dir).unwrap().load(&queued).ok()).await;
    let mut expected = raw.clone();
    expected.extend_from_slice(b"\r\n");
    assert_eq!(stored.raw, expected);
    assert_eq!(stored.header.envelope.rcpt_to, ["rcpt@example.com"]);
    relay.stop().await;
    assert!(relay.files("queue").contains(&format!("{id}.msg")), "left spooled by the shutdown");

    // The next start delivers it.
    let fake = FakeApi::start().await;
    let url = fake.url();
    let dir = tempfile::tempdir().unwrap();
    let mut relay =
        TestRelay::start_on(dir, spool_dir, &["--api-url", url.as_str()], &[("POSTMARK_SERVER_TOKEN", TOKEN)]).await;
    wait_for("delivery after the restart", Duration::from_secs(10), || (fake.emails().len() == 1).then_some(())).await;
    assert_eq!(fake.emails()[0]["Subject"], "durable");
    relay.stop().await;
}

#[tokio::test]
async fn a_dead_letter_is_followed_by_a_notice_to_the_operator() {
    let fake = FakeApi::start().await;
    fake.reject_recipient("gone@example.com", 406);
    let mut relay =
        relay_for(&fake, &["--dead-letter-notify", "ops@example.com", "--notify-from", "relay@example.com"]).await;
    let id = send(relay.addr, "sender@example.com", &["gone@example.com"], &message("inactive")).await.expect("250");
    let notice = wait_for("the notice at the fake", Duration::from_secs(10), || {
        fake.emails().into_iter().find(|e| e["To"] == "ops@example.com")
    })
    .await;
    let from = notice["From"].as_str().unwrap();
    assert!(from.contains("postmark-relay") && from.ends_with("<relay@example.com>"), "{from}");
    let subject = notice["Subject"].as_str().unwrap();
    assert!(subject.contains("inactive") && subject.contains(&id.to_string()), "{subject}");
    let text = notice["TextBody"].as_str().unwrap();
    assert!(text.contains("406") && text.contains("gone@example.com"), "{text}");
    let attachments = notice["Attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1, "the original is attached");
    assert_eq!(attachments[0]["ContentType"], "message/rfc822");
    wait_for("the queue to empty", Duration::from_secs(10), || relay.files("queue").is_empty().then_some(())).await;
    // Exactly one dead letter (the original), one notice, nothing more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(relay.files("dead").iter().filter(|f| f.ends_with(".msg")).count(), 1);
    assert_eq!(fake.emails().iter().filter(|e| e["To"] == "ops@example.com").count(), 1);
    relay.stop().await;
}

#[tokio::test]
async fn a_notice_needs_a_verified_sender_configured() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postmark-relay"))
        .args(["--dead-letter-notify", "ops@example.com", "--dry-run", "--spool"])
        .arg(dir.path().join("spool"))
        .env_remove("RELAY_NOTIFY_FROM")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("notify_from"), "{err}");
}
