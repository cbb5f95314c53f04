//! MAIL FROM.

use std::borrow::Cow;

use smtp_proto::{MAIL_BODY_BINARYMIME, MAIL_SMTPUTF8, MailFrom};

use super::intl::{self, Side};
use super::reply::Reply;
use super::{Event, Protocol, Transaction};

impl Protocol {
    /// `MAIL FROM:<addr> [SIZE=n] [BODY=7BIT|8BITMIME] [SMTPUTF8]`.
    pub(super) fn mail(&mut self, from: MailFrom<String>, out: &mut Vec<u8>) -> Option<Event> {
        if self.helo.is_none() {
            return self.error(out, Reply::new(503, "5.5.1", "Send EHLO or HELO first"));
        }
        if self.needs_auth() {
            return self.error(out, Reply::new(530, "5.7.0", "Authentication required"));
        }
        if self.tx.is_some() {
            return self.error(out, Reply::new(503, "5.5.1", "Sender already specified"));
        }
        if from.flags & MAIL_BODY_BINARYMIME != 0 {
            return self.error(out, Reply::new(555, "5.5.4", "BODY=BINARYMIME is not supported"));
        }
        if from.size > self.cfg.max_message_size {
            return self.error(
                out,
                Reply::new(
                    552,
                    "5.3.4",
                    format!("Message size exceeds fixed maximum message size of {} bytes", self.cfg.max_message_size),
                ),
            );
        }
        // smtp-proto turns invalid UTF-8 into U+FFFD; such an address is not the one sent.
        if from.address.contains('\u{fffd}') {
            return self.error(out, Reply::new(501, "5.1.7", "Invalid sender address (not UTF-8)"));
        }
        let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
        if !smtputf8 && !from.address.is_ascii() {
            return self.error(out, Reply::new(553, "5.6.7", "Non-ASCII address requires SMTPUTF8"));
        }
        let from = match intl::ascii_address(&from.address, Side::Sender) {
            Ok(Cow::Owned(ascii)) => MailFrom { address: ascii, ..from },
            Ok(Cow::Borrowed(_)) => from,
            Err(reply) => return self.error(out, reply),
        };
        // A bare name (`MAIL FROM:<cron>`) is qualified with local_domain, and refused without
        // one: RFC 5321 wants a domain, and Postmark would have none to check.
        if !from.address.is_empty() && !from.address.contains('@') && !self.policy.qualify(&from.address).contains('@')
        {
            return self.error(
                out,
                Reply::new(
                    501,
                    "5.1.7",
                    "Sender address has no domain; set local_domain in the relay's configuration to qualify bare names",
                ),
            );
        }
        // allowed_senders and rewrite_from apply to the envelope sender here, to the header From
        // at the end of DATA.
        let mail_from = match self.policy.sender(&from.address) {
            Ok(address) => address,
            Err(refusal) => return self.error(out, Reply::from(&refusal)),
        };
        self.tx = Some(Transaction { mail_from, rcpt_to: Vec::new(), smtputf8 });
        Reply::new(250, "2.1.0", "Sender OK").write_to(out);
        None
    }
}

/// Lowercased copy for duplicate detection (the domain is case-insensitive, and in practice so
/// is the local part).
pub(super) fn fold(addr: &str) -> Cow<'_, str> {
    if addr.chars().any(|c| c.is_uppercase()) { Cow::Owned(addr.to_lowercase()) } else { Cow::Borrowed(addr) }
}
