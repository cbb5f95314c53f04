//! Delivery over Postmark's HTTP API: `/email` for one message, `/email/batch` (≤ 500 messages,
//! ≤ 50 MB) when several are due, each item's own `ErrorCode` handled.
//!
//! Several requests are in flight at once (see [`super::window`]), over the HTTP client's pool of
//! keep-alive connections: `Api::send` returns a future that owns what it sends, and the worker
//! keeps up to the window's worth of them running while it goes on scheduling.
//!
//! The HTTP client does no retries of its own; retrying belongs to the queue (one retry layer).
//! Postmark has no idempotency key, so a timeout or a reset after the request went out may mean
//! Postmark accepted the message: it is retried (at-least-once), which is the duplicate window
//! described in the spool documentation. A connect failure never duplicates.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postmark_core::limits::MAX_BATCH_MESSAGES;
use postmark_server::types::{SendEmailRequest, SendEmailResponse};
use postmark_server::{ServerClient, ServerClientBuilder, Token};

use super::copies::{Copies, Taken};
use super::policy::{Class, classify_error_code, classify_http};
use super::{BackendError, Outcome, RecipientOutcome};
use crate::convert::{self, ConvertError, ConvertOptions};
use crate::metrics::{Metrics, Path};
use crate::policy::verified::VerifiedSenders;
use crate::secrets::Credentials;
use crate::spool::StoredMessage;

/// Most raw message bytes in all the requests in flight together: each request carries at most
/// this divided by `--api-max-in-flight` (at most [`MAX_BATCH_RAW_BYTES`], at least
/// [`MIN_BATCH_RAW_BYTES`]; one bigger message still goes alone). The relay holds a request's
/// messages about three times over while it is in flight (raw, converted, and the JSON body: the
/// generated client keeps the requests until the answer), so this bounds what delivery holds
/// however deep the queue and however slow Postmark is.
pub const MAX_IN_FLIGHT_RAW_BYTES: usize = 8 * 1024 * 1024;

/// Most raw message bytes per request. Postmark takes up to 50 MB, but 20 messages of 50 KB
/// amortize a request nearly as well as 500 would, and several requests in flight hide the round
/// trip better than one big one.
pub const MAX_BATCH_RAW_BYTES: usize = 1024 * 1024;

/// Fewest raw bytes a request may carry (with a large `--api-max-in-flight`).
pub const MIN_BATCH_RAW_BYTES: usize = 128 * 1024;

/// Most API requests in flight unless configured otherwise (`--api-max-in-flight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;

/// The `/email` requests for `msg`: one, one per group of at most 50 recipients, or one per
/// recipient (see [`convert::convert`]), sent to
/// the stream decided when the message was accepted.
pub fn requests_for(msg: &StoredMessage, opts: &ConvertOptions) -> Result<Vec<SendEmailRequest>, ConvertError> {
    let opts = ConvertOptions { message_stream: msg.stream(), ..opts.clone() };
    convert::to_postmark(&msg.raw, &msg.header.envelope, &opts)
}

/// [`requests_for`], each request built only when taken.
pub fn planned_for(msg: &StoredMessage, opts: &ConvertOptions) -> Result<convert::Requests, ConvertError> {
    let opts = ConvertOptions { message_stream: msg.stream(), ..opts.clone() };
    convert::requests(&msg.raw, &msg.header.envelope, &opts)
}

/// Where and how the API backend sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSettings {
    /// Base URL of Postmark's API (`--api-url`).
    pub url: String,
    /// How long one request may take (`--api-timeout`).
    pub timeout: Duration,
    /// Most requests in flight at once (`--api-max-in-flight`).
    pub max_in_flight: usize,
}

impl ApiSettings {
    /// Settings for `url` with the default timeout and bound on requests in flight.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), timeout: Duration::from_secs(60), max_in_flight: DEFAULT_MAX_IN_FLIGHT }
    }
}

/// What one finished request (or group of them) came to.
#[derive(Debug)]
pub struct Sent {
    /// The messages it carried, handed back.
    pub messages: Vec<StoredMessage>,
    /// One outcome per message.
    pub outcomes: Vec<Outcome>,
    /// Whether Postmark answered 429 or 503, or a request timed out.
    pub congested: bool,
}

/// The API backend.
#[derive(Debug)]
pub struct Api {
    senders: Arc<Senders>,
    settings: ApiSettings,
    /// Most messages and raw bytes per request.
    batch: (usize, usize),
}

/// What a request in flight needs: the clients and how to convert.
#[derive(Debug)]
struct Senders {
    client: ServerClient,
    /// One client per `[[routes]]` entry with a server token of its own.
    routes: BTreeMap<String, ServerClient>,
    convert: ConvertOptions,
    /// Most messages and raw bytes per request.
    batch: (usize, usize),
    /// The most requests one delivery held built at once (tests see that copies are built
    /// batch by batch).
    #[cfg(test)]
    peak_built: std::sync::atomic::AtomicUsize,
    /// Taught which senders Postmark refuses (ErrorCodes 400 and 401).
    verified: Option<Arc<VerifiedSenders>>,
}

impl Api {
    /// A backend sending with the server token.
    pub fn new(settings: ApiSettings, token: &Token, convert: ConvertOptions) -> Result<Self, BackendError> {
        let client = client(&settings, token)?;
        let per_request =
            (MAX_IN_FLIGHT_RAW_BYTES / settings.max_in_flight.max(1)).clamp(MIN_BATCH_RAW_BYTES, MAX_BATCH_RAW_BYTES);
        let batch = (MAX_BATCH_MESSAGES, per_request);
        let senders = Senders {
            client,
            routes: BTreeMap::new(),
            convert,
            batch,
            #[cfg(test)]
            peak_built: Default::default(),
            verified: None,
        };
        Ok(Self { senders: Arc::new(senders), settings, batch })
    }

    /// Teaches `verified` the senders Postmark refuses, so the next message from them is refused
    /// before `250`.
    pub fn with_verified(mut self, verified: Arc<VerifiedSenders>) -> Self {
        self.replace(|s| s.verified = Some(verified));
        self
    }

    /// At most `messages` messages and `bytes` raw bytes per request (tests make small requests
    /// to see many of them).
    #[cfg(test)]
    pub(crate) fn with_batch_limits(mut self, messages: usize, bytes: usize) -> Self {
        self.batch = (messages, bytes);
        self.replace(|s| s.batch = (messages, bytes));
        self
    }

    /// The most requests a delivery has held built at once so far.
    #[cfg(test)]
    pub(crate) fn peak_built(&self) -> usize {
        self.senders.peak_built.load(Ordering::Relaxed)
    }

    /// Most messages and raw bytes per request.
    pub(super) fn batch_limits(&self) -> (usize, usize) {
        self.batch
    }

    /// Most requests in flight at once.
    pub(super) fn max_in_flight(&self) -> usize {
        self.settings.max_in_flight.max(1)
    }

    /// New senders for the requests sent from now on (those in flight keep theirs).
    fn replace(&mut self, change: impl FnOnce(&mut Senders)) {
        let old = &self.senders;
        let mut new = Senders {
            client: old.client.clone(),
            routes: old.routes.clone(),
            convert: old.convert.clone(),
            batch: old.batch,
            #[cfg(test)]
            peak_built: Default::default(),
            verified: old.verified.clone(),
        };
        change(&mut new);
        self.senders = Arc::new(new);
    }

    /// Sends with a new server token from now on (credential rotation).
    pub fn set_token(&mut self, token: &Token) -> Result<(), BackendError> {
        let client = client(&self.settings, token)?;
        self.replace(|s| s.client = client);
        Ok(())
    }

    /// Uses these credentials from now on: the default server token and the routes' own.
    pub fn set_credentials(&mut self, credentials: &Credentials) -> Result<(), BackendError> {
        let token = credentials.server_token.as_ref().ok_or(BackendError::NoServerToken)?;
        let mut routes = BTreeMap::new();
        for (name, route) in &credentials.routes {
            if let Some(token) = &route.server_token {
                routes.insert(name.clone(), client(&self.settings, token)?);
            }
        }
        let client = client(&self.settings, token)?;
        self.replace(|s| {
            s.client = client;
            s.routes = routes;
        });
        Ok(())
    }

    /// Sends `messages` (with their requests, when built at accept time) and gives them back
    /// with their outcomes; the future owns all it needs, so several can run at once.
    pub(super) fn send(
        &self,
        messages: Vec<StoredMessage>,
        built: Vec<Option<Vec<SendEmailRequest>>>,
        metrics: Arc<Metrics>,
    ) -> impl Future<Output = Sent> + Send + 'static {
        let senders = Arc::clone(&self.senders);
        async move {
            let congested = AtomicBool::new(false);
            let outcomes = senders.deliver(&messages, built, &metrics, &congested).await;
            Sent { messages, outcomes, congested: congested.load(Ordering::Relaxed) }
        }
    }

    pub(super) async fn deliver(
        &mut self,
        messages: &[StoredMessage],
        built: Vec<Option<Vec<SendEmailRequest>>>,
        metrics: &Metrics,
    ) -> Vec<Outcome> {
        self.senders.deliver(messages, built, metrics, &AtomicBool::new(false)).await
    }
}

impl Senders {
    async fn deliver(
        &self,
        messages: &[StoredMessage],
        mut built: Vec<Option<Vec<SendEmailRequest>>>,
        metrics: &Metrics,
        congested: &AtomicBool,
    ) -> Vec<Outcome> {
        built.resize_with(messages.len(), || None);
        // Messages of a route with a token of its own go with that token, the rest with the
        // default one; each group is batched on its own.
        let mut groups: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
        for (i, msg) in messages.iter().enumerate() {
            let route = msg.header.routing.as_ref().and_then(|r| r.route.as_deref());
            let route = route.filter(|r| self.routes.contains_key(*r));
            if let Some(name) = msg.header.routing.as_ref().and_then(|r| r.route.as_deref())
                && route.is_none()
            {
                tracing::debug!(queue_id = %msg.id, route = name, "route has no server token of its own; default token");
            }
            groups.entry(route).or_default().push(i);
        }
        let mut outcomes: Vec<Option<Outcome>> = vec![None; messages.len()];
        for (route, indices) in groups {
            let client = route.and_then(|r| self.routes.get(r)).unwrap_or(&self.client);
            let group: Vec<&StoredMessage> = indices.iter().map(|&i| &messages[i]).collect();
            let group_built: Vec<_> = indices.iter().map(|&i| built[i].take()).collect();
            let sent = self.deliver_group(client, &group, group_built, metrics, congested).await;
            for (i, outcome) in indices.into_iter().zip(sent) {
                outcomes[i] = Some(outcome);
            }
        }
        outcomes.into_iter().map(|o| o.unwrap_or_else(|| Outcome::Transient("no result".into()))).collect()
    }
    async fn deliver_group(
        &self,
        client: &ServerClient,
        messages: &[&StoredMessage],
        built: Vec<Option<Vec<SendEmailRequest>>>,
        metrics: &Metrics,
        congested: &AtomicBool,
    ) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; messages.len()];
        // Every request with the index of its message and its place among the message's copies
        // (a message sent as one copy per recipient has several), each copy built only when its
        // batch is made: what is held is the converted messages and one batch, not every copy.
        let mut copies = vec![0usize; messages.len()];
        let mut pending: Vec<(usize, Copies)> = Vec::with_capacity(messages.len());
        for ((i, msg), built) in messages.iter().enumerate().zip(built) {
            let reqs = match built {
                Some(reqs) => Ok(Copies::Built(reqs.into_iter())),
                None => planned_for(msg, &self.convert).map(Copies::Planned),
            };
            match reqs {
                Ok(reqs) => {
                    copies[i] = reqs.len();
                    pending.push((i, reqs));
                }
                Err(e) => {
                    outcomes[i] =
                        Some(Outcome::Permanent(format!("cannot convert the message for Postmark's API: {e}")))
                }
            }
        }
        let mut rest = Taken { pending: pending.into_iter(), current: None, peeked: None };
        // (message, copy, recipients of the copy when the message has several, outcome).
        let mut results: Vec<(usize, Vec<String>, Outcome)> = Vec::new();
        let (most, max_bytes) = self.batch;
        loop {
            // At most `most` requests and about `max_bytes` of text (the copies of a message to
            // many recipients would otherwise make one batch of many times its size).
            let mut chunk: Vec<SendEmailRequest> = Vec::new();
            let mut from: Vec<(usize, usize)> = Vec::new();
            let mut bytes = 0;
            while let Some((_, _, next)) = rest.peek() {
                let size = super::handoff::heap_bytes(std::slice::from_ref(next));
                if chunk.len() >= most.max(1) || (!chunk.is_empty() && bytes + size > max_bytes) {
                    break;
                }
                bytes += size;
                let Some((i, k, request)) = rest.next() else { break };
                chunk.push(request);
                from.push((i, k));
            }
            #[cfg(test)]
            self.peak_built.fetch_max(chunk.len() + rest.held(), Ordering::Relaxed);
            let recipients: Vec<Vec<String>> = chunk
                .iter()
                .zip(&from)
                .map(|(r, &(i, _))| {
                    if copies[i] > 1 {
                        convert::request_recipients(r, &messages[i].header.envelope)
                    } else {
                        Vec::new()
                    }
                })
                .collect();
            let sent = match chunk.len() {
                0 => break,
                1 => {
                    let mut out = Vec::new();
                    for request in chunk {
                        out.push(self.send_one(client, request, metrics, congested).await);
                    }
                    out
                }
                _ => match self.send_batch(client, chunk, metrics, congested).await {
                    Ok(out) => out,
                    // One bad message (or a batch too large) must not sink the others: send
                    // each on its own and let Postmark judge them one by one.
                    Err(reason) => {
                        tracing::warn!(messages = from.len(), error = %reason, "Postmark refused the batch as a whole; sending its messages one by one");
                        self.send_each(client, messages, &from, metrics, congested).await
                    }
                },
            };
            for ((&(i, _), rcpt), outcome) in from.iter().zip(recipients).zip(sent) {
                results.push((i, rcpt, outcome));
            }
        }
        drop(rest);
        let mut split: Vec<RecipientOutcome> = vec![RecipientOutcome::default(); messages.len()];
        let mut operator: Vec<Option<String>> = vec![None; messages.len()];
        for (i, rcpt, outcome) in results {
            if copies[i] == 1 {
                outcomes[i] = Some(outcome);
                continue;
            }
            if let Some(reason) = split[i].record(&rcpt, outcome) {
                operator[i] = Some(reason);
            }
        }
        for (i, r) in split.into_iter().enumerate() {
            if copies[i] > 1 {
                outcomes[i] = Some(match operator[i].take() {
                    // The account or configuration is at fault: nothing is given up, and the
                    // copies already accepted may go again once it is fixed.
                    Some(reason) => Outcome::Operator(reason),
                    None => Outcome::PerRecipient(r),
                });
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Transient("no result from Postmark".into())))
            .collect()
    }

    async fn send_one(
        &self,
        client: &ServerClient,
        request: SendEmailRequest,
        metrics: &Metrics,
        congested: &AtomicBool,
    ) -> Outcome {
        let started = std::time::Instant::now();
        let from = request.from.clone();
        let sent = client.send_email().body(request).send().await;
        metrics.upstream_latency(Path::Api, started.elapsed());
        match sent {
            Ok(resp) => {
                let resp = resp.into_inner();
                self.learn(&from, resp.error_code, &resp.message);
                item_outcome(&resp)
            }
            Err(e) => {
                let e = postmark_server::Error::from(e);
                if let postmark_server::Error::Api { code, message, .. } = &e {
                    self.learn(&from, code.as_i64(), message);
                }
                if is_congestion(&e) {
                    congested.store(true, Ordering::Relaxed);
                }
                error_outcome(&e)
            }
        }
    }

    /// ErrorCodes 400 (no sender signature for the From) and 401 (signature not confirmed) teach
    /// the verified-sender knowledge about this sender.
    fn learn(&self, from: &str, code: i64, message: &str) {
        if !matches!(code, 400 | 401) {
            return;
        }
        if let Some(verified) = &self.verified {
            let address = from.rsplit_once('<').map_or(from, |(_, a)| a.trim_end_matches('>')).trim();
            verified.learn(address, code, message, crate::clock::now_ms());
        }
    }

    /// Sends `requests` as one batch: one outcome each, or `Err` with the reason when Postmark
    /// refused the batch as a whole for good.
    async fn send_batch(
        &self,
        client: &ServerClient,
        requests: Vec<SendEmailRequest>,
        metrics: &Metrics,
        congested: &AtomicBool,
    ) -> Result<Vec<Outcome>, String> {
        let n = requests.len();
        // The senders, to learn from the answer; the requests themselves go with the body.
        let from: Vec<String> = requests.iter().map(|r| r.from.clone()).collect();
        let started = std::time::Instant::now();
        let sent = client.send_email_batch().body(requests).send().await;
        metrics.upstream_latency(Path::Api, started.elapsed());
        match sent {
            Ok(resp) => {
                let items = resp.into_inner();
                for (item, from) in items.iter().zip(&from) {
                    self.learn(from, item.error_code, &item.message);
                }
                let mut out: Vec<Outcome> = items.iter().take(n).map(item_outcome).collect();
                while out.len() < n {
                    out.push(Outcome::Transient("Postmark's batch answer had fewer results than messages".into()));
                }
                Ok(out)
            }
            Err(e) => {
                let e = postmark_server::Error::from(e);
                if is_congestion(&e) {
                    congested.store(true, Ordering::Relaxed);
                }
                match error_outcome(&e) {
                    Outcome::Permanent(reason) => Err(reason),
                    other => Ok(vec![other; n]),
                }
            }
        }
    }

    /// Sends the requests `which` (message, copy) one by one, each built again from its message
    /// (a batch refused as a whole is rare: keeping a copy of every batch for it would double
    /// what requests in flight hold).
    async fn send_each(
        &self,
        client: &ServerClient,
        messages: &[&StoredMessage],
        which: &[(usize, usize)],
        metrics: &Metrics,
        congested: &AtomicBool,
    ) -> Vec<Outcome> {
        let mut out = Vec::with_capacity(which.len());
        // The copies of one message come in order: one conversion serves them all.
        let mut current: Option<(usize, usize, convert::Requests)> = None;
        for &(i, k) in which {
            let reuse = matches!(&current, Some((m, next, _)) if *m == i && *next <= k);
            if !reuse {
                current = planned_for(messages[i], &self.convert).ok().map(|reqs| (i, 0, reqs));
            }
            let request = current.as_mut().and_then(|(_, next, reqs)| {
                let skip = k - *next;
                *next = k + 1;
                reqs.nth(skip)
            });
            out.push(match request {
                Some(request) => self.send_one(client, request, metrics, congested).await,
                None => Outcome::Transient("the message could not be converted again".into()),
            });
        }
        out
    }
}

fn client(settings: &ApiSettings, token: &Token) -> Result<ServerClient, BackendError> {
    ServerClientBuilder::new(token.clone())
        .base_url(&settings.url)
        .timeout(settings.timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("postmark-relay/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(BackendError::ApiClient)
}

/// The outcome of one `SendEmailResponse` (the answer to `/email`, or one batch item).
fn item_outcome(resp: &SendEmailResponse) -> Outcome {
    let reason = || format!("Postmark ErrorCode {}: {}", resp.error_code, resp.message);
    match classify_error_code(resp.error_code) {
        Class::Delivered => {
            Outcome::Delivered { reference: resp.message_id.clone().unwrap_or_else(|| "(no MessageID)".into()) }
        }
        Class::Transient => Outcome::Transient(reason()),
        Class::Permanent => Outcome::Permanent(reason()),
        Class::Operator => Outcome::Operator(reason()),
    }
}

/// Whether a failed request says Postmark is overloaded or rate limiting: a 429, a 503, or no
/// answer in time.
fn is_congestion(e: &postmark_server::Error) -> bool {
    use postmark_server::Error as E;
    match e {
        E::Api { status, .. } | E::UnexpectedResponse { status, .. } => matches!(status, 429 | 503),
        E::Transport { source, .. } => source.is_timeout(),
        _ => false,
    }
}

/// The outcome of a failed request.
fn error_outcome(e: &postmark_server::Error) -> Outcome {
    use postmark_server::Error as E;
    let reason = e.to_string();
    match e {
        E::Api { status, code, .. } => outcome_of(classify_http(*status, Some(code.as_i64())), reason),
        E::UnexpectedResponse { status, .. } => outcome_of(classify_http(*status, None), reason),
        // The request may or may not have reached Postmark: retry (at-least-once).
        E::Transport { .. } => Outcome::Transient(reason),
        // A 2xx whose body we could not read: Postmark accepted the message.
        E::Decode { .. } => Outcome::Delivered { reference: "(accepted; response not understood)".into() },
        E::InvalidRequest(_) => Outcome::Permanent(reason),
        E::Config(_) => Outcome::Operator(reason),
        _ => Outcome::Transient(reason),
    }
}

fn outcome_of(class: Class, reason: String) -> Outcome {
    match class {
        Class::Delivered => Outcome::Delivered { reference: reason },
        Class::Transient => Outcome::Transient(reason),
        Class::Permanent => Outcome::Permanent(reason),
        Class::Operator => Outcome::Operator(reason),
    }
}
