//! The `postmark-relay` binary: parse flags, set up logging, run the relay or a queue command.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use postmark_relay::config::{Cli, Command, Config, resolve_spool};
use postmark_relay::shutdown::os_signal;
use postmark_relay::spool::Spool;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let env = |name: &str| std::env::var(name).ok();
    match &cli.command {
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
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
