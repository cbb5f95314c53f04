//! The access rules in the session, driven in memory so the client can have any address (the
//! end-to-end tests can only connect from 127.0.0.1): allow-list refusal, AUTH only inside TLS
//! on non-loopback connections, the STARTTLS upgrade and its injection defence, AUTH errors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use postmark_fake::tls::TestPki;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;

use super::*;
use crate::access::{Access, parse_networks};
use crate::auth::{Users, cheap_line};
use crate::envelope::Via;
use crate::shutdown::Shutdown;
use crate::spool::Spool;
use crate::tls::TlsServer;

const REMOTE: &str = "192.0.2.10:40000";
const LOCAL: &str = "127.0.0.1:40000";

struct Setup {
    dir: tempfile::TempDir,
    pki: TestPki,
}

impl Setup {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap(), pki: TestPki::generate() }
    }

    fn users(&self) -> Arc<Users> {
        let path = self.dir.path().join("users");
        std::fs::write(&path, format!("{}\n{}\n", cheap_line("app", "s3cret"), cheap_line("other", "pw"))).unwrap();
        Arc::new(Users::load(&path).unwrap())
    }

    fn tls(&self) -> Arc<TlsServer> {
        let cert = self.dir.path().join("cert.pem");
        let key = self.dir.path().join("key.pem");
        std::fs::write(&cert, self.pki.server_cert_pem()).unwrap();
        std::fs::write(&key, self.pki.server_key_pem()).unwrap();
        Arc::new(TlsServer::load(&cert, &key).unwrap())
    }

    fn full(&self) -> Access {
        Access { users: Some(self.users()), tls: Some(self.tls()), unauthenticated: None }
    }
}

/// A client talking to a session over an in-memory pipe.
struct Client<S> {
    io: BufReader<S>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    queued: mpsc::UnboundedReceiver<crate::delivery::handoff::Queued>,
    _spool_dir: tempfile::TempDir,
}

fn start(access: Access, peer: &str) -> Client<DuplexStream> {
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(Spool::open(spool_dir.path()).unwrap());
    let (tx, queued) = mpsc::unbounded_channel();
    let acceptor = Arc::new(Acceptor::new(spool, Via::Smtp, Default::default(), tx).unwrap());
    let cfg = Arc::new(SessionConfig { max_errors: 50, ..SessionConfig::default() });
    let (client, server) = tokio::io::duplex(64 * 1024);
    let shutdown = Shutdown::new();
    let session = Session::new(server, cfg, Arc::new(access), acceptor, shutdown.signal())
        .peer(peer.parse::<SocketAddr>().unwrap());
    let task = tokio::spawn(async move {
        let _keep = shutdown;
        session.run().await
    });
    Client { io: BufReader::new(client), task, queued, _spool_dir: spool_dir }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), self.io.read_line(&mut line))
                .await
                .expect("reply timed out")
                .unwrap();
            all.push_str(&line);
            if n == 0 || line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Whether the server closed the connection (EOF).
    async fn closed(&mut self) -> bool {
        let mut rest = String::new();
        matches!(tokio::time::timeout(Duration::from_secs(5), self.io.read_line(&mut rest)).await, Ok(Ok(0)))
    }
}

fn plain(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Runs STARTTLS's client side on `client` (after its `220`).
async fn upgrade(client: Client<DuplexStream>, pki: &TestPki) -> Client<tokio_rustls::client::TlsStream<DuplexStream>> {
    let connector = tokio_rustls::TlsConnector::from(pki.client_config());
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, client.io.into_inner()).await.expect("TLS handshake");
    Client { io: BufReader::new(tls), task: client.task, queued: client.queued, _spool_dir: client._spool_dir }
}

#[tokio::test]
async fn a_remote_client_gets_auth_only_inside_tls_and_must_use_it() {
    let setup = Setup::new();
    let mut c = start(setup.full(), REMOTE);
    assert!(c.reply().await.starts_with("220 "));
    let ehlo = c.cmd("EHLO client.example").await;
    assert!(ehlo.contains("250-STARTTLS\r\n") || ehlo.contains("250 STARTTLS\r\n"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "no AUTH in clear on a remote connection: {ehlo}");
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain("app", "s3cret"))).await.starts_with("538 5.7.11 "));
    assert!(c.cmd("MAIL FROM:<a@example.com>").await.starts_with("530 5.7.0 "));
    assert!(c.cmd("STARTTLS").await.starts_with("220 2.0.0 "));

    let mut c = upgrade(c, &setup.pki).await;
    // The session starts over: EHLO first, and no transaction from before.
    assert!(c.cmd("MAIL FROM:<a@example.com>").await.starts_with("503 5.5.1 "));
    let ehlo = c.cmd("EHLO client.example").await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "not offered again after the upgrade: {ehlo}");
    assert!(c.cmd("STARTTLS").await.starts_with("503 5.5.1 "));
    assert!(c.cmd("MAIL FROM:<a@example.com>").await.starts_with("530 5.7.0 "));
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain("app", "wrong"))).await.starts_with("535 5.7.8 "));
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain("app", "s3cret"))).await.starts_with("235 2.7.0 "));
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain("app", "s3cret"))).await.starts_with("503 5.5.1 "));
    assert!(c.cmd("MAIL FROM:<a@example.com>").await.starts_with("250 "));
    assert!(c.cmd("RCPT TO:<r@example.com>").await.starts_with("250 "));
    assert!(c.cmd("DATA").await.starts_with("354 "));
    let queued = c.cmd("From: a@example.com\r\nSubject: s\r\n\r\nbody\r\n.").await;
    assert!(queued.starts_with("250 2.0.0 "), "{queued}");
    assert!(c.queued.try_recv().is_ok());
    assert!(c.cmd("QUIT").await.starts_with("221 "));
    c.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_loopback_client_may_authenticate_without_tls_with_plain_or_login() {
    let setup = Setup::new();
    let mut c = start(Access { users: Some(setup.users()), ..Access::default() }, LOCAL);
    c.reply().await;
    // AUTH before EHLO.
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain("app", "s3cret"))).await.starts_with("503 5.5.1 "));
    let ehlo = c.cmd("EHLO localhost").await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(c.cmd("MAIL FROM:<a@example.com>").await.starts_with("530 5.7.0 "), "a users file means AUTH for all");
    // LOGIN, step by step; a cancelled exchange; an undecodable one.
    assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6\r\n");
    assert_eq!(c.cmd("*").await.get(..10), Some("501 5.0.0 "));
    assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6\r\n");
    assert!(c.cmd("!!not base64!!").await.starts_with("501 5.5.2 "));
    assert!(c.cmd("AUTH CRAM-MD5").await.starts_with("504 5.5.4 "));
    assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6\r\n");
    assert_eq!(c.cmd(&b64("other")).await, "334 UGFzc3dvcmQ6\r\n");
    assert!(c.cmd(&b64("pw")).await.starts_with("235 2.7.0 "));
    assert!(c.cmd("MAIL FROM:<a@example.com>").await.starts_with("250 "));
    c.cmd("QUIT").await;

    // PLAIN with the response on its own line; LOGIN with the user name as initial response.
    let mut c = start(Access { users: Some(setup.users()), ..Access::default() }, LOCAL);
    c.reply().await;
    c.cmd("EHLO localhost").await;
    assert_eq!(c.cmd("AUTH PLAIN").await, "334 \r\n");
    assert!(c.cmd(&plain("app", "s3cret")).await.starts_with("235 "));
    let mut c = start(Access { users: Some(setup.users()), ..Access::default() }, LOCAL);
    c.reply().await;
    c.cmd("EHLO localhost").await;
    assert_eq!(c.cmd(&format!("AUTH LOGIN {}", b64("app"))).await, "334 UGFzc3dvcmQ6\r\n");
    assert!(c.cmd(&b64("s3cret")).await.starts_with("235 "));
}

#[tokio::test]
async fn auth_errors_and_three_failures_close_the_session() {
    let setup = Setup::new();
    // No users file: AUTH is not there at all.
    let mut c = start(Access::default(), LOCAL);
    c.reply().await;
    assert!(!c.cmd("EHLO localhost").await.contains("AUTH"));
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain("app", "s3cret"))).await.starts_with("502 5.5.1 "));
    assert!(c.cmd("STARTTLS").await.starts_with("502 5.5.1 "), "no certificate, no STARTTLS");

    // An allow-listed client may send without AUTH, but not AUTH in the middle of a transaction.
    let access = Access {
        users: Some(setup.users()),
        unauthenticated: Some(parse_networks("127.0.0.0/8").unwrap().into()),
        ..Access::default()
    };
    let mut c = start(access, LOCAL);
    c.reply().await;
    c.cmd("EHLO localhost").await;
    assert!(c.cmd("MAIL FROM:<a@example.com>").await.starts_with("250 "));
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain("app", "s3cret"))).await.starts_with("503 5.5.1 "));
    c.cmd("RSET").await;
    assert!(c.cmd("AUTH XOAUTH2").await.starts_with("504 5.5.4 "));
    // An over-long response line is refused without being kept.
    assert_eq!(c.cmd("AUTH PLAIN").await, "334 \r\n");
    let long = "A".repeat(20_000);
    assert!(c.cmd(&long).await.starts_with("500 5.5.6 "));

    // Failures are answered after a growing delay; the third closes the session.
    let mut c = start(Access { users: Some(setup.users()), ..Access::default() }, LOCAL);
    c.reply().await;
    c.cmd("EHLO localhost").await;
    let started = tokio::time::Instant::now();
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain("app", "nope1"))).await.starts_with("535 5.7.8 "));
    assert!(started.elapsed() >= auth::AUTH_FAILURE_DELAY);
    assert!(c.cmd(&format!("AUTH PLAIN {}", plain("nobody", "s3cret"))).await.starts_with("535 5.7.8 "));
    let last = c.cmd(&format!("AUTH PLAIN {}", plain("app", "nope3"))).await;
    assert!(last.starts_with("535 5.7.8 "), "{last}");
    assert!(started.elapsed() >= auth::AUTH_FAILURE_DELAY * 6, "{:?}", started.elapsed());
    let mut rest = String::new();
    c.io.read_line(&mut rest).await.unwrap();
    assert!(rest.starts_with("421 4.7.0 "), "{rest}");
    assert!(c.closed().await);
}

#[tokio::test]
async fn clients_outside_the_allow_list_are_refused_before_the_greeting() {
    let access = Access { unauthenticated: Some(parse_networks("10.0.0.0/8").unwrap().into()), ..Access::default() };
    let mut c = start(access.clone(), REMOTE);
    let reply = c.reply().await;
    assert!(reply.starts_with("554 5.7.1 "), "{reply}");
    assert!(c.closed().await);
    assert!(c.task.await.unwrap().is_ok());

    let mut c = start(access, "10.1.2.3:5000");
    assert!(c.reply().await.starts_with("220 "));
    c.cmd("EHLO x").await;
    assert!(c.cmd("MAIL FROM:<a@example.com>").await.starts_with("250 "), "allow-listed: no AUTH needed");

    // Without any settings, only loopback is served.
    let mut c = start(Access::default(), REMOTE);
    assert!(c.reply().await.starts_with("554 5.7.1 "));
}

#[tokio::test]
async fn commands_pipelined_after_starttls_are_refused_not_carried_into_tls() {
    let setup = Setup::new();
    let mut c = start(setup.full(), REMOTE);
    c.reply().await;
    c.cmd("EHLO x").await;
    // The classic injection: the attacker appends a command to the client's STARTTLS packet.
    c.send(b"STARTTLS\r\nRSET\r\n").await;
    let reply = c.reply().await;
    assert!(reply.starts_with("554 5.5.1 "), "{reply}");
    assert!(!reply.contains("220"), "{reply}");
    assert!(c.closed().await);
}
