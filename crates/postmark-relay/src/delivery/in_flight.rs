//! The API requests in flight: the worker sends due messages in new requests while the
//! [`window`](super::window) has room, and applies each request's outcomes when it comes back.

use std::sync::Arc;

use super::{Backend, Worker, api};
use crate::spool::StoredMessage;

/// A finished API request, with what the window needs to learn from it.
pub(super) struct InFlight {
    sent: api::Sent,
    epoch: u64,
    /// Whether the window was full when it was sent.
    full: bool,
}

impl Worker {
    /// Sends due messages in new API requests while the window has room.
    pub(super) fn fill_window(&mut self, now: u64) {
        if !matches!(self.backend, Backend::Api(_)) {
            return;
        }
        while self.in_flight.len() < self.window.allowed() {
            let batch = self.take_batch(now);
            if batch.is_empty() {
                return;
            }
            let Backend::Api(api) = &self.backend else {
                return;
            };
            let (messages, requests): (Vec<StoredMessage>, Vec<_>) = batch.into_iter().unzip();
            let ids = messages.iter().map(|m| m.id.clone()).collect();
            let full = self.in_flight.len() + 1 >= self.window.allowed();
            let epoch = self.window.epoch();
            let sending = api.send(messages, requests, Arc::clone(&self.metrics));
            let task = self.in_flight.spawn(async move { InFlight { sent: sending.await, epoch, full } });
            self.in_flight_ids.insert(task.id(), ids);
        }
    }

    /// Applies the outcomes of a finished API request and lets the window learn from it.
    pub(super) fn finish(&mut self, done: Result<(tokio::task::Id, InFlight), tokio::task::JoinError>) {
        match done {
            Ok((task, done)) => {
                self.in_flight_ids.remove(&task);
                if done.sent.congested {
                    if self.window.congested(done.epoch) {
                        tracing::info!(
                            in_flight = self.window.allowed(),
                            "Postmark is slowing down: fewer requests in flight"
                        );
                    }
                } else {
                    self.window.succeeded(done.full);
                }
                for (msg, outcome) in done.sent.messages.iter().zip(done.sent.outcomes) {
                    self.apply(msg, outcome);
                }
            }
            Err(e) => {
                // The request's task failed (it panicked): its messages are tried again later,
                // from their files or the journal.
                let now = self.clock.now_ms();
                let ids = self.in_flight_ids.remove(&e.id()).unwrap_or_default();
                tracing::error!(error = %e, messages = ids.len(), "an API request failed unexpectedly; retrying its messages in 5s");
                for id in ids {
                    self.schedule.reschedule(&id, now + 5_000);
                }
            }
        }
    }
}
