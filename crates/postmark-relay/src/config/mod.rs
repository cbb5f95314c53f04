//! Configuration: command-line flags (each with an environment variable, see [`crate::cli`]), a
//! TOML file ([`file`]), and defaults, in that order of precedence, resolved into the settings
//! each part of the relay is given ([`Config`]). Secrets come only from the environment or the
//! file ([`crate::secrets`]).
//!
//! | flag | env | file key | default |
//! | --- | --- | --- | --- |
//! | `--config FILE` | `RELAY_CONFIG` | – | none |
//! | `--listen ADDR` | `RELAY_LISTEN` | `listen` | `127.0.0.1:2525` |
//! | `--spool DIR` | `RELAY_SPOOL` | `spool` | `$XDG_STATE_HOME/postmark-relay/spool`, else `~/.local/state/postmark-relay/spool` |
//! | `--via api\|smtp` | `RELAY_VIA` | `via` | API with a server token, SMTP with only SMTP keys, dry-run with neither |
//! | `--api-url URL` | `POSTMARK_API_URL` | `api_url` | `https://api.postmarkapp.com` |
//! | `--api-timeout DURATION` | `RELAY_API_TIMEOUT` | `api_timeout` | `60s` |
//! | `--api-max-in-flight N` | `RELAY_API_MAX_IN_FLIGHT` | `api_max_in_flight` | 16 requests at once (adaptive below it) |
//! | `--smtp-url URL` | `POSTMARK_SMTP_URL` | `smtp_url` | `smtp://smtp.postmarkapp.com:587` |
//! | `--smtp-ca PEM` | `RELAY_SMTP_CA` | `smtp_ca` | none (system roots only) |
//! | `--smtp-connections N` | `RELAY_SMTP_CONNECTIONS` | `smtp_connections` | 20 per host and credential (adaptive below it) |
//! | `--message-stream ID` | `RELAY_MESSAGE_STREAM` | `message_stream` | none (Postmark's `outbound`) |
//! | `--empty-body-text TEXT` | `RELAY_EMPTY_BODY_TEXT` | `empty_body_text` | see [`crate::convert::DEFAULT_EMPTY_BODY_TEXT`] |
//! | `--max-retry-delay DURATION` | `RELAY_MAX_RETRY_DELAY` | `max_retry_delay` | `10m` |
//! | `--message-lifetime DURATION` | `RELAY_MESSAGE_LIFETIME` | `message_lifetime` | `3d` |
//! | `--dry-run` | `RELAY_DRY_RUN` | `dry_run` | off |
//! | `--hostname NAME` | `RELAY_HOSTNAME` | `hostname` | `localhost` |
//! | `--max-connections N` | `RELAY_MAX_CONNECTIONS` | `limits.max_connections` | 100 |
//! | `--max-recipients N` | `RELAY_MAX_RECIPIENTS` | `limits.max_recipients` | 1000 (Postfix's default; at least 1) |
//! | `--shutdown-timeout DURATION` | `RELAY_SHUTDOWN_TIMEOUT` | `shutdown_timeout` | `30s` |
//! | `--metrics ADDR` | `RELAY_METRICS` | `metrics` | off |
//! | `--log-format text\|json` | `RELAY_LOG_FORMAT` | `log_format` | `text` |
//! | `--log-addresses` | `RELAY_LOG_ADDRESSES` | `log_addresses` | off |
//! | `--tls-cert PEM` | `RELAY_TLS_CERT` | `tls_cert` | none (no inbound STARTTLS) |
//! | `--tls-key PEM` | `RELAY_TLS_KEY` | `tls_key` | none |
//! | `--auth-users FILE` | `RELAY_AUTH_USERS` | `auth_users` | none (no client AUTH) |
//! | `--allow-unauthenticated-from CIDR,…` | `RELAY_ALLOW_UNAUTHENTICATED_FROM` | `allow_unauthenticated_from` (a list) | none |
//! | – | `POSTMARK_SERVER_TOKEN` (or `…_FILE`) | `server_token` (or `server_token_file`) | – |
//! | – | `POSTMARK_SMTP_ACCESS_KEY` (or `…_FILE`) | `smtp_access_key` (or `smtp_access_key_file`) | – |
//! | – | `POSTMARK_SMTP_SECRET_KEY` (or `…_FILE`) | `smtp_secret_key` (or `smtp_secret_key_file`) | – |
//! | – | – | `[streams.<id>] access_key, secret_key` (or `…_file`), `smtp_url`, `kind = "broadcast"` | – |
//! | `--dead-letter-notify ADDR` | `RELAY_DEAD_LETTER_NOTIFY` | `dead_letter_notify` | off |
//! | `--notify-from ADDR` | `RELAY_NOTIFY_FROM` | `notify_from` | none (needed with `dead_letter_notify`) |
//! | – | – | `notify_per_hour` | 20 |
//! | `--ui ADDR` (or `off`) | `RELAY_UI`; `RELAY_UI_ALLOW`, `RELAY_UI_ACTIONS`, `RELAY_UI_TOKEN` (or `…_FILE`) | `ui`, `ui_allow`, `ui_actions`, `ui_token` (or `ui_token_file`) | `127.0.0.1:8025` in dry-run, else off; loopback only; no actions |
//!
//! The file's `[limits]` table also sets `idle_timeout`, `command_timeout`, `data_timeout`,
//! `max_session_duration` (all more than zero), `max_errors`,
//! and `max_message_size` (at most Postmark's 10 MB).

mod credentials;
mod error;
pub(crate) mod file;
mod ui;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use postmark_core::limits::MAX_MESSAGE_BYTES;

pub use self::credentials::CredentialSource;
use self::credentials::credentials_from;
pub use self::error::ConfigError;
use self::file::{FileConfig, StreamKind};
use crate::access::AccessConfig;
use crate::cli::{Args, parse_duration};
use crate::convert::ConvertOptions;
use crate::delivery::WorkerConfig;
use crate::delivery::api::{ApiSettings, DEFAULT_MAX_IN_FLIGHT as DEFAULT_API_MAX_IN_FLIGHT};
use crate::delivery::notify::NotifySettings;
use crate::delivery::smtp::{
    DEFAULT_CONNECTIONS as DEFAULT_SMTP_CONNECTIONS, InvalidSmtpUrl, SmtpSettings, SmtpUpstream,
};
use crate::envelope::Via;
use crate::policy::{Policy, PolicySettings, RouteSettings};
use crate::secrets::{Credentials, EnvSecrets};
use crate::session::SessionConfig;

const DEFAULT_LISTEN: &str = "127.0.0.1:2525";
const DEFAULT_SMTP_URL: &str = "smtp://smtp.postmarkapp.com:587";
/// Postmark's SMTP host for broadcast message streams.
const BROADCAST_SMTP_URL: &str = "smtp://smtp-broadcasts.postmarkapp.com:587";
const DEFAULT_MAX_RETRY_DELAY: Duration = Duration::from_secs(10 * 60);
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3 * 24 * 3600);
const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_CONNECTIONS: usize = 100;
/// How often the worker rescans the spool for `queue retry` markers and revived messages.
const RESCAN_INTERVAL: Duration = Duration::from_secs(2);

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

/// The effective configuration: each part of the relay gets its own piece.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: String,
    /// Spool directory.
    pub spool: PathBuf,
    /// Send or dry-run, over which path.
    pub mode: Mode,
    /// The API backend's settings.
    pub api: ApiSettings,
    /// The SMTP backend's settings.
    pub smtp: SmtpSettings,
    /// Where dead-letter notices go, if anywhere.
    pub notify: Option<NotifySettings>,
    /// How messages are checked and converted: the default stream, the empty-body text.
    pub convert: ConvertOptions,
    /// The delivery worker's retry schedule.
    pub worker: WorkerConfig,
    /// Shutdown drain deadline.
    pub shutdown_timeout: Duration,
    /// Connection limit.
    pub max_connections: usize,
    /// Per-session limits and timeouts.
    pub session: SessionConfig,
    /// Inbound TLS, client AUTH and the unauthenticated allow-list (files are loaded at start).
    pub access: AccessConfig,
    /// Credentials.
    pub credentials: Credentials,
    /// Where the credentials came from, to read them again on reload.
    pub credential_source: CredentialSource,
    /// Address of the `/metrics` and `/healthz` listener, if any.
    pub metrics: Option<String>,
    /// Local names, aliases, sender policy and routes.
    pub policy: Policy,
    /// How often the account's verified senders are read again (with an account token).
    pub sender_refresh: Duration,
    /// The preview UI, if it is served.
    pub ui: Option<crate::ui::UiSettings>,
}

/// How often the account's senders are read again by default.
pub const DEFAULT_SENDER_REFRESH: Duration = Duration::from_secs(600);

/// The sender and recipient policy the file sets (no secrets needed: `sendmail` uses it too),
/// on this host (see [`crate::policy::host`]).
pub(crate) fn policy_from(file: &FileConfig) -> Result<Policy, ConfigError> {
    let host = crate::policy::host::HostNames::detect(&crate::policy::host::HostFiles::system());
    policy_on(file, host)
}

/// [`policy_from`] on a host with the names `host`.
pub(crate) fn policy_on(file: &FileConfig, host: crate::policy::host::HostNames) -> Result<Policy, ConfigError> {
    let settings = PolicySettings {
        local_domain: file.local_domain.clone(),
        host,
        aliases: file.aliases.iter().map(|(k, v)| (k.clone(), v.clone().into_vec())).collect(),
        allowed_senders: file.allowed_senders.clone(),
        rewrite_from: file.rewrite_from.clone(),
        routes: file
            .routes
            .iter()
            .map(|r| RouteSettings {
                name: r.name.clone(),
                senders: r.senders.clone(),
                users: r.users.clone(),
                message_stream: r.message_stream.clone(),
            })
            .collect(),
    };
    Policy::new(settings).map_err(|e| ConfigError::invalid(e.setting, e.problem))
}

/// Each stream's SMTP host: its `smtp_url`, else Postmark's broadcast host for a broadcast stream.
fn stream_upstreams(file: &FileConfig) -> Result<BTreeMap<String, SmtpUpstream>, ConfigError> {
    let mut out = BTreeMap::new();
    for (id, stream) in &file.streams {
        let url = match (&stream.smtp_url, stream.kind) {
            (Some(url), _) => url.as_str(),
            (None, Some(StreamKind::Broadcast)) => BROADCAST_SMTP_URL,
            (None, _) => continue,
        };
        let upstream = url
            .parse()
            .map_err(|e: InvalidSmtpUrl| ConfigError::invalid(format!("streams.{id}.smtp_url"), e.to_string()))?;
        out.insert(id.clone(), upstream);
    }
    Ok(out)
}

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
    let file = FileConfig::read(args.config.as_deref())?;
    Ok(args.spool.clone().or(file.spool).unwrap_or_else(|| default_spool(env)))
}

/// Resolves only the health listener's address (for `healthcheck`).
pub fn resolve_metrics(args: &Args) -> Result<Option<String>, ConfigError> {
    let file = FileConfig::read(args.config.as_deref())?;
    Ok(args.metrics.clone().or(file.metrics).filter(|s| !s.is_empty()))
}

/// The log format and whether addresses may be logged, before anything else is resolved (so
/// even a configuration error is logged in the chosen format). A config file that cannot be read
/// counts as empty here; resolving the rest reports it.
pub fn resolve_logging(args: &Args) -> (crate::logging::LogFormat, bool) {
    let file = FileConfig::read(args.config.as_deref()).unwrap_or_default();
    (args.log_format.or(file.log_format).unwrap_or_default(), args.log_addresses || file.log_addresses.unwrap_or(false))
}

/// A duration from a flag (already parsed), else from the file (parsed here), else the default.
fn duration(
    flag: Option<Duration>,
    file: Option<String>,
    key: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match (flag, file) {
        (Some(d), _) => Ok(d),
        (None, Some(s)) => {
            parse_duration(&s).map_err(|e| ConfigError::invalid(format!("config file key {key}"), e.to_string()))
        }
        (None, None) => Ok(default),
    }
}

fn positive(value: Duration, setting: &str) -> Result<Duration, ConfigError> {
    if value.is_zero() { Err(ConfigError::invalid(setting, "must be more than zero")) } else { Ok(value) }
}

fn positive_count(value: usize, setting: &str) -> Result<usize, ConfigError> {
    if value == 0 { Err(ConfigError::invalid(setting, "must be more than zero")) } else { Ok(value) }
}

impl Config {
    /// Resolves flags (already merged with their env vars by clap), the config file, secrets
    /// from `env`, and defaults.
    pub fn resolve(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let file = FileConfig::read(args.config.as_deref())?;
        let streams = stream_upstreams(&file)?;
        let notify = notify_settings(args, &file)?;
        let policy = policy_from(&file)?;
        let sender_refresh = positive(
            duration(None, file.sender_refresh.clone(), "sender_refresh", DEFAULT_SENDER_REFRESH)?,
            "sender_refresh",
        )?;
        let credential_source = CredentialSource { config_file: args.config.clone(), env: EnvSecrets::capture(env)? };
        let (credentials, _) = credentials_from(&credential_source.env, &file)?;
        let access = AccessConfig::resolve(
            args.tls_cert.clone().or_else(|| file.tls_cert.clone()),
            args.tls_key.clone().or_else(|| file.tls_key.clone()),
            args.auth_users.clone().or_else(|| file.auth_users.clone()),
            args.allow_unauthenticated_from
                .clone()
                .or_else(|| file.allow_unauthenticated_from.as_ref().map(|l| l.join(","))),
        )?;
        let mode = mode(args.via.or(file.via), args.dry_run || file.dry_run, &credentials)?;
        let session = session_settings(args, &file)?;
        let ui = ui::resolve(args, &file, env, matches!(mode, Mode::DryRun(..)))?;
        let max_connections =
            args.max_connections.or(file.limits.max_connections).unwrap_or(DEFAULT_MAX_CONNECTIONS).max(1);

        let api_url = args.api_url.clone().or(file.api_url).unwrap_or_else(|| postmark_core::DEFAULT_BASE_URL.into());
        check_api_url(&api_url)?;
        let smtp_url = args.smtp_url.clone().or(file.smtp_url).unwrap_or_else(|| DEFAULT_SMTP_URL.into());
        let upstream: SmtpUpstream = smtp_url
            .parse()
            .map_err(|e: crate::delivery::smtp::InvalidSmtpUrl| ConfigError::invalid("--smtp-url", e.to_string()))?;

        let worker = WorkerConfig {
            max_retry_delay: positive(
                duration(args.max_retry_delay, file.max_retry_delay, "max_retry_delay", DEFAULT_MAX_RETRY_DELAY)?,
                "--max-retry-delay",
            )?,
            message_lifetime: duration(
                args.message_lifetime,
                file.message_lifetime,
                "message_lifetime",
                DEFAULT_LIFETIME,
            )?,
            rescan_interval: RESCAN_INTERVAL,
        };
        let shutdown_timeout =
            duration(args.shutdown_timeout, file.shutdown_timeout, "shutdown_timeout", DEFAULT_SHUTDOWN_TIMEOUT)?;
        let api_timeout = positive(
            duration(args.api_timeout, file.api_timeout, "api_timeout", DEFAULT_API_TIMEOUT)?,
            "--api-timeout",
        )?;

        Ok(Config {
            listen: args.listen.clone().or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into()),
            spool: args.spool.clone().or(file.spool).unwrap_or_else(|| default_spool(env)),
            mode,
            api: ApiSettings {
                url: api_url,
                timeout: api_timeout,
                max_in_flight: positive_count(
                    args.api_max_in_flight.or(file.api_max_in_flight).unwrap_or(DEFAULT_API_MAX_IN_FLIGHT),
                    "--api-max-in-flight",
                )?,
            },
            smtp: SmtpSettings {
                upstream,
                streams,
                ca: args.smtp_ca.clone().or(file.smtp_ca),
                helo_host: session.hostname.clone(),
                connections: positive_count(
                    args.smtp_connections.or(file.smtp_connections).unwrap_or(DEFAULT_SMTP_CONNECTIONS),
                    "--smtp-connections",
                )?,
            },
            notify,
            convert: ConvertOptions {
                message_stream: args.message_stream.clone().or(file.message_stream).filter(|s| !s.is_empty()),
                empty_body_text: args.empty_body_text.clone().or(file.empty_body_text).filter(|s| !s.trim().is_empty()),
            },
            worker,
            shutdown_timeout,
            max_connections,
            session,
            access,
            credentials,
            credential_source,
            metrics: args.metrics.clone().or(file.metrics).filter(|s| !s.is_empty()),
            policy,
            sender_refresh,
            ui,
        })
    }
}

/// `dead_letter_notify`, `notify_from` and `notify_per_hour`: both addresses must be ones Postmark
/// takes, and the sender is needed (Postmark sends only from a verified sender).
fn notify_settings(args: &Args, file: &FileConfig) -> Result<Option<NotifySettings>, ConfigError> {
    let to = args.dead_letter_notify.clone().or_else(|| file.dead_letter_notify.clone()).filter(|s| !s.is_empty());
    let from = args.notify_from.clone().or_else(|| file.notify_from.clone()).filter(|s| !s.is_empty());
    let Some(to) = to else {
        return Ok(None);
    };
    let Some(from) = from else {
        return Err(ConfigError::Inconsistent(
            "dead_letter_notify needs notify_from: a sender address Postmark has verified (a confirmed \
             sender signature or an address on a verified domain)"
                .into(),
        ));
    };
    for (setting, address) in [("dead_letter_notify", &to), ("notify_from", &from)] {
        if !postmark_core::limits::is_valid_address(address) {
            return Err(ConfigError::invalid(setting, format!("{address:?} is not an address Postmark takes")));
        }
    }
    let per_hour = file.notify_per_hour.unwrap_or(20);
    if per_hour == 0 {
        return Err(ConfigError::invalid(
            "notify_per_hour",
            "must be at least 1 (leave dead_letter_notify unset for none)",
        ));
    }
    Ok(Some(NotifySettings { to, from, per_hour }))
}

/// Send or dry-run, and over which path.
fn mode(via: Option<Via>, dry_run: bool, credentials: &Credentials) -> Result<Mode, ConfigError> {
    let auto = if credentials.server_token.is_some() || !credentials.has_smtp() { Via::Api } else { Via::Smtp };
    Ok(match (via, dry_run) {
        (Some(v), true) => Mode::DryRun(v, DryRunReason::Requested),
        (None, true) => Mode::DryRun(auto, DryRunReason::Requested),
        (Some(Via::Api), false) => {
            if credentials.server_token.is_none() {
                return Err(ConfigError::Inconsistent(
                    "--via api needs POSTMARK_SERVER_TOKEN (or server_token in the config file); \
                     use --dry-run to try it without one"
                        .into(),
                ));
            }
            Mode::Send(Via::Api)
        }
        (Some(Via::Smtp), false) => {
            if !credentials.has_smtp() && credentials.server_token.is_none() {
                return Err(ConfigError::Inconsistent(
                    "--via smtp needs POSTMARK_SMTP_ACCESS_KEY and POSTMARK_SMTP_SECRET_KEY, \
                     or POSTMARK_SERVER_TOKEN; use --dry-run to try it without them"
                        .into(),
                ));
            }
            Mode::Send(Via::Smtp)
        }
        (None, false) if credentials.is_empty() => Mode::DryRun(Via::Api, DryRunReason::NoCredentials),
        (None, false) => Mode::Send(auto),
    })
}

/// The session's limits and timeouts (the `[limits]` table and `--hostname`).
fn session_settings(args: &Args, file: &FileConfig) -> Result<SessionConfig, ConfigError> {
    let defaults = SessionConfig::default();
    let limits = &file.limits;
    let max_message_size = limits.max_message_size.unwrap_or(MAX_MESSAGE_BYTES);
    if max_message_size == 0 || max_message_size > MAX_MESSAGE_BYTES {
        return Err(ConfigError::invalid(
            "limits.max_message_size",
            format!("must be between 1 and {MAX_MESSAGE_BYTES} (Postmark's limit)"),
        ));
    }
    let max_recipients = args.max_recipients.or(limits.max_recipients).unwrap_or(defaults.max_recipients);
    if max_recipients == 0 {
        let setting = if args.max_recipients.is_some() { "--max-recipients" } else { "limits.max_recipients" };
        return Err(ConfigError::invalid(setting, "must be at least 1"));
    }
    let timeout = |value: &Option<String>, key: &str, default| {
        let setting = format!("limits.{key}");
        positive(duration(None, value.clone(), &setting, default)?, &setting)
    };
    Ok(SessionConfig {
        hostname: args.hostname.clone().or_else(|| file.hostname.clone()).unwrap_or(defaults.hostname),
        max_message_size,
        max_recipients,
        idle_timeout: timeout(&limits.idle_timeout, "idle_timeout", defaults.idle_timeout)?,
        command_timeout: timeout(&limits.command_timeout, "command_timeout", defaults.command_timeout)?,
        data_timeout: timeout(&limits.data_timeout, "data_timeout", defaults.data_timeout)?,
        max_session_duration: timeout(
            &limits.max_session_duration,
            "max_session_duration",
            defaults.max_session_duration,
        )?,
        max_errors: limits.max_errors.unwrap_or(defaults.max_errors).max(1),
    })
}

/// An http(s) URL; plain `http` only to a loopback host: the server token travels in a request
/// header.
fn check_api_url(api_url: &str) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::invalid("--api-url", reason);
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
        return Err(invalid(format!("must be an http:// or https:// URL, got {api_url:?}")));
    }
    let url = reqwest::Url::parse(api_url).map_err(|e| invalid(format!("{api_url:?}: {e}")))?;
    if url.scheme() != "http" {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(crate::access::is_loopback);
    if loopback {
        return Ok(());
    }
    Err(invalid(format!(
        "{api_url}: plain http is allowed only to a loopback host (the server token would cross the \
         network in clear); use https://"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, QueueAction};
    use crate::secrets::Secret;
    use crate::testing::env_of;
    use clap::Parser;

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
        assert_eq!(c.api.url, "https://api.postmarkapp.com");
        assert_eq!(c.smtp.upstream.host, "smtp.postmarkapp.com");
        assert_eq!(c.smtp.upstream.port, 587);
        assert_eq!(c.worker.max_retry_delay, Duration::from_secs(600));
        assert_eq!(c.worker.message_lifetime, Duration::from_secs(3 * 86400));
        assert_eq!(c.session.max_message_size, 10_000_000);
        assert_eq!(c.session.max_recipients, 1000);
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
        assert_eq!(c.worker.max_retry_delay, Duration::from_secs(300));
        assert_eq!(c.convert.message_stream.as_deref(), Some("broadcasts"));
        assert_eq!(c.session.command_timeout, Duration::from_secs(7));
        assert_eq!(c.session.idle_timeout, Duration::from_secs(1));
        assert_eq!(c.session.data_timeout, Duration::from_secs(2));
        assert_eq!(c.session.max_session_duration, Duration::from_secs(3));
        assert_eq!(c.session.max_errors, 4);
        assert_eq!(c.session.max_recipients, 10);
        let flag = Config::resolve(&args(&["--config", p, "--max-recipients", "2000"]), &env_of(&[])).unwrap();
        assert_eq!(flag.session.max_recipients, 2000, "the flag beats the file, and 50 is no ceiling");
        let zero = Config::resolve(&args(&["--config", p, "--max-recipients", "0"]), &env_of(&[])).unwrap_err();
        assert!(zero.to_string().contains("--max-recipients"), "{zero}");
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
    fn api_max_in_flight_comes_from_the_flag_the_file_or_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let token = env_of(&[("POSTMARK_SERVER_TOKEN", "t")]);
        assert_eq!(Config::resolve(&args(&[]), &token).unwrap().api.max_in_flight, 16);
        let path = write_file(&dir, "api_max_in_flight = 40\n");
        let file = path.to_str().unwrap();
        assert_eq!(Config::resolve(&args(&["--config", file]), &token).unwrap().api.max_in_flight, 40);
        let flag = args(&["--config", file, "--api-max-in-flight", "3"]);
        assert_eq!(Config::resolve(&flag, &token).unwrap().api.max_in_flight, 3, "the flag wins over the file");
        let e = Config::resolve(&args(&["--api-max-in-flight", "0"]), &token).unwrap_err();
        assert!(e.to_string().contains("--api-max-in-flight"), "{e}");
    }

    #[test]
    fn smtp_connections_come_from_the_flag_the_file_or_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let keys = env_of(&[("POSTMARK_SMTP_ACCESS_KEY", "a"), ("POSTMARK_SMTP_SECRET_KEY", "s")]);
        assert_eq!(Config::resolve(&args(&[]), &keys).unwrap().smtp.connections, 20);
        let path = write_file(&dir, "smtp_connections = 8\n");
        let file = path.to_str().unwrap();
        assert_eq!(Config::resolve(&args(&["--config", file]), &keys).unwrap().smtp.connections, 8);
        let flag = args(&["--config", file, "--smtp-connections", "2"]);
        assert_eq!(Config::resolve(&flag, &keys).unwrap().smtp.connections, 2, "the flag wins over the file");
        let e = Config::resolve(&args(&["--smtp-connections", "0"]), &keys).unwrap_err();
        assert!(e.to_string().contains("--smtp-connections"), "{e}");
    }

    #[test]
    fn broadcast_streams_go_to_postmarks_broadcast_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            &dir,
            r#"
via = "smtp"
[streams.outbound]
access_key = "a1"
secret_key = "s1"
[streams.news]
kind = "broadcast"
access_key = "a2"
secret_key = "s2"
[streams.own]
smtp_url = "smtp://127.0.0.1:2600"
"#,
        );
        let c = Config::resolve(&args(&["--config", path.to_str().unwrap()]), &env_of(&[])).unwrap();
        assert_eq!(c.smtp.streams.len(), 2, "{:?}", c.smtp.streams);
        assert_eq!(c.smtp.streams["news"], BROADCAST_SMTP_URL.parse().unwrap());
        assert_eq!(c.smtp.streams["own"], "smtp://127.0.0.1:2600".parse().unwrap());
        assert!(!c.smtp.streams.contains_key("outbound"), "transactional streams use --smtp-url");

        let path = write_file(&dir, "[streams.x]\naccess_key = \"a\"\n");
        let e = Config::resolve(&args(&["--config", path.to_str().unwrap()]), &env_of(&[])).unwrap_err();
        assert!(e.to_string().contains("streams.x") && e.to_string().contains("secret_key"), "{e}");
        let path = write_file(&dir, "[streams.x]\nsmtp_url = \"http://nope\"\n");
        let e = Config::resolve(&args(&["--config", path.to_str().unwrap()]), &env_of(&[])).unwrap_err();
        assert!(e.to_string().contains("streams.x.smtp_url"), "{e}");
        let path = write_file(&dir, "[streams.x]\nkind = \"promotional\"\n");
        assert!(Config::resolve(&args(&["--config", path.to_str().unwrap()]), &env_of(&[])).is_err());
    }

    #[test]
    fn dead_letter_notices_need_a_valid_sender_and_a_rate() {
        let c = Config::resolve(&args(&[]), &env_of(&[])).unwrap();
        assert_eq!(c.notify, None, "off by default");
        let c = Config::resolve(
            &args(&["--dead-letter-notify", "ops@example.com", "--notify-from", "relay@example.com"]),
            &env_of(&[]),
        )
        .unwrap();
        let n = c.notify.unwrap();
        assert_eq!((n.to.as_str(), n.from.as_str(), n.per_hour), ("ops@example.com", "relay@example.com", 20));

        let e = Config::resolve(&args(&["--dead-letter-notify", "ops@example.com"]), &env_of(&[])).unwrap_err();
        assert!(e.to_string().contains("notify_from"), "{e}");
        let e =
            Config::resolve(&args(&["--dead-letter-notify", "root", "--notify-from", "r@example.com"]), &env_of(&[]))
                .unwrap_err();
        assert!(e.to_string().contains("dead_letter_notify"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            &dir,
            "dead_letter_notify = \"o@example.com\"\nnotify_from = \"r@example.com\"\nnotify_per_hour = 0\n",
        );
        let e = Config::resolve(&args(&["--config", path.to_str().unwrap()]), &env_of(&[])).unwrap_err();
        assert!(e.to_string().contains("notify_per_hour"), "{e}");
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
        assert!(e.to_string().contains("limits.idle_timeout: must be more than zero"), "{e}");

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
        let u: SmtpUpstream = "smtp://127.0.0.1:2587".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port, u.implicit_tls), ("127.0.0.1", 2587, false));
        let u: SmtpUpstream = "smtp://smtp.postmarkapp.com".parse().unwrap();
        assert_eq!(u.port, 587);
        let u: SmtpUpstream = "smtps://[::1]:465".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port, u.implicit_tls), ("::1", 465, true));
        for bad in ["http://x", "smtp://", "smtp://host:port", "smtp://u@h:1", "smtp://[::1"] {
            assert!(bad.parse::<SmtpUpstream>().is_err(), "{bad}");
            let e = Config::resolve(&args(&["--smtp-url", bad]), &env_of(&[])).unwrap_err();
            assert!(e.to_string().starts_with("--smtp-url: "), "{e}");
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
        let (reloaded, files) = c.credential_source.load().unwrap();
        assert_eq!(reloaded.server_token.unwrap().expose(), "token-two");
        assert_eq!(files, std::slice::from_ref(&token_file));
        std::fs::write(&token_file, "").unwrap();
        let e = c.credential_source.load().unwrap_err();
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
        let (reloaded, mut files) = c.credential_source.load().unwrap();
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
            "[streams.x]\naccess_key = \"tok-LEAK-123\"\nsecret = 1\n",
        ] {
            let path = write_file(&dir, text);
            let e = Config::resolve(&args(&["--config", path.to_str().unwrap()]), &env_of(&[])).unwrap_err();
            let e = e.to_string();
            assert!(!e.contains("LEAK"), "{text:?} leaked: {e}");
            assert!(e.contains("line "), "{e}");
        }
    }
}
