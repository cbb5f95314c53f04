//! Test support: a fake Postmark on loopback, so that no test ever talks to the real service.
//!
//! * [`http::FakeApi`]: the HTTP API (the four send endpoints with Postmark's validation, canned answers for every
//!   other endpoint, token checks, fault injection), plus paged listings with Postmark's `count`/`offset` rules and
//!   a template store ([`http::FakeApi::serve_list`], [`http::FakeApi::store_templates`]).
//! * [`smtp::FakeSmtp`]: Postmark's SMTP endpoint (STARTTLS with a test CA generated at run time, AUTH PLAIN/LOGIN,
//!   recording of envelopes and exact bytes, and for each accepted message whether Postmark would bounce it later
//!   as an `SMTPApiError`).
//! * [`rules`]: Postmark's rules as pure functions, shared by both fakes and callable from property tests.
//!
//! See the crate's README for the list of rules with their sources.

pub mod http;
pub mod load;
pub mod rules;
pub mod smtp;
pub mod tls;
