//! Shared helpers: start a relay in-process, send with lettre, wait for conditions.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use lettre::address::Envelope as LettreEnvelope;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use postmark_relay::RunningRelay;
use postmark_relay::cli::Cli;
use postmark_relay::config::Config;

/// One rustls provider for the whole test process.
pub fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A relay running in this process on an ephemeral port with its own spool.
pub struct TestRelay {
    pub relay: Option<RunningRelay>,
    pub addr: SocketAddr,
    pub spool: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestRelay {
    /// Starts a relay with these extra flags and this environment (secrets).
    pub async fn start(flags: &[&str], env: &[(&str, &str)]) -> TestRelay {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        Self::start_on(dir, spool, flags, env).await
    }

    /// Starts a relay on an existing spool directory.
    pub async fn start_on(dir: tempfile::TempDir, spool: PathBuf, flags: &[&str], env: &[(&str, &str)]) -> TestRelay {
        init();
        let spool_arg = spool.to_str().unwrap().to_string();
        let mut argv = vec!["postmark-relay", "--listen", "127.0.0.1:0", "--spool", &spool_arg];
        argv.extend_from_slice(flags);
        let cli = Cli::try_parse_from(argv).expect("flags");
        let pairs: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = move |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let config = Config::resolve(&cli.args, &lookup).expect("config");
        let relay = postmark_relay::start(config).await.expect("relay starts");
        TestRelay { addr: relay.local_addr(), relay: Some(relay), spool, _dir: dir }
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.relay.take() {
            r.stop().await;
        }
    }

    pub fn files(&self, area: &str) -> Vec<String> {
        files(&self.spool.join(area))
    }
}

/// File names in a directory, sorted (hidden temporary files excluded).
pub fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A lettre transport to the relay (plain SMTP on loopback, no pooling).
pub fn client(addr: SocketAddr) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .timeout(Some(Duration::from_secs(60)))
        .pool_config(lettre::transport::smtp::PoolConfig::new().max_size(1).idle_timeout(Duration::from_millis(100)))
        .build()
}

/// Sends `raw` with this envelope through lettre; returns the queue id from the 250 reply.
pub async fn send(
    addr: SocketAddr,
    from: &str,
    to: &[&str],
    raw: &[u8],
) -> Result<String, lettre::transport::smtp::Error> {
    let envelope =
        LettreEnvelope::new(Some(from.parse().unwrap()), to.iter().map(|t| t.parse().unwrap()).collect()).unwrap();
    let response = client(addr).send_raw(&envelope, raw).await?;
    let line = response.message().collect::<Vec<_>>().join(" ");
    Ok(line.rsplit(' ').next().expect("queue id in the 250 reply").to_string())
}

/// A small valid message (without the final CRLF: lettre appends one).
pub fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: Sender <sender@example.com>\r\nTo: rcpt@example.com\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@example.com>\r\n\r\nHello, {subject}.\r\n.leading dot line"
    )
    .into_bytes()
}

/// Polls `check` until it returns `Some`, or panics after `timeout`.
pub async fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
