#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// The generated code documents what the spec documents; lints on it are not ours to fix.
#[allow(missing_docs, missing_debug_implementations, unused_imports, clippy::all, rust_2018_idioms)]
#[rustfmt::skip]
mod generated;

mod paging;

pub use generated::{ByteStream, Client, ResponseValue, builder, types};
pub use postmark_core::paging::ItemStream;
pub use postmark_core::{
    ApiErrorBody, Error, ErrorCode, FieldError, FieldErrors, Operation, ResultExt, RetryEvent, RetryPolicy, TEST_TOKEN,
    Token, TransportFailure,
};

postmark_core::define_client! {
    /// A client for Postmark's Account API (servers, domains, sender signatures, template push, data removals).
    ///
    /// It dereferences to the generated [`Client`], so every operation is a method:
    /// `client.list_servers().count(10).offset(0).send().await?`. The account token is the most powerful
    /// Postmark credential; this client only ever puts it in a sensitive header, and its `Debug` shows the base URL
    /// only. A [`postmark-server`](https://docs.rs/postmark-server) client is a different type, so a server token
    /// can never be used for an account operation.
    client: AccountClient,
    api: AccountApi,
    builder: AccountClientBuilder,
    header: "X-Postmark-Account-Token",
    env: "POSTMARK_ACCOUNT_TOKEN",
}
