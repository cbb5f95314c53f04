//! `check`, `send`, generated subcommands, errors and exit codes.

use postmark_fake::http::Fault;
use serde_json::{Value, json};

use super::{ACCOUNT_TOKEN, SERVER_TOKEN, fake, postmark, server_env};

const SERVER_JSON: &str = r#"{"ID": 1, "Name": "Production", "DeliveryType": "Live", "Color": "Blue"}"#;

fn both_tokens() -> Vec<(&'static str, &'static str)> {
    vec![("POSTMARK_SERVER_TOKEN", SERVER_TOKEN), ("POSTMARK_ACCOUNT_TOKEN", ACCOUNT_TOKEN)]
}

#[tokio::test]
async fn check_validates_both_tokens_and_says_what_they_can_do() {
    let fake = fake().await;
    fake.respond("GET", "/server", 200, SERVER_JSON);
    fake.respond("GET", "/servers", 200, r#"{"TotalCount": 3, "Servers": [{"ID": 1, "Name": "Production"}]}"#);
    let run = postmark(&fake, &both_tokens(), &["check"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(report["server_token"]["valid"], true);
    assert_eq!(report["server_token"]["server"]["Name"], "Production");
    assert!(report["server_token"]["can"].as_str().is_some_and(|c| c.contains("send email")));
    assert_eq!(report["account_token"]["servers"], 3);
    assert!(report["account_token"]["can"].as_str().is_some_and(|c| c.contains("domains")));
    let paths: Vec<String> = fake.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(paths, ["GET /server", "GET /servers"]);
    assert!(!run.stdout.contains(SERVER_TOKEN) && !run.stdout.contains(ACCOUNT_TOKEN), "tokens never printed");
}

#[tokio::test]
async fn check_with_a_refused_token_exits_4_and_names_error_code_10() {
    let fake = fake().await;
    let run = postmark(&fake, &[("POSTMARK_SERVER_TOKEN", "wrong-token-value")], &["check"]).await;
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(run.json()["server_token"]["ErrorCode"], 10);
    assert_eq!(run.json()["account_token"]["set"], false);
    assert!(run.stderr.contains("ErrorCode 10"), "{}", run.stderr);
    assert!(!format!("{}{}", run.stdout, run.stderr).contains("wrong-token-value"), "token leaked");
}

#[tokio::test]
async fn check_without_any_token_is_a_configuration_error() {
    let fake = fake().await;
    let run = postmark(&fake, &[], &["check"]).await;
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("POSTMARK_SERVER_TOKEN"), "{}", run.stderr);
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn tokens_come_from_files_too() {
    let fake = fake().await;
    fake.respond("GET", "/server", 200, SERVER_JSON);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{SERVER_TOKEN}\n")).expect("write");
    let path = file.to_str().expect("utf-8 path");
    let run = postmark(&fake, &[("POSTMARK_SERVER_TOKEN_FILE", path)], &["check"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    // Both a variable and a file: refused rather than guessing.
    let run =
        postmark(&fake, &[("POSTMARK_SERVER_TOKEN_FILE", path), ("POSTMARK_SERVER_TOKEN", "x")], &["check"]).await;
    assert_eq!(run.code, 3, "{run:?}");
    let missing = dir.path().join("nope");
    let run = postmark(&fake, &[("POSTMARK_SERVER_TOKEN_FILE", missing.to_str().expect("utf-8"))], &["check"]).await;
    assert_eq!(run.code, 3, "{run:?}");
    std::fs::write(&file, "  \n").expect("write");
    let run = postmark(&fake, &[("POSTMARK_SERVER_TOKEN_FILE", path)], &["check"]).await;
    assert_eq!(run.code, 3, "an empty token file: {run:?}");
}

#[tokio::test]
async fn a_generated_get_prints_the_decoded_json() {
    let fake = fake().await;
    let bounce = json!({"RecordType": "Bounce", "ID": 4323372036_i64, "Type": "HardBounce", "Email": "a@example.org",
        "BouncedAt": "2026-03-02T10:15:34.8812001-05:00"});
    fake.respond("GET", "/bounces/4323372036", 200, &bounce.to_string());
    let run = postmark(&fake, &server_env(), &["server", "get-bounce", "--bounceid", "4323372036"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let out = run.json();
    assert_eq!((out["ID"].as_i64(), out["RecordType"].as_str()), (Some(4323372036), Some("Bounce")));
    assert_eq!(out["BouncedAt"], "2026-03-02T15:15:34.881200100Z", "decoded, then printed");
    let req = &fake.requests()[0];
    assert_eq!(req.header("x-postmark-server-token"), Some(SERVER_TOKEN));
    assert_eq!(req.header("x-postmark-account-token"), None);
}

#[tokio::test]
async fn generated_query_and_body_flags_reach_the_wire() {
    let fake = fake().await;
    fake.respond("GET", "/bounces", 200, r#"{"TotalCount": 0, "Bounces": []}"#);
    let args =
        ["server", "list-bounces", "--count", "5", "--offset", "10", "--type", "HardBounce", "--inactive", "true"];
    let run = postmark(&fake, &server_env(), &args).await;
    assert_eq!(run.code, 0, "{run:?}");
    let mut q = fake.requests()[0].query.clone();
    q.sort();
    let expected = [("count", "5"), ("inactive", "true"), ("offset", "10"), ("type", "HardBounce")];
    assert_eq!(q, expected.map(|(k, v)| (k.to_string(), v.to_string())));

    let args = ["server", "send-email", "--from", "a@example.com", "--to", "b@example.org", "--text-body", "Hi"];
    let run = postmark(&fake, &server_env(), &args).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["ErrorCode"], 0);
    assert_eq!(fake.emails(), [json!({"From": "a@example.com", "To": "b@example.org", "TextBody": "Hi"})]);
}

#[tokio::test]
async fn a_whole_body_can_come_from_a_json_file() {
    let fake = fake().await;
    let dir = tempfile::tempdir().expect("tmp");
    let body = dir.path().join("batch.json");
    let batch = json!([{"From": "a@example.com", "To": "b@example.org", "TextBody": "1", "Attachments": null},
                       {"From": "a@example.com", "To": "c@example.org", "TextBody": "2"}]);
    std::fs::write(&body, batch.to_string()).expect("write");
    let path = body.to_str().expect("utf-8");
    let run = postmark(&fake, &server_env(), &["server", "send-email-batch", "--json-body", path]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json().as_array().map(Vec::len), Some(2));
    assert_eq!(fake.emails().len(), 2);
    std::fs::write(&body, "[{").expect("write");
    let run = postmark(&fake, &server_env(), &["server", "send-email-batch", "--json-body", path]).await;
    assert_eq!(run.code, 2, "a malformed body file is bad input: {run:?}");
    assert_eq!(fake.emails().len(), 2, "nothing more was sent");
}

#[tokio::test]
async fn account_operations_use_the_account_token() {
    let fake = fake().await;
    fake.respond("GET", "/servers/7", 200, SERVER_JSON);
    let env = [("POSTMARK_ACCOUNT_TOKEN", ACCOUNT_TOKEN)];
    let run = postmark(&fake, &env, &["account", "get-server-by-id", "--serverid", "7"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(fake.requests()[0].header("x-postmark-account-token"), Some(ACCOUNT_TOKEN));
    let run = postmark(&fake, &server_env(), &["account", "get-server-by-id", "--serverid", "7"]).await;
    assert_eq!(run.code, 3, "a server token does not unlock account commands: {run:?}");
}

#[tokio::test]
async fn api_errors_print_error_code_and_message_and_exit_by_class() {
    let fake = fake().await;
    let cases: [(Fault, i32, &str); 4] = [
        (Fault::api_error(422, 1001, "Bounce not found."), 5, "ErrorCode 1001: Bounce not found."),
        (Fault::api_error(404, 0, "Not found."), 5, "HTTP 404"),
        (Fault::api_error(429, 429, "Rate limit exceeded."), 6, "ErrorCode 429"),
        (Fault::Status { status: 503, body: "<html>down</html>".into() }, 6, "HTTP 503"),
    ];
    for (fault, code, text) in cases {
        fake.push_fault(fault);
        let run = postmark(&fake, &server_env(), &["--retries", "0", "server", "get-bounce", "--bounceid", "1"]).await;
        assert_eq!(run.code, code, "{run:?}");
        assert!(run.stderr.contains(text), "{text:?} not in {}", run.stderr);
        assert!(run.stdout.is_empty());
    }
}

#[tokio::test]
async fn field_errors_are_printed_one_per_line_after_the_request_id() {
    let fake = fake().await;
    fake.push_fault(Fault::field_errors(
        422,
        11,
        "The request is invalid.",
        &[("From", 300, "Invalid 'From' address."), ("Messages[0].To", 300, "Invalid 'To' address.")],
    ));
    let args = ["--retries", "0", "send", "--from", "a@example.com", "--to", "b@example.org", "--text", "x"];
    let run = postmark(&fake, &server_env(), &args).await;
    assert_eq!(run.code, 5, "{run:?}");
    let id = &fake.requests()[0].request_id;
    assert_eq!(
        run.stderr,
        format!(
            "error: Postmark answered HTTP 422 with ErrorCode 11: The request is invalid. (request id {id})\n  \
             From: ErrorCode 300: Invalid 'From' address.\n  \
             Messages[0].To: ErrorCode 300: Invalid 'To' address.\n"
        )
    );
}

#[tokio::test]
async fn retries_are_on_by_default_for_what_is_safe() {
    let fake = fake().await;
    fake.respond("GET", "/server", 200, SERVER_JSON);
    fake.push_fault(Fault::api_error(503, 100, "Maintenance"));
    let run = postmark(&fake, &server_env(), &["server", "get-server"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(fake.requests().len(), 2);
    // A send answered with 500 is not repeated.
    fake.clear();
    fake.push_fault(Fault::api_error(500, 0, "Internal error"));
    let args = ["send", "--from", "a@example.com", "--to", "b@example.org", "--text", "x"];
    let run = postmark(&fake, &server_env(), &args).await;
    assert_eq!(run.code, 6, "{run:?}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn network_usage_and_unknown_command_errors_have_their_codes() {
    let fake = fake().await;
    let url = fake.url();
    drop(fake);
    let dead = postmark_fake::http::FakeApi::start().await; // only for its environment; the URL below is dead
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_postmark"));
    cmd.env("POSTMARK_API_URL", &url).env("POSTMARK_SERVER_TOKEN", "t").args([
        "--retries",
        "0",
        "server",
        "get-server",
    ]);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.expect("join").expect("runs");
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    let run = postmark(&dead, &server_env(), &["server", "get-bounce"]).await;
    assert_eq!(run.code, 2, "missing --bounceid: {run:?}");
    let run = postmark(&dead, &server_env(), &["server", "no-such-operation"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    let run =
        postmark(&dead, &[("POSTMARK_SERVER_TOKEN", "t"), ("POSTMARK_API_URL", "ftp://x")], &["server", "get-server"])
            .await;
    assert_eq!(run.code, 3, "a bad API URL is configuration: {run:?}");
    assert!(dead.requests().is_empty());
}

#[tokio::test]
async fn send_builds_the_message_with_attachments_and_metadata() {
    let fake = fake().await;
    let dir = tempfile::tempdir().expect("tmp");
    let pdf = dir.path().join("invoice.pdf");
    std::fs::write(&pdf, b"%PDF-1.4").expect("write");
    let logo = dir.path().join("logo.png");
    std::fs::write(&logo, [0x89, b'P', b'N', b'G']).expect("write");
    let inline = format!("logo1={}", logo.display());
    let args = [
        "send",
        "--from",
        "Billing <billing@example.com>",
        "--to",
        "jane@example.org",
        "--subject",
        "Invoice",
        "--html",
        "<img src=\"cid:logo1\">",
        "--text",
        "See attached.",
        "--attach",
        pdf.to_str().expect("utf-8"),
        "--inline",
        inline.as_str(),
        "--metadata",
        "order=42",
        "--tag",
        "invoice",
        "--stream",
        "outbound",
        "--track-links",
        "HtmlOnly",
    ];
    let run = postmark(&fake, &server_env(), &args).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.json()["MessageID"].is_string());
    let sent = &fake.emails()[0];
    assert_eq!(sent["Subject"], "Invoice");
    assert_eq!(sent["Metadata"], json!({"order": "42"}));
    assert_eq!(sent["TrackLinks"], "HtmlOnly");
    assert_eq!(
        sent["Attachments"],
        json!([{"Name": "invoice.pdf", "Content": "JVBERi0xLjQ=", "ContentType": "application/pdf"},
               {"Name": "logo.png", "Content": "iVBORw==", "ContentType": "image/png", "ContentID": "cid:logo1"}])
    );
}

#[tokio::test]
async fn send_refuses_forbidden_attachments_and_bad_flags_before_sending() {
    let fake = fake().await;
    let dir = tempfile::tempdir().expect("tmp");
    let exe = dir.path().join("setup.exe");
    std::fs::write(&exe, b"MZ").expect("write");
    let base = ["send", "--from", "a@example.com", "--to", "b@example.org", "--text", "x"];
    let cases: [&[&str]; 4] = [
        &["--attach", exe.to_str().expect("utf-8")],
        &["--attach", "/nonexistent/file.pdf"],
        &["--metadata", "no-equals-sign"],
        &["--inline", "=logo.png"],
    ];
    for extra in cases {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let run = postmark(&fake, &server_env(), &args).await;
        assert_eq!(run.code, 2, "{extra:?}: {run:?}");
    }
    let no_body = postmark(&fake, &server_env(), &["send", "--from", "a@example.com", "--to", "b@example.org"]).await;
    assert_eq!(no_body.code, 2, "a body is required: {no_body:?}");
    assert!(fake.requests().is_empty(), "nothing reached Postmark");
}

#[tokio::test]
async fn send_dry_run_prints_the_request_and_sends_nothing() {
    let fake = fake().await;
    let run =
        postmark(&fake, &[], &["send", "--dry-run", "--from", "a@example.com", "--to", "b@x.org", "--text", "x"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json(), json!({"From": "a@example.com", "To": "b@x.org", "TextBody": "x"}));
    assert!(fake.requests().is_empty());
    let _: Value = run.json();
}
