//! The order of runs: which configurations (one, the sweep or the matrix), which servers in each (ceiling, relay,
//! Postfix), and rounds. Each round runs every configuration once, so that a burst of other work on the machine
//! spoils one round of everything instead of all rounds of one configuration; every figure is then the median
//! over the rounds.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cli::{Options, Shape, Via, size_label};
use crate::measure::{Measurement, Rounds};
use crate::postfix::{Postfix, run_postfix};
use crate::process::{WorkDir, build_relay, relay_revision};
use crate::procfs::{Machine, background_busy, load_average};
use crate::relay::run_relay;
use crate::report;
use crate::sink::run_ceiling;

/// One configuration of the load and the servers that take it.
#[derive(Debug, Clone)]
pub struct Cell {
    pub opts: Options,
    pub ceiling: bool,
    pub postfix: bool,
    /// The runs, one per round.
    pub runs: Runs,
}

/// Each server's runs in one [`Cell`].
#[derive(Debug, Clone, Default)]
pub struct Runs {
    pub ceiling: Rounds,
    pub relay: Rounds,
    pub postfix: Rounds,
}

impl Cell {
    fn new(opts: Options, ceiling: bool, postfix: bool) -> Cell {
        Cell { opts, ceiling, postfix, runs: Runs::default() }
    }

    pub fn label(&self) -> String {
        format!(
            "via {}, {}, {} sessions, {}, upstream RTT {} ms",
            self.opts.via.name(),
            self.opts.shape().short(),
            self.opts.sessions,
            size_label(self.opts.size),
            self.opts.rtt.as_millis()
        )
    }
}

/// The configurations `opts` asks for.
pub fn cells(opts: &Options) -> Vec<Cell> {
    let ceiling = !opts.no_ceiling;
    let postfix = opts.compare_postfix;
    let sized = |o: &Options, size: usize| Options { size, ..o.clone() };
    if opts.matrix {
        let mut cells = Vec::new();
        for shape in [Shape::PerMessage, Shape::Reuse] {
            for size in [1024, 50 * 1024] {
                cells.push(Cell::new(sized(&opts.with_shape(shape), size), ceiling, postfix));
            }
        }
        if opts.via == Via::Api {
            // The SMTP path's delivery rate: the relay alone, connection per message, 1 KB.
            let smtp = Options { via: Via::Smtp, ..sized(&opts.with_shape(Shape::PerMessage), 1024) };
            cells.push(Cell::new(smtp, false, false));
        }
        // The upstream at the distance Postmark is: both paths and sizes, connection per message, beside Postfix
        // over the same link (the ceiling has no upstream, so it has no such row).
        for rtt in [50, 150] {
            let far = Options { rtt: std::time::Duration::from_millis(rtt), ..opts.with_shape(Shape::PerMessage) };
            for via in [Via::Api, Via::Smtp] {
                for size in [1024, 50 * 1024] {
                    cells.push(Cell::new(Options { via, ..sized(&far, size) }, false, postfix));
                }
            }
        }
        cells
    } else if opts.sweep {
        let mut cells = Vec::new();
        for size in [1024, 50 * 1024] {
            for sessions in [1, 5, 20, 50] {
                let o = Options { sessions: sessions.min(opts.messages), ..sized(opts, size) };
                cells.push(Cell::new(o, ceiling, postfix));
            }
        }
        cells
    } else {
        vec![Cell::new(opts.clone(), ceiling, postfix)]
    }
}

/// `cargo xtask bench relay`.
pub fn bench_relay(opts: &Options) -> Result<()> {
    let machine = Machine::describe();
    println!("machine: {}", machine.line());
    println!("relay source: {}", relay_revision());
    let postfix = if opts.compare_postfix { Some(Postfix::detect()?) } else { None };
    if let Some(p) = &postfix {
        println!("postfix: {} found; the same load runs through it after the relay", p.version);
    }
    let build = build_relay()?;
    println!(
        "relay build: {:.1} s (`cargo build --release -p postmark-relay`), binary {}",
        build.seconds,
        build.binary.display()
    );
    let work = WorkDir::create(opts.keep)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    let mut cells = cells(opts);
    let started = Instant::now();
    for round in 1..=opts.rounds {
        println!("\n=== round {round} of {} ===", opts.rounds);
        for cell in &mut cells {
            println!("\n-- {}, {} messages --", cell.label(), cell.opts.messages);
            if cell.ceiling {
                let m = measure(opts, || runtime.block_on(run_ceiling(&cell.opts, &work, &machine)))?;
                cell.runs.ceiling.0.push(m);
            }
            let m = measure(opts, || runtime.block_on(run_relay(&cell.opts, &build.binary, &work, &machine)))?;
            cell.runs.relay.0.push(m);
            if let Some(p) = postfix.as_ref().filter(|_| cell.postfix) {
                let m = measure(opts, || runtime.block_on(run_postfix(&cell.opts, p, &work, &machine)))?;
                cell.runs.postfix.0.push(m);
            }
        }
    }
    println!("\nall runs took {:.0} s", started.elapsed().as_secs_f64());
    let out = if opts.matrix {
        report::matrix(opts, &machine, &cells)
    } else if opts.sweep {
        report::sweep(opts, &machine, &cells)
    } else {
        report::single(opts, &machine, &cells[0])
    };
    print!("{out}");
    Ok(())
}

/// Waits for a quiet machine if asked, notes how busy it was, runs `f` and prints its one-line summary.
fn measure(opts: &Options, f: impl FnOnce() -> Result<Measurement>) -> Result<Measurement> {
    let background = wait_quiet(opts.wait_quiet);
    let mut m = f()?;
    m.background_busy = Some(background);
    println!(
        "{:<16} {} (machine {:.0} % busy before, load {:.2})",
        format!("{}:", m.name),
        m.one_line(),
        background * 100.0,
        m.usage.load_before
    );
    Ok(m)
}

/// The share of the machine other work kept busy over one second, after waiting (up to 10 minutes) for it to fall
/// below `below` percent when given.
fn wait_quiet(below: Option<f64>) -> f64 {
    let until = Instant::now() + Duration::from_secs(600);
    loop {
        let busy = background_busy(Duration::from_secs(1));
        match below {
            Some(pct) if busy * 100.0 >= pct && Instant::now() < until => {
                println!(
                    "waiting: the machine is {:.0} % busy (load {:.2}), above --wait-quiet {pct}",
                    busy * 100.0,
                    load_average()
                );
                std::thread::sleep(Duration::from_secs(4));
            }
            _ => return busy,
        }
    }
}
