//! Which `From` addresses Postmark will send from, known before a message is accepted.
//!
//! * **With an account token** (`POSTMARK_ACCOUNT_TOKEN`), the relay reads the account's sender
//!   signatures and domains at start and every `sender_refresh` (10 minutes); a `From` that is
//!   neither a confirmed sender signature nor on a domain whose DKIM is verified is refused at the
//!   end of `DATA`. A refresh that fails keeps the last list that loaded.
//! * **Without one**, the relay learns from Postmark's answers: a send refused with ErrorCode 400
//!   (no sender signature for the From) or 401 (signature not confirmed) marks that sender for
//!   [`LEARNED_FOR`]; its further messages are refused before `250` instead of becoming dead
//!   letters.
//!
//! Until a list has loaded and nothing is learned, every sender passes.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use std::time::Duration;

/// How long a sender Postmark refused stays refused without an account token.
pub const LEARNED_FOR: Duration = Duration::from_secs(15 * 60);

/// Where to verify a sender, for the refusal text.
const WHERE: &str = "verify it in Postmark (Sender Signatures: a confirmed signature, or a domain with DKIM verified)";

/// The account's senders, as last loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderList {
    /// Confirmed sender signatures (lower case).
    pub addresses: HashSet<String>,
    /// Sender signatures not confirmed yet (lower case), to say so in the refusal.
    pub unconfirmed: HashSet<String>,
    /// Domains whose DKIM is verified (lower case).
    pub domains: HashSet<String>,
}

#[derive(Debug, Default)]
struct State {
    list: Option<SenderList>,
    learned: HashMap<String, (u64, String)>,
}

/// Why Postmark will not send from an address, with what to verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unverified(pub String);

/// See the module documentation.
#[derive(Debug, Default)]
pub struct VerifiedSenders {
    state: RwLock<State>,
}

impl VerifiedSenders {
    /// Replaces the list with one just loaded.
    pub fn set_list(&self, list: SenderList) {
        let mut state = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.list = Some(list);
        // The account is the authority now; what was learned may be stale.
        state.learned.clear();
    }

    /// Whether a list has loaded.
    pub fn has_list(&self) -> bool {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner).list.is_some()
    }

    /// Whether a list has loaded or a refusal was learned (else every sender passes unread).
    pub fn knows_anything(&self) -> bool {
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.list.is_some() || !state.learned.is_empty()
    }

    /// Remembers that Postmark refused `address` as a sender (ErrorCode `code`, with `message`).
    pub fn learn(&self, address: &str, code: i64, message: &str, now_ms: u64) {
        let until = now_ms + LEARNED_FOR.as_millis() as u64;
        let reason = format!("Postmark refused mail from {address} (ErrorCode {code}: {})", message.trim());
        tracing::warn!(code, "sender refused by Postmark; its further messages are refused at DATA for 15 minutes");
        let mut state = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Expired entries go, so the map holds only the senders refused in the last 15 minutes.
        state.learned.retain(|_, (until, _)| *until > now_ms);
        state.learned.insert(address.to_ascii_lowercase(), (until, reason));
    }

    /// `Ok` when Postmark can be expected to send from `address`; else why not.
    pub fn check(&self, address: &str, now_ms: u64) -> Result<(), Unverified> {
        let lower = address.to_ascii_lowercase();
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((until, reason)) = state.learned.get(&lower)
            && *until > now_ms
        {
            return Err(Unverified(format!("{reason}; {WHERE}")));
        }
        let Some(list) = &state.list else { return Ok(()) };
        let domain = lower.rsplit_once('@').map_or("", |(_, d)| d);
        if list.addresses.contains(&lower) || list.domains.contains(domain) {
            return Ok(());
        }
        if list.unconfirmed.contains(&lower) {
            return Err(Unverified(format!(
                "The sender signature {address} is not confirmed yet in Postmark; confirm it (the link in \
                 Postmark's email to that address) or verify DKIM for {domain}"
            )));
        }
        Err(Unverified(format!(
            "Postmark will not send from {address}: it is not a confirmed sender signature and {domain} is not a \
             domain with verified DKIM in this account; {WHERE}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_passes_until_something_is_known() {
        let v = VerifiedSenders::default();
        assert!(v.check("anyone@example.com", 0).is_ok());
        assert!(!v.has_list() && !v.knows_anything());
        v.learn("x@example.com", 400, "no signature", 0);
        assert!(v.knows_anything());
    }

    #[test]
    fn the_list_decides_by_confirmed_address_or_verified_domain() {
        let v = VerifiedSenders::default();
        v.set_list(SenderList {
            addresses: ["app@example.com".to_owned()].into(),
            unconfirmed: ["new@example.net".to_owned()].into(),
            domains: ["verified.example".to_owned()].into(),
        });
        assert!(v.check("App@Example.com", 0).is_ok());
        assert!(v.check("anyone@verified.example", 0).is_ok());
        let e = v.check("new@example.net", 0).unwrap_err().0;
        assert!(e.contains("not confirmed"), "{e}");
        let e = v.check("www-data@host.example", 0).unwrap_err().0;
        assert!(e.contains("host.example") && e.contains("DKIM"), "{e}");
    }

    #[test]
    fn learned_refusals_expire() {
        let v = VerifiedSenders::default();
        v.learn("www-data@host.example", 400, "The 'From' address you supplied is not a Sender Signature", 1000);
        let e = v.check("WWW-DATA@host.example", 2000).unwrap_err().0;
        assert!(e.contains("ErrorCode 400") && e.contains("Sender Signature"), "{e}");
        assert!(v.check("other@host.example", 2000).is_ok());
        let later = 1000 + LEARNED_FOR.as_millis() as u64;
        assert!(v.check("www-data@host.example", later).is_ok());
        v.learn("other@host.example", 401, "not confirmed", later);
        assert_eq!(v.state.read().unwrap().learned.len(), 1, "the expired entry was dropped");
    }
}
