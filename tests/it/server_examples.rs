//! The Server API examples (`crates/postmark-server/examples/`), run with `cargo run --example` against the fake.

use std::process::{Command, Output};

use postmark_fake::http::FakeApi;
use serde_json::json;

const TOKEN: &str = "5e1f0c2a-server-secret";

async fn run_example(fake: &FakeApi, example: &str, args: &[&str]) -> (Output, String, String) {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["run", "--quiet", "-p", "postmark-server", "--example", example, "--"])
        .args(args)
        .current_dir(xtask::workspace_root())
        .env("POSTMARK_API_URL", fake.url())
        .env("POSTMARK_SERVER_TOKEN", TOKEN)
        .env_remove("POSTMARK_ACCOUNT_TOKEN");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("cargo runs")).await.expect("thread");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN), "the token leaked");
    (out, stdout, stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn send_with_attachments_sends_files_and_an_inline_logo() {
    let fake = FakeApi::start().await;
    fake.set_server_token(TOKEN);
    let dir = tempfile::tempdir().expect("tmp");
    let csv = dir.path().join("report.csv");
    std::fs::write(&csv, "a,b\n1,2\n").expect("write");
    let (out, stdout, stderr) =
        run_example(&fake, "send_with_attachments", &["a@example.com", "b@example.org", csv.to_str().expect("utf-8")])
            .await;
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("sent: "), "{stdout}");
    let email = &fake.emails()[0];
    assert_eq!(email["Attachments"][0]["ContentID"], "cid:logo");
    assert!(email["HtmlBody"].as_str().is_some_and(|h| h.contains("src=\"cid:logo\"")));
    assert_eq!(
        email["Attachments"][1],
        json!({"Name": "report.csv", "Content": "YSxiCjEsMgo=", "ContentType": "text/csv"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn send_with_attachments_refuses_a_forbidden_file_before_sending() {
    let fake = FakeApi::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let bat = dir.path().join("run.bat");
    std::fs::write(&bat, "echo hi").expect("write");
    let (out, _, stderr) =
        run_example(&fake, "send_with_attachments", &["a@example.com", "b@example.org", bat.to_str().expect("utf-8")])
            .await;
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ErrorCode 411"), "{stderr}");
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn hard_bounces_pages_through_and_stops_at_the_window_with_an_error() {
    let fake = FakeApi::start().await;
    let bounces = (0..10_001).map(|i| json!({"ID": i, "Email": format!("r{i}@example.org")})).collect();
    fake.serve_list("/bounces", "Bounces", bounces, Some(10_000));
    let (out, stdout, stderr) = run_example(&fake, "hard_bounces", &["2026-03-01"]).await;
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(stdout.lines().count(), 10_000);
    assert!(stderr.contains("10001 results match") && stderr.contains("narrow the query"), "{stderr}");
    assert!(fake.requests().iter().all(|r| r.query.contains(&("fromdate".into(), "2026-03-01".into()))));
}
