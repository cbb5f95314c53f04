//! Tombstones: the marks of delivered messages in the journal (see the parent module). The
//! committer appends them without syncing; the next group commit's `fdatasync` covers them, or,
//! when no batch comes within [`super::TOMBSTONE_SYNC_AFTER`], the committer syncs them alone.

use std::time::Instant;

use super::super::{ID_LEN, QueueId, Spool, disk};
use super::{RECORD_TOMBSTONE, Segment};

/// Syncs the open segment if it holds tombstones not synced yet.
pub(super) fn sync_tombstones(segment: &Option<Segment>, unsynced: &mut Option<Instant>) {
    if unsynced.take().is_none() {
        return;
    }
    if let Some(seg) = segment
        && let Err(e) = disk::sync_data(&seg.file, &seg.path)
    {
        // Only duplicates are at stake: after a power cut these messages may be sent again.
        tracing::warn!(segment = %seg.path.display(), error = %e, "could not sync the journal's delivered marks");
    }
}

/// Appends the tombstones of delivered messages, without syncing (the next group commit or
/// [`sync_tombstones`] does). Returns whether they were appended; a failure costs at most
/// duplicates after a power cut.
pub(super) fn append_tombstones(spool: &Spool, segment: &mut Option<Segment>, ids: &[QueueId]) -> bool {
    if segment.is_none() {
        *segment = Segment::create(spool).ok();
    }
    let Some(seg) = segment.as_mut() else { return false };
    let mut records = Vec::with_capacity(ids.len() * (8 + ID_LEN));
    for id in ids {
        records.extend_from_slice(&(ID_LEN as u64 | RECORD_TOMBSTONE).to_le_bytes());
        records.extend_from_slice(id.as_str().as_bytes());
    }
    let written = super::super::faults::charge(&spool.root, records.len() as u64)
        .and_then(|()| disk::write_all(&mut seg.file, &seg.path, &records));
    match written {
        Ok(()) => {
            seg.len += records.len() as u64;
            true
        }
        // Nothing may land behind a torn record.
        Err(_) => {
            let _ = disk::set_len(&seg.file, &seg.path, seg.len);
            false
        }
    }
}
