//! Webhook payloads Postmark POSTs to your endpoints, and a framework-neutral check of their credentials.
//!
//! Postmark does not sign webhooks. Protect the endpoint with HTTP basic auth in the webhook URL
//! (`https://user:pass@example.com/hook`, or the Webhooks API's `HttpAuth`) and/or a secret custom header
//! (`HttpHeaders`), then check both with [`WebhookAuth`] before trusting the body with [`parse_webhook`].
//!
//! ```
//! use postmark_server::webhooks::{WebhookAuth, WebhookEvent, parse_webhook};
//!
//! /// What an HTTP handler does with the request's headers and raw body; the `u16` is the status to answer.
//! fn handle(auth: &WebhookAuth, headers: &reqwest::header::HeaderMap, body: &[u8]) -> u16 {
//!     if auth.verify_header_map(headers).is_err() {
//!         return 401; // say nothing about which part was wrong
//!     }
//!     match parse_webhook(body) {
//!         Ok(WebhookEvent::Bounce(bounce)) => println!("bounced: {:?}", bounce.email),
//!         Ok(WebhookEvent::Inbound(mail)) => println!("reply in {:?}: {:?}", mail.mailbox_hash, mail.stripped_text_reply),
//!         Ok(other) => println!("{:?} event", other.record_type()),
//!         Err(_) => return 400,
//!     }
//!     200
//! }
//!
//! let auth = WebhookAuth::new().basic("postmark", "a long random password");
//! let mut headers = reqwest::header::HeaderMap::new();
//! // what Postmark sends for https://postmark:a%20long%20random%20password@example.com/hook
//! headers.insert("authorization", "Basic cG9zdG1hcms6YSBsb25nIHJhbmRvbSBwYXNzd29yZA==".parse().unwrap());
//! assert_eq!(handle(&auth, &headers, br#"{"RecordType":"Bounce","Email":"gone@example.net"}"#), 200);
//! assert_eq!(handle(&auth, &reqwest::header::HeaderMap::new(), b"{}"), 401);
//! ```

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
    /// An inbound message (no `RecordType`; recognised by a field only inbound payloads have, such as `FromFull`).
    Inbound(Box<types::InboundWebhook>),
    /// A payload this crate does not know yet, kept whole rather than dropped.
    Unknown(Value),
}

impl WebhookEvent {
    /// The payload's `RecordType` (`"Inbound"` for inbound messages), or `None` for an unknown payload without a
    /// string one.
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

/// Serializes the payload itself (no enum tag): a typed event becomes a body [`parse_webhook`] reads back as the
/// same event (an inbound one as long as it has one of its inbound-only fields, as Postmark's always do), and
/// [`WebhookEvent::Unknown`] exactly the JSON it kept.
impl serde::Serialize for WebhookEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            WebhookEvent::Bounce(e) => e.serialize(serializer),
            WebhookEvent::Delivery(e) => e.serialize(serializer),
            WebhookEvent::Open(e) => e.serialize(serializer),
            WebhookEvent::Click(e) => e.serialize(serializer),
            WebhookEvent::SpamComplaint(e) => e.serialize(serializer),
            WebhookEvent::SubscriptionChange(e) => e.serialize(serializer),
            WebhookEvent::Inbound(e) => e.serialize(serializer),
            WebhookEvent::Unknown(v) => v.serialize(serializer),
        }
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
/// A known `RecordType` selects the typed payload; a body without one (absent or `null`) that carries one of the
/// inbound-only fields (`FromFull`, `ToFull`, `OriginalRecipient`, `MailboxHash`, `StrippedTextReply`) is an
/// inbound message. Anything else — an unknown `RecordType`, a `RecordType` that is not a string, or neither a
/// `RecordType` nor inbound fields — becomes [`WebhookEvent::Unknown`] with the whole JSON kept. Unknown extra
/// fields in known kinds are ignored.
///
/// # Errors
///
/// [`WebhookError::NotJson`] when the body is not a JSON object, [`WebhookError::Invalid`] when it claims a known
/// kind but a field has the wrong type.
pub fn parse_webhook(body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| WebhookError::NotJson(e.to_string()))?;
    let Some(object) = value.as_object() else {
        return Err(WebhookError::NotJson("expected a JSON object".into()));
    };
    fn typed<T: serde::de::DeserializeOwned>(kind: &'static str, v: Value) -> Result<Box<T>, WebhookError> {
        serde_json::from_value(v).map(Box::new).map_err(|source| WebhookError::Invalid { kind, source })
    }
    let kind = match object.get("RecordType") {
        None | Some(Value::Null) if INBOUND_MARKERS.iter().any(|k| object.contains_key(*k)) => Some("Inbound"),
        Some(Value::String(s)) => KNOWN_RECORD_TYPES.iter().copied().find(|k| *k == s.as_str()),
        _ => None,
    };
    Ok(match kind {
        Some("Bounce") => WebhookEvent::Bounce(typed("Bounce", value)?),
        Some("Delivery") => WebhookEvent::Delivery(typed("Delivery", value)?),
        Some("Open") => WebhookEvent::Open(typed("Open", value)?),
        Some("Click") => WebhookEvent::Click(typed("Click", value)?),
        Some("SpamComplaint") => WebhookEvent::SpamComplaint(typed("SpamComplaint", value)?),
        Some("SubscriptionChange") => WebhookEvent::SubscriptionChange(typed("SubscriptionChange", value)?),
        Some("Inbound") => WebhookEvent::Inbound(typed("Inbound", value)?),
        _ => WebhookEvent::Unknown(value),
    })
}

/// The `RecordType`s with a typed variant (`Inbound` for an inbound payload that ever carries one).
const KNOWN_RECORD_TYPES: &[&str] =
    &["Bounce", "Delivery", "Open", "Click", "SpamComplaint", "SubscriptionChange", "Inbound"];

/// Why a webhook request was refused. Answer every one of them with HTTP 401 and no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookAuthError {
    /// No `Authorization` header although basic auth is required.
    #[error("missing Authorization header")]
    MissingAuthorization,
    /// The `Authorization` header is not well-formed basic auth (not `Basic`, bad base64, no colon, not UTF-8,
    /// empty, or sent more than once).
    #[error("malformed Authorization header")]
    MalformedAuthorization,
    /// Wrong user name or password.
    #[error("wrong basic-auth credentials")]
    WrongCredentials,
    /// A required custom header is absent.
    #[error("missing required webhook header")]
    MissingHeader,
    /// A required custom header has the wrong value (or was sent more than once).
    #[error("wrong value of a required webhook header")]
    WrongHeader,
    /// Nothing is configured, or a configured secret is empty: refusing everything is safer than accepting
    /// everything.
    #[error("no webhook credentials are configured")]
    NotConfigured,
}

/// The credentials a webhook endpoint expects. Comparisons take the same time whatever the input.
///
/// `Debug` shows which checks are configured and the custom header names, never a user name, password or header
/// value.
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

    /// Require HTTP basic auth with this user name and password (the password may contain `:`).
    ///
    /// An empty password is no secret: [`verify`](Self::verify) then refuses everything with
    /// [`WebhookAuthError::NotConfigured`] rather than letting `Authorization: Basic <user:>` in.
    pub fn basic(mut self, user: &str, password: &str) -> Self {
        self.basic = Some((user.as_bytes().to_vec(), password.as_bytes().to_vec()));
        self
    }

    /// Require a header (name case-insensitive) with exactly this value.
    ///
    /// An empty value is no secret: [`verify`](Self::verify) then refuses everything with
    /// [`WebhookAuthError::NotConfigured`] rather than letting an empty header in.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        self
    }

    /// Whether at least one check is configured and none has an empty secret, i.e. whether
    /// [`verify`](Self::verify) can ever succeed. Check it at startup and refuse to run without it.
    pub fn is_configured(&self) -> bool {
        let basic_ok = self.basic.as_ref().is_none_or(|(_, password)| !password.is_empty());
        let headers_ok = self.headers.iter().all(|(name, value)| !name.is_empty() && !value.is_empty());
        (self.basic.is_some() || !self.headers.is_empty()) && basic_ok && headers_ok
    }

    /// Checks a request's headers, given as (name, value) pairs from any HTTP framework (repeat a name once per
    /// value, as `http::HeaderMap::iter` does).
    ///
    /// Every configured check must pass. A header the check needs that appears more than once is refused: a
    /// request that is ambiguous about its credentials is not authenticated.
    ///
    /// # Errors
    ///
    /// The first check that failed; answer them all alike, with HTTP 401 and no detail.
    pub fn verify<'a, I>(&self, request_headers: I) -> Result<(), WebhookAuthError>
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        if !self.is_configured() {
            return Err(WebhookAuthError::NotConfigured);
        }
        let request_headers: Vec<(&str, &[u8])> = request_headers.into_iter().collect();
        // The single value of a header: Ok(None) when absent, Err(()) when sent more than once.
        let single = |name: &str| -> Result<Option<&[u8]>, ()> {
            let mut values = request_headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v);
            match (values.next(), values.next()) {
                (first, None) => Ok(first),
                (_, Some(_)) => Err(()),
            }
        };
        if let Some((user, password)) = &self.basic {
            let header = single("authorization")
                .map_err(|()| WebhookAuthError::MalformedAuthorization)?
                .ok_or(WebhookAuthError::MissingAuthorization)?;
            let (given_user, given_password) = decode_basic(header).ok_or(WebhookAuthError::MalformedAuthorization)?;
            // Both comparisons always run, so timing does not tell which part was wrong.
            let ok = ct_eq(user, &given_user) & ct_eq(password, &given_password);
            if !ok {
                return Err(WebhookAuthError::WrongCredentials);
            }
        }
        for (name, expected) in &self.headers {
            let given =
                single(name).map_err(|()| WebhookAuthError::WrongHeader)?.ok_or(WebhookAuthError::MissingHeader)?;
            if !ct_eq(expected, given) {
                return Err(WebhookAuthError::WrongHeader);
            }
        }
        Ok(())
    }

    /// Checks a `reqwest`/`http` header map (the `http::HeaderMap` type axum, hyper and reqwest share).
    ///
    /// # Errors
    ///
    /// As [`verify`](Self::verify).
    pub fn verify_header_map(&self, headers: &reqwest::header::HeaderMap) -> Result<(), WebhookAuthError> {
        self.verify(headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())))
    }
}

/// Splits `Basic base64(user:password)` (RFC 7617; the user name ends at the first colon, the password may contain
/// more). `None` unless the scheme is Basic, the base64 is valid, there is a colon and both parts are UTF-8.
fn decode_basic(header: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.as_bytes().to_vec(), password.as_bytes().to_vec()))
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
