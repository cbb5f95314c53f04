//! Why a configuration cannot be used. The texts are shown to the operator as they are; none of
//! them ever holds a secret (a config file's parse error is redacted, secret files are named,
//! never quoted).

use std::path::PathBuf;

use crate::access::AccessError;
use crate::secrets::SecretError;

/// A configuration error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML for the relay (the message never quotes a value).
    #[error("config file {}: {message}", path.display())]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// Line number and the parser's message, quoted values replaced by `"..."`.
        message: String,
    },
    /// A setting has a value the relay cannot use.
    #[error("{setting}: {reason}")]
    Invalid {
        /// The flag or file key, e.g. `--api-url` or `limits.max_recipients`.
        setting: String,
        /// What is wrong and what would be right.
        reason: String,
    },
    /// Settings that do not fit together (e.g. `--via api` without a server token).
    #[error("{0}")]
    Inconsistent(String),
    /// A secret cannot be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The access settings (allow-list, TLS, users) are wrong.
    #[error(transparent)]
    Access(#[from] AccessError),
}

impl ConfigError {
    /// A setting with an unusable value.
    pub(crate) fn invalid(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid { setting: setting.into(), reason: reason.into() }
    }
}
