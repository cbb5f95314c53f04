//! How many API requests the worker keeps in flight: an adaptive window (AIMD, as TCP does).
//!
//! * It starts at 2 and, while every slot is in use and answers come back fine, grows by one per
//!   good answer (doubling each round trip) up to the first sign of congestion, then by one per
//!   round trip; never past `--api-max-in-flight`. A window that is not full does not grow:
//!   more slots would not deliver more.
//! * A 429 (rate limited), a 503 (unavailable) or a timeout halves it (never below 1), once per
//!   round trip: the answers of requests sent before the cut say nothing about the new window.

/// Where the window starts.
const INITIAL: usize = 2;

/// The adaptive bound on requests in flight.
#[derive(Debug, Clone)]
pub struct Window {
    limit: usize,
    max: usize,
    /// Below it the window grows by one per good answer, from it on by one per window's worth.
    threshold: usize,
    /// Good answers counted towards the next step past the threshold.
    credit: usize,
    /// Counts the cuts; a request remembers the epoch it was sent in.
    epoch: u64,
}

impl Window {
    /// A window bounded by `max` (at least 1).
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self { limit: INITIAL.min(max), max, threshold: max, credit: 0, epoch: 0 }
    }

    /// A window bounded by `max` that starts fully open (the SMTP path: its connections are
    /// cheap to hold, and it only narrows when the upstream defers).
    pub fn open(max: usize) -> Self {
        let max = max.max(1);
        Self { limit: max, ..Self::new(max) }
    }

    /// How many requests may be in flight now.
    pub fn allowed(&self) -> usize {
        self.limit
    }

    /// The epoch a request sent now belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A request came back without a sign of congestion; `full` tells whether the window was
    /// full when it was sent.
    pub fn succeeded(&mut self, full: bool) {
        if !full {
            return;
        }
        if self.limit < self.threshold {
            self.limit += 1;
        } else {
            self.credit += 1;
            if self.credit >= self.limit {
                self.credit = 0;
                self.limit += 1;
            }
        }
        self.limit = self.limit.min(self.max);
    }

    /// A request sent in `epoch` came back rate limited, unavailable or timed out: the window is
    /// halved, unless it was already cut since that request was sent. Returns whether it was.
    pub fn congested(&mut self, epoch: u64) -> bool {
        if epoch != self.epoch {
            return false;
        }
        self.limit = (self.limit / 2).max(1);
        self.threshold = self.limit;
        self.credit = 0;
        self.epoch += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_while_full_up_to_the_bound_and_not_when_idle() {
        let mut w = Window::new(16);
        assert_eq!(w.allowed(), 2);
        w.succeeded(false);
        assert_eq!(w.allowed(), 2, "a window not full does not grow");
        // One step per good answer: 2, 4, 8, 16 in as many round trips.
        for expected in [4, 8, 16] {
            let n = w.allowed();
            for _ in 0..n {
                w.succeeded(true);
            }
            assert_eq!(w.allowed(), expected);
        }
        for _ in 0..100 {
            w.succeeded(true);
        }
        assert_eq!(w.allowed(), 16, "never past the bound");
        assert_eq!(Window::new(0).allowed(), 1);
        assert_eq!(Window::open(20).allowed(), 20);
        assert_eq!(Window::new(1).allowed(), 1);
    }

    #[test]
    fn congestion_halves_once_per_window_then_grows_by_one_per_window() {
        let mut w = Window::new(16);
        while w.allowed() < 16 {
            w.succeeded(true);
        }
        let sent_before = w.epoch();
        assert!(w.congested(sent_before));
        assert_eq!(w.allowed(), 8);
        // The other requests of that window answer 429 too: no further cut.
        for _ in 0..15 {
            assert!(!w.congested(sent_before));
        }
        assert_eq!(w.allowed(), 8);
        // A request sent after the cut is a new sign.
        assert!(w.congested(w.epoch()));
        assert_eq!(w.allowed(), 4);
        for _ in 0..10 {
            assert!(w.congested(w.epoch()));
        }
        assert_eq!(w.allowed(), 1, "never below one");
        // Past the threshold: one more per full window of good answers.
        let mut w = Window::new(16);
        while w.allowed() < 16 {
            w.succeeded(true);
        }
        w.congested(w.epoch());
        for _ in 0..8 {
            w.succeeded(true);
        }
        assert_eq!(w.allowed(), 9);
    }
}
