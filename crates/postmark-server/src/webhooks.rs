//! Webhook payloads Postmark POSTs to your endpoints, and a framework-neutral check of their credentials.
//!
//! Postmark does not sign webhooks. Protect the endpoint with HTTP basic auth in the webhook URL
//! (`https://user:pass@example.com/hook`, or the Webhooks API's `HttpAuth`) and/or a secret custom header
//! (`HttpHeaders`), then check both with [`WebhookAuth`] before trusting the body with [`parse_webhook`].

use std::fmt;

use base64::Engine as _;
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::types;

/// One webhook delivery, chosen by its `RecordType` (inbound messages have none).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WebhookEvent {
    /// `RecordType: "Bounce"`.
    Bounce(Box<types::BounceWebhook>),
    /// `RecordType: "Delivery"`.
    Delivery(Box<types::DeliveryWebhook>),
    /// `RecordType: "Open"`.
    Open(Box<types::OpenWebhook>),
    /// `RecordType: "Click"`.
    Click(Box<types::ClickWebhook>),
    /// `RecordType: "SpamComplaint"`.
    SpamComplaint(Box<types::SpamComplaintWebhook>),
    /// `RecordType: "SubscriptionChange"`.
    SubscriptionChange(Box<types::SubscriptionChangeWebhook>),
    /// An inbound message (no `RecordType`; recognised by its parsed address fields).
    Inbound(Box<types::InboundWebhook>),
    /// A payload this crate does not know yet, kept whole rather than dropped.
    Unknown(Value),
}

impl WebhookEvent {
    /// The payload's `RecordType` (`"Inbound"` for inbound messages), or `None` for an unknown payload without one.
    pub fn record_type(&self) -> Option<&str> {
        Some(match self {
            WebhookEvent::Bounce(_) => "Bounce",
            WebhookEvent::Delivery(_) => "Delivery",
            WebhookEvent::Open(_) => "Open",
            WebhookEvent::Click(_) => "Click",
            WebhookEvent::SpamComplaint(_) => "SpamComplaint",
            WebhookEvent::SubscriptionChange(_) => "SubscriptionChange",
            WebhookEvent::Inbound(_) => "Inbound",
            WebhookEvent::Unknown(v) => return v.get("RecordType").and_then(Value::as_str),
        })
    }
}

/// Why a webhook body could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The body is not a JSON object.
    #[error("the webhook body is not a JSON object: {0}")]
    NotJson(String),
    /// The body claims a known kind but does not have its shape (for example a string where a number belongs).
    #[error("the {kind} webhook does not match its documented shape: {source}")]
    Invalid {
        /// The kind it claimed.
        kind: &'static str,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

/// Fields only inbound payloads carry; one of them, with no `RecordType`, marks an inbound message.
const INBOUND_MARKERS: &[&str] = &["FromFull", "ToFull", "OriginalRecipient", "MailboxHash", "StrippedTextReply"];

/// Parses a webhook body into a typed event.
///
/// Unknown `RecordType`s, and payloads with neither a `RecordType` nor inbound fields, become
/// [`WebhookEvent::Unknown`] with the whole JSON kept. Unknown extra fields in known kinds are ignored.
pub fn parse_webhook(body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| WebhookError::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(WebhookError::NotJson("expected an object".into()));
    }
    fn typed<T: serde::de::DeserializeOwned>(kind: &'static str, v: Value) -> Result<Box<T>, WebhookError> {
        serde_json::from_value(v).map(Box::new).map_err(|source| WebhookError::Invalid { kind, source })
    }
    let record_type = value.get("RecordType").and_then(Value::as_str).map(str::to_owned);
    Ok(match record_type.as_deref() {
        Some("Bounce") => WebhookEvent::Bounce(typed("Bounce", value)?),
        Some("Delivery") => WebhookEvent::Delivery(typed("Delivery", value)?),
        Some("Open") => WebhookEvent::Open(typed("Open", value)?),
        Some("Click") => WebhookEvent::Click(typed("Click", value)?),
        Some("SpamComplaint") => WebhookEvent::SpamComplaint(typed("SpamComplaint", value)?),
        Some("SubscriptionChange") => WebhookEvent::SubscriptionChange(typed("SubscriptionChange", value)?),
        Some("Inbound") => WebhookEvent::Inbound(typed("Inbound", value)?),
        None if INBOUND_MARKERS.iter().any(|k| value.get(*k).is_some()) => {
            WebhookEvent::Inbound(typed("Inbound", value)?)
        }
        _ => WebhookEvent::Unknown(value),
    })
}

/// Why a webhook request was refused. Answer every one of them with HTTP 401 and no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookAuthError {
    /// No `Authorization` header although basic auth is required.
    #[error("missing Authorization header")]
    MissingAuthorization,
    /// The `Authorization` header is not well-formed basic auth.
    #[error("malformed Authorization header")]
    MalformedAuthorization,
    /// Wrong user name or password.
    #[error("wrong basic-auth credentials")]
    WrongCredentials,
    /// A required custom header is absent.
    #[error("missing required webhook header")]
    MissingHeader,
    /// A required custom header has the wrong value.
    #[error("wrong value of a required webhook header")]
    WrongHeader,
    /// Nothing is configured: refusing everything is safer than accepting everything.
    #[error("no webhook credentials are configured")]
    NotConfigured,
}

/// The credentials a webhook endpoint expects. Comparisons take the same time whatever the input.
#[derive(Clone, Default)]
pub struct WebhookAuth {
    basic: Option<(Vec<u8>, Vec<u8>)>,
    headers: Vec<(String, Vec<u8>)>,
}

impl fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookAuth")
            .field("basic", &self.basic.as_ref().map(|_| "***"))
            .field("headers", &self.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

impl WebhookAuth {
    /// No requirement yet; add [`basic`](Self::basic) and/or [`header`](Self::header).
    pub fn new() -> Self {
        Self::default()
    }

    /// Require HTTP basic auth with this user name and password.
    pub fn basic(mut self, user: &str, password: &str) -> Self {
        self.basic = Some((user.as_bytes().to_vec(), password.as_bytes().to_vec()));
        self
    }

    /// Require a header (name case-insensitive) with exactly this value.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        self
    }

    /// Checks a request's headers, given as (name, value) pairs from any HTTP framework.
    pub fn verify<'a, I>(&self, request_headers: I) -> Result<(), WebhookAuthError>
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        if self.basic.is_none() && self.headers.is_empty() {
            return Err(WebhookAuthError::NotConfigured);
        }
        let request_headers: Vec<(String, &[u8])> =
            request_headers.into_iter().map(|(n, v)| (n.to_ascii_lowercase(), v)).collect();
        let find = |name: &str| request_headers.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        if let Some((user, password)) = &self.basic {
            let header = find("authorization").ok_or(WebhookAuthError::MissingAuthorization)?;
            let (given_user, given_password) = decode_basic(header).ok_or(WebhookAuthError::MalformedAuthorization)?;
            // Both comparisons always run, so timing does not tell which part was wrong.
            let ok = ct_eq(user, &given_user) & ct_eq(password, &given_password);
            if !ok {
                return Err(WebhookAuthError::WrongCredentials);
            }
        }
        for (name, expected) in &self.headers {
            let given = find(name).ok_or(WebhookAuthError::MissingHeader)?;
            if !ct_eq(expected, given) {
                return Err(WebhookAuthError::WrongHeader);
            }
        }
        Ok(())
    }

    /// Checks a `reqwest`/`http` header map (the type axum, hyper and reqwest share).
    pub fn verify_header_map(&self, headers: &reqwest::header::HeaderMap) -> Result<(), WebhookAuthError> {
        self.verify(headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
    }
}

fn decode_basic(header: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// Constant-time equality whose running time depends only on the longer length, not on where bytes differ.
fn ct_eq(expected: &[u8], given: &[u8]) -> bool {
    let n = expected.len().max(given.len());
    let mut a = vec![0u8; n];
    let mut b = vec![0u8; n];
    a[..expected.len()].copy_from_slice(expected);
    b[..given.len()].copy_from_slice(given);
    let same_len = (expected.len() as u64).ct_eq(&(given.len() as u64));
    bool::from(a.ct_eq(&b) & same_len)
}
