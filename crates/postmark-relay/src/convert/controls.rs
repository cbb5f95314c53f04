//! The `X-PM-*` control headers: the one reader both paths use, so the stream a message is
//! accepted for (and whose credentials the SMTP path logs in with) is the stream the API path
//! sends it to.
//!
//! Values are RFC 2047-decoded and trimmed; names are matched case-insensitively; for a header
//! given twice the first one counts (for metadata keys, whatever their case; the hyphenated spellings `X-PM-Track-Opens`/`-Links` are
//! accepted too). `X-PM-Metadata-<key>` keeps the key as spelled in the header.

use std::collections::BTreeMap;

use mail_parser::{Header, HeaderValue, Message};

use super::{ConvertError, TrackLinks};

/// The control headers of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Controls {
    /// `X-PM-Message-Stream`.
    pub(crate) message_stream: Option<String>,
    /// `X-PM-Tag`.
    pub(crate) tag: Option<String>,
    /// `X-PM-TrackOpens`.
    pub(crate) track_opens: Option<bool>,
    /// `X-PM-TrackLinks`.
    pub(crate) track_links: Option<TrackLinks>,
    /// `X-PM-Metadata-*`.
    pub(crate) metadata: BTreeMap<String, String>,
}

/// Whether a header (name in lower case) is a control header the relay reads, so it is not
/// copied into the request's `Headers`.
pub(crate) fn is_control(lower: &str) -> bool {
    matches!(
        lower,
        "x-pm-message-stream"
            | "x-pm-tag"
            | "x-pm-trackopens"
            | "x-pm-track-opens"
            | "x-pm-tracklinks"
            | "x-pm-track-links"
            | "x-pm-keepid"
    ) || lower.starts_with("x-pm-metadata-")
}

/// Reads every control header of `top` (the message's own header fields).
pub(crate) fn read(top: &[Header<'_>], raw: &[u8]) -> Result<Controls, ConvertError> {
    let mut controls = Controls::default();
    for header in top {
        let name = header.name();
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "x-pm-message-stream" => set_text(&mut controls.message_stream, header, raw),
            "x-pm-tag" => set_text(&mut controls.tag, header, raw),
            "x-pm-trackopens" | "x-pm-track-opens" => {
                if controls.track_opens.is_none() {
                    controls.track_opens = Some(parse_track_opens(&text_value(header, raw))?);
                }
            }
            "x-pm-tracklinks" | "x-pm-track-links" => {
                if controls.track_links.is_none() {
                    controls.track_links = Some(parse_track_links(&text_value(header, raw))?);
                }
            }
            _ => {
                if let Some(key) = lower.strip_prefix("x-pm-metadata-")
                    && !key.is_empty()
                {
                    // Postmark treats keys differing only in case as one key: the first counts.
                    let key = &name[name.len() - key.len()..];
                    if !controls.metadata.keys().any(|k| k.eq_ignore_ascii_case(key)) {
                        controls.metadata.insert(key.to_owned(), text_value(header, raw));
                    }
                }
            }
        }
    }
    Ok(controls)
}

/// The message's `X-PM-Message-Stream`, whatever the other control headers hold.
pub(crate) fn message_stream(message: &Message<'_>) -> Option<String> {
    let raw = message.raw_message();
    message
        .root_part()
        .headers()
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case("x-pm-message-stream") && !text_value(h, raw).is_empty())
        .map(|h| text_value(h, raw))
}

fn set_text(slot: &mut Option<String>, header: &Header<'_>, raw: &[u8]) {
    if slot.is_none() {
        let value = text_value(header, raw);
        if !value.is_empty() {
            *slot = Some(value);
        }
    }
}

/// A header value as sent: folding removed, surrounding blanks trimmed, encoded words kept.
pub(crate) fn raw_value(header: &Header<'_>, raw: &[u8]) -> String {
    let bytes = raw.get(header.offset_start as usize..header.offset_end as usize).unwrap_or_default();
    let unfolded: Vec<u8> = bytes.iter().copied().filter(|b| !matches!(b, b'\r' | b'\n')).collect();
    String::from_utf8_lossy(&unfolded).trim().to_owned()
}

/// The decoded text of a header (encoded words decoded, folding removed). Control characters
/// an encoded word may smuggle in (e.g. `=0D=0A`) become spaces.
pub(crate) fn text_value(header: &Header<'_>, raw: &[u8]) -> String {
    let text = match &header.value {
        HeaderValue::Text(text) => text.trim().to_owned(),
        HeaderValue::Empty => String::new(),
        _ => raw_value(header, raw),
    };
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn shorten(value: &str) -> String {
    value.chars().take(100).collect()
}

fn parse_track_opens(value: &str) -> Result<bool, ConvertError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConvertError::InvalidHeader {
            header: "X-PM-TrackOpens",
            value: shorten(value),
            expected: "true or false",
        }),
    }
}

fn parse_track_links(value: &str) -> Result<TrackLinks, ConvertError> {
    match value.to_ascii_lowercase().as_str() {
        "none" => Ok(TrackLinks::None),
        "htmlandtext" => Ok(TrackLinks::HtmlAndText),
        "htmlonly" => Ok(TrackLinks::HtmlOnly),
        "textonly" => Ok(TrackLinks::TextOnly),
        _ => Err(ConvertError::InvalidHeader {
            header: "X-PM-TrackLinks",
            value: shorten(value),
            expected: "None, HtmlAndText, HtmlOnly or TextOnly",
        }),
    }
}
