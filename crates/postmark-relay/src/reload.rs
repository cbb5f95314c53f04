//! Rotation without a restart: on SIGHUP, on [`crate::RunningRelay::reload`], or when a watched
//! file changes, the relay reads its credentials again (secret files, the config file; the
//! environment as captured at start), and the client AUTH users file and the TLS certificate.
//!
//! Files are watched by polling their metadata (modification time, size, inode) every
//! [`POLL_INTERVAL`]: portable, no extra dependency, and it sees atomic replacements (a rename
//! over the file, or Kubernetes swapping a secret's symlink) as well as writes in place.
//!
//! New credentials go to the delivery worker, which switches its client over and, if delivery was
//! paused (for instance on HTTP 401), resumes at once: queued mail is retried with the new token
//! and nothing is dead-lettered. A reload that fails (an unreadable or empty secret file, a
//! broken config file) keeps everything as it was and logs an ERROR naming the file, never its
//! content. Only credentials, users and the certificate are reloaded; other settings (listen
//! address, `--via`, limits) need a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};

use crate::access::Access;
use crate::config::CredentialSource;
use crate::secrets::Credentials;
use crate::shutdown::ShutdownSignal;

/// How often watched files are checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What identifies a version of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn fingerprint(path: &std::path::Path) -> Option<Fingerprint> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Fingerprint { modified: meta.modified().ok(), len: meta.len(), inode })
}

/// The task that reloads.
#[derive(Debug)]
pub struct Reloader {
    source: CredentialSource,
    access: Access,
    credentials: watch::Sender<Arc<Credentials>>,
    requests: Arc<Notify>,
    credential_files: Vec<PathBuf>,
    seen: Vec<(PathBuf, Option<Fingerprint>)>,
    hangup: Hangup,
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

impl Reloader {
    /// A reloader for the credentials from `source` and `access`'s files. Installs the SIGHUP
    /// handler now (SIGHUP would otherwise end the process), so call it before announcing the
    /// start.
    pub fn new(
        source: CredentialSource,
        access: Access,
        credentials: watch::Sender<Arc<Credentials>>,
        requests: Arc<Notify>,
    ) -> Self {
        #[cfg(unix)]
        let hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; credentials are reloaded only when files change");
                None
            }
        };
        #[cfg(not(unix))]
        let hangup = ();
        let credential_files = source.load().map(|(_, files)| files).unwrap_or_default();
        let mut reloader = Self { source, access, credentials, requests, credential_files, seen: Vec::new(), hangup };
        reloader.seen = reloader.fingerprints();
        reloader
    }

    fn watched(&self) -> Vec<PathBuf> {
        let mut files = self.credential_files.clone();
        if let Some(users) = &self.access.users {
            files.push(users.path().to_path_buf());
        }
        if let Some(tls) = &self.access.tls {
            files.extend(tls.files().iter().map(|p| p.to_path_buf()));
        }
        files.sort();
        files.dedup();
        files
    }

    fn fingerprints(&self) -> Vec<(PathBuf, Option<Fingerprint>)> {
        self.watched().into_iter().map(|p| (p.clone(), fingerprint(&p))).collect()
    }

    /// Runs until shutdown.
    pub async fn run(mut self, mut shutdown: ShutdownSignal) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let requests = Arc::clone(&self.requests);
        loop {
            tokio::select! {
                () = shutdown.wait() => break,
                () = hangup(&mut self.hangup) => self.reload("SIGHUP", None),
                () = requests.notified() => self.reload("reload requested", None),
                _ = tick.tick() => {
                    let now = self.fingerprints();
                    let changed: Vec<PathBuf> =
                        now.iter().filter(|f| !self.seen.contains(f)).map(|(p, _)| p.clone()).collect();
                    if !changed.is_empty() {
                        self.reload("a watched file changed", Some(&changed));
                    }
                }
            }
        }
    }

    /// Reloads; `changed` lists the files that changed (`None`: forced, reload everything and
    /// always hand the credentials to the worker, which also ends a pause).
    fn reload(&mut self, why: &str, changed: Option<&[PathBuf]>) {
        let touched =
            |files: &[&std::path::Path]| changed.is_none_or(|c| files.iter().any(|f| c.iter().any(|x| x == f)));
        match self.source.load() {
            Ok((credentials, files)) => {
                let different = **self.credentials.borrow() != credentials;
                if different || changed.is_none() {
                    self.credentials.send_replace(Arc::new(credentials));
                }
                if different {
                    tracing::info!(why, "credentials reloaded; delivery goes on with the new ones");
                } else if changed.is_none() {
                    tracing::info!(why, "reloaded; the credentials are unchanged");
                }
                self.credential_files = files;
            }
            Err(e) => {
                tracing::error!(why, error = %e, "cannot reload the credentials; the current ones stay in use")
            }
        }
        if let Some(users) = &self.access.users
            && touched(&[users.path()])
        {
            match users.reload() {
                Ok(n) => tracing::info!(why, users = n, "client AUTH users reloaded"),
                Err(e) => tracing::error!(why, error = %e, "cannot reload the users file; the current users stay"),
            }
        }
        if let Some(tls) = &self.access.tls
            && touched(&tls.files())
        {
            match tls.reload() {
                Ok(()) => tracing::info!(why, "TLS certificate reloaded"),
                Err(e) => tracing::error!(why, error = %e, "cannot reload the TLS certificate; the current one stays"),
            }
        }
        self.seen = self.fingerprints();
    }
}

#[cfg(not(unix))]
async fn hangup(_: &mut Hangup) {
    std::future::pending().await
}

#[cfg(unix)]
async fn hangup(signal: &mut Hangup) {
    match signal {
        Some(s) => {
            if s.recv().await.is_none() {
                *signal = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
