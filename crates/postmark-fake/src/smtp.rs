//! A fake of Postmark's SMTP endpoint on loopback, used as the relay's SMTP upstream in tests.
//!
//! * Listens on `127.0.0.1:0`; [`FakeSmtp::addr`] tells where.
//! * STARTTLS with a certificate from a CA generated at start-up ([`FakeSmtp::ca_pem`]).
//! * AUTH PLAIN and LOGIN against configured user/password pairs. By default AUTH is neither
//!   advertised nor accepted before STARTTLS (`538 5.7.11`); [`FakeSmtpBuilder::auth_before_tls`]
//!   allows it. When credentials are configured, MAIL without AUTH gets `530 5.7.0`.
//! * Records every accepted transaction ([`Transaction`]): envelope, the authenticated user,
//!   whether it ran over TLS, and the message bytes exactly as received after dot-unstuffing
//!   (everything between the `354` and the terminating `<CRLF>.<CRLF>`, including the CRLF that
//!   precedes the final dot).
//! * Fault injection ([`FakeSmtp::inject`]): the next N transactions get a chosen reply at the
//!   greeting, MAIL, RCPT or end of DATA. A `421` reply closes the connection, like a real server.
//! * Postmark's error model: the real service answers `250` and only afterwards turns what it cannot
//!   send into an `SMTPApiError` bounce (TypeCode 100007). The fake does the same: after the `250`
//!   it checks the recorded message with [`crate::rules::check_mime`] and keeps the verdict in
//!   [`Transaction::smtp_api_error`]; [`FakeSmtp::smtp_api_errors`] lists the messages Postmark
//!   would have bounced, so a test can assert that nothing it forwarded would be lost.
//!
//! * Distance: [`FakeSmtpBuilder::latency`] (or [`FakeSmtp::set_latency`]) holds every reply that
//!   long, so each round trip of a client costs it; [`FakeSmtp::load`] counts the connections open
//!   (now, the peak, and what each new one saw).
//! * PIPELINING (RFC 2920) is advertised unless [`FakeSmtpBuilder::pipelining`] turns it off, and
//!   the client is held to it: every group of commands that arrived together is recorded
//!   ([`FakeSmtp::command_groups`]), and [`FakeSmtp::pipelining_violations`] lists every command
//!   sent without waiting for a reply where that is not allowed (anything, when PIPELINING is not
//!   advertised; otherwise anything after EHLO, HELO, DATA, AUTH, STARTTLS, NOOP, VRFY, EXPN or
//!   QUIT in the same group, and message content sent before the `354`).
//!
//! Replies carry enhanced status codes; SIZE, 8BITMIME, SMTPUTF8 and ENHANCEDSTATUSCODES are
//! advertised.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use base64::Engine as _;
use smtp_proto::{
    AUTH_LOGIN, AUTH_PLAIN, Error as ProtoError, Request,
    request::receiver::{DataReceiver, LineReceiver, RequestReceiver},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;

use crate::load::InFlight;
use crate::rules::{Refusal, Rules};
use crate::tls::TestPki;

/// One transaction the fake accepted with `250`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// `MAIL FROM` address, without angle brackets (empty for `<>`).
    pub mail_from: String,
    /// Every accepted `RCPT TO` address, in order, without angle brackets.
    pub rcpt_to: Vec<String>,
    /// The user that authenticated on this connection, if any.
    pub auth_user: Option<String>,
    /// Whether the transaction ran inside STARTTLS.
    pub tls: bool,
    /// The message bytes after dot-unstuffing, exactly as received.
    pub data: Vec<u8>,
    /// Why Postmark would turn this accepted message into an `SMTPApiError` bounce (TypeCode 100007), with
    /// the ErrorCode its API would give; `None` when Postmark would send it. See [`crate::rules::check_mime`].
    pub smtp_api_error: Option<Refusal>,
}

/// An accepted message that Postmark would bounce as an `SMTPApiError` (TypeCode
/// [`crate::rules::SMTP_API_ERROR_TYPE_CODE`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpApiError {
    /// Index of the transaction in [`FakeSmtp::messages`].
    pub index: usize,
    /// The envelope recipients of that transaction.
    pub rcpt_to: Vec<String>,
    /// Why, with the ErrorCode Postmark's API would give.
    pub refusal: Refusal,
}

/// Where an injected fault answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Instead of the `220` greeting (the connection is closed after the reply).
    Greeting,
    /// The reply to `MAIL FROM`.
    Mail,
    /// The reply to `RCPT TO` (every recipient, or only [`Fault::recipient`]).
    Rcpt,
    /// The reply after the message data (the message is not recorded).
    Data,
}

/// A reply to give instead of the normal one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Where it answers.
    pub stage: Stage,
    /// Basic reply code, e.g. 421, 451, 550.
    pub code: u16,
    /// Enhanced status code, e.g. `"4.3.0"`.
    pub enhanced: String,
    /// Reply text.
    pub text: String,
    /// For [`Stage::Rcpt`]: only this recipient (compared case-insensitively) gets the fault.
    pub recipient: Option<String>,
    /// How many times the fault answers: transactions for [`Stage::Mail`] and [`Stage::Data`],
    /// RCPT commands for [`Stage::Rcpt`], connections for [`Stage::Greeting`].
    pub times: usize,
}

impl Fault {
    /// A fault at `stage` answering `code enhanced text` for the next transaction.
    pub fn new(stage: Stage, code: u16, enhanced: &str, text: &str) -> Self {
        Self { stage, code, enhanced: enhanced.to_owned(), text: text.to_owned(), recipient: None, times: 1 }
    }

    /// Answers `times` times instead of once (see [`Fault::times`](#structfield.times)).
    pub fn times(mut self, times: usize) -> Self {
        self.times = times;
        self
    }

    /// Limits a [`Stage::Rcpt`] fault to one recipient.
    pub fn for_recipient(mut self, address: &str) -> Self {
        self.recipient = Some(address.to_owned());
        self
    }

    fn reply(&self) -> String {
        format!("{} {} {}\r\n", self.code, self.enhanced, self.text)
    }
}

/// Settings for a [`FakeSmtp`].
#[derive(Debug, Clone)]
pub struct FakeSmtpBuilder {
    credentials: Vec<(String, String)>,
    auth_before_tls: bool,
    max_size: usize,
    rules: Rules,
    pipelining: bool,
    latency: Duration,
}

impl Default for FakeSmtpBuilder {
    fn default() -> Self {
        Self {
            credentials: Vec::new(),
            auth_before_tls: false,
            max_size: 10 * 1024 * 1024,
            rules: Rules::default(),
            pipelining: true,
            latency: Duration::ZERO,
        }
    }
}

impl FakeSmtpBuilder {
    /// Accepts this user/password pair for AUTH (may be called several times). Once any pair is
    /// configured, MAIL requires a successful AUTH.
    pub fn credentials(mut self, user: &str, password: &str) -> Self {
        self.credentials.push((user.to_owned(), password.to_owned()));
        self
    }

    /// Advertises and accepts AUTH before STARTTLS (refused with `538 5.7.11` by default).
    pub fn auth_before_tls(mut self, allow: bool) -> Self {
        self.auth_before_tls = allow;
        self
    }

    /// The SIZE limit advertised and enforced (`552 5.3.4`); 10 MiB by default.
    pub fn max_size(mut self, bytes: usize) -> Self {
        self.max_size = bytes;
        self
    }

    /// The account configuration the bounce model uses (senders, inactive recipients, limits).
    pub fn rules(mut self, rules: Rules) -> Self {
        self.rules = rules;
        self
    }

    /// Whether PIPELINING is advertised (it is by default). Without it, a client that sends a
    /// command before the reply to the previous one is recorded as a violation.
    pub fn pipelining(mut self, advertise: bool) -> Self {
        self.pipelining = advertise;
        self
    }

    /// Holds every reply (the greeting included) this long: one round trip of the link.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Binds `127.0.0.1:0`, generates the test CA and starts serving.
    pub async fn start(self) -> std::io::Result<FakeSmtp> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let pki = TestPki::generate();
        let state = State { rules: self.rules.clone(), latency: self.latency, ..State::default() };
        let shared = Arc::new(Shared {
            config: self,
            acceptor: TlsAcceptor::from(pki.server_config()),
            state: Mutex::new(state),
            changed: Notify::new(),
            load: InFlight::default(),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(FakeSmtp { addr, pki, shared, task })
    }
}

/// The running fake SMTP server; it stops when dropped.
#[derive(Debug)]
pub struct FakeSmtp {
    addr: SocketAddr,
    pki: TestPki,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSmtp {
    /// Settings for a fake with credentials, AUTH policy or size limit.
    pub fn builder() -> FakeSmtpBuilder {
        FakeSmtpBuilder::default()
    }

    /// A fake with default settings: no credentials (so no AUTH needed), STARTTLS offered.
    pub async fn start() -> std::io::Result<Self> {
        Self::builder().start().await
    }

    /// The listening address (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:<port>`, for the relay's `--smtp-url`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The test CA certificate (PEM) the server certificate chains to.
    pub fn ca_pem(&self) -> &str {
        self.pki.ca_pem()
    }

    /// The generated PKI (for a client configuration that trusts it).
    pub fn pki(&self) -> &TestPki {
        &self.pki
    }

    /// Every transaction accepted so far, in order.
    pub fn messages(&self) -> Vec<Transaction> {
        self.shared.lock().messages.clone()
    }

    /// How many transactions were accepted so far (without copying them).
    pub fn message_count(&self) -> usize {
        self.shared.lock().messages.len()
    }

    /// The accepted messages Postmark would have bounced as `SMTPApiError`s, in order. A test of a
    /// sender that must never lose mail asserts that this is empty.
    pub fn smtp_api_errors(&self) -> Vec<SmtpApiError> {
        self.shared
            .lock()
            .messages
            .iter()
            .enumerate()
            .filter_map(|(index, t)| {
                let refusal = t.smtp_api_error.clone()?;
                Some(SmtpApiError { index, rcpt_to: t.rcpt_to.clone(), refusal })
            })
            .collect()
    }

    /// Marks a recipient inactive: a message to it would bounce with this ErrorCode (406 for a
    /// suppressed address).
    pub fn reject_recipient(&self, address: &str, error_code: i64) {
        self.shared.lock().rules.reject_recipient(address, error_code);
    }

    /// Replaces the account configuration the bounce model uses from the next message on.
    pub fn set_rules(&self, rules: Rules) {
        self.shared.lock().rules = rules;
    }

    /// How many TCP connections were accepted so far (to check connection reuse).
    pub fn connections(&self) -> usize {
        self.shared.lock().connections
    }

    /// The connections open: now, the peak, and how many were open as each one arrived.
    pub fn load(&self) -> &InFlight {
        &self.shared.load
    }

    /// Holds every reply this long from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// The commands of every group that arrived together (one read), in order, by verb (`MAIL`,
    /// `RCPT`, `DATA`, ...; `<content>` for the message data up to its final dot). A client that
    /// waits for each reply makes groups of one; a pipelining client `["MAIL", "RCPT", "DATA"]`.
    pub fn command_groups(&self) -> Vec<Vec<&'static str>> {
        self.shared.lock().groups.clone()
    }

    /// Every breach of RFC 2920 by the client so far (see the module documentation); empty for a
    /// well-behaved client.
    pub fn pipelining_violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    /// Queues a fault; faults of the same stage apply in the order they were added.
    pub fn inject(&self, fault: Fault) {
        if fault.times > 0 {
            self.shared.lock().faults.push_back(fault);
        }
    }

    /// Waits until at least `count` transactions were accepted, or `timeout` passes; returns
    /// all transactions accepted by then.
    pub async fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<Transaction> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.messages();
            }
        }
    }
}

struct Shared {
    config: FakeSmtpBuilder,
    acceptor: TlsAcceptor,
    state: Mutex<State>,
    changed: Notify,
    load: InFlight,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("config", &self.config).finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct State {
    messages: Vec<Transaction>,
    faults: VecDeque<Fault>,
    connections: usize,
    rules: Rules,
    latency: Duration,
    groups: Vec<Vec<&'static str>>,
    violations: Vec<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the recorded messages from the others.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one use of the first fault queued for `stage` (and `recipient`, for RCPT).
    fn take_fault(&self, stage: Stage, recipient: Option<&str>) -> Option<Fault> {
        let mut state = self.lock();
        let index = state.faults.iter().position(|f| {
            f.stage == stage
                && match (&f.recipient, recipient) {
                    (Some(wanted), Some(got)) => wanted.eq_ignore_ascii_case(got),
                    (Some(_), None) => false,
                    (None, _) => true,
                }
        })?;
        let fault = state.faults[index].clone();
        state.faults[index].times -= 1;
        if state.faults[index].times == 0 {
            state.faults.remove(index);
        }
        Some(fault)
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Accept errors on loopback are transient (e.g. too many open files); back off.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        shared.lock().connections += 1;
        let shared = Arc::clone(&shared);
        let open = shared.load.enter();
        tokio::spawn(async move {
            let _open = open;
            if let Err(e) = serve_connection(tcp, shared).await {
                tracing::debug!(error = %e, "fake SMTP connection ended with an error");
            }
        });
    }
}

async fn serve_connection(mut tcp: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let latency = shared.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(fault) = shared.take_fault(Stage::Greeting, None) {
        tcp.write_all(fault.reply().as_bytes()).await?;
        return tcp.shutdown().await;
    }
    tcp.write_all(b"220 localhost ESMTP postmark-fake\r\n").await?;
    let mut session = Session::new(Arc::clone(&shared), false);
    match session.run(&mut tcp).await? {
        End::Closed => Ok(()),
        End::StartTls => {
            let mut tls = shared.acceptor.accept(tcp).await?;
            // RFC 3207: the session starts over; nothing from before the handshake is kept.
            let mut session = Session::new(shared, true);
            match session.run(&mut tls).await? {
                End::Closed => Ok(()),
                End::StartTls => unreachable!("STARTTLS is refused inside TLS"),
            }
        }
    }
}

/// How a session loop ended.
enum End {
    Closed,
    StartTls,
}

enum Mode {
    Command,
    Data(DataReceiver),
    AuthPlain(LineReceiver<()>),
    AuthLoginUser(LineReceiver<()>),
    AuthLoginPassword(LineReceiver<()>, String),
}

struct Session {
    shared: Arc<Shared>,
    tls: bool,
    mode: Mode,
    commands: RequestReceiver,
    greeted: bool,
    auth_user: Option<String>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    data: Vec<u8>,
    out: Vec<u8>,
    /// Set after a `421` reply: the server closes the connection.
    closing: bool,
}

/// What to do after a chunk of input was handled.
enum Next {
    Continue,
    Close,
    StartTls,
}

impl Session {
    fn new(shared: Arc<Shared>, tls: bool) -> Self {
        Self {
            shared,
            tls,
            mode: Mode::Command,
            commands: RequestReceiver::default(),
            greeted: false,
            auth_user: None,
            mail_from: None,
            rcpt_to: Vec::new(),
            data: Vec::new(),
            out: Vec::new(),
            closing: false,
        }
    }

    async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut S) -> std::io::Result<End> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = io.read(&mut buf).await?;
            if n == 0 {
                return Ok(End::Closed);
            }
            let next = self.feed(&buf[..n]);
            if !self.out.is_empty() {
                let latency = self.shared.lock().latency;
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                io.write_all(&self.out).await?;
                io.flush().await?;
                self.out.clear();
            }
            match next {
                Next::Continue => {}
                Next::Close => {
                    io.shutdown().await.ok();
                    return Ok(End::Closed);
                }
                Next::StartTls => return Ok(End::StartTls),
            }
        }
    }

    /// Handles every complete command or data block in `input` (so pipelined commands are
    /// answered together).
    fn feed(&mut self, input: &[u8]) -> Next {
        let mut group = Vec::new();
        let next = self.feed_group(input, &mut group);
        if !group.is_empty() {
            self.shared.lock().groups.push(group);
        }
        next
    }

    /// Notes a breach of RFC 2920 when `verb` was followed by more input in its group.
    fn check_pipelining(&mut self, verb: &'static str, more_follows: bool) {
        if !more_follows {
            return;
        }
        let violation = if !self.shared.config.pipelining {
            Some(format!("{verb} followed by more input without waiting for its reply; PIPELINING was not advertised"))
        } else if LAST_IN_GROUP.contains(&verb) {
            Some(format!("{verb} must be the last command of a group (RFC 2920 section 3.1)"))
        } else {
            None
        };
        if let Some(v) = violation {
            self.shared.lock().violations.push(v);
        }
    }

    fn feed_group(&mut self, input: &[u8], group: &mut Vec<&'static str>) -> Next {
        let mut bytes = input.iter();
        while !bytes.as_slice().is_empty() {
            match &mut self.mode {
                Mode::Command => match self.commands.ingest(&mut bytes) {
                    Ok(request) => {
                        let request = request.into_owned();
                        let verb = verb(&request);
                        group.push(verb);
                        self.check_pipelining(verb, !bytes.as_slice().is_empty());
                        match self.command(request) {
                            Next::Continue if self.closing => return Next::Close,
                            Next::Continue => {}
                            // Anything pipelined after STARTTLS or QUIT is discarded.
                            other => return other,
                        }
                    }
                    Err(ProtoError::NeedsMoreData { .. }) => {}
                    Err(ProtoError::UnknownCommand) => self.reply("500 5.5.2 Unknown command"),
                    Err(ProtoError::InvalidSenderAddress) => self.reply("501 5.1.7 Invalid sender address"),
                    Err(ProtoError::InvalidRecipientAddress) => self.reply("501 5.1.3 Invalid recipient address"),
                    Err(ProtoError::ResponseTooLong) => self.reply("500 5.5.6 Line too long"),
                    Err(e) => self.reply(&format!("501 5.5.4 {e}")),
                },
                Mode::Data(receiver) => {
                    if receiver.ingest(&mut bytes, &mut self.data) {
                        group.push("<content>");
                        self.check_pipelining("<content>", !bytes.as_slice().is_empty());
                        self.mode = Mode::Command;
                        self.end_of_data();
                        if self.closing {
                            return Next::Close;
                        }
                    }
                }
                Mode::AuthPlain(line) => {
                    if line.ingest(&mut bytes) {
                        let text = String::from_utf8_lossy(&line.buf).into_owned();
                        self.mode = Mode::Command;
                        self.auth_plain(&text);
                    }
                }
                Mode::AuthLoginUser(line) => {
                    if line.ingest(&mut bytes) {
                        let text = String::from_utf8_lossy(&line.buf).into_owned();
                        self.mode = Mode::Command;
                        self.auth_login_user(&text);
                    }
                }
                Mode::AuthLoginPassword(line, user) => {
                    if line.ingest(&mut bytes) {
                        let text = String::from_utf8_lossy(&line.buf).into_owned();
                        let user = std::mem::take(user);
                        self.mode = Mode::Command;
                        self.auth_login_password(user, &text);
                    }
                }
            }
        }
        Next::Continue
    }

    fn reply(&mut self, line: &str) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn reset_transaction(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
        self.data.clear();
    }

    fn auth_allowed(&self) -> bool {
        self.tls || self.shared.config.auth_before_tls
    }

    fn command(&mut self, request: Request<String>) -> Next {
        match request {
            Request::Ehlo { host: _ } => {
                self.greeted = true;
                self.reset_transaction();
                let mut lines = vec!["localhost greets you".to_owned()];
                if self.shared.config.pipelining {
                    lines.push("PIPELINING".to_owned());
                }
                lines.extend([
                    format!("SIZE {}", self.shared.config.max_size),
                    "8BITMIME".to_owned(),
                    "SMTPUTF8".to_owned(),
                    "ENHANCEDSTATUSCODES".to_owned(),
                ]);
                if !self.tls {
                    lines.push("STARTTLS".to_owned());
                }
                if self.auth_allowed() {
                    lines.push("AUTH PLAIN LOGIN".to_owned());
                }
                let last = lines.len() - 1;
                for (i, line) in lines.iter().enumerate() {
                    let sep = if i == last { ' ' } else { '-' };
                    self.reply(&format!("250{sep}{line}"));
                }
            }
            Request::Helo { host: _ } | Request::Lhlo { host: _ } => {
                self.greeted = true;
                self.reset_transaction();
                self.reply("250 localhost");
            }
            Request::StartTls => {
                if self.tls {
                    self.reply("503 5.5.1 Already in TLS");
                } else {
                    self.reply("220 2.0.0 Ready to start TLS");
                    return Next::StartTls;
                }
            }
            Request::Auth { mechanism, initial_response } => self.auth(mechanism, &initial_response),
            Request::Mail { from } => self.mail(from.address, from.size),
            Request::Rcpt { to } => self.rcpt(to.address),
            Request::Data => {
                if self.mail_from.is_none() {
                    self.reply("503 5.5.1 MAIL first");
                } else if self.rcpt_to.is_empty() {
                    self.reply("554 5.5.1 No valid recipients");
                } else {
                    self.data.clear();
                    let mut receiver = DataReceiver::new();
                    // Start as if after a line break, so that a dot-stuffed first line is
                    // unstuffed and a lone "." ends an empty message.
                    receiver.ingest(&mut b"\r\n".iter(), &mut Vec::new());
                    self.mode = Mode::Data(receiver);
                    self.reply("354 Start mail input; end with <CRLF>.<CRLF>");
                }
            }
            Request::Bdat { .. } => self.reply("502 5.5.1 CHUNKING not supported"),
            Request::Rset => {
                self.reset_transaction();
                self.reply("250 2.0.0 Ok");
            }
            Request::Noop { .. } => self.reply("250 2.0.0 Ok"),
            Request::Vrfy { .. } => self.reply("252 2.5.2 Cannot VRFY user"),
            Request::Quit => {
                self.reply("221 2.0.0 Bye");
                return Next::Close;
            }
            _ => self.reply("502 5.5.1 Command not implemented"),
        }
        Next::Continue
    }

    fn auth(&mut self, mechanism: u64, initial_response: &str) {
        if !self.greeted {
            return self.reply("503 5.5.1 Send EHLO first");
        }
        if self.auth_user.is_some() {
            return self.reply("503 5.5.1 Already authenticated");
        }
        if self.mail_from.is_some() {
            return self.reply("503 5.5.1 AUTH not allowed during a mail transaction");
        }
        if !self.auth_allowed() {
            return self.reply("538 5.7.11 Encryption required for requested authentication mechanism");
        }
        match mechanism {
            AUTH_PLAIN if initial_response.is_empty() => {
                self.mode = Mode::AuthPlain(LineReceiver::new(()));
                self.reply("334 ");
            }
            AUTH_PLAIN => self.auth_plain(initial_response),
            AUTH_LOGIN if initial_response.is_empty() => {
                self.mode = Mode::AuthLoginUser(LineReceiver::new(()));
                self.reply("334 VXNlcm5hbWU6"); // "Username:"
            }
            AUTH_LOGIN => self.auth_login_user(initial_response),
            _ => self.reply("504 5.5.4 Unrecognized authentication type"),
        }
    }

    fn auth_plain(&mut self, response: &str) {
        let response = response.trim();
        if response == "*" {
            return self.reply("501 5.0.0 Authentication cancelled");
        }
        let Some(decoded) = decode_base64(response) else {
            return self.reply("501 5.5.2 Cannot decode response");
        };
        // authzid NUL authcid NUL passwd
        let mut fields = decoded.split(|&b| b == 0);
        let (Some(_authzid), Some(user), Some(password), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return self.reply("501 5.5.2 Malformed PLAIN response");
        };
        let user = String::from_utf8_lossy(user).into_owned();
        let password = String::from_utf8_lossy(password).into_owned();
        self.check_credentials(user, &password);
    }

    fn auth_login_user(&mut self, response: &str) {
        let response = response.trim();
        if response == "*" {
            return self.reply("501 5.0.0 Authentication cancelled");
        }
        let Some(user) = decode_base64(response) else {
            return self.reply("501 5.5.2 Cannot decode response");
        };
        let user = String::from_utf8_lossy(&user).into_owned();
        self.mode = Mode::AuthLoginPassword(LineReceiver::new(()), user);
        self.reply("334 UGFzc3dvcmQ6"); // "Password:"
    }

    fn auth_login_password(&mut self, user: String, response: &str) {
        let response = response.trim();
        if response == "*" {
            return self.reply("501 5.0.0 Authentication cancelled");
        }
        let Some(password) = decode_base64(response) else {
            return self.reply("501 5.5.2 Cannot decode response");
        };
        let password = String::from_utf8_lossy(&password).into_owned();
        self.check_credentials(user, &password);
    }

    fn check_credentials(&mut self, user: String, password: &str) {
        let ok = self.shared.config.credentials.iter().any(|(u, p)| *u == user && p == password);
        if ok {
            self.auth_user = Some(user);
            self.reply("235 2.7.0 Authentication successful");
        } else {
            self.reply("535 5.7.8 Authentication credentials invalid");
        }
    }

    fn mail(&mut self, address: String, size: usize) {
        if !self.greeted {
            return self.reply("503 5.5.1 Send EHLO first");
        }
        if self.mail_from.is_some() {
            return self.reply("503 5.5.1 Nested MAIL command");
        }
        if !self.shared.config.credentials.is_empty() && self.auth_user.is_none() {
            return self.reply("530 5.7.0 Authentication required");
        }
        if size > self.shared.config.max_size {
            return self.reply("552 5.3.4 Message size exceeds fixed limit");
        }
        if let Some(fault) = self.shared.take_fault(Stage::Mail, None) {
            return self.fault(&fault);
        }
        self.mail_from = Some(address);
        self.reply("250 2.1.0 Ok");
    }

    fn rcpt(&mut self, address: String) {
        if self.mail_from.is_none() {
            return self.reply("503 5.5.1 MAIL first");
        }
        if let Some(fault) = self.shared.take_fault(Stage::Rcpt, Some(&address)) {
            return self.fault(&fault);
        }
        self.rcpt_to.push(address);
        self.reply("250 2.1.5 Ok");
    }

    fn fault(&mut self, fault: &Fault) {
        self.out.extend_from_slice(fault.reply().as_bytes());
        if fault.code == 421 {
            self.closing = true;
        }
    }

    fn end_of_data(&mut self) {
        let data = std::mem::take(&mut self.data);
        let mail_from = self.mail_from.take().unwrap_or_default();
        let rcpt_to = std::mem::take(&mut self.rcpt_to);
        if data.len() > self.shared.config.max_size {
            return self.reply("552 5.3.4 Message size exceeds fixed limit");
        }
        if let Some(fault) = self.shared.take_fault(Stage::Data, None) {
            return self.fault(&fault);
        }
        let rules = self.shared.lock().rules.clone();
        // What Postmark does after its 250: convert the message, or bounce it as an SMTPApiError.
        let smtp_api_error = crate::rules::check_mime(&data, &rcpt_to, &rules).err();
        let transaction =
            Transaction { mail_from, rcpt_to, auth_user: self.auth_user.clone(), tls: self.tls, data, smtp_api_error };
        let id = {
            let mut state = self.shared.lock();
            state.messages.push(transaction);
            state.messages.len()
        };
        self.shared.changed.notify_waiters();
        self.reply(&format!("250 2.0.0 Ok: queued as FAKE{id:06}"));
    }
}

/// Commands after which a client must wait for the reply (RFC 2920 section 3.1, RFC 3207 for
/// STARTTLS, RFC 4954 for AUTH).
const LAST_IN_GROUP: &[&str] = &["EHLO", "HELO", "LHLO", "DATA", "VRFY", "EXPN", "NOOP", "QUIT", "STARTTLS", "AUTH"];

/// The verb of a command, for [`FakeSmtp::command_groups`].
fn verb(request: &Request<String>) -> &'static str {
    match request {
        Request::Ehlo { .. } => "EHLO",
        Request::Helo { .. } => "HELO",
        Request::Lhlo { .. } => "LHLO",
        Request::Mail { .. } => "MAIL",
        Request::Rcpt { .. } => "RCPT",
        Request::Data => "DATA",
        Request::Bdat { .. } => "BDAT",
        Request::Auth { .. } => "AUTH",
        Request::StartTls => "STARTTLS",
        Request::Rset => "RSET",
        Request::Noop { .. } => "NOOP",
        Request::Vrfy { .. } => "VRFY",
        Request::Expn { .. } => "EXPN",
        Request::Quit => "QUIT",
        _ => "OTHER",
    }
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    if text == "=" {
        return Some(Vec::new());
    }
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests;
