//! Putting it together: open the spool, start the delivery worker and the listener, and shut
//! both down in order.

use std::fs::File;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{Config, DryRunReason, Mode};
use crate::convert::ConvertOptions;
use crate::delivery::{self, Backend, Worker, WorkerConfig};
use crate::envelope::Via;
use crate::listener::{self, ListenerConfig};
use crate::session::Acceptor;
use crate::shutdown::Shutdown;
use crate::spool::Spool;

/// How often the worker rescans the spool for `queue retry` markers and revived messages.
const RESCAN_INTERVAL: Duration = Duration::from_secs(2);

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The spool directory cannot be used.
    #[error("spool {path}: {source}")]
    Spool {
        /// The spool directory.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The upstream client cannot be set up.
    #[error("{0}")]
    Upstream(String),
}

/// A relay that is running.
#[derive(Debug)]
pub struct RunningRelay {
    local_addr: SocketAddr,
    shutdown: Shutdown,
    task: JoinHandle<()>,
}

impl RunningRelay {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Begins a graceful shutdown.
    pub fn shutdown(&self) {
        self.shutdown.trigger();
    }

    /// Waits until the relay has stopped (after [`RunningRelay::shutdown`]).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// Shuts down and waits.
    pub async fn stop(self) {
        self.shutdown();
        self.wait().await;
    }
}

/// Starts the relay described by `config`.
pub async fn start(config: Config) -> Result<RunningRelay, StartError> {
    // One crypto provider for every rustls user in the process (mail-send, reqwest).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let spool_err = |source| StartError::Spool { path: config.spool.display().to_string(), source };
    let spool = Arc::new(Spool::open(&config.spool).map_err(spool_err)?);
    let lock: File = spool.lock().map_err(spool_err)?;
    let leftovers = spool.recover().map_err(spool_err)?;
    if leftovers > 0 {
        tracing::info!(files = leftovers, "removed incomplete writes left by an earlier run (never acknowledged)");
    }

    let convert = ConvertOptions { message_stream: config.message_stream.clone() };
    let backend = match config.mode {
        Mode::DryRun(via, _) => {
            Backend::DryRun(delivery::dry_run::DryRun::new(Arc::clone(&spool), via, convert.clone()))
        }
        Mode::Send(Via::Api) => {
            let token = config
                .credentials
                .server_token
                .as_ref()
                .ok_or_else(|| StartError::Upstream("no server token".into()))?;
            Backend::Api(
                delivery::api::Api::new(&config.api_url, token.expose(), config.api_timeout, convert.clone())
                    .map_err(StartError::Upstream)?,
            )
        }
        Mode::Send(Via::Smtp) => Backend::Smtp(delivery::smtp::Smtp::new(&config).map_err(StartError::Upstream)?),
    };

    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|source| StartError::Listen { addr: config.listen.clone(), source })?;
    let local_addr =
        listener.local_addr().map_err(|source| StartError::Listen { addr: config.listen.clone(), source })?;

    let shutdown = Shutdown::new();
    let (queued_tx, queued_rx) = mpsc::unbounded_channel();
    let mut worker = Worker::new(
        Arc::clone(&spool),
        backend,
        WorkerConfig {
            max_retry_delay: config.max_retry_delay,
            message_lifetime: config.message_lifetime,
            rescan_interval: RESCAN_INTERVAL,
        },
        queued_rx,
        shutdown.signal(),
    );
    let pending = worker.load_pending().map_err(spool_err)?;
    let acceptor = Arc::new(Acceptor::new(Arc::clone(&spool), config.mode.via(), convert, queued_tx));

    banner(&config, local_addr, pending);

    let listener_cfg = ListenerConfig {
        session: Arc::new(config.session.clone()),
        max_connections: config.max_connections,
        drain_timeout: config.shutdown_timeout,
    };
    let drain = config.shutdown_timeout;
    let signal = shutdown.signal();
    let mut signal_for_worker = shutdown.signal();
    let task = tokio::spawn(async move {
        let _lock = lock;
        let worker = tokio::spawn(worker.run());
        listener::serve(listener, listener_cfg, acceptor, signal).await;
        // The listener returns only once shutdown has begun; give the worker the same deadline
        // to finish the batch in flight.
        signal_for_worker.wait().await;
        let abort = worker.abort_handle();
        if tokio::time::timeout(drain, worker).await.is_err() {
            tracing::warn!("shutdown deadline passed during a delivery; the message stays spooled");
            abort.abort();
        }
        tracing::info!("postmark-relay stopped");
    });

    Ok(RunningRelay { local_addr, shutdown, task })
}

fn banner(config: &Config, addr: SocketAddr, pending: usize) {
    let spool = config.spool.display();
    match config.mode {
        Mode::Send(Via::Api) => tracing::info!(
            listen = %addr, %spool, pending, api_url = %config.api_url,
            "postmark-relay started: forwarding via Postmark's HTTP API"
        ),
        Mode::Send(Via::Smtp) => tracing::info!(
            listen = %addr, %spool, pending,
            smtp = %format!("{}:{}", config.smtp.host, config.smtp.port),
            "postmark-relay started: forwarding via Postmark's SMTP service"
        ),
        Mode::DryRun(via, reason) => {
            let why = match reason {
                DryRunReason::Requested => "--dry-run given",
                DryRunReason::NoCredentials => {
                    "no credentials set (POSTMARK_SERVER_TOKEN, or POSTMARK_SMTP_ACCESS_KEY and POSTMARK_SMTP_SECRET_KEY)"
                }
            };
            let output = match via {
                Via::Api => "Postmark API JSON",
                Via::Smtp => "raw .eml messages",
            };
            tracing::warn!(
                listen = %addr, %spool, pending,
                dry_run_dir = %config.spool.join("dry-run").display(),
                "postmark-relay started in DRY-RUN mode ({why}): nothing is sent; {output} \
                 are written under the dry-run directory"
            );
        }
    }
}
