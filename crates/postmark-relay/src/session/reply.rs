//! SMTP replies with RFC 3463 enhanced status codes.
//!
//! Every reply carries an enhanced status code except the three RFC 2034 and RFC 3463 leave
//! without one: the `220` greeting, the `250` answer to `EHLO`/`HELO` (its lines are capability
//! keywords), and the `354` go-ahead for `DATA` (enhanced codes only exist for classes 2, 4 and 5).

use std::fmt::Write as _;

/// One SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The enhanced status code (`class.subject.detail`), if the reply carries one.
    pub enhanced: Option<&'static str>,
    /// The text after the codes (one line, no CR or LF).
    pub text: String,
    /// Whether the text may hold UTF-8 (RFC 6531 §3.7.4.2: in a transaction the client began
    /// with `SMTPUTF8`), e.g. to name an internationalized address as it was sent.
    pub utf8: bool,
}

impl Reply {
    /// A reply with an enhanced status code.
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Self {
        Self { code, enhanced: Some(enhanced), text: text.into(), utf8: false }
    }

    /// This reply with its text in UTF-8 (printable characters only; see [`Reply::utf8`]).
    pub fn in_utf8(mut self) -> Self {
        self.utf8 = true;
        self
    }

    /// A reply without an enhanced status code (greeting, EHLO/HELO, 354).
    pub fn plain(code: u16, text: impl Into<String>) -> Self {
        Self { code, enhanced: None, text: text.into(), utf8: false }
    }

    /// Whether this is a positive completion (2xx).
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// Appends the reply, CRLF-terminated, to `out`. The text is made a valid RFC 5321
    /// `textstring` (HT, SP and printable ASCII): CR and LF become spaces, so a reason taken from
    /// elsewhere can never break the reply framing, and anything else outside the set (control
    /// characters, DEL, non-ASCII echoed from a client) becomes `?`. With [`Reply::utf8`]
    /// printable non-ASCII characters stay (RFC 6531's `textstring` with UTF-8).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut line = String::with_capacity(16 + self.text.len());
        let _ = write!(line, "{}", self.code);
        if let Some(esc) = self.enhanced {
            let _ = write!(line, " {esc}");
        }
        if !self.text.is_empty() {
            line.push(' ');
            let utf8 = self.utf8;
            line.extend(
                self.text.chars().map(|c| if utf8 && !c.is_ascii() && !c.is_control() { c } else { text_char(c) }),
            );
        }
        line.push_str("\r\n");
        out.extend_from_slice(line.as_bytes());
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(esc) = self.enhanced {
            write!(f, " {esc}")?;
        }
        write!(f, " {}", self.text)
    }
}

/// Maps a character to one allowed in reply text.
fn text_char(c: char) -> char {
    match c {
        '\r' | '\n' => ' ',
        '\t' | ' '..='~' => c,
        _ => '?',
    }
}

/// Writes a multi-line reply (`250-first`, …, `250 last`).
pub fn write_multiline(out: &mut Vec<u8>, code: u16, lines: &[&str]) {
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        let line: String = line.chars().map(text_char).collect();
        out.extend_from_slice(format!("{code}{sep}{line}\r\n").as_bytes());
    }
}

impl From<&crate::policy::Refusal> for Reply {
    fn from(r: &crate::policy::Refusal) -> Self {
        Reply::new(r.code, r.enhanced, r.text.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_formats_with_and_without_enhanced_code() {
        let mut out = Vec::new();
        Reply::new(452, "4.5.3", "Too many recipients").write_to(&mut out);
        Reply::plain(354, "End data with <CR><LF>.<CR><LF>").write_to(&mut out);
        assert_eq!(out, b"452 4.5.3 Too many recipients\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
    }

    #[test]
    fn reply_text_cannot_inject_lines() {
        let mut out = Vec::new();
        Reply::new(554, "5.6.0", "bad\r\n250 ok").write_to(&mut out);
        assert_eq!(out, b"554 5.6.0 bad  250 ok\r\n");
    }

    #[test]
    fn reply_text_is_printable_ascii_only() {
        let mut out = Vec::new();
        Reply::new(555, "5.5.4", "param \u{7f}\u{0}é\tok").write_to(&mut out);
        assert_eq!(out, b"555 5.5.4 param ???\tok\r\n");
        let mut out = Vec::new();
        write_multiline(&mut out, 250, &["höst\u{1b}", "SIZE 1"]);
        assert_eq!(out, b"250-h?st?\r\n250 SIZE 1\r\n");
    }

    #[test]
    fn a_utf8_reply_keeps_printable_non_ascii_and_nothing_else() {
        let mut out = Vec::new();
        Reply::new(553, "5.6.7", "jörg@bücher.de\u{7}\u{85}\r\n").in_utf8().write_to(&mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "553 5.6.7 jörg@bücher.de??  \r\n");
    }

    #[test]
    fn multiline_uses_dash_until_last_line() {
        let mut out = Vec::new();
        write_multiline(&mut out, 250, &["host", "PIPELINING", "SIZE 10"]);
        assert_eq!(out, b"250-host\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
    }
}
