//! Postmark's address rules (support article 1180, "What does Error Code 300 mean?").
//!
//! * A field holds a comma-separated list; a comma inside a quoted display name or inside `<…>` does not split:
//!   `"Name, Jr." <a@b.c>, d@e.f` is two addresses.
//! * An entry is a bare address (`a@b.c`) or a display name and an address in angle brackets (`Name <a@b.c>`,
//!   `"Name, Jr." <a@b.c>`, `<a@b.c>`). A display name with punctuation must be quoted; an unquoted one may hold
//!   only letters, digits and spaces (the strict reading of "special character or punctuation").
//! * The local part matches `^[a-z0-9.!#$%&'`*+\-/=^_{}|~]+$` (letters in either case) with no leading, trailing
//!   or doubled dot; the domain matches `^((\.)?[a-zA-Z0-9\-])+$` (so no trailing or doubled dot either).
//! * Comments, groups, quoted local parts, internationalised addresses and empty entries are refused (strict
//!   reading: the rules above do not allow them).

/// One address of an address field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name, unquoted and unescaped; `None` when there is none.
    pub name: Option<String>,
    /// The address (`local@domain`), as written.
    pub address: String,
}

/// Parses a comma-separated address field the way Postmark does; the error says which entry is wrong and why.
pub fn parse_address_list(value: &str) -> Result<Vec<Mailbox>, String> {
    split_entries(value)?.into_iter().map(parse_entry).collect()
}

/// Whether `address` (without display name or angle brackets) passes Postmark's local-part and domain rules.
pub fn is_valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else { return false };
    valid_local_part(local) && valid_domain(domain)
}

fn valid_local_part(local: &str) -> bool {
    !local.is_empty()
        && local.chars().all(|c| c.is_ascii_alphanumeric() || ".!#$%&'`*+-/=^_{}|~".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
}

/// `^((\.)?[a-zA-Z0-9\-])+$`: every dot is followed by a letter, digit or hyphen.
fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

/// Splits at commas outside quotes and angle brackets.
fn split_entries(value: &str) -> Result<Vec<&str>, String> {
    let mut entries = Vec::new();
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' if !angle => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                entries.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err(format!("'{value}' has an unterminated quoted display name."));
    }
    if angle {
        return Err(format!("'{value}' has an unterminated '<'."));
    }
    entries.push(&value[start..]);
    Ok(entries)
}

fn parse_entry(entry: &str) -> Result<Mailbox, String> {
    let entry = entry.trim();
    if entry.is_empty() {
        return Err("an empty entry in the address list.".to_owned());
    }
    let Some(open) = find_unquoted(entry, '<') else {
        if !is_valid_address(entry) {
            return Err(format!("'{entry}' is not a valid email address."));
        }
        return Ok(Mailbox { name: None, address: entry.to_owned() });
    };
    let Some(inner) = entry[open + 1..].strip_suffix('>') else {
        return Err(format!("'{entry}': text after the closing '>'."));
    };
    if !is_valid_address(inner) {
        return Err(format!("'{entry}': '{inner}' is not a valid email address."));
    }
    let name = display_name(entry[..open].trim()).map_err(|why| format!("'{entry}': {why}"))?;
    Ok(Mailbox { name, address: inner.to_owned() })
}

/// Byte index of the first `target` outside a quoted string.
fn find_unquoted(text: &str, target: char) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == target && !quoted {
            return Some(i);
        }
    }
    None
}

/// A display name: one quoted string, or letters, digits and spaces only.
fn display_name(text: &str) -> Result<Option<String>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    if let Some(rest) = text.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => name.push(chars.next().ok_or("a quoted display name ends in '\\'.")?),
                '"' if chars.as_str().is_empty() => return Ok(Some(name)),
                '"' => return Err("text after the quoted display name.".to_owned()),
                c => name.push(c),
            }
        }
        return Err("an unterminated quoted display name.".to_owned());
    }
    if text.chars().all(|c| c.is_alphanumeric() || c == ' ') {
        Ok(Some(text.to_owned()))
    } else {
        Err(format!("the display name '{text}' has punctuation and must be quoted."))
    }
}
