//! Delivery over Postmark's SMTP service with mail-send.
//!
//! * STARTTLS is required (mail-send refuses to go on without it) and the certificate is
//!   verified against the system's roots plus `--smtp-ca`.
//! * Credentials: the SMTP token of the message's stream (decided when it was accepted: its
//!   `X-PM-Message-Stream` header, else `--message-stream`) from the config file's `[streams]`;
//!   else the default SMTP token (`POSTMARK_SMTP_ACCESS_KEY`/`POSTMARK_SMTP_SECRET_KEY`); else
//!   the server token as both user and password (Postmark then routes by the header itself).
//! * The original envelope and the message bytes unchanged. mail-send ends the data with
//!   `\r\n.\r\n` whatever the message ends with; every message received over SMTP already ends in
//!   CRLF, so exactly one trailing CRLF is dropped first ([`data_bytes`]) and the upstream copy is
//!   byte-identical. mail-send also dot-stuffs a `.` after a *bare* CR or LF (a defence against
//!   SMTP smuggling); a strict receiver keeps that extra dot, so a message with a bare CR/LF
//!   followed by `.` is the one case that does not arrive byte-identical. mail-send does *not*
//!   stuff a dot at the very start of the message, so [`data_bytes`] does: a message whose first
//!   line is `.` would otherwise end the upstream DATA at once, and the rest of it would be read
//!   upstream as commands (SMTP smuggling through the relay).
//! * The host: the stream's own (`[streams.<id>] smtp_url`, or Postmark's broadcast host for a
//!   `kind = "broadcast"` stream), else `--smtp-url`.
//! * Up to `--smtp-connections` (default [`DEFAULT_CONNECTIONS`], as many as Postfix uses per
//!   destination) connections per host and credential carry a batch in parallel, as many as an
//!   adaptive window allows (see [`super::window`]: it starts open, halves when the upstream
//!   answers 421 or another 4xx, and grows back while every connection delivers): each connection
//!   takes the next message of the batch
//!   that no other connection has taken, so a message is handed to exactly one connection and
//!   sent at most once per attempt (order between messages is not kept). Connections are kept
//!   open and reused; one is replaced when it fails or has been idle for [`IDLE_REUSE`].
//! * Per recipient: 2xx sent, 4xx retried later, 5xx a dead letter for that recipient.

use std::collections::HashMap;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use mail_send::{Credentials, SmtpClient, SmtpClientBuilder};
use rustls::ClientConfig;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use smtp_proto::{EXT_8BIT_MIME, EXT_PIPELINING, EXT_SMTP_UTF8};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

mod groups;

use super::policy::{Class, classify_smtp};
mod transaction;
use super::window::Window;
use super::{BackendError, Outcome};
use crate::metrics::{Metrics, Path as MetricsPath};
use crate::secrets::Credentials as Creds;
use crate::spool::StoredMessage;

/// Upstream SMTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SmtpUpstream {
    /// Host name (also the TLS server name).
    pub host: String,
    /// Port.
    pub port: u16,
    /// `smtps://`: TLS from the first byte instead of STARTTLS.
    pub implicit_tls: bool,
}

/// A `--smtp-url` that is not `smtp://host[:port]` or `smtps://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must look like smtp://host:587, got {0:?}")]
pub struct InvalidSmtpUrl(String);

impl std::str::FromStr for SmtpUpstream {
    type Err = InvalidSmtpUrl;

    /// `smtp://host[:port]` (STARTTLS, port 587 by default) or `smtps://host[:port]` (implicit
    /// TLS, port 465 by default).
    fn from_str(url: &str) -> Result<Self, InvalidSmtpUrl> {
        let bad = || InvalidSmtpUrl(url.to_owned());
        let (rest, implicit_tls, default_port) = if let Some(r) = url.strip_prefix("smtp://") {
            (r, false, 587)
        } else if let Some(r) = url.strip_prefix("smtps://") {
            (r, true, 465)
        } else {
            return Err(bad());
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if after.is_empty() => default_port,
                None => return Err(bad()),
            };
            (host.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
                None => (rest.to_string(), default_port),
            }
        };
        if host.is_empty() || host.contains('/') || host.contains('@') {
            return Err(bad());
        }
        Ok(SmtpUpstream { host, port, implicit_tls })
    }
}

/// Where and how the SMTP backend connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// `--smtp-url`.
    pub upstream: SmtpUpstream,
    /// Streams with an SMTP host of their own (`[streams.<id>] smtp_url`, or `kind =
    /// "broadcast"`: Postmark's broadcast host).
    pub streams: std::collections::BTreeMap<String, SmtpUpstream>,
    /// `--smtp-ca`: an extra CA to trust.
    pub ca: Option<std::path::PathBuf>,
    /// The name the relay gives in `EHLO` (`--hostname`).
    pub helo_host: String,
    /// Most connections per host and credential used at once (`--smtp-connections`).
    pub connections: usize,
}

/// Upstream connections per host and credential unless configured otherwise: enough to hide
/// the round trips of one transaction behind the others, few enough not to look like a flood.
pub const DEFAULT_CONNECTIONS: usize = 20;

/// A pooled connection idle longer than this is replaced rather than reused (servers commonly
/// drop idle clients after a minute or so).
pub const IDLE_REUSE: Duration = Duration::from_secs(50);
/// Timeout for each SMTP command and for the whole DATA transfer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The bytes to hand to the SMTP client for `raw`: both mail-send and lettre end the data with
/// `\r\n.\r\n` whatever the message ends with, so a message that already ends in CRLF (every
/// message received over SMTP does) would arrive with one extra empty line. Dropping exactly one
/// trailing CRLF makes the upstream copy byte-identical.
///
/// A leading `.` is doubled: mail-send stuffs every dot after a CR or LF, but not one at the
/// start of the data, where the upstream removes one dot (the first line starts there).
pub fn data_bytes(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let data = raw.strip_suffix(b"\r\n").unwrap_or(raw);
    if data.first() == Some(&b'.') {
        let mut stuffed = Vec::with_capacity(data.len() + 1);
        stuffed.push(b'.');
        stuffed.extend_from_slice(data);
        std::borrow::Cow::Owned(stuffed)
    } else {
        std::borrow::Cow::Borrowed(data)
    }
}

/// Builds the TLS connector: the platform's roots plus the PEM certificates in `extra_ca`.
pub fn tls_connector(extra_ca: Option<&Path>) -> Result<TlsConnector, BackendError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut extra: Vec<CertificateDer<'static>> = Vec::new();
    if let Some(path) = extra_ca {
        let ca_error = |problem: String| BackendError::Ca { path: path.to_path_buf(), problem };
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| ca_error(e.to_string()))? {
            extra.push(cert.map_err(|e| ca_error(e.to_string()))?);
        }
        if extra.is_empty() {
            return Err(ca_error("no certificate in the file".into()));
        }
    }
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, Arc::clone(&provider))
        .map_err(|e| BackendError::Tls(format!("cannot set up certificate verification: {e}")))?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BackendError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

struct Connection {
    client: SmtpClient<TlsStream<TcpStream>>,
    eight_bit_mime: bool,
    smtputf8: bool,
    /// The upstream advertised PIPELINING (RFC 2920).
    pipelining: bool,
    last_used: Instant,
}

/// Which credential a message uses (the key of the connection pool; never logged with secrets).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CredentialId {
    Route(String),
    Stream(String),
    SmtpToken,
    ServerToken,
}

/// The SMTP backend.
pub struct Smtp {
    settings: SmtpSettings,
    tls: TlsConnector,
    credentials: Creds,
    /// Idle connections, at most `settings.connections` per key.
    pool: HashMap<PoolKey, Vec<Connection>>,
    /// How many connections each key may use at once.
    windows: HashMap<PoolKey, Window>,
}

/// Where and as whom a connection is logged in.
type PoolKey = (SmtpUpstream, CredentialId);

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("upstream", &self.settings.upstream)
            .field("connections", &self.pool.values().map(Vec::len).sum::<usize>())
            .finish_non_exhaustive()
    }
}

pub(super) enum Failure {
    /// The connection is unusable; `before_data` tells whether nothing of this message was
    /// committed upstream (so a fresh connection may try again at once).
    Broken { reason: String, before_data: bool },
}

impl Smtp {
    /// A backend for the upstream and CA in `settings`, logging in with `credentials`.
    pub fn new(settings: SmtpSettings, credentials: &Creds) -> Result<Self, BackendError> {
        Ok(Self {
            tls: tls_connector(settings.ca.as_deref())?,
            settings,
            credentials: credentials.clone(),
            pool: HashMap::new(),
            windows: HashMap::new(),
        })
    }

    /// Logs in with new credentials from now on (credential rotation); open connections, which
    /// logged in with the old ones, are closed.
    pub fn set_credentials(&mut self, credentials: &Creds) -> Result<(), BackendError> {
        if !credentials.has_smtp() && credentials.server_token.is_none() {
            return Err(BackendError::NoSmtpCredentials);
        }
        self.credentials = credentials.clone();
        self.pool.clear();
        self.windows.clear();
        Ok(())
    }

    /// Sends a batch: the messages are grouped by host and credential, and each group is carried
    /// by up to `settings.connections` connections at once, every message by exactly one of them.
    pub(super) async fn deliver(&mut self, messages: &[StoredMessage], metrics: &Metrics) -> Vec<Outcome> {
        let mut out: Vec<Option<Outcome>> = vec![None; messages.len()];
        let mut groups: Vec<(PoolKey, Credentials<String>, Vec<usize>)> = Vec::new();
        for (i, msg) in messages.iter().enumerate() {
            match self.route(msg) {
                Ok((key, creds)) => match groups.iter_mut().find(|g| g.0 == key) {
                    Some(group) => group.2.push(i),
                    None => groups.push((key, creds, vec![i])),
                },
                Err(reason) => out[i] = Some(Outcome::Transient(reason)),
            }
        }
        let max = self.settings.connections.max(1);
        let mut lanes = Vec::new();
        // Per group: its window's epoch and whether every allowed connection was used.
        let mut used = Vec::new();
        for (key, creds, indices) in &groups {
            let window = self.windows.entry(key.clone()).or_insert_with(|| Window::open(max));
            let n = window.allowed().min(indices.len());
            used.push((key.clone(), window.epoch(), n == window.allowed()));
            let idle = self.pool.entry(key.clone()).or_default();
            let next = Arc::new(AtomicUsize::new(0));
            let indices: Arc<[usize]> = indices.as_slice().into();
            for _ in 0..n {
                let lane =
                    Lane { key, creds, conn: idle.pop(), next: Arc::clone(&next), indices: Arc::clone(&indices) };
                lanes.push(lane);
            }
        }
        let this = &*self;
        let finished = join_all(lanes.into_iter().map(|lane| lane.run(this, messages, metrics)).collect()).await;
        let mut refused = None;
        let mut congested: Vec<PoolKey> = Vec::new();
        let mut delivered: HashMap<PoolKey, usize> = HashMap::new();
        for (key, conn, outcomes) in finished {
            for (i, outcome) in outcomes {
                match &outcome {
                    Outcome::Transient(_) => congested.push(key.clone()),
                    Outcome::PerRecipient(r) if !r.retry.is_empty() => congested.push(key.clone()),
                    Outcome::Delivered { .. } => *delivered.entry(key.clone()).or_default() += 1,
                    _ => {}
                }
                if let Outcome::Operator(reason) = &outcome {
                    refused.get_or_insert_with(|| reason.clone());
                }
                out[i] = Some(outcome);
            }
            if let Some(conn) = conn {
                self.pool.entry(key).or_default().push(conn);
            }
        }
        for (key, epoch, full) in used {
            let Some(window) = self.windows.get_mut(&key) else { continue };
            if congested.contains(&key) {
                if window.congested(epoch) {
                    tracing::info!(
                        connections = window.allowed(),
                        "the upstream SMTP server defers: fewer connections"
                    );
                }
            } else {
                for _ in 0..delivered.get(&key).copied().unwrap_or(0) {
                    window.succeeded(full);
                }
            }
        }
        // Left over only when every lane of a group stopped at a refused login: those messages
        // wait for the same pause rather than spending an attempt.
        let left = || match &refused {
            Some(reason) => Outcome::Operator(reason.clone()),
            None => Outcome::Transient("not attempted".into()),
        };
        out.into_iter().map(|o| o.unwrap_or_else(left)).collect()
    }

    /// The host and credential a message goes out with, or why it cannot go now.
    fn route(&self, msg: &StoredMessage) -> Result<(PoolKey, Credentials<String>), String> {
        let stream = msg.stream();
        let upstream = stream.as_deref().and_then(|s| self.settings.streams.get(s)).unwrap_or(&self.settings.upstream);
        let upstream = upstream.clone();
        let route = msg.header.routing.as_ref().and_then(|r| r.route.as_deref());
        let Some((id, creds)) = self.pick_credentials(route, stream.clone()) else {
            let stream = stream.unwrap_or_default();
            tracing::error!(queue_id = %msg.id, stream, "no SMTP credentials for this message's stream; add it under [streams] in the config file");
            return Err(format!("no SMTP token configured for message stream {stream:?}"));
        };
        Ok(((upstream, id), creds))
    }

    fn pick_credentials(
        &self,
        route: Option<&str>,
        stream: Option<String>,
    ) -> Option<(CredentialId, Credentials<String>)> {
        if let Some(name) = route
            && let Some(route) = self.credentials.routes.get(name)
        {
            let creds = match (&route.smtp, &route.server_token) {
                (Some(key), _) => {
                    Credentials::new(key.access_key.expose().to_string(), key.secret_key.expose().to_string())
                }
                (None, Some(t)) => Credentials::new(t.expose().to_string(), t.expose().to_string()),
                (None, None) => return None,
            };
            return Some((CredentialId::Route(name.to_owned()), creds));
        }
        if let Some(stream) = stream
            && let Some(key) = self.credentials.streams.get(&stream)
        {
            return Some((
                CredentialId::Stream(stream),
                Credentials::new(key.access_key.expose().to_string(), key.secret_key.expose().to_string()),
            ));
        }
        if let Some(key) = &self.credentials.smtp {
            return Some((
                CredentialId::SmtpToken,
                Credentials::new(key.access_key.expose().to_string(), key.secret_key.expose().to_string()),
            ));
        }
        self.credentials
            .server_token
            .as_ref()
            .map(|t| (CredentialId::ServerToken, Credentials::new(t.expose().to_string(), t.expose().to_string())))
    }

    /// One message over `conn` (connecting first if there is none or it idled too long). A
    /// reused connection that fails before DATA is replaced and the message tried once more on
    /// the new one; a failure during DATA is never retried here (the upstream may have taken it).
    async fn deliver_one(
        &self,
        conn: &mut Option<Connection>,
        up: &SmtpUpstream,
        creds: &Credentials<String>,
        msg: &StoredMessage,
    ) -> Outcome {
        for attempt in 0..2 {
            if conn.as_ref().is_some_and(|c| c.last_used.elapsed() >= IDLE_REUSE) {
                *conn = None;
            }
            let reused = conn.is_some();
            let c = match conn {
                Some(c) => c,
                None => match self.connect(up, creds).await {
                    Ok(c) => conn.insert(c),
                    Err(outcome) => return outcome,
                },
            };
            match groups::send(c, msg).await {
                Ok(outcome) => {
                    c.last_used = Instant::now();
                    return outcome;
                }
                Err(Failure::Broken { reason, before_data }) => {
                    *conn = None;
                    if reused && before_data && attempt == 0 {
                        tracing::debug!(error = %reason, "reused upstream connection failed; reconnecting");
                        continue;
                    }
                    return Outcome::Transient(format!("upstream SMTP connection failed: {reason}"));
                }
            }
        }
        Outcome::Transient("upstream SMTP connection failed twice".into())
    }

    async fn connect(&self, up: &SmtpUpstream, creds: &Credentials<String>) -> Result<Connection, Outcome> {
        let builder = SmtpClientBuilder::new_with_tls_connector(up.host.clone(), up.port, self.tls.clone())
            .implicit_tls(up.implicit_tls)
            .say_ehlo(false)
            .helo_host(self.settings.helo_host.clone())
            .timeout(COMMAND_TIMEOUT);
        let mut client = builder.connect().await.map_err(connect_outcome)?;
        // SMTP is request/response with small writes: without this, Nagle's algorithm and the
        // peer's delayed ACK stall every transaction by up to 40 ms.
        let _ = client.stream.get_ref().0.set_nodelay(true);
        let caps = client.ehlo(&self.settings.helo_host).await.map_err(connect_outcome)?;
        client.authenticate(creds, &caps).await.map_err(connect_outcome)?;
        Ok(Connection {
            eight_bit_mime: caps.has_capability(EXT_8BIT_MIME),
            smtputf8: caps.has_capability(EXT_SMTP_UTF8),
            pipelining: caps.has_capability(EXT_PIPELINING),
            client,
            last_used: Instant::now(),
        })
    }
}

/// One connection's share of a group: it takes the group's next untaken message until none is
/// left, so each message is sent by exactly one lane.
struct Lane<'a> {
    key: &'a PoolKey,
    creds: &'a Credentials<String>,
    conn: Option<Connection>,
    next: Arc<AtomicUsize>,
    indices: Arc<[usize]>,
}

impl Lane<'_> {
    /// Returns the key, the connection if it is still usable, and the outcome of each message
    /// (by its index in the batch).
    async fn run(
        mut self,
        smtp: &Smtp,
        messages: &[StoredMessage],
        metrics: &Metrics,
    ) -> (PoolKey, Option<Connection>, Vec<(usize, Outcome)>) {
        let mut outcomes = Vec::new();
        while let Some(&i) = self.indices.get(self.next.fetch_add(1, Ordering::Relaxed)) {
            let started = Instant::now();
            let outcome = smtp.deliver_one(&mut self.conn, &self.key.0, self.creds, &messages[i]).await;
            metrics.upstream_latency(MetricsPath::Smtp, started.elapsed());
            // A connection that cannot even log in will not do better for the next message.
            let give_up = self.conn.is_none() && matches!(outcome, Outcome::Operator(_));
            outcomes.push((i, outcome));
            if give_up {
                break;
            }
        }
        (self.key.clone(), self.conn, outcomes)
    }
}

/// Polls every future until all are done; outputs in the order of `futures`. (Lanes borrow the
/// batch, so they run as futures of this task rather than as spawned tasks.)
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Classifies a failure to connect, secure, or authenticate.
fn connect_outcome(e: mail_send::Error) -> Outcome {
    use mail_send::Error as E;
    let reason = format!("upstream SMTP: {e}");
    match &e {
        E::MissingStartTls => Outcome::Operator(format!("{reason}; refusing to send without TLS")),
        E::Tls(tls) if matches!(**tls, rustls::Error::InvalidCertificate(_)) => {
            Outcome::Operator(format!("{reason}; the upstream certificate is not trusted"))
        }
        E::InvalidTLSName => Outcome::Operator(reason),
        E::AuthenticationFailed(_) | E::UnsupportedAuthMechanism | E::Auth(_) | E::MissingCredentials => {
            Outcome::Operator(format!("{reason} (check the SMTP token)"))
        }
        E::UnexpectedReply(r) if classify_smtp(r.code) == Class::Operator => Outcome::Operator(reason),
        _ => Outcome::Transient(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_trailing_crlf_is_dropped() {
        assert_eq!(&*data_bytes(b"a\r\n\r\n"), b"a\r\n");
        assert_eq!(&*data_bytes(b"a\r\n"), b"a");
        assert_eq!(&*data_bytes(b"a"), b"a");
        assert_eq!(&*data_bytes(b""), b"");
        // mail-send does not stuff a dot at the very start; the relay does.
        assert_eq!(&*data_bytes(b".\r\nMAIL FROM:<e@example.com>\r\n"), b"..\r\nMAIL FROM:<e@example.com>");
        assert_eq!(&*data_bytes(b".x\r\n"), b"..x");
    }

    #[test]
    fn certificate_and_auth_problems_pause_instead_of_bouncing() {
        assert!(matches!(connect_outcome(mail_send::Error::MissingStartTls), Outcome::Operator(_)));
        assert!(matches!(connect_outcome(mail_send::Error::UnsupportedAuthMechanism), Outcome::Operator(_)));
        let bad_cert =
            mail_send::Error::Tls(Box::new(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)));
        assert!(matches!(connect_outcome(bad_cert), Outcome::Operator(_)));
        let io = mail_send::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        assert!(matches!(connect_outcome(io), Outcome::Transient(_)));
        assert!(matches!(connect_outcome(mail_send::Error::Timeout), Outcome::Transient(_)));
    }

    #[test]
    fn a_missing_ca_file_is_reported() {
        let e = tls_connector(Some(Path::new("/no/such/ca.pem"))).err().unwrap().to_string();
        assert!(e.contains("/no/such/ca.pem"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = tls_connector(Some(&empty)).err().unwrap().to_string();
        assert!(e.contains("no certificate"), "{e}");
    }
}
