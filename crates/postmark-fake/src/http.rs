//! A fake of Postmark's HTTP API on 127.0.0.1.
//!
//! * The four send endpoints (`POST /email`, `/email/batch`, `/email/withTemplate`, `/email/batchWithTemplates`)
//!   behave like Postmark: the token is checked (401 / ErrorCode 10), then the request and each message are checked
//!   by [`crate::rules`] (size, headers, JSON, addresses, body, limits, attachments, sender signatures, inactive
//!   recipients). A single send that breaks a rule gets HTTP 422 with `{ErrorCode, Message}` (413 or 415 for the
//!   request-level failures); a batch gets HTTP 200 with one result per message, the good ones accepted and
//!   recorded ([`FakeApi::emails`]). Configure the account with [`FakeApi::set_verified_senders`],
//!   [`FakeApi::set_unconfirmed_senders`], [`FakeApi::reject_recipient`] or [`FakeApi::set_rules`].
//! * Any method and path can be given a canned answer ([`FakeApi::respond`]); it takes priority over the rules
//!   (the contract tests use this).
//! * Paged listings ([`FakeApi::serve_list`]) follow Postmark's `count`/`offset` rules, and a template store
//!   ([`FakeApi::store_templates`]) lists, gets, creates and edits templates; see the `lists` module.
//! * Faults ([`Fault`]) are queued and consumed one per request: an error status, a delay, a dropped connection, or
//!   any answer with extra headers (e.g. `Retry-After`). They take priority over everything else.
//! * Every request is recorded ([`FakeApi::requests`]) with method, path, query pairs, headers and body.
//! * Distance: [`FakeApi::set_latency`] holds every answer that long (Postmark is 50–150 ms away and takes its
//!   own time), and [`FakeApi::load`] counts the requests in flight (now, the peak, and what each arrival saw),
//!   so a test can assert a client's concurrency and back-off without timing anything.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::load::InFlight;
use crate::rules::{self, Endpoint, RequestRefusal, Rules};

mod lists;

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method, upper case.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Query pairs in order, percent-decoded.
    pub query: Vec<(String, String)>,
    /// Headers with lower-case names, in order.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The `X-Request-Id` the fake answered with (UUID-shaped, unique in the process), as Postmark sends one.
    pub request_id: String,
}

impl RecordedRequest {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A failure the fake injects into the next request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and body (JSON when `body` parses as JSON, plain text otherwise).
    Status {
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// Wait this long, then handle the request normally.
    Delay(Duration),
    /// Start a 200 answer and break the connection before the body completes.
    Reset,
    /// Answer with this status, extra headers (e.g. `Retry-After`) and body.
    Respond {
        /// HTTP status.
        status: u16,
        /// Extra response headers.
        headers: Vec<(String, String)>,
        /// Response body (JSON when it parses as JSON).
        body: String,
    },
}

impl Fault {
    /// An error status with Postmark's JSON error body.
    pub fn api_error(status: u16, code: i64, message: &str) -> Fault {
        Fault::Status { status, body: json!({"ErrorCode": code, "Message": message}).to_string() }
    }

    /// An error body with per-field errors, as Postmark answers a bulk request that fails validation (postmark-rs
    /// PR 56): `{"ErrorCode": 11, "Message": ..., "Errors": {"From": [{"ErrorCode": 300, "Message": ...}], ...}}`.
    /// `errors` is (field path, ErrorCode, Message), one entry per reason; a field may appear more than once.
    pub fn field_errors(status: u16, code: i64, message: &str, errors: &[(&str, i64, &str)]) -> Fault {
        let mut fields = serde_json::Map::new();
        for (field, code, message) in errors {
            let list = fields.entry(field.to_string()).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = list {
                list.push(json!({"ErrorCode": code, "Message": message}));
            }
        }
        Fault::Status { status, body: json!({"ErrorCode": code, "Message": message, "Errors": fields}).to_string() }
    }
}

#[derive(Default)]
struct State {
    server_token: Option<String>,
    account_token: Option<String>,
    requests: Vec<RecordedRequest>,
    canned: HashMap<(String, String), (u16, String)>,
    fallback: Option<(u16, String)>,
    faults: VecDeque<Fault>,
    rules: Rules,
    emails: Vec<Value>,
    sent: u64,
    lists: HashMap<String, lists::FakeList>,
    templates: Option<lists::TemplateStore>,
    latency: Duration,
}

/// The running fake. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeApi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    load: InFlight,
    _stop: oneshot::Sender<()>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("requests", &self.requests.len()).finish_non_exhaustive()
    }
}

impl FakeApi {
    /// Starts the fake on an ephemeral port of 127.0.0.1.
    pub async fn start() -> FakeApi {
        Self::start_on("127.0.0.1:0".parse().expect("loopback address")).await
    }

    /// Starts the fake on a given loopback address (for restarting on the same port).
    pub async fn start_on(addr: SocketAddr) -> FakeApi {
        assert!(addr.ip().is_loopback(), "the fake only listens on loopback");
        let listener = TcpListener::bind(addr).await.expect("bind fake API");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let load = InFlight::default();
        let app = Router::new().fallback(handle).with_state((state.clone(), load.clone()));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        FakeApi { addr, state, load, _stop: stop }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requires this `X-Postmark-Server-Token` on server endpoints (otherwise any token, or none, is accepted).
    pub fn set_server_token(&self, token: &str) {
        self.state().server_token = Some(token.to_string());
    }

    /// Requires this `X-Postmark-Account-Token` on account endpoints.
    pub fn set_account_token(&self, token: &str) {
        self.state().account_token = Some(token.to_string());
    }

    /// Answers `method path` (exact path, no query) with this status and JSON body from now on.
    pub fn respond(&self, method: &str, path: &str, status: u16, body: &str) {
        self.state().canned.insert((method.to_ascii_uppercase(), path.to_string()), (status, body.to_string()));
    }

    /// Answers every request that no other rule handles with this status and body.
    pub fn respond_any(&self, status: u16, body: &str) {
        self.state().fallback = Some((status, body.to_string()));
    }

    /// Holds every answer `latency` longer from now on (the round trip and Postmark's own time);
    /// zero by default. A [`Fault::Delay`] adds to it.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// The requests in flight: received and not yet answered.
    pub fn load(&self) -> &InFlight {
        &self.load
    }

    /// Stops giving the canned answer set with [`FakeApi::respond`] for `method path`.
    pub fn stop_responding(&self, method: &str, path: &str) {
        self.state().canned.remove(&(method.to_ascii_uppercase(), path.to_string()));
    }

    /// Queues a fault for the next request that has none queued before it.
    pub fn push_fault(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    /// Marks a recipient inactive: messages to it are refused with this ErrorCode (406 for a suppressed address).
    pub fn reject_recipient(&self, address: &str, error_code: i64) {
        self.state().rules.reject_recipient(address, error_code);
    }

    /// Only these senders are verified from now on: addresses (`jane@example.com`) and whole domains
    /// (`example.com`). Any other `From` is refused with ErrorCode 400. Without this call every sender is verified.
    pub fn set_verified_senders(&self, senders: &[&str]) {
        self.state().rules.verified_senders = Some(senders.iter().map(|s| s.to_string()).collect());
    }

    /// These senders (addresses or domains) have a sender signature that is not confirmed: ErrorCode 401.
    pub fn set_unconfirmed_senders(&self, senders: &[&str]) {
        self.state().rules.unconfirmed_senders = senders.iter().map(|s| s.to_string()).collect();
    }

    /// Replaces the whole account configuration (senders, inactive recipients, limits).
    pub fn set_rules(&self, rules: Rules) {
        self.state().rules = rules;
    }

    /// The account configuration in force.
    pub fn rules(&self) -> Rules {
        self.state().rules.clone()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// Every message accepted by one of the four send endpoints, in order, as the JSON object that was sent.
    pub fn emails(&self) -> Vec<Value> {
        self.state().emails.clone()
    }

    /// How many messages were accepted so far (what [`FakeApi::emails`] would list, without copying them).
    pub fn email_count(&self) -> usize {
        self.state().emails.len()
    }

    /// Forgets recorded requests and emails (tokens, canned answers and rejections stay).
    pub fn clear(&self) {
        let mut s = self.state();
        s.requests.clear();
        s.emails.clear();
    }
}

fn json_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let ct = if serde_json::from_str::<Value>(&body).is_ok() { "application/json; charset=utf-8" } else { "text/html" };
    (status, [(axum::http::header::CONTENT_TYPE, ct)], body).into_response()
}

fn respond_with_headers(status: u16, headers: &[(String, String)], body: String) -> Response {
    let mut response = json_response(status, body);
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) =
            (axum::http::HeaderName::try_from(name.as_str()), axum::http::HeaderValue::try_from(value.as_str()))
        {
            response.headers_mut().insert(n, v);
        }
    }
    response
}

fn api_error(status: u16, code: i64, message: &str) -> Response {
    json_response(status, json!({"ErrorCode": code, "Message": message}).to_string())
}

const ACCOUNT_PREFIXES: &[&str] = &["/servers", "/domains", "/senders", "/data-removals", "/templates/push"];

/// Answers a request, with an `X-Request-Id` on every response (unless a fault set its own), as Postmark does.
async fn handle(AxumState((state, load)): AxumState<(Arc<Mutex<State>>, InFlight)>, request: Request) -> Response {
    let _in_flight = load.enter();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let request_id = format!("{:08x}-fa4e-4000-8000-{n:012x}", std::process::id());
    let mut response = answer(state, request, &request_id).await;
    if let Ok(v) = axum::http::HeaderValue::from_str(&request_id) {
        response.headers_mut().entry("x-request-id").or_insert(v);
    }
    response
}

async fn answer(state: Arc<Mutex<State>>, request: Request, request_id: &str) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024).await.map(|b| b.to_vec()).unwrap_or_default();
    let recorded = RecordedRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(url_pairs).unwrap_or_default(),
        headers: headers_of(&parts.headers),
        body,
        request_id: request_id.to_string(),
    };
    let (fault, latency) = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        s.requests.push(recorded.clone());
        (s.faults.pop_front(), s.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        Some(Fault::Status { status, body }) => return json_response(status, body),
        Some(Fault::Reset) => {
            let stream = futures_once_error();
            return Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from_stream(stream))
                .unwrap_or_default();
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Respond { status, headers, body }) => return respond_with_headers(status, &headers, body),
        None => {}
    }
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let is_account = ACCOUNT_PREFIXES.iter().any(|p| recorded.path.starts_with(p));
    let (header, expected) = if is_account {
        ("x-postmark-account-token", s.account_token.clone())
    } else {
        ("x-postmark-server-token", s.server_token.clone())
    };
    if let Some(expected) = expected
        && recorded.header(header) != Some(expected.as_str())
    {
        return api_error(401, 10, "Request does not contain a valid token.");
    }
    if let Some((status, body)) = s.canned.get(&(recorded.method.clone(), recorded.path.clone())) {
        return json_response(*status, body.clone());
    }
    if let Some(response) = lists::route(&mut s, &recorded) {
        return response;
    }
    if recorded.method == "POST"
        && let Some(endpoint) = Endpoint::from_path(&recorded.path)
    {
        return send(&mut s, endpoint, &recorded);
    }
    match &s.fallback {
        Some((status, body)) => json_response(*status, body.clone()),
        None => api_error(404, 404, "The endpoint does not exist in the fake."),
    }
}

/// One of the four send endpoints: the request-level checks, then each message.
fn send(s: &mut State, endpoint: Endpoint, request: &RecordedRequest) -> Response {
    let parsed = rules::parse_request(
        endpoint,
        request.header("content-type"),
        request.header("accept"),
        &request.body,
        &s.rules,
    );
    let messages = match parsed {
        Ok(messages) => messages,
        Err(RequestRefusal { status, refusal: Some(refusal) }) => {
            return json_response(status, refusal.to_json().to_string());
        }
        Err(RequestRefusal { status, refusal: None }) => {
            let text = if status == 413 { "Payload Too Large" } else { "Unsupported Media Type" };
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            return (status, [(axum::http::header::CONTENT_TYPE, "text/plain")], text).into_response();
        }
    };
    let mut answers: Vec<(u16, Value)> = messages.into_iter().map(|m| accept_message(s, endpoint, m)).collect();
    if endpoint.is_batch() {
        json_response(200, Value::Array(answers.into_iter().map(|(_, a)| a).collect()).to_string())
    } else {
        let (status, answer) = answers.pop().unwrap_or((500, Value::Null));
        json_response(status, answer.to_string())
    }
}

/// Validates one message like Postmark's send endpoints and records it when accepted.
fn accept_message(s: &mut State, endpoint: Endpoint, message: Value) -> (u16, Value) {
    if let Err(refusal) = rules::validate(endpoint, &message, &s.rules) {
        return (422, refusal.to_json());
    }
    s.sent += 1;
    let id = format!("{:08x}-f4c1-4a3e-9b1c-{:012x}", s.sent, s.sent);
    let to = message.get("To").cloned().unwrap_or(Value::Null);
    s.emails.push(message);
    (
        200,
        json!({"To": to, "SubmittedAt": "2026-11-22T10:15:30.1234567-05:00", "MessageID": id, "ErrorCode": 0, "Message": "OK"}),
    )
}

/// Addresses out of a comma-separated header value (`"A, B" <a@x>, c@y`), lower-cased angle contents or bare words.
pub fn split_addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => {
                out.push(std::mem::take(&mut current));
            }
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
        .filter_map(|part| {
            let part = part.trim();
            if part.is_empty() {
                return None;
            }
            let addr = match (part.rfind('<'), part.rfind('>')) {
                (Some(a), Some(b)) if a < b => &part[a + 1..b],
                _ => part,
            };
            Some(addr.trim().to_string())
        })
        .collect()
}

fn headers_of(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect()
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn futures_once_error() -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send {
    struct Once(bool);
    impl futures_core::Stream for Once {
        type Item = Result<bytes::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.0 {
                return std::task::Poll::Ready(None);
            }
            self.0 = true;
            std::task::Poll::Ready(Some(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fault: reset"))))
        }
    }
    Once(false)
}
