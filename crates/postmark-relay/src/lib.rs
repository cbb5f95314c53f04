#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod access;
pub mod auth;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod convert;
pub mod delivered;
pub mod delivery;
pub mod envelope;
pub(crate) mod headers;
pub(crate) mod listener;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod probe;
pub mod queue;
pub mod relay;
pub(crate) mod reload;
pub mod repair;
pub mod secrets;
pub mod sendmail;
pub mod session;
pub mod shutdown;
pub mod spool;
pub(crate) mod tls;
pub mod ui;
pub mod validate;

pub use envelope::{Envelope, Via};
pub use relay::{RunningRelay, StartError, start};

/// Helpers for the unit tests.
#[cfg(test)]
pub(crate) mod testing {
    /// An environment of these variables only.
    pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }
}
