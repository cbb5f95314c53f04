//! The worker's API requests in flight against a fake Postmark that is far away: the window grows
//! to `--api-max-in-flight` and halves on 429s, asserted on what the fake counted, not on time.

use std::sync::Arc;
use std::time::Duration;

use postmark_fake::http::FakeApi;
use tokio::sync::mpsc;

use super::handoff::{Budget, Fresh, Queued};
use super::{Backend, Worker, WorkerConfig, api};
use crate::envelope::Envelope;
use crate::shutdown::Shutdown;
use crate::spool::{Area, Spool, StoredMessage};

/// Waits (up to a minute) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..6_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// A message stored in `spool`, as a session hands it over.
fn message(spool: &Spool, n: usize) -> StoredMessage {
    let raw = format!("From: s@example.com\r\nTo: r@example.com\r\nSubject: m{n}\r\n\r\nbody {n}\r\n");
    let id = spool.store_blocking(&Envelope::new("s@example.com", ["r@example.com"]), raw.as_bytes()).unwrap();
    spool.load(&id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_grow_to_the_bound_halve_down_to_one_on_429_and_lose_nothing() {
    const MESSAGES: usize = 200;
    let fake = FakeApi::start().await;
    fake.set_server_token("token");
    fake.set_latency(Duration::from_millis(50));
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(dir.path()).unwrap());
    let settings = api::ApiSettings { max_in_flight: 8, ..api::ApiSettings::new(fake.url()) };
    let token = postmark_core::Token::new("token");
    // Two messages a request, so that there are many requests to keep in flight.
    let api = api::Api::new(settings, &token, Default::default()).unwrap().with_batch_limits(2, usize::MAX);
    let shutdown = Shutdown::new();
    let (tx, rx) = mpsc::unbounded_channel();
    let cfg = WorkerConfig {
        max_retry_delay: Duration::from_millis(500),
        message_lifetime: Duration::from_secs(600),
        rescan_interval: Duration::from_secs(600),
    };
    let task = tokio::spawn(Worker::new(Arc::clone(&spool), Backend::Api(api), cfg, rx, shutdown.signal()).run());
    let budget = Arc::new(Budget::new(usize::MAX));
    for n in 0..MESSAGES {
        let msg = message(&spool, n);
        tx.send(Queued { id: msg.id.clone(), fresh: Some(Fresh::new(msg, None, budget.reserve(1).unwrap())) }).unwrap();
    }

    // A slow Postmark: the window opens up to the bound, and never past it.
    until("8 requests in flight", || fake.load().peak() >= 8).await;
    assert_eq!(fake.load().peak(), 8, "never more than --api-max-in-flight");

    // Rate limited: every answer a 429. Each round trip of 429s halves the window, down to one
    // request at a time, which is all that arrives from then on.
    for path in ["/email", "/email/batch"] {
        fake.respond("POST", path, 429, "Rate limit exceeded");
    }
    let before = fake.load().arrivals().len();
    until("30 requests answered 429", || fake.load().arrivals().len() >= before + 30).await;
    let seen = fake.load().arrivals();
    let last: Vec<usize> = seen[seen.len() - 10..].to_vec();
    assert_eq!(last, [1; 10], "one request at a time while every answer is 429: {:?}", &seen[before..]);

    // Postmark recovers: everything is delivered, each message once.
    for path in ["/email", "/email/batch"] {
        fake.stop_responding("POST", path);
    }
    fake.load().reset_peak();
    until("every message delivered", || fake.emails().len() >= MESSAGES).await;
    until("the spool emptied", || spool.ids(Area::Queue).unwrap().is_empty()).await;
    assert!(fake.load().peak() > 1, "the window opens again after the 429s");
    let mut subjects: Vec<String> = fake.emails().iter().map(|e| e["Subject"].as_str().unwrap().to_owned()).collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), MESSAGES, "every message once, none twice");
    assert_eq!(fake.emails().len(), MESSAGES);
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
}
