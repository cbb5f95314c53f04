//! The durable spool: plain files, made durable before the client hears `250`.
//!
//! Layout under the spool directory:
//!
//! | path | what |
//! | --- | --- |
//! | `tmp/` | messages being written; anything here at start-up was never acknowledged and is removed |
//! | `queue/<id>.msg` | a pending message: envelope and the exact bytes received |
//! | `queue/<id>.state` | advisory retry state (attempts, last error, next attempt); losing it only resets the counters |
//! | `dead/<id>.msg` + `dead/<id>.json` | a dead letter and the reason it was given up |
//! | `quarantine/<id>.msg` + `.json` | files that could not be read back (corrupt or truncated) |
//! | `dry-run/` | what dry-run mode would have sent |
//! | `retry/<id>` | markers left by `postmark-relay queue retry`, picked up by the running relay |
//! | `journal/*.wal` | the group-commit journal: the last second or so of accepted messages (see [`journal`]) |
//! | `spare/` | files of delivered messages, written over by new ones (their old bytes stay until then) |
//! | `relay.lock` | held (advisory `flock`) by the running relay so two relays never share a spool |
//!
//! A message file is described in [`format`]; spares (files of delivered messages, written over by
//! new ones) in the `spares` module.
//!
//! New messages from sessions are made durable by group commit ([`journal`]): one journal append
//! and `fdatasync` covers every message that arrived meanwhile, and the message's own file is
//! synced later, at the segment's checkpoint. A message handed to the delivery worker in memory
//! gets no file at all unless it is still pending at the checkpoint or a delivery attempt fails
//! ([`unwritten`]). [`Spool::store_blocking`] (used by tests and tools)
//! and [`Spool::replace_envelope`] write a single file durably instead: to `tmp/`, fsync'd,
//! renamed into `queue/`, and `queue/` fsync'd. On any failure the file is taken back, so the
//! client's 4xx never leaves a copy behind that would later be delivered as well.
//!
//! **Duplicate window.** A message leaves `queue/` only after Postmark accepted it. If the relay
//! dies (or the answer is lost on the way back) after Postmark accepted the message but before the
//! file was removed (and, for a power cut, its tombstone synced: see [`journal`]), the message is
//! sent again after restart. That is the one window in which a duplicate is possible; delivery is
//! at-least-once.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::clock::now_ms;
use crate::envelope::Envelope;

mod disk;
mod faults;
mod files;
mod format;
pub mod journal;
pub mod maildrop;
mod spares;
mod state;
pub mod unwritten;

pub(crate) use self::files::probe_dir;
use self::files::{create_private_dir, remove_if_exists, sync_dir, write_replace};
pub use self::format::{Header, InvalidQueueId, QueueId, StoredMessage, checksum, checksum_matches};
use self::format::{ID_LEN, encode_head, read_header};
pub use self::journal::{CHECKPOINT_EVERY, Committer, JournalRecovery, MAX_SEGMENT_BYTES, Prepared};
use self::spares::Spares;
use self::state::is_storage_full;
pub use self::state::{Area, DeadReason, Entry, LoadError, RetryState, StoreError};

/// The spool directory.
#[derive(Debug)]
pub struct Spool {
    root: PathBuf,
    /// Files of delivered messages kept in `spare/` for new messages to be written over: on
    /// ext4 creating a file right after deleting many costs far more than renaming one.
    spares: Mutex<Spares>,
    /// Messages committed to the journal whose file was never written (see [`unwritten`]).
    unwritten: Mutex<std::collections::HashSet<QueueId>>,
    /// The running committer, told about unwritten messages delivered (see [`unwritten`]).
    committer: Mutex<Option<std::sync::mpsc::Sender<journal::Work>>>,
    /// Whether new files could be made durable in the spool at the last look (see [`unwritten`]).
    files_ok: std::sync::atomic::AtomicBool,
}

impl Spool {
    /// Opens (creating if needed) the spool at `root`. Does not clean anything up; the running
    /// relay calls [`Spool::recover`] once it holds the lock.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        for dir in ["tmp", "queue", "dead", "quarantine", "dry-run", "retry", "journal", "spare"] {
            create_private_dir(&root.join(dir))?;
        }
        Ok(Self {
            root,
            spares: Mutex::default(),
            unwritten: Mutex::default(),
            committer: Mutex::default(),
            files_ok: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// The spool's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory dry-run output goes to.
    pub fn dry_run_dir(&self) -> PathBuf {
        self.root.join("dry-run")
    }

    /// Takes the spool's lock file so no second relay runs on the same spool. The lock is held as
    /// long as the returned file is open.
    pub fn lock(&self) -> io::Result<File> {
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(self.root.join("relay.lock"))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("the spool {} is in use by another postmark-relay", self.root.display()),
            )),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Removes leftovers of writes that never completed (never acknowledged, so never promised),
    /// and the spare files of an earlier run. Returns how many unfinished writes there were.
    pub fn recover(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(self.root.join("tmp"))? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                disk::remove_file(&entry.path())?;
                removed += 1;
            }
        }
        for entry in fs::read_dir(self.root.join("spare"))? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                disk::remove_file(&entry.path())?;
            }
        }
        Ok(removed)
    }

    fn path(&self, area: Area, id: &QueueId, ext: &str) -> PathBuf {
        self.root.join(area.dir()).join(format!("{id}.{ext}"))
    }

    /// Stores a new message durably and returns its id. Runs on the blocking pool.
    pub async fn store(self: &std::sync::Arc<Self>, envelope: Envelope, raw: Vec<u8>) -> Result<QueueId, StoreError> {
        let spool = std::sync::Arc::clone(self);
        tokio::task::spawn_blocking(move || spool.store_blocking(&envelope, &raw))
            .await
            .map_err(|e| StoreError::Io(io::Error::other(e)))?
    }

    /// Blocking body of [`Spool::store`].
    pub fn store_blocking(&self, envelope: &Envelope, raw: &[u8]) -> Result<QueueId, StoreError> {
        self.store_with_header(&Header::new(envelope.clone(), raw), raw)
    }

    /// Stores a new message with its header (for a message the relay writes itself, such as a
    /// dead-letter notice) durably, one file at a time.
    pub fn store_with_header(&self, header: &Header, raw: &[u8]) -> Result<QueueId, StoreError> {
        let id = QueueId::generate();
        self.write_message(&id, header, raw)?;
        Ok(id)
    }

    /// Writes `queue/<id>.msg` durably (tmp file, fsync, rename, fsync dir). Used for new messages
    /// and to replace the envelope of a partly delivered one.
    fn write_message(&self, id: &QueueId, header: &Header, raw: &[u8]) -> Result<(), StoreError> {
        let tmp = self.root.join("tmp").join(format!("{id}.msg"));
        let dest = self.path(Area::Queue, id, "msg");
        let result = (|| -> io::Result<()> {
            let mut file = disk::create_new(&tmp)?;
            let head = encode_head(header)?;
            disk::write(&mut file, &tmp, &mut [io::IoSlice::new(&head), io::IoSlice::new(raw)])?;
            disk::sync_all(&file, &tmp)?;
            drop(file);
            disk::rename(&tmp, &dest)?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = disk::remove_file(&tmp);
            return Err(StoreError::from_io(e));
        }
        if let Err(e) = sync_dir(&self.root.join("queue")) {
            // The rename may not survive a crash, and the client is about to hear 4xx: take the
            // message back out so it is not delivered as well as resent by the client.
            let _ = disk::remove_file(&dest);
            return Err(StoreError::from_io(e));
        }
        Ok(())
    }

    /// Reads a pending message back, verifying its length and checksum.
    pub fn load(&self, id: &QueueId) -> Result<StoredMessage, LoadError> {
        self.load_from(Area::Queue, id)
    }

    /// Reads a message from either area.
    pub fn load_from(&self, area: Area, id: &QueueId) -> Result<StoredMessage, LoadError> {
        read_message(&self.path(area, id, "msg"), id)
    }

    /// Stores a message under a given id (a message from the maildrop keeps the id `sendmail`
    /// gave it, so importing it twice after a crash stores it once). Returns `false` when a
    /// message with that id is already spooled.
    pub fn store_as(&self, id: &QueueId, header: &Header, raw: &[u8]) -> Result<bool, StoreError> {
        if self.locate(id).is_some() {
            return Ok(false);
        }
        self.write_message(id, header, raw)?;
        Ok(true)
    }

    /// Reads only the header of a message, and checks the file's length against it.
    pub fn peek(&self, area: Area, id: &QueueId) -> Result<Header, LoadError> {
        let path = self.path(area, id, "msg");
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(LoadError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let len = file.metadata()?.len();
        let mut reader = BufReader::new(file);
        let (header, body_start) = read_header(&mut reader)?;
        if len.saturating_sub(body_start) != header.size {
            return Err(LoadError::Corrupt(format!(
                "truncated: {} of {} message bytes present",
                len.saturating_sub(body_start),
                header.size
            )));
        }
        Ok(header)
    }

    /// Ids of every message in an area, sorted (that is, by arrival).
    pub fn ids(&self, area: Area) -> io::Result<Vec<QueueId>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(self.root.join(area.dir()))? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(stem) = name.strip_suffix(".msg")
                && let Some(id) = QueueId::parse(stem)
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Summaries of every message in an area.
    pub fn entries(&self, area: Area) -> io::Result<Vec<Entry>> {
        Ok(self
            .ids(area)?
            .into_iter()
            .map(|id| {
                let header = self.peek(area, &id);
                Entry { id, area, header }
            })
            .collect())
    }

    /// Where a message is, if anywhere.
    pub fn locate(&self, id: &QueueId) -> Option<Area> {
        if self.is_unwritten(id) {
            return Some(Area::Queue);
        }
        self.locate_file(id)
    }

    /// Where a message's file is, if anywhere.
    fn locate_file(&self, id: &QueueId) -> Option<Area> {
        [Area::Queue, Area::Dead].into_iter().find(|&area| self.path(area, id, "msg").exists())
    }

    /// Removes a message Postmark accepted (its file becomes a spare for a new message), and has
    /// the committer record its tombstone, synced with the next group commit or within
    /// [`journal::TOMBSTONE_SYNC_AFTER`]: after a power cut neither its journal record nor a
    /// file whose removal was lost sends it again (see [`journal`]).
    pub fn remove(&self, id: &QueueId) -> io::Result<()> {
        if self.forget_unwritten(id) {
            return Ok(());
        }
        remove_if_exists(&self.path(Area::Queue, id, "state"))?;
        let retired = self.retire(&self.path(Area::Queue, id, "msg"));
        // After the rename: the checkpoint that deletes the tombstone's segment syncs `queue/`
        // first, so the removal is durable by then.
        self.tombstone(id);
        retired
    }

    /// Deletes a message from whichever area holds it. Returns the area, or `None` if unknown.
    /// A message without a file (being delivered from memory) is not found, as from another
    /// process.
    pub fn purge(&self, id: &QueueId) -> io::Result<Option<Area>> {
        let Some(area) = self.locate_file(id) else {
            return Ok(None);
        };
        remove_if_exists(&self.path(area, id, "msg"))?;
        remove_if_exists(&self.path(area, id, "state"))?;
        remove_if_exists(&self.path(area, id, "json"))?;
        remove_if_exists(&self.root.join("retry").join(id.as_str()))?;
        Ok(Some(area))
    }

    /// Reads the retry state of a pending message (default if none was written).
    pub fn state(&self, id: &QueueId) -> RetryState {
        fs::read(self.path(Area::Queue, id, "state"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Records the retry state of a pending message (advisory: written atomically, not fsync'd).
    pub fn save_state(&self, id: &QueueId, state: &RetryState) -> io::Result<()> {
        let bytes = serde_json::to_vec(state).map_err(io::Error::other)?;
        write_replace(&self.path(Area::Queue, id, "state"), &bytes, false)
    }

    /// Replaces the envelope of a pending message (after some recipients were delivered or
    /// given up), keeping its bytes. Durable, like [`Spool::store`].
    pub fn replace_envelope(&self, msg: &StoredMessage, envelope: Envelope) -> Result<(), StoreError> {
        let header = Header { envelope, ..msg.header.clone() };
        self.write_message(&msg.id, &header, &msg.raw)
    }

    /// Moves a pending message to `dead/` with the reason.
    pub fn kill(&self, id: &QueueId, reason: &DeadReason) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(reason).map_err(io::Error::other)?;
        write_replace(&self.path(Area::Dead, id, "json"), &bytes, true)?;
        disk::rename(&self.path(Area::Queue, id, "msg"), &self.path(Area::Dead, id, "msg"))?;
        sync_dir(&self.root.join("dead"))?;
        remove_if_exists(&self.path(Area::Queue, id, "state"))
    }

    /// Stores a dead-letter copy of a message for a subset of its recipients (under a new id),
    /// leaving the pending message alone. Returns the new id.
    pub fn kill_copy(&self, msg: &StoredMessage, envelope: Envelope, reason: &DeadReason) -> io::Result<QueueId> {
        let id = QueueId::generate();
        let header = Header { envelope, ..msg.header.clone() };
        let bytes = serde_json::to_vec_pretty(reason).map_err(io::Error::other)?;
        write_replace(&self.path(Area::Dead, &id, "json"), &bytes, true)?;
        let mut data = encode_head(&header)?;
        data.extend_from_slice(&msg.raw);
        write_replace(&self.path(Area::Dead, &id, "msg"), &data, true)?;
        Ok(id)
    }

    /// The reason a dead letter was given up.
    pub fn dead_reason(&self, id: &QueueId) -> Option<DeadReason> {
        fs::read(self.path(Area::Dead, id, "json")).ok().and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Moves a dead letter back into the queue with fresh retry state. Returns false if `id` is
    /// not a dead letter.
    pub fn revive(&self, id: &QueueId) -> io::Result<bool> {
        let from = self.path(Area::Dead, id, "msg");
        if !from.exists() {
            return Ok(false);
        }
        let state = RetryState { revived_ms: Some(now_ms()), ..RetryState::default() };
        self.save_state(id, &state)?;
        disk::rename(&from, &self.path(Area::Queue, id, "msg"))?;
        sync_dir(&self.root.join("queue"))?;
        remove_if_exists(&self.path(Area::Dead, id, "json"))?;
        Ok(true)
    }

    /// Moves an unreadable message aside so it no longer blocks the queue.
    pub fn quarantine(&self, area: Area, id: &QueueId, reason: &str) -> io::Result<PathBuf> {
        let dir = self.root.join("quarantine");
        let dest = dir.join(format!("{id}.msg"));
        let note = serde_json::json!({ "reason": reason, "quarantined_ms": now_ms() });
        write_replace(&dir.join(format!("{id}.json")), note.to_string().as_bytes(), false)?;
        disk::rename(&self.path(area, id, "msg"), &dest)?;
        remove_if_exists(&self.path(area, id, "state"))?;
        Ok(dest)
    }

    /// Asks a running relay to retry `id` now (it picks the marker up on its next scan).
    pub fn request_retry(&self, id: &QueueId) -> io::Result<()> {
        write_replace(&self.root.join("retry").join(id.as_str()), b"", false)
    }

    /// Takes every retry marker, returning the ids they name.
    pub fn take_retry_requests(&self) -> io::Result<Vec<QueueId>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(self.root.join("retry"))? {
            let entry = entry?;
            let name = entry.file_name();
            let _ = disk::remove_file(&entry.path());
            if let Some(id) = name.to_str().and_then(QueueId::parse) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Writes a dry-run output file (atomic, not fsync'd) and returns its path.
    pub fn write_dry_run(&self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let path = self.dry_run_dir().join(name);
        write_replace(&path, bytes, false)?;
        Ok(path)
    }
}

/// Reads a spool-format file (magic, header line, message), verifying its length and checksum.
pub(crate) fn read_message(path: &Path, id: &QueueId) -> Result<StoredMessage, LoadError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(LoadError::NotFound),
        Err(e) => return Err(e.into()),
    };
    let mut reader = BufReader::new(file);
    let (header, _) = read_header(&mut reader)?;
    let mut raw = Vec::with_capacity(usize::try_from(header.size).unwrap_or(0));
    reader.read_to_end(&mut raw)?;
    if raw.len() as u64 != header.size {
        return Err(LoadError::Corrupt(format!("truncated: {} of {} message bytes present", raw.len(), header.size)));
    }
    if !checksum_matches(&raw, &header.checksum) {
        return Err(LoadError::Corrupt("checksum mismatch".into()));
    }
    Ok(StoredMessage { id: id.clone(), header, raw })
}

#[cfg(test)]
mod tests {
    use super::spares::{MAX_SPARE_BYTES, MAX_SPARES};
    use super::*;

    fn spool() -> (tempfile::TempDir, Spool) {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path().join("spool")).unwrap();
        (dir, spool)
    }

    fn env() -> Envelope {
        Envelope::new("s@example.com", ["a@example.com", "b@example.com"])
    }

    #[test]
    fn spares_are_bounded_in_count_and_bytes_and_dropped_on_demand() {
        let (_d, spool) = spool();
        let make = |name: &str, len: u64| {
            let path = spool.root().join("tmp").join(name);
            File::create(&path).unwrap().set_len(len).unwrap(); // sparse: no real disk use
            path
        };
        let spare_count = || fs::read_dir(spool.root().join("spare")).unwrap().count();
        // A file that alone exceeds the byte budget is deleted, not kept.
        let big = make("big", MAX_SPARE_BYTES + 1);
        spool.retire(&big).unwrap();
        assert!(!big.exists());
        assert_eq!(spare_count(), 0);
        // Small files are kept up to MAX_SPARES; the next one is deleted.
        for i in 0..=MAX_SPARES {
            let f = make(&format!("f{i}"), 10);
            spool.retire(&f).unwrap();
            assert!(!f.exists());
        }
        assert_eq!(spare_count(), MAX_SPARES);
        // Retiring a file that is already gone is not an error.
        spool.retire(&spool.root().join("tmp").join("gone")).unwrap();
        // A full disk gives them all back.
        assert_eq!(spool.drop_spares(), MAX_SPARES);
        assert_eq!(spare_count(), 0);
        assert!(spool.take_spare().is_none());
    }

    #[test]
    fn a_message_written_over_a_longer_spare_reads_back_exactly() {
        let (_d, spool) = spool();
        let spool = std::sync::Arc::new(spool);
        let long = vec![b'x'; 5000];
        let id = spool.store_blocking(&env(), &long).unwrap();
        spool.remove(&id).unwrap();
        let raw = b"Subject: short\r\n\r\nb\r\n".to_vec();
        let prepared = spool.prepare(Header::new(env(), &raw), raw.clone()).unwrap();
        let path = prepared.file.clone().expect("a prepared message has a file");
        let file = fs::read(&path).unwrap();
        assert!(file.ends_with(&raw), "the spare's old tail is cut off");
        assert!(path.starts_with(spool.root().join("spare")), "the spare was written over");
    }

    #[test]
    fn ids_are_unique_sortable_and_filename_safe() {
        let ids: Vec<QueueId> = (0..20_000).map(|_| QueueId::generate()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids, "generation order is sort order");
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "unique");
        for id in &ids[..10] {
            assert_eq!(id.as_str().len(), 24);
            assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert_eq!(QueueId::parse(id.as_str()).as_ref(), Some(id));
            assert!(id.created_ms().abs_diff(now_ms()) < 60_000);
        }
        for bad in
            ["", "../../etc/passwd", "0123456789ABCDEF01234567", "0123456789abcdef0123456", "0123456789abcdef012345678"]
        {
            assert!(QueueId::parse(bad).is_none(), "{bad}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn spooled_mail_is_readable_by_the_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let (_d, spool) = spool();
        let id = spool.store_blocking(&env(), b"Subject: x\r\n\r\nb\r\n").unwrap();
        let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(spool.root().join("queue").join(format!("{id}.msg"))), 0o600);
        assert_eq!(mode(spool.root().join("queue")), 0o700);
        assert_eq!(mode(spool.root().join("dead")), 0o700);
    }

    #[test]
    fn a_stored_message_reads_back_exactly() {
        let (_d, spool) = spool();
        let raw = b"Subject: x\r\n\r\n\x00\xff binary \r\n".to_vec();
        let id = spool.store_blocking(&env(), &raw).unwrap();
        let msg = spool.load(&id).unwrap();
        assert_eq!(msg.raw, raw);
        assert_eq!(msg.header.envelope, env());
        assert_eq!(msg.header.size, raw.len() as u64);
        assert_eq!(spool.peek(Area::Queue, &id).unwrap(), msg.header);
        assert_eq!(spool.ids(Area::Queue).unwrap(), vec![id.clone()]);
        assert!(fs::read_dir(spool.root().join("tmp")).unwrap().next().is_none());
    }

    #[test]
    fn truncated_and_corrupt_files_are_detected() {
        let (_d, spool) = spool();
        let id = spool.store_blocking(&env(), b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let path = spool.root().join("queue").join(format!("{id}.msg"));
        let full = fs::read(&path).unwrap();

        fs::write(&path, &full[..full.len() - 3]).unwrap();
        assert!(matches!(spool.load(&id), Err(LoadError::Corrupt(r)) if r.contains("truncated")));
        assert!(matches!(spool.peek(Area::Queue, &id), Err(LoadError::Corrupt(_))));

        let mut flipped = full.clone();
        *flipped.last_mut().unwrap() ^= 0x20;
        fs::write(&path, &flipped).unwrap();
        assert!(matches!(spool.load(&id), Err(LoadError::Corrupt(r)) if r.contains("checksum")));

        fs::write(&path, b"PMRELAY1\n{not json").unwrap();
        assert!(matches!(spool.load(&id), Err(LoadError::Corrupt(_))));
        fs::write(&path, b"").unwrap();
        assert!(matches!(spool.load(&id), Err(LoadError::Corrupt(_))));
        fs::write(&path, b"GARBAGE!!\nmore").unwrap();
        assert!(matches!(spool.load(&id), Err(LoadError::Corrupt(_))));

        let dest = spool.quarantine(Area::Queue, &id, "test").unwrap();
        assert!(dest.exists());
        assert!(spool.ids(Area::Queue).unwrap().is_empty());
        assert!(matches!(spool.load(&id), Err(LoadError::NotFound)));
    }

    #[test]
    fn recover_removes_unacknowledged_partial_writes_only() {
        let (_d, spool) = spool();
        let id = spool.store_blocking(&env(), b"Subject: x\r\n\r\nb\r\n").unwrap();
        fs::write(spool.root().join("tmp").join("partial.msg"), b"PMRELAY1\n{").unwrap();
        assert_eq!(spool.recover().unwrap(), 1);
        assert_eq!(spool.ids(Area::Queue).unwrap(), vec![id]);
    }

    #[test]
    fn dead_letters_can_be_revived_and_purged() {
        let (_d, spool) = spool();
        let id = spool.store_blocking(&env(), b"Subject: x\r\n\r\nb\r\n").unwrap();
        spool.save_state(&id, &RetryState { attempts: 2, ..RetryState::default() }).unwrap();
        let reason = DeadReason { reason: "ErrorCode 406".into(), dead_ms: now_ms(), attempts: 3, recipients: vec![] };
        spool.kill(&id, &reason).unwrap();
        assert_eq!(spool.locate(&id), Some(Area::Dead));
        assert_eq!(spool.dead_reason(&id), Some(reason));
        assert!(!spool.root().join("queue").join(format!("{id}.state")).exists());

        assert!(spool.revive(&id).unwrap());
        assert_eq!(spool.locate(&id), Some(Area::Queue));
        let state = spool.state(&id);
        assert_eq!(state.attempts, 0);
        assert!(state.revived_ms.is_some());
        assert!(spool.load(&id).is_ok());
        assert!(!spool.revive(&id).unwrap(), "not dead any more");

        assert_eq!(spool.purge(&id).unwrap(), Some(Area::Queue));
        assert_eq!(spool.locate(&id), None);
        assert_eq!(spool.purge(&id).unwrap(), None);
    }

    #[test]
    fn a_dead_copy_for_some_recipients_keeps_the_original() {
        let (_d, spool) = spool();
        let id = spool.store_blocking(&env(), b"Subject: x\r\n\r\nb\r\n").unwrap();
        let msg = spool.load(&id).unwrap();
        let reason = DeadReason {
            reason: "550".into(),
            dead_ms: now_ms(),
            attempts: 1,
            recipients: vec!["b@example.com".into()],
        };
        let dead = spool.kill_copy(&msg, Envelope::new("s@example.com", ["b@example.com"]), &reason).unwrap();
        assert_ne!(dead, id);
        let copy = spool.load_from(Area::Dead, &dead).unwrap();
        assert_eq!(copy.raw, msg.raw);
        assert_eq!(copy.header.envelope.rcpt_to, ["b@example.com"]);
        spool.replace_envelope(&msg, Envelope::new("s@example.com", ["a@example.com"])).unwrap();
        assert_eq!(spool.load(&id).unwrap().header.envelope.rcpt_to, ["a@example.com"]);
    }

    #[test]
    fn retry_markers_round_trip_and_ignore_junk() {
        let (_d, spool) = spool();
        let id = QueueId::generate();
        spool.request_retry(&id).unwrap();
        fs::write(spool.root().join("retry").join("junk"), b"").unwrap();
        assert_eq!(spool.take_retry_requests().unwrap(), vec![id]);
        assert!(spool.take_retry_requests().unwrap().is_empty());
    }

    #[test]
    fn a_second_relay_cannot_lock_the_same_spool() {
        let (_d, spool) = spool();
        let _held = spool.lock().unwrap();
        let other = Spool::open(spool.root()).unwrap();
        let err = other.lock().unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
    }

    #[test]
    fn a_full_disk_is_told_apart_from_other_write_errors() {
        assert!(matches!(
            StoreError::from_io(io::Error::from_raw_os_error(28)), // ENOSPC
            StoreError::Full(_)
        ));
        assert!(matches!(
            StoreError::from_io(io::Error::from_raw_os_error(122)), // EDQUOT
            StoreError::Full(_)
        ));
        assert!(matches!(
            StoreError::from_io(io::Error::from_raw_os_error(5)), // EIO
            StoreError::Io(_)
        ));
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let (_d, spool) = spool();
        let queue = spool.root().join("queue");
        fs::remove_dir(&queue).unwrap();
        fs::write(&queue, b"file in the way").unwrap();
        assert!(matches!(spool.store_blocking(&env(), b"x\r\n"), Err(StoreError::Io(_))));
        assert!(fs::read_dir(spool.root().join("tmp")).unwrap().next().is_none());
    }

    #[tokio::test]
    async fn concurrent_stores_all_land() {
        let (_d, spool) = spool();
        let spool = std::sync::Arc::new(spool);
        let mut tasks = Vec::new();
        for i in 0..32 {
            let spool = std::sync::Arc::clone(&spool);
            tasks.push(tokio::spawn(async move {
                spool.store(env(), format!("Subject: {i}\r\n\r\nb\r\n").into_bytes()).await.unwrap()
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap());
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 32);
        assert_eq!(spool.ids(Area::Queue).unwrap(), ids);
    }
}
