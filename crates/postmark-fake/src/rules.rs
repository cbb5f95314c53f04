//! Postmark's refusals, as pure functions: what the real service answers to a send, so that neither the fake nor a
//! test acknowledges mail Postmark would not take.
//!
//! * [`validate`] checks one message of a send request (one element of a batch) against a [`Rules`] configuration
//!   and returns the [`Refusal`] (ErrorCode and message) Postmark would give, or `Ok(())`.
//! * [`parse_request`] does the checks that concern the whole HTTP request (size, headers, JSON, batch length) and
//!   yields the messages to give to [`validate`].
//! * [`check_mime`] is the model of Postmark's SMTP service: the message was accepted with `250`, and this tells
//!   whether Postmark would later turn it into an `SMTPApiError` bounce (TypeCode [`SMTP_API_ERROR_TYPE_CODE`]).
//! * [`parse_address_list`] and [`is_valid_address`] are Postmark's address rules.
//!
//! The fake's HTTP handler ([`crate::http::FakeApi`]) and SMTP server ([`crate::smtp::FakeSmtp`]) call exactly these
//! functions, so a property test that calls them directly sees the same verdict as an end-to-end test.
//!
//! Every rule, its ErrorCode and its source are listed in the crate's README. Where Postmark's documentation says
//! nothing, the rule takes the strict reading (refuse), because a fake that accepts what Postmark refuses lets a
//! `250` turn into lost mail.

mod address;
mod mime;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine as _;
use serde_json::{Map, Value, json};

pub use self::address::{Mailbox, is_valid_address, parse_address_list};
pub use self::mime::{check_mime, has_usable_body};

/// Postmark's ErrorCodes used by the rules (see the API overview's error code list).
pub mod code {
    /// Invalid email request: bad address, no body, too many recipients, limits.
    pub const INVALID_EMAIL_REQUEST: i64 = 300;
    /// Sender signature not found: the `From` address is not a verified sender.
    pub const SENDER_SIGNATURE_NOT_FOUND: i64 = 400;
    /// Sender signature not confirmed.
    pub const SENDER_SIGNATURE_NOT_CONFIRMED: i64 = 401;
    /// Invalid JSON: the body does not parse.
    pub const INVALID_JSON: i64 = 402;
    /// Incompatible JSON: a field of the wrong type, or a field Postmark does not know.
    pub const INCOMPATIBLE_JSON: i64 = 403;
    /// Inactive recipient (hard bounce, spam complaint or manual suppression).
    pub const INACTIVE_RECIPIENT: i64 = 406;
    /// JSON required: the `Accept` header does not ask for `application/json`.
    pub const JSON_REQUIRED: i64 = 409;
    /// Too many batch messages (more than 500).
    pub const TOO_MANY_BATCH_MESSAGES: i64 = 410;
    /// Forbidden attachment type.
    pub const FORBIDDEN_ATTACHMENT_TYPE: i64 = 411;
}

/// The bounce TypeCode of an `SMTPApiError`: a message Postmark's SMTP service accepted and then refused.
pub const SMTP_API_ERROR_TYPE_CODE: i64 = 100007;

/// Attachment extensions Postmark refuses with ErrorCode 411 (lower case, without the dot).
pub const FORBIDDEN_EXTENSIONS: &[&str] = &[
    "vbs", "exe", "bin", "bat", "chm", "com", "cpl", "crt", "hlp", "hta", "inf", "ins", "isp", "jse", "lnk", "mdb",
    "pcd", "pif", "reg", "scr", "sct", "shs", "vbe", "vba", "wsf", "wsh", "wsl", "msc", "msi", "msp", "mst",
];

/// The values `TrackLinks` may take.
pub const TRACK_LINKS_VALUES: &[&str] = &["None", "HtmlAndText", "HtmlOnly", "TextOnly"];

/// Postmark's size and count limits. Sizes are in bytes, lengths in UTF-16 code units (Postmark counts characters
/// that way for `Subject` and `From`; the other lengths are counted the same way, the strict reading).
///
/// "MB" is read as 1,000,000 bytes: Postmark does not say which megabyte it means, and the decimal one is the
/// smaller (strict) reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// One message including its base64 attachments, measured on its JSON (10 MB).
    pub max_message_bytes: usize,
    /// `TextBody` and `HtmlBody`, each (5 MB).
    pub max_body_bytes: usize,
    /// Messages in one batch request (500).
    pub max_batch_messages: usize,
    /// A whole batch request (50 MB).
    pub max_batch_bytes: usize,
    /// Addresses in `To`, `Cc` and `Bcc` together (50).
    pub max_recipients: usize,
    /// `Subject` (2000 characters).
    pub max_subject_chars: usize,
    /// The whole `From` value (255 characters).
    pub max_from_chars: usize,
    /// `Tag` (1000 characters).
    pub max_tag_chars: usize,
    /// Keys of `Metadata` (10).
    pub max_metadata_keys: usize,
    /// One `Metadata` key (20 characters).
    pub max_metadata_key_chars: usize,
    /// One `Metadata` value (80 characters).
    pub max_metadata_value_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 10_000_000,
            max_body_bytes: 5_000_000,
            max_batch_messages: 500,
            max_batch_bytes: 50_000_000,
            max_recipients: 50,
            max_subject_chars: 2000,
            max_from_chars: 255,
            max_tag_chars: 1000,
            max_metadata_keys: 10,
            max_metadata_key_chars: 20,
            max_metadata_value_chars: 80,
        }
    }
}

/// The state of the Postmark account that decides a send beyond its content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Verified senders: addresses (`jane@example.com`) and whole domains (`example.com`), compared
    /// case-insensitively. `None` (the default) accepts any well-formed `From`; `Some` refuses every other sender
    /// with ErrorCode 400.
    pub verified_senders: Option<Vec<String>>,
    /// Sender signatures that exist but are not confirmed (addresses or domains): ErrorCode 401, even when no
    /// verified list is set.
    pub unconfirmed_senders: Vec<String>,
    /// Inactive recipients (lower-case address → the ErrorCode to answer, normally 406).
    pub inactive_recipients: BTreeMap<String, i64>,
    /// Size and count limits.
    pub limits: Limits,
}

impl Rules {
    /// Marks `address` inactive: a message to it is refused with `error_code`.
    pub fn reject_recipient(&mut self, address: &str, error_code: i64) {
        self.inactive_recipients.insert(address.to_ascii_lowercase(), error_code);
    }

    /// The refusal for sending from `address` (the bare address of `From`), if the account refuses it.
    pub fn check_sender(&self, address: &str) -> Result<(), Refusal> {
        let matches = |entries: &[String]| entries.iter().any(|e| sender_matches(e, address));
        if matches(&self.unconfirmed_senders) {
            return Err(Refusal::new(
                code::SENDER_SIGNATURE_NOT_CONFIRMED,
                format!(
                    "The 'From' address you supplied ({address}) is a Sender Signature that has not been confirmed."
                ),
            ));
        }
        match &self.verified_senders {
            Some(verified) if !matches(verified) => Err(Refusal::new(
                code::SENDER_SIGNATURE_NOT_FOUND,
                format!("The 'From' address you supplied ({address}) is not a Sender Signature on your account."),
            )),
            _ => Ok(()),
        }
    }

    /// The refusal for the first inactive address among `recipients`, if any.
    pub fn check_recipients<'a>(&self, recipients: impl IntoIterator<Item = &'a str>) -> Result<(), Refusal> {
        let inactive: Vec<(&str, i64)> = recipients
            .into_iter()
            .filter_map(|r| self.inactive_recipients.get(&r.to_ascii_lowercase()).map(|c| (r, *c)))
            .collect();
        match inactive.first() {
            None => Ok(()),
            Some((_, code)) => {
                let list: Vec<&str> = inactive.iter().map(|(a, _)| *a).collect();
                Err(Refusal::new(
                    *code,
                    format!(
                        "You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: {}.",
                        list.join(", ")
                    ),
                ))
            }
        }
    }
}

/// An address entry matches `address` when it is that address, or the domain of it (no subdomains).
fn sender_matches(entry: &str, address: &str) -> bool {
    let entry = entry.trim();
    if entry.contains('@') {
        entry.eq_ignore_ascii_case(address)
    } else {
        address.rsplit_once('@').is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(entry))
    }
}

/// Postmark's answer to a message it refuses: the `ErrorCode` and `Message` of its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Postmark's ErrorCode (see [`code`]).
    pub error_code: i64,
    /// The human-readable reason.
    pub message: String,
}

impl Refusal {
    /// A refusal with this code and message.
    pub fn new(error_code: i64, message: impl Into<String>) -> Self {
        Self { error_code, message: message.into() }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(code::INVALID_EMAIL_REQUEST, message)
    }

    fn field(name: &str) -> Self {
        Self::new(code::INCOMPATIBLE_JSON, format!("Invalid request field(s) - {name}."))
    }

    /// Postmark's error body: `{"ErrorCode": …, "Message": …}`.
    pub fn to_json(&self) -> Value {
        json!({"ErrorCode": self.error_code, "Message": self.message})
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorCode {}: {}", self.error_code, self.message)
    }
}

impl std::error::Error for Refusal {}

/// A refusal of a whole request, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRefusal {
    /// HTTP status: 413 (too large), 415 (Content-Type), or 422 with a [`Refusal`].
    pub status: u16,
    /// Postmark's JSON error for a 422; `None` for 413 and 415, which carry no ErrorCode.
    pub refusal: Option<Refusal>,
}

impl RequestRefusal {
    fn status(status: u16) -> Self {
        Self { status, refusal: None }
    }

    fn unprocessable(refusal: Refusal) -> Self {
        Self { status: 422, refusal: Some(refusal) }
    }
}

/// The four send endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /email`: one message.
    Email,
    /// `POST /email/batch`: a JSON array of messages.
    Batch,
    /// `POST /email/withTemplate`: one templated message.
    WithTemplate,
    /// `POST /email/batchWithTemplates`: `{"Messages": [templated messages]}`.
    BatchWithTemplates,
}

impl Endpoint {
    /// The endpoint at `path` (exact, case-sensitive), if it is a send endpoint.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        match path {
            "/email" => Some(Endpoint::Email),
            "/email/batch" => Some(Endpoint::Batch),
            "/email/withTemplate" => Some(Endpoint::WithTemplate),
            "/email/batchWithTemplates" => Some(Endpoint::BatchWithTemplates),
            _ => None,
        }
    }

    /// The endpoint's path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Email => "/email",
            Endpoint::Batch => "/email/batch",
            Endpoint::WithTemplate => "/email/withTemplate",
            Endpoint::BatchWithTemplates => "/email/batchWithTemplates",
        }
    }

    /// Whether the messages take their subject and bodies from a template.
    pub fn uses_template(self) -> bool {
        matches!(self, Endpoint::WithTemplate | Endpoint::BatchWithTemplates)
    }

    /// Whether the request holds several messages (answered with HTTP 200 and one result per message).
    pub fn is_batch(self) -> bool {
        matches!(self, Endpoint::Batch | Endpoint::BatchWithTemplates)
    }
}

/// Checks what concerns a whole send request and splits it into its messages (one for a single send).
///
/// In order: the body over the size limit (HTTP 413: 10 MB for a single send, 50 MB for a batch), a missing or
/// non-JSON `Content-Type` (HTTP 415), an `Accept` header that does not accept `application/json` (422 / 409),
/// a body that is not JSON (422 / 402), a body of the wrong shape (422 / 403: not an object for a single send,
/// not an array for `/email/batch`, no `Messages` array for `/email/batchWithTemplates`), more than 500 messages
/// (422 / 410). The messages themselves are not checked here: give each to [`validate`].
pub fn parse_request(
    endpoint: Endpoint,
    content_type: Option<&str>,
    accept: Option<&str>,
    body: &[u8],
    rules: &Rules,
) -> Result<Vec<Value>, RequestRefusal> {
    let limits = &rules.limits;
    let max = if endpoint.is_batch() { limits.max_batch_bytes } else { limits.max_message_bytes };
    if body.len() > max {
        return Err(RequestRefusal::status(413));
    }
    if !content_type.is_some_and(is_json_media_type) {
        return Err(RequestRefusal::status(415));
    }
    if !accept.is_some_and(|a| a.split(',').any(is_json_media_type)) {
        return Err(RequestRefusal::unprocessable(Refusal::new(
            code::JSON_REQUIRED,
            "The 'Accept' and 'Content-Type' headers must be set to 'application/json'.",
        )));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| RequestRefusal::unprocessable(Refusal::new(code::INVALID_JSON, "Received invalid JSON input.")))?;
    let messages = match (endpoint, value) {
        (Endpoint::Email | Endpoint::WithTemplate, message @ Value::Object(_)) => vec![message],
        (Endpoint::Batch, Value::Array(messages)) => messages,
        (Endpoint::BatchWithTemplates, Value::Object(mut body)) => {
            let messages = body.remove("Messages");
            if let Some(key) = body.keys().next() {
                return Err(RequestRefusal::unprocessable(Refusal::field(key)));
            }
            match messages {
                Some(Value::Array(messages)) => messages,
                _ => return Err(RequestRefusal::unprocessable(Refusal::field("Messages"))),
            }
        }
        _ => return Err(RequestRefusal::unprocessable(Refusal::field("(request body)"))),
    };
    if endpoint.is_batch() && messages.len() > limits.max_batch_messages {
        return Err(RequestRefusal::unprocessable(Refusal::new(
            code::TOO_MANY_BATCH_MESSAGES,
            format!("Too many batch messages: {} (at most {}).", messages.len(), limits.max_batch_messages),
        )));
    }
    Ok(messages)
}

/// `application/json`, case-insensitive, parameters (`; charset=utf-8`) allowed.
fn is_json_media_type(value: &str) -> bool {
    let media = value.split(';').next().unwrap_or_default().trim();
    media.eq_ignore_ascii_case("application/json")
}

/// Fields of a `/email` message.
const EMAIL_FIELDS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Bcc",
    "Subject",
    "Tag",
    "HtmlBody",
    "TextBody",
    "ReplyTo",
    "Headers",
    "TrackOpens",
    "TrackLinks",
    "Metadata",
    "Attachments",
    "MessageStream",
];

/// Fields of a `/email/withTemplate` message (no `Subject`, `HtmlBody`, `TextBody`: the template has them).
const TEMPLATE_FIELDS: &[&str] = &[
    "TemplateId",
    "TemplateAlias",
    "TemplateModel",
    "InlineCss",
    "From",
    "To",
    "Cc",
    "Bcc",
    "Tag",
    "ReplyTo",
    "Headers",
    "TrackOpens",
    "TrackLinks",
    "Attachments",
    "Metadata",
    "MessageStream",
];

/// Fields of one `Attachments` element.
const ATTACHMENT_FIELDS: &[&str] = &["Name", "Content", "ContentType", "ContentID"];

/// Checks one message of a send to `endpoint` (for a batch, one element) the way Postmark does.
///
/// The checks run in this order, and the first that fails is the answer:
///
/// 1. shape (ErrorCode 403): the message is an object; every key is one Postmark documents for the endpoint,
///    spelled exactly; every field has its documented JSON type (`null` counts as absent: a missing `From` or
///    `To` is refused by step 3);
///    `TrackLinks` is one of its four values; a template send names exactly one of `TemplateId` / `TemplateAlias`
///    and has a `TemplateModel` object; every attachment has `Name`, `Content` and `ContentType` and valid base64;
/// 2. size (300): the message's JSON over 10 MB, `TextBody` or `HtmlBody` over 5 MB;
/// 3. addresses (300): `From` is exactly one valid address (at most 255 characters); `To`, `Cc`, `Bcc` and
///    `ReplyTo` hold only valid addresses; `To`, `Cc` and `Bcc` together hold at least one and at most 50 (a message
///    to `Bcc` only is fine);
/// 4. content (300): `TextBody` or `HtmlBody` has a character other than white space (not for template sends);
///    `Subject` at most 2000 characters, `Tag` at most 1000; `Metadata` at most 10 keys, none empty, none equal
///    to another but for case, keys at most 20 and values at most 80 characters; every header has a `Name`; every
///    attachment's `ContentType` is a MIME type and its `ContentID` ASCII without spaces;
/// 5. a forbidden attachment extension (411);
/// 6. the sender (401 unconfirmed, 400 not a sender signature), when [`Rules`] lists senders;
/// 7. an inactive recipient (the code given to [`Rules::reject_recipient`], normally 406).
pub fn validate(endpoint: Endpoint, message: &Value, rules: &Rules) -> Result<(), Refusal> {
    let Some(fields) = message.as_object() else { return Err(Refusal::field("(message)")) };
    check_shape(endpoint, fields)?;
    let limits = &rules.limits;

    let size = serde_json::to_vec(message).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > limits.max_message_bytes {
        return Err(Refusal::invalid(format!(
            "The message is {size} bytes; Postmark accepts at most {} including attachments.",
            limits.max_message_bytes
        )));
    }
    for body in ["TextBody", "HtmlBody"] {
        if let Some(text) = string(fields, body)
            && text.len() > limits.max_body_bytes
        {
            return Err(Refusal::invalid(format!("{body} is over {} bytes.", limits.max_body_bytes)));
        }
    }

    let from = string(fields, "From").unwrap_or_default();
    if utf16_len(from) > limits.max_from_chars {
        return Err(Refusal::invalid(format!("The 'From' value is over {} characters.", limits.max_from_chars)));
    }
    let from_address = match parse_field("From", from)?.as_slice() {
        [] => return Err(Refusal::invalid("Invalid 'From' address: no sender given.")),
        [one] => one.address.clone(),
        _ => return Err(Refusal::invalid(format!("Invalid 'From' address: '{from}' names more than one sender."))),
    };

    let mut recipients = Vec::new();
    for name in ["To", "Cc", "Bcc"] {
        recipients.extend(parse_field(name, string(fields, name).unwrap_or_default())?);
    }
    if recipients.is_empty() {
        return Err(Refusal::invalid("Zero recipients specified: To, Cc and Bcc hold no address."));
    }
    if recipients.len() > limits.max_recipients {
        return Err(Refusal::invalid(format!(
            "Maximum of {} recipients allowed per email message ({} given in To, Cc and Bcc).",
            limits.max_recipients,
            recipients.len()
        )));
    }
    parse_field("ReplyTo", string(fields, "ReplyTo").unwrap_or_default())?;

    if !endpoint.uses_template() && !["TextBody", "HtmlBody"].iter().any(|b| has_text(string(fields, b))) {
        return Err(Refusal::invalid("Provide either email TextBody or HtmlBody or both."));
    }
    check_lengths(fields, limits)?;
    check_attachments(fields)?;
    rules.check_sender(&from_address)?;
    rules.check_recipients(recipients.iter().map(|m| m.address.as_str()))
}

/// Step 1 of [`validate`]: keys and JSON types.
fn check_shape(endpoint: Endpoint, fields: &Map<String, Value>) -> Result<(), Refusal> {
    let known = if endpoint.uses_template() { TEMPLATE_FIELDS } else { EMAIL_FIELDS };
    if let Some(key) = fields.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Refusal::field(key));
    }
    let present = |name: &str| fields.get(name).filter(|v| !v.is_null());
    for name in [
        "From",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Tag",
        "HtmlBody",
        "TextBody",
        "ReplyTo",
        "MessageStream",
        "TemplateAlias",
    ] {
        if present(name).is_some_and(|v| !v.is_string()) {
            return Err(Refusal::field(name));
        }
    }
    for name in ["TrackOpens", "InlineCss"] {
        if present(name).is_some_and(|v| !v.is_boolean()) {
            return Err(Refusal::field(name));
        }
    }
    if present("TrackLinks").is_some_and(|v| !v.as_str().is_some_and(|s| TRACK_LINKS_VALUES.contains(&s))) {
        return Err(Refusal::field("TrackLinks"));
    }
    if let Some(metadata) = present("Metadata") {
        let ok = metadata.as_object().is_some_and(|m| m.values().all(Value::is_string));
        if !ok {
            return Err(Refusal::field("Metadata"));
        }
    }
    if let Some(headers) = present("Headers") {
        let ok = headers.as_array().is_some_and(|list| {
            list.iter().all(|h| {
                h.as_object().is_some_and(|h| {
                    h.keys().all(|k| k == "Name" || k == "Value")
                        && h.get("Name").is_some_and(Value::is_string)
                        && h.get("Value").is_some_and(Value::is_string)
                })
            })
        });
        if !ok {
            return Err(Refusal::field("Headers"));
        }
    }
    if let Some(attachments) = present("Attachments") {
        let ok = attachments.as_array().is_some_and(|list| list.iter().all(attachment_shape_ok));
        if !ok {
            return Err(Refusal::field("Attachments"));
        }
    }
    if endpoint.uses_template() {
        let id = present("TemplateId");
        if id.is_some_and(|v| !v.is_i64() && !v.is_u64()) {
            return Err(Refusal::field("TemplateId"));
        }
        if id.is_some() == present("TemplateAlias").is_some() {
            return Err(Refusal::field("TemplateId, TemplateAlias (exactly one is required)"));
        }
        if !present("TemplateModel").is_some_and(Value::is_object) {
            return Err(Refusal::field("TemplateModel"));
        }
    }
    Ok(())
}

fn attachment_shape_ok(attachment: &Value) -> bool {
    let Some(a) = attachment.as_object() else { return false };
    let content_id_ok = a.get("ContentID").is_none_or(|v| v.is_null() || v.is_string());
    a.keys().all(|k| ATTACHMENT_FIELDS.contains(&k.as_str()))
        && ["Name", "ContentType"].iter().all(|k| a.get(*k).is_some_and(Value::is_string))
        && content_id_ok
        && a.get("Content")
            .and_then(Value::as_str)
            .is_some_and(|c| base64::engine::general_purpose::STANDARD.decode(c).is_ok())
}

/// Step 4 of [`validate`]: `Subject`, `Tag`, `Metadata`, `Headers`.
fn check_lengths(fields: &Map<String, Value>, limits: &Limits) -> Result<(), Refusal> {
    if let Some(subject) = string(fields, "Subject")
        && utf16_len(subject) > limits.max_subject_chars
    {
        return Err(Refusal::invalid(format!("The subject is over {} characters.", limits.max_subject_chars)));
    }
    if let Some(tag) = string(fields, "Tag")
        && utf16_len(tag) > limits.max_tag_chars
    {
        return Err(Refusal::invalid(format!("The tag is over {} characters.", limits.max_tag_chars)));
    }
    if let Some(metadata) = fields.get("Metadata").and_then(Value::as_object) {
        let pairs = metadata.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()));
        check_metadata(pairs, limits)?;
    }
    if let Some(headers) = fields.get("Headers").and_then(Value::as_array)
        && headers.iter().any(|h| h.get("Name").and_then(Value::as_str).is_none_or(|n| n.trim().is_empty()))
    {
        return Err(Refusal::invalid("Every custom header needs a name."));
    }
    Ok(())
}

/// The `Metadata` limits, shared with the SMTP model (`X-PM-Metadata-*` headers).
pub(crate) fn check_metadata<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    limits: &Limits,
) -> Result<(), Refusal> {
    let mut seen = BTreeSet::new();
    for (key, value) in pairs {
        if key.is_empty() {
            return Err(Refusal::invalid("Metadata keys may not be empty."));
        }
        if utf16_len(key) > limits.max_metadata_key_chars {
            return Err(Refusal::invalid(format!(
                "Metadata key '{key}' is over {} characters.",
                limits.max_metadata_key_chars
            )));
        }
        if utf16_len(value) > limits.max_metadata_value_chars {
            return Err(Refusal::invalid(format!(
                "The value of metadata key '{key}' is over {} characters.",
                limits.max_metadata_value_chars
            )));
        }
        if !seen.insert(key.to_lowercase()) {
            return Err(Refusal::invalid(format!("Metadata key '{key}' is given twice (keys ignore case).")));
        }
    }
    if seen.len() > limits.max_metadata_keys {
        return Err(Refusal::invalid(format!(
            "Metadata has {} keys; at most {} are allowed.",
            seen.len(),
            limits.max_metadata_keys
        )));
    }
    Ok(())
}

/// Steps 4 and 5 of [`validate`] for `Attachments`.
fn check_attachments(fields: &Map<String, Value>) -> Result<(), Refusal> {
    let Some(attachments) = fields.get("Attachments").and_then(Value::as_array) else { return Ok(()) };
    for a in attachments {
        let name = a.get("Name").and_then(Value::as_str).unwrap_or_default();
        let content_type = a.get("ContentType").and_then(Value::as_str).unwrap_or_default();
        if !is_mime_type(content_type) {
            return Err(Refusal::invalid(format!(
                "Attachment '{name}': ContentType '{content_type}' is not a MIME type."
            )));
        }
        if let Some(id) = a.get("ContentID").and_then(Value::as_str)
            && !id.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(Refusal::invalid(format!(
                "Attachment '{name}': ContentID may hold only ASCII characters without spaces."
            )));
        }
    }
    for a in attachments {
        let name = a.get("Name").and_then(Value::as_str).unwrap_or_default();
        if let Some(ext) = forbidden_extension(name) {
            return Err(Refusal::new(
                code::FORBIDDEN_ATTACHMENT_TYPE,
                format!("Forbidden attachment type: '{name}' (.{ext} files are not accepted)."),
            ));
        }
    }
    Ok(())
}

/// The forbidden extension of a file name, if it has one (case-insensitive; trailing dots and white space are
/// ignored, as Windows ignores them).
pub fn forbidden_extension(name: &str) -> Option<String> {
    let name = name.trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    let (_, ext) = name.rsplit_once('.')?;
    let ext = ext.to_ascii_lowercase();
    FORBIDDEN_EXTENSIONS.contains(&ext.as_str()).then_some(ext)
}

/// `type/subtype` made of RFC 2045 tokens, optionally followed by `;` and parameters.
fn is_mime_type(value: &str) -> bool {
    let media = value.split(';').next().unwrap_or_default().trim();
    let is_token =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?=".contains(c));
    media.split_once('/').is_some_and(|(t, s)| is_token(t) && is_token(s))
}

/// Parses an address field; a refusal names the field as Postmark does (`Invalid 'To' address: '…'`).
fn parse_field(name: &str, value: &str) -> Result<Vec<Mailbox>, Refusal> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    parse_address_list(value).map_err(|reason| Refusal::invalid(format!("Invalid '{name}' address: {reason}")))
}

fn string<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    fields.get(name).and_then(Value::as_str)
}

/// Whether `text` has a character other than white space.
pub(crate) fn has_text(text: Option<&str>) -> bool {
    text.is_some_and(|t| t.chars().any(|c| !c.is_whitespace()))
}

/// Length in UTF-16 code units, the way Postmark counts characters.
pub(crate) fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}
