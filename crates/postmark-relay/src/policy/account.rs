//! Reading the account's verified senders with the account token (see [`super::verified`]).

use std::sync::Arc;
use std::time::Duration;

use postmark_account::{AccountClient, AccountClientBuilder, Token};

use super::verified::{SenderList, VerifiedSenders};
use crate::shutdown::ShutdownSignal;

/// Listings are read this many at a time.
const PAGE: i64 = 500;
/// Postmark's listings stop at this offset.
const MAX_OFFSET: i64 = 10_000;

/// An account client for `base_url`.
pub fn client(base_url: &str, token: &Token, timeout: Duration) -> Result<AccountClient, postmark_account::Error> {
    AccountClientBuilder::new(token.clone())
        .base_url(base_url)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("postmark-relay/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Reads every sender signature and domain of the account.
pub async fn load(client: &AccountClient) -> Result<SenderList, postmark_account::Error> {
    let mut list = SenderList::default();
    let mut offset = 0;
    loop {
        let page = client.list_sender_signatures().count(PAGE).offset(offset).send().await?.into_inner();
        let n = page.sender_signatures.len() as i64;
        for s in page.sender_signatures {
            let Some(address) = s.email_address else { continue };
            let address = address.to_ascii_lowercase();
            if s.confirmed == Some(true) {
                list.addresses.insert(address);
            } else {
                list.unconfirmed.insert(address);
            }
        }
        offset += n;
        if n < PAGE || offset >= page.total_count || offset >= MAX_OFFSET {
            break;
        }
    }
    let mut offset = 0;
    loop {
        let page = client.list_domains().count(PAGE).offset(offset).send().await?.into_inner();
        let n = page.domains.len() as i64;
        for d in page.domains {
            if let (Some(name), Some(true)) = (d.name, d.dkim_verified) {
                list.domains.insert(name.to_ascii_lowercase());
            }
        }
        offset += n;
        if n < PAGE || offset >= page.total_count || offset >= MAX_OFFSET {
            break;
        }
    }
    Ok(list)
}

/// Loads the list now and every `every` until shutdown; a load that fails keeps the last good
/// list (and is logged with Postmark's ErrorCode).
pub async fn poll(
    client: AccountClient,
    verified: Arc<VerifiedSenders>,
    every: Duration,
    mut shutdown: ShutdownSignal,
) {
    loop {
        match load(&client).await {
            Ok(list) => {
                tracing::info!(
                    confirmed_signatures = list.addresses.len(),
                    verified_domains = list.domains.len(),
                    "loaded the account's verified senders; other From addresses are refused at DATA"
                );
                verified.set_list(list);
            }
            Err(e) => {
                let kept =
                    if verified.has_list() { "keeping the last list" } else { "no list yet: every sender passes" };
                tracing::warn!(error = %e, "cannot read the account's senders with POSTMARK_ACCOUNT_TOKEN; {kept}");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.wait() => return,
        }
    }
}
