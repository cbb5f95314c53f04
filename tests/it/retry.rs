//! Opt-in retries against the fake with injected faults: only what `Error::is_retryable()` allows is repeated.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use postmark_core::{Error, ErrorCode, ResultExt, RetryPolicy, TransportFailure};
use postmark_fake::http::{FakeApi, Fault};
use postmark_server::{ServerClient, types};

/// (attempt, delay, from_retry_after, status) of every retry the policy decided on.
type Log = Arc<Mutex<Vec<(u32, Duration, bool, Option<u16>)>>>;

fn policy(log: &Log) -> RetryPolicy {
    let log = log.clone();
    RetryPolicy::new().base_delay(Duration::from_millis(2)).max_delay(Duration::from_millis(20)).on_retry(move |e| {
        log.lock().expect("log").push((e.attempt, e.delay, e.from_retry_after, e.error.status()));
    })
}

fn client(fake: &FakeApi, policy: RetryPolicy) -> ServerClient {
    ServerClient::builder("t").base_url(fake.url()).retry(policy).build().expect("client")
}

fn email() -> types::SendEmailRequest {
    types::SendEmailRequest::new("sender@example.com", "rcpt@example.org").subject("Hi").text_body("Hello")
}

fn unavailable() -> Fault {
    Fault::api_error(503, 100, "The API is offline for maintenance.")
}

#[tokio::test]
async fn a_get_is_retried_after_5xx_until_it_succeeds() {
    let fake = FakeApi::start().await;
    fake.respond("GET", "/server", 200, r#"{"ID": 1, "Name": "Production"}"#);
    fake.push_fault(Fault::Status { status: 502, body: "<html>bad gateway</html>".into() });
    fake.push_fault(Fault::api_error(500, 0, "Internal error"));
    let log = Log::default();
    let server = client(&fake, policy(&log)).get_server().send().await.into_postmark().expect("third attempt works");
    assert_eq!(server.name, "Production");
    assert_eq!(fake.requests().len(), 3);
    let log = log.lock().expect("log").clone();
    assert_eq!(log.iter().map(|e| (e.0, e.3)).collect::<Vec<_>>(), [(1, Some(502)), (2, Some(500))]);
    assert!(log.iter().all(|e| e.1 <= Duration::from_millis(20) && !e.2), "jittered backoff within the cap: {log:?}");
}

#[tokio::test]
async fn a_send_answered_with_5xx_is_never_retried() {
    let fake = FakeApi::start().await;
    fake.push_fault(Fault::api_error(500, 0, "Internal error"));
    let log = Log::default();
    let err = client(&fake, policy(&log)).send_email().body(email()).send().await.into_postmark().expect_err("500");
    assert_eq!(err.status(), Some(500));
    assert!(!err.is_retryable());
    assert_eq!(fake.requests().len(), 1, "one request: Postmark may have sent it");
    assert!(fake.emails().is_empty());
    assert!(log.lock().expect("log").is_empty());
}

#[tokio::test]
async fn a_send_that_timed_out_is_never_retried() {
    let fake = FakeApi::start().await;
    fake.push_fault(Fault::Delay(Duration::from_secs(3)));
    let log = Log::default();
    let client = ServerClient::builder("t")
        .base_url(fake.url())
        .timeout(Duration::from_millis(300))
        .retry(policy(&log))
        .build()
        .expect("client");
    let err = client.send_email().body(email()).send().await.into_postmark().expect_err("timeout");
    assert!(matches!(err, Error::Transport { kind: TransportFailure::Timeout, .. }), "{err:?}");
    assert_eq!(fake.requests().len(), 1);
    assert!(log.lock().expect("log").is_empty());
}

#[tokio::test]
async fn a_send_is_retried_after_429_waiting_exactly_retry_after() {
    let fake = FakeApi::start().await;
    fake.push_fault(Fault::Respond {
        status: 429,
        headers: vec![("Retry-After".into(), "1".into())],
        body: r#"{"ErrorCode": 429, "Message": "Rate limit exceeded."}"#.into(),
    });
    let log = Log::default();
    let sent = client(&fake, policy(&log)).send_email().body(email()).send().await.into_postmark().expect("sent");
    assert_eq!(sent.error_code, 0);
    assert_eq!(fake.emails().len(), 1, "throttled, then sent once");
    let log = log.lock().expect("log").clone();
    assert_eq!(log, [(1, Duration::from_secs(1), true, Some(429))], "Retry-After beats the 20 ms backoff cap");
}

#[tokio::test]
async fn maintenance_is_retried_even_for_a_send() {
    let fake = FakeApi::start().await;
    fake.push_fault(unavailable());
    let log = Log::default();
    client(&fake, policy(&log)).send_email().body(email()).send().await.into_postmark().expect("sent");
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(fake.emails().len(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_retried_up_to_the_attempt_cap() {
    let fake = FakeApi::start().await;
    let url = fake.url();
    drop(fake); // nothing listens there any more: every attempt is refused before it leaves
    let log = Log::default();
    let client = ServerClient::builder("t").base_url(url).retry(policy(&log).max_attempts(3)).build().expect("c");
    let err = client.send_email().body(email()).send().await.into_postmark().expect_err("refused");
    assert!(matches!(err, Error::Transport { kind: TransportFailure::Connect, .. }), "{err:?}");
    let attempts: Vec<u32> = log.lock().expect("log").iter().map(|e| e.0).collect();
    assert_eq!(attempts, [1, 2], "three attempts in all");
}

#[tokio::test]
async fn retries_stop_at_max_attempts_and_return_the_last_error() {
    let fake = FakeApi::start().await;
    for _ in 0..5 {
        fake.push_fault(unavailable());
    }
    let log = Log::default();
    let err = client(&fake, policy(&log).max_attempts(3)).get_server().send().await.into_postmark().expect_err("503");
    assert_eq!((err.status(), err.error_code()), (Some(503), Some(ErrorCode::Maintenance)));
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn a_retry_after_past_the_time_budget_is_not_waited_for() {
    let fake = FakeApi::start().await;
    fake.push_fault(Fault::Respond {
        status: 429,
        headers: vec![("Retry-After".into(), "120".into())],
        body: r#"{"ErrorCode": 429, "Message": "Rate limit exceeded."}"#.into(),
    });
    let log = Log::default();
    let err = client(&fake, policy(&log).max_elapsed(Duration::from_secs(10)))
        .send_email()
        .body(email())
        .send()
        .await
        .into_postmark()
        .expect_err("429 returned");
    assert_eq!(err.status(), Some(429));
    assert!(err.is_retryable(), "the caller may still retry later");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn client_errors_are_returned_at_once() {
    let fake = FakeApi::start().await;
    fake.push_fault(Fault::api_error(422, 406, "Inactive recipient"));
    let log = Log::default();
    let err = client(&fake, policy(&log)).send_email().body(email()).send().await.into_postmark().expect_err("422");
    assert!(err.is_inactive_recipient());
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn without_a_policy_nothing_is_retried() {
    let fake = FakeApi::start().await;
    fake.push_fault(unavailable());
    let client = ServerClient::builder("t").base_url(fake.url()).build().expect("client");
    let err = client.get_server().send().await.into_postmark().expect_err("503");
    assert!(err.is_retryable());
    assert_eq!(fake.requests().len(), 1);
}
