//! The whole command tree's help, reviewed like code: a changed spec description or flag shows up in this diff.

fn walk(cmd: &mut clap::Command, path: &str, out: &mut String, leaves: &mut Vec<String>) {
    let help = cmd.render_long_help().to_string();
    out.push_str(&format!("$ {path} --help\n{}\n", help.trim_end()));
    let names: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_string()).filter(|n| n != "help").collect();
    if names.is_empty() {
        leaves.push(path.to_string());
    }
    for name in names {
        let sub = cmd.find_subcommand_mut(&name).expect("listed");
        walk(sub, &format!("{path} {name}"), out, leaves);
    }
}

#[test]
fn help_tree() {
    let mut root = postmark_cli::command();
    root.build();
    let (mut out, mut leaves) = (String::new(), Vec::new());
    walk(&mut root, "postmark", &mut out, &mut leaves);
    let count = |prefix: &str| leaves.iter().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("postmark server "), 60, "every Server API operation is a subcommand");
    assert_eq!(count("postmark account "), 26, "every Account API operation is a subcommand");
    assert_eq!(leaves.len(), 86 + 4, "plus check, send, templates pull and templates push");
    assert!(!out.contains("XXX"), "progenitor's unused --json-body-template stays hidden");
    insta::assert_snapshot!("help_tree", out);
}

#[test]
fn the_tree_is_valid() {
    // clap's own consistency checks (duplicate flags, bad defaults, conflicting ids) on every subcommand.
    postmark_cli::command().debug_assert();
}
