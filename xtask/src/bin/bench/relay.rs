//! One run of the load through postmark-relay: a fresh spool, an in-process fake upstream ([`FakeApi`] for `--via
//! api`, [`FakeSmtp`] with STARTTLS and AUTH for `--via smtp`), the relay's process watched through `/proc`.
//! Delivered (end to end) counts until the relay's `queue/` holds no message any more and the fake has every
//! accepted message (one handed over in memory has no file in `queue/`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use postmark_fake::http::FakeApi;
use postmark_fake::smtp::FakeSmtp;

use crate::cli::{Options, Via};
use crate::delay::DelayProxy;
use crate::load::drive;
use crate::measure::{Delivery, Measurement, Server, rate};
use crate::process::{ChildGuard, WorkDir, count_with_suffix, free_port, tail, wait_ready};
use crate::procfs::{Machine, Watch};

const TOKEN: &str = "bench-server-token";
const SMTP_USER: &str = "bench-access-key";
const SMTP_PASS: &str = "bench-secret-key";

enum Upstream {
    Api(FakeApi),
    Smtp(FakeSmtp),
}

pub async fn run_relay(opts: &Options, binary: &Path, work: &WorkDir, machine: &Machine) -> Result<Measurement> {
    let run_dir = work.fresh(&format!("relay-{}", opts.via.name()))?;
    let spool = run_dir.join("spool");
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()?));

    let mut env: Vec<(String, String)> = vec![
        ("RELAY_LISTEN".into(), listen.to_string()),
        ("RELAY_SPOOL".into(), spool.display().to_string()),
        ("RELAY_VIA".into(), opts.via.name().into()),
        ("RUST_LOG".into(), "info".into()),
    ];
    // Bare, as after `cargo install`: the binary settles its allocator itself. A value the caller set is passed on.
    if let Ok(arenas) = std::env::var("MALLOC_ARENA_MAX") {
        env.push(("MALLOC_ARENA_MAX".into(), arenas));
    }
    let mut args: Vec<String> = Vec::new();
    let mut proxy = None;
    let upstream = match opts.via {
        Via::Api => {
            let fake = FakeApi::start().await;
            fake.set_server_token(TOKEN);
            let addr = far(opts, fake.addr(), &mut proxy).await?;
            env.push(("POSTMARK_API_URL".into(), format!("http://{addr}")));
            if let Some(n) = opts.api_max_in_flight {
                args.extend(["--api-max-in-flight".into(), n.to_string()]);
            }
            env.push(("POSTMARK_SERVER_TOKEN".into(), TOKEN.into()));
            Upstream::Api(fake)
        }
        Via::Smtp => {
            let fake = FakeSmtp::builder()
                .credentials(SMTP_USER, SMTP_PASS)
                .pipelining(!opts.no_upstream_pipelining)
                .start()
                .await
                .context("fake SMTP")?;
            let ca = run_dir.join("fake-ca.pem");
            std::fs::write(&ca, fake.ca_pem()).context("writing the fake's CA")?;
            if opts.backlog {
                // Secrets from files, the secret wrong until the load is in: delivery pauses meanwhile.
                let (user, pass) = (run_dir.join("smtp-access-key"), run_dir.join("smtp-secret-key"));
                std::fs::write(&user, SMTP_USER).context("writing the SMTP key file")?;
                std::fs::write(&pass, "not-yet").context("writing the SMTP secret file")?;
                env.push(("POSTMARK_SMTP_ACCESS_KEY_FILE".into(), user.display().to_string()));
                env.push(("POSTMARK_SMTP_SECRET_KEY_FILE".into(), pass.display().to_string()));
            } else {
                env.push(("POSTMARK_SMTP_ACCESS_KEY".into(), SMTP_USER.into()));
                env.push(("POSTMARK_SMTP_SECRET_KEY".into(), SMTP_PASS.into()));
            }
            let addr = far(opts, fake.addr(), &mut proxy).await?;
            args.extend(["--smtp-url".into(), format!("smtp://{addr}"), "--smtp-ca".into(), ca.display().to_string()]);
            if let Some(n) = opts.smtp_connections {
                args.extend(["--smtp-connections".into(), n.to_string()]);
            }
            Upstream::Smtp(fake)
        }
    };

    let wrapper = opts.wrapper();
    let shown: Vec<String> = env
        .iter()
        .map(|(k, v)| if k.contains("TOKEN") || k.contains("KEY") { format!("{k}=***") } else { format!("{k}={v}") })
        .chain(wrapper.iter().cloned())
        .chain(std::iter::once(binary.display().to_string()))
        .chain(args.iter().cloned())
        .collect();
    println!("relay command: {}", shown.join(" "));
    let log = run_dir.join("relay.log");
    let mut relay = ChildGuard::spawn("postmark-relay", &wrapper, binary, &args, &env, &run_dir, &log)?;
    let slow = !wrapper.is_empty();
    let ready_within = Duration::from_secs(if slow { 120 } else { 30 });
    wait_ready(listen, ready_within, || relay.exited())
        .await
        .map_err(|e| anyhow!("{e}; relay log:\n{}", tail(&log, 30)))?;

    let pid = relay.measured_pid(binary);
    let mut watch = Watch::start(machine, pid, false);
    let deadline = Instant::now() + opts.timeout;
    let load = drive(listen, opts, deadline).await;
    watch.accepting_done();
    let released = if opts.backlog && opts.via == Via::Smtp {
        std::fs::write(run_dir.join("smtp-secret-key"), SMTP_PASS).context("writing the SMTP secret file")?;
        let hup = std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status();
        if !hup.is_ok_and(|s| s.success()) {
            println!("bench: could not send SIGHUP to the relay; it notices the changed file by polling");
        }
        Some(Instant::now())
    } else {
        None
    };

    // End to end: the relay's queue/ is empty and the upstream has every accepted message (a message handed over
    // in memory never had a file, so an empty queue/ alone proves nothing). Listing a directory of
    // thousands of files costs CPU the relay could use, so the poll slows down while many are pending.
    let queue_dir = spool.join("queue");
    let mut delivery = Delivery::Unfinished;
    let mut backlog_note = None;
    let mut pending = load.accepted;
    while Instant::now() < deadline {
        let dir = queue_dir.clone();
        let files = tokio::task::spawn_blocking(move || count_with_suffix(&dir, ".msg")).await??;
        // A message handed over in memory has no file: the upstream's own count says when it arrived.
        let upstream_has = match &upstream {
            Upstream::Api(fake) => fake.email_count(),
            Upstream::Smtp(fake) => fake.message_count(),
        };
        pending = files.max(load.accepted.saturating_sub(upstream_has));
        if pending == 0 {
            delivery = Delivery::Done(load.started.elapsed().as_secs_f64());
            if let Some(released) = released {
                let secs = released.elapsed().as_secs_f64();
                let line = format!(
                    "backlog: {} messages delivered in {secs:.2} s after the release: {:.0} msg/s",
                    load.accepted,
                    rate(load.accepted, secs)
                );
                println!("{line}");
                backlog_note = Some(line);
            }
            break;
        }
        tokio::time::sleep(poll_interval(pending)).await;
    }
    let after = load.started.elapsed();
    let usage = watch.finish();
    let accepted = load.accepted;
    let mut m = Measurement::new(Server::Relay(opts.via), "postmark-relay".into(), load, usage);
    m.delivery = delivery;
    m.notes.extend(backlog_note);

    match &upstream {
        Upstream::Api(fake) => {
            let requests = fake.requests();
            let batches = requests.iter().filter(|r| r.path == "/email/batch").count();
            let singles = requests.iter().filter(|r| r.path == "/email").count();
            let emails = fake.emails().len();
            m.notes.push(format!(
                "fake API: {} requests ({batches} POST /email/batch, {singles} POST /email), {emails} messages, \
                 {:.1} messages per request, at most {} requests in flight",
                requests.len(),
                rate(emails, requests.len() as f64),
                fake.load().peak()
            ));
            m.upstream_in_flight = Some(fake.load().peak());
            (m.upstream_messages, m.upstream_requests) = (emails, Some(requests.len()));
        }
        Upstream::Smtp(fake) => {
            let n = fake.messages().len();
            let conns = fake.connections();
            m.notes.push(format!(
                "fake SMTP: {n} transactions over {conns} connection(s), at most {} open at once, STARTTLS + AUTH",
                fake.load().peak()
            ));
            m.upstream_in_flight = Some(fake.load().peak());
            (m.upstream_messages, m.upstream_requests) = (n, Some(n));
        }
    }
    if let Some(p) = &proxy {
        m.notes.push(format!(
            "upstream {} ms away through the delay proxy: {} connection(s), at most {} open at once",
            opts.rtt.as_millis(),
            p.connections.arrivals().len(),
            p.connections.peak()
        ));
        // The fake answers at once; what is in flight is on the link (one request per HTTP/1.1 connection).
        m.upstream_in_flight = Some(p.connections.peak());
    }
    let dead = count_with_suffix(&spool.join("dead"), ".msg").unwrap_or(0);
    if dead > 0 {
        m.notes.push(format!("{dead} message(s) ended in the relay's dead letters"));
    }
    if delivery == Delivery::Unfinished {
        let done = accepted.saturating_sub(pending);
        m.notes.push(format!(
            "delivery did not finish within --timeout {} s: {done} of {accepted} delivered after {:.1} s ({:.0} msg/s)",
            opts.timeout.as_secs(),
            after.as_secs_f64(),
            rate(done, after.as_secs_f64())
        ));
    }
    if slow {
        m.notes.push(format!("ran under `{}`; its output is in {}", wrapper.join(" "), run_dir.display()));
    }
    relay.stop(Duration::from_secs(if slow { 300 } else { 30 }));
    Ok(m)
}

/// Where the server reaches `upstream`: itself, or with `--rtt` a delay proxy to it (kept in `proxy`).
pub async fn far(opts: &Options, upstream: SocketAddr, proxy: &mut Option<DelayProxy>) -> Result<SocketAddr> {
    if opts.rtt.is_zero() {
        return Ok(upstream);
    }
    let p = DelayProxy::start(upstream, opts.rtt).await?;
    let addr = p.addr;
    *proxy = Some(p);
    Ok(addr)
}

/// How long to wait before listing the relay's queue again: 10 ms near the end, up to 200 ms while thousands are
/// pending.
fn poll_interval(pending: usize) -> Duration {
    Duration::from_millis((pending as u64 / 10).clamp(10, 200))
}
