//! Command lines: at most 512 octets including CRLF (RFC 5321 §4.5.3.1.4).
//!
//! smtp-proto's `RequestReceiver` allows 4096 octets for a line that spans reads, and any length
//! for a line that arrives whole in one read, so the limit is counted here: the receiver is only
//! ever given one line at a time, and a line that grows past the limit is refused (`500 5.5.2`)
//! the moment it does, before anything more of it is buffered.

use std::slice::Iter;

use smtp_proto::request::receiver::RequestReceiver;
use smtp_proto::{RcptTo, Request};

/// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
pub(crate) const MAX_COMMAND_LINE: usize = 512;

/// smtp-proto's request receiver behind a line-length limit.
#[derive(Default)]
pub(crate) struct CommandReader {
    receiver: RequestReceiver,
    /// Octets of the current, unfinished line received so far.
    line_len: usize,
    /// The current line's octets (at most [`MAX_COMMAND_LINE`]), to read `RCPT TO:<root>`.
    line: Vec<u8>,
}

impl CommandReader {
    /// Parses the next command from `bytes`. A line over [`MAX_COMMAND_LINE`] gives
    /// `Error::ResponseTooLong` with the rest of that line left in `bytes` (the caller skips it
    /// up to its LF) and the reader reset.
    pub(crate) fn ingest(&mut self, bytes: &mut Iter<'_, u8>) -> Result<Request<String>, smtp_proto::Error> {
        let input = bytes.as_slice();
        let take = input.iter().position(|&b| b == b'\n').map_or(input.len(), |p| p + 1);
        if self.line_len + take > MAX_COMMAND_LINE {
            *self = Self::default();
            return Err(smtp_proto::Error::ResponseTooLong);
        }
        let mut line = input[..take].iter();
        let result = self.receiver.ingest(&mut line).map(Request::into_owned);
        let consumed = take - line.as_slice().len();
        self.line.extend_from_slice(&input[..consumed]);
        *bytes = input[consumed..].iter();
        let result = match result {
            Err(smtp_proto::Error::NeedsMoreData { .. }) => {
                self.line_len += consumed;
                return result;
            }
            // A recipient without a domain (`RCPT TO:<root>`, RFC 5321's `<Postmaster>`):
            // smtp-proto refuses it, but the relay's aliases and local_domain can place it.
            Err(smtp_proto::Error::InvalidRecipientAddress) => match bare_recipient(&self.line) {
                Some(address) => Ok(Request::Rcpt { to: RcptTo { address, orcpt: None, rrvs: 0, flags: 0 } }),
                None => result,
            },
            // smtp-proto reads `<Postmaster>` as `<>`; the relay routes it like any local name.
            Ok(Request::Rcpt { mut to }) if to.address.is_empty() => {
                if let Some(name) = bare_recipient(&self.line) {
                    to.address = name;
                }
                Ok(Request::Rcpt { to })
            }
            other => other,
        };
        self.line_len = 0;
        self.line.clear();
        result
    }

    /// Whether part of a command line has arrived (the command timeout runs).
    pub(crate) fn mid_line(&self) -> bool {
        self.line_len > 0
    }
}

/// The local part of `RCPT TO:<name>` when the address has no domain: letters, digits and
/// `.!#$%&'*+-/=?^_`{|}~` (an RFC 5322 dot-atom), without parameters.
fn bare_recipient(line: &[u8]) -> Option<String> {
    let line = std::str::from_utf8(line).ok()?.trim_end_matches(['\r', '\n']);
    let (verb, rest) = line.split_at_checked(8)?;
    if !verb.eq_ignore_ascii_case("RCPT TO:") {
        return None;
    }
    let name = rest.trim_start().strip_prefix('<')?.strip_suffix('>')?;
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && name.chars().all(|c| c == '.' || atext(c));
    ok.then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_recipients_are_read_and_nothing_else() {
        assert_eq!(bare_recipient(b"RCPT TO:<root>\r\n").as_deref(), Some("root"));
        assert_eq!(bare_recipient(b"rcpt to: <Postmaster>\r\n").as_deref(), Some("Postmaster"));
        assert_eq!(bare_recipient(b"RCPT TO:<www-data>\n").as_deref(), Some("www-data"));
        for bad in [
            &b"RCPT TO:<>\r\n"[..],
            b"RCPT TO:<a b>\r\n",
            b"RCPT TO:<.x>\r\n",
            b"RCPT TO:<root> NOTIFY=NEVER\r\n",
            b"MAIL FROM:<root>\r\n",
            b"RCPT TO:root\r\n",
        ] {
            assert_eq!(bare_recipient(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
