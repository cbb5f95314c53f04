//! The request/response interception both generated clients share (their `ClientHooks` implementations call these).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use progenitor_client::OperationInfo;

use crate::retry::{RetryEvent, RetryPolicy, parse_retry_after, random_unit};
use crate::{ApiErrorBody, Error, Operation};

/// Response header naming the operation, added by [`exec`] so that errors know where they came from.
pub const OPERATION_HEADER: &str = "x-postmark-rs-operation";
/// Response header holding the request's HTTP method, added by [`exec`].
pub const METHOD_HEADER: &str = "x-postmark-rs-method";
/// Response header marking an error body that [`exec`] rewrote because the original was not Postmark's JSON; its
/// value is the original text (printable ASCII, at most 512 characters).
pub const SYNTHETIC_HEADER: &str = "x-postmark-rs-synthetic";

/// Runs before every request: drops the `api-version` header progenitor adds (Postmark has no such header), and
/// refuses a single send whose attachment Postmark would refuse by its extension (see [`check_attachments`]). The
/// error text becomes [`Error::InvalidInput`].
pub fn pre(request: &mut reqwest::Request) -> Result<(), String> {
    request.headers_mut().remove("api-version");
    check_attachments(request)
}

/// A single send (`POST /email`, `POST /email/withTemplate`) with an attachment whose extension Postmark refuses
/// (HTTP 422, ErrorCode 411; [`crate::limits::FORBIDDEN_EXTENSIONS`]) is refused here, before anything is sent, so
/// attachments built by hand get the same check as `EmailAttachment::from_path`. Batches are left to Postmark, which
/// refuses only the offending message of a batch (a check here would fail all of them).
pub fn check_attachments(request: &reqwest::Request) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Attachment {
        #[serde(rename = "Name", default)]
        name: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Message {
        #[serde(rename = "Attachments", default, deserialize_with = "crate::de::null_as_default")]
        attachments: Vec<Attachment>,
    }
    if request.method() != reqwest::Method::POST {
        return Ok(());
    }
    let path = request.url().path().trim_end_matches('/').to_ascii_lowercase();
    if !(path.ends_with("/email") || path.ends_with("/email/withtemplate")) {
        return Ok(());
    }
    let Some(body) = request.body().and_then(|b| b.as_bytes()) else { return Ok(()) };
    if !body.windows(13).any(|w| w == b"\"Attachments\"") {
        return Ok(());
    }
    // A body that is not a message is Postmark's to refuse, with its own error.
    let Ok(message) = serde_json::from_slice::<Message>(body) else { return Ok(()) };
    for name in message.attachments.iter().filter_map(|a| a.name.as_deref()) {
        if let Some(ext) = crate::limits::forbidden_extension(name) {
            return Err(format!(
                "Postmark refuses attachments of type .{ext} (ErrorCode 411): {name:?}; nothing was sent"
            ));
        }
    }
    Ok(())
}

/// What a client carries besides its HTTP client: the optional [`RetryPolicy`]. The generated `Client` holds it as its
/// `inner` value and passes it to [`exec`].
#[derive(Debug, Clone, Default)]
pub struct ClientState {
    retry: Option<Arc<RetryPolicy>>,
}

impl ClientState {
    /// State with this retry policy (`None`: every request is sent once).
    pub fn new(retry: Option<RetryPolicy>) -> Self {
        ClientState { retry: retry.map(Arc::new) }
    }

    /// The retry policy, if retries are on.
    pub fn retry(&self) -> Option<&RetryPolicy> {
        self.retry.as_deref()
    }
}

/// Sends the request, retrying it as the client's [`RetryPolicy`] allows, and annotates the response.
///
/// Without a policy the request is sent once. With one, a failure is retried only when the [`Error`] it becomes says
/// [`Error::is_retryable`]; see [`RetryPolicy`] for the waits. A request whose body cannot be cloned is sent once.
pub async fn exec(
    client: &reqwest::Client,
    request: reqwest::Request,
    info: &OperationInfo,
    state: &ClientState,
) -> reqwest::Result<reqwest::Response> {
    let Some(policy) = state.retry() else { return exec_once(client, request, info).await };
    let started = Instant::now();
    let operation = Operation { id: info.operation_id.to_string(), method: request.method().as_str().to_string() };
    let mut request = request;
    let mut attempt = 1u32;
    loop {
        let Some(next) = request.try_clone() else { return exec_once(client, request, info).await };
        let (error, retry_after, outcome) = match exec_once(client, request, info).await {
            Ok(response) if !is_error_status(response.status()) => return Ok(response),
            Ok(response) => {
                let (error, retry_after, response) = inspect_error(response, &operation).await?;
                (error, retry_after, Ok(response))
            }
            Err(e) => {
                let error = Error::from(e);
                if !error.is_retryable() {
                    return Err(into_reqwest(error));
                }
                (error, None, Err(()))
            }
        };
        let delay = match error.is_retryable() {
            true => policy.decide(attempt, started.elapsed(), retry_after, random_unit()),
            false => None,
        };
        let Some(delay) = delay else {
            return match outcome {
                Ok(response) => Ok(response),
                Err(()) => Err(into_reqwest(error)),
            };
        };
        policy.notify(&RetryEvent { attempt, delay, from_retry_after: retry_after.is_some(), error: &error });
        tokio::time::sleep(delay).await;
        attempt += 1;
        request = next;
    }
}

fn is_error_status(status: reqwest::StatusCode) -> bool {
    status.is_client_error() || status.is_server_error()
}

fn into_reqwest(error: Error) -> reqwest::Error {
    match error {
        Error::Transport { source, .. } => source,
        _ => unreachable!("only transport errors come from reqwest"),
    }
}

/// Reads an error response into the [`Error`] it will become (for the retry decision) and its `Retry-After` (on 429
/// only), and rebuilds an identical response for the caller.
async fn inspect_error(
    response: reqwest::Response,
    operation: &Operation,
) -> reqwest::Result<(Error, Option<Duration>, reqwest::Response)> {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await?;
    let retry_after = (status.as_u16() == 429)
        .then(|| headers.get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()))
        .flatten()
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let error = match serde_json::from_slice::<ApiErrorBody>(&bytes) {
        Ok(body) if !headers.contains_key(SYNTHETIC_HEADER) => {
            Error::api(status.as_u16(), &headers, body, Some(Box::new(operation.clone())))
        }
        _ => Error::UnexpectedResponse {
            status: status.as_u16(),
            body: String::new(),
            request_id: crate::error::request_id_of(&headers),
            operation: Some(Box::new(operation.clone())),
        },
    };
    let mut rebuilt = http::Response::new(bytes.to_vec());
    *rebuilt.status_mut() = status;
    *rebuilt.headers_mut() = headers;
    Ok((error, retry_after, reqwest::Response::from(rebuilt)))
}

/// Sends the request once and annotates the response.
///
/// Every response gets [`OPERATION_HEADER`] and [`METHOD_HEADER`]. An error status whose body is not JSON (a proxy's
/// HTML page, an empty 503) is rewritten into Postmark's error shape with the original text as `Message` and
/// [`SYNTHETIC_HEADER`] set, so the typed error keeps the HTTP status instead of failing to decode.
pub async fn exec_once(
    client: &reqwest::Client,
    request: reqwest::Request,
    info: &OperationInfo,
) -> reqwest::Result<reqwest::Response> {
    let method = request.method().as_str().to_string();
    let mut response = client.execute(request).await?;
    let status = response.status();
    let is_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let mut rebuilt = http::Response::new(crate::error::synthetic_body(&bytes));
        *rebuilt.status_mut() = status;
        *rebuilt.headers_mut() = headers;
        rebuilt
            .headers_mut()
            .insert(reqwest::header::CONTENT_TYPE, reqwest::header::HeaderValue::from_static("application/json"));
        // The text also travels in a header, because statuses the spec does not list reach the caller as
        // `UnexpectedResponse`, whose body can no longer be read synchronously.
        let text: String = String::from_utf8_lossy(&bytes[..bytes.len().min(512)])
            .chars()
            .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { ' ' })
            .collect();
        if let Ok(v) = reqwest::header::HeaderValue::from_str(text.trim()) {
            rebuilt.headers_mut().insert(SYNTHETIC_HEADER, v);
        }
        response = reqwest::Response::from(rebuilt);
    }
    let headers = response.headers_mut();
    headers.insert(OPERATION_HEADER, reqwest::header::HeaderValue::from_static(info.operation_id));
    if let Ok(v) = reqwest::header::HeaderValue::from_str(&method) {
        headers.insert(METHOD_HEADER, v);
    }
    Ok(response)
}
