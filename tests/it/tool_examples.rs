//! The examples of the CLI and the mocks crate, run the way their doc comments tell a reader to run them.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

fn cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(args).current_dir(xtask::workspace_root());
    cmd
}

/// Kills the example on drop, so a failed assertion leaves no server behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn mocked_bounces_reactivates_only_what_postmark_allows() {
    let out = cargo(&["run", "--quiet", "-p", "postmark-httpmock", "--example", "mocked_bounces"])
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), "reactivated: jane@example.org");
}

#[test]
fn fake_postmark_serves_check_and_templates_pull() {
    // Build first so the example's start-up is quick and its output is only the environment it prints.
    let built = cargo(&["build", "--quiet", "-p", "postmark-cli", "--bin", "postmark", "--example", "fake_postmark"])
        .status()
        .expect("cargo runs");
    assert!(built.success());
    let mut child = cargo(&["run", "--quiet", "-p", "postmark-cli", "--example", "fake_postmark", "--", "120"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("example starts");
    let stdout = child.stdout.take().expect("piped");
    let running = Running(child);
    let env: Vec<(String, String)> = BufReader::new(stdout)
        .lines()
        .take(3)
        .map(|l| {
            let line = l.expect("line");
            let (k, v) = line.split_once('=').expect("NAME=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["POSTMARK_API_URL", "POSTMARK_SERVER_TOKEN", "POSTMARK_ACCOUNT_TOKEN"]);

    // `cargo run` runs in the workspace root, so the templates folder is given as an absolute path.
    let postmark = |args: &[&str]| {
        cargo(&["run", "--quiet", "-p", "postmark-cli", "--bin", "postmark", "--"])
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env_remove("POSTMARK_SERVER_TOKEN_FILE")
            .env_remove("POSTMARK_ACCOUNT_TOKEN_FILE")
            .output()
            .expect("postmark runs")
    };
    let dir = tempfile::tempdir().expect("tempdir");

    let check = postmark(&["check"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let report: Value = serde_json::from_slice(&check.stdout).expect("JSON");
    assert_eq!(report["server_token"]["valid"], true);
    assert_eq!(report["server_token"]["server"]["Name"], "Production");
    assert_eq!(report["account_token"]["valid"], true);
    assert_eq!(report["account_token"]["servers"], 1);

    let target = dir.path().join("templates");
    let pull = postmark(&["templates", "pull", target.to_str().expect("UTF-8 path")]);
    assert!(pull.status.success(), "{}", String::from_utf8_lossy(&pull.stderr));
    let mut files = walk(&target);
    files.sort();
    assert_eq!(
        files,
        [
            "base/content.html",
            "base/content.txt",
            "base/meta.json",
            "id-1003/content.txt",
            "id-1003/meta.json",
            "welcome/content.html",
            "welcome/content.txt",
            "welcome/meta.json",
        ]
    );
    drop(running);
}

fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).expect("folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            let folder = path.file_name().expect("name").to_string_lossy().into_owned();
            out.extend(walk(&path).into_iter().map(|p| format!("{folder}/{p}")));
        } else {
            out.push(path.file_name().expect("name").to_string_lossy().into_owned());
        }
    }
    out
}
