//! MIME parts that become Postmark `Attachments`.

use std::borrow::Cow;

use mail_parser::{
    Encoding, Message, MessagePart, MimeHeaders, PartType,
    decoders::{base64::base64_decode, quoted_printable::quoted_printable_decode},
};

/// The name, type and decoded bytes of one part, before base64 for JSON.
#[derive(Debug)]
pub(crate) struct Extracted<'a> {
    pub(crate) name: String,
    pub(crate) content_type: String,
    pub(crate) bytes: Cow<'a, [u8]>,
    pub(crate) content_id: Option<String>,
}

/// Builds the attachment for `part` of `message`.
///
/// `html_lower` is the HTML body in ASCII lower case (for the `cid:` check); `unnamed` counts
/// the parts that needed a generated name so far.
pub(crate) fn extract<'a>(
    message: &'a Message<'a>,
    part: &'a MessagePart<'a>,
    html_lower: Option<&str>,
    unnamed: &mut usize,
) -> Extracted<'a> {
    let (ctype, subtype) = media_type(part);
    let bytes = decoded_bytes(message, part);
    let is_message = ctype == "message" && matches!(subtype.as_str(), "rfc822" | "global");

    let name = match clean_name(part.attachment_name()) {
        Some(name) if is_message && !name.to_ascii_lowercase().ends_with(".eml") => {
            format!("{name}.eml")
        }
        Some(name) => name,
        None if is_message => "forwarded-message.eml".to_owned(),
        None if ctype == "text" && subtype == "calendar" => "invite.ics".to_owned(),
        None => {
            *unnamed += 1;
            format!("attachment-{unnamed}{}", extension_for(&ctype, &subtype))
        }
    };

    let content_id = part
        .content_id()
        .map(|id| id.trim().trim_start_matches('<').trim_end_matches('>'))
        .filter(|id| !id.is_empty())
        .filter(|id| html_lower.is_some_and(|html| html.contains(&format!("cid:{}", id.to_ascii_lowercase()))))
        .map(|id| format!("cid:{id}"));

    Extracted { name, content_type: content_type_text(part, &ctype, &subtype), bytes, content_id }
}

/// `(type, subtype)` in lower case; a part without Content-Type is `text/plain` (RFC 2045 §5.2),
/// except inside `multipart/digest`, where it is `message/rfc822` (RFC 2046 §5.1.5; mail-parser
/// already parses such a part as a message).
pub(crate) fn media_type(part: &MessagePart<'_>) -> (String, String) {
    match part.content_type() {
        Some(ct) => (ct.ctype().to_ascii_lowercase(), ct.subtype().unwrap_or_default().to_ascii_lowercase()),
        None if matches!(part.body, PartType::Message(_)) => ("message".to_owned(), "rfc822".to_owned()),
        None => ("text".to_owned(), "plain".to_owned()),
    }
}

/// The part's bytes after transfer decoding, in their original charset.
///
/// mail-parser keeps text parts only as UTF-8 after charset conversion, so for those the
/// transfer encoding is undone again from the raw message: an attachment must arrive with the
/// bytes it was sent with, and its Content-Type still names the original charset.
fn decoded_bytes<'a>(message: &'a Message<'a>, part: &'a MessagePart<'a>) -> Cow<'a, [u8]> {
    let raw_body =
        || message.raw_message().get(part.offset_body as usize..part.offset_end as usize).unwrap_or_default();
    match &part.body {
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => Cow::Borrowed(bytes.as_ref()),
        PartType::Text(_) | PartType::Html(_) => {
            let raw = raw_body();
            let decoded = match part.encoding {
                Encoding::Base64 => base64_decode(raw),
                Encoding::QuotedPrintable => quoted_printable_decode(raw),
                Encoding::None => None,
            };
            decoded.map_or(Cow::Borrowed(raw), Cow::Owned)
        }
        // A message/rfc822 part sent without transfer encoding (the normal case) is taken
        // byte for byte from the outer message; mail-parser keeps the decoded bytes otherwise.
        PartType::Message(inner) => match part.encoding {
            Encoding::None => Cow::Borrowed(raw_body()),
            _ => Cow::Borrowed(inner.raw_message()),
        },
        PartType::Multipart(_) => Cow::Borrowed(&[]),
    }
}

/// `type/subtype` plus the original parameters except the file name (Postmark adds its own
/// `name` from `Name`).
fn content_type_text(part: &MessagePart<'_>, ctype: &str, subtype: &str) -> String {
    let mut out = if subtype.is_empty() {
        // A type without subtype is invalid; keep what can be kept.
        match ctype {
            "text" => "text/plain".to_owned(),
            _ => "application/octet-stream".to_owned(),
        }
    } else {
        format!("{ctype}/{subtype}")
    };
    let attributes = part.content_type().and_then(|ct| ct.attributes()).unwrap_or_default();
    for attr in attributes {
        let name = attr.name.as_ref();
        if name == "name" || name.starts_with("name-") || name.starts_with("name*") || name == "boundary" {
            continue;
        }
        out.push_str("; ");
        out.push_str(name);
        out.push('=');
        out.push_str(&parameter_value(&attr.value));
    }
    out
}

/// A MIME parameter value: a token as is, anything else quoted.
fn parameter_value(value: &str) -> String {
    let is_token = !value.is_empty() && value.chars().all(|c| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?=".contains(c));
    if is_token {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A usable file name: control characters removed, surrounding blanks trimmed, `None` if empty.
pub(crate) fn clean_name(name: Option<&str>) -> Option<String> {
    let name: String = name?.chars().filter(|c| !c.is_control()).collect();
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// Extension for a generated name. Never `.bin`, which Postmark refuses.
fn extension_for(ctype: &str, subtype: &str) -> &'static str {
    match (ctype, subtype) {
        ("text", "plain") => ".txt",
        ("text", "html") => ".html",
        ("text", "csv") => ".csv",
        ("text", "calendar") => ".ics",
        ("text", "vcard" | "x-vcard") => ".vcf",
        ("image", "png") => ".png",
        ("image", "jpeg" | "jpg") => ".jpg",
        ("image", "gif") => ".gif",
        ("image", "webp") => ".webp",
        ("image", "svg+xml") => ".svg",
        ("application", "pdf") => ".pdf",
        ("application", "zip") => ".zip",
        ("application", "json") => ".json",
        ("message", "rfc822" | "global") => ".eml",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_never_use_a_forbidden_extension() {
        for (t, s) in [("application", "octet-stream"), ("application", "x-msdownload"), ("image", "png")] {
            assert_eq!(
                postmark_core::limits::forbidden_extension(&format!("attachment-1{}", extension_for(t, s))),
                None
            );
        }
    }

    #[test]
    fn parameter_values_are_quoted_when_needed() {
        assert_eq!(parameter_value("REQUEST"), "REQUEST");
        assert_eq!(parameter_value("utf-8"), "utf-8");
        assert_eq!(parameter_value("a b"), "\"a b\"");
        assert_eq!(parameter_value("a\"b"), "\"a\\\"b\"");
        assert_eq!(parameter_value(""), "\"\"");
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name(Some("  a\r\nb.pdf ")), Some("ab.pdf".to_owned()));
        assert_eq!(clean_name(Some(" \t")), None);
        assert_eq!(clean_name(None), None);
    }
}
