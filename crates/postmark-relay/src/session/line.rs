//! Command lines: at most 512 octets including CRLF (RFC 5321 §4.5.3.1.4).
//!
//! smtp-proto's `RequestReceiver` allows 4096 octets for a line that spans reads, and any length
//! for a line that arrives whole in one read, so the limit is counted here: the receiver is only
//! ever given one line at a time, and a line that grows past the limit is refused (`500 5.5.2`)
//! the moment it does, before anything more of it is buffered.

use std::slice::Iter;

use smtp_proto::Request;
use smtp_proto::request::receiver::RequestReceiver;

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
            // An address without a domain (`MAIL FROM:<cron>`, `RCPT TO:<root>`, RFC 5321's
            // `<Postmaster>`): smtp-proto refuses it, but the relay's aliases and local_domain
            // can place it.
            Err(smtp_proto::Error::InvalidSenderAddress | smtp_proto::Error::InvalidRecipientAddress) => {
                bare_address(&self.line).unwrap_or(result)
            }
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

/// A domain no address of the relay's uses, to let smtp-proto read the parameters of a command
/// whose address is a bare name.
const PLACEHOLDER_DOMAIN: &str = "@bare.invalid";

/// `MAIL FROM:<name> [params]` or `RCPT TO:<name> [params]` where `name` has no domain, read as
/// smtp-proto reads the same command with a domain (so its parameters are checked as usual), then
/// with the bare name as the address.
fn bare_address(line: &[u8]) -> Option<Result<Request<String>, smtp_proto::Error>> {
    let text = std::str::from_utf8(line).ok()?;
    let (name, end) = bare_name(text)?;
    let patched = format!("{}{PLACEHOLDER_DOMAIN}{}", &text[..end], &text[end..]);
    let mut bytes = patched.as_bytes().iter();
    let parsed = RequestReceiver::default().ingest(&mut bytes).map(Request::into_owned);
    Some(match parsed {
        Ok(Request::Mail { mut from }) if from.address.ends_with(PLACEHOLDER_DOMAIN) => {
            from.address = name.to_owned();
            Ok(Request::Mail { from })
        }
        Ok(Request::Rcpt { mut to }) if to.address.ends_with(PLACEHOLDER_DOMAIN) => {
            to.address = name.to_owned();
            Ok(Request::Rcpt { to })
        }
        Ok(_) => return None,
        Err(e) => Err(e),
    })
}

/// The bare name of `MAIL FROM:<name>` / `RCPT TO:<name>`: letters, digits and
/// `.!#$%&'*+-/=?^_`{|}~` (an RFC 5322 dot-atom), with the offset just after it.
fn bare_name(line: &str) -> Option<(&str, usize)> {
    let prefix = ["MAIL FROM:", "RCPT TO:"]
        .into_iter()
        .find(|verb| line.get(..verb.len()).is_some_and(|start| start.eq_ignore_ascii_case(verb)))?;
    let rest = &line[prefix.len()..];
    let rest_trimmed = rest.trim_start();
    let open = line.len() - rest_trimmed.len();
    let after = rest_trimmed.strip_prefix('<')?;
    let close = after.find('>')?;
    let name = &after[..close];
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && name.chars().all(|c| c == '.' || atext(c));
    ok.then_some((name, open + 1 + close))
}

/// The local part of `RCPT TO:<name>` alone (smtp-proto reads `<Postmaster>` as `<>`).
fn bare_recipient(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line).ok()?;
    match bare_address(line)? {
        Ok(Request::Rcpt { to }) if text.get(..8)?.eq_ignore_ascii_case("RCPT TO:") => Some(to.address),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_recipients_are_read_and_nothing_else() {
        assert_eq!(bare_recipient(b"RCPT TO:<root>\r\n").as_deref(), Some("root"));
        assert_eq!(bare_recipient(b"rcpt to: <Postmaster>\r\n").as_deref(), Some("Postmaster"));
        assert_eq!(bare_recipient(b"RCPT TO:<www-data>\n").as_deref(), Some("www-data"));
        assert_eq!(bare_recipient(b"RCPT TO:<root> NOTIFY=NEVER\r\n").as_deref(), Some("root"));
        for bad in [
            &b"RCPT TO:<>\r\n"[..],
            b"RCPT TO:<a b>\r\n",
            b"RCPT TO:<.x>\r\n",
            b"MAIL FROM:<root>\r\n",
            b"RCPT TO:root\r\n",
        ] {
            assert_eq!(bare_recipient(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    fn read(line: &[u8]) -> Result<Request<String>, smtp_proto::Error> {
        let mut reader = CommandReader::default();
        reader.ingest(&mut line.iter())
    }

    #[test]
    fn bare_senders_keep_their_parameters() {
        match read(b"MAIL FROM:<cron> SIZE=1200 BODY=8BITMIME\r\n") {
            Ok(Request::Mail { from }) => {
                assert_eq!(from.address, "cron");
                assert_eq!(from.size, 1200);
                assert_ne!(from.flags & smtp_proto::MAIL_BODY_8BITMIME, 0);
            }
            other => panic!("{other:?}"),
        }
        match read(b"mail from: <www-data>\r\n") {
            Ok(Request::Mail { from }) => assert_eq!(from.address, "www-data"),
            other => panic!("{other:?}"),
        }
        // A bad parameter is still refused as smtp-proto refuses it for any address.
        assert!(read(b"MAIL FROM:<cron> SIZE=lots\r\n").is_err());
        for bad in
            [&b"MAIL FROM:<a b>\r\n"[..], b"MAIL FROM:<cron\r\n", b"MAIL FROM:<.cron>\r\n", b"MAIL FROM:cron\r\n"]
        {
            assert!(!matches!(read(bad), Ok(Request::Mail { .. })), "{}", String::from_utf8_lossy(bad));
        }
    }
}
