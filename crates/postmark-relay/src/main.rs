//! The `postmark-relay` binary: parse flags, set up logging, run the relay or a queue command.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use postmark_relay::cli::{Cli, Command};
use postmark_relay::config::{Config, resolve_spool};
use postmark_relay::shutdown::os_signal;
use postmark_relay::spool::Spool;

/// Threads of the blocking pool (tokio's default is 512).
const BLOCKING_THREADS: usize = 4;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let env = |name: &str| std::env::var(name).ok();
    match &cli.command {
        Some(Command::HashPassword { user }) => hash_password(user),
        Some(Command::Queue { action }) => {
            let spool = match resolve_spool(&cli.args, &env)
                .map_err(|e| e.to_string())
                .and_then(|dir| Spool::open(&dir).map_err(|e| format!("spool {}: {e}", dir.display())))
            {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("postmark-relay: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut out = std::io::stdout().lock();
            match postmark_relay::queue::run(&spool, action, &mut out) {
                Ok(0) => ExitCode::SUCCESS,
                Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
                Err(e) => {
                    eprintln!("postmark-relay: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        None => {
            let config = match Config::resolve(&cli.args, &env) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("postmark-relay: {e}");
                    return ExitCode::from(2);
                }
            };
            // The blocking pool parses, checks and writes accepted messages (CPU work, two cores
            // at most on small machines): a few threads keep up, and every extra one costs a
            // stack and, with glibc, often a malloc arena of its own that keeps freed memory.
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .max_blocking_threads(BLOCKING_THREADS)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("postmark-relay: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(serve(config))
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    let relay = match postmark_relay::start(config).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("postmark-relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    match os_signal().await {
        Ok(name) => tracing::info!(signal = name, "shutting down"),
        Err(e) => tracing::error!(error = %e, "cannot listen for signals; shutting down"),
    }
    relay.stop().await;
    ExitCode::SUCCESS
}

/// `hash-password USER`: reads the password from standard input (prompting twice, without
/// echo, on a terminal) and prints the `--auth-users` line.
fn hash_password(user: &str) -> ExitCode {
    if let Err(e) = postmark_relay::auth::check_user_name(user) {
        eprintln!("postmark-relay: {e}");
        return ExitCode::from(2);
    }
    let password = match read_password() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("postmark-relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    match postmark_relay::auth::hash_line(user, password.as_bytes()) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postmark-relay: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| format!("cannot read the password: {e}"))?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| format!("cannot read the password: {e}"))?;
        if first != again {
            return Err("the two passwords differ".into());
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    Ok(password.strip_suffix('\r').unwrap_or(password).to_string())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
