//! What Postmark accepts in a send: its documented limits, the attachment types it refuses and its
//! address rules. One definition each, for the API clients, the relay and anything that checks a
//! message before Postmark does.
//!
//! Sources: Postmark's developer documentation (sending API, batch limits, attachments) and its
//! support articles on ErrorCode 300 (invalid email request) and on message size.

/// Most recipients of one message, counted over `To`, `Cc` and `Bcc` together (ErrorCode 300).
pub const MAX_RECIPIENTS: usize = 50;

/// Largest message on the API, attachments included and measured after base64: 10 MB, read as
/// 10,000,000 bytes (the strict reading of Postmark's "10 MB").
pub const MAX_MESSAGE_BYTES: usize = 10_000_000;

/// Largest `TextBody`, and largest `HtmlBody`: 5 MB each (5,000,000 bytes).
pub const MAX_BODY_BYTES: usize = 5_000_000;

/// Most messages in one `/email/batch` or `/email/batchWithTemplates` request (ErrorCode 410).
pub const MAX_BATCH_MESSAGES: usize = 500;

/// Largest batch request payload: 50 MB (50,000,000 bytes).
pub const MAX_BATCH_BYTES: usize = 50_000_000;

/// Longest `Subject`, in characters (UTF-16 code units, as Postmark counts).
pub const MAX_SUBJECT_CHARS: usize = 2000;

/// Longest `From` value (`Name <address>`), in characters (UTF-16 code units).
pub const MAX_FROM_CHARS: usize = 255;

/// Longest `Tag`, in characters (UTF-16 code units).
pub const MAX_TAG_CHARS: usize = 1000;

/// Most `Metadata` keys of one message.
pub const MAX_METADATA_KEYS: usize = 10;

/// Longest `Metadata` key, in characters (UTF-16 code units). Keys differing only in case count
/// as the same key.
pub const MAX_METADATA_KEY_CHARS: usize = 20;

/// Longest `Metadata` value, in characters.
pub const MAX_METADATA_VALUE_CHARS: usize = 80;

/// The length of `text` as Postmark counts characters: UTF-16 code units.
pub fn char_count(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Attachment file extensions Postmark refuses (ErrorCode 411), lower case, without the dot.
pub const FORBIDDEN_EXTENSIONS: &[&str] = &[
    "vbs", "exe", "bin", "bat", "chm", "com", "cpl", "crt", "hlp", "hta", "inf", "ins", "isp", "jse", "lnk", "mdb",
    "pcd", "pif", "reg", "scr", "sct", "shs", "vbe", "vba", "wsf", "wsh", "wsl", "msc", "msi", "msp", "mst",
];

/// The extension of `file_name` (lower case) when Postmark refuses attachments of that type.
///
/// The extension is what follows the last dot, compared case-insensitively; trailing blanks
/// and dots are ignored, as a file system would (`setup.EXE.` is an `exe`).
pub fn forbidden_extension(file_name: &str) -> Option<&'static str> {
    let name = file_name.trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    let (_, ext) = name.rsplit_once('.')?;
    FORBIDDEN_EXTENSIONS.iter().find(|f| f.eq_ignore_ascii_case(ext)).copied()
}

/// Whether Postmark accepts `address` (a bare `local@domain`, no display name, no angle brackets)
/// as a sender or recipient.
///
/// Postmark's documented rules (support article on ErrorCode 300): the local part uses only
/// letters, digits and ``.!#$%&'`*+-/=^_{}|~`` and has no leading, trailing or doubled dot; the
/// domain uses only letters, digits and hyphens in dot-separated labels. That excludes quoted
/// local parts, address literals (`[192.0.2.1]`), non-ASCII addresses (SMTPUTF8) and `?`, which
/// RFC 5321 would allow.
pub fn is_valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"._!#$%&'`*+-/=^{}|~".contains(&b));
    let domain_ok = !domain.is_empty()
        && domain
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_postmark_accepts() {
        for good in [
            "a@example.com",
            "first.last+tag@sub.example.co.uk",
            "o'brien@example.ie",
            "x!#$%&'`*+-/=^_{}|~@example.com",
            "UPPER@EXAMPLE.COM",
            "root@localhost",
            "a@x-y.example",
        ] {
            assert!(is_valid_address(good), "{good:?} should be accepted");
        }
    }

    #[test]
    fn addresses_postmark_refuses() {
        for bad in [
            "",
            "a",
            "@example.com",
            "a@",
            ".a@example.com",
            "a.@example.com",
            "a..b@example.com",
            "\"john doe\"@example.com",
            "a b@example.com",
            "who?@example.com",
            "a@[192.0.2.1]",
            "a@example..com",
            "a@.example.com",
            "a@example.com.",
            "a@exa_mple.com",
            "jürgen@example.de",
            "a@münchen.de",
            "a@b@example.com",
            "<a@example.com>",
            "a@example.com,b@example.com",
        ] {
            assert!(!is_valid_address(bad), "{bad:?} should be refused");
        }
    }

    #[test]
    fn forbidden_extensions_are_found_whatever_their_case() {
        assert_eq!(forbidden_extension("setup.exe"), Some("exe"));
        assert_eq!(forbidden_extension("SETUP.EXE"), Some("exe"));
        assert_eq!(forbidden_extension(" tool.Bat. "), Some("bat"));
        assert_eq!(forbidden_extension("archive.exe.zip"), None);
        assert_eq!(forbidden_extension("exe"), None);
        assert_eq!(forbidden_extension("report.pdf"), None);
        assert_eq!(FORBIDDEN_EXTENSIONS.len(), 31);
        for ext in FORBIDDEN_EXTENSIONS {
            assert_eq!(forbidden_extension(&format!("f.{}", ext.to_ascii_uppercase())), Some(*ext));
        }
    }
}
