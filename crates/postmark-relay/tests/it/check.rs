//! `postmark-relay check` (issue 14 §4), the binary against the fake Postmark: the server token
//! (`GET /server`), every SMTP login on the host it is used on (EHLO, STARTTLS, AUTH, QUIT, and
//! nothing sent), the account token (`GET /servers`); working and failing credentials, Postmark's
//! ErrorCode in the output, the exit status, `--offline`, and no secret ever printed.

use std::path::Path;
use std::process::{Command, Stdio};

use postmark_fake::http::FakeApi;
use postmark_fake::smtp::FakeSmtp;

use crate::binary::BIN;

const SERVER_TOKEN: &str = "check-server-token-7f3a";
const ACCOUNT_TOKEN: &str = "check-account-token-91c2";
const SERVER_JSON: &str = r#"{"ID":4242,"Name":"Relay test","ApiTokens":["x"],"Color":"blue"}"#;
const SERVERS_JSON: &str = r#"{"TotalCount":3,"Servers":[{"ID":4242,"Name":"Relay test"}]}"#;

/// Runs the binary with a clean environment plus `env`; returns the exit status and stdout.
async fn check(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(BIN);
        cmd.args(&args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.stdin(Stdio::null()).output().expect("run postmark-relay check");
        let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
        (out.status.code().expect("an exit status"), stdout)
    })
    .await
    .unwrap()
}

/// A fake API that knows the two tokens and answers `/server` and `/servers`.
async fn fake_api() -> FakeApi {
    let api = FakeApi::start().await;
    api.set_server_token(SERVER_TOKEN);
    api.set_account_token(ACCOUNT_TOKEN);
    api.respond("GET", "/server", 200, SERVER_JSON);
    api.respond("GET", "/servers", 200, SERVERS_JSON);
    api
}

/// A config file: SMTP to `default`, and the `news` stream (a broadcast stream) to `broadcast`
/// with its own token; a `billing` route with its own server token and SMTP token, whose mail
/// goes to the `news` stream; the CA of both fakes (they share none, so both PEMs go in one file).
fn config_file(dir: &Path, default: &FakeSmtp, broadcast: &FakeSmtp, news_secret: &str, route_token: &str) -> String {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, format!("{}\n{}", default.ca_pem(), broadcast.ca_pem())).unwrap();
    let path = dir.join("relay.toml");
    std::fs::write(
        &path,
        format!(
            "spool = \"{}\"\nsmtp_url = \"{}\"\nsmtp_ca = \"{}\"\n\n[streams.news]\nkind = \"broadcast\"\n\
             smtp_url = \"{}\"\naccess_key = \"news-access\"\nsecret_key = \"{news_secret}\"\n\n\
             [[routes]]\nname = \"billing\"\nsenders = [\"billing@example.com\"]\nmessage_stream = \"news\"\n\
             server_token = \"{route_token}\"\nsmtp_access_key = \"route-access\"\nsmtp_secret_key = \"route-secret\"\n",
            dir.join("spool").display(),
            default.url(),
            ca.display(),
            broadcast.url(),
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{out}"))
}

/// The default SMTP host (the default token) and the broadcast host (the stream's and the route's
/// tokens).
async fn smtp_fakes() -> (FakeSmtp, FakeSmtp) {
    let default = FakeSmtp::builder().credentials("smtp-access", "smtp-secret").start().await.unwrap();
    let broadcast = FakeSmtp::builder()
        .credentials("news-access", "news-secret")
        .credentials("route-access", "route-secret")
        .start()
        .await
        .unwrap();
    (default, broadcast)
}

#[tokio::test]
async fn every_working_credential_is_reported_ok_and_nothing_is_sent() {
    let api = fake_api().await;
    let (default, broadcast) = smtp_fakes().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &default, &broadcast, "news-secret", SERVER_TOKEN);
    let url = api.url();
    let (status, out) = check(
        &["--config", &config, "check"],
        &[
            ("POSTMARK_API_URL", &url),
            ("POSTMARK_SERVER_TOKEN", SERVER_TOKEN),
            ("POSTMARK_SMTP_ACCESS_KEY", "smtp-access"),
            ("POSTMARK_SMTP_SECRET_KEY", "smtp-secret"),
            ("POSTMARK_ACCOUNT_TOKEN", ACCOUNT_TOKEN),
        ],
    )
    .await;
    println!("{out}");
    assert_eq!(status, 0, "{out}");
    assert!(line(&out, "ok    configuration: valid, from ").contains("sending via the HTTP API"), "{out}");
    assert_eq!(line(&out, "ok    access:"), "ok    access: no inbound TLS, no client AUTH");
    assert!(line(&out, "ok    spool: ").ends_with("does not exist yet; the relay creates it at start"), "{out}");
    assert_eq!(
        line(&out, "ok    server token:"),
        format!("ok    server token: GET {url}/server: server \"Relay test\" (ID 4242)")
    );
    let default_host = default.addr().to_string();
    let news_host = broadcast.addr().to_string();
    assert_eq!(
        line(&out, &format!("ok    SMTP token on {default_host}:")),
        format!("ok    SMTP token on {default_host}: EHLO, STARTTLS, AUTH accepted; QUIT without sending")
    );
    assert_eq!(
        line(&out, "ok    SMTP token of stream \"news\""),
        format!(
            "ok    SMTP token of stream \"news\" on {news_host}: EHLO, STARTTLS, AUTH accepted; QUIT without sending"
        )
    );
    assert_eq!(
        line(&out, "ok    server token of route \"billing\":"),
        format!("ok    server token of route \"billing\": GET {url}/server: server \"Relay test\" (ID 4242)")
    );
    assert_eq!(
        line(&out, "ok    SMTP token of route \"billing\""),
        format!(
            "ok    SMTP token of route \"billing\" on {news_host}: EHLO, STARTTLS, AUTH accepted; QUIT without sending"
        )
    );
    assert_eq!(
        line(&out, "ok    account token:"),
        format!("ok    account token: GET {url}/servers?count=1&offset=0: the account has 3 server(s)")
    );
    assert!(!out.contains("FAIL"), "{out}");

    // What the fakes saw: one GET each with the right header, one connection per SMTP host, no mail.
    let requests = api.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    for server in &requests[..2] {
        assert_eq!((server.method.as_str(), server.path.as_str()), ("GET", "/server"));
        assert_eq!(server.header("x-postmark-server-token"), Some(SERVER_TOKEN));
    }
    assert_eq!((requests[2].method.as_str(), requests[2].path.as_str()), ("GET", "/servers"));
    assert_eq!(requests[2].header("x-postmark-account-token"), Some(ACCOUNT_TOKEN));
    assert_eq!(requests[2].query, [("count".to_string(), "1".to_string()), ("offset".to_string(), "0".to_string())]);
    assert!(api.emails().is_empty());
    assert_eq!((default.connections(), broadcast.connections()), (1, 2), "one login per host and token");
    assert!(default.messages().is_empty() && broadcast.messages().is_empty(), "check never sends");
    assert!(!dir.path().join("spool").exists(), "check creates no spool");
    for secret in [SERVER_TOKEN, ACCOUNT_TOKEN, "smtp-secret", "news-secret"] {
        assert!(!out.contains(secret), "{secret} printed:\n{out}");
    }
}

#[tokio::test]
async fn failing_credentials_are_named_with_postmarks_error_and_exit_1() {
    let api = fake_api().await;
    let (default, broadcast) = smtp_fakes().await;
    let dir = tempfile::tempdir().unwrap();
    // The stream's secret is wrong; the default SMTP token works.
    let config = config_file(dir.path(), &default, &broadcast, "stale-news-secret", "revoked-route-token");
    let url = api.url();
    let (status, out) = check(
        &["--config", &config, "check"],
        &[
            ("POSTMARK_API_URL", &url),
            ("POSTMARK_SERVER_TOKEN", SERVER_TOKEN),
            ("POSTMARK_SMTP_ACCESS_KEY", "smtp-access"),
            ("POSTMARK_SMTP_SECRET_KEY", "smtp-secret"),
            ("POSTMARK_ACCOUNT_TOKEN", "revoked-account-token"),
        ],
    )
    .await;
    println!("{out}");
    assert_eq!(status, 1, "{out}");
    assert!(line(&out, "ok    server token:").contains("server \"Relay test\""), "{out}");
    assert_eq!(
        line(&out, "FAIL  server token of route \"billing\":"),
        format!(
            "FAIL  server token of route \"billing\": GET {url}/server: HTTP 401, ErrorCode 10: Request does not contain a valid token."
        )
    );
    let default_host = default.addr().to_string();
    let news_host = broadcast.addr().to_string();
    assert!(line(&out, &format!("ok    SMTP token on {default_host}:")).contains("AUTH accepted"), "{out}");
    assert_eq!(
        line(&out, "FAIL  SMTP token of stream \"news\""),
        format!(
            "FAIL  SMTP token of stream \"news\" on {news_host}: AUTH: refused: 535 5.7.8 Authentication credentials invalid"
        )
    );
    assert_eq!(
        line(&out, "FAIL  account token:"),
        format!(
            "FAIL  account token: GET {url}/servers?count=1&offset=0: HTTP 401, ErrorCode 10: Request does not contain a valid token."
        )
    );
    assert!(default.messages().is_empty() && broadcast.messages().is_empty(), "check never sends");
    for secret in ["revoked-route-token", "revoked-account-token", "stale-news-secret", "smtp-secret", SERVER_TOKEN] {
        assert!(!out.contains(secret), "{secret} printed:\n{out}");
    }
}

#[tokio::test]
async fn an_unreachable_upstream_and_a_server_token_over_smtp_fail_clearly() {
    // Nothing listens on either port.
    let closed = |_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (api_addr, smtp_addr) = (closed(0), closed(1));
    let dir = tempfile::tempdir().unwrap();
    let (status, out) = check(
        &["--spool", dir.path().to_str().unwrap(), "--via", "smtp", "check"],
        &[
            ("POSTMARK_API_URL", &format!("http://{api_addr}")),
            ("POSTMARK_SMTP_URL", &format!("smtp://{smtp_addr}")),
            ("POSTMARK_SERVER_TOKEN", SERVER_TOKEN),
        ],
    )
    .await;
    println!("{out}");
    assert_eq!(status, 1, "{out}");
    assert!(line(&out, "ok    configuration:").contains(&format!("sending via SMTP to {smtp_addr}")), "{out}");
    assert!(line(&out, "ok    spool:").ends_with("exists"), "{out}");
    assert!(line(&out, "FAIL  server token:").contains("no answer"), "{out}");
    // Sending via SMTP with only a server token: it is the SMTP login, and it is tried there.
    let smtp = line(&out, &format!("FAIL  server token as SMTP login on {smtp_addr}:"));
    assert!(smtp.contains("connect and EHLO, STARTTLS"), "{out}");
    assert_eq!(line(&out, "skip  account token:"), "skip  account token: not configured (POSTMARK_ACCOUNT_TOKEN)");
    assert!(!out.contains(SERVER_TOKEN), "{out}");
}

#[tokio::test]
async fn offline_validates_and_contacts_nobody() {
    let api = fake_api().await;
    let (default, broadcast) = smtp_fakes().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &default, &broadcast, "news-secret", SERVER_TOKEN);
    let (status, out) = check(
        &["--config", &config, "check", "--offline"],
        &[
            ("POSTMARK_API_URL", &api.url()),
            ("POSTMARK_SERVER_TOKEN", SERVER_TOKEN),
            ("POSTMARK_SMTP_ACCESS_KEY", "smtp-access"),
            ("POSTMARK_SMTP_SECRET_KEY", "smtp-secret"),
            ("POSTMARK_ACCOUNT_TOKEN", ACCOUNT_TOKEN),
        ],
    )
    .await;
    println!("{out}");
    assert_eq!(status, 0, "{out}");
    assert_eq!(line(&out, "skip  server token:"), "skip  server token: configured; not tried (--offline)");
    assert!(line(&out, "skip  SMTP token of stream \"news\"").ends_with("not tried (--offline)"), "{out}");
    assert!(line(&out, "skip  server token of route \"billing\"").ends_with("not tried (--offline)"), "{out}");
    assert!(line(&out, "skip  SMTP token of route \"billing\"").ends_with("not tried (--offline)"), "{out}");
    assert_eq!(line(&out, "skip  account token:"), "skip  account token: configured; not tried (--offline)");
    assert!(api.requests().is_empty());
    assert_eq!((default.connections(), broadcast.connections()), (0, 0));
}

#[tokio::test]
async fn an_invalid_configuration_exits_2_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().to_str().unwrap();
    // An open relay: listening beyond loopback with no allow-list and no AUTH.
    let (status, out) = check(&["--spool", spool, "--listen", "0.0.0.0:2525", "check", "--offline"], &[]).await;
    assert_eq!(status, 2, "{out}");
    assert!(line(&out, "FAIL  access: ").contains("0.0.0.0"), "{out}");
    // A value the configuration cannot take.
    let (status, out) = check(&["--spool", spool, "--api-url", "ftp://example.com", "check"], &[]).await;
    assert_eq!(status, 2, "{out}");
    assert!(line(&out, "FAIL  configuration: ").contains("--api-url"), "{out}");
    // Only half an SMTP token.
    let (status, out) = check(&["--spool", spool, "check"], &[("POSTMARK_SMTP_ACCESS_KEY", "a")]).await;
    assert_eq!(status, 2, "{out}");
    assert!(line(&out, "FAIL  configuration: ").contains("POSTMARK_SMTP_SECRET_KEY"), "{out}");
    // An SMTP CA file that holds no certificate.
    let ca = dir.path().join("empty.pem");
    std::fs::write(&ca, b"").unwrap();
    let (status, out) = check(
        &["--spool", spool, "--smtp-ca", ca.to_str().unwrap(), "check", "--offline"],
        &[("POSTMARK_SMTP_ACCESS_KEY", "a"), ("POSTMARK_SMTP_SECRET_KEY", "s")],
    )
    .await;
    assert_eq!(status, 2, "{out}");
    assert!(line(&out, "FAIL  SMTP TLS: ").contains("no certificate"), "{out}");
    // A spool path that is a file.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let (status, out) = check(&["--spool", file.to_str().unwrap(), "check", "--offline"], &[]).await;
    assert_eq!(status, 2, "{out}");
    assert!(line(&out, "FAIL  spool: ").ends_with("is not a directory"), "{out}");
}
