//! Secrets: rotation without a restart (SIGHUP, or a changed secret or config file), a 401 that
//! pauses delivery instead of bouncing mail, and no token in any log line, even at trace level
//! with the HTTP stack's own logs.

use std::path::Path;
use std::time::Duration;

use postmark_fake::http::FakeApi;
use postmark_fake::smtp::FakeSmtp;

use lettre::AsyncTransport;
use lettre::transport::smtp::authentication::Mechanism;
use postmark_fake::tls::TestPki;

use crate::access::{Proc, envelope, tls_client, users_file, write};
use crate::support::{TestRelay, message, send, wait_for};

const TOKEN_A: &str = "tok-AAAA-current-0001";
const TOKEN_B: &str = "tok-BBBB-revoked-0002";
const TOKEN_C: &str = "tok-CCCC-mistyped-0003";

fn write_secret(path: &Path, value: &str) {
    std::fs::write(path, value).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

#[tokio::test]
async fn a_rotated_token_file_resumes_delivery_and_no_log_line_holds_a_token() {
    let fake = FakeApi::start().await;
    fake.set_server_token(TOKEN_A);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("server-token");
    write_secret(&token_file, &format!("{TOKEN_B}\n"));
    let spool = dir.path().join("spool");
    let url = fake.url();
    // A long retry cap: the pause after a 401 lasts 16 s, so only the reload can end it in time.
    let p = Proc::spawn(
        &["--listen", "127.0.0.1:0", "--spool", spool.to_str().unwrap(), "--api-url", &url, "--max-retry-delay", "1h"],
        &[("POSTMARK_SERVER_TOKEN_FILE", token_file.to_str().unwrap())],
        "trace",
    );
    let addr = p.addr().await;

    // Token B is refused: delivery pauses, the mail stays queued, nothing is bounced.
    send(addr, "a@example.com", &["r@example.com"], &message("rot-1")).await.expect("250");
    wait_for("the pause", Duration::from_secs(20), || (count(&p.log(), "DELIVERY PAUSED") == 1).then_some(())).await;
    send(addr, "a@example.com", &["r@example.com"], &message("rot-2")).await.expect("250 while paused");
    assert!(fake.emails().is_empty());
    let queue = || crate::support::files(&spool.join("queue")).iter().filter(|f| f.ends_with(".msg")).count();
    // Each has its file: the first since its failed attempt, the second (in the journal only at
    // first, delivery being paused) from the checkpoint a second or so later.
    wait_for("both messages in files", Duration::from_secs(10), || (queue() == 2).then_some(())).await;

    // Rotated to another wrong token (SIGHUP): tried again at once, 401 again, paused again.
    write_secret(&token_file, TOKEN_C);
    p.signal("HUP");
    wait_for("the second pause", Duration::from_secs(20), || (count(&p.log(), "DELIVERY PAUSED") == 2).then_some(()))
        .await;
    assert!(p.log().contains("credentials reloaded"), "{}", p.log());

    // An empty token file is refused; the current token stays (noticed by polling, no signal).
    write_secret(&token_file, "");
    wait_for("the reload error", Duration::from_secs(20), || {
        p.log().contains("cannot reload the credentials").then_some(())
    })
    .await;

    // The right token, and SIGHUP: both messages delivered, well before the 16 s pause ends.
    write_secret(&token_file, &format!("{TOKEN_A}\n"));
    p.signal("HUP");
    let started = std::time::Instant::now();
    wait_for("both messages at Postmark", Duration::from_secs(10), || (fake.emails().len() == 2).then_some(())).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    wait_for("an empty queue", Duration::from_secs(10), || (queue() == 0).then_some(())).await;
    assert!(crate::support::files(&spool.join("dead")).is_empty(), "no dead letters");
    let tokens: Vec<String> =
        fake.requests().iter().filter_map(|r| r.header("x-postmark-server-token").map(String::from)).collect();
    assert_eq!(tokens.last().map(String::as_str), Some(TOKEN_A));
    assert!(tokens.iter().any(|t| t == TOKEN_B) && tokens.iter().any(|t| t == TOKEN_C), "{tokens:?}");

    // The whole trace-level log, HTTP client internals included, never holds a token.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = p.log();
    assert!(log.contains("TRACE") && (log.contains("hyper") || log.contains("reqwest")), "trace logs captured");
    for token in [TOKEN_A, TOKEN_B, TOKEN_C, "AAAA", "BBBB", "CCCC"] {
        assert!(!log.contains(token), "{token} appears in the log");
    }
}

#[tokio::test]
async fn sighup_ends_a_pause_even_without_a_changed_file() {
    // The account is fixed on Postmark's side (here: the fake starts accepting the token).
    let fake = FakeApi::start().await;
    fake.set_server_token("not-yet");
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let url = fake.url();
    let p = Proc::spawn(
        &["--listen", "127.0.0.1:0", "--spool", spool.to_str().unwrap(), "--api-url", &url, "--max-retry-delay", "1h"],
        &[("POSTMARK_SERVER_TOKEN", TOKEN_A)],
        "info",
    );
    let addr = p.addr().await;
    send(addr, "a@example.com", &["r@example.com"], &message("hup")).await.expect("250");
    wait_for("the pause", Duration::from_secs(20), || p.log().contains("DELIVERY PAUSED").then_some(())).await;
    fake.set_server_token(TOKEN_A);
    p.signal("HUP");
    wait_for("delivery after SIGHUP", Duration::from_secs(8), || (fake.emails().len() == 1).then_some(())).await;
    assert!(p.log().contains("credentials are unchanged"), "{}", p.log());
    assert!(!p.log().contains(TOKEN_A));
}

#[tokio::test]
async fn a_changed_config_file_rotates_smtp_keys_without_a_signal() {
    let fake = FakeSmtp::builder().credentials("new-access-key", "new-secret-key").start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, fake.ca_pem()).unwrap();
    let config = dir.path().join("relay.toml");
    let toml = |access: &str, secret: &str| {
        format!(
            "smtp_url = \"{}\"\nsmtp_ca = \"{}\"\nmax_retry_delay = \"1h\"\nsmtp_access_key = \"{access}\"\nsmtp_secret_key = \"{secret}\"\n",
            fake.url(),
            ca.display()
        )
    };
    write_secret(&config, &toml("old-access", "old-secret"));
    let mut relay = TestRelay::start(&["--config", config.to_str().unwrap()], &[]).await;
    let id = send(relay.addr, "a@example.com", &["r@example.com"], &message("smtp-rotation")).await.expect("250");
    // Refused login: paused, kept.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(fake.messages().is_empty());
    assert!(relay.files("queue").contains(&format!("{id}.msg")));
    assert!(relay.files("dead").is_empty());

    write_secret(&config, &toml("new-access-key", "new-secret-key"));
    let got = fake.wait_for_messages(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "delivered after the config file changed (polling, no signal)");
    assert_eq!(got[0].auth_user.as_deref(), Some("new-access-key"));
    wait_for("an empty queue", Duration::from_secs(5), || relay.files("queue").is_empty().then_some(())).await;
    assert!(relay.files("dead").is_empty());
    relay.stop().await;
}

#[tokio::test]
async fn the_users_file_and_the_certificate_are_reloaded_too() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate();
    let cert = write(dir.path(), "cert.pem", pki.server_cert_pem());
    let key = write(dir.path(), "key.pem", pki.server_key_pem());
    let users = users_file(dir.path(), &[("app", "first-password")]);
    let mut relay = TestRelay::start(
        &[
            "--dry-run",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--auth-users",
            users.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let raw = message("reload-users");
    let send_as = |ca: String, password: &'static str| {
        let addr = relay.addr;
        let raw = raw.clone();
        async move { tls_client(addr, &ca, Some(("app", password)), Mechanism::Plain).send_raw(&envelope(), &raw).await }
    };
    send_as(pki.ca_pem().to_string(), "first-password").await.expect("first password");

    // A new password in the users file: noticed by polling.
    let dir2 = tempfile::tempdir().unwrap();
    let new_users = users_file(dir2.path(), &[("app", "second-password")]);
    std::fs::copy(&new_users, &users).unwrap();
    let started = std::time::Instant::now();
    loop {
        if send_as(pki.ca_pem().to_string(), "second-password").await.is_ok() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the new users file was not picked up");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let e = send_as(pki.ca_pem().to_string(), "first-password").await.unwrap_err();
    assert!(e.to_string().contains("535"), "{e}");

    // A renewed certificate from another CA, and an explicit reload.
    let renewed = TestPki::generate();
    std::fs::write(&cert, renewed.server_cert_pem()).unwrap();
    std::fs::write(&key, renewed.server_key_pem()).unwrap();
    relay.relay.as_ref().unwrap().reload();
    let started = std::time::Instant::now();
    loop {
        if send_as(renewed.ca_pem().to_string(), "second-password").await.is_ok() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the renewed certificate was not served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(send_as(pki.ca_pem().to_string(), "second-password").await.is_err(), "the old CA no longer verifies");
    relay.stop().await;
}
