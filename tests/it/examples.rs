//! The Account API examples (`crates/postmark-account/examples/`), run as real programs with
//! `cargo run --example` against the fake Postmark, configured only through the environment as a user would.
//!
//! Each test checks what the example printed, its exit status, the requests the fake received, and that the account
//! token appears nowhere in the output.

use std::process::{Command, Output};

use postmark_fake::http::FakeApi;
use serde_json::{Value, json};

use crate::contract::fixture;

/// Looks like a real account token, so a leak would be easy to spot in the output.
const ACCOUNT_TOKEN: &str = "b3c1f6e2-7d4a-4e8b-9f21-account-secret";
/// The first API token of the server `create_server.response.json` describes.
const NEW_SERVER_TOKEN: &str = "a1f3c2d4-7b8e-4f21-9c3d-5e6f7a8b9c0d";

fn account_fixture(name: &str) -> String {
    fixture("account", name).unwrap_or_else(|| panic!("no fixture {name}"))
}

fn account_fixture_json(name: &str) -> Value {
    serde_json::from_str(&account_fixture(name)).expect("fixture is JSON")
}

async fn fake() -> FakeApi {
    let fake = FakeApi::start().await;
    fake.set_account_token(ACCOUNT_TOKEN);
    fake
}

/// `cargo run --quiet -p postmark-account --example <example> -- <args>` with the fake as the API and, when given,
/// the account token in the environment. Runs on a blocking thread so the fake keeps serving meanwhile.
async fn run_example(fake: &FakeApi, token: Option<&str>, example: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["run", "--quiet", "-p", "postmark-account", "--example", example, "--"])
        .args(args)
        .current_dir(xtask::workspace_root())
        .env("POSTMARK_API_URL", fake.url())
        .env_remove("POSTMARK_ACCOUNT_TOKEN")
        .env_remove("POSTMARK_SERVER_TOKEN");
    if let Some(token) = token {
        cmd.env("POSTMARK_ACCOUNT_TOKEN", token);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("cargo runs")).await.expect("the example's thread")
}

/// Stdout and stderr as text, after checking the account token is in neither.
fn texts(out: &Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stdout.contains(ACCOUNT_TOKEN), "the account token leaked to stdout:\n{stdout}");
    assert!(!stderr.contains(ACCOUNT_TOKEN), "the account token leaked to stderr:\n{stderr}");
    (stdout, stderr)
}

/// Method and path of every request the fake received, after checking each carried the account token and never a
/// server token.
fn calls(fake: &FakeApi) -> Vec<String> {
    fake.requests()
        .iter()
        .map(|r| {
            assert_eq!(r.header("x-postmark-account-token"), Some(ACCOUNT_TOKEN), "{} {}", r.method, r.path);
            assert_eq!(r.header("x-postmark-server-token"), None, "{} {}", r.method, r.path);
            format!("{} {}", r.method, r.path)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn onboarding_creates_a_server_and_a_domain_and_prints_what_to_publish() {
    let fake = fake().await;
    fake.respond("POST", "/servers", 200, &account_fixture("create_server.response.json"));
    fake.respond("POST", "/domains", 200, &account_fixture("create_domain.response.json"));
    // First check right after creation: the Return-Path CNAME is already there, the DKIM record is not.
    fake.respond("PUT", "/domains/90344/verifyDkim", 200, &account_fixture("create_domain.response.json"));
    fake.respond(
        "PUT",
        "/domains/90344/verifyReturnPath",
        200,
        &account_fixture("verify_domain_return_path.response.json"),
    );

    let out = run_example(&fake, Some(ACCOUNT_TOKEN), "onboarding", &["Billing Production", "mail.example.org"]).await;
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);

    // The new server's token is printed on purpose; the account token is not (checked by `texts`).
    assert!(stdout.contains(&format!("Server API token: {NEW_SERVER_TOKEN}")), "{stdout}");
    // DKIM: the pending key of the new domain, as a TXT record.
    assert!(stdout.contains("TXT    20260302101530pm._domainkey.mail.example.org"), "{stdout}");
    assert!(stdout.contains("k=rsa;p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDa91Rk"), "{stdout}");
    // Return-Path: a CNAME to Postmark.
    assert!(stdout.contains("CNAME  pm-bounces.mail.example.org"), "{stdout}");
    assert!(stdout.contains("pm.mtasv.net"), "{stdout}");
    assert!(stdout.contains("DKIM:        not verified yet"), "{stdout}");
    assert!(stdout.contains("Return-Path: verified"), "{stdout}");
    assert!(stdout.contains("onboarding verify 90344"), "{stdout}");

    assert_eq!(
        calls(&fake),
        ["POST /servers", "POST /domains", "PUT /domains/90344/verifyDkim", "PUT /domains/90344/verifyReturnPath"]
    );
    let requests = fake.requests();
    assert_eq!(requests[0].json(), Some(json!({"Name": "Billing Production"})));
    assert_eq!(
        requests[1].json(),
        Some(json!({"Name": "mail.example.org", "ReturnPathDomain": "pm-bounces.mail.example.org"}))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn onboarding_verify_succeeds_once_both_records_are_verified() {
    let fake = fake().await;
    fake.respond("PUT", "/domains/90344/verifyDkim", 200, &account_fixture("verify_domain_dkim.response.json"));
    fake.respond(
        "PUT",
        "/domains/90344/verifyReturnPath",
        200,
        &account_fixture("verify_domain_return_path.response.json"),
    );

    let out = run_example(&fake, Some(ACCOUNT_TOKEN), "onboarding", &["verify", "90344"]).await;
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    assert!(stdout.contains("DKIM:        verified"), "{stdout}");
    assert!(stdout.contains("Return-Path: verified"), "{stdout}");
    assert_eq!(calls(&fake), ["PUT /domains/90344/verifyDkim", "PUT /domains/90344/verifyReturnPath"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn onboarding_reports_postmark_errors_without_the_token() {
    let fake = fake().await;
    let refusal = json!({"ErrorCode": 603, "Message": "This server name already exists."});
    fake.respond("POST", "/servers", 422, &refusal.to_string());

    let out = run_example(&fake, Some(ACCOUNT_TOKEN), "onboarding", &["Billing Production", "mail.example.org"]).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("This server name already exists."), "{stderr}");
    assert_eq!(calls(&fake), ["POST /servers"], "nothing after the refusal");
}

#[tokio::test(flavor = "multi_thread")]
async fn examples_refuse_bad_input_with_usage() {
    let fake = fake().await;
    for (example, args) in [
        ("onboarding", &[][..]),
        ("onboarding", &["Billing", "not a domain"]),
        ("onboarding", &["verify", "ninety"]),
        ("rotate_dkim", &[]),
        ("rotate_dkim", &["example.net"]),
        ("rotate_dkim", &["90311", "--attempts", "0"]),
    ] {
        let out = run_example(&fake, Some(ACCOUNT_TOKEN), example, args).await;
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{example} {args:?}: {stderr}");
        assert!(stderr.contains(&format!("usage: {example}")), "{example} {args:?}: {stderr}");
    }
    // A missing token is a usage problem too, named by its variable.
    for (example, args) in [("onboarding", &["verify", "90344"][..]), ("rotate_dkim", &["90311"])] {
        let out = run_example(&fake, None, example, args).await;
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{example}: {stderr}");
        assert!(stderr.contains("POSTMARK_ACCOUNT_TOKEN"), "{example}: {stderr}");
    }
    assert!(fake.requests().is_empty(), "bad input never reaches Postmark");
}

/// `get_domain.response.json` after a completed rotation: the pending key of `rotate_domain_dkim.response.json` is
/// now the active one and the former key is revoked.
fn rotated_domain() -> String {
    let rotation = account_fixture_json("rotate_domain_dkim.response.json");
    let mut domain = account_fixture_json("get_domain.response.json");
    domain["DKIMRevokedHost"] = domain["DKIMHost"].clone();
    domain["DKIMRevokedTextValue"] = domain["DKIMTextValue"].clone();
    domain["DKIMHost"] = rotation["DKIMPendingHost"].clone();
    domain["DKIMTextValue"] = rotation["DKIMPendingTextValue"].clone();
    domain["DKIMPendingHost"] = json!("");
    domain["DKIMPendingTextValue"] = json!("");
    domain["SafeToRemoveRevokedKeyFromDNS"] = json!(false);
    domain["DKIMUpdateStatus"] = json!("Verified");
    domain.to_string()
}

/// `get_domain.response.json` while a rotation waits for DNS.
fn rotating_domain() -> String {
    let rotation = account_fixture_json("rotate_domain_dkim.response.json");
    let mut domain = account_fixture_json("get_domain.response.json");
    for key in ["DKIMPendingHost", "DKIMPendingTextValue", "DKIMUpdateStatus"] {
        domain[key] = rotation[key].clone();
    }
    domain.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_dkim_prints_the_pending_record_and_verifies_it() {
    let fake = fake().await;
    fake.respond("POST", "/domains/90311/rotatedkim", 200, &account_fixture("rotate_domain_dkim.response.json"));
    fake.respond("PUT", "/domains/90311/verifyDkim", 200, &rotated_domain());

    let out = run_example(&fake, Some(ACCOUNT_TOKEN), "rotate_dkim", &["90311", "--interval", "0"]).await;
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    assert!(stdout.contains("status: Pending"), "{stdout}");
    assert!(stdout.contains("TXT  20260302101530pm._domainkey.example.net"), "{stdout}");
    assert!(stdout.contains("k=rsa;p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCm4Tq8"), "{stdout}");
    assert!(stdout.contains("Attempt 1/10: verified."), "{stdout}");
    assert!(stdout.contains("Active DKIM key: 20260302101530pm._domainkey.example.net"), "{stdout}");
    assert!(stdout.contains("Keep the old key's record 20250114093012pm._domainkey.example.net"), "{stdout}");
    assert_eq!(calls(&fake), ["POST /domains/90311/rotatedkim", "PUT /domains/90311/verifyDkim"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_dkim_polls_and_gives_up_while_dns_is_missing() {
    let fake = fake().await;
    fake.respond("PUT", "/domains/90311/verifyDkim", 200, &rotating_domain());

    let args = ["90311", "--verify-only", "--attempts", "3", "--interval", "0"];
    let out = run_example(&fake, Some(ACCOUNT_TOKEN), "rotate_dkim", &args).await;
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("Attempt 3/3: DKIM status Pending"), "{stdout}");
    assert!(stdout.contains("TXT  20260302101530pm._domainkey.example.net"), "{stdout}");
    assert!(stderr.contains("still not verified after 3 attempt(s)"), "{stderr}");
    assert_eq!(calls(&fake), ["PUT /domains/90311/verifyDkim"; 3], "--verify-only requests no new key");
}
