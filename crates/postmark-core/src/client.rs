//! Tokens and client configuration shared by the server and account clients.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};

use crate::Error;

/// Postmark's API address.
pub const DEFAULT_BASE_URL: &str = "https://api.postmarkapp.com";
/// Environment variable that overrides the API address (for tests against a local fake, or a proxy).
pub const API_URL_ENV: &str = "POSTMARK_API_URL";
/// The whole-request timeout used unless the builder sets another.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The connect timeout used unless the builder sets another.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The token Postmark accepts for validation-only sends: requests are checked and answered, nothing is delivered.
pub const TEST_TOKEN: &str = "POSTMARK_API_TEST";

/// An API token. It is only ever written into a sensitive request header; `Debug` shows `Token(***)` and there is no
/// `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Token(token.into())
    }

    /// Reads a token from an environment variable; a missing or empty variable is a configuration error that names
    /// the variable (never its value).
    pub fn from_env(var: &str) -> Result<Self, Error> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Token(v.trim().to_string())),
            _ => Err(Error::Config(format!("environment variable {var} is not set"))),
        }
    }

    /// The secret itself, for code that must put it on the wire (the SMTP relay's AUTH).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// A token read from a configuration file (`server_token = "..."`): deserialized from a string, never serialized.
impl<'de> serde::Deserialize<'de> for Token {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Token)
    }
}

impl From<&str> for Token {
    fn from(s: &str) -> Self {
        Token::new(s)
    }
}

impl From<String> for Token {
    fn from(s: String) -> Self {
        Token(s)
    }
}

/// Which Postmark API a client talks to: its token header, its token variable, and the client type it builds.
pub trait ApiKind {
    /// The header that carries the token (`X-Postmark-Server-Token` or `X-Postmark-Account-Token`).
    const TOKEN_HEADER: &'static str;
    /// The environment variable `from_env` reads the token from.
    const TOKEN_ENV: &'static str;
    /// The client the builder produces.
    type Client;
    /// Assembles the client from a ready HTTP client, base URL and state (the retry policy).
    fn assemble(base_url: String, http: reqwest::Client, state: crate::ClientState) -> Self::Client;
}

/// Builds a client: base URL, timeouts and user agent, with Postmark's defaults.
pub struct ClientBuilder<K: ApiKind> {
    token: Token,
    base_url: String,
    timeout: Duration,
    connect_timeout: Duration,
    user_agent: String,
    retry: Option<crate::RetryPolicy>,
    kind: PhantomData<K>,
}

impl<K: ApiKind> fmt::Debug for ClientBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("token", &self.token)
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("user_agent", &self.user_agent)
            .field("retry", &self.retry)
            .finish()
    }
}

impl<K: ApiKind> ClientBuilder<K> {
    /// A builder with the given token and the defaults: [`DEFAULT_BASE_URL`], [`DEFAULT_TIMEOUT`],
    /// [`DEFAULT_CONNECT_TIMEOUT`], and a `postmark-rs/<version>` user agent.
    pub fn new(token: impl Into<Token>) -> Self {
        ClientBuilder {
            token: token.into(),
            base_url: DEFAULT_BASE_URL.to_string(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            user_agent: concat!("postmark-rs/", env!("CARGO_PKG_VERSION")).to_string(),
            retry: None,
            kind: PhantomData,
        }
    }

    /// A builder whose token comes from the API's variable and whose base URL comes from [`API_URL_ENV`] if set.
    pub fn from_env() -> Result<Self, Error> {
        let mut b = Self::new(Token::from_env(K::TOKEN_ENV)?);
        if let Ok(url) = std::env::var(API_URL_ENV)
            && !url.trim().is_empty()
        {
            b = b.base_url(url.trim());
        }
        Ok(b)
    }

    /// The API address (default [`DEFAULT_BASE_URL`]); a trailing slash is ignored.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into().trim_end_matches('/').to_string();
        self
    }

    /// The whole-request timeout (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The connect timeout (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The `User-Agent` header.
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }

    /// Turns on retries with this policy (off by default). Only failures [`Error::is_retryable`] allows are retried,
    /// so a send is never repeated after a timeout or a 5xx answer; see [`RetryPolicy`](crate::RetryPolicy).
    pub fn retry(mut self, policy: crate::RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Builds the client. Fails on a base URL that is not http(s) or a token that is not a valid header value.
    pub fn build(self) -> Result<K::Client, Error> {
        let scheme_ok = self.base_url.starts_with("https://") || self.base_url.starts_with("http://");
        if !scheme_ok {
            return Err(Error::Config(format!("base URL {:?} must start with https:// or http://", self.base_url)));
        }
        let mut headers = HeaderMap::new();
        let mut token = HeaderValue::from_str(self.token.expose()).map_err(|_| {
            Error::Config(format!("the {} token contains characters not allowed in a header", K::TOKEN_ENV))
        })?;
        token.set_sensitive(true);
        headers.insert(K::TOKEN_HEADER, token);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let http = crate::tls::configure(reqwest::Client::builder())?
            .default_headers(headers)
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent)
            .build()
            .map_err(|e| Error::Config(format!("could not build the HTTP client: {e}")))?;
        Ok(K::assemble(self.base_url, http, crate::ClientState::new(self.retry)))
    }
}
