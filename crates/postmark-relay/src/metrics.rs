//! Observability: a small registry of counters, gauges and one histogram, rendered in the
//! Prometheus text exposition format (version 0.0.4) by [`Metrics::render`], and served with
//! `/healthz` by [`server`] when `--metrics ADDR` is given.
//!
//! Each relay owns one [`Metrics`] (no process-global recorder), so two relays in one process
//! (the tests) count separately. Every label set is fixed at compile time (an enum indexes an
//! array of atomics), so recording is one relaxed atomic add: no allocation, no lock, no map
//! look-up on the SMTP or delivery path. The only lock guards the pause reason, written when
//! delivery pauses and read by `/healthz`.
//!
//! | metric | type | labels | what |
//! | --- | --- | --- | --- |
//! | `postmark_relay_build_info` | gauge | `version` | always 1 |
//! | `postmark_relay_sessions_total` | counter | – | SMTP sessions started |
//! | `postmark_relay_connections_open` | gauge | – | SMTP sessions open now |
//! | `postmark_relay_accepted_messages_total` | counter | – | messages spooled and answered `250` |
//! | `postmark_relay_accepted_bytes_total` | counter | – | their size in bytes |
//! | `postmark_relay_rejected_total` | counter | `reason` | refusals (4xx/5xx replies, refused connections), see [`Reject`] |
//! | `postmark_relay_delivered_total` | counter | `path` (`api`, `smtp`, `dry_run`) | messages accepted upstream (or written in dry-run) |
//! | `postmark_relay_deferred_total` | counter | `class` | delivery attempts that failed for now and will be retried, see [`Deferral`] |
//! | `postmark_relay_dead_lettered_total` | counter | `class` | messages (or copies for some recipients) moved to dead letters, see [`Dead`] |
//! | `postmark_relay_quarantined_total` | counter | – | spool files moved to quarantine (unreadable) |
//! | `postmark_relay_queue_depth` | gauge | – | messages pending in the spool (waiting or in flight) |
//! | `postmark_relay_oldest_pending_age_seconds` | gauge | – | age of the oldest pending message, 0 when none |
//! | `postmark_relay_last_upstream_success_timestamp_seconds` | gauge | – | when a message was last accepted upstream (Unix time), 0 before the first |
//! | `postmark_relay_delivery_paused` | gauge | – | 1 while delivery is paused by an operator problem |
//! | `postmark_relay_upstream_request_duration_seconds` | histogram | `path` | one API request (`/email` or `/email/batch`), one SMTP transaction (with connecting when needed), or one dry-run write |

pub mod server;

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::envelope::Via;

/// Why the relay refused something: the `reason` label of `postmark_relay_rejected_total`.
/// The discriminant indexes the counters: keep [`Reject::ALL`] in this order, `Other` last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// A command that cannot be parsed, an unknown or unsupported command, a bad parameter, a
    /// line over 512 octets (`500`, `501`, `502`, `504`, `555`).
    Syntax,
    /// A command out of sequence (`503 5.5.1`), `DATA` without recipients.
    Sequence,
    /// An address that is not usable (`501 5.1.x`, `553 5.6.7` non-ASCII without SMTPUTF8).
    Address,
    /// A message over the size limit (`552 5.3.4`), at `MAIL FROM` or at the end of `DATA`, or
    /// too big for the API (over 10 MB as JSON, a body over 5 MB).
    Size,
    /// Too many recipients (`452 4.5.3`), or none at the end of `DATA`.
    Recipients,
    /// No usable sender (`550 5.1.7` at the end of `DATA`).
    Sender,
    /// Refused by the sender policy (`550 5.7.1`: `allowed_senders`, a From Postmark has not
    /// verified).
    Policy,
    /// A forbidden attachment type (`554 5.6.1`).
    Attachment,
    /// No header section at all (`554 5.6.0`).
    Unparseable,
    /// Something the API cannot represent (`554 5.6.0`: an `X-PM-*` header value out of range).
    Unrepresentable,
    /// The spool is full (`452 4.3.1`).
    SpoolFull,
    /// Writing the spool failed (`451 4.3.0`).
    SpoolError,
    /// Too many bad commands in one session (`421 4.7.0`).
    TooManyErrors,
    /// A command, data or session timeout (`421 4.4.2`).
    Timeout,
    /// The relay is shutting down (`421 4.3.0`).
    ShuttingDown,
    /// Over the connection limit (`421` at connect).
    ConnectionLimit,
    /// Authentication required, refused or impossible (`530`, `535`, `534`, `538`, other `x.7.x`).
    Auth,
    /// A client or relaying not allowed (`x.7.1`).
    AccessDenied,
    /// Any other refusal.
    Other,
}

impl Reject {
    /// Every reason, in the order of the label values.
    pub const ALL: [Reject; 19] = [
        Reject::Syntax,
        Reject::Sequence,
        Reject::Address,
        Reject::Size,
        Reject::Recipients,
        Reject::Sender,
        Reject::Policy,
        Reject::Attachment,
        Reject::Unparseable,
        Reject::Unrepresentable,
        Reject::SpoolFull,
        Reject::SpoolError,
        Reject::TooManyErrors,
        Reject::Timeout,
        Reject::ShuttingDown,
        Reject::ConnectionLimit,
        Reject::Auth,
        Reject::AccessDenied,
        Reject::Other,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Reject::Syntax => "syntax",
            Reject::Sequence => "sequence",
            Reject::Address => "address",
            Reject::Size => "size",
            Reject::Recipients => "recipients",
            Reject::Sender => "sender",
            Reject::Policy => "policy",
            Reject::Attachment => "attachment",
            Reject::Unparseable => "unparseable",
            Reject::Unrepresentable => "unrepresentable",
            Reject::SpoolFull => "spool_full",
            Reject::SpoolError => "spool_error",
            Reject::TooManyErrors => "too_many_errors",
            Reject::Timeout => "timeout",
            Reject::ShuttingDown => "shutting_down",
            Reject::ConnectionLimit => "connection_limit",
            Reject::Auth => "auth",
            Reject::AccessDenied => "access_denied",
            Reject::Other => "other",
        }
    }

    /// The reason of a refusal reply to an SMTP command, from its codes. Message-level refusals
    /// at the end of `DATA` (whose codes overlap) are labelled by the validator instead.
    pub fn of_reply(code: u16, enhanced: Option<&str>) -> Reject {
        let enhanced = enhanced.unwrap_or("");
        match (code, enhanced) {
            (_, "5.3.4") => Reject::Size,
            (_, "4.5.3" | "5.5.3") => Reject::Recipients,
            (421, "4.7.0") => Reject::TooManyErrors,
            (421, "4.3.0") => Reject::ShuttingDown,
            (421, "4.3.2") => Reject::ConnectionLimit,
            (_, "4.4.2") => Reject::Timeout,
            (_, "4.3.1" | "5.3.1") => Reject::SpoolFull,
            (451, _) => Reject::SpoolError,
            (_, "4.7.1" | "5.7.1") => Reject::AccessDenied,
            (_, e) if e.starts_with("5.7.") || e.starts_with("4.7.") => Reject::Auth,
            (530 | 534 | 535 | 538, _) => Reject::Auth,
            (503, _) | (554, "5.5.1") => Reject::Sequence,
            (_, "5.6.7") => Reject::Address,
            (_, e) if e.starts_with("5.1.") => Reject::Address,
            (500 | 501 | 502 | 504 | 555, _) => Reject::Syntax,
            _ => Reject::Other,
        }
    }
}

/// The delivery path: the `path` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Postmark's HTTP API.
    Api,
    /// Postmark's SMTP service.
    Smtp,
    /// Dry-run output.
    DryRun,
}

impl Path {
    const ALL: [Path; 3] = [Path::Api, Path::Smtp, Path::DryRun];

    /// The label value (also the `route` of the per-message log lines).
    pub fn label(self) -> &'static str {
        match self {
            Path::Api => "api",
            Path::Smtp => "smtp",
            Path::DryRun => "dry_run",
        }
    }
}

impl From<Via> for Path {
    fn from(via: Via) -> Self {
        match via {
            Via::Api => Path::Api,
            Via::Smtp => Path::Smtp,
        }
    }
}

/// Why a delivery attempt was deferred: the `class` label of `postmark_relay_deferred_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deferral {
    /// A transient failure of the whole message: connect error, timeout, reset, HTTP 429/5xx,
    /// `ErrorCode` 100/429, SMTP 4xx.
    Transient,
    /// An operator problem (token, account, URL): delivery paused, the message waits.
    Paused,
    /// SMTP answered 4xx for some recipients; they are retried on their own.
    Recipients,
}

impl Deferral {
    const ALL: [Deferral; 3] = [Deferral::Transient, Deferral::Paused, Deferral::Recipients];

    fn label(self) -> &'static str {
        match self {
            Deferral::Transient => "transient",
            Deferral::Paused => "paused",
            Deferral::Recipients => "recipients",
        }
    }
}

/// Why a message became a dead letter: the `class` label of `postmark_relay_dead_lettered_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dead {
    /// Postmark refused the message for good (HTTP 422 / `ErrorCode` 300, 406, …, SMTP 5xx for
    /// every recipient), or it cannot be converted.
    Permanent,
    /// The message lifetime ran out while retrying.
    Expired,
    /// SMTP answered 5xx for some recipients: a dead copy for just them.
    Recipients,
}

impl Dead {
    const ALL: [Dead; 3] = [Dead::Permanent, Dead::Expired, Dead::Recipients];

    fn label(self) -> &'static str {
        match self {
            Dead::Permanent => "permanent",
            Dead::Expired => "expired",
            Dead::Recipients => "recipients",
        }
    }
}

/// Upper bounds of the latency histogram's buckets, in microseconds (5 ms … 60 s).
const BUCKETS_US: [u64; 13] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
    60_000_000,
];

/// A fixed-bucket histogram of durations.
#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BUCKETS_US.iter().position(|&b| us <= b).unwrap_or(BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }
}

/// The relay's metrics. Cheap to record into from any thread.
#[derive(Debug, Default)]
pub struct Metrics {
    sessions: AtomicU64,
    connections_open: AtomicI64,
    accepted_messages: AtomicU64,
    accepted_bytes: AtomicU64,
    rejected: [AtomicU64; Reject::ALL.len()],
    delivered: [AtomicU64; Path::ALL.len()],
    deferred: [AtomicU64; Deferral::ALL.len()],
    dead: [AtomicU64; Dead::ALL.len()],
    quarantined: AtomicU64,
    queue_depth: AtomicU64,
    /// Arrival time (ms since the Unix epoch) of the oldest pending message; 0 when none.
    oldest_pending_ms: AtomicU64,
    paused: AtomicBool,
    pause_reason: Mutex<String>,
    latency: [Histogram; Path::ALL.len()],
    /// When (ms since the Unix epoch) a message was last accepted upstream; 0 before the first.
    last_success_ms: AtomicU64,
    /// When the delivery worker last showed it is turning (a loop turn or an upstream request).
    worker_seen_ms: AtomicU64,
}

/// Adds one; `None` cannot happen while every `ALL` lists its enum in declaration order (a test
/// checks), and would only lose a count, never panic.
fn bump(counter: Option<&AtomicU64>) {
    if let Some(c) = counter {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Decrements `connections_open` when the session ends (however it ends).
#[derive(Debug)]
pub struct OpenConnection<'a>(&'a Metrics);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// An SMTP session started; it counts as open until the guard is dropped.
    pub fn session_started(&self) -> OpenConnection<'_> {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self)
    }

    /// A message was spooled and acknowledged.
    pub fn accepted(&self, bytes: usize) {
        self.accepted_messages.fetch_add(1, Ordering::Relaxed);
        self.accepted_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Something was refused.
    pub fn rejected(&self, reason: Reject) {
        bump(self.rejected.get(reason as usize));
    }

    /// A refusal reply to a command (labelled by [`Reject::of_reply`]).
    pub fn rejected_reply(&self, code: u16, enhanced: Option<&str>) {
        self.rejected(Reject::of_reply(code, enhanced));
    }

    /// A message was accepted upstream.
    pub fn delivered(&self, path: Path) {
        bump(self.delivered.get(path as usize));
        self.last_success_ms.store(crate::clock::now_ms(), Ordering::Relaxed);
    }

    /// When a message was last accepted upstream (ms since the Unix epoch), if ever.
    pub fn last_success_ms(&self) -> Option<u64> {
        Some(self.last_success_ms.load(Ordering::Relaxed)).filter(|&ms| ms != 0)
    }

    /// The delivery worker is turning (called at every loop turn and every upstream request).
    pub fn worker_seen(&self, now_ms: u64) {
        self.worker_seen_ms.store(now_ms, Ordering::Relaxed);
    }

    /// When the delivery worker was last seen turning, if ever.
    pub fn worker_seen_ms(&self) -> Option<u64> {
        Some(self.worker_seen_ms.load(Ordering::Relaxed)).filter(|&ms| ms != 0)
    }

    /// Pending messages and the arrival time of the oldest (ms since the Unix epoch), if any.
    pub fn queue(&self) -> (u64, Option<u64>) {
        let oldest = self.oldest_pending_ms.load(Ordering::Relaxed);
        (self.queue_depth.load(Ordering::Relaxed), Some(oldest).filter(|&ms| ms != 0))
    }

    /// A delivery attempt failed for now.
    pub fn deferred(&self, class: Deferral) {
        bump(self.deferred.get(class as usize));
    }

    /// A message (or a copy for some recipients) became a dead letter.
    pub fn dead_lettered(&self, class: Dead) {
        bump(self.dead.get(class as usize));
    }

    /// A spool file was quarantined.
    pub fn quarantined(&self) {
        self.quarantined.fetch_add(1, Ordering::Relaxed);
    }

    /// The pending queue changed: its size and the arrival time of its oldest message.
    pub fn set_queue(&self, depth: usize, oldest_arrival_ms: Option<u64>) {
        self.queue_depth.store(depth as u64, Ordering::Relaxed);
        self.oldest_pending_ms.store(oldest_arrival_ms.unwrap_or(0), Ordering::Relaxed);
    }

    /// Delivery paused because of an operator problem (`reason` as logged; it holds no secret).
    pub fn pause(&self, reason: &str) {
        let mut r = self.pause_reason.lock().unwrap_or_else(|p| p.into_inner());
        r.clear();
        r.push_str(reason);
        self.paused.store(true, Ordering::Release);
    }

    /// Delivery works again (a message was delivered, or the operator asked for a retry).
    pub fn resume(&self) {
        if self.paused.load(Ordering::Relaxed) {
            self.paused.store(false, Ordering::Release);
        }
    }

    /// The pause reason while delivery is paused.
    pub fn paused(&self) -> Option<String> {
        if !self.paused.load(Ordering::Acquire) {
            return None;
        }
        Some(self.pause_reason.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// One upstream request took `d`.
    pub fn upstream_latency(&self, path: Path, d: Duration) {
        self.worker_seen(crate::clock::now_ms());
        if let Some(h) = self.latency.get(path as usize) {
            h.observe(d);
        }
    }

    /// The metrics in the Prometheus text format, with ages computed for `now_ms`.
    pub fn render(&self, now_ms: u64) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP postmark_relay_{name} {help}");
            let _ = writeln!(out, "# TYPE postmark_relay_{name} {kind}");
        };

        head(&mut out, "build_info", "gauge", "The relay's version; always 1.");
        let _ = writeln!(out, "postmark_relay_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));

        head(&mut out, "sessions_total", "counter", "SMTP sessions started.");
        let _ = writeln!(out, "postmark_relay_sessions_total {}", load(&self.sessions));
        head(&mut out, "connections_open", "gauge", "SMTP sessions open now.");
        let _ =
            writeln!(out, "postmark_relay_connections_open {}", self.connections_open.load(Ordering::Relaxed).max(0));

        head(
            &mut out,
            "accepted_messages_total",
            "counter",
            "Messages written to the spool and acknowledged with 250.",
        );
        let _ = writeln!(out, "postmark_relay_accepted_messages_total {}", load(&self.accepted_messages));
        head(&mut out, "accepted_bytes_total", "counter", "Bytes of the messages acknowledged with 250.");
        let _ = writeln!(out, "postmark_relay_accepted_bytes_total {}", load(&self.accepted_bytes));

        head(&mut out, "rejected_total", "counter", "Refused commands, messages and connections, by reason.");
        for (r, n) in Reject::ALL.iter().zip(&self.rejected) {
            let _ = writeln!(out, "postmark_relay_rejected_total{{reason=\"{}\"}} {}", r.label(), load(n));
        }

        head(&mut out, "delivered_total", "counter", "Messages accepted upstream (or written in dry-run), by path.");
        for (p, n) in Path::ALL.iter().zip(&self.delivered) {
            let _ = writeln!(out, "postmark_relay_delivered_total{{path=\"{}\"}} {}", p.label(), load(n));
        }

        head(
            &mut out,
            "deferred_total",
            "counter",
            "Delivery attempts that failed for now and will be retried, by class.",
        );
        for (c, n) in Deferral::ALL.iter().zip(&self.deferred) {
            let _ = writeln!(out, "postmark_relay_deferred_total{{class=\"{}\"}} {}", c.label(), load(n));
        }

        head(&mut out, "dead_lettered_total", "counter", "Messages moved to dead letters, by class.");
        for (c, n) in Dead::ALL.iter().zip(&self.dead) {
            let _ = writeln!(out, "postmark_relay_dead_lettered_total{{class=\"{}\"}} {}", c.label(), load(n));
        }

        head(&mut out, "quarantined_total", "counter", "Unreadable spool files moved to quarantine.");
        let _ = writeln!(out, "postmark_relay_quarantined_total {}", load(&self.quarantined));

        head(&mut out, "queue_depth", "gauge", "Messages pending in the spool.");
        let _ = writeln!(out, "postmark_relay_queue_depth {}", load(&self.queue_depth));
        head(&mut out, "oldest_pending_age_seconds", "gauge", "Age of the oldest pending message (0 when none).");
        let oldest = load(&self.oldest_pending_ms);
        let age = if oldest == 0 { 0.0 } else { now_ms.saturating_sub(oldest) as f64 / 1000.0 };
        let _ = writeln!(out, "postmark_relay_oldest_pending_age_seconds {age:.3}");

        head(
            &mut out,
            "last_upstream_success_timestamp_seconds",
            "gauge",
            "When a message was last accepted upstream (Unix time; 0 before the first).",
        );
        let last = load(&self.last_success_ms) as f64 / 1000.0;
        let _ = writeln!(out, "postmark_relay_last_upstream_success_timestamp_seconds {last:.3}");

        head(&mut out, "delivery_paused", "gauge", "1 while delivery is paused by an operator problem.");
        let _ = writeln!(out, "postmark_relay_delivery_paused {}", u8::from(self.paused.load(Ordering::Relaxed)));

        let name = "upstream_request_duration_seconds";
        head(
            &mut out,
            name,
            "histogram",
            "Duration of one upstream request (API request, SMTP transaction, dry-run write).",
        );
        for (p, h) in Path::ALL.iter().zip(&self.latency) {
            let path = p.label();
            let mut cumulative = 0;
            for (i, bucket) in h.buckets.iter().enumerate() {
                cumulative += load(bucket);
                let le = match BUCKETS_US.get(i) {
                    Some(&us) => format!("{}", us as f64 / 1e6),
                    None => "+Inf".to_string(),
                };
                let _ = writeln!(out, "postmark_relay_{name}_bucket{{path=\"{path}\",le=\"{le}\"}} {cumulative}");
            }
            let sum = load(&h.sum_us) as f64 / 1e6;
            let _ = writeln!(out, "postmark_relay_{name}_sum{{path=\"{path}\"}} {sum}");
            let _ = writeln!(out, "postmark_relay_{name}_count{{path=\"{path}\"}} {cumulative}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(text: &'a str, series: &str) -> &'a str {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
    }

    #[test]
    fn counters_and_gauges_render_with_every_label_value() {
        let m = Metrics::default();
        m.accepted(100);
        m.accepted(23);
        m.rejected(Reject::Size);
        m.rejected_reply(500, Some("5.5.2"));
        m.delivered(Path::Api);
        m.deferred(Deferral::Transient);
        m.dead_lettered(Dead::Expired);
        m.set_queue(3, Some(10_000));
        let open = m.session_started();
        let text = m.render(12_500);
        assert_eq!(sample(&text, "postmark_relay_accepted_messages_total"), "2");
        assert_eq!(sample(&text, "postmark_relay_accepted_bytes_total"), "123");
        assert_eq!(sample(&text, "postmark_relay_rejected_total{reason=\"size\"}"), "1");
        assert_eq!(sample(&text, "postmark_relay_rejected_total{reason=\"syntax\"}"), "1");
        assert_eq!(sample(&text, "postmark_relay_rejected_total{reason=\"auth\"}"), "0");
        assert_eq!(sample(&text, "postmark_relay_delivered_total{path=\"api\"}"), "1");
        assert_eq!(sample(&text, "postmark_relay_delivered_total{path=\"dry_run\"}"), "0");
        assert_eq!(sample(&text, "postmark_relay_deferred_total{class=\"transient\"}"), "1");
        assert_eq!(sample(&text, "postmark_relay_dead_lettered_total{class=\"expired\"}"), "1");
        assert_eq!(sample(&text, "postmark_relay_queue_depth"), "3");
        assert_eq!(sample(&text, "postmark_relay_oldest_pending_age_seconds"), "2.500");
        assert_eq!(sample(&text, "postmark_relay_connections_open"), "1");
        drop(open);
        let text = m.render(0);
        assert_eq!(sample(&text, "postmark_relay_connections_open"), "0");
        assert_eq!(sample(&text, "postmark_relay_sessions_total"), "1");
        m.set_queue(0, None);
        assert_eq!(sample(&m.render(99_999), "postmark_relay_oldest_pending_age_seconds"), "0.000");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_count_matches_inf() {
        let m = Metrics::default();
        m.upstream_latency(Path::Smtp, Duration::from_millis(3));
        m.upstream_latency(Path::Smtp, Duration::from_millis(5));
        m.upstream_latency(Path::Smtp, Duration::from_millis(70));
        m.upstream_latency(Path::Smtp, Duration::from_secs(120));
        let text = m.render(0);
        let b = |le: &str| {
            sample(
                &text,
                &format!("postmark_relay_upstream_request_duration_seconds_bucket{{path=\"smtp\",le=\"{le}\"}}"),
            )
            .to_string()
        };
        assert_eq!(b("0.005"), "2", "5 ms is inside the 5 ms bucket (le is inclusive)");
        assert_eq!(b("0.05"), "2");
        assert_eq!(b("0.1"), "3");
        assert_eq!(b("60"), "3");
        assert_eq!(b("+Inf"), "4");
        assert_eq!(sample(&text, "postmark_relay_upstream_request_duration_seconds_count{path=\"smtp\"}"), "4");
        assert_eq!(sample(&text, "postmark_relay_upstream_request_duration_seconds_sum{path=\"smtp\"}"), "120.078");
        assert_eq!(sample(&text, "postmark_relay_upstream_request_duration_seconds_count{path=\"api\"}"), "0");
    }

    #[test]
    fn every_label_set_lists_its_values_in_declaration_order() {
        // The discriminant is the array slot.
        assert!(Reject::ALL.iter().enumerate().all(|(i, r)| *r as usize == i));
        assert_eq!(Reject::ALL.len(), Reject::Other as usize + 1, "Other stays last and ALL lists every reason");
        assert!(Path::ALL.iter().enumerate().all(|(i, p)| *p as usize == i));
        assert!(Deferral::ALL.iter().enumerate().all(|(i, c)| *c as usize == i));
        assert!(Dead::ALL.iter().enumerate().all(|(i, c)| *c as usize == i));
    }

    #[test]
    fn pause_and_resume() {
        let m = Metrics::default();
        assert_eq!(m.paused(), None);
        m.pause("HTTP 401: bad token");
        assert_eq!(m.paused().as_deref(), Some("HTTP 401: bad token"));
        assert_eq!(sample(&m.render(0), "postmark_relay_delivery_paused"), "1");
        m.resume();
        assert_eq!(m.paused(), None);
        assert_eq!(sample(&m.render(0), "postmark_relay_delivery_paused"), "0");
    }

    #[test]
    fn refusal_replies_are_labelled_by_their_codes() {
        let cases: [(u16, &str, Reject); 22] = [
            (500, "5.5.2", Reject::Syntax),
            (500, "5.5.1", Reject::Syntax),
            (501, "5.5.4", Reject::Syntax),
            (502, "5.5.1", Reject::Syntax),
            (555, "5.5.4", Reject::Syntax),
            (503, "5.5.1", Reject::Sequence),
            (554, "5.5.1", Reject::Sequence),
            (501, "5.1.3", Reject::Address),
            (501, "5.1.7", Reject::Address),
            (553, "5.6.7", Reject::Address),
            (552, "5.3.4", Reject::Size),
            (452, "4.5.3", Reject::Recipients),
            (421, "4.7.0", Reject::TooManyErrors),
            (421, "4.4.2", Reject::Timeout),
            (421, "4.3.0", Reject::ShuttingDown),
            (421, "4.3.2", Reject::ConnectionLimit),
            (452, "4.3.1", Reject::SpoolFull),
            (451, "4.3.0", Reject::SpoolError),
            (535, "5.7.8", Reject::Auth),
            (530, "5.7.0", Reject::Auth),
            (554, "5.7.1", Reject::AccessDenied),
            (450, "4.2.0", Reject::Other),
        ];
        for (code, esc, want) in cases {
            assert_eq!(Reject::of_reply(code, Some(esc)), want, "{code} {esc}");
        }
        assert_eq!(Reject::of_reply(535, None), Reject::Auth);
        // Every label is distinct and a valid Prometheus label value.
        let labels: std::collections::HashSet<_> = Reject::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), Reject::ALL.len());
    }
}
