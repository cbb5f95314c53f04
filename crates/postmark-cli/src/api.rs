//! What the generated subcommands call: each API's generated client, builders and types, and progenitor's error.
//! `cargo xtask codegen` points the CLI generator at these paths (`crate::api::server`, `crate::api::account`).

/// The Server API as the generated server subcommands see it.
pub mod server {
    pub use postmark_server::{Client, ResponseValue, builder, types};
    pub use progenitor_client::Error;
}

/// The Account API as the generated account subcommands see it.
pub mod account {
    pub use postmark_account::{Client, ResponseValue, builder, types};
    pub use progenitor_client::Error;
}
