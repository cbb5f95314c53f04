//! The tables: one configuration (servers side by side), the sweep, and the matrix with the performance targets.
//! Every figure is the median over the rounds of that figure alone.

use std::fmt::Write as _;

use crate::cli::{Options, Shape, Via, size_label};
use crate::measure::{Delivery, Measurement, Metric, Rounds, mib};
use crate::procfs::Machine;
use crate::run::Cell;

/// `1234.5` with `prec` decimals, thousands separated by a space: "1 234.5".
pub fn num(v: f64, prec: usize) -> String {
    let s = format!("{v:.prec$}");
    let (int, frac) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(' ');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// The median of `f` as text; "timeout" when delivery never finished, "-" when the server has no such figure.
fn cell(r: &Rounds, f: Metric, prec: usize) -> String {
    match r.median(f) {
        Some(v) => num(v, prec),
        None if r.0.iter().any(|m| m.delivery == Delivery::Unfinished) => "timeout".into(),
        None => "-".into(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{a:.2}×", a = a / b),
        _ => "-".into(),
    }
}

const ACCEPTED: Metric = |m| Some(m.accepted_rate());
const DELIVERED: Metric = Measurement::delivered_rate;
const CPU: Metric = |m| Some(m.cpu_us_per_message());
const P50: Metric = |m| Some(m.pct_ms(0.50));
const P99: Metric = |m| Some(m.pct_ms(0.99));
const MEMORY: Metric = |m| Some(m.memory_mib());

/// The machine, the rounds, how busy the machine was around the runs.
fn preamble(out: &mut String, machine: &Machine, rounds: usize, cells: &[Cell]) {
    let _ = writeln!(out, "machine: {}", machine.line());
    let all: Vec<&Measurement> =
        cells.iter().flat_map(|c| c.runs.ceiling.0.iter().chain(&c.runs.relay.0).chain(&c.runs.postfix.0)).collect();
    let range = |f: fn(&Measurement) -> f64| {
        let v: Vec<f64> = all.iter().map(|m| f(m)).collect();
        (v.iter().copied().fold(f64::INFINITY, f64::min), v.iter().copied().fold(0.0, f64::max))
    };
    let (l0, l1) = range(|m| m.usage.load_before);
    let (b0, b1) = range(|m| m.background_busy.unwrap_or(0.0) * 100.0);
    let _ = writeln!(
        out,
        "every figure is the median of {rounds} round(s); 1-minute load average {l0:.2}–{l1:.2} at the starts of \
         the runs; other work kept the cores {b0:.0}–{b1:.0} % busy in the second before each run"
    );
}

/// One configuration: the servers side by side, with ratios.
pub fn single(opts: &Options, machine: &Machine, c: &Cell) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n== postmark-relay bench: via {}, {} ==", opts.via.name(), opts.describe_load());
    preamble(&mut out, machine, opts.rounds, std::slice::from_ref(c));
    let cols: Vec<(&str, &Rounds)> = [("ceiling", &c.runs.ceiling), ("postmark-relay", &c.runs.relay)]
        .into_iter()
        .chain(c.runs.postfix.first().map(|m| (m.name.as_str(), &c.runs.postfix)))
        .filter(|(_, r)| !r.is_empty())
        .collect();
    let _ = write!(out, "{:<42}", "");
    for (name, _) in &cols {
        let _ = write!(out, "{name:>18}");
    }
    let ratios: Vec<(&str, &Rounds)> = [("relay/ceiling", &c.runs.ceiling), ("relay/postfix", &c.runs.postfix)]
        .into_iter()
        .filter(|(_, r)| !r.is_empty())
        .collect();
    for (name, _) in &ratios {
        let _ = write!(out, "{name:>16}");
    }
    out.push('\n');
    let rows: [(&str, Metric, usize); 14] = [
        ("accepted msg/s", ACCEPTED, 0),
        ("delivered msg/s (end to end)", DELIVERED, 0),
        ("server CPU µs per message", CPU, 0),
        ("  of which user", |m| Some(m.user_us_per_message()), 0),
        ("  of which kernel", |m| Some(m.sys_us_per_message()), 0),
        ("DATA-to-250 p50 ms", P50, 2),
        ("DATA-to-250 p99 ms", P99, 2),
        ("DATA-to-250 max ms", |m| Some(m.pct_ms(1.0)), 2),
        ("peak RSS MiB (Postfix: summed RSS)", |m| Some(mib(m.peak_rss_kib)), 1),
        ("peak PSS MiB", |m| Some(mib(m.peak_pss_kib)), 1),
        ("upstream requests per message", Measurement::requests_per_message, 3),
        ("bench process CPU s (client + fakes)", |m| Some(m.usage.bench_cpu_secs), 2),
        ("machine CPU busy while accepting %", |m| Some(m.usage.machine_busy * 100.0), 0),
        ("machine busy before the run % (others)", |m| m.background_busy.map(|b| b * 100.0), 0),
    ];
    for (label, f, prec) in rows {
        let _ = write!(out, "{label:<42}");
        for (_, r) in &cols {
            let _ = write!(out, "{:>18}", cell(r, f, prec));
        }
        for (_, r) in &ratios {
            let _ = write!(out, "{:>16}", ratio(c.runs.relay.median(f), r.median(f)));
        }
        out.push('\n');
    }
    for (_, r) in &cols {
        let Some(last) = r.0.last() else { continue };
        let accepted: Vec<String> = r.0.iter().map(|m| num(m.accepted_rate(), 0)).collect();
        let _ = writeln!(out, "{}: accepted msg/s per round {}", last.name, accepted.join(" / "));
        let _ = writeln!(
            out,
            "  last round: {} accepted, {} failed, {} at the upstream; accepting took {:.2} s; sampled RSS peak \
             {:.1} MiB; up to {} {}",
            last.accepted,
            last.failed,
            last.upstream_messages,
            last.accept_secs,
            mib(last.sampled_peak_kib),
            last.peak_tasks,
            if last.name.starts_with("postfix") { "processes" } else { "threads" }
        );
        for n in &last.notes {
            let _ = writeln!(out, "  {n}");
        }
    }
    out
}

/// The sweep: sessions x sizes.
pub fn sweep(opts: &Options, machine: &Machine, cells: &[Cell]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n== sweep: via {}, {} messages per run, {} ==",
        opts.via.name(),
        opts.messages,
        opts.shape().name()
    );
    preamble(&mut out, machine, opts.rounds, cells);
    let pf = cells.iter().any(|c| !c.runs.postfix.is_empty());
    let _ = write!(
        out,
        "| size | sessions | ceiling accepted msg/s | accepted msg/s | × ceiling | delivered msg/s | p50 ms | p99 ms | \
         peak RSS MiB | relay CPU µs/msg | upstream req/msg |"
    );
    if pf {
        let _ = write!(out, " Postfix accepted msg/s | Postfix delivered msg/s | Postfix p99 ms | × Postfix |");
    }
    out.push('\n');
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|{}", if pf { "---|---|---|---|" } else { "" });
    for c in cells {
        let (r, ceil, p) = (&c.runs.relay, &c.runs.ceiling, &c.runs.postfix);
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            size_label(c.opts.size),
            c.opts.sessions,
            cell(ceil, ACCEPTED, 0),
            cell(r, ACCEPTED, 0),
            ratio(r.median(ACCEPTED), ceil.median(ACCEPTED)),
            cell(r, DELIVERED, 0),
            cell(r, P50, 2),
            cell(r, P99, 2),
            cell(r, MEMORY, 1),
            cell(r, CPU, 0),
            cell(r, Measurement::requests_per_message, 3),
        );
        if pf {
            let _ = write!(
                out,
                " {} | {} | {} | {} |",
                cell(p, ACCEPTED, 0),
                cell(p, DELIVERED, 0),
                cell(p, P99, 2),
                ratio(r.median(ACCEPTED), p.median(ACCEPTED))
            );
        }
        out.push('\n');
    }
    failures(&mut out, cells);
    out
}

/// The matrix: {connection per message, reuse} x {1 KB, 50 KB} x {ceiling, relay, Postfix}, the SMTP path, and
/// the targets.
pub fn matrix(opts: &Options, machine: &Machine, cells: &[Cell]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n== matrix: {} sessions, {} messages per run ==", opts.sessions, opts.messages);
    preamble(&mut out, machine, opts.rounds, cells);
    let _ = writeln!(
        out,
        "| RTT ms | connections | size | server | accepted msg/s | accepted min–max | delivered msg/s | \
         upstream in flight | server CPU µs/msg | DATA→250 p50 ms | DATA→250 p99 ms | peak RSS MiB | × ceiling | \
         × Postfix |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for c in cells {
        let (ceiling, postfix) = (c.runs.ceiling.median(ACCEPTED), c.runs.postfix.median(ACCEPTED));
        let servers = [
            ("ceiling".to_string(), &c.runs.ceiling),
            (format!("postmark-relay ({})", c.opts.via.name()), &c.runs.relay),
            (
                c.runs.postfix.first().map_or_else(String::new, |m| m.name.replacen("postfix", "Postfix", 1)),
                &c.runs.postfix,
            ),
        ];
        for (name, r) in servers.iter().filter(|(_, r)| !r.is_empty()) {
            let acc = r.median(ACCEPTED);
            let memory = cell(r, MEMORY, 1);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {name} | {} | {} | {} | {} | {} | {} | {} | {}{} | {} | {} |",
                c.opts.rtt.as_millis(),
                c.opts.shape().short(),
                size_label(c.opts.size),
                cell(r, ACCEPTED, 0),
                r.range(ACCEPTED).map_or("-".into(), |(a, b)| format!("{}–{}", num(a, 0), num(b, 0))),
                cell(r, DELIVERED, 0),
                in_flight(r),
                cell(r, CPU, 0),
                cell(r, P50, 2),
                cell(r, P99, 2),
                memory,
                if r.first().is_some_and(|m| m.name.starts_with("postfix")) { " (PSS)" } else { "" },
                ratio(acc, ceiling),
                ratio(acc, postfix),
            );
        }
    }
    let _ = writeln!(
        out,
        "\naccepted: first connect to the last 250; delivered: until the upstream has every message (the ceiling has \
         none); server CPU: user + kernel time of the server's processes from the first connect to the end of \
         delivery, per accepted message; peak RSS: VmHWM of the one process (Postfix: PSS summed over its processes); \
         × ceiling, × Postfix: accepted msg/s over theirs in the same configuration."
    );
    failures(&mut out, cells);
    out.push_str(&targets(cells));
    out
}

/// The most requests or connections in flight at the upstream over a cell's rounds, `-` without a count.
fn in_flight(r: &Rounds) -> String {
    r.0.iter().filter_map(|m| m.upstream_in_flight).max().map_or_else(|| "-".into(), |n| n.to_string())
}

fn failures(out: &mut String, cells: &[Cell]) {
    for c in cells {
        for m in c.runs.ceiling.0.iter().chain(&c.runs.relay.0).chain(&c.runs.postfix.0) {
            if m.failed > 0 {
                let _ = writeln!(
                    out,
                    "{} ({}): {} failed: {}",
                    m.name,
                    c.label(),
                    m.failed,
                    m.first_error.as_deref().unwrap_or("?")
                );
            }
        }
    }
}

/// Issue 16's targets, checked against the matrix.
fn targets(cells: &[Cell]) -> String {
    let find = |via: Via, shape: Shape, size: usize| {
        cells.iter().find(|c| c.opts.via == via && c.opts.shape() == shape && c.opts.size == size)
    };
    let mut out = String::from("\ntargets (issue 16; 20 sessions, connection per message unless said):\n");
    let mut line = |what: String, value: Option<f64>, unit: &str, target: f64, at_least: bool| {
        let verdict = match value {
            Some(v) if (at_least && v >= target) || (!at_least && v <= target) => "met",
            Some(_) => "NOT MET",
            None => "not measured",
        };
        let shown = value.map_or("-".into(), |v| format!("{}{unit}", num(v, if v < 10.0 { 2 } else { 0 })));
        let sign = if at_least { "≥" } else { "≤" };
        let _ = writeln!(out, "  {what:<52} {shown:>12}  (target {sign} {}{unit}): {verdict}", num(target, 1));
    };
    for (size, vs_ceiling, vs_postfix) in [(1024, 0.6, 8.0), (50 * 1024, 0.5, 4.0)] {
        let c = find(Via::Api, Shape::PerMessage, size);
        let relay = c.and_then(|c| c.runs.relay.median(ACCEPTED));
        let ceiling = c.and_then(|c| c.runs.ceiling.median(ACCEPTED));
        let postfix = c.and_then(|c| c.runs.postfix.median(ACCEPTED));
        let over = |a: Option<f64>, b: Option<f64>| a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b);
        line(format!("{} accepted / ceiling", size_label(size)), over(relay, ceiling), "×", vs_ceiling, true);
        line(format!("{} accepted / Postfix", size_label(size)), over(relay, postfix), "×", vs_postfix, true);
    }
    let cpu = find(Via::Api, Shape::PerMessage, 1024).and_then(|c| c.runs.relay.median(CPU));
    line("relay CPU per 1 KB message".into(), cpu, " µs", 150.0, false);
    for size in [1024, 50 * 1024] {
        let peak = [Shape::PerMessage, Shape::Reuse]
            .into_iter()
            .filter_map(|s| find(Via::Api, s, size).and_then(|c| c.runs.relay.median(MEMORY)))
            .reduce(f64::max);
        line(format!("relay peak RSS at {} (both shapes)", size_label(size)), peak, " MiB", 24.0, false);
    }
    let p99 = find(Via::Api, Shape::Reuse, 1024).and_then(|c| c.runs.relay.median(P99));
    line("DATA→250 p99, connections reused, 1 KB".into(), p99, " ms", 5.0, false);
    let smtp = find(Via::Smtp, Shape::PerMessage, 1024).and_then(|c| c.runs.relay.median(DELIVERED));
    line("SMTP path delivered msg/s, 1 KB".into(), smtp, "", 4000.0, true);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_group_thousands() {
        assert_eq!(num(1234.5, 1), "1 234.5");
        assert_eq!(num(7270.0, 0), "7 270");
        assert_eq!(num(123.0, 0), "123");
        assert_eq!(num(1_234_567.0, 0), "1 234 567");
        assert_eq!(num(-1234.0, 0), "-1 234");
        assert_eq!(num(0.456, 2), "0.46");
    }
}
