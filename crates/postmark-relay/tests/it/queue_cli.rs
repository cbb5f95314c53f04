//! `postmark-relay queue list|show|retry|purge` against a prepared spool.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use postmark_fake::http::FakeApi;
use postmark_relay::Envelope;
use postmark_relay::clock::now_ms;
use postmark_relay::spool::{DeadReason, QueueId, RetryState, Spool};

use crate::support::{TestRelay, files, message, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_postmark-relay");

fn queue(spool: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).arg("--spool").arg(spool).arg("queue").args(args).env_clear().output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Two pending messages (one with a failed attempt) and one dead letter.
fn prepare(spool_dir: &Path) -> (QueueId, QueueId, QueueId) {
    let spool = Spool::open(spool_dir).unwrap();
    let mut raw = message("queued-one");
    raw.extend_from_slice(b"\r\n");
    let a = spool.store_blocking(&Envelope::new("s@example.com", ["a@example.com"]), &raw).unwrap();
    let b = spool.store_blocking(&Envelope::new("s@example.com", ["b@example.com", "c@example.com"]), &raw).unwrap();
    spool
        .save_state(
            &b,
            &RetryState {
                attempts: 3,
                last_error: Some("HTTP 503 ErrorCode 100".into()),
                next_attempt_ms: Some(now_ms() + 60_000),
                revived_ms: None,
            },
        )
        .unwrap();
    let d = spool.store_blocking(&Envelope::new("s@example.com", ["gone@example.com"]), &raw).unwrap();
    spool
        .kill(
            &d,
            &DeadReason {
                reason: "Postmark ErrorCode 406: inactive recipient".into(),
                dead_ms: now_ms(),
                attempts: 1,
                recipients: vec![],
            },
        )
        .unwrap();
    (a, b, d)
}

#[test]
fn list_and_show_describe_pending_and_dead_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, d) = prepare(dir.path());
    let (code, out) = queue(dir.path(), &["list"]);
    assert_eq!(code, 0, "{out}");
    let line =
        |id: &QueueId| out.lines().find(|l| l.starts_with(id.as_str())).unwrap_or_else(|| panic!("{out}")).to_string();
    assert!(line(&a).contains("pending") && line(&a).contains("due now"), "{out}");
    let lb = line(&b);
    assert!(lb.contains("pending") && lb.contains("next attempt in") && lb.contains("HTTP 503"), "{lb}");
    assert!(lb.split_whitespace().any(|w| w == "3"), "{lb}");
    assert!(line(&d).contains("dead") && line(&d).contains("406"), "{out}");
    assert!(out.contains("2 pending, 1 dead"), "{out}");

    let (code, out) = queue(dir.path(), &["show", b.as_str()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("state:       pending"), "{out}");
    assert!(out.contains("rcpt to:     <c@example.com>"), "{out}");
    assert!(out.contains("attempts:    3"), "{out}");
    assert!(out.contains("Subject: queued-one"), "{out}");
    assert!(!out.contains("Hello,"), "show prints headers, not the body: {out}");

    let (code, out) = queue(dir.path(), &["show", d.as_str()]);
    assert_eq!(code, 0);
    assert!(out.contains("state:       dead") && out.contains("reason:      Postmark ErrorCode 406"), "{out}");
}

#[test]
fn unknown_or_malformed_ids_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let (code, out) = queue(dir.path(), &["show", "not-an-id"]);
    assert_eq!(code, 1);
    assert!(out.contains("not a queue id"), "{out}");
    let (code, out) = queue(dir.path(), &["purge", "0123456789abcdef01234567"]);
    assert_eq!(code, 1);
    assert!(out.contains("no message"), "{out}");
    let (code, _) = queue(dir.path(), &["retry"]);
    assert_eq!(code, 2, "clap usage error");
}

#[test]
fn purge_removes_pending_and_dead_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _b, d) = prepare(dir.path());
    let (code, out) = queue(dir.path(), &["purge", a.as_str()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("purged from the queue"), "{out}");
    let (code, out) = queue(dir.path(), &["purge", d.as_str()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("purged from dead letters"), "{out}");
    assert_eq!(files(&dir.path().join("queue")).iter().filter(|f| f.ends_with(".msg")).count(), 1);
    assert!(files(&dir.path().join("dead")).is_empty());
}

#[tokio::test]
async fn retry_brings_a_dead_letter_back_and_a_running_relay_sends_it() {
    let fake = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("spool");
    let (_a, _b, d) = prepare(&spool_dir);
    let url = fake.url();
    let mut relay =
        TestRelay::start_on(dir, spool_dir.clone(), &["--api-url", url.as_str()], &[("POSTMARK_SERVER_TOKEN", "t")])
            .await;
    // The message names none of its envelope recipients, so each gets a copy of its own
    // (Postmark requires To): a, b and c.
    wait_for("the two pending messages", Duration::from_secs(10), || (fake.emails().len() == 3).then_some(())).await;
    assert!(files(&spool_dir.join("dead")).contains(&format!("{d}.msg")));
    let (code, out) = queue(&spool_dir, &["retry", d.as_str()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("back into the queue"), "{out}");
    wait_for("the revived message", Duration::from_secs(15), || (fake.emails().len() == 4).then_some(())).await;
    assert_eq!(fake.emails()[3]["To"], "gone@example.com");
    wait_for("an empty spool", Duration::from_secs(5), || {
        (files(&spool_dir.join("queue")).is_empty() && files(&spool_dir.join("dead")).is_empty()).then_some(())
    })
    .await;
    relay.stop().await;
}

#[test]
fn retry_all_requeues_every_dead_letter_and_marks_pending_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, d) = prepare(dir.path());
    let (code, out) = queue(dir.path(), &["retry", "--all"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("3 messages (1 moved back"), "{out}");
    let queue_files = files(&dir.path().join("queue"));
    for id in [&a, &b, &d] {
        assert!(queue_files.contains(&format!("{id}.msg")), "{queue_files:?}");
    }
    assert_eq!(files(&dir.path().join("retry")).len(), 3);
    assert!(files(&dir.path().join("dead")).is_empty());
}
