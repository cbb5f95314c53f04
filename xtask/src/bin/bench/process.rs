//! The servers' processes: starting them (under a profiling wrapper if asked), waiting for them to listen, stopping
//! them; the private work directory; small file helpers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::procfs::children_of;

/// A server process, stopped when dropped.
pub struct ChildGuard {
    child: Child,
    name: &'static str,
}

impl ChildGuard {
    /// Starts `program` (under `wrapper`, e.g. `valgrind --tool=callgrind`, if given) in `cwd` with stdout and
    /// stderr to `log`. `env` replaces every inherited `RELAY_*` and `POSTMARK_*` variable.
    pub fn spawn(
        name: &'static str,
        wrapper: &[String],
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        cwd: &Path,
        log: &Path,
    ) -> Result<ChildGuard> {
        let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(program);
                c
            }
            None => Command::new(program),
        };
        for (k, _) in std::env::vars() {
            if k.starts_with("RELAY_") || k.starts_with("POSTMARK_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(out.try_clone().context("log file")?)
            .stderr(out);
        let child = cmd.spawn().with_context(|| format!("starting {}", program.display()))?;
        Ok(ChildGuard { child, name })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// The process to measure: under a wrapper that forks (`perf record`), the descendant running `program`;
    /// otherwise (no wrapper, or valgrind, which runs the program in its own process) the child itself.
    pub fn measured_pid(&self, program: &Path) -> u32 {
        let program = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
        let mut todo = vec![self.id()];
        while let Some(pid) = todo.pop() {
            if std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == program) {
                return pid;
            }
            todo.extend(children_of(pid));
        }
        self.id()
    }

    /// SIGTERM (graceful shutdown), then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if self.exited() {
            return;
        }
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop within {grace:?}; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A private temporary directory, removed at the end unless kept.
pub struct WorkDir {
    path: PathBuf,
    keep: bool,
    runs: AtomicUsize,
}

impl WorkDir {
    pub fn create(keep: bool) -> Result<WorkDir> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let path = std::env::temp_dir().join(format!("xtask-bench-relay-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        if keep {
            println!("work directory (kept): {}", path.display());
        }
        Ok(WorkDir { path, keep, runs: AtomicUsize::new(0) })
    }

    /// A new numbered directory for one run.
    pub fn fresh(&self, what: &str) -> Result<PathBuf> {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let dir = self.path.join(format!("{n:02}-{what}"));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Waits until something accepts connections on `addr` (saying QUIT to it), or `exited()` says the server is gone.
pub async fn wait_ready(addr: SocketAddr, within: Duration, mut exited: impl FnMut() -> bool) -> Result<()> {
    let until = Instant::now() + within;
    loop {
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let _ = s.write_all(b"QUIT\r\n").await;
            return Ok(());
        }
        if exited() {
            bail!("the server exited before listening on {addr}");
        }
        if Instant::now() > until {
            bail!("nothing listens on {addr} after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn run_checked(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn count_with_suffix(dir: &Path, suffix: &str) -> std::io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        if entry?.file_name().to_str().is_some_and(|name| name.ends_with(suffix)) {
            n += 1;
        }
    }
    Ok(n)
}

/// The relay's source: the commit, and whether crates/postmark-relay has changes on top of it.
pub fn relay_revision() -> String {
    let root = xtask::workspace_root();
    let rev = Command::new("git")
        .current_dir(&root)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let dirty = Command::new("git")
        .current_dir(&root)
        .args(["status", "--porcelain", "--", "crates/postmark-relay"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    match rev {
        Some(r) if dirty => format!("{r} + uncommitted changes in crates/postmark-relay"),
        Some(r) => r,
        None => "unknown revision".into(),
    }
}

/// A release build of postmark-relay.
pub struct BuiltRelay {
    pub binary: PathBuf,
    pub seconds: f64,
}

/// `cargo build --release -p postmark-relay`, timed; the binary's path comes from cargo's JSON messages.
pub fn build_relay() -> Result<BuiltRelay> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = Instant::now();
    let out = Command::new(cargo)
        .current_dir(xtask::workspace_root())
        .args(["build", "--release", "-p", "postmark-relay", "--message-format=json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("cargo build --release -p postmark-relay failed");
    }
    let binary = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "postmark-relay")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| anyhow!("cargo did not report the postmark-relay executable"))?;
    Ok(BuiltRelay { binary, seconds })
}
