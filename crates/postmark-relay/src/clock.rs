//! Time: the wall clock the spool stamps messages with, and the delivery worker's clock, which
//! tests can stop and move forward.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis().try_into().unwrap_or(u64::MAX)
}

/// The delivery worker's clock: the wall clock when it was made plus tokio's monotonic time
/// since. In production that is the wall clock (without its jumps); in a test that pauses
/// tokio's time (`#[tokio::test(start_paused = true)]`) it stands still until the runtime is
/// idle and then jumps to the next timer, so hours of retry schedule run in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_ms: u64,
    base: tokio::time::Instant,
}

impl Clock {
    /// A clock reading the wall clock now.
    pub fn new() -> Self {
        Self { base_ms: now_ms(), base: tokio::time::Instant::now() }
    }

    /// Milliseconds since the Unix epoch, by this clock.
    pub fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.base_ms.saturating_add(elapsed)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_worker_clock_follows_tokio_time() {
        let clock = Clock::new();
        let start = clock.now_ms();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(clock.now_ms() - start, 3_600_000, "an hour passed on the paused clock, at once");
        let wall = now_ms();
        assert!(wall.abs_diff(start) < 60_000, "the wall clock did not move an hour");
    }
}
