//! The accept loop: a connection limit (semaphore permits), backoff on accept errors, and a
//! bounded drain of sessions at shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::access::Access;
use crate::session::{Acceptor, Session, SessionConfig};
use crate::shutdown::ShutdownSignal;

/// What the accept loop needs.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Session limits and timeouts.
    pub session: Arc<SessionConfig>,
    /// Who may send.
    pub access: Arc<Access>,
    /// Most simultaneous sessions; further connections get `421 4.7.0` and are closed at once.
    pub max_connections: usize,
    /// How long sessions may take to finish once shutdown begins.
    pub drain_timeout: Duration,
}

/// Accepts connections until shutdown, then lets sessions finish within the drain timeout.
pub async fn serve(listener: TcpListener, cfg: ListenerConfig, acceptor: Arc<Acceptor>, mut shutdown: ShutdownSignal) {
    let permits = Arc::new(Semaphore::new(cfg.max_connections));
    let mut sessions = JoinSet::new();
    let mut backoff = Duration::from_millis(10);
    let mut refused = Refused::default();
    loop {
        while sessions.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = shutdown.wait() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => {
                backoff = Duration::from_millis(10);
                conn
            }
            Err(e) => {
                // EMFILE and friends: wait a little instead of spinning.
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "accept failed");
                tokio::select! {
                    () = shutdown.wait() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            refused.note(peer, cfg.max_connections);
            acceptor.metrics().rejected(crate::metrics::Reject::ConnectionLimit);
            refuse(stream, &cfg.session.hostname);
            continue;
        };
        let session = Session::new(
            stream,
            Arc::clone(&cfg.session),
            Arc::clone(&cfg.access),
            Arc::clone(&acceptor),
            shutdown.clone(),
        )
        .peer(peer);
        let span = tracing::info_span!("session", %peer);
        sessions.spawn(
            async move {
                let _permit = permit;
                tracing::debug!("connected");
                match session.run().await {
                    Ok(()) => tracing::debug!("closed"),
                    Err(e) => tracing::debug!(error = %e, "session ended with an I/O error"),
                }
            }
            .instrument(span),
        );
    }
    drop(listener);
    while sessions.try_join_next().is_some() {}
    if sessions.is_empty() {
        return;
    }
    tracing::info!(sessions = sessions.len(), "waiting for open sessions to finish");
    let deadline = tokio::time::sleep(cfg.drain_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = sessions.join_next() => if next.is_none() { break },
            () = &mut deadline => {
                tracing::warn!(sessions = sessions.len(), "shutdown deadline passed; closing remaining sessions");
                sessions.abort_all();
                while sessions.join_next().await.is_some() {}
                break;
            }
        }
    }
}

/// Answers a connection over the limit with `421 4.7.0` and closes it, at once: one
/// non-blocking write into the new socket's empty send buffer, no task and no queue, so a flood
/// of connections costs nothing beyond the accept itself.
fn refuse(stream: tokio::net::TcpStream, hostname: &str) {
    let line = format!("421 4.7.0 {hostname} Too many connections, try again later\r\n");
    let _ = stream.try_write(line.as_bytes());
    drop(stream);
}

/// Logs refused connections at most once a second (a flood must not become a log flood).
#[derive(Debug, Default)]
struct Refused {
    since_last_log: u64,
    last_log: Option<tokio::time::Instant>,
}

impl Refused {
    fn note(&mut self, peer: std::net::SocketAddr, limit: usize) {
        self.since_last_log += 1;
        let now = tokio::time::Instant::now();
        if self.last_log.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            tracing::warn!(%peer, limit, refused = self.since_last_log, "connections refused: too many connections");
            self.since_last_log = 0;
            self.last_log = Some(now);
        }
    }
}
