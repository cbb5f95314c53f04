//! What the relay does with senders and recipients before it accepts a message, on every way in
//! (SMTP sessions and the `sendmail` entry point):
//!
//! * **Local names.** A bare local part (`root`, as cron writes it) and an address at this host
//!   (`root@localhost`, `root@<hostname>`, `root@<local_domain>`; see [`host`]) are local:
//!   `[aliases]` map local names (and whole addresses) to real addresses, one or several, nested
//!   up to [`MAX_ALIAS_DEPTH`] deep. A local name without an alias goes to `name@local_domain`
//!   when `local_domain` is set, and is refused otherwise with a reply that says how to configure
//!   one: an address at this host's own name is never sent to Postmark as it is. A bare sender
//!   is qualified with `local_domain`, else with the host's mail domain ([`host::HostNames`]).
//! * **Sender policy.** `allowed_senders` (addresses and domains) is checked against the envelope
//!   sender at `MAIL` and the header `From` at the end of `DATA` (`550 5.7.1`); `rewrite_from`
//!   replaces the `From` header (the original goes to `Reply-To` unless there is one, and to
//!   `X-Original-From`) and the envelope sender.
//! * **Verified senders** ([`verified`]): a `From` Postmark would refuse (not a confirmed sender
//!   signature, not on a domain with verified DKIM) is refused before `250`.
//! * **Routes** ([`RouteRule`]): the route (its name, never its secret) is chosen when the message
//!   is accepted and stored with it in the spool.

pub mod account;
pub mod host;
pub mod verified;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::headers::{HeaderSection, one_line};
use verified::VerifiedSenders;

/// How deep aliases may refer to other aliases.
pub const MAX_ALIAS_DEPTH: usize = 8;

/// A refusal: the SMTP reply and, for `sendmail`, the `sysexits.h` code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// SMTP reply code.
    pub code: u16,
    /// Enhanced status code.
    pub enhanced: &'static str,
    /// Why, for the client.
    pub text: String,
    /// The exit code `sendmail` uses for it.
    pub exit: u8,
}

impl Refusal {
    fn new(code: u16, enhanced: &'static str, exit: u8, text: impl Into<String>) -> Self {
        Self { code, enhanced, text: text.into(), exit }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// `sysexits.h` codes used by the `sendmail` entry point.
pub mod exit {
    /// Command line usage error.
    pub const USAGE: u8 = 64;
    /// Data format error.
    pub const DATAERR: u8 = 65;
    /// Addressee unknown.
    pub const NOUSER: u8 = 67;
    /// Internal software error.
    pub const SOFTWARE: u8 = 70;
    /// Cannot create (user) output file.
    pub const CANTCREAT: u8 = 73;
    /// Input/output error.
    pub const IOERR: u8 = 74;
    /// Temporary failure; the user is invited to retry.
    pub const TEMPFAIL: u8 = 75;
    /// Permission denied.
    pub const NOPERM: u8 = 77;
    /// Configuration error.
    pub const CONFIG: u8 = 78;
}

/// One allowed sender: a whole address or every address of a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SenderPattern {
    Address(String),
    Domain(String),
}

impl SenderPattern {
    fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        let s = s.strip_prefix('@').unwrap_or(&s).to_owned();
        if s.contains('@') {
            postmark_core::limits::is_valid_address(&s).then_some(Self::Address(s))
        } else {
            postmark_core::limits::is_valid_address(&format!("x@{s}")).then_some(Self::Domain(s))
        }
    }

    fn matches(&self, address: &str) -> bool {
        let address = address.to_ascii_lowercase();
        match self {
            Self::Address(a) => *a == address,
            Self::Domain(d) => address.rsplit_once('@').is_some_and(|(_, domain)| domain == d),
        }
    }
}

/// A route's matching rule (its credentials live with the other secrets, under the same name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    /// The route's name, stored with each message it takes.
    pub name: String,
    senders: Vec<SenderPattern>,
    users: Vec<String>,
    /// The default message stream of its messages (a message's own `X-PM-Message-Stream` wins).
    pub message_stream: Option<String>,
}

/// A setting of the policy that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct PolicyError {
    /// The setting, as the config file spells it.
    pub setting: String,
    /// What is wrong with it.
    pub problem: String,
}

fn invalid(setting: impl Into<String>, problem: impl Into<String>) -> PolicyError {
    PolicyError { setting: setting.into(), problem: problem.into() }
}

/// What [`Policy::message`] decided for an accepted message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// The message rewritten (`rewrite_from`), if it was.
    pub raw: Option<Vec<u8>>,
    /// The route chosen, by name.
    pub route: Option<String>,
    /// The route's default stream.
    pub stream: Option<String>,
}

/// The policy (see the module documentation). The default lets everything through unchanged.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    local_domain: Option<String>,
    /// The domain of a bare sender without `local_domain` (the host's mail domain).
    mail_domain: Option<String>,
    /// The domains that mean this host (besides `local_domain`).
    local_hosts: Vec<String>,
    aliases: BTreeMap<String, Vec<String>>,
    allowed_senders: Option<Vec<SenderPattern>>,
    rewrite_from: Option<String>,
    routes: Vec<RouteRule>,
    verified: Arc<VerifiedSenders>,
}

/// The settings [`Policy`] is built from, as the config file holds them.
#[derive(Debug, Clone, Default)]
pub struct PolicySettings {
    /// `local_domain`.
    pub local_domain: Option<String>,
    /// The host's names (an address at one of them is local; the mail domain qualifies a bare
    /// sender when `local_domain` is not set).
    pub host: host::HostNames,
    /// `[aliases]`: name → addresses.
    pub aliases: BTreeMap<String, Vec<String>>,
    /// `allowed_senders`.
    pub allowed_senders: Option<Vec<String>>,
    /// `rewrite_from`.
    pub rewrite_from: Option<String>,
    /// `[[routes]]`.
    pub routes: Vec<RouteSettings>,
}

/// One `[[routes]]` entry's matching rule as written.
#[derive(Debug, Clone, Default)]
pub struct RouteSettings {
    /// `name`.
    pub name: String,
    /// `senders`: addresses and domains.
    pub senders: Vec<String>,
    /// `users`: AUTH user names.
    pub users: Vec<String>,
    /// `message_stream`.
    pub message_stream: Option<String>,
}

impl Policy {
    /// Checks and builds the policy.
    pub fn new(settings: PolicySettings) -> Result<Self, PolicyError> {
        let local_domain = match settings.local_domain.map(|d| d.trim().to_ascii_lowercase()) {
            Some(d) if d.is_empty() => None,
            Some(d) if !postmark_core::limits::is_valid_address(&format!("root@{d}")) => {
                return Err(invalid("local_domain", format!("{d:?} is not a domain name")));
            }
            other => other,
        };
        let mut aliases = BTreeMap::new();
        for (name, targets) in settings.aliases {
            let key = name.trim().to_ascii_lowercase();
            if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(format!("aliases.{name}"), "not a local name or address"));
            }
            if targets.is_empty() {
                return Err(invalid(format!("aliases.{name}"), "names no address"));
            }
            for t in &targets {
                let t = t.trim();
                // A target is a full address or another alias.
                if !t.contains('@') {
                    continue;
                }
                if !postmark_core::limits::is_valid_address(t) {
                    return Err(invalid(format!("aliases.{name}"), format!("{t:?} is not an address Postmark takes")));
                }
            }
            aliases.insert(key, targets.into_iter().map(|t| t.trim().to_owned()).collect());
        }
        let mail_domain = settings.host.mail_domain().map(str::to_owned);
        let local_hosts = settings.host.local_domains();
        let mut policy = Self { local_domain, mail_domain, local_hosts, aliases, ..Self::default() };
        // Every alias must expand to real addresses, without loops.
        for name in policy.aliases.keys() {
            policy.expand(name, 0).map_err(|r| invalid(format!("aliases.{name}"), r.text))?;
        }
        policy.allowed_senders = match settings.allowed_senders {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|s| {
                        SenderPattern::parse(s).ok_or_else(|| {
                            invalid("allowed_senders", format!("{s:?} is neither an address nor a domain"))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        policy.rewrite_from = match settings.rewrite_from.map(|s| s.trim().to_owned()) {
            Some(s) if s.is_empty() => None,
            Some(s) if !postmark_core::limits::is_valid_address(&s) => {
                return Err(invalid("rewrite_from", format!("{s:?} is not an address Postmark takes")));
            }
            other => other,
        };
        for RouteSettings { name, senders, users, message_stream: stream } in settings.routes {
            if name.is_empty() || policy.routes.iter().any(|r| r.name == name) {
                return Err(invalid("routes", format!("every route needs a name of its own ({name:?})")));
            }
            if senders.is_empty() && users.is_empty() {
                return Err(invalid(format!("routes.{name}"), "matches nothing: give senders or users"));
            }
            let senders = senders
                .iter()
                .map(|s| {
                    SenderPattern::parse(s).ok_or_else(|| {
                        invalid(format!("routes.{name}.senders"), format!("{s:?} is neither an address nor a domain"))
                    })
                })
                .collect::<Result<_, _>>()?;
            policy.routes.push(RouteRule { name, senders, users, message_stream: stream.filter(|s| !s.is_empty()) });
        }
        Ok(policy)
    }

    /// The verified-sender knowledge this policy consults (shared with delivery, which teaches
    /// it, and the account poller, which fills it).
    pub fn verified(&self) -> &Arc<VerifiedSenders> {
        &self.verified
    }

    /// Uses `verified` as the verified-sender knowledge.
    pub fn with_verified(mut self, verified: Arc<VerifiedSenders>) -> Self {
        self.verified = verified;
        self
    }

    /// The routes, in the order they are tried.
    pub fn routes(&self) -> &[RouteRule] {
        &self.routes
    }

    /// A sender's `address` with `local_domain` (else the host's mail domain) as its domain when
    /// it has none or is an address at this host (`root@localhost`, `root@<hostname>`); else as
    /// it is.
    pub fn qualify(&self, address: &str) -> String {
        let Some(domain) = self.local_domain.as_ref().or(self.mail_domain.as_ref()) else {
            return address.to_owned();
        };
        match address.rsplit_once('@') {
            None if !address.is_empty() => format!("{address}@{domain}"),
            Some((local, host)) if !local.is_empty() && self.is_this_host(host) => format!("{local}@{domain}"),
            _ => address.to_owned(),
        }
    }

    /// The addresses a recipient stands for: aliases expanded, bare names qualified. Refused
    /// when a bare name has nowhere to go.
    pub fn recipient(&self, address: &str) -> Result<Vec<String>, Refusal> {
        let mut out = self.expand(address, 0)?;
        out.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
        Ok(out)
    }

    fn alias_key(&self, address: &str) -> Option<String> {
        let lower = address.to_ascii_lowercase();
        if self.aliases.contains_key(&lower) {
            return Some(lower);
        }
        let (local, domain) = lower.rsplit_once('@')?;
        let local_domain = self.local_domain.as_deref() == Some(domain) || self.is_this_host(domain);
        (local_domain && self.aliases.contains_key(local)).then(|| local.to_owned())
    }

    /// Whether `domain` names this host (`localhost`, its host names; not its mail name).
    pub fn is_this_host(&self, domain: &str) -> bool {
        self.local_hosts.iter().any(|h| h.eq_ignore_ascii_case(domain))
    }

    fn expand(&self, address: &str, depth: usize) -> Result<Vec<String>, Refusal> {
        if depth > MAX_ALIAS_DEPTH {
            return Err(Refusal::new(
                550,
                "5.4.6",
                exit::CONFIG,
                format!("Alias loop or aliases nested more than {MAX_ALIAS_DEPTH} deep at {address:?}"),
            ));
        }
        if let Some(key) = self.alias_key(address) {
            let mut out = Vec::new();
            for target in &self.aliases[&key] {
                out.extend(self.expand(target, depth + 1)?);
            }
            return Ok(out);
        }
        let name = match address.rsplit_once('@') {
            None => address,
            // An address at this host is its local part (unless local_domain is this host too).
            Some((local, domain))
                if !local.is_empty()
                    && self.is_this_host(domain)
                    && !self.local_domain.as_deref().is_some_and(|d| d.eq_ignore_ascii_case(domain)) =>
            {
                local
            }
            Some(_) => return Ok(vec![address.to_owned()]),
        };
        match &self.local_domain {
            Some(domain) => Ok(vec![format!("{name}@{domain}")]),
            None => {
                let what = if name == address { "has no domain" } else { "is an address at this host" };
                Err(Refusal::new(
                    550,
                    "5.1.1",
                    exit::NOUSER,
                    format!(
                        "{address:?} {what} and no alias; add one to the relay's config ([aliases] {name} = \
                         \"you@example.com\"), or set local_domain"
                    ),
                ))
            }
        }
    }

    /// The envelope sender to use: qualified, checked against `allowed_senders`, and replaced by
    /// `rewrite_from`. The null sender `<>` passes (its message's `From` is still checked).
    pub fn sender(&self, address: &str) -> Result<String, Refusal> {
        let address = self.qualify(address);
        if !address.is_empty() && !self.allowed(&address) {
            return Err(not_allowed("Sender", &address));
        }
        Ok(match &self.rewrite_from {
            Some(rewrite) if !address.is_empty() => rewrite.clone(),
            _ => address,
        })
    }

    fn allowed(&self, address: &str) -> bool {
        self.allowed_senders.as_ref().is_none_or(|list| list.iter().any(|p| p.matches(address)))
    }

    /// The end-of-`DATA` decision for `raw`, sent by `mail_from` (as [`Policy::sender`] left it)
    /// after `AUTH` as `user`: the header `From` checked (allowed, verified), `rewrite_from`
    /// applied, the route chosen.
    pub fn message(&self, raw: &[u8], mail_from: &str, user: Option<&str>, now_ms: u64) -> Result<Decision, Refusal> {
        // Nothing to decide: no parse on the accept path (the common case).
        if self.allowed_senders.is_none()
            && self.rewrite_from.is_none()
            && self.routes.is_empty()
            && !self.verified.knows_anything()
        {
            return Ok(Decision::default());
        }
        let from = header_from(raw);
        if self.allowed_senders.is_some() {
            match &from {
                Some(address) if self.allowed(address) => {}
                Some(address) => return Err(not_allowed("From", address)),
                None if self.rewrite_from.is_none() => {
                    return Err(Refusal::new(
                        550,
                        "5.7.1",
                        exit::NOPERM,
                        "The message has no From address, and allowed_senders is set",
                    ));
                }
                None => {}
            }
        }
        let mut decision = Decision::default();
        let effective = match &self.rewrite_from {
            Some(rewrite) => {
                decision.raw = Some(rewrite_from(raw, rewrite));
                Some(rewrite.clone())
            }
            None => from.clone(),
        };
        if let Some(address) = &effective
            && let Err(reason) = self.verified.check(address, now_ms)
        {
            return Err(Refusal::new(550, "5.7.1", exit::NOPERM, reason.0));
        }
        let route = self.routes.iter().find(|r| {
            r.users.iter().any(|u| Some(u.as_str()) == user)
                || r.senders.iter().any(|p| p.matches(mail_from) || from.as_deref().is_some_and(|f| p.matches(f)))
        });
        if let Some(route) = route {
            decision.route = Some(route.name.clone());
            decision.stream = route.message_stream.clone();
        }
        Ok(decision)
    }
}

fn not_allowed(what: &str, address: &str) -> Refusal {
    Refusal::new(
        550,
        "5.7.1",
        exit::NOPERM,
        format!("{what} {address} is not allowed to send through this relay (see allowed_senders)"),
    )
}

/// The address of the message's `From`, when it names exactly one.
pub fn header_from(raw: &[u8]) -> Option<String> {
    let message = crate::convert::parse(raw)?;
    let from = message.from()?;
    let mut addresses = from.iter().filter_map(|a| a.address());
    let first = addresses.next()?.to_owned();
    addresses.next().is_none().then_some(first)
}

/// `raw` with its `From` replaced by `address` (keeping the original's display name), the
/// original kept in `X-Original-From` and, unless the message has one, in `Reply-To`.
pub fn rewrite_from(raw: &[u8], address: &str) -> Vec<u8> {
    let mut section = HeaderSection::parse(raw);
    let original = section.value("from").map(|v| one_line(&v));
    let name = crate::convert::parse(raw)
        .and_then(|m| m.from().and_then(|f| f.first()).and_then(|a| a.name()).map(one_line).filter(|n| !n.is_empty()));
    let has_reply_to = section.has("reply-to");
    section.remove("from");
    let mut added = vec![match name {
        Some(name) if name.is_ascii() => format!("From: {} <{address}>", crate::convert::quote_display_name(&name)),
        Some(name) => {
            use base64::Engine as _;
            format!("From: =?UTF-8?B?{}?= <{address}>", base64::engine::general_purpose::STANDARD.encode(name))
        }
        None => format!("From: {address}"),
    }];
    if let Some(original) = original.filter(|o| !o.is_empty()) {
        if !has_reply_to {
            added.push(format!("Reply-To: {original}"));
        }
        section.remove("x-original-from");
        added.push(format!("X-Original-From: {original}"));
    }
    section.to_bytes(&added)
}

#[cfg(test)]
mod tests;
