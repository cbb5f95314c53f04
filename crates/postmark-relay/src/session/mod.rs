//! One SMTP session: a sans-I/O protocol state machine ([`Protocol`]) and the async driver
//! ([`Session`]) that feeds it from any `AsyncRead + AsyncWrite` stream, so tests run in memory.
//!
//! Command lines are parsed by smtp-proto's `RequestReceiver`. The message after `DATA` is read
//! by our own [`data::DataReader`]: smtp-proto's `DataReceiver` also ends the data at
//! `CRLF "." CR CR … LF`, which would let a client smuggle a second transaction inside a message.
//! The state machine consumes everything it is given before the driver writes the replies, which
//! is all PIPELINING needs.

mod data;
mod ehlo;
mod mail;
mod rcpt;
pub mod reply;

use std::sync::Arc;
use std::time::Duration;

use smtp_proto::Request;
use smtp_proto::request::receiver::{DummyLineReceiver, RequestReceiver};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use data::Acceptor;
pub use reply::Reply;

use crate::envelope::Envelope;
use crate::shutdown::ShutdownSignal;

/// Limits and timeouts of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Name announced in the greeting and the EHLO reply.
    pub hostname: String,
    /// Largest message accepted, in bytes (advertised as `SIZE`).
    pub max_message_size: usize,
    /// Most recipients per transaction; the next `RCPT` gets `452 4.5.3`.
    pub max_recipients: usize,
    /// How long to wait for the next command (or the next bytes of one).
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
            max_message_size: crate::config::MAX_MESSAGE_SIZE,
            max_recipients: crate::config::MAX_RECIPIENTS,
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
}

#[derive(Debug, Default)]
struct Transaction {
    mail_from: String,
    rcpt_to: Vec<String>,
    smtputf8: bool,
}

enum State {
    Command(RequestReceiver),
    /// Skipping the rest of an over-long command line.
    SkipLine(DummyLineReceiver),
    /// Receiving a message (or discarding one that is over the size limit).
    Data(data::DataReader),
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Command(_) => "Command",
            State::SkipLine(_) => "SkipLine",
            State::Data(_) => "Data",
        })
    }
}

/// The sans-I/O SMTP server state machine.
#[derive(Debug)]
pub(crate) struct Protocol {
    cfg: Arc<SessionConfig>,
    state: State,
    helo: Option<String>,
    tx: Option<Transaction>,
    errors: u32,
    closing: bool,
}

impl Protocol {
    pub(crate) fn new(cfg: Arc<SessionConfig>) -> Self {
        Self { cfg, state: State::Command(RequestReceiver::default()), helo: None, tx: None, errors: 0, closing: false }
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
                        Ok(request) => request.into_owned(),
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
                    if let Some(ev) = self.command(request, out) {
                        return ev;
                    }
                }
                State::SkipLine(skip) => {
                    if !skip.ingest(bytes) {
                        return Event::NeedInput;
                    }
                    self.state = State::Command(RequestReceiver::default());
                }
                State::Data(_) => {
                    if let Some(ev) = self.data_bytes(bytes, out) {
                        return ev;
                    }
                }
            }
        }
    }

    /// Counts an error reply; closes the session when there were too many.
    fn error(&mut self, out: &mut Vec<u8>, reply: Reply) -> Option<Event> {
        reply.write_to(out);
        self.errors += 1;
        if self.errors >= self.cfg.max_errors {
            Reply::new(421, "4.7.0", format!("{} Too many errors, closing", self.cfg.hostname)).write_to(out);
            return Some(Event::Close);
        }
        None
    }

    fn command(&mut self, request: Request<String>, out: &mut Vec<u8>) -> Option<Event> {
        if self.closing && !matches!(request, Request::Quit) {
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
            other => {
                let name = other.name();
                self.error(out, Reply::new(502, "5.5.1", format!("{name} is not supported")))
            }
        }
    }

    /// Back to waiting for commands after a message or an error.
    fn reset_after_message(&mut self) {
        self.state = State::Command(RequestReceiver::default());
        self.tx = None;
    }
}

fn parse_error_reply(e: smtp_proto::Error) -> Reply {
    use smtp_proto::Error as E;
    match e {
        E::UnknownCommand => Reply::new(500, "5.5.1", "Command unrecognized"),
        E::InvalidSenderAddress => Reply::new(501, "5.1.7", "Invalid sender address"),
        E::InvalidRecipientAddress => Reply::new(501, "5.1.3", "Invalid recipient address"),
        E::SyntaxError { syntax } => Reply::new(501, "5.5.4", format!("Syntax: {syntax}")),
        E::InvalidParameter { param } => Reply::new(501, "5.5.4", format!("Invalid value for parameter {param}")),
        E::UnsupportedParameter { param } => Reply::new(555, "5.5.4", format!("Unsupported parameter {param}")),
        other => Reply::new(500, "5.5.2", format!("Syntax error ({other:?})")),
    }
}

/// One client connection, driven over any byte stream.
#[derive(Debug)]
pub struct Session<S> {
    io: S,
    proto: Protocol,
    acceptor: Arc<Acceptor>,
    shutdown: ShutdownSignal,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// A session over `io`.
    pub fn new(io: S, cfg: Arc<SessionConfig>, acceptor: Arc<Acceptor>, shutdown: ShutdownSignal) -> Self {
        Self { io, proto: Protocol::new(cfg), acceptor, shutdown }
    }

    /// Runs the session to its end (QUIT, timeout, shutdown, or the peer closing).
    pub async fn run(mut self) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(1024);
        if self.shutdown.is_triggered() {
            self.proto.set_closing();
            self.closing_reply().write_to(&mut out);
            return self.finish(&out).await;
        }
        self.proto.greeting().write_to(&mut out);
        self.write(&mut out).await?;

        let mut buf = vec![0u8; 64 * 1024];
        let deadline = tokio::time::Instant::now() + self.proto.cfg.max_session_duration;
        loop {
            let in_data = self.proto.in_data();
            let idle = if in_data { self.proto.cfg.data_timeout } else { self.proto.cfg.command_timeout };
            let timeout = idle.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            let read = tokio::select! {
                biased;
                () = self.shutdown.wait(), if !in_data => {
                    self.proto.set_closing();
                    self.closing_reply().write_to(&mut out);
                    return self.finish(&out).await;
                }
                read = tokio::time::timeout(timeout, self.io.read(&mut buf)) => read,
            };
            let n = match read {
                Err(_elapsed) => {
                    Reply::new(421, "4.4.2", format!("{} Timeout waiting for input, closing", self.proto.cfg.hostname))
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
                        let reply = self.acceptor.accept(envelope, raw).await;
                        reply.write_to(&mut out);
                    }
                    Event::Close => return self.finish(&out).await,
                }
            }
            self.write(&mut out).await?;
        }
    }

    fn closing_reply(&self) -> Reply {
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
mod tests;
