//! A backend whose outcomes are given in advance and that records when each attempt was made
//! (by the worker's kind of clock), for tests of retry schedules that run in paused time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::Outcome;
use crate::clock::Clock;
use crate::spool::{QueueId, StoredMessage};

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Scripted {
    outcomes: Arc<Mutex<VecDeque<Outcome>>>,
    then: Outcome,
    attempts: Arc<Mutex<Vec<(QueueId, u64)>>>,
    clock: Clock,
}

impl Scripted {
    /// Answers with `outcomes` in order, then with `then` for ever.
    pub(crate) fn new(outcomes: impl IntoIterator<Item = Outcome>, then: Outcome) -> Self {
        Self {
            outcomes: Arc::new(Mutex::new(outcomes.into_iter().collect())),
            then,
            attempts: Arc::default(),
            clock: Clock::new(),
        }
    }

    /// Every attempt so far: the message and when (ms since the epoch, by the clock).
    pub(crate) fn attempts(&self) -> Vec<(QueueId, u64)> {
        self.attempts.lock().unwrap().clone()
    }

    pub(super) fn deliver(&mut self, messages: &[StoredMessage]) -> Vec<Outcome> {
        messages
            .iter()
            .map(|m| {
                self.attempts.lock().unwrap().push((m.id.clone(), self.clock.now_ms()));
                self.outcomes.lock().unwrap().pop_front().unwrap_or_else(|| self.then.clone())
            })
            .collect()
    }
}
