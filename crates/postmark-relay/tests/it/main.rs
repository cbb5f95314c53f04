//! End-to-end tests of the relay: a real SMTP client (lettre) in front, the fake Postmark
//! (HTTP API and SMTP endpoint, from postmark-fake) behind, everything on 127.0.0.1.

mod access;
mod api;
mod binary;
mod bodies;
mod check;
mod dry_run;
mod faults;
mod fidelity;
mod help;
mod hostile;
mod interop_sendmail;
mod interop_smtp;
mod layering;
mod limits;
mod metrics;
mod process;
mod props_convert;
mod props_session;
mod queue_cli;
mod recipients;
mod secrets;
mod senders;
mod sendmail;
mod smtp;
mod support;
mod ui;
mod ui_browser;
mod ui_delivered;
