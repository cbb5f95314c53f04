//! Dead letters are not silent: with `dead_letter_notify` set, each message given up is followed
//! by one notice to the operator, sent through the same upstream as any other message (it is
//! spooled, retried and delivered like one).
//!
//! The notice names the queue id, the reason, the attempts, the envelope and what to do, and
//! carries the original message as a `message/rfc822` attachment, so nothing is unrecoverable
//! even when the spool is lost later. An original over [`MAX_ATTACHED`] bytes is attached as its
//! header section only (`text/rfc822-headers`); the full message stays in the spool's `dead/`.
//!
//! Notices never notify about themselves: a notice that dies is logged and counted like any
//! dead letter, nothing more. At most `notify_per_hour` notices are sent per hour (a token
//! bucket); the next notice after a quiet spell says how many dead letters went unnotified.

use std::time::Duration;

use base64::Engine as _;

use crate::envelope::Envelope;
use crate::spool::{QueueId, StoredMessage};

/// Largest original attached whole: with base64 and the notice text it stays under Postmark's
/// 10 MB on the API path.
pub const MAX_ATTACHED: usize = 7_000_000;

/// Where notices go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySettings {
    /// `dead_letter_notify`: the operator's address.
    pub to: String,
    /// `notify_from`: a sender Postmark has verified.
    pub from: String,
    /// `notify_per_hour`: most notices per hour.
    pub per_hour: u32,
}

/// Why a message died, as the notice tells it.
#[derive(Debug, Clone, Copy)]
pub struct Death<'a> {
    /// The dead letter's id (a copy's own id when only some recipients died).
    pub id: &'a QueueId,
    /// The reason given up.
    pub reason: &'a str,
    /// Attempts made.
    pub attempts: u32,
    /// The recipients it was not delivered to.
    pub recipients: &'a [String],
}

/// Builds notices and keeps to the rate.
#[derive(Debug)]
pub struct Notifier {
    settings: NotifySettings,
    hostname: String,
    tokens: f64,
    refilled_ms: u64,
    suppressed: u64,
}

impl Notifier {
    /// A notifier allowed `settings.per_hour` notices at once, refilled over the hour.
    pub fn new(settings: NotifySettings, hostname: impl Into<String>, now_ms: u64) -> Self {
        let tokens = f64::from(settings.per_hour);
        Self { settings, hostname: hostname.into(), tokens, refilled_ms: now_ms, suppressed: 0 }
    }

    /// The notice for a dead letter, as the message to spool with its envelope; `None` when the
    /// dead letter was itself a notice, or the hourly rate is used up (then it is counted and
    /// mentioned in the next notice).
    pub fn notice(&mut self, msg: &StoredMessage, death: Death<'_>, now_ms: u64) -> Option<(Envelope, Vec<u8>)> {
        if msg.header.routing.as_ref().is_some_and(|r| r.notice) {
            return None;
        }
        let per_ms = f64::from(self.settings.per_hour) / Duration::from_secs(3600).as_millis() as f64;
        self.tokens = (self.tokens + now_ms.saturating_sub(self.refilled_ms) as f64 * per_ms)
            .min(f64::from(self.settings.per_hour));
        self.refilled_ms = now_ms;
        if self.tokens < 1.0 {
            self.suppressed += 1;
            tracing::warn!(
                queue_id = %death.id,
                suppressed = self.suppressed,
                "dead-letter notice not sent: notify_per_hour reached"
            );
            return None;
        }
        self.tokens -= 1.0;
        let suppressed = std::mem::take(&mut self.suppressed);
        let envelope = Envelope::new(self.settings.from.clone(), [self.settings.to.clone()]);
        Some((envelope, self.render(msg, death, suppressed, now_ms)))
    }

    fn render(&self, msg: &StoredMessage, death: Death<'_>, suppressed: u64, now_ms: u64) -> Vec<u8> {
        let boundary = format!("=_postmark-relay-notice_{:016x}", rand::random::<u64>());
        let original = &msg.raw;
        let whole = original.len() <= MAX_ATTACHED;
        let subject = crate::convert::parse(original)
            .and_then(|m| m.subject().map(|s| s.chars().filter(|c| !c.is_control()).take(80).collect::<String>()))
            .unwrap_or_default();

        let mut text = format!(
            "postmark-relay gave up on a message; it is kept in the spool as a dead letter.\n\n\
             Queue id:   {id}\n\
             Reason:     {reason}\n\
             Attempts:   {attempts}\n\
             Sender:     {sender}\n\
             Recipients: {recipients}\n\
             Subject:    {subject}\n\
             Received:   {received}\n\n",
            id = death.id,
            reason = death.reason,
            attempts = death.attempts,
            sender = if msg.header.envelope.mail_from.is_empty() { "<>" } else { &msg.header.envelope.mail_from },
            recipients = death.recipients.join(", "),
            received = rfc2822(msg.header.received_ms),
        );
        if whole {
            text.push_str("The original message is attached.\n\n");
        } else {
            text.push_str(&format!(
                "The original message ({} bytes) is too big to attach; its headers are attached, and the whole \
                 message is in the spool.\n\n",
                original.len()
            ));
        }
        text.push_str(&format!(
            "On the relay's host:\n  postmark-relay queue show {id}\n  postmark-relay queue retry {id}    \
             (sends it again, once the cause is fixed)\n",
            id = death.id
        ));
        if suppressed > 0 {
            text.push_str(&format!(
                "\n{suppressed} more dead letters were not notified (at most {} notices an hour); \
                 `postmark-relay queue list` shows them all.\n",
                self.settings.per_hour
            ));
        }

        let mut out = Vec::with_capacity(original.len() + text.len() + 1024);
        let mut line = |s: &str| {
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        line(&format!("From: postmark-relay <{}>", self.settings.from));
        line(&format!("To: {}", self.settings.to));
        line(&format!("Subject: {}", encode_subject(&format!("Undeliverable: {subject} [{}]", death.id))));
        line(&format!("Date: {}", rfc2822(now_ms)));
        line(&format!("Message-ID: <{}.dead-letter-notice@{}>", death.id, self.hostname));
        line("Auto-Submitted: auto-generated");
        line("X-Relay-Notice: dead-letter");
        line("MIME-Version: 1.0");
        line(&format!("Content-Type: multipart/mixed; boundary=\"{boundary}\""));
        line("");
        line(&format!("--{boundary}"));
        line("Content-Type: text/plain; charset=utf-8");
        line("Content-Transfer-Encoding: base64");
        line("");
        let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        for chunk in encoded.as_bytes().chunks(76) {
            line(std::str::from_utf8(chunk).unwrap_or_default());
        }
        line(&format!("--{boundary}"));
        if whole {
            line("Content-Type: message/rfc822");
            line(&format!("Content-Disposition: attachment; filename=\"{}.eml\"", death.id));
            line("");
            out.extend_from_slice(original);
        } else {
            line("Content-Type: text/rfc822-headers");
            line(&format!("Content-Disposition: attachment; filename=\"{}-headers.txt\"", death.id));
            line("");
            let end =
                original.windows(4).position(|w| w == b"\r\n\r\n").map_or(original.len().min(64 * 1024), |p| p + 2);
            out.extend_from_slice(&original[..end]);
        }
        if !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        out
    }
}

/// An RFC 5322 date (UTC) for milliseconds since the Unix epoch.
pub(crate) fn rfc2822(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(0);
    chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default().format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// A subject as a header value: as it is when ASCII, else an RFC 2047 encoded word.
fn encode_subject(subject: &str) -> String {
    if subject.is_ascii() {
        subject.to_owned()
    } else {
        format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(subject.as_bytes()))
    }
}

#[cfg(test)]
mod tests;
