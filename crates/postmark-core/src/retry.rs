//! Opt-in retries: which failures are retried is decided by [`Error::is_retryable`], when and how often by a
//! [`RetryPolicy`] (exponential backoff with full jitter, capped attempts and elapsed time, `Retry-After` on 429).

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::Error;

/// When and how often a client repeats a request that failed in a way [`Error::is_retryable`] allows.
///
/// Nothing else is retried: a timed-out send, a 5xx answer to a send or any other POST, and every 4xx other than 429
/// are returned at once, because Postmark has no idempotency key and repeating them could deliver a message twice.
/// What is retried: connect failures (the request never left), HTTP 429 and ErrorCode 100 (maintenance), and 5xx
/// answers to GET/PUT/DELETE.
///
/// The wait before retry *n* (1-based) is a random duration between zero and
/// `min(max_delay, base_delay × 2ⁿ⁻¹)` ("full jitter"), except after a 429 that carries `Retry-After`, when it is
/// exactly that long. Retrying stops after [`max_attempts`](Self::max_attempts) attempts in all, or when the next
/// wait would end after [`max_elapsed`](Self::max_elapsed) from the first attempt; the last error is then returned.
#[derive(Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    max_elapsed: Duration,
    observer: Option<Observer>,
}

/// The callback of [`RetryPolicy::on_retry`].
type Observer = Arc<dyn Fn(&RetryEvent<'_>) + Send + Sync>;

/// One decision to retry, as reported to [`RetryPolicy::on_retry`].
#[derive(Debug)]
pub struct RetryEvent<'a> {
    /// The attempt that failed (1 for the first request).
    pub attempt: u32,
    /// How long the client waits before the next attempt.
    pub delay: Duration,
    /// Whether the delay came from the answer's `Retry-After` header.
    pub from_retry_after: bool,
    /// Why the attempt failed.
    pub error: &'a Error,
}

impl Default for RetryPolicy {
    /// 4 attempts, 200 ms base delay, 5 s maximum delay, 30 s in all.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
            observer: None,
        }
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("base_delay", &self.base_delay)
            .field("max_delay", &self.max_delay)
            .field("max_elapsed", &self.max_elapsed)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl RetryPolicy {
    /// The default policy (see [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Attempts in all, the first one included (default 4). `1` disables retrying; `0` is treated as `1`.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The backoff unit: retry *n* waits up to `base × 2ⁿ⁻¹` (default 200 ms).
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// The longest backoff wait (default 5 s). A `Retry-After` is honoured even when longer, within `max_elapsed`.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The time budget from the first attempt: no retry is started whose wait would end after it (default 30 s).
    pub fn max_elapsed(mut self, budget: Duration) -> Self {
        self.max_elapsed = budget;
        self
    }

    /// Calls `f` before each wait, e.g. to log it.
    pub fn on_retry(mut self, f: impl Fn(&RetryEvent<'_>) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(f));
        self
    }

    /// The upper bound of the jittered wait before retry number `retry` (1-based).
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The decision after attempt `attempt` failed with a retryable error: the wait before the next attempt, or
    /// `None` to stop. `elapsed` is the time since the first attempt; `retry_after` the server's hint, if any; `unit`
    /// a number in `[0, 1)` that picks the jittered wait (random in practice).
    pub fn decide(
        &self,
        attempt: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let delay = match retry_after {
            Some(hint) => hint,
            None => self.backoff_ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0)),
        };
        (elapsed.saturating_add(delay) <= self.max_elapsed).then_some(delay)
    }

    pub(crate) fn notify(&self, event: &RetryEvent<'_>) {
        if let Some(f) = &self.observer {
            f(event);
        }
    }
}

/// A number in `[0, 1)` from the process's random hash keys and the clock (no RNG dependency).
pub(crate) fn random_unit() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Reads a `Retry-After` value: delay-seconds, or an HTTP date (a date in the past means "now").
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_grows_exponentially_up_to_the_cap() {
        let p = RetryPolicy::new().base_delay(Duration::from_millis(100)).max_delay(Duration::from_millis(700));
        let ceilings: Vec<u128> = (1..=5).map(|n| p.backoff_ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 700, 700]);
        // The wait is the ceiling scaled by the random unit: anywhere from 0 up to the ceiling.
        assert_eq!(p.decide(3, Duration::ZERO, None, 0.0), Some(Duration::ZERO));
        assert_eq!(p.decide(3, Duration::ZERO, None, 0.5), Some(Duration::from_millis(200)));
        assert_eq!(p.backoff_ceiling(200), Duration::from_millis(700), "no overflow on huge attempt numbers");
    }

    #[test]
    fn attempts_and_elapsed_time_are_capped() {
        let p =
            RetryPolicy::new().max_attempts(3).max_elapsed(Duration::from_secs(2)).base_delay(Duration::from_secs(1));
        assert!(p.decide(2, Duration::ZERO, None, 0.5).is_some());
        assert_eq!(p.decide(3, Duration::ZERO, None, 0.5), None, "the third attempt was the last");
        assert_eq!(p.decide(1, Duration::from_millis(1900), None, 0.5), None, "the wait would end past the budget");
        assert_eq!(RetryPolicy::new().max_attempts(0).decide(1, Duration::ZERO, None, 0.5), None, "0 means 1");
    }

    #[test]
    fn retry_after_is_used_as_is_within_the_budget() {
        let p = RetryPolicy::new().max_delay(Duration::from_millis(10)).max_elapsed(Duration::from_secs(5));
        assert_eq!(p.decide(1, Duration::ZERO, Some(Duration::from_secs(3)), 0.9), Some(Duration::from_secs(3)));
        assert_eq!(p.decide(1, Duration::from_secs(3), Some(Duration::from_secs(3)), 0.9), None);
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), Some(Duration::ZERO), "past dates: now");
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn random_units_stay_in_range() {
        for _ in 0..1000 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u), "{u}");
        }
    }
}
