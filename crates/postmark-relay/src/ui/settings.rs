//! The UI's settings (`--ui`, `ui_allow`, `ui_actions`, the access token) and the bind rule.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::secrets::Secret;

/// Where the UI listens in dry-run when nothing says otherwise: the port mail catchers use.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8025";

/// What the UI serves and who may use it.
#[derive(Debug, Clone)]
pub struct UiSettings {
    /// `--ui ADDR` (`RELAY_UI`, `ui`), or [`DEFAULT_ADDR`] in dry-run.
    pub addr: String,
    /// True when the address is the dry-run default rather than a setting: a port already taken
    /// is then a warning, not a start-up error.
    pub by_default: bool,
    /// `ui_allow` (`RELAY_UI_ALLOW`): networks (besides loopback) that may use the UI; needed to
    /// bind a non-loopback address.
    pub allow: Vec<IpNet>,
    /// `ui_actions = true` (`RELAY_UI_ACTIONS`): deleting and releasing messages; also needs
    /// [`UiSettings::token`].
    pub actions: bool,
    /// `RELAY_UI_TOKEN` / `RELAY_UI_TOKEN_FILE` or `ui_token` / `ui_token_file`: the bearer
    /// token the actions require. Never a flag, never logged (its `Debug` is redacted).
    pub token: Option<Secret>,
}

impl UiSettings {
    /// Whether delete and release are served at all.
    pub fn actions_enabled(&self) -> bool {
        self.actions && self.token.is_some()
    }

    /// Whether `peer` may use the UI: loopback always, others only from `ui_allow`.
    pub fn admits(&self, peer: IpAddr) -> bool {
        crate::access::is_loopback(peer) || self.allow.iter().any(|net| net.contains(&canonical(peer)))
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why the UI cannot listen where it is asked to.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BindError {
    /// Not an address with a port.
    #[error("--ui: {0:?} is not an address with a port (e.g. 127.0.0.1:8025)")]
    BadAddress(String),
    /// A non-loopback address without `ui_allow`.
    #[error(
        "refusing to serve the UI on {0}: that is not a loopback address, and the UI shows every message's \
         content. Bind it to 127.0.0.1, or name the networks that may use it with ui_allow = [\"CIDR\", ...] \
         (RELAY_UI_ALLOW)"
    )]
    NotLoopback(SocketAddr),
    /// A `ui_allow` entry that is not a network.
    #[error("ui_allow: {0:?} is not a network (e.g. 10.0.0.0/8 or 192.168.1.7/32)")]
    BadNetwork(String),
}

/// Parses `ui_allow` entries (a bare address counts as a single host).
pub fn parse_allow(list: &[String]) -> Result<Vec<IpNet>, BindError> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| BindError::BadNetwork(s.to_owned()))
        })
        .collect()
}

/// The socket address to bind: refused when it is not loopback and `ui_allow` is empty.
pub fn check_bind(settings: &UiSettings) -> Result<SocketAddr, BindError> {
    let addr: SocketAddr = settings.addr.parse().map_err(|_| BindError::BadAddress(settings.addr.clone()))?;
    if !crate::access::is_loopback(addr.ip()) && settings.allow.is_empty() {
        return Err(BindError::NotLoopback(addr));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(addr: &str, allow: &[&str]) -> UiSettings {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        UiSettings {
            addr: addr.into(),
            by_default: false,
            allow: parse_allow(&allow).unwrap(),
            actions: false,
            token: None,
        }
    }

    #[test]
    fn a_non_loopback_bind_is_refused_without_ui_allow() {
        for addr in ["0.0.0.0:8025", "[::]:8025", "192.168.1.5:8025", "10.0.0.1:80"] {
            let e = check_bind(&settings(addr, &[])).unwrap_err();
            assert!(matches!(e, BindError::NotLoopback(_)), "{addr}: {e}");
            assert!(e.to_string().contains("ui_allow"), "{e}");
        }
        assert_eq!(check_bind(&settings("127.0.0.1:8025", &[])).unwrap().port(), 8025);
        assert!(check_bind(&settings("[::1]:0", &[])).is_ok());
        assert!(check_bind(&settings("0.0.0.0:8025", &["10.0.0.0/8"])).is_ok());
        assert_eq!(check_bind(&settings("localhost", &[])), Err(BindError::BadAddress("localhost".into())));
    }

    #[test]
    fn only_loopback_and_the_allowed_networks_are_admitted() {
        let s = settings("0.0.0.0:8025", &["10.0.0.0/8", "192.168.1.7"]);
        assert!(s.admits("127.0.0.1".parse().unwrap()));
        assert!(s.admits("::1".parse().unwrap()));
        assert!(s.admits("10.2.3.4".parse().unwrap()));
        assert!(s.admits("::ffff:10.2.3.4".parse().unwrap()));
        assert!(s.admits("192.168.1.7".parse().unwrap()));
        assert!(!s.admits("192.168.1.8".parse().unwrap()));
        assert!(!s.admits("8.8.8.8".parse().unwrap()));
        assert_eq!(parse_allow(&["nonsense".into()]), Err(BindError::BadNetwork("nonsense".into())));
    }

    #[test]
    fn actions_need_both_the_switch_and_a_token() {
        let mut s = settings("127.0.0.1:0", &[]);
        assert!(!s.actions_enabled());
        s.actions = true;
        assert!(!s.actions_enabled());
        s.token = Some(Secret::new("t0k3n"));
        assert!(s.actions_enabled());
        s.actions = false;
        assert!(!s.actions_enabled());
        assert!(!format!("{s:?}").contains("t0k3n"));
    }
}
