//! Accept-time checks, run by the session at the end of DATA before the message is spooled.
//!
//! Anything Postmark would refuse because of the message's own shape is refused here with a
//! 5xx, so the sending application learns at once instead of the mail dying in the queue:
//!
//! | Check | Path | Reply |
//! |---|---|---|
//! | no header section at all (mail-parser finds none; e.g. DATA without a blank-line-separated header) | both | `554 5.6.0` |
//! | no usable sender: no valid From address and an empty (`<>`) or invalid envelope sender | both | `550 5.1.7` |
//! | no envelope recipient | both | `554 5.5.0` |
//! | a `Subject` over 2,000 characters (UTF-16 code units, as Postmark counts) | both | `554 5.6.0` |
//! | MIME Postmark's SMTP service cannot decode (mail-parser flags an encoding problem: invalid base64, a multipart without its closing boundary) | SMTP | `554 5.6.0` |
//! | an attachment name (Content-Disposition `filename` **or** Content-Type `name`) with an extension Postmark refuses (ErrorCode 411), case-insensitive | both | `554 5.6.1` |
//! | the `/email` JSON would exceed 10 MB (measured on the serialized request, base64 included) | API | `552 5.3.4` |
//! | `TextBody` or `HtmlBody` over 5 MB | API | `552 5.3.4` |
//! | control headers Postmark would refuse: an `X-PM-TrackOpens` / `X-PM-TrackLinks` value outside the documented set, an `X-PM-Tag` over 1000 characters, more than 10 `X-PM-Metadata-*` keys, a key over 20 or a value over 80 characters | both | `554 5.6.0` |
//!
//! Before the checks, the message is repaired where it has to be ([`crate::repair`]); the
//! repaired bytes are what is spooled. The decision the relay makes about the message (its
//! stream) is returned as a [`Routing`] and stored with it, so delivery does not decide again.
//!
//! The message is parsed once. On the API path the request is measured, not built (attachment
//! contents are not base64-encoded, their encoded length is computed), or, with
//! [`validate_and_convert`], built once for delivery to send as it is.

use std::{fmt, io};

use mail_parser::{Message, MimeHeaders, PartType};
use postmark_core::limits::{
    MAX_BODY_BYTES, MAX_MESSAGE_BYTES, MAX_METADATA_KEY_CHARS, MAX_METADATA_KEYS, MAX_METADATA_VALUE_CHARS,
    MAX_SUBJECT_CHARS, MAX_TAG_CHARS, char_count, forbidden_extension,
};

use crate::convert::{self, ConvertError, ConvertOptions, SendEmailRequest};
use crate::envelope::{Envelope, Routing, Via};
use crate::metrics::Reject;
use crate::repair;

/// What a valid message yields.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// Size in bytes of the largest request the API path will send for it, serialized as JSON
    /// (API path only; with [`validate_and_convert`] only when a bound on it came near Postmark's
    /// limit, so that it had to be counted).
    pub json_len: Option<usize>,
    /// The message as it is to be spooled and sent, when the relay had to repair it (see
    /// [`repair`]); `None` keeps the bytes as received.
    pub repaired: Option<Vec<u8>>,
    /// The decision to store with the message: its stream.
    pub routing: Routing,
    /// The `/email` requests delivery will send, when asked for with [`validate_and_convert`]
    /// (API path only).
    pub requests: Option<Vec<SendEmailRequest>>,
}

/// A refusal, with the SMTP reply to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Basic reply code (5xx).
    pub code: u16,
    /// Enhanced status code (RFC 3463), e.g. `"5.6.0"`.
    pub enhanced: &'static str,
    /// Human-readable reason (one line, no addresses, no content).
    pub text: String,
    /// The refusal's class, for `postmark_relay_rejected_total{reason}`.
    pub reason: Reject,
}

impl Rejection {
    fn new(reason: Reject, code: u16, enhanced: &'static str, text: impl Into<String>) -> Self {
        Self { code, enhanced, text: text.into(), reason }
    }

    /// The complete SMTP reply line, CRLF-terminated, e.g. `554 5.6.0 Reason\r\n`.
    pub fn reply(&self) -> String {
        format!("{self}\r\n")
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A reply line must not contain line breaks.
        let text: String = self.text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        write!(f, "{} {} {}", self.code, self.enhanced, text)
    }
}

impl std::error::Error for Rejection {}

impl From<ConvertError> for Rejection {
    fn from(e: ConvertError) -> Self {
        match e {
            ConvertError::Unparseable => Rejection::new(Reject::Unparseable, 554, "5.6.0", e.to_string()),
            ConvertError::NoSender => Rejection::new(Reject::Sender, 550, "5.1.7", e.to_string()),
            ConvertError::NoRecipients => Rejection::new(Reject::Recipients, 554, "5.5.0", e.to_string()),
            ConvertError::InvalidHeader { .. } => Rejection::new(Reject::Unrepresentable, 554, "5.6.0", e.to_string()),
        }
    }
}

/// Runs every accept-time check on `raw` (the message after dot-unstuffing) and its envelope,
/// after the repairs of [`repair`].
pub fn validate(raw: &[u8], envelope: &Envelope, via: Via, opts: &ConvertOptions) -> Result<Accepted, Rejection> {
    check(raw, envelope, via, opts, false)
}

/// [`validate`], and on the API path the requests themselves (attachments encoded) instead of
/// their measure, for delivery to send without converting the message again.
pub fn validate_and_convert(
    raw: &[u8],
    envelope: &Envelope,
    via: Via,
    opts: &ConvertOptions,
) -> Result<Accepted, Rejection> {
    check(raw, envelope, via, opts, true)
}

fn check(raw: &[u8], envelope: &Envelope, via: Via, opts: &ConvertOptions, build: bool) -> Result<Accepted, Rejection> {
    let headers_repaired = repair::end_headers(raw);
    let raw = headers_repaired.as_deref().unwrap_or(raw);
    let message = convert::parse(raw).ok_or(ConvertError::Unparseable)?;
    check_recipients(envelope)?;
    if !convert::has_sender(&message, envelope) {
        return Err(ConvertError::NoSender.into());
    }
    check_attachment_names(&message)?;
    let controls = convert::controls::read(message.root_part().headers(), message.raw_message())?;
    check_controls(&controls)?;
    if let Some(subject) = message.subject()
        && char_count(subject) > MAX_SUBJECT_CHARS
    {
        return Err(Rejection::new(
            Reject::Unrepresentable,
            554,
            "5.6.0",
            format!("the Subject is {} characters; Postmark accepts at most {MAX_SUBJECT_CHARS}", char_count(subject)),
        ));
    }
    let routing =
        Routing { stream: controls.message_stream.or_else(|| opts.message_stream.clone()), route: None, notice: false };

    match via {
        Via::Smtp => {
            let repaired = repair::smtp(&message, envelope, opts).or_else(|| headers_repaired.clone());
            let repaired = repair::long_lines(repaired.as_deref().unwrap_or(raw)).or(repaired);
            // The bytes go to Postmark as they are: MIME it cannot decode would bounce there.
            let sent = match &repaired {
                Some(bytes) => convert::parse(bytes).ok_or(ConvertError::Unparseable)?,
                None => message,
            };
            if sent.parts.iter().any(|p| p.is_encoding_problem) {
                return Err(Rejection::new(
                    Reject::Unparseable,
                    554,
                    "5.6.0",
                    "the message has a malformed MIME part (undecodable content, or a multipart without its \
                     closing boundary); Postmark would not send it",
                ));
            }
            Ok(Accepted { json_len: None, repaired, routing, requests: None })
        }
        Via::Api if build => {
            let requests = convert::convert(&message, envelope, opts)?;
            // Serialized only when the bound comes near the limit: delivery serializes it anyway.
            let mut json_len = None;
            for request in &requests {
                check_body_limits(request)?;
                if json_bound(request) > MAX_MESSAGE_BYTES {
                    json_len = json_len.max(Some(check_api_limits(request, 0)?));
                }
            }
            Ok(Accepted { json_len, repaired: headers_repaired, routing, requests: Some(requests) })
        }
        Via::Api => {
            let mut json_len = 0;
            for measured in convert::measure(&message, envelope, opts)? {
                json_len = json_len.max(check_api_limits(&measured.request, measured.content_len)?);
            }
            Ok(Accepted { json_len: Some(json_len), repaired: headers_repaired, routing, requests: None })
        }
    }
}

/// At least one recipient; how many at most is the session's `max_recipients` (delivery splits
/// them into groups Postmark takes).
fn check_recipients(envelope: &Envelope) -> Result<(), Rejection> {
    if envelope.rcpt_to.iter().all(|a| a.trim().is_empty()) {
        return Err(ConvertError::NoRecipients.into());
    }
    Ok(())
}

/// Refuses a part whose file name (either of the two places it can be given) ends in an
/// extension Postmark refuses. Parts inside a forwarded message are not inspected: the
/// forwarded message travels as one `.eml` file.
fn check_attachment_names(message: &Message<'_>) -> Result<(), Rejection> {
    for part in &message.parts {
        if matches!(part.body, PartType::Multipart(_)) {
            continue;
        }
        let names = [
            part.content_disposition().and_then(|cd| cd.attribute("filename")),
            part.content_type().and_then(|ct| ct.attribute("name")),
        ];
        for name in names.into_iter().flatten() {
            if let Some(ext) = forbidden_extension(name) {
                return Err(Rejection::new(
                    Reject::Attachment,
                    554,
                    // RFC 3463 X.6.1 "media not supported … by the next system in the forwarding
                    // path": Postmark does not take this type. (X.7.1 is for senders not
                    // authorized to send; the content is what is refused here.)
                    "5.6.1",
                    format!("attachment type .{ext} is not allowed by Postmark; zip the file or remove it"),
                ));
            }
        }
    }
    Ok(())
}

/// The limits of the control headers (Postmark's Tag and Metadata limits), on both paths.
fn check_controls(controls: &convert::controls::Controls) -> Result<(), Rejection> {
    if let Some(tag) = &controls.tag
        && char_count(tag) > MAX_TAG_CHARS
    {
        return Err(Rejection::new(Reject::Unrepresentable, 554, "5.6.0", "X-PM-Tag is longer than 1000 characters"));
    }
    if controls.metadata.len() > MAX_METADATA_KEYS {
        return Err(Rejection::new(
            Reject::Unrepresentable,
            554,
            "5.6.0",
            format!("{} X-PM-Metadata keys; Postmark accepts at most 10", controls.metadata.len()),
        ));
    }
    for (key, value) in &controls.metadata {
        if char_count(key) > MAX_METADATA_KEY_CHARS {
            return Err(Rejection::new(
                Reject::Unrepresentable,
                554,
                "5.6.0",
                "an X-PM-Metadata key is longer than 20 characters",
            ));
        }
        if char_count(value) > MAX_METADATA_VALUE_CHARS {
            return Err(Rejection::new(
                Reject::Unrepresentable,
                554,
                "5.6.0",
                "an X-PM-Metadata value is longer than 80 characters",
            ));
        }
    }
    Ok(())
}

/// Checks the limits Postmark applies to the JSON request; returns the JSON size. `content_len`
/// is the base64 length of the attachment contents the measured request leaves out.
fn check_api_limits(request: &SendEmailRequest, content_len: usize) -> Result<usize, Rejection> {
    check_body_limits(request)?;
    let json_len = json_len(request) + content_len;
    if json_len > MAX_MESSAGE_BYTES {
        return Err(Rejection::new(
            Reject::Size,
            552,
            "5.3.4",
            format!(
                "the message is {json_len} bytes as Postmark JSON (attachments in base64); Postmark accepts at most 10 MB"
            ),
        ));
    }
    Ok(json_len)
}

/// A bound on the size of `request` as JSON, found without serializing it: every string at its
/// worst escaping (6 bytes for a byte, `\u00XX`), attachment contents as they are (base64 needs
/// no escaping), and a generous allowance for each field's name and punctuation.
pub fn json_bound(request: &SendEmailRequest) -> usize {
    const FIELD: usize = 32;
    // Braces, the two tracking fields, the list brackets.
    let frame = 8 * FIELD;
    let texts: usize = convert::request_texts(request).map(|t| FIELD + 6 * t.len()).sum();
    let contents: usize = request.attachments.iter().map(|a| FIELD + a.content.len()).sum();
    frame + texts + contents
}

/// Postmark's limits on the bodies (5 MB each).
fn check_body_limits(request: &SendEmailRequest) -> Result<(), Rejection> {
    for (field, body) in [("TextBody", &request.text_body), ("HtmlBody", &request.html_body)] {
        if let Some(body) = body
            && body.len() > MAX_BODY_BYTES
        {
            return Err(Rejection::new(
                Reject::Size,
                552,
                "5.3.4",
                format!("{field} is {} bytes; Postmark accepts at most 5 MB", body.len()),
            ));
        }
    }
    Ok(())
}

/// The size of `request` serialized as JSON, counted without building the JSON.
pub fn json_len(request: &SendEmailRequest) -> usize {
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Serializing plain structs of strings into a writer that never fails cannot fail.
    serde_json::to_writer(&mut count, request).expect("serializing a SendEmailRequest");
    count.0
}

#[cfg(test)]
mod tests;
