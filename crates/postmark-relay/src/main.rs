//! The `postmark-relay` binary: parse flags, set up logging, run the relay or a subcommand.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use postmark_relay::cli::{Cli, Command};
use postmark_relay::config::{Config, resolve_logging, resolve_metrics, resolve_spool};
use postmark_relay::shutdown::os_signal;
use postmark_relay::spool::Spool;

/// Threads of the blocking pool (tokio's default is 512).
const BLOCKING_THREADS: usize = 4;

/// Runs the relay itself with one glibc malloc arena unless `MALLOC_ARENA_MAX` is set already:
/// it re-executes the same binary (same process id, same arguments) with the variable set.
///
/// glibc gives each thread that allocates an arena of its own and keeps what is freed in it;
/// messages built on the blocking pool and freed by the delivery worker spread over up to eight
/// arenas per core, and a relay whose upstream lags peaked at 80–105 MiB that way against 20 MiB
/// with one arena, at no measurable cost in CPU. The variable is read once, when glibc starts,
/// so it cannot be set from inside (`mallopt` needs `unsafe`, which the relay forbids); setting
/// it before `exec` is the safe equivalent. Where the exec fails (the binary was replaced), the
/// relay goes on as it is, with a warning.
fn one_malloc_arena(program: &str) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let error = std::process::Command::new(exe)
            .arg0(program)
            .args(std::env::args_os().skip(1))
            .env("MALLOC_ARENA_MAX", "1")
            .exec();
        tracing::warn!(error = %error, "cannot re-execute with MALLOC_ARENA_MAX=1; memory may grow with many malloc arenas");
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = program;
}

fn main() -> ExitCode {
    // Run as `sendmail` (a link at /usr/sbin/sendmail, PHP's sendmail_path) or `mailq`.
    let mut argv = std::env::args();
    let program = argv.next().unwrap_or_default();
    let name = std::path::Path::new(&program).file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    if name == "sendmail" || name == "mailq" {
        let mut args: Vec<String> = argv.collect();
        if name == "mailq" {
            args.insert(0, "-bp".into());
        }
        return sendmail(&args);
    }
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let (log_format, log_addresses) = resolve_logging(&cli.args);
    postmark_relay::logging::init(log_format, log_addresses);
    let env = |name: &str| std::env::var(name).ok();
    match &cli.command {
        Some(Command::HashPassword { user }) => hash_password(user),
        Some(Command::Check { offline }) => {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("postmark-relay: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let mut out = std::io::stdout().lock();
            ExitCode::from(runtime.block_on(postmark_relay::check::run(&cli.args, &env, *offline, &mut out)))
        }
        Some(Command::Healthcheck { url }) => {
            let url = match url.clone().map(Ok).unwrap_or_else(|| {
                resolve_metrics(&cli.args)
                    .map_err(|e| e.to_string())
                    .and_then(|m| postmark_relay::probe::default_url(m.as_deref()).map_err(|e| e.to_string()))
            }) {
                Ok(u) => u,
                Err(e) => {
                    eprintln!("postmark-relay: {e}");
                    return ExitCode::from(2);
                }
            };
            ExitCode::from(postmark_relay::probe::run(&url, &mut std::io::stdout().lock()))
        }
        // The relay's --config and --spool apply; any other of its flags would be ignored, so
        // it is refused.
        Some(Command::Sendmail { args }) => match postmark_relay::sendmail::args::relay_options(&matches) {
            Ok(mut given) => {
                given.extend(args.iter().cloned());
                sendmail(&given)
            }
            Err(e) => {
                eprintln!("sendmail: {e}");
                ExitCode::from(postmark_relay::policy::exit::USAGE)
            }
        },
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
            one_malloc_arena(&program);
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

/// `sendmail [options] [recipients…]`: exit codes from `sysexits.h`, one line on stderr.
fn sendmail(args: &[String]) -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let user = postmark_relay::sendmail::current_user(&env);
    let host = postmark_relay::policy::host::HostFiles::system();
    let mut cx = postmark_relay::sendmail::Context { env: &env, stdin: &mut stdin, stdout: &mut stdout, user, host };
    match postmark_relay::sendmail::run(args, &mut cx) {
        Ok(_) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("sendmail: {}", failure.message);
            ExitCode::from(failure.exit)
        }
    }
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
