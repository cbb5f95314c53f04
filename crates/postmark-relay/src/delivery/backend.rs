//! What the worker sends with: the three paths behind one type, and what an attempt comes to.

#[cfg(test)]
use super::scripted;
use super::{api, dry_run, smtp};
use crate::metrics::{Metrics, Path};
use crate::secrets::Credentials;
use crate::spool::StoredMessage;
use postmark_server::types::SendEmailRequest;

/// The result of one attempt for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted upstream; `reference` is Postmark's MessageID, the SMTP reply, or the dry-run file.
    Delivered {
        /// What identifies the accepted message upstream.
        reference: String,
    },
    /// Failed for now; retry later.
    Transient(String),
    /// Failed for good: dead letter.
    Permanent(String),
    /// The configuration or account is at fault: pause delivery, keep the message.
    Operator(String),
    /// SMTP answered differently per recipient.
    PerRecipient(RecipientOutcome),
}

/// Per-recipient results of an SMTP attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientOutcome {
    /// Accepted recipients.
    pub delivered: Vec<String>,
    /// The final reply for the accepted recipients.
    pub reference: String,
    /// Recipients answered with 4xx.
    pub retry: Vec<String>,
    /// The 4xx reason.
    pub retry_reason: String,
    /// Recipients answered with 5xx.
    pub failed: Vec<String>,
    /// The 5xx reason.
    pub failed_reason: String,
}

impl RecipientOutcome {
    /// Records how a copy (or transaction) for `recipients` fared. An operator problem is not a
    /// per-recipient result: its reason is handed back for the caller to decide.
    pub(crate) fn record(&mut self, recipients: &[String], outcome: Outcome) -> Option<String> {
        match outcome {
            Outcome::Delivered { reference } => {
                self.delivered.extend_from_slice(recipients);
                if self.reference.is_empty() {
                    self.reference = reference;
                }
            }
            Outcome::Transient(reason) => {
                self.retry.extend_from_slice(recipients);
                self.retry_reason = reason;
            }
            Outcome::Permanent(reason) => {
                self.failed.extend_from_slice(recipients);
                self.failed_reason = reason;
            }
            Outcome::PerRecipient(r) => {
                self.delivered.extend(r.delivered);
                if self.reference.is_empty() {
                    self.reference = r.reference;
                }
                if !r.retry.is_empty() {
                    self.retry.extend(r.retry);
                    self.retry_reason = r.retry_reason;
                }
                if !r.failed.is_empty() {
                    self.failed.extend(r.failed);
                    self.failed_reason = r.failed_reason;
                }
            }
            Outcome::Operator(reason) => return Some(reason),
        }
        None
    }
}

/// Why a backend cannot be set up or switched to new credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The HTTP client cannot be built.
    #[error("cannot set up the API client: {0}")]
    ApiClient(#[source] postmark_core::Error),
    /// `--smtp-ca` cannot be used.
    #[error("--smtp-ca {}: {problem}", path.display())]
    Ca {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// rustls cannot be set up.
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    /// The API path needs a server token.
    #[error("no server token configured")]
    NoServerToken,
    /// The SMTP path needs an SMTP token or a server token.
    #[error("no SMTP token and no server token configured")]
    NoSmtpCredentials,
}

/// How the worker sends: one of the three paths.
#[derive(Debug)]
pub enum Backend {
    /// Write what would be sent under `<spool>/dry-run/`.
    DryRun(dry_run::DryRun),
    /// Postmark's HTTP API.
    Api(api::Api),
    /// Postmark's SMTP service.
    Smtp(smtp::Smtp),
    /// Outcomes given in advance, for tests of the worker.
    #[cfg(test)]
    Scripted(scripted::Scripted),
}

impl Backend {
    /// Most messages, and most raw bytes, handed over in one call.
    pub(super) fn batch_limits(&self) -> (usize, usize) {
        match self {
            Backend::Api(b) => b.batch_limits(),
            Backend::DryRun(_) => (50, 64 * 1024 * 1024),
            // Enough for every connection to carry several messages of one batch.
            Backend::Smtp(_) => (200, 16 * 1024 * 1024),
            #[cfg(test)]
            Backend::Scripted(_) => (1, usize::MAX),
        }
    }

    /// The `path` label of its metrics.
    pub fn path(&self) -> Path {
        match self {
            Backend::DryRun(_) => Path::DryRun,
            Backend::Api(_) => Path::Api,
            Backend::Smtp(_) => Path::Smtp,
            #[cfg(test)]
            Backend::Scripted(_) => Path::DryRun,
        }
    }

    /// Uses new credentials from now on (rotation without a restart).
    pub fn set_credentials(&mut self, credentials: &Credentials) -> Result<(), BackendError> {
        match self {
            Backend::DryRun(_) => Ok(()),
            Backend::Api(b) => b.set_credentials(credentials),
            Backend::Smtp(b) => b.set_credentials(credentials),
            #[cfg(test)]
            Backend::Scripted(_) => Ok(()),
        }
    }

    /// Sends `messages`; `requests` holds, per message, its `/email` requests when they were
    /// built at accept time (the API path uses them instead of converting again).
    pub(super) async fn deliver(
        &mut self,
        messages: &[StoredMessage],
        requests: Vec<Option<Vec<SendEmailRequest>>>,
        metrics: &Metrics,
    ) -> Vec<Outcome> {
        match self {
            Backend::DryRun(b) => b.deliver(messages, metrics).await,
            Backend::Api(b) => b.deliver(messages, requests, metrics).await,
            Backend::Smtp(b) => b.deliver(messages, metrics).await,
            #[cfg(test)]
            Backend::Scripted(b) => b.deliver(messages),
        }
    }
}
