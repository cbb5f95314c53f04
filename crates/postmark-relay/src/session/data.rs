//! DATA: receiving the message within the size limit, then validating and spooling it.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::reply::Reply;
use super::{Event, Protocol, State};
use crate::convert::ConvertOptions;
use crate::delivery::handoff::{Budget, Fresh, Queued};
use crate::envelope::{Envelope, Via};
use crate::metrics::{Metrics, Reject};
use crate::policy::Policy;
use crate::spool::{Committer, Header, Prepared, QueueId, Spool, StoreError, StoredMessage};
use crate::validate;

impl Protocol {
    /// `DATA`: needs a sender and at least one recipient.
    pub(super) fn data(&mut self, out: &mut Vec<u8>) -> Option<Event> {
        match &self.tx {
            None => self.error(out, Reply::new(503, "5.5.1", "Send MAIL FROM first")),
            // RFC 5321 §3.3 allows 503 or 554 here; 503 says "send RCPT first" (RFC 2920 §3.1).
            Some(tx) if tx.rcpt_to.is_empty() => {
                self.error(out, Reply::new(503, "5.5.1", "No valid recipients, send RCPT TO first"))
            }
            Some(_) => {
                self.state = State::Data(DataReader::new(self.cfg.max_message_size));
                Reply::plain(354, "End data with <CR><LF>.<CR><LF>").write_to(out);
                None
            }
        }
    }

    /// Feeds message bytes; at the end of the message yields it (or answers `552 5.3.4` if it
    /// was over the size limit).
    pub(super) fn data_bytes(&mut self, bytes: &mut std::slice::Iter<'_, u8>, out: &mut Vec<u8>) -> Option<Event> {
        let State::Data(reader) = &mut self.state else {
            return None;
        };
        let mut input = bytes.as_slice();
        let done = reader.feed(&mut input);
        *bytes = input.iter();
        if !done {
            return Some(Event::NeedInput);
        }
        let limit = self.cfg.max_message_size;
        let raw = reader.take();
        let tx = self.tx.take().unwrap_or_default();
        self.reset_after_message();
        match raw {
            Ok(raw) => Some(Event::Message(Envelope { mail_from: tx.mail_from, rcpt_to: tx.rcpt_to }, raw)),
            Err(Refusal::TooBig) => {
                self.metrics.rejected(Reject::Size);
                Reply::new(552, "5.3.4", format!("Message size exceeds fixed maximum message size of {limit} bytes"))
                    .write_to(out);
                None
            }
        }
    }
}

/// Where the reader is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Inside a line.
    Text,
    /// Just after a CR inside a line.
    Cr,
    /// At the start of a line (after CRLF, or at the start of the data).
    LineStart,
    /// After a dot that started a line.
    Dot,
    /// After a line-initial dot and a CR.
    DotCr,
}

/// Reads the message after `DATA` (RFC 5321 §4.1.1.4 and §4.5.2), sans I/O.
///
/// * The data ends only at a line that is exactly `.`: `CRLF "." CRLF` (or `"." CRLF` as the very
///   first line). A bare LF or CR never starts or ends a line here, so `LF.LF`, `CR.CR`,
///   `CRLF.LF` and `CRLF.CR CR LF` are message content, which closes the SMTP smuggling
///   variants.
/// * A dot that starts a line (after CRLF) is removed (dot-unstuffing); nothing else changes.
/// * The CRLF before the final dot belongs to the message, so a stored message ends in CRLF.
/// * At most `limit` bytes are ever buffered: a message that grows past the limit is dropped at
///   once and the rest is read to its end without being kept.
/// * Lines of any length are taken (RFC 5322 §2.1.1 limits them to 998 octets, but minified
///   HTML and clients that never wrap send longer ones, and Postfix takes them): the size limit
///   is the only bound, so a single 100 MB line costs no more memory than the limit. The SMTP
///   path re-encodes the parts that hold such lines before they go upstream
///   ([`crate::repair`]).
#[derive(Debug)]
pub(crate) struct DataReader {
    position: Position,
    buf: Vec<u8>,
    limit: usize,
    /// Octets of the message so far (also once it is no longer kept).
    size: usize,
}

/// Why a message was read to its end but not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Over the size limit: `552 5.3.4`.
    TooBig,
}

impl DataReader {
    /// A reader for one message of at most `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self { position: Position::LineStart, buf: Vec::new(), limit, size: 0 }
    }

    /// Bytes of memory held for the message so far.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    /// The message once [`DataReader::feed`] returned true, or why it was not kept.
    pub(crate) fn take(&mut self) -> Result<Vec<u8>, Refusal> {
        if self.size > self.limit { Err(Refusal::TooBig) } else { Ok(std::mem::take(&mut self.buf)) }
    }

    fn push(&mut self, bytes: &[u8]) {
        let refused = self.size > self.limit;
        self.size = self.size.saturating_add(bytes.len());
        if refused {
            return;
        }
        let len = self.buf.len();
        if self.size > self.limit {
            self.buf = Vec::new();
            return;
        }
        if self.buf.capacity() < len + bytes.len() {
            // Grow by doubling, but never past the limit.
            let wanted = (self.buf.capacity() * 2).max(len + bytes.len()).max(8 * 1024).min(self.limit);
            self.buf.reserve_exact(wanted - len);
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Consumes bytes from `input` up to and including the terminating line; returns true when
    /// the message is complete (the rest of `input` is left for the command parser).
    pub(crate) fn feed(&mut self, input: &mut &[u8]) -> bool {
        while let Some((&b, rest)) = input.split_first() {
            match self.position {
                Position::Text => {
                    // Copy up to and including the next CR in one go.
                    match memchr::memchr(b'\r', input) {
                        Some(p) => {
                            let (line, tail) = input.split_at(p + 1);
                            self.push(line);
                            *input = tail;
                            self.position = Position::Cr;
                        }
                        None => {
                            self.push(input);
                            *input = &[];
                        }
                    }
                    continue;
                }
                Position::Cr => {
                    self.push(&[b]);
                    self.position = match b {
                        b'\n' => Position::LineStart,
                        b'\r' => Position::Cr,
                        _ => Position::Text,
                    };
                }
                Position::LineStart => {
                    if b == b'.' {
                        self.position = Position::Dot;
                    } else {
                        self.push(&[b]);
                        self.position = if b == b'\r' { Position::Cr } else { Position::Text };
                    }
                }
                Position::Dot => {
                    if b == b'\r' {
                        self.position = Position::DotCr;
                    } else {
                        self.push(&[b]);
                        self.position = Position::Text;
                    }
                }
                Position::DotCr => {
                    *input = rest;
                    if b == b'\n' {
                        self.position = Position::LineStart;
                        return true;
                    }
                    // Not the end: the dot was stuffing, the CR is content.
                    self.push(b"\r");
                    self.push(&[b]);
                    self.position = if b == b'\r' { Position::Cr } else { Position::Text };
                    continue;
                }
            }
            *input = rest;
        }
        false
    }
}

/// What a session does with a received message: validate it, write it to the spool, wake the
/// delivery worker, and produce the reply.
#[derive(Debug)]
pub struct Acceptor {
    committer: Committer,
    via: Via,
    convert: Arc<ConvertOptions>,
    queued: mpsc::UnboundedSender<Queued>,
    metrics: Arc<Metrics>,
    policy: Arc<Policy>,
    handoff: Arc<Budget>,
}

impl Acceptor {
    /// An acceptor storing into `spool` (through a group committer it starts), validating for
    /// delivery `via` (with the conversion settings the delivery will use), and announcing new
    /// messages on `queued`. Fails only if the committer's threads cannot be started.
    pub fn new(
        spool: Arc<Spool>,
        via: Via,
        convert: ConvertOptions,
        queued: mpsc::UnboundedSender<Queued>,
    ) -> std::io::Result<Self> {
        let committer = Committer::start(spool)?;
        Ok(Self {
            committer,
            via,
            convert: Arc::new(convert),
            queued,
            metrics: Arc::default(),
            policy: Arc::default(),
            handoff: Arc::default(),
        })
    }

    /// Hands new messages to the delivery worker in memory within `budget` (see
    /// [`crate::delivery::handoff`]; by default within a budget of its own).
    pub fn with_handoff(mut self, budget: Arc<Budget>) -> Self {
        self.handoff = budget;
        self
    }

    /// Applies `policy` (aliases, sender policy, routes) to every message.
    pub fn with_policy(mut self, policy: Arc<Policy>) -> Self {
        self.policy = policy;
        self
    }

    /// The policy applied.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Records into `metrics` (by default into a registry of its own that nobody reads).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The registry sessions record into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Validates and stores one message; the reply is `250` only once the message is on disk.
    pub async fn accept(&self, envelope: Envelope, raw: Vec<u8>) -> Reply {
        self.accept_from(envelope, raw, None).await
    }

    /// [`Acceptor::accept`] for a client that authenticated as `user` (routes may depend on it).
    pub async fn accept_from(&self, envelope: Envelope, raw: Vec<u8>, user: Option<String>) -> Reply {
        let size = raw.len();
        let recipients = envelope.rcpt_to.len();
        let via = self.via;
        let convert = Arc::clone(&self.convert);
        let policy = Arc::clone(&self.policy);
        // Parsing, hashing and writing the message's file; then it joins the next group commit.
        let spool = Arc::clone(self.committer.spool());
        let (from, to) = (crate::logging::from_field(&envelope), crate::logging::to_field(&envelope));
        let handoff = Arc::clone(&self.handoff);
        let prepare = move || -> Result<Checked, Outcome> {
            // While the worker has room for it (and the spool can take files, should it need
            // one), the message is handed over in memory, with its requests built here once (see
            // crate::delivery::handoff).
            // A message becomes one request per group of 50 recipients, or per recipient when
            // all are hidden: each a copy of the converted message.
            let copies = envelope.rcpt_to.len().max(1);
            let build = spool.files_ok() && handoff.has_room(size.saturating_mul(2 + copies));
            let (mut accepted, mut raw) = check(raw, &envelope, user.as_deref(), via, &convert, &policy, build)
                .map_err(|(reply, reason)| Outcome::Rejected(reply, reason))?;
            let routing = accepted.routing.clone();
            let requests = accepted.requests.take();
            let header = Header::new(envelope, &raw).with_routing(accepted.routing);
            let reservation = if build {
                // Held until delivery: no more than the message needs (the DATA buffer grows by
                // doubling; shrinking it in place copies nothing).
                raw.shrink_to_fit();
                handoff.reserve(raw.capacity() + requests.as_deref().map_or(0, crate::delivery::handoff::heap_bytes))
            } else {
                None
            };
            let kept = reservation.map(|r| (header.clone(), requests, r));
            // A message the worker gets in memory needs no file of its own unless its delivery
            // is not over before the journal's checkpoint (see crate::spool::unwritten).
            let prepared =
                if kept.is_some() { spool.prepare_unwritten(header, raw) } else { spool.prepare(header, raw) }
                    .map_err(Outcome::Spool)?;
            Ok(Checked { prepared, routing, kept })
        };
        // A small message takes tens of microseconds: handing it to the blocking pool and back
        // (two thread wake-ups) would cost more than the work, so it is done right here. Bigger
        // ones go to the blocking pool, so that they never hold up other sessions.
        let checked =
            if size <= INLINE_PREPARE_BYTES { Ok(prepare()) } else { tokio::task::spawn_blocking(prepare).await };
        let mut routing = crate::envelope::Routing::default();
        let mut kept = None;
        let result = match checked {
            Ok(Ok(checked)) => {
                routing = checked.routing;
                kept = checked.kept;
                Ok(self.committer.commit_keeping(checked.prepared).await.map_err(Outcome::Spool))
            }
            Ok(Err(outcome)) => Ok(Err(outcome)),
            Err(join) => Err(join),
        };
        match result {
            Ok(Ok((id, raw))) => {
                tracing::info!(
                    event = "accepted",
                    queue_id = %id,
                    size,
                    recipients,
                    stream = crate::logging::stream_field(routing.stream.as_deref()),
                    route = crate::logging::route_field(routing.route.as_deref()),
                    path = crate::logging::path_field(via),
                    from,
                    to,
                    "queued"
                );
                self.metrics.accepted(size);
                let reply = Reply::new(250, "2.0.0", format!("Ok: queued as {id}"));
                let fresh = kept.map(|(header, requests, reservation)| {
                    Fresh::new(StoredMessage { id: id.clone(), header, raw }, requests, reservation)
                });
                let _ = self.queued.send(Queued { id, fresh });
                reply
            }
            Ok(Err(Outcome::Rejected(reply, reason))) => {
                tracing::info!(size, recipients, reply = %reply, "rejected at end of DATA");
                self.metrics.rejected(reason);
                reply
            }
            Ok(Err(Outcome::Spool(StoreError::Full(e)))) => {
                tracing::error!(size, recipients, error = %e, "spool full; message refused with 452");
                self.metrics.rejected(Reject::SpoolFull);
                Reply::new(452, "4.3.1", "Insufficient system storage, try again later")
            }
            Ok(Err(Outcome::Spool(StoreError::Io(e)))) => {
                tracing::error!(size, recipients, error = %e, "spool write failed; message refused with 451");
                self.metrics.rejected(Reject::SpoolError);
                Reply::new(451, "4.3.0", "Local error writing the message, try again later")
            }
            Err(join) => {
                tracing::error!(size, recipients, error = %join, "spool task failed; message refused with 451");
                self.metrics.rejected(Reject::SpoolError);
                Reply::new(451, "4.3.0", "Local error writing the message, try again later")
            }
        }
    }
}

impl Acceptor {
    /// Imports one message `sendmail` left in the maildrop (see [`crate::spool::maildrop`]):
    /// the same checks and policy as a message received over SMTP, stored under the id it was
    /// dropped with. `sendmail` checked it before exiting 0, so a refusal here means the
    /// configuration changed meanwhile: the message becomes a dead letter with the reason, never
    /// lost. Returns once the message is durable in the spool (the drop file may then go).
    pub async fn import_dropped(&self, id: QueueId, envelope: Envelope, raw: Vec<u8>) -> std::io::Result<()> {
        let via = self.via;
        let convert = Arc::clone(&self.convert);
        let policy = Arc::clone(&self.policy);
        let spool = Arc::clone(self.committer.spool());
        let metrics = Arc::clone(&self.metrics);
        let queued = self.queued.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let size = raw.len();
            let recipients = envelope.rcpt_to.len();
            let mail_from = envelope.mail_from.clone();
            let envelope = Envelope { mail_from: policy.sender(&mail_from).unwrap_or(mail_from), ..envelope };
            match check(raw.clone(), &envelope, None, via, &convert, &policy, false) {
                Ok((accepted, raw)) => {
                    let header = Header::new(envelope, &raw).with_routing(accepted.routing);
                    let new = spool.store_as(&id, &header, &raw).map_err(StoreError::into_io)?;
                    if new {
                        tracing::info!(queue_id = %id, size, recipients, "queued from the maildrop (sendmail)");
                        metrics.accepted(size);
                        let _ = queued.send(Queued::from(id));
                    }
                }
                Err((reply, reason)) => {
                    let header = Header::new(envelope, &raw);
                    if spool.store_as(&id, &header, &raw).map_err(StoreError::into_io)? {
                        let why = format!("refused when imported from the maildrop: {reply}");
                        tracing::warn!(queue_id = %id, size, recipients, reply = %reply, "maildrop message refused; kept as a dead letter");
                        metrics.rejected(reason);
                        spool.kill(
                            &id,
                            &crate::spool::DeadReason { reason: why, dead_ms: crate::clock::now_ms(), attempts: 0, recipients: Vec::new() },
                        )?;
                    }
                }
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Messages up to this size are checked and written on the session's own thread.
const INLINE_PREPARE_BYTES: usize = 16 * 1024;

enum Outcome {
    Rejected(Reply, Reject),
    Spool(StoreError),
}

/// A message checked and written, waiting for its commit.
struct Checked {
    prepared: Prepared,
    routing: crate::envelope::Routing,
    /// What is handed to the worker in memory, when the budget had room.
    kept:
        Option<(Header, Option<Vec<postmark_server::types::SendEmailRequest>>, crate::delivery::handoff::Reservation)>,
}

/// Accept-time checks: the sender policy (which may rewrite the message and picks its route),
/// then what Postmark would reject for the message's own shape; refusals are answered with a 5xx
/// at the end of DATA. Returns the decision and the bytes to store; with `build`, on the API
/// path, the requests too (see [`validate::validate_and_convert`]).
pub(crate) fn check(
    raw: Vec<u8>,
    envelope: &Envelope,
    user: Option<&str>,
    via: Via,
    convert: &ConvertOptions,
    policy: &Policy,
    build: bool,
) -> Result<(validate::Accepted, Vec<u8>), (Reply, Reject)> {
    let decision = policy
        .message(&raw, &envelope.mail_from, user, crate::clock::now_ms())
        .map_err(|r| (Reply::from(&r), Reject::Policy))?;
    let raw = decision.raw.unwrap_or(raw);
    let routed;
    let convert = match decision.stream {
        Some(stream) => {
            routed = ConvertOptions { message_stream: Some(stream), ..convert.clone() };
            &routed
        }
        None => convert,
    };
    let validate = if build { validate::validate_and_convert } else { validate::validate };
    let mut accepted =
        validate(&raw, envelope, via, convert).map_err(|r| (Reply::new(r.code, r.enhanced, r.text), r.reason))?;
    accepted.routing.route = decision.route;
    let raw = accepted.repaired.take().unwrap_or(raw);
    Ok((accepted, raw))
}
