//! `postmark-relay check [--offline]`: is the configuration valid, and does every configured
//! credential work at Postmark?
//!
//! 1. The configuration is resolved exactly as the relay would resolve it (flags, environment,
//!    file), the access files are loaded (TLS certificate and key, users file), the listen address
//!    is checked against the open-relay rule, the spool directory is looked at (without creating
//!    it), and the upstream TLS settings (`--smtp-ca`) are loaded when an SMTP login needs them.
//! 2. Unless `--offline`, each credential is tried, without sending anything:
//!    * the server token: `GET /server` (Postmark answers with the server's name);
//!    * every SMTP login the relay would use (the default SMTP token, each stream's token, each
//!      route's, the server token as SMTP user and password when it is the SMTP credential), on
//!      the host it would use it on (`--smtp-url`, or the stream's own host): connect, `EHLO`,
//!      `STARTTLS`, `EHLO`, `AUTH`, `QUIT`;
//!    * each route's server token (`[[routes]]`): `GET /server`;
//!    * the account token, when one is configured (`POSTMARK_ACCOUNT_TOKEN`, `…_FILE`,
//!      `account_token`, `account_token_file`): `GET /servers?count=1&offset=0`.
//!
//! One line per item, `ok`, `FAIL` or `skip`, with Postmark's `ErrorCode` and message for an API
//! refusal and the SMTP reply for an SMTP one. Secrets are never printed. The exit status is 0
//! when everything checked works, 1 when a credential fails, 2 when the configuration is invalid.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use mail_send::SmtpClientBuilder;

use crate::access::Access;
use crate::cli::Args;
use crate::config::{Config, DryRunReason, Mode};
use crate::delivery::smtp::{SmtpUpstream, tls_connector};
use crate::envelope::Via;
use crate::probe::ProbeError;
use crate::secrets::{ACCOUNT_TOKEN, Secret};
/// How long each probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Exit status: everything checked works.
pub const EXIT_OK: u8 = 0;
/// Exit status: at least one credential does not work.
pub const EXIT_CREDENTIAL: u8 = 1;
/// Exit status: the configuration is invalid.
pub const EXIT_CONFIG: u8 = 2;

/// The result of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It works; what Postmark said.
    Ok(String),
    /// It does not; why.
    Fail(String),
    /// Not tried; why.
    Skip(String),
}

/// Runs the check, writing one line per item to `out`; returns the exit status.
pub async fn run(args: &Args, env: &dyn Fn(&str) -> Option<String>, offline: bool, out: &mut dyn Write) -> u8 {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut failed = false;
    let mut line = |what: &str, verdict: &Verdict| {
        let (tag, text) = match verdict {
            Verdict::Ok(t) => ("ok  ", t),
            Verdict::Fail(t) => ("FAIL", t),
            Verdict::Skip(t) => ("skip", t),
        };
        failed |= matches!(verdict, Verdict::Fail(_));
        let _ = writeln!(out, "{tag}  {what}: {text}");
    };

    let config = match Config::resolve(args, env) {
        Ok(c) => c,
        Err(e) => {
            line("configuration", &Verdict::Fail(e.to_string()));
            return EXIT_CONFIG;
        }
    };
    let static_checks = [
        ("configuration", Verdict::Ok(describe(&config, args.config.as_deref()))),
        ("access", access(&config).await),
        ("spool", spool(&config.spool)),
    ];
    let mut config_failed = false;
    for (what, verdict) in &static_checks {
        config_failed |= matches!(verdict, Verdict::Fail(_));
        line(what, verdict);
    }
    let account = config.credentials.account_token.clone();
    if config_failed {
        return EXIT_CONFIG;
    }

    let logins = smtp_logins(&config);
    // The upstream TLS settings (the system's roots, `--smtp-ca`), when an SMTP login needs them.
    let tls = if logins.is_empty() {
        None
    } else {
        match tls_connector(config.smtp.ca.as_deref()) {
            Ok(tls) => Some(tls),
            Err(e) => {
                line("SMTP TLS", &Verdict::Fail(e.to_string()));
                return EXIT_CONFIG;
            }
        }
    };
    if offline {
        let skip = |what: &str| Verdict::Skip(format!("{what}; not tried (--offline)"));
        if config.credentials.server_token.is_some() {
            line("server token", &skip("configured"));
        }
        for (name, route) in &config.credentials.routes {
            if route.server_token.is_some() {
                line(&format!("server token of route {name:?}"), &skip("configured"));
            }
        }
        for login in &logins {
            line(&login.label, &skip("configured"));
        }
        if account.is_some() {
            line("account token", &skip("configured"));
        }
    } else {
        match &config.credentials.server_token {
            Some(token) => line("server token", &server_token(&config.api.url, token).await),
            None => line("server token", &Verdict::Skip("not configured".into())),
        }
        for (name, route) in &config.credentials.routes {
            if let Some(token) = &route.server_token {
                line(&format!("server token of route {name:?}"), &server_token(&config.api.url, token).await);
            }
        }
        if let Some(tls) = tls {
            for login in &logins {
                let verdict = smtp_login(login, &config.smtp.helo_host, tls.clone()).await;
                line(&login.label, &verdict);
            }
        }
        match &account {
            Some(token) => line("account token", &account_token_check(&config.api.url, token).await),
            None => line("account token", &Verdict::Skip(format!("not configured ({ACCOUNT_TOKEN})"))),
        }
    }
    if failed { EXIT_CREDENTIAL } else { EXIT_OK }
}

/// The configuration in one line: where it came from and what the relay would do.
fn describe(config: &Config, file: Option<&Path>) -> String {
    let source = match file {
        Some(p) => format!("{} (with flags and environment)", p.display()),
        None => "flags and environment (no config file)".into(),
    };
    let mode = match config.mode {
        Mode::Send(Via::Api) => format!("sending via the HTTP API at {}", config.api.url),
        Mode::Send(Via::Smtp) => format!("sending via SMTP to {}", host_port(&config.smtp.upstream)),
        Mode::DryRun(via, DryRunReason::Requested) => {
            format!("DRY-RUN ({} shape), as requested", crate::logging::path_field(via))
        }
        Mode::DryRun(via, DryRunReason::NoCredentials) => format!(
            "DRY-RUN ({} shape): no credentials are configured, nothing would be sent",
            crate::logging::path_field(via)
        ),
    };
    let metrics = config.metrics.as_deref().map_or_else(String::new, |m| format!(", health and metrics on {m}"));
    format!("valid, from {source}; {mode}; listening on {}{metrics}", config.listen)
}

/// The access files load and the listen address is not an open relay.
async fn access(config: &Config) -> Verdict {
    let access = match Access::load(&config.access) {
        Ok(a) => a,
        Err(e) => return Verdict::Fail(e.to_string()),
    };
    let addrs: Vec<_> = match tokio::net::lookup_host(&config.listen).await {
        Ok(addrs) => addrs.collect(),
        Err(e) => return Verdict::Fail(format!("listen address {}: {e}", config.listen)),
    };
    if addrs.is_empty() {
        return Verdict::Fail(format!("listen address {}: the name has no address", config.listen));
    }
    if let Err(e) = crate::access::check_listen(&addrs, &access) {
        return Verdict::Fail(e.to_string());
    }
    let tls = if config.access.tls.is_some() { "STARTTLS offered" } else { "no inbound TLS" };
    let auth = if config.access.auth_users.is_some() { "client AUTH required" } else { "no client AUTH" };
    Verdict::Ok(format!("{tls}, {auth}"))
}

/// The spool is a writable directory, or does not exist yet (the relay creates it).
fn spool(dir: &Path) -> Verdict {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Verdict::Fail(format!("{} is not a directory", dir.display())),
        Ok(m) if m.permissions().readonly() => Verdict::Fail(format!("{} is read-only", dir.display())),
        Ok(_) => Verdict::Ok(format!("{} exists", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Verdict::Ok(format!("{} does not exist yet; the relay creates it at start", dir.display()))
        }
        Err(e) => Verdict::Fail(format!("{}: {e}", dir.display())),
    }
}

fn host_port(up: &SmtpUpstream) -> String {
    if up.host.contains(':') { format!("[{}]:{}", up.host, up.port) } else { format!("{}:{}", up.host, up.port) }
}

/// One SMTP login the relay would use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpLogin {
    /// What it is, for the output (`SMTP token`, `SMTP token of stream "x"`, …).
    pub label: String,
    /// Where it is used.
    pub upstream: SmtpUpstream,
    user: Secret,
    password: Secret,
}

/// Every (host, credential) pair the SMTP path would log in with, as the delivery picks them
/// (a route's token, else the stream's token, else the default SMTP token, else the server token
/// when sending via SMTP), each once.
pub fn smtp_logins(config: &Config) -> Vec<SmtpLogin> {
    let creds = &config.credentials;
    let via_smtp = config.mode.via() == Via::Smtp;
    let default_login = || -> Option<(String, Secret, Secret)> {
        if let Some(key) = &creds.smtp {
            return Some(("SMTP token".into(), key.access_key.clone(), key.secret_key.clone()));
        }
        match &creds.server_token {
            Some(t) if via_smtp => Some(("server token as SMTP login".into(), t.clone(), t.clone())),
            _ => None,
        }
    };
    let mut out: Vec<SmtpLogin> = Vec::new();
    let mut push = |label: String, upstream: &SmtpUpstream, user: Secret, password: Secret| {
        let duplicate = out.iter().any(|l| l.upstream == *upstream && l.user == user && l.password == password);
        if !duplicate {
            out.push(SmtpLogin { label, upstream: upstream.clone(), user, password });
        }
    };
    if (via_smtp || creds.smtp.is_some())
        && let Some((label, user, password)) = default_login()
    {
        push(format!("{label} on {}", host_port(&config.smtp.upstream)), &config.smtp.upstream, user, password);
    }
    let mut streams: Vec<&String> = creds.streams.keys().chain(config.smtp.streams.keys()).collect();
    streams.sort();
    streams.dedup();
    for stream in streams {
        let upstream = config.smtp.streams.get(stream).unwrap_or(&config.smtp.upstream);
        let (label, user, password) = match creds.streams.get(stream) {
            Some(key) => (format!("SMTP token of stream {stream:?}"), key.access_key.clone(), key.secret_key.clone()),
            None => match default_login() {
                Some((label, user, password)) => (format!("{label} for stream {stream:?}"), user, password),
                None => continue,
            },
        };
        push(format!("{label} on {}", host_port(upstream)), upstream, user, password);
    }
    for (name, route) in &creds.routes {
        let stream = config.policy.routes().iter().find(|r| r.name == *name).and_then(|r| r.message_stream.as_ref());
        let upstream = stream.and_then(|s| config.smtp.streams.get(s)).unwrap_or(&config.smtp.upstream);
        let (label, user, password) = match (&route.smtp, &route.server_token) {
            (Some(key), _) => (format!("SMTP token of route {name:?}"), key.access_key.clone(), key.secret_key.clone()),
            (None, Some(t)) if via_smtp => {
                (format!("server token of route {name:?} as SMTP login"), t.clone(), t.clone())
            }
            _ => continue,
        };
        push(format!("{label} on {}", host_port(upstream)), upstream, user, password);
    }
    out
}

/// Connect, `EHLO`, `STARTTLS` (or implicit TLS), `EHLO`, `AUTH`, `QUIT`.
async fn smtp_login(login: &SmtpLogin, helo_host: &str, tls: tokio_rustls::TlsConnector) -> Verdict {
    let up = &login.upstream;
    let builder = SmtpClientBuilder::new_with_tls_connector(up.host.clone(), up.port, tls)
        .implicit_tls(up.implicit_tls)
        .say_ehlo(false)
        .helo_host(helo_host.to_owned())
        .timeout(PROBE_TIMEOUT);
    let secured = if up.implicit_tls { "TLS" } else { "EHLO, STARTTLS" };
    let attempt = async {
        let mut client = builder.connect().await.map_err(|e| format!("connect and {secured}: {}", smtp_error(&e)))?;
        let caps = client.ehlo(helo_host).await.map_err(|e| format!("EHLO after TLS: {}", smtp_error(&e)))?;
        let creds = mail_send::Credentials::new(login.user.expose().to_owned(), login.password.expose().to_owned());
        client.authenticate(&creds, &caps).await.map_err(|e| format!("AUTH: {}", smtp_error(&e)))?;
        client.quit().await.map_err(|e| format!("QUIT: {}", smtp_error(&e)))
    };
    match tokio::time::timeout(PROBE_TIMEOUT * 2, attempt).await {
        Ok(Ok(())) => Verdict::Ok(format!("{secured}, AUTH accepted; QUIT without sending")),
        Ok(Err(e)) => Verdict::Fail(e),
        Err(_) => Verdict::Fail(format!("no answer within {}s", (PROBE_TIMEOUT * 2).as_secs())),
    }
}

/// A mail-send error, with the server's reply when there is one.
fn smtp_error(e: &mail_send::Error) -> String {
    use mail_send::Error as E;
    match e {
        E::AuthenticationFailed(r) | E::UnexpectedReply(r) => {
            let status = r.esc.iter().map(u8::to_string).collect::<Vec<_>>().join(".");
            let status = if r.esc.iter().all(|&n| n == 0) { String::new() } else { format!(" {status}") };
            format!("refused: {}{status} {}", r.code, r.message.trim())
        }
        E::MissingStartTls => "the server does not offer STARTTLS; the relay never sends without TLS".into(),
        E::Tls(tls) if matches!(**tls, rustls::Error::InvalidCertificate(_)) => {
            format!("{e}: the server's certificate is not trusted (see --smtp-ca)")
        }
        other => other.to_string(),
    }
}

/// `GET /server` with the server token.
async fn server_token(api_url: &str, token: &Secret) -> Verdict {
    let url = format!("{}/server", api_url.trim_end_matches('/'));
    match get(&url, "X-Postmark-Server-Token", token).await {
        Ok(body) => {
            let name = body.get("Name").and_then(|v| v.as_str()).unwrap_or("?");
            let id = body.get("ID").map_or_else(|| "?".into(), ToString::to_string);
            Verdict::Ok(format!("GET {url}: server {name:?} (ID {id})"))
        }
        Err(e) => Verdict::Fail(format!("GET {url}: {e}")),
    }
}

/// `GET /servers?count=1&offset=0` with the account token.
async fn account_token_check(api_url: &str, token: &Secret) -> Verdict {
    let url = format!("{}/servers?count=1&offset=0", api_url.trim_end_matches('/'));
    match get(&url, "X-Postmark-Account-Token", token).await {
        Ok(body) => {
            let count = body.get("TotalCount").map_or_else(|| "?".into(), ToString::to_string);
            Verdict::Ok(format!("GET {url}: the account has {count} server(s)"))
        }
        Err(e) => Verdict::Fail(format!("GET {url}: {e}")),
    }
}

/// A GET with a token header: the JSON body of a 200, else the status with Postmark's
/// `ErrorCode` and `Message`.
async fn get(url: &str, header: &str, token: &Secret) -> Result<serde_json::Value, ProbeError> {
    let client = reqwest::Client::builder().timeout(PROBE_TIMEOUT).build().map_err(|e| e.to_string())?;
    let response = client
        .get(url)
        .header("Accept", "application/json")
        .header(header, token.expose())
        .send()
        .await
        .map_err(|e| format!("no answer: {}", error_chain(&e)))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    if status.is_success() {
        return body.ok_or_else(|| ProbeError(format!("HTTP {status} but the body is not JSON")));
    }
    let code = body.as_ref().and_then(|b| b.get("ErrorCode")).and_then(serde_json::Value::as_i64);
    let message = body.as_ref().and_then(|b| b.get("Message")).and_then(|m| m.as_str()).unwrap_or("");
    Err(ProbeError(match code {
        Some(code) => format!("HTTP {}, ErrorCode {code}: {message}", status.as_u16()),
        None => format!("HTTP {} (no Postmark error body)", status.as_u16()),
    }))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
