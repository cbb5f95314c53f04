//! The command line: flags (each with its environment variable) and subcommands. Secrets have no
//! flag: they would show in `ps`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::envelope::Via;

/// `postmark-relay`: a durable local SMTP relay to Postmark.
#[derive(Debug, Parser)]
#[command(name = "postmark-relay", version, about, long_about = None)]
pub struct Cli {
    /// Settings (each also from its environment variable or the config file).
    #[command(flatten)]
    pub args: Args,
    /// What to do instead of running the relay.
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
    /// Most API requests in flight at once (default 16); below it the relay adapts: more while
    /// answers come back fine, half as many after a 429, a 503 or a timeout.
    #[arg(long, env = "RELAY_API_MAX_IN_FLIGHT", value_name = "N")]
    pub api_max_in_flight: Option<usize>,
    /// Postmark's SMTP endpoint (`smtp://host:port`, STARTTLS required).
    #[arg(long, env = "POSTMARK_SMTP_URL", value_name = "URL")]
    pub smtp_url: Option<String>,
    /// An extra CA certificate (PEM) to trust for the upstream SMTP server.
    #[arg(long, env = "RELAY_SMTP_CA", value_name = "PEM")]
    pub smtp_ca: Option<PathBuf>,
    /// Most connections to the upstream SMTP server per host and credential, used in parallel
    /// (default 20; below it the relay adapts, with fewer after 4xx answers).
    #[arg(long, env = "RELAY_SMTP_CONNECTIONS", value_name = "N")]
    pub smtp_connections: Option<usize>,
    /// Message stream for messages without an `X-PM-Message-Stream` header.
    #[arg(long, env = "RELAY_MESSAGE_STREAM", value_name = "ID")]
    pub message_stream: Option<String>,
    /// `TextBody` for a message with no text or HTML body of its own (Postmark refuses it
    /// otherwise); `{attachments}` becomes the attachments' names.
    #[arg(long, env = "RELAY_EMPTY_BODY_TEXT", value_name = "TEXT")]
    pub empty_body_text: Option<String>,
    /// Send a notice to this address when a message becomes a dead letter (needs `--notify-from`).
    #[arg(long, env = "RELAY_DEAD_LETTER_NOTIFY", value_name = "ADDR")]
    pub dead_letter_notify: Option<String>,
    /// The sender of dead-letter notices: an address Postmark has verified.
    #[arg(long, env = "RELAY_NOTIFY_FROM", value_name = "ADDR")]
    pub notify_from: Option<String>,
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
    /// Most recipients per SMTP transaction (the next `RCPT` gets `452 4.5.3`); delivery splits
    /// a message into requests (API) or transactions (SMTP) of at most Postmark's 50 each.
    #[arg(long, env = "RELAY_MAX_RECIPIENTS", value_name = "N")]
    pub max_recipients: Option<usize>,
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
    /// Serve the preview UI (what Postmark will get) on this address; on by default in dry-run
    /// at 127.0.0.1:8025; `off` turns it off.
    #[arg(long, env = "RELAY_UI", value_name = "ADDR")]
    pub ui: Option<String>,
    /// Log lines as `text` (for people and journald) or `json` (one object per line).
    #[arg(long, env = "RELAY_LOG_FORMAT", value_name = "text|json", value_parser = crate::logging::parse_format)]
    pub log_format: Option<crate::logging::LogFormat>,
    /// Put envelope addresses in the per-message log lines (off: only counts).
    #[arg(long, env = "RELAY_LOG_ADDRESSES")]
    pub log_addresses: bool,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print a line for the `--auth-users` file: USER and an Argon2id hash of the password read
    /// from standard input (never from the command line).
    HashPassword {
        /// User name (no `:`, spaces or control characters).
        user: String,
    },
    /// Validate the configuration and, unless `--offline`, try each configured credential at
    /// Postmark without sending anything; exit 0 when all work, 1 when one fails, 2 when the
    /// configuration is invalid.
    Check {
        /// Only validate the configuration; contact nobody.
        #[arg(long)]
        offline: bool,
    },
    /// Probe the running relay's health listener (`--metrics`): exit 0 when it answers 200, 1
    /// otherwise. For container and orchestrator probes; no curl needed.
    Healthcheck {
        /// What to GET (default: `/readyz` on the `--metrics` address).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Queue a message read from standard input, as `sendmail` does (`-t`, `-i`, `-f`, `-F`,
    /// `-bp`, `-q`, …); also what runs when the binary is called `sendmail`. Works whether or
    /// not the relay is running.
    #[command(disable_help_flag = true)]
    Sendmail {
        /// sendmail's options and recipients.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Inspect and act on pending and dead messages.
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

/// A value a flag or the config file cannot take.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// `--via` takes `api` or `smtp`.
    #[error("expected `api` or `smtp`, got `{0}`")]
    Via(String),
    /// Not a duration.
    #[error("{0} (examples: 500ms, 2s, 10m, 3d)")]
    Duration(#[from] humantime::DurationError),
}

/// `api` or `smtp`, in any case.
pub fn parse_via(s: &str) -> Result<Via, ValueError> {
    match s.to_ascii_lowercase().as_str() {
        "api" => Ok(Via::Api),
        "smtp" => Ok(Via::Smtp),
        other => Err(ValueError::Via(other.to_owned())),
    }
}

/// A duration such as `500ms`, `2s`, `10m` or `3d`.
pub fn parse_duration(s: &str) -> Result<Duration, ValueError> {
    Ok(humantime::parse_duration(s)?)
}
