//! The one typed error both Postmark clients return.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ErrorCode;
use crate::hooks::{METHOD_HEADER, OPERATION_HEADER, SYNTHETIC_HEADER};

/// Postmark's standard response body, `{"ErrorCode": 406, "Message": "..."}`, with the per-field errors some
/// validation errors carry: `{"ErrorCode": 11, "Message": "...", "Errors": {"From": [{"ErrorCode": 300, "Message":
/// "..."}], "Messages[0].To": [...]}}`.
///
/// It is the body of every error response, and the success body of deletes, bypasses, retries and resends
/// (`ErrorCode` 0). The generated code of both clients uses this type for the spec's `ErrorResponse` schema.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// Postmark's error code; 0 means success.
    #[serde(rename = "ErrorCode")]
    pub error_code: i64,
    /// Human-readable explanation.
    #[serde(rename = "Message", default)]
    pub message: String,
    /// Per-field errors, keyed by the field's path in the request (`From`, `Messages[0].To`); empty when Postmark
    /// sent none (absent and `null` alike).
    #[serde(
        rename = "Errors",
        default,
        skip_serializing_if = "FieldErrors::is_empty",
        deserialize_with = "crate::de::null_as_default"
    )]
    pub errors: FieldErrors,
}

/// Per-field errors: the field's path in the request → why Postmark refused it.
pub type FieldErrors = BTreeMap<String, Vec<FieldError>>;

/// One reason Postmark refused one field of a request, `{"ErrorCode": 300, "Message": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Postmark's error code for this field.
    #[serde(rename = "ErrorCode", default)]
    pub error_code: i64,
    /// Human-readable explanation.
    #[serde(rename = "Message", default)]
    pub message: String,
}

impl ApiErrorBody {
    /// A body with this code and message and no field errors.
    pub fn new(error_code: i64, message: impl Into<String>) -> Self {
        ApiErrorBody { error_code, message: message.into(), errors: FieldErrors::new() }
    }

    /// The code as a typed [`ErrorCode`].
    pub fn code(&self) -> ErrorCode {
        ErrorCode::from_i64(self.error_code)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorCode {}: {}", self.error_code, self.message)
    }
}

/// The response headers that carry Postmark's request id, in order of preference: what Postmark's support asks for.
pub const REQUEST_ID_HEADERS: [&str; 2] = ["x-request-id", "x-postmark-request-id"];

/// The request id of a response: `X-Request-Id`, else `X-Postmark-Request-Id`.
pub fn request_id_of(headers: &reqwest::header::HeaderMap) -> Option<String> {
    REQUEST_ID_HEADERS
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty()))
        .map(str::to_string)
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
///
/// `Display` is one line: `Postmark answered HTTP 422 with ErrorCode 11: ... [From: ErrorCode 300: ...; ...]
/// (request id ...)`. The alternate form (`{:#}`) puts each field error on its own line instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Postmark answered with its JSON error body.
    Api {
        /// HTTP status.
        status: u16,
        /// Postmark's `ErrorCode`.
        code: ErrorCode,
        /// Postmark's `Message`.
        message: String,
        /// Postmark's per-field errors (`Errors`), empty when it sent none.
        errors: FieldErrors,
        /// Postmark's request id (`X-Request-Id`, else `X-Postmark-Request-Id`), when the response had one.
        request_id: Option<String>,
        /// The operation (`operationId`) and HTTP method, when known (boxed: it keeps `Error` small).
        operation: Option<Box<Operation>>,
    },
    /// Postmark (or something in front of it) answered with an error status and a body that is not Postmark's
    /// JSON error, such as an HTML maintenance page.
    UnexpectedResponse {
        /// HTTP status.
        status: u16,
        /// The body, cut to 1 KiB.
        body: String,
        /// The response's request id, when it had one.
        request_id: Option<String>,
        /// The operation and method, when known.
        operation: Option<Box<Operation>>,
    },
    /// The request failed on the way to Postmark or while waiting for the answer.
    Transport {
        /// Whether Postmark could have acted on the request.
        kind: TransportFailure,
        /// The underlying HTTP error.
        #[source]
        source: reqwest::Error,
    },
    /// A success response whose body did not decode into the expected type.
    Decode {
        /// The body, cut to 1 KiB.
        body: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The request could not be built (for example, a missing required parameter or an invalid header value).
    InvalidRequest(String),
    /// The client could not be configured (for example, a missing token variable or a bad base URL).
    Config(String),
    /// A listing reached Postmark's paging window (`count + offset` may not pass it, 10,000 for messages and
    /// bounces) with more results left: the results past it cannot be fetched with these filters.
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

    /// Postmark's per-field errors (`Errors`: the field's path → why it was refused); empty when there are none.
    pub fn field_errors(&self) -> &FieldErrors {
        static NONE: FieldErrors = FieldErrors::new();
        match self {
            Error::Api { errors, .. } => errors,
            _ => &NONE,
        }
    }

    /// The id Postmark gave the request (`X-Request-Id`, else `X-Postmark-Request-Id`), when it answered with one:
    /// what Postmark's support asks for.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Api { request_id, .. } | Error::UnexpectedResponse { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// The error for an error response whose body is Postmark's JSON error.
    pub(crate) fn api(
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: ApiErrorBody,
        operation: Option<Box<Operation>>,
    ) -> Self {
        Error::Api {
            status,
            code: body.code(),
            message: body.message,
            errors: body.errors,
            request_id: request_id_of(headers),
            operation,
        }
    }

    /// The operation the error came from, when Postmark answered.
    pub fn operation(&self) -> Option<&Operation> {
        match self {
            Error::Api { operation, .. } | Error::UnexpectedResponse { operation, .. } => operation.as_deref(),
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
                    || (*status >= 500 && operation.as_deref().is_some_and(Operation::is_idempotent))
            }
            Error::UnexpectedResponse { status, operation, .. } => {
                *status == 429 || (*status >= 500 && operation.as_deref().is_some_and(Operation::is_idempotent))
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

fn operation_of(headers: &reqwest::header::HeaderMap) -> Option<Box<Operation>> {
    let id = headers.get(OPERATION_HEADER)?.to_str().ok()?.to_string();
    let method = headers.get(METHOD_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    Some(Box::new(Operation { id, method }))
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
                let request_id = request_id_of(rv.headers());
                if rv.headers().contains_key(SYNTHETIC_HEADER) {
                    Error::UnexpectedResponse { status, body: rv.into_inner().message, request_id, operation }
                } else {
                    let headers = rv.headers().clone();
                    Error::api(status, &headers, rv.into_inner(), operation)
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
                request_id: request_id_of(resp.headers()),
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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api { status, code, message, errors, request_id, .. } => {
                let api =
                    ApiDisplay { status: *status, code: *code, message, errors, request_id: request_id.as_deref() };
                api.fmt(f)
            }
            Error::UnexpectedResponse { status, body, request_id, .. } => {
                write!(f, "unexpected HTTP {status} response: {body}{}", RequestIdSuffix(request_id.as_deref()))
            }
            Error::Transport { kind, source } => write!(f, "request to Postmark failed ({kind:?}): {source}"),
            Error::Decode { source, .. } => write!(f, "could not decode Postmark's response: {source}"),
            Error::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            Error::Config(m) => write!(f, "configuration error: {m}"),
            Error::PageWindow { operation, total, window } => write!(
                f,
                "{operation}: {total} results match, but Postmark pages through at most the first {window}; \
                 narrow the query (e.g. a shorter fromdate/todate range) and list each part"
            ),
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
        }
    }
}

/// ` (request id …)`, or nothing.
struct RequestIdSuffix<'a>(Option<&'a str>);

impl fmt::Display for RequestIdSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " (request id {id})"),
            None => Ok(()),
        }
    }
}

/// The text of [`Error::Api`]: one line, or (alternate form) one line per field error after the first.
struct ApiDisplay<'a> {
    status: u16,
    code: ErrorCode,
    message: &'a str,
    errors: &'a FieldErrors,
    request_id: Option<&'a str>,
}

impl fmt::Display for ApiDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Postmark answered HTTP {} with ErrorCode {}: {}", self.status, self.code, self.message)?;
        let fields = self.errors.iter().flat_map(|(field, list)| list.iter().map(move |e| (field, e)));
        if f.alternate() {
            write!(f, "{}", RequestIdSuffix(self.request_id))?;
            for (field, e) in fields {
                write!(f, "\n  {field}: {e}")?;
            }
            return Ok(());
        }
        for (i, (field, e)) in fields.enumerate() {
            write!(f, "{}{field}: {e}", if i == 0 { " [" } else { "; " })?;
        }
        if !self.errors.values().all(Vec::is_empty) {
            f.write_str("]")?;
        }
        write!(f, "{}", RequestIdSuffix(self.request_id))
    }
}

pub(crate) fn synthetic_body(bytes: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&ApiErrorBody::new(-1, truncate(bytes))).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (reqwest::header::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn the_request_id_is_x_request_id_else_x_postmark_request_id() {
        assert_eq!(
            request_id_of(&headers(&[("x-request-id", "a1"), ("x-postmark-request-id", "b2")])).as_deref(),
            Some("a1")
        );
        assert_eq!(request_id_of(&headers(&[("x-postmark-request-id", "b2")])).as_deref(), Some("b2"));
        assert_eq!(
            request_id_of(&headers(&[("x-request-id", " "), ("x-postmark-request-id", "b2")])).as_deref(),
            Some("b2")
        );
        assert_eq!(request_id_of(&headers(&[("content-type", "application/json")])), None);
    }

    #[test]
    fn the_error_body_decodes_the_bulk_validation_shape() {
        let body: ApiErrorBody = serde_json::from_str(
            r#"{"ErrorCode": 11, "Message": "Invalid request.",
                "Errors": {"From": [{"ErrorCode": 300, "Message": "Bad From."}],
                           "Messages[0].To": [{"ErrorCode": 300, "Message": "Bad To."}]}}"#,
        )
        .expect("decodes");
        assert_eq!(body.errors.len(), 2);
        assert_eq!(body.errors["Messages[0].To"], [FieldError { error_code: 300, message: "Bad To.".into() }]);
        // Without field errors the body encodes as before.
        assert_eq!(
            serde_json::to_string(&ApiErrorBody::new(0, "OK")).expect("encodes"),
            r#"{"ErrorCode":0,"Message":"OK"}"#
        );
        let err = Error::api(422, &headers(&[("x-postmark-request-id", "b2")]), body, None);
        assert_eq!(err.request_id(), Some("b2"));
        assert!(err.to_string().ends_with("Messages[0].To: ErrorCode 300: Bad To.] (request id b2)"), "{err}");
    }
}
