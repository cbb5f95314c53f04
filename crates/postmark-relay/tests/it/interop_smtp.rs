//! Interoperability with real SMTP clients, unmodified: mutt (smtp_url), msmtp, swaks, PHPMailer,
//! Symfony Mailer over `smtp://`, nodemailer (npm) and Python's smtplib, each run as the program
//! it is against a relay that forwards to the fake Postmark API. Every test asserts on the exact
//! requests Postmark receives: recipients, From with its display name, Subject, bodies,
//! attachments.
//!
//! The Debian packages are in `.ci/interop-packages`; nodemailer is installed by `npm ci` in
//! `tests/interop/nodemailer` (`.ci/run`). A missing program prints `NOT RUN` here and fails where
//! `POSTMARK_TEST_REQUIRE_CLIENTS` is set (see [`support::real_client`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use postmark_fake::http::{FakeApi, split_addresses};
use serde_json::Value;

use crate::support::{self, TestRelay, wait_for};

const TOKEN: &str = "interop-server-token";

/// The relay (forwarding to a fresh fake Postmark API) a client is pointed at.
async fn relay() -> (FakeApi, TestRelay) {
    let fake = FakeApi::start().await;
    fake.set_server_token(TOKEN);
    let relay = TestRelay::with_api(&fake, TOKEN, &[]).await;
    (fake, relay)
}

/// A file the client needs (a PHP library, an npm package), with the same rule as
/// [`support::real_client`]: `None` and `NOT RUN` when it is missing, a failure where clients
/// are required.
fn real_file(path: &Path, test: &str, what: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path.to_path_buf());
    }
    assert!(
        std::env::var_os(support::REQUIRE_CLIENTS).is_none(),
        "{test}: {} ({what}) is missing, and {} says it must be there",
        path.display(),
        support::REQUIRE_CLIENTS
    );
    eprintln!("NOT RUN {test}: {} ({what}) is missing", path.display());
    None
}

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Runs `cmd` with `stdin` as its input, off the runtime (the relay runs on it), killed after
/// 60 s.
async fn run(mut cmd: Command, stdin: Vec<u8>) -> Output {
    let shown = format!("{cmd:?}");
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{shown}: {e}"));
        let mut input = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{shown} did not finish within 60 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        writer.join().unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `/email` requests Postmark received once `count` have arrived (and no more came in the
/// next moment).
async fn emails(fake: &FakeApi, count: usize) -> Vec<Value> {
    let got = wait_for("the requests at the fake Postmark", Duration::from_secs(20), || {
        let e = fake.emails();
        (e.len() >= count).then_some(e)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = fake.emails();
    assert_eq!(again.len(), count, "{got:#?}");
    again
}

fn field<'a>(email: &'a Value, name: &str) -> &'a str {
    email[name].as_str().unwrap_or("")
}

fn addresses(email: &Value, name: &str) -> Vec<String> {
    split_addresses(field(email, name))
}

/// Every recipient of all `emails` (To, Cc, Bcc), sorted.
fn all_recipients(emails: &[Value]) -> Vec<String> {
    let mut all: Vec<String> =
        emails.iter().flat_map(|e| ["To", "Cc", "Bcc"].map(|f| addresses(e, f))).flatten().collect();
    all.sort();
    all
}

/// The attachments as (name, content type, decoded content).
fn attachments(email: &Value) -> Vec<(String, String, Vec<u8>)> {
    email["Attachments"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| {
                    let content = base64::engine::general_purpose::STANDARD.decode(field(a, "Content")).unwrap();
                    (field(a, "Name").to_owned(), field(a, "ContentType").to_owned(), content)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One row of the table in the closing note, on stdout (`--nocapture` shows it).
fn report(client: &str, command: &str, result: &str, emails: &[Value]) {
    let first = &emails[0];
    println!(
        "INTEROP | {client} | {command} | {result} | {} requests, {} recipients | {} | {}",
        emails.len(),
        all_recipients(emails).len(),
        field(first, "From"),
        field(first, "Subject")
    );
}

#[tokio::test]
async fn swaks_with_attachments_custom_headers_and_a_long_line() {
    let Some(swaks) = support::real_client("swaks", "swaks_with_attachments_custom_headers_and_a_long_line") else {
        return;
    };
    let (fake, mut relay) = relay().await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("report.csv");
    std::fs::write(&csv, "id,total\n1,9.99\n").unwrap();
    let pdf_bytes: Vec<u8> = (0..2048u32).map(|i| (i * 31 % 251) as u8).collect();
    let pdf = dir.path().join("scan.pdf");
    std::fs::write(&pdf, &pdf_bytes).unwrap();
    let long_line = "0123456789".repeat(300);
    let mut cmd = Command::new(swaks);
    cmd.args(["--server", &relay.addr.to_string(), "--from", "app@example.com"])
        .args(["--to", "ann@example.org,bob@example.org"])
        .args(["--h-From", "\"Swaks Sender\" <app@example.com>", "--h-Subject", "swaks attachments"])
        .args(["--add-header", "X-Campaign: interop-42"])
        .args(["--body", &format!("first line\n{long_line}\nlast line\n")])
        .args(["--attach-type", "text/csv", "--attach-name", "report.csv", "--attach", &format!("@{}", csv.display())])
        .args(["--attach-type", "application/pdf", "--attach", &format!("@{}", pdf.display())]);
    let out = run(cmd, Vec::new()).await;
    assert_success("swaks", &out);
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(transcript.contains("<-  250 2.0.0 Ok: queued as "), "{transcript}");
    let got = emails(&fake, 1).await;
    let email = &got[0];
    assert_eq!(field(email, "From"), "Swaks Sender <app@example.com>");
    assert_eq!(field(email, "Subject"), "swaks attachments");
    assert_eq!(addresses(email, "To"), ["ann@example.org", "bob@example.org"]);
    assert_eq!(support::email_header(email, "X-Campaign"), Some("interop-42"));
    // The 3,000-octet line reaches Postmark whole.
    let text = field(email, "TextBody");
    assert!(text.contains(&format!("first line\r\n{long_line}\r\nlast line")), "{text}");
    let att = attachments(email);
    assert_eq!(att.len(), 2, "{att:?}");
    assert_eq!((att[0].0.as_str(), att[0].2.as_slice()), ("report.csv", &b"id,total\n1,9.99\n"[..]));
    assert!(att[0].1.starts_with("text/csv"), "{att:?}");
    assert_eq!((att[1].0.as_str(), att[1].1.as_str()), ("scan.pdf", "application/pdf"));
    assert_eq!(att[1].2, pdf_bytes);
    report("swaks 20201014", "swaks --to 2 --attach csv,pdf --add-header --body (3000-octet line)", "250 2.0.0", &got);
    relay.stop().await;
}

#[tokio::test]
async fn swaks_long_line_over_the_smtp_path_goes_upstream_re_encoded() {
    let Some(swaks) = support::real_client("swaks", "swaks_long_line_over_the_smtp_path_goes_upstream_re_encoded")
    else {
        return;
    };
    let fake = postmark_fake::smtp::FakeSmtp::builder().credentials("k", "s").start().await.unwrap();
    let mut relay =
        TestRelay::with_smtp(&fake, &[], &[("POSTMARK_SMTP_ACCESS_KEY", "k"), ("POSTMARK_SMTP_SECRET_KEY", "s")]).await;
    let long_line = "<td>caf\u{e9}</td>".repeat(400);
    let mut cmd = Command::new(swaks);
    cmd.args(["--server", &relay.addr.to_string(), "--from", "app@example.com", "--to", "ann@example.org"])
        .args(["--h-Subject", "long html", "--add-header", "MIME-Version: 1.0"])
        .args([
            "--add-header",
            "Content-Type: text/html; charset=utf-8",
            "--add-header",
            "Content-Transfer-Encoding: 8bit",
        ])
        .args(["--body", &long_line]);
    let out = run(cmd, Vec::new()).await;
    assert_success("swaks", &out);
    let got = fake.wait_for_messages(1, Duration::from_secs(20)).await;
    let data = &got[0].data;
    let longest = data.split(|&b| b == b'\n').map(<[u8]>::len).max().unwrap();
    assert!(longest <= 1000, "a line of {longest} octets went upstream");
    let parsed = mail_parser::MessageParser::default().parse(data).unwrap();
    assert_eq!(parsed.body_html(0).unwrap().trim_end(), long_line, "the decoded HTML is what swaks sent");
    assert!(got[0].smtp_api_error.is_none(), "{:?}", got[0].smtp_api_error);
    relay.stop().await;
}

#[tokio::test]
async fn msmtp_as_a_client_with_a_bcc_recipient() {
    let Some(msmtp) = support::real_client("msmtp", "msmtp_as_a_client_with_a_bcc_recipient") else {
        return;
    };
    let (fake, mut relay) = relay().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("msmtprc");
    std::fs::write(&config, "").unwrap();
    let mut cmd = Command::new(msmtp);
    cmd.arg(format!("--file={}", config.display()))
        .args(["--host=127.0.0.1", &format!("--port={}", relay.addr.port()), "--auth=off", "--tls=off"])
        .args(["--from=app@example.com", "--", "ann@example.org", "hidden@example.net"]);
    let message = "From: Msmtp App <app@example.com>\nTo: Ann <ann@example.org>\nSubject: msmtp client\n\
                   Content-Type: text/plain; charset=utf-8\n\nHallo aus msmtp, grüß dich.\n";
    let out = run(cmd, message.as_bytes().to_vec()).await;
    assert_success("msmtp", &out);
    let got = emails(&fake, 1).await;
    let email = &got[0];
    assert_eq!(field(email, "From"), "Msmtp App <app@example.com>");
    assert_eq!(field(email, "To"), "Ann <ann@example.org>");
    assert_eq!(field(email, "Bcc"), "hidden@example.net", "envelope-only recipients are Bcc");
    assert_eq!(field(email, "Subject"), "msmtp client");
    assert_eq!(field(email, "TextBody"), "Hallo aus msmtp, grüß dich.\r\n");
    report("msmtp 1.8.23", "msmtp --host --port --from -- ann hidden < message", "exit 0", &got);
    relay.stop().await;
}

#[tokio::test]
async fn mutt_in_smtp_mode_with_format_flowed_and_an_attachment() {
    let Some(mutt) = support::real_client("mutt", "mutt_in_smtp_mode_with_format_flowed_and_an_attachment") else {
        return;
    };
    let (fake, mut relay) = relay().await;
    let home = tempfile::tempdir().unwrap();
    let muttrc = home.path().join("muttrc");
    std::fs::write(
        &muttrc,
        format!(
            "set smtp_url=\"smtp://127.0.0.1:{}/\"\nset from=\"Mutt User <mutt@example.com>\"\nset use_from=yes\n\
             set ssl_starttls=no\nset ssl_force_tls=no\nset record=\"\"\nset copy=no\nset text_flowed=yes\n\
             set charset=\"utf-8\"\nset send_charset=\"utf-8\"\nset hostname=\"example.com\"\n",
            relay.addr.port()
        ),
    )
    .unwrap();
    let notes = home.path().join("notes.txt");
    std::fs::write(&notes, "attached notes\n").unwrap();
    let mut cmd = Command::new(mutt);
    cmd.env("HOME", home.path())
        .env_remove("MAIL")
        .args(["-n", "-F", muttrc.to_str().unwrap(), "-s", "mutt over smtp"])
        .args(["-c", "Cy <cy@example.org>", "-a", notes.to_str().unwrap(), "--", "ann@example.org"]);
    // With text_flowed a line that ends in a space is a soft break (RFC 3676).
    let body = "This paragraph was \nwrapped by the writer.\n\nSecond paragraph.\n";
    let out = run(cmd, body.as_bytes().to_vec()).await;
    assert_success("mutt", &out);
    let got = emails(&fake, 1).await;
    let email = &got[0];
    assert_eq!(field(email, "From"), "Mutt User <mutt@example.com>");
    assert_eq!(field(email, "To"), "ann@example.org");
    assert_eq!(field(email, "Cc"), "Cy <cy@example.org>");
    assert_eq!(field(email, "Subject"), "mutt over smtp");
    assert_eq!(field(email, "TextBody"), "This paragraph was wrapped by the writer.\r\n\r\nSecond paragraph.\r\n");
    let att = attachments(email);
    assert_eq!(att.len(), 1, "{att:?}");
    // A text attachment travels in canonical form, CRLF line ends (RFC 2046 §4.1.1).
    assert_eq!((att[0].0.as_str(), att[0].2.as_slice()), ("notes.txt", &b"attached notes\r\n"[..]));
    report("mutt 2.2.12", "mutt -n -F muttrc (smtp_url, text_flowed) -s -c -a notes.txt -- ann", "exit 0", &got);
    relay.stop().await;
}

/// Runs `tests/interop/php/<script>` with PHP against a fresh relay, once PHP and `library` are
/// there; the relay and its fake Postmark for the assertions.
async fn php_script(test: &str, library: &str, what: &str, script: &str) -> Option<(FakeApi, TestRelay)> {
    let php = support::real_client("php", test)?;
    real_file(Path::new(library), test, what)?;
    let (fake, relay) = relay().await;
    let mut cmd = Command::new(php);
    cmd.env("RELAY_PORT", relay.addr.port().to_string()).arg(interop_dir().join("php").join(script));
    let out = run(cmd, Vec::new()).await;
    assert_success(script, &out);
    Some((fake, relay))
}

#[tokio::test]
async fn phpmailer_over_smtp_with_html_cc_bcc_and_an_attachment() {
    let library = "/usr/share/php/libphp-phpmailer/autoload.php";
    let test = "phpmailer_over_smtp_with_html_cc_bcc_and_an_attachment";
    let Some((fake, mut relay)) = php_script(test, library, "Debian's libphp-phpmailer", "phpmailer.php").await else {
        return;
    };
    let got = emails(&fake, 1).await;
    let email = &got[0];
    assert_eq!(field(email, "From"), "Shop Müller <shop@example.com>");
    assert_eq!(field(email, "To"), "Ann Example <ann@example.org>");
    assert_eq!(field(email, "Cc"), "cc@example.org");
    assert_eq!(field(email, "Bcc"), "audit@example.net");
    assert_eq!(field(email, "Subject"), "Your order #42 – confirmed");
    assert_eq!(field(email, "HtmlBody").trim_end(), "<p>Thanks for your <b>order</b>.</p>");
    assert_eq!(field(email, "TextBody").trim_end(), "Thanks for your order.");
    let att = attachments(email);
    assert_eq!(att.len(), 1, "{att:?}");
    assert_eq!((att[0].0.as_str(), att[0].2.as_slice()), ("invoice.csv", &b"id,total\n42,9.99\n"[..]));
    assert!(att[0].1.starts_with("text/csv"), "{att:?}");
    report(
        "PHPMailer (libphp-phpmailer)",
        "php phpmailer.php (isSMTP, Cc, Bcc, HTML+AltBody, attachment)",
        "exit 0",
        &got,
    );
    relay.stop().await;
}

#[tokio::test]
async fn symfony_mailer_over_smtp() {
    let library = "/usr/share/php/Symfony/Component/Mailer/autoload.php";
    let test = "symfony_mailer_over_smtp";
    let Some((fake, mut relay)) = php_script(test, library, "Debian's php-symfony-mailer", "symfony.php").await else {
        return;
    };
    let got = emails(&fake, 1).await;
    let email = &got[0];
    assert_eq!(field(email, "From"), "Symfony App <app@example.com>");
    assert_eq!(field(email, "To"), "Ann Example <ann@example.org>");
    assert_eq!(field(email, "Bcc"), "audit@example.net");
    assert_eq!(field(email, "Subject"), "Symfony over smtp");
    assert_eq!(field(email, "TextBody"), "Plain text from Symfony.\r\n");
    assert_eq!(field(email, "HtmlBody"), "<p>HTML from <i>Symfony</i>.</p>");
    let att = attachments(email);
    assert_eq!(att.len(), 1, "{att:?}");
    assert_eq!((att[0].0.as_str(), att[0].1.as_str()), ("report.pdf", "application/pdf"));
    assert_eq!(att[0].2, b"%PDF-1.4 fake\n");
    report("Symfony Mailer (php-symfony-mailer)", "Transport::fromDsn('smtp://127.0.0.1:PORT')", "exit 0", &got);
    relay.stop().await;
}

#[tokio::test]
async fn nodemailer_sends_sixty_recipients_and_all_reach_postmark() {
    let test = "nodemailer_sends_sixty_recipients_and_all_reach_postmark";
    let Some(node) = support::real_client("node", test) else { return };
    let folder = interop_dir().join("nodemailer");
    if real_file(&folder.join("node_modules/nodemailer/package.json"), test, "npm ci in tests/interop/nodemailer")
        .is_none()
    {
        return;
    }
    let (fake, mut relay) = relay().await;
    let mut cmd = Command::new(node);
    cmd.current_dir(&folder).arg("send.js").arg(relay.addr.port().to_string());
    let out = run(cmd, Vec::new()).await;
    assert_success("nodemailer", &out);
    let resolved: Value = serde_json::from_slice(&out.stdout).expect("nodemailer's result as JSON");
    assert_eq!((resolved["accepted"].as_u64(), resolved["rejected"].as_u64()), (Some(60), Some(0)), "{resolved}");
    // 60 recipients in groups of 50: To, Cc and 25 Bcc in the first request; the last 10 are
    // hidden only, so (Postmark needing a To) one request each, each To that recipient alone.
    let got = emails(&fake, 11).await;
    let want: Vec<String> = {
        let mut w: Vec<String> = (0..60).map(|i| format!("n{i}@example.org")).collect();
        w.sort();
        w
    };
    assert_eq!(all_recipients(&got), want, "every recipient, once");
    for email in &got {
        let count = ["To", "Cc", "Bcc"].iter().map(|f| addresses(email, f).len()).sum::<usize>();
        assert!(count <= 50, "{count} recipients in one request");
        assert_eq!(field(email, "From"), "Node App <node@example.com>");
        assert_eq!(field(email, "Subject"), "nodemailer sixty");
        assert_eq!(field(email, "TextBody"), "hello from node");
        assert_eq!(field(email, "HtmlBody"), "<p>hello from <b>node</b></p>");
        assert_eq!(attachments(email).iter().map(|a| a.0.as_str()).collect::<Vec<_>>(), ["notes.txt"]);
        // A Bcc recipient never appears in To or Cc beside anybody else.
        let visible = [addresses(email, "To"), addresses(email, "Cc")].concat();
        for hidden in 25..60 {
            let a = format!("n{hidden}@example.org");
            assert!(!visible.contains(&a) || visible.len() == 1, "{email}");
        }
    }
    assert!(field(&got[0], "To").starts_with("Reader 0 <n0@example.org>, Reader 1 <n1@example.org>"));
    let result = format!("accepted 60, rejected 0 ({})", resolved["response"].as_str().unwrap_or(""));
    report("nodemailer 10.6.1 (npm)", "node send.js (20 To, 5 Cc, 35 Bcc)", &result, &got);
    relay.stop().await;
}

#[tokio::test]
async fn smtplib_sends_sixty_recipients_and_an_smtputf8_message() {
    let test = "smtplib_sends_sixty_recipients_and_an_smtputf8_message";
    let Some(python) = support::real_client("python3", test) else { return };
    let (fake, mut relay) = relay().await;
    let mut cmd = Command::new(python);
    cmd.arg(interop_dir().join("python/smtplib_send.py")).arg(relay.addr.port().to_string());
    let out = run(cmd, Vec::new()).await;
    assert_success("smtplib", &out);
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["refused"], serde_json::json!({}), "all sixty accepted");
    // The non-ASCII local part is refused at RCPT with a reply that names it in UTF-8; the
    // recipient at the internationalized domain is taken.
    let refused = lines[1]["refused"].as_object().unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused["jörg@example.com"][0], 553);
    assert_eq!(
        refused["jörg@example.com"][1],
        "5.6.7 Postmark cannot send to jörg@example.com: its local part (before the @) is not ASCII; only the \
         domain may be internationalized"
    );
    // Sixty: 30 in To and 20 Bcc in one request, the last 10 hidden ones alone (as above); and
    // the SMTPUTF8 message.
    let got = emails(&fake, 12).await;
    let (sixty, utf8): (Vec<Value>, Vec<Value>) = got.into_iter().partition(|e| field(e, "Subject") == "smtplib sixty");
    let want: Vec<String> = {
        let mut w: Vec<String> = (0..60).map(|i| format!("p{i}@example.org")).collect();
        w.sort();
        w
    };
    assert_eq!(all_recipients(&sixty), want);
    assert!(sixty.iter().all(|e| field(e, "From") == "Python App <py@example.com>"));
    report("Python 3 smtplib", "smtplib.SMTP.send_message(msg, to_addrs=60)", "no recipient refused", &sixty);
    let email = &utf8[0];
    assert_eq!(field(email, "From"), "Jürgen Müller <info@xn--bcher-kva.de>");
    assert_eq!(field(email, "To"), "Kunde Köln <kunde@xn--bcher-kva.de>");
    assert_eq!(field(email, "Subject"), "Grüße aus Köln");
    assert_eq!(field(email, "TextBody"), "Schöne Grüße\r\n");
    assert_eq!(
        support::email_header(email, "X-Relay-Original-To"),
        Some("Kunde Köln <kunde@bücher.de>, jörg@example.com")
    );
    report(
        "Python 3 smtplib (SMTPUTF8)",
        "send_message(msg) to kunde@bücher.de, jörg@example.com",
        "250 for kunde@xn--bcher-kva.de; 553 5.6.7 for jörg@",
        &utf8,
    );
    relay.stop().await;
}
