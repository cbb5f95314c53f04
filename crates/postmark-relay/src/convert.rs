//! MIME message → Postmark `/email` request (the `--via api` path).
//!
//! The message is parsed once with mail-parser 0.11 and mapped field by field:
//!
//! | Postmark field | Taken from |
//! |---|---|
//! | `From` | the first valid address of the `From` header, display name kept and re-quoted per RFC 5322; without one, the envelope sender (`MAIL FROM`); without either, [`ConvertError::NoSender`] |
//! | `To`, `Cc` | the `To`/`Cc` headers (groups flattened), display names kept, **restricted to the envelope** (see below) |
//! | `Bcc` | envelope recipients that no `To`/`Cc` mailbox names |
//! | `Subject` | the decoded `Subject` header; absent when the message has none |
//! | `TextBody`, `HtmlBody` | the real `text/plain` and `text/html` body parts (never a text↔HTML conversion mail-parser can offer), charset- and transfer-decoded; several body parts of one kind (e.g. a mailing-list footer after a `multipart/alternative`) are joined in order with a line break; a message with neither (only attachments) gets an empty `TextBody`, since Postmark requires one of the two |
//! | `ReplyTo` | the `Reply-To` header |
//! | `Headers` | every other top-level header, value unfolded but otherwise as sent (encoded words stay encoded), including `Message-ID`, `In-Reply-To`, `References`, `List-Unsubscribe` |
//! | `Attachments` | every other leaf part: `Name` from `Content-Disposition: filename` or `Content-Type: name` (RFC 2231 and RFC 2047 decoded), `ContentType` with its parameters (charset, method…) but without `name`, `Content` = base64 of the transfer-decoded bytes (text parts keep their original charset), `ContentID` = `cid:<id>` when the HTML body refers to the part's Content-ID |
//! | `MessageStream`, `Tag`, `Metadata`, `TrackOpens`, `TrackLinks` | `X-PM-Message-Stream` (else [`ConvertOptions::message_stream`]), `X-PM-Tag`, `X-PM-Metadata-<key>` (key spelled as in the header), `X-PM-TrackOpens` (`true`/`false`), `X-PM-TrackLinks` (`None`/`HtmlAndText`/`HtmlOnly`/`TextOnly`), values RFC 2047-decoded, case-insensitive, the first of duplicates wins (the hyphenated spellings `X-PM-Track-Opens`/`-Links` are accepted too); these headers are removed from `Headers`. Other values are [`ConvertError::InvalidHeader`] |
//!
//! **Headers Postmark writes itself are not copied:** `From`, `To`, `Cc`, `Bcc`, `Subject`,
//! `Reply-To`, `Date`, `MIME-Version`, every `Content-*` header, `Received` and `Return-Path`
//! (trace fields belong to the hop that adds them). `DKIM-Signature` and the `ARC-*` set are
//! dropped too: Postmark re-encodes the body, so an upstream signature could only fail, and
//! Postmark signs with the sender's domain key. `X-PM-KeepID` is dropped because the API path
//! always passes the original `Message-ID` on (it is an SMTP-path instruction). Other `X-PM-*`
//! headers (e.g. the test-only `X-PM-Bounce-Type`) pass through unchanged.
//!
//! **Parts:** `message/rfc822` (and `message/global`) parts become attachments holding the
//! inner message byte for byte, named `<name>.eml` or `forwarded-message.eml`. A `text/calendar`
//! part without a name becomes `invite.ics`. A `text/plain` or `text/html` part that carries a
//! file name is an attachment, not a body. Other unnamed parts are called `attachment-N` plus an
//! extension for well-known types (never `.bin`, which Postmark refuses).
//!
//! **The envelope rule.** Postmark delivers to every address in `To`, `Cc` and `Bcc`, and that
//! set must equal the SMTP envelope (`RCPT TO`) exactly. Addresses are compared with the domain
//! in lower case and the local part as written.
//! * Envelope recipients that no `To`/`Cc` mailbox names are added as `Bcc`.
//! * A `To`/`Cc` mailbox that is not in the envelope is **left out** of `To`/`Cc`: this
//!   transaction did not address it (an MTA splitting a message by domain, or a client sending
//!   the recipients beyond the 50th in a second transaction, delivers it in another copy).
//!   Because recipients would otherwise lose sight of who else the message was written to, the
//!   original header text is kept in the custom header `X-Relay-Original-To` /
//!   `X-Relay-Original-Cc` (only when something was left out).
//! * An address named twice (in `To` and `Cc`) keeps only its first place, so it gets one copy.
//! * A `To`/`Cc` mailbox that matches an envelope recipient only when the local part's case is
//!   ignored (`To: Ann <Ann@example.org>`, `RCPT TO:<ann@example.org>`) is that recipient: it
//!   keeps its display name and takes the envelope's spelling.
//!
//! **More than 50 recipients** (Postmark's limit on `To` + `Cc` + `Bcc`): the recipients, in the
//! order `To`, `Cc`, `Bcc`, are cut into groups of at most [`MAX_RECIPIENTS`], one request each
//! (a group of hidden recipients only: one request per recipient, Postmark needing a `To`). A hidden recipient only ever travels in a request's `Bcc` (or alone in its
//! `To`), so nobody learns it; a request that carries only part of the original `To` or `Cc`
//! keeps the full header text in `X-Relay-Original-To` / `X-Relay-Original-Cc`.

mod address;
pub(crate) mod attachment;
pub(crate) mod body;
pub(crate) mod controls;
mod flowed;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::LazyLock;

use base64::Engine as _;
use mail_parser::{Header, HeaderName, HeaderValue, Message, MessageParser, PartType};

use self::controls::raw_value;
use postmark_core::limits::is_valid_address;

use self::address::Mailbox;
pub(crate) use self::address::display_name as quote_display_name;
pub(crate) use self::address::with_a_label;
pub use self::body::DEFAULT_EMPTY_BODY_TEXT;
pub use crate::envelope::Envelope;
pub use postmark_core::limits::{FORBIDDEN_EXTENSIONS, forbidden_extension};
pub use postmark_server::types::{EmailAttachment, MessageHeader, SendEmailRequest, TrackLinks};

/// Postmark's limit on To + Cc + Bcc addresses per message.
pub const MAX_RECIPIENTS: usize = 50;

/// Settings of the conversion that come from the relay's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertOptions {
    /// `--message-stream`: the stream used when the message has no `X-PM-Message-Stream`
    /// header. `None` leaves the choice to Postmark (its default transactional stream).
    pub message_stream: Option<String>,
    /// `empty_body_text`: the `TextBody` of a message with no text or HTML body of its own
    /// (`{attachments}` becomes the attachments' names); `None` uses
    /// [`DEFAULT_EMPTY_BODY_TEXT`].
    pub empty_body_text: Option<String>,
}

/// Why a message cannot become a Postmark request.
///
/// The texts are meant for the SMTP client and the log: they never contain addresses or
/// message content, only header values of the `X-PM-*` control headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// No header section could be found.
    #[error("the message has no header section")]
    Unparseable,
    /// Neither a valid From header nor an envelope sender.
    #[error("no usable sender: the message has no valid From address and the envelope sender is empty")]
    NoSender,
    /// The envelope has no recipient.
    #[error("the message has no envelope recipients")]
    NoRecipients,
    /// An `X-PM-*` control header has a value Postmark would refuse.
    #[error("invalid {header} header value {value:?}: expected {expected}")]
    InvalidHeader {
        /// The header's name.
        header: &'static str,
        /// The value as sent (shortened to 100 characters).
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
}

/// The parser: minimal structured headers, every other header decoded as text (so encoded
/// words in `X-PM-Tag` and `X-PM-Metadata-*` are decoded). `default_header_text` only takes
/// effect when the header map is non-empty, which `with_minimal_headers` guarantees.
static PARSER: LazyLock<MessageParser> =
    LazyLock::new(|| MessageParser::new().with_minimal_headers().default_header_text());

/// Parses `raw` the way the converter and the validator need it; `None` when it has no header
/// section at all, or when the parser panics.
///
/// mail-parser 0.11.9 has a `debug_assert!` (parsers/message.rs:485, "Invalid part ID, could not
/// find multipart") that crafted MIME structure reaches: the `convert` fuzz target found it with a
/// part header block after the closing boundary of a multipart holding a `message/rfc822` part
/// (see `a_parser_panic_makes_the_message_unparseable` in the tests). Release builds skip the
/// assertion and recover; a debug build panics. Any panic of the parser counts as "unparseable",
/// so the client gets a permanent `554 5.6.0` instead of a `451` it would retry for ever.
pub fn parse(raw: &[u8]) -> Option<Message<'_>> {
    // The parser is immutable and `raw` only borrowed: nothing is left half-updated by a panic.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| PARSER.parse(raw))).ok().flatten()
}

/// Converts one message with its envelope into Postmark send requests (see [`convert`]).
pub fn to_postmark(
    raw: &[u8],
    envelope: &Envelope,
    opts: &ConvertOptions,
) -> Result<Vec<SendEmailRequest>, ConvertError> {
    let message = parse(raw).ok_or(ConvertError::Unparseable)?;
    convert(&message, envelope, opts)
}

/// The requests of one message, built one by one as they are taken (see [`Requests`]).
pub fn requests(raw: &[u8], envelope: &Envelope, opts: &ConvertOptions) -> Result<Requests, ConvertError> {
    let message = parse(raw).ok_or(ConvertError::Unparseable)?;
    let (request, routed, _) = convert_one(&message, envelope, opts, true)?;
    Ok(plan(request, routed, true))
}

/// Converts an already parsed message (see [`parse`]).
///
/// Usually one request. Postmark requires `To`; when the message names none of its envelope
/// recipients in `To` or `Cc` (only `Bcc`, `To: undisclosed-recipients:;`), listing them in `To`
/// would show them to each other, so there is one request per recipient, each addressed `To`
/// that recipient alone (as each of them would have seen it from a mail server delivering to
/// them). When only `Cc` names recipients, `Cc` becomes `To`.
pub fn convert(
    message: &Message<'_>,
    envelope: &Envelope,
    opts: &ConvertOptions,
) -> Result<Vec<SendEmailRequest>, ConvertError> {
    let (request, routed, _) = convert_one(message, envelope, opts, true)?;
    Ok(split(request, routed, true))
}

/// A request as [`measure`] builds it: attachment contents left empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The request, every attachment's `Content` empty.
    pub request: SendEmailRequest,
    /// The length the attachments' base64 contents would add to the JSON (base64 needs no JSON
    /// escaping, so the sum is exact).
    pub content_len: usize,
}

/// What [`convert`] would produce, without base64-encoding the attachments: for checking
/// Postmark's limits at accept time, where the request itself is not needed. Of the copies sent
/// one per hidden recipient, only the largest is measured.
pub fn measure(
    message: &Message<'_>,
    envelope: &Envelope,
    opts: &ConvertOptions,
) -> Result<Vec<Measured>, ConvertError> {
    let (request, routed, content_len) = convert_one(message, envelope, opts, false)?;
    let requests = split(request, routed, false);
    Ok(requests.into_iter().map(|request| Measured { request, content_len }).collect())
}

/// Every text of `request` (addresses, subject, bodies, headers, metadata, attachment names
/// and types), without the attachments' base64 contents: what JSON escaping applies to.
pub fn request_texts(request: &SendEmailRequest) -> impl Iterator<Item = &str> {
    let r = request;
    let single = [&r.cc, &r.bcc, &r.subject, &r.reply_to, &r.tag, &r.text_body, &r.html_body, &r.message_stream];
    [r.from.as_str(), r.to.as_str()]
        .into_iter()
        .chain(single.into_iter().filter_map(|t| t.as_deref()))
        .chain(r.headers.iter().flat_map(|h| [h.name.as_str(), h.value.as_str()]))
        .chain(r.metadata.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]))
        .chain(r.attachments.iter().flat_map(|a| {
            [Some(a.name.as_str()), Some(a.content_type.as_str()), a.content_id.as_deref()].into_iter().flatten()
        }))
}

/// The requests for `request`'s recipients: groups of at most [`MAX_RECIPIENTS`] (see the module
/// documentation), each given a `To` by [`address_to`]. Without `every_copy` (for measuring),
/// of the copies a group sends one per hidden recipient only the largest is made: they differ
/// in nothing else, and a thousand hidden recipients then cost no thousand copies.
fn split(request: SendEmailRequest, routed: Routing, every_copy: bool) -> Vec<SendEmailRequest> {
    plan(request, routed, every_copy).collect()
}

/// How [`split`] addresses each request, built only when taken (see [`Requests`]).
fn plan(mut request: SendEmailRequest, routed: Routing, every_copy: bool) -> Requests {
    let Routing { routed, original_to, original_cc } = routed;
    (request.to, request.cc, request.bcc) = (String::new(), None, None);
    let mut plan = VecDeque::new();
    let total = routed.to.len() + routed.cc.len() + routed.bcc.len();
    if total <= MAX_RECIPIENTS {
        let (to, cc) = (join(&routed.to), non_empty(join(&routed.cc)));
        address_to(&mut plan, to, cc, routed.bcc, Vec::new(), every_copy);
        return Requests { base: Some(request), plan };
    }
    let (mut to, mut cc, mut bcc) = (&routed.to[..], &routed.cc[..], &routed.bcc[..]);
    while !(to.is_empty() && cc.is_empty() && bcc.is_empty()) {
        let mut room = MAX_RECIPIENTS;
        let chunk_to = take_up_to(&mut to, &mut room);
        let chunk_cc = take_up_to(&mut cc, &mut room);
        let chunk_bcc = take_up_to(&mut bcc, &mut room).to_vec();
        let mut headers = Vec::new();
        if !routed.to_shortened && chunk_to.len() < routed.to.len() {
            headers.push(MessageHeader { name: "X-Relay-Original-To".into(), value: original_to.clone() });
        }
        if !routed.cc_shortened && chunk_cc.len() < routed.cc.len() {
            headers.push(MessageHeader { name: "X-Relay-Original-Cc".into(), value: original_cc.clone() });
        }
        address_to(&mut plan, join(chunk_to), non_empty(join(chunk_cc)), chunk_bcc, headers, every_copy);
    }
    Requests { base: Some(request), plan }
}

/// How one request of a message is addressed, and the headers only it carries.
#[derive(Debug, Clone)]
struct Addressing {
    to: String,
    cc: Option<String>,
    bcc: Option<String>,
    headers: Vec<MessageHeader>,
}

/// A message's requests (see [`convert`]), each built from the converted message when it is
/// taken: a message to a thousand hidden recipients is a thousand requests, of which delivery
/// holds only the batch it is sending.
#[derive(Debug)]
pub struct Requests {
    /// The converted message, not addressed; the last request takes it.
    base: Option<SendEmailRequest>,
    plan: VecDeque<Addressing>,
}

impl Requests {
    /// How many requests are built now: the converted message, until the last is taken.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        usize::from(self.base.is_some())
    }
}

impl Iterator for Requests {
    type Item = SendEmailRequest;

    fn next(&mut self) -> Option<SendEmailRequest> {
        let Addressing { to, cc, bcc, headers } = self.plan.pop_front()?;
        let mut request = if self.plan.is_empty() { self.base.take()? } else { self.base.clone()? };
        (request.to, request.cc, request.bcc) = (to, cc, bcc);
        request.headers.extend(headers);
        Some(request)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.plan.len(), Some(self.plan.len()))
    }

    /// Skips `n` requests without building them.
    fn nth(&mut self, n: usize) -> Option<SendEmailRequest> {
        self.plan.drain(..n.min(self.plan.len()));
        self.next()
    }
}

impl ExactSizeIterator for Requests {}

/// The first `room` items of `list` (at most), taken off it; `room` shrinks by as many.
fn take_up_to<'a, T>(list: &mut &'a [T], room: &mut usize) -> &'a [T] {
    let (head, tail) = list.split_at((*room).min(list.len()));
    *room -= head.len();
    *list = tail;
    head
}

/// The envelope recipients `request` delivers to (its `To`, `Cc` and `Bcc`), each spelled as in
/// `envelope` (compared as the conversion compares them): what delivery records per request
/// when a message went out as several.
pub fn request_recipients(request: &SendEmailRequest, envelope: &Envelope) -> Vec<String> {
    let fields = [Some(&request.to), request.cc.as_ref(), request.bcc.as_ref()];
    let mut header = Vec::new();
    for (name, value) in ["To", "Cc", "Bcc"].iter().zip(fields) {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            header.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
    }
    header.extend_from_slice(b"\r\n");
    let Some(parsed) = parse(&header) else { return Vec::new() };
    let rcpt = address::unique(&envelope.rcpt_to);
    parsed
        .root_part()
        .headers()
        .iter()
        .flat_map(mailboxes)
        .map(|m| address::envelope_spelling(&m.address, &rcpt).unwrap_or(m.address))
        .collect()
}

/// Adds the requests of one group to `plan`, making sure each has a `To` (see [`convert`]);
/// `hidden` are the `Bcc` recipients. Without `every_copy`, only the copy for the longest hidden
/// address (see [`split`]).
fn address_to(
    plan: &mut VecDeque<Addressing>,
    to: String,
    cc: Option<String>,
    mut hidden: Vec<String>,
    headers: Vec<MessageHeader>,
    every_copy: bool,
) {
    let bcc = non_empty(hidden.join(", "));
    if !to.is_empty() {
        return plan.push_back(Addressing { to, cc, bcc, headers });
    }
    if let Some(cc) = cc {
        return plan.push_back(Addressing { to: cc, cc: None, bcc, headers });
    }
    if !every_copy && let Some(longest) = hidden.iter().max_by_key(|a| a.len()).cloned() {
        hidden = vec![longest];
    }
    plan.extend(hidden.into_iter().map(|to| Addressing { to, cc: None, bcc: None, headers: headers.clone() }));
}

/// The recipients of a request before [`split`]: the envelope rule's result and the original
/// `To` and `Cc` header texts.
struct Routing {
    routed: address::Routed,
    original_to: String,
    original_cc: String,
}

/// The request before [`split`] (recipients not filled in), its recipients, and (without
/// `encode`, when the attachments' contents are left empty) their base64 length.
fn convert_one(
    message: &Message<'_>,
    envelope: &Envelope,
    opts: &ConvertOptions,
    encode: bool,
) -> Result<(SendEmailRequest, Routing, usize), ConvertError> {
    let rcpt = address::unique(&envelope.rcpt_to);
    if rcpt.is_empty() {
        return Err(ConvertError::NoRecipients);
    }
    let from = sender(message, envelope)?;
    let raw = message.raw_message();
    let top = message.root_part().headers();

    let mut to_header = Vec::new();
    let mut cc_header = Vec::new();
    let mut reply_to = Vec::new();
    for header in top {
        match header.name {
            HeaderName::To => to_header.extend(mailboxes(header)),
            HeaderName::Cc => cc_header.extend(mailboxes(header)),
            HeaderName::ReplyTo => reply_to.extend(mailboxes(header)),
            _ => {}
        }
    }
    let routed = address::route(to_header, cc_header, &rcpt);
    // Postmark refuses the whole message for one Reply-To address it cannot parse; keep the
    // valid ones and the original text in a header of its own.
    let reply_to_count = reply_to.len();
    reply_to.retain(|m| is_valid_address(&m.address));

    let mut request = SendEmailRequest {
        from: from.to_from_value(),
        to: String::new(),
        cc: None,
        bcc: None,
        subject: message.subject().map(str::to_owned),
        reply_to: non_empty(join(&reply_to)),
        tag: None,
        text_body: None,
        html_body: None,
        headers: Vec::new(),
        track_opens: None,
        track_links: None,
        metadata: Default::default(),
        attachments: Vec::new(),
        message_stream: None,
    };

    let controls = controls::read(top, raw)?;
    copy_headers(top, raw, &mut request);
    request.tag = controls.tag;
    request.track_opens = controls.track_opens;
    request.track_links = controls.track_links;
    request.metadata = controls.metadata;
    if routed.to_shortened {
        push_original(&mut request, "X-Relay-Original-To", top, raw, &HeaderName::To);
    }
    if routed.cc_shortened {
        push_original(&mut request, "X-Relay-Original-Cc", top, raw, &HeaderName::Cc);
    }
    if reply_to.len() < reply_to_count || top.iter().any(|h| h.name == HeaderName::ReplyTo && mailboxes(h).is_empty()) {
        push_original(&mut request, "X-Relay-Original-Reply-To", top, raw, &HeaderName::ReplyTo);
    }
    request.message_stream = controls.message_stream.or_else(|| opts.message_stream.clone());

    let mut body = body::bodies(message);
    let html_lower = body.html.as_deref().map(str::to_ascii_lowercase);

    let mut unnamed = 0;
    let mut content_len = 0;
    for (id, part) in message.parts.iter().enumerate() {
        if matches!(part.body, PartType::Multipart(_)) || body.used.contains(&id) {
            continue;
        }
        let file = attachment::extract(message, part, html_lower.as_deref(), &mut unnamed);
        let content = if encode {
            base64::engine::general_purpose::STANDARD.encode(&file.bytes)
        } else {
            content_len += file.bytes.len().div_ceil(3) * 4;
            String::new()
        };
        request.attachments.push(EmailAttachment {
            name: file.name,
            content,
            content_type: file.content_type,
            content_id: file.content_id,
        });
    }
    let names: Vec<&str> = request.attachments.iter().map(|a| a.name.as_str()).collect();
    body::fill_empty(&mut body, opts.empty_body_text.as_deref(), &names);
    request.text_body = body.text;
    request.html_body = body.html;
    let routing = Routing {
        original_to: original_text(top, raw, &HeaderName::To),
        original_cc: original_text(top, raw, &HeaderName::Cc),
        routed,
    };
    Ok((request, routing, content_len))
}

/// The file names the API path gives the message's parts: those that are not body text, or
/// with `every_part` all leaf parts.
pub(crate) fn attachment_names(message: &Message<'_>, every_part: bool) -> Vec<String> {
    let body = if every_part { body::Bodies::default() } else { body::bodies(message) };
    let mut unnamed = 0;
    message
        .parts
        .iter()
        .enumerate()
        .filter(|(id, part)| !matches!(part.body, PartType::Multipart(_)) && !body.used.contains(id))
        .filter(|(_, part)| !matches!(&part.body, PartType::Text(t) | PartType::Html(t) if body::is_blank(t)))
        .map(|(_, part)| attachment::extract(message, part, None, &mut unnamed).name)
        .collect()
}

/// The `From` mailbox, or the envelope sender standing in for it.
fn sender(message: &Message<'_>, envelope: &Envelope) -> Result<Mailbox, ConvertError> {
    let from_header = message
        .root_part()
        .headers()
        .iter()
        .filter(|h| h.name == HeaderName::From)
        .flat_map(mailboxes)
        .find(|m| is_valid_address(&m.address));
    if let Some(mailbox) = from_header {
        return Ok(mailbox);
    }
    let envelope_from = envelope.mail_from.trim();
    if is_valid_address(envelope_from) {
        return Ok(Mailbox { name: None, address: envelope_from.to_owned() });
    }
    Err(ConvertError::NoSender)
}

/// What the SMTP path must change in the `From` header for Postmark to take it: `None` when it
/// holds exactly one valid mailbox within Postmark's length limit; else the header text to use
/// instead (the first valid mailbox, or the envelope sender), as a raw header value.
pub(crate) fn from_header_fix(message: &Message<'_>, envelope: &Envelope) -> Option<String> {
    let from: Vec<&Header<'_>> = message.root_part().headers().iter().filter(|h| h.name == HeaderName::From).collect();
    // Every entry counts, also one without an address (`From: Doe, John <j@…>` is two).
    let entries: usize = from
        .iter()
        .map(|h| match &h.value {
            HeaderValue::Address(list) => list.iter().count(),
            _ => 1,
        })
        .sum();
    let mailboxes: Vec<Mailbox> = from.into_iter().flat_map(mailboxes).collect();
    if entries == 1
        && let [one] = mailboxes.as_slice()
        && is_valid_address(&one.address)
        && one.to_from_value() == one.to_header_text()
    {
        return None;
    }
    sender(message, envelope).ok().map(|m| m.to_raw_header())
}

/// Whether the message has a usable sender (see [`ConvertError::NoSender`]).
pub(crate) fn has_sender(message: &Message<'_>, envelope: &Envelope) -> bool {
    sender(message, envelope).is_ok()
}

/// The mailboxes of an address header, groups flattened, entries without an address skipped,
/// internationalized domains as A-labels.
///
/// The address is cleaned exactly as [`address::key`] sees it (blanks and stray angle brackets
/// at either end removed): mail-parser reads a damaged `To: a@example.com>` as the address
/// `a@example.com>`, which matches the envelope's `a@example.com` by key and would otherwise be
/// sent to Postmark with the `>`.
fn mailboxes(header: &Header<'_>) -> Vec<Mailbox> {
    let HeaderValue::Address(list) = &header.value else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|addr| {
            let address = addr.address()?.trim().trim_start_matches('<').trim_end_matches('>').trim();
            // An internationalized domain as its A-label, as the session writes the envelope.
            let address = address::with_a_label(address).unwrap_or_else(|| address.to_owned());
            (!address.is_empty())
                .then(|| Mailbox { name: addr.name().map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()), address })
        })
        .collect()
}

fn join(list: &[Mailbox]) -> String {
    list.iter().map(Mailbox::to_header_text).collect::<Vec<_>>().join(", ")
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Copies the custom headers (everything but what Postmark rebuilds and the control headers)
/// into `request.headers`, values as sent.
fn copy_headers(top: &[Header<'_>], raw: &[u8], request: &mut SendEmailRequest) {
    for header in top {
        if is_rebuilt_by_postmark(&header.name) {
            continue;
        }
        let name = header.name();
        let lower = name.to_ascii_lowercase();
        if controls::is_control(&lower) || lower.starts_with("content-") || lower.starts_with("arc-") {
            continue;
        }
        request.headers.push(MessageHeader { name: name.to_owned(), value: raw_value(header, raw) });
    }
}

/// Headers Postmark writes itself from the request fields, or that cannot survive the rebuild.
fn is_rebuilt_by_postmark(name: &HeaderName<'_>) -> bool {
    matches!(
        name,
        HeaderName::From
            | HeaderName::To
            | HeaderName::Cc
            | HeaderName::Bcc
            | HeaderName::Subject
            | HeaderName::ReplyTo
            | HeaderName::Date
            | HeaderName::MimeVersion
            | HeaderName::Received
            | HeaderName::ReturnPath
            | HeaderName::DkimSignature
            | HeaderName::ArcAuthenticationResults
            | HeaderName::ArcMessageSignature
            | HeaderName::ArcSeal
    ) || name.is_mime_header()
}

fn push_original(request: &mut SendEmailRequest, name: &str, top: &[Header<'_>], raw: &[u8], which: &HeaderName<'_>) {
    request.headers.push(MessageHeader { name: name.to_owned(), value: original_text(top, raw, which) });
}

/// The values of every `which` header, as sent, joined with commas.
fn original_text(top: &[Header<'_>], raw: &[u8], which: &HeaderName<'_>) -> String {
    top.iter().filter(|h| &h.name == which).map(|h| raw_value(h, raw)).collect::<Vec<_>>().join(", ")
}

/// The `X-PM-Message-Stream` header of a parsed message, RFC 2047-decoded (the stream the
/// message asks for; see the `controls` module).
pub fn message_stream_header(message: &Message<'_>) -> Option<String> {
    controls::message_stream(message)
}
