//! The command tree and the dispatcher.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgMatches, Command};
use postmark_core::{ApiErrorBody, Error};

use crate::exit::{ExitClass, classify};
use crate::generated::{account, server};
use crate::output::Output;
use crate::{check, config, send, templates};

const AFTER_HELP: &str = "\
Tokens come from the environment, never from flags:
  POSTMARK_SERVER_TOKEN   (or POSTMARK_SERVER_TOKEN_FILE: a file holding it)  for `server`, `send`, `templates`
  POSTMARK_ACCOUNT_TOKEN  (or POSTMARK_ACCOUNT_TOKEN_FILE)                     for `account`
  POSTMARK_API_URL        another API address (a proxy, a local fake); default https://api.postmarkapp.com

Exit codes: 0 done, 1 other failure, 2 usage or bad input, 3 configuration (token), 4 token refused (401),
5 request refused by Postmark (4xx, with its ErrorCode), 6 temporary (429, 5xx; try later), 7 network.";

/// Every generated subcommand of one API, named after its operation in kebab case (`list-bounces`).
fn api_command(name: &'static str, about: &'static str, ops: impl Iterator<Item = (&'static str, Command)>) -> Command {
    ops.fold(Command::new(name).about(about).subcommand_required(true), |parent, (id, cmd)| {
        let mut cmd = cmd.name(id.replace('_', "-"));
        // progenitor puts summary and description in one `about`; keep the summary for the parent's one-line listing
        // and the whole text for the subcommand's own help.
        if let Some(full) = cmd.get_about().map(|a| a.to_string())
            && let Some((summary, _)) = full.split_once("\n\n")
        {
            cmd = cmd.about(summary.trim().to_string()).long_about(full.trim_end().to_string());
        }
        // progenitor declares this flag (help "XXX") but generates nothing that reads it.
        if cmd.get_arguments().any(|a| a.get_id() == "json-body-template") {
            cmd = cmd.mut_arg("json-body-template", |a| a.hide(true));
        }
        parent.subcommand(cmd)
    })
}

/// The whole `postmark` command tree.
pub fn command() -> Command {
    let server_ops = server::CliCommand::iter().map(|c| (c.operation_id(), server::Cli::<Output>::get_command(c)));
    let account_ops = account::CliCommand::iter().map(|c| (c.operation_id(), account::Cli::<Output>::get_command(c)));
    Command::new("postmark")
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "Postmark from the command line: every Server and Account API operation, plus check, send and templates.",
        )
        .subcommand_required(true)
        .arg_required_else_help(true)
        .after_help(AFTER_HELP)
        .arg(
            Arg::new("pretty")
                .long("pretty")
                .global(true)
                .action(ArgAction::SetTrue)
                .help("Indent JSON output (the default on a terminal)"),
        )
        .arg(
            Arg::new("retries")
                .long("retries")
                .global(true)
                .value_name("N")
                .default_value("2")
                .value_parser(clap::value_parser!(u32).range(0..=10))
                .help("Retries for failures that are safe to repeat (never a timed-out or 5xx send)"),
        )
        .subcommand(check::command())
        .subcommand(send::command())
        .subcommand(templates::command())
        .subcommand(api_command("server", "Server API operations (POSTMARK_SERVER_TOKEN)", server_ops))
        .subcommand(api_command("account", "Account API operations (POSTMARK_ACCOUNT_TOKEN)", account_ops))
}

/// Parses `args` (program name first), runs the command, prints errors, and returns the exit code.
pub fn run(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    let matches = match command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(ExitClass::Other as u8);
        }
    };
    match runtime.block_on(dispatch(&matches)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let (message, class) = describe(e);
            eprintln!("error: {message}");
            ExitCode::from(class as u8)
        }
    }
}

/// The message and class of a failure: Postmark's errors (typed, with ErrorCode and message) by their class, local
/// file and JSON problems as usage errors.
fn describe(e: anyhow::Error) -> (String, ExitClass) {
    let e = match e.downcast::<progenitor_client::Error<ApiErrorBody>>() {
        Ok(generated) => anyhow::Error::new(Error::from(generated)),
        Err(e) => e,
    };
    if let Some(pm) = e.downcast_ref::<Error>() {
        // The alternate form: Postmark's request id on the first line, then each field error on its own line.
        return (format!("{pm:#}"), classify(pm));
    }
    let input = e.chain().any(|c| c.is::<std::io::Error>() || c.is::<serde_json::Error>());
    (format!("{e:#}"), if input { ExitClass::Usage } else { ExitClass::Other })
}

async fn dispatch(m: &ArgMatches) -> anyhow::Result<()> {
    let output = Output::new(m.get_flag("pretty"));
    let retries = m.get_one::<u32>("retries").copied().unwrap_or(0);
    match m.subcommand() {
        Some(("check", _)) => check::run(output, retries).await,
        Some(("send", sub)) => send::run(sub, output, retries).await,
        Some(("templates", sub)) => templates::run(sub, output, retries).await,
        Some(("server", sub)) => {
            let (name, args) = sub.subcommand().expect("clap requires a subcommand");
            let op = server::CliCommand::iter()
                .find(|c| c.operation_id().replace('_', "-") == name)
                .expect("every subcommand comes from CliCommand::iter");
            let token = config::require_token(config::SERVER_TOKEN_ENV)?;
            let client = config::builder::<postmark_server::ServerApi>(token, retries).build()?;
            server::Cli::new((*client).clone(), output).execute(op, args).await
        }
        Some(("account", sub)) => {
            let (name, args) = sub.subcommand().expect("clap requires a subcommand");
            let op = account::CliCommand::iter()
                .find(|c| c.operation_id().replace('_', "-") == name)
                .expect("every subcommand comes from CliCommand::iter");
            let token = config::require_token(config::ACCOUNT_TOKEN_ENV)?;
            let client = config::builder::<postmark_account::AccountApi>(token, retries).build()?;
            account::Cli::new((*client).clone(), output).execute(op, args).await
        }
        _ => unreachable!("clap requires a subcommand"),
    }
}
