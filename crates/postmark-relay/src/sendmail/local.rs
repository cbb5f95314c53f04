//! What local software writes in a message that a mail server must complete: bare local names
//! in the address headers (`To: root`, `From: root (Cron Daemon)`, as cron, bsd-mailx, PHP's
//! `mail()`, logwatch, apticron write them) and a leading mbox `From ` line.

use mail_parser::Addr;

use crate::headers::{HeaderSection, one_line};

/// An address header entry as local software means it: `Some((display name, address))`. A bare
/// word without angle brackets (`root`, which mail-parser reads as a display name) is the local
/// name it stands for; an entry that is only a phrase of several words names nobody.
fn entry<'a>(addr: &'a Addr<'_>) -> Option<(Option<&'a str>, &'a str)> {
    match (addr.name(), addr.address()) {
        (name, Some(address)) => Some((name.filter(|n| !n.trim().is_empty()), address.trim())),
        (Some(name), None) if is_local_name(name.trim()) => Some((None, name.trim())),
        _ => None,
    }
}

/// A local part without a domain: one word of the characters a login or alias name has.
fn is_local_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
}

/// The recipients the `To`, `Cc` and `Bcc` headers name (`-t`): full addresses and bare local
/// names, which the policy then expands or qualifies exactly as an envelope recipient.
pub(super) fn header_recipients(raw: &[u8]) -> Vec<String> {
    let Some(message) = crate::convert::parse(raw) else { return Vec::new() };
    let mut out = Vec::new();
    for list in [message.to(), message.cc(), message.bcc()].into_iter().flatten() {
        out.extend(list.iter().filter_map(entry).map(|(_, address)| address.to_owned()));
    }
    out
}

/// The message's `From` with every address as `qualify` gives it (a bare local name or an
/// address at this host qualified: `From: root (Cron Daemon)` becomes `From: Cron Daemon
/// <root@host.example>`, the comment kept as the display name); `None` when that changes
/// nothing. `Err` names the address `qualify` could not qualify.
pub(super) fn qualified_from(raw: &[u8], qualify: &dyn Fn(&str) -> Option<String>) -> Result<Option<Vec<u8>>, String> {
    let Some(message) = crate::convert::parse(raw) else { return Ok(None) };
    let Some(from) = message.from() else { return Ok(None) };
    let entries: Vec<(Option<&str>, &str)> = from.iter().filter_map(entry).collect();
    let qualified: Vec<String> = entries
        .iter()
        .map(|(_, address)| qualify(address).ok_or_else(|| (*address).to_owned()))
        .collect::<Result<_, _>>()?;
    if entries.iter().zip(&qualified).all(|((_, given), address)| given == address) {
        return Ok(None);
    }
    let mut mailboxes = Vec::with_capacity(entries.len());
    for ((name, _), address) in entries.into_iter().zip(qualified) {
        mailboxes.push(match name.map(one_line) {
            Some(name) if name.is_ascii() => format!("{} <{address}>", crate::convert::quote_display_name(&name)),
            Some(name) => {
                use base64::Engine as _;
                format!("=?UTF-8?B?{}?= <{address}>", base64::engine::general_purpose::STANDARD.encode(name))
            }
            None => address,
        });
    }
    let mut section = HeaderSection::parse(raw);
    section.remove("from");
    Ok(Some(section.to_bytes(&[format!("From: {}", mailboxes.join(", "))])))
}

/// `input` without a leading mbox `From ` line (`From user@host Tue Dec  8 01:00:00 2026`),
/// which some programs write before the headers; Postfix's sendmail drops it too. Anything else,
/// including a `From:` header, is kept.
pub(super) fn without_mbox_from(input: &[u8]) -> &[u8] {
    if !input.starts_with(b"From ") {
        return input;
    }
    match input.iter().position(|&b| b == b'\n') {
        Some(end) => &input[end + 1..],
        None => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_local_names_in_to_cc_and_bcc_are_recipients() {
        let raw = b"To: root\r\nCc: Ops <ops@example.com>, www-data, Some Phrase\r\nBcc: backup@localhost\r\n\r\nx\r\n";
        assert_eq!(header_recipients(raw), ["root", "ops@example.com", "www-data", "backup@localhost"]);
        assert!(header_recipients(b"To: undisclosed-recipients:;\r\n\r\nx\r\n").is_empty());
    }

    #[test]
    fn a_bare_from_is_qualified_and_its_comment_becomes_the_display_name() {
        let q = |name: &str| {
            Some(if name.contains('@') { name.replace("@vm", "@host.example") } else { format!("{name}@host.example") })
        };
        let out = |raw: &[u8]| qualified_from(raw, &q).unwrap().map(|b| String::from_utf8(b).unwrap());
        let cron = out(b"From: root (Cron Daemon)\r\nTo: root\r\nSubject: s\r\n\r\nbody\r\n").unwrap();
        assert_eq!(cron, "From: Cron Daemon <root@host.example>\r\nTo: root\r\nSubject: s\r\n\r\nbody\r\n");
        assert_eq!(out(b"From: root\r\n\r\nx\r\n").unwrap(), "From: root@host.example\r\n\r\nx\r\n");
        assert_eq!(
            out(b"From: \"Jos\xc3\xa9\" <jose>\r\n\r\nx\r\n").unwrap(),
            "From: =?UTF-8?B?Sm9zw6k=?= <jose@host.example>\r\n\r\nx\r\n"
        );
        assert_eq!(out(b"From: root@example.com (Cron Daemon)\r\n\r\nx\r\n"), None, "already qualified: unchanged");
        assert_eq!(out(b"Subject: no from\r\n\r\nx\r\n"), None);
        // mutt's: an address at this host.
        assert_eq!(out(b"From: root <root@vm>\r\n\r\nx\r\n").unwrap(), "From: root <root@host.example>\r\n\r\nx\r\n");
        let none = |a: &str| a.contains('@').then(|| a.to_owned());
        assert_eq!(qualified_from(b"From: root\r\n\r\nx\r\n", &none), Err("root".to_owned()));
    }

    #[test]
    fn the_comment_form_name_reaches_postmark_as_the_from_name() {
        // What the relay's converter makes of the qualified header, and of the comment form as
        // an SMTP client may send it already qualified.
        let envelope = crate::envelope::Envelope::new("root@host.example", ["ops@example.com"]);
        for raw in [
            qualified_from(b"From: root (Cron Daemon)\r\nTo: root\r\nSubject: s\r\n\r\nx\r\n", &|n: &str| {
                Some(format!("{n}@host.example"))
            })
            .unwrap()
            .unwrap(),
            b"From: root@host.example (Cron Daemon)\r\nSubject: s\r\n\r\nx\r\n".to_vec(),
        ] {
            let requests = crate::convert::to_postmark(&raw, &envelope, &Default::default()).unwrap();
            assert_eq!(requests[0].from, "Cron Daemon <root@host.example>");
            assert_eq!(requests[0].to, "ops@example.com");
        }
    }

    #[test]
    fn a_leading_mbox_from_line_is_dropped_and_nothing_else() {
        assert_eq!(
            without_mbox_from(b"From root@vm Tue Dec  8 01:00:00 2026\nFrom: a@b.example\n\nx\n"),
            b"From: a@b.example\n\nx\n"
        );
        assert_eq!(without_mbox_from(b"From: a@b.example\n\nx\n"), b"From: a@b.example\n\nx\n");
        assert_eq!(without_mbox_from(b"Subject: s\n\nFrom here\n"), b"Subject: s\n\nFrom here\n");
    }
}
