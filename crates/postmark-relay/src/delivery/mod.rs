//! The delivery worker: takes due messages from the spool, sends them over the configured path,
//! and applies each message's outcome (remove, retry later, dead letter, or pause).
//!
//! The worker keeps a [`schedule::Schedule`] in memory and sleeps until the earliest due time, a
//! newly queued message, a periodic rescan of the spool (which picks up `queue retry` markers and
//! messages revived from `dead/`), or shutdown. Retry state survives restarts in
//! `queue/<id>.state`; after a restart every pending message is due at once.

pub mod api;
pub mod dry_run;
pub mod notify;
pub mod policy;
pub mod schedule;
pub mod smtp;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::envelope::Envelope;
use crate::metrics::{Dead, Deferral, Metrics, Path};
use crate::secrets::Credentials;
use crate::shutdown::ShutdownSignal;
use crate::spool::{Area, DeadReason, LoadError, QueueId, RetryState, Spool, StoredMessage};
use schedule::{Entry, Schedule};

/// Every how many rescans `queue/` itself is listed (the others only read `retry/`).
const FULL_SCAN_EVERY: u64 = 30;

/// The result of one attempt for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted upstream; `reference` is Postmark's MessageID, the SMTP reply, or the dry-run file.
    Delivered {
        /// What identifies the accepted message upstream.
        reference: String,
    },
    /// Failed for now; retry later.
    Transient(String),
    /// Failed for good: dead letter.
    Permanent(String),
    /// The configuration or account is at fault: pause delivery, keep the message.
    Operator(String),
    /// SMTP answered differently per recipient.
    PerRecipient(RecipientOutcome),
}

/// Per-recipient results of an SMTP attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientOutcome {
    /// Accepted recipients.
    pub delivered: Vec<String>,
    /// The final reply for the accepted recipients.
    pub reference: String,
    /// Recipients answered with 4xx.
    pub retry: Vec<String>,
    /// The 4xx reason.
    pub retry_reason: String,
    /// Recipients answered with 5xx.
    pub failed: Vec<String>,
    /// The 5xx reason.
    pub failed_reason: String,
}

/// Why a backend cannot be set up or switched to new credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The HTTP client cannot be built.
    #[error("cannot set up the API client: {0}")]
    ApiClient(#[source] postmark_core::Error),
    /// `--smtp-ca` cannot be used.
    #[error("--smtp-ca {}: {problem}", path.display())]
    Ca {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// rustls cannot be set up.
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    /// The API path needs a server token.
    #[error("no server token configured")]
    NoServerToken,
    /// The SMTP path needs an SMTP token or a server token.
    #[error("no SMTP token and no server token configured")]
    NoSmtpCredentials,
}

/// How the worker sends: one of the three paths.
#[derive(Debug)]
pub enum Backend {
    /// Write what would be sent under `<spool>/dry-run/`.
    DryRun(dry_run::DryRun),
    /// Postmark's HTTP API.
    Api(api::Api),
    /// Postmark's SMTP service.
    Smtp(smtp::Smtp),
}

impl Backend {
    /// Most messages, and most raw bytes, handed over in one call.
    fn batch_limits(&self) -> (usize, usize) {
        match self {
            Backend::Api(_) => (postmark_core::limits::MAX_BATCH_MESSAGES, api::MAX_BATCH_RAW_BYTES),
            Backend::DryRun(_) => (50, 64 * 1024 * 1024),
            // Enough for every connection to carry several messages of one batch.
            Backend::Smtp(_) => (200, 16 * 1024 * 1024),
        }
    }

    /// The `path` label of its metrics.
    pub fn path(&self) -> Path {
        match self {
            Backend::DryRun(_) => Path::DryRun,
            Backend::Api(_) => Path::Api,
            Backend::Smtp(_) => Path::Smtp,
        }
    }

    /// Uses new credentials from now on (rotation without a restart).
    pub fn set_credentials(&mut self, credentials: &Credentials) -> Result<(), BackendError> {
        match self {
            Backend::DryRun(_) => Ok(()),
            Backend::Api(b) => match &credentials.server_token {
                Some(token) => b.set_token(token),
                None => Err(BackendError::NoServerToken),
            },
            Backend::Smtp(b) => b.set_credentials(credentials),
        }
    }

    async fn deliver(&mut self, messages: &[StoredMessage], metrics: &Metrics) -> Vec<Outcome> {
        match self {
            Backend::DryRun(b) => b.deliver(messages, metrics).await,
            Backend::Api(b) => b.deliver(messages, metrics).await,
            Backend::Smtp(b) => b.deliver(messages, metrics).await,
        }
    }
}

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
    incoming: mpsc::UnboundedReceiver<QueueId>,
    shutdown: ShutdownSignal,
    paused_until_ms: u64,
    pauses: u32,
    metrics: Arc<Metrics>,
    credentials: Option<watch::Receiver<Arc<Credentials>>>,
    notifier: Option<notify::Notifier>,
}

impl Worker {
    /// A worker over `spool`, fed new ids on `incoming`.
    pub fn new(
        spool: Arc<Spool>,
        backend: Backend,
        cfg: WorkerConfig,
        incoming: mpsc::UnboundedReceiver<QueueId>,
        shutdown: ShutdownSignal,
    ) -> Self {
        Self {
            spool,
            backend,
            cfg,
            schedule: Schedule::default(),
            incoming,
            shutdown,
            paused_until_ms: 0,
            pauses: 0,
            metrics: Arc::default(),
            credentials: None,
            notifier: None,
        }
    }

    /// Sends a notice to the operator for every message given up (see [`notify`]).
    pub fn with_notifier(mut self, notifier: notify::Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Queues the dead-letter notice for `msg`, if one is due.
    fn notify(&mut self, msg: &StoredMessage, death: notify::Death<'_>) {
        let now = crate::clock::now_ms();
        let Some((envelope, raw)) = self.notifier.as_mut().and_then(|n| n.notice(msg, death, now)) else {
            return;
        };
        let header = crate::spool::Header::new(envelope, &raw)
            .with_routing(crate::envelope::Routing { stream: None, notice: true });
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
        let now = crate::clock::now_ms();
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
        let now = crate::clock::now_ms();
        for id in self.spool.ids(Area::Queue)? {
            self.adopt(&id, now);
        }
        Ok(self.schedule.len())
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
        let now = crate::clock::now_ms();
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
        let mut next_rescan = crate::clock::now_ms() + duration_ms(self.cfg.rescan_interval);
        let mut next_full_scan = next_rescan;
        let mut incoming_closed = false;
        loop {
            if self.shutdown.is_triggered() {
                break;
            }
            if self.credentials.as_ref().is_some_and(|c| c.has_changed().unwrap_or(false)) {
                self.use_new_credentials();
            }
            while let Ok(id) = self.incoming.try_recv() {
                self.adopt(&id, crate::clock::now_ms());
            }
            let now = crate::clock::now_ms();
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
            let batch = if self.paused_until_ms > now { Vec::new() } else { self.take_batch(now) };
            if batch.is_empty() {
                let mut wake = next_rescan;
                if self.paused_until_ms > now {
                    wake = wake.min(self.paused_until_ms);
                } else if let Some(due) = self.schedule.next_due() {
                    wake = wake.min(due);
                }
                let sleep = Duration::from_millis(wake.saturating_sub(now));
                tokio::select! {
                    () = self.shutdown.wait() => break,
                    id = self.incoming.recv(), if !incoming_closed => match id {
                        Some(id) => self.adopt(&id, crate::clock::now_ms()),
                        // No session will queue anything any more; keep draining the schedule.
                        None => incoming_closed = true,
                    },
                    () = tokio::time::sleep(sleep) => {}
                    () = credential_update(&mut self.credentials) => self.use_new_credentials(),
                }
                continue;
            }
            let outcomes = self.backend.deliver(&batch, &self.metrics).await;
            for (msg, outcome) in batch.iter().zip(outcomes) {
                self.apply(msg, outcome);
            }
        }
        tracing::info!(pending = self.schedule.len(), "delivery worker stopped; pending messages stay spooled");
    }

    /// Takes due messages up to the backend's batch limits, loading them from disk.
    fn take_batch(&mut self, now: u64) -> Vec<StoredMessage> {
        let (max_count, max_bytes) = self.backend.batch_limits();
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        while batch.len() < max_count {
            let Some(id) = self.schedule.pop_due(now) else {
                break;
            };
            match self.spool.load(&id) {
                Ok(msg) => {
                    if !batch.is_empty() && bytes + msg.raw.len() > max_bytes {
                        self.schedule.reschedule(&id, now);
                        break;
                    }
                    bytes += msg.raw.len();
                    batch.push(msg);
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
                tracing::info!(
                    queue_id = %id,
                    size = msg.raw.len(),
                    recipients = msg.header.envelope.rcpt_to.len(),
                    message_id = %reference,
                    "delivered"
                );
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

    fn apply_split(&mut self, msg: &StoredMessage, r: RecipientOutcome) {
        let id = &msg.id;
        let size = msg.raw.len();
        if r.retry.is_empty() && r.failed.is_empty() {
            return self.apply(msg, Outcome::Delivered { reference: r.reference });
        }
        if r.retry.is_empty() && r.delivered.is_empty() {
            return self.kill(msg, &r.failed_reason, Dead::Permanent);
        }
        if r.failed.is_empty() && r.delivered.is_empty() {
            return self.defer(msg, &r.retry_reason, Deferral::Transient);
        }
        if !r.delivered.is_empty() {
            self.metrics.delivered(self.backend.path());
            tracing::info!(queue_id = %id, size, recipients = r.delivered.len(), message_id = %r.reference, "delivered to some recipients");
        }
        if !r.failed.is_empty() {
            let envelope = Envelope { mail_from: msg.header.envelope.mail_from.clone(), rcpt_to: r.failed.clone() };
            let reason = DeadReason {
                reason: r.failed_reason.clone(),
                dead_ms: crate::clock::now_ms(),
                attempts: self.schedule.get(id).map_or(0, |e| e.attempts) + 1,
                recipients: r.failed.clone(),
            };
            match self.spool.kill_copy(msg, envelope, &reason) {
                Ok(dead_id) => {
                    self.metrics.dead_lettered(Dead::Recipients);
                    tracing::info!(queue_id = %id, dead_id = %dead_id, size, recipients = r.failed.len(), error = %r.failed_reason, "dead letter for some recipients");
                    let death = notify::Death {
                        id: &dead_id,
                        reason: &r.failed_reason,
                        attempts: reason.attempts,
                        recipients: &r.failed,
                    };
                    self.notify(msg, death);
                }
                Err(e) => tracing::error!(queue_id = %id, error = %e, "cannot write dead letter"),
            }
        }
        if r.retry.is_empty() {
            if let Err(e) = self.spool.remove(id) {
                tracing::error!(queue_id = %id, error = %e, "cannot remove finished message from the spool");
            }
            self.schedule.remove(id);
            return;
        }
        let envelope = Envelope { mail_from: msg.header.envelope.mail_from.clone(), rcpt_to: r.retry.clone() };
        if let Err(e) = self.spool.replace_envelope(msg, envelope.clone()) {
            // Keep the old envelope: the delivered recipients may get a second copy.
            tracing::error!(queue_id = %id, error = %e, "cannot narrow the envelope to the recipients left; they may receive a duplicate");
            return self.defer(msg, &r.retry_reason, Deferral::Recipients);
        }
        let mut narrowed = msg.clone();
        narrowed.header.envelope = envelope;
        self.defer(&narrowed, &r.retry_reason, Deferral::Recipients);
    }

    /// Schedules another attempt; a [`Deferral::Paused`] one does not count as an attempt.
    fn defer(&mut self, msg: &StoredMessage, reason: &str, class: Deferral) {
        let count_attempt = class != Deferral::Paused;
        let id = &msg.id;
        let now = crate::clock::now_ms();
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
        tracing::info!(
            queue_id = %id,
            size = msg.raw.len(),
            recipients = msg.header.envelope.rcpt_to.len(),
            attempt = attempts,
            retry_in_ms = due.saturating_sub(now),
            error = %reason,
            "deferred"
        );
    }

    fn kill(&mut self, msg: &StoredMessage, reason: &str, class: Dead) {
        let id = &msg.id;
        let attempts = self.schedule.get(id).map_or(0, |e| e.attempts) + 1;
        let dead = DeadReason {
            reason: reason.to_string(),
            dead_ms: crate::clock::now_ms(),
            attempts,
            recipients: Vec::new(),
        };
        self.schedule.remove(id);
        match self.spool.kill(id, &dead) {
            Ok(()) => {
                self.metrics.dead_lettered(class);
                tracing::info!(
                    queue_id = %id,
                    size = msg.raw.len(),
                    recipients = msg.header.envelope.rcpt_to.len(),
                    error = %reason,
                    "dead letter"
                );
                let death = notify::Death { id, reason, attempts, recipients: &msg.header.envelope.rcpt_to };
                self.notify(msg, death);
            }
            Err(e) => tracing::error!(queue_id = %id, error = %e, "cannot move message to dead letters"),
        }
    }

    fn pause(&mut self, reason: &str) {
        let now = crate::clock::now_ms();
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
    use crate::envelope::Via;
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
    async fn a_file_corrupted_after_start_is_quarantined_when_it_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path()).unwrap());
        let shutdown = Shutdown::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let backend = Backend::DryRun(dry_run::DryRun::new(Arc::clone(&spool), Via::Smtp, Default::default()));
        let cfg = WorkerConfig {
            max_retry_delay: Duration::from_secs(1),
            message_lifetime: Duration::from_secs(60),
            rescan_interval: Duration::from_secs(60),
        };
        let worker = Worker::new(Arc::clone(&spool), backend, cfg, rx, shutdown.signal());
        let task = tokio::spawn(worker.run());
        let env = Envelope::new("s@example.com", ["r@example.com"]);
        let id = spool.store_blocking(&env, b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let path = dir.path().join("queue").join(format!("{id}.msg"));
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() = b'!';
        std::fs::write(&path, &bytes).unwrap();
        tx.send(id.clone()).unwrap();
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
}
