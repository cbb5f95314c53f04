//! Test support: a fake Postmark on loopback, so that no test ever talks to the real service.
//!
//! * [`http::FakeApi`]: the HTTP API (`/email`, `/email/batch`, canned answers for every other endpoint, token
//!   checks, fault injection), plus paged listings with Postmark's `count`/`offset` rules and a template store
//!   ([`http::FakeApi::serve_list`], [`http::FakeApi::store_templates`]).
//! * `smtp::FakeSmtp`: Postmark's SMTP endpoint (STARTTLS with a test CA generated at run time, AUTH PLAIN/LOGIN,
//!   recording of envelopes and exact bytes).

pub mod http;
pub mod smtp;
pub mod tls;
