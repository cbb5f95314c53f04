//! What `/proc` tells about the machine and the server under test: CPU time, memory (sampled every 50 ms on a
//! thread of its own), load average.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// The 1-minute load average (other work on the machine skews every number; the report shows it).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// A `kB` field of `/proc/<pid>/status` (e.g. `VmHWM:`).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
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

pub fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        // ppid is field 4 of the man page: index 1 here.
        .filter(|&pid| proc_stat_fields(pid).is_some_and(|f| f.get(1) == Some(&u64::from(parent))))
        .collect()
}

/// Peaks seen by the [`Sampler`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Samples {
    pub peak_rss_kib: u64,
    pub peak_pss_kib: u64,
    pub peak_tasks: u64,
}

/// Samples memory every 50 ms on its own thread (so the runtime's threads stay with the client).
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Samples>,
}

impl Sampler {
    /// `family`: sum over the pid and its children (Postfix); otherwise the one process.
    fn start(pid: u32, family: bool) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut s = Samples::default();
            while !flag.load(Ordering::Relaxed) {
                let mut all = vec![pid];
                if family {
                    all.extend(children_of(pid));
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
        self.handle.join().unwrap_or_default()
    }
}

/// Watches a server through one run: its CPU time and memory, this process's CPU time (client and fakes), and how
/// busy the machine was while accepting.
pub struct Watch {
    pid: u32,
    family: bool,
    clk_tck: f64,
    sampler: Sampler,
    load_before: f64,
    machine0: (u64, u64),
    machine1: Option<(u64, u64)>,
    server0: (f64, f64),
    bench0: (f64, f64),
}

/// What a [`Watch`] saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// 1-minute load average when the run started.
    pub load_before: f64,
    /// Server CPU seconds (user, system).
    pub server_cpu: (f64, f64),
    /// CPU seconds of this process over the same span.
    pub bench_cpu_secs: f64,
    /// Share of all cores busy while accepting (0..1).
    pub machine_busy: f64,
    /// Memory peaks (sampled).
    pub samples: Samples,
    /// `VmHWM` of the one process at the end (0 for a family).
    pub hwm_kib: u64,
}

impl Watch {
    /// Starts watching `pid` (with `family`, it and its children).
    pub fn start(machine: &Machine, pid: u32, family: bool) -> Watch {
        let cpu = |p| if family { family_cpu(p, machine.clk_tck) } else { process_cpu(p, machine.clk_tck) };
        Watch {
            pid,
            family,
            clk_tck: machine.clk_tck,
            sampler: Sampler::start(pid, family),
            load_before: load_average(),
            machine0: Machine::cpu_snapshot(),
            machine1: None,
            server0: cpu(pid),
            bench0: process_cpu(std::process::id(), machine.clk_tck),
        }
    }

    /// The client is done: the machine's busy share covers the span until now.
    pub fn accepting_done(&mut self) {
        self.machine1 = Some(Machine::cpu_snapshot());
    }

    pub fn finish(self) -> Usage {
        let server1 =
            if self.family { family_cpu(self.pid, self.clk_tck) } else { process_cpu(self.pid, self.clk_tck) };
        let bench = cpu_delta(self.bench0, process_cpu(std::process::id(), self.clk_tck));
        let machine1 = self.machine1.unwrap_or_else(Machine::cpu_snapshot);
        Usage {
            load_before: self.load_before,
            server_cpu: cpu_delta(self.server0, server1),
            bench_cpu_secs: bench.0 + bench.1,
            machine_busy: Machine::busy_share(&self.machine0, &machine1),
            hwm_kib: if self.family { 0 } else { proc_status_kib(self.pid, "VmHWM:").unwrap_or(0) },
            samples: self.sampler.stop(),
        }
    }
}

/// The share of all cores busy over `window` (while the bench itself is idle: other work on the machine).
pub fn background_busy(window: Duration) -> f64 {
    let a = Machine::cpu_snapshot();
    std::thread::sleep(window);
    Machine::busy_share(&a, &Machine::cpu_snapshot())
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
    pub fn describe() -> Machine {
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

    pub fn line(&self) -> String {
        format!("{} cores (nproc), {}, {} MiB RAM, Linux {}", self.cores, self.cpu, self.mem_mib, self.kernel)
    }

    /// (busy, total) jiffies of all CPUs from /proc/stat.
    fn cpu_snapshot() -> (u64, u64) {
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
    fn this_process_is_visible() {
        let me = std::process::id();
        assert!(proc_status_kib(me, "VmHWM:").is_some_and(|k| k > 0));
        let f = proc_stat_fields(me).expect("stat");
        assert!(f.len() > 20, "{f:?}");
        assert_eq!(status_field("VmRSS:\t  1234 kB\n", "VmRSS:"), Some(1234));
        assert_eq!(Machine::busy_share(&(10, 100), &(60, 200)), 0.5);
    }
}
