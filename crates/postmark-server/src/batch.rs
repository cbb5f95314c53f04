//! Batch sending beyond Postmark's 500-message limit, with one typed result per message.

use std::sync::Arc;

use crate::{Error, ErrorCode, ServerClient, types};

/// The most messages Postmark accepts in one `/email/batch` or `/email/batchWithTemplates` request.
pub const MAX_BATCH: usize = 500;

/// Why one message of a batch was not sent.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BatchItemError {
    /// Postmark refused this message inside an otherwise successful (HTTP 200) batch.
    #[error("Postmark refused the message with ErrorCode {code}: {message}")]
    Rejected {
        /// The item's `ErrorCode`.
        code: ErrorCode,
        /// The item's `Message`.
        message: String,
    },
    /// The request that carried this message failed as a whole (shared by every message of that chunk).
    #[error("the batch request failed: {0}")]
    RequestFailed(Arc<Error>),
    /// Postmark's answer had no result for this message.
    #[error("Postmark's answer had no result for this message")]
    MissingResult,
    /// Not sent, because an earlier chunk's request failed.
    #[error("not sent because an earlier batch request failed")]
    NotAttempted,
}

impl BatchItemError {
    /// The item's or the request's `ErrorCode`, if Postmark sent one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            BatchItemError::Rejected { code, .. } => Some(*code),
            BatchItemError::RequestFailed(e) => e.error_code(),
            _ => None,
        }
    }

    /// Whether Postmark refused a recipient as inactive (ErrorCode 406).
    pub fn is_inactive_recipient(&self) -> bool {
        self.error_code() == Some(ErrorCode::InactiveRecipient)
    }

    /// Whether this message can be sent again without risking a duplicate: it was never attempted, the whole request
    /// failed in a retryable way, or the item was throttled (429) or hit maintenance (100).
    pub fn is_retryable(&self) -> bool {
        match self {
            BatchItemError::NotAttempted => true,
            BatchItemError::RequestFailed(e) => e.is_retryable(),
            BatchItemError::Rejected { code, .. } => {
                matches!(code, ErrorCode::RateLimitExceeded | ErrorCode::Maintenance)
            }
            BatchItemError::MissingResult => false,
        }
    }
}

/// The outcome of one message of a batch.
pub type BatchResult = Result<types::SendEmailResponse, BatchItemError>;

impl ServerClient {
    /// Sends any number of messages through `/email/batch`, [`MAX_BATCH`] per request, in order.
    ///
    /// Returns one result per input message, in input order. A message Postmark refused inside an HTTP 200 answer
    /// is an `Err(BatchItemError::Rejected)`, never hidden in an `Ok`. When a request fails as a whole, its messages
    /// get `RequestFailed` and the later chunks are not sent (`NotAttempted`), so the caller can tell exactly which
    /// messages may be retried.
    pub async fn send_batch(&self, messages: Vec<types::SendEmailRequest>) -> Vec<BatchResult> {
        send_chunks(messages, |chunk| async move { self.send_email_batch().body(chunk).send().await }).await
    }

    /// Like [`send_batch`](Self::send_batch) for templated messages (`/email/batchWithTemplates`).
    pub async fn send_batch_with_templates(
        &self,
        messages: Vec<types::SendEmailWithTemplateRequest>,
    ) -> Vec<BatchResult> {
        send_chunks(messages, |chunk| async move {
            let body = types::SendEmailBatchWithTemplatesRequest { messages: chunk };
            self.send_email_batch_with_templates().body(body).send().await
        })
        .await
    }
}

async fn send_chunks<M, F, Fut>(messages: Vec<M>, mut send: F) -> Vec<BatchResult>
where
    F: FnMut(Vec<M>) -> Fut,
    Fut: Future<
        Output = Result<
            progenitor_client::ResponseValue<Vec<types::SendEmailResponse>>,
            progenitor_client::Error<postmark_core::ApiErrorBody>,
        >,
    >,
{
    let total = messages.len();
    let mut results = Vec::with_capacity(total);
    let mut rest = messages.into_iter();
    loop {
        let chunk: Vec<M> = rest.by_ref().take(MAX_BATCH).collect();
        if chunk.is_empty() {
            break;
        }
        let sent = chunk.len();
        match send(chunk).await {
            Ok(answer) => {
                let mut items = answer.into_inner().into_iter();
                for _ in 0..sent {
                    results.push(match items.next() {
                        Some(item) if item.error_code == 0 => Ok(item),
                        Some(item) => Err(BatchItemError::Rejected {
                            code: ErrorCode::from_i64(item.error_code),
                            message: item.message,
                        }),
                        None => Err(BatchItemError::MissingResult),
                    });
                }
            }
            Err(e) => {
                let e = Arc::new(Error::from(e));
                results.extend((0..sent).map(|_| Err(BatchItemError::RequestFailed(e.clone()))));
                results.extend((results.len()..total).map(|_| Err(BatchItemError::NotAttempted)));
                break;
            }
        }
    }
    results
}
