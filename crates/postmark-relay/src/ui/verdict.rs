//! The verdict: each of Postmark's rules that applies to a message, passed or failed, with the
//! ErrorCode Postmark answers when it fails. The limits are the relay's own
//! (`postmark_core::limits`, the same the accept-time checks of [`crate::validate`] use), and the
//! first rule is those checks themselves, run on the message as spooled.

use postmark_core::limits::{
    MAX_BODY_BYTES, MAX_FROM_CHARS, MAX_MESSAGE_BYTES, MAX_METADATA_KEY_CHARS, MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS, MAX_RECIPIENTS, MAX_SUBJECT_CHARS, MAX_TAG_CHARS, char_count, forbidden_extension,
    is_valid_address,
};
use serde::Serialize;
use serde_json::Value;

use super::view::{bare_address, split_addresses};
use crate::convert::ConvertOptions;
use crate::envelope::Via;
use crate::spool::StoredMessage;

/// Postmark's "Invalid email request".
const INVALID_REQUEST: i64 = 300;
/// Postmark's "Forbidden attachment type".
const FORBIDDEN_ATTACHMENT: i64 = 411;

/// One rule and how the message fares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// What the rule asks.
    pub rule: String,
    /// `Some(true)` passed, `Some(false)` failed, `None` only Postmark can tell.
    pub passed: Option<bool>,
    /// The ErrorCode Postmark answers when it fails (none for the relay's SMTP-time checks).
    pub error_code: Option<i64>,
    /// What was found.
    pub detail: String,
}

fn rule(rule: &str, passed: Option<bool>, code: Option<i64>, detail: impl Into<String>) -> Rule {
    Rule { rule: rule.to_owned(), passed, error_code: code, detail: detail.into() }
}

fn check(out: &mut Vec<Rule>, name: &str, code: i64, failure: Option<String>, fine: impl Into<String>) {
    let passed = failure.is_none();
    out.push(rule(name, Some(passed), Some(code), failure.unwrap_or_else(|| fine.into())));
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The rules for a message (when its bytes are known) and its requests.
pub fn rules(message: Option<&StoredMessage>, requests: &[Value], via: Via, opts: &ConvertOptions) -> Vec<Rule> {
    let mut out = Vec::new();
    if let Some(msg) = message {
        let accepted = crate::validate::validate(&msg.raw, &msg.header.envelope, via, opts);
        out.push(match accepted {
            Ok(_) => rule("the relay's checks at the end of DATA (src/validate.rs)", Some(true), None, "accepted"),
            Err(r) => rule("the relay's checks at the end of DATA (src/validate.rs)", Some(false), None, r.to_string()),
        });
    }
    if let Some(request) = requests.first() {
        request_rules(request, &mut out);
    }
    out.push(rule(
        "From is a confirmed sender signature or on a verified domain",
        None,
        Some(400),
        "only Postmark knows (ErrorCode 400 not a sender signature, 401 not confirmed); with an account token the \
         relay refuses unverified senders before 250",
    ));
    out.push(rule(
        "no recipient is inactive (bounced, complained, suppressed)",
        None,
        Some(406),
        "only Postmark knows its suppression list",
    ));
    out
}

fn request_rules(r: &Value, out: &mut Vec<Rule>) {
    let from = s(r, "From").unwrap_or_default();
    let from_ok = split_addresses(from).len() == 1 && is_valid_address(bare_address(from));
    let failure = if !from_ok {
        Some(format!("From {from:?} is not one valid address"))
    } else if char_count(from) > MAX_FROM_CHARS {
        Some(format!("From is {} characters (at most {MAX_FROM_CHARS})", char_count(from)))
    } else {
        None
    };
    check(out, "From is exactly one valid address", INVALID_REQUEST, failure, from);

    let mut all = Vec::new();
    for key in ["To", "Cc", "Bcc"] {
        all.extend(split_addresses(s(r, key).unwrap_or_default()));
    }
    let bad: Vec<&String> = all.iter().filter(|a| !is_valid_address(bare_address(a))).collect();
    let failure = if all.is_empty() {
        Some("no recipient in To, Cc or Bcc".into())
    } else if all.len() > MAX_RECIPIENTS {
        Some(format!("{} recipients (at most {MAX_RECIPIENTS})", all.len()))
    } else if !bad.is_empty() {
        Some(format!("not a valid address: {}", bad.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")))
    } else {
        None
    };
    check(
        out,
        "To, Cc and Bcc hold 1 to 50 valid addresses",
        INVALID_REQUEST,
        failure,
        format!("{} recipient(s)", all.len()),
    );

    if let Some(reply_to) = s(r, "ReplyTo") {
        let bad = split_addresses(reply_to).iter().any(|a| !is_valid_address(bare_address(a)));
        let failure = bad.then(|| format!("ReplyTo {reply_to:?} holds an invalid address"));
        check(out, "ReplyTo holds only valid addresses", INVALID_REQUEST, failure, reply_to);
    }

    let text = s(r, "TextBody").unwrap_or_default();
    let html = s(r, "HtmlBody").unwrap_or_default();
    let failure =
        (text.trim().is_empty() && html.trim().is_empty()).then(|| "neither TextBody nor HtmlBody has text".into());
    check(out, "a TextBody or an HtmlBody", INVALID_REQUEST, failure, "present");
    let too_big = [("TextBody", text), ("HtmlBody", html)].into_iter().find(|(_, b)| b.len() > MAX_BODY_BYTES);
    let failure = too_big.map(|(name, b)| format!("{name} is {} bytes (at most {MAX_BODY_BYTES})", b.len()));
    let sizes = format!("TextBody {} bytes, HtmlBody {} bytes", text.len(), html.len());
    check(out, "each body at most 5 MB", INVALID_REQUEST, failure, sizes);
    let json = serde_json::to_vec(r).map_or(usize::MAX, |v| v.len());
    let failure = (json > MAX_MESSAGE_BYTES).then(|| format!("{json} bytes (at most {MAX_MESSAGE_BYTES})"));
    check(
        out,
        "the whole request at most 10 MB, attachments included",
        INVALID_REQUEST,
        failure,
        format!("{json} bytes"),
    );

    if let Some(subject) = s(r, "Subject") {
        let n = char_count(subject);
        let failure = (n > MAX_SUBJECT_CHARS).then(|| format!("{n} characters (at most {MAX_SUBJECT_CHARS})"));
        check(out, "Subject at most 2000 characters", INVALID_REQUEST, failure, format!("{n} characters"));
    }
    if let Some(tag) = s(r, "Tag") {
        let n = char_count(tag);
        let failure = (n > MAX_TAG_CHARS).then(|| format!("{n} characters (at most {MAX_TAG_CHARS})"));
        check(out, "Tag at most 1000 characters", INVALID_REQUEST, failure, format!("{n} characters"));
    }
    if let Some(meta) = r.get("Metadata").and_then(Value::as_object).filter(|m| !m.is_empty()) {
        let long_key = meta.keys().find(|k| char_count(k) > MAX_METADATA_KEY_CHARS);
        let long_value =
            meta.iter().find(|(_, v)| v.as_str().is_some_and(|v| char_count(v) > MAX_METADATA_VALUE_CHARS));
        let failure = if meta.len() > MAX_METADATA_KEYS {
            Some(format!("{} keys (at most {MAX_METADATA_KEYS})", meta.len()))
        } else if let Some(k) = long_key {
            Some(format!("key {k:?} is over {MAX_METADATA_KEY_CHARS} characters"))
        } else {
            long_value.map(|(k, _)| format!("the value of {k:?} is over {MAX_METADATA_VALUE_CHARS} characters"))
        };
        check(
            out,
            "Metadata: at most 10 keys of 20 and values of 80 characters",
            INVALID_REQUEST,
            failure,
            format!("{} key(s)", meta.len()),
        );
    }
    if let Some(list) = r.get("Attachments").and_then(Value::as_array).filter(|l| !l.is_empty()) {
        let forbidden: Vec<String> = list
            .iter()
            .filter_map(|a| s(a, "Name"))
            .filter_map(|n| forbidden_extension(n).map(|ext| format!("{n} (.{ext})")))
            .collect();
        let failure = (!forbidden.is_empty()).then(|| format!("forbidden type: {}", forbidden.join(", ")));
        check(
            out,
            "no attachment of a type Postmark refuses",
            FORBIDDEN_ATTACHMENT,
            failure,
            format!("{} attachment(s)", list.len()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn failed(rules: &[Rule]) -> Vec<(String, Option<i64>)> {
        rules.iter().filter(|r| r.passed == Some(false)).map(|r| (r.rule.clone(), r.error_code)).collect()
    }

    #[test]
    fn a_good_request_passes_every_rule_that_can_be_checked_here() {
        let r = json!({"From": "Shop <shop@example.com>", "To": "a@example.com", "Subject": "hi", "TextBody": "x",
            "Attachments": [{"Name": "a.pdf", "Content": "", "ContentType": "application/pdf"}]});
        let rules = rules(None, &[r], Via::Api, &ConvertOptions::default());
        assert!(failed(&rules).is_empty(), "{rules:?}");
        assert!(rules.iter().any(|r| r.error_code == Some(411) && r.passed == Some(true)));
        assert_eq!(rules.iter().filter(|r| r.passed.is_none()).count(), 2);
    }

    #[test]
    fn each_broken_rule_fails_with_its_error_code() {
        let many: Vec<String> = (0..51).map(|i| format!("r{i}@example.com")).collect();
        let meta: serde_json::Map<String, Value> = (0..11).map(|i| (format!("k{i}"), json!("v"))).collect();
        let r = json!({"From": "not an address", "To": many.join(", "), "Subject": "s".repeat(2001),
            "TextBody": "  ", "Tag": "t".repeat(1001), "Metadata": meta, "ReplyTo": "bad",
            "Attachments": [{"Name": "run.EXE", "Content": "", "ContentType": "application/x-msdownload"}]});
        let failed = failed(&rules(None, &[r], Via::Api, &ConvertOptions::default()));
        let codes: Vec<Option<i64>> = failed.iter().map(|(_, c)| *c).collect();
        assert_eq!(failed.len(), 8, "{failed:?}");
        assert_eq!(codes.iter().filter(|c| **c == Some(300)).count(), 7, "{failed:?}");
        assert!(failed.iter().any(|(r, c)| r.contains("attachment") && *c == Some(411)));
    }

    #[test]
    fn the_relays_own_checks_come_first() {
        let env = crate::envelope::Envelope::new("", ["a@example.com"]);
        let raw = b"To: a@example.com\r\nSubject: x\r\n\r\nbody\r\n".to_vec();
        let msg =
            StoredMessage { id: crate::spool::QueueId::generate(), header: crate::spool::Header::new(env, &raw), raw };
        let rules = rules(Some(&msg), &[], Via::Api, &ConvertOptions::default());
        assert_eq!(rules[0].passed, Some(false));
        assert!(rules[0].detail.starts_with("550 5.1.7"), "{:?}", rules[0]);
    }
}
