//! Putting it together: open the spool, start the delivery worker and the listener, and shut
//! both down in order.

use std::fs::File;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::access::{Access, AccessError};
use crate::config::{Config, DryRunReason, Mode};
use crate::delivery::{self, Backend, BackendError, Worker};
use crate::envelope::Via;
use crate::listener::{self, ListenerConfig};
use crate::metrics::{self, Metrics};
use crate::reload::Reloader;
use crate::session::Acceptor;
use crate::shutdown::Shutdown;
use crate::spool::Spool;

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
    #[error(transparent)]
    Upstream(#[from] BackendError),
    /// The access policy refuses the configuration (an open relay), or its files cannot be
    /// loaded (users file, TLS certificate).
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The preview UI cannot be served where it is asked to.
    #[error(transparent)]
    Ui(#[from] crate::ui::UiError),
}

/// A relay that is running.
#[derive(Debug)]
pub struct RunningRelay {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    ui_addr: Option<SocketAddr>,
    shutdown: Shutdown,
    task: JoinHandle<()>,
    reload: Arc<Notify>,
}

impl RunningRelay {
    /// Reads credentials, the users file and the certificate again, as SIGHUP does.
    pub fn reload(&self) {
        self.reload.notify_one();
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the preview UI, if it is served.
    pub fn ui_addr(&self) -> Option<SocketAddr> {
        self.ui_addr
    }

    /// The address of the `/metrics` and `/healthz` listener, if `--metrics` was given.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
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

    // Access first: an open-relay configuration is refused before anything else happens.
    let access = Access::load(&config.access)?;
    let listen_err = |source| StartError::Listen { addr: config.listen.clone(), source };
    let listen_addrs: Vec<SocketAddr> = tokio::net::lookup_host(&config.listen).await.map_err(listen_err)?.collect();
    if listen_addrs.is_empty() {
        return Err(listen_err(std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address")));
    }
    crate::access::check_listen(&listen_addrs, &access)?;

    let spool_err = |source| StartError::Spool { path: config.spool.display().to_string(), source };
    let spool = Arc::new(Spool::open(&config.spool).map_err(spool_err)?);
    let lock: File = spool.lock().map_err(spool_err)?;
    crate::spool::maildrop::ensure(spool.root()).map_err(spool_err)?;
    let leftovers = spool.recover().map_err(spool_err)?;
    if leftovers > 0 {
        tracing::info!(files = leftovers, "removed incomplete writes left by an earlier run (never acknowledged)");
    }
    let journal = spool.recover_journal().map_err(spool_err)?;
    if journal.segments > 0 {
        tracing::info!(
            segments = journal.segments,
            replayed = journal.replayed,
            delivered = journal.delivered,
            damaged = journal.damaged,
            "checked the journal left by an earlier run (replayed messages are ones a reboot lost from queue/)"
        );
    }

    let convert = config.convert.clone();
    let policy = Arc::new(config.policy.clone());
    let verified = Arc::clone(policy.verified());
    let backend = match config.mode {
        Mode::DryRun(via, _) => {
            Backend::DryRun(delivery::dry_run::DryRun::new(Arc::clone(&spool), via, convert.clone()))
        }
        Mode::Send(Via::Api) => {
            let token = config.credentials.server_token.as_ref().ok_or(BackendError::NoServerToken)?;
            let mut api = delivery::api::Api::new(config.api.clone(), token, convert.clone())?
                .with_verified(Arc::clone(&verified));
            api.set_credentials(&config.credentials)?;
            Backend::Api(api)
        }
        Mode::Send(Via::Smtp) => Backend::Smtp(delivery::smtp::Smtp::new(config.smtp.clone(), &config.credentials)?),
    };

    let listener = TcpListener::bind(&listen_addrs[..])
        .await
        .map_err(|source| StartError::Listen { addr: config.listen.clone(), source })?;
    let local_addr =
        listener.local_addr().map_err(|source| StartError::Listen { addr: config.listen.clone(), source })?;

    let metrics_listener = match &config.metrics {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen { addr: format!("{addr} (--metrics)"), source })?,
        ),
        None => None,
    };
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());

    let shutdown = Shutdown::new();
    let metrics = Arc::new(Metrics::default());
    // Damaged journal records and spool files found by the recovery (each logged there).
    (0..journal.damaged).for_each(|_| metrics.quarantined());
    let (queued_tx, queued_rx) = mpsc::unbounded_channel();
    let worker = Worker::new(Arc::clone(&spool), backend, config.worker.clone(), queued_rx, shutdown.signal())
        .with_metrics(Arc::clone(&metrics));
    let (credentials_tx, credentials_rx) = watch::channel(Arc::new(config.credentials.clone()));
    let mut worker = worker.with_credential_updates(credentials_rx);
    // The preview UI lists the messages delivered lately; the worker records them only for it, and
    // not in dry-run (whose output the UI lists from `dry-run/`).
    let sends = !matches!(config.mode, Mode::DryRun(..));
    let delivered = config.ui.as_ref().filter(|_| sends).map(|_| Arc::new(crate::delivered::Delivered::default()));
    if let Some(d) = &delivered {
        worker = worker.with_delivered(Arc::clone(d));
    }
    if let Some(settings) = &config.notify {
        let notifier =
            delivery::notify::Notifier::new(settings.clone(), &config.session.hostname, crate::clock::now_ms());
        worker = worker.with_notifier(notifier);
    }
    let pending = worker.load_pending().map_err(spool_err)?;
    let acceptor = Arc::new(
        Acceptor::new(Arc::clone(&spool), config.mode.via(), convert, queued_tx)
            .map_err(spool_err)?
            .with_metrics(Arc::clone(&metrics))
            .with_policy(Arc::clone(&policy)),
    );
    let account_poller = match &config.credentials.account_token {
        Some(token) => {
            let client = crate::policy::account::client(&config.api.url, token, config.api.timeout)
                .map_err(BackendError::ApiClient)?;
            Some(tokio::spawn(crate::policy::account::poll(client, verified, config.sender_refresh, shutdown.signal())))
        }
        None => None,
    };

    // Before the banner: from here on SIGHUP reloads instead of ending the process.
    let reload = Arc::new(Notify::new());
    let reloader = Reloader::new(config.credential_source.clone(), access.clone(), credentials_tx, Arc::clone(&reload));
    banner(&config, local_addr, pending);
    access.log_policy();
    // True while the SMTP listener accepts connections (for /readyz).
    let listening = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let listening_flag = Arc::clone(&listening);
    let health_spool = Arc::clone(&spool);
    let metrics_task = metrics_listener.map(|listener| {
        if let Some(addr) = metrics_addr {
            if addr.ip().is_loopback() {
                tracing::info!(metrics = %addr, "serving Prometheus metrics at /metrics and probes at /readyz and /healthz");
            } else {
                tracing::warn!(
                    metrics = %addr,
                    "the metrics listener is NOT on a loopback address: anyone who can reach it reads queue sizes, \
                     traffic counts and pause reasons; restrict it with a firewall or bind it to 127.0.0.1"
                );
            }
        }
        let health = Arc::new(metrics::server::Health::new(
            Arc::clone(&metrics),
            Arc::clone(&health_spool),
            shutdown.signal(),
            Arc::clone(&listening),
        ));
        metrics::server::serve(listener, health, shutdown.signal())
    });

    let ui = match &config.ui {
        Some(settings) => {
            let view = crate::ui::ViewOptions { via: config.mode.via(), convert: config.convert.clone() };
            let dry_run = matches!(config.mode, Mode::DryRun(..));
            crate::ui::start(
                crate::ui::Ui::new(Arc::clone(&health_spool), view, settings.clone(), dry_run, shutdown.signal())
                    .with_delivered(delivered.clone().unwrap_or_default()),
            )
            .await?
        }
        None => None,
    };
    let ui_addr = ui.as_ref().map(|u| u.addr);

    let listener_cfg = ListenerConfig {
        session: Arc::new(config.session.clone()),
        access: Arc::new(access),
        max_connections: config.max_connections,
        drain_timeout: config.shutdown_timeout,
    };
    let drain = config.shutdown_timeout;
    let signal = shutdown.signal();
    let mut signal_for_worker = shutdown.signal();
    let reload_signal = shutdown.signal();
    let import_signal = shutdown.signal();
    let task = tokio::spawn(async move {
        let _lock = lock;
        let reloader = tokio::spawn(reloader.run(reload_signal));
        let importer = tokio::spawn(import_maildrop(Arc::clone(&spool), Arc::clone(&acceptor), import_signal));
        let worker = tokio::spawn(worker.run());
        listening_flag.store(true, std::sync::atomic::Ordering::Release);
        listener::serve(listener, listener_cfg, acceptor, signal).await;
        listening_flag.store(false, std::sync::atomic::Ordering::Release);
        // The listener returns only once shutdown has begun; give the worker the same deadline
        // to finish the batch in flight.
        signal_for_worker.wait().await;
        let abort = worker.abort_handle();
        if tokio::time::timeout(drain, worker).await.is_err() {
            tracing::warn!("shutdown deadline passed during a delivery; the message stays spooled");
            abort.abort();
        }
        if let Some(t) = metrics_task {
            t.abort();
        }
        if let Some(u) = ui {
            u.task.abort();
        }
        reloader.abort();
        importer.abort();
        if let Some(t) = account_poller {
            t.abort();
        }
        tracing::info!("postmark-relay stopped");
    });

    Ok(RunningRelay { local_addr, metrics_addr, ui_addr, shutdown, task, reload })
}

/// How often the maildrop is looked at.
const MAILDROP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Imports what `sendmail` leaves in the maildrop, now and every second, until shutdown.
async fn import_maildrop(spool: Arc<Spool>, acceptor: Arc<Acceptor>, mut shutdown: crate::shutdown::ShutdownSignal) {
    use crate::spool::{LoadError, maildrop};
    let mut unreadable = std::collections::HashSet::new();
    loop {
        let root = spool.root().to_path_buf();
        let waiting = tokio::task::spawn_blocking(move || maildrop::waiting(&root)).await;
        let waiting = match waiting {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read the maildrop");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        for (id, path) in waiting {
            if shutdown.is_triggered() {
                return;
            }
            match maildrop::read(&id, &path) {
                Ok(msg) => match acceptor.import_dropped(id.clone(), msg.header.envelope, msg.raw).await {
                    Ok(()) => {
                        if let Err(e) = maildrop::remove(&path) {
                            tracing::error!(queue_id = %id, error = %e, "imported, but cannot remove the drop file");
                        }
                    }
                    Err(e) => tracing::warn!(queue_id = %id, error = %e, "cannot import from the maildrop yet"),
                },
                Err(LoadError::NotFound) => {}
                Err(LoadError::Corrupt(why)) => {
                    let dest = spool.root().join("quarantine").join(format!("{id}.maildrop"));
                    tracing::error!(queue_id = %id, why, quarantined = %dest.display(), "unreadable drop file");
                    let _ = std::fs::rename(&path, &dest);
                }
                Err(e) => {
                    if unreadable.insert(id.clone()) {
                        tracing::error!(queue_id = %id, error = %e, "cannot read a drop file (check the maildrop's permissions)");
                    }
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(MAILDROP_EVERY) => {}
            () = shutdown.wait() => return,
        }
    }
}

fn banner(config: &Config, addr: SocketAddr, pending: usize) {
    let spool = config.spool.display();
    match config.mode {
        Mode::Send(Via::Api) => tracing::info!(
            listen = %addr, %spool, pending, api_url = %config.api.url,
            "postmark-relay started: forwarding via Postmark's HTTP API"
        ),
        Mode::Send(Via::Smtp) => tracing::info!(
            listen = %addr, %spool, pending,
            smtp = %format!("{}:{}", config.smtp.upstream.host, config.smtp.upstream.port),
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
