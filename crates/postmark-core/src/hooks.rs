//! The request/response interception both generated clients share (their `ClientHooks` implementations call these).

use progenitor_client::OperationInfo;

/// Response header naming the operation, added by [`exec`] so that errors know where they came from.
pub const OPERATION_HEADER: &str = "x-postmark-rs-operation";
/// Response header holding the request's HTTP method, added by [`exec`].
pub const METHOD_HEADER: &str = "x-postmark-rs-method";
/// Response header marking an error body that [`exec`] rewrote because the original was not Postmark's JSON; its
/// value is the original text (printable ASCII, at most 512 characters).
pub const SYNTHETIC_HEADER: &str = "x-postmark-rs-synthetic";

/// Runs before every request: drops the `api-version` header progenitor adds (Postmark has no such header).
pub fn pre(request: &mut reqwest::Request) {
    request.headers_mut().remove("api-version");
}

/// Sends the request and annotates the response.
///
/// Every response gets [`OPERATION_HEADER`] and [`METHOD_HEADER`]. An error status whose body is not JSON (a proxy's
/// HTML page, an empty 503) is rewritten into Postmark's error shape with the original text as `Message` and
/// [`SYNTHETIC_HEADER`] set, so the typed error keeps the HTTP status instead of failing to decode.
pub async fn exec(
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
