//! Attachments from a file or bytes: name, MIME type (guessed from the extension with `mime_guess`), base64 content,
//! inline images with `cid:` IDs, and Postmark's refusals checked before anything is sent.

use std::path::Path;

use base64::Engine as _;

use crate::Error;
use crate::types::EmailAttachment;

// Both limits come from `postmark_core::limits`, the one definition the relay uses too.
/// File extensions Postmark refuses as attachments (HTTP 422, ErrorCode 411), lower case, without the dot.
pub use postmark_core::limits::FORBIDDEN_EXTENSIONS;
/// The most a message may weigh at Postmark, attachments included, measured after base64: 10 MB, read strictly as
/// 10,000,000 bytes.
pub use postmark_core::limits::MAX_MESSAGE_BYTES;

/// Whether Postmark refuses an attachment with this file name because of its extension (case-insensitive; trailing
/// dots and blanks ignored, as a file system would).
pub fn is_forbidden_name(name: &str) -> bool {
    postmark_core::limits::forbidden_extension(name).is_some()
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.trim().is_empty() {
        return Err(Error::InvalidInput("an attachment needs a file name".into()));
    }
    if is_forbidden_name(name) {
        return Err(Error::InvalidInput(format!(
            "Postmark refuses attachments of this type (ErrorCode 411): {name:?}; forbidden extensions: {}",
            FORBIDDEN_EXTENSIONS.join(", ")
        )));
    }
    Ok(())
}

fn check_size(encoded: usize, what: &str) -> Result<(), Error> {
    if encoded > MAX_MESSAGE_BYTES {
        return Err(Error::InvalidInput(format!(
            "{what} is {encoded} bytes after base64; Postmark accepts at most {MAX_MESSAGE_BYTES} per message"
        )));
    }
    Ok(())
}

/// Checks attachments as Postmark will: no forbidden extension, and at most [`MAX_MESSAGE_BYTES`] of base64 in all.
pub fn validate_attachments(attachments: &[EmailAttachment]) -> Result<(), Error> {
    for a in attachments {
        check_name(&a.name)?;
    }
    check_size(attachments.iter().map(|a| a.content.len()).sum(), "the attachments' content")
}

impl EmailAttachment {
    /// An attachment named `name` holding `bytes`, its MIME type guessed from the extension
    /// (`application/octet-stream` when unknown). Fails on a forbidden extension or more than 10 MB of base64.
    pub fn from_bytes(name: impl Into<String>, bytes: impl AsRef<[u8]>) -> Result<Self, Error> {
        let name = name.into();
        check_name(&name)?;
        let bytes = bytes.as_ref();
        check_size(bytes.len().div_ceil(3) * 4, &format!("attachment {name:?}"))?;
        let content_type = mime_guess::from_path(&name).first_or_octet_stream().essence_str().to_string();
        let content = base64::engine::general_purpose::STANDARD.encode(bytes);
        Ok(EmailAttachment { name, content, content_type, content_id: None })
    }

    /// The file at `path`, named after its file name. Checks the name and size before reading the file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::InvalidInput(format!("{} has no usable file name", path.display())))?
            .to_string();
        check_name(&name)?;
        let size = std::fs::metadata(path)
            .map_err(|e| Error::InvalidInput(format!("cannot read {}: {e}", path.display())))?
            .len();
        check_size((size as usize).div_ceil(3) * 4, &format!("attachment {name:?}"))?;
        let bytes =
            std::fs::read(path).map_err(|e| Error::InvalidInput(format!("cannot read {}: {e}", path.display())))?;
        Self::from_bytes(name, bytes)
    }

    /// An inline image (or other part) the HTML body shows with `<img src="cid:ID">`; see [`cid`](Self::cid).
    pub fn inline(name: impl Into<String>, bytes: impl AsRef<[u8]>, content_id: &str) -> Result<Self, Error> {
        let id = content_id.trim().trim_start_matches("cid:");
        if id.is_empty() || id.contains(['<', '>', '"', ' ']) {
            return Err(Error::InvalidInput(format!("{content_id:?} is not a usable Content-ID")));
        }
        let mut a = Self::from_bytes(name, bytes)?;
        a.content_id = Some(format!("cid:{id}"));
        Ok(a)
    }

    /// Replaces the guessed MIME type.
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = content_type.into();
        self
    }

    /// The `cid:…` reference for an inline attachment, as the HTML body's `src` uses it.
    pub fn cid(&self) -> Option<&str> {
        self.content_id.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_become_base64_with_a_guessed_type() {
        let a = EmailAttachment::from_bytes("invoice.pdf", b"%PDF-1.4").expect("ok");
        assert_eq!((a.name.as_str(), a.content_type.as_str()), ("invoice.pdf", "application/pdf"));
        assert_eq!(a.content, "JVBERi0xLjQ=");
        assert_eq!(
            EmailAttachment::from_bytes("notes.unknownext", b"x").expect("ok").content_type,
            "application/octet-stream"
        );
        assert_eq!(EmailAttachment::from_bytes("x.CSV", b"a,b").expect("ok").content_type, "text/csv");
    }

    #[test]
    fn forbidden_extensions_are_refused_in_any_case() {
        for name in ["setup.exe", "SETUP.EXE", "run.Bat", "a.tar.msi"] {
            let err = EmailAttachment::from_bytes(name, b"MZ").expect_err(name);
            assert!(err.to_string().contains("ErrorCode 411"), "{err}");
        }
        assert!(!is_forbidden_name("exe.pdf"));
        assert!(!is_forbidden_name("README"));
        assert!(is_forbidden_name("setup.EXE."), "a trailing dot does not hide the extension");
        assert!(EmailAttachment::from_bytes("  ", b"x").is_err(), "a name is required");
    }

    #[test]
    fn size_is_checked_after_base64() {
        // 7,500,000 bytes are exactly 10,000,000 bytes of base64; one byte more is over.
        let limit = MAX_MESSAGE_BYTES / 4 * 3;
        assert!(EmailAttachment::from_bytes("a.bin.txt", vec![0u8; limit]).is_ok());
        let err = EmailAttachment::from_bytes("a.txt", vec![0u8; limit + 1]).expect_err("too big");
        assert!(err.to_string().contains("at most 10000000"), "{err}");
        let half = EmailAttachment::from_bytes("h.txt", vec![0u8; limit / 2 + 3]).expect("ok");
        assert!(validate_attachments(&[half.clone(), half]).is_err(), "the total counts");
    }

    #[test]
    fn inline_images_get_cid_references() {
        let a = EmailAttachment::inline("logo.png", [0x89, b'P', b'N', b'G'], "logo@acme").expect("ok");
        assert_eq!(a.cid(), Some("cid:logo@acme"));
        assert_eq!(a.content_type, "image/png");
        assert_eq!(EmailAttachment::inline("l.png", b"x", "cid:l1").expect("ok").cid(), Some("cid:l1"));
        assert!(EmailAttachment::inline("l.png", b"x", "").is_err());
        assert!(EmailAttachment::inline("l.png", b"x", "a b").is_err());
    }

    #[test]
    fn files_are_read_and_named_after_their_file_name() {
        let dir = std::env::temp_dir().join(format!("pm-attach-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("report.html");
        std::fs::write(&path, "<p>hi</p>").expect("write");
        let a = EmailAttachment::from_path(&path).expect("ok");
        assert_eq!((a.name.as_str(), a.content_type.as_str()), ("report.html", "text/html"));
        assert!(EmailAttachment::from_path(dir.join("missing.txt")).is_err());
        let exe = dir.join("tool.exe");
        std::fs::write(&exe, "MZ").expect("write");
        assert!(EmailAttachment::from_path(&exe).expect_err("forbidden").to_string().contains("411"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
