//! Messages whose only copy on disk is their journal record.
//!
//! A message a session hands to the delivery worker in memory (see
//! [`crate::delivery::handoff`]) needs no file of its own while it is being delivered: its
//! journal record made it durable, and the worker has its bytes. Such a message is committed
//! *unwritten*: no file is written, renamed or, once Postmark took it, retired. That saves a
//! message's every file operation (an open, a write, two renames, a `stat`, an `unlink`) and its
//! second copy in the page cache.
//!
//! A file is written only when one is needed:
//!
//! * the delivery attempt did not end in a delivery (a retry reads the file, a dead letter is
//!   a file): the worker writes it from its copy ([`Spool::ensure_written`]);
//! * the message's journal segment is checkpointed (a second or so after it was written) and the
//!   message is still pending: the checkpoint writes it from the journal record, then syncs it,
//!   before the segment goes.
//!
//! A delivered message gets a *tombstone* record in the journal (as every delivered message
//! does: see [`super::journal`]), so that recovery does not write its record back.
//! Recovery writes back every unwritten record that has neither a file nor a tombstone (see
//! [`super::journal`]).
//!
//! Other processes see such a message only in the journal: `queue list`, `queue show` and
//! `mailq` read it from there ([`Spool::journal_pending`]); `queue purge` needs its file.
//!
//! Messages are committed unwritten only while the spool can take files ([`Spool::files_ok`]):
//! the checkpoint thread probes `tmp/` and `queue/` every second (as does `/readyz`), and any
//! failure to write a file counts too. Meanwhile every message gets its file at once, so a spool
//! that cannot take one is answered `451`, never `250`, as the readiness probe says.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use super::journal::Work;
use super::{QueueId, Spool, StoreError, StoredMessage};

/// The checkpoint thread's probe file, in `tmp/` (removed at start-up if a crash left it).
const PROBE_FILE: &str = ".checkpoint-probe";

impl Spool {
    /// Whether new messages may be committed unwritten: the spool took files at the last look.
    pub fn files_ok(&self) -> bool {
        self.files_ok.load(Ordering::Acquire)
    }

    /// Records whether the spool just took a file (`true`) or failed to (`false`).
    pub(crate) fn note_files(&self, ok: bool) {
        self.files_ok.store(ok, Ordering::Release);
    }

    /// Probes whether files can be made durable in `tmp/` and renamed into `queue/`, and records
    /// the verdict.
    pub(super) fn probe_files(&self) -> Result<(), String> {
        let result = super::probe_dir(&self.root.join("tmp"), PROBE_FILE).and_then(|()| {
            match std::fs::metadata(self.root.join("queue")) {
                Ok(m) if m.is_dir() => Ok(()),
                Ok(_) => Err(format!("{} is not a directory", self.root.join("queue").display())),
                Err(e) => Err(format!("cannot read {}: {e}", self.root.join("queue").display())),
            }
        });
        self.note_files(result.is_ok());
        result
    }

    /// Whether `id` is committed without a file (in this process).
    pub fn is_unwritten(&self, id: &QueueId) -> bool {
        self.unwritten.lock().unwrap_or_else(PoisonError::into_inner).contains(id)
    }

    /// Forgets an unwritten message that was delivered and has the committer record its
    /// tombstone. Returns false if `id` has a file (or is unknown).
    pub(super) fn forget_unwritten(&self, id: &QueueId) -> bool {
        let mut unwritten = self.unwritten.lock().unwrap_or_else(PoisonError::into_inner);
        if !unwritten.remove(id) {
            return false;
        }
        drop(unwritten);
        self.tombstone(id);
        true
    }

    /// Has the committer record the tombstone of a delivered message (see [`Spool::remove`]).
    pub(super) fn tombstone(&self, id: &QueueId) {
        if let Some(committer) = self.committer.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            // A committer that has stopped has checkpointed its segments: no tombstone is needed.
            let _ = committer.send(Work::Delivered(id.clone()));
        }
    }

    /// Writes the file of `msg` if it has none yet (before a retry is scheduled or a dead letter
    /// made of it). The file is synced: the journal segment holding the message may be deleted
    /// any time after this.
    pub fn ensure_written(&self, msg: &StoredMessage) -> Result<(), StoreError> {
        let mut unwritten = self.unwritten.lock().unwrap_or_else(PoisonError::into_inner);
        if !unwritten.contains(&msg.id) {
            return Ok(());
        }
        let written = self.write_message(&msg.id, &msg.header, &msg.raw);
        self.note_files(written.is_ok());
        written?;
        unwritten.remove(&msg.id);
        Ok(())
    }

    /// Marks committed messages as unwritten (by the committer, before it answers).
    pub(super) fn add_unwritten(&self, ids: Vec<QueueId>) {
        self.unwritten.lock().unwrap_or_else(PoisonError::into_inner).extend(ids);
    }

    /// Gives `id`, if still unwritten, its file: `write` writes it to a temporary path without
    /// the lock held (the worker goes on delivering meanwhile), then, under the lock, it is
    /// renamed into `queue/` if the message is still unwritten, and dropped if it was delivered
    /// meanwhile.
    pub(super) fn write_unwritten(
        &self,
        id: &QueueId,
        write: impl FnOnce(&std::path::Path) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        if !self.is_unwritten(id) {
            return Ok(());
        }
        let tmp = self.root.join("tmp").join(format!("{id}.checkpoint"));
        let written = write(&tmp).and_then(|()| {
            let mut unwritten = self.unwritten.lock().unwrap_or_else(PoisonError::into_inner);
            if !unwritten.contains(id) {
                return super::disk::remove_file(&tmp);
            }
            super::disk::rename(&tmp, &self.path(super::Area::Queue, id, "msg"))?;
            unwritten.remove(id);
            Ok(())
        });
        if written.is_err() {
            let _ = super::disk::remove_file(&tmp);
        }
        self.note_files(written.is_ok());
        written
    }

    /// Registers (or, with `None`, forgets) the running committer.
    pub(super) fn set_committer(&self, committer: Option<std::sync::mpsc::Sender<Work>>) {
        *self.committer.lock().unwrap_or_else(PoisonError::into_inner) = committer;
    }
}
