//! Log output: `--log-format text|json` (`RELAY_LOG_FORMAT`, config file key `log_format`) and
//! whether envelope addresses may appear in the per-message lines (`--log-addresses`,
//! `RELAY_LOG_ADDRESSES`, `log_addresses`; off by default).
//!
//! Every message gets one line per step, with `event` set to `accepted`, `delivered`,
//! `retried` or `dead`, and the fields `queue_id`, `size`, `recipients`, `stream`, `route` (the
//! `[[routes]]` entry, or `default`), `path` (`api`, `smtp`, `dry_run`), and `message_id`
//! (Postmark's MessageID, once delivered). No
//! address is logged at `info` unless the operator asked for them: error texts from upstream
//! (which quote addresses) go through [`redact`]. Secrets are never logged: they only live in
//! [`crate::secrets::Secret`], whose `Debug` prints `***`.
//!
//! The JSON format writes one object per line: `timestamp` (RFC 3339, UTC), `level`, `target`,
//! `message`, the event's fields, and `spans` (the names of the spans it happened in).

pub mod message;

use std::borrow::Cow;
use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A `--log-format` value that is neither `text` nor `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected `text` or `json`, got `{0}`")]
pub struct InvalidLogFormat(String);

/// `text` or `json`, in any case.
pub fn parse_format(s: &str) -> Result<LogFormat, InvalidLogFormat> {
    match s.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(InvalidLogFormat(s.to_owned())),
    }
}

static LOG_ADDRESSES: AtomicBool = AtomicBool::new(false);

/// Whether the operator asked for envelope addresses in the logs.
pub fn addresses_allowed() -> bool {
    LOG_ADDRESSES.load(Ordering::Relaxed)
}

/// Sets up the process's logging: `RUST_LOG` (default `info`) to stderr in `format`.
pub fn init(format: LogFormat, log_addresses: bool) {
    LOG_ADDRESSES.store(log_addresses, Ordering::Relaxed);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.with_ansi(false).event_format(Json).init(),
    }
}

/// The `stream` field: the message stream decided at accept time, `default` for Postmark's.
pub fn stream_field(stream: Option<&str>) -> &str {
    stream.unwrap_or("default")
}

/// The `route` field: the `[[routes]]` entry whose credentials deliver the message, `default`
/// for the default credentials.
pub fn route_field(route: Option<&str>) -> &str {
    route.unwrap_or("default")
}

/// The `path` field at accept time: the path the message was checked for.
pub fn path_field(via: crate::envelope::Via) -> &'static str {
    match via {
        crate::envelope::Via::Api => "api",
        crate::envelope::Via::Smtp => "smtp",
    }
}

/// The `from` field: the envelope sender, only when addresses may be logged (else no field).
pub fn from_field(envelope: &crate::envelope::Envelope) -> Option<String> {
    addresses_allowed().then(|| envelope.mail_from.clone())
}

/// The `to` field: the envelope recipients, only when addresses may be logged (else no field).
pub fn to_field(envelope: &crate::envelope::Envelope) -> Option<String> {
    addresses_field(&envelope.rcpt_to)
}

/// Addresses joined by commas, only when addresses may be logged (else no field).
pub fn addresses_field(addresses: &[String]) -> Option<String> {
    addresses_allowed().then(|| addresses.join(","))
}

/// `text` with every e-mail address replaced by `<address>`, unless addresses may be logged.
pub fn redact(text: &str) -> Cow<'_, str> {
    if addresses_allowed() { Cow::Borrowed(text) } else { redact_addresses(text) }
}

/// `text` with every e-mail address (`local@domain`) replaced by `<address>`.
pub fn redact_addresses(text: &str) -> Cow<'_, str> {
    if !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let is_part = |c: char| c.is_alphanumeric() || "._%+-=!#$&^~".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let before = &rest[..at];
        let local_start = before.char_indices().rev().find(|&(_, c)| !is_part(c)).map_or(0, |(i, c)| i + c.len_utf8());
        let after = &rest[at + 1..];
        let domain_len = after.find(|c: char| !(c.is_alphanumeric() || c == '.' || c == '-')).unwrap_or(after.len());
        let domain = after[..domain_len].trim_end_matches('.');
        if local_start < at && !domain.is_empty() {
            out.push_str(&before[..local_start]);
            out.push_str("<address>");
            rest = &after[domain.len()..];
        } else {
            out.push_str(&rest[..=at]);
            rest = after;
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The JSON event format.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let mut object = Map::new();
        object
            .insert("timestamp".into(), chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into());
        object.insert("level".into(), meta.level().as_str().into());
        object.insert("target".into(), meta.target().into());
        event.record(&mut JsonFields(&mut object));
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<Value> = scope.from_root().map(|span| Value::from(span.name())).collect();
            if !spans.is_empty() {
                object.insert("spans".into(), spans.into());
            }
        }
        writeln!(writer, "{}", Value::Object(object))
    }
}

/// Collects an event's fields into a JSON object.
struct JsonFields<'a>(&'a mut Map<String, Value>);

impl Visit for JsonFields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn formats_parse_in_any_case_and_others_are_refused() {
        assert_eq!(parse_format("JSON"), Ok(LogFormat::Json));
        assert_eq!(parse_format("text"), Ok(LogFormat::Text));
        assert_eq!(parse_format("yaml").unwrap_err().to_string(), "expected `text` or `json`, got `yaml`");
    }

    #[test]
    fn addresses_are_redacted_and_the_rest_kept() {
        assert_eq!(
            redact_addresses("550 5.1.1 <jane.doe+x@example.com>: user unknown; cc bob@mail.example.org."),
            "550 5.1.1 <<address>>: user unknown; cc <address>."
        );
        assert_eq!(
            redact_addresses("Invalid 'To' address: 'x@y'. ErrorCode 300"),
            "Invalid 'To' address: '<address>'. ErrorCode 300"
        );
        assert_eq!(redact_addresses("no address @ all, nor foo@"), "no address @ all, nor foo@");
        assert!(matches!(redact_addresses("plain text"), Cow::Borrowed("plain text")));
    }

    #[test]
    fn the_format_comes_from_flag_env_or_file_and_a_bad_file_value_is_refused() {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay.toml");
        std::fs::write(&file, "log_format = \"json\"\nlog_addresses = true\n").unwrap();
        let args = |argv: &[&str]| {
            let mut full = vec!["postmark-relay", "--config", file.to_str().unwrap()];
            full.extend_from_slice(argv);
            crate::cli::Cli::try_parse_from(full).unwrap().args
        };
        assert_eq!(crate::config::resolve_logging(&args(&[])), (LogFormat::Json, true));
        assert_eq!(crate::config::resolve_logging(&args(&["--log-format", "text"])), (LogFormat::Text, true));
        let none = crate::cli::Cli::try_parse_from(["postmark-relay"]).unwrap().args;
        assert_eq!(crate::config::resolve_logging(&none), (LogFormat::Text, false));
        assert!(crate::cli::Cli::try_parse_from(["postmark-relay", "--log-format", "xml"]).is_err());
        std::fs::write(&file, "log_format = \"xml\"\n").unwrap();
        let e = crate::config::Config::resolve(&args(&[]), &crate::testing::env_of(&[])).unwrap_err();
        assert!(e.to_string().contains("expected `text` or `json`, got `xml`"), "{e}");
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_are_one_object_each_with_typed_fields_and_spans() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber =
            tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).event_format(Json).finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("session", peer = "127.0.0.1:1");
            let _entered = span.enter();
            tracing::info!(event = "accepted", queue_id = %"0123abc", size = 42u64, recipients = 2u64, ok = true, "queued");
            tracing::warn!(note = "line\nbreak \"quoted\"", "second");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["message"], "queued");
        assert_eq!(first["event"], "accepted");
        assert_eq!(first["queue_id"], "0123abc");
        assert_eq!(first["size"], 42);
        assert_eq!(first["recipients"], 2);
        assert_eq!(first["ok"], true);
        assert_eq!(first["spans"], serde_json::json!(["session"]));
        assert!(first["timestamp"].as_str().unwrap().ends_with('Z'), "{first}");
        let second: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["level"], "WARN");
        assert_eq!(second["note"], "line\nbreak \"quoted\"");
    }
}
