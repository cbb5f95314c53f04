//! The preview UI in a real browser: headless Chromium (Debian's `chromium`) loads the list, a
//! message view and a message's HTML from a relay in dry-run, and takes screenshots. Set
//! `POSTMARK_UI_SCREENSHOTS=DIR` to keep them (the README's come from here).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::real_client;
use crate::ui::{http, preview_relay};

/// Runs Chromium headless on `url` with `extra` flags; returns its standard output.
async fn chromium(bin: &Path, url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1280,860",
        "--timeout=8000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(extra)
    .arg(url)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    tokio::task::spawn_blocking(move || {
        let _profile = profile;
        let mut child = cmd.spawn().expect("chromium starts");
        let deadline = Instant::now() + Duration::from_secs(90);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("chromium did not finish within 90 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

/// A screenshot of `url`, checked to be a PNG of some substance, kept where asked.
async fn screenshot(bin: &Path, url: &str, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    chromium(bin, url, &[format!("--screenshot={}", file.display())]).await;
    let png = std::fs::read(&file).unwrap_or_else(|e| panic!("no screenshot of {url}: {e}"));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "{name}: {} bytes", png.len());
    if let Some(keep) = std::env::var_os("POSTMARK_UI_SCREENSHOTS") {
        std::fs::copy(&file, Path::new(&keep).join(name)).unwrap();
    }
}

#[tokio::test]
async fn chromium_renders_the_list_and_the_message_html_and_no_script_of_a_message_runs() {
    let Some(bin) =
        real_client("chromium", "chromium_renders_the_list_and_the_message_html_and_no_script_of_a_message_runs")
    else {
        return;
    };
    let (_relay, ui, ids) = preview_relay(&[]).await;

    let list = chromium(&bin, &format!("http://{ui}/"), &["--dump-dom".into()]).await;
    for id in &ids {
        assert!(list.contains(id.as_str()), "{id} listed: {list}");
    }
    assert!(list.contains("Your order #1042 &lt;script&gt;document.title='PWNED'&lt;/script&gt;"), "{list}");
    assert!(!list.contains("<title>PWNED"), "the subject's script did not run: {list}");
    assert!(list.contains("ErrorCode 406"));

    // The message's HTML, as the iframe loads it: rendered, its script blocked by the policy.
    let resp = http().get(format!("http://{ui}/messages/{}/html", ids[0])).send().await.unwrap();
    assert!(resp.headers()["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'"));
    let body = chromium(&bin, &format!("http://{ui}/messages/{}/html", ids[0]), &["--dump-dom".into()]).await;
    assert!(body.contains("Thanks for your order, Ann"), "the HTML renders: {body}");
    assert!(body.contains("<h1 id=\"greeting\""), "{body}");
    assert!(
        body.contains("<body><div") && !body.contains("data-pwned=\"yes\""),
        "the body's script did not run: {body}"
    );
    assert!(!body.contains("PWNED</title>"), "{body}");

    let view = chromium(&bin, &format!("http://{ui}/messages/{}", ids[0]), &["--dump-dom".into()]).await;
    assert!(view.contains("<iframe class=\"html\" sandbox=\"\""), "{view}");
    assert!(!view.contains("<title>PWNED"), "{view}");

    screenshot(&bin, &format!("http://{ui}/"), "ui-list.png").await;
    screenshot(&bin, &format!("http://{ui}/messages/{}", ids[0]), "ui-message.png").await;
    screenshot(&bin, &format!("http://{ui}/messages/{}?tab=verdict", ids[2]), "ui-verdict.png").await;
}
