//! End-to-end tests of the relay: a real SMTP client (lettre) in front, the fake Postmark
//! (HTTP API and SMTP endpoint, from postmark-fake) behind, everything on 127.0.0.1.

mod access;
mod api;
mod binary;
mod bodies;
mod dry_run;
mod faults;
mod fidelity;
mod hostile;
mod limits;
mod metrics;
mod process;
mod props_convert;
mod props_session;
mod queue_cli;
mod secrets;
mod smtp;
mod support;
