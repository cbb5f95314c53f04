//! End-to-end tests of the relay: a real SMTP client (lettre) in front, the fake Postmark
//! (HTTP API and SMTP endpoint, from postmark-fake) behind, everything on 127.0.0.1.

mod api;
mod dry_run;
mod limits;
mod process;
mod props_convert;
mod props_session;
mod queue_cli;
mod smtp;
mod support;
