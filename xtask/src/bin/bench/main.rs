//! `cargo xtask bench relay`: builds `postmark-relay` in release, starts it on loopback against an in-process fake
//! upstream, drives it with concurrent SMTP sessions, and prints throughput, CPU per message, latency and memory
//! beside a ceiling (a minimal SMTP acceptor that discards every message) and, if asked, Postfix.
//!
//! This binary only builds with xtask's `bench` feature, so `cargo test --workspace` never compiles it; `cargo xtask
//! bench …` builds it in release and runs it. Everything listens on 127.0.0.1 only, every count is bounded, and
//! every run has a deadline (`--timeout`).
//!
//! | concern | module |
//! | --- | --- |
//! | command line | [`cli`] |
//! | which runs, rounds, medians | [`run`], [`measure`] |
//! | the load generator (SMTP client) | [`load`] |
//! | the ceiling and Postfix's upstream (minimal SMTP acceptor) | [`sink`] |
//! | the relay's run (fake upstreams, spool, end to end) | [`relay`] |
//! | `--rtt`: the delay proxy between a server and its upstream | [`delay`] |
//! | the Postfix run (private instance) | [`postfix`] |
//! | tables and targets | [`report`] |
//! | CPU, memory and load from `/proc` | [`procfs`] |
//! | processes, profiling wrapper, work directory | [`process`] |

mod cli;
mod delay;
mod load;
mod measure;
mod postfix;
mod process;
mod procfs;
mod relay;
mod report;
mod run;
mod sink;

use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::cli::{Cli, Cmd};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Relay(_) if cfg!(debug_assertions) => rerun_in_release(),
        Cmd::Relay(opts) => run::bench_relay(&opts.normalised()),
        Cmd::Sink { listen } => sink::serve_forever(listen),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// In a debug build the client and the in-process fakes (axum, serde_json) would be slow enough to measure
/// themselves: run the same command from a release build instead.
fn rerun_in_release() -> Result<()> {
    println!("bench: re-running from a release build, so that the client and the fakes are not the bottleneck");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(xtask::workspace_root())
        .args(["run", "--release", "--quiet", "-p", "xtask", "--features", "bench", "--bin", "bench", "--"])
        .args(std::env::args_os().skip(1))
        .status()
        .context("running cargo run --release -p xtask --features bench --bin bench")?;
    if !status.success() {
        bail!("the bench (release build) exited with {status}");
    }
    Ok(())
}
