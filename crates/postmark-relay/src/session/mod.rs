//! One SMTP session: a sans-I/O protocol state machine (`Protocol`) and the async driver
//! ([`Session`]) that feeds it from any `AsyncRead + AsyncWrite` stream, so tests run in memory.
//!
//! Command lines are parsed by smtp-proto's `RequestReceiver`, one line at a time behind our own
//! 512-octet limit (`line.rs`). The message after `DATA` is read
//! by our own `data::DataReader`: smtp-proto's `DataReceiver` also ends the data at
//! `CRLF "." CR CR … LF`, which would let a client smuggle a second transaction inside a message.
//! The state machine consumes everything it is given before the driver writes the replies, which
//! is all PIPELINING needs.

mod auth;
mod data;
mod ehlo;
mod intl;
mod line;
mod mail;
pub mod pipe;
mod rcpt;
pub mod reply;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use smtp_proto::Request;
use smtp_proto::request::receiver::DummyLineReceiver;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use data::Acceptor;
pub use reply::Reply;

use crate::access::Access;
use crate::envelope::Envelope;
use crate::metrics::{Metrics, Reject};
use crate::shutdown::ShutdownSignal;
use line::CommandReader;

/// Bytes read from the client at a time.
const READ_BUFFER: usize = 16 * 1024;

/// Recipients accepted per transaction by default: Postfix's `smtpd_recipient_limit`, so that
/// clients which do not retry a `452` (nodemailer, smtplib report the refused ones and go on)
/// lose no recipient of an ordinary send.
pub const DEFAULT_MAX_RECIPIENTS: usize = 1000;

/// Limits and timeouts of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Name announced in the greeting and the EHLO reply.
    pub hostname: String,
    /// Largest message accepted, in bytes (advertised as `SIZE`).
    pub max_message_size: usize,
    /// Most recipients per transaction ([`DEFAULT_MAX_RECIPIENTS`]); the next `RCPT` gets
    /// `452 4.5.3`. Delivery splits a message into requests (API) or transactions (SMTP) of at
    /// most Postmark's 50 recipients.
    pub max_recipients: usize,
    /// How long to wait for the next command to begin.
    pub idle_timeout: Duration,
    /// How long one command line may take from its first byte to its line end (so a client
    /// trickling a command cannot hold a connection slot); also the limit for writing a reply.
    pub command_timeout: Duration,
    /// How long to wait for the next bytes while receiving a message.
    pub data_timeout: Duration,
    /// Longest a session may last in all (so a client trickling bytes cannot hold a connection
    /// slot for ever).
    pub max_session_duration: Duration,
    /// Errors tolerated in one session before it is closed with `421 4.7.0`.
    pub max_errors: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            max_message_size: postmark_core::limits::MAX_MESSAGE_BYTES,
            max_recipients: DEFAULT_MAX_RECIPIENTS,
            idle_timeout: Duration::from_secs(300),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(300),
            max_session_duration: Duration::from_secs(3600),
            max_errors: 20,
        }
    }
}

/// What the state machine needs from its driver next.
#[derive(Debug)]
pub(crate) enum Event {
    /// All input consumed; read more.
    NeedInput,
    /// A message arrived: store it and answer with [`Acceptor::accept`]'s reply.
    Message(Envelope, Vec<u8>),
    /// Write the replies and close the connection.
    Close,
    /// Check these credentials and answer with [`Protocol::auth_finished`].
    Auth(auth::AuthAttempt),
    /// Write the replies (`220`), then run the TLS handshake and call [`Protocol::tls_started`].
    StartTls,
}

#[derive(Debug, Default)]
struct Transaction {
    mail_from: String,
    rcpt_to: Vec<String>,
    smtputf8: bool,
}

enum State {
    Command(CommandReader),
    /// Skipping the rest of an over-long command line.
    SkipLine(DummyLineReceiver),
    /// Receiving a message (or discarding one that is over the size limit).
    Data(data::DataReader),
    /// Reading an AUTH response line after a `334`.
    Auth(auth::AuthLine),
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Command(_) => "Command",
            State::SkipLine(_) => "SkipLine",
            State::Data(_) => "Data",
            State::Auth(_) => "Auth",
        })
    }
}

/// The sans-I/O SMTP server state machine.
#[derive(Debug)]
pub(crate) struct Protocol {
    cfg: Arc<SessionConfig>,
    access: Arc<Access>,
    state: State,
    helo: Option<String>,
    tx: Option<Transaction>,
    errors: u32,
    closing: bool,
    metrics: Arc<Metrics>,
    conn: auth::Connection,
    policy: Arc<crate::policy::Policy>,
}

impl Protocol {
    #[cfg(test)]
    pub(crate) fn new(cfg: Arc<SessionConfig>) -> Self {
        Self::with_metrics(cfg, Arc::default(), Arc::default())
    }

    /// A state machine under the access policy `access` that counts its refusals in `metrics`.
    pub(crate) fn with_metrics(cfg: Arc<SessionConfig>, access: Arc<Access>, metrics: Arc<Metrics>) -> Self {
        Self {
            cfg,
            access,
            state: State::Command(CommandReader::default()),
            helo: None,
            tx: None,
            errors: 0,
            closing: false,
            metrics,
            conn: auth::Connection::default(),
            policy: Arc::default(),
        }
    }

    /// The `220` greeting.
    pub(crate) fn greeting(&self) -> Reply {
        Reply::plain(220, format!("{} ESMTP postmark-relay ready", self.cfg.hostname))
    }

    /// From now on every command but QUIT is answered `421 4.3.0` and the session closes.
    pub(crate) fn set_closing(&mut self) {
        self.closing = true;
    }

    /// Whether a message is being received (the driver uses the data timeout and lets it finish
    /// during shutdown).
    pub(crate) fn in_data(&self) -> bool {
        matches!(self.state, State::Data(_))
    }

    /// Whether part of a command line has arrived, or an over-long one is being skipped (the
    /// driver uses the command timeout).
    pub(crate) fn mid_command(&self) -> bool {
        match &self.state {
            State::Command(reader) => reader.mid_line(),
            State::SkipLine(_) => true,
            State::Data(_) | State::Auth(_) => false,
        }
    }

    /// Bytes of the message buffered so far (for tests of the memory bound).
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        match &self.state {
            State::Data(reader) => reader.buffered(),
            _ => 0,
        }
    }

    /// Consumes input from `bytes`, appending replies to `out`, until it needs more input, a
    /// message is complete, or the session must close.
    pub(crate) fn feed(&mut self, bytes: &mut std::slice::Iter<'_, u8>, out: &mut Vec<u8>) -> Event {
        loop {
            match &mut self.state {
                State::Command(receiver) => {
                    let request = match receiver.ingest(bytes) {
                        Ok(request) => request,
                        Err(smtp_proto::Error::NeedsMoreData { .. }) => return Event::NeedInput,
                        Err(smtp_proto::Error::ResponseTooLong) => {
                            self.state = State::SkipLine(DummyLineReceiver::default());
                            if let Some(ev) = self.error(out, Reply::new(500, "5.5.2", "Line too long")) {
                                return ev;
                            }
                            continue;
                        }
                        Err(e) => {
                            let reply = parse_error_reply(e);
                            if let Some(ev) = self.error(out, reply) {
                                return ev;
                            }
                            continue;
                        }
                    };
                    if matches!(request, Request::StartTls) {
                        if let Some(ev) = self.starttls(bytes, out) {
                            return ev;
                        }
                        continue;
                    }
                    if let Some(ev) = self.command(request, out) {
                        return ev;
                    }
                }
                State::SkipLine(skip) => {
                    if !skip.ingest(bytes) {
                        return Event::NeedInput;
                    }
                    self.state = State::Command(CommandReader::default());
                }
                State::Data(_) => {
                    if let Some(ev) = self.data_bytes(bytes, out) {
                        return ev;
                    }
                }
                State::Auth(_) => {
                    if let Some(ev) = self.auth_bytes(bytes, out) {
                        return ev;
                    }
                }
            }
        }
    }

    /// Counts an error reply; closes the session when there were too many.
    fn error(&mut self, out: &mut Vec<u8>, reply: Reply) -> Option<Event> {
        reply.write_to(out);
        self.metrics.rejected_reply(reply.code, reply.enhanced);
        self.errors += 1;
        if self.errors >= self.cfg.max_errors {
            self.metrics.rejected(Reject::TooManyErrors);
            Reply::new(421, "4.7.0", format!("{} Too many errors, closing", self.cfg.hostname)).write_to(out);
            return Some(Event::Close);
        }
        None
    }

    fn command(&mut self, request: Request<String>, out: &mut Vec<u8>) -> Option<Event> {
        if self.closing && !matches!(request, Request::Quit) {
            self.metrics.rejected(Reject::ShuttingDown);
            Reply::new(421, "4.3.0", format!("{} Service shutting down, try again later", self.cfg.hostname))
                .write_to(out);
            return Some(Event::Close);
        }
        match request {
            Request::Ehlo { host } => {
                self.ehlo(host, out);
                None
            }
            Request::Helo { host } => {
                self.helo(host, out);
                None
            }
            Request::Mail { from } => self.mail(from, out),
            Request::Rcpt { to } => self.rcpt(to, out),
            Request::Data => self.data(out),
            Request::Rset => {
                self.tx = None;
                Reply::new(250, "2.0.0", "Reset OK").write_to(out);
                None
            }
            Request::Noop { .. } => {
                Reply::new(250, "2.0.0", "OK").write_to(out);
                None
            }
            Request::Quit => {
                Reply::new(221, "2.0.0", format!("{} Bye", self.cfg.hostname)).write_to(out);
                Some(Event::Close)
            }
            // RFC 5321 §3.5.3 and §7.3: a server that will not verify answers 252 rather than
            // 502, because VRFY belongs to the minimum implementation and 252 tells the client
            // the address is not rejected, only not confirmed.
            Request::Vrfy { .. } => {
                Reply::new(252, "2.1.5", "Cannot VRFY user, but will accept message and attempt delivery")
                    .write_to(out);
                None
            }
            Request::Help { .. } => {
                Reply::new(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP").write_to(out);
                None
            }
            Request::Expn { .. } => self.error(out, Reply::new(502, "5.5.1", "EXPN is not supported")),
            Request::Auth { mechanism, initial_response } => self.auth(mechanism, &initial_response, out),
            other => {
                let name = other.name();
                self.error(out, Reply::new(502, "5.5.1", format!("{name} is not supported")))
            }
        }
    }

    /// Back to waiting for commands after a message or an error.
    fn reset_after_message(&mut self) {
        self.state = State::Command(CommandReader::default());
        self.tx = None;
    }
}

fn parse_error_reply(e: smtp_proto::Error) -> Reply {
    use smtp_proto::Error as E;
    match e {
        E::UnknownCommand => Reply::new(500, "5.5.1", "Command unrecognized"),
        E::InvalidSenderAddress => Reply::new(501, "5.1.7", "Invalid sender address"),
        E::InvalidRecipientAddress => Reply::new(501, "5.1.3", "Invalid recipient address"),
        // RCPT has nothing but the address to get wrong (parameters have their own errors).
        E::SyntaxError { syntax } if syntax.starts_with("RCPT") => {
            Reply::new(501, "5.1.3", format!("Syntax: {syntax}"))
        }
        E::SyntaxError { syntax } => Reply::new(501, "5.5.4", format!("Syntax: {syntax}")),
        E::InvalidParameter { param } => Reply::new(501, "5.5.4", format!("Invalid value for parameter {param}")),
        E::UnsupportedParameter { param } => Reply::new(555, "5.5.4", format!("Unsupported parameter {param}")),
        other => Reply::new(500, "5.5.2", format!("Syntax error ({other:?})")),
    }
}

/// One client connection, driven over any byte stream.
#[derive(Debug)]
pub struct Session<S> {
    io: stream::Stream<S>,
    proto: Protocol,
    acceptor: Arc<Acceptor>,
    shutdown: ShutdownSignal,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// A session over `io`, under the access policy `access`.
    pub fn new(
        io: S,
        cfg: Arc<SessionConfig>,
        access: Arc<Access>,
        acceptor: Arc<Acceptor>,
        shutdown: ShutdownSignal,
    ) -> Self {
        let metrics = Arc::clone(acceptor.metrics());
        let mut proto = Protocol::with_metrics(cfg, access, metrics);
        proto.policy = Arc::clone(acceptor.policy());
        Self { io: stream::Stream::Plain(io), proto, acceptor, shutdown }
    }

    /// Sets the client's address, which the access policy judges (in-memory sessions count as
    /// loopback).
    pub fn peer(mut self, peer: std::net::SocketAddr) -> Self {
        self.proto.conn.peer = peer.ip();
        self
    }

    /// Runs the session to its end (QUIT, timeout, shutdown, or the peer closing).
    pub async fn run(mut self) -> std::io::Result<()> {
        let metrics = Arc::clone(&self.proto.metrics);
        let _open = metrics.session_started();
        let mut out = Vec::with_capacity(1024);
        if self.shutdown.is_triggered() {
            self.proto.set_closing();
            self.closing_reply().write_to(&mut out);
            return self.finish(&out).await;
        }
        if let Some(refusal) = self.proto.refusal() {
            tracing::debug!("connection refused: the client is not in the networks allowed to send");
            refusal.write_to(&mut out);
            return self.finish(&out).await;
        }
        self.proto.greeting().write_to(&mut out);
        self.write(&mut out).await?;

        // The one per-session buffer besides the message being received: a held connection costs
        // this plus the task, so a thousand idle clients cost a few tens of MB at most.
        let mut buf = vec![0u8; READ_BUFFER];
        let deadline = tokio::time::Instant::now() + self.proto.cfg.max_session_duration;
        let mut command_started = None;
        loop {
            let in_data = self.proto.in_data();
            let (until, waiting) = self.read_deadline(deadline, &mut command_started);
            let read = tokio::select! {
                biased;
                () = self.shutdown.wait(), if !in_data => {
                    self.proto.set_closing();
                    self.closing_reply().write_to(&mut out);
                    return self.finish(&out).await;
                }
                read = tokio::time::timeout_at(until, self.io.read(&mut buf)) => read,
            };
            let n = match read {
                Err(_elapsed) => {
                    self.proto.metrics.rejected(Reject::Timeout);
                    Reply::new(421, "4.4.2", format!("{} {waiting}, closing", self.proto.cfg.hostname))
                        .write_to(&mut out);
                    return self.finish(&out).await;
                }
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(e),
            };
            if self.shutdown.is_triggered() {
                self.proto.set_closing();
            }
            let mut bytes = buf[..n].iter();
            loop {
                match self.proto.feed(&mut bytes, &mut out) {
                    Event::NeedInput => break,
                    Event::Message(envelope, raw) => {
                        let user = self.proto.conn.user.clone();
                        let reply = self.acceptor.accept_from(envelope, raw, user).await;
                        reply.write_to(&mut out);
                    }
                    Event::Close => return self.finish(&out).await,
                    Event::Auth(attempt) => {
                        if let Some(Event::Close) = self.authenticate(attempt, &mut out).await {
                            return self.finish(&out).await;
                        }
                    }
                    Event::StartTls => {
                        self.write(&mut out).await?;
                        self.start_tls().await?;
                        break;
                    }
                }
            }
            self.write(&mut out).await?;
        }
    }

    /// Until when the next read may wait, and what the client was too slow for: the data timeout
    /// between bytes of a message, the command timeout from the first byte of a command line to
    /// its end, the idle timeout for the next command to begin; never past the session limit.
    fn read_deadline(
        &self,
        session_end: tokio::time::Instant,
        command_started: &mut Option<tokio::time::Instant>,
    ) -> (tokio::time::Instant, &'static str) {
        let cfg = &self.proto.cfg;
        let now = tokio::time::Instant::now();
        let (until, waiting) = if self.proto.in_data() {
            *command_started = None;
            (now + cfg.data_timeout, "Timeout waiting for message data")
        } else if self.proto.mid_command() {
            (*command_started.get_or_insert(now) + cfg.command_timeout, "Timeout waiting for the end of the command")
        } else {
            *command_started = None;
            (now + cfg.idle_timeout, "Idle timeout waiting for a command")
        };
        if session_end <= until { (session_end, "Session time limit reached") } else { (until, waiting) }
    }

    /// Checks AUTH credentials off the async threads; a failure is answered after a delay.
    async fn authenticate(&mut self, attempt: auth::AuthAttempt, out: &mut Vec<u8>) -> Option<Event> {
        let ok = match &self.proto.access.users {
            Some(users) => users.verify(&attempt.user, attempt.password).await,
            None => false,
        };
        if ok {
            tracing::info!(user = %attempt.user, "client authenticated");
            return self.proto.auth_finished(Some(attempt.user), out);
        }
        tracing::warn!(failures = self.proto.conn.auth_failures + 1, "client authentication failed");
        tokio::time::sleep(self.proto.auth_failure_delay()).await;
        self.proto.auth_finished(None, out)
    }

    /// The server side of STARTTLS, within the command timeout.
    async fn start_tls(&mut self) -> std::io::Result<()> {
        let Some(tls) = &self.proto.access.tls else {
            return Err(std::io::Error::other("STARTTLS without a TLS configuration"));
        };
        let acceptor = tls.acceptor();
        match tokio::time::timeout(self.proto.cfg.command_timeout, self.io.upgrade(acceptor)).await {
            Ok(Ok(())) => {
                self.proto.tls_started();
                tracing::debug!("TLS started");
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")),
        }
    }

    fn closing_reply(&self) -> Reply {
        self.proto.metrics.rejected(Reject::ShuttingDown);
        Reply::new(421, "4.3.0", format!("{} Service shutting down, try again later", self.proto.cfg.hostname))
    }

    async fn write(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let timeout = self.proto.cfg.command_timeout;
        let result = tokio::time::timeout(timeout, async {
            self.io.write_all(out).await?;
            self.io.flush().await
        })
        .await;
        out.clear();
        match result {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out writing to the client")),
        }
    }

    async fn finish(mut self, out: &[u8]) -> std::io::Result<()> {
        let mut out = out.to_vec();
        self.write(&mut out).await?;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.io.shutdown()).await;
        Ok(())
    }
}

#[cfg(test)]
mod access_tests;
#[cfg(test)]
mod tests;
