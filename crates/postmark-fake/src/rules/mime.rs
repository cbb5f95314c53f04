//! The model of Postmark's SMTP service: which accepted messages it turns into an `SMTPApiError` bounce.
//!
//! Postmark's SMTP endpoint answers `250` and converts the message afterwards; whatever it cannot send becomes a
//! bounce of TypeCode 100007 instead of an SMTP reply. [`check_mime`] says whether, and why.

use std::collections::HashMap;

use mail_parser::{Address, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::{Limits, Refusal, Rules, check_metadata, code, forbidden_extension, has_text, is_valid_address, utf16_len};

/// Whether an SMTP message Postmark accepted would become an `SMTPApiError` bounce, and why.
///
/// `rcpt_to` is the SMTP envelope (`RCPT TO`): Postmark delivers to those addresses. In order:
///
/// 1. the message is over 10 MB (300);
/// 2. it does not parse, or a part is malformed (undecodable content, a multipart without its closing boundary,
///    a message without a body section) (300);
/// 3. the `From` header is missing or is not exactly one address that passes Postmark's address rules (300);
/// 4. more than 50 envelope recipients, or one that fails the address rules (300);
/// 5. no usable body, see [`has_usable_body`] (300, "Provide either email TextBody or HtmlBody or both.");
/// 6. `Subject` over 2000 characters, `X-PM-Tag` over 1000, `X-PM-Metadata-*` over the metadata limits (300);
/// 7. an attachment whose file name (`Content-Disposition` `filename` or `Content-Type` `name`, either) has a
///    forbidden extension (411);
/// 8. the sender (401 / 400) and inactive recipients (406), as configured in `rules`.
pub fn check_mime(raw: &[u8], rcpt_to: &[String], rules: &Rules) -> Result<(), Refusal> {
    let limits = &rules.limits;
    if raw.len() > limits.max_message_bytes {
        return Err(Refusal::new(
            code::INVALID_EMAIL_REQUEST,
            format!("The message is {} bytes; Postmark accepts at most {}.", raw.len(), limits.max_message_bytes),
        ));
    }
    let parser = MessageParser::new().default_header_text();
    // mail-parser has debug assertions that crafted MIME can reach; a panic counts as "does not parse".
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parser.parse(raw))).ok().flatten();
    let Some(message) = parsed else {
        return Err(Refusal::new(code::INVALID_EMAIL_REQUEST, "The message could not be parsed as MIME."));
    };
    if message.parts.iter().any(|p| p.is_encoding_problem) {
        return Err(Refusal::new(code::INVALID_EMAIL_REQUEST, "The message has a malformed MIME part."));
    }

    let from = single_from(&message, limits)?;
    if rcpt_to.len() > limits.max_recipients {
        return Err(Refusal::new(
            code::INVALID_EMAIL_REQUEST,
            format!(
                "Maximum of {} recipients allowed per email message ({} given).",
                limits.max_recipients,
                rcpt_to.len()
            ),
        ));
    }
    if let Some(bad) = rcpt_to.iter().find(|r| !is_valid_address(r)) {
        return Err(Refusal::new(code::INVALID_EMAIL_REQUEST, format!("Invalid recipient address: '{bad}'.")));
    }
    if !has_usable_body(&message) {
        return Err(Refusal::new(code::INVALID_EMAIL_REQUEST, "Provide either email TextBody or HtmlBody or both."));
    }
    check_control_headers(&message, limits)?;
    for part in message.parts.iter().filter(|p| !matches!(p.body, PartType::Multipart(_))) {
        // Which of the two names Postmark takes is not documented: either one with a forbidden extension counts.
        let names = [
            part.content_disposition().and_then(|d| d.attribute("filename")),
            part.content_type().and_then(|t| t.attribute("name")),
        ];
        for name in names.into_iter().flatten() {
            if let Some(ext) = forbidden_extension(name) {
                return Err(Refusal::new(
                    code::FORBIDDEN_ATTACHMENT_TYPE,
                    format!("Forbidden attachment type: '{name}' (.{ext} files are not accepted)."),
                ));
            }
        }
    }
    rules.check_sender(&from)?;
    rules.check_recipients(rcpt_to.iter().map(String::as_str))
}

/// The one address of the `From` header.
fn single_from(message: &Message<'_>, limits: &Limits) -> Result<String, Refusal> {
    let invalid = |why: &str| Refusal::new(code::INVALID_EMAIL_REQUEST, format!("Invalid 'From' address: {why}"));
    let list = match message.from() {
        Some(Address::List(list)) => list,
        Some(Address::Group(_)) => return Err(invalid("a group is not a sender.")),
        None => return Err(invalid("the message has no From header.")),
    };
    let [one] = list.as_slice() else {
        return Err(invalid(if list.is_empty() { "no sender given." } else { "more than one sender." }));
    };
    let address = one.address.as_deref().unwrap_or_default();
    if !is_valid_address(address) {
        return Err(invalid(&format!("'{address}' is not a valid email address.")));
    }
    // The length Postmark limits is that of the From value it builds: `Name <address>`, decoded.
    let length = match one.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => utf16_len(name) + utf16_len(address) + 3,
        None => utf16_len(address),
    };
    if length > limits.max_from_chars {
        return Err(invalid(&format!("the From value is over {} characters.", limits.max_from_chars)));
    }
    Ok(address.to_owned())
}

/// `Subject`, `X-PM-Tag` and `X-PM-Metadata-*`.
fn check_control_headers(message: &Message<'_>, limits: &Limits) -> Result<(), Refusal> {
    let invalid = |why: String| Refusal::new(code::INVALID_EMAIL_REQUEST, why);
    if message.subject().is_some_and(|s| utf16_len(s) > limits.max_subject_chars) {
        return Err(invalid(format!("The subject is over {} characters.", limits.max_subject_chars)));
    }
    let mut metadata = Vec::new();
    for header in message.root_part().headers() {
        let name = header.name();
        let value = match &header.value {
            HeaderValue::Text(t) => t.as_ref(),
            _ => "",
        };
        if name.eq_ignore_ascii_case("X-PM-Tag") && utf16_len(value) > limits.max_tag_chars {
            return Err(invalid(format!("The X-PM-Tag header is over {} characters.", limits.max_tag_chars)));
        }
        if name.len() > "X-PM-Metadata-".len() && name[.."X-PM-Metadata-".len()].eq_ignore_ascii_case("X-PM-Metadata-")
        {
            metadata.push((&name["X-PM-Metadata-".len()..], value));
        }
    }
    // Postmark numbers repeated SMTP metadata keys instead of refusing them; count them as distinct keys.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let numbered: Vec<(String, &str)> = metadata
        .into_iter()
        .map(|(key, value)| {
            let n = seen.entry(key.to_lowercase()).or_insert(0);
            *n += 1;
            (if *n == 1 { key.to_owned() } else { format!("{key}{n}") }, value)
        })
        .collect();
    check_metadata(numbered.iter().map(|(k, v)| (k.as_str(), *v)), limits)
}

/// Whether the message has a usable body, in the strict model of the fake: a MIME leaf part
///
/// * that is not inside an attached `message/rfc822` (such parts belong to the attached message),
/// * whose media type is `text/plain` or `text/html` (case-insensitive; a part without `Content-Type` is
///   `text/plain` per RFC 2045 §5.2, except directly inside `multipart/digest`, where it is `message/rfc822` per
///   RFC 2046 §5.1.5),
/// * that has no `Content-Disposition: attachment` and no file name (`filename=` or `name=` parameter),
/// * whose decoded content has at least one character that is not white space.
pub fn has_usable_body(message: &Message<'_>) -> bool {
    let mut parent: HashMap<usize, usize> = HashMap::new();
    for (id, part) in message.parts.iter().enumerate() {
        if let PartType::Multipart(children) = &part.body {
            for child in children {
                parent.insert(*child as usize, id);
            }
        }
    }
    message.parts.iter().enumerate().any(|(id, part)| {
        if matches!(part.body, PartType::Multipart(_) | PartType::Message(_)) {
            return false;
        }
        let in_digest = parent
            .get(&id)
            .and_then(|p| message.parts.get(*p))
            .is_some_and(|p| media_type(p, false) == ("multipart".to_owned(), "digest".to_owned()));
        let (ctype, subtype) = media_type(part, in_digest);
        if ctype != "text" || !(subtype == "plain" || subtype == "html") {
            return false;
        }
        let attachment = part.content_disposition().is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
        let named = part.content_disposition().is_some_and(|d| d.has_attribute("filename"))
            || part.content_type().is_some_and(|t| t.has_attribute("name"));
        !attachment && !named && has_text(Some(&decoded_text(part)))
    })
}

/// The part's media type in lower case, with the RFC 2045 / RFC 2046 defaults.
fn media_type(part: &MessagePart<'_>, in_digest: bool) -> (String, String) {
    match part.content_type() {
        Some(ct) => (ct.ctype().to_ascii_lowercase(), ct.subtype().unwrap_or_default().to_ascii_lowercase()),
        None if in_digest => ("message".to_owned(), "rfc822".to_owned()),
        None => ("text".to_owned(), "plain".to_owned()),
    }
}

fn decoded_text(part: &MessagePart<'_>) -> String {
    match &part.body {
        PartType::Text(t) | PartType::Html(t) => t.to_string(),
        PartType::Binary(b) | PartType::InlineBinary(b) => String::from_utf8_lossy(b).into_owned(),
        PartType::Message(_) | PartType::Multipart(_) => String::new(),
    }
}
