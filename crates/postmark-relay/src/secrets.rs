//! Where upstream credentials come from, so they can be read again without a restart.
//!
//! Each secret can be given as a value or as a file holding it (surrounding whitespace and the
//! final newline are ignored), in the environment or in the config file:
//!
//! | secret | env | env, from a file | file key | file key, from a file |
//! | --- | --- | --- | --- | --- |
//! | server token | `POSTMARK_SERVER_TOKEN` | `POSTMARK_SERVER_TOKEN_FILE` | `server_token` | `server_token_file` |
//! | SMTP access key | `POSTMARK_SMTP_ACCESS_KEY` | `POSTMARK_SMTP_ACCESS_KEY_FILE` | `smtp_access_key` | `smtp_access_key_file` |
//! | SMTP secret key | `POSTMARK_SMTP_SECRET_KEY` | `POSTMARK_SMTP_SECRET_KEY_FILE` | `smtp_secret_key` | `smtp_secret_key_file` |
//!
//! The environment beats the config file; giving both a value and a file in the same place is an
//! error. The environment of a running process cannot change, so it is captured once
//! ([`EnvSecrets`]); the files (the secret files and the config file) are read again on every
//! reload (SIGHUP, or a change the relay notices by polling).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use postmark_core::Token as Secret;
use serde::Deserialize;

/// An SMTP token: access key (user name) and secret key (password).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpKey {
    /// Access key, sent as the user name.
    pub access_key: Secret,
    /// Secret key, sent as the password.
    pub secret_key: Secret,
}

/// Every credential the relay knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `POSTMARK_SERVER_TOKEN`: the API token, also usable as SMTP user and password.
    pub server_token: Option<Secret>,
    /// `POSTMARK_SMTP_ACCESS_KEY` + `POSTMARK_SMTP_SECRET_KEY`: the default SMTP token.
    pub smtp: Option<SmtpKey>,
    /// Per-stream SMTP tokens from the config file, chosen by the message's stream.
    pub streams: BTreeMap<String, SmtpKey>,
}

impl Credentials {
    /// Whether nothing at all is configured.
    pub fn is_empty(&self) -> bool {
        self.server_token.is_none() && self.smtp.is_none() && self.streams.is_empty()
    }

    /// Whether an SMTP token (default or per stream) is configured.
    pub fn has_smtp(&self) -> bool {
        self.smtp.is_some() || !self.streams.is_empty()
    }
}

/// Why a secret could not be read. Never holds the secret itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// A value and a file were both given for one secret.
    #[error("set {0} or {0}_FILE, not both")]
    EnvConflict(&'static str),
    /// A value and a file were both given in the config file.
    #[error("config file: set {0} or {0}_file, not both")]
    FileConflict(String),
    /// The secret file cannot be read.
    #[error("{what} {}: {source}", path.display())]
    Read {
        /// Which setting named the file.
        what: String,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The secret file holds no usable secret.
    #[error("{what} {}: {problem}", path.display())]
    Unusable {
        /// Which setting named the file.
        what: String,
        /// The file.
        path: PathBuf,
        /// `the file is empty`, `more than one line`, `not UTF-8 text`.
        problem: &'static str,
    },
    /// Only one half of an SMTP token.
    #[error("an SMTP token needs both POSTMARK_SMTP_ACCESS_KEY and POSTMARK_SMTP_SECRET_KEY")]
    HalfSmtpToken,
}

/// The server token's environment variable.
pub const SERVER_TOKEN: &str = "POSTMARK_SERVER_TOKEN";
/// The SMTP access key's environment variable.
pub const SMTP_ACCESS_KEY: &str = "POSTMARK_SMTP_ACCESS_KEY";
/// The SMTP secret key's environment variable.
pub const SMTP_SECRET_KEY: &str = "POSTMARK_SMTP_SECRET_KEY";

const NAMES: [&str; 3] = [SERVER_TOKEN, SMTP_ACCESS_KEY, SMTP_SECRET_KEY];

/// Secrets given in the environment, as values or as files, captured at start-up.
#[derive(Clone, Default)]
pub struct EnvSecrets {
    values: BTreeMap<&'static str, Secret>,
    files: BTreeMap<&'static str, PathBuf>,
}

impl std::fmt::Debug for EnvSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvSecrets")
            .field("values", &self.values.keys().collect::<Vec<_>>())
            .field("files", &self.files)
            .finish()
    }
}

impl EnvSecrets {
    /// Reads the variables from `env`. Setting both `NAME` and `NAME_FILE` is an error.
    pub fn capture(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, SecretError> {
        let mut out = Self::default();
        for name in NAMES {
            let value = env(name).filter(|v| !v.is_empty());
            let file = env(&format!("{name}_FILE")).filter(|v| !v.is_empty());
            match (value, file) {
                (Some(_), Some(_)) => return Err(SecretError::EnvConflict(name)),
                (Some(v), None) => {
                    out.values.insert(name, Secret::new(v));
                }
                (None, Some(f)) => {
                    out.files.insert(name, PathBuf::from(f));
                }
                (None, None) => {}
            }
        }
        Ok(out)
    }

    /// The secret `name` (one of the `POSTMARK_*` names above): its value, or its file's content
    /// read now.
    pub fn get(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        if let Some(v) = self.values.get(name) {
            return Ok(Some(v.clone()));
        }
        match self.files.get(name) {
            Some(path) => read_secret_file(path, &format!("{name}_FILE")).map(Some),
            None => Ok(None),
        }
    }

    /// The secret files named in the environment.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.values().map(PathBuf::as_path)
    }
}

/// A secret from the config file: `key = "value"` or `key_file = "path"`, not both.
pub fn from_file_keys(
    value: Option<Secret>,
    path: Option<&Path>,
    key: &str,
    files: &mut Vec<PathBuf>,
) -> Result<Option<Secret>, SecretError> {
    match (value, path) {
        (Some(_), Some(_)) => Err(SecretError::FileConflict(key.to_owned())),
        (Some(v), None) => Ok(Some(v)),
        (None, Some(p)) => {
            files.push(p.to_path_buf());
            read_secret_file(p, &format!("config file key {key}_file")).map(Some)
        }
        (None, None) => Ok(None),
    }
}

/// Reads a secret file: the content without surrounding whitespace, which must not be empty.
/// Errors name the file, never its content.
pub fn read_secret_file(path: &Path, what: &str) -> Result<Secret, SecretError> {
    let unusable = |problem| SecretError::Unusable { what: what.to_owned(), path: path.to_path_buf(), problem };
    let bytes = std::fs::read(path).map_err(|source| SecretError::Read {
        what: what.to_owned(),
        path: path.to_path_buf(),
        source,
    })?;
    let Ok(text) = String::from_utf8(bytes) else {
        return Err(unusable("not UTF-8 text"));
    };
    let value = text.trim();
    if value.is_empty() {
        return Err(unusable("the file is empty"));
    }
    if value.contains(['\r', '\n']) {
        return Err(unusable("more than one line"));
    }
    warn_if_readable_by_others(path, what);
    Ok(Secret::new(value))
}

/// Logs a warning when a file holding credentials can be read by other users.
#[cfg(unix)]
pub(crate) fn warn_if_readable_by_others(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(file = %path.display(), "{what} holds credentials but is readable by others; consider chmod 600");
    }
}

/// Logs a warning when a file holding credentials can be read by other users.
#[cfg(not(unix))]
pub(crate) fn warn_if_readable_by_others(_path: &Path, _what: &str) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::env_of;

    #[test]
    fn values_files_and_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "  file-token-123\n").unwrap();
        let t = token.to_str().unwrap();
        let env = EnvSecrets::capture(&env_of(&[("POSTMARK_SERVER_TOKEN_FILE", t), ("POSTMARK_SMTP_ACCESS_KEY", "a")]))
            .unwrap();
        assert_eq!(env.get(SERVER_TOKEN).unwrap().unwrap().expose(), "file-token-123");
        assert_eq!(env.get(SMTP_ACCESS_KEY).unwrap().unwrap().expose(), "a");
        assert!(env.get(SMTP_SECRET_KEY).unwrap().is_none());
        assert_eq!(env.files().collect::<Vec<_>>(), [token.as_path()]);
        assert!(!format!("{env:?}").contains("file-token-123"));
        assert!(!format!("{env:?}").contains("\"a\""));

        // Rotation: the file is read again each time.
        std::fs::write(&token, "rotated\n").unwrap();
        assert_eq!(env.get(SERVER_TOKEN).unwrap().unwrap().expose(), "rotated");

        let e = EnvSecrets::capture(&env_of(&[("POSTMARK_SERVER_TOKEN", "x"), ("POSTMARK_SERVER_TOKEN_FILE", t)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not both"), "{e}");
    }

    #[test]
    fn bad_secret_files_are_named_but_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        for (content, wanted) in [
            (&b""[..], "empty"),
            (b" \n\n", "empty"),
            (b"line-one-secret\nline-two-secret\n", "more than one line"),
            (b"\xff\xfe-secret", "not UTF-8"),
        ] {
            std::fs::write(&path, content).unwrap();
            let e = read_secret_file(&path, "POSTMARK_SERVER_TOKEN_FILE").unwrap_err().to_string();
            assert!(e.contains(wanted) && e.contains("POSTMARK_SERVER_TOKEN_FILE"), "{e}");
            assert!(!e.contains("secret"), "{e}");
        }
        let e = read_secret_file(Path::new("/no/such/token"), "server_token_file").unwrap_err().to_string();
        assert!(e.contains("/no/such/token"), "{e}");
        let mut files = Vec::new();
        let e =
            from_file_keys(Some(Secret::new("v")), Some(&path), "server_token", &mut files).unwrap_err().to_string();
        assert!(e.contains("not both"), "{e}");
    }
}
