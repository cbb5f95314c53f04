//! Tokens and the API address, from the environment only: tokens are never command-line flags (they would show up
//! in shell history and `ps`).

use postmark_core::{ClientBuilder, Error, RetryPolicy, Token};

/// The server token variable and its `_FILE` companion.
pub const SERVER_TOKEN_ENV: &str = "POSTMARK_SERVER_TOKEN";
/// The account token variable and its `_FILE` companion.
pub const ACCOUNT_TOKEN_ENV: &str = "POSTMARK_ACCOUNT_TOKEN";

/// The token from `VAR`, or from the file named by `VAR_FILE` (trimmed). `Ok(None)` when neither is set; an error
/// when both are, or the file cannot be read or is empty. Messages name variables and paths, never token values.
pub fn token(var: &str) -> Result<Option<Token>, Error> {
    let direct = std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    let file_var = format!("{var}_FILE");
    let file = std::env::var_os(&file_var).filter(|v| !v.is_empty());
    match (direct, file) {
        (Some(_), Some(_)) => Err(Error::Config(format!("both {var} and {file_var} are set; set only one"))),
        (Some(v), None) => Ok(Some(Token::new(v.trim()))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::Config(format!("{file_var}: cannot read {}: {e}", std::path::Path::new(&path).display()))
            })?;
            match text.trim() {
                "" => Err(Error::Config(format!("{file_var}: {} is empty", std::path::Path::new(&path).display()))),
                t => Ok(Some(Token::new(t))),
            }
        }
        (None, None) => Ok(None),
    }
}

/// Like [`token`], but a missing token is an error that says what to set.
pub fn require_token(var: &str) -> Result<Token, Error> {
    token(var)?.ok_or_else(|| Error::Config(format!("set {var} (or {var}_FILE with the path of a file holding it)")))
}

/// A builder for `K`'s client with the token, `POSTMARK_API_URL` when set, and `retries` retries.
pub fn builder<K: postmark_core::ApiKind>(token: Token, retries: u32) -> ClientBuilder<K> {
    let mut b = ClientBuilder::<K>::new(token).user_agent(concat!("postmark-cli/", env!("CARGO_PKG_VERSION")));
    if let Ok(url) = std::env::var(postmark_core::API_URL_ENV)
        && !url.trim().is_empty()
    {
        b = b.base_url(url.trim());
    }
    if retries > 0 {
        b = b.retry(RetryPolicy::new().max_attempts(retries + 1));
    }
    b
}
