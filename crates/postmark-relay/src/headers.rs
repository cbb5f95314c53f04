//! Editing a message's header section in place, byte for byte: the body and every header not
//! edited stay exactly as received. Used where the relay must change a message it accepts (the
//! sender policy's `rewrite_from`, `sendmail -t` removing `Bcc`, `sendmail` adding a missing
//! `Date`, `Message-ID` or `From`).
//!
//! A field is its first line and its folded continuation lines (those starting with a space or a
//! tab). Line ends are kept as they are (CRLF or a bare LF); added fields use the message's own.

/// A message split into its header fields and the rest (the blank line and the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderSection<'a> {
    fields: Vec<&'a [u8]>,
    rest: &'a [u8],
    crlf: bool,
}

impl<'a> HeaderSection<'a> {
    /// Splits `raw` at the end of its header section (the first empty line). A message without
    /// an empty line is all header.
    pub fn parse(raw: &'a [u8]) -> Self {
        let mut fields: Vec<&'a [u8]> = Vec::new();
        let mut pos = 0;
        let mut start: Option<usize> = None;
        let crlf = raw.windows(2).position(|w| w == b"\r\n").is_some_and(|p| raw[..p].iter().all(|&b| b != b'\n'));
        while pos < raw.len() {
            let end = raw[pos..].iter().position(|&b| b == b'\n').map_or(raw.len(), |p| pos + p + 1);
            let line = &raw[pos..end];
            if line == b"\r\n" || line == b"\n" {
                break;
            }
            let continuation = matches!(line.first(), Some(b' ' | b'\t'));
            match (continuation, start) {
                (true, Some(_)) => {}
                (_, Some(s)) => {
                    fields.push(&raw[s..pos]);
                    start = Some(pos);
                }
                (_, None) => start = Some(pos),
            }
            pos = end;
        }
        if let Some(s) = start {
            fields.push(&raw[s..pos]);
        }
        Self { fields, rest: &raw[pos..], crlf }
    }

    /// The line end the message uses.
    pub fn eol(&self) -> &'static str {
        if self.crlf { "\r\n" } else { "\n" }
    }

    /// Whether a field `name` (case-insensitive) is present.
    pub fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|f| field_is(f, name))
    }

    /// The raw value of the first field `name` (everything after the colon, unfolded lines
    /// joined, trimmed), if present.
    pub fn value(&self, name: &str) -> Option<String> {
        let field = self.fields.iter().find(|f| field_is(f, name))?;
        let colon = field.iter().position(|&b| b == b':')?;
        let value = String::from_utf8_lossy(&field[colon + 1..]);
        Some(value.split(['\r', '\n']).map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" "))
    }

    /// Removes every field `name`; returns how many there were.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        self.fields.retain(|f| !field_is(f, name));
        before - self.fields.len()
    }

    /// The message with `added` fields (`"Name: value"`, no line end) before the remaining ones.
    pub fn to_bytes(&self, added: &[String]) -> Vec<u8> {
        let eol = self.eol().as_bytes();
        let len = self.fields.iter().map(|f| f.len()).sum::<usize>()
            + added.iter().map(|a| a.len() + 2).sum::<usize>()
            + self.rest.len()
            + 2;
        let mut out = Vec::with_capacity(len);
        for field in added {
            out.extend_from_slice(field.as_bytes());
            out.extend_from_slice(eol);
        }
        for field in &self.fields {
            out.extend_from_slice(field);
            if !field.ends_with(b"\n") {
                out.extend_from_slice(eol);
            }
        }
        if self.rest.is_empty() {
            // A message that was all header still needs the blank line that ends the section.
            out.extend_from_slice(eol);
        } else {
            out.extend_from_slice(self.rest);
        }
        out
    }
}

fn field_is(field: &[u8], name: &str) -> bool {
    let Some(colon) = field.iter().position(|&b| b == b':') else { return false };
    let mut field_name = &field[..colon];
    while let [head @ .., b' ' | b'\t'] = field_name {
        field_name = head;
    }
    field_name.eq_ignore_ascii_case(name.as_bytes())
}

/// A header value safe to write on one line: line breaks and other control characters become
/// spaces.
pub fn one_line(value: &str) -> String {
    value.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: a@example.com\r\nTo: b@example.com,\r\n c@example.com\r\nBcc: hidden@example.com\r\nSubject: hi\r\n\r\nbody\r\nBcc: not a header\r\n";

    #[test]
    fn fields_with_continuations_are_removed_whole_and_the_body_kept() {
        let mut h = HeaderSection::parse(MSG);
        assert_eq!(h.value("to").as_deref(), Some("b@example.com, c@example.com"));
        assert_eq!(h.remove("BCC"), 1);
        assert!(!h.has("bcc"));
        let out = h.to_bytes(&["Date: now".into()]);
        assert_eq!(
            out,
            b"Date: now\r\nFrom: a@example.com\r\nTo: b@example.com,\r\n c@example.com\r\nSubject: hi\r\n\r\nbody\r\nBcc: not a header\r\n"
        );
    }

    #[test]
    fn bare_lf_messages_stay_bare_lf_and_a_headers_only_message_gets_its_blank_line() {
        let h = HeaderSection::parse(b"Subject: x\nX-A: 1\n\nbody\n");
        assert_eq!(h.to_bytes(&["From: r@example.com".into()]), b"From: r@example.com\nSubject: x\nX-A: 1\n\nbody\n");
        let h = HeaderSection::parse(b"Subject: only\r\n");
        assert_eq!(h.to_bytes(&[]), b"Subject: only\r\n\r\n");
        let h = HeaderSection::parse(b"");
        assert_eq!(h.to_bytes(&["Date: d".into()]), b"Date: d\n\n");
    }

    #[test]
    fn names_match_whole_and_with_space_before_the_colon() {
        let h = HeaderSection::parse(b"From : a@example.com\r\nFromage: no\r\n\r\n");
        assert!(h.has("from"));
        assert_eq!(h.value("from").as_deref(), Some("a@example.com"));
        assert!(!h.has("fro"));
        assert!(h.has("fromage"));
        assert_eq!(one_line("a\r\nb\tc "), "a  b c");
    }
}
