//! The SMTP envelope: who the message is from and to, as given by `MAIL FROM` and `RCPT TO`.

use serde::{Deserialize, Serialize};

/// The SMTP envelope of one message.
///
/// `mail_from` is the reverse-path without angle brackets (empty for the null sender `<>`);
/// `rcpt_to` holds every accepted forward-path, in the order the client sent them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Envelope {
    /// Reverse-path of `MAIL FROM`, without the angle brackets; empty for `<>`.
    pub mail_from: String,
    /// Forward-paths of every accepted `RCPT TO`, in order, without angle brackets.
    pub rcpt_to: Vec<String>,
}

impl Envelope {
    /// Builds an envelope from a sender and a list of recipients.
    pub fn new(mail_from: impl Into<String>, rcpt_to: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { mail_from: mail_from.into(), rcpt_to: rcpt_to.into_iter().map(Into::into).collect() }
    }
}

/// What the relay decided about a message when it accepted it, stored in the spool with the
/// envelope, so delivery (on either path, and after a restart) follows the same decision instead
/// of deciding again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    /// The message stream: the message's `X-PM-Message-Stream` header (RFC 2047-decoded), else
    /// `--message-stream`; `None` leaves the choice to Postmark (its default transactional
    /// stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// A dead-letter notice the relay wrote itself: never the subject of another notice.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notice: bool,
}

/// The path a message takes to Postmark; validation depends on it (the API path has limits the SMTP
/// path does not, e.g. the 10 MB limit applies after base64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Postmark's HTTP API (`/email`, `/email/batch`) with a server token.
    Api,
    /// Postmark's SMTP service (STARTTLS on port 587).
    Smtp,
}

impl Via {
    /// The lowercase name used on the command line and in the config file.
    pub const fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Smtp => "smtp",
        }
    }
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
