//! Retry policy as pure functions: how to classify an answer, and how long to wait.
//!
//! Classification follows postmark-reference §4.4, with two deliberate deviations, both towards
//! never bouncing user mail because of a configuration problem:
//! - HTTP 404 means the API URL is wrong (every sending endpoint exists), so it pauses delivery
//!   instead of dead-lettering;
//! - HTTP 4xx other than 401, 404, 413, 422 and 429 (e.g. a proxy's 403 or 407) also pause
//!   delivery. Only Postmark's own verdict on a message (422, or a batch item's ErrorCode) and
//!   HTTP 413 for a single message make a dead letter.

use std::time::Duration;

/// What to do with a message after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Postmark accepted it.
    Delivered,
    /// Try again later (backoff, until the lifetime runs out).
    Transient,
    /// Never retry: dead letter.
    Permanent,
    /// The operator must act (token, account, URL): pause delivery, keep the mail, log loudly.
    Operator,
}

/// Classifies a Postmark `ErrorCode` (from a 422 body or a batch item).
pub fn classify_error_code(code: i64) -> Class {
    match code {
        0 => Class::Delivered,
        10 | 14 | 405 | 413 => Class::Operator,
        100 | 429 => Class::Transient,
        _ => Class::Permanent,
    }
}

/// Classifies an HTTP answer to `/email` or `/email/batch` (the whole request), with the
/// `ErrorCode` of its body when it had one.
pub fn classify_http(status: u16, error_code: Option<i64>) -> Class {
    if let Some(code) = error_code {
        match classify_error_code(code) {
            Class::Operator => return Class::Operator,
            Class::Transient => return Class::Transient,
            _ => {}
        }
    }
    match status {
        200..=299 => match error_code {
            None | Some(0) => Class::Delivered,
            Some(_) => Class::Permanent,
        },
        401 | 404 => Class::Operator,
        413 | 422 => Class::Permanent,
        429 => Class::Transient,
        500..=599 => Class::Transient,
        _ => Class::Operator,
    }
}

/// Classifies an SMTP reply code from upstream: 4xx retry, 5xx permanent, except the
/// authentication and TLS answers, which are the operator's business.
pub fn classify_smtp(code: u16) -> Class {
    match code {
        200..=299 => Class::Delivered,
        // 530 authentication required, 534 mechanism too weak, 535 credentials invalid,
        // 538 encryption required.
        530 | 534 | 535 | 538 => Class::Operator,
        400..=499 => Class::Transient,
        _ => Class::Permanent,
    }
}

/// The wait before attempt `attempt + 1` after `attempt` failures: 1 s doubling each time,
/// capped at `max`, with jitter that keeps it within `[d/2, d]` so retries of many messages
/// spread out. `jitter` is a random number in `[0, 1)`.
pub fn backoff(attempt: u32, max: Duration, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(40);
    let base = Duration::from_secs(1).saturating_mul(1u32 << exp.min(31)).min(max);
    let jitter = jitter.clamp(0.0, 1.0);
    base.mul_f64(0.5 + 0.5 * jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_follow_the_decision_table() {
        assert_eq!(classify_error_code(0), Class::Delivered);
        for op in [10, 14, 405, 413] {
            assert_eq!(classify_error_code(op), Class::Operator, "{op}");
        }
        for t in [100, 429] {
            assert_eq!(classify_error_code(t), Class::Transient, "{t}");
        }
        for p in [300, 400, 401, 402, 403, 406, 409, 410, 411, 412, 1101, 1235] {
            assert_eq!(classify_error_code(p), Class::Permanent, "{p}");
        }
    }

    #[test]
    fn http_statuses_follow_the_decision_table() {
        assert_eq!(classify_http(200, Some(0)), Class::Delivered);
        assert_eq!(classify_http(401, Some(10)), Class::Operator);
        assert_eq!(classify_http(401, None), Class::Operator);
        assert_eq!(classify_http(422, Some(406)), Class::Permanent);
        assert_eq!(classify_http(422, Some(300)), Class::Permanent);
        assert_eq!(classify_http(422, Some(405)), Class::Operator);
        assert_eq!(classify_http(422, Some(413)), Class::Operator);
        assert_eq!(classify_http(422, Some(14)), Class::Operator);
        assert_eq!(classify_http(429, Some(429)), Class::Transient);
        assert_eq!(classify_http(500, None), Class::Transient);
        assert_eq!(classify_http(503, Some(100)), Class::Transient);
        assert_eq!(classify_http(413, None), Class::Permanent);
        assert_eq!(classify_http(404, None), Class::Operator);
        assert_eq!(classify_http(407, None), Class::Operator);
    }

    #[test]
    fn smtp_codes() {
        assert_eq!(classify_smtp(250), Class::Delivered);
        assert_eq!(classify_smtp(451), Class::Transient);
        assert_eq!(classify_smtp(452), Class::Transient);
        assert_eq!(classify_smtp(550), Class::Permanent);
        assert_eq!(classify_smtp(554), Class::Permanent);
        assert_eq!(classify_smtp(535), Class::Operator);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_respects_the_cap() {
        let max = Duration::from_secs(600);
        assert_eq!(backoff(1, max, 0.999_999).as_millis(), 999);
        assert_eq!(backoff(1, max, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(2, max, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(4, max, 0.0), Duration::from_secs(4));
        for attempt in [10, 11, 20, 100, u32::MAX] {
            let d = backoff(attempt, max, 0.999);
            assert!(d <= max, "attempt {attempt}: {d:?}");
            assert!(d >= max / 2, "attempt {attempt}: {d:?}");
        }
        let small = Duration::from_millis(200);
        assert!(backoff(5, small, 0.99) <= small);
        for j in 0..100 {
            let d = backoff(3, max, f64::from(j) / 100.0);
            assert!((Duration::from_secs(2)..=Duration::from_secs(4)).contains(&d), "{d:?}");
        }
    }
}
