//! The bench's command line (clap derive): `cargo xtask bench relay [OPTIONS]`, and the hidden `sink` that the bench
//! starts as the ceiling.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};

/// Benchmarks of postmark-relay, on loopback only.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask bench", bin_name = "cargo xtask bench", arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Build postmark-relay in release, run it on 127.0.0.1 with a fresh spool against an in-process fake Postmark
    /// (API) or fake SMTP upstream, and drive it with concurrent SMTP sessions. Prints accepted and delivered
    /// msg/s, server CPU per message, DATA-to-250 p50/p99 and peak RSS, beside the ceiling (a minimal SMTP acceptor
    /// that discards every message, measured in the same run) and, with --compare-postfix, Postfix. Every figure is
    /// the median of --rounds runs.
    #[command(after_help = AFTER_HELP)]
    Relay(Options),
    /// The ceiling: a minimal SMTP acceptor that answers the relay's dialogue and discards every message. The bench
    /// starts it as a process of its own; it serves until killed.
    #[command(hide = true)]
    Sink {
        /// Where to listen (loopback).
        #[arg(long)]
        listen: SocketAddr,
    },
}

const AFTER_HELP: &str = "\
Examples:
  cargo xtask bench relay --matrix --compare-postfix          the whole table (the README's numbers)
  cargo xtask bench relay --new-connection-per-message --size 50K
  cargo xtask bench relay --sweep                             sessions 1/5/20/50 x sizes 1 KB/50 KB
  cargo xtask bench relay --rounds 1 --messages 2000 --new-connection-per-message \\
      --relay-wrapper 'valgrind --tool=callgrind'             profile the relay (output in the kept work directory)";

/// Which upstream the relay forwards to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// Postmark's HTTP API (the in-process `FakeApi`).
    Api,
    /// Postmark's SMTP service (the in-process `FakeSmtp`, STARTTLS + AUTH).
    Smtp,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Smtp => "smtp",
        }
    }
}

/// What drives the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoadGenerator {
    /// The bench's own SMTP client (DATA-to-250 latencies measured per message).
    Builtin,
    /// Postfix's `smtp-source` (Debian's `postfix` package), the field's standard load, so the ratios compare
    /// with published MTA figures; no per-message latencies.
    SmtpSource,
}

/// How the load uses connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Each session sends all its messages over one connection.
    Reuse,
    /// Connect, EHLO, one message, QUIT: what cron, PHP's `mail()` and appliances do.
    PerMessage,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Reuse => "connections reused",
            Shape::PerMessage => "new connection per message",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Shape::Reuse => "reuse",
            Shape::PerMessage => "conn/msg",
        }
    }
}

/// Options of `cargo xtask bench relay`.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Concurrent SMTP sessions.
    #[arg(long, value_name = "N", default_value = "20", value_parser = positive)]
    pub sessions: usize,
    /// Messages in all, per run.
    #[arg(long, value_name = "M", default_value = "10000", value_parser = positive)]
    pub messages: usize,
    /// Message size with headers: 1K, 50K, 1M or bytes (K = 1024).
    #[arg(long, value_name = "S", default_value = "1K", value_parser = parse_size)]
    pub size: usize,
    /// Upstream path of the relay.
    #[arg(long, value_enum, default_value_t = Via::Api)]
    pub via: Via,
    /// Connect, EHLO, send one message, QUIT (default: each session reuses one connection).
    #[arg(long)]
    pub new_connection_per_message: bool,
    /// Also run the load through a private Postfix instance (Debian's postfix package; needs root).
    #[arg(long)]
    pub compare_postfix: bool,
    /// Where the private Postfix listens.
    #[arg(long, value_name = "PORT", default_value_t = 2526)]
    pub postfix_port: u16,
    /// Sessions 1/5/20/50 x sizes 1 KB/50 KB, one table.
    #[arg(long, conflicts_with = "matrix")]
    pub sweep: bool,
    /// {reuse, new connection per message} x {1 KB, 50 KB} for the ceiling, the relay (and Postfix), plus the
    /// relay's SMTP path: one table with ratios, and the performance targets.
    #[arg(long)]
    pub matrix: bool,
    /// Runs of everything; every figure is the median of the rounds.
    #[arg(long, value_name = "N", default_value = "3", value_parser = positive)]
    pub rounds: usize,
    /// Skip the ceiling (the minimal SMTP acceptor).
    #[arg(long)]
    pub no_ceiling: bool,
    /// Before each run, wait (up to 10 minutes) until other work keeps the machine's cores less than PCT % busy
    /// over a second. Without it, how busy they were is only reported.
    #[arg(long, value_name = "PCT")]
    pub wait_quiet: Option<f64>,
    /// Deadline per run in seconds, accepting plus delivering.
    #[arg(long = "timeout", value_name = "SECS", default_value = "300", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Start the relay under this command, e.g. 'valgrind --tool=callgrind' or 'perf record -g'. The work directory
    /// (the relay's working directory, where profiles land) is kept.
    #[arg(long, value_name = "CMD")]
    pub relay_wrapper: Option<String>,
    /// SMTP path: hold delivery back while the load is accepted (the relay starts with a wrong SMTP secret, so the
    /// fake refuses its login and delivery pauses), then hand it the right one (SIGHUP) and time the delivery of
    /// the whole queue: the delivered msg/s of a backlog, over the relay's parallel upstream connections.
    #[arg(long)]
    pub backlog: bool,
    /// Round trip between the server (the relay, or Postfix) and its upstream: a proxy holds every byte half of it
    /// in each direction (`0`, `50ms`, `150ms`, `1s`). Postmark is 50–150 ms from most servers.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_rtt)]
    pub rtt: Duration,
    /// The load generator: the bench's own client, or Postfix's `smtp-source`.
    #[arg(long, value_enum, default_value_t = LoadGenerator::Builtin)]
    pub load: LoadGenerator,
    /// API path: the relay's `--api-max-in-flight` (its default when not given); 1 sends as the relay did before
    /// requests went out in parallel.
    #[arg(long, value_name = "N", value_parser = positive)]
    pub api_max_in_flight: Option<usize>,
    /// SMTP path: the fake upstream does not advertise PIPELINING (Postmark's docs do not say whether its SMTP
    /// servers do), so the relay sends one command per round trip.
    #[arg(long)]
    pub no_upstream_pipelining: bool,
    /// SMTP path: the relay's `--smtp-connections` (its default when not given).
    #[arg(long, value_name = "N", value_parser = positive)]
    pub smtp_connections: Option<usize>,
    /// Keep the temporary spools and logs.
    #[arg(long)]
    pub keep: bool,
}

impl Options {
    /// Fewer sessions than messages; a wrapper keeps the work directory.
    pub fn normalised(mut self) -> Options {
        self.sessions = self.sessions.min(self.messages);
        self.keep |= self.relay_wrapper.is_some();
        self
    }

    pub fn shape(&self) -> Shape {
        if self.new_connection_per_message { Shape::PerMessage } else { Shape::Reuse }
    }

    pub fn with_shape(&self, shape: Shape) -> Options {
        Options { new_connection_per_message: shape == Shape::PerMessage, ..self.clone() }
    }

    /// The wrapper command split on whitespace.
    pub fn wrapper(&self) -> Vec<String> {
        self.relay_wrapper.as_deref().unwrap_or_default().split_whitespace().map(String::from).collect()
    }

    /// "20 sessions, 10000 messages of 1024 bytes, new connection per message, upstream RTT 100 ms".
    pub fn describe_load(&self) -> String {
        format!(
            "{} sessions, {} messages of {} bytes, {}, upstream RTT {} ms, load from {}",
            self.sessions,
            self.messages,
            self.size,
            self.shape().name(),
            self.rtt.as_millis(),
            match self.load {
                LoadGenerator::Builtin => "the bench's client",
                LoadGenerator::SmtpSource => "smtp-source",
            }
        )
    }
}

fn positive(s: &str) -> Result<usize> {
    match s.trim().parse::<usize>() {
        Ok(0) => bail!("must be positive"),
        Ok(n) => Ok(n),
        Err(_) => bail!("not a number: {s:?}"),
    }
}

/// `0`, `150ms`, `1s`.
pub fn parse_rtt(s: &str) -> Result<Duration> {
    let t = s.trim();
    let (digits, unit) = if let Some(ms) = t.strip_suffix("ms") {
        (ms, Duration::from_millis(1))
    } else if let Some(secs) = t.strip_suffix('s') {
        (secs, Duration::from_secs(1))
    } else if t == "0" {
        return Ok(Duration::ZERO);
    } else {
        bail!("a duration like 100ms or 1s, got {s:?}")
    };
    let n: u32 = digits.trim().parse().map_err(|_| anyhow!("a duration like 100ms or 1s, got {s:?}"))?;
    Ok(unit * n)
}

fn parse_secs(s: &str) -> Result<Duration> {
    Ok(Duration::from_secs(positive(s)? as u64))
}

/// Parses `50K`, `1M`, `1KB`, `2048` into bytes (K = 1024).
pub fn parse_size(s: &str) -> Result<usize> {
    let t = s.trim().to_ascii_uppercase();
    let t = t.strip_suffix('B').unwrap_or(&t);
    let (digits, mult) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 1024),
        Some('M') => (&t[..t.len() - 1], 1024 * 1024),
        _ => (t, 1),
    };
    let n: usize = digits.trim().parse().map_err(|_| anyhow!("not a size: {s:?} (try 1K, 50K, 1M or bytes)"))?;
    if n == 0 {
        bail!("the message size must be positive");
    }
    Ok(n * mult)
}

/// "1 KB", "50 KB", "300 B".
pub fn size_label(size: usize) -> String {
    if size.is_multiple_of(1024) { format!("{} KB", size / 1024) } else { format!("{size} B") }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn relay(args: &[&str]) -> Result<Options, clap::Error> {
        let cli = Cli::try_parse_from(["bench", "relay"].iter().chain(args))?;
        match cli.command {
            Cmd::Relay(o) => Ok(o.normalised()),
            Cmd::Sink { .. } => unreachable!("relay parses as relay"),
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1K").unwrap(), 1024);
        assert_eq!(parse_size("50K").unwrap(), 51_200);
        assert_eq!(parse_size("50kb").unwrap(), 51_200);
        assert_eq!(parse_size("1M").unwrap(), 1_048_576);
        assert_eq!(parse_size("2048").unwrap(), 2048);
        assert!(parse_size("x").is_err());
        assert!(parse_size("0").is_err());
        assert_eq!(size_label(51_200), "50 KB");
        assert_eq!(size_label(300), "300 B");
    }

    #[test]
    fn arguments_parse() {
        let o = relay(&["--sessions", "5", "--size", "50K", "--via", "smtp", "--new-connection-per-message"]).unwrap();
        assert_eq!((o.sessions, o.size, o.via, o.messages, o.rounds), (5, 51_200, Via::Smtp, 10_000, 3));
        assert_eq!(o.shape(), Shape::PerMessage);
        assert!(!o.compare_postfix && !o.matrix && !o.keep);
        let o =
            relay(&["--matrix", "--compare-postfix", "--rounds", "1", "--messages", "3", "--timeout", "9"]).unwrap();
        assert!(o.matrix && o.compare_postfix);
        assert_eq!((o.rounds, o.sessions, o.timeout), (1, 3, Duration::from_secs(9)));
        let o = relay(&["--via", "smtp", "--backlog", "--smtp-connections", "1"]).unwrap();
        assert!(o.backlog && o.smtp_connections == Some(1));
        let o = relay(&["--relay-wrapper", "valgrind --tool=callgrind"]).unwrap();
        assert_eq!(o.wrapper(), ["valgrind", "--tool=callgrind"]);
        assert!(o.keep, "a profiler's output must survive the run");
        assert!(relay(&["--bogus"]).is_err());
        assert!(relay(&["--sessions", "0"]).is_err());
        assert!(relay(&["--sweep", "--matrix"]).is_err());
    }
}
