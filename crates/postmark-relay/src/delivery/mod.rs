//! The delivery worker: takes due messages from the spool, sends them over the configured path,
//! and applies each message's outcome (remove, retry later, dead letter, or pause).
//!
//! The worker keeps a [`schedule::Schedule`] in memory and sleeps until the earliest due time, a
//! newly queued message, a periodic rescan of the spool (which picks up `queue retry` markers and
//! messages revived from `dead/`), or shutdown. Retry state survives restarts in
//! `queue/<id>.state`; after a restart every pending message is due at once.

pub mod api;
#[cfg(test)]
mod api_tests;
mod backend;
mod copies;
pub mod dry_run;
pub mod handoff;
mod in_flight;
pub mod notify;
pub mod policy;
pub mod schedule;
#[cfg(test)]
mod scripted;
pub mod smtp;
mod split;
pub mod window;
#[cfg(test)]
mod window_tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::logging::message as log;
use crate::metrics::{Dead, Deferral, Metrics};
use crate::secrets::Credentials;
use crate::shutdown::ShutdownSignal;
use crate::spool::{Area, DeadReason, LoadError, QueueId, RetryState, Spool, StoredMessage};
pub use backend::{Backend, BackendError, Outcome, RecipientOutcome};
use handoff::{Fresh, Queued};
use postmark_server::types::SendEmailRequest;
use schedule::{Entry, Schedule};

/// Every how many rescans `queue/` itself is listed (the others only read `retry/`).
const FULL_SCAN_EVERY: u64 = 30;

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Cap on the wait between attempts.
    pub max_retry_delay: Duration,
    /// How long a message is retried.
    pub message_lifetime: Duration,
    /// How often `retry/` is read for `queue retry` markers; `queue/` itself is listed every
    /// 30 such intervals as a safety net.
    pub rescan_interval: Duration,
}

/// The delivery worker.
#[derive(Debug)]
pub struct Worker {
    spool: Arc<Spool>,
    backend: Backend,
    cfg: WorkerConfig,
    schedule: Schedule,
    incoming: mpsc::UnboundedReceiver<Queued>,
    /// Scheduled messages handed over in memory and not yet taken (see [`handoff`]).
    fresh: HashMap<QueueId, Fresh>,
    shutdown: ShutdownSignal,
    paused_until_ms: u64,
    pauses: u32,
    metrics: Arc<Metrics>,
    credentials: Option<watch::Receiver<Arc<Credentials>>>,
    notifier: Option<notify::Notifier>,
    clock: crate::clock::Clock,
    /// API requests in flight (the other paths deliver one batch at a time).
    in_flight: JoinSet<in_flight::InFlight>,
    /// The messages of each request in flight, should its task fail.
    in_flight_ids: HashMap<tokio::task::Id, Vec<QueueId>>,
    /// How many API requests may be in flight.
    window: window::Window,
    /// Where each delivery is recorded for the preview UI (see [`crate::delivered`]).
    delivered: Option<Arc<crate::delivered::Delivered>>,
}

impl Worker {
    /// A worker over `spool`, fed new messages on `incoming`.
    pub fn new(
        spool: Arc<Spool>,
        backend: Backend,
        cfg: WorkerConfig,
        incoming: mpsc::UnboundedReceiver<Queued>,
        shutdown: ShutdownSignal,
    ) -> Self {
        let backend_window = match &backend {
            Backend::Api(api) => Some(api.max_in_flight()),
            _ => None,
        };
        Self {
            spool,
            backend,
            cfg,
            schedule: Schedule::default(),
            incoming,
            fresh: HashMap::new(),
            shutdown,
            paused_until_ms: 0,
            pauses: 0,
            metrics: Arc::default(),
            credentials: None,
            notifier: None,
            clock: crate::clock::Clock::new(),
            in_flight: JoinSet::new(),
            in_flight_ids: HashMap::new(),
            window: window::Window::new(match &backend_window {
                Some(max) => *max,
                None => 1,
            }),
            delivered: None,
        }
    }

    /// Records every delivery in `delivered` (what the preview UI lists as delivered).
    pub fn with_delivered(mut self, delivered: Arc<crate::delivered::Delivered>) -> Self {
        self.delivered = Some(delivered);
        self
    }

    /// Notes that `msg` reached `recipients`, with Postmark's `reference`.
    fn record_delivered(&self, msg: &StoredMessage, recipients: &[String], reference: &str) {
        if let Some(d) = &self.delivered {
            d.push(crate::delivered::Record::of(msg, recipients, reference, self.clock.now_ms()));
        }
    }

    /// Sends a notice to the operator for every message given up (see [`notify`]).
    pub fn with_notifier(mut self, notifier: notify::Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Queues the dead-letter notice for `msg`, if one is due.
    fn notify(&mut self, msg: &StoredMessage, death: notify::Death<'_>) {
        let now = self.clock.now_ms();
        let Some((envelope, raw)) = self.notifier.as_mut().and_then(|n| n.notice(msg, death, now)) else {
            return;
        };
        let header = crate::spool::Header::new(envelope, &raw).with_routing(crate::envelope::Routing {
            stream: None,
            route: None,
            notice: true,
        });
        match self.spool.store_with_header(&header, &raw) {
            Ok(id) => {
                tracing::info!(queue_id = %id, dead_id = %death.id, "dead-letter notice queued");
                self.adopt(&id, now);
            }
            Err(e) => tracing::error!(dead_id = %death.id, error = %e, "cannot queue the dead-letter notice"),
        }
    }

    /// Takes new credentials from `updates` (reloads on SIGHUP or a changed secret file); each
    /// update also ends a pause.
    pub fn with_credential_updates(mut self, updates: watch::Receiver<Arc<Credentials>>) -> Self {
        self.credentials = Some(updates);
        self
    }

    /// Switches the backend to the latest credentials; if delivery was paused (a refused token,
    /// say), it resumes at once with every waiting message due now.
    fn use_new_credentials(&mut self) {
        let Some(updates) = &mut self.credentials else {
            return;
        };
        let credentials = Arc::clone(&updates.borrow_and_update());
        if let Err(e) = self.backend.set_credentials(&credentials) {
            tracing::error!(error = %e, "cannot use the reloaded credentials; keeping the current ones");
            return;
        }
        let now = self.clock.now_ms();
        if self.paused_until_ms > now {
            tracing::info!("credentials reloaded: resuming delivery");
            self.paused_until_ms = 0;
            self.pauses = 0;
            self.metrics.resume();
            for id in self.schedule.waiting() {
                self.schedule.reschedule(&id, now);
            }
        }
    }

    /// Records into `metrics` (by default into a registry of its own that nobody reads).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.schedule.observe(Arc::clone(&metrics));
        self.metrics = metrics;
        self
    }

    /// Loads every pending message from the spool (quarantining unreadable ones); all are due
    /// now. Returns how many are pending.
    pub fn load_pending(&mut self) -> std::io::Result<usize> {
        let now = self.clock.now_ms();
        for id in self.spool.ids(Area::Queue)? {
            self.adopt(&id, now);
        }
        Ok(self.schedule.len())
    }

    /// Adds a newly queued message to the schedule, keeping what was handed over in memory.
    fn receive(&mut self, queued: Queued) {
        let now = self.clock.now_ms();
        let Some(fresh) = queued.fresh else {
            return self.adopt(&queued.id, now);
        };
        if self.schedule.contains(&queued.id) {
            return;
        }
        // A new message has no retry state and was received just now: nothing to read.
        let expires_ms = fresh.message.header.received_ms.saturating_add(duration_ms(self.cfg.message_lifetime));
        self.schedule.insert(queued.id.clone(), Entry { due_ms: now, attempts: 0, expires_ms });
        self.fresh.insert(queued.id, fresh);
    }

    /// Adds a message found in the spool to the schedule.
    fn adopt(&mut self, id: &QueueId, now: u64) {
        if self.schedule.contains(id) {
            return;
        }
        match self.spool.peek(Area::Queue, id) {
            Ok(header) => {
                let state = self.spool.state(id);
                let start = state.revived_ms.unwrap_or(header.received_ms).max(header.received_ms);
                self.schedule.insert(
                    id.clone(),
                    Entry {
                        due_ms: now,
                        attempts: state.attempts,
                        expires_ms: start.saturating_add(duration_ms(self.cfg.message_lifetime)),
                    },
                );
            }
            Err(LoadError::NotFound) => {}
            Err(LoadError::Corrupt(reason)) => self.quarantine(id, &reason),
            Err(LoadError::Io(e)) => {
                tracing::warn!(queue_id = %id, error = %e, "cannot read spooled message; will try again on the next scan");
            }
        }
    }

    fn quarantine(&mut self, id: &QueueId, reason: &str) {
        self.schedule.remove(id);
        self.fresh.remove(id);
        self.metrics.quarantined();
        match self.spool.quarantine(Area::Queue, id, reason) {
            Ok(path) => tracing::warn!(
                queue_id = %id,
                reason,
                path = %path.display(),
                "quarantined unreadable spool file"
            ),
            Err(e) => tracing::error!(queue_id = %id, reason, error = %e, "cannot quarantine unreadable spool file"),
        }
    }

    /// Acts on `queue retry` markers (which also announce revived dead letters) and, with
    /// `full`, lists `queue/` to adopt any message the worker does not know yet (a safety net).
    fn rescan(&mut self, full: bool) {
        let now = self.clock.now_ms();
        match self.spool.take_retry_requests() {
            Ok(ids) => {
                if !ids.is_empty() && self.paused_until_ms > now {
                    tracing::info!("retry requested by the operator: resuming delivery");
                    self.paused_until_ms = 0;
                    self.pauses = 0;
                    self.metrics.resume();
                }
                for id in ids {
                    if self.schedule.contains(&id) {
                        self.schedule.reschedule(&id, now);
                    } else {
                        self.adopt(&id, now);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read retry requests"),
        }
        if !full {
            return;
        }
        match self.spool.ids(Area::Queue) {
            Ok(ids) => {
                for id in ids {
                    self.adopt(&id, now);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot scan the spool"),
        }
    }

    /// Runs until shutdown. The batch in flight when shutdown begins is finished (the caller
    /// bounds that with its deadline); everything else stays spooled.
    pub async fn run(mut self) {
        let mut next_rescan = self.clock.now_ms() + duration_ms(self.cfg.rescan_interval);
        let mut next_full_scan = next_rescan;
        let mut incoming_closed = false;
        loop {
            if self.shutdown.is_triggered() {
                break;
            }
            if self.credentials.as_ref().is_some_and(|c| c.has_changed().unwrap_or(false)) {
                self.use_new_credentials();
            }
            while let Ok(queued) = self.incoming.try_recv() {
                self.receive(queued);
            }
            let now = self.clock.now_ms();
            // Wall clock: /healthz compares it with its own.
            self.metrics.worker_seen(crate::clock::now_ms());
            if now >= next_rescan {
                let full = now >= next_full_scan;
                self.rescan(full);
                next_rescan = now + duration_ms(self.cfg.rescan_interval);
                if full {
                    next_full_scan =
                        now.saturating_add(duration_ms(self.cfg.rescan_interval).saturating_mul(FULL_SCAN_EVERY));
                }
            }
            if self.paused_until_ms <= now && self.schedule.is_empty() {
                // Nothing left to try the configuration with (purged meanwhile).
                self.metrics.resume();
            }
            let concurrent = matches!(self.backend, Backend::Api(_));
            let paused = self.paused_until_ms > now;
            if concurrent && !paused {
                self.fill_window(now);
            }
            let batch = if paused || concurrent { Vec::new() } else { self.take_batch(now) };
            if batch.is_empty() {
                let mut wake = next_rescan;
                let window_full = concurrent && self.in_flight.len() >= self.window.allowed();
                if paused {
                    wake = wake.min(self.paused_until_ms);
                } else if !window_full && let Some(due) = self.schedule.next_due() {
                    wake = wake.min(due);
                }
                let sleep = Duration::from_millis(wake.saturating_sub(now));
                tokio::select! {
                    () = self.shutdown.wait() => break,
                    queued = self.incoming.recv(), if !incoming_closed => match queued {
                        Some(queued) => self.receive(queued),
                        // No session will queue anything any more; keep draining the schedule.
                        None => incoming_closed = true,
                    },
                    Some(done) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => self.finish(done),
                    () = tokio::time::sleep(sleep) => {}
                    () = credential_update(&mut self.credentials) => self.use_new_credentials(),
                }
                continue;
            }
            let (batch, requests): (Vec<StoredMessage>, Vec<Option<Vec<SendEmailRequest>>>) = batch.into_iter().unzip();
            let outcomes = self.backend.deliver(&batch, requests, &self.metrics).await;
            for (msg, outcome) in batch.iter().zip(outcomes) {
                self.apply(msg, outcome);
            }
        }
        // The requests in flight when shutdown began are finished (the caller bounds that).
        while let Some(done) = self.in_flight.join_next_with_id().await {
            self.finish(done);
        }
        tracing::info!(pending = self.schedule.len(), "delivery worker stopped; pending messages stay spooled");
    }

    /// Takes due messages up to the backend's batch limits, loading them from disk unless they
    /// were handed over in memory (then with their requests, when built).
    fn take_batch(&mut self, now: u64) -> Vec<(StoredMessage, Option<Vec<SendEmailRequest>>)> {
        let (max_count, max_bytes) = self.backend.batch_limits();
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        while batch.len() < max_count {
            let Some(id) = self.schedule.pop_due(now) else {
                break;
            };
            // Handed over in memory: taken only if it fits (it stays in memory otherwise: it may
            // have no file yet).
            if let Some(size) = self.fresh.get(&id).map(|f| f.message.raw.len()) {
                if !batch.is_empty() && bytes + size > max_bytes {
                    self.schedule.reschedule(&id, now);
                    break;
                }
                if let Some(fresh) = self.fresh.remove(&id) {
                    bytes += size;
                    batch.push((fresh.message, fresh.requests));
                }
                continue;
            }
            match self.spool.load(&id).map(|msg| (msg, None)) {
                Ok((msg, requests)) => {
                    if !batch.is_empty() && bytes + msg.raw.len() > max_bytes {
                        self.schedule.reschedule(&id, now);
                        break;
                    }
                    bytes += msg.raw.len();
                    batch.push((msg, requests));
                }
                Err(LoadError::NotFound) if self.spool.is_unwritten(&id) => {
                    // Not in memory and no file yet: the journal's checkpoint writes it.
                    tracing::warn!(queue_id = %id, "message not in memory and without a file yet; retrying in 1s");
                    self.schedule.reschedule(&id, now + 1_000);
                }
                Err(LoadError::NotFound) => {
                    // Purged by the operator meanwhile.
                    self.schedule.remove(&id);
                }
                Err(LoadError::Corrupt(reason)) => self.quarantine(&id, &reason),
                Err(LoadError::Io(e)) => {
                    tracing::warn!(queue_id = %id, error = %e, "cannot read spooled message; retrying in 5s");
                    self.schedule.reschedule(&id, now + 5_000);
                }
            }
        }
        batch
    }

    fn apply(&mut self, msg: &StoredMessage, outcome: Outcome) {
        // A message committed without a file gets one before anything is done that needs it (a
        // retry reads it, a dead letter is made of it).
        if !matches!(outcome, Outcome::Delivered { .. })
            && let Err(e) = self.spool.ensure_written(msg)
        {
            // Memory and the journal hold its only copies: keep it here, and try again.
            tracing::error!(queue_id = %msg.id, error = %e, "cannot write the message's spool file; keeping it in memory, retrying in 5s");
            let now = self.clock.now_ms();
            self.fresh.insert(msg.id.clone(), Fresh::kept(msg.clone()));
            self.schedule.reschedule(&msg.id, now + 5_000);
            return;
        }
        let id = &msg.id;
        match outcome {
            Outcome::Delivered { reference } => {
                if let Err(e) = self.spool.remove(id) {
                    tracing::error!(queue_id = %id, error = %e, "delivered, but cannot remove it from the spool; it may be sent again");
                }
                self.schedule.remove(id);
                self.pauses = 0;
                self.metrics.delivered(self.backend.path());
                self.metrics.resume();
                let path = self.backend.path().label();
                log::delivered(msg, path, &reference, &msg.header.envelope.rcpt_to, false);
                self.record_delivered(msg, &msg.header.envelope.rcpt_to, &reference);
            }
            Outcome::Transient(reason) => self.defer(msg, &reason, Deferral::Transient),
            Outcome::Permanent(reason) => self.kill(msg, &reason, Dead::Permanent),
            Outcome::Operator(reason) => {
                self.pause(&reason);
                self.defer(msg, &reason, Deferral::Paused);
            }
            Outcome::PerRecipient(r) => self.apply_split(msg, r),
        }
    }

    /// Schedules another attempt; a [`Deferral::Paused`] one does not count as an attempt.
    fn defer(&mut self, msg: &StoredMessage, reason: &str, class: Deferral) {
        let count_attempt = class != Deferral::Paused;
        let id = &msg.id;
        let now = self.clock.now_ms();
        let Some(entry) = self.schedule.get(id).cloned() else {
            return;
        };
        let attempts = entry.attempts + u32::from(count_attempt);
        if count_attempt && now >= entry.expires_ms {
            let reason = format!("gave up after {attempts} attempts over the message lifetime; last error: {reason}");
            return self.kill(msg, &reason, Dead::Expired);
        }
        self.metrics.deferred(class);
        let due = if count_attempt {
            now + duration_ms(policy::backoff(attempts, self.cfg.max_retry_delay, rand::random::<f64>()))
        } else {
            self.paused_until_ms.max(now)
        };
        let due = due.min(entry.expires_ms.max(now));
        if let Some(e) = self.schedule.remove(id) {
            self.schedule.insert(id.clone(), Entry { due_ms: due, attempts, ..e });
        }
        let state = RetryState {
            attempts,
            last_error: Some(reason.to_string()),
            next_attempt_ms: Some(due),
            revived_ms: self.spool.state(id).revived_ms,
        };
        if let Err(e) = self.spool.save_state(id, &state) {
            tracing::warn!(queue_id = %id, error = %e, "cannot record retry state");
        }
        log::retried(msg, self.backend.path().label(), attempts, due.saturating_sub(now), reason);
    }

    fn kill(&mut self, msg: &StoredMessage, reason: &str, class: Dead) {
        let id = &msg.id;
        let attempts = self.schedule.get(id).map_or(0, |e| e.attempts) + 1;
        let dead =
            DeadReason { reason: reason.to_string(), dead_ms: self.clock.now_ms(), attempts, recipients: Vec::new() };
        self.schedule.remove(id);
        match self.spool.kill(id, &dead) {
            Ok(()) => {
                self.metrics.dead_lettered(class);
                log::dead(msg, self.backend.path().label(), None, &msg.header.envelope.rcpt_to, reason, attempts);
                let death = notify::Death { id, reason, attempts, recipients: &msg.header.envelope.rcpt_to };
                self.notify(msg, death);
            }
            Err(e) => tracing::error!(queue_id = %id, error = %e, "cannot move message to dead letters"),
        }
    }

    fn pause(&mut self, reason: &str) {
        let now = self.clock.now_ms();
        if self.paused_until_ms > now {
            return;
        }
        self.pauses = self.pauses.saturating_add(1);
        let wait = policy::backoff(self.pauses + 4, self.cfg.max_retry_delay, 1.0 - f64::EPSILON)
            .max(Duration::from_millis(100));
        self.paused_until_ms = now + duration_ms(wait);
        self.metrics.pause(reason);
        tracing::error!(
            error = %reason,
            resume_in_ms = duration_ms(wait),
            "DELIVERY PAUSED: Postmark refused the relay's credentials or account; no mail is bounced, \
             it stays queued. Fix the configuration (a token file or the config file is re-read when it \
             changes, or on SIGHUP), or run `postmark-relay queue retry --all`"
        );
    }
}

/// Resolves when new credentials arrive; never, without an update channel (or once it is gone).
async fn credential_update(updates: &mut Option<watch::Receiver<Arc<Credentials>>>) {
    match updates {
        Some(rx) => {
            if rx.changed().await.is_err() {
                *updates = None;
            }
        }
        None => std::future::pending().await,
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Envelope, Via};
    use crate::shutdown::Shutdown;

    #[tokio::test]
    async fn unreadable_spool_files_are_quarantined_and_the_rest_is_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path()).unwrap());
        let env = Envelope::new("s@example.com", ["r@example.com"]);
        let good = spool.store_blocking(&env, b"Subject: good\r\n\r\nok\r\n").unwrap();
        let bad = spool.store_blocking(&env, b"Subject: bad\r\n\r\ntruncated later\r\n").unwrap();
        let path = dir.path().join("queue").join(format!("{bad}.msg"));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();

        let shutdown = Shutdown::new();
        let (_tx, rx) = mpsc::unbounded_channel();
        let backend = Backend::DryRun(dry_run::DryRun::new(Arc::clone(&spool), Via::Smtp, Default::default()));
        let cfg = WorkerConfig {
            max_retry_delay: Duration::from_secs(1),
            message_lifetime: Duration::from_secs(60),
            rescan_interval: Duration::from_secs(60),
        };
        let mut worker = Worker::new(Arc::clone(&spool), backend, cfg, rx, shutdown.signal());
        assert_eq!(worker.load_pending().unwrap(), 1);
        assert!(dir.path().join("quarantine").join(format!("{bad}.msg")).exists());
        let reason = std::fs::read_to_string(dir.path().join("quarantine").join(format!("{bad}.json"))).unwrap();
        assert!(reason.contains("truncated"), "{reason}");

        let task = tokio::spawn(worker.run());
        let eml = dir.path().join("dry-run").join(format!("{good}.eml"));
        for _ in 0..500 {
            if eml.exists() && spool.ids(Area::Queue).unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(std::fs::read(&eml).unwrap(), b"Subject: good\r\n\r\nok\r\n");
        assert!(spool.ids(Area::Queue).unwrap().is_empty());
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_message_handed_over_in_memory_is_sent_from_memory_and_its_budget_freed() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path()).unwrap());
        let env = Envelope::new("s@example.com", ["r@example.com"]);
        let id = spool.store_blocking(&env, b"Subject: on disk\r\n\r\nbody\r\n").unwrap();
        let mut message = spool.load(&id).unwrap();
        // Not what a session would hand over (it hands over the file's bytes): a marker, to see
        // that the worker does not read the file again.
        message.raw = b"Subject: in memory\r\n\r\nbody\r\n".to_vec();
        let budget = Arc::new(handoff::Budget::new(1024));
        let fresh = Fresh::new(message, None, budget.reserve(1000).unwrap());
        assert_eq!(budget.held(), 1000);

        let (tx, shutdown, task) = spawn_worker(&spool, dry_run_backend(&spool));
        tx.send(Queued { id: id.clone(), fresh: Some(fresh) }).unwrap();
        let eml = dir.path().join("dry-run").join(format!("{id}.eml"));
        for _ in 0..500 {
            if eml.exists() && spool.locate(&id).is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(std::fs::read(&eml).unwrap(), b"Subject: in memory\r\n\r\nbody\r\n");
        assert!(spool.locate(&id).is_none(), "delivered and removed");
        assert_eq!(budget.held(), 0, "the reservation ends with the delivery");
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn messages_in_memory_over_a_batch_s_byte_limit_wait_in_memory_for_the_next_batch() {
        use postmark_fake::http::FakeApi;
        let fake = FakeApi::start().await;
        fake.set_server_token("token");
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path()).unwrap());
        let settings = api::ApiSettings { timeout: Duration::from_secs(10), ..api::ApiSettings::new(fake.url()) };
        let token = postmark_core::Token::new("token");
        let backend = Backend::Api(api::Api::new(settings, &token, Default::default()).unwrap());
        let (tx, shutdown, task) = spawn_worker(&spool, backend);
        // Three messages of 600 KB: two never fit one batch of 1 MiB. None has a file (as if
        // committed unwritten): memory holds their only copy here.
        let budget = Arc::new(handoff::Budget::new(usize::MAX));
        for n in 0..3 {
            let mut raw = format!("From: s@example.com\r\nTo: r@example.com\r\nSubject: big {n}\r\n\r\n").into_bytes();
            raw.extend(
                std::iter::repeat_n(b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 9_000)
                    .flatten(),
            );
            let header = crate::spool::Header::new(Envelope::new("s@example.com", ["r@example.com"]), &raw);
            let id = QueueId::generate();
            let message = StoredMessage { id: id.clone(), header, raw };
            tx.send(Queued { id, fresh: Some(Fresh::new(message, None, budget.reserve(1).unwrap())) }).unwrap();
        }
        for _ in 0..500 {
            if fake.emails().len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut subjects: Vec<String> =
            fake.emails().iter().map(|e| e["Subject"].as_str().unwrap().to_owned()).collect();
        subjects.sort();
        assert_eq!(subjects, ["big 0", "big 1", "big 2"]);
        assert_eq!(budget.held(), 0);
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_file_corrupted_after_start_is_quarantined_when_it_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path()).unwrap());
        let (tx, shutdown, task) = spawn_worker(&spool, dry_run_backend(&spool));
        let env = Envelope::new("s@example.com", ["r@example.com"]);
        let id = spool.store_blocking(&env, b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let path = dir.path().join("queue").join(format!("{id}.msg"));
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() = b'!';
        std::fs::write(&path, &bytes).unwrap();
        tx.send(Queued::from(id.clone())).unwrap();
        let quarantined = dir.path().join("quarantine").join(format!("{id}.msg"));
        for _ in 0..500 {
            if quarantined.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(quarantined.exists());
        assert!(!dir.path().join("dry-run").join(format!("{id}.eml")).exists());
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    }

    /// A running worker over `spool` delivering with `backend` (retries capped at a second), fed
    /// on the returned sender.
    fn spawn_worker(
        spool: &Arc<Spool>,
        backend: Backend,
    ) -> (mpsc::UnboundedSender<Queued>, Shutdown, tokio::task::JoinHandle<()>) {
        let shutdown = Shutdown::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let cfg = WorkerConfig {
            max_retry_delay: Duration::from_secs(1),
            message_lifetime: Duration::from_secs(60),
            rescan_interval: Duration::from_secs(60),
        };
        let task = tokio::spawn(Worker::new(Arc::clone(spool), backend, cfg, rx, shutdown.signal()).run());
        (tx, shutdown, task)
    }

    fn dry_run_backend(spool: &Arc<Spool>) -> Backend {
        Backend::DryRun(dry_run::DryRun::new(Arc::clone(spool), Via::Smtp, Default::default()))
    }

    /// A worker over a fresh spool holding one message, delivering with `backend`.
    fn worker_with(
        backend: scripted::Scripted,
        cfg: WorkerConfig,
    ) -> (tempfile::TempDir, Arc<Spool>, QueueId, Shutdown, tokio::task::JoinHandle<()>) {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path()).unwrap());
        let env = Envelope::new("s@example.com", ["r@example.com"]);
        let id = spool.store_blocking(&env, b"Subject: scripted\r\n\r\nbody\r\n").unwrap();
        let shutdown = Shutdown::new();
        let (_tx, rx) = mpsc::unbounded_channel();
        let mut worker = Worker::new(Arc::clone(&spool), Backend::Scripted(backend), cfg, rx, shutdown.signal());
        worker.load_pending().unwrap();
        let task = tokio::spawn(worker.run());
        (dir, spool, id, shutdown, task)
    }

    /// Waits (in paused time, so at once) until `done` holds.
    async fn until(mut done: impl FnMut() -> bool) {
        // Polls every 10 s of paused time for up to 10 days of it.
        for _ in 0..86_400 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        panic!("never happened");
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_back_off_doubling_to_the_cap_then_deliver() {
        let transient = || Outcome::Transient("HTTP 503".into());
        let script = scripted::Scripted::new(
            [transient(), transient(), transient(), transient(), transient(), transient()],
            Outcome::Delivered { reference: "ok".into() },
        );
        let cfg = WorkerConfig {
            max_retry_delay: Duration::from_secs(10),
            message_lifetime: Duration::from_secs(3600),
            rescan_interval: Duration::from_secs(3600),
        };
        let (_dir, spool, id, shutdown, task) = worker_with(script.clone(), cfg);
        until(|| script.attempts().len() == 7 && spool.ids(Area::Queue).unwrap().is_empty()).await;
        let times: Vec<u64> = script
            .attempts()
            .iter()
            .map(|(i, t)| {
                assert_eq!(i, &id);
                *t
            })
            .collect();
        let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        // 1 s, 2 s, 4 s, 8 s, then the 10 s cap, each with jitter in [d/2, d].
        for (gap, full) in gaps.iter().zip([1_000u64, 2_000, 4_000, 8_000, 10_000, 10_000]) {
            assert!((full / 2..=full + 150).contains(gap), "gap {gap} ms for a {full} ms step: {gaps:?}");
        }
        assert!(spool.locate(&id).is_none(), "delivered and removed");
        shutdown.trigger();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_that_never_gets_through_dies_when_its_lifetime_ends() {
        let script = scripted::Scripted::new([], Outcome::Transient("connection refused".into()));
        let cfg = WorkerConfig {
            max_retry_delay: Duration::from_secs(600),
            message_lifetime: Duration::from_secs(3 * 24 * 3600),
            rescan_interval: Duration::from_secs(3600),
        };
        let (_dir, spool, id, shutdown, task) = worker_with(script.clone(), cfg);
        until(|| spool.locate(&id) == Some(Area::Dead)).await;
        let times: Vec<u64> = script.attempts().iter().map(|(_, t)| *t).collect();
        let span = times.last().unwrap() - times.first().unwrap();
        // Three days of 10-minute retries (with jitter: 5 to 10 minutes apart), in no real time.
        assert!(span <= 3 * 24 * 3600 * 1000, "{span}");
        assert!(span >= 3 * 24 * 3600 * 1000 - 600_000, "{span}");
        assert!((432..=900).contains(&times.len()), "{} attempts", times.len());
        let reason = spool.dead_reason(&id).unwrap();
        assert!(reason.reason.contains("connection refused"), "{reason:?}");
        shutdown.trigger();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_is_not_retried() {
        let script =
            scripted::Scripted::new([Outcome::Permanent("ErrorCode 406".into())], Outcome::Transient("x".into()));
        let cfg = WorkerConfig {
            max_retry_delay: Duration::from_secs(1),
            message_lifetime: Duration::from_secs(3600),
            rescan_interval: Duration::from_secs(3600),
        };
        let (_dir, spool, id, shutdown, task) = worker_with(script.clone(), cfg);
        until(|| spool.locate(&id) == Some(Area::Dead)).await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(script.attempts().len(), 1, "an hour later, still one attempt");
        shutdown.trigger();
        task.await.unwrap();
    }
}
