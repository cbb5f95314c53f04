//! The API backend's batches against the fake Postmark: a batch refused as a whole goes again
//! one request at a time, each built again from its message, and a message to many hidden
//! recipients is built batch by batch.

use postmark_fake::http::{FakeApi, Fault};
use serde_json::Value;

use super::api::{Api, ApiSettings};
use super::{Outcome, RecipientOutcome};
use crate::envelope::Envelope;
use crate::metrics::Metrics;
use crate::spool::{Spool, StoredMessage};

/// A message stored in `spool` with the envelope `to`.
fn stored(spool: &Spool, to: &[&str], raw: &str) -> StoredMessage {
    let id = spool.store_blocking(&Envelope::new("s@example.com", to.iter().copied()), raw.as_bytes()).unwrap();
    spool.load(&id).unwrap()
}

/// A fake Postmark, the backend sending to it, and a spool (with the directory that holds it).
async fn setup() -> (FakeApi, Api, tempfile::TempDir, Spool) {
    let fake = FakeApi::start().await;
    fake.set_server_token("token");
    let settings = ApiSettings::new(fake.url());
    let api = Api::new(settings, &postmark_core::Token::new("token"), Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    (fake, api, dir, spool)
}

/// The paths the fake was asked, in order.
fn paths(fake: &FakeApi) -> Vec<String> {
    fake.requests().into_iter().map(|r| r.path).collect()
}

fn field(email: &Value, name: &str) -> String {
    email[name].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_batch_refused_as_a_whole_goes_again_one_by_one_each_request_built_from_its_message() {
    let (fake, mut api, _dir, spool) = setup().await;
    let plain =
        stored(&spool, &["r@example.com"], "From: s@example.com\r\nTo: r@example.com\r\nSubject: one\r\n\r\nfirst\r\n");
    // Only hidden recipients: one request each, the second copy rebuilt from the message.
    let hidden = stored(
        &spool,
        &["x@example.com", "y@example.com"],
        "From: s@example.com\r\nTo: undisclosed-recipients:;\r\nSubject: two\r\n\r\nsecond\r\n",
    );
    fake.push_fault(Fault::api_error(422, 300, "Invalid email request"));

    let messages = [plain, hidden];
    let outcomes = api.deliver(&messages, vec![None, None], &Metrics::default()).await;

    assert_eq!(paths(&fake), ["/email/batch", "/email", "/email", "/email"], "the refused batch, then each alone");
    let sent: Vec<(String, String, String)> =
        fake.emails().iter().map(|e| (field(e, "To"), field(e, "Bcc"), field(e, "Subject"))).collect();
    assert_eq!(
        sent,
        [
            ("r@example.com".into(), String::new(), "one".into()),
            ("x@example.com".into(), String::new(), "two".into()),
            ("y@example.com".into(), String::new(), "two".into()),
        ]
    );
    assert!(matches!(&outcomes[0], Outcome::Delivered { .. }), "{:?}", outcomes[0]);
    match &outcomes[1] {
        Outcome::PerRecipient(RecipientOutcome { delivered, retry, failed, .. }) => {
            assert_eq!(delivered, &["x@example.com", "y@example.com"]);
            assert!(retry.is_empty() && failed.is_empty());
        }
        other => panic!("expected per-recipient outcomes, got {other:?}"),
    }
}

#[tokio::test]
async fn a_batch_refused_as_a_whole_for_a_transient_reason_is_not_sent_again_now() {
    let (fake, mut api, _dir, spool) = setup().await;
    let raw = "From: s@example.com\r\nTo: r@example.com\r\nSubject: s\r\n\r\nbody\r\n";
    let messages = [stored(&spool, &["r@example.com"], raw), stored(&spool, &["r@example.com"], raw)];
    fake.push_fault(Fault::api_error(500, 0, "Internal error"));

    let outcomes = api.deliver(&messages, vec![None, None], &Metrics::default()).await;

    assert_eq!(paths(&fake), ["/email/batch"], "retried later by the queue, not one by one");
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Transient(_))), "{outcomes:?}");
}

#[tokio::test]
async fn copies_for_many_hidden_recipients_are_built_one_batch_at_a_time() {
    const HIDDEN: usize = 40;
    let (fake, api, _dir, spool) = setup().await;
    let body = "x".repeat(30_000);
    // About three copies of 30 KB a request.
    let mut api = api.with_batch_limits(500, 100_000);
    let hidden: Vec<String> = (0..HIDDEN).map(|n| format!("h{n}@example.com")).collect();
    let rcpt: Vec<&str> = hidden.iter().map(String::as_str).collect();
    let raw = format!("From: s@example.com\r\nTo: undisclosed-recipients:;\r\nSubject: s\r\n\r\n{body}\r\n");
    let messages = [stored(&spool, &rcpt, &raw)];

    let outcomes = api.deliver(&messages, vec![None], &Metrics::default()).await;

    assert!(matches!(&outcomes[0], Outcome::PerRecipient(r) if r.delivered.len() == HIDDEN), "{outcomes:?}");
    // One request per hidden recipient, each to that recipient alone, three a batch.
    let emails = fake.emails();
    let to: Vec<String> = emails.iter().map(|e| field(e, "To")).collect();
    assert_eq!(to, hidden);
    assert!(emails.iter().all(|e| field(e, "Bcc").is_empty() && field(e, "Cc").is_empty()));
    assert_eq!(paths(&fake).len(), HIDDEN.div_ceil(3), "{:?}", paths(&fake));
    // Built as the batches went, never every copy at once: the batch, the next copy and the
    // converted message it is built from.
    assert!(api.peak_built() <= 5, "held {} copies at once", api.peak_built());
}
