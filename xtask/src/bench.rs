//! `cargo xtask bench relay`: builds `postmark-relay` in release, starts it on loopback against an in-process fake
//! upstream, drives it with concurrent SMTP sessions and prints throughput, latency, memory and batching.
//!
//! * Upstream: [`postmark_fake::http::FakeApi`] (`--via api`) or [`postmark_fake::smtp::FakeSmtp`] (`--via smtp`,
//!   STARTTLS with its run-time CA passed as `--smtp-ca`, AUTH with a bench SMTP token), both in this process.
//! * Client: raw tokio TCP, one task per session. With PIPELINING (which the relay advertises) `MAIL`, `RCPT` and
//!   `DATA` go out in one write; the message goes out in one write, then the terminating `.` line in another, and the
//!   DATA-to-250 latency is measured from that last write to reading the reply. Connections are reused for many
//!   messages, or opened per message with `--new-connection-per-message`.
//! * Accepted msg/s counts from the first connect to the last `250`. Delivered (end-to-end) msg/s counts to the moment
//!   the relay's `queue/` holds no message any more (a message leaves it only after the fake accepted it); the fake's
//!   own count is checked afterwards and printed.
//! * Memory: the relay's `VmRSS` is sampled every 50 ms during the run and `VmHWM` read at the end.
//! * `--compare-postfix` runs the same load through a private Postfix instance (configuration printed by the run, see
//!   [`postfix_main_cf`] and [`postfix_master_cf`]) that relays to an in-process SMTP sink, and prints the ratio.
//!
//! Everything listens on 127.0.0.1 only, every count is bounded, and every run has a deadline (`--timeout`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use postmark_fake::http::FakeApi;
use postmark_fake::smtp::FakeSmtp;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Help for `cargo xtask bench`.
pub const HELP: &str = "\
cargo xtask bench relay [OPTIONS]
    Build postmark-relay in release, run it on 127.0.0.1 with a fresh spool against an in-process fake
    Postmark (API) or fake SMTP upstream, drive it with concurrent SMTP sessions, and print accepted and
    delivered msg/s, DATA-to-250 latency p50/p99, the relay's peak RSS and upstream requests per message.
    --sessions N                    concurrent SMTP sessions (default 20)
    --messages M                    messages in all (default 10000)
    --size S                        message size, e.g. 1K, 50K, 1M, 2048 (default 1K)
    --via api|smtp                  upstream path (default api)
    --new-connection-per-message    connect, EHLO, send one message, QUIT (default: reuse connections)
    --compare-postfix               run the same load through Postfix (if installed; needs root) and print the ratio
    --postfix-port PORT             where the private Postfix listens (default 2526)
    --sweep                         run sessions 1/5/20/50 x sizes 1K/50K and print one summary table
    --timeout SECS                  deadline per run, accepting plus delivering (default 300)
    --relay-wrapper CMD             start the relay under CMD (e.g. \"valgrind --tool=callgrind\"), for profiling
    --keep                          keep the temporary spool and logs
";

const TOKEN: &str = "bench-server-token";
const SMTP_USER: &str = "bench-access-key";
const SMTP_PASS: &str = "bench-secret-key";
const MAIL_FROM: &str = "bench@example.com";
const RCPT_TO: &str = "rcpt@example.com";
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// Which upstream the relay forwards to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Postmark's HTTP API (the in-process `FakeApi`).
    Api,
    /// Postmark's SMTP service (the in-process `FakeSmtp`, STARTTLS + AUTH).
    Smtp,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Smtp => "smtp",
        }
    }
}

/// Command-line options of `cargo xtask bench relay`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Concurrent SMTP sessions.
    pub sessions: usize,
    /// Messages in all.
    pub messages: usize,
    /// Message size in bytes (headers included).
    pub size: usize,
    /// Upstream path.
    pub via: Via,
    /// One connection per message instead of reusing each connection.
    pub new_connection_per_message: bool,
    /// Also run the load through Postfix.
    pub compare_postfix: bool,
    /// Port of the private Postfix instance.
    pub postfix_port: u16,
    /// Run the sessions x sizes matrix.
    pub sweep: bool,
    /// Deadline per run.
    pub timeout: Duration,
    /// Command to start the relay under (profilers).
    pub relay_wrapper: Vec<String>,
    /// Keep the temporary directory.
    pub keep: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sessions: 20,
            messages: 10_000,
            size: 1024,
            via: Via::Api,
            new_connection_per_message: false,
            compare_postfix: false,
            postfix_port: 2526,
            sweep: false,
            timeout: Duration::from_secs(300),
            relay_wrapper: Vec::new(),
            keep: false,
        }
    }
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

/// Parses the arguments after `bench relay`.
pub fn parse_args(args: &[String]) -> Result<Options> {
    let mut o = Options::default();
    let mut it = args.iter();
    let value = |it: &mut std::slice::Iter<'_, String>, flag: &str| -> Result<String> {
        it.next().cloned().ok_or_else(|| anyhow!("{flag} needs a value\n\n{HELP}"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--sessions" => o.sessions = value(&mut it, a)?.parse().context("--sessions")?,
            "--messages" => o.messages = value(&mut it, a)?.parse().context("--messages")?,
            "--size" => o.size = parse_size(&value(&mut it, a)?)?,
            "--via" => {
                o.via = match value(&mut it, a)?.as_str() {
                    "api" => Via::Api,
                    "smtp" => Via::Smtp,
                    other => bail!("--via is api or smtp, not {other:?}"),
                }
            }
            "--new-connection-per-message" => o.new_connection_per_message = true,
            "--compare-postfix" => o.compare_postfix = true,
            "--postfix-port" => o.postfix_port = value(&mut it, a)?.parse().context("--postfix-port")?,
            "--sweep" => o.sweep = true,
            "--timeout" => o.timeout = Duration::from_secs(value(&mut it, a)?.parse().context("--timeout")?),
            "--relay-wrapper" => o.relay_wrapper = value(&mut it, a)?.split_whitespace().map(String::from).collect(),
            "--keep" => o.keep = true,
            other => bail!("unknown bench argument {other:?}\n\n{HELP}"),
        }
    }
    if o.sessions == 0 || o.messages == 0 {
        bail!("--sessions and --messages must be positive");
    }
    if o.sessions > o.messages {
        o.sessions = o.messages;
    }
    Ok(o)
}

/// `cargo xtask bench <what> ...`.
pub fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("relay") => {
            let opts = parse_args(&args[1..])?;
            if cfg!(debug_assertions) && std::env::var_os(RELEASE_MARKER).is_none() {
                return rerun_in_release(args);
            }
            bench_relay(&opts)
        }
        Some("help" | "--help" | "-h") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown benchmark {other:?}\n\n{HELP}"),
    }
}

/// Set when the bench re-runs itself in a release build.
const RELEASE_MARKER: &str = "XTASK_BENCH_RELEASE";

/// `cargo xtask` runs a debug build of xtask, in which the client and the in-process fakes (axum, serde_json)
/// would be slow enough to measure themselves. Run the same command from a release build of xtask instead.
fn rerun_in_release(args: &[String]) -> Result<()> {
    println!(
        "bench: re-running from a release build of xtask, so that the client and the fakes are not the bottleneck"
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(crate::workspace_root())
        .args(["run", "--release", "--quiet", "-p", "xtask", "--", "bench"])
        .args(args)
        .env(RELEASE_MARKER, "1")
        .status()
        .context("running cargo run --release -p xtask")?;
    if !status.success() {
        bail!("the release build of the bench failed ({status})");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Orchestration
// ---------------------------------------------------------------------------------------------------------------

fn bench_relay(opts: &Options) -> Result<()> {
    let machine = Machine::describe();
    println!("machine: {}", machine.line());
    println!("relay source: {}", relay_revision());
    let load = load_average();
    if load > machine.cores as f64 * 0.25 {
        println!(
            "warning: load average {load:.2} on {} cores before the bench; other work will skew the numbers",
            machine.cores
        );
    }
    let build = build_relay()?;
    println!(
        "relay build: {:.1} s (`cargo build --release -p postmark-relay`), binary {}",
        build.seconds,
        build.binary.display()
    );
    let work = WorkDir::create(opts.keep)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    let postfix = if opts.compare_postfix { Postfix::detect() } else { Err("not requested".into()) };
    if opts.compare_postfix {
        match &postfix {
            Ok(p) => println!("postfix: {} found; the same load runs through it after the relay", p.version),
            Err(why) => println!("postfix: {why}; skipping the comparison"),
        }
    }
    let postfix = postfix.ok();

    if opts.sweep {
        let mut rows = Vec::new();
        for size in [1024, 50 * 1024] {
            for sessions in [1, 5, 20, 50] {
                let run_opts = Options { sessions: sessions.min(opts.messages), size, ..opts.clone() };
                let (relay, pf) =
                    runtime.block_on(one_run(&run_opts, &build.binary, &work, postfix.as_ref(), &machine));
                rows.push((run_opts, relay?, pf.transpose()?));
            }
        }
        print!("{}", sweep_table(opts, &machine, &rows));
        return Ok(());
    }
    let (relay, pf) = runtime.block_on(one_run(opts, &build.binary, &work, postfix.as_ref(), &machine));
    let relay = relay?;
    let pf = pf.transpose()?;
    print!("{}", report(opts, &machine, &relay, pf.as_ref()));
    Ok(())
}

/// One relay run and, when asked for, one Postfix run with the same load.
async fn one_run(
    opts: &Options,
    binary: &Path,
    work: &WorkDir,
    postfix: Option<&Postfix>,
    machine: &Machine,
) -> (Result<Measurement>, Option<Result<Measurement>>) {
    println!(
        "\n-- run: via {}, {} sessions, {} messages of {} bytes, {} --",
        opts.via.name(),
        opts.sessions,
        opts.messages,
        opts.size,
        if opts.new_connection_per_message { "new connection per message" } else { "connections reused" }
    );
    let relay = run_relay(opts, binary, work, machine).await;
    if let Ok(m) = &relay {
        println!("relay:   {}", m.one_line());
    }
    let pf = match postfix {
        Some(p) => {
            let r = run_postfix(opts, p, work, machine).await;
            if let Ok(m) = &r {
                println!("postfix: {}", m.one_line());
            }
            Some(r)
        }
        None => None,
    };
    (relay, pf)
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Measurement {
    /// "postmark-relay" or "postfix 3.7.11".
    pub name: String,
    /// Messages answered 250.
    pub accepted: usize,
    /// Messages refused or lost to connection errors.
    pub failed: usize,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// First connect to last 250.
    pub accept_secs: f64,
    /// First connect to the upstream having all accepted messages (None: not within the deadline).
    pub deliver_secs: Option<f64>,
    /// Messages the upstream (fake or sink) has.
    pub upstream_messages: usize,
    /// HTTP requests (API) or SMTP transactions (SMTP, Postfix sink) the upstream received.
    pub upstream_requests: usize,
    /// TCP connections the upstream accepted (SMTP paths).
    pub upstream_connections: Option<usize>,
    /// DATA-to-250 latencies in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// Peak resident set in KiB: relay `VmHWM`; for Postfix the peak of the sampled sum over its processes.
    pub peak_rss_kib: u64,
    /// Peak of the sampled `VmRSS` (relay; for Postfix the same as `peak_rss_kib`), KiB.
    pub sampled_peak_kib: u64,
    /// Peak of the sampled proportional set size (PSS; for Postfix summed over its processes, so shared pages are
    /// split instead of counted once per process), KiB.
    pub peak_pss_kib: u64,
    /// 1-minute load average when the run started.
    pub load_before: f64,
    /// Most threads (relay) or processes (Postfix) seen.
    pub peak_tasks: u64,
    /// Server CPU seconds (user, system) over accepting and delivering.
    pub server_cpu: (f64, f64),
    /// CPU seconds of this process (client and fake) over the same span.
    pub bench_cpu_secs: f64,
    /// Share of all cores busy while accepting (0..1).
    pub machine_busy: f64,
    /// Notes for the report.
    pub notes: Vec<String>,
}

impl Measurement {
    fn accepted_rate(&self) -> f64 {
        rate(self.accepted, self.accept_secs)
    }

    fn delivered_rate(&self) -> Option<f64> {
        self.deliver_secs.map(|s| rate(self.upstream_messages.min(self.accepted), s))
    }

    fn pct_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies_us, p) as f64 / 1000.0
    }

    fn requests_per_message(&self) -> f64 {
        if self.accepted == 0 { 0.0 } else { self.upstream_requests as f64 / self.accepted as f64 }
    }

    fn cpu_us_per_message(&self) -> f64 {
        self.user_us_per_message() + self.sys_us_per_message()
    }

    fn user_us_per_message(&self) -> f64 {
        if self.accepted == 0 { 0.0 } else { self.server_cpu.0 * 1e6 / self.accepted as f64 }
    }

    fn sys_us_per_message(&self) -> f64 {
        if self.accepted == 0 { 0.0 } else { self.server_cpu.1 * 1e6 / self.accepted as f64 }
    }

    fn one_line(&self) -> String {
        format!(
            "accepted {:.0} msg/s, delivered {}, p50 {:.2} ms, p99 {:.2} ms, peak RSS {:.1} MiB, {:.3} upstream requests/msg",
            self.accepted_rate(),
            self.delivered_rate().map_or("(not within the deadline)".to_string(), |r| format!("{r:.0} msg/s")),
            self.pct_ms(0.50),
            self.pct_ms(0.99),
            mib(self.peak_rss_kib),
            self.requests_per_message()
        )
    }
}

fn rate(n: usize, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The value at quantile `p` (nearest rank) of sorted `v`.
pub fn percentile(v: &[u32], p: f64) -> u32 {
    if v.is_empty() {
        return 0;
    }
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

// ---------------------------------------------------------------------------------------------------------------
// The relay run
// ---------------------------------------------------------------------------------------------------------------

enum Upstream {
    Api(FakeApi),
    Smtp(FakeSmtp),
}

async fn run_relay(opts: &Options, binary: &Path, work: &WorkDir, machine: &Machine) -> Result<Measurement> {
    let run_dir = work.fresh("relay")?;
    let spool = run_dir.join("spool");
    let port = free_port()?;
    let listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));

    let mut env: Vec<(String, String)> = vec![
        ("RELAY_LISTEN".into(), listen.to_string()),
        ("RELAY_SPOOL".into(), spool.display().to_string()),
        ("RELAY_VIA".into(), opts.via.name().into()),
        ("RUST_LOG".into(), "info".into()),
    ];
    let mut args: Vec<String> = Vec::new();
    let upstream = match opts.via {
        Via::Api => {
            let fake = FakeApi::start().await;
            fake.set_server_token(TOKEN);
            env.push(("POSTMARK_API_URL".into(), fake.url()));
            env.push(("POSTMARK_SERVER_TOKEN".into(), TOKEN.into()));
            Upstream::Api(fake)
        }
        Via::Smtp => {
            let fake = FakeSmtp::builder().credentials(SMTP_USER, SMTP_PASS).start().await.context("fake SMTP")?;
            let ca = run_dir.join("fake-ca.pem");
            std::fs::write(&ca, fake.ca_pem()).context("writing the fake's CA")?;
            env.push(("POSTMARK_SMTP_ACCESS_KEY".into(), SMTP_USER.into()));
            env.push(("POSTMARK_SMTP_SECRET_KEY".into(), SMTP_PASS.into()));
            args.extend(["--smtp-url".into(), fake.url(), "--smtp-ca".into(), ca.display().to_string()]);
            Upstream::Smtp(fake)
        }
    };

    let log_path = run_dir.join("relay.log");
    let log = std::fs::File::create(&log_path).context("relay log")?;
    let mut cmd = match opts.relay_wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    for (k, _) in std::env::vars() {
        if k.starts_with("RELAY_") || k.starts_with("POSTMARK_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("relay log")?)
        .stderr(log);
    let shown: Vec<String> = env
        .iter()
        .map(|(k, v)| if k.contains("TOKEN") || k.contains("KEY") { format!("{k}=***") } else { format!("{k}={v}") })
        .chain(opts.relay_wrapper.iter().cloned())
        .chain(std::iter::once(binary.display().to_string()))
        .chain(args.iter().cloned())
        .collect();
    println!("relay command: {}", shown.join(" "));
    let child = cmd.spawn().with_context(|| format!("starting {}", binary.display()))?;
    let mut relay = ChildGuard { child, name: "postmark-relay" };
    let pid = relay.child.id();

    let ready_within = if opts.relay_wrapper.is_empty() { Duration::from_secs(30) } else { Duration::from_secs(120) };
    wait_ready(listen, ready_within, || relay.child.try_wait().ok().flatten().is_some())
        .await
        .map_err(|e| anyhow!("{e}; relay log:\n{}", tail(&log_path, 30)))?;

    let load_before = load_average();
    let sampler = Sampler::start(vec![pid], false);
    let cpu0 = machine.cpu_snapshot();
    let relay_cpu0 = process_cpu(pid, machine.clk_tck);
    let bench_cpu0 = process_cpu(std::process::id(), machine.clk_tck);
    let deadline = Instant::now() + opts.timeout;

    let load = drive(listen, opts, deadline).await;
    let cpu1 = machine.cpu_snapshot();

    // End to end: the relay's queue/ is empty once every message was accepted upstream. Listing a directory of
    // thousands of files costs CPU the relay could use, so the poll slows down while many are pending.
    let queue_dir = spool.join("queue");
    let mut deliver_secs = None;
    let mut pending = load.accepted;
    while Instant::now() < deadline {
        let dir = queue_dir.clone();
        pending = tokio::task::spawn_blocking(move || count_with_suffix(&dir, ".msg")).await??;
        if pending == 0 {
            deliver_secs = Some(load.started.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(poll_interval(pending)).await;
    }
    let partial = deliver_secs.is_none().then(|| (load.accepted.saturating_sub(pending), load.started.elapsed()));
    let relay_cpu = cpu_delta(relay_cpu0, process_cpu(pid, machine.clk_tck));
    let bench_cpu = cpu_delta(bench_cpu0, process_cpu(std::process::id(), machine.clk_tck));
    let hwm = proc_status_kib(pid, "VmHWM:").unwrap_or(0);
    let samples = sampler.stop();

    let mut notes = Vec::new();
    let (upstream_messages, upstream_requests, upstream_connections) = match &upstream {
        Upstream::Api(fake) => {
            let requests = fake.requests();
            let batches = requests.iter().filter(|r| r.path == "/email/batch").count();
            let singles = requests.iter().filter(|r| r.path == "/email").count();
            let emails = fake.emails().len();
            notes.push(format!(
                "fake API: {} requests ({batches} POST /email/batch, {singles} POST /email), {emails} messages, {:.1} messages per request",
                requests.len(),
                rate(emails, requests.len() as f64)
            ));
            (emails, requests.len(), None)
        }
        Upstream::Smtp(fake) => {
            let n = fake.messages().len();
            let conns = fake.connections();
            notes.push(format!("fake SMTP: {n} transactions over {conns} connection(s), STARTTLS + AUTH"));
            (n, n, Some(conns))
        }
    };
    let dead = count_with_suffix(&spool.join("dead"), ".msg").unwrap_or(0);
    if dead > 0 {
        notes.push(format!("{dead} message(s) ended in the relay's dead letters"));
    }
    if let Some((done, after)) = partial {
        notes.push(format!(
            "delivery did not finish within --timeout {} s: {done} of {} delivered after {:.1} s ({:.0} msg/s)",
            opts.timeout.as_secs(),
            load.accepted,
            after.as_secs_f64(),
            rate(done, after.as_secs_f64())
        ));
    }
    relay.stop(Duration::from_secs(if opts.relay_wrapper.is_empty() { 30 } else { 300 }));
    if let Some(e) = &load.first_error {
        notes.push(format!("first client error: {e}"));
    }
    Ok(Measurement {
        name: "postmark-relay".into(),
        accepted: load.accepted,
        failed: load.failed,
        first_error: load.first_error.clone(),
        accept_secs: load.accept_secs,
        deliver_secs,
        upstream_messages,
        upstream_requests,
        upstream_connections,
        latencies_us: load.latencies_us,
        peak_rss_kib: hwm.max(samples.peak_rss_kib),
        sampled_peak_kib: samples.peak_rss_kib,
        peak_pss_kib: samples.peak_pss_kib,
        load_before,
        peak_tasks: samples.peak_tasks,
        server_cpu: relay_cpu,
        bench_cpu_secs: bench_cpu.0 + bench_cpu.1,
        machine_busy: Machine::busy_share(&cpu0, &cpu1),
        notes,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// The Postfix run
// ---------------------------------------------------------------------------------------------------------------

/// An installed Postfix.
#[derive(Debug, Clone)]
pub struct Postfix {
    version: String,
}

impl Postfix {
    fn detect() -> std::result::Result<Postfix, String> {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).chain([PathBuf::from("/usr/sbin")]).any(|d| d.join("postfix").is_file()))
            .unwrap_or(false);
        if !found {
            return Err("postfix is not installed (Debian: apt-get install postfix)".into());
        }
        if !is_root() {
            return Err("postfix is installed, but starting a private instance needs root".into());
        }
        let out = Command::new("postconf").args(["-d", "-h", "mail_version"]).output();
        let version = match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
            _ => "unknown version".into(),
        };
        Ok(Postfix { version: format!("postfix {version}") })
    }
}

/// The `main.cf` of the private Postfix instance: a loopback-only relay that fsyncs every queue file before `250`
/// (Postfix's default) and forwards everything to `relayhost`.
pub fn postfix_main_cf(dir: &Path, relayhost: SocketAddr) -> String {
    let d = dir.display();
    format!(
        "# postmark-relay bench: a private Postfix instance, loopback only, relaying everything to a local sink.
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.localdomain
mydestination =
local_recipient_maps =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
relay_domains =
mynetworks = 127.0.0.0/8
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [{ip}]:{port}
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
biff = no
",
        ip = relayhost.ip(),
        port = relayhost.port(),
    )
}

/// The `master.cf` of the private Postfix instance: the Debian defaults for the services a relay needs, SMTP on
/// 127.0.0.1 only, no chroot (the queue is a private directory), logging through postlogd to a file.
pub fn postfix_master_cf(port: u16) -> String {
    format!(
        "# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"
    )
}

static POSTFIX_CONFIG_SHOWN: AtomicBool = AtomicBool::new(false);

async fn run_postfix(opts: &Options, pf: &Postfix, work: &WorkDir, machine: &Machine) -> Result<Measurement> {
    let dir = work.fresh("postfix")?;
    let listen = SocketAddr::from(([127, 0, 0, 1], opts.postfix_port));
    if std::net::TcpListener::bind(listen).is_err() {
        bail!("{listen} is in use; pick another --postfix-port");
    }
    let sink = Sink::start().await?;
    let etc = dir.join("etc");
    for d in ["etc", "queue", "data"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    run_checked(Command::new("chown").arg("postfix").arg(dir.join("data")))?;
    let main_cf = postfix_main_cf(&dir, sink.addr);
    let master_cf = postfix_master_cf(opts.postfix_port);
    std::fs::write(etc.join("main.cf"), &main_cf)?;
    std::fs::write(etc.join("master.cf"), &master_cf)?;
    if !POSTFIX_CONFIG_SHOWN.swap(true, Ordering::Relaxed) {
        println!("postfix main.cf ({}):\n{main_cf}", etc.join("main.cf").display());
        println!("postfix master.cf ({}):\n{master_cf}", etc.join("master.cf").display());
    }
    let maillog = dir.join("maillog");
    let mut guard = PostfixGuard { etc: etc.clone(), running: false, master: None };
    for action in ["check", "start"] {
        let status = Command::new("postfix").arg("-c").arg(&etc).arg(action).status()?;
        if !status.success() {
            bail!("postfix {action} failed; its log:\n{}", tail(&maillog, 20));
        }
    }
    guard.running = true;
    wait_ready(listen, Duration::from_secs(30), || false)
        .await
        .map_err(|e| anyhow!("{e}; postfix log:\n{}", tail(&maillog, 20)))?;
    let master: u32 = std::fs::read_to_string(dir.join("queue/pid/master.pid"))
        .context("postfix master.pid")?
        .trim()
        .parse()
        .context("postfix master.pid")?;
    guard.master = Some(master);

    let load_before = load_average();
    let sampler = Sampler::start(vec![master], true);
    let cpu0 = machine.cpu_snapshot();
    let pf_cpu0 = family_cpu(master, machine.clk_tck);
    let bench_cpu0 = process_cpu(std::process::id(), machine.clk_tck);
    let deadline = Instant::now() + opts.timeout;
    let load = drive(listen, opts, deadline).await;
    let cpu1 = machine.cpu_snapshot();
    let mut deliver_secs = None;
    while Instant::now() < deadline {
        if sink.delivered.load(Ordering::Relaxed) >= load.accepted {
            deliver_secs = Some(load.started.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pf_cpu = cpu_delta(pf_cpu0, family_cpu(master, machine.clk_tck));
    let bench_cpu = cpu_delta(bench_cpu0, process_cpu(std::process::id(), machine.clk_tck));
    let samples = sampler.stop();
    guard.stop();

    let upstream_messages = sink.delivered.load(Ordering::Relaxed);
    let conns = sink.connections.load(Ordering::Relaxed);
    let mut notes = vec![format!(
        "sink: {upstream_messages} transactions over {conns} connection(s), plain SMTP (no TLS) from Postfix's smtp client"
    )];
    if deliver_secs.is_none() {
        notes.push(format!("delivery did not finish within --timeout {} s", opts.timeout.as_secs()));
    }
    if let Some(e) = &load.first_error {
        notes.push(format!("first client error: {e}"));
    }
    Ok(Measurement {
        name: pf.version.clone(),
        accepted: load.accepted,
        failed: load.failed,
        first_error: load.first_error.clone(),
        accept_secs: load.accept_secs,
        deliver_secs,
        upstream_messages,
        upstream_requests: upstream_messages,
        upstream_connections: Some(conns),
        latencies_us: load.latencies_us,
        peak_rss_kib: samples.peak_rss_kib,
        sampled_peak_kib: samples.peak_rss_kib,
        peak_pss_kib: samples.peak_pss_kib,
        load_before,
        peak_tasks: samples.peak_tasks,
        server_cpu: pf_cpu,
        bench_cpu_secs: bench_cpu.0 + bench_cpu.1,
        machine_busy: Machine::busy_share(&cpu0, &cpu1),
        notes,
    })
}

struct PostfixGuard {
    etc: PathBuf,
    running: bool,
    master: Option<u32>,
}

impl PostfixGuard {
    /// `postfix stop`, then waits (up to 15 s) for the master to exit so the port is free for the next run.
    fn stop(&mut self) {
        if self.running {
            self.running = false;
            let _ = Command::new("postfix").arg("-c").arg(&self.etc).arg("stop").stdout(Stdio::null()).status();
            if let Some(pid) = self.master {
                let until = Instant::now() + Duration::from_secs(15);
                while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

impl Drop for PostfixGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A minimal SMTP sink for Postfix to relay to: PIPELINING, no TLS, no storage; it only counts.
struct Sink {
    addr: SocketAddr,
    delivered: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    async fn start() -> Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the sink")?;
        let addr = listener.local_addr()?;
        let delivered = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (d, c) = (Arc::clone(&delivered), Arc::clone(&connections));
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                c.fetch_add(1, Ordering::Relaxed);
                let d = Arc::clone(&d);
                conns.spawn(async move {
                    let _ = sink_connection(stream, d).await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(Sink { addr, delivered, connections, task })
    }
}

async fn sink_connection(stream: TcpStream, delivered: Arc<AtomicUsize>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (r, w) = stream.into_split();
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let mut w = BufWriter::new(w);
    w.write_all(b"220 127.0.0.1 ESMTP bench-sink\r\n").await?;
    let mut line = Vec::with_capacity(1024);
    let mut in_data = false;
    loop {
        if r.buffer().is_empty() {
            w.flush().await?;
        }
        line.clear();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        if in_data {
            if line == b".\r\n" || line == b".\n" {
                in_data = false;
                delivered.fetch_add(1, Ordering::Relaxed);
                w.write_all(b"250 2.0.0 Ok: queued\r\n").await?;
            }
            continue;
        }
        let verb = line.get(..4).map(<[u8]>::to_ascii_uppercase).unwrap_or_default();
        let reply: &[u8] = match verb.as_slice() {
            b"EHLO" => {
                b"250-bench-sink\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
            }
            b"HELO" => b"250 bench-sink\r\n",
            b"MAIL" => b"250 2.1.0 Ok\r\n",
            b"RCPT" => b"250 2.1.5 Ok\r\n",
            b"DATA" => {
                in_data = true;
                b"354 End data with <CR><LF>.<CR><LF>\r\n"
            }
            b"RSET" | b"NOOP" => b"250 2.0.0 Ok\r\n",
            b"QUIT" => {
                w.write_all(b"221 2.0.0 Bye\r\n").await?;
                w.flush().await?;
                return Ok(());
            }
            _ => b"502 5.5.2 Command not recognized\r\n",
        };
        w.write_all(reply).await?;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The load generator
// ---------------------------------------------------------------------------------------------------------------

struct Load {
    started: Instant,
    accepted: usize,
    failed: usize,
    first_error: Option<String>,
    accept_secs: f64,
    latencies_us: Vec<u32>,
}

#[derive(Default)]
struct SessionResult {
    accepted: usize,
    failed: usize,
    error: Option<String>,
    latencies_us: Vec<u32>,
    last_accept: Option<Instant>,
}

/// Sends `opts.messages` messages over `opts.sessions` concurrent sessions.
async fn drive(addr: SocketAddr, opts: &Options, deadline: Instant) -> Load {
    let body: Arc<[u8]> = Arc::from(message_body(opts.size));
    let started = Instant::now();
    let mut set = JoinSet::new();
    let per = opts.messages / opts.sessions;
    let extra = opts.messages % opts.sessions;
    for s in 0..opts.sessions {
        let count = per + usize::from(s < extra);
        let body = Arc::clone(&body);
        let new_conn = opts.new_connection_per_message;
        set.spawn(async move {
            let mut r = SessionResult { latencies_us: Vec::with_capacity(count), ..SessionResult::default() };
            let work = session(addr, s, count, &body, new_conn, &mut r);
            match tokio::time::timeout_at(deadline.into(), work).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => r.error = Some(format!("{e:#}")),
                Err(_) => r.error = Some("deadline passed".into()),
            }
            r.failed = count - r.accepted;
            r
        });
    }
    let mut load =
        Load { started, accepted: 0, failed: 0, first_error: None, accept_secs: 0.0, latencies_us: Vec::new() };
    let mut last = started;
    while let Some(r) = set.join_next().await {
        let Ok(r) = r else { continue };
        load.accepted += r.accepted;
        load.failed += r.failed;
        if load.first_error.is_none() {
            load.first_error = r.error;
        }
        if let Some(t) = r.last_accept {
            last = last.max(t);
        }
        load.latencies_us.extend(r.latencies_us);
    }
    load.accept_secs = last.duration_since(started).as_secs_f64();
    load.latencies_us.sort_unstable();
    load
}

/// The message body (after the per-message headers) so that headers + body come to about `size` bytes.
fn message_body(size: usize) -> Vec<u8> {
    const LINE: &[u8] = b"The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs.\r\n";
    let target = size.saturating_sub(header_block(0, 0).len()).max(80);
    let mut body = Vec::with_capacity(target + LINE.len());
    while body.len() + LINE.len() <= target {
        body.extend_from_slice(LINE);
    }
    let rest = target - body.len();
    if rest > 2 {
        body.extend_from_slice(&LINE[..rest - 2]);
        body.extend_from_slice(b"\r\n");
    } else if body.is_empty() {
        body.extend_from_slice(LINE);
    }
    body
}

fn header_block(session: usize, n: usize) -> String {
    format!(
        "From: Bench Sender <{MAIL_FROM}>\r\nTo: Bench Recipient <{RCPT_TO}>\r\nSubject: bench message {session:04}-{n:07}\r\n\
         Date: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{session:04}.{n:07}@bench.example.com>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
}

struct Client {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    line: String,
    pipelining: bool,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Result<Client> {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        let mut c = Client { r: BufReader::with_capacity(16 * 1024, r), w, line: String::new(), pipelining: false };
        c.expect(220, "greeting").await?;
        c.w.write_all(b"EHLO bench.example.com\r\n").await?;
        let (code, text) = c.reply().await?;
        if code != 250 {
            bail!("EHLO answered {text}");
        }
        c.pipelining = text.lines().any(|l| l.get(4..).is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING")));
        Ok(c)
    }

    /// Reads one (possibly multi-line) reply: its code and its full text.
    async fn reply(&mut self) -> Result<(u16, String)> {
        let mut text = String::new();
        loop {
            self.line.clear();
            if self.r.read_line(&mut self.line).await? == 0 {
                bail!("connection closed by the server (after {text:?})");
            }
            text.push_str(&self.line);
            let code = self.line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let more = self.line.as_bytes().get(3) == Some(&b'-');
            match code {
                Some(code) if !more => return Ok((code, text)),
                Some(_) => {}
                None => bail!("malformed reply line {:?}", self.line),
            }
        }
    }

    async fn expect(&mut self, code: u16, what: &str) -> Result<()> {
        let (got, text) = self.reply().await?;
        if got != code {
            bail!("{what}: expected {code}, got {}", text.trim_end());
        }
        Ok(())
    }

    /// One transaction. `Ok(Some(latency))` when the message was accepted, `Ok(None)` when refused.
    async fn send(&mut self, header: &[u8], body: &[u8], refused: &mut Option<String>) -> Result<Option<Duration>> {
        const ENVELOPE: &str = "MAIL FROM:<bench@example.com>\r\nRCPT TO:<rcpt@example.com>\r\nDATA\r\n";
        let mut replies = [(0u16, String::new()), (0, String::new()), (0, String::new())];
        if self.pipelining {
            self.w.write_all(ENVELOPE.as_bytes()).await?;
            for r in &mut replies {
                *r = self.reply().await?;
            }
        } else {
            for (cmd, r) in ENVELOPE.split_inclusive("\r\n").zip(&mut replies) {
                self.w.write_all(cmd.as_bytes()).await?;
                *r = self.reply().await?;
                if r.0 >= 400 {
                    break;
                }
            }
        }
        if replies[2].0 != 354 {
            if refused.is_none() {
                *refused = Some(replies.iter().map(|r| r.1.trim_end()).collect::<Vec<_>>().join(" / "));
            }
            self.w.write_all(b"RSET\r\n").await?;
            self.reply().await?;
            return Ok(None);
        }
        self.w.write_all(header).await?;
        self.w.write_all(body).await?;
        let t0 = Instant::now();
        self.w.write_all(b".\r\n").await?;
        let (code, text) = self.reply().await?;
        let latency = t0.elapsed();
        if code == 250 {
            Ok(Some(latency))
        } else {
            if refused.is_none() {
                *refused = Some(format!("end of DATA: {}", text.trim_end()));
            }
            Ok(None)
        }
    }

    async fn quit(mut self) -> Result<()> {
        self.w.write_all(b"QUIT\r\n").await?;
        let _ = self.reply().await;
        Ok(())
    }
}

/// One session's share of the load.
async fn session(
    addr: SocketAddr,
    s: usize,
    count: usize,
    body: &[u8],
    new_conn: bool,
    r: &mut SessionResult,
) -> Result<()> {
    let mut refused = None;
    let mut client = if new_conn { None } else { Some(Client::connect(addr).await?) };
    for n in 0..count {
        let header = header_block(s, n);
        let c = match &mut client {
            Some(c) => c,
            None => client.insert(Client::connect(addr).await?),
        };
        if let Some(latency) = c.send(header.as_bytes(), body, &mut refused).await? {
            r.accepted += 1;
            r.latencies_us.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
            r.last_accept = Some(Instant::now());
        }
        if new_conn && let Some(c) = client.take() {
            c.quit().await?;
        }
    }
    if let Some(c) = client {
        c.quit().await?;
    }
    if r.error.is_none() {
        r.error = refused;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------------------------

fn describe_load(opts: &Options) -> String {
    format!(
        "{} sessions, {} messages of {} bytes, {}",
        opts.sessions,
        opts.messages,
        opts.size,
        if opts.new_connection_per_message { "new connection per message" } else { "connections reused" }
    )
}

fn report(opts: &Options, machine: &Machine, relay: &Measurement, pf: Option<&Measurement>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n== postmark-relay bench: via {}, {} ==", opts.via.name(), describe_load(opts));
    let _ = writeln!(out, "machine: {}", machine.line());
    let cols: Vec<&Measurement> = std::iter::once(relay).chain(pf).collect();
    let _ = write!(out, "{:<40}", "");
    for m in &cols {
        let _ = write!(out, "{:>18}", m.name);
    }
    if pf.is_some() {
        let _ = write!(out, "{:>16}", "relay/postfix");
    }
    out.push('\n');
    type Metric = fn(&Measurement) -> Option<f64>;
    let rows: Vec<(&str, Metric, usize)> = vec![
        ("accepted msg/s", |m| Some(m.accepted_rate()), 0),
        ("delivered msg/s (end to end)", |m| m.delivered_rate(), 0),
        ("DATA-to-250 p50 ms", |m| Some(m.pct_ms(0.50)), 2),
        ("DATA-to-250 p99 ms", |m| Some(m.pct_ms(0.99)), 2),
        ("DATA-to-250 max ms", |m| Some(m.pct_ms(1.0)), 2),
        ("peak RSS MiB", |m| Some(mib(m.peak_rss_kib)), 1),
        ("peak PSS MiB", |m| Some(mib(m.peak_pss_kib)), 1),
        ("upstream requests per message", |m| Some(m.requests_per_message()), 3),
        ("server CPU µs per message", |m| Some(m.cpu_us_per_message()), 0),
        ("  of which user", |m| Some(m.user_us_per_message()), 0),
        ("  of which kernel", |m| Some(m.sys_us_per_message()), 0),
        ("bench process CPU s (client + fake)", |m| Some(m.bench_cpu_secs), 2),
        ("machine CPU busy while accepting %", |m| Some(m.machine_busy * 100.0), 0),
    ];
    for (label, f, prec) in rows {
        let _ = write!(out, "{label:<40}");
        for m in &cols {
            match f(m) {
                Some(v) => {
                    let _ = write!(out, "{:>18.*}", prec, v);
                }
                None => {
                    let _ = write!(out, "{:>18}", "timeout");
                }
            }
        }
        if let Some(p) = pf {
            match (f(relay), f(p)) {
                (Some(a), Some(b)) if b > 0.0 => {
                    let _ = write!(out, "{:>15.2}×", a / b);
                }
                _ => {
                    let _ = write!(out, "{:>16}", "-");
                }
            }
        }
        out.push('\n');
    }
    for m in &cols {
        let _ = writeln!(
            out,
            "{}: {} accepted, {} failed, {} at the upstream; accepting took {:.2} s, delivering {}",
            m.name,
            m.accepted,
            m.failed,
            m.upstream_messages,
            m.accept_secs,
            m.deliver_secs.map_or("did not finish".into(), |s| format!("{s:.2} s")),
        );
        if m.name == "postmark-relay" {
            let _ = writeln!(
                out,
                "  peak RSS is VmHWM; sampled VmRSS peak {:.1} MiB; up to {} threads; load average {:.2} at the start",
                mib(m.sampled_peak_kib),
                m.peak_tasks,
                m.load_before
            );
        } else {
            let _ = writeln!(
                out,
                "  peak RSS is the sampled sum over the master and its children (shared pages counted once per \
                 process), PSS the sampled sum of proportional sizes; up to {} processes; load average {:.2} at the start",
                m.peak_tasks, m.load_before
            );
        }
        for n in &m.notes {
            let _ = writeln!(out, "  {n}");
        }
    }
    if opts.compare_postfix && pf.is_none() {
        let _ = writeln!(out, "postfix: not run (see above)");
    }
    out
}

fn sweep_table(opts: &Options, machine: &Machine, rows: &[(Options, Measurement, Option<Measurement>)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n== sweep: via {}, {} messages per run, {} ==",
        opts.via.name(),
        opts.messages,
        if opts.new_connection_per_message { "new connection per message" } else { "connections reused" }
    );
    let _ = writeln!(out, "machine: {}", machine.line());
    let pf = rows.iter().any(|r| r.2.is_some());
    let _ = write!(
        out,
        "| size | sessions | accepted msg/s | delivered msg/s | p50 ms | p99 ms | peak RSS MiB | relay CPU µs/msg | upstream req/msg |"
    );
    if pf {
        let _ = write!(out, " postfix accepted msg/s | postfix delivered msg/s | postfix p99 ms | ratio (accepted) |");
    }
    out.push('\n');
    let _ = write!(out, "|---|---|---|---|---|---|---|---|---|");
    if pf {
        let _ = write!(out, "---|---|---|---|");
    }
    out.push('\n');
    for (o, m, p) in rows {
        let size = if o.size % 1024 == 0 { format!("{} KB", o.size / 1024) } else { format!("{} B", o.size) };
        let _ = write!(
            out,
            "| {size} | {} | {:.0} | {} | {:.2} | {:.2} | {:.1} | {:.0} | {:.3} |",
            o.sessions,
            m.accepted_rate(),
            m.delivered_rate().map_or("timeout".into(), |r| format!("{r:.0}")),
            m.pct_ms(0.5),
            m.pct_ms(0.99),
            mib(m.peak_rss_kib),
            m.cpu_us_per_message(),
            m.requests_per_message()
        );
        if let Some(p) = p {
            let _ = write!(
                out,
                " {:.0} | {} | {:.2} | {:.2}× |",
                p.accepted_rate(),
                p.delivered_rate().map_or("timeout".into(), |r| format!("{r:.0}")),
                p.pct_ms(0.99),
                m.accepted_rate() / p.accepted_rate().max(f64::MIN_POSITIVE)
            );
        } else if pf {
            let _ = write!(out, " - | - | - | - |");
        }
        out.push('\n');
        if m.failed > 0 {
            let _ = writeln!(out, "  ({} failed: {})", m.failed, m.first_error.as_deref().unwrap_or("?"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Processes, /proc and the machine
// ---------------------------------------------------------------------------------------------------------------

struct BuiltRelay {
    binary: PathBuf,
    seconds: f64,
}

/// `cargo build --release -p postmark-relay`, timed; the binary's path comes from cargo's JSON messages.
fn build_relay() -> Result<BuiltRelay> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = Instant::now();
    let out = Command::new(cargo)
        .current_dir(crate::workspace_root())
        .args(["build", "--release", "-p", "postmark-relay", "--message-format=json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("cargo build --release -p postmark-relay failed");
    }
    let binary = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "postmark-relay")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| anyhow!("cargo did not report the postmark-relay executable"))?;
    Ok(BuiltRelay { binary, seconds })
}

struct ChildGuard {
    child: Child,
    name: &'static str,
}

impl ChildGuard {
    /// SIGTERM (graceful shutdown), then SIGKILL after `grace`.
    fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop within {grace:?}; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A private temporary directory, removed at the end unless `--keep`.
struct WorkDir {
    path: PathBuf,
    keep: bool,
    runs: AtomicUsize,
}

impl WorkDir {
    fn create(keep: bool) -> Result<WorkDir> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let path = std::env::temp_dir().join(format!("xtask-bench-relay-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        if keep {
            println!("work directory (kept): {}", path.display());
        }
        Ok(WorkDir { path, keep, runs: AtomicUsize::new(0) })
    }

    fn fresh(&self, what: &str) -> Result<PathBuf> {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let dir = self.path.join(format!("{n:02}-{what}"));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// How long to wait before listing the relay's queue again: 10 ms near the end, up to 200 ms while thousands are
/// pending.
fn poll_interval(pending: usize) -> Duration {
    Duration::from_millis((pending as u64 / 10).clamp(10, 200))
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

async fn wait_ready(addr: SocketAddr, within: Duration, mut exited: impl FnMut() -> bool) -> Result<()> {
    let until = Instant::now() + within;
    loop {
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let _ = s.write_all(b"QUIT\r\n").await;
            return Ok(());
        }
        if exited() {
            bail!("the server exited before listening on {addr}");
        }
        if Instant::now() > until {
            bail!("nothing listens on {addr} after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn run_checked(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn count_with_suffix(dir: &Path, suffix: &str) -> std::io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        if entry?.file_name().to_str().is_some_and(|name| name.ends_with(suffix)) {
            n += 1;
        }
    }
    Ok(n)
}

/// The 1-minute load average (other work on the machine skews every number; the report shows it).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// `git describe`-like identification of the relay's source: commit and whether crates/postmark-relay has changes.
fn relay_revision() -> String {
    let root = crate::workspace_root();
    let rev = Command::new("git")
        .current_dir(&root)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let dirty = Command::new("git")
        .current_dir(&root)
        .args(["status", "--porcelain", "--", "crates/postmark-relay"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    match rev {
        Some(r) if dirty => format!("{r} + uncommitted changes in crates/postmark-relay"),
        Some(r) => r,
        None => "unknown revision".into(),
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// A `kB` field of `/proc/<pid>/status` (e.g. `VmRSS:`).
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field(&s, field)
}

fn status_field(status: &str, field: &str) -> Option<u64> {
    status.lines().find(|l| l.starts_with(field))?.split_whitespace().nth(1)?.parse().ok()
}

/// Fields of `/proc/<pid>/stat` after the command name (index 0 is the state, field 3 of the man page).
fn proc_stat_fields(pid: u32) -> Option<Vec<u64>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect())
}

/// (user, system) CPU seconds of one process (all its threads).
fn process_cpu(pid: u32, clk_tck: f64) -> (f64, f64) {
    // utime and stime are fields 14 and 15 of the man page: indexes 11 and 12 here.
    proc_stat_fields(pid).map_or((0.0, 0.0), |f| (f[11] as f64 / clk_tck, f[12] as f64 / clk_tck))
}

/// (user, system) CPU seconds of a process, its reaped children and its live children (Postfix: the master and
/// its daemons).
fn family_cpu(pid: u32, clk_tck: f64) -> (f64, f64) {
    // cutime and cstime (fields 16 and 17) hold the reaped children.
    let (mut user, mut sys) = proc_stat_fields(pid)
        .map_or((0.0, 0.0), |f| ((f[11] + f[13]) as f64 / clk_tck, (f[12] + f[14]) as f64 / clk_tck));
    for child in children_of(pid) {
        let (u, s) = process_cpu(child, clk_tck);
        user += u;
        sys += s;
    }
    (user, sys)
}

fn cpu_delta(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    ((b.0 - a.0).max(0.0), (b.1 - a.1).max(0.0))
}

fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        // ppid is field 4 of the man page: index 1 here.
        .filter(|&pid| proc_stat_fields(pid).is_some_and(|f| f.get(1) == Some(&u64::from(parent))))
        .collect()
}

struct Samples {
    peak_rss_kib: u64,
    peak_pss_kib: u64,
    peak_tasks: u64,
}

/// Samples memory every 50 ms on its own thread (so the runtime's threads stay with the client).
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Samples>,
}

impl Sampler {
    /// `family`: sum over the pid and its children (Postfix); otherwise the one process (relay).
    fn start(pids: Vec<u32>, family: bool) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut s = Samples { peak_rss_kib: 0, peak_pss_kib: 0, peak_tasks: 0 };
            while !flag.load(Ordering::Relaxed) {
                let mut all = pids.clone();
                if family {
                    for &p in &pids {
                        all.extend(children_of(p));
                    }
                }
                let (mut rss, mut pss, mut tasks) = (0, 0, 0);
                for &p in &all {
                    if let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) {
                        rss += status_field(&status, "VmRSS:").unwrap_or(0);
                        tasks += if family { 1 } else { status_field(&status, "Threads:").unwrap_or(0) };
                    }
                    if let Ok(rollup) = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")) {
                        pss += status_field(&rollup, "Pss:").unwrap_or(0);
                    }
                }
                s.peak_rss_kib = s.peak_rss_kib.max(rss);
                s.peak_pss_kib = s.peak_pss_kib.max(pss);
                s.peak_tasks = s.peak_tasks.max(tasks);
                std::thread::sleep(SAMPLE_EVERY);
            }
            s
        });
        Sampler { stop, handle }
    }

    fn stop(self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(Samples { peak_rss_kib: 0, peak_pss_kib: 0, peak_tasks: 0 })
    }
}

/// The machine the numbers come from.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `nproc`.
    pub cores: usize,
    /// CPU model from /proc/cpuinfo.
    pub cpu: String,
    /// Total memory, MiB.
    pub mem_mib: u64,
    /// Kernel release.
    pub kernel: String,
    clk_tck: f64,
}

impl Machine {
    fn describe() -> Machine {
        let cores = Command::new("nproc")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let mem_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| status_field(&s, "MemTotal:"))
            .map_or(0, |k| k / 1024);
        let kernel =
            std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default();
        let clk_tck = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0);
        Machine { cores, cpu, mem_mib, kernel, clk_tck }
    }

    fn line(&self) -> String {
        format!("{} cores (nproc), {}, {} MiB RAM, Linux {}", self.cores, self.cpu, self.mem_mib, self.kernel)
    }

    /// (busy, total) jiffies of all CPUs from /proc/stat.
    fn cpu_snapshot(&self) -> (u64, u64) {
        let Ok(s) = std::fs::read_to_string("/proc/stat") else { return (0, 0) };
        let Some(line) = s.lines().find(|l| l.starts_with("cpu ")) else { return (0, 0) };
        let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        (total - idle, total)
    }

    fn busy_share(a: &(u64, u64), b: &(u64, u64)) -> f64 {
        let total = b.1.saturating_sub(a.1);
        if total == 0 { 0.0 } else { b.0.saturating_sub(a.0) as f64 / total as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1K").unwrap(), 1024);
        assert_eq!(parse_size("50K").unwrap(), 51_200);
        assert_eq!(parse_size("50kb").unwrap(), 51_200);
        assert_eq!(parse_size("1M").unwrap(), 1_048_576);
        assert_eq!(parse_size("2048").unwrap(), 2048);
        assert!(parse_size("x").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn messages_come_out_at_the_requested_size() {
        for size in [1024, 50 * 1024, 300] {
            let total = header_block(1, 1).len() + message_body(size).len();
            assert!(total.abs_diff(size) <= 80, "{size}: {total}");
            assert!(message_body(size).ends_with(b"\r\n"));
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn arguments_parse() {
        let args: Vec<String> =
            ["--sessions", "5", "--size", "50K", "--via", "smtp", "--new-connection-per-message", "--compare-postfix"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let o = parse_args(&args).unwrap();
        assert_eq!((o.sessions, o.size, o.via, o.messages), (5, 51_200, Via::Smtp, 10_000));
        assert!(o.new_connection_per_message && o.compare_postfix);
        assert!(parse_args(&["--bogus".to_string()]).is_err());
    }

    #[test]
    fn the_postfix_configuration_is_loopback_only() {
        let main = postfix_main_cf(Path::new("/tmp/x"), "127.0.0.1:2599".parse().unwrap());
        assert!(main.contains("inet_interfaces = 127.0.0.1"));
        assert!(main.contains("relayhost = [127.0.0.1]:2599"));
        assert!(
            postfix_master_cf(2526).starts_with("# service") && postfix_master_cf(2526).contains("127.0.0.1:2526 inet")
        );
    }
}
