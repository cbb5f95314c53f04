//! Where the UI finds messages, through the spool's own functions: the dry-run output
//! (`<spool>/dry-run/<id>.json`, `.eml`, `.envelope.json`), the queue with its retry state, the
//! dead letters with their reasons, what a running relay holds only in its journal, and the
//! messages it delivered lately ([`crate::delivered`], in memory only).
//!
//! Memory stays bounded however large the spool is: a page is chosen while the directories are
//! read, keeping at most `limit` ids (never the whole listing), and messages are loaded one at a
//! time.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use crate::delivered::{Delivered, Record};
use crate::envelope::Envelope;
use crate::spool::{Area, QueueId, Spool, StoredMessage};

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Written by dry-run: what would have been sent.
    DryRun,
    /// Pending in `queue/`.
    Queue,
    /// A dead letter in `dead/`.
    Dead,
    /// Pending, held by the running relay with no file yet (its journal shows it).
    Journal,
    /// Delivered lately: only the relay's in-memory record of it is left.
    Delivered,
}

/// A message's state as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Dry-run: written under `dry-run/`, not sent.
    DryRun,
    /// Waiting for its first attempt (or being delivered).
    Pending,
    /// Tried and failed transiently; tried again at `next_attempt_ms`.
    Deferred {
        /// Failed attempts so far.
        attempts: u32,
        /// When the next attempt is due.
        next_attempt_ms: Option<u64>,
        /// The last error, as logged.
        last_error: Option<String>,
    },
    /// Given up.
    Dead {
        /// The reason, as recorded.
        reason: String,
        /// Postmark's ErrorCode, when the reason carries one.
        error_code: Option<i64>,
        /// Attempts made.
        attempts: u32,
    },
    /// Accepted by Postmark.
    Delivered {
        /// When (ms since the epoch).
        delivered_ms: u64,
        /// Postmark's MessageID (API) or SMTP reply.
        reference: String,
    },
}

impl State {
    /// The one-word name (`dry-run`, `pending`, `deferred`, `dead`, `delivered`).
    pub fn name(&self) -> &'static str {
        match self {
            State::DryRun => "dry-run",
            State::Pending => "pending",
            State::Deferred { .. } => "deferred",
            State::Dead { .. } => "dead",
            State::Delivered { .. } => "delivered",
        }
    }
}

/// One message, loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Its queue id.
    pub id: QueueId,
    /// Where it is.
    pub place: Place,
    /// Its state.
    pub state: State,
    /// When the relay accepted it (ms since the epoch).
    pub received_ms: u64,
    /// The message as spooled (for a dry-run message written before the relay kept it: none).
    pub message: Option<StoredMessage>,
    /// The dry-run JSON file as written: the exact `/email` body (API-shaped dry-run only).
    pub dry_run_json: Option<Vec<u8>>,
    /// What is kept of a delivered message (its content is not).
    pub record: Option<Record>,
}

/// Up to `limit` messages older than `before` (all when `None`), newest first. Reads the
/// directories once and keeps at most `limit` ids while doing so. A message both in the spool and
/// in `delivered` (delivered to some recipients, queued for the rest) is listed from the spool.
pub fn page(
    spool: &Spool,
    delivered: &Delivered,
    before: Option<&QueueId>,
    limit: usize,
) -> io::Result<Vec<(QueueId, Place)>> {
    let mut kept: BTreeMap<QueueId, Place> = BTreeMap::new();
    let mut offer = |id: QueueId, place: Place| {
        if limit == 0 || before.is_some_and(|b| &id >= b) || kept.contains_key(&id) {
            return;
        }
        kept.insert(id, place);
        if kept.len() > limit {
            kept.pop_first();
        }
    };
    for (area, place) in [(Area::Dead, Place::Dead), (Area::Queue, Place::Queue)] {
        for_each_id(&spool.root().join(area.dir()), ".msg", &mut |id| offer(id, place))?;
    }
    for_each_id(&spool.dry_run_dir(), "", &mut |id| offer(id, Place::DryRun))?;
    for msg in spool.journal_pending().unwrap_or_default() {
        offer(msg.id, Place::Journal);
    }
    for id in delivered.ids() {
        offer(id, Place::Delivered);
    }
    Ok(kept.into_iter().rev().collect())
}

/// Calls `f` with the id of every file in `dir` named `<id><suffix>` (any suffix after the id
/// when `suffix` is empty). A directory that does not exist yet is empty.
fn for_each_id(dir: &Path, suffix: &str, f: &mut dyn FnMut(QueueId)) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let stem = if suffix.is_empty() { name.split('.').next() } else { name.strip_suffix(suffix) };
        if let Some(id) = stem.and_then(QueueId::parse) {
            f(id);
        }
    }
    Ok(())
}

/// A cheap fingerprint of the spool's contents (entry counts and the newest id of each place),
/// polled for live updates.
pub fn fingerprint(spool: &Spool) -> String {
    let mut out = String::new();
    for dir in [spool.root().join("queue"), spool.root().join("dead"), spool.dry_run_dir()] {
        let (mut count, mut newest) = (0usize, None::<QueueId>);
        let _ = for_each_id(&dir, "", &mut |id| {
            count += 1;
            if newest.as_ref().is_none_or(|n| &id > n) {
                newest = Some(id);
            }
        });
        out.push_str(&format!("{count}:{} ", newest.map(|n| n.to_string()).unwrap_or_default()));
    }
    out
}

/// Where `id` is, if anywhere.
pub fn locate(spool: &Spool, delivered: &Delivered, id: &QueueId) -> Option<Place> {
    match spool.locate(id) {
        Some(Area::Dead) => return Some(Place::Dead),
        Some(Area::Queue) => return Some(Place::Queue),
        _ => {}
    }
    let dir = spool.dry_run_dir();
    if ["json", "eml"].iter().any(|ext| dir.join(format!("{id}.{ext}")).exists()) {
        return Some(Place::DryRun);
    }
    let journal = spool.journal_pending().unwrap_or_default();
    if journal.iter().any(|m| &m.id == id) {
        return Some(Place::Journal);
    }
    delivered.get(id).map(|_| Place::Delivered)
}

/// Loads `id` from `place`.
pub fn load(spool: &Spool, delivered: &Delivered, id: &QueueId, place: Place) -> Result<Loaded, String> {
    let now = crate::clock::now_ms();
    let loaded = |message: Option<StoredMessage>, state: State, dry_run_json: Option<Vec<u8>>| Loaded {
        id: id.clone(),
        place,
        state,
        received_ms: message.as_ref().map_or(id.created_ms(), |m| m.header.received_ms),
        message,
        dry_run_json,
        record: None,
    };
    match place {
        Place::Delivered => {
            let record = delivered.get(id).ok_or_else(|| format!("{id} is no longer in the delivered record"))?;
            let state = State::Delivered { delivered_ms: record.delivered_ms, reference: record.reference.clone() };
            Ok(Loaded { received_ms: record.received_ms, record: Some(record), ..loaded(None, state, None) })
        }
        Place::Queue => {
            let msg = spool.load(id).map_err(|e| e.to_string())?;
            let st = spool.state(id);
            let state = if st.attempts == 0 && st.last_error.is_none() {
                State::Pending
            } else {
                let next = st.next_attempt_ms.filter(|t| *t > now);
                State::Deferred { attempts: st.attempts, next_attempt_ms: next, last_error: st.last_error }
            };
            Ok(loaded(Some(msg), state, None))
        }
        Place::Dead => {
            let msg = spool.load_from(Area::Dead, id).map_err(|e| e.to_string())?;
            let reason = spool.dead_reason(id);
            let (reason, attempts) = reason.map_or(("reason unknown".to_string(), 0), |r| (r.reason, r.attempts));
            let error_code = error_code(&reason);
            Ok(loaded(Some(msg), State::Dead { reason, error_code, attempts }, None))
        }
        Place::Journal => {
            let msg = spool.journal_pending().map_err(|e| e.to_string())?.into_iter().find(|m| &m.id == id);
            let msg = msg.ok_or_else(|| format!("{id} was delivered or got its file meanwhile"))?;
            Ok(loaded(Some(msg), State::Pending, None))
        }
        Place::DryRun => {
            let dir = spool.dry_run_dir();
            let read = |ext: &str| std::fs::read(dir.join(format!("{id}.{ext}"))).ok();
            let json = read("json");
            let message = match (read("eml"), read("envelope.json")) {
                (Some(raw), Some(envelope)) => {
                    let envelope: Envelope = serde_json::from_slice(&envelope).map_err(|e| e.to_string())?;
                    let mut header = crate::spool::Header::new(envelope, &raw);
                    header.received_ms = id.created_ms();
                    Some(StoredMessage { id: id.clone(), header, raw })
                }
                _ => None,
            };
            if json.is_none() && message.is_none() {
                return Err(format!("no dry-run output for {id}"));
            }
            Ok(loaded(message, State::DryRun, json))
        }
    }
}

/// Postmark's ErrorCode in a recorded reason (`… ErrorCode 406 …`, as delivery words it).
pub fn error_code(reason: &str) -> Option<i64> {
    let at = reason.find("ErrorCode")?;
    let digits: String =
        reason[at + 9..].trim_start_matches([' ', ':', '=']).chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool_with(n: usize) -> (tempfile::TempDir, Spool, Vec<QueueId>) {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let env = Envelope::new("a@example.com", ["b@example.com"]);
        let ids = (0..n)
            .map(|i| spool.store_blocking(&env, format!("Subject: {i}\r\n\r\nx\r\n").as_bytes()).unwrap())
            .collect();
        (dir, spool, ids)
    }

    #[test]
    fn pages_go_newest_first_and_hold_at_most_the_limit() {
        let (_dir, spool, ids) = spool_with(7);
        let first = page(&spool, &Delivered::default(), None, 3).unwrap();
        assert_eq!(
            first.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
            vec![ids[6].clone(), ids[5].clone(), ids[4].clone()]
        );
        let next = page(&spool, &Delivered::default(), Some(&first[2].0), 3).unwrap();
        assert_eq!(
            next.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
            vec![ids[3].clone(), ids[2].clone(), ids[1].clone()]
        );
        let last = page(&spool, &Delivered::default(), Some(&next[2].0), 3).unwrap();
        assert_eq!(last.len(), 1);
        assert!(page(&spool, &Delivered::default(), Some(&ids[0]), 3).unwrap().is_empty());
        assert!(first.iter().all(|(_, p)| *p == Place::Queue));
    }

    #[test]
    fn a_message_that_failed_is_deferred_with_its_next_attempt() {
        let (_dir, spool, ids) = spool_with(1);
        assert_eq!(load(&spool, &Delivered::default(), &ids[0], Place::Queue).unwrap().state, State::Pending);
        let next = crate::clock::now_ms() + 60_000;
        let st = crate::spool::RetryState {
            attempts: 2,
            last_error: Some("HTTP 503".into()),
            next_attempt_ms: Some(next),
            revived_ms: None,
        };
        spool.save_state(&ids[0], &st).unwrap();
        let loaded = load(&spool, &Delivered::default(), &ids[0], Place::Queue).unwrap();
        let expected =
            State::Deferred { attempts: 2, next_attempt_ms: Some(next), last_error: Some("HTTP 503".into()) };
        assert_eq!(loaded.state, expected);
        let row = crate::ui::view::summary(&loaded, &[]);
        assert_eq!(row.state, "deferred");
        assert!(
            row.info.starts_with("2 attempt(s); next attempt ")
                && row.info.contains("(in 1m")
                && row.info.ends_with("last error: HTTP 503"),
            "{}",
            row.info
        );
        assert_eq!(row.subject, "0");
        assert_eq!(row.to, ["b@example.com"]);
    }

    #[test]
    fn dead_letters_carry_their_error_code_and_dry_run_files_are_found() {
        let (_dir, spool, ids) = spool_with(2);
        let reason = crate::spool::DeadReason {
            reason: "HTTP 422, ErrorCode 406: You tried to send to recipient(s) that have been marked as inactive."
                .into(),
            dead_ms: 1,
            attempts: 1,
            recipients: vec![],
        };
        spool.kill(&ids[0], &reason).unwrap();
        let dead =
            load(&spool, &Delivered::default(), &ids[0], locate(&spool, &Delivered::default(), &ids[0]).unwrap())
                .unwrap();
        assert!(matches!(dead.state, State::Dead { error_code: Some(406), .. }), "{:?}", dead.state);
        let id = QueueId::generate();
        spool.write_dry_run(&format!("{id}.json"), br#"{"From":"a@example.com"}"#).unwrap();
        assert_eq!(locate(&spool, &Delivered::default(), &id), Some(Place::DryRun));
        let listed = page(&spool, &Delivered::default(), None, 10).unwrap();
        assert_eq!(listed[0], (id.clone(), Place::DryRun));
        assert_eq!(listed.iter().filter(|(_, p)| *p == Place::Dead).count(), 1);
        let loaded = load(&spool, &Delivered::default(), &id, Place::DryRun).unwrap();
        assert!(loaded.message.is_none() && loaded.dry_run_json.is_some());
        assert_eq!(error_code("no code here"), None);
        assert_eq!(error_code("ErrorCode: 300 bad"), Some(300));
    }
}
