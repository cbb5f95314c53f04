//! The sendmail-mode clients, unmodified, from Debian's packages: bsd-mailx, GNU mailutils,
//! mutt, PHP's `mail()`, Symfony Mailer's `sendmail://default` (`-bs`) and Debian's cron. Each
//! runs the relay's binary as its `sendmail` (through the client's own setting, or bind-mounted
//! at `/usr/sbin/sendmail` in a private mount namespace for those that cannot be told another
//! path), against a relay that forwards to the fake Postmark API; the tests assert on the request
//! the fake receives.
//!
//! What each client runs (seen with a logging wrapper): bsd-mailx `sendmail -i -t` with
//! `To: root`; mailutils `sendmail -oi -f root@<host> -t`; mutt `sendmail -oem -oi --
//! root@<host>`; PHP `sendmail -t -i`; Symfony `sendmail -bs`; cron `sendmail -FCronDaemon -i
//! -B8BITMIME -oem root` with `From: root (Cron Daemon)`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use postmark_fake::http::FakeApi;
use serde_json::Value;

use crate::support::{REQUIRE_CLIENTS, TestRelay, real_client, wait_for};

const TOKEN: &str = "server-token-for-tests";

/// The relay (forwarding to the fake API), its config, and a directory for the clients: `bin/`
/// holds the relay's binary as `sendmail`, `home/` is the clients' `HOME`.
struct Harness {
    fake: FakeApi,
    relay: TestRelay,
    config: PathBuf,
    clients: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Self {
        let fake = FakeApi::start().await;
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let config = dir.path().join("relay.toml");
        std::fs::write(
            &config,
            format!("spool = {spool:?}\nlocal_domain = \"host.example\"\n[aliases]\nroot = \"ops@example.com\"\n"),
        )
        .unwrap();
        let url = fake.url();
        let relay = TestRelay::start_on(
            dir,
            spool,
            &["--api-url", &url, "--max-retry-delay", "200ms", "--config", config.to_str().unwrap()],
            &[("POSTMARK_SERVER_TOKEN", TOKEN)],
        )
        .await;
        let clients = tempfile::tempdir().unwrap();
        std::fs::create_dir(clients.path().join("bin")).unwrap();
        std::fs::create_dir(clients.path().join("home")).unwrap();
        std::os::unix::fs::symlink(binary(), clients.path().join("bin/sendmail")).unwrap();
        Self { fake, relay, config, clients }
    }

    /// `bin/sendmail`: the relay's binary under the name `sendmail`.
    fn sendmail(&self) -> PathBuf {
        self.clients.path().join("bin/sendmail")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.clients.path().join(name)
    }

    /// `program` with the relay's config in its environment (which it passes on to sendmail).
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("RELAY_CONFIG", &self.config)
            .env_remove("RELAY_SPOOL")
            .env("HOME", self.path("home"))
            .current_dir(self.path("home"));
        cmd
    }

    /// Runs `cmd` with `input` on its standard input; panics unless it exits 0.
    fn run(&self, mut cmd: Command, input: &[u8]) -> String {
        let mut child =
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn the client");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{cmd:?}: {}: {text}", out.status);
        text
    }

    /// The one request the fake got (after waiting for it); fails on a second.
    async fn email(&self) -> Value {
        let email = wait_for("the message at the fake Postmark API", Duration::from_secs(20), || {
            self.fake.emails().into_iter().next()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(self.fake.emails().len(), 1, "exactly one request");
        email
    }

    async fn stop(mut self) {
        self.relay.stop().await;
    }
}

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_postmark-relay"))
}

/// The login name the relay's sendmail sees here (the default sender's local part).
fn user() -> String {
    postmark_relay::sendmail::current_user(&|k| std::env::var(k).ok())
}

/// The request's recipients (after the aliases), sender, subject and text.
#[track_caller]
fn assert_sent(email: &Value, to: &str, from: &str, subject: &str, text: &str) {
    assert_eq!(
        [&email["To"], &email["From"], &email["Subject"], &email["TextBody"]],
        [to, from, subject, text],
        "To, From, Subject, TextBody of {email}"
    );
}

/// Whether this test may bind-mount the relay's binary over `/usr/sbin/sendmail` in a private
/// mount namespace (for clients that run that path and no other): as root, with `unshare` and an
/// MTA's `/usr/sbin/sendmail` to mount over (CI installs msmtp-mta). Else `NOT RUN`, or a failure
/// where [`REQUIRE_CLIENTS`] is set and the test runs as root.
fn private_sendmail(test: &str) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    if !root {
        eprintln!("NOT RUN {test}: needs root for a private mount namespace");
        return None;
    }
    let unshare = real_client("unshare", test)?;
    if !Path::new("/usr/sbin/sendmail").exists() {
        assert!(
            std::env::var_os(REQUIRE_CLIENTS).is_none(),
            "{test}: no /usr/sbin/sendmail to bind the relay over (install msmtp-mta, see .ci/interop-packages)"
        );
        eprintln!("NOT RUN {test}: no /usr/sbin/sendmail to bind the relay over");
        return None;
    }
    Some(unshare)
}

/// `program args…` in a private mount namespace where `/usr/sbin/sendmail` is the relay's binary
/// and each `(source, target)` of `binds` is bind-mounted too.
fn in_namespace(h: &Harness, unshare: &Path, binds: &[(PathBuf, &str)], program: &str, args: &[&str]) -> Command {
    let mut script = String::from("set -e; mount --bind \"$0\" /usr/sbin/sendmail");
    for (i, _) in binds.iter().enumerate() {
        script.push_str(&format!("; mount --bind \"$BIND_SRC_{i}\" \"$BIND_DST_{i}\""));
    }
    script.push_str("; exec \"$@\"");
    let mut cmd = h.command(unshare);
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script]).arg(binary()).arg(program).args(args);
    for (i, (source, target)) in binds.iter().enumerate() {
        cmd.env(format!("BIND_SRC_{i}"), source).env(format!("BIND_DST_{i}"), target);
    }
    cmd
}

#[tokio::test]
async fn bsd_mailx_to_root() {
    let Some(mailx) = real_client("bsd-mailx", "bsd_mailx_to_root") else { return };
    let h = Harness::start().await;
    // bsd-mailx runs `sendmail -i -t` (its `sendmail` variable names the program) with `To: root`.
    let mailrc = h.path("mailrc");
    std::fs::write(&mailrc, format!("set sendmail={}\n", h.sendmail().display())).unwrap();
    let mut cmd = h.command(&mailx);
    cmd.env("MAILRC", &mailrc).args(["-s", "disk report", "root"]);
    h.run(cmd, b"/ is 91% full\n");
    let email = h.email().await;
    // root, through the alias; From added with the user's name.
    assert_sent(&email, "ops@example.com", &format!("{}@host.example", user()), "disk report", "/ is 91% full\r\n");
    assert!(email.get("Cc").is_none_or(Value::is_null) && email.get("Bcc").is_none_or(Value::is_null), "{email}");
    h.stop().await;
}

#[tokio::test]
async fn mailutils_mail_to_root() {
    let Some(mail) = real_client("mail.mailutils", "mailutils_mail_to_root") else { return };
    let h = Harness::start().await;
    // mailutils runs `sendmail -oi -f <user>@<hostname> -t`, no From header.
    let mut cmd = h.command(&mail);
    let mailer = format!("set sendmail=sendmail://{}", h.sendmail().display());
    cmd.args(["-E", &mailer, "-s", "backup report", "root"]);
    h.run(cmd, b"backup done\n");
    let email = h.email().await;
    // -f <user>@<hostname> is local: it takes local_domain.
    assert_sent(&email, "ops@example.com", &format!("{}@host.example", user()), "backup report", "backup done\r\n");
    assert_eq!(
        crate::support::email_header(&email, "User-Agent").map(|v| v.starts_with("mail (GNU Mailutils")),
        Some(true),
        "{email}"
    );
    h.stop().await;
}

#[tokio::test]
async fn mutt_in_sendmail_mode_to_root() {
    let Some(mutt) = real_client("mutt", "mutt_in_sendmail_mode_to_root") else { return };
    let h = Harness::start().await;
    // mutt runs `sendmail -oem -oi -- root@<hostname>`, From and To at the host name.
    let muttrc = h.path("muttrc");
    std::fs::write(
        &muttrc,
        format!("set sendmail=\"{} -oem -oi\"\nset realname=\"Back Up\"\n", h.sendmail().display()),
    )
    .unwrap();
    let mut cmd = h.command(&mutt);
    cmd.args(["-n", "-F"]).arg(&muttrc).args(["-s", "mutt report", "root"]);
    h.run(cmd, b"Hello from mutt.\n");
    let email = h.email().await;
    // root@<hostname> is local, in the envelope and in From.
    let from = format!("Back Up <{}@host.example>", user());
    assert_sent(&email, "ops@example.com", &from, "mutt report", "Hello from mutt.\r\n");
    h.stop().await;
}

#[tokio::test]
async fn php_mail_to_root() {
    let Some(php) = real_client("php", "php_mail_to_root") else { return };
    let h = Harness::start().await;
    // PHP's mail() runs sendmail_path, `sendmail -t -i` by default, with `To: root` (and ends
    // the body with a line break of its own).
    let mut cmd = h.command(&php);
    cmd.arg("-d").arg(format!("sendmail_path={} -t -i", h.sendmail().display())).args([
        "-r",
        r#"exit(mail("root", "Nightly import", "Imported 42 rows.", "From: root (Import Job)") ? 0 : 1);"#,
    ]);
    h.run(cmd, b"");
    let email = h.email().await;
    // The comment is the display name.
    assert_sent(&email, "ops@example.com", "Import Job <root@host.example>", "Nightly import", "Imported 42 rows.\r\n");
    h.stop().await;
}

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 1, 0, 0, 0, 1, 8,
    6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0,
    0xf0, 0x1f, 0, 0x05, 0, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60,
    0x82,
];

#[tokio::test]
async fn php_mail_multipart_with_an_inline_image() {
    let Some(php) = real_client("php", "php_mail_multipart_with_an_inline_image") else { return };
    let h = Harness::start().await;
    std::fs::write(h.path("home/logo.png"), PNG).unwrap();
    // What a PHP application builds by hand: multipart/related, the HTML referring to the image by
    // its Content-ID, the envelope sender as mail()'s fifth argument.
    let script = r#"
        $b = "b1_" . md5("x");
        $img = chunk_split(base64_encode(file_get_contents("logo.png")));
        $body = "--$b\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n"
              . "<p>Thanks for your order, J\u{00fc}rgen.</p><img src=\"cid:logo@shop\">\r\n"
              . "--$b\r\nContent-Type: image/png; name=\"logo.png\"\r\nContent-Transfer-Encoding: base64\r\n"
              . "Content-ID: <logo@shop>\r\nContent-Disposition: inline; filename=\"logo.png\"\r\n\r\n$img"
              . "--$b--\r\n";
        $headers = ["From" => "Shop <shop@example.com>", "Cc" => "root", "MIME-Version" => "1.0",
                    "Content-Type" => "multipart/related; boundary=\"$b\""];
        exit(mail("Customer <customer@example.net>", "=?UTF-8?B?" . base64_encode("Your order ✓") . "?=", $body,
                  $headers, "-fbounce@example.com") ? 0 : 1);
    "#;
    let mut cmd = h.command(&php);
    cmd.arg("-d").arg(format!("sendmail_path={} -t -i", h.sendmail().display())).args(["-r", script]);
    h.run(cmd, b"");
    let email = h.email().await;
    assert_eq!(email["From"], "Shop <shop@example.com>");
    assert_eq!(email["To"], "Customer <customer@example.net>", "{email}");
    assert_eq!(email["Bcc"], "ops@example.com", "Cc: root became its alias, from the envelope: {email}");
    assert_eq!(email["Subject"], "Your order ✓");
    // The line break before the boundary belongs to the boundary.
    assert_eq!(email["HtmlBody"], "<p>Thanks for your order, Jürgen.</p><img src=\"cid:logo@shop\">");
    let attachments = email["Attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1, "{email}");
    assert_eq!(attachments[0]["Name"], "logo.png");
    assert_eq!(attachments[0]["ContentType"], "image/png");
    assert_eq!(attachments[0]["ContentID"], "cid:logo@shop");
    use base64::Engine as _;
    assert_eq!(attachments[0]["Content"], base64::engine::general_purpose::STANDARD.encode(PNG));
    h.stop().await;
}

#[tokio::test]
async fn symfony_mailer_over_sendmail_default_speaks_dash_bs() {
    const TEST: &str = "symfony_mailer_over_sendmail_default_speaks_dash_bs";
    let Some(php) = real_client("php", TEST) else { return };
    // php-symfony-mailer's autoloader (a file, not a program: found the same way).
    let Some(autoload) = real_client("/usr/share/php/Symfony/Component/Mailer/autoload.php", TEST) else { return };
    let h = Harness::start().await;
    let script = format!(
        r#"<?php
        require '{autoload}';
        use Symfony\Component\Mailer\{{Mailer, Transport}};
        use Symfony\Component\Mime\{{Address, Email}};
        $dsn = getenv('MAILER_DSN');
        $email = (new Email())
            ->from(new Address('app@example.com', 'The App'))
            ->to(new Address('user@example.net', 'A User'))
            ->cc('root@localhost')
            ->subject('Welcome')
            ->text("Hello from Symfony.\n")
            ->html('<p>Hello from <b>Symfony</b>.</p>')
            ->attach("id,total\n1,9.99\n", 'invoice.csv', 'text/csv');
        (new Mailer(Transport::fromDsn($dsn)))->send($email);
        "#,
        autoload = autoload.display()
    );
    std::fs::write(h.path("home/send.php"), script).unwrap();
    // As the application has it: `sendmail://default`, which runs `/usr/sbin/sendmail -bs`.
    // Without root for the namespace, the same transport is given the relay's path.
    let cmd = match private_sendmail(TEST) {
        Some(unshare) => {
            let mut cmd = in_namespace(&h, &unshare, &[], php.to_str().unwrap(), &["send.php"]);
            cmd.env("MAILER_DSN", "sendmail://default");
            cmd
        }
        None => {
            let mut cmd = h.command(&php);
            cmd.arg("send.php")
                .env("MAILER_DSN", format!("sendmail://default?command={}%20-bs", h.sendmail().display()));
            cmd
        }
    };
    h.run(cmd, b"");
    let email = h.email().await;
    assert_eq!(email["From"], "The App <app@example.com>");
    assert_eq!(email["To"], "A User <user@example.net>", "{email}");
    assert_eq!(email["Bcc"], "ops@example.com", "Cc root@localhost is local: its alias, from the envelope: {email}");
    assert_eq!(email["Subject"], "Welcome");
    assert_eq!(email["TextBody"], "Hello from Symfony.\r\n");
    assert_eq!(email["HtmlBody"], "<p>Hello from <b>Symfony</b>.</p>");
    let attachments = email["Attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1, "{email}");
    assert_eq!(attachments[0]["Name"], "invoice.csv");
    use base64::Engine as _;
    assert_eq!(attachments[0]["Content"], base64::engine::general_purpose::STANDARD.encode("id,total\n1,9.99\n"));
    h.stop().await;
}

#[tokio::test]
async fn debian_cron_mails_a_jobs_output() {
    const TEST: &str = "debian_cron_mails_a_jobs_output";
    let Some(cron) = real_client("cron", TEST) else { return };
    let Some(unshare) = private_sendmail(TEST) else { return };
    let h = Harness::start().await;
    // Its own crontab (an @reboot job, which a fresh /run makes it run at once), its own /run
    // (pid file, reboot flag), nothing of the host's crontabs; `/usr/sbin/sendmail` is the relay.
    let dirs = ["cron.d", "crontabs", "run"].map(|d| {
        let path = h.path(d);
        std::fs::create_dir(&path).unwrap();
        path
    });
    std::fs::write(dirs[0].join("report"), "@reboot root echo \"backup done\"; echo \"2 files\"\n").unwrap();
    std::fs::write(h.path("crontab"), "").unwrap();
    let binds = [
        (dirs[0].clone(), "/etc/cron.d"),
        (dirs[1].clone(), "/var/spool/cron/crontabs"),
        (dirs[2].clone(), "/run"),
        (h.path("crontab"), "/etc/crontab"),
    ];
    let mut cmd = in_namespace(&h, &unshare, &binds, cron.to_str().unwrap(), &["-f", "-L", "15"]);
    let mut daemon = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let email = h.email().await;
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(email["To"], "ops@example.com", "{email}");
    assert_eq!(email["From"], "Cron Daemon <root@host.example>", "From: root (Cron Daemon): {email}");
    let subject = email["Subject"].as_str().unwrap();
    assert!(
        subject.starts_with("Cron <root@") && subject.ends_with("> echo \"backup done\"; echo \"2 files\""),
        "{subject}"
    );
    assert_eq!(email["TextBody"], "backup done\r\n2 files\r\n");
    assert_eq!(crate::support::email_header(&email, "X-Cron-Env"), Some("<SHELL=/bin/sh>"), "{email}");
    h.stop().await;
}
