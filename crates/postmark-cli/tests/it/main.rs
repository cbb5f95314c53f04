//! The `postmark` binary against the fake Postmark on 127.0.0.1, and the whole `--help` tree as a snapshot.

mod commands;
mod help;
mod templates;

use std::path::Path;
use std::process::Command;

use postmark_fake::http::FakeApi;

pub const SERVER_TOKEN: &str = "srv-token-cli-3f9a";
pub const ACCOUNT_TOKEN: &str = "acct-token-cli-71b0";

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// A fake that requires both tokens.
pub async fn fake() -> FakeApi {
    let fake = FakeApi::start().await;
    fake.set_server_token(SERVER_TOKEN);
    fake.set_account_token(ACCOUNT_TOKEN);
    fake
}

/// Runs `postmark args…` against `fake` with exactly the given environment variables (plus `POSTMARK_API_URL`); no
/// `POSTMARK_*` variable of the test's own environment leaks in.
pub async fn postmark(fake: &FakeApi, env: &[(&str, &str)], args: &[&str]) -> Run {
    postmark_in(fake, env, args, None).await
}

pub async fn postmark_in(fake: &FakeApi, env: &[(&str, &str)], args: &[&str], dir: Option<&Path>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_postmark"));
    for (k, _) in std::env::vars() {
        if k.starts_with("POSTMARK_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("POSTMARK_API_URL", fake.url()).envs(env.iter().copied()).args(args);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.expect("join").expect("binary runs");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8"),
        stderr: String::from_utf8(out.stderr).expect("utf-8"),
    }
}

pub fn server_env() -> Vec<(&'static str, &'static str)> {
    vec![("POSTMARK_SERVER_TOKEN", SERVER_TOKEN)]
}
