//! EHLO and HELO.

use super::Protocol;
use super::reply::{Reply, write_multiline};

impl Protocol {
    /// `EHLO`: resets any transaction and lists the extensions (our own greeting line, not
    /// smtp-proto's `EhloResponse::write`, whose first line is a joke).
    pub(super) fn ehlo(&mut self, host: String, out: &mut Vec<u8>) {
        self.tx = None;
        let first = format!("{} Hello {}", self.cfg.hostname, sanitize(&host));
        self.helo = Some(host);
        let size = format!("SIZE {}", self.cfg.max_message_size);
        let mut lines = vec![first.as_str(), "PIPELINING", &size, "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"];
        if self.starttls_offered() {
            lines.push("STARTTLS");
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN");
        }
        write_multiline(out, 250, &lines);
    }

    /// `HELO`: plain SMTP, no extension list.
    pub(super) fn helo(&mut self, host: String, out: &mut Vec<u8>) {
        self.tx = None;
        Reply::plain(250, format!("{} Hello {}", self.cfg.hostname, sanitize(&host))).write_to(out);
        self.helo = Some(host);
    }
}

/// The client's name as echoed back: printable ASCII only, at most 64 characters.
fn sanitize(host: &str) -> String {
    host.chars().filter(|c| c.is_ascii_graphic()).take(64).collect()
}
