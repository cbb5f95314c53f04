//! The fakes end to end: real JSON over HTTP to `FakeApi`, real SMTP to `FakeSmtp`, all on loopback.

mod api;
mod smtp;
