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
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

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

    /// Starts a relay forwarding over SMTP to `fake` (its test CA trusted) with these extra flags
    /// and this environment (the SMTP token or server token).
    pub async fn with_smtp(fake: &postmark_fake::smtp::FakeSmtp, flags: &[&str], env: &[(&str, &str)]) -> TestRelay {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("upstream-ca.pem");
        std::fs::write(&ca, fake.ca_pem()).unwrap();
        let url = fake.url();
        let ca = ca.to_str().unwrap().to_owned();
        let mut all = vec!["--smtp-url", url.as_str(), "--smtp-ca", ca.as_str()];
        all.extend_from_slice(flags);
        let spool = dir.path().join("spool");
        Self::start_on(dir, spool, &all, env).await
    }

    /// Starts a relay forwarding over the API to `fake` with a server token, retrying fast.
    pub async fn with_api(fake: &postmark_fake::http::FakeApi, token: &str, flags: &[&str]) -> TestRelay {
        let url = fake.url();
        let mut all = vec!["--api-url", url.as_str(), "--max-retry-delay", "200ms"];
        all.extend_from_slice(flags);
        Self::start(&all, &[("POSTMARK_SERVER_TOKEN", token)]).await
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

    /// `DATA`, then `raw` (dot-stuffed, ending in CRLF) and the final dot; the reply to it.
    pub async fn data(&mut self, raw: &[u8]) -> String {
        let go = self.command("DATA").await;
        assert!(go.starts_with("354 "), "{go}");
        self.send(raw).await;
        self.send(b".\r\n").await;
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

/// Spawns `cmd` (stdin and stdout closed) and collects its stderr, line by line, into the
/// returned log as it is written.
pub fn spawn_logged(mut cmd: std::process::Command) -> (std::process::Child, std::sync::Arc<std::sync::Mutex<String>>) {
    use std::io::BufRead;
    use std::process::Stdio;
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn postmark-relay");
    let stderr = child.stderr.take().expect("stderr");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = std::sync::Arc::clone(&log);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    (child, log)
}

/// Set (to anything) where the real third-party mail clients must be present: CI installs them
/// (`.ci/interop-packages`, `.ci/run`) and sets this, so a missing client fails there instead of
/// skipping.
pub const REQUIRE_CLIENTS: &str = "POSTMARK_TEST_REQUIRE_CLIENTS";

/// The path of a real third-party program (a mail client the interoperability tests drive), or
/// `None` after printing one `NOT RUN` line when it is not installed here. Where
/// [`REQUIRE_CLIENTS`] is set, a missing program is a test failure instead.
pub fn real_client(program: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os(REQUIRE_CLIENTS).is_none(),
            "{test}: {program} is not installed, and {REQUIRE_CLIENTS} says it must be (see .ci/interop-packages)"
        );
        eprintln!("NOT RUN {test}: {program} is not installed (see .ci/interop-packages)");
    }
    found
}

/// The value of header `name` (case-insensitive, as header names are) in a Postmark `/email`
/// request's `Headers` list.
pub fn email_header<'a>(email: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    let headers = email["Headers"].as_array()?;
    headers.iter().find(|h| h["Name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))?["Value"].as_str()
}
