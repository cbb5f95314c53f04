//! `cargo xtask <command>`: see `cargo xtask --help`.

use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use clap::builder::PossibleValuesParser;
use clap::{Parser, Subcommand};
use xtask::{Mode, TARGETS, codegen};

/// Project automation for the postmark-rs workspace.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Regenerate the clients (crates/postmark-{server,account}/src/generated.rs), the CLI's subcommands
    /// (crates/postmark-cli/src/generated/) and the mocks (crates/postmark-httpmock/src/generated/) from
    /// openapi/*.yaml with progenitor.
    Codegen {
        /// Write nothing; exit 1 with a diff when a committed file is stale.
        #[arg(long)]
        check: bool,
        /// Only this target.
        #[arg(long, value_name = "NAME", value_parser = target_names())]
        only: Option<String>,
    },
    /// Print the API surface (one line per operation) of the generated clients.
    Surface {
        /// Only this client.
        #[arg(value_name = "NAME", value_parser = client_names())]
        name: Option<String>,
    },
    /// Benchmarks (`cargo xtask bench relay --help`). Builds xtask's `bench` binary in release (feature `bench`)
    /// and runs it with these arguments.
    #[command(disable_help_flag = true)]
    Bench {
        /// Passed on to the bench binary.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    },
}

fn target_names() -> PossibleValuesParser {
    PossibleValuesParser::new(TARGETS.iter().map(|t| t.name))
}

fn client_names() -> PossibleValuesParser {
    PossibleValuesParser::new(xtask::client_targets().map(|t| t.name))
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Cmd::Codegen { check, only } => {
            let mode = if check { Mode::Check } else { Mode::Write };
            codegen(mode, only.as_deref()).map(|lines| {
                for line in lines {
                    println!("{line}");
                }
                ExitCode::SUCCESS
            })
        }
        Cmd::Surface { name } => surface(name.as_deref()).map(|()| ExitCode::SUCCESS),
        Cmd::Bench { args } => bench(&args),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

fn surface(name: Option<&str>) -> Result<()> {
    for t in xtask::client_targets().filter(|t| name.is_none_or(|n| n == t.name)) {
        print!("{}", xtask::api_surface(t)?);
    }
    Ok(())
}

/// The benchmark is a binary of its own behind the `bench` feature (so `cargo test --workspace` never compiles
/// it), and it measures itself (client, fakes), so it always runs from a release build.
fn bench(args: &[String]) -> Result<ExitCode> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(xtask::workspace_root())
        .args(["run", "--release", "--quiet", "--package", "xtask", "--features", "bench", "--bin", "bench", "--"])
        .args(args)
        .status()
        .context("running cargo run --release -p xtask --features bench --bin bench")?;
    Ok(status.code().and_then(|c| u8::try_from(c).ok()).map_or(ExitCode::FAILURE, ExitCode::from))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn arguments_parse() {
        let cli = Cli::try_parse_from(["xtask", "codegen", "--check", "--only", "server"]).unwrap();
        assert!(matches!(cli.command, Cmd::Codegen { check: true, only: Some(ref n) } if n == "server"));
        assert!(Cli::try_parse_from(["xtask", "codegen", "--only", "nope"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "codegen", "--only", "server-cli"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "surface", "server-mock"]).is_err(), "surface is for clients");
        let cli = Cli::try_parse_from(["xtask", "bench", "relay", "--matrix", "--help"]).unwrap();
        assert!(matches!(cli.command, Cmd::Bench { ref args } if args == &["relay", "--matrix", "--help"]));
    }
}
