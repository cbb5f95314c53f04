//! What both fakes count of the load a client puts on them: how much is in flight now, the peak
//! so far, and how much was in flight when each request (or connection) arrived, so that a test
//! can assert a client's concurrency and its back-off without timing anything.

use std::sync::{Arc, Mutex, MutexGuard};

/// A counter of things in flight (HTTP requests being answered, SMTP connections open).
#[derive(Debug, Clone, Default)]
pub struct InFlight {
    inner: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    current: usize,
    peak: usize,
    /// For each arrival in order, how many were in flight counting itself.
    arrivals: Vec<usize>,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more in flight until the returned guard is dropped.
    pub fn enter(&self) -> InFlightGuard {
        let mut c = self.lock();
        c.current += 1;
        c.peak = c.peak.max(c.current);
        let now = c.current;
        c.arrivals.push(now);
        InFlightGuard { counter: self.clone() }
    }

    /// How many are in flight now.
    pub fn current(&self) -> usize {
        self.lock().current
    }

    /// The most that were in flight at once since the start (or the last [`InFlight::reset_peak`]).
    pub fn peak(&self) -> usize {
        self.lock().peak
    }

    /// Starts measuring the peak afresh from what is in flight now.
    pub fn reset_peak(&self) {
        let mut c = self.lock();
        c.peak = c.current;
    }

    /// For every arrival so far, in order: how many were in flight when it arrived, itself
    /// included (1 means it was alone).
    pub fn arrivals(&self) -> Vec<usize> {
        self.lock().arrivals.clone()
    }
}

/// One thing in flight; dropping it ends it.
#[derive(Debug)]
pub struct InFlightGuard {
    counter: InFlight,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut c = self.counter.lock();
        c.current = c.current.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_current_peak_and_what_each_arrival_saw() {
        let load = InFlight::default();
        let a = load.enter();
        let b = load.enter();
        assert_eq!((load.current(), load.peak()), (2, 2));
        drop(a);
        let c = load.enter();
        drop(b);
        drop(c);
        assert_eq!((load.current(), load.peak()), (0, 2));
        load.reset_peak();
        let d = load.enter();
        assert_eq!(load.peak(), 1);
        drop(d);
        assert_eq!(load.arrivals(), [1, 2, 2, 1]);
    }
}
