//! Internationalized addresses (RFC 6531, `MAIL … SMTPUTF8`) as Postmark can take them.
//!
//! Postmark's address rules take ASCII only (letters, digits and `.!#$%&'*+-/=^_`{|}~` before
//! the `@`, a domain name after it). So:
//!
//! * an internationalized domain (`bücher.de`) is converted to its A-label (`xn--bcher-kva.de`,
//!   IDNA2008 with UTS #46 processing, the `idna` crate): the same domain, nothing lost;
//! * a local part with non-ASCII characters (`jörg@…`) has no ASCII form, so the address is
//!   refused at `MAIL`/`RCPT` with `553 5.6.7` (RFC 6531 §3.7.4.1: "non-ASCII addresses not
//!   permitted for that sender/recipient"), the reply naming it in UTF-8, which RFC 6531
//!   §3.7.4.2 allows in a transaction begun with `SMTPUTF8`.

use std::borrow::Cow;

use super::reply::Reply;

/// Which side of the envelope an address is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// `MAIL FROM`.
    Sender,
    /// `RCPT TO`.
    Recipient,
}

/// `address` as Postmark can take it: unchanged when ASCII, its domain as an A-label when that
/// is what is not ASCII; else the refusal.
pub(super) fn ascii_address(address: &str, side: Side) -> Result<Cow<'_, str>, Reply> {
    if address.is_ascii() {
        return Ok(Cow::Borrowed(address));
    }
    let (whom, bad_syntax) = match side {
        Side::Sender => ("from", "5.1.7"),
        Side::Recipient => ("to", "5.1.3"),
    };
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    if !local.is_ascii() {
        return Err(Reply::new(
            553,
            "5.6.7",
            format!(
                "Postmark cannot send {whom} {address}: its local part (before the @) is not ASCII; \
                 only the domain may be internationalized"
            ),
        )
        .in_utf8());
    }
    match crate::convert::with_a_label(address) {
        Some(ascii) => Ok(Cow::Owned(ascii)),
        None => Err(Reply::new(
            553,
            bad_syntax,
            format!("{address}: {domain} is not a valid internationalized domain name"),
        )
        .in_utf8()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internationalized_domain_becomes_its_a_label() {
        assert_eq!(ascii_address("info@bücher.de", Side::Recipient).unwrap(), "info@xn--bcher-kva.de");
        assert_eq!(ascii_address("a@Bücher.DE", Side::Sender).unwrap(), "a@xn--bcher-kva.de");
        assert_eq!(ascii_address("x@例え.テスト", Side::Recipient).unwrap(), "x@xn--r8jz45g.xn--zckzah");
        assert!(matches!(ascii_address("plain@example.com", Side::Recipient), Ok(Cow::Borrowed("plain@example.com"))));
    }

    #[test]
    fn a_non_ascii_local_part_is_refused_with_553_5_6_7_naming_it_in_utf8() {
        let r = ascii_address("jörg@bücher.de", Side::Recipient).unwrap_err();
        let mut out = Vec::new();
        r.write_to(&mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(line.starts_with("553 5.6.7 Postmark cannot send to jörg@bücher.de: its local part"), "{line}");
        let r = ascii_address("jörg@example.com", Side::Sender).unwrap_err();
        assert!(r.text.starts_with("Postmark cannot send from jörg@example.com"), "{r}");
        // A bare name is all local part.
        assert_eq!(ascii_address("jörg", Side::Recipient).unwrap_err().enhanced, Some("5.6.7"));
        let r = ascii_address("a@xn--ü.de", Side::Recipient).unwrap_err();
        assert_eq!((r.code, r.enhanced), (553, Some("5.1.3")), "{r}");
    }
}
