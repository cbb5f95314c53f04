//! Group commit: the messages of many sessions made durable by one `fdatasync`.
//!
//! Making each message durable on its own costs two synchronous disk writes (the file, then the
//! directory entry of its rename), and concurrent sessions cannot share them. Instead, sessions
//! hand their messages to one committer thread, which takes everything that is waiting and:
//!
//! 1. writes each message to `tmp/<id>.msg` (page cache only);
//! 2. appends all of them to the current journal segment `journal/<name>.wal` and calls
//!    `fdatasync` once: from here on the batch survives a crash of the process or of the machine;
//! 3. renames each file into `queue/` and answers the sessions, which reply `250`.
//!
//! If step 1 fails for a message, only that message is refused; if step 2 fails, the whole batch
//! is refused (`451`/`452`) and its files are removed, so nothing refused is ever delivered.
//! While one batch is being synced the next one gathers, so the number of syncs per second stays
//! bounded by the disk while the number of messages per sync grows with the load.
//!
//! **Checkpoints.** A segment is closed once it is [`CHECKPOINT_EVERY`] old (or
//! [`MAX_SEGMENT_BYTES`] long). A second thread then fsyncs the files of its messages that are
//! still spooled (usually few: most were delivered meanwhile) and the `queue/` and `dead/`
//! directories, and deletes the segment. A checkpoint never delays a session.
//!
//! **Recovery** ([`Spool::recover_journal`], at start-up, before anything is delivered). Each
//! segment starts with the kernel's boot id. If the machine has not rebooted since the segment
//! was written, the page cache survived, and every file it names is exactly as the dead process
//! left it: the segment is only checkpointed. After a reboot (power loss, kernel crash) the
//! files may be lost or torn, so every message of the segment that is neither a valid file in
//! `queue/`, nor a dead letter, nor marked delivered is written back to `queue/` from the journal.
//!
//! **Tombstones.** Every delivered message gets a *tombstone* (its id) in the journal, appended
//! by the committer after the message's file was retired, and synced by the next group commit or
//! within [`TOMBSTONE_SYNC_AFTER`] (see the `tombstones` module). Recovery neither writes back a
//! message with a tombstone nor keeps its file in `queue/` (a removal the power cut undid); a
//! checkpoint syncs `queue/` before deleting the segment, so those removals are durable by then.
//! After a power cut only a message whose request was in flight (or delivered within the last
//! [`TOMBSTONE_SYNC_AFTER`]) can be sent again: at-least-once, as documented for the spool.
//!
//! **Unwritten messages** (see [`super::unwritten`]). A message the session hands to the worker
//! in memory is committed without a file: step 1 is skipped, and in step 3 it is only marked
//! unwritten. If it is delivered before its segment's checkpoint, its tombstone is all that is
//! needed; otherwise the checkpoint writes its file from the journal record before the segment
//! goes. Recovery writes back every unwritten record that has neither a file nor a tombstone,
//! after a crash of the process as after a reboot.
//!
//! **Bad bytes.** A record that does not check out but is followed by one that does is damage,
//! not a torn tail: it is logged, kept in `quarantine/`, and reading resumes at the next trusted
//! record; a message file damaged without a reboot is kept there too and written again from the
//! journal (see [`JournalRecovery::damaged`]).
//!
//! A segment is `PMWAL2 <boot id>\n` (`PMWAL1` segments of earlier versions are read the same
//! way) followed by records: a little-endian `u64` whose low 62 bits are the payload length and
//! whose top bits mark an unwritten message (bit 63) or a tombstone (bit 62), then the payload:
//! the 24-byte queue id and, but for a tombstone, the complete spool file. A record is trusted
//! only if it is complete and its spool file checks out (magic, length, checksum); reading stops
//! at the first one that is not (a batch torn by a crash was never acknowledged).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{Area, Header, ID_LEN, QueueId, Spool, StoreError, disk, encode_head, is_storage_full, now_ms, sync_dir};

/// How long a journal segment stays open before it is closed and checkpointed; also bounds how
/// much recent traffic a reboot can make the relay send twice.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Tombstones (the marks of delivered messages) wait at most this long for a group commit to
/// sync them before the committer syncs them alone.
pub const TOMBSTONE_SYNC_AFTER: Duration = Duration::from_millis(20);
/// A segment is closed early once it holds this much.
pub const MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Most messages one sync covers (a bound on the latency of the last one in a batch).
const MAX_BATCH_MESSAGES: usize = 1024;
/// Most bytes one sync covers.
const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;

const SEGMENT_MAGIC: &[u8] = b"PMWAL2 ";
/// The magic of segments written by versions without unwritten messages.
const SEGMENT_MAGIC_V1: &[u8] = b"PMWAL1 ";
/// Record flag: the message was committed without a file.
const RECORD_UNWRITTEN: u64 = 1 << 63;
/// Record flag: a tombstone (an unwritten message delivered); the payload is its id alone.
const RECORD_TOMBSTONE: u64 = 1 << 62;
/// The payload length bits of a record's first word.
const RECORD_LEN: u64 = RECORD_TOMBSTONE - 1;
const SEGMENT_EXT: &str = "wal";
/// Boot id written when the kernel does not tell one: never equal to the current one, so such a
/// segment is always replayed.
const UNKNOWN_BOOT: &str = "unknown";

static SEGMENT_SEQUENCE: AtomicU32 = AtomicU32::new(0);

mod recovery;
mod tombstones;
pub use self::recovery::JournalRecovery;
#[cfg(test)]
use self::recovery::read_segment;
use self::recovery::{Record, boot_id, parse_record};
use self::tombstones::{append_tombstones, sync_tombstones};

/// A message written to its own file (a spare, or a new file in `tmp/`) but not yet committed:
/// [`Spool::prepare`] makes one, on the caller's thread, so that sessions write their files in
/// parallel and the committer only appends, syncs and renames. Dropped without being committed,
/// its file becomes a spare. [`Spool::prepare_unwritten`] makes one without a file.
#[derive(Debug)]
pub struct Prepared {
    spool: Arc<Spool>,
    id: QueueId,
    head: Vec<u8>,
    raw: Vec<u8>,
    /// Its file; `None` for a message committed unwritten.
    pub(super) file: Option<PathBuf>,
    published: bool,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if !self.published
            && let Some(file) = &self.file
        {
            let _ = self.spool.retire(file);
        }
    }
}

/// One message waiting for the committer.
pub(super) struct Job {
    prepared: Prepared,
    reply: oneshot::Sender<Result<(QueueId, Vec<u8>), StoreError>>,
}

/// What the committer is asked to do.
pub(super) enum Work {
    /// Commit a message.
    Commit(Job),
    /// Record the tombstone of an unwritten message that was delivered.
    Delivered(QueueId),
    /// Finish: the committer handle is gone.
    Stop,
}

/// The handle sessions store new messages through. Dropping it (with every clone of the
/// acceptor that owns it) stops the committer after its last batch and checkpoints the open
/// segment.
#[derive(Debug)]
pub struct Committer {
    spool: Arc<Spool>,
    jobs: mpsc::Sender<Work>,
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.spool.set_committer(None);
        let _ = self.jobs.send(Work::Stop);
    }
}

impl Committer {
    /// Starts the committer and checkpoint threads for `spool`.
    pub fn start(spool: Arc<Spool>) -> io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Work>();
        let (closed_tx, closed_rx) = mpsc::channel::<Closed>();
        let spare_segment: SpareSegment = Arc::default();
        let checkpoint_spool = Arc::clone(&spool);
        let spare = Arc::clone(&spare_segment);
        let checkpointer = thread::Builder::new().name("spool-checkpoint".into()).spawn(move || {
            // Creating a segment costs two syncs; the checkpoint thread makes the next one ahead
            // of time, so that a session never waits for that.
            let refill = || {
                let mut slot = spare.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if slot.is_none() {
                    *slot = Segment::create(&checkpoint_spool).ok();
                }
            };
            refill();
            // Segments whose checkpoint failed (the spool could not take a file): tried again
            // while the spool takes files, else at the next start.
            let mut failed: Vec<Closed> = Vec::new();
            // Every second, and after every checkpoint: can the spool still take files?
            loop {
                match closed_rx.recv_timeout(CHECKPOINT_EVERY) {
                    Ok(closed) => {
                        if !checkpoint_logged(&checkpoint_spool, &closed) {
                            failed.push(closed);
                        }
                        refill();
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                match checkpoint_spool.probe_files() {
                    Ok(()) => failed.retain(|closed| {
                        let again = checkpoint(&checkpoint_spool, &closed.path, &closed.ids, &closed.unwritten);
                        if again.is_ok() {
                            tracing::info!(segment = %closed.path.display(), "journal checkpoint done on a later try");
                        }
                        again.is_err()
                    }),
                    Err(e) => {
                        tracing::debug!(error = %e, "the spool cannot take files; new messages get theirs at once");
                    }
                }
            }
            if let Some(unused) = spare.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
                let _ = checkpoint(&checkpoint_spool, &unused.path, &[], &[]);
            }
        })?;
        let commit_spool = Arc::clone(&spool);
        thread::Builder::new().name("spool-commit".into()).spawn(move || {
            run(&commit_spool, &rx, &closed_tx, &spare_segment);
            drop(closed_tx);
            let _ = checkpointer.join();
        })?;
        spool.set_committer(Some(jobs.clone()));
        Ok(Self { spool, jobs })
    }

    /// The spool this committer writes to.
    pub fn spool(&self) -> &Arc<Spool> {
        &self.spool
    }

    /// Commits a prepared message: returns its id once it is in the journal and in `queue/`.
    pub async fn commit(&self, prepared: Prepared) -> Result<QueueId, StoreError> {
        self.commit_keeping(prepared).await.map(|(id, _)| id)
    }

    /// [`Committer::commit`], giving the message's bytes back with its id.
    pub async fn commit_keeping(&self, prepared: Prepared) -> Result<(QueueId, Vec<u8>), StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Io(io::Error::other("the spool committer has stopped"));
        self.jobs.send(Work::Commit(Job { prepared, reply })).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Prepares (on the blocking pool) and commits a message.
    pub async fn store(&self, header: Header, raw: Vec<u8>) -> Result<QueueId, StoreError> {
        let spool = Arc::clone(&self.spool);
        let prepared = tokio::task::spawn_blocking(move || spool.prepare(header, raw))
            .await
            .map_err(|e| StoreError::Io(io::Error::other(e)))??;
        self.commit(prepared).await
    }
}

impl Spool {
    /// Writes a new message to a file of its own, without syncing (blocking). Commit the result
    /// with [`Committer::commit`]; only that makes it durable and queues it.
    pub fn prepare(self: &Arc<Self>, header: Header, raw: Vec<u8>) -> Result<Prepared, StoreError> {
        let id = QueueId::generate();
        let written = write_file(self, &id, &header, &raw);
        if written.is_err() {
            self.note_files(false);
        }
        let (head, file) = written.map_err(StoreError::from_io)?;
        Ok(Prepared { spool: Arc::clone(self), id, head, raw, file: Some(file), published: false })
    }

    /// A new message to commit without a file of its own (see [`super::unwritten`]): for one the
    /// caller hands to the delivery worker in memory.
    pub fn prepare_unwritten(self: &Arc<Self>, header: Header, raw: Vec<u8>) -> Result<Prepared, StoreError> {
        let head = encode_head(&header).map_err(StoreError::from_io)?;
        Ok(Prepared { spool: Arc::clone(self), id: QueueId::generate(), head, raw, file: None, published: false })
    }
}

/// A segment being appended to.
struct Segment {
    path: PathBuf,
    file: File,
    len: u64,
    opened: Instant,
    ids: Vec<QueueId>,
    /// Where the records of unwritten messages are: offset and length.
    unwritten: Vec<(QueueId, u64, u64)>,
}

/// A segment created ahead of time, for the committer to take.
type SpareSegment = Arc<std::sync::Mutex<Option<Segment>>>;

/// A closed segment, for the checkpoint thread.
struct Closed {
    path: PathBuf,
    ids: Vec<QueueId>,
    unwritten: Vec<(QueueId, u64, u64)>,
}

impl Segment {
    /// Creates a new segment and makes its directory entry durable.
    fn create(spool: &Spool) -> io::Result<Self> {
        let dir = spool.root.join("journal");
        let seq = SEGMENT_SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{:016x}-{seq:08x}.{SEGMENT_EXT}", now_ms()));
        let mut file = disk::create_new_append(&path)?;
        let result = (|| {
            let mut head = SEGMENT_MAGIC.to_vec();
            head.extend_from_slice(boot_id(&spool.root).as_bytes());
            head.push(b'\n');
            super::faults::charge(&spool.root, head.len() as u64)?;
            disk::write_all(&mut file, &path, &head)?;
            disk::sync_all(&file, &path)?;
            sync_dir(&dir)?;
            Ok(head.len() as u64)
        })();
        match result {
            Ok(len) => Ok(Self { path, file, len, opened: Instant::now(), ids: Vec::new(), unwritten: Vec::new() }),
            Err(e) => {
                let _ = disk::remove_file(&path);
                Err(e)
            }
        }
    }

    fn close(self) -> Closed {
        Closed { path: self.path, ids: self.ids, unwritten: self.unwritten }
    }
}

/// The committer loop: gather what is waiting, commit it, close segments when they are due.
fn run(spool: &Spool, jobs: &mpsc::Receiver<Work>, closed: &mpsc::Sender<Closed>, spare: &SpareSegment) {
    let mut segment: Option<Segment> = None;
    let mut stopping = false;
    // When the oldest tombstone that is not synced yet was appended.
    let mut unsynced: Option<Instant> = None;
    while !stopping {
        let wait = segment.as_ref().map(|s| {
            let close = CHECKPOINT_EVERY.saturating_sub(s.opened.elapsed());
            unsynced.map_or(close, |t| close.min(TOMBSTONE_SYNC_AFTER.saturating_sub(t.elapsed())))
        });
        let first = match wait {
            Some(wait) => match jobs.recv_timeout(wait) {
                Ok(work) => Some(work),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match jobs.recv() {
                Ok(work) => Some(work),
                Err(_) => break,
            },
        };
        if unsynced.is_some_and(|t| t.elapsed() >= TOMBSTONE_SYNC_AFTER) {
            sync_tombstones(&segment, &mut unsynced);
        }
        if segment.as_ref().is_some_and(|s| s.opened.elapsed() >= CHECKPOINT_EVERY || s.len >= MAX_SEGMENT_BYTES) {
            sync_tombstones(&segment, &mut unsynced);
            if let Some(s) = segment.take() {
                let _ = closed.send(s.close());
            }
        }
        let Some(first) = first else { continue };
        let mut batch = Vec::new();
        let mut delivered = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(work) = next.take() {
            match work {
                Work::Commit(job) => {
                    bytes += job.prepared.raw.len();
                    batch.push(job);
                }
                Work::Delivered(id) => delivered.push(id),
                Work::Stop => stopping = true,
            }
            if batch.len() < MAX_BATCH_MESSAGES && bytes < MAX_BATCH_BYTES {
                next = jobs.try_recv().ok();
            }
        }
        if batch.is_empty() && delivered.is_empty() {
            continue;
        }
        if segment.is_none() {
            segment = spare.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            if let Some(s) = &mut segment {
                s.opened = Instant::now();
            }
        }
        if !delivered.is_empty() && append_tombstones(spool, &mut segment, &delivered) && unsynced.is_none() {
            unsynced = Some(Instant::now());
        }
        // The batch's sync covers the tombstones appended before it.
        if !batch.is_empty() && commit(spool, &mut segment, closed, batch) {
            unsynced = None;
        }
    }
    sync_tombstones(&segment, &mut unsynced);
    if let Some(s) = segment.take() {
        let _ = closed.send(s.close());
    }
}

/// Commits one batch: files to `tmp/`, one journal append and sync, renames, answers. Returns
/// whether the journal was appended to and synced.
fn commit(spool: &Spool, segment: &mut Option<Segment>, closed: &mpsc::Sender<Closed>, batch: Vec<Job>) -> bool {
    let mut result = append(spool, segment, closed, &batch);
    if result.as_ref().is_err_and(is_storage_full) && spool.drop_spares() > 0 {
        // The spares held the space the journal needs: try once more without them.
        result = append(spool, segment, closed, &batch);
    }
    if let Err(e) = result {
        for Job { prepared, reply } in batch {
            // Dropping the prepared message turns its file into a spare (before the answer).
            drop(prepared);
            let _ = reply.send(Err(StoreError::from_io(io::Error::new(e.kind(), e.to_string()))));
        }
        return false;
    }
    // Unwritten messages are only marked so; they are in the journal, which is what counts.
    spool.add_unwritten(batch.iter().filter(|j| j.prepared.file.is_none()).map(|j| j.prepared.id.clone()).collect());
    for Job { mut prepared, reply } in batch {
        let p = &mut prepared;
        let published = match &p.file {
            Some(file) => disk::rename(file, &spool.path(Area::Queue, &p.id, "msg")),
            None => Ok(()),
        };
        let result = match published {
            Ok(()) => {
                p.published = true;
                Ok((p.id.clone(), std::mem::take(&mut p.raw)))
            }
            // In the journal but never acknowledged: refusing it is safe (see the module docs).
            Err(e) => {
                spool.note_files(false);
                Err(StoreError::from_io(e))
            }
        };
        // An unpublished file becomes a spare before the session hears the refusal.
        drop(prepared);
        let _ = reply.send(result);
    }
    true
}

/// Writes a message over a spare file, or else to `tmp/<id>.msg`, without syncing. Returns the
/// file's head (magic and header) and where the file is.
fn write_file(spool: &Spool, id: &QueueId, header: &Header, raw: &[u8]) -> io::Result<(Vec<u8>, PathBuf)> {
    let head = encode_head(header)?;
    let len = (head.len() + raw.len()) as u64;
    // One gathered write; a file that was longer (a spare) is cut to the new length.
    let write = |file: &mut File, path: &Path, old_len: u64| -> io::Result<()> {
        disk::write(file, path, &mut [io::IoSlice::new(&head), io::IoSlice::new(raw)])?;
        if old_len > len { disk::set_len(file, path, len) } else { Ok(()) }
    };
    if let Some((spare, spare_len)) = spool.take_spare() {
        let result = disk::open_existing(&spare).and_then(|mut f| write(&mut f, &spare, spare_len));
        match result {
            Ok(()) => return Ok((head, spare)),
            Err(_) => {
                // An unusable spare: drop it and write a new file instead.
                let _ = disk::remove_file(&spare);
            }
        }
    }
    let tmp = spool.root.join("tmp").join(format!("{id}.msg"));
    let attempt = || match super::faults::charge(&spool.root, len)
        .and_then(|()| disk::create_new(&tmp))
        .and_then(|mut f| write(&mut f, &tmp, 0))
    {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = disk::remove_file(&tmp);
            Err(e)
        }
    };
    match attempt() {
        Err(e) if is_storage_full(&e) && spool.drop_spares() > 0 => attempt()?,
        other => other?,
    }
    Ok((head, tmp))
}

/// Appends the batch to the open segment (opening one if needed) and syncs it. On failure the
/// segment is cut back to its last good length, or closed if even that fails.
fn append(
    spool: &Spool,
    segment: &mut Option<Segment>,
    closed: &mpsc::Sender<Closed>,
    batch: &[Job],
) -> io::Result<()> {
    if segment.is_none() {
        *segment = Some(Segment::create(spool)?);
    }
    let Some(seg) = segment.as_mut() else { unreachable!("a segment was just opened") };
    // Each record's length, id and head go into one small buffer; the message bytes are written
    // from where the session left them (one gathered write, no copy of the batch).
    let mut heads = Vec::with_capacity(batch.iter().map(|j| 8 + ID_LEN + j.prepared.head.len()).sum());
    let mut unwritten = Vec::new();
    let mut offset = seg.len;
    for Job { prepared: p, .. } in batch {
        let payload = (ID_LEN + p.head.len() + p.raw.len()) as u64;
        let flags = if p.file.is_none() { RECORD_UNWRITTEN } else { 0 };
        heads.extend_from_slice(&(payload | flags).to_le_bytes());
        heads.extend_from_slice(p.id.as_str().as_bytes());
        heads.extend_from_slice(&p.head);
        if p.file.is_none() {
            unwritten.push((p.id.clone(), offset, 8 + payload));
        }
        offset += 8 + payload;
    }
    let mut slices = Vec::with_capacity(batch.len() * 2);
    let mut rest = heads.as_slice();
    for Job { prepared: p, .. } in batch {
        let (head, after) = rest.split_at(8 + ID_LEN + p.head.len());
        rest = after;
        slices.push(io::IoSlice::new(head));
        slices.push(io::IoSlice::new(&p.raw));
    }
    let total: usize = heads.len() + batch.iter().map(|j| j.prepared.raw.len()).sum::<usize>();
    let written = super::faults::charge(&spool.root, total as u64)
        .and_then(|()| disk::write(&mut seg.file, &seg.path, &mut slices))
        .and_then(|()| disk::sync_data(&seg.file, &seg.path));
    match written {
        Ok(()) => {
            seg.len += total as u64;
            seg.ids.extend(batch.iter().map(|j| j.prepared.id.clone()));
            seg.unwritten.extend(unwritten);
            Ok(())
        }
        Err(e) => {
            // Nothing of this batch was acknowledged; make sure a later batch does not land behind
            // a torn record (reading stops there), or give the segment up.
            if disk::set_len(&seg.file, &seg.path, seg.len)
                .and_then(|()| disk::sync_data(&seg.file, &seg.path))
                .is_err()
                && let Some(s) = segment.take()
            {
                let _ = closed.send(s.close());
            }
            Err(e)
        }
    }
}

/// Checkpoints `closed`; false (with a warning) if that failed.
fn checkpoint_logged(spool: &Spool, closed: &Closed) -> bool {
    match checkpoint(spool, &closed.path, &closed.ids, &closed.unwritten) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(
                segment = %closed.path.display(),
                error = %e,
                "journal checkpoint failed; the segment is kept, tried again while the spool takes files, \
                 and checked at the next start"
            );
            false
        }
    }
}

/// Makes the messages of a closed segment durable in their own files, then deletes the segment.
/// `unwritten` locates the records of messages committed without a file: those still pending get
/// their file from the journal first.
fn checkpoint(spool: &Spool, segment: &Path, ids: &[QueueId], unwritten: &[(QueueId, u64, u64)]) -> io::Result<()> {
    if !unwritten.is_empty() {
        let journal = File::open(segment)?;
        let mut record = Vec::new();
        for (id, offset, len) in unwritten {
            spool.write_unwritten(id, |tmp| {
                record.resize(usize::try_from(*len).map_err(io::Error::other)?, 0);
                journal.read_exact_at(&mut record, *offset)?;
                match parse_record(&record) {
                    Some((Record::Message { id: found, .. }, _)) if &found == id => {
                        // The spool file, as the journal holds it; synced below with the others.
                        let file = &record[8 + ID_LEN..];
                        super::faults::charge(&spool.root, file.len() as u64)?;
                        disk::write_all(&mut disk::create_new(tmp)?, tmp, file)
                    }
                    _ => Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("journal record of {id} does not check out"),
                    )),
                }
            })?;
        }
    }
    for id in ids {
        for area in [Area::Queue, Area::Dead] {
            let path = spool.path(area, id, "msg");
            match File::open(&path) {
                Ok(file) => {
                    disk::sync_all(&file, &path)?;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    sync_dir(&spool.root.join("queue"))?;
    sync_dir(&spool.root.join("dead"))?;
    match disk::remove_file(segment) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    sync_dir(&spool.root.join("journal"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::envelope::Envelope;

    fn spool() -> (tempfile::TempDir, Arc<Spool>) {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path().join("spool")).unwrap());
        (dir, spool)
    }

    fn message(n: usize) -> (Header, Vec<u8>) {
        let raw = format!("Subject: journal {n}\r\n\r\nbody {n}\r\n").into_bytes();
        (Header::new(Envelope::new("s@example.com", [format!("r{n}@example.com")]), &raw), raw)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    /// A segment as a crashed relay would have left it, written under `boot`.
    fn segment_bytes(boot: &str, records: &[(QueueId, Header, Vec<u8>)]) -> Vec<u8> {
        let mut out = format!("PMWAL1 {boot}\n").into_bytes();
        for (id, header, raw) in records {
            let head = encode_head(header).unwrap();
            out.extend_from_slice(&((ID_LEN + head.len() + raw.len()) as u64).to_le_bytes());
            out.extend_from_slice(id.as_str().as_bytes());
            out.extend_from_slice(&head);
            out.extend_from_slice(raw);
        }
        out
    }

    fn records(n: usize) -> Vec<(QueueId, Header, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let (h, r) = message(i);
                (QueueId::generate(), h, r)
            })
            .collect()
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_messages_all_land_in_the_journal_and_the_queue() {
        let (_d, spool) = spool();
        let committer = Arc::new(Committer::start(Arc::clone(&spool)).unwrap());
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..200 {
            let committer = Arc::clone(&committer);
            tasks.spawn(async move {
                let (header, raw) = message(n);
                (committer.store(header, raw.clone()).await.unwrap(), raw)
            });
        }
        let mut stored = Vec::new();
        while let Some(r) = tasks.join_next().await {
            stored.push(r.unwrap());
        }
        for (id, raw) in &stored {
            assert_eq!(&spool.load(id).unwrap().raw, raw, "{id}");
        }
        assert_eq!(spool.ids(Area::Queue).unwrap().len(), 200);
        assert!(names(&spool.root().join("tmp")).is_empty(), "nothing left in tmp/");
        // The open segment holds every acknowledged message, readable back exactly.
        // (Besides it there may be an empty one, made ahead of time for the next second.)
        let journal = spool.root().join("journal");
        let used: Vec<PathBuf> = names(&journal)
            .into_iter()
            .map(|n| journal.join(n))
            .filter(|p| !read_segment(p).unwrap().records.is_empty())
            .collect();
        assert_eq!(used.len(), 1, "{used:?}");
        let contents = read_segment(&used[0]).unwrap();
        assert_eq!(contents.boot_id, boot_id(spool.root()));
        assert_eq!(contents.records.len(), 200);
        assert_eq!(contents.torn_bytes, 0);
        for (id, raw) in &stored {
            assert!(contents.records.iter().any(|(i, _, r, _)| i == id && r == raw), "{id} in the journal");
        }
        // Once the segment is due, it is checkpointed and deleted; the messages stay queued.
        wait_until("the checkpoint", || !used[0].exists());
        assert_eq!(spool.ids(Area::Queue).unwrap().len(), 200);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_delivered_file_is_written_over_by_the_next_message_exactly() {
        use std::os::unix::fs::MetadataExt;
        let (_d, spool) = spool();
        let committer = Committer::start(Arc::clone(&spool)).unwrap();
        let long = b"Subject: long\r\n\r\n".iter().copied().chain(vec![b'x'; 10_000]).collect::<Vec<u8>>();
        let header = Header::new(Envelope::new("s@example.com", ["a@example.com"]), &long);
        let first = committer.store(header, long).await.unwrap();
        let inode = fs::metadata(spool.path(Area::Queue, &first, "msg")).unwrap().ino();
        spool.remove(&first).unwrap();
        assert!(spool.load(&first).is_err(), "delivered: gone from queue/");
        assert_eq!(names(&spool.root().join("spare")).len(), 1, "kept as a spare");
        let (header, raw) = message(2);
        let second = committer.store(header, raw.clone()).await.unwrap();
        let path = spool.path(Area::Queue, &second, "msg");
        assert_eq!(fs::metadata(&path).unwrap().ino(), inode, "the spare was reused");
        let msg = spool.load(&second).unwrap();
        assert_eq!(msg.raw, raw, "no byte of the longer message it replaced is left");
        assert!(names(&spool.root().join("spare")).is_empty());
        // A restart's recovery clears spares left behind.
        spool.remove(&second).unwrap();
        assert_eq!(spool.recover().unwrap(), 0);
        assert!(names(&spool.root().join("spare")).is_empty());
    }

    #[tokio::test]
    async fn dropping_the_committer_checkpoints_the_open_segment() {
        let (_d, spool) = spool();
        let committer = Committer::start(Arc::clone(&spool)).unwrap();
        let (header, raw) = message(1);
        let id = committer.store(header, raw).await.unwrap();
        assert!(!names(&spool.root().join("journal")).is_empty());
        drop(committer);
        wait_until("the final checkpoint", || names(&spool.root().join("journal")).is_empty());
        assert!(spool.load(&id).is_ok());
    }

    #[tokio::test]
    async fn a_batch_that_cannot_be_journaled_is_refused_and_leaves_nothing() {
        let (_d, spool) = spool();
        // A file where the journal directory should be: no segment can be created.
        fs::remove_dir(spool.root().join("journal")).unwrap();
        fs::write(spool.root().join("journal"), b"in the way").unwrap();
        let committer = Committer::start(Arc::clone(&spool)).unwrap();
        let (header, raw) = message(1);
        let err = committer.store(header, raw).await.unwrap_err();
        assert!(matches!(err, StoreError::Io(_)), "{err:?}");
        assert!(spool.ids(Area::Queue).unwrap().is_empty(), "a refused message is never queued");
        assert!(names(&spool.root().join("tmp")).is_empty(), "and leaves nothing in tmp/");
        // Once the directory is back, the next message is stored.
        fs::remove_file(spool.root().join("journal")).unwrap();
        fs::create_dir(spool.root().join("journal")).unwrap();
        let (header, raw) = message(2);
        let id = committer.store(header, raw).await.unwrap();
        assert!(spool.load(&id).is_ok());
    }

    #[test]
    fn after_a_reboot_lost_messages_are_written_back_from_the_journal() {
        let (_d, spool) = spool();
        let recs = records(4);
        // 0: its file survived; 1: lost; 2: torn (its file is shorter than its header says);
        // 3: given up meanwhile (a dead letter).
        spool.write_message(&recs[0].0, &recs[0].1, &recs[0].2).unwrap();
        spool.write_message(&recs[2].0, &recs[2].1, &recs[2].2).unwrap();
        let torn = spool.path(Area::Queue, &recs[2].0, "msg");
        let len = fs::metadata(&torn).unwrap().len();
        File::options().write(true).open(&torn).unwrap().set_len(len - 3).unwrap();
        spool.write_message(&recs[3].0, &recs[3].1, &recs[3].2).unwrap();
        let reason = super::super::DeadReason { reason: "x".into(), dead_ms: 1, attempts: 1, recipients: vec![] };
        spool.kill(&recs[3].0, &reason).unwrap();
        let mut bytes = segment_bytes("00000000-0000-0000-0000-000000000000", &recs);
        bytes.extend_from_slice(b"\x40\x00\x00"); // a torn batch after the last good record
        fs::write(spool.root().join("journal").join("0000000000000001-00000000.wal"), bytes).unwrap();

        let report = spool.recover_journal().unwrap();
        assert_eq!(report, JournalRecovery { segments: 1, replayed: 2, ..JournalRecovery::default() });
        for (id, _, raw) in &recs[..3] {
            assert_eq!(&spool.load(id).unwrap().raw, raw, "{id} is queued intact");
        }
        assert!(spool.load(&recs[3].0).is_err(), "a dead letter is not queued again");
        assert_eq!(spool.locate(&recs[3].0), Some(Area::Dead));
        assert!(names(&spool.root().join("journal")).is_empty(), "the segment is gone");
        // Recovery is idempotent.
        assert_eq!(spool.recover_journal().unwrap(), JournalRecovery::default());
    }

    #[test]
    fn bad_bytes_on_disk_are_kept_in_quarantine_never_delivered_and_never_stop_the_start() {
        let (_d, spool) = spool();
        let recs = records(4);
        for (id, header, raw) in &recs {
            spool.write_message(id, header, raw).unwrap();
        }
        let file = |id: &QueueId| spool.path(Area::Queue, id, "msg");
        // 0: its file has a flipped bit, the process never left it so (same boot).
        let mut bytes = fs::read(file(&recs[0].0)).unwrap();
        *bytes.last_mut().unwrap() ^= 0x04;
        fs::write(file(&recs[0].0), bytes).unwrap();
        // 1: its journal record has a flipped bit (its file is good); 2 follows it, intact.
        let journal = spool.root().join("journal");
        let mut segment = segment_bytes(&boot_id(spool.root()), &recs[..3]);
        let end_of_1 = segment_bytes("x", &recs[..2]).len() - "x".len() + boot_id(spool.root()).len();
        segment[end_of_1 - 5] ^= 0x10;
        fs::write(journal.join("0000000000000001-00000000.wal"), segment).unwrap();
        // 3: a zero-length file left by a power cut; its segment was written before the reboot.
        fs::write(file(&recs[3].0), b"").unwrap();
        fs::write(journal.join("0000000000000002-00000001.wal"), segment_bytes("an-earlier-boot", &recs[3..])).unwrap();
        // A zero-length segment, created just before the cut.
        fs::write(journal.join("0000000000000003-00000002.wal"), b"").unwrap();

        let report = spool.recover_journal().unwrap();
        assert_eq!(report, JournalRecovery { segments: 3, replayed: 2, delivered: 0, damaged: 2 });
        for (id, _, raw) in &recs {
            assert_eq!(&spool.load(id).unwrap().raw, raw, "{id} is queued intact");
        }
        let quarantine = spool.root().join("quarantine");
        assert_eq!(
            names(&quarantine),
            [
                format!("{}.json", recs[0].0),
                format!("{}.msg", recs[0].0),
                format!("{}.journal", recs[1].0),
                format!("{}.json", recs[1].0)
            ]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
        let note = fs::read_to_string(quarantine.join(format!("{}.json", recs[1].0))).unwrap();
        assert!(note.contains("\"good_copy_queued\":true"), "{note}");
        let kept = fs::read(quarantine.join(format!("{}.journal", recs[1].0))).unwrap();
        assert_eq!(&kept[8..8 + ID_LEN], recs[1].0.as_str().as_bytes(), "the damaged record as it was");
        assert!(names(&journal).is_empty());
    }

    #[test]
    fn a_delivered_message_whose_removal_a_power_cut_undid_is_not_sent_again() {
        let (_d, spool) = spool();
        let recs = records(2);
        // Both have files; 0 was delivered (its tombstone synced), but the cut brought its file back.
        for (id, header, raw) in &recs {
            spool.write_message(id, header, raw).unwrap();
        }
        let recs: Vec<_> = recs.into_iter().map(|(id, h, r)| (id, h, r, false)).collect();
        let journal = spool.root().join("journal");
        fs::write(
            journal.join("0000000000000001-00000000.wal"),
            segment_v2("an-earlier-boot", &recs, &[recs[0].0.clone()]),
        )
        .unwrap();
        let report = spool.recover_journal().unwrap();
        assert_eq!(report, JournalRecovery { segments: 1, replayed: 0, delivered: 1, damaged: 0 });
        assert_eq!(spool.ids(Area::Queue).unwrap(), [recs[1].0.clone()]);
    }

    #[tokio::test]
    async fn every_delivered_message_gets_a_synced_tombstone_without_a_batch_to_ride_on() {
        use super::super::faults::model::Op;
        use super::super::faults::power::{Cut, Watch};
        let (_d, spool) = spool();
        let watch = Watch::start(spool.root(), "this-boot", Cut::Never).unwrap();
        let committer = Committer::start(Arc::clone(&spool)).unwrap();
        let (header, raw) = message(1);
        let id = committer.store(header, raw).await.unwrap();
        // Committed with a file: delivered, it gets a tombstone too, and with no batch after it
        // the committer syncs it alone, within TOMBSTONE_SYNC_AFTER.
        spool.remove(&id).unwrap();
        let synced = || {
            let (_, ops) = watch.record();
            let Some(at) = ops.iter().position(|op| {
                matches!(op, Op::Write { data, .. } if data.len() == 8 + ID_LEN && data.ends_with(id.as_str().as_bytes()))
            }) else {
                return false;
            };
            let Op::Write { path, .. } = &ops[at] else { unreachable!() };
            let created = ops[..at].iter().rev().find_map(|op| match op {
                Op::Create(p, ino) if p == path => Some(*ino),
                _ => None,
            });
            ops[at..].iter().any(|op| matches!(op, Op::Sync(i) if Some(*i) == created))
        };
        wait_until("the tombstone written and synced", synced);
        watch.stop();
    }

    #[test]
    fn a_damaged_record_without_a_good_copy_is_not_delivered_and_the_rest_is() {
        let (_d, spool) = spool();
        let recs = records(3);
        let mut segment = segment_bytes("an-earlier-boot", &recs);
        let end_of_0 = segment_bytes("an-earlier-boot", &recs[..1]).len();
        segment[end_of_0 + 40] ^= 0x01;
        let journal = spool.root().join("journal");
        fs::write(journal.join("0000000000000001-00000000.wal"), segment).unwrap();
        let report = spool.recover_journal().unwrap();
        assert_eq!((report.replayed, report.damaged), (2, 1));
        assert_eq!(spool.ids(Area::Queue).unwrap(), [recs[0].0.clone(), recs[2].0.clone()]);
        assert!(spool.root().join("quarantine").join(format!("{}.journal", recs[1].0)).exists());
    }

    #[test]
    fn without_a_reboot_the_journal_is_only_checkpointed() {
        let (_d, spool) = spool();
        let recs = records(2);
        // 0 was delivered (unlinked) before the process died; 1 is still queued.
        spool.write_message(&recs[1].0, &recs[1].1, &recs[1].2).unwrap();
        fs::write(
            spool.root().join("journal").join("0000000000000001-00000000.wal"),
            segment_bytes(&boot_id(spool.root()), &recs),
        )
        .unwrap();
        let report = spool.recover_journal().unwrap();
        assert_eq!(report, JournalRecovery { segments: 1, replayed: 0, ..JournalRecovery::default() });
        assert!(spool.load(&recs[0].0).is_err(), "a delivered message is not sent again");
        assert!(spool.load(&recs[1].0).is_ok());
        assert!(names(&spool.root().join("journal")).is_empty());
    }

    /// A segment of this version: records with their unwritten flag, then tombstones.
    fn segment_v2(boot: &str, records: &[(QueueId, Header, Vec<u8>, bool)], tombstones: &[QueueId]) -> Vec<u8> {
        let mut out = format!("PMWAL2 {boot}\n").into_bytes();
        for (id, header, raw, unwritten) in records {
            let head = encode_head(header).unwrap();
            let len = (ID_LEN + head.len() + raw.len()) as u64;
            out.extend_from_slice(&(len | if *unwritten { RECORD_UNWRITTEN } else { 0 }).to_le_bytes());
            out.extend_from_slice(id.as_str().as_bytes());
            out.extend_from_slice(&head);
            out.extend_from_slice(raw);
        }
        for id in tombstones {
            out.extend_from_slice(&(ID_LEN as u64 | RECORD_TOMBSTONE).to_le_bytes());
            out.extend_from_slice(id.as_str().as_bytes());
        }
        out
    }

    #[tokio::test]
    async fn an_unwritten_message_gets_a_file_only_when_needed_and_a_tombstone_when_delivered() {
        let (_d, spool) = spool();
        let committer = Committer::start(Arc::clone(&spool)).unwrap();
        let mut stored = Vec::new();
        for n in 0..3 {
            let (header, raw) = message(n);
            let prepared = spool.prepare_unwritten(header.clone(), raw.clone()).unwrap();
            let (id, back) = committer.commit_keeping(prepared).await.unwrap();
            assert_eq!(back, raw, "the bytes come back for the worker");
            stored.push(super::super::StoredMessage { id, header, raw });
        }
        let [delivered, retried, pending] = [&stored[0], &stored[1], &stored[2]];
        assert!(names(&spool.root().join("queue")).is_empty(), "no file written");
        assert!(names(&spool.root().join("tmp")).is_empty());
        for m in &stored {
            assert!(spool.is_unwritten(&m.id));
            assert_eq!(spool.locate(&m.id), Some(Area::Queue));
        }

        // Another process (`queue list`, `mailq`) sees them in the journal.
        let other = Spool::open(spool.root()).unwrap();
        let listed =
            |other: &Spool| -> Vec<QueueId> { other.journal_pending().unwrap().into_iter().map(|m| m.id).collect() };
        assert_eq!(listed(&other), stored.iter().map(|m| m.id.clone()).collect::<Vec<_>>());
        let mut listing = Vec::new();
        crate::queue::run(&other, &crate::cli::QueueAction::List, &mut listing).unwrap();
        let listing = String::from_utf8(listing).unwrap();
        assert!(
            listing.contains(&format!("{}  pending", stored[0].id)) && listing.contains("in the journal"),
            "{listing}"
        );
        assert!(listing.contains("3 pending, 0 dead"), "{listing}");
        let mut shown = Vec::new();
        let show = crate::cli::QueueAction::Show { id: stored[1].id.to_string() };
        assert_eq!(crate::queue::run(&other, &show, &mut shown).unwrap(), 0);
        let shown = String::from_utf8(shown).unwrap();
        assert!(
            shown.contains("state:       pending, in the journal") && shown.contains("Subject: journal 1"),
            "{shown}"
        );
        let mut purged = Vec::new();
        let purge = crate::cli::QueueAction::Purge { id: stored[1].id.to_string() };
        assert_eq!(crate::queue::run(&other, &purge, &mut purged).unwrap(), 1);
        assert!(String::from_utf8(purged).unwrap().contains("being delivered by the running relay"));

        // Delivered: forgotten, and a tombstone follows its record in the journal.
        spool.remove(&delivered.id).unwrap();
        assert!(!spool.is_unwritten(&delivered.id));
        let journal = spool.root().join("journal");
        wait_until("the tombstone", || {
            names(&journal).iter().any(|n| read_segment(&journal.join(n)).unwrap().tombstones.contains(&delivered.id))
        });
        assert_eq!(listed(&other), [retried.id.clone(), pending.id.clone()]);

        // Not delivered at the first attempt: the worker has its file written, synced.
        spool.ensure_written(retried).unwrap();
        assert!(!spool.is_unwritten(&retried.id));
        let back = spool.load(&retried.id).unwrap();
        assert_eq!((back.header, back.raw), (retried.header.clone(), retried.raw.clone()));
        assert_eq!(listed(&other), std::slice::from_ref(&pending.id), "with a file, it is listed from queue/");
        spool.ensure_written(retried).unwrap();
        // Delivered at its retry, before the checkpoint: its record could still be written back
        // after a crash, so it gets a tombstone too.
        spool.remove(&retried.id).unwrap();
        assert_eq!(spool.locate(&retried.id), None);
        wait_until("the retried message's tombstone", || {
            names(&journal).iter().any(|n| read_segment(&journal.join(n)).unwrap().tombstones.contains(&retried.id))
        });

        // Still pending at the checkpoint: written from the journal record, then the segment goes.
        wait_until("the checkpoint", || !spool.is_unwritten(&pending.id));
        let back = spool.load(&pending.id).unwrap();
        assert_eq!((back.header, back.raw), (pending.header.clone(), pending.raw.clone()));
        wait_until("the segment deleted", || {
            names(&journal).iter().all(|n| read_segment(&journal.join(n)).unwrap().records.is_empty())
        });
        assert!(spool.load(&delivered.id).is_err(), "a delivered message never gets a file");
        assert_eq!(spool.locate(&delivered.id), None);
        // A file written meanwhile is removed as any other.
        spool.remove(&pending.id).unwrap();
        assert_eq!(spool.locate(&pending.id), None);
    }

    #[tokio::test]
    async fn a_checkpoint_that_cannot_write_a_file_is_tried_again_once_there_is_room() {
        let (_d, spool) = spool();
        let committer = Committer::start(Arc::clone(&spool)).unwrap();
        let (header, raw) = message(1);
        let prepared = spool.prepare_unwritten(header, raw.clone()).unwrap();
        let (id, _) = committer.commit_keeping(prepared).await.unwrap();
        // No room for its file: the checkpoint fails and keeps the segment, and the message is
        // still unwritten, in the journal.
        super::super::faults::set_free(spool.root(), Some(0));
        let journal = spool.root().join("journal");
        let holds = |id: &QueueId| {
            names(&journal).iter().any(|n| read_segment(&journal.join(n)).unwrap().records.iter().any(|r| &r.0 == id))
        };
        thread::sleep(CHECKPOINT_EVERY * 3);
        assert!(spool.is_unwritten(&id));
        assert!(holds(&id), "the segment is kept");
        // Room again: the next try writes the file and lets the segment go.
        super::super::faults::set_free(spool.root(), None);
        wait_until("the checkpoint's second try", || !spool.is_unwritten(&id) && !holds(&id));
        assert_eq!(spool.load(&id).unwrap().raw, raw);
    }

    #[test]
    fn after_a_crash_unwritten_messages_come_back_from_the_journal_unless_delivered() {
        let (_d, spool) = spool();
        let mut recs: Vec<(QueueId, Header, Vec<u8>, bool)> =
            records(4).into_iter().map(|(id, h, r)| (id, h, r, true)).collect();
        // 0: unwritten, pending: comes back. 1: unwritten, delivered (its tombstone is in the next
        // segment). 2: committed with a file, delivered (the file retired): not sent again.
        // 3: unwritten, then written by the worker: kept as it is.
        recs[2].3 = false;
        spool.write_message(&recs[3].0, &recs[3].1, &recs[3].2).unwrap();
        let journal = spool.root().join("journal");
        fs::write(journal.join("0000000000000001-00000000.wal"), segment_v2(&boot_id(spool.root()), &recs, &[]))
            .unwrap();
        fs::write(
            journal.join("0000000000000002-00000001.wal"),
            segment_v2(&boot_id(spool.root()), &[], &[recs[1].0.clone()]),
        )
        .unwrap();

        let report = spool.recover_journal().unwrap();
        assert_eq!(report, JournalRecovery { segments: 2, replayed: 1, ..JournalRecovery::default() });
        assert_eq!(spool.load(&recs[0].0).unwrap().raw, recs[0].2);
        assert!(spool.load(&recs[1].0).is_err(), "delivered before the crash");
        assert!(spool.load(&recs[2].0).is_err(), "delivered before the crash");
        assert_eq!(spool.load(&recs[3].0).unwrap().raw, recs[3].2);
        assert!(names(&journal).is_empty());

        // A PMWAL1 segment (an earlier version) still reads: after a reboot its lost message
        // comes back.
        let old = records(1);
        fs::write(journal.join("0000000000000003-00000002.wal"), segment_bytes("another-boot", &old)).unwrap();
        assert_eq!(
            spool.recover_journal().unwrap(),
            JournalRecovery { segments: 1, replayed: 1, ..JournalRecovery::default() }
        );
        assert_eq!(spool.load(&old[0].0).unwrap().raw, old[0].2);
    }

    #[test]
    fn records_read_back_with_their_flags_and_tombstones_are_strict() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.wal");
        let recs: Vec<(QueueId, Header, Vec<u8>, bool)> =
            records(2).into_iter().enumerate().map(|(i, (id, h, r))| (id, h, r, i == 1)).collect();
        let tomb = QueueId::generate();
        fs::write(&path, segment_v2("b", &recs, std::slice::from_ref(&tomb))).unwrap();
        let c = read_segment(&path).unwrap();
        assert_eq!(c.records.iter().map(|r| r.3).collect::<Vec<_>>(), [false, true]);
        assert_eq!(c.tombstones, std::slice::from_ref(&tomb));
        assert_eq!(c.torn_bytes, 0);
        // A tombstone with a payload longer than an id, or also flagged unwritten, stops reading.
        for word in [(ID_LEN as u64 + 1) | RECORD_TOMBSTONE, ID_LEN as u64 | RECORD_TOMBSTONE | RECORD_UNWRITTEN] {
            let mut bytes = segment_v2("b", &[], &[]);
            bytes.extend_from_slice(&word.to_le_bytes());
            bytes.extend_from_slice(tomb.as_str().as_bytes());
            bytes.push(b'0');
            fs::write(&path, &bytes).unwrap();
            let c = read_segment(&path).unwrap();
            assert!(c.tombstones.is_empty() && c.records.is_empty(), "{word:x}");
            assert_eq!(c.torn_bytes as usize, 8 + ID_LEN + 1);
        }
    }

    #[test]
    fn damaged_segments_yield_only_their_trusted_records() {
        let dir = tempfile::tempdir().unwrap();
        let recs = records(3);
        let good = segment_bytes("b", &recs);
        let path = dir.path().join("s.wal");
        // Every truncation keeps exactly the records that are complete.
        let ends: Vec<usize> = (1..=3).map(|n| segment_bytes("b", &recs[..n]).len()).collect();
        for cut in [0, 3, 9, 10, 30, ends[0], ends[0] + 5, ends[1] - 1, ends[2]] {
            fs::write(&path, &good[..cut]).unwrap();
            let c = read_segment(&path).unwrap();
            let expect = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(c.records.len(), expect, "cut at {cut}");
        }
        // A flipped byte in the second message: that record is damaged, the third still counts.
        let mut bad = good.clone();
        bad[ends[1] - 4] ^= 0x20;
        fs::write(&path, &bad).unwrap();
        let c = read_segment(&path).unwrap();
        assert_eq!(c.records.iter().map(|r| &r.0).collect::<Vec<_>>(), [&recs[0].0, &recs[2].0]);
        assert_eq!(c.torn_bytes, 0);
        assert_eq!(c.damaged.len(), 1);
        let (offset, bytes, id) = &c.damaged[0];
        assert_eq!((*offset as usize, bytes.len(), id.as_ref()), (ends[0], ends[1] - ends[0], Some(&recs[1].0)));
        // A flipped bit in a record's length word: its id is still read, the next record found.
        let mut bad = good.clone();
        bad[ends[0] + 3] ^= 0x01;
        fs::write(&path, &bad).unwrap();
        let c = read_segment(&path).unwrap();
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.damaged[0].2.as_ref(), Some(&recs[1].0));
        // The last record damaged is a torn tail: never acknowledged, not reported as damage.
        let mut bad = good.clone();
        bad[ends[2] - 4] ^= 0x20;
        fs::write(&path, &bad).unwrap();
        let c = read_segment(&path).unwrap();
        assert_eq!((c.records.len(), c.damaged.len()), (2, 0));
        assert_eq!(c.torn_bytes as usize, ends[2] - ends[1]);
        // A length field larger than the file, or absurd, is not trusted either.
        let mut huge = segment_bytes("b", &[]);
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 64]);
        fs::write(&path, &huge).unwrap();
        assert!(read_segment(&path).unwrap().records.is_empty());
        // Not a segment at all.
        fs::write(&path, b"hello").unwrap();
        let c = read_segment(&path).unwrap();
        assert!(c.records.is_empty() && c.torn_bytes == 5);
    }
}
