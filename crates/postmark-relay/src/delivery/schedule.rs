//! When each pending message is due: a min-heap of (due time, id) with lazy deletion, so finding
//! the next due message costs O(log n) and the worker sleeps exactly until then.
//!
//! The schedule also keeps the arrival times of its messages (a counted multiset) and publishes
//! the queue depth and the oldest arrival to the metrics on every change, so a scrape never
//! lists the spool.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::spool::QueueId;

/// Scheduling facts about one pending message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When it is due (ms since the Unix epoch); `u64::MAX` while it is being delivered.
    pub due_ms: u64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it stops being retried.
    pub expires_ms: u64,
}

const IN_FLIGHT: u64 = u64::MAX;

/// The schedule of pending messages.
#[derive(Debug, Default)]
pub struct Schedule {
    heap: BinaryHeap<Reverse<(u64, QueueId)>>,
    entries: HashMap<QueueId, Entry>,
    /// Arrival time (ms, from the id) → how many known messages arrived then.
    arrivals: BTreeMap<u64, u32>,
    metrics: Option<Arc<Metrics>>,
}

impl Schedule {
    /// Publishes the queue depth and oldest arrival to `metrics` from now on.
    pub fn observe(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
        self.publish();
    }

    fn publish(&self) {
        if let Some(m) = &self.metrics {
            m.set_queue(self.entries.len(), self.oldest_arrival_ms());
        }
    }

    /// When the oldest known message arrived (ms since the Unix epoch).
    pub fn oldest_arrival_ms(&self) -> Option<u64> {
        self.arrivals.keys().next().copied()
    }

    /// Number of messages known (due, waiting or in flight).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no message is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `id` is known.
    pub fn contains(&self, id: &QueueId) -> bool {
        self.entries.contains_key(id)
    }

    /// The entry of `id`.
    pub fn get(&self, id: &QueueId) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// Adds (or replaces) a message.
    pub fn insert(&mut self, id: QueueId, entry: Entry) {
        if entry.due_ms != IN_FLIGHT {
            self.heap.push(Reverse((entry.due_ms, id.clone())));
        }
        let arrived = id.created_ms();
        if self.entries.insert(id, entry).is_none() {
            *self.arrivals.entry(arrived).or_default() += 1;
            self.publish();
        }
    }

    /// Makes a known message due at `due_ms` (after a failure, or now on request).
    pub fn reschedule(&mut self, id: &QueueId, due_ms: u64) {
        if let Some(entry) = self.entries.get_mut(id) {
            entry.due_ms = due_ms;
            self.heap.push(Reverse((due_ms, id.clone())));
        }
    }

    /// Forgets a message (delivered, dead or gone).
    pub fn remove(&mut self, id: &QueueId) -> Option<Entry> {
        let removed = self.entries.remove(id)?;
        let arrived = id.created_ms();
        if let Some(n) = self.arrivals.get_mut(&arrived) {
            *n -= 1;
            if *n == 0 {
                self.arrivals.remove(&arrived);
            }
        }
        self.publish();
        Some(removed)
    }

    /// Drops heap items that no longer match their entry.
    fn clean_top(&mut self) {
        while let Some(Reverse((due, id))) = self.heap.peek() {
            match self.entries.get(id) {
                Some(e) if e.due_ms == *due => break,
                _ => {
                    self.heap.pop();
                }
            }
        }
    }

    /// When the earliest message is due, if any is waiting.
    pub fn next_due(&mut self) -> Option<u64> {
        self.clean_top();
        self.heap.peek().map(|Reverse((due, _))| *due)
    }

    /// Takes the earliest message due at or before `now_ms`, marking it in flight.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<QueueId> {
        self.clean_top();
        match self.heap.peek() {
            Some(Reverse((due, _))) if *due <= now_ms => {
                let Reverse((_, id)) = self.heap.pop()?;
                if let Some(e) = self.entries.get_mut(&id) {
                    e.due_ms = IN_FLIGHT;
                }
                Some(id)
            }
            _ => None,
        }
    }

    /// Ids of every waiting (not in-flight) message.
    pub fn waiting(&self) -> Vec<QueueId> {
        self.entries.iter().filter(|(_, e)| e.due_ms != IN_FLIGHT).map(|(id, _)| id.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> QueueId {
        QueueId::parse(&format!("{n:024x}")).unwrap()
    }

    fn entry(due: u64) -> Entry {
        Entry { due_ms: due, attempts: 0, expires_ms: u64::MAX - 1 }
    }

    #[test]
    fn pops_in_due_order_and_only_when_due() {
        let mut s = Schedule::default();
        s.insert(id(1), entry(300));
        s.insert(id(2), entry(100));
        s.insert(id(3), entry(200));
        assert_eq!(s.next_due(), Some(100));
        assert_eq!(s.pop_due(50), None);
        assert_eq!(s.pop_due(250), Some(id(2)));
        assert_eq!(s.pop_due(250), Some(id(3)));
        assert_eq!(s.pop_due(250), None);
        assert_eq!(s.next_due(), Some(300));
        // In-flight messages stay known but are not due again until rescheduled.
        assert!(s.contains(&id(2)));
        assert_eq!(s.waiting(), vec![id(1)]);
    }

    #[test]
    fn reschedule_supersedes_the_old_time() {
        let mut s = Schedule::default();
        s.insert(id(1), entry(100));
        s.reschedule(&id(1), 500);
        assert_eq!(s.next_due(), Some(500));
        assert_eq!(s.pop_due(400), None);
        assert_eq!(s.pop_due(500), Some(id(1)));
        s.reschedule(&id(1), 50);
        assert_eq!(s.pop_due(60), Some(id(1)));
    }

    #[test]
    fn depth_and_oldest_arrival_are_published_on_every_change() {
        let metrics = Arc::new(Metrics::default());
        let mut s = Schedule::default();
        s.observe(Arc::clone(&metrics));
        let gauge = |m: &Metrics, name: &str| {
            let text = m.render(0x10_000);
            text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ').map(str::to_string)).unwrap()
        };
        // Ids carry their arrival time: 0x8000 ms, 0x9000 ms (twice, with other suffixes).
        let a = QueueId::parse("000000008000000001000000").unwrap();
        let b = QueueId::parse("000000009000000002000000").unwrap();
        let c = QueueId::parse("000000009000000003000000").unwrap();
        s.insert(b.clone(), entry(1));
        s.insert(a.clone(), entry(1));
        s.insert(c.clone(), entry(1));
        s.insert(c.clone(), entry(5)); // a replacement, not a new message
        assert_eq!(gauge(&metrics, "postmark_relay_queue_depth"), "3");
        assert_eq!(s.oldest_arrival_ms(), Some(0x8000));
        assert_eq!(gauge(&metrics, "postmark_relay_oldest_pending_age_seconds"), "32.768");
        s.remove(&a);
        assert_eq!(s.oldest_arrival_ms(), Some(0x9000));
        s.remove(&b);
        assert_eq!(s.oldest_arrival_ms(), Some(0x9000), "c arrived at the same time and is still there");
        assert!(s.remove(&b).is_none());
        assert_eq!(gauge(&metrics, "postmark_relay_queue_depth"), "1");
        s.remove(&c);
        assert_eq!(s.oldest_arrival_ms(), None);
        assert_eq!(gauge(&metrics, "postmark_relay_queue_depth"), "0");
        assert_eq!(gauge(&metrics, "postmark_relay_oldest_pending_age_seconds"), "0.000");
    }

    #[test]
    fn removed_messages_never_pop() {
        let mut s = Schedule::default();
        s.insert(id(1), entry(100));
        s.insert(id(2), entry(200));
        s.remove(&id(1));
        assert_eq!(s.pop_due(1000), Some(id(2)));
        assert_eq!(s.pop_due(1000), None);
        assert_eq!(s.len(), 1);
    }
}
