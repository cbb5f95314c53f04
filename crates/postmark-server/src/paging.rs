//! `stream()` on every Server API listing that pages with `count`/`offset`.
//!
//! ```no_run
//! # use postmark_server::{Error, ServerClient};
//! # async fn demo(client: ServerClient) -> Result<(), Error> {
//! use futures_util::TryStreamExt as _;
//! let mut hard = client.list_bounces().type_("HardBounce").fromdate("2026-03-01").stream();
//! while let Some(bounce) = hard.try_next().await? {
//!     println!("{:?} bounced", bounce.email);
//! }
//! # Ok(()) }
//! ```

use postmark_core::paging::MESSAGE_WINDOW;

postmark_core::paged_listing! {
    ListBounces => Bounce, bounces, Some(MESSAGE_WINDOW);
    ListOutboundMessages => OutboundMessage, messages, Some(MESSAGE_WINDOW);
    ListInboundMessages => InboundMessage, inbound_messages, Some(MESSAGE_WINDOW);
    ListOpens => OpenEvent, opens, None;
    ListOpensForMessage => OpenEvent, opens, None;
    ListClicks => ClickEvent, clicks, None;
    ListClicksForMessage => ClickEvent, clicks, None;
    ListTemplates => TemplateSummary, templates, None;
    ListInboundRules => InboundRule, inbound_rules, None;
}
