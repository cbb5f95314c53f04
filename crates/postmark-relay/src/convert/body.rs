//! Which parts of a message become `TextBody` and `HtmlBody`.
//!
//! Postmark refuses a message whose `TextBody` and `HtmlBody` are both empty (ErrorCode 300), so
//! the API path always finds or writes a body:
//!
//! 1. The real `text/plain` and `text/html` body parts mail-parser chose (it understands
//!    `multipart/alternative` and `multipart/related`), without a file name. Several parts of one
//!    kind (a list footer after an alternative) are joined in order.
//! 2. Parts the RFCs say are plain text although they do not say so: no `Content-Type`, or one
//!    that is invalid (`text` without a subtype, a `multipart/*` whose boundary never appears or
//!    is missing; RFC 2045 §5.2: an invalid Content-Type means `text/plain; charset=us-ascii`).
//! 3. A body of only white space counts as empty (Postmark's reading is not documented; the strict
//!    one is taken).
//! 4. With no text and no HTML body left: inline, unnamed parts of other `text/*` subtypes that
//!    are meant to be read (RFC 2046 §4.1.4: unknown text subtypes are shown as plain text), e.g.
//!    `text/enriched` or `text/x-log`. Data formats (`text/calendar`, `text/vcard`, `text/csv`,
//!    `text/rfc822-headers`, …) stay attachments.
//! 5. Still nothing: the configured empty-body text ([`DEFAULT_EMPTY_BODY_TEXT`] unless set), with
//!    `{attachments}` replaced by the attachments' names.
//!
//! A `text/plain; format=flowed` body (RFC 3676) is unwrapped: its soft line breaks are joined
//! (see [`super::flowed`]).
//!
//! Text without a declared charset that is not valid UTF-8 is read as Windows-1252 (what such
//! 8-bit text almost always is) instead of losing its letters to U+FFFD.

use mail_parser::{Encoding, Message, MessagePart, MimeHeaders, PartType};

use super::attachment;

/// The `TextBody` of a message that has no text of its own; `{attachments}` becomes the list of
/// attached file names (or "none").
pub const DEFAULT_EMPTY_BODY_TEXT: &str = "This message has no text of its own. Attached: {attachments}.\n\n(The text was added by postmark-relay, because Postmark does not send a message without a text or HTML body.)";

/// `text/*` subtypes that are data, not text to read: never promoted to the body.
const DATA_TEXT_SUBTYPES: &[&str] = &[
    "calendar",
    "vcard",
    "x-vcard",
    "directory",
    "csv",
    "tab-separated-values",
    "rfc822-headers",
    "xml",
    "x-vcalendar",
    "html",
    "plain",
];

/// The body texts and the ids of the parts they came from (those parts are not attachments).
#[derive(Debug, Default)]
pub(crate) struct Bodies {
    pub(crate) text: Option<String>,
    pub(crate) html: Option<String>,
    pub(crate) used: Vec<usize>,
}

/// Steps 1–4 above; step 5 needs the attachment names, see [`fill_empty`].
pub(crate) fn bodies(message: &Message<'_>) -> Bodies {
    let mut out = Bodies::default();
    let named = |part: &MessagePart<'_>| part.attachment_name().is_some();
    for &id in &message.text_body {
        let id = id as usize;
        let Some(part) = message.parts.get(id) else { continue };
        if let PartType::Text(text) = &part.body
            && effective_type(part) == ("text", "plain")
            && !named(part)
            && !out.used.contains(&id)
        {
            let text = fixed_charset(message, part).unwrap_or_else(|| text.to_string());
            // RFC 3676: a flowed text's soft line breaks are for the reader to join.
            let text = match super::flowed::flowed_params(part.content_type()) {
                Some(delsp) => super::flowed::unwrap(&text, delsp),
                None => text,
            };
            append(&mut out.text, &text);
            out.used.push(id);
        }
    }
    for &id in &message.html_body {
        let id = id as usize;
        let Some(part) = message.parts.get(id) else { continue };
        if let PartType::Html(html) = &part.body
            && effective_type(part) == ("text", "html")
            && !named(part)
            && !out.used.contains(&id)
        {
            append(&mut out.html, html);
            out.used.push(id);
        }
    }
    // Step 2: plain text by the RFCs' defaults that mail-parser did not list as a body.
    for (id, part) in message.parts.iter().enumerate() {
        if out.used.contains(&id) || named(part) || is_attachment(part) {
            continue;
        }
        let declared = part.content_type().map(|ct| ct.ctype().to_ascii_lowercase());
        let invalid = match (&part.body, declared.as_deref()) {
            (PartType::Multipart(_) | PartType::Message(_), _) => false,
            (_, None) => true,
            (_, Some("text")) => part.content_type().and_then(|ct| ct.subtype()).is_none(),
            (_, Some("multipart")) => true,
            _ => false,
        };
        if invalid {
            append(&mut out.text, &leaf_text(message, part));
            out.used.push(id);
        }
    }
    if out.text.as_deref().is_some_and(is_blank) {
        out.text = None;
    }
    if out.html.as_deref().is_some_and(is_blank) {
        out.html = None;
    }
    if out.text.is_none() && out.html.is_none() {
        // Step 4: readable text of another subtype.
        for (id, part) in message.parts.iter().enumerate() {
            if out.used.contains(&id) || named(part) || is_attachment(part) {
                continue;
            }
            let (ctype, subtype) = attachment::media_type(part);
            if ctype == "text"
                && !DATA_TEXT_SUBTYPES.contains(&subtype.as_str())
                && matches!(part.body, PartType::Text(_))
            {
                let text = leaf_text(message, part);
                if !is_blank(&text) {
                    append(&mut out.text, &text);
                    out.used.push(id);
                }
            }
        }
    }
    out
}

/// Step 5: the empty-body text, naming `attachments`.
pub(crate) fn fill_empty(bodies: &mut Bodies, template: Option<&str>, attachments: &[&str]) {
    if bodies.text.is_none() && bodies.html.is_none() {
        bodies.text = Some(empty_body_text(template, attachments));
    }
}

/// The empty-body text: `template` (else [`DEFAULT_EMPTY_BODY_TEXT`]) with `{attachments}`
/// replaced by the names, or "none".
pub(crate) fn empty_body_text(template: Option<&str>, attachments: &[&str]) -> String {
    let list = if attachments.is_empty() { "none".to_owned() } else { attachments.join(", ") };
    let text = template.unwrap_or(DEFAULT_EMPTY_BODY_TEXT).replace("{attachments}", &list);
    // A configured text of only blanks would be refused by Postmark too.
    if is_blank(&text) { DEFAULT_EMPTY_BODY_TEXT.replace("{attachments}", &list) } else { text }
}

/// Whether `text` has nothing but white space.
pub(crate) fn is_blank(text: &str) -> bool {
    text.chars().all(char::is_whitespace)
}

/// `(type, subtype)` in lower case as the body rule sees it (see [`attachment::media_type`]).
fn effective_type(part: &MessagePart<'_>) -> (&'static str, &'static str) {
    let (ctype, subtype) = attachment::media_type(part);
    match (ctype.as_str(), subtype.as_str()) {
        ("text", "plain") => ("text", "plain"),
        ("text", "html") => ("text", "html"),
        _ => ("", ""),
    }
}

fn is_attachment(part: &MessagePart<'_>) -> bool {
    part.content_disposition().is_some_and(|cd| cd.ctype().eq_ignore_ascii_case("attachment"))
}

/// The text of a leaf part whatever mail-parser made of it (a leaf `multipart/*` arrives as
/// bytes).
fn leaf_text(message: &Message<'_>, part: &MessagePart<'_>) -> String {
    if let Some(text) = fixed_charset(message, part) {
        return text;
    }
    match &part.body {
        PartType::Text(text) | PartType::Html(text) => text.to_string(),
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => decode_undeclared(bytes),
        PartType::Message(_) | PartType::Multipart(_) => String::new(),
    }
}

/// For a part without a declared charset whose bytes are not UTF-8: the text read as
/// Windows-1252. `None` when mail-parser's own decoding is right.
fn fixed_charset(message: &Message<'_>, part: &MessagePart<'_>) -> Option<String> {
    if part.content_type().and_then(|ct| ct.attribute("charset")).is_some() || part.encoding != Encoding::None {
        return None;
    }
    let raw = message.raw_message().get(part.offset_body as usize..part.offset_end as usize)?;
    (std::str::from_utf8(raw).is_err()).then(|| decode_undeclared(raw))
}

/// Bytes of unknown charset: UTF-8 when they are, else Windows-1252.
fn decode_undeclared(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => match mail_parser::decoders::charsets::map::charset_decoder(b"windows-1252") {
            Some(decode) => decode(bytes),
            None => String::from_utf8_lossy(bytes).into_owned(),
        },
    }
}

fn append(body: &mut Option<String>, text: &str) {
    match body {
        None => *body = Some(text.to_owned()),
        Some(existing) => {
            if !existing.is_empty() && !existing.ends_with('\n') {
                existing.push_str(if existing.contains("\r\n") { "\r\n" } else { "\n" });
            }
            existing.push_str(text);
        }
    }
}
