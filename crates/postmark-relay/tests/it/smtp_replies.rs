//! The shape of SMTP server output, shared by the session property tests and the `session` fuzz
//! target (which includes this file with `#[path]`, so it uses nothing but `std`).
//!
//! Well-formed means: CRLF-terminated lines matching `^\d{3}[ -]`, codes 2xx–5xx, the lines of a
//! multi-line reply all with the same code and ending with a `code SP` line, text limited to
//! RFC 5321's `textstring` (HT and printable ASCII; printable UTF-8 too in `553 5.6.7`, the
//! reply naming an address sent with SMTPUTF8, as RFC 6531 allows), and an RFC 3463 enhanced status code
//! `\d\.\d{1,3}\.\d{1,3}` of the reply's class on every line of every reply except the greeting,
//! the EHLO/HELO answer (capability keywords; RFC 2034) and 354 (RFC 3463 has no class 3).

/// Checks that `out` is a sequence of well-formed SMTP replies (RFC 5321 §4.2, RFC 2034 / 3463),
/// and returns them as (code, lines). `host` is the server's name, which starts the EHLO/HELO
/// answer.
pub fn check_replies(out: &[u8], host: &str) -> Result<Vec<(u16, Vec<String>)>, String> {
    let text = std::str::from_utf8(out).map_err(|e| format!("replies are not UTF-8: {e}"))?;
    if !text.is_empty() && !text.ends_with("\r\n") {
        return Err(format!("output does not end with CRLF: {text:?}"));
    }
    let mut replies: Vec<(u16, Vec<String>)> = Vec::new();
    let mut open: Option<(u16, Vec<String>)> = None;
    for line in text.split_terminator("\r\n") {
        if line.contains(['\r', '\n']) {
            return Err(format!("bare CR or LF inside reply line {line:?}"));
        }
        let b = line.as_bytes();
        if b.len() < 4 || !b[..3].iter().all(u8::is_ascii_digit) || !matches!(b[3], b' ' | b'-') {
            return Err(format!("reply line does not match ^\\d{{3}}[ -]: {line:?}"));
        }
        // RFC 6531 §3.7.4.2 extends textstring with UTF-8 for a transaction begun with
        // SMTPUTF8; the relay uses that only to name a refused internationalized address.
        let utf8 = line.starts_with("553 5.6.7 ");
        if let Some(bad) = line
            .chars()
            .find(|&c| c != '\t' && !(' '..='~').contains(&c) && !(utf8 && !c.is_ascii() && !c.is_control()))
        {
            return Err(format!("reply text has a character outside %d9 / %d32-126 ({bad:?}): {line:?}"));
        }
        let code: u16 = line[..3].parse().expect("three digits");
        if !(200..600).contains(&code) {
            return Err(format!("reply code {code} is not 2xx-5xx: {line:?}"));
        }
        let (cur_code, lines) = open.get_or_insert_with(|| (code, Vec::new()));
        if *cur_code != code {
            return Err(format!("continuation line with another code: {line:?} after {lines:?}"));
        }
        lines.push(line.to_owned());
        if b[3] == b' ' {
            replies.push(open.take().expect("open reply"));
        }
    }
    if let Some((_, lines)) = open {
        return Err(format!("multi-line reply never ended: {lines:?}"));
    }
    for (i, (code, lines)) in replies.iter().enumerate() {
        // Exempt: the greeting, the EHLO/HELO answer (capability keywords) and 354 (RFC 3463
        // has no class 3).
        let greeting = i == 0 && *code == 220;
        let ehlo = *code == 250 && lines[0][4..].starts_with(&format!("{host} Hello "));
        if greeting || ehlo || *code == 354 {
            continue;
        }
        if *code == 220 {
            return Err(format!("a 220 that is not the greeting: {lines:?}"));
        }
        for line in lines {
            check_enhanced(*code, line)?;
        }
    }
    Ok(replies)
}

/// `^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}( |$)` with the class equal to the reply's first digit.
fn check_enhanced(code: u16, line: &str) -> Result<(), String> {
    let rest = &line[4..];
    let esc = rest.split(' ').next().unwrap_or("");
    let parts: Vec<&str> = esc.split('.').collect();
    let ok = parts.len() == 3
        && parts[0].len() == 1
        && (1..=3).contains(&parts[1].len())
        && (1..=3).contains(&parts[2].len())
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if !ok {
        return Err(format!("no enhanced status code in {line:?}"));
    }
    if u16::from(parts[0].as_bytes()[0] - b'0') != code / 100 {
        return Err(format!("enhanced status class differs from the reply code: {line:?}"));
    }
    Ok(())
}
