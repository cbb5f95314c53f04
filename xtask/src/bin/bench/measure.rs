//! What one run measured, and medians over rounds.

use crate::cli::Via;
use crate::load::Load;
use crate::procfs::Usage;

/// The server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// The minimal SMTP acceptor that discards every message.
    Ceiling,
    /// postmark-relay, forwarding over this path.
    Relay(Via),
    /// A private Postfix relaying to the in-process sink.
    Postfix,
}

/// How far delivery got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Delivery {
    /// Nothing to deliver (the ceiling).
    NotApplicable,
    /// Every accepted message reached the upstream this many seconds after the first connect.
    Done(f64),
    /// Not within the deadline.
    Unfinished,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub server: Server,
    /// "postmark-relay", "ceiling" or "postfix 3.7.11".
    pub name: String,
    /// Messages answered 250.
    pub accepted: usize,
    /// Messages refused or lost to connection errors.
    pub failed: usize,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// First connect to last 250.
    pub accept_secs: f64,
    pub delivery: Delivery,
    /// Messages the upstream (fake or sink) has.
    pub upstream_messages: usize,
    /// HTTP requests (API) or SMTP transactions (SMTP, Postfix's sink) the upstream received; `None` without one.
    pub upstream_requests: Option<usize>,
    /// The most requests (API) or connections (SMTP, Postfix's relayhost) in flight at the upstream at once.
    pub upstream_in_flight: Option<usize>,
    /// DATA-to-250 latencies in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// Peak resident set in KiB: `VmHWM` (or the sampled peak if higher) of one process; for Postfix the peak of
    /// the sampled sum over its processes.
    pub peak_rss_kib: u64,
    /// Peak of the sampled `VmRSS` (sum over the processes for Postfix), KiB.
    pub sampled_peak_kib: u64,
    /// Peak of the sampled proportional set size (summed over Postfix's processes, so shared pages are split
    /// instead of counted once per process), KiB.
    pub peak_pss_kib: u64,
    /// Most threads (one process) or processes (Postfix) seen.
    pub peak_tasks: u64,
    pub usage: Usage,
    /// Share of the machine busy over the second before the run (other work).
    pub background_busy: Option<f64>,
    /// Notes for the report.
    pub notes: Vec<String>,
}

impl Measurement {
    /// A measurement with what the client and the watch saw; delivery and the upstream are left to the caller.
    pub fn new(server: Server, name: String, load: Load, usage: Usage) -> Measurement {
        let mut notes = Vec::new();
        if let Some(e) = &load.first_error {
            notes.push(format!("first client error: {e}"));
        }
        Measurement {
            server,
            name,
            accepted: load.accepted,
            failed: load.failed,
            first_error: load.first_error,
            accept_secs: load.accept_secs,
            delivery: Delivery::NotApplicable,
            upstream_messages: 0,
            upstream_requests: None,
            upstream_in_flight: None,
            latencies_us: load.latencies_us,
            peak_rss_kib: usage.hwm_kib.max(usage.samples.peak_rss_kib),
            sampled_peak_kib: usage.samples.peak_rss_kib,
            peak_pss_kib: usage.samples.peak_pss_kib,
            peak_tasks: usage.samples.peak_tasks,
            usage,
            background_busy: None,
            notes,
        }
    }

    pub fn accepted_rate(&self) -> f64 {
        rate(self.accepted, self.accept_secs)
    }

    /// `None` when there is nothing to deliver or delivery did not finish.
    pub fn delivered_rate(&self) -> Option<f64> {
        match self.delivery {
            Delivery::Done(secs) => Some(rate(self.upstream_messages.min(self.accepted), secs)),
            Delivery::NotApplicable | Delivery::Unfinished => None,
        }
    }

    pub fn pct_ms(&self, p: f64) -> f64 {
        f64::from(percentile(&self.latencies_us, p)) / 1000.0
    }

    pub fn requests_per_message(&self) -> Option<f64> {
        self.upstream_requests.map(|r| if self.accepted == 0 { 0.0 } else { r as f64 / self.accepted as f64 })
    }

    pub fn cpu_us_per_message(&self) -> f64 {
        self.user_us_per_message() + self.sys_us_per_message()
    }

    pub fn user_us_per_message(&self) -> f64 {
        per_message_us(self.usage.server_cpu.0, self.accepted)
    }

    pub fn sys_us_per_message(&self) -> f64 {
        per_message_us(self.usage.server_cpu.1, self.accepted)
    }

    /// The memory figure of the tables: peak RSS of one process; for Postfix's many processes the summed PSS
    /// (their summed RSS counts shared pages once per process).
    pub fn memory_mib(&self) -> f64 {
        mib(if self.server == Server::Postfix { self.peak_pss_kib } else { self.peak_rss_kib })
    }

    pub fn one_line(&self) -> String {
        format!(
            "accepted {:.0} msg/s, delivered {}, {:.0} µs CPU/msg, p50 {:.2} ms, p99 {:.2} ms, {} {:.1} MiB",
            self.accepted_rate(),
            match self.delivery {
                Delivery::NotApplicable => "-".to_string(),
                Delivery::Unfinished => "(not within the deadline)".to_string(),
                Delivery::Done(_) => format!("{:.0} msg/s", self.delivered_rate().unwrap_or(0.0)),
            },
            self.cpu_us_per_message(),
            self.pct_ms(0.50),
            self.pct_ms(0.99),
            if self.server == Server::Postfix { "PSS" } else { "peak RSS" },
            self.memory_mib(),
        )
    }
}

fn per_message_us(secs: f64, messages: usize) -> f64 {
    if messages == 0 { 0.0 } else { secs * 1e6 / messages as f64 }
}

pub fn rate(n: usize, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

pub fn mib(kib: u64) -> f64 {
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

/// The median of the values (the mean of the middle two for an even count); `None` when there are none.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// A metric of one run; `None` when the run has no such figure.
pub type Metric = fn(&Measurement) -> Option<f64>;

/// The runs of one server in one configuration, one per round.
#[derive(Debug, Clone, Default)]
pub struct Rounds(pub Vec<Measurement>);

impl Rounds {
    /// The median of `f` over the rounds that have it.
    pub fn median(&self, f: Metric) -> Option<f64> {
        median(self.0.iter().filter_map(f).collect())
    }

    /// (min, max) of `f` over the rounds.
    pub fn range(&self, f: Metric) -> Option<(f64, f64)> {
        let v: Vec<f64> = self.0.iter().filter_map(f).collect();
        let min = v.iter().copied().reduce(f64::min)?;
        Some((min, v.iter().copied().fold(min, f64::max)))
    }

    pub fn first(&self) -> Option<&Measurement> {
        self.0.first()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }
}
