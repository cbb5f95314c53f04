//! `cargo xtask <command>`: see `cargo xtask help`.

use std::process::ExitCode;

use xtask::{Mode, codegen};

const HELP: &str = "\
cargo xtask codegen [--check] [--only NAME]
    Regenerate the clients (crates/postmark-{server,account}/src/generated.rs), the CLI's subcommands
    (crates/postmark-cli/src/generated/) and the mocks (crates/postmark-httpmock/src/generated/) from
    openapi/*.yaml with progenitor.
    --check   write nothing; exit 1 with a diff when a committed file is stale
    --only    one target (server, account, server-cli, account-cli, server-mock, account-mock)
cargo xtask surface [NAME]
    Print the API surface (one line per operation) of a generated client.
cargo xtask bench relay [--sessions N] [--messages M] [--size S] [--via api|smtp]
                        [--new-connection-per-message] [--compare-postfix] [--sweep] [--timeout SECS]
    Build postmark-relay in release and measure it on loopback against an in-process fake upstream:
    accepted and delivered msg/s, DATA-to-250 p50/p99, peak RSS, upstream requests per message.
    `cargo xtask bench help` lists every option.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("codegen") => run_codegen(&args[1..]),
        Some("surface") => run_surface(&args[1..]),
        Some("bench") => xtask::bench::run(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown command {other:?}\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_codegen(args: &[String]) -> anyhow::Result<()> {
    let mut mode = Mode::Write;
    let mut only = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--check" => mode = Mode::Check,
            "--only" => only = Some(it.next().ok_or_else(|| anyhow::anyhow!("--only needs a target name"))?.clone()),
            other => anyhow::bail!("unknown codegen argument {other:?}\n\n{HELP}"),
        }
    }
    for line in codegen(mode, only.as_deref())? {
        println!("{line}");
    }
    Ok(())
}

fn run_surface(args: &[String]) -> anyhow::Result<()> {
    for t in xtask::client_targets().filter(|t| args.first().is_none_or(|n| n == t.name)) {
        print!("{}", xtask::api_surface(t)?);
    }
    Ok(())
}
