//! New messages handed from the sessions to the delivery worker in memory.
//!
//! A session has the message in memory when its `250` goes out: the bytes it just made durable,
//! their spool header, and on the API path the `/email` requests it built to check Postmark's
//! limits. Handing those over with the queue id spares the worker reading the file back (an
//! open, a read and a checksum, twice: once to schedule it, once to send it) and, on the API
//! path, parsing and converting the message a second time.
//!
//! Such a message is committed without a file of its own (see [`crate::spool::unwritten`]): the
//! journal holds it, and a file is written only if its first delivery attempt does not deliver
//! it, or if it is still pending when the journal is checkpointed. A message that is retried, or
//! that the worker learns of by a rescan or at start-up, is read from disk. What is held in
//! memory is bounded by a [`Budget`] (bytes of raw message plus converted requests); a message
//! that does not fit is written to its file as before and announced by id alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use postmark_server::types::SendEmailRequest;

use crate::spool::{QueueId, StoredMessage};

/// How many bytes of new messages the sessions may hand over in memory at once.
pub const HANDOFF_BYTES: usize = 2 * 1024 * 1024;

/// About the heap memory `requests` hold (their strings), for the budget.
pub fn heap_bytes(requests: &[SendEmailRequest]) -> usize {
    requests
        .iter()
        .map(|r| {
            crate::convert::request_texts(r).map(str::len).sum::<usize>()
                + r.attachments.iter().map(|a| a.content.len()).sum::<usize>()
        })
        .sum()
}

/// A newly queued message, as announced to the worker.
#[derive(Debug)]
pub struct Queued {
    /// Its queue id (the file `queue/<id>.msg` exists and is committed).
    pub id: QueueId,
    /// The message itself, when the budget had room for it.
    pub fresh: Option<Fresh>,
}

impl From<QueueId> for Queued {
    fn from(id: QueueId) -> Self {
        Self { id, fresh: None }
    }
}

/// A message handed over in memory: what the worker would otherwise load from its file.
#[derive(Debug)]
pub struct Fresh {
    /// The message, byte for byte what its file holds.
    pub message: StoredMessage,
    /// Its `/email` requests (API path), as delivery would build them from `message`.
    pub requests: Option<Vec<SendEmailRequest>>,
    _held: Option<Reservation>,
}

impl Fresh {
    /// `message` (and its `requests`), held against `reservation` until dropped.
    pub fn new(message: StoredMessage, requests: Option<Vec<SendEmailRequest>>, reservation: Reservation) -> Self {
        Self { message, requests, _held: Some(reservation) }
    }

    /// A message the worker keeps in memory outside any budget: one whose file could not be
    /// written, so that memory and the journal hold its only copies.
    pub(crate) fn kept(message: StoredMessage) -> Self {
        Self { message, requests: None, _held: None }
    }
}

/// The bound on bytes handed over and not yet taken by the worker.
#[derive(Debug)]
pub struct Budget {
    held: AtomicUsize,
    limit: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(HANDOFF_BYTES)
    }
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { held: AtomicUsize::new(0), limit }
    }

    /// Whether `bytes` more would fit now.
    pub fn has_room(&self, bytes: usize) -> bool {
        self.held.load(Ordering::Relaxed).saturating_add(bytes) <= self.limit
    }

    /// Reserves `bytes`, released when the reservation is dropped; `None` when they do not fit.
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .ok()?;
        Some(Reservation { budget: Arc::clone(self), bytes })
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

/// Bytes of a [`Budget`] held by one message.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_counted_by_its_strings() {
        use postmark_server::types::{EmailAttachment, MessageHeader};
        // 5 + 5 + 7 + 4, a header of 3 + 1, metadata of 1 + 2, an attachment of 5 + 4 + 15.
        let request = SendEmailRequest {
            from: "a@b.c".into(),
            to: "d@e.f".into(),
            cc: None,
            bcc: None,
            subject: Some("subject".into()),
            reply_to: None,
            tag: None,
            text_body: Some("body".into()),
            html_body: None,
            headers: vec![MessageHeader { name: "X-A".into(), value: "1".into() }],
            track_opens: None,
            track_links: None,
            metadata: [("k".to_string(), "vv".to_string())].into(),
            attachments: vec![EmailAttachment {
                name: "a.pdf".into(),
                content: "QUJD".into(),
                content_type: "application/pdf".into(),
                content_id: None,
            }],
            message_stream: None,
        };
        assert_eq!(heap_bytes(std::slice::from_ref(&request)), 5 + 5 + 7 + 4 + 4 + 3 + 5 + 4 + 15);
        assert_eq!(heap_bytes(&[request.clone(), request]), 2 * 52);
        assert_eq!(heap_bytes(&[]), 0);
    }

    #[test]
    fn the_budget_refuses_what_does_not_fit_and_frees_what_is_dropped() {
        let budget = Arc::new(Budget::new(100));
        assert!(budget.has_room(100) && !budget.has_room(101));
        let a = budget.reserve(60).expect("fits");
        assert!(budget.reserve(41).is_none(), "60 + 41 > 100");
        let b = budget.reserve(40).expect("60 + 40 fits exactly");
        assert_eq!(budget.held(), 100);
        assert!(budget.reserve(1).is_none());
        drop(a);
        assert_eq!(budget.held(), 40);
        assert!(budget.reserve(usize::MAX).is_none(), "no overflow");
        drop(b);
        assert_eq!(budget.held(), 0);
    }
}
