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
        *bytes = input[consumed..].iter();
        match &result {
            Err(smtp_proto::Error::NeedsMoreData { .. }) => self.line_len += consumed,
            _ => self.line_len = 0,
        }
        result
    }

    /// Whether part of a command line has arrived (the command timeout runs).
    pub(crate) fn mid_line(&self) -> bool {
        self.line_len > 0
    }
}
