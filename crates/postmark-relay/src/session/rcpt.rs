//! RCPT TO.

use smtp_proto::RcptTo;

use super::intl::{self, Side};
use super::mail::fold;
use super::reply::Reply;
use super::{Event, Protocol};

impl Protocol {
    /// `RCPT TO:<addr>`: at most `max_recipients` per transaction (Postmark's 50); the next one
    /// gets `452 4.5.3`, which tells the client to send the rest in another transaction.
    pub(super) fn rcpt(&mut self, to: RcptTo<String>, out: &mut Vec<u8>) -> Option<Event> {
        let max = self.cfg.max_recipients;
        let Some(tx) = self.tx.as_mut() else {
            return self.error(out, Reply::new(503, "5.5.1", "Send MAIL FROM first"));
        };
        let address = to.address;
        // smtp-proto turns invalid UTF-8 into U+FFFD; such an address is not the one sent.
        if address.contains('\u{fffd}') {
            return self.error(out, Reply::new(501, "5.1.3", "Invalid recipient address (not UTF-8)"));
        }
        if address.is_empty() {
            return self.error(out, Reply::new(501, "5.1.3", "Recipient must be a full address (local@domain)"));
        }
        if !tx.smtputf8 && !address.is_ascii() {
            return self.error(out, Reply::new(553, "5.6.7", "Non-ASCII address requires SMTPUTF8"));
        }
        let address = match intl::ascii_address(&address, Side::Recipient) {
            Ok(ascii) => ascii.into_owned(),
            Err(reply) => return self.error(out, reply),
        };
        // Local names (`root`) are qualified or expanded by the aliases; a bare name with
        // neither is refused with how to configure one.
        let expanded = match self.policy.recipient(&address) {
            Ok(list) => list,
            Err(refusal) => return self.error(out, Reply::from(&refusal)),
        };
        if let Some(bad) = expanded.iter().find(|a| !postmark_core::limits::is_valid_address(a)) {
            let text = format!(
                "Postmark cannot send to {bad} (it takes letters, digits and .!#$%&'*+-/=^_`{{|}}~ before the @, \
                 no quoted or non-ASCII addresses, and a domain name after it)"
            );
            return self.error(out, Reply::new(553, "5.1.3", text));
        }
        let tx = self.tx.as_mut()?;
        let new: Vec<String> = {
            let mut new: Vec<String> = Vec::with_capacity(expanded.len());
            for a in expanded {
                let folded = fold(&a);
                if !tx.rcpt_to.iter().chain(new.iter()).any(|r| fold(r) == folded) {
                    new.push(a);
                }
            }
            new
        };
        if new.is_empty() {
            Reply::new(250, "2.1.5", "Recipient OK (duplicate ignored)").write_to(out);
            return None;
        }
        if tx.rcpt_to.len() + new.len() > max {
            // Not counted as a client error: this is the normal way to split a large send.
            self.metrics.rejected(crate::metrics::Reject::Recipients);
            Reply::new(
                452,
                "4.5.3",
                format!("Too many recipients; at most {max} per message, send the rest separately"),
            )
            .write_to(out);
            return None;
        }
        let n = new.len();
        tx.rcpt_to.extend(new);
        if n > 1 || tx.rcpt_to.last().is_none_or(|a| a != &address) {
            Reply::new(250, "2.1.5", format!("Recipient OK ({address} is {n} address(es))")).write_to(out);
        } else {
            Reply::new(250, "2.1.5", "Recipient OK").write_to(out);
        }
        None
    }
}
