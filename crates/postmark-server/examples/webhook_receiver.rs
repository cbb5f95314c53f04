//! A small Postmark webhook receiver: checks the credentials, parses the body, prints one line per event.
//!
//! ```sh
//! WEBHOOK_USER=postmark WEBHOOK_PASSWORD='a long random password' \
//!     cargo run -p postmark-server --example webhook_receiver
//! # then, in Postmark, use https://postmark:<password>@<your TLS proxy>/ as the webhook URL
//! ```
//!
//! Configuration (environment):
//! - `WEBHOOK_USER` + `WEBHOOK_PASSWORD`: require HTTP basic auth (the `user:password@` of the webhook URL);
//! - `WEBHOOK_HEADER_NAME` + `WEBHOOK_HEADER_VALUE`: require a custom header (the webhook's `HttpHeaders`);
//! - `WEBHOOK_LISTEN`: loopback address to listen on, default `127.0.0.1:8787` (port 0 picks a free one).
//!
//! At least one pair is required; with both, both are checked. It listens on loopback only and speaks plain
//! HTTP: put a TLS-terminating proxy in front of it, since basic-auth credentials travel in every request.
//!
//! Answers: 401 (empty body, whatever was wrong) when the credentials do not match, 400 when the body is not a
//! webhook payload, 200 otherwise, unknown kinds included (Postmark retries anything else).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::routing::post;
use postmark_server::webhooks::{WebhookAuth, WebhookEvent, parse_webhook};
use serde_json::Value;

/// Inbound messages carry their attachments base64-encoded; Postmark accepts inbound mail up to 35 MB.
const MAX_BODY: usize = 64 * 1024 * 1024;

const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("webhook_receiver: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<(), String> {
    let auth = auth_from_env()?;
    let listen = env("WEBHOOK_LISTEN").unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let addr: SocketAddr = listen.parse().map_err(|e| format!("WEBHOOK_LISTEN={listen:?} is not an address: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("refusing to listen on {addr}: this example speaks plain HTTP, use a loopback address"));
    }
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // `Debug` of WebhookAuth names the checks, never the secrets.
    println!("listening on http://{local} with {auth:?}");

    let app = Router::new().route("/", post(receive)).route("/{*path}", post(receive)).with_state(Arc::new(auth));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

/// A non-empty environment variable (empty counts as unset: an empty secret is no secret).
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn auth_from_env() -> Result<WebhookAuth, String> {
    let mut auth = WebhookAuth::new();
    match (env("WEBHOOK_USER"), env("WEBHOOK_PASSWORD")) {
        (Some(user), Some(password)) => auth = auth.basic(&user, &password),
        (None, None) => {}
        _ => return Err("set both WEBHOOK_USER and WEBHOOK_PASSWORD, or neither".into()),
    }
    match (env("WEBHOOK_HEADER_NAME"), env("WEBHOOK_HEADER_VALUE")) {
        (Some(name), Some(value)) => {
            HeaderName::try_from(name.as_str())
                .map_err(|_| format!("WEBHOOK_HEADER_NAME={name:?} is not a valid header name"))?;
            auth = auth.header(&name, &value);
        }
        (None, None) => {}
        _ => return Err("set both WEBHOOK_HEADER_NAME and WEBHOOK_HEADER_VALUE, or neither".into()),
    }
    if !auth.is_configured() {
        return Err("no credentials configured: set WEBHOOK_USER and WEBHOOK_PASSWORD \
                    and/or WEBHOOK_HEADER_NAME and WEBHOOK_HEADER_VALUE"
            .into());
    }
    Ok(auth)
}

async fn receive(State(auth): State<Arc<WebhookAuth>>, request: Request) -> StatusCode {
    let (parts, body) = request.into_parts();
    // Check the headers before reading a possibly large body; say nothing about what was wrong.
    if auth.verify_header_map(&parts.headers).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return StatusCode::BAD_REQUEST;
    };
    match parse_webhook(&body) {
        Ok(event) => {
            println!("{}", describe(&event));
            StatusCode::OK
        }
        Err(error) => {
            eprintln!("rejected a body: {error}");
            StatusCode::BAD_REQUEST
        }
    }
}

/// One line: the kind, the message ID and the recipient, quoted so a payload cannot forge log lines.
fn describe(event: &WebhookEvent) -> String {
    let (message_id, recipient) = match event {
        WebhookEvent::Bounce(e) => (e.message_id.as_deref(), e.email.as_deref()),
        WebhookEvent::Delivery(e) => (e.message_id.as_deref(), e.recipient.as_deref()),
        WebhookEvent::Open(e) => (e.message_id.as_deref(), e.recipient.as_deref()),
        WebhookEvent::Click(e) => (e.message_id.as_deref(), e.recipient.as_deref()),
        WebhookEvent::SpamComplaint(e) => (e.message_id.as_deref(), e.email.as_deref()),
        WebhookEvent::SubscriptionChange(e) => (e.message_id.as_deref(), e.recipient.as_deref()),
        WebhookEvent::Inbound(e) => (e.message_id.as_deref(), e.original_recipient.as_deref()),
        WebhookEvent::Unknown(v) => {
            let field = |name: &str| v.get(name).and_then(Value::as_str);
            (field("MessageID"), field("Recipient").or_else(|| field("Email")))
        }
        // `WebhookEvent` is non-exhaustive: later versions may add kinds.
        _ => (None, None),
    };
    let quoted = |v: Option<&str>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:?}"));
    let kind = match event {
        WebhookEvent::Unknown(_) => format!("Unknown record_type={}", quoted(event.record_type())),
        _ => event.record_type().unwrap_or("?").to_owned(),
    };
    format!("event={kind} message_id={} recipient={}", quoted(message_id), quoted(recipient))
}
