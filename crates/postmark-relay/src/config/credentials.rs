//! Credentials: from the environment (values or `_FILE`s) first, then the config file (values or
//! `_file`s), read again on reload.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ConfigError;
use super::file::FileConfig;
use crate::secrets::{self, Credentials, EnvSecrets, RouteCredentials, Secret, SmtpKey};

/// Where the credentials come from: the config file and the environment (values or files), so
/// they can be read again without a restart.
#[derive(Debug, Clone, Default)]
pub struct CredentialSource {
    pub(super) config_file: Option<PathBuf>,
    pub(super) env: EnvSecrets,
}

impl CredentialSource {
    /// Reads the credentials from the environment as captured at start, the secret files and the
    /// config file as they are now. Also returns every file they were read from, to watch.
    pub fn load(&self) -> Result<(Credentials, Vec<PathBuf>), ConfigError> {
        let file = FileConfig::read(self.config_file.as_deref())?;
        let (credentials, mut files) = credentials_from(&self.env, &file)?;
        files.extend(self.config_file.iter().cloned());
        files.extend(self.env.files().map(Path::to_path_buf));
        Ok((credentials, files))
    }
}

/// Reads secrets from the config file's `key` / `key_file` pairs, noting the files read.
#[derive(Default)]
struct FileSecrets {
    files: Vec<PathBuf>,
}

impl FileSecrets {
    fn get(
        &mut self,
        value: &Option<Secret>,
        path: &Option<PathBuf>,
        key: &str,
    ) -> Result<Option<Secret>, ConfigError> {
        Ok(secrets::from_file_keys(value.clone(), path.as_deref(), key, &mut self.files)?)
    }
}

/// An SMTP token from its two halves: both or neither.
fn smtp_key(
    access: Option<Secret>,
    secret: Option<Secret>,
    half: impl FnOnce() -> ConfigError,
) -> Result<Option<SmtpKey>, ConfigError> {
    match (access, secret) {
        (Some(access_key), Some(secret_key)) => Ok(Some(SmtpKey { access_key, secret_key })),
        (None, None) => Ok(None),
        _ => Err(half()),
    }
}

/// The credentials from the environment (first) and the config file; also the secret files the
/// config file named.
pub(super) fn credentials_from(
    env: &EnvSecrets,
    file: &FileConfig,
) -> Result<(Credentials, Vec<PathBuf>), ConfigError> {
    let mut read = FileSecrets::default();
    let mut pick = |name: &str, value: &Option<Secret>, path: &Option<PathBuf>, key: &str| {
        let from_env = env.get(name)?;
        Ok::<_, ConfigError>(from_env.or(read.get(value, path, key)?))
    };
    let server_token = pick(secrets::SERVER_TOKEN, &file.server_token, &file.server_token_file, "server_token")?;
    let access = pick(secrets::SMTP_ACCESS_KEY, &file.smtp_access_key, &file.smtp_access_key_file, "smtp_access_key")?;
    let secret = pick(secrets::SMTP_SECRET_KEY, &file.smtp_secret_key, &file.smtp_secret_key_file, "smtp_secret_key")?;
    let account_token = pick(secrets::ACCOUNT_TOKEN, &file.account_token, &file.account_token_file, "account_token")?;
    let smtp = smtp_key(access, secret, || secrets::SecretError::HalfSmtpToken.into())?;

    let mut streams = BTreeMap::new();
    for (id, stream) in &file.streams {
        let key = |name: &str| format!("streams.{id}.{name}");
        let access = read.get(&stream.access_key, &stream.access_key_file, &key("access_key"))?;
        let secret = read.get(&stream.secret_key, &stream.secret_key_file, &key("secret_key"))?;
        let half =
            || ConfigError::Inconsistent(format!("streams.{id}: an SMTP token needs both access_key and secret_key"));
        if let Some(pair) = smtp_key(access, secret, half)? {
            streams.insert(id.clone(), pair);
        }
    }

    let mut routes = BTreeMap::new();
    for route in &file.routes {
        let name = &route.name;
        let key = |setting: &str| format!("routes.{name}.{setting}");
        let server_token = read.get(&route.server_token, &route.server_token_file, &key("server_token"))?;
        let access = read.get(&route.smtp_access_key, &route.smtp_access_key_file, &key("smtp_access_key"))?;
        let secret = read.get(&route.smtp_secret_key, &route.smtp_secret_key_file, &key("smtp_secret_key"))?;
        let half = || {
            ConfigError::Inconsistent(format!(
                "routes.{name}: an SMTP token needs both smtp_access_key and smtp_secret_key"
            ))
        };
        let smtp = smtp_key(access, secret, half)?;
        if server_token.is_none() && smtp.is_none() {
            return Err(ConfigError::Inconsistent(format!(
                "routes.{name}: a route needs its own server_token or SMTP token (smtp_access_key and smtp_secret_key)"
            )));
        }
        routes.insert(name.clone(), RouteCredentials { server_token, smtp });
    }
    Ok((Credentials { server_token, smtp, streams, routes, account_token }, read.files))
}
