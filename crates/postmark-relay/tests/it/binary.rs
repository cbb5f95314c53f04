//! Support for the hostile-input and fault tests: the real binary as a child process (with its
//! stderr collected and its memory readable from /proc), and a raw SMTP client that sends exactly
//! the bytes it is given.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

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
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn the relay");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
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

/// A raw SMTP client: writes exactly the bytes it is given, reads whole replies.
pub struct Smtp {
    reader: tokio::io::BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

impl Smtp {
    /// Connects and returns the client and the first reply (the greeting, or a refusal).
    pub async fn connect(addr: SocketAddr) -> (Smtp, String) {
        let stream = TcpStream::connect(addr).await.expect("connect to the relay");
        let (r, w) = stream.into_split();
        let mut smtp = Smtp { reader: tokio::io::BufReader::new(r), writer: w };
        let greeting = smtp.reply().await;
        (smtp, greeting)
    }

    /// Connects, expects `220`, and says EHLO.
    pub async fn ready(addr: SocketAddr) -> Smtp {
        let (mut smtp, greeting) = Self::connect(addr).await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        let ehlo = smtp.command("EHLO client.example").await;
        assert!(ehlo.starts_with("250"), "{ehlo}");
        smtp
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write to the relay");
    }

    /// Writes `bytes`; false if the relay has closed the connection.
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.writer.write_all(bytes).await.is_ok()
    }

    /// Reads one reply (all lines of a multi-line one); panics on EOF or after 20 s.
    pub async fn reply(&mut self) -> String {
        self.try_reply().await.expect("a reply, not the end of the connection")
    }

    /// Reads one reply, or `None` if the connection ended first.
    pub async fn try_reply(&mut self) -> Option<String> {
        let mut all = String::new();
        loop {
            let mut line = Vec::new();
            let n = tokio::time::timeout(REPLY_TIMEOUT, self.reader.read_until(b'\n', &mut line))
                .await
                .expect("reply within 20 s")
                .ok()?;
            if n == 0 {
                return if all.is_empty() { None } else { Some(all) };
            }
            let line = String::from_utf8(line).expect("replies are ASCII");
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return Some(all);
            }
        }
    }

    /// Sends `line` CRLF and reads the reply.
    pub async fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// MAIL, RCPT, DATA, then `data` as is (it must carry its own terminator); returns the
    /// reply after the data.
    pub async fn transaction(&mut self, from: &str, to: &str, data: &[u8]) -> String {
        let mail = self.command(&format!("MAIL FROM:<{from}>")).await;
        assert!(mail.starts_with("250 "), "{mail}");
        let rcpt = self.command(&format!("RCPT TO:<{to}>")).await;
        assert!(rcpt.starts_with("250 "), "{rcpt}");
        let go = self.command("DATA").await;
        assert!(go.starts_with("354 "), "{go}");
        self.send(data).await;
        self.reply().await
    }

    /// Like [`Smtp::transaction`], but `None` if the connection breaks, and the first reply that
    /// is not the expected one is returned as is.
    pub async fn try_transaction(&mut self, from: &str, to: &str, data: &[u8]) -> Option<String> {
        for (line, expected) in
            [(format!("MAIL FROM:<{from}>"), "250"), (format!("RCPT TO:<{to}>"), "250"), ("DATA".into(), "354")]
        {
            if !self.try_send(format!("{line}\r\n").as_bytes()).await {
                return None;
            }
            let reply = self.try_reply().await?;
            if !reply.starts_with(expected) {
                return Some(reply);
            }
        }
        if !self.try_send(data).await {
            return None;
        }
        self.try_reply().await
    }

    /// Whether the server closed the connection (EOF within 10 s, nothing more to read).
    pub async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.reader.read_to_end(&mut rest)).await,
            Ok(Ok(0)) | Ok(Err(_))
        ) && rest.is_empty()
    }
}

/// A loopback address nobody listens on (bound, then released), for an upstream that is down.
pub fn unused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}
