//! `sendmail`'s command line, as the common implementations (Sendmail, Postfix, msmtp,
//! nullmailer) accept it. It is not clap's shape (`-oi`, `-fsender`, `-F"name"`, historic flags
//! to ignore), so it is parsed by hand.

use std::path::PathBuf;

/// What `sendmail` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// `-bm` (the default): read a message from standard input and queue it.
    #[default]
    Deliver,
    /// `-bp` (or run as `mailq`): list the queue.
    ListQueue,
    /// `-q`: deliver pending mail now.
    RunQueue,
    /// `-bs`: an SMTP session on standard input and output (what Symfony Mailer's and
    /// Laravel's default sendmail transport run).
    Smtp,
    /// `--help`: print the usage.
    Help,
}

/// The parsed command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendmailArgs {
    /// `-t`: recipients from the `To`, `Cc` and `Bcc` headers (added to those given as
    /// arguments); `Bcc` is removed from the message.
    pub extract_recipients: bool,
    /// `-i` / `-oi`: a line with a single dot does not end the message.
    pub ignore_dots: bool,
    /// `-f` / `-r`: the envelope sender.
    pub sender: Option<String>,
    /// `-F`: the sender's full name, for a `From` the relay adds.
    pub full_name: Option<String>,
    /// `-b…` / `-q`.
    pub action: Action,
    /// `-v`: say what was done.
    pub verbose: bool,
    /// `-C file` or `--config file`: the relay's configuration file.
    pub config: Option<PathBuf>,
    /// `--spool dir`: the relay's spool (before `RELAY_SPOOL` and the config file's).
    pub spool: Option<PathBuf>,
    /// The recipients given as arguments.
    pub recipients: Vec<String>,
}

/// What `sendmail --help` prints.
pub const HELP: &str = "\
Usage: sendmail [options] [recipient...]     (or: postmark-relay sendmail ...)

Reads a message from standard input and queues it in the relay's spool (its maildrop), whether or
not the relay is running; exit 0 means it is on disk. Exit codes follow sysexits.h.

  -t              also send to the To, Cc and Bcc headers' addresses (Bcc is then removed);
                  bare local names (root) get the aliases and local_domain
  -i, -oi         a line with a single dot does not end the message
  -f ADDR, -r     envelope sender (default: this user, with local_domain, /etc/mailname or the
                  host's full name as its domain)
  -F NAME         full name for the From header added when the message has none
  -bm             read a message and queue it (the default)
  -bs             SMTP on standard input and output (Symfony Mailer's and Laravel's sendmail
                  transport); each accepted message is queued before its 250
  -bp             list the queue (as mailq)
  -q              deliver pending mail now
  -v              say where the message was queued
  -C FILE, --config FILE
                  the relay's configuration file (default: RELAY_CONFIG, /etc/postmark-relay.toml)
  --spool DIR     the relay's spool (default: RELAY_SPOOL, the config file's spool)
  --help          this text

Other options of Sendmail and Postfix (-oem, -odi, -B8BITMIME, -N, -R, ...) are accepted and
ignored.
";

/// A command line `sendmail` cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Flags that take a value (as `-Xvalue` or `-X value`) which is accepted and ignored.
const IGNORED_WITH_VALUE: &[char] = &['N', 'R', 'V', 'B', 'L', 'O', 'h', 'p', 'A', 'X'];
/// Flags without a value that are accepted and ignored.
const IGNORED: &[char] = &['n', 'U', 'm', 'e', 'x', 'G', 'd'];

/// The relay's own options given on its command line before `sendmail`
/// (`postmark-relay --config FILE --spool DIR sendmail …`), as sendmail options to put first;
/// refused when one is anything but `--config` and `--spool` (sendmail would ignore it). Values
/// from the environment are not counted: sendmail reads `RELAY_CONFIG` and `RELAY_SPOOL` itself.
pub fn relay_options(matches: &clap::ArgMatches) -> Result<Vec<String>, UsageError> {
    use clap::CommandFactory;
    use clap::parser::ValueSource;
    let mut out = Vec::new();
    let mut others = Vec::new();
    let command = crate::cli::Cli::command();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if matches.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        match id {
            "config" | "spool" => {
                let path: Option<&PathBuf> = matches.get_one(id);
                if let Some(path) = path {
                    out.push(format!("--{id}={}", path.display()));
                }
            }
            other => others.push(format!("--{}", other.replace('_', "-"))),
        }
    }
    if !others.is_empty() {
        return Err(UsageError(format!(
            "{} cannot apply to sendmail (it takes only --config and --spool of the relay's options; set the rest in \
             the config file)",
            others.join(", ")
        )));
    }
    Ok(out)
}

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<SendmailArgs, UsageError> {
    let mut out = SendmailArgs::default();
    let mut i = 0;
    let mut options_done = false;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if options_done || !arg.starts_with('-') || arg == "-" {
            if !arg.is_empty() {
                out.recipients.push(arg.clone());
            }
            continue;
        }
        if arg == "--" {
            options_done = true;
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (long, None),
            };
            let mut value = || -> Result<String, UsageError> {
                if let Some(v) = inline.clone() {
                    return Ok(v);
                }
                let v = args.get(i).cloned().ok_or_else(|| UsageError(format!("option --{name} needs a value")))?;
                i += 1;
                Ok(v)
            };
            match name {
                "help" if inline.is_none() => out.action = Action::Help,
                "config" => out.config = Some(PathBuf::from(value()?)),
                "spool" => out.spool = Some(PathBuf::from(value()?)),
                _ => {
                    return Err(UsageError(format!(
                        "unknown option {arg} (sendmail takes --config and --spool of the relay's options; see \
                         --help)"
                    )));
                }
            }
            continue;
        }
        let mut chars = arg[1..].chars();
        let Some(flag) = chars.next() else { continue };
        let rest: String = chars.collect();
        // The value of a flag that takes one: the rest of this argument, else the next one.
        let mut value = |name: char| -> Result<String, UsageError> {
            if !rest.is_empty() {
                return Ok(rest.clone());
            }
            let v = args.get(i).cloned().ok_or_else(|| UsageError(format!("option -{name} needs a value")))?;
            i += 1;
            Ok(v)
        };
        match flag {
            't' if rest.is_empty() => out.extract_recipients = true,
            'i' if rest.is_empty() => out.ignore_dots = true,
            'v' if rest.is_empty() => out.verbose = true,
            'f' | 'r' => out.sender = Some(value(flag)?),
            'F' => out.full_name = Some(value(flag)?),
            'C' => out.config = Some(PathBuf::from(value(flag)?)),
            'b' => match rest.as_str() {
                "m" | "" => out.action = Action::Deliver,
                "p" => out.action = Action::ListQueue,
                "s" => out.action = Action::Smtp,
                // -bd (daemon), -bv (verify), -bi (aliases)…
                other => {
                    return Err(UsageError(format!(
                        "-b{other} is not supported (postmark-relay's sendmail takes -bm, -bs, -bp; run the relay \
                         itself for an SMTP listener)"
                    )));
                }
            },
            'q' => out.action = Action::RunQueue,
            // Any other -oX (-oem, -odb, -oQ…) is accepted and ignored, as Postfix does; -oA and
            // -oQ historically take their value in the same argument.
            'o' => out.ignore_dots |= rest == "i",
            c if IGNORED_WITH_VALUE.contains(&c) => {
                value(c)?;
            }
            c if IGNORED.contains(&c) => {}
            _ => return Err(UsageError(format!("unknown option {arg}"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<SendmailArgs, UsageError> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn the_forms_cron_and_php_use() {
        // cron: /usr/sbin/sendmail -FCronDaemon -i -B8BITMIME -oem root
        let a = p(&["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"]).unwrap();
        assert_eq!(a.full_name.as_deref(), Some("CronDaemon"));
        assert!(a.ignore_dots && !a.extract_recipients);
        assert_eq!(a.recipients, ["root"]);
        // PHP: sendmail -t -i, plus -f from the fifth argument of mail()
        let a = p(&["-t", "-i", "-f", "app@example.com"]).unwrap();
        assert!(a.extract_recipients && a.ignore_dots);
        assert_eq!(a.sender.as_deref(), Some("app@example.com"));
        let a = p(&["-fapp@example.com", "-oi", "-t", "--", "-odd@example.com"]).unwrap();
        assert_eq!(a.sender.as_deref(), Some("app@example.com"));
        assert!(a.ignore_dots);
        assert_eq!(a.recipients, ["-odd@example.com"]);
    }

    #[test]
    fn modes_and_ignored_flags() {
        assert_eq!(p(&["-bp"]).unwrap().action, Action::ListQueue);
        assert_eq!(p(&["-q"]).unwrap().action, Action::RunQueue);
        assert_eq!(p(&["-q30m"]).unwrap().action, Action::RunQueue);
        assert_eq!(p(&["-bm", "a@example.com"]).unwrap().action, Action::Deliver);
        let a = p(&["-v", "-odi", "-oQ/var/spool", "-N", "never", "-R", "hdrs", "-V", "id", "-n", "a@example.com"])
            .unwrap();
        assert!(a.verbose);
        assert_eq!(a.recipients, ["a@example.com"]);
        assert_eq!(p(&["-C", "/etc/relay.toml"]).unwrap().config, Some(PathBuf::from("/etc/relay.toml")));
        assert_eq!(p(&["-r", "bounce@example.com"]).unwrap().sender.as_deref(), Some("bounce@example.com"));
        assert_eq!(p(&["-bs"]).unwrap().action, Action::Smtp);
        // Laravel's default: `sendmail -bs -i`.
        assert_eq!(p(&["-bs", "-i"]).unwrap().action, Action::Smtp);
        assert_eq!(p(&["--help"]).unwrap().action, Action::Help);
    }

    #[test]
    fn the_relays_options_before_sendmail_are_honoured_or_refused() {
        use clap::CommandFactory;
        let matches = |args: &[&str]| {
            crate::cli::Cli::command()
                .try_get_matches_from(std::iter::once("postmark-relay").chain(args.iter().copied()))
        };
        let m = matches(&["--spool", "/s", "--config", "/c.toml", "sendmail", "-t"]).unwrap();
        let mut given = relay_options(&m).unwrap();
        given.sort();
        assert_eq!(given, ["--config=/c.toml", "--spool=/s"]);
        let m = matches(&["sendmail", "-t"]).unwrap();
        assert!(relay_options(&m).unwrap().is_empty());
        let m = matches(&["--via", "smtp", "--listen", "127.0.0.1:25", "sendmail", "-t"]).unwrap();
        let e = relay_options(&m).unwrap_err().0;
        assert!(e.contains("--via") && e.contains("--listen") && e.contains("only --config and --spool"), "{e}");
    }

    #[test]
    fn the_relays_config_and_spool_options_are_taken() {
        let a = p(&["--spool", "/var/spool/x", "--config=/etc/x.toml", "-t"]).unwrap();
        assert_eq!(a.spool, Some(PathBuf::from("/var/spool/x")));
        assert_eq!(a.config, Some(PathBuf::from("/etc/x.toml")));
        assert!(a.extract_recipients);
        let a = p(&["--spool=/s", "--config", "/c"]).unwrap();
        assert_eq!((a.spool, a.config), (Some(PathBuf::from("/s")), Some(PathBuf::from("/c"))));
    }

    #[test]
    fn usage_errors_name_the_problem() {
        assert!(p(&["-bd"]).unwrap_err().0.contains("-bd is not supported"));
        assert!(p(&["--queue"]).unwrap_err().0.contains("unknown option --queue"));
        assert!(p(&["--spool"]).unwrap_err().0.contains("--spool needs a value"));
        assert!(p(&["--help=x"]).is_err());
        assert!(p(&["-f"]).unwrap_err().0.contains("-f needs a value"));
        assert!(p(&["-Z"]).unwrap_err().0.contains("unknown option -Z"));
        assert!(p(&["-tx"]).is_err(), "-t takes no value");
    }
}
