//! One run of the load through a private Postfix instance (Debian's `postfix` package) that relays everything to
//! the in-process [`Sink`]. Its configuration is written to the run's directory and printed once per bench.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::cli::Options;
use crate::load::drive;
use crate::measure::{Delivery, Measurement, Server};
use crate::process::{WorkDir, run_checked, tail, wait_ready};
use crate::procfs::{Machine, Watch, is_root};
use crate::sink::Sink;

/// An installed Postfix.
#[derive(Debug, Clone)]
pub struct Postfix {
    /// "postfix 3.7.11".
    pub version: String,
    dir: PathBuf,
}

impl Postfix {
    /// Finds Postfix, or says why it cannot run and what to do about it.
    pub fn detect() -> Result<Postfix> {
        let dirs: Vec<PathBuf> =
            std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
        let Some(dir) = dirs.into_iter().chain([PathBuf::from("/usr/sbin")]).find(|d| d.join("postfix").is_file())
        else {
            bail!(
                "--compare-postfix: Postfix is not installed (no `postfix` in PATH or /usr/sbin). On Debian, as root:\n\
                 \n    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections\n    \
                 apt-get install postfix\n\n\
                 (\"No configuration\" keeps the system's own instance unconfigured and stopped; the bench starts a \
                 private, loopback-only instance of its own.) Or leave out --compare-postfix."
            );
        };
        if !is_root() {
            bail!(
                "--compare-postfix: Postfix is installed, but starting a private instance (queue owned by the \
                 postfix user, setgid postdrop) needs root. Run the bench as root, or leave out --compare-postfix."
            );
        }
        let out = Command::new(dir.join("postconf")).args(["-d", "-h", "mail_version"]).output();
        let version = match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
            _ => "(unknown version)".into(),
        };
        Ok(Postfix { version: format!("postfix {version}"), dir })
    }

    fn command(&self, etc: &Path, action: &str) -> Command {
        let mut c = Command::new(self.dir.join("postfix"));
        c.arg("-c").arg(etc).arg(action);
        c
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

static CONFIG_SHOWN: AtomicBool = AtomicBool::new(false);

pub async fn run_postfix(opts: &Options, pf: &Postfix, work: &WorkDir, machine: &Machine) -> Result<Measurement> {
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
    let mut proxy = None;
    let relayhost = crate::relay::far(opts, sink.addr, &mut proxy).await?;
    let main_cf = postfix_main_cf(&dir, relayhost);
    let master_cf = postfix_master_cf(opts.postfix_port);
    std::fs::write(etc.join("main.cf"), &main_cf)?;
    std::fs::write(etc.join("master.cf"), &master_cf)?;
    if !CONFIG_SHOWN.swap(true, Ordering::Relaxed) {
        println!("postfix main.cf ({}):\n{main_cf}", etc.join("main.cf").display());
        println!("postfix master.cf ({}):\n{master_cf}", etc.join("master.cf").display());
    }
    let maillog = dir.join("maillog");
    let mut guard = PostfixGuard { pf: pf.clone(), etc: etc.clone(), running: false, master: None };
    for action in ["check", "start"] {
        let status = pf.command(&etc, action).status()?;
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

    let mut watch = Watch::start(machine, master, true);
    let deadline = Instant::now() + opts.timeout;
    let load = drive(listen, opts, deadline).await;
    watch.accepting_done();
    let mut delivery = Delivery::Unfinished;
    while Instant::now() < deadline {
        if sink.delivered.load(Ordering::Relaxed) >= load.accepted {
            delivery = Delivery::Done(load.started.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let usage = watch.finish();
    guard.stop();

    let mut m = Measurement::new(Server::Postfix, pf.version.clone(), load, usage);
    m.delivery = delivery;
    m.upstream_messages = sink.delivered.load(Ordering::Relaxed);
    m.upstream_requests = Some(m.upstream_messages);
    m.notes.push(format!(
        "sink: {} transactions over {} connection(s), plain SMTP (no TLS) from Postfix's smtp client",
        m.upstream_messages,
        sink.connections.load(Ordering::Relaxed)
    ));
    if let Some(p) = &proxy {
        m.notes.push(format!(
            "relayhost {} ms away through the delay proxy: at most {} connections open at once",
            opts.rtt.as_millis(),
            p.connections.peak()
        ));
        m.upstream_in_flight = Some(p.connections.peak());
    }
    if delivery == Delivery::Unfinished {
        m.notes.push(format!("delivery did not finish within --timeout {} s", opts.timeout.as_secs()));
    }
    Ok(m)
}

struct PostfixGuard {
    pf: Postfix,
    etc: PathBuf,
    running: bool,
    master: Option<u32>,
}

impl PostfixGuard {
    /// `postfix stop`, then waits (up to 15 s) for the master to exit so the port is free for the next run.
    fn stop(&mut self) {
        if self.running {
            self.running = false;
            let _ = self.pf.command(&self.etc, "stop").stdout(Stdio::null()).status();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postfix_configuration_is_loopback_only() {
        let main = postfix_main_cf(Path::new("/tmp/x"), "127.0.0.1:2599".parse().unwrap());
        assert!(main.contains("inet_interfaces = 127.0.0.1"));
        assert!(main.contains("relayhost = [127.0.0.1]:2599"));
        let master = postfix_master_cf(2526);
        assert!(master.starts_with("# service") && master.contains("127.0.0.1:2526 inet"));
    }
}
