//! The preview UI over HTTP: the list, the message view, the JSON API, the safety headers, the
//! bind rule and the guarded actions, against a relay in dry-run with messages sent over SMTP.

use std::net::SocketAddr;
use std::time::Duration;

use postmark_relay::spool::{DeadReason, Spool};

use crate::support::{Smtp, TestRelay, wait_for};

/// A 1×1 PNG, the inline logo.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPj/HwADBwIAMCbHYQAAAABJRU5ErkJggg==";

/// An HTML order confirmation with a script in its subject and body, an inline image, a remote
/// image and a PDF.
pub fn html_message() -> String {
    format!(
        "From: Shop <shop@example.com>\r\nTo: Ann Buyer <ann@example.com>\r\nSubject: Your order #1042 \
         <script>document.title='PWNED'</script>\r\nMessage-ID: <order-1042@example.com>\r\nX-PM-Tag: orders\r\n\
         X-PM-Metadata-order: 1042\r\nDKIM-Signature: v=1; a=rsa-sha256; d=example.com; b=abc\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n--mix\r\nContent-Type: multipart/related; boundary=\"rel\"\r\n\r\n\
         --rel\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Thanks for your order #1042.\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <div style=\"font-family:sans-serif;max-width:560px;margin:24px auto;border:1px solid #e4e7ec;border-radius:8px;padding:24px\">\
         <img src=\"cid:logo@shop\" width=\"40\" height=\"40\" alt=\"logo\" style=\"background:#ffde00\">\
         <h1 id=\"greeting\" style=\"color:#0b1f3a\">Thanks for your order, Ann</h1><p>Order #1042 ships tomorrow.</p>\
         <script>document.body.setAttribute('data-pwned','yes');document.title='PWNED'</script>\
         <img src=\"https://tracker.example.com/open.gif\" alt=\"remote\"><form action=\"https://evil.example.com/\">\
         <input name=\"card\"></form></div>\r\n--alt--\r\n--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@shop>\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{PNG}\r\n--rel--\r\n--mix\r\nContent-Type: application/pdf; name=\"invoice-1042.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"invoice-1042.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         JVBERi0xLjQKJcfs\r\n--mix--\r\n.\r\n"
    )
}

/// A plain message whose To names an address outside the envelope, with a Bcc recipient.
const PLAIN: &str = "From: cron@example.com\r\nTo: ops@example.com, other@example.com\r\nSubject: nightly backup done\r\n\
                     \r\nAll 3 volumes backed up.\r\n.\r\n";

/// A relay in dry-run with its UI on an ephemeral port, holding the HTML message, the plain one
/// and a dead letter (ErrorCode 406, with a forbidden attachment); returns the ids, in that order.
pub async fn preview_relay(env: &[(&str, &str)]) -> (TestRelay, SocketAddr, Vec<String>) {
    let relay = TestRelay::start(&["--ui", "127.0.0.1:0"], env).await;
    let ui = relay.relay.as_ref().unwrap().ui_addr().expect("the UI is served");
    let mut smtp = Smtp::ready(relay.addr).await;
    let reply = smtp.transaction("shop@example.com", "ann@example.com", html_message().as_bytes()).await;
    assert!(reply.starts_with("250 "), "{reply}");
    let html_id = reply.trim().rsplit(' ').next().unwrap().to_owned();
    smtp.command("RSET").await;
    smtp.command("MAIL FROM:<cron@example.com>").await;
    smtp.command("RCPT TO:<ops@example.com>").await;
    smtp.command("RCPT TO:<audit@example.com>").await;
    let reply = smtp.data(PLAIN.strip_suffix(".\r\n").unwrap().as_bytes()).await;
    assert!(reply.starts_with("250 "), "{reply}");
    let plain_id = reply.trim().rsplit(' ').next().unwrap().to_owned();
    for id in [&html_id, &plain_id] {
        let name = format!("{id}.json");
        wait_for("the dry-run output", Duration::from_secs(10), || {
            relay.files("dry-run").contains(&name).then_some(())
        })
        .await;
    }
    // A dead letter, made in a spool of its own (the relay would deliver it) and moved in.
    let other = tempfile::tempdir().unwrap();
    let spool = Spool::open(other.path()).unwrap();
    let raw = "From: billing@example.com\r\nTo: gone@example.com\r\nSubject: Invoice <b>overdue</b>\r\nMIME-Version: 1.0\r\n\
               Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nPay now.\r\n--b\r\n\
               Content-Type: application/octet-stream; name=setup.exe\r\nContent-Transfer-Encoding: base64\r\n\r\nTVo=\r\n--b--\r\n";
    let envelope = postmark_relay::Envelope::new("billing@example.com", ["gone@example.com"]);
    let dead = spool.store_blocking(&envelope, raw.as_bytes()).unwrap();
    let reason = DeadReason {
        reason: "Postmark ErrorCode 406: You tried to send to recipient(s) that have been marked as inactive.".into(),
        dead_ms: postmark_relay::clock::now_ms(),
        attempts: 1,
        recipients: vec![],
    };
    spool.kill(&dead, &reason).unwrap();
    for ext in ["msg", "json"] {
        let name = format!("{dead}.{ext}");
        std::fs::copy(other.path().join("dead").join(&name), relay.spool.join("dead").join(&name)).unwrap();
    }
    (relay, ui, vec![html_id, plain_id, dead.to_string()])
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn the_list_shows_every_message_newest_first_with_recipients_as_postmark_delivers_them() {
    let (_relay, ui, ids) = preview_relay(&[]).await;
    let api: serde_json::Value =
        http().get(format!("http://{ui}/api/messages")).send().await.unwrap().json().await.unwrap();
    let list = api["messages"].as_array().unwrap();
    let listed: Vec<&str> = list.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()], "newest first");
    assert_eq!(list[0]["state"], "dead");
    assert_eq!(list[0]["error_code"], 406);
    // The envelope rule: other@example.com is not in the envelope, audit@example.com is Bcc.
    assert_eq!(list[1]["to"], serde_json::json!(["ops@example.com"]));
    assert_eq!(list[1]["bcc"], serde_json::json!(["audit@example.com"]));
    assert_eq!(list[2]["state"], "dry-run");
    assert_eq!(list[2]["from"], "Shop <shop@example.com>");

    let page = http().get(format!("http://{ui}/")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let body = page.text().await.unwrap();
    assert!(!body.contains("<script>document.title"), "the subject is escaped");
    assert!(body.contains("&lt;script&gt;document.title="), "{body}");
    assert!(body.contains("Invoice &lt;b&gt;overdue&lt;/b&gt;"));
    assert!(body.contains("ErrorCode 406"));

    let found: serde_json::Value =
        http().get(format!("http://{ui}/api/messages?q=backup")).send().await.unwrap().json().await.unwrap();
    let found: Vec<&str> = found["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(found, [ids[1].as_str()]);
    let page: serde_json::Value =
        http().get(format!("http://{ui}/api/messages?before={}", ids[1])).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["messages"].as_array().unwrap().len(), 1, "paging on from an id");
}

#[tokio::test]
async fn the_message_view_has_the_json_headers_attachments_and_verdict() {
    let (_relay, ui, ids) = preview_relay(&[]).await;
    let d: serde_json::Value =
        http().get(format!("http://{ui}/api/messages/{}", ids[0])).send().await.unwrap().json().await.unwrap();
    assert_eq!(d["via"], "api");
    assert_eq!(d["requests_as_written"], true);
    assert_eq!(d["requests"][0]["Tag"], "orders");
    let fates: Vec<(String, String)> = d["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["name"].as_str().unwrap().to_owned(), h["fate"].as_str().unwrap().to_owned()))
        .collect();
    for (name, fate) in
        [("X-PM-Tag", "moved"), ("Message-ID", "kept"), ("DKIM-Signature", "dropped"), ("Subject", "field")]
    {
        assert!(fates.contains(&(name.to_owned(), fate.to_owned())), "{name} {fate}: {fates:?}");
    }
    let names: Vec<&str> = d["attachments"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"invoice-1042.pdf"), "{names:?}");
    assert!(d["verdict"].as_array().unwrap().iter().all(|r| r["passed"] != false), "{}", d["verdict"]);
    let index = names.iter().position(|n| *n == "invoice-1042.pdf").unwrap();
    let pdf = http().get(format!("http://{ui}/messages/{}/attachments/{index}", ids[0])).send().await.unwrap();
    assert_eq!(pdf.headers()["content-disposition"], "attachment; filename=\"invoice-1042.pdf\"");
    assert_eq!(pdf.headers()["content-type"], "application/octet-stream");
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF-1.4"));

    let plain: serde_json::Value =
        http().get(format!("http://{ui}/api/messages/{}", ids[1])).send().await.unwrap().json().await.unwrap();
    assert_eq!(plain["repairs"], serde_json::json!(["added the header X-Relay-Original-To"]), "{plain}");

    let dead: serde_json::Value =
        http().get(format!("http://{ui}/api/messages/{}", ids[2])).send().await.unwrap().json().await.unwrap();
    let failed: Vec<i64> = dead["verdict"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["passed"] == false)
        .filter_map(|r| r["error_code"].as_i64())
        .collect();
    assert_eq!(failed, [411], "{}", dead["verdict"]);

    for tab in ["html", "text", "json", "source", "headers", "attachments", "verdict"] {
        let page = http().get(format!("http://{ui}/messages/{}?tab={tab}", ids[0])).send().await.unwrap();
        assert_eq!(page.status(), 200, "{tab}");
        let body = page.text().await.unwrap();
        assert!(!body.contains("<script>document"), "{tab}: nothing of the message is unescaped: {body}");
    }
    let json =
        http().get(format!("http://{ui}/messages/{}?tab=json", ids[0])).send().await.unwrap().text().await.unwrap();
    assert!(
        json.contains("&quot;MessageStream&quot;") || json.contains("&quot;Tag&quot;: &quot;orders&quot;"),
        "{json}"
    );
}

#[tokio::test]
async fn the_html_body_is_served_alone_under_the_strict_policy_with_inline_images_embedded() {
    let (_relay, ui, ids) = preview_relay(&[]).await;
    let resp = http().get(format!("http://{ui}/messages/{}/html", ids[0])).send().await.unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.starts_with("default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'"), "{csp}");
    assert!(csp.contains("sandbox") && csp.contains("form-action 'none'"), "{csp}");
    let body = resp.text().await.unwrap();
    assert!(body.contains("src=\"data:image/png;base64,"), "the cid: image is embedded: {body}");
    assert!(body.contains("https://tracker.example.com/open.gif"), "left for the policy to block");
    let remote = http().get(format!("http://{ui}/messages/{}/html?remote=1", ids[0])).send().await.unwrap();
    let csp = remote.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("img-src data: cid: https: http:") && csp.contains("sandbox"), "{csp}");
    let page = http().get(format!("http://{ui}/messages/{}", ids[0])).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<iframe class=\"html\" sandbox=\"\""), "{page}");
}

#[tokio::test]
async fn a_foreign_host_header_is_refused() {
    let (_relay, ui, _) = preview_relay(&[]).await;
    let resp =
        http().get(format!("http://{ui}/api/messages")).header("host", "rebind.example.com").send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let resp = http().get(format!("http://localhost:{}/api/messages", ui.port())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn actions_are_off_by_default() {
    let (relay, ui, ids) = preview_relay(&[("RELAY_UI_TOKEN", "let-me-in")]).await;
    for id in [&ids[0], &ids[2]] {
        let resp =
            http().delete(format!("http://{ui}/api/messages/{id}")).bearer_auth("let-me-in").send().await.unwrap();
        assert_eq!(resp.status(), 403, "ui_actions is not set");
        let resp = http()
            .post(format!("http://{ui}/api/messages/{id}/release"))
            .bearer_auth("let-me-in")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
    }
    assert!(relay.files("dry-run").contains(&format!("{}.json", ids[0])));
    assert!(relay.files("dead").contains(&format!("{}.msg", ids[2])));
    let page = http().get(format!("http://{ui}/messages/{}", ids[0])).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("Release to Postmark"));
}

#[tokio::test]
async fn actions_need_the_token_and_then_delete_and_release() {
    let (relay, ui, ids) = preview_relay(&[("RELAY_UI_ACTIONS", "true"), ("RELAY_UI_TOKEN", "let-me-in")]).await;
    let url = format!("http://{ui}/api/messages/{}", ids[0]);
    assert_eq!(http().delete(&url).send().await.unwrap().status(), 401);
    assert_eq!(http().delete(&url).bearer_auth("let-me-i").send().await.unwrap().status(), 401);
    assert_eq!(http().delete(&url).bearer_auth("let-me-in!").send().await.unwrap().status(), 401);
    assert!(relay.files("dry-run").contains(&format!("{}.json", ids[0])));
    // A dry-run message cannot be released while the relay is in dry-run.
    let resp = http().post(format!("{url}/release")).bearer_auth("let-me-in").send().await.unwrap();
    assert_eq!(resp.status(), 409);
    let resp = http().delete(&url).bearer_auth("let-me-in").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!relay.files("dry-run").iter().any(|f| f.starts_with(&ids[0])), "{:?}", relay.files("dry-run"));
    // A dead letter goes back to the queue (and, in dry-run, on to the dry-run output).
    let resp = http()
        .post(format!("http://{ui}/api/messages/{}/release", ids[2]))
        .bearer_auth("let-me-in")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert!(!relay.files("dead").contains(&format!("{}.msg", ids[2])));
    let name = format!("{}.json", ids[2]);
    wait_for("the released dead letter", Duration::from_secs(10), || {
        relay.files("dry-run").contains(&name).then_some(())
    })
    .await;
    let resp = http().delete(format!("http://{ui}/api/messages/{}", ids[1])).send().await.unwrap();
    assert_eq!(resp.status(), 401, "the token is checked before anything else");
}

#[tokio::test]
async fn a_new_message_is_announced_by_server_sent_events() {
    let (relay, ui, _) = preview_relay(&[]).await;
    let mut events = http().get(format!("http://{ui}/events")).send().await.unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    // Let the stream take its first look before the spool changes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut smtp = Smtp::ready(relay.addr).await;
    let reply = smtp.transaction("a@example.com", "b@example.com", b"Subject: live\r\n\r\nnew\r\n.\r\n").await;
    assert!(reply.starts_with("250 "), "{reply}");
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("event: change") {
        let chunk = tokio::time::timeout_at(deadline, events.chunk()).await.expect("a change event in time").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("the stream stays open")));
    }
}

#[tokio::test]
async fn a_relay_that_sends_releases_a_dry_run_message_to_postmark() {
    let fake = postmark_fake::http::FakeApi::start().await;
    fake.set_server_token("server-token-for-tests");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(&config, "ui_actions = true\nui_token = \"release-me\"\n").unwrap();
    let relay = TestRelay::with_api(
        &fake,
        "server-token-for-tests",
        &["--ui", "127.0.0.1:0", "--config", config.to_str().unwrap()],
    )
    .await;
    let ui = relay.relay.as_ref().unwrap().ui_addr().expect("the UI is served when set");
    // Output of an earlier dry-run on the same spool.
    let id = postmark_relay::spool::QueueId::generate();
    let dry = relay.spool.join("dry-run");
    std::fs::create_dir_all(&dry).unwrap();
    let envelope = postmark_relay::Envelope::new("shop@example.com", ["ann@example.com"]);
    std::fs::write(dry.join(format!("{id}.envelope.json")), serde_json::to_vec(&envelope).unwrap()).unwrap();
    std::fs::write(
        dry.join(format!("{id}.eml")),
        "From: shop@example.com\r\nTo: ann@example.com\r\nSubject: held back\r\n\r\nhi\r\n",
    )
    .unwrap();
    std::fs::write(
        dry.join(format!("{id}.json")),
        r#"{"From":"shop@example.com","To":"ann@example.com","Subject":"held back","TextBody":"hi\r\n"}"#,
    )
    .unwrap();
    let api: serde_json::Value =
        http().get(format!("http://{ui}/api/messages")).send().await.unwrap().json().await.unwrap();
    assert_eq!(api["messages"][0]["state"], "dry-run");

    let resp =
        http().post(format!("http://{ui}/api/messages/{id}/release")).bearer_auth("release-me").send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let emails = wait_for("the released message at the fake Postmark", Duration::from_secs(10), || {
        let e = fake.emails();
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(emails[0]["Subject"], "held back");
    assert_eq!(emails[0]["To"], "ann@example.com");
    assert!(relay.files("dry-run").is_empty(), "{:?}", relay.files("dry-run"));
}
