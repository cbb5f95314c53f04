//! Access control end to end: never an open relay (start-up refusals and the allow-list, with the
//! real binary), client AUTH over inbound STARTTLS with lettre, the STARTTLS injection defence
//! over a raw socket, `hash-password`, and the upstream TLS rules.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::PasswordVerifier;
use lettre::address::Envelope as LettreEnvelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use postmark_fake::tls::TestPki;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::support::{TestRelay, message, wait_for};

pub const BIN: &str = env!("CARGO_BIN_EXE_postmark-relay");

/// The binary as a child process with its stderr collected.
pub struct Proc {
    pub child: Child,
    pub log: Arc<Mutex<String>>,
}

impl Proc {
    /// Spawns the binary with exactly these arguments and environment (plus PATH).
    pub fn spawn(args: &[&str], env: &[(&str, &str)], rust_log: &str) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        cmd.env_clear().env("RUST_LOG", rust_log).env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (child, log) = crate::support::spawn_logged(cmd);
        Proc { child, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The address from the start-up banner (`listen=…`), with an unspecified IP replaced by
    /// 127.0.0.1 (the tests connect over loopback only).
    pub async fn addr(&self) -> SocketAddr {
        let log = Arc::clone(&self.log);
        let mut addr: SocketAddr = wait_for("the start-up banner", Duration::from_secs(30), || {
            let l = log.lock().unwrap();
            let start = l.find("listen=")? + "listen=".len();
            let end = l[start..].find(' ').map_or(l.len(), |e| start + e);
            l[start..end].parse::<SocketAddr>().ok()
        })
        .await;
        if addr.ip().is_unspecified() {
            addr.set_ip([127, 0, 0, 1].into());
        }
        addr
    }

    /// Waits for the process to exit by itself; kills it and fails after `timeout`.
    pub async fn exit_status(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = &mut self.child;
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                // Let the reader thread catch the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return status;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                panic!("the relay did not exit within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary expecting it to refuse; returns its exit code and stderr.
async fn refused(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut p = Proc::spawn(args, env, "info");
    let status = p.exit_status(Duration::from_secs(20)).await;
    (status.code().unwrap_or(-1), p.log())
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A users file made with the real `hash-password` subcommand.
pub fn users_file(dir: &Path, pairs: &[(&str, &str)]) -> PathBuf {
    let mut text = String::new();
    for (user, password) in pairs {
        text.push_str(&hash_password(user, &format!("{password}\n")).expect("hash-password"));
        text.push('\n');
    }
    write(dir, "users", &text)
}

/// Runs `postmark-relay hash-password USER` with `stdin`; the printed line, or stderr.
fn hash_password(user: &str, stdin: &str) -> Result<String, String> {
    let mut child = Command::new(BIN)
        .args(["hash-password", user])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child may refuse bad input and exit before reading stdin; its exit status and stderr then tell.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "writing the password: {e}");
    }
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap().trim_end().to_string())
    } else {
        Err(String::from_utf8(out.stderr).unwrap())
    }
}

#[tokio::test]
async fn a_non_loopback_listen_address_without_auth_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let spool = spool.to_str().unwrap();
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let (code, log) = refused(&["--listen", listen, "--spool", spool], &[]).await;
        assert_ne!(code, 0, "{log}");
        assert!(log.contains("refusing to listen") && log.contains("open relay"), "{listen}: {log}");
        assert!(log.contains("--allow-unauthenticated-from") && log.contains("--auth-users"), "{log}");
    }
    assert!(!Path::new(spool).exists(), "refused before anything else happened");

    // Public networks may not be allow-listed; AUTH on a public address needs TLS.
    let (code, log) =
        refused(&["--listen", "0.0.0.0:0", "--spool", spool, "--allow-unauthenticated-from", "0.0.0.0/0"], &[]).await;
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("public addresses"), "{log}");
    let users = users_file(dir.path(), &[("app", "pw")]);
    let (code, log) =
        refused(&["--listen", "0.0.0.0:0", "--spool", spool, "--auth-users", users.to_str().unwrap()], &[]).await;
    assert_ne!(code, 0, "{log}");
    assert!(log.contains("needs --tls-cert and --tls-key"), "{log}");

    // Any 127.0.0.0/8 address is loopback: it starts.
    let p = Proc::spawn(&["--listen", "127.0.0.2:0", "--spool", spool], &[], "info");
    let addr = p.addr().await;
    assert_eq!(addr.ip().to_string(), "127.0.0.2");
}

#[tokio::test]
async fn the_allow_list_override_is_logged_and_everyone_else_gets_554() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let spool = spool.to_str().unwrap();
    let p = Proc::spawn(
        &["--listen", "0.0.0.0:0", "--spool", spool, "--allow-unauthenticated-from", "10.0.0.0/8,192.168.0.0/16"],
        &[],
        "info",
    );
    let addr = p.addr().await;
    let log = p.log();
    assert!(log.contains("WARN") && log.contains("WITHOUT authentication") && log.contains("10.0.0.0/8"), "{log}");
    // 127.0.0.1 is not in the list: refused before the greeting, connection closed.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tokio::io::AsyncReadExt::read_to_end(&mut s, &mut got))
        .await
        .unwrap()
        .unwrap();
    let got = String::from_utf8(got).unwrap();
    assert!(got.starts_with("554 5.7.1 "), "{got}");
    assert_eq!(got.lines().count(), 1, "{got}");
    drop(p);

    // With loopback in the list, the same client sends without AUTH.
    let p = Proc::spawn(
        &["--listen", "0.0.0.0:0", "--spool", spool, "--allow-unauthenticated-from", "127.0.0.0/8"],
        &[],
        "info",
    );
    let addr = p.addr().await;
    crate::support::send(addr, "a@example.com", &["r@example.com"], &message("allowed")).await.expect("250");
}

pub fn tls_client(
    addr: SocketAddr,
    ca_pem: &str,
    creds: Option<(&str, &str)>,
    mech: Mechanism,
) -> AsyncSmtpTransport<Tokio1Executor> {
    let tls = TlsParameters::builder("localhost".into())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build_rustls()
        .unwrap();
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .tls(Tls::Required(tls))
        .timeout(Some(Duration::from_secs(30)))
        .authentication(vec![mech]);
    if let Some((u, p)) = creds {
        b = b.credentials(Credentials::new(u.into(), p.into()));
    }
    b.build()
}

pub fn envelope() -> LettreEnvelope {
    LettreEnvelope::new(Some("a@example.com".parse().unwrap()), vec!["r@example.com".parse().unwrap()]).unwrap()
}

struct TlsFiles {
    pki: TestPki,
    cert: PathBuf,
    key: PathBuf,
}

fn tls_files(dir: &Path) -> TlsFiles {
    let pki = TestPki::generate();
    let cert = write(dir, "cert.pem", pki.server_cert_pem());
    let key = write(dir, "key.pem", pki.server_key_pem());
    TlsFiles { pki, cert, key }
}

#[tokio::test]
async fn lettre_sends_over_starttls_with_auth_plain_and_login_and_is_refused_without() {
    let dir = tempfile::tempdir().unwrap();
    let tls = tls_files(dir.path());
    let users = users_file(dir.path(), &[("app", "correct horse"), ("cron", "battery staple")]);
    let mut relay = TestRelay::start(
        &[
            "--dry-run",
            "--tls-cert",
            tls.cert.to_str().unwrap(),
            "--tls-key",
            tls.key.to_str().unwrap(),
            "--auth-users",
            users.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let ca = tls.pki.ca_pem();
    let raw = message("over-tls");
    let ok = tls_client(relay.addr, ca, Some(("app", "correct horse")), Mechanism::Plain)
        .send_raw(&envelope(), &raw)
        .await
        .expect("PLAIN over STARTTLS");
    assert_eq!(ok.code().to_string(), "250");
    tls_client(relay.addr, ca, Some(("cron", "battery staple")), Mechanism::Login)
        .send_raw(&envelope(), &raw)
        .await
        .expect("LOGIN over STARTTLS");

    let wrong = tls_client(relay.addr, ca, Some(("app", "wrong")), Mechanism::Plain).send_raw(&envelope(), &raw).await;
    let e = wrong.unwrap_err();
    assert!(e.to_string().contains("535") || e.status().is_some_and(|c| c.to_string() == "535"), "{e}");
    let none = tls_client(relay.addr, ca, None, Mechanism::Plain).send_raw(&envelope(), &raw).await;
    let e = none.unwrap_err();
    assert!(e.to_string().contains("530") || e.status().is_some_and(|c| c.to_string() == "530"), "{e}");
    // A client that does not trust the certificate cannot even start.
    let other = TestPki::generate();
    assert!(
        tls_client(relay.addr, other.ca_pem(), Some(("app", "correct horse")), Mechanism::Plain)
            .send_raw(&envelope(), &raw)
            .await
            .is_err()
    );

    let messages = || relay.files("dry-run").iter().filter(|f| f.ends_with(".eml")).count();
    wait_for("two dry-run outputs", Duration::from_secs(10), || (messages() == 2).then_some(())).await;
    relay.stop().await;
}

#[tokio::test]
async fn starttls_with_pipelined_commands_is_refused_over_a_raw_socket() {
    let dir = tempfile::tempdir().unwrap();
    let tls = tls_files(dir.path());
    let mut relay = TestRelay::start(
        &["--dry-run", "--tls-cert", tls.cert.to_str().unwrap(), "--tls-key", tls.key.to_str().unwrap()],
        &[],
    )
    .await;
    let stream = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let mut s = tokio::io::BufReader::new(stream);
    let mut line = String::new();
    s.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("220 "), "{line}");
    s.get_mut().write_all(b"EHLO attacker\r\n").await.unwrap();
    let mut ehlo = String::new();
    loop {
        let mut l = String::new();
        s.read_line(&mut l).await.unwrap();
        ehlo.push_str(&l);
        if l.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    }
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    // The injected MAIL would otherwise be read as the first command inside TLS.
    s.get_mut().write_all(b"STARTTLS\r\nMAIL FROM:<attacker@example.com>\r\n").await.unwrap();
    let mut rest = String::new();
    tokio::time::timeout(Duration::from_secs(10), tokio::io::AsyncReadExt::read_to_string(&mut s, &mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.starts_with("554 5.5.1 "), "{rest}");
    assert!(!rest.contains("220"), "no TLS handshake offered: {rest}");
    relay.stop().await;
}

#[test]
fn hash_password_reads_stdin_and_refuses_bad_input() {
    let line = hash_password("app", "s3cret\n").unwrap();
    assert!(line.starts_with("app:$argon2id$v=19$"), "{line}");
    assert!(!line.contains("s3cret"));
    // CRLF from a Windows pipe is not part of the password either.
    let crlf = hash_password("app", "s3cret\r\n").unwrap();
    assert_ne!(crlf, line, "a fresh salt each time");
    for l in [&line, &crlf] {
        let users = postmark_relay::auth::parse_users(l).unwrap();
        assert!(argon2::Argon2::default().verify_password(b"s3cret", &users["app"]).is_ok(), "{l}");
    }
    assert!(hash_password("a:b", "x\n").unwrap_err().contains("may not contain"));
    assert!(hash_password("app", "\n").unwrap_err().contains("empty"));
    // The password is never an argument.
    let help = Command::new(BIN).args(["hash-password", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("standard input") && !help.contains("--password"), "{help}");
}

#[test]
fn help_lists_no_flag_that_takes_a_secret() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let flags: Vec<&str> = help
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("--"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert!(flags.len() > 10, "{help}");
    for flag in &flags {
        let f = flag.to_ascii_lowercase();
        assert!(!f.contains("token") && !f.contains("secret") && !f.contains("password"), "{flag} in:\n{help}");
    }
    // The one flag named "key" takes a file path.
    assert!(help.contains("--tls-key <PEM>"), "{help}");
}

#[tokio::test]
async fn a_plain_http_api_url_to_a_remote_host_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let (code, log) = refused(
        &["--listen", "127.0.0.1:0", "--spool", spool.to_str().unwrap(), "--api-url", "http://api.postmarkapp.com"],
        &[("POSTMARK_SERVER_TOKEN", "tok-never-sent-in-clear")],
    )
    .await;
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("plain http is allowed only to a loopback host"), "{log}");
    assert!(!log.contains("tok-never-sent-in-clear"), "{log}");
}

/// A plaintext SMTP server that offers AUTH but no STARTTLS, and records every line it gets.
fn plaintext_upstream() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&lines);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                let _ = conn.write_all(b"220 plaintext.example ESMTP\r\n");
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    seen.lock().unwrap().push(line.trim_end().to_string());
                    let reply: &[u8] = if line.to_ascii_uppercase().starts_with("EHLO") {
                        b"250-plaintext.example\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
                    } else if line.to_ascii_uppercase().starts_with("QUIT") {
                        b"221 bye\r\n"
                    } else {
                        b"250 ok\r\n"
                    };
                    if conn.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, lines)
}

#[tokio::test]
async fn an_upstream_without_starttls_never_sees_credentials_and_delivery_pauses() {
    let (addr, lines) = plaintext_upstream();
    let url = format!("smtp://{addr}");
    let mut relay = TestRelay::start(
        &["--smtp-url", &url, "--max-retry-delay", "200ms"],
        &[("POSTMARK_SMTP_ACCESS_KEY", "access-never-in-clear"), ("POSTMARK_SMTP_SECRET_KEY", "secret-never-in-clear")],
    )
    .await;
    let id =
        crate::support::send(relay.addr, "a@example.com", &["r@example.com"], &message("no-tls")).await.expect("250");
    wait_for("the relay to try the upstream", Duration::from_secs(10), || {
        lines.lock().unwrap().iter().any(|l| l.to_ascii_uppercase().starts_with("EHLO")).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = lines.lock().unwrap().clone();
    for line in &seen {
        let upper = line.to_ascii_uppercase();
        assert!(!upper.starts_with("AUTH") && !upper.starts_with("MAIL"), "sent in clear: {line} ({seen:?})");
        assert!(!line.contains("never-in-clear"), "{seen:?}");
    }
    assert!(relay.files("queue").contains(&format!("{id}.msg")), "the message stays queued");
    assert!(relay.files("dead").is_empty(), "never bounced");
    relay.stop().await;
}
