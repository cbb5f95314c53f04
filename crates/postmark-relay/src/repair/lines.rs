//! Lines over 998 octets on the SMTP path (RFC 5322 §2.1.1, RFC 5321 §4.5.3.1.6).
//!
//! The relay takes such lines (minified HTML, clients that never wrap), but a message sent on to
//! Postmark's SMTP service must keep within the limit. Each MIME part whose body holds a longer
//! line is re-encoded so that its decoded content stays byte for byte the same:
//!
//! * no transfer encoding (`7bit`, `8bit`, `binary`, none): quoted-printable (RFC 2045 §6.7,
//!   lines of at most 76 characters; CRLF line ends stay hard line breaks), and the part's
//!   `Content-Transfer-Encoding` becomes `quoted-printable`;
//! * base64 written in long lines: the same base64, in lines of 76;
//! * quoted-printable with long lines: decoded and encoded again.
//!
//! A header field line over 998 octets is folded at white space (unfolding gives the same
//! value back). What cannot be re-encoded without changing it is left alone: a forwarded
//! message (`message/rfc822` may not be encoded, RFC 2046 §5.2.1) and a header line without
//! white space to fold at.

use base64::Engine as _;
use mail_parser::{Encoding, Message, PartType};

/// Longest line a message may carry upstream, without its line break.
const MAX_LINE: usize = 998;

/// Where a folded header line is broken at the latest (a margin below [`MAX_LINE`]).
const FOLD_AT: usize = 900;

/// Whether `bytes` holds a line longer than [`MAX_LINE`] octets (any CR or LF ends a line).
pub(crate) fn has_long_line(bytes: &[u8]) -> bool {
    let mut start = 0;
    for at in memchr::memchr2_iter(b'\r', b'\n', bytes) {
        if at - start > MAX_LINE {
            return true;
        }
        start = at + 1;
    }
    bytes.len() - start > MAX_LINE
}

/// `raw` with every part that holds a line over 998 octets re-encoded (see the module
/// documentation), or `None` when no line is that long or nothing could be changed.
pub fn long_lines(raw: &[u8]) -> Option<Vec<u8>> {
    if !has_long_line(raw) {
        return None;
    }
    let message = crate::convert::parse(raw)?;
    let eol: &[u8] = if raw.windows(2).any(|w| w == b"\r\n") { b"\r\n" } else { b"\n" };
    // (start, end, replacement), in order and not overlapping.
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for (id, part) in message.parts.iter().enumerate() {
        let (header, body, end) = (part.offset_header as usize, part.offset_body as usize, part.offset_end as usize);
        let (body, end) = (body.min(raw.len()), end.min(raw.len()).max(body.min(raw.len())));
        let header = header.min(body);
        let folded = fold_header(&raw[header..body], eol);
        let leaf = !matches!(part.body, PartType::Multipart(_) | PartType::Message(_));
        let content = &raw[body..end];
        let encoded = (leaf && has_long_line(content)).then(|| encode(part.encoding, content, eol)).flatten();
        match encoded {
            Some((body_bytes, new_encoding)) => {
                let source = folded.as_deref().unwrap_or(&raw[header..body]);
                let head = match new_encoding {
                    Some(cte) => set_transfer_encoding(source, cte, id == 0 && !has_mime_version(&message), eol),
                    None => source.to_vec(),
                };
                let mut replacement = head;
                replacement.extend_from_slice(&body_bytes);
                edits.push((header, end, replacement));
            }
            None => {
                if let Some(folded) = folded {
                    edits.push((header, body, folded));
                }
            }
        }
    }
    // A multipart's header block spans its children; keep the innermost edits only where they
    // overlap (a part's own header and body never overlap another part's).
    edits.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 20);
    let mut at = 0;
    for (start, end, replacement) in edits {
        if start < at {
            continue;
        }
        out.extend_from_slice(&raw[at..start]);
        out.extend_from_slice(&replacement);
        at = end;
    }
    out.extend_from_slice(&raw[at..]);
    (out != raw).then_some(out)
}

fn has_mime_version(message: &Message<'_>) -> bool {
    message.root_part().headers().iter().any(|h| h.name.as_str().eq_ignore_ascii_case("mime-version"))
}

/// The body re-encoded, and the transfer encoding to declare (`None`: unchanged).
fn encode(encoding: Encoding, content: &[u8], eol: &[u8]) -> Option<(Vec<u8>, Option<&'static str>)> {
    match encoding {
        Encoding::None => Some((quoted_printable::encode(content), Some("quoted-printable"))),
        Encoding::Base64 => {
            let compact: Vec<u8> = content.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
            // Only when it really is base64: anything else is left for the validator to judge.
            base64::engine::general_purpose::STANDARD.decode(&compact).ok()?;
            let mut out = Vec::with_capacity(compact.len() + compact.len() / 38 + 2);
            for line in compact.chunks(76) {
                out.extend_from_slice(line);
                out.extend_from_slice(eol);
            }
            Some((out, None))
        }
        Encoding::QuotedPrintable => {
            let decoded = quoted_printable::decode(content, quoted_printable::ParseMode::Robust).ok()?;
            Some((quoted_printable::encode(decoded), None))
        }
    }
}

/// The header block `head` (ending in its blank line) with its `Content-Transfer-Encoding`
/// fields replaced by one saying `cte`, and `MIME-Version: 1.0` added when `add_mime_version`.
fn set_transfer_encoding(head: &[u8], cte: &str, add_mime_version: bool, eol: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + 64);
    let mut skipping = false;
    let mut lines = head.split_inclusive(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let blank = line == b"\r\n" || line == b"\n";
        if blank && lines.peek().is_none() {
            break;
        }
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            skipping = name.trim_ascii().eq_ignore_ascii_case(b"content-transfer-encoding");
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    if add_mime_version {
        out.extend_from_slice(b"MIME-Version: 1.0");
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(b"Content-Transfer-Encoding: ");
    out.extend_from_slice(cte.as_bytes());
    out.extend_from_slice(eol);
    out.extend_from_slice(eol);
    out
}

/// The header block with every line over [`MAX_LINE`] octets folded before white space, or
/// `None` when no line needed it (or none could be folded).
fn fold_header(head: &[u8], eol: &[u8]) -> Option<Vec<u8>> {
    if !has_long_line(head) {
        return None;
    }
    let mut out = Vec::with_capacity(head.len() + 16);
    for line in head.split_inclusive(|&b| b == b'\n') {
        let mut rest = line;
        while rest.len() > MAX_LINE + eol.len() {
            // The last blank within FOLD_AT octets, not the first character of the line.
            let Some(at) = rest[1..FOLD_AT].iter().rposition(|&b| b == b' ' || b == b'\t').map(|p| p + 1) else {
                break;
            };
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(eol);
            rest = &rest[at..];
        }
        out.extend_from_slice(rest);
    }
    (out != head).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every part's decoded content, and the bodies Postmark would read.
    fn decoded(raw: &[u8]) -> Vec<Vec<u8>> {
        let message = crate::convert::parse(raw).unwrap();
        message.parts.iter().map(|p| p.contents().to_vec()).collect()
    }

    fn longest_line(raw: &[u8]) -> usize {
        raw.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l).len()).max().unwrap_or(0)
    }

    #[test]
    fn a_long_text_line_becomes_quoted_printable_with_the_same_content() {
        let html = format!("<html><body>{}</body></html>", "<p class=\"x\">caf\u{e9} = 100%</p> ".repeat(200));
        let raw = format!(
            "From: a@example.com\r\nTo: b@example.org\r\nSubject: minified\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\nshort text\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n{html}\r\nsecond line  \r\n--b--\r\n"
        );
        assert!(longest_line(raw.as_bytes()) > 998);
        let out = long_lines(raw.as_bytes()).expect("re-encoded");
        assert!(longest_line(&out) <= 76, "{}", longest_line(&out));
        assert_eq!(decoded(&out), decoded(raw.as_bytes()));
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.contains(
                "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            )
        );
        assert!(
            text.contains("Content-Transfer-Encoding: 8bit\r\n\r\nshort text\r\n--b\r\n"),
            "the short part is untouched"
        );
        let message = crate::convert::parse(&out).unwrap();
        assert_eq!(message.body_html(0).as_deref(), Some(format!("{html}\r\nsecond line  ").as_str()));
        assert_eq!(message.body_text(0).as_deref(), Some("short text"));
    }

    #[test]
    fn a_single_part_message_without_mime_headers_gets_them() {
        let raw = format!("From: a@example.com\r\nSubject: log\r\n\r\n{}\r\nend\r\n", "word ".repeat(400));
        let out = long_lines(raw.as_bytes()).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("From: a@example.com\r\nSubject: log\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"), "{text}");
        assert!(longest_line(&out) <= 76);
        assert_eq!(decoded(&out), decoded(raw.as_bytes()));
    }

    #[test]
    fn base64_in_one_line_is_rewrapped_and_long_headers_are_folded() {
        let pdf: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&pdf);
        let long_subject = "word ".repeat(300);
        let raw = format!(
            "From: a@example.com\r\nSubject: {long_subject}\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b--\r\n"
        );
        let out = long_lines(raw.as_bytes()).unwrap();
        assert!(longest_line(&out) <= 998, "{}", longest_line(&out));
        assert_eq!(decoded(&out), decoded(raw.as_bytes()));
        let message = crate::convert::parse(&out).unwrap();
        assert_eq!(message.subject(), crate::convert::parse(raw.as_bytes()).unwrap().subject());
        assert_eq!(message.attachment(0).unwrap().contents(), &pdf[..]);
    }

    #[test]
    fn short_lines_and_forwarded_messages_are_left_alone() {
        assert_eq!(long_lines(b"From: a@example.com\r\n\r\nshort\r\n"), None);
        assert!(!has_long_line(&[b'a'; 998]) && has_long_line(&[b'a'; 999]));
        let mut lines = vec![b'a'; 998];
        lines.extend_from_slice(b"\r\n");
        lines.extend_from_slice(&[b'b'; 998]);
        assert!(!has_long_line(&lines));
        let raw = format!(
            "From: a@example.com\r\nContent-Type: message/rfc822\r\n\r\nFrom: b@example.org\r\n\r\n{}\r\n",
            "x".repeat(1200)
        );
        assert_eq!(long_lines(raw.as_bytes()), None, "message/rfc822 may not be encoded");
    }
}
