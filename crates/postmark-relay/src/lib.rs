#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod access;
pub mod auth;
pub mod config;
pub mod convert;
pub mod delivery;
pub mod envelope;
pub mod listener;
pub mod metrics;
pub mod queue;
pub mod relay;
pub mod reload;
pub mod repair;
pub mod secrets;
pub mod session;
pub mod shutdown;
pub mod spool;
pub mod tls;
pub mod validate;

pub use envelope::{Envelope, Via};
pub use relay::{RunningRelay, StartError, start};
