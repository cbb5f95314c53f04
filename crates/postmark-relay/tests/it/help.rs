//! The help text of the binary and of every subcommand, as a snapshot: help is reviewed like code.

use clap::CommandFactory;
use postmark_relay::cli::Cli;

fn collect(cmd: &mut clap::Command, path: &str, out: &mut String) {
    // The snapshot must not depend on the environment the tests run in.
    *cmd = std::mem::take(cmd).mut_args(|a| a.hide_env_values(true));
    let help = cmd.render_long_help().to_string();
    out.push_str(&format!("==== {path} --help\n{}\n", help.trim_end()));
    let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_owned()).filter(|n| n != "help").collect();
    for name in names {
        if let Some(sub) = cmd.find_subcommand_mut(&name) {
            collect(sub, &format!("{path} {name}"), out);
        }
    }
}

#[test]
fn help_of_every_command() {
    let mut cmd = Cli::command().term_width(100);
    cmd.build();
    let mut out = String::new();
    collect(&mut cmd, "postmark-relay", &mut out);
    // Every subcommand has a description (a doc comment on the wrong item shows as none).
    for sub in Cli::command().get_subcommands() {
        assert!(sub.get_about().is_some(), "{} has no description", sub.get_name());
    }
    insta::assert_snapshot!("help", out);
}
