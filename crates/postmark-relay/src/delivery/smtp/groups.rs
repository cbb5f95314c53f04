//! A message with more recipients than Postmark takes in one (50), over SMTP.

use postmark_core::limits::MAX_RECIPIENTS;

use super::transaction::send_to;
use super::{Connection, Failure};
use crate::delivery::{Outcome, RecipientOutcome};
use crate::spool::StoredMessage;

/// The message on an established connection: one transaction per group of at most Postmark's
/// 50 recipients (its SMTP service builds the same request as the API, and bounces one with
/// more), the same bytes each time. Once a group is delivered, a later failure leaves only the
/// groups not yet delivered to be retried, so nobody gets the message twice.
pub(super) async fn send(conn: &mut Connection, msg: &StoredMessage) -> Result<Outcome, Failure> {
    let rcpt = &msg.header.envelope.rcpt_to;
    if rcpt.len() <= MAX_RECIPIENTS {
        return send_to(conn, msg, rcpt).await;
    }
    let mut all = RecipientOutcome::default();
    for (n, group) in rcpt.chunks(MAX_RECIPIENTS).enumerate() {
        let outcome = match send_to(conn, msg, group).await {
            Ok(outcome) => outcome,
            Err(failure) if all.delivered.is_empty() => return Err(failure),
            // The groups delivered stay delivered; the rest is retried (a reused connection
            // that turns out broken is replaced before the next message).
            Err(Failure::Broken { reason, .. }) => {
                all.retry.extend(rcpt.chunks(MAX_RECIPIENTS).skip(n).flatten().cloned());
                all.retry_reason = format!("upstream SMTP connection failed: {reason}");
                break;
            }
        };
        match all.record(group, outcome) {
            None => {}
            // Nothing delivered yet: pause as for one transaction. Else the rest waits for the
            // next attempt, after the pause.
            Some(reason) if all.delivered.is_empty() => return Ok(Outcome::Operator(reason)),
            Some(reason) => {
                all.retry.extend(rcpt.chunks(MAX_RECIPIENTS).skip(n).flatten().cloned());
                all.retry_reason = reason;
                break;
            }
        }
    }
    Ok(match (all.retry.is_empty(), all.failed.is_empty()) {
        (true, true) => Outcome::Delivered { reference: all.reference },
        _ => Outcome::PerRecipient(all),
    })
}
