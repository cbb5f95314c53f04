use super::*;
use crate::spool::maildrop;

struct Run {
    dir: tempfile::TempDir,
    config: String,
}

impl Run {
    fn new(config: &str) -> Self {
        Self { dir: tempfile::tempdir().unwrap(), config: config.to_owned() }
    }

    /// The host: `vm`, without a dot, `/etc/mailname` or a full name in `/etc/hosts` (a
    /// container), unless a test writes them.
    fn host_files(&self) -> HostFiles {
        let files = HostFiles {
            mailname: self.dir.path().join("mailname"),
            hostname: self.dir.path().join("hostname"),
            hosts: self.dir.path().join("hosts"),
        };
        if !files.hostname.exists() {
            std::fs::write(&files.hostname, "vm\n").unwrap();
        }
        files
    }

    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    fn sendmail(&self, args: &[&str], input: &[u8]) -> (Result<Vec<String>, Failure>, String) {
        let config = self.dir.path().join("relay.toml");
        std::fs::write(&config, format!("spool = {:?}\n{}", self.spool(), self.config)).unwrap();
        let env_config = config.to_str().unwrap().to_owned();
        let env = move |k: &str| (k == "RELAY_CONFIG").then(|| env_config.clone());
        let mut stdin = input;
        let mut stdout = Vec::new();
        let host = self.host_files();
        let mut cx = Context { env: &env, stdin: &mut stdin, stdout: &mut stdout, user: "cron".into(), host };
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let result = run(&args, &mut cx);
        (result, String::from_utf8(stdout).unwrap())
    }

    /// The messages in the maildrop: envelope and text.
    fn dropped(&self) -> Vec<(Envelope, String)> {
        maildrop::waiting(&self.spool())
            .unwrap()
            .into_iter()
            .map(|(id, path)| {
                let m = maildrop::read(&id, &path).unwrap();
                (m.header.envelope, String::from_utf8(m.raw).unwrap())
            })
            .collect()
    }
}

const LOCAL: &str = "local_domain = \"host.example\"\n[aliases]\nroot = \"ops@example.com\"\n";

#[test]
fn cron_style_mail_to_root_is_aliased_completed_and_durable() {
    let run = Run::new(LOCAL);
    let (result, _) = run
        .sendmail(&["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"], b"Subject: Cron <cron@host> backup\n\nok\n");
    let ids = result.unwrap();
    assert_eq!(ids.len(), 1);
    let dropped = run.dropped();
    assert_eq!(dropped.len(), 1);
    let (env, text) = &dropped[0];
    assert_eq!(env.mail_from, "cron@host.example");
    assert_eq!(env.rcpt_to, ["ops@example.com"]);
    assert!(text.starts_with("From: CronDaemon <cron@host.example>\r\nDate: "), "{text}");
    assert!(text.contains("\r\nMessage-ID: <") && text.ends_with("\r\n\r\nok\r\n"), "{text}");
    assert!(!text.contains("\r\r") && !text.replace("\r\n", "").contains('\n'), "only CRLF line ends");
}

#[test]
fn php_style_dash_t_reads_recipients_and_removes_bcc() {
    let run = Run::new("");
    let msg = b"From: App <app@example.com>\nTo: a@example.com, B <b@example.com>\nCc: c@example.com\n\
                Bcc: hidden@example.com,\n other@example.com\nSubject: order\n\n.\nA line with one dot above.\n";
    let (result, _) = run.sendmail(&["-t", "-i", "-f", "bounce@example.com"], msg);
    result.unwrap();
    let (env, text) = &run.dropped()[0];
    assert_eq!(env.mail_from, "bounce@example.com");
    assert_eq!(
        env.rcpt_to,
        ["a@example.com", "b@example.com", "c@example.com", "hidden@example.com", "other@example.com"]
    );
    assert!(!text.to_ascii_lowercase().contains("bcc") && !text.contains("hidden@"), "{text}");
    assert!(text.contains("\r\n.\r\nA line with one dot above."), "-i keeps the lone dot: {text}");
    assert!(text.contains("From: App <app@example.com>\r\n") && text.contains("Date: "));
}

#[test]
fn without_dash_i_a_lone_dot_ends_the_message() {
    let run = Run::new("");
    let (result, _) =
        run.sendmail(&["x@example.com"], b"From: a@example.com\nSubject: s\n\nfirst\n.\nnot part of it\n");
    result.unwrap();
    let (_, text) = &run.dropped()[0];
    assert!(text.ends_with("\r\n\r\nfirst\r\n") && !text.contains("not part"), "{text}");
}

#[test]
fn more_than_fifty_recipients_become_several_messages() {
    let run = Run::new("");
    let rcpts: Vec<String> = (0..120).map(|i| format!("r{i}@example.com")).collect();
    let mut args = vec!["-f", "a@example.com"];
    args.extend(rcpts.iter().map(String::as_str));
    let (result, _) = run.sendmail(&args, b"From: a@example.com\nSubject: s\n\nbody\n");
    assert_eq!(result.unwrap().len(), 3);
    let mut all: Vec<String> = run.dropped().into_iter().flat_map(|(e, _)| e.rcpt_to).collect();
    all.sort();
    let mut expected = rcpts.clone();
    expected.sort();
    assert_eq!(all, expected, "every recipient exactly once");
}

#[test]
fn bad_input_exits_with_sysexits_codes_and_queues_nothing() {
    let run = Run::new("allowed_senders = [\"example.com\"]\n");
    let cases: &[(&[&str], &[u8], u8, &str)] = &[
        (&["-bd"], b"", exit::USAGE, "-bd is not supported"),
        (&["-Q"], b"", exit::USAGE, "unknown option"),
        (&[], b"From: a@example.com\n\nx\n", exit::USAGE, "no recipients"),
        (&["-t"], b"From: a@example.com\nSubject: s\n\nx\n", exit::USAGE, "none in To"),
        (&["root"], b"From: a@example.com\n\nx\n", exit::NOUSER, "[aliases] root = "),
        (&["bad address@example.com"], b"From: a@example.com\n\nx\n", exit::NOUSER, "not an address"),
        (&["u@example.net"], b"", exit::DATAERR, "no message"),
        (&["-f", "a@example.com", "u@example.net"], b"From: www-data@host.example\n\nx\n", exit::NOPERM, "allowed_senders"),
        (&["-f", "spoof@evil.example", "u@example.net"], b"From: a@example.com\n\nx\n", exit::NOPERM, "allowed_senders"),
        (
            &["-f", "a@example.com", "u@example.net"],
            b"From: a@example.com\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: application/octet-stream; name=run.exe\nContent-Disposition: attachment; filename=run.exe\n\nMZ\n--b--\n",
            exit::DATAERR,
            ".exe",
        ),
    ];
    for (args, input, code, needle) in cases {
        let (result, _) = run.sendmail(args, input);
        let failure = result.unwrap_err();
        assert_eq!(failure.exit, *code, "{args:?}: {failure:?}");
        assert!(failure.message.contains(needle), "{args:?}: {}", failure.message);
    }
    assert!(run.dropped().is_empty(), "nothing queued");
}

#[test]
fn a_message_over_the_size_limit_is_refused_without_reading_it_all() {
    let run = Run::new("[limits]\nmax_message_size = 1000\n");
    let mut big = b"From: a@example.com\nSubject: s\n\n".to_vec();
    big.resize(5000, b'x');
    let (result, _) = run.sendmail(&["u@example.net"], &big);
    let f = result.unwrap_err();
    assert_eq!(f.exit, exit::DATAERR);
    assert!(f.message.contains("too large"), "{}", f.message);
}

#[test]
fn an_unreadable_spool_is_a_clear_cantcreat() {
    use std::os::unix::fs::PermissionsExt;
    let run = Run::new("");
    std::fs::create_dir_all(run.spool()).unwrap();
    std::fs::set_permissions(run.spool(), std::fs::Permissions::from_mode(0o500)).unwrap();
    // Root ignores permissions: then there is nothing to test here.
    let probe = run.spool().join("probe");
    let writable = std::fs::write(&probe, b"").is_ok();
    if !writable {
        let (result, _) = run.sendmail(&["u@example.net"], b"From: a@example.com\n\nx\n");
        let f = result.unwrap_err();
        assert_eq!(f.exit, exit::CANTCREAT, "{f:?}");
        assert!(f.message.contains("submitters' group"), "{}", f.message);
    }
    std::fs::set_permissions(run.spool(), std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn rewrite_from_is_checked_now_and_applied_once_by_the_relay() {
    let run = Run::new("rewrite_from = \"noreply@example.com\"\n");
    let (result, _) = run.sendmail(&["u@example.net"], b"From: www-data@host\nSubject: s\n\nbody\n");
    result.unwrap();
    let (env, text) = &run.dropped()[0];
    // Stored as submitted; the relay rewrites when it imports. The user's name has no domain
    // on this host (no local_domain, no dot, no /etc/mailname): the From header's address is the
    // sender.
    assert_eq!(env.mail_from, "www-data@host");
    assert!(text.contains("\r\nFrom: www-data@host\r\n") && !text.contains("noreply"), "{text}");
}

#[test]
fn dash_bp_lists_and_dash_q_marks_pending_mail() {
    let run = Run::new("");
    run.sendmail(&["u@example.net"], b"From: a@example.com\n\nx\n").0.unwrap();
    let (result, out) = run.sendmail(&["-bp"], b"");
    result.unwrap();
    assert!(out.contains("1 message(s) in the maildrop"), "{out}");
    let (result, out) = run.sendmail(&["-q"], b"");
    result.unwrap();
    assert!(out.contains("0 pending message(s)"), "{out}");
}

#[test]
fn the_user_name_comes_from_the_environment_or_passwd() {
    assert_eq!(current_user(&|k| (k == "LOGNAME").then(|| "alice".to_owned())), "alice");
    // Without LOGNAME and USER: the name /etc/passwd gives this process's uid.
    let name = current_user(&|_| None);
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    assert!(passwd.lines().any(|l| l.starts_with(&format!("{name}:"))) || name == "nobody", "{name}");
    assert_ne!(name, "alice");
}

/// Exactly what bsd-mailx writes to `sendmail -i -t` for `mail -s report root`.
const BSD_MAILX: &[u8] = b"To: root\nSubject: report\nX-Mailer: mail (GNU Mailutils 3.15)\n\nall fine\n";

#[test]
fn dash_t_takes_bare_local_names_and_applies_the_aliases() {
    let run = Run::new(LOCAL);
    run.sendmail(&["-i", "-t"], BSD_MAILX).0.unwrap();
    // PHP's mail("root, www-data", …): a list of bare names, and one at this host.
    run.sendmail(&["-t", "-i"], b"To: root, www-data\nCc: root@localhost, backup@vm\nSubject: s\n\nx\n").0.unwrap();
    let dropped = run.dropped();
    let mut all: Vec<Vec<String>> = dropped.iter().map(|(e, _)| e.rcpt_to.clone()).collect();
    all.sort();
    assert_eq!(
        all,
        [
            vec!["ops@example.com".to_owned()],
            vec!["ops@example.com".to_owned(), "www-data@host.example".to_owned(), "backup@host.example".to_owned()]
        ]
    );
    for (env, text) in &dropped {
        assert_eq!(env.mail_from, "cron@host.example");
        assert!(text.starts_with("From: cron@host.example\r\n"), "{text}");
    }
}

#[test]
fn without_local_domain_a_bare_header_recipient_is_refused_naming_the_alias() {
    let run = Run::new("[aliases]\nroot = \"ops@example.com\"\n");
    let (result, _) = run.sendmail(&["-i", "-t", "-f", "app@example.com"], b"To: www-data\nSubject: s\n\nx\n");
    let f = result.unwrap_err();
    assert_eq!(f.exit, exit::NOUSER);
    assert!(f.message.contains("[aliases] www-data = ") && f.message.contains("local_domain"), "{}", f.message);
    // The alias alone is enough.
    run.sendmail(&["-i", "-t", "-f", "app@example.com"], BSD_MAILX).0.unwrap();
    assert_eq!(run.dropped()[0].0.rcpt_to, ["ops@example.com"]);
}

#[test]
fn on_a_dotless_host_without_local_domain_the_error_names_the_fix() {
    let run = Run::new("[aliases]\nroot = \"ops@example.com\"\n");
    // cron's own message: no -f, From a bare name.
    let (result, _) = run
        .sendmail(&["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"], b"From: root (Cron Daemon)\nTo: root\n\nx\n");
    let f = result.unwrap_err();
    assert_eq!(f.exit, exit::CONFIG, "{f:?}");
    for needle in ["\"vm\" has no dot", "/etc/mailname", "-f ", "local_domain"] {
        assert!(f.message.contains(needle), "{needle}: {}", f.message);
    }
    assert!(!f.message.contains("empty"), "{}", f.message);
    let (result, _) = run.sendmail(&["root"], b"Subject: no From\n\nx\n");
    assert_eq!(result.unwrap_err().exit, exit::CONFIG);
    assert!(run.dropped().is_empty());
    // With -f it goes.
    run.sendmail(&["-f", "cron@example.com", "root"], b"From: root (Cron Daemon)\n\nx\n").0.unwrap();
    let (env, text) = &run.dropped()[0];
    assert_eq!(env.mail_from, "cron@example.com");
    assert!(text.contains("\r\nFrom: Cron Daemon <cron@example.com>\r\n"), "{text}");
}

#[test]
fn the_mail_name_or_the_full_host_name_is_the_default_domain() {
    let run = Run::new("[aliases]\nroot = \"ops@example.com\"\n");
    std::fs::write(run.dir.path().join("hosts"), "127.0.1.1 vm.example.org vm\n").unwrap();
    run.sendmail(&["root"], b"From: root (Cron Daemon)\n\nx\n").0.unwrap();
    std::fs::write(run.dir.path().join("mailname"), "mail.example.net\n").unwrap();
    // mutt and mailutils name this host in their addresses: local, aliased.
    run.sendmail(&["-oi", "-f", "root@vm", "-t"], b"To: root@vm.example.org\n\nx\n").0.unwrap();
    let mut dropped = run.dropped();
    dropped.sort_by_key(|(e, _)| e.mail_from.clone());
    let (env, text) = &dropped[0];
    assert_eq!(env.mail_from, "cron@vm.example.org");
    assert!(text.contains("\r\nFrom: Cron Daemon <root@vm.example.org>\r\n"), "{text}");
    assert_eq!(env.rcpt_to, ["ops@example.com"]);
    let (env, _) = &dropped[1];
    assert_eq!(env.mail_from, "root@mail.example.net", "-f root@<host name> is local: it takes the mail name");
    assert_eq!(env.rcpt_to, ["ops@example.com"], "root@<the FQDN> is local");
    // A bare sender now takes the mail name; an address at the mail name is not local (it is
    // usually the organisation's real domain).
    run.sendmail(&["root", "colleague@mail.example.net"], b"Subject: s\n\nx\n").0.unwrap();
    let third = run.dropped().into_iter().find(|(e, _)| e.mail_from == "cron@mail.example.net").unwrap();
    assert_eq!(third.0.rcpt_to, ["ops@example.com", "colleague@mail.example.net"]);
    let (result, _) = run.sendmail(&["-f", "a@example.com", "www-data@vm"], b"Subject: s\n\nx\n");
    assert!(result.unwrap_err().message.contains("\"www-data@vm\" is an address at this host and no alias"));
}

#[test]
fn a_leading_mbox_from_line_is_dropped() {
    let run = Run::new(LOCAL);
    run.sendmail(&["root"], b"From cron@host Tue Dec  8 01:00:00 2026\nSubject: s\nFrom: a@example.com\n\nbody\n")
        .0
        .unwrap();
    let (_, text) = &run.dropped()[0];
    assert!(text.starts_with("Date: ") || text.starts_with("Message-ID: "), "{text}");
    assert!(text.contains("\r\nSubject: s\r\nFrom: a@example.com\r\n\r\nbody\r\n"), "{text}");
    assert!(!text.contains("From cron@host"), "{text}");
}

#[test]
fn help_is_printed_and_the_spool_option_is_honoured() {
    let run = Run::new("");
    let (result, out) = run.sendmail(&["--help"], b"");
    result.unwrap();
    assert!(out.starts_with("Usage: sendmail") && out.contains("-bs") && out.contains("--spool DIR"), "{out}");
    let other = run.dir.path().join("other-spool");
    let spool = format!("--spool={}", other.display());
    run.sendmail(&[&spool, "u@example.net"], b"From: a@example.com\n\nx\n").0.unwrap();
    assert!(run.dropped().is_empty(), "not in the config file's spool");
    assert_eq!(maildrop::waiting(&other).unwrap().len(), 1, "in the one given");
}

#[test]
fn dash_bs_speaks_smtp_with_the_sessions_checks_and_queues_each_message_durably() {
    let run = Run::new(LOCAL);
    // What Symfony Mailer's sendmail transport writes to `sendmail -bs`, two messages and two
    // refusals in one session.
    let session = b"EHLO [127.0.0.1]\r\n\
        MAIL FROM:<app@example.com>\r\nRCPT TO:<root>\r\nRCPT TO:<nobody@>\r\nRCPT TO:<user@example.net>\r\nDATA\r\n\
        From: App <app@example.com>\r\nTo: user@example.net\r\nSubject: one\r\n\r\n..first\r\n.\r\n\
        MAIL FROM:<app@example.com>\r\nRCPT TO:<user@example.net>\r\nDATA\r\n\
        From: App <app@example.com>\r\nSubject: bad\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
        Content-Type: application/octet-stream; name=run.exe\r\nContent-Disposition: attachment; filename=run.exe\r\n\r\nMZ\r\n--b--\r\n.\r\n\
        QUIT\r\n";
    let (result, out) = run.sendmail(&["-bs"], session);
    let ids = result.unwrap();
    let replies: Vec<&str> = out.lines().map(|l| &l[..3]).collect();
    assert!(out.starts_with("220 "), "{out}");
    assert_eq!(ids.len(), 1, "{out}");
    assert!(out.contains(&format!("250 2.0.0 Ok: queued as {}\r\n", ids[0])), "{out}");
    assert!(out.contains("\r\n553 5.1.3 ") || out.contains("\r\n501 5.1.3 "), "the bad address is refused: {out}");
    assert!(out.contains("\r\n554 ") && out.contains(".exe"), "the forbidden attachment is refused at DATA: {out}");
    assert_eq!(replies.last(), Some(&"221"), "{out}");
    let dropped = run.dropped();
    assert_eq!(dropped.len(), 1);
    let (env, text) = &dropped[0];
    assert_eq!(env.mail_from, "app@example.com");
    assert_eq!(env.rcpt_to, ["ops@example.com", "user@example.net"], "the alias applied at RCPT");
    assert!(text.ends_with("Subject: one\r\n\r\n.first\r\n"), "dot-unstuffed: {text}");
}

#[test]
fn dash_bs_answers_451_when_the_maildrop_cannot_be_written_and_queues_nothing() {
    let run = Run::new(LOCAL);
    // A file where the spool should be: nothing can be written.
    std::fs::write(run.spool(), b"").unwrap();
    let session = b"HELO client\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<root>\r\nDATA\r\nSubject: s\r\nFrom: app@example.com\r\n\r\nx\r\n.\r\nQUIT\r\n";
    let (result, out) = run.sendmail(&["-bs"], session);
    assert!(result.unwrap().is_empty());
    assert!(out.contains("\r\n451 4.3.0 ") && !out.contains("queued as"), "{out}");
    // The end of input ends the session without a QUIT too.
    let (result, out) = run.sendmail(&["-bs"], b"EHLO x\r\nNOOP\r\n");
    assert!(result.unwrap().is_empty());
    assert!(out.starts_with("220 ") && out.ends_with("250 2.0.0 OK\r\n"), "{out}");
}

#[test]
fn mutts_addresses_at_this_host_are_local_in_the_envelope_and_the_from() {
    let run = Run::new(LOCAL);
    // mutt in sendmail mode: `sendmail -oem -oi -- root@vm`, From and To at the host name.
    let msg = b"Date: Tue, 8 Dec 2026 01:46:21 +0000\nFrom: root <root@vm>\nTo: root <root@vm>\nSubject: report\n\
                Message-ID: <axdh@vm>\n\nall fine\n";
    run.sendmail(&["-oem", "-oi", "--", "root@vm"], msg).0.unwrap();
    // mailutils: `sendmail -oi -f root@vm -t`, no From.
    run.sendmail(&["-oi", "-f", "root@vm", "-t"], b"Subject: report\nTo: root\n\nall fine\n").0.unwrap();
    for (env, text) in run.dropped() {
        assert_eq!(env.rcpt_to, ["ops@example.com"]);
        assert!(env.mail_from == "cron@host.example" || env.mail_from == "root@host.example", "{env:?}");
        assert!(
            text.contains("From: root <root@host.example>\r\n") || text.contains("From: root@host.example\r\n"),
            "{text}"
        );
    }
}
