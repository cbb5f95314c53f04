//! The `--metrics ADDR` listener: `GET /metrics` (Prometheus text format), `GET /readyz` and
//! `GET /healthz`.
//!
//! * `/readyz` (readiness: send mail here now?) answers `200` when the SMTP listener is up, the
//!   relay is not shutting down and the spool is writable, else `503`. "Writable" is tested for
//!   real: a small file is created in the spool's `tmp/`, written, fsync'd and unlinked (a crash
//!   in between leaves it where start-up cleans up). The result is cached for a second, so a
//!   prober polling hard costs at most one fsync per second.
//! * `/healthz` (liveness: should this process be restarted?) answers `200` while the process
//!   serves and the delivery worker is not wedged: it shows it is turning at least every
//!   [`WEDGED_AFTER`] (it wakes every two seconds, and every upstream request counts), else `503`.
//!   A paused delivery (Postmark refused the credentials) or a full spool is *not* a liveness
//!   failure: a restart would not fix either.
//!
//! Both bodies are `text/plain`: the verdict (`ready`, `not ready`, `alive`, `wedged`), one line
//! per problem, then `queue_depth`, `oldest_pending_age_seconds`,
//! `last_upstream_success_seconds_ago` (`never` before the first) and, while delivery is paused,
//! `delivery_paused` with the reason. Counts and ages only: no address, no secret.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::Metrics;
use crate::probe::ProbeError;
use crate::shutdown::ShutdownSignal;

/// How long a spool probe's result is reused.
const PROBE_CACHE: Duration = Duration::from_secs(1);
/// The probe file, in the spool's `tmp/` (hidden, and removed at start-up if a crash left it).
const PROBE_FILE: &str = ".healthz-probe";
/// `/healthz` fails when the delivery worker has not been seen turning for this long.
pub const WEDGED_AFTER: Duration = Duration::from_secs(10 * 60);

/// What the handlers read.
#[derive(Debug)]
pub struct Health {
    metrics: Arc<Metrics>,
    tmp_dir: PathBuf,
    spool: Arc<crate::spool::Spool>,
    last_probe: Mutex<Option<(Instant, Result<(), ProbeError>)>>,
    shutdown: ShutdownSignal,
    listening: Arc<AtomicBool>,
    started_ms: u64,
}

impl Health {
    /// Health of the relay whose spool is at `spool_root`; `listening` is true while its SMTP
    /// listener accepts connections.
    pub fn new(
        metrics: Arc<Metrics>,
        spool: Arc<crate::spool::Spool>,
        shutdown: ShutdownSignal,
        listening: Arc<AtomicBool>,
    ) -> Self {
        Self {
            metrics,
            tmp_dir: spool.root().join("tmp"),
            spool,
            last_probe: Mutex::new(None),
            shutdown,
            listening,
            started_ms: crate::clock::now_ms(),
        }
    }

    /// Readiness: `Ok` when ready, else the problems.
    pub async fn readiness(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.shutdown.is_triggered() {
            problems.push("shutting down".to_string());
        } else if !self.listening.load(Ordering::Acquire) {
            problems.push("the SMTP listener is not accepting connections".to_string());
        }
        if let Err(e) = self.spool_writable().await {
            problems.push(format!("spool not writable: {e}"));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// Liveness at `now_ms`: `Ok` while the delivery worker turns, else the problem.
    pub fn liveness(&self, now_ms: u64) -> Result<(), Vec<String>> {
        let seen = self.metrics.worker_seen_ms().unwrap_or(0).max(self.started_ms);
        let quiet = Duration::from_millis(now_ms.saturating_sub(seen));
        if quiet > WEDGED_AFTER && !self.shutdown.is_triggered() {
            return Err(vec![format!(
                "the delivery worker has not turned for {}s (more than {}s)",
                quiet.as_secs(),
                WEDGED_AFTER.as_secs()
            )]);
        }
        Ok(())
    }

    /// The status lines both probes end with.
    pub fn status_lines(&self, now_ms: u64) -> String {
        let (depth, oldest) = self.metrics.queue();
        let age = |ms: Option<u64>| ms.map(|ms| now_ms.saturating_sub(ms) as f64 / 1000.0);
        let mut out = String::new();
        let _ = writeln!(out, "queue_depth {depth}");
        let _ = writeln!(out, "oldest_pending_age_seconds {:.3}", age(oldest).unwrap_or(0.0));
        match age(self.metrics.last_success_ms()) {
            Some(ago) => {
                let _ = writeln!(out, "last_upstream_success_seconds_ago {ago:.3}");
            }
            None => out.push_str("last_upstream_success_seconds_ago never\n"),
        }
        if let Some(reason) = self.metrics.paused() {
            let _ = writeln!(out, "delivery_paused {}", reason.replace(['\r', '\n'], " "));
        }
        out
    }

    async fn spool_writable(&self) -> Result<(), ProbeError> {
        let mut last = self.last_probe.lock().await;
        if let Some((at, result)) = &*last
            && at.elapsed() < PROBE_CACHE
        {
            return result.clone();
        }
        let dir = self.tmp_dir.clone();
        let result = tokio::task::spawn_blocking(move || probe(&dir))
            .await
            .unwrap_or_else(|e| Err(ProbeError(format!("probe task failed: {e}"))));
        // The sessions go by the same verdict (see crate::spool::unwritten).
        self.spool.note_files(result.is_ok());
        *last = Some((Instant::now(), result.clone()));
        result
    }
}

/// Creates, writes, fsyncs and unlinks a small file in `dir`.
fn probe(dir: &std::path::Path) -> Result<(), ProbeError> {
    crate::spool::probe_dir(dir, PROBE_FILE).map_err(ProbeError)
}

async fn metrics(State(health): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        health.metrics.render(crate::clock::now_ms()),
    )
}

/// A probe's answer: `200` and `good`, or `503` and `bad` with the problems; then the status.
fn answer(health: &Health, verdict: Result<(), Vec<String>>, good: &str, bad: &str) -> impl IntoResponse + use<> {
    let now = crate::clock::now_ms();
    let (status, mut body) = match verdict {
        Ok(()) => (StatusCode::OK, format!("{good}\n")),
        Err(problems) => (StatusCode::SERVICE_UNAVAILABLE, format!("{bad}\n{}\n", problems.join("\n"))),
    };
    body.push_str(&health.status_lines(now));
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body)
}

async fn readyz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let verdict = health.readiness().await;
    answer(&health, verdict, "ready", "not ready")
}

async fn healthz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let verdict = health.liveness(crate::clock::now_ms());
    answer(&health, verdict, "alive", "wedged")
}

/// Serves `/metrics`, `/readyz` and `/healthz` on `listener` until shutdown begins.
pub fn serve(listener: TcpListener, health: Arc<Health>, mut shutdown: ShutdownSignal) -> JoinHandle<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .route("/healthz", get(healthz))
        .with_state(health);
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.wait().await }).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics listener failed");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_leaves_nothing_behind_and_reports_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        probe(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let e = probe(&dir.path().join("missing")).unwrap_err();
        assert!(e.0.starts_with("cannot create"), "{e}");
    }

    fn health(listening: bool) -> (tempfile::TempDir, Health, Arc<Metrics>, crate::shutdown::Shutdown) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let metrics = Arc::new(Metrics::default());
        let shutdown = crate::shutdown::Shutdown::new();
        let flag = Arc::new(AtomicBool::new(listening));
        let spool = Arc::new(crate::spool::Spool::open(dir.path()).unwrap());
        let h = Health::new(Arc::clone(&metrics), spool, shutdown.signal(), flag);
        (dir, h, metrics, shutdown)
    }

    #[tokio::test]
    async fn readiness_needs_the_listener_and_ends_with_shutdown() {
        let (_dir, h, _, shutdown) = health(false);
        assert_eq!(h.readiness().await, Err(vec!["the SMTP listener is not accepting connections".to_string()]));
        h.listening.store(true, Ordering::Release);
        assert_eq!(h.readiness().await, Ok(()));
        shutdown.trigger();
        assert_eq!(h.readiness().await, Err(vec!["shutting down".to_string()]));
    }

    #[test]
    fn liveness_fails_only_when_the_worker_stops_turning() {
        let (_dir, h, metrics, _shutdown) = health(true);
        let start = h.started_ms;
        let wedged = u64::try_from(WEDGED_AFTER.as_millis()).unwrap();
        // Never seen yet: counted from start.
        assert_eq!(h.liveness(start + wedged), Ok(()));
        let e = h.liveness(start + wedged + 1_000).unwrap_err();
        assert!(e[0].starts_with("the delivery worker has not turned for 601s"), "{e:?}");
        metrics.worker_seen(start + wedged);
        assert_eq!(h.liveness(start + wedged + 1_000), Ok(()));
    }

    #[test]
    fn status_lines_report_depth_ages_and_the_pause() {
        let (_dir, h, metrics, _shutdown) = health(true);
        assert_eq!(
            h.status_lines(5_000),
            "queue_depth 0\noldest_pending_age_seconds 0.000\nlast_upstream_success_seconds_ago never\n"
        );
        metrics.set_queue(3, Some(1_000));
        metrics.pause("HTTP 401, ErrorCode 10\nsecond line");
        let now = crate::clock::now_ms();
        let lines = h.status_lines(now + 2_500);
        assert!(lines.starts_with("queue_depth 3\noldest_pending_age_seconds "), "{lines}");
        assert!(lines.contains("last_upstream_success_seconds_ago never\n"), "{lines}");
        assert!(lines.ends_with("delivery_paused HTTP 401, ErrorCode 10 second line\n"), "{lines}");
        metrics.delivered(crate::metrics::Path::Api);
        let lines = h.status_lines(crate::clock::now_ms() + 2_500);
        assert!(lines.contains("last_upstream_success_seconds_ago 2.5"), "{lines}");
    }
}
