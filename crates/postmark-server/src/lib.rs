#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// The generated code documents what the spec documents; lints on it are not ours to fix.
#[allow(missing_docs, missing_debug_implementations, unused_imports, clippy::all, rust_2018_idioms)]
#[rustfmt::skip]
mod generated;

pub mod attachments;
mod batch;
mod email;
mod paging;
pub mod webhooks;

pub use batch::{BatchItemError, BatchResult, MAX_BATCH};
pub use generated::{ByteStream, Client, ResponseValue, builder, types};
pub use postmark_core::paging::ItemStream;
pub use postmark_core::{
    ApiErrorBody, Error, ErrorCode, FieldError, FieldErrors, Operation, ResultExt, RetryEvent, RetryPolicy, TEST_TOKEN,
    Token, TransportFailure,
};

postmark_core::define_client! {
    /// A client for Postmark's Server API.
    ///
    /// It dereferences to the generated [`Client`], so every operation is a method:
    /// `client.send_email().body(email).send().await?`. The server token is only ever put in a sensitive
    /// header; `Debug` shows the base URL only.
    client: ServerClient,
    api: ServerApi,
    builder: ServerClientBuilder,
    header: "X-Postmark-Server-Token",
    env: "POSTMARK_SERVER_TOKEN",
}
