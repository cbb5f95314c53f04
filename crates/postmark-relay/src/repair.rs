//! The two repairs the relay makes to a message before it is spooled, so that Postmark takes what
//! the relay acknowledged. Every other message is stored and sent byte for byte.
//!
//! 1. **A header section that runs into the body** ([`end_headers`], both paths). A line before
//!    the first blank line that cannot be a header field (no `name:` and not a continuation) is
//!    where the body begins; a blank line is inserted before it, as Postfix's cleanup does.
//!    Without it the parser reads the body as broken header lines and drops it.
//! 2. **No usable body on the SMTP path** ([`smtp`]). Postmark's SMTP service builds the
//!    same request as its API and turns a message without a text or HTML body into a bounce
//!    (ErrorCode 300, an `SMTPApiError`) after it said `250`. A message whose MIME tree has no
//!    such part (the strict reading of what Postmark finds: see [`has_usable_body`]) is wrapped in
//!    a `multipart/mixed` whose first part is the empty-body text and whose second part is the
//!    original content, unchanged, with its own `Content-*` headers.
//! 3. **A `From` Postmark cannot use, on the SMTP path** ([`smtp`]): none, several, an address
//!    its rules refuse, or over 255 characters. Postmark would bounce the message; the relay puts
//!    in the sender it would use on the API path (the first valid mailbox, else the envelope
//!    sender) and keeps the original value in `X-Original-From`.
//! 4. **Lines over 998 octets, on the SMTP path** ([`long_lines`]): the parts that hold them are
//!    re-encoded (quoted-printable, or base64 in short lines) with the same decoded content.

mod lines;

use mail_parser::{Message, MimeHeaders, PartType};

pub use self::lines::long_lines;

use crate::convert::{self, ConvertOptions, body};
use crate::envelope::Envelope;

/// The message with a blank line inserted where its header section runs into the body, or
/// `None` when the header section ends properly (or the message ends inside it).
pub fn end_headers(raw: &[u8]) -> Option<Vec<u8>> {
    let at = body_start_without_blank_line(raw)?;
    let crlf = at == 0 || raw[..at].ends_with(b"\r\n");
    let mut out = Vec::with_capacity(raw.len() + 2);
    out.extend_from_slice(&raw[..at]);
    out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
    out.extend_from_slice(&raw[at..]);
    Some(out)
}

/// The offset of the first line of the header section that cannot be part of it.
fn body_start_without_blank_line(raw: &[u8]) -> Option<usize> {
    let mut pos = 0;
    while pos < raw.len() {
        let end = raw[pos..].iter().position(|&b| b == b'\n').map_or(raw.len(), |i| pos + i + 1);
        let line = &raw[pos..end];
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.is_empty() {
            return None;
        }
        let continuation = pos > 0 && matches!(content[0], b' ' | b'\t');
        // An mbox "From " line some programs put first is not a header, but not the body either.
        let mbox_from = pos == 0 && content.starts_with(b"From ");
        if !(continuation || mbox_from || is_header_field(content)) {
            return Some(pos);
        }
        pos = end;
    }
    None
}

/// `name: value` with a name of printable ASCII other than `:` (RFC 5322 §2.2), blanks allowed
/// before the colon (the obsolete syntax of §4.5).
fn is_header_field(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = &line[..colon];
    let name = &name[..name.len() - name.iter().rev().take_while(|b| matches!(b, b' ' | b'\t')).count()];
    !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b))
}

/// Whether Postmark finds a body in `message`, in the strict reading: a leaf part of the message
/// itself (not of a message attached to it) of type `text/plain` or `text/html` (no
/// `Content-Type` counts as `text/plain`, except in a `multipart/digest`), neither
/// `Content-Disposition: attachment` nor carrying a file name, with some text other than white
/// space.
pub fn has_usable_body(message: &Message<'_>) -> bool {
    message.parts.iter().any(|part| {
        let text = match &part.body {
            PartType::Text(text) | PartType::Html(text) => text,
            _ => return false,
        };
        let type_ok = match part.content_type() {
            None => true,
            Some(ct) => {
                ct.ctype().eq_ignore_ascii_case("text")
                    && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("plain") || s.eq_ignore_ascii_case("html"))
            }
        };
        let attached = part.content_disposition().is_some_and(|cd| cd.ctype().eq_ignore_ascii_case("attachment"));
        type_ok && !attached && part.attachment_name().is_none() && !body::is_blank(text)
    })
}

/// The SMTP path's repairs of a parsed message (see the module documentation), or `None` when it
/// needs none: a `From` header Postmark cannot use is replaced ([`crate::convert`] picks the
/// first valid mailbox, else the envelope sender; the original goes to `X-Original-From`), and a
/// message without a usable body is wrapped.
pub fn smtp(message: &Message<'_>, envelope: &Envelope, opts: &ConvertOptions) -> Option<Vec<u8>> {
    let from = convert::from_header_fix(message, envelope);
    let wrap = !has_usable_body(message);
    let unclosed = unclosed_boundary(message);
    if from.is_none() && !wrap && unclosed.is_none() {
        return None;
    }
    let raw = message.raw_message();
    let mut out = rebuild(message, from.as_deref(), wrap, opts)?;
    if let Some(boundary) = unclosed {
        // Within the original content (wrapped or not), the multipart's closing delimiter goes
        // right after its last part.
        let close = format!("--{boundary}--");
        let eol: &[u8] = if raw.windows(2).any(|w| w == b"\r\n") { b"\r\n" } else { b"\n" };
        let at = if wrap {
            // Before the wrapper's own closing delimiter, the last line (its boundary starts
            // with `=_postmark-relay_`).
            out.windows(4).rposition(|w| w == b"\n--=").map_or(out.len(), |p| p + 1)
        } else {
            out.len()
        };
        let mut insert = Vec::new();
        if !out[..at].ends_with(b"\n") {
            insert.extend_from_slice(eol);
        }
        insert.extend_from_slice(close.as_bytes());
        insert.extend_from_slice(eol);
        out.splice(at..at, insert);
    }
    Some(out)
}

/// The boundary of the message's top-level multipart when its closing delimiter never comes
/// (mail-parser reads such a message, Postmark's SMTP service is not known to).
fn unclosed_boundary(message: &Message<'_>) -> Option<String> {
    if !matches!(message.root_part().body, PartType::Multipart(_)) {
        return None;
    }
    let boundary = message.root_part().content_type()?.attribute("boundary")?.to_owned();
    let close = format!("--{boundary}--");
    (!message.raw_message().windows(close.len()).any(|w| w == close.as_bytes())).then_some(boundary)
}

/// The message with the `From` header replaced and/or wrapped; the original when neither.
fn rebuild(message: &Message<'_>, from: Option<&str>, wrap: bool, opts: &ConvertOptions) -> Option<Vec<u8>> {
    let raw = message.raw_message();
    if from.is_none() && !wrap {
        return Some(raw.to_vec());
    }
    let eol: &[u8] = if raw.windows(2).any(|w| w == b"\r\n") { b"\r\n" } else { b"\n" };
    let body_at = (message.root_part().offset_body as usize).min(raw.len());
    let mut out = Vec::with_capacity(raw.len() + 512);
    let mut inner = Vec::new();
    if let Some(from) = from {
        out.extend_from_slice(b"From: ");
        out.extend_from_slice(from.as_bytes());
        out.extend_from_slice(eol);
    }
    for (name, field) in fields(&raw[..body_at]) {
        if from.is_some() && name == "from" {
            // The original value, folding and all, under another name.
            out.extend_from_slice(b"X-Original-From:");
            out.extend_from_slice(field.splitn(2, |&b| b == b':').nth(1).unwrap_or_default());
        } else if wrap && name.starts_with("content-") {
            inner.extend_from_slice(field);
        } else if !(wrap && name == "mime-version") {
            out.extend_from_slice(field);
        }
    }
    let content = &raw[body_at..];
    if !wrap {
        out.extend_from_slice(eol);
        out.extend_from_slice(content);
        return Some(out);
    }
    let names = convert::attachment_names(message, true);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let text = body::empty_body_text(opts.empty_body_text.as_deref(), &names);
    let boundary = boundary_for(raw);
    for line in [
        "MIME-Version: 1.0".to_owned(),
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\""),
        String::new(),
        format!("--{boundary}"),
        "Content-Type: text/plain; charset=utf-8".to_owned(),
    ] {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(eol);
    }
    if text.is_ascii() && text.lines().all(|l| l.len() < 900) {
        out.extend_from_slice(b"Content-Transfer-Encoding: 7bit");
        out.extend_from_slice(eol);
        out.extend_from_slice(eol);
        for line in text.lines() {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(eol);
        }
    } else {
        out.extend_from_slice(b"Content-Transfer-Encoding: base64");
        out.extend_from_slice(eol);
        out.extend_from_slice(eol);
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        for chunk in encoded.as_bytes().chunks(76) {
            out.extend_from_slice(chunk);
            out.extend_from_slice(eol);
        }
    }
    out.extend_from_slice(format!("--{boundary}").as_bytes());
    out.extend_from_slice(eol);
    out.extend_from_slice(&inner);
    out.extend_from_slice(eol);
    out.extend_from_slice(content);
    if !content.ends_with(b"\n") {
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(format!("--{boundary}--").as_bytes());
    out.extend_from_slice(eol);
    Some(out)
}

/// The header fields of a header section, each with its continuation lines and line ends, and
/// its name in lower case. The blank line that ends the section is not among them.
fn fields(section: &[u8]) -> Vec<(String, &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < section.len() {
        let mut end = pos;
        loop {
            end = section[end..].iter().position(|&b| b == b'\n').map_or(section.len(), |i| end + i + 1);
            if end >= section.len() || !matches!(section[end], b' ' | b'\t') {
                break;
            }
        }
        let field = &section[pos..end];
        if !field.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            let name = field.split(|&b| b == b':').next().unwrap_or_default();
            out.push((String::from_utf8_lossy(name).trim().to_ascii_lowercase(), field));
        }
        pos = end;
    }
    out
}

/// A boundary that does not occur in `raw`.
fn boundary_for(raw: &[u8]) -> String {
    loop {
        let candidate = format!("=_postmark-relay_{:016x}", rand::random::<u64>());
        if !raw.windows(candidate.len()).any(|w| w == candidate.as_bytes()) {
            return candidate;
        }
    }
}

#[cfg(test)]
mod tests;
