//! Mailbox formatting and the envelope rule (who Postmark delivers this copy to).

use std::collections::HashSet;

/// A mailbox as written in a header: optional display name and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mailbox {
    pub(crate) name: Option<String>,
    pub(crate) address: String,
}

impl Mailbox {
    /// RFC 5322 text for this mailbox: `addr`, `Name <addr>` or `"Name, quoted" <addr>`.
    pub(crate) fn to_header_text(&self) -> String {
        match self.name.as_deref().map(str::trim) {
            None | Some("") => self.address.clone(),
            Some(name) => format!("{} <{}>", display_name(name), self.address),
        }
    }

    /// The API's `From` value: [`Mailbox::to_header_text`], without the display name when the
    /// whole would be over Postmark's 255 characters (the address is what matters).
    pub(crate) fn to_from_value(&self) -> String {
        let text = self.to_header_text();
        if postmark_core::limits::char_count(&text) > postmark_core::limits::MAX_FROM_CHARS {
            self.address.clone()
        } else {
            text
        }
    }

    /// The value of a raw `From:` header for this mailbox: like [`Mailbox::to_from_value`], with
    /// a non-ASCII display name as an RFC 2047 encoded word.
    pub(crate) fn to_raw_header(&self) -> String {
        let text = self.to_from_value();
        match self.name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() && !name.is_ascii() && text != self.address => {
                use base64::Engine as _;
                let encoded = base64::engine::general_purpose::STANDARD.encode(name.as_bytes());
                format!("=?UTF-8?B?{encoded}?= <{}>", self.address)
            }
            _ => text,
        }
    }
}

/// A display name as an RFC 5322 `phrase`: left bare when it is only letters and digits separated
/// by single spaces, quoted (with `\` before `"` and `\`) otherwise. RFC 5322 would allow more
/// bare (`O'Brien`), but Postmark refuses a name with punctuation that is not quoted (support
/// article on ErrorCode 300). Non-ASCII letters are allowed in either form (RFC 6532); Postmark
/// applies RFC 2047 encoding when it builds the message.
pub(crate) fn display_name(name: &str) -> String {
    let bare = !name.is_empty() && !name.contains("  ") && name.chars().all(|c| c.is_alphanumeric() || c == ' ');
    if bare {
        return name.to_owned();
    }
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // A display name never legitimately holds line breaks or other controls.
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `address` with an internationalized domain written as its A-label (`a@bücher.de` →
/// `a@xn--bcher-kva.de`, UTS #46 processing); `None` when the local part is not ASCII or the
/// domain is not a valid IDN. An ASCII address is returned as it is.
pub(crate) fn with_a_label(address: &str) -> Option<String> {
    if address.is_ascii() {
        return Some(address.to_owned());
    }
    let (local, domain) = address.rsplit_once('@')?;
    if !local.is_ascii() {
        return None;
    }
    idna::domain_to_ascii(domain).ok().filter(|d| !d.is_empty()).map(|d| format!("{local}@{d}"))
}

/// The comparison key of an address: the local part as written (it may be case-sensitive,
/// RFC 5321 §2.4) and the domain in lower case.
pub(crate) fn key(addr: &str) -> String {
    let addr = addr.trim().trim_start_matches('<').trim_end_matches('>');
    match addr.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => addr.to_owned(),
    }
}

/// The recipients of the Postmark request after the envelope rule was applied.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Routed {
    pub(crate) to: Vec<Mailbox>,
    pub(crate) cc: Vec<Mailbox>,
    /// Envelope recipients that no To/Cc header names, in envelope order.
    pub(crate) bcc: Vec<String>,
    /// Whether To named someone outside the envelope (so it was shortened).
    pub(crate) to_shortened: bool,
    /// Whether Cc named someone outside the envelope (so it was shortened).
    pub(crate) cc_shortened: bool,
}

/// Applies the envelope rule: Postmark delivers to every address in To, Cc and Bcc, and that set
/// must equal the envelope's RCPT TO set.
///
/// * A To/Cc mailbox whose address is in the envelope stays where it is (display name kept).
/// * A To/Cc mailbox whose address is not in the envelope is left out: it was not addressed by
///   this SMTP transaction (an MTA that splits a message across transactions, or across relays,
///   sends it the other copy). The caller records the original header text in a custom header.
/// * An address named twice (To and Cc, or twice in To) is kept at its first place only, so
///   nobody gets two copies.
/// * Envelope recipients named by no To/Cc mailbox become Bcc, in envelope order.
///
/// `envelope` must already be free of duplicates (compare with [`key`]).
pub(crate) fn route(to: Vec<Mailbox>, cc: Vec<Mailbox>, envelope: &[String]) -> Routed {
    let wanted: HashSet<String> = envelope.iter().map(|a| key(a)).collect();
    let mut placed: HashSet<String> = HashSet::new();
    let mut routed = Routed::default();

    let mut keep = |list: Vec<Mailbox>, shortened: &mut bool| -> Vec<Mailbox> {
        let mut kept = Vec::with_capacity(list.len());
        for mut mailbox in list {
            if !wanted.contains(&key(&mailbox.address)) {
                // The same mailbox in another case (`Ann@` for the envelope's `ann@`): the
                // envelope's spelling, the header's display name.
                match envelope_spelling(&mailbox.address, envelope) {
                    Some(address) => mailbox.address = address,
                    None => {
                        *shortened = true;
                        continue;
                    }
                }
            }
            if placed.insert(key(&mailbox.address)) {
                kept.push(mailbox);
            }
        }
        kept
    };
    routed.to = keep(to, &mut routed.to_shortened);
    routed.cc = keep(cc, &mut routed.cc_shortened);
    routed.bcc = envelope.iter().filter(|a| !placed.contains(&key(a))).cloned().collect();
    routed
}

/// The envelope recipient `address` names: the one with the same [`key`], else the first one
/// equal to it ignoring case.
pub(crate) fn envelope_spelling(address: &str, envelope: &[String]) -> Option<String> {
    let k = key(address);
    envelope
        .iter()
        .find(|a| key(a) == k)
        .or_else(|| {
            let folded = address.to_lowercase();
            envelope.iter().find(|a| a.to_lowercase() == folded)
        })
        .cloned()
}

/// The envelope recipients without duplicates (by [`key`]), in order, trimmed.
pub(crate) fn unique(rcpt_to: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    rcpt_to
        .iter()
        .map(|a| a.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
        .filter(|a| seen.insert(key(a)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(name: Option<&str>, address: &str) -> Mailbox {
        Mailbox { name: name.map(str::to_owned), address: address.to_owned() }
    }

    #[test]
    fn display_names_are_quoted_only_when_needed() {
        assert_eq!(mb(None, "a@x.org").to_header_text(), "a@x.org");
        assert_eq!(mb(Some("  "), "a@x.org").to_header_text(), "a@x.org");
        assert_eq!(mb(Some("Jane Doe"), "a@x.org").to_header_text(), "Jane Doe <a@x.org>");
        assert_eq!(mb(Some("Jürgen Müller"), "j@x.de").to_header_text(), "Jürgen Müller <j@x.de>");
        assert_eq!(mb(Some("Doe, Jane"), "a@x.org").to_header_text(), "\"Doe, Jane\" <a@x.org>");
        assert_eq!(mb(Some("Jane \"JD\" Doe"), "a@x.org").to_header_text(), r#""Jane \"JD\" Doe" <a@x.org>"#);
        assert_eq!(mb(Some(r"back\slash"), "a@x.org").to_header_text(), r#""back\\slash" <a@x.org>"#);
        assert_eq!(mb(Some("J. Doe"), "a@x.org").to_header_text(), "\"J. Doe\" <a@x.org>");
        // Punctuation RFC 5322 allows bare is quoted anyway: Postmark insists.
        assert_eq!(mb(Some("O'Brien"), "a@x.org").to_header_text(), "\"O'Brien\" <a@x.org>");
        assert_eq!(mb(Some("Smith-Jones"), "a@x.org").to_header_text(), "\"Smith-Jones\" <a@x.org>");
        assert_eq!(mb(Some("A&B"), "a@x.org").to_header_text(), "\"A&B\" <a@x.org>");
        assert_eq!(mb(Some("a\r\nBcc: x"), "a@x.org").to_header_text(), "\"a  Bcc: x\" <a@x.org>");
    }

    #[test]
    fn keys_fold_only_the_domain() {
        assert_eq!(key("Bob@Example.COM"), "Bob@example.com");
        assert_eq!(key(" <bob@EXAMPLE.com> "), "bob@example.com");
        assert_ne!(key("Bob@example.com"), key("bob@example.com"));
    }

    #[test]
    fn unique_keeps_first_spelling_and_order() {
        let env = vec!["b@X.org".into(), "a@x.org".into(), "b@x.ORG".into(), "<c@y.org>".into()];
        assert_eq!(unique(&env), vec!["b@X.org", "a@x.org", "c@y.org"]);
    }

    #[test]
    fn envelope_rule_adds_bcc_and_drops_header_only_recipients() {
        let to = vec![mb(Some("Ann"), "ann@x.org"), mb(None, "other@elsewhere.net")];
        let cc = vec![mb(Some("Cy"), "cy@X.org"), mb(None, "ANN@X.ORG")];
        let env = vec!["ann@x.org".into(), "cy@x.org".into(), "hidden@y.org".into()];
        let r = route(to, cc, &env);
        assert_eq!(r.to, vec![mb(Some("Ann"), "ann@x.org")]);
        assert_eq!(r.cc, vec![mb(Some("Cy"), "cy@X.org")]);
        assert_eq!(r.bcc, vec!["hidden@y.org".to_owned()]);
        assert!(r.to_shortened);
        // "ANN@X.ORG" is ann@x.org in another case: already placed in To, so not again, and
        // nothing was left out of Cc.
        assert!(!r.cc_shortened);
    }

    #[test]
    fn a_header_address_that_differs_from_the_envelope_only_in_case_keeps_its_display_name() {
        let to = vec![mb(Some("Ann Example"), "Ann@Example.org")];
        let r = route(to, Vec::new(), &["ann@example.org".into()]);
        assert_eq!(r.to, vec![mb(Some("Ann Example"), "ann@example.org")]);
        assert!(r.bcc.is_empty() && !r.to_shortened);
        // An exact spelling in the envelope wins over a case-insensitive one.
        let env = vec!["bob@x.org".to_owned(), "Bob@x.org".to_owned()];
        assert_eq!(envelope_spelling("Bob@X.org", &env).as_deref(), Some("Bob@x.org"));
        assert_eq!(envelope_spelling("BOB@x.org", &env).as_deref(), Some("bob@x.org"));
        assert_eq!(envelope_spelling("carol@x.org", &env), None);
    }

    #[test]
    fn an_address_in_to_and_cc_is_delivered_once() {
        let to = vec![mb(None, "a@x.org")];
        let cc = vec![mb(Some("A again"), "a@X.org"), mb(None, "b@x.org")];
        let env = vec!["a@x.org".into(), "b@x.org".into()];
        let r = route(to, cc, &env);
        assert_eq!(r.to, vec![mb(None, "a@x.org")]);
        assert_eq!(r.cc, vec![mb(None, "b@x.org")]);
        assert!(r.bcc.is_empty());
        assert!(!r.to_shortened && !r.cc_shortened);
    }
}
