//! The `sendmail` entry point, as cron and PHP use it: the binary run with sendmail's options (and
//! under the name `sendmail`), with the relay down and up.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use postmark_fake::http::FakeApi;

use crate::support::{TestRelay, files, wait_for};

const TOKEN: &str = "server-token-for-tests";

/// A spool and a config file with an alias for root, as an operator would set them up.
struct Setup {
    dir: tempfile::TempDir,
    spool: PathBuf,
    config: PathBuf,
}

fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!("spool = {spool:?}\nlocal_domain = \"host.example\"\n{extra}\n[aliases]\nroot = \"ops@example.com\"\n"),
    )
    .unwrap();
    Setup { dir, spool, config }
}

/// Runs `program args…` with `input` on stdin; returns (exit code, stderr).
fn run(program: &Path, args: &[&str], config: &Path, input: &[u8]) -> (i32, String) {
    run_after(program, &[], args, config, input)
}

/// [`run`] with the relay's own flags `global` before the subcommand.
fn run_after(program: &Path, global: &[&str], args: &[&str], config: &Path, input: &[u8]) -> (i32, String) {
    let mut cmd = Command::new(program);
    if program.file_name().is_some_and(|n| n != "sendmail") {
        cmd.args(global).arg("sendmail");
    }
    let mut child = cmd
        .args(args)
        .env("RELAY_CONFIG", config)
        .env("LOGNAME", "cron")
        .env_remove("RELAY_SPOOL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may refuse (and exit) before reading its input: a broken pipe is then expected.
    let _ = child.stdin.take().unwrap().write_all(input);
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_postmark-relay"))
}

async fn relay_on(setup: Setup, fake: &FakeApi) -> TestRelay {
    let url = fake.url();
    let config = setup.config.to_str().unwrap().to_owned();
    TestRelay::start_on(
        setup.dir,
        setup.spool,
        &["--api-url", &url, "--max-retry-delay", "200ms", "--config", &config],
        &[("POSTMARK_SERVER_TOKEN", TOKEN)],
    )
    .await
}

#[tokio::test]
async fn mail_submitted_while_the_relay_is_down_is_delivered_once_when_it_starts() {
    let fake = FakeApi::start().await;
    let setup = setup("");
    // cron: `sendmail -FCronDaemon -i -B8BITMIME -oem root`, bare LF line ends.
    let (code, err) = run(
        &binary(),
        &["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
        &setup.config,
        b"Subject: Cron <cron@host> /usr/local/bin/backup\n\nbackup done\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(files(&setup.spool.join("maildrop")).len(), 1, "durable in the maildrop before exit 0");
    assert!(fake.emails().is_empty());

    let mut relay = relay_on(setup, &fake).await;
    let email =
        wait_for("the cron mail at the fake", Duration::from_secs(10), || fake.emails().into_iter().next()).await;
    assert_eq!(email["To"], "ops@example.com");
    assert_eq!(email["Subject"], "Cron <cron@host> /usr/local/bin/backup");
    assert!(email["From"].as_str().unwrap().contains("cron@host.example"), "{email}");
    assert_eq!(email["TextBody"], "backup done\r\n");
    wait_for("the maildrop to empty", Duration::from_secs(5), || relay.files("maildrop").is_empty().then_some(()))
        .await;
    wait_for("the queue to empty", Duration::from_secs(5), || relay.files("queue").is_empty().then_some(())).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fake.emails().len(), 1, "delivered exactly once");
    relay.stop().await;
}

#[tokio::test]
async fn php_style_submission_to_a_running_relay_with_the_binary_named_sendmail() {
    let fake = FakeApi::start().await;
    let setup = setup("");
    let link_dir = setup.dir.path().join("bin");
    std::fs::create_dir(&link_dir).unwrap();
    let link = link_dir.join("sendmail");
    std::os::unix::fs::symlink(binary(), &link).unwrap();
    let config = setup.config.clone();
    let mut relay = relay_on(setup, &fake).await;

    // PHP's mail(): `sendmail -t -i`, with -f from its fifth argument.
    let msg = b"To: customer@example.net\nBcc: audit@example.com\nSubject: Your order\nFrom: Shop <shop@example.com>\n\
                \nThanks.\n.\nStill the message.\n";
    let (code, err) = run(&link, &["-t", "-i", "-f", "shop@example.com"], &config, msg);
    assert_eq!(code, 0, "{err}");
    let email =
        wait_for("the PHP mail at the fake", Duration::from_secs(10), || fake.emails().into_iter().next()).await;
    assert_eq!(email["To"], "customer@example.net");
    assert_eq!(email["Bcc"], "audit@example.com", "Bcc delivered, from the envelope");
    assert_eq!(email["TextBody"], "Thanks.\r\n.\r\nStill the message.\r\n");
    let headers = email["Headers"].as_array().map(|h| format!("{h:?}")).unwrap_or_default();
    assert!(!headers.to_ascii_lowercase().contains("bcc"), "{headers}");
    relay.stop().await;
}

#[tokio::test]
async fn exit_codes_follow_sysexits_and_nothing_is_half_queued() {
    let setup = setup("allowed_senders = [\"example.com\"]");
    let cases: &[(&[&str], &[u8], i32, &str)] = &[
        (&["-bd"], b"", 64, "not supported"),
        (&["--queue-dir", "/x"], b"", 64, "unknown option --queue-dir"),
        (&["-t"], b"Subject: no one\n\nx\n", 64, "no recipients"),
        (&["nobody@"], b"From: a@example.com\n\nx\n", 67, "not an address"),
        (&["u@example.net"], b"\n", 65, "no message"),
        (&["-f", "a@example.com", "u@example.net"], b"From: x@elsewhere.example\n\nx\n", 77, "allowed_senders"),
    ];
    for (args, input, code, needle) in cases {
        let (got, err) = run(&binary(), args, &setup.config, input);
        assert_eq!(got, *code, "{args:?}: {err}");
        assert!(err.starts_with("sendmail: ") && err.contains(needle) && err.lines().count() == 1, "{args:?}: {err}");
    }
    assert!(files(&setup.spool.join("maildrop")).is_empty());
    let (got, err) = run(&binary(), &["-C", "/no/such/relay.toml", "u@example.net"], &setup.config, b"x\n");
    assert_eq!(got, 78, "{err}");
}

#[tokio::test]
async fn mailq_lists_the_queue() {
    let setup = setup("");
    let (code, err) = run(&binary(), &["someone@example.net"], &setup.config, b"From: a@example.com\n\nx\n");
    assert_eq!(code, 0, "{err}");
    let out = Command::new(binary()).args(["sendmail", "-bp"]).env("RELAY_CONFIG", &setup.config).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 message(s) in the maildrop"));
}

#[test]
fn the_relays_global_spool_and_config_are_honoured_and_its_other_flags_refused() {
    let setup = setup("");
    let other = setup.dir.path().join("other-spool");
    let other_config = setup.dir.path().join("other.toml");
    std::fs::write(&other_config, "[aliases]\nroot = \"ops@example.com\"\n").unwrap();
    let sendmail = |global: &[&str], input: &[u8]| {
        run_after(&binary(), global, &["-f", "a@example.com", "root"], &setup.config, input)
    };
    let spool = other.to_str().unwrap();
    let (code, err) = sendmail(&["--spool", spool], b"Subject: s\n\nx\n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(files(&other.join("maildrop")).len(), 1, "in the --spool given");
    assert!(files(&setup.spool.join("maildrop")).is_empty(), "not in the config file's");
    // --config: the other file (no spool in it, so --spool still decides).
    let (code, err) = sendmail(&["--config", other_config.to_str().unwrap(), "--spool", spool], b"Subject: s\n\nx\n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(files(&other.join("maildrop")).len(), 2);
    let (code, err) = sendmail(&["--config", "/no/such/relay.toml"], b"Subject: s\n\nx\n");
    assert_eq!(code, 78, "the --config given is the one read: {err}");
    // Any other relay flag would be ignored: refused.
    let (code, err) = sendmail(&["--via", "smtp"], b"Subject: s\n\nx\n");
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--via") && err.contains("only --config and --spool"), "{err}");
    assert_eq!(files(&other.join("maildrop")).len() + files(&setup.spool.join("maildrop")).len(), 2);
}

#[test]
fn sendmail_help_prints_the_usage() {
    for args in [&["sendmail", "--help"][..], &["sendmail", "-bs", "--help"][..]] {
        let out = Command::new(binary()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("Usage: sendmail") && text.contains("-bs") && text.contains("-t"), "{text}");
    }
}

#[test]
fn dash_bs_is_an_smtp_session_on_stdin_and_stdout() {
    let setup = setup("");
    let mut child = Command::new(binary())
        .args(["sendmail", "-bs"])
        .env("RELAY_CONFIG", &setup.config)
        .env_remove("RELAY_SPOOL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"EHLO app\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<root@localhost>\r\nDATA\r\nFrom: app@example.com\r\nSubject: s\r\n\r\nx\r\n.\r\nQUIT\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("220 ") && text.contains("\r\n250 2.0.0 Ok: queued as "), "{text}");
    assert!(text.lines().last().is_some_and(|l| l.starts_with("221 2.0.0 ")), "{text}");
    assert_eq!(files(&setup.spool.join("maildrop")).len(), 1, "durable before the 250");
}
