//! Crash consistency: the whole relay (listener, sessions, group commit, checkpoints, delivery to
//! the fake Postmark, recovery) under load, its power cut at a random operation on its spool,
//! then started again on what a disk would hold after the cut, as after a reboot (a new boot
//! id), again and again; at the end every acknowledged message must have reached Postmark,
//! intact.
//!
//! The spool's every change to its files goes through one seam ([`super::super::disk`]); the
//! test records them in order ([`super::power`]), cuts the power at the chosen one (from then on
//! every change fails with `EIO`) and computes the disk after the cut with the rules of
//! [`super::model`] (ext4 `data=ordered` as the spool relies on it: data durable only once its
//! file is synced, a random prefix of the unsynced changes kept with the last one perhaps torn;
//! names kept in order, durable once a directory is synced). At each cut the recorded
//! operations, replayed without a cut, must give exactly the files the relay really has: the
//! record misses nothing the spool does.
//!
//! Cuts: during accept (at a random operation of the spool), during a checkpoint (at a random
//! operation of the checkpoint thread), during recovery (at a random operation from the start of
//! the run, when the start-up replays the journal), and several in a row under continuous load.
//! Every random choice (cut points, what the disk keeps) comes from one seed, printed; set
//! `POSTMARK_CRASH_SEED` to run one again (thread timing still varies from run to run).
//!
//! Besides "nothing acknowledged is lost", each test checks that a message Postmark accepted more
//! than [`SETTLED`] before a cut is never sent again: only a message whose request was in flight
//! (or whose delivered mark was not synced yet) may be duplicated.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use postmark_fake::http::{FakeApi, Fault};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::model::{self, Image};
use super::power::{Cut, Watch};
use crate::cli::Cli;
use crate::config::Config;
use crate::testing::env_of;

const TOKEN: &str = "crash-token";
/// A message Postmark accepted this long before a cut is never sent again.
const SETTLED: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upstream {
    /// Postmark refuses the token until the last run: everything stays spooled.
    Down,
    /// Every request waits before Postmark answers: messages wait in memory, journal-only.
    Slow,
    /// Postmark answers at once: messages are delivered while others arrive.
    Up,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Accept,
    Checkpoint,
    Recovery,
}

fn seed() -> u64 {
    std::env::var("POSTMARK_CRASH_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| rand::random::<u64>() % 1_000_000_000)
}

/// The spool's files live on tmpfs where there is one: the test needs no real syncs.
fn base_dir() -> tempfile::TempDir {
    match tempfile::tempdir_in("/dev/shm") {
        Ok(d) => d,
        Err(_) => tempfile::tempdir().unwrap(),
    }
}

fn message(subject: &str) -> Vec<u8> {
    let mut m = format!(
        "From: sender@example.com\r\nTo: rcpt@example.com\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@crash.test>\r\n\r\nbody of {subject}\r\n"
    )
    .into_bytes();
    for i in 0..40 {
        m.extend_from_slice(format!("line {i} of {subject} .........................................\r\n").as_bytes());
    }
    m
}

/// Sends one message on a new connection: true once the relay said `250`.
async fn send(addr: SocketAddr, subject: &str) -> bool {
    let exchange = async {
        let stream = TcpStream::connect(addr).await.ok()?;
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut reply = async || -> Option<String> {
            loop {
                let line = lines.next_line().await.ok()??;
                if line.as_bytes().get(3) != Some(&b'-') {
                    return Some(line);
                }
            }
        };
        reply().await?.starts_with("220").then_some(())?;
        for command in ["EHLO test\r\n", "MAIL FROM:<sender@example.com>\r\n", "RCPT TO:<rcpt@example.com>\r\n"] {
            write.write_all(command.as_bytes()).await.ok()?;
            reply().await?.starts_with('2').then_some(())?;
        }
        write.write_all(b"DATA\r\n").await.ok()?;
        reply().await?.starts_with("354").then_some(())?;
        write.write_all(&message(subject)).await.ok()?;
        write.write_all(b".\r\n").await.ok()?;
        let answer = reply().await?;
        let _ = write.write_all(b"QUIT\r\n").await;
        Some(answer.starts_with("250 "))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange).await.ok().flatten().unwrap_or(false)
}

/// One run of the relay, on its own runtime (so that a cut can stop everything at once).
struct Run {
    addr: Option<SocketAddr>,
    finish: std::sync::mpsc::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
}

fn start_relay(spool: &Path, url: &str) -> Run {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (finish, finish_rx) = std::sync::mpsc::channel::<bool>();
    let spool = spool.to_str().unwrap().to_owned();
    let url = url.to_owned();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let argv = ["postmark-relay", "--listen", "127.0.0.1:0", "--spool", &spool, "--api-url", &url];
        let args = Cli::try_parse_from(argv.iter().copied().chain(["--max-retry-delay", "200ms"])).unwrap().args;
        let config = Config::resolve(&args, &env_of(&[("POSTMARK_SERVER_TOKEN", TOKEN)])).unwrap();
        match rt.block_on(crate::start(config)) {
            Err(e) => {
                let _ = addr_tx.send(Err(e.to_string()));
                rt.shutdown_background();
            }
            Ok(relay) => {
                let _ = addr_tx.send(Ok(relay.local_addr()));
                if finish_rx.recv().unwrap_or(false) {
                    rt.block_on(relay.stop());
                } else {
                    // The power is off: everything stops where it is.
                    rt.shutdown_background();
                }
            }
        }
    });
    let addr = match addr_rx.recv().unwrap() {
        Ok(addr) => Some(addr),
        Err(e) => {
            eprintln!("the relay did not start (the power was cut during start-up): {e}");
            None
        }
    };
    Run { addr, finish, thread }
}

/// Clients sending messages on new connections until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn start_load(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    prefix: &str,
    next: &Arc<AtomicUsize>,
    acked: &Arc<Mutex<Vec<String>>>,
) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = (0..6)
        .map(|_| {
            let (stop, next, acked, prefix) =
                (Arc::clone(&stop), Arc::clone(next), Arc::clone(acked), prefix.to_owned());
            rt.spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let subject = format!("{prefix}-{}", next.fetch_add(1, Ordering::SeqCst));
                    if send(addr, &subject).await {
                        acked.lock().unwrap().push(subject);
                    } else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();
    Load { stop, tasks }
}

fn subjects(fake: &FakeApi) -> Vec<String> {
    fake.emails().iter().map(|e| e["Subject"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Runs a scenario: a run per cut, each started on the disk the previous cut left, then a last
/// run without a cut that delivers what is left. Returns the summary line.
fn scenario(name: &str, upstream: Upstream, kinds: &[Kind]) -> String {
    let seed = seed();
    eprintln!("crash test {name}: seed {seed} (replay with POSTMARK_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed ^ name_hash(name));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let fake = rt.block_on(FakeApi::start());
    fake.set_server_token(if upstream == Upstream::Down { "not-yet" } else { TOKEN });
    let base = base_dir();
    let mut spool = base.path().join("boot-0");
    crate::spool::Spool::open(&spool).unwrap();
    crate::spool::maildrop::ensure(&spool).unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    // Per cut: what Postmark had accepted long before it, and how many it had at the cut.
    let mut settled: Vec<(std::collections::HashSet<String>, usize)> = Vec::new();
    let fail = |what: String| -> ! { panic!("crash test {name} (POSTMARK_CRASH_SEED={seed}): {what}") };

    for (n, kind) in kinds.iter().enumerate() {
        let cut = match kind {
            Kind::Accept => Cut::AtOp(rng.random_range(20..2500)),
            Kind::Checkpoint => Cut::AtCheckpointOp(rng.random_range(4..60)),
            Kind::Recovery => Cut::AtOp(rng.random_range(0..150)),
        };
        if upstream == Upstream::Slow {
            for _ in 0..20 {
                fake.push_fault(Fault::Delay(Duration::from_millis(700)));
            }
        }
        let watch = Watch::start(&spool, &format!("boot-{n}-{seed}"), cut).unwrap();
        let run = start_relay(&spool, &fake.url());
        let load = run.addr.map(|addr| start_load(&rt, addr, name, &next, &acked));
        // Until the cut; Postmark's count every few milliseconds, to tell what it had long before.
        let started = Instant::now();
        let mut counts: Vec<(Instant, usize)> = Vec::new();
        while !watch.is_off() {
            counts.push((Instant::now(), fake.emails().len()));
            if started.elapsed() > Duration::from_secs(20) {
                watch.cut_now();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let at_cut = Instant::now();
        let long_before = counts.iter().rev().find(|(t, _)| at_cut.duration_since(*t) > SETTLED).map_or(0, |c| c.1);
        let before = subjects(&fake);
        settled.push((before.iter().take(long_before).cloned().collect(), before.len()));
        let (initial, ops) = watch.record();
        let _ = run.finish.send(false);
        if let Some(load) = load {
            load.stop.store(true, Ordering::SeqCst);
            for task in load.tasks {
                let _ = rt.block_on(task);
            }
        }
        let _ = run.thread.join();
        watch.stop();
        // The record misses nothing: replayed, it gives the files the relay really has.
        let live = model::live(&initial, &ops).unwrap_or_else(|e| fail(e));
        let real = Image::read(&spool).unwrap();
        if live != real {
            let differ: Vec<&PathBuf> = live
                .files
                .iter()
                .filter(|(p, b)| real.files.get(*p) != Some(b))
                .map(|(p, _)| p)
                .chain(real.files.keys().filter(|p| !live.files.contains_key(*p)))
                .collect();
            fail(format!("cut {n}: the record of the spool's operations misses something: {differ:?}"));
        }
        let disk = model::after_cut(&initial, &ops, &mut rng).unwrap_or_else(|e| fail(e));
        spool = base.path().join(format!("boot-{}", n + 1));
        disk.write(&spool).unwrap();
        eprintln!(
            "crash test {name}: cut {n} ({kind:?}, {cut:?}) after {} operations, {} acknowledged so far",
            ops.len(),
            acked.lock().unwrap().len()
        );
    }

    // The last run: no cut, Postmark takes everything.
    fake.set_server_token(TOKEN);
    let watch = Watch::start(&spool, &format!("boot-last-{seed}"), Cut::Never).unwrap();
    let run = start_relay(&spool, &fake.url());
    assert!(run.addr.is_some(), "the last run starts");
    let acked = acked.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: std::collections::HashSet<String> = subjects(&fake).into_iter().collect();
        if acked.iter().all(|s| got.contains(s)) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let _ = run.finish.send(true);
    let _ = run.thread.join();
    watch.stop();

    let emails = fake.emails();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for e in &emails {
        let subject = e["Subject"].as_str().unwrap_or_default();
        *count.entry(subject).or_default() += 1;
        let body = e["TextBody"].as_str().unwrap_or_default();
        if !body.contains(&format!("body of {subject}\r\n")) || !body.contains(&format!("line 39 of {subject} ")) {
            fail(format!("{subject} was delivered damaged: {body:?}"));
        }
    }
    let lost: Vec<&String> = acked.iter().filter(|s| !count.contains_key(s.as_str())).collect();
    let duplicated: usize = count.values().map(|c| c - 1).sum();
    let unacked = count.keys().filter(|s| !acked.iter().any(|a| a == *s)).count();
    let delivered = subjects(&fake);
    let mut settled_twice: Vec<&String> = settled
        .iter()
        .flat_map(|(long_before, at_cut)| delivered[*at_cut..].iter().filter(|s| long_before.contains(*s)))
        .collect();
    settled_twice.sort();
    settled_twice.dedup();
    let summary = format!(
        "crash test {name}: {} cuts, {} acknowledged, {} lost, {duplicated} duplicated ({} of them accepted by \
         Postmark more than {SETTLED:?} before a cut), {unacked} delivered without an acknowledgement",
        kinds.len(),
        acked.len(),
        lost.len(),
        settled_twice.len()
    );
    eprintln!("{summary}");
    if !lost.is_empty() {
        fail(format!("acknowledged messages lost: {lost:?}; {summary}"));
    }
    if !settled_twice.is_empty() {
        fail(format!("sent again although delivered long before the cut: {settled_twice:?}; {summary}"));
    }
    assert!(acked.len() >= kinds.len(), "the load ran: {summary}");
    summary
}

fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

#[test]
fn power_cuts_with_the_upstream_down_lose_nothing() {
    use Kind::*;
    scenario("down", Upstream::Down, &[Accept, Checkpoint, Recovery, Accept, Recovery, Checkpoint, Accept, Recovery]);
}

#[test]
fn power_cuts_with_a_slow_upstream_lose_nothing_handed_over_in_memory() {
    use Kind::*;
    scenario("slow", Upstream::Slow, &[Accept, Checkpoint, Accept, Recovery, Accept, Checkpoint]);
}

#[test]
fn five_power_cuts_in_a_row_under_continuous_load_lose_nothing() {
    use Kind::*;
    scenario("load", Upstream::Up, &[Accept, Accept, Checkpoint, Accept, Accept]);
}

#[test]
fn power_cuts_during_recovery_lose_nothing() {
    use Kind::*;
    scenario("recovery", Upstream::Down, &[Accept, Recovery, Recovery, Recovery, Recovery]);
}
