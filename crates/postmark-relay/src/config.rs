//! Configuration: command-line flags (each with an environment variable), a TOML file, and
//! defaults, in that order of precedence. Secrets come only from the environment or the file.
//!
//! | flag | env | file key | default |
//! | --- | --- | --- | --- |
//! | `--config FILE` | `RELAY_CONFIG` | – | none |
//! | `--listen ADDR` | `RELAY_LISTEN` | `listen` | `127.0.0.1:2525` |
//! | `--spool DIR` | `RELAY_SPOOL` | `spool` | `$XDG_STATE_HOME/postmark-relay/spool`, else `~/.local/state/postmark-relay/spool` |
//! | `--via api\|smtp` | `RELAY_VIA` | `via` | API with a server token, SMTP with only SMTP keys, dry-run with neither |
//! | `--api-url URL` | `POSTMARK_API_URL` | `api_url` | `https://api.postmarkapp.com` |
//! | `--api-timeout DURATION` | `RELAY_API_TIMEOUT` | `api_timeout` | `60s` |
//! | `--smtp-url URL` | `POSTMARK_SMTP_URL` | `smtp_url` | `smtp://smtp.postmarkapp.com:587` |
//! | `--smtp-ca PEM` | `RELAY_SMTP_CA` | `smtp_ca` | none (system roots only) |
//! | `--message-stream ID` | `RELAY_MESSAGE_STREAM` | `message_stream` | none (Postmark's `outbound`) |
//! | `--empty-body-text TEXT` | `RELAY_EMPTY_BODY_TEXT` | `empty_body_text` | see [`crate::convert::DEFAULT_EMPTY_BODY_TEXT`] |
//! | `--max-retry-delay DURATION` | `RELAY_MAX_RETRY_DELAY` | `max_retry_delay` | `10m` |
//! | `--message-lifetime DURATION` | `RELAY_MESSAGE_LIFETIME` | `message_lifetime` | `3d` |
//! | `--dry-run` | `RELAY_DRY_RUN` | `dry_run` | off |
//! | `--hostname NAME` | `RELAY_HOSTNAME` | `hostname` | `localhost` |
//! | `--max-connections N` | `RELAY_MAX_CONNECTIONS` | `limits.max_connections` | 100 |
//! | `--shutdown-timeout DURATION` | `RELAY_SHUTDOWN_TIMEOUT` | `shutdown_timeout` | `30s` |
//! | `--metrics ADDR` | `RELAY_METRICS` | `metrics` | off |
//! | `--tls-cert PEM` | `RELAY_TLS_CERT` | `tls_cert` | none (no inbound STARTTLS) |
//! | `--tls-key PEM` | `RELAY_TLS_KEY` | `tls_key` | none |
//! | `--auth-users FILE` | `RELAY_AUTH_USERS` | `auth_users` | none (no client AUTH) |
//! | `--allow-unauthenticated-from CIDR,…` | `RELAY_ALLOW_UNAUTHENTICATED_FROM` | `allow_unauthenticated_from` (a list) | none |
//! | – | `POSTMARK_SERVER_TOKEN` (or `…_FILE`) | `server_token` (or `server_token_file`) | – |
//! | – | `POSTMARK_SMTP_ACCESS_KEY` (or `…_FILE`) | `smtp_access_key` (or `smtp_access_key_file`) | – |
//! | – | `POSTMARK_SMTP_SECRET_KEY` (or `…_FILE`) | `smtp_secret_key` (or `smtp_secret_key_file`) | – |
//! | – | – | `[streams.<id>] access_key, secret_key` | – |
//!
//! The file's `[limits]` table also sets `idle_timeout`, `command_timeout`, `data_timeout`,
//! `max_session_duration` (all more than zero), `max_errors`,
//! `max_message_size` (at most Postmark's 10 MB) and `max_recipients` (at most 50).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Deserialize;

use crate::envelope::Via;
use crate::secrets::{self, EnvSecrets};
use crate::session::SessionConfig;

/// Postmark's limit on one message: 10 MB.
pub const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;
/// Postmark's limit on recipients per message (To + Cc + Bcc).
pub const MAX_RECIPIENTS: usize = 50;

const DEFAULT_LISTEN: &str = "127.0.0.1:2525";
const DEFAULT_API_URL: &str = "https://api.postmarkapp.com";
const DEFAULT_SMTP_URL: &str = "smtp://smtp.postmarkapp.com:587";
const DEFAULT_MAX_RETRY_DELAY: Duration = Duration::from_secs(10 * 60);
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3 * 24 * 3600);
const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_CONNECTIONS: usize = 100;

/// `postmark-relay`: a durable local SMTP relay to Postmark.
#[derive(Debug, Parser)]
#[command(name = "postmark-relay", version, about, long_about = None)]
pub struct Cli {
    /// Settings (each also from its environment variable or the config file).
    #[command(flatten)]
    pub args: Args,
    /// Inspect or act on the spool instead of running the relay.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The relay's flags.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Args {
    /// TOML configuration file.
    #[arg(long, env = "RELAY_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Address to accept SMTP on.
    #[arg(long, env = "RELAY_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Spool directory (pending messages, dead letters, dry-run output).
    #[arg(long, env = "RELAY_SPOOL", value_name = "DIR", global = true)]
    pub spool: Option<PathBuf>,
    /// Forward over Postmark's HTTP API or its SMTP service.
    #[arg(long, env = "RELAY_VIA", value_name = "api|smtp", value_parser = parse_via)]
    pub via: Option<Via>,
    /// Base URL of Postmark's API.
    #[arg(long, env = "POSTMARK_API_URL", value_name = "URL")]
    pub api_url: Option<String>,
    /// How long one API request may take before it counts as failed (and is retried).
    #[arg(long, env = "RELAY_API_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub api_timeout: Option<Duration>,
    /// Postmark's SMTP endpoint (`smtp://host:port`, STARTTLS required).
    #[arg(long, env = "POSTMARK_SMTP_URL", value_name = "URL")]
    pub smtp_url: Option<String>,
    /// An extra CA certificate (PEM) to trust for the upstream SMTP server.
    #[arg(long, env = "RELAY_SMTP_CA", value_name = "PEM")]
    pub smtp_ca: Option<PathBuf>,
    /// Message stream for messages without an `X-PM-Message-Stream` header.
    #[arg(long, env = "RELAY_MESSAGE_STREAM", value_name = "ID")]
    pub message_stream: Option<String>,
    /// `TextBody` for a message with no text or HTML body of its own (Postmark refuses it
    /// otherwise); `{attachments}` becomes the attachments' names.
    #[arg(long, env = "RELAY_EMPTY_BODY_TEXT", value_name = "TEXT")]
    pub empty_body_text: Option<String>,
    /// Longest wait between two delivery attempts (e.g. `2s`, `10m`).
    #[arg(long, env = "RELAY_MAX_RETRY_DELAY", value_name = "DURATION", value_parser = parse_duration)]
    pub max_retry_delay: Option<Duration>,
    /// How long a message is retried before it becomes a dead letter (e.g. `3d`).
    #[arg(long, env = "RELAY_MESSAGE_LIFETIME", value_name = "DURATION", value_parser = parse_duration)]
    pub message_lifetime: Option<Duration>,
    /// Accept and spool mail, but only write what would be sent under `<spool>/dry-run/`.
    #[arg(long, env = "RELAY_DRY_RUN")]
    pub dry_run: bool,
    /// Host name announced to SMTP clients.
    #[arg(long, env = "RELAY_HOSTNAME", value_name = "NAME")]
    pub hostname: Option<String>,
    /// Most simultaneous SMTP connections; more are answered `421 4.7.0` at once.
    #[arg(long, env = "RELAY_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Certificate chain (PEM) for inbound STARTTLS; needs `--tls-key`.
    #[arg(long, env = "RELAY_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) for inbound STARTTLS; needs `--tls-cert`.
    #[arg(long, env = "RELAY_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// Require client AUTH (PLAIN, LOGIN) against this file of `user:$argon2id$...` lines
    /// (make one with `postmark-relay hash-password USER`).
    #[arg(long, env = "RELAY_AUTH_USERS", value_name = "FILE")]
    pub auth_users: Option<PathBuf>,
    /// Let clients from these private networks send without AUTH (e.g. `10.0.0.0/8,192.168.1.0/24`);
    /// needed to listen on a non-loopback address without `--auth-users`.
    #[arg(long, env = "RELAY_ALLOW_UNAUTHENTICATED_FROM", value_name = "CIDR[,CIDR...]")]
    pub allow_unauthenticated_from: Option<String>,
    /// How long shutdown waits for sessions and deliveries in flight.
    #[arg(long, env = "RELAY_SHUTDOWN_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_timeout: Option<Duration>,
    /// Serve Prometheus metrics at `/metrics` and a health check at `/healthz` on this address
    /// (e.g. `127.0.0.1:9102`).
    #[arg(long, env = "RELAY_METRICS", value_name = "ADDR")]
    pub metrics: Option<String>,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Inspect and act on pending and dead messages.
    /// Print a line for the `--auth-users` file: USER and an Argon2id hash of the password read
    /// from standard input (never from the command line).
    HashPassword {
        /// User name (no `:`, spaces or control characters).
        user: String,
    },
    Queue {
        /// What to do.
        #[command(subcommand)]
        action: QueueAction,
    },
}

/// `postmark-relay queue …`.
#[derive(Debug, Clone, Subcommand)]
pub enum QueueAction {
    /// List pending and dead messages.
    List,
    /// Show one message's envelope, state and headers.
    Show {
        /// Queue id.
        id: String,
    },
    /// Retry a message now (a dead letter goes back into the queue).
    Retry {
        /// Queue id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every pending and dead message.
        #[arg(long)]
        all: bool,
    },
    /// Delete a message (pending or dead) for good.
    Purge {
        /// Queue id.
        id: String,
    },
}

fn parse_via(s: &str) -> Result<Via, String> {
    match s.to_ascii_lowercase().as_str() {
        "api" => Ok(Via::Api),
        "smtp" => Ok(Via::Smtp),
        other => Err(format!("expected `api` or `smtp`, got `{other}`")),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 2s, 10m, 3d)"))
}

/// A secret (token or key): never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// An SMTP token: access key (user name) and secret key (password).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpKey {
    /// Access key, sent as the user name.
    pub access_key: Secret,
    /// Secret key, sent as the password.
    pub secret_key: Secret,
}

/// Every credential the relay knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `POSTMARK_SERVER_TOKEN`: the API token, also usable as SMTP user and password.
    pub server_token: Option<Secret>,
    /// `POSTMARK_SMTP_ACCESS_KEY` + `POSTMARK_SMTP_SECRET_KEY`: the default SMTP token.
    pub smtp: Option<SmtpKey>,
    /// Per-stream SMTP tokens from the config file, chosen by `X-PM-Message-Stream`.
    pub streams: BTreeMap<String, SmtpKey>,
}

impl Credentials {
    /// Whether nothing at all is configured.
    pub fn is_empty(&self) -> bool {
        self.server_token.is_none() && self.smtp.is_none() && self.streams.is_empty()
    }

    fn has_smtp(&self) -> bool {
        self.smtp.is_some() || !self.streams.is_empty()
    }
}

/// Where the relay sends mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Really send, over `Via`.
    Send(Via),
    /// Only write what would be sent, shaped for `Via`.
    DryRun(Via, DryRunReason),
}

impl Mode {
    /// The path messages are validated and shaped for.
    pub fn via(self) -> Via {
        match self {
            Mode::Send(v) | Mode::DryRun(v, _) => v,
        }
    }
}

/// Why the relay runs in dry-run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRunReason {
    /// `--dry-run` was given.
    Requested,
    /// No credentials are configured.
    NoCredentials,
}

/// Upstream SMTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpUpstream {
    /// Host name (also the TLS server name).
    pub host: String,
    /// Port.
    pub port: u16,
    /// `smtps://`: TLS from the first byte instead of STARTTLS.
    pub implicit_tls: bool,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: String,
    /// Spool directory.
    pub spool: PathBuf,
    /// Send or dry-run, over which path.
    pub mode: Mode,
    /// API base URL.
    pub api_url: String,
    /// Timeout of one API request.
    pub api_timeout: Duration,
    /// Upstream SMTP endpoint.
    pub smtp: SmtpUpstream,
    /// Extra CA for the upstream SMTP server.
    pub smtp_ca: Option<PathBuf>,
    /// Default message stream.
    pub message_stream: Option<String>,
    /// The text for a message without a body of its own (`None`: the built-in one).
    pub empty_body_text: Option<String>,
    /// Cap on the wait between attempts.
    pub max_retry_delay: Duration,
    /// How long a message is retried.
    pub message_lifetime: Duration,
    /// Shutdown drain deadline.
    pub shutdown_timeout: Duration,
    /// Connection limit.
    pub max_connections: usize,
    /// Per-session limits and timeouts.
    pub session: SessionConfig,
    /// Inbound TLS, client AUTH and the unauthenticated allow-list (files are loaded at start).
    pub access: AccessConfig,
    /// Where the credentials came from, to read them again on reload.
    pub(crate) sources: CredentialSources,
    /// Credentials.
    pub credentials: Credentials,
    /// Address of the `/metrics` and `/healthz` listener, if any.
    pub metrics: Option<String>,
}

/// The TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    spool: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_via")]
    via: Option<Via>,
    api_url: Option<String>,
    api_timeout: Option<String>,
    smtp_url: Option<String>,
    smtp_ca: Option<PathBuf>,
    message_stream: Option<String>,
    empty_body_text: Option<String>,
    max_retry_delay: Option<String>,
    message_lifetime: Option<String>,
    shutdown_timeout: Option<String>,
    metrics: Option<String>,
    #[serde(default)]
    dry_run: bool,
    hostname: Option<String>,
    server_token: Option<Secret>,
    smtp_access_key: Option<Secret>,
    smtp_secret_key: Option<Secret>,
    server_token_file: Option<PathBuf>,
    smtp_access_key_file: Option<PathBuf>,
    smtp_secret_key_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    auth_users: Option<PathBuf>,
    allow_unauthenticated_from: Option<Vec<String>>,
    #[serde(default)]
    streams: BTreeMap<String, SmtpKey>,
    #[serde(default)]
    limits: FileLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_connections: Option<usize>,
    idle_timeout: Option<String>,
    command_timeout: Option<String>,
    data_timeout: Option<String>,
    max_session_duration: Option<String>,
    max_errors: Option<u32>,
    max_message_size: Option<usize>,
    max_recipients: Option<usize>,
}

fn de_via<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Via>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| parse_via(&s).map_err(serde::de::Error::custom)).transpose()
}

/// A configuration error, shown to the operator as is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// Reads the config file named by `args.config`, if any.
fn read_file(args: &Args) -> Result<FileConfig, ConfigError> {
    read_file_at(args.config.as_deref())
}

fn read_file_at(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| err(format!("cannot read config file {}: {e}", path.display())))?;
    let file: FileConfig =
        toml::from_str(&text).map_err(|e| err(format!("config file {}: {}", path.display(), toml_error(&e, &text))))?;
    let has_secrets = file.server_token.is_some()
        || file.smtp_access_key.is_some()
        || file.smtp_secret_key.is_some()
        || !file.streams.is_empty();
    if has_secrets {
        warn_if_readable_by_others(path);
    }
    Ok(file)
}

/// A TOML error without the source line toml would quote (it may hold a token): the line
/// number and the message, with any double-quoted value in the message replaced by `"..."`.
fn toml_error(e: &toml::de::Error, text: &str) -> String {
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

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            "the config file holds credentials but is readable by others; consider chmod 600"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// The default spool directory for this user.
pub fn default_spool(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(state) = env("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(state).join("postmark-relay").join("spool");
    }
    if let Some(home) = env("HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(home).join(".local").join("state").join("postmark-relay").join("spool");
    }
    PathBuf::from("postmark-relay-spool")
}

/// Resolves only the spool directory (for the `queue` subcommands).
pub fn resolve_spool(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, ConfigError> {
    let file = read_file(args)?;
    Ok(args.spool.clone().or(file.spool).unwrap_or_else(|| default_spool(env)))
}

impl Config {
    /// Resolves flags (already merged with their env vars by clap), the config file, secrets
    /// from `env`, and defaults.
    pub fn resolve(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let file = read_file(args)?;
        let sources =
            CredentialSources { config_file: args.config.clone(), env: EnvSecrets::capture(env).map_err(err)? };
        let (credentials, _) = credentials_from(&sources.env, &file)?;
        let access_config = AccessConfig::resolve(args, &file)?;

        let dry_run = args.dry_run || file.dry_run;
        let via = args.via.or(file.via);
        let mode = match (via, dry_run) {
            (Some(v), true) => Mode::DryRun(v, DryRunReason::Requested),
            (None, true) => Mode::DryRun(auto_via(&credentials), DryRunReason::Requested),
            (Some(Via::Api), false) => {
                if credentials.server_token.is_none() {
                    return Err(err("--via api needs POSTMARK_SERVER_TOKEN (or server_token in the config file); \
                         use --dry-run to try it without one"));
                }
                Mode::Send(Via::Api)
            }
            (Some(Via::Smtp), false) => {
                if !credentials.has_smtp() && credentials.server_token.is_none() {
                    return Err(err("--via smtp needs POSTMARK_SMTP_ACCESS_KEY and POSTMARK_SMTP_SECRET_KEY, \
                         or POSTMARK_SERVER_TOKEN; use --dry-run to try it without them"));
                }
                Mode::Send(Via::Smtp)
            }
            (None, false) if credentials.is_empty() => Mode::DryRun(Via::Api, DryRunReason::NoCredentials),
            (None, false) => Mode::Send(auto_via(&credentials)),
        };

        let api_url = args.api_url.clone().or(file.api_url).unwrap_or_else(|| DEFAULT_API_URL.into());
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(err(format!("--api-url must be an http:// or https:// URL, got {api_url:?}")));
        }
        check_api_url(&api_url)?;
        let smtp_url = args.smtp_url.clone().or(file.smtp_url).unwrap_or_else(|| DEFAULT_SMTP_URL.into());
        let smtp_upstream = parse_smtp_url(&smtp_url)?;

        let duration = |flag: Option<Duration>,
                        file: Option<String>,
                        key: &str,
                        default: Duration|
         -> Result<Duration, ConfigError> {
            match (flag, file) {
                (Some(d), _) => Ok(d),
                (None, Some(s)) => parse_duration(&s).map_err(|e| err(format!("config file key {key}: {e}"))),
                (None, None) => Ok(default),
            }
        };
        let max_retry_delay =
            duration(args.max_retry_delay, file.max_retry_delay, "max_retry_delay", DEFAULT_MAX_RETRY_DELAY)?;
        let message_lifetime =
            duration(args.message_lifetime, file.message_lifetime, "message_lifetime", DEFAULT_LIFETIME)?;
        let shutdown_timeout =
            duration(args.shutdown_timeout, file.shutdown_timeout, "shutdown_timeout", DEFAULT_SHUTDOWN_TIMEOUT)?;
        let api_timeout = duration(args.api_timeout, file.api_timeout, "api_timeout", DEFAULT_API_TIMEOUT)?;
        if api_timeout.is_zero() {
            return Err(err("--api-timeout must be more than zero"));
        }
        if max_retry_delay.is_zero() {
            return Err(err("--max-retry-delay must be more than zero"));
        }

        let defaults = SessionConfig::default();
        let limits = file.limits;
        let max_message_size = limits.max_message_size.unwrap_or(MAX_MESSAGE_SIZE);
        if max_message_size == 0 || max_message_size > MAX_MESSAGE_SIZE {
            return Err(err(format!(
                "limits.max_message_size must be between 1 and {MAX_MESSAGE_SIZE} (Postmark's limit)"
            )));
        }
        let max_recipients = limits.max_recipients.unwrap_or(MAX_RECIPIENTS);
        if max_recipients == 0 || max_recipients > MAX_RECIPIENTS {
            return Err(err(format!(
                "limits.max_recipients must be between 1 and {MAX_RECIPIENTS} (Postmark's limit)"
            )));
        }
        let session = SessionConfig {
            hostname: args.hostname.clone().or(file.hostname).unwrap_or(defaults.hostname),
            max_message_size,
            max_recipients,
            idle_timeout: duration(None, limits.idle_timeout, "limits.idle_timeout", defaults.idle_timeout)?,
            command_timeout: duration(
                None,
                limits.command_timeout,
                "limits.command_timeout",
                defaults.command_timeout,
            )?,
            data_timeout: duration(None, limits.data_timeout, "limits.data_timeout", defaults.data_timeout)?,
            max_session_duration: duration(
                None,
                limits.max_session_duration,
                "limits.max_session_duration",
                defaults.max_session_duration,
            )?,
            max_errors: limits.max_errors.unwrap_or(defaults.max_errors).max(1),
            // Filled in at start-up, when the users file and the certificate are loaded.
            access: crate::access::Access::default(),
        };
        for (key, value) in [
            ("idle_timeout", session.idle_timeout),
            ("command_timeout", session.command_timeout),
            ("data_timeout", session.data_timeout),
            ("max_session_duration", session.max_session_duration),
        ] {
            if value.is_zero() {
                return Err(err(format!("limits.{key} must be more than zero")));
            }
        }
        let max_connections = args.max_connections.or(limits.max_connections).unwrap_or(DEFAULT_MAX_CONNECTIONS).max(1);

        Ok(Config {
            listen: args.listen.clone().or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into()),
            spool: args.spool.clone().or(file.spool).unwrap_or_else(|| default_spool(env)),
            mode,
            api_url,
            api_timeout,
            smtp: smtp_upstream,
            smtp_ca: args.smtp_ca.clone().or(file.smtp_ca),
            message_stream: args.message_stream.clone().or(file.message_stream).filter(|s| !s.is_empty()),
            empty_body_text: args.empty_body_text.clone().or(file.empty_body_text).filter(|s| !s.trim().is_empty()),
            max_retry_delay,
            message_lifetime,
            shutdown_timeout,
            max_connections,
            session,
            access: access_config,
            sources,
            credentials,
            metrics: args.metrics.clone().or(file.metrics).filter(|s| !s.is_empty()),
        })
    }
}

/// Where the credentials came from: the config file and the environment (values or files).
#[derive(Debug, Clone, Default)]
pub(crate) struct CredentialSources {
    config_file: Option<PathBuf>,
    env: EnvSecrets,
}

impl Config {
    /// Reads the credentials again from the same places as at start-up (the environment as
    /// captured then, the secret files and the config file as they are now). Also returns every
    /// file they were read from, to watch for changes.
    pub fn reload_credentials(&self) -> Result<(Credentials, Vec<PathBuf>), ConfigError> {
        let file = read_file_at(self.sources.config_file.as_deref())?;
        let (credentials, mut files) = credentials_from(&self.sources.env, &file)?;
        files.extend(self.sources.config_file.iter().cloned());
        files.extend(self.sources.env.files().map(Path::to_path_buf));
        Ok((credentials, files))
    }
}

/// The credentials from the environment (first) and the config file; also the secret files the
/// config file named.
fn credentials_from(env: &EnvSecrets, file: &FileConfig) -> Result<(Credentials, Vec<PathBuf>), ConfigError> {
    let mut files = Vec::new();
    let mut pick = |name: &str, value: &Option<Secret>, path: &Option<PathBuf>, key: &str| {
        let from_env = env.get(name).map_err(err)?;
        let from_file = secrets::from_file_keys(value.clone(), path.as_deref(), key, &mut files).map_err(err)?;
        Ok::<_, ConfigError>(from_env.or(from_file))
    };
    let server_token = pick(secrets::SERVER_TOKEN, &file.server_token, &file.server_token_file, "server_token")?;
    let access = pick(secrets::SMTP_ACCESS_KEY, &file.smtp_access_key, &file.smtp_access_key_file, "smtp_access_key")?;
    let secret = pick(secrets::SMTP_SECRET_KEY, &file.smtp_secret_key, &file.smtp_secret_key_file, "smtp_secret_key")?;
    let smtp = match (access, secret) {
        (Some(access_key), Some(secret_key)) => Some(SmtpKey { access_key, secret_key }),
        (None, None) => None,
        _ => {
            return Err(err("an SMTP token needs both POSTMARK_SMTP_ACCESS_KEY and POSTMARK_SMTP_SECRET_KEY"));
        }
    };
    Ok((Credentials { server_token, smtp, streams: file.streams.clone() }, files))
}

/// Inbound TLS, client AUTH and the allow-list, as configured (the files are read at start).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessConfig {
    /// `--tls-cert` and `--tls-key`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `--auth-users`.
    pub auth_users: Option<PathBuf>,
    /// `--allow-unauthenticated-from`, checked to be private networks.
    pub allow_unauthenticated: Option<Vec<ipnet::IpNet>>,
}

impl AccessConfig {
    fn resolve(args: &Args, file: &FileConfig) -> Result<Self, ConfigError> {
        let cert = args.tls_cert.clone().or_else(|| file.tls_cert.clone());
        let key = args.tls_key.clone().or_else(|| file.tls_key.clone());
        let tls = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(err("--tls-cert and --tls-key go together")),
        };
        let allow = match (&args.allow_unauthenticated_from, &file.allow_unauthenticated_from) {
            (Some(list), _) => Some(crate::access::parse_networks(list).map_err(err)?),
            (None, Some(list)) => Some(crate::access::parse_networks(&list.join(",")).map_err(err)?),
            (None, None) => None,
        };
        Ok(Self {
            tls,
            auth_users: args.auth_users.clone().or_else(|| file.auth_users.clone()),
            allow_unauthenticated: allow,
        })
    }
}

/// A plain-`http` API URL is allowed only to a loopback host: the server token travels in a
/// request header.
fn check_api_url(api_url: &str) -> Result<(), ConfigError> {
    let url = reqwest::Url::parse(api_url).map_err(|e| err(format!("--api-url {api_url:?}: {e}")))?;
    if url.scheme() != "http" {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(crate::access::is_loopback);
    if loopback {
        return Ok(());
    }
    Err(err(format!(
        "--api-url {api_url}: plain http is allowed only to a loopback host (the server token would cross the \
         network in clear); use https://"
    )))
}

fn auto_via(credentials: &Credentials) -> Via {
    if credentials.server_token.is_some() || !credentials.has_smtp() { Via::Api } else { Via::Smtp }
}

/// Parses `smtp://host[:port]` (STARTTLS, port 587 by default) or `smtps://host[:port]`
/// (implicit TLS, port 465 by default).
pub fn parse_smtp_url(url: &str) -> Result<SmtpUpstream, ConfigError> {
    let bad = || err(format!("--smtp-url must look like smtp://host:587, got {url:?}"));
    let (rest, implicit_tls, default_port) = if let Some(r) = url.strip_prefix("smtp://") {
        (r, false, 587)
    } else if let Some(r) = url.strip_prefix("smtps://") {
        (r, true, 465)
    } else {
        return Err(bad());
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => default_port,
            None => return Err(bad()),
        };
        (host.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
            None => (rest.to_string(), default_port),
        }
    };
    if host.is_empty() || host.contains('/') || host.contains('@') {
        return Err(bad());
    }
    Ok(SmtpUpstream { host, port, implicit_tls })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    fn args(argv: &[&str]) -> Args {
        let mut full = vec!["postmark-relay"];
        full.extend_from_slice(argv);
        Cli::try_parse_from(full).expect("parse").args
    }

    fn write_file(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let p = dir.path().join("relay.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn no_credentials_means_dry_run_in_api_shape() {
        let c = Config::resolve(&args(&[]), &env_of(&[("HOME", "/home/x")])).unwrap();
        assert_eq!(c.mode, Mode::DryRun(Via::Api, DryRunReason::NoCredentials));
        assert_eq!(c.listen, "127.0.0.1:2525");
        assert_eq!(c.spool, PathBuf::from("/home/x/.local/state/postmark-relay/spool"));
        assert_eq!(c.api_url, "https://api.postmarkapp.com");
        assert_eq!(c.smtp.host, "smtp.postmarkapp.com");
        assert_eq!(c.smtp.port, 587);
        assert_eq!(c.max_retry_delay, Duration::from_secs(600));
        assert_eq!(c.message_lifetime, Duration::from_secs(3 * 86400));
        assert_eq!(c.session.max_message_size, 10_485_760);
        assert_eq!(c.session.max_recipients, 50);
    }

    #[test]
    fn via_is_chosen_from_the_credentials() {
        let token = env_of(&[("POSTMARK_SERVER_TOKEN", "t")]);
        assert_eq!(Config::resolve(&args(&[]), &token).unwrap().mode, Mode::Send(Via::Api));
        let keys = env_of(&[("POSTMARK_SMTP_ACCESS_KEY", "a"), ("POSTMARK_SMTP_SECRET_KEY", "s")]);
        assert_eq!(Config::resolve(&args(&[]), &keys).unwrap().mode, Mode::Send(Via::Smtp));
        let both = env_of(&[
            ("POSTMARK_SERVER_TOKEN", "t"),
            ("POSTMARK_SMTP_ACCESS_KEY", "a"),
            ("POSTMARK_SMTP_SECRET_KEY", "s"),
        ]);
        assert_eq!(Config::resolve(&args(&[]), &both).unwrap().mode, Mode::Send(Via::Api));
        assert_eq!(Config::resolve(&args(&["--via", "smtp"]), &both).unwrap().mode, Mode::Send(Via::Smtp));
        // The server token doubles as SMTP user and password.
        assert_eq!(Config::resolve(&args(&["--via", "smtp"]), &token).unwrap().mode, Mode::Send(Via::Smtp));
    }

    #[test]
    fn explicit_via_without_credentials_is_an_error_unless_dry_run() {
        let none = env_of(&[]);
        let e = Config::resolve(&args(&["--via", "api"]), &none).unwrap_err();
        assert!(e.to_string().contains("POSTMARK_SERVER_TOKEN"), "{e}");
        let e = Config::resolve(&args(&["--via", "smtp"]), &none).unwrap_err();
        assert!(e.to_string().contains("POSTMARK_SMTP_ACCESS_KEY"), "{e}");
        assert_eq!(
            Config::resolve(&args(&["--via", "smtp", "--dry-run"]), &none).unwrap().mode,
            Mode::DryRun(Via::Smtp, DryRunReason::Requested)
        );
    }

    #[test]
    fn half_an_smtp_token_is_an_error() {
        let e = Config::resolve(&args(&[]), &env_of(&[("POSTMARK_SMTP_ACCESS_KEY", "a")])).unwrap_err();
        assert!(e.to_string().contains("both"), "{e}");
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            &dir,
            r#"
listen = "127.0.0.1:2626"
spool = "/from/file"
max_retry_delay = "5m"
message_stream = "broadcasts"
server_token = "file-token"

[limits]
idle_timeout = "1s"
command_timeout = "7s"
data_timeout = "2s"
max_session_duration = "3s"
max_errors = 4
max_recipients = 10
"#,
        );
        let p = path.to_str().unwrap();
        let c = Config::resolve(&args(&["--config", p, "--listen", "127.0.0.1:2727"]), &env_of(&[])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:2727");
        assert_eq!(c.spool, PathBuf::from("/from/file"));
        assert_eq!(c.max_retry_delay, Duration::from_secs(300));
        assert_eq!(c.message_stream.as_deref(), Some("broadcasts"));
        assert_eq!(c.session.command_timeout, Duration::from_secs(7));
        assert_eq!(c.session.idle_timeout, Duration::from_secs(1));
        assert_eq!(c.session.data_timeout, Duration::from_secs(2));
        assert_eq!(c.session.max_session_duration, Duration::from_secs(3));
        assert_eq!(c.session.max_errors, 4);
        assert_eq!(c.session.max_recipients, 10);
        assert_eq!(c.mode, Mode::Send(Via::Api));
        assert_eq!(c.credentials.server_token.as_ref().map(Secret::expose), Some("file-token"));

        // A secret from the environment beats the file.
        let c = Config::resolve(&args(&["--config", p]), &env_of(&[("POSTMARK_SERVER_TOKEN", "env-token")])).unwrap();
        assert_eq!(c.credentials.server_token.as_ref().map(Secret::expose), Some("env-token"));
    }

    #[test]
    fn file_maps_streams_to_smtp_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            &dir,
            r#"
via = "smtp"
[streams.outbound]
access_key = "a1"
secret_key = "s1"
[streams.broadcast]
access_key = "a2"
secret_key = "s2"
"#,
        );
        let c = Config::resolve(&args(&["--config", path.to_str().unwrap()]), &env_of(&[])).unwrap();
        assert_eq!(c.mode, Mode::Send(Via::Smtp));
        assert_eq!(c.credentials.streams.len(), 2);
        assert_eq!(c.credentials.streams["broadcast"].access_key.expose(), "a2");
    }

    #[test]
    fn bad_file_values_are_reported_with_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, "max_retry_delay = \"soon\"\n");
        let e = Config::resolve(&args(&["--config", path.to_str().unwrap()]), &env_of(&[])).unwrap_err();
        assert!(e.to_string().contains("max_retry_delay"), "{e}");

        let path = write_file(&dir, "unknown_key = 1\n");
        let e = Config::resolve(&args(&["--config", path.to_str().unwrap()]), &env_of(&[])).unwrap_err();
        assert!(e.to_string().contains("unknown"), "{e}");

        let path = write_file(&dir, "[limits]\nidle_timeout = \"0s\"\n");
        let e = Config::resolve(&args(&["--config", path.to_str().unwrap()]), &env_of(&[])).unwrap_err();
        assert!(e.to_string().contains("limits.idle_timeout must be more than zero"), "{e}");

        let path = write_file(&dir, "[limits]\nmax_message_size = 20000000\n");
        let e = Config::resolve(&args(&["--config", path.to_str().unwrap()]), &env_of(&[])).unwrap_err();
        assert!(e.to_string().contains("max_message_size"), "{e}");

        let e = Config::resolve(&args(&["--config", "/definitely/not/here.toml"]), &env_of(&[])).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    #[test]
    fn durations_and_via_flags_parse() {
        let a = args(&["--max-retry-delay", "2s", "--via", "SMTP", "--dry-run"]);
        assert_eq!(a.max_retry_delay, Some(Duration::from_secs(2)));
        assert_eq!(a.via, Some(Via::Smtp));
        assert!(a.dry_run);
        let mut argv = vec!["postmark-relay", "--via", "carrier-pigeon"];
        assert!(Cli::try_parse_from(&argv).is_err());
        argv = vec!["postmark-relay", "--max-retry-delay", "soon"];
        assert!(Cli::try_parse_from(&argv).is_err());
    }

    #[test]
    fn metrics_address_comes_from_flag_env_or_file_and_is_off_by_default() {
        assert_eq!(Config::resolve(&args(&[]), &env_of(&[])).unwrap().metrics, None);
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, "metrics = \"127.0.0.1:9102\"\n");
        let p = path.to_str().unwrap();
        let c = Config::resolve(&args(&["--config", p]), &env_of(&[])).unwrap();
        assert_eq!(c.metrics.as_deref(), Some("127.0.0.1:9102"));
        let c = Config::resolve(&args(&["--config", p, "--metrics", "127.0.0.1:9200"]), &env_of(&[])).unwrap();
        assert_eq!(c.metrics.as_deref(), Some("127.0.0.1:9200"));
    }

    #[test]
    fn smtp_urls() {
        let u = parse_smtp_url("smtp://127.0.0.1:2587").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.implicit_tls), ("127.0.0.1", 2587, false));
        let u = parse_smtp_url("smtp://smtp.postmarkapp.com").unwrap();
        assert_eq!(u.port, 587);
        let u = parse_smtp_url("smtps://[::1]:465").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.implicit_tls), ("::1", 465, true));
        for bad in ["http://x", "smtp://", "smtp://host:port", "smtp://u@h:1", "smtp://[::1"] {
            assert!(parse_smtp_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = Config::resolve(
            &args(&[]),
            &env_of(&[
                ("POSTMARK_SERVER_TOKEN", "tok-123456"),
                ("POSTMARK_SMTP_ACCESS_KEY", "acc-123456"),
                ("POSTMARK_SMTP_SECRET_KEY", "sec-123456"),
            ]),
        )
        .unwrap();
        let debug = format!("{c:?}");
        for secret in ["tok-123456", "acc-123456", "sec-123456"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
    }

    #[test]
    fn queue_subcommands_parse() {
        let cli = Cli::try_parse_from(["postmark-relay", "queue", "retry", "--all"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Queue { action: QueueAction::Retry { id: None, all: true } })));
        let cli = Cli::try_parse_from(["postmark-relay", "--spool", "/s", "queue", "show", "abc"]).unwrap();
        assert_eq!(cli.args.spool, Some(PathBuf::from("/s")));
        assert!(Cli::try_parse_from(["postmark-relay", "queue", "retry"]).is_err());
        assert!(Cli::try_parse_from(["postmark-relay", "queue", "retry", "x", "--all"]).is_err());
    }

    #[test]
    fn plain_http_api_urls_only_to_loopback() {
        let token = env_of(&[("POSTMARK_SERVER_TOKEN", "t")]);
        for ok in [
            "https://api.postmarkapp.com",
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://localhost:3000/x",
            "http://[::1]:80",
        ] {
            assert!(Config::resolve(&args(&["--api-url", ok]), &token).is_ok(), "{ok}");
        }
        for bad in ["http://api.postmarkapp.com", "http://10.0.0.1:8080", "http://[::]:80", "http://0.0.0.0"] {
            let e = Config::resolve(&args(&["--api-url", bad]), &token).unwrap_err();
            assert!(e.to_string().contains("plain http is allowed only to a loopback host"), "{bad}: {e}");
        }
    }

    #[test]
    fn access_settings_resolve_and_are_checked() {
        let none = env_of(&[]);
        let c = Config::resolve(&args(&[]), &none).unwrap();
        assert_eq!(c.access, AccessConfig::default());
        let c = Config::resolve(
            &args(&[
                "--tls-cert",
                "/c.pem",
                "--tls-key",
                "/k.pem",
                "--auth-users",
                "/users",
                "--allow-unauthenticated-from",
                "10.0.0.0/8,192.168.0.0/16",
            ]),
            &none,
        )
        .unwrap();
        assert_eq!(c.access.tls, Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem"))));
        assert_eq!(c.access.auth_users, Some(PathBuf::from("/users")));
        assert_eq!(c.access.allow_unauthenticated.as_ref().map(Vec::len), Some(2));
        let e = Config::resolve(&args(&["--tls-cert", "/c.pem"]), &none).unwrap_err();
        assert!(e.to_string().contains("go together"), "{e}");
        let e = Config::resolve(&args(&["--allow-unauthenticated-from", "0.0.0.0/0"]), &none).unwrap_err();
        assert!(e.to_string().contains("public"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, "allow_unauthenticated_from = [\"172.16.0.0/12\"]\nauth_users = \"/u\"\n");
        let c = Config::resolve(&args(&["--config", path.to_str().unwrap()]), &none).unwrap();
        assert_eq!(c.access.allow_unauthenticated.unwrap()[0].to_string(), "172.16.0.0/12");
        assert_eq!(c.access.auth_users, Some(PathBuf::from("/u")));
    }

    #[test]
    fn secrets_come_from_files_and_are_read_again_on_reload() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "token-one\n").unwrap();
        let t = token_file.to_str().unwrap();
        let c = Config::resolve(&args(&[]), &env_of(&[("POSTMARK_SERVER_TOKEN_FILE", t)])).unwrap();
        assert_eq!(c.mode, Mode::Send(Via::Api));
        assert_eq!(c.credentials.server_token.as_ref().unwrap().expose(), "token-one");
        std::fs::write(&token_file, "token-two").unwrap();
        let (reloaded, files) = c.reload_credentials().unwrap();
        assert_eq!(reloaded.server_token.unwrap().expose(), "token-two");
        assert_eq!(files, std::slice::from_ref(&token_file));
        std::fs::write(&token_file, "").unwrap();
        let e = c.reload_credentials().unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");

        // From the config file: key_file, read again (with the file itself) on reload.
        let access = dir.path().join("access");
        let secret = dir.path().join("secret");
        std::fs::write(&access, "acc-1").unwrap();
        std::fs::write(&secret, "sec-1").unwrap();
        let cfg =
            write_file(&dir, &format!("smtp_access_key_file = {:?}\nsmtp_secret_key_file = {:?}\n", access, secret));
        let c = Config::resolve(&args(&["--config", cfg.to_str().unwrap()]), &env_of(&[])).unwrap();
        assert_eq!(c.mode, Mode::Send(Via::Smtp));
        assert_eq!(c.credentials.smtp.as_ref().unwrap().secret_key.expose(), "sec-1");
        std::fs::write(&secret, "sec-2").unwrap();
        let (reloaded, mut files) = c.reload_credentials().unwrap();
        assert_eq!(reloaded.smtp.unwrap().secret_key.expose(), "sec-2");
        files.sort();
        let mut want = vec![access.clone(), secret.clone(), cfg.clone()];
        want.sort();
        assert_eq!(files, want);

        let cfg = write_file(&dir, &format!("server_token = \"x\"\nserver_token_file = {:?}\n", token_file));
        let e = Config::resolve(&args(&["--config", cfg.to_str().unwrap()]), &env_of(&[])).unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
    }

    #[test]
    fn a_broken_config_file_is_reported_without_quoting_its_secrets() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            "server_token = \"tok-LEAK-123\nlisten = 1\n",
            "server_token = \"tok-LEAK-123\" junk\n",
            "streams = \"tok-LEAK-123\"\n",
            "[streams.x]\naccess_key = \"tok-LEAK-123\"\n",
        ] {
            let path = write_file(&dir, text);
            let e = Config::resolve(&args(&["--config", path.to_str().unwrap()]), &env_of(&[])).unwrap_err();
            let e = e.to_string();
            assert!(!e.contains("LEAK"), "{text:?} leaked: {e}");
            assert!(e.contains("line "), "{e}");
        }
    }
}
