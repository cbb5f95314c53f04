//! Who may send through the relay: the relay must never become an open relay, because whoever
//! can hand it mail sends with the operator's Postmark credentials.
//!
//! * "Loopback" means 127.0.0.0/8 and ::1 (also as IPv4-mapped IPv6); every other address,
//!   including `0.0.0.0`, `[::]` and private ranges, counts as non-loopback.
//! * Listening only on loopback needs nothing: local clients send without AUTH (the default).
//! * Listening on a non-loopback address is refused at start-up unless client AUTH is configured
//!   (`--auth-users`, which there also needs `--tls-cert`/`--tls-key`: passwords must not cross
//!   the network in clear), or unauthenticated clients are explicitly allowed from private
//!   networks with `--allow-unauthenticated-from CIDR[,CIDR…]` (logged as a warning at every
//!   start). Public ranges are refused in that list.
//! * Per connection: a client allowed to send without AUTH is one in the allow-list when there
//!   is one; otherwise a loopback client when no users file is configured. With a users file,
//!   everybody else must authenticate (`530 5.7.0` at `MAIL`); without one, everybody else is
//!   answered `554 5.7.1` instead of the greeting and disconnected.
//! * AUTH is offered (and accepted) only inside TLS, or on a loopback connection; elsewhere it is
//!   answered `538 5.7.11`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use ipnet::IpNet;

use crate::auth::{Users, UsersError};
use crate::tls::{TlsError, TlsServer};

/// Why the access settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// `--tls-cert` without `--tls-key`, or the other way round.
    #[error("--tls-cert and --tls-key go together")]
    HalfTls,
    /// An `--allow-unauthenticated-from` entry that is not a network.
    #[error("--allow-unauthenticated-from: {0:?} is not a network like 10.0.0.0/8")]
    NotANetwork(String),
    /// An empty entry in `--allow-unauthenticated-from`.
    #[error("--allow-unauthenticated-from: empty entry in {0:?}")]
    EmptyNetwork(String),
    /// A network with public addresses in `--allow-unauthenticated-from`.
    #[error(
        "--allow-unauthenticated-from: {0} includes public addresses; only private networks \
         (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, fc00::/7, loopback, link-local) \
         may send without AUTH, anything else must authenticate (--auth-users)"
    )]
    PublicNetwork(IpNet),
    /// The listen address would make the relay an open relay.
    #[error(
        "refusing to listen on {0} without client authentication: that is not a loopback address, \
         so anyone who can reach it could send mail with your Postmark credentials (an open relay). \
         Listen on 127.0.0.1, or require AUTH with --auth-users FILE (and --tls-cert/--tls-key), \
         or allow unauthenticated clients from private networks with --allow-unauthenticated-from CIDR[,CIDR...]"
    )]
    OpenRelay(SocketAddr),
    /// AUTH on a network address without TLS.
    #[error(
        "client AUTH on the non-loopback address {0} needs --tls-cert and --tls-key: \
         passwords must not cross the network in clear"
    )]
    AuthWithoutTls(SocketAddr),
    /// The users file cannot be used.
    #[error(transparent)]
    Users(#[from] UsersError),
    /// The certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Inbound TLS, client AUTH and the allow-list, as configured (the files are read at start).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessConfig {
    /// `--tls-cert` and `--tls-key`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `--auth-users`.
    pub auth_users: Option<PathBuf>,
    /// `--allow-unauthenticated-from`, checked to be private networks.
    pub allow_unauthenticated: Option<Vec<IpNet>>,
}

impl AccessConfig {
    /// Checks and combines the access settings (from flags or the file).
    pub fn resolve(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        auth_users: Option<PathBuf>,
        allow_list: Option<String>,
    ) -> Result<Self, AccessError> {
        let tls = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(AccessError::HalfTls),
        };
        let allow_unauthenticated = allow_list.as_deref().map(parse_networks).transpose()?;
        Ok(Self { tls, auth_users, allow_unauthenticated })
    }
}

/// The access policy of the SMTP listener.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Client AUTH users (`--auth-users`); when set, AUTH is required of every client not in
    /// `unauthenticated`.
    pub users: Option<Arc<Users>>,
    /// Inbound STARTTLS (`--tls-cert`, `--tls-key`).
    pub tls: Option<Arc<TlsServer>>,
    /// `--allow-unauthenticated-from`: networks that may send without AUTH. `None`: loopback
    /// clients when there is no users file, nobody when there is one.
    pub unauthenticated: Option<Arc<[IpNet]>>,
}

impl Access {
    /// Whether a client at `peer` may send without authenticating.
    pub fn may_skip_auth(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        match &self.unauthenticated {
            Some(nets) => nets.iter().any(|n| n.contains(&peer)),
            None => self.users.is_none() && is_loopback(peer),
        }
    }

    /// Whether a client at `peer` is served at all (else `554 5.7.1` and the connection closes).
    pub fn admits(&self, peer: IpAddr) -> bool {
        self.users.is_some() || self.may_skip_auth(peer)
    }

    /// Whether a client at `peer` must authenticate before `MAIL`.
    pub fn auth_required(&self, peer: IpAddr) -> bool {
        self.users.is_some() && !self.may_skip_auth(peer)
    }

    /// Whether AUTH is offered to (and accepted from) a client at `peer`: only inside TLS or on
    /// loopback, so passwords never cross a network in clear.
    pub fn auth_offered(&self, peer: IpAddr, tls_active: bool) -> bool {
        self.users.is_some() && (tls_active || is_loopback(peer))
    }
}

impl Access {
    /// Loads the users file and the certificate named in `config`.
    pub fn load(config: &AccessConfig) -> Result<Self, AccessError> {
        let users = match &config.auth_users {
            Some(path) => {
                let users = Users::load(path)?;
                if users.is_empty() {
                    return Err(UsersError::NoUsers(path.clone()).into());
                }
                Some(Arc::new(users))
            }
            None => None,
        };
        let tls = match &config.tls {
            Some((cert, key)) => Some(Arc::new(TlsServer::load(cert, key)?)),
            None => None,
        };
        Ok(Self { users, tls, unauthenticated: config.allow_unauthenticated.clone().map(Into::into) })
    }

    /// Logs the policy at start-up; letting clients send without AUTH from a network is a
    /// warning every time.
    pub fn log_policy(&self) {
        if let Some(tls) = &self.tls {
            tracing::info!(cert = %tls.files()[0].display(), "STARTTLS offered to clients");
        }
        if let Some(users) = &self.users {
            tracing::info!(
                users = users.len(),
                file = %users.path().display(),
                "client AUTH (PLAIN, LOGIN) required, offered only inside TLS or on loopback"
            );
        }
        if let Some(nets) = &self.unauthenticated {
            let list = nets.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
            tracing::warn!(
                networks = %list,
                "clients from these networks may send WITHOUT authentication (--allow-unauthenticated-from); \
                 everyone else {}",
                if self.users.is_some() { "must authenticate" } else { "is refused with 554 5.7.1" }
            );
        }
    }
}

/// 127.0.0.0/8, ::1, and IPv4-mapped loopback.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Private, loopback, link-local and shared (CGNAT) ranges: networks that may be allowed to send
/// without AUTH. The whole network must lie inside one of them.
pub fn is_private(net: &IpNet) -> bool {
    const PRIVATE: [&str; 9] = [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    ];
    let net = match net {
        // ::ffff:a.b.c.d/len is the IPv4 network a.b.c.d/(len-96).
        IpNet::V6(v6) if v6.prefix_len() >= 96 && v6.network().to_ipv4_mapped().is_some() => {
            let v4 = v6.network().to_ipv4_mapped().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
            match ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                Ok(n) => IpNet::V4(n),
                Err(_) => return false,
            }
        }
        other => *other,
    };
    PRIVATE.iter().filter_map(|p| p.parse::<IpNet>().ok()).any(|p| p.contains(&net))
}

/// Parses `--allow-unauthenticated-from`: comma-separated networks (`10.0.0.0/8`) or single
/// addresses; each must be private ([`is_private`]).
pub fn parse_networks(list: &str) -> Result<Vec<IpNet>, AccessError> {
    let mut nets = Vec::new();
    for item in list.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(AccessError::EmptyNetwork(list.to_owned()));
        }
        let net = match item.parse::<IpNet>() {
            Ok(n) => n.trunc(),
            Err(_) => match item.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(ip),
                Err(_) => return Err(AccessError::NotANetwork(item.to_owned())),
            },
        };
        if !is_private(&net) {
            return Err(AccessError::PublicNetwork(net));
        }
        nets.push(net);
    }
    Ok(nets)
}

/// The start-up check: refuses a listen address that would make the relay an open relay, or
/// would take passwords over a network in clear.
pub fn check_listen(addrs: &[SocketAddr], access: &Access) -> Result<(), AccessError> {
    let Some(&public) = addrs.iter().find(|a| !is_loopback(a.ip())) else {
        return Ok(());
    };
    if access.users.is_none() && access.unauthenticated.is_none() {
        return Err(AccessError::OpenRelay(public));
    }
    if access.users.is_some() && access.tls.is_none() {
        return Err(AccessError::AuthWithoutTls(public));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_is_127_slash_8_and_ipv6_one_also_mapped() {
        for yes in ["127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip(yes)), "{yes}");
        }
        for no in ["0.0.0.0", "::", "10.0.0.1", "192.168.1.1", "::ffff:10.0.0.1", "fe80::1", "8.8.8.8"] {
            assert!(!is_loopback(ip(no)), "{no}");
        }
    }

    #[test]
    fn only_private_networks_may_skip_auth() {
        let nets = parse_networks("10.0.0.0/8, 192.168.1.7,fd00::/8,127.0.0.0/8, ::ffff:172.16.0.0/108").unwrap();
        assert_eq!(nets.len(), 5);
        assert_eq!(nets[1].to_string(), "192.168.1.7/32");
        assert_eq!(parse_networks("10.1.2.3/8").unwrap()[0].to_string(), "10.0.0.0/8");
        for public in
            ["0.0.0.0/0", "8.8.8.0/24", "10.0.0.0/7", "::/0", "2001:db8::/32", "172.0.0.0/8", "::ffff:8.8.8.8"]
        {
            let e = parse_networks(public).unwrap_err().to_string();
            assert!(e.contains("public"), "{public}: {e}");
        }
        for bad in ["", "10.0.0.0/8,", "ten", "10.0.0.0/33"] {
            assert!(parse_networks(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn per_connection_rules() {
        let open = Access::default();
        assert!(open.admits(ip("127.0.0.1")) && !open.auth_required(ip("127.0.0.1")));
        assert!(!open.admits(ip("10.0.0.5")), "no users file, no allow-list: only loopback");
        assert!(!open.auth_offered(ip("127.0.0.1"), false), "no users, no AUTH");

        let listed = Access { unauthenticated: Some(parse_networks("10.0.0.0/8").unwrap().into()), ..open.clone() };
        assert!(listed.admits(ip("10.9.8.7")) && !listed.auth_required(ip("10.9.8.7")));
        assert!(listed.admits(ip("::ffff:10.9.8.7")), "IPv4-mapped peers on a dual-stack socket");
        assert!(!listed.admits(ip("127.0.0.1")), "the list is the whole list");
        assert!(!listed.admits(ip("192.168.0.1")));
    }

    #[test]
    fn non_loopback_listen_addresses_need_auth_or_an_allow_list() {
        let any: SocketAddr = "0.0.0.0:2525".parse().unwrap();
        let local: SocketAddr = "127.0.0.2:2525".parse().unwrap();
        let v6local: SocketAddr = "[::1]:2525".parse().unwrap();
        let open = Access::default();
        assert!(check_listen(&[local, v6local], &open).is_ok());
        let e = check_listen(&[local, any], &open).unwrap_err().to_string();
        assert!(e.contains("0.0.0.0:2525") && e.contains("open relay"), "{e}");
        let listed = Access { unauthenticated: Some(parse_networks("10.0.0.0/8").unwrap().into()), ..open };
        assert!(check_listen(&[any], &listed).is_ok());
    }
}
