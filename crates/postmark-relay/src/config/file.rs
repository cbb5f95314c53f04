//! The TOML configuration file, as written (before defaults and precedence are applied).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use crate::cli::parse_via;
use crate::envelope::Via;
use crate::secrets::{self, Secret};

/// The file's keys (see the table in [`crate::config`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) listen: Option<String>,
    pub(crate) spool: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_via")]
    pub(crate) via: Option<Via>,
    pub(crate) api_url: Option<String>,
    pub(crate) api_timeout: Option<String>,
    pub(crate) api_max_in_flight: Option<usize>,
    pub(crate) smtp_url: Option<String>,
    pub(crate) smtp_ca: Option<PathBuf>,
    pub(crate) smtp_connections: Option<usize>,
    pub(crate) message_stream: Option<String>,
    pub(crate) empty_body_text: Option<String>,
    pub(crate) max_retry_delay: Option<String>,
    pub(crate) message_lifetime: Option<String>,
    pub(crate) shutdown_timeout: Option<String>,
    pub(crate) metrics: Option<String>,
    pub(crate) ui: Option<String>,
    pub(crate) ui_allow: Option<Vec<String>>,
    pub(crate) ui_actions: Option<bool>,
    pub(crate) ui_token: Option<Secret>,
    pub(crate) ui_token_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_log_format")]
    pub(crate) log_format: Option<crate::logging::LogFormat>,
    pub(crate) log_addresses: Option<bool>,
    #[serde(default)]
    pub(crate) dry_run: bool,
    pub(crate) hostname: Option<String>,
    pub(crate) server_token: Option<Secret>,
    pub(crate) smtp_access_key: Option<Secret>,
    pub(crate) smtp_secret_key: Option<Secret>,
    pub(crate) server_token_file: Option<PathBuf>,
    pub(crate) smtp_access_key_file: Option<PathBuf>,
    pub(crate) smtp_secret_key_file: Option<PathBuf>,
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    pub(crate) auth_users: Option<PathBuf>,
    pub(crate) allow_unauthenticated_from: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) streams: BTreeMap<String, FileStream>,
    pub(crate) dead_letter_notify: Option<String>,
    pub(crate) notify_from: Option<String>,
    pub(crate) notify_per_hour: Option<u32>,
    pub(crate) account_token: Option<Secret>,
    pub(crate) account_token_file: Option<PathBuf>,
    pub(crate) sender_refresh: Option<String>,
    pub(crate) local_domain: Option<String>,
    pub(crate) allowed_senders: Option<Vec<String>>,
    pub(crate) rewrite_from: Option<String>,
    #[serde(default)]
    pub(crate) aliases: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    pub(crate) routes: Vec<FileRoute>,
    #[serde(default)]
    pub(crate) limits: FileLimits,
}

/// An alias's target: one address or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// A `[[routes]]` entry: which messages (by sender address or domain, or AUTH user) and with
/// which credentials and default stream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileRoute {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) senders: Vec<String>,
    #[serde(default)]
    pub(crate) users: Vec<String>,
    pub(crate) message_stream: Option<String>,
    pub(crate) server_token: Option<Secret>,
    pub(crate) server_token_file: Option<PathBuf>,
    pub(crate) smtp_access_key: Option<Secret>,
    pub(crate) smtp_access_key_file: Option<PathBuf>,
    pub(crate) smtp_secret_key: Option<Secret>,
    pub(crate) smtp_secret_key_file: Option<PathBuf>,
}

/// A `[streams.<id>]` table: the stream's SMTP token and, for the SMTP path, where to send it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileStream {
    pub(crate) access_key: Option<Secret>,
    pub(crate) secret_key: Option<Secret>,
    pub(crate) access_key_file: Option<PathBuf>,
    pub(crate) secret_key_file: Option<PathBuf>,
    pub(crate) smtp_url: Option<String>,
    pub(crate) kind: Option<StreamKind>,
}

/// A message stream's kind: Postmark sends broadcast streams through its own SMTP host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StreamKind {
    /// A transactional stream: `--smtp-url`.
    Transactional,
    /// A broadcast stream: `smtp-broadcasts.postmarkapp.com` unless the stream names a host.
    Broadcast,
}

/// The `[limits]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileLimits {
    pub(crate) max_connections: Option<usize>,
    pub(crate) idle_timeout: Option<String>,
    pub(crate) command_timeout: Option<String>,
    pub(crate) data_timeout: Option<String>,
    pub(crate) max_session_duration: Option<String>,
    pub(crate) max_errors: Option<u32>,
    pub(crate) max_message_size: Option<usize>,
    pub(crate) max_recipients: Option<usize>,
}

fn de_via<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Via>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| parse_via(&s).map_err(serde::de::Error::custom)).transpose()
}

fn de_log_format<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<crate::logging::LogFormat>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| crate::logging::parse_format(&s).map_err(serde::de::Error::custom)).transpose()
}

impl FileConfig {
    /// Reads the file at `path`; no path is an empty file.
    pub(crate) fn read(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::ReadFile { path: path.to_path_buf(), source })?;
        let file: Self = toml::from_str(&text)
            .map_err(|e| ConfigError::ParseFile { path: path.to_path_buf(), message: redacted(&e, &text) })?;
        let has_secrets = file.server_token.is_some()
            || file.smtp_access_key.is_some()
            || file.smtp_secret_key.is_some()
            || file.account_token.is_some()
            || file.streams.values().any(|s| s.access_key.is_some() || s.secret_key.is_some())
            || file
                .routes
                .iter()
                .any(|r| r.server_token.is_some() || r.smtp_access_key.is_some() || r.smtp_secret_key.is_some());
        if has_secrets {
            secrets::warn_if_readable_by_others(path, "the config file");
        }
        Ok(file)
    }
}

/// A TOML error without the source line toml would quote (it may hold a token): the line
/// number and the message, with any double-quoted value in the message replaced by `"..."`.
fn redacted(e: &toml::de::Error, text: &str) -> String {
    let mut msg = String::new();
    let mut quoted = false;
    for c in e.message().trim().chars() {
        if c == '"' {
            quoted = !quoted;
            msg.push_str(if quoted { "\"..." } else { "\"" });
        } else if !quoted {
            msg.push(if c == '\n' { ' ' } else { c });
        }
    }
    match e.span() {
        Some(span) => {
            let line = text.as_bytes()[..span.start.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1;
            format!("line {line}: {msg}")
        }
        None => msg,
    }
}
