//! The delivery worker's per-message lines (`delivered`, `retried`, `dead`), with the fields of
//! [`crate::logging`]: written here once, so the worker stays about delivering.

use super::{addresses_field, from_field, redact, route_field, stream_field};
use crate::spool::{QueueId, StoredMessage};

fn route(msg: &StoredMessage) -> &str {
    route_field(msg.header.routing.as_ref().and_then(|r| r.route.as_deref()))
}

/// `event = "delivered"`: Postmark took the message for `recipients` (`partial`: only for them).
pub fn delivered(msg: &StoredMessage, path: &str, message_id: &str, recipients: &[String], partial: bool) {
    let stream = msg.stream();
    let text = if partial { "delivered to some recipients" } else { "delivered" };
    tracing::info!(
        target: "postmark_relay::delivery",
        event = "delivered",
        queue_id = %msg.id,
        message_id = %message_id,
        size = msg.raw.len(),
        recipients = recipients.len(),
        stream = stream_field(stream.as_deref()),
        route = route(msg),
        path,
        from = from_field(&msg.header.envelope),
        to = addresses_field(recipients),
        "{text}"
    );
}

/// `event = "retried"`: attempt `attempt` failed for now; the next in `retry_in_ms`.
pub fn retried(msg: &StoredMessage, path: &str, attempt: u32, retry_in_ms: u64, error: &str) {
    let stream = msg.stream();
    tracing::info!(
        target: "postmark_relay::delivery",
        event = "retried",
        queue_id = %msg.id,
        size = msg.raw.len(),
        recipients = msg.header.envelope.rcpt_to.len(),
        stream = stream_field(stream.as_deref()),
        route = route(msg),
        path,
        attempt,
        retry_in_ms,
        from = from_field(&msg.header.envelope),
        to = addresses_field(&msg.header.envelope.rcpt_to),
        error = %redact(error),
        "deferred"
    );
}

/// `event = "dead"`: given up for `recipients` (a copy `dead_id` for some of them, else the
/// whole message).
pub fn dead(
    msg: &StoredMessage,
    path: &str,
    dead_id: Option<&QueueId>,
    recipients: &[String],
    error: &str,
    attempts: u32,
) {
    let stream = msg.stream();
    let text = if dead_id.is_some() { "dead letter for some recipients" } else { "dead letter" };
    tracing::info!(
        target: "postmark_relay::delivery",
        event = "dead",
        queue_id = %msg.id,
        dead_id = dead_id.map(QueueId::as_str),
        size = msg.raw.len(),
        recipients = recipients.len(),
        stream = stream_field(stream.as_deref()),
        route = route(msg),
        path,
        attempts,
        from = from_field(&msg.header.envelope),
        to = addresses_field(recipients),
        error = %redact(error),
        "{text}"
    );
}
