//! `stream()` on every Account API listing that pages with `count`/`offset`.
//!
//! ```no_run
//! # use postmark_account::{AccountClient, Error};
//! # async fn demo(client: AccountClient) -> Result<(), Error> {
//! use futures_util::TryStreamExt as _;
//! let servers: Vec<_> = client.list_servers().stream().try_collect().await?;
//! println!("{} servers", servers.len());
//! # Ok(()) }
//! ```

postmark_core::paged_listing! {
    ListServers => Server, servers, None;
    ListDomains => DomainSummary, domains, None;
    ListSenderSignatures => SenderSignatureSummary, sender_signatures, None;
}
