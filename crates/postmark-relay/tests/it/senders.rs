//! Local names, aliases, sender policy, verified senders and routes, end to end: SMTP in front,
//! the fake Postmark behind.

use std::time::Duration;

use postmark_fake::http::FakeApi;

use crate::support::{Smtp, TestRelay, wait_for};

const TOKEN: &str = "server-token-for-tests";

async fn relay_with(fake: &FakeApi, config: &str, env: &[(&str, &str)]) -> (TestRelay, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, config).unwrap();
    let url = fake.url();
    let mut all_env = vec![("POSTMARK_SERVER_TOKEN", TOKEN)];
    all_env.extend_from_slice(env);
    let flags = ["--api-url", &url, "--max-retry-delay", "200ms", "--config", path.to_str().unwrap()];
    let relay = TestRelay::start(&flags, &all_env).await;
    (relay, dir)
}

fn msg(from: &str, subject: &str) -> Vec<u8> {
    format!("From: {from}\r\nTo: someone@example.net\r\nSubject: {subject}\r\n\r\nbody\r\n").into_bytes()
}

#[tokio::test]
async fn root_goes_to_its_alias_and_without_one_the_reply_says_how() {
    let fake = FakeApi::start().await;
    let (mut relay, _dir) = relay_with(
        &fake,
        "local_domain = \"host.example\"\n[aliases]\nroot = [\"ops@example.com\", \"dev@example.com\"]\n",
        &[],
    )
    .await;
    let mut smtp = Smtp::ready(relay.addr).await;
    // A bare sender is qualified with local_domain, on SMTP as on the sendmail path.
    let mail = smtp.command("MAIL FROM:<cron> SIZE=100").await;
    assert!(mail.starts_with("250"), "{mail}");
    let rcpt = smtp.command("RCPT TO:<root>").await;
    assert!(rcpt.starts_with("250 2.1.5") && rcpt.contains("2 address"), "{rcpt}");
    let reply = smtp.data(&msg("cron@host.example", "cron output")).await;
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let email = wait_for("the aliased mail", Duration::from_secs(10), || fake.emails().into_iter().next()).await;
    // Neither alias target is in To or Cc: one copy each, addressed to it alone.
    let mut to: Vec<String> =
        wait_for("both copies", Duration::from_secs(10), || (fake.emails().len() == 2).then(|| fake.emails()))
            .await
            .iter()
            .map(|e| e["To"].as_str().unwrap().to_owned())
            .collect();
    to.sort();
    assert_eq!(to, ["dev@example.com", "ops@example.com"]);
    assert_eq!(email["Subject"], "cron output");
    relay.stop().await;

    let fake = FakeApi::start().await;
    let (mut relay, _dir) = relay_with(&fake, "", &[]).await;
    let mut smtp = Smtp::ready(relay.addr).await;
    // Without local_domain a bare sender is refused, and the reply says what to set.
    let mail = smtp.command("MAIL FROM:<cron>").await;
    assert!(mail.starts_with("501 5.1.7") && mail.contains("local_domain"), "{mail}");
    smtp.command("MAIL FROM:<cron@host.example>").await;
    let rcpt = smtp.command("RCPT TO:<root>").await;
    assert!(rcpt.starts_with("550 5.1.1") && rcpt.contains("[aliases] root ="), "{rcpt}");
    relay.stop().await;
}

#[tokio::test]
async fn allowed_senders_refuse_at_mail_and_at_the_end_of_data() {
    let fake = FakeApi::start().await;
    let (mut relay, _dir) =
        relay_with(&fake, "allowed_senders = [\"app@example.com\", \"billing.example\"]\n", &[]).await;
    let mut smtp = Smtp::ready(relay.addr).await;
    let mail = smtp.command("MAIL FROM:<www-data@host.example>").await;
    assert!(mail.starts_with("550 5.7.1") && mail.contains("allowed_senders"), "{mail}");
    assert!(smtp.command("MAIL FROM:<app@example.com>").await.starts_with("250"));
    assert!(smtp.command("RCPT TO:<someone@example.net>").await.starts_with("250"));
    let reply = smtp.data(&msg("ceo@evil.example", "spoof")).await;
    assert!(reply.starts_with("550 5.7.1") && reply.contains("From ceo@evil.example"), "{reply}");
    assert!(smtp.command("MAIL FROM:<x@billing.example>").await.starts_with("250"));
    assert!(smtp.command("RCPT TO:<someone@example.net>").await.starts_with("250"));
    assert!(smtp.data(&msg("Billing <x@billing.example>", "ok")).await.starts_with("250"));
    wait_for("the allowed one", Duration::from_secs(10), || (fake.emails().len() == 1).then_some(())).await;
    assert_eq!(fake.emails()[0]["Subject"], "ok");
    relay.stop().await;
}

#[tokio::test]
async fn rewrite_from_sends_from_the_configured_address_keeping_the_original() {
    let fake = FakeApi::start().await;
    fake.set_verified_senders(&["noreply@example.com"]);
    let (mut relay, _dir) = relay_with(&fake, "rewrite_from = \"noreply@example.com\"\n", &[]).await;
    let mut smtp = Smtp::ready(relay.addr).await;
    smtp.command("MAIL FROM:<www-data@host.example>").await;
    smtp.command("RCPT TO:<someone@example.net>").await;
    assert!(smtp.data(&msg("Web App <www-data@host.example>", "rewritten")).await.starts_with("250"));
    let email = wait_for("the rewritten mail", Duration::from_secs(10), || fake.emails().into_iter().next()).await;
    assert_eq!(email["From"], "Web App <noreply@example.com>");
    assert_eq!(email["ReplyTo"], "Web App <www-data@host.example>");
    let headers = format!("{:?}", email["Headers"]);
    assert!(headers.contains("X-Original-From") && headers.contains("www-data@host.example"), "{headers}");
    relay.stop().await;
}

#[tokio::test]
async fn with_an_account_token_unverified_senders_are_refused_before_250() {
    let fake = FakeApi::start().await;
    fake.set_account_token("account-token-for-tests");
    fake.set_verified_senders(&["app@example.com", "verified.example"]);
    fake.set_unconfirmed_senders(&["new@example.com"]);
    // The fake lists the account's signatures and domains (GET /senders, /domains) from the same rules.
    let (mut relay, _dir) = relay_with(&fake, "", &[("POSTMARK_ACCOUNT_TOKEN", "account-token-for-tests")]).await;
    wait_for("the account's senders to load", Duration::from_secs(10), || {
        fake.requests().iter().any(|r| r.path == "/domains").then_some(())
    })
    .await;
    let request = fake.requests().into_iter().find(|r| r.path == "/senders").unwrap();
    assert_eq!(request.header("x-postmark-account-token"), Some("account-token-for-tests"));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut smtp = Smtp::ready(relay.addr).await;
    for (from, expect) in [
        ("app@example.com", "250"),
        ("anyone@verified.example", "250"),
        ("new@example.com", "550 5.7.1"),
        ("www-data@pending.example", "550 5.7.1"),
        ("root@unknown.example", "550 5.7.1"),
    ] {
        smtp.command(&format!("MAIL FROM:<{from}>")).await;
        smtp.command("RCPT TO:<someone@example.net>").await;
        let reply = smtp.data(&msg(from, from)).await;
        assert!(reply.starts_with(expect), "{from}: {reply}");
        if from == "new@example.com" {
            assert!(reply.contains("not confirmed"), "{reply}");
        }
        if expect != "250" {
            smtp.command("RSET").await;
        }
    }
    wait_for("the two verified", Duration::from_secs(10), || (fake.emails().len() == 2).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(relay.files("dead").is_empty(), "nothing the relay could know became a dead letter");
    relay.stop().await;
}

#[tokio::test]
async fn without_an_account_token_a_refused_sender_is_learned() {
    let fake = FakeApi::start().await;
    fake.set_verified_senders(&["app@example.com"]);
    let (mut relay, _dir) = relay_with(&fake, "", &[]).await;
    let mut smtp = Smtp::ready(relay.addr).await;
    smtp.command("MAIL FROM:<www-data@host.example>").await;
    smtp.command("RCPT TO:<someone@example.net>").await;
    // Nothing is known yet: accepted, then refused by Postmark with ErrorCode 400.
    assert!(smtp.data(&msg("www-data@host.example", "first")).await.starts_with("250"));
    wait_for("the first dead letter", Duration::from_secs(10), || {
        relay.files("dead").iter().any(|f| f.ends_with(".msg")).then_some(())
    })
    .await;
    smtp.command("MAIL FROM:<www-data@host.example>").await;
    smtp.command("RCPT TO:<someone@example.net>").await;
    let reply = smtp.data(&msg("www-data@host.example", "second")).await;
    assert!(reply.starts_with("550 5.7.1") && reply.contains("ErrorCode 400"), "{reply}");
    // Other senders are not affected.
    smtp.command("RSET").await;
    smtp.command("MAIL FROM:<app@example.com>").await;
    smtp.command("RCPT TO:<someone@example.net>").await;
    assert!(smtp.data(&msg("app@example.com", "third")).await.starts_with("250"));
    relay.stop().await;
}

#[tokio::test]
async fn two_routes_deliver_with_their_own_server_tokens_and_streams() {
    let fake = FakeApi::start().await;
    let config = r#"
[[routes]]
name = "billing"
senders = ["billing.example"]
server_token = "billing-server-token"
message_stream = "invoices"

[[routes]]
name = "crm"
senders = ["crm@example.com"]
server_token = "crm-server-token"
"#;
    let (mut relay, _dir) = relay_with(&fake, config, &[]).await;
    let mut smtp = Smtp::ready(relay.addr).await;
    for (from, subject) in
        [("a@billing.example", "invoice"), ("crm@example.com", "crm"), ("other@example.com", "default")]
    {
        smtp.command(&format!("MAIL FROM:<{from}>")).await;
        smtp.command("RCPT TO:<someone@example.net>").await;
        assert!(smtp.data(&msg(from, subject)).await.starts_with("250"));
    }
    wait_for("three messages", Duration::from_secs(10), || (fake.emails().len() == 3).then_some(())).await;
    let requests = fake.requests();
    let token_of = |subject: &str| {
        requests
            .iter()
            .filter(|r| r.path.starts_with("/email"))
            .find(|r| String::from_utf8_lossy(&r.body).contains(&format!("\"Subject\":\"{subject}\"")))
            .and_then(|r| r.header("x-postmark-server-token").map(str::to_owned))
    };
    assert_eq!(token_of("invoice").as_deref(), Some("billing-server-token"));
    assert_eq!(token_of("crm").as_deref(), Some("crm-server-token"));
    assert_eq!(token_of("default").as_deref(), Some(TOKEN));
    let invoice = fake.emails().into_iter().find(|e| e["Subject"] == "invoice").unwrap();
    assert_eq!(invoice["MessageStream"], "invoices");
    // The spool recorded the route's name, never its token.
    relay.stop().await;
}
