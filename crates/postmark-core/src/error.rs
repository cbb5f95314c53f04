//! The one typed error both Postmark clients return.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ErrorCode;
use crate::hooks::{METHOD_HEADER, OPERATION_HEADER, SYNTHETIC_HEADER};

/// Postmark's standard response body, `{"ErrorCode": 406, "Message": "..."}`.
///
/// It is the body of every error response, and the success body of deletes, bypasses, retries and resends
/// (`ErrorCode` 0). The generated code of both clients uses this type for the spec's `ErrorResponse` schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// Postmark's error code; 0 means success.
    #[serde(rename = "ErrorCode")]
    pub error_code: i64,
    /// Human-readable explanation.
    #[serde(rename = "Message", default)]
    pub message: String,
}

impl ApiErrorBody {
    /// The code as a typed [`ErrorCode`].
    pub fn code(&self) -> ErrorCode {
        ErrorCode::from_i64(self.error_code)
    }
}

/// Whether a failed request could have been acted on by Postmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    /// The connection could not be made: the request never reached Postmark.
    Connect,
    /// No answer in time: Postmark may or may not have acted on the request.
    Timeout,
    /// Anything else on the wire (reset mid-request, TLS failure after connect, body error).
    Other,
}

/// What went wrong with a Postmark API call.
///
/// Convert the generated methods' errors with `?` or `.map_err(postmark_core::Error::from)`.
/// Neither `Display` nor `Debug` ever contains an API token: tokens travel only in sensitive headers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Postmark answered with its JSON error body.
    #[error("Postmark answered HTTP {status} with ErrorCode {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Postmark's `ErrorCode`.
        code: ErrorCode,
        /// Postmark's `Message`.
        message: String,
        /// The operation (`operationId`) and HTTP method, when known.
        operation: Option<Operation>,
    },
    /// Postmark (or something in front of it) answered with an error status and a body that is not Postmark's
    /// JSON error, such as an HTML maintenance page.
    #[error("unexpected HTTP {status} response: {body}")]
    UnexpectedResponse {
        /// HTTP status.
        status: u16,
        /// The body, cut to 1 KiB.
        body: String,
        /// The operation and method, when known.
        operation: Option<Operation>,
    },
    /// The request failed on the way to Postmark or while waiting for the answer.
    #[error("request to Postmark failed ({kind:?}): {source}")]
    Transport {
        /// Whether Postmark could have acted on the request.
        kind: TransportFailure,
        /// The underlying HTTP error.
        #[source]
        source: reqwest::Error,
    },
    /// A success response whose body did not decode into the expected type.
    #[error("could not decode Postmark's response: {source}")]
    Decode {
        /// The body, cut to 1 KiB.
        body: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The request could not be built (for example, a missing required parameter or an invalid header value).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The client could not be configured (for example, a missing token variable or a bad base URL).
    #[error("configuration error: {0}")]
    Config(String),
    /// A listing reached Postmark's paging window (`count + offset` may not pass it, 10,000 for messages and
    /// bounces) with more results left: the results past it cannot be fetched with these filters.
    #[error(
        "{operation}: {total} results match, but Postmark pages through at most the first {window}; \
         narrow the query (e.g. a shorter fromdate/todate range) and list each part"
    )]
    PageWindow {
        /// The listing operation.
        operation: String,
        /// Postmark's `TotalCount` for the query.
        total: i64,
        /// The window: results past this offset are unreachable.
        window: i64,
    },
    /// A request was refused before it was sent, because Postmark would refuse it (for example a forbidden
    /// attachment type or an attachment over the size limit).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// The operation a response belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// The spec's `operationId`, which is also the Rust method name.
    pub id: String,
    /// The HTTP method.
    pub method: String,
}

impl Operation {
    /// Whether repeating the request cannot create a second effect (GET, PUT, DELETE, HEAD).
    pub fn is_idempotent(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "PUT" | "DELETE" | "HEAD" | "OPTIONS")
    }
}

impl Error {
    /// The HTTP status, if Postmark answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::UnexpectedResponse { status, .. } => Some(*status),
            Error::Transport { source, .. } => source.status().map(|s| s.as_u16()),
            _ => None,
        }
    }

    /// Postmark's `ErrorCode`, if it sent one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The operation the error came from, when Postmark answered.
    pub fn operation(&self) -> Option<&Operation> {
        match self {
            Error::Api { operation, .. } | Error::UnexpectedResponse { operation, .. } => operation.as_ref(),
            _ => None,
        }
    }

    /// Whether the same request may be sent again.
    ///
    /// Retryable: connect failures (the request never left), HTTP 429, maintenance (ErrorCode 100), and 5xx answers
    /// to idempotent operations. Not retryable: anything that may have reached Postmark and been acted on, i.e.
    /// timeouts and 5xx answers to a send or another POST (Postmark has no idempotency key, so a retry could send a
    /// second copy), and every 4xx other than 429.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { kind, .. } => *kind == TransportFailure::Connect,
            Error::Api { status, code, operation, .. } => {
                *status == 429
                    || *code == ErrorCode::RateLimitExceeded
                    || *code == ErrorCode::Maintenance
                    || (*status >= 500 && operation.as_ref().is_some_and(Operation::is_idempotent))
            }
            Error::UnexpectedResponse { status, operation, .. } => {
                *status == 429 || (*status >= 500 && operation.as_ref().is_some_and(Operation::is_idempotent))
            }
            _ => false,
        }
    }

    /// Whether Postmark refused a recipient as inactive (ErrorCode 406: hard bounce, spam complaint or manual
    /// suppression). Keyed on the code, never on the message text.
    pub fn is_inactive_recipient(&self) -> bool {
        self.error_code() == Some(ErrorCode::InactiveRecipient)
    }

    /// Whether the token was missing or wrong (HTTP 401 / ErrorCode 10): an operator problem, not a message problem.
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401) || self.error_code() == Some(ErrorCode::BadOrMissingApiToken)
    }
}

fn truncate(bytes: &[u8]) -> String {
    const LIMIT: usize = 1024;
    let cut = &bytes[..bytes.len().min(LIMIT)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > LIMIT {
        s.push('…');
    }
    s
}

fn operation_of(headers: &reqwest::header::HeaderMap) -> Option<Operation> {
    let id = headers.get(OPERATION_HEADER)?.to_str().ok()?.to_string();
    let method = headers.get(METHOD_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    Some(Operation { id, method })
}

impl From<reqwest::Error> for Error {
    fn from(source: reqwest::Error) -> Self {
        let kind = if source.is_connect() {
            TransportFailure::Connect
        } else if source.is_timeout() {
            TransportFailure::Timeout
        } else {
            TransportFailure::Other
        };
        Error::Transport { kind, source }
    }
}

impl From<progenitor_client::Error<ApiErrorBody>> for Error {
    fn from(err: progenitor_client::Error<ApiErrorBody>) -> Self {
        use progenitor_client::Error as P;
        match err {
            P::ErrorResponse(rv) => {
                let status = rv.status().as_u16();
                let operation = operation_of(rv.headers());
                if rv.headers().contains_key(SYNTHETIC_HEADER) {
                    Error::UnexpectedResponse { status, body: rv.into_inner().message, operation }
                } else {
                    let body = rv.into_inner();
                    Error::Api { status, code: body.code(), message: body.message, operation }
                }
            }
            P::UnexpectedResponse(resp) => Error::UnexpectedResponse {
                status: resp.status().as_u16(),
                body: resp
                    .headers()
                    .get(SYNTHETIC_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
                operation: operation_of(resp.headers()),
            },
            P::CommunicationError(e) | P::ResponseBodyError(e) | P::InvalidUpgrade(e) => Error::from(e),
            P::InvalidResponsePayload(bytes, source) => Error::Decode { body: truncate(&bytes), source },
            P::InvalidRequest(msg) => Error::InvalidRequest(msg),
            // Only our `pre` hook makes these: a request refused before sending because Postmark would refuse it.
            P::Custom(msg) => Error::InvalidInput(msg),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id, self.method)
    }
}

pub(crate) fn synthetic_body(bytes: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&ApiErrorBody { error_code: -1, message: truncate(bytes) }).unwrap_or_default()
}
