//! The `--metrics ADDR` listener: `GET /metrics` (Prometheus text format) and `GET /healthz`.
//!
//! `/healthz` answers `200 ok` when the spool is writable and delivery is not paused, else `503`
//! with one line per problem. "Writable" is tested for real: a small file is created in the
//! spool's `tmp/`, written, fsync'd and unlinked (a crash in between leaves it where start-up
//! cleans up). The result is cached for a second, so a scraper polling hard costs at most one
//! fsync per second.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
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
use crate::shutdown::ShutdownSignal;

/// How long a spool probe's result is reused.
const PROBE_CACHE: Duration = Duration::from_secs(1);
/// The probe file, in the spool's `tmp/` (hidden, and removed at start-up if a crash left it).
const PROBE_FILE: &str = ".healthz-probe";

/// What the handlers read.
#[derive(Debug)]
pub struct Health {
    metrics: Arc<Metrics>,
    tmp_dir: PathBuf,
    last_probe: Mutex<Option<(Instant, Result<(), String>)>>,
    shutdown: ShutdownSignal,
}

impl Health {
    /// Health of the relay whose spool is at `spool_root`.
    pub fn new(metrics: Arc<Metrics>, spool_root: PathBuf, shutdown: ShutdownSignal) -> Self {
        Self { metrics, tmp_dir: spool_root.join("tmp"), last_probe: Mutex::new(None), shutdown }
    }

    /// `Ok` when healthy, else the problems, one per line.
    pub async fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.shutdown.is_triggered() {
            problems.push("shutting down".to_string());
        }
        if let Err(e) = self.spool_writable().await {
            problems.push(format!("spool not writable: {e}"));
        }
        if let Some(reason) = self.metrics.paused() {
            problems.push(format!("delivery paused: {reason}"));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems.join("\n")) }
    }

    async fn spool_writable(&self) -> Result<(), String> {
        let mut last = self.last_probe.lock().await;
        if let Some((at, result)) = &*last
            && at.elapsed() < PROBE_CACHE
        {
            return result.clone();
        }
        let dir = self.tmp_dir.clone();
        let result = tokio::task::spawn_blocking(move || probe(&dir))
            .await
            .unwrap_or_else(|e| Err(format!("probe task failed: {e}")));
        *last = Some((Instant::now(), result.clone()));
        result
    }
}

/// Creates, writes, fsyncs and unlinks a small file in `dir`.
fn probe(dir: &std::path::Path) -> Result<(), String> {
    let path = dir.join(PROBE_FILE);
    let fail = |what: &str, e: std::io::Error| format!("{what} {}: {e}", path.display());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(|e| fail("cannot create", e))?;
    let written = file.write_all(b"ok\n").and_then(|()| file.sync_all());
    drop(file);
    let removed = std::fs::remove_file(&path);
    written.map_err(|e| fail("cannot write and fsync", e))?;
    removed.map_err(|e| fail("cannot remove", e))
}

async fn metrics(State(health): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        health.metrics.render(crate::clock::now_ms()),
    )
}

async fn healthz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let (status, body) = match health.check().await {
        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
        Err(problems) => (StatusCode::SERVICE_UNAVAILABLE, format!("{problems}\n")),
    };
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body)
}

/// Serves `/metrics` and `/healthz` on `listener` until shutdown begins.
pub fn serve(listener: TcpListener, health: Arc<Health>, mut shutdown: ShutdownSignal) -> JoinHandle<()> {
    let app = Router::new().route("/metrics", get(metrics)).route("/healthz", get(healthz)).with_state(health);
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
        assert!(e.starts_with("cannot create"), "{e}");
    }
}
