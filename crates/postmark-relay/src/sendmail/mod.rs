//! The `sendmail` entry point: `postmark-relay sendmail [options] [recipients…]`, or the binary
//! run under the name `sendmail` (linked as `/usr/sbin/sendmail`, or PHP's `sendmail_path`).
//!
//! The message is read from standard input, completed (a leading mbox `From ` line dropped;
//! `Date`, `Message-ID` and `From` added when missing, a bare local name in `From` qualified;
//! bare LF line ends made CRLF), its recipients worked out (arguments, and with `-t` the
//! `To`/`Cc`/`Bcc` headers, bare local names included; `Bcc` then removed; aliases and
//! `local_domain` applied, see [`crate::policy`]),
//! and checked exactly as the relay checks a message received over SMTP (sender policy,
//! verified senders, Postmark's rules). Then it is written durably to the spool's maildrop
//! ([`crate::spool::maildrop`]) — whether or not the relay is running — and the command exits
//! 0. The relay imports it within a second of running.
//!
//! With `-bs` it speaks SMTP on standard input and output instead (`smtp`), with the relay's
//! own session code; each accepted message goes to the maildrop the same way.
//!
//! Exit codes follow `sysexits.h` ([`crate::policy::exit`]) with a one-line reason on stderr;
//! nothing is queued when the command fails.

pub mod args;
mod local;
mod smtp;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::cli::QueueAction;
use crate::config::file::FileConfig;
use crate::convert::ConvertOptions;
use crate::envelope::{Envelope, Via};
use crate::headers::{HeaderSection, one_line};
use crate::policy::host::{HostFiles, HostNames};
use crate::policy::{Policy, exit};
use crate::spool::{Header, Spool, maildrop};
pub use args::{Action, SendmailArgs, UsageError};

/// The configuration file used when neither `-C` nor `RELAY_CONFIG` names one and it exists.
pub const SYSTEM_CONFIG: &str = "/etc/postmark-relay.toml";

/// Why `sendmail` failed: the exit code and the one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// A `sysexits.h` code.
    pub exit: u8,
    /// The reason.
    pub message: String,
}

fn fail(exit: u8, message: impl Into<String>) -> Failure {
    Failure { exit, message: message.into() }
}

/// What `sendmail` needs from its surroundings (the process's, or a test's).
#[allow(missing_debug_implementations)]
pub struct Context<'a> {
    /// Environment variables.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The message.
    pub stdin: &'a mut dyn Read,
    /// Where `-v` and `-bp` write.
    pub stdout: &'a mut dyn Write,
    /// The login name of the user running the command.
    pub user: String,
    /// Where the host's names are read ([`HostFiles::system`] but in tests).
    pub host: HostFiles,
}

/// The settings `sendmail` reads from the relay's configuration. No secrets: the submitting user
/// may not be allowed to read them.
#[derive(Debug)]
struct Settings {
    spool: PathBuf,
    via: Via,
    convert: ConvertOptions,
    policy: Policy,
    max_message_size: usize,
    max_recipients: usize,
    hostname: String,
    host: HostNames,
}

impl Settings {
    fn load(args: &SendmailArgs, cx: &Context<'_>) -> Result<Self, Failure> {
        let env = cx.env;
        let path = args
            .config
            .clone()
            .or_else(|| env("RELAY_CONFIG").filter(|s| !s.is_empty()).map(PathBuf::from))
            .or_else(|| Path::new(SYSTEM_CONFIG).exists().then(|| PathBuf::from(SYSTEM_CONFIG)));
        let file = FileConfig::read(path.as_deref()).map_err(|e| {
            let hint = if e.to_string().contains("ermission denied") {
                " (sendmail needs to read the config file: keep secrets in *_file settings and make the file \
                 readable by the submitters' group)"
            } else {
                ""
            };
            fail(exit::CONFIG, format!("{e}{hint}"))
        })?;
        let host = HostNames::detect(&cx.host);
        let policy = crate::config::policy_on(&file, host.clone()).map_err(|e| fail(exit::CONFIG, e.to_string()))?;
        let spool = args
            .spool
            .clone()
            .or_else(|| env("RELAY_SPOOL").filter(|s| !s.is_empty()).map(PathBuf::from))
            .or(file.spool.clone())
            .unwrap_or_else(|| crate::config::default_spool(env));
        let hostname = env("RELAY_HOSTNAME")
            .or(file.hostname.clone())
            .or_else(|| host.fqdn.clone())
            .or_else(|| host.hostname.clone())
            .unwrap_or_else(|| "localhost".into());
        Ok(Self {
            spool,
            // Without an explicit choice the stricter API path's rules are checked (the relay
            // checks again with its own when it imports the message).
            via: file.via.unwrap_or(Via::Api),
            convert: ConvertOptions {
                message_stream: env("RELAY_MESSAGE_STREAM").or(file.message_stream.clone()).filter(|s| !s.is_empty()),
                empty_body_text: file.empty_body_text.clone().filter(|s| !s.trim().is_empty()),
            },
            policy,
            max_message_size: file.limits.max_message_size.unwrap_or(postmark_core::limits::MAX_MESSAGE_BYTES),
            max_recipients: file.limits.max_recipients.unwrap_or(postmark_core::limits::MAX_RECIPIENTS).max(1),
            hostname,
            host,
        })
    }

    /// A bare local name as a full address: `local_domain`, else the host's mail domain, else a
    /// configured host name with a dot; `None` when there is nothing to qualify it with.
    /// An address at this host (`root@vm`, `root@localhost`) counts as its local name.
    fn qualify(&self, name: &str) -> Option<String> {
        let name = match name.rsplit_once('@') {
            Some((local, domain)) if !local.is_empty() && self.policy.is_this_host(domain) => local,
            _ => name,
        };
        let address = self.policy.qualify(name);
        if address.is_empty() || address.contains('@') {
            return Some(address);
        }
        self.hostname.contains('.').then(|| format!("{address}@{}", self.hostname))
    }

    /// Why `name` cannot be qualified, and the two ways to fix it.
    fn unqualified(&self, what: &str, name: &str) -> Failure {
        let host = self.host.hostname.as_deref().unwrap_or("localhost");
        fail(
            exit::CONFIG,
            format!(
                "{what} {name:?} has no domain, and this host has none to give it (its name {host:?} has no dot and \
                 there is no /etc/mailname): give the sender with -f you@example.com, or set local_domain in the \
                 relay's config"
            ),
        )
    }
}

/// The login name of the process's user: `LOGNAME`, `USER`, else its uid looked up in
/// `/etc/passwd`.
pub fn current_user(env: &dyn Fn(&str) -> Option<String>) -> String {
    if let Some(name) = env("LOGNAME").or_else(|| env("USER")).filter(|s| !s.is_empty()) {
        return name;
    }
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    uid.and_then(|uid| {
        passwd.lines().find_map(|line| {
            let mut f = line.split(':');
            let name = f.next()?;
            let id: u32 = f.nth(1)?.parse().ok()?;
            (id == uid).then(|| name.to_owned())
        })
    })
    .unwrap_or_else(|| "nobody".into())
}

/// Runs `sendmail` with `args` (without the program name). Returns the queue ids of what was
/// queued (one per group of at most 50 recipients).
pub fn run(args: &[String], cx: &mut Context<'_>) -> Result<Vec<String>, Failure> {
    let args = args::parse(args).map_err(|e| fail(exit::USAGE, e.0))?;
    if args.action == Action::Help {
        cx.stdout.write_all(args::HELP.as_bytes()).map_err(|e| fail(exit::IOERR, e.to_string()))?;
        return Ok(Vec::new());
    }
    let settings = Settings::load(&args, cx)?;
    match args.action {
        Action::ListQueue => list_queue(&settings, cx).map(|()| Vec::new()),
        Action::RunQueue => run_queue(&settings, cx).map(|()| Vec::new()),
        Action::Smtp => smtp::run(&settings, cx),
        Action::Deliver | Action::Help => deliver(&args, &settings, cx),
    }
}

fn open_spool(settings: &Settings) -> Result<Spool, Failure> {
    Spool::open(&settings.spool).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::PermissionDenied { exit::NOPERM } else { exit::IOERR };
        fail(code, format!("spool {}: {e}", settings.spool.display()))
    })
}

fn list_queue(settings: &Settings, cx: &mut Context<'_>) -> Result<(), Failure> {
    let spool = open_spool(settings)?;
    let io = |e: std::io::Error| fail(exit::IOERR, e.to_string());
    crate::queue::run(&spool, &QueueAction::List, cx.stdout).map_err(io)?;
    let waiting = maildrop::waiting(spool.root()).map_err(io)?.len();
    if waiting > 0 {
        writeln!(cx.stdout, "{waiting} message(s) in the maildrop, waiting for the relay to import them")
            .map_err(io)?;
    }
    Ok(())
}

fn run_queue(settings: &Settings, cx: &mut Context<'_>) -> Result<(), Failure> {
    let spool = open_spool(settings)?;
    let io = |e: std::io::Error| fail(exit::IOERR, e.to_string());
    let ids = spool.ids(crate::spool::Area::Queue).map_err(io)?;
    for id in &ids {
        spool.request_retry(id).map_err(io)?;
    }
    writeln!(cx.stdout, "{} pending message(s) marked for delivery now", ids.len()).map_err(io)?;
    Ok(())
}

fn deliver(args: &SendmailArgs, settings: &Settings, cx: &mut Context<'_>) -> Result<Vec<String>, Failure> {
    let policy = &settings.policy;
    let input = read_message(cx.stdin, args.ignore_dots, settings.max_message_size)?;
    let mut raw = crlf(local::without_mbox_from(&input));
    if raw.len() > settings.max_message_size {
        return Err(fail(
            exit::DATAERR,
            format!("message too large: {} bytes, at most {}", raw.len(), settings.max_message_size),
        ));
    }

    // The envelope sender: -f, else the user, qualified.
    let given = args.sender.clone().unwrap_or_else(|| cx.user.clone());
    let given = given.trim();
    let what = if args.sender.is_some() { "the sender (-f)" } else { "the sender (this user)" };
    let qualified = settings.qualify(given);

    // Recipients: arguments, plus the headers with -t (then Bcc goes).
    let mut wanted: Vec<String> = args.recipients.iter().flat_map(|r| split_list(r)).collect();
    if args.extract_recipients {
        wanted.extend(local::header_recipients(&raw));
        let mut section = HeaderSection::parse(&raw);
        if section.remove("bcc") + section.remove("resent-bcc") > 0 {
            raw = section.to_bytes(&[]);
        }
    }
    if wanted.is_empty() {
        let hint = if args.extract_recipients { " (none in To, Cc or Bcc either)" } else { " (or use -t)" };
        return Err(fail(exit::USAGE, format!("no recipients given{hint}")));
    }
    let mut recipients: Vec<String> = Vec::new();
    for r in &wanted {
        for address in policy.recipient(r).map_err(|e| fail(e.exit, e.text))? {
            if !postmark_core::limits::is_valid_address(&address) {
                return Err(fail(exit::NOUSER, format!("{address}: not an address Postmark can send to")));
            }
            if !recipients.iter().any(|a| a.eq_ignore_ascii_case(&address)) {
                recipients.push(address);
            }
        }
    }

    // A bare local name in From is qualified (Postmark needs an address); missing Date,
    // Message-ID and From are added (RFC 5322 requires the first and the last).
    // Without a domain for it, a bare From takes the sender given with -f (keeping its name).
    let qualify = |name: &str| settings.qualify(name).or_else(|| qualified.clone().filter(|a| a.contains('@')));
    if let Some(qualified) =
        local::qualified_from(&raw, &qualify).map_err(|name| settings.unqualified("the From header's", &name))?
    {
        raw = qualified;
    }
    // A sender with no domain to give it takes the From header's address, if there is one.
    let sender = match qualified {
        Some(sender) => sender,
        None => crate::policy::header_from(&raw)
            .filter(|a| a.contains('@'))
            .ok_or_else(|| settings.unqualified(what, given))?,
    };
    let section = HeaderSection::parse(&raw);
    let mut added = Vec::new();
    if !section.has("from") {
        added.push(match args.full_name.as_deref().map(one_line).filter(|n| !n.is_empty()) {
            Some(name) if name.is_ascii() => format!("From: {} <{sender}>", crate::convert::quote_display_name(&name)),
            Some(name) => {
                use base64::Engine as _;
                format!("From: =?UTF-8?B?{}?= <{sender}>", base64::engine::general_purpose::STANDARD.encode(name))
            }
            None => format!("From: {sender}"),
        });
    }
    if !section.has("date") {
        added.push(format!("Date: {}", crate::delivery::notify::rfc2822(crate::clock::now_ms())));
    }
    if !section.has("message-id") {
        added.push(format!("Message-ID: <{}.sendmail@{}>", crate::spool::QueueId::generate(), settings.hostname));
    }
    if !added.is_empty() {
        raw = section.to_bytes(&added);
    }

    // The same checks as at the end of DATA, so that exit 0 means what 250 means.
    let envelope_sender = policy.sender(&sender).map_err(|e| fail(e.exit, e.text))?;
    let check_envelope = Envelope { mail_from: envelope_sender, rcpt_to: recipients.clone() };
    let decision = policy
        .message(&raw, &check_envelope.mail_from, None, crate::clock::now_ms())
        .map_err(|e| fail(e.exit, e.text))?;
    let checked = decision.raw.as_deref().unwrap_or(&raw);
    let convert = match decision.stream {
        Some(stream) => ConvertOptions { message_stream: Some(stream), ..settings.convert.clone() },
        None => settings.convert.clone(),
    };
    // Each group of at most max_recipients becomes a message of its own (as an SMTP client
    // splits after `452 4.5.3`).
    for chunk in recipients.chunks(settings.max_recipients) {
        let envelope = Envelope { mail_from: check_envelope.mail_from.clone(), rcpt_to: chunk.to_vec() };
        crate::validate::validate(checked, &envelope, settings.via, &convert)
            .map_err(|r| fail(exit::DATAERR, format!("{} {} {}", r.code, r.enhanced, r.text)))?;
    }

    // Durable in the maildrop: the relay applies the policy once, when it imports.
    let messages: Vec<(Header, Vec<u8>)> = recipients
        .chunks(settings.max_recipients)
        .map(|chunk| (Header::new(Envelope { mail_from: sender.clone(), rcpt_to: chunk.to_vec() }, &raw), raw.clone()))
        .collect();
    let ids = drop_durably(&settings.spool, &messages)?;
    if args.verbose {
        let _ = writeln!(
            cx.stdout,
            "queued as {} for {} recipient(s) in {}",
            ids.join(", "),
            recipients.len(),
            maildrop::dir(&settings.spool).display()
        );
    }
    Ok(ids)
}

/// Writes `messages` to the maildrop of `spool`, synced, all or none; returns their queue ids.
fn drop_durably(spool: &Path, messages: &[(Header, Vec<u8>)]) -> Result<Vec<String>, Failure> {
    maildrop::ensure(spool).map_err(|e| spool_failure(spool, e))?;
    let (staged, ids) = maildrop::stage(spool, messages).map_err(|e| spool_failure(spool, e))?;
    staged.publish().map_err(|e| spool_failure(spool, e))?;
    Ok(ids.iter().map(ToString::to_string).collect())
}

fn spool_failure(spool: &Path, e: std::io::Error) -> Failure {
    let dir = maildrop::dir(spool);
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => fail(
            exit::CANTCREAT,
            format!(
                "cannot write to {}: permission denied (add this user to the relay's submitters' group; see the \
                 README, 'Using it as sendmail')",
                dir.display()
            ),
        ),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            fail(exit::TEMPFAIL, format!("{}: {e}; try again later", dir.display()))
        }
        _ => fail(exit::TEMPFAIL, format!("{}: {e}", dir.display())),
    }
}

/// Reads the message: to the end, or (without `-i`) to a line holding a single dot. Refuses
/// more than `max` bytes without reading further.
fn read_message(stdin: &mut dyn Read, ignore_dots: bool, max: usize) -> Result<Vec<u8>, Failure> {
    let mut input = Vec::new();
    // Bare LFs become CRLFs later, so allow for some growth before refusing.
    let limit = (max as u64).saturating_add(1);
    stdin
        .take(limit)
        .read_to_end(&mut input)
        .map_err(|e| fail(exit::IOERR, format!("cannot read the message from standard input: {e}")))?;
    if input.len() as u64 >= limit {
        return Err(fail(exit::DATAERR, format!("message too large: more than {max} bytes")));
    }
    if !ignore_dots {
        let mut start = 0;
        while start < input.len() {
            let end = input[start..].iter().position(|&b| b == b'\n').map_or(input.len(), |p| start + p + 1);
            let line = &input[start..end];
            if line == b".\n" || line == b".\r\n" || line == b"." {
                input.truncate(start);
                break;
            }
            start = end;
        }
    }
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(fail(exit::DATAERR, "no message on standard input"));
    }
    Ok(input)
}

/// Every bare LF as CRLF (what SMTP and the spool use); existing CRLFs stay.
fn crlf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32 + 2);
    let mut prev = 0u8;
    for &b in input {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `a@x, b@x` given as one argument, as some programs pass them.
fn split_list(arg: &str) -> Vec<String> {
    arg.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests;
