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
        let mut cx = Context { env: &env, stdin: &mut stdin, stdout: &mut stdout, user: "cron".into() };
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
        (&["-bs"], b"", exit::USAGE, "-bs is not supported"),
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
    // Stored as submitted; the relay rewrites when it imports.
    assert_eq!(env.mail_from, "cron");
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
