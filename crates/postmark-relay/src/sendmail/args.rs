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
    /// `-C file`: the relay's configuration file.
    pub config: Option<PathBuf>,
    /// The recipients given as arguments.
    pub recipients: Vec<String>,
}

/// A command line `sendmail` cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Flags that take a value (as `-Xvalue` or `-X value`) which is accepted and ignored.
const IGNORED_WITH_VALUE: &[char] = &['N', 'R', 'V', 'B', 'L', 'O', 'h', 'p', 'A', 'X'];
/// Flags without a value that are accepted and ignored.
const IGNORED: &[char] = &['n', 'U', 'm', 'e', 'x', 'G', 'd'];

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
                // -bs (SMTP on standard input), -bd (daemon), -bv (verify), -bi (aliases)…
                other => {
                    return Err(UsageError(format!(
                        "-b{other} is not supported (postmark-relay's sendmail takes -bm, -bp; run the relay itself \
                         for SMTP)"
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
    }

    #[test]
    fn usage_errors_name_the_problem() {
        assert!(p(&["-bs"]).unwrap_err().0.contains("-bs is not supported"));
        assert!(p(&["-f"]).unwrap_err().0.contains("-f needs a value"));
        assert!(p(&["-Z"]).unwrap_err().0.contains("unknown option -Z"));
        assert!(p(&["-tx"]).is_err(), "-t takes no value");
    }
}
