//! What the UI shows of one message, computed with the relay's own conversion: the Postmark
//! requests, the recipients Postmark will deliver to, the fate of every header, the
//! attachments, and the verdict ([`super::verdict`]).

use serde::Serialize;
use serde_json::Value;

use super::store::{Loaded, Place, State};
use crate::convert::ConvertOptions;
use crate::delivered::Record;
use crate::envelope::Via;

/// One row of the list (and of `GET /api/messages`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Queue id.
    pub id: String,
    /// When the relay accepted it (RFC 3339).
    pub received: String,
    /// `From` as Postmark gets it.
    pub from: String,
    /// `To`, `Cc`, `Bcc` as Postmark will deliver them (the envelope rule applied).
    pub to: Vec<String>,
    /// See `to`.
    pub cc: Vec<String>,
    /// See `to`.
    pub bcc: Vec<String>,
    /// The subject.
    pub subject: String,
    /// Size of the message in bytes.
    pub size: u64,
    /// `dry-run`, `pending`, `deferred`, `dead` or `delivered`.
    pub state: &'static str,
    /// The next attempt (deferred), the reason (dead), or nothing.
    pub info: String,
    /// Postmark's ErrorCode (dead letters).
    pub error_code: Option<i64>,
    /// When Postmark accepted it (delivered messages, RFC 3339).
    pub delivered: Option<String>,
    /// Postmark's MessageID or SMTP reply (delivered messages).
    pub reference: Option<String>,
}

/// What happens to one header of the message.
#[derive(Debug, Clone, Serialize)]
pub struct HeaderFate {
    /// The header's name as written.
    pub name: String,
    /// Its value as written (unfolded).
    pub value: String,
    /// `kept` (in `Headers`, or passed on unchanged over SMTP), `field` (becomes a Postmark
    /// field), `moved` (an `X-PM-*` control header read into a field), `dropped`, or `added`
    /// (by the relay).
    pub fate: &'static str,
    /// The field it becomes, or why it is dropped.
    pub note: String,
}

/// One attachment of the request.
#[derive(Debug, Clone, Serialize)]
pub struct Attachment {
    /// Its index, for `/messages/{id}/attachments/{index}`.
    pub index: usize,
    /// `Name`.
    pub name: String,
    /// `ContentType`.
    pub content_type: String,
    /// `ContentID`, for inline images.
    pub content_id: Option<String>,
    /// Decoded size in bytes.
    pub size: usize,
}

/// Everything the message view shows (and `GET /api/messages/{id}` returns).
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    /// The list's row.
    #[serde(flatten)]
    pub summary: Summary,
    /// `api` or `smtp`: what Postmark receives.
    pub via: &'static str,
    /// The `/email` requests (one, or one per recipient), as Postmark will receive them over the
    /// API. Over SMTP, Postmark gets the MIME and converts it itself; the relay's conversion is
    /// shown as the closest picture.
    pub requests: Vec<Value>,
    /// When the requests come from the dry-run file as written (else from converting now).
    pub requests_as_written: bool,
    /// Why no request could be built, if so.
    pub conversion_error: Option<String>,
    /// Every top-level header and its fate.
    pub headers: Vec<HeaderFate>,
    /// The first request's attachments.
    pub attachments: Vec<Attachment>,
    /// Postmark's rules, each passed or failed.
    pub verdict: Vec<super::verdict::Rule>,
    /// Whether the MIME source is known.
    pub has_source: bool,
    /// What the relay changed on the way: a text body it added, headers it added.
    pub repairs: Vec<String>,
}

impl Detail {
    /// The view of a message whose content is no longer held (delivered): its row and nothing else.
    pub fn without_content(summary: Summary, via: &'static str) -> Self {
        Self {
            summary,
            via,
            requests: vec![],
            requests_as_written: false,
            conversion_error: None,
            headers: vec![],
            attachments: vec![],
            verdict: vec![],
            has_source: false,
            repairs: vec![],
        }
    }
}

/// Settings the view needs from the relay.
#[derive(Debug, Clone)]
pub struct ViewOptions {
    /// The path the relay sends over.
    pub via: Via,
    /// The conversion settings.
    pub convert: ConvertOptions,
}

/// The requests for `loaded`: the dry-run file as written, else the relay's conversion.
pub fn requests(loaded: &Loaded, opts: &ViewOptions) -> (Vec<Value>, bool, Option<String>) {
    if let Some(json) = &loaded.dry_run_json {
        return match serde_json::from_slice::<Value>(json) {
            Ok(Value::Array(all)) => (all, true, None),
            Ok(one) => (vec![one], true, None),
            Err(e) => (vec![], true, Some(format!("the dry-run file is not JSON: {e}"))),
        };
    }
    let Some(msg) = &loaded.message else { return (vec![], false, Some("nothing to convert".into())) };
    match crate::delivery::api::requests_for(msg, &opts.convert) {
        Ok(all) => (all.iter().filter_map(|r| serde_json::to_value(r).ok()).collect(), false, None),
        Err(e) => (vec![], false, Some(e.to_string())),
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// Splits a Postmark address list (`a@x, "B, b" <b@x>`) at the commas outside quotes and angle
/// brackets.
pub fn split_addresses(list: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut angle) = (Vec::new(), String::new(), false, false);
    let mut escaped = false;
    for c in list.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

/// The bare address of `Name <addr>` or `addr`.
pub fn bare_address(mailbox: &str) -> &str {
    match (mailbox.rfind('<'), mailbox.rfind('>')) {
        (Some(a), Some(b)) if a < b => mailbox[a + 1..b].trim(),
        _ => mailbox.trim(),
    }
}

fn human_ms(ms: u64) -> String {
    let now = crate::clock::now_ms();
    let when = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms));
    if ms > now {
        let wait = std::time::Duration::from_secs((ms - now).div_ceil(1000));
        format!("{when} (in {})", humantime::format_duration(wait))
    } else {
        when.to_string()
    }
}

/// The row of a delivered message: what the relay kept of it.
fn delivered_summary(r: &Record) -> Summary {
    let when = human_ms(r.delivered_ms);
    Summary {
        id: r.id.to_string(),
        received: human_ms(r.received_ms),
        from: r.from.clone(),
        to: r.recipients.clone(),
        cc: vec![],
        bcc: vec![],
        subject: r.subject.clone(),
        size: r.size,
        state: "delivered",
        info: format!("{when}; reference {}", r.reference),
        error_code: None,
        delivered: Some(when),
        reference: Some(r.reference.clone()),
    }
}

/// The list's row for `loaded`, given its requests.
pub fn summary(loaded: &Loaded, requests: &[Value]) -> Summary {
    if let Some(r) = &loaded.record {
        return delivered_summary(r);
    }
    let first = requests.first().cloned().unwrap_or(Value::Null);
    let field = |key: &str| -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for r in requests {
            for a in split_addresses(&text(r, key)) {
                if !all.contains(&a) {
                    all.push(a);
                }
            }
        }
        all
    };
    let (mut to, cc, bcc) = (field("To"), field("Cc"), field("Bcc"));
    let msg = loaded.message.as_ref();
    if requests.is_empty()
        && let Some(m) = msg
    {
        to = m.header.envelope.rcpt_to.clone();
    }
    let mut from = text(&first, "From");
    if from.is_empty() {
        from = msg.map(|m| m.header.envelope.mail_from.clone()).unwrap_or_default();
    }
    let mut subject = text(&first, "Subject");
    if requests.is_empty()
        && let Some(parsed) = msg.and_then(|m| crate::convert::parse(&m.raw))
    {
        subject = parsed.subject().unwrap_or_default().to_owned();
    }
    let (info, error_code) = match &loaded.state {
        State::DryRun | State::Pending | State::Delivered { .. } => (String::new(), None),
        State::Deferred { attempts, next_attempt_ms, last_error } => {
            let next = next_attempt_ms.map_or("due now".to_string(), |t| format!("next attempt {}", human_ms(t)));
            let err = last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default();
            (format!("{attempts} attempt(s); {next}{err}"), None)
        }
        State::Dead { reason, error_code, attempts } => (format!("{reason} ({attempts} attempt(s))"), *error_code),
    };
    let size = msg.map_or_else(|| loaded.dry_run_json.as_ref().map_or(0, |j| j.len() as u64), |m| m.header.size);
    Summary {
        id: loaded.id.to_string(),
        received: human_ms(loaded.received_ms),
        from,
        to,
        cc,
        bcc,
        subject,
        size,
        state: loaded.state.name(),
        info,
        error_code,
        delivered: None,
        reference: None,
    }
}

/// What becomes of each top-level header of `raw`, given the first request (API path).
pub fn header_fates(raw: &[u8], request: Option<&Value>, via: Via) -> Vec<HeaderFate> {
    let Some(message) = crate::convert::parse(raw) else { return vec![] };
    let Some(root) = message.parts.first() else { return vec![] };
    let kept: Vec<String> = request
        .and_then(|r| r.get("Headers"))
        .and_then(Value::as_array)
        .map(|hs| hs.iter().map(|h| text(h, "Name").to_ascii_lowercase()).collect())
        .unwrap_or_default();
    let mut fates: Vec<HeaderFate> = root
        .headers
        .iter()
        .map(|h| {
            let name = h.name.as_str().to_owned();
            let value = crate::convert::controls::raw_value(h, raw);
            let lower = name.to_ascii_lowercase();
            let (fate, note) = match via {
                Via::Smtp if lower != "bcc" => ("kept", "sent as is over SMTP".to_string()),
                _ => fate_of(&lower, kept.contains(&lower)),
            };
            HeaderFate { name, value, fate, note }
        })
        .collect();
    // What the relay added (e.g. `X-Relay-Original-To` for addresses outside the envelope).
    let original: Vec<String> = fates.iter().map(|f| f.name.to_ascii_lowercase()).collect();
    let added = request.and_then(|r| r.get("Headers")).and_then(Value::as_array).into_iter().flatten();
    for h in added.filter(|h| !original.contains(&text(h, "Name").to_ascii_lowercase())) {
        let note = "added by the relay, in Headers".to_string();
        fates.push(HeaderFate { name: text(h, "Name"), value: text(h, "Value"), fate: "added", note });
    }
    fates
}

fn fate_of(lower: &str, in_headers: bool) -> (&'static str, String) {
    let field = match lower {
        "from" => Some("From"),
        "to" => Some("To (only addresses in the envelope)"),
        "cc" => Some("Cc (only addresses in the envelope)"),
        "bcc" => Some("nothing: Bcc comes from the envelope"),
        "subject" => Some("Subject"),
        "reply-to" => Some("ReplyTo"),
        _ => None,
    };
    if let Some(field) = field {
        return ("field", field.to_string());
    }
    if crate::convert::controls::is_control(lower) {
        let target = match lower {
            "x-pm-message-stream" => "MessageStream",
            "x-pm-tag" => "Tag",
            "x-pm-trackopens" | "x-pm-track-opens" => "TrackOpens",
            "x-pm-tracklinks" | "x-pm-track-links" => "TrackLinks",
            "x-pm-keepid" => "nothing: the API path always keeps the Message-ID",
            _ => "Metadata",
        };
        return ("moved", target.to_string());
    }
    if in_headers {
        return ("kept", "Headers".to_string());
    }
    let why = if lower.starts_with("content-") || matches!(lower, "date" | "mime-version") {
        "Postmark writes it itself"
    } else if matches!(lower, "received" | "return-path") {
        "a trace field of this hop"
    } else if lower == "dkim-signature" || lower.starts_with("arc-") {
        "a signature the re-encoded body would break"
    } else {
        "not passed on"
    };
    ("dropped", why.to_string())
}

/// The attachments of `request`.
pub fn attachments(request: Option<&Value>) -> Vec<Attachment> {
    let Some(list) = request.and_then(|r| r.get("Attachments")).and_then(Value::as_array) else { return vec![] };
    list.iter()
        .enumerate()
        .map(|(index, a)| Attachment {
            index,
            name: text(a, "Name"),
            content_type: text(a, "ContentType"),
            content_id: a.get("ContentID").and_then(Value::as_str).map(str::to_owned),
            size: decoded(a).map_or(0, |b| b.len()),
        })
        .collect()
}

/// The decoded content of one attachment object.
pub fn decoded(attachment: &Value) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(attachment.get("Content")?.as_str()?).ok()
}

/// Builds the whole view of `loaded`.
pub fn detail(loaded: &Loaded, opts: &ViewOptions) -> Detail {
    if let Some(r) = &loaded.record {
        // Delivered: the content is gone, only the row is kept.
        return Detail::without_content(delivered_summary(r), opts.via.as_str());
    }
    let (requests, as_written, conversion_error) = requests(loaded, opts);
    let summary = summary(loaded, &requests);
    // A dry-run file says which path it was shaped for: JSON for the API, MIME alone for SMTP.
    let via = match (loaded.place, &loaded.dry_run_json) {
        (_, Some(_)) => Via::Api,
        (Place::DryRun, None) => Via::Smtp,
        _ => opts.via,
    };
    let raw = loaded.message.as_ref().map(|m| m.raw.as_slice());
    let headers = raw.map(|r| header_fates(r, requests.first(), via)).unwrap_or_default();
    let verdict = super::verdict::rules(loaded.message.as_ref(), &requests, via, &opts.convert);
    let mut repairs: Vec<String> =
        headers.iter().filter(|h| h.fate == "added").map(|h| format!("added the header {}", h.name)).collect();
    let text_body = requests.first().and_then(|r| r.get("TextBody")).and_then(Value::as_str).unwrap_or_default();
    if let Some(parsed) = raw.and_then(crate::convert::parse)
        && !crate::repair::has_usable_body(&parsed)
        && !text_body.trim().is_empty()
    {
        repairs
            .push("added a TextBody: the message has no text or HTML body of its own, and Postmark needs one".into());
    }
    Detail {
        repairs,
        attachments: attachments(requests.first()),
        summary,
        via: via.as_str(),
        requests,
        requests_as_written: as_written,
        conversion_error,
        headers,
        verdict,
        has_source: raw.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_lists_split_outside_quotes_and_brackets() {
        assert_eq!(
            split_addresses(r#"a@x.com, "Doe, \"J\"" <j@x.com>,, <k,@x.com>"#),
            vec!["a@x.com", r#""Doe, \"J\"" <j@x.com>"#, "<k,@x.com>"]
        );
        assert_eq!(bare_address(r#""Doe, J" <j@x.com>"#), "j@x.com");
        assert_eq!(bare_address(" a@x.com "), "a@x.com");
    }

    #[test]
    fn headers_are_kept_moved_turned_into_fields_or_dropped() {
        let raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\nDate: Mon, 1 Dec 2025 10:00:00 +0000\r\n\
X-PM-Tag: welcome\r\nX-Custom: 1\r\nDKIM-Signature: v=1\r\nReceived: from x\r\n\r\nbody\r\n";
        let request = serde_json::json!({"Headers": [{"Name": "X-Custom", "Value": "1"}, {"Name": "X-Relay-Original-To", "Value": "c@example.com"}]});
        let fates: Vec<(String, &str)> =
            header_fates(raw, Some(&request), Via::Api).into_iter().map(|h| (h.name, h.fate)).collect();
        let expect = [
            ("From", "field"),
            ("To", "field"),
            ("Subject", "field"),
            ("Date", "dropped"),
            ("X-PM-Tag", "moved"),
            ("X-Custom", "kept"),
            ("DKIM-Signature", "dropped"),
            ("Received", "dropped"),
            ("X-Relay-Original-To", "added"),
        ];
        assert_eq!(fates, expect.iter().map(|(n, f)| (n.to_string(), *f)).collect::<Vec<_>>());
        assert!(header_fates(raw, None, Via::Smtp).iter().all(|h| h.fate == "kept"));
    }
}
