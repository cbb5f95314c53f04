//! The local preview UI (`--ui ADDR`): what Postmark will get, in the browser.
//!
//! Not the MIME a client sent (mail catchers show that) but the exact `/email` request Postmark
//! will receive and whether Postmark will take it: a list of the spool's messages (dry-run
//! output, pending, deferred, dead, and the last
//! messages delivered, of which only what the list shows is kept) and a view of each with its HTML (sandboxed), text,
//! Postmark JSON, MIME source, the fate of every header, attachments and the verdict of
//! Postmark's rules. `GET /api/messages` and `/api/messages/{id}` serve the same as JSON.
//!
//! The module reads the spool only through its public functions and the conversion and checks
//! through [`crate::convert`], [`crate::delivery::api::requests_for`] and [`crate::validate`];
//! the rest of the relay sees [`UiSettings`] and [`start`].
//!
//! | file | what |
//! | --- | --- |
//! | `settings.rs` | the settings and the bind rule |
//! | `store.rs` | finding and paging through messages in the spool |
//! | `view.rs` | a message as Postmark gets it: requests, recipients, headers, attachments |
//! | `verdict.rs` | Postmark's rules, passed or failed, with ErrorCodes |
//! | `pages.rs` | the HTML (everything escaped) |
//! | `server.rs` | routes, security headers, live updates, the token check |
//! | `actions.rs` | delete and release |

mod actions;
mod pages;
pub mod server;
pub mod settings;
pub mod store;
pub mod verdict;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use self::settings::{BindError, DEFAULT_ADDR, UiSettings, check_bind, parse_allow};
pub use self::view::ViewOptions;
use crate::shutdown::ShutdownSignal;
use crate::spool::Spool;

/// What the handlers share.
#[derive(Debug)]
pub struct Ui {
    spool: Arc<Spool>,
    view: ViewOptions,
    settings: UiSettings,
    /// The header's mode label (`dry-run`, `sending via the API`, …).
    mode: String,
    /// Whether the relay runs in dry-run (a dry-run message cannot be released then).
    dry_run: bool,
    shutdown: ShutdownSignal,
    /// The messages delivered lately (empty unless the relay's worker records into it).
    delivered: Arc<crate::delivered::Delivered>,
}

impl Ui {
    /// The UI over `spool`.
    pub fn new(
        spool: Arc<Spool>,
        view: ViewOptions,
        settings: UiSettings,
        dry_run: bool,
        shutdown: ShutdownSignal,
    ) -> Self {
        let mode = if dry_run {
            format!("dry-run · shaped for {}", view.via.as_str().to_uppercase())
        } else {
            format!("sending via {}", view.via.as_str().to_uppercase())
        };
        let delivered = Arc::default();
        Self { spool, view, settings, mode, dry_run, shutdown, delivered }
    }

    /// Lists the messages in `delivered` as well (the record the delivery worker keeps).
    pub fn with_delivered(mut self, delivered: Arc<crate::delivered::Delivered>) -> Self {
        self.delivered = delivered;
        self
    }
}

/// Why the UI cannot start.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The address is refused by the bind rule.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The address cannot be bound.
    #[error("cannot serve the UI on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A UI that is serving.
#[derive(Debug)]
pub struct RunningUi {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its task (it ends at shutdown).
    pub task: JoinHandle<()>,
}

/// Binds and serves the UI. The dry-run default address, when taken, is a warning and no UI;
/// an address that was set is an error.
pub async fn start(ui: Ui) -> Result<Option<RunningUi>, UiError> {
    let addr = check_bind(&ui.settings)?;
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) if ui.settings.by_default => {
            tracing::warn!(ui = %addr, error = %e, "the preview UI's default address is taken; no UI (set --ui ADDR, or --ui off)");
            return Ok(None);
        }
        Err(source) => return Err(UiError::Listen { addr, source }),
    };
    let addr = listener.local_addr().map_err(|source| UiError::Listen { addr, source })?;
    if crate::access::is_loopback(addr.ip()) {
        tracing::info!(ui = %format!("http://{addr}/"), actions = ui.settings.actions_enabled(), "serving the preview UI");
    } else {
        tracing::warn!(
            ui = %addr,
            allow = ?ui.settings.allow.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "the preview UI is NOT on a loopback address: the networks in ui_allow can read every message"
        );
    }
    let mut shutdown = ui.shutdown.clone();
    let app = server::router(Arc::new(ui)).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.wait().await }).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the preview UI failed");
        }
    });
    Ok(Some(RunningUi { addr, task }))
}
