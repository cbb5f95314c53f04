//! Access control inside the session: the allow-list check before the greeting, AUTH PLAIN and
//! LOGIN (RFC 4954), and STARTTLS (RFC 3207).
//!
//! * A client the access policy does not admit gets `554 5.7.1` instead of the greeting.
//! * AUTH is offered only when a users file is configured, and only inside TLS or on loopback;
//!   elsewhere `AUTH` is answered `538 5.7.11`. Before `EHLO`, during a transaction, or after a
//!   successful AUTH it is `503 5.5.1`. Success is `235 2.7.0`; wrong credentials `535 5.7.8`
//!   after a delay that grows with each failure, and the third failure closes the session with
//!   `421 4.7.0`. Every failure also counts as a session error.
//! * With a users file, `MAIL` from a client that must authenticate and has not is `530 5.7.0`.
//! * `STARTTLS` is offered when `--tls-cert` is set and TLS is not active yet. Anything the client
//!   sent after `STARTTLS` in the same packet is refused (`554 5.5.1`, connection closed)
//!   instead of being read as if it had come over TLS: the "STARTTLS command injection" attack
//!   (CVE-2011-0411 and its relatives). After the handshake the session starts over: the client
//!   must say `EHLO` again, and any transaction or authentication is forgotten.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN};

use super::reply::Reply;
use super::{Event, Protocol, State};
use crate::auth::{MAX_USER_LEN, decode_base64, decode_plain};
use crate::metrics::Reject;

/// Failed AUTH attempts after which the session is closed.
pub(crate) const MAX_AUTH_FAILURES: u32 = 3;
/// The delay before answering a failed AUTH, times the number of failures so far.
pub(crate) const AUTH_FAILURE_DELAY: Duration = Duration::from_millis(500);
/// Longest AUTH response line accepted (RFC 4954 §4: 12288 octets).
const MAX_AUTH_LINE: usize = 12288;

/// A user name and password to check; the driver answers with [`Protocol::auth_finished`].
pub(crate) struct AuthAttempt {
    /// The user name.
    pub(crate) user: String,
    /// The password (never logged).
    pub(crate) password: Vec<u8>,
}

impl std::fmt::Debug for AuthAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthAttempt").field("user", &self.user).finish_non_exhaustive()
    }
}

/// What the connection is: who the peer is, whether TLS is on, who authenticated.
#[derive(Debug)]
pub(crate) struct Connection {
    /// The client's address (loopback for in-memory sessions).
    pub(crate) peer: IpAddr,
    /// Whether STARTTLS has completed.
    pub(crate) tls: bool,
    /// The authenticated user.
    pub(crate) user: Option<String>,
    /// Failed AUTH attempts so far.
    pub(crate) auth_failures: u32,
}

impl Default for Connection {
    fn default() -> Self {
        Self { peer: IpAddr::V4(Ipv4Addr::LOCALHOST), tls: false, user: None, auth_failures: 0 }
    }
}

/// Which AUTH response line is awaited.
#[derive(Debug)]
enum Step {
    Plain,
    LoginUser,
    LoginPassword(String),
}

/// Reading one AUTH response line after a `334`.
pub(crate) struct AuthLine {
    step: Step,
    line: Vec<u8>,
    /// The line grew past the limit: skip to its end, then refuse.
    too_long: bool,
}

impl std::fmt::Debug for AuthLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The line may hold a password.
        f.debug_struct("AuthLine").field("step", &self.step).finish_non_exhaustive()
    }
}

impl AuthLine {
    fn new(step: Step) -> Self {
        Self { step, line: Vec::new(), too_long: false }
    }
}

impl Protocol {
    /// `None` if the client is served; else the reply that refuses it.
    pub(crate) fn refusal(&self) -> Option<Reply> {
        if self.access.admits(self.conn.peer) {
            return None;
        }
        self.metrics.rejected(Reject::AccessDenied);
        Some(Reply::new(
            554,
            "5.7.1",
            format!("{} Access denied: this address may not send mail through this relay", self.cfg.hostname),
        ))
    }

    /// Whether `EHLO` lists `STARTTLS`.
    pub(super) fn starttls_offered(&self) -> bool {
        self.access.tls.is_some() && !self.conn.tls
    }

    /// Whether `EHLO` lists `AUTH`.
    pub(super) fn auth_offered(&self) -> bool {
        self.access.auth_offered(self.conn.peer, self.conn.tls)
    }

    /// Whether `MAIL` must wait for AUTH.
    pub(super) fn needs_auth(&self) -> bool {
        self.conn.user.is_none() && self.access.auth_required(self.conn.peer)
    }

    /// `STARTTLS`: `220` and [`Event::StartTls`] when nothing follows it in `bytes`.
    pub(super) fn starttls(&mut self, bytes: &std::slice::Iter<'_, u8>, out: &mut Vec<u8>) -> Option<Event> {
        if self.closing {
            Reply::new(421, "4.3.0", format!("{} Service shutting down, try again later", self.cfg.hostname))
                .write_to(out);
            return Some(Event::Close);
        }
        if self.access.tls.is_none() {
            return self.error(out, Reply::new(502, "5.5.1", "STARTTLS is not supported"));
        }
        if self.conn.tls {
            return self.error(out, Reply::new(503, "5.5.1", "TLS is already active"));
        }
        if !bytes.as_slice().is_empty() {
            tracing::warn!("data pipelined after STARTTLS (command injection attempt?); closing the connection");
            self.metrics.rejected(Reject::Syntax);
            Reply::new(554, "5.5.1", "Nothing may follow STARTTLS before the TLS handshake; closing").write_to(out);
            return Some(Event::Close);
        }
        Reply::new(220, "2.0.0", "Ready to start TLS").write_to(out);
        Some(Event::StartTls)
    }

    /// After the TLS handshake: everything learnt in clear is forgotten (RFC 3207 §4.2).
    pub(crate) fn tls_started(&mut self) {
        self.reset_after_message();
        self.helo = None;
        self.conn.tls = true;
        self.conn.user = None;
    }

    /// `AUTH mechanism [initial-response]`.
    pub(super) fn auth(&mut self, mechanism: u64, initial: &str, out: &mut Vec<u8>) -> Option<Event> {
        if self.access.users.is_none() {
            return self.error(out, Reply::new(502, "5.5.1", "AUTH is not supported"));
        }
        if !self.auth_offered() {
            return self.error(
                out,
                Reply::new(538, "5.7.11", "Encryption required for requested authentication mechanism; use STARTTLS"),
            );
        }
        if self.helo.is_none() {
            return self.error(out, Reply::new(503, "5.5.1", "Send EHLO first"));
        }
        if self.conn.user.is_some() {
            return self.error(out, Reply::new(503, "5.5.1", "Already authenticated"));
        }
        if self.tx.is_some() {
            return self.error(out, Reply::new(503, "5.5.1", "AUTH is not allowed during a mail transaction"));
        }
        let initial = if initial == "=" { Some("") } else { Some(initial).filter(|s| !s.is_empty()) };
        match (mechanism, initial) {
            (AUTH_PLAIN, None) => {
                self.state = State::Auth(AuthLine::new(Step::Plain));
                // RFC 4954 §4: `"334" SP [base64] CRLF`, the space even with an empty challenge.
                out.extend_from_slice(b"334 \r\n");
                None
            }
            (AUTH_PLAIN, Some(response)) => self.auth_response(Step::Plain, response.as_bytes(), out),
            (AUTH_LOGIN, None) => {
                self.state = State::Auth(AuthLine::new(Step::LoginUser));
                Reply::plain(334, "VXNlcm5hbWU6").write_to(out); // "Username:"
                None
            }
            (AUTH_LOGIN, Some(response)) => self.auth_response(Step::LoginUser, response.as_bytes(), out),
            _ => self.error(out, Reply::new(504, "5.5.4", "Unrecognized authentication type; use PLAIN or LOGIN")),
        }
    }

    /// Feeds bytes of an AUTH response line.
    pub(super) fn auth_bytes(&mut self, bytes: &mut std::slice::Iter<'_, u8>, out: &mut Vec<u8>) -> Option<Event> {
        let State::Auth(reader) = &mut self.state else {
            return None;
        };
        let input = bytes.as_slice();
        let (chunk, done) = match input.iter().position(|&b| b == b'\n') {
            Some(p) => (&input[..=p], true),
            None => (input, false),
        };
        *bytes = input[chunk.len()..].iter();
        if !reader.too_long {
            if reader.line.len() + chunk.len() > MAX_AUTH_LINE {
                reader.too_long = true;
                reader.line = Vec::new();
            } else {
                reader.line.extend_from_slice(chunk);
            }
        }
        if !done {
            return Some(Event::NeedInput);
        }
        let State::Auth(reader) = std::mem::replace(&mut self.state, State::Command(Default::default())) else {
            return None;
        };
        if reader.too_long {
            return self.auth_failed_syntax(out, Reply::new(500, "5.5.6", "Authentication exchange line is too long"));
        }
        let line = reader.line.strip_suffix(b"\n").unwrap_or(&reader.line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.auth_response(reader.step, line, out)
    }

    /// One response of the exchange (base64, or `*` to cancel).
    fn auth_response(&mut self, step: Step, line: &[u8], out: &mut Vec<u8>) -> Option<Event> {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text == "*" {
            return self.auth_failed_syntax(out, Reply::new(501, "5.0.0", "Authentication cancelled"));
        }
        match step {
            Step::Plain => match decode_plain(text) {
                Some((user, password)) => self.attempt(user, password),
                None => self.auth_failed_syntax(out, Reply::new(501, "5.5.2", "Cannot decode the PLAIN response")),
            },
            Step::LoginUser => match decode_base64(text).and_then(|u| String::from_utf8(u).ok()) {
                Some(user) if user.len() <= MAX_USER_LEN => {
                    self.state = State::Auth(AuthLine::new(Step::LoginPassword(user)));
                    Reply::plain(334, "UGFzc3dvcmQ6").write_to(out); // "Password:"
                    None
                }
                _ => self.auth_failed_syntax(out, Reply::new(501, "5.5.2", "Cannot decode the user name")),
            },
            Step::LoginPassword(user) => match decode_base64(text) {
                Some(password) => self.attempt(user, password),
                None => self.auth_failed_syntax(out, Reply::new(501, "5.5.2", "Cannot decode the password")),
            },
        }
    }

    fn attempt(&mut self, user: String, password: Vec<u8>) -> Option<Event> {
        self.state = State::Command(Default::default());
        Some(Event::Auth(AuthAttempt { user, password }))
    }

    fn auth_failed_syntax(&mut self, out: &mut Vec<u8>, reply: Reply) -> Option<Event> {
        self.state = State::Command(Default::default());
        self.error(out, reply)
    }

    /// The driver's verdict on an [`Event::Auth`]: `235`, or `535` (closing after
    /// [`MAX_AUTH_FAILURES`]).
    pub(crate) fn auth_finished(&mut self, user: Option<String>, out: &mut Vec<u8>) -> Option<Event> {
        match user {
            Some(user) => {
                self.conn.user = Some(user);
                Reply::new(235, "2.7.0", "Authentication successful").write_to(out);
                None
            }
            None => {
                self.conn.auth_failures += 1;
                if self.conn.auth_failures >= MAX_AUTH_FAILURES {
                    self.metrics.rejected(Reject::Auth);
                    Reply::new(535, "5.7.8", "Authentication credentials invalid").write_to(out);
                    Reply::new(421, "4.7.0", format!("{} Too many failed authentications, closing", self.cfg.hostname))
                        .write_to(out);
                    return Some(Event::Close);
                }
                self.error(out, Reply::new(535, "5.7.8", "Authentication credentials invalid"))
            }
        }
    }

    /// How long to wait before answering the next failed AUTH.
    pub(crate) fn auth_failure_delay(&self) -> Duration {
        AUTH_FAILURE_DELAY * (self.conn.auth_failures + 1)
    }
}
