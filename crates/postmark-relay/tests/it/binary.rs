//! Support for the hostile-input and fault tests: the real binary as a child process (with its
//! stderr collected and its memory readable from /proc), and a raw SMTP client that sends exactly
//! the bytes it is given.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::wait_for;

pub const BIN: &str = env!("CARGO_BIN_EXE_postmark-relay");

/// The relay's own arguments: listen on an ephemeral loopback port, this spool, these flags.
pub fn relay_args(spool: &Path, flags: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--listen".into(), "127.0.0.1:0".into(), "--spool".into(), spool.into()];
    args.extend(flags.iter().map(OsString::from));
    args
}

/// The relay binary running as a child process.
pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Binary {
    /// Starts the relay binary directly.
    pub async fn start(spool: &Path, flags: &[&str], env: &[(&str, &str)]) -> Binary {
        Self::spawn(BIN.as_ref(), &relay_args(spool, flags), env).await
    }

    /// Starts `program args` (the relay, or a wrapper that ends by exec'ing it) with a clean
    /// environment plus `env`, and waits for the start-up banner's listen address.
    pub async fn spawn(program: &std::ffi::OsStr, args: &[OsString], env: &[(&str, &str)]) -> Binary {
        let mut cmd = Command::new(program);
        cmd.args(args);
        cmd.env_clear().env("RUST_LOG", "info").env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (child, log) = crate::support::spawn_logged(cmd);
        let addr = {
            let log = Arc::clone(&log);
            wait_for("the start-up banner", Duration::from_secs(30), move || {
                let l = log.lock().unwrap();
                let start = l.find("listen=")? + "listen=".len();
                let end = l[start..].find(' ').map_or(l.len(), |e| start + e);
                l[start..end].parse::<SocketAddr>().ok()
            })
            .await
        };
        Binary { child, addr, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Resident memory of the relay process, in KiB (`VmRSS` from /proc/<pid>/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// SIGKILL, and reap it.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Samples a process's VmRSS every 20 ms on its own thread until dropped; keeps the peak.
pub struct RssSampler {
    peak: Arc<Mutex<u64>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let peak = Arc::new(Mutex::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, s) = (Arc::clone(&peak), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kib) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    let mut peak = p.lock().unwrap();
                    *peak = (*peak).max(kib);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssSampler { peak, stop, thread: Some(thread) }
    }

    /// The highest VmRSS seen so far, in KiB.
    pub fn peak_kib(&self) -> u64 {
        *self.peak.lock().unwrap()
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A loopback address nobody listens on (bound, then released), for an upstream that is down.
pub fn unused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}
