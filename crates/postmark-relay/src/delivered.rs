//! A bounded, in-memory record of the messages delivered most recently, for the preview UI.
//!
//! The delivery worker pushes one [`Record`] when Postmark accepts a message (or some of its
//! recipients); the UI reads them. Only what the list shows is kept — never the body, never a
//! token — and at most [`Delivered::capacity`] records, the oldest dropped first, so memory stays
//! flat however much mail passes. Nothing is written to disk: the record starts empty at every
//! start of the relay.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::headers::HeaderSection;
use crate::spool::{QueueId, StoredMessage};

/// How many delivered messages are kept by default.
pub const DEFAULT_CAPACITY: usize = 1_000;

/// What is kept of one delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its queue id.
    pub id: QueueId,
    /// When the relay accepted it (ms since the epoch).
    pub received_ms: u64,
    /// When Postmark accepted it (ms since the epoch).
    pub delivered_ms: u64,
    /// The `From` header as written (the envelope sender when there is none).
    pub from: String,
    /// The recipients delivered to (envelope addresses).
    pub recipients: Vec<String>,
    /// The `Subject` header as written.
    pub subject: String,
    /// The message's size in bytes.
    pub size: u64,
    /// Postmark's MessageID (API) or the SMTP reply (SMTP).
    pub reference: String,
}

impl Record {
    /// The record of `msg`, delivered to `recipients` at `delivered_ms` with `reference`.
    pub fn of(msg: &StoredMessage, recipients: &[String], reference: &str, delivered_ms: u64) -> Self {
        let headers = HeaderSection::parse(&msg.raw);
        let from = headers.value("From").unwrap_or_else(|| msg.header.envelope.mail_from.clone());
        Self {
            id: msg.id.clone(),
            received_ms: msg.header.received_ms,
            delivered_ms,
            from,
            recipients: recipients.to_vec(),
            subject: headers.value("Subject").unwrap_or_default(),
            size: msg.header.size,
            reference: reference.to_owned(),
        }
    }
}

/// The last [`Delivered::capacity`] delivered messages, oldest first.
#[derive(Debug)]
pub struct Delivered {
    capacity: usize,
    records: Mutex<VecDeque<Record>>,
}

impl Default for Delivered {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl Delivered {
    /// An empty record holding at most `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, records: Mutex::new(VecDeque::with_capacity(capacity.min(DEFAULT_CAPACITY))) }
    }

    /// How many messages it holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Record>> {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds `record`, dropping the oldest beyond the bound. A message delivered in parts (some
    /// recipients first, the rest after a retry) stays one entry: the recipients are added to it
    /// and the time and reference become the latest.
    pub fn push(&self, record: Record) {
        if self.capacity == 0 {
            return;
        }
        let mut records = self.lock();
        if let Some(at) = records.iter().position(|r| r.id == record.id) {
            let mut earlier = records.remove(at).unwrap_or_else(|| record.clone());
            for r in record.recipients {
                if !earlier.recipients.contains(&r) {
                    earlier.recipients.push(r);
                }
            }
            earlier.delivered_ms = record.delivered_ms;
            earlier.reference = record.reference;
            records.push_back(earlier);
        } else {
            records.push_back(record);
        }
        while records.len() > self.capacity {
            records.pop_front();
        }
    }

    /// The record of `id`, if it is held.
    pub fn get(&self, id: &QueueId) -> Option<Record> {
        self.lock().iter().find(|r| &r.id == id).cloned()
    }

    /// The ids held, in the order delivered (oldest first).
    pub fn ids(&self) -> Vec<QueueId> {
        self.lock().iter().map(|r| r.id.clone()).collect()
    }

    /// The id delivered last, if any (for live updates).
    pub fn newest(&self) -> Option<QueueId> {
        self.lock().back().map(|r| r.id.clone())
    }

    /// How many messages are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Envelope;

    fn message(subject: &str) -> StoredMessage {
        let envelope = Envelope::new("bounce@example.com", ["ann@example.com", "bob@example.com"]);
        let raw = format!("From: Shop <shop@example.com>\r\nSubject: {subject}\r\n\r\nsecret body\r\n").into_bytes();
        let header = crate::spool::Header::new(envelope, &raw);
        StoredMessage { id: QueueId::generate(), header, raw }
    }

    #[test]
    fn only_the_newest_remain_beyond_the_bound() {
        let ring = Delivered::new(3);
        let msgs: Vec<StoredMessage> = (0..5).map(|i| message(&format!("n{i}"))).collect();
        for (i, m) in msgs.iter().enumerate() {
            ring.push(Record::of(m, &m.header.envelope.rcpt_to, &format!("ref-{i}"), i as u64));
        }
        assert_eq!(ring.len(), 3);
        let kept: Vec<QueueId> = msgs[2..].iter().map(|m| m.id.clone()).collect();
        assert_eq!(ring.ids(), kept);
        assert!(ring.get(&msgs[0].id).is_none() && ring.get(&msgs[1].id).is_none());
        let last = ring.get(&msgs[4].id).unwrap();
        assert_eq!((last.subject.as_str(), last.reference.as_str()), ("n4", "ref-4"));
        assert_eq!(last.from, "Shop <shop@example.com>");
        assert!(format!("{last:?}").find("secret body").is_none(), "the body is not kept");
        let none = Delivered::new(0);
        none.push(last);
        assert!(none.is_empty());
    }

    #[test]
    fn a_message_delivered_in_parts_is_one_entry_with_all_its_recipients() {
        let ring = Delivered::new(10);
        let (a, b) = (message("a"), message("b"));
        ring.push(Record::of(&a, &["ann@example.com".into()], "first", 1));
        ring.push(Record::of(&b, &["bob@example.com".into()], "other", 2));
        ring.push(Record::of(&a, &["bob@example.com".into()], "second", 3));
        assert_eq!(ring.ids(), vec![b.id.clone(), a.id.clone()], "the latest delivery is the newest");
        let rec = ring.get(&a.id).unwrap();
        assert_eq!(rec.recipients, ["ann@example.com", "bob@example.com"]);
        assert_eq!((rec.reference.as_str(), rec.delivered_ms), ("second", 3));
    }
}
