//! Reading segments back, and recovery at start-up (see the parent module).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::super::{Area, Header, ID_LEN, LoadError, QueueId, Spool, StoreError, StoredMessage};
use super::{
    RECORD_LEN, RECORD_TOMBSTONE, RECORD_UNWRITTEN, SEGMENT_EXT, SEGMENT_MAGIC, SEGMENT_MAGIC_V1, UNKNOWN_BOOT,
    checkpoint,
};

/// What [`Spool::recover_journal`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalRecovery {
    /// Segments found (left by a process that did not stop cleanly).
    pub segments: usize,
    /// Messages written back to `queue/` from the journal (after a reboot).
    pub replayed: usize,
    /// Files in `queue/` of messages the journal says were delivered (their removal was lost
    /// in a power cut), removed.
    pub delivered: usize,
    /// Damaged journal records, and spool files that failed their checksum without a reboot
    /// (written back from the journal): each logged, and its copy kept in `quarantine/`.
    pub damaged: usize,
}

/// One record read back.
pub(super) enum Record {
    /// A message, and whether it was committed unwritten.
    Message { id: QueueId, header: Header, raw: Vec<u8>, unwritten: bool },
    /// An unwritten message that was delivered.
    Tombstone(QueueId),
}

/// One segment read back.
pub(super) struct SegmentContents {
    pub(super) boot_id: String,
    pub(super) records: Vec<(QueueId, Header, Vec<u8>, bool)>,
    pub(super) tombstones: Vec<QueueId>,
    /// Bytes after the last trusted record (a torn batch, never acknowledged).
    pub(super) torn_bytes: u64,
    /// Damaged records: bytes that do not check out, followed by trusted records (so not a
    /// torn tail): where they start in the segment, the bytes, and the id if it is readable.
    pub(super) damaged: Vec<(u64, Vec<u8>, Option<QueueId>)>,
}

impl Spool {
    /// Replays or checkpoints the journal segments a previous run left behind (see the module
    /// documentation). Call once, holding the lock, before anything is delivered.
    pub fn recover_journal(&self) -> io::Result<JournalRecovery> {
        let dir = self.root.join("journal");
        let mut paths: Vec<PathBuf> = fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == SEGMENT_EXT))
            .collect();
        paths.sort();
        let current_boot = boot_id(&self.root);
        let mut report = JournalRecovery::default();
        let mut segments = Vec::with_capacity(paths.len());
        // A tombstone may sit in a later segment than its message.
        let mut delivered = HashSet::new();
        for path in paths {
            report.segments += 1;
            let contents = read_segment(&path)?;
            if contents.torn_bytes > 0 {
                tracing::info!(
                    segment = %path.display(),
                    bytes = contents.torn_bytes,
                    "journal segment ends in a torn batch (never acknowledged); ignoring it"
                );
            }
            for (offset, bytes, id) in &contents.damaged {
                self.keep_damaged_record(&path, *offset, bytes, id.as_ref());
                report.damaged += 1;
            }
            delivered.extend(contents.tombstones.iter().cloned());
            segments.push((path, contents));
        }
        // Delivered, but the removal of its file did not survive a power cut: not sent again.
        // (Made durable by the checkpoints below, before the segments holding the tombstones go.)
        for id in &delivered {
            if self.path(Area::Queue, id, "msg").exists() {
                super::super::files::remove_if_exists(&self.path(Area::Queue, id, "state"))?;
                super::super::files::remove_if_exists(&self.path(Area::Queue, id, "msg"))?;
                report.delivered += 1;
            }
        }
        for (path, contents) in segments {
            let ids: Vec<QueueId> = contents.records.iter().map(|(id, ..)| id.clone()).collect();
            // Same boot: the files are as the process left them, and only a message committed
            // unwritten can lack one. After a reboot any file may be lost.
            let rebooted = contents.boot_id != current_boot || current_boot == UNKNOWN_BOOT;
            for (id, header, raw, unwritten) in &contents.records {
                if delivered.contains(id) || self.path(Area::Dead, id, "msg").exists() {
                    continue;
                }
                match self.load(id) {
                    Ok(_) => continue,
                    // After a reboot a file the journal still covers may be torn: expected.
                    Err(LoadError::Corrupt(reason)) if !rebooted => {
                        // The process never left it so: bad bytes on disk. Kept for inspection,
                        // and written again from the journal's good copy.
                        let kept =
                            self.quarantine(Area::Queue, id, &format!("{reason} (written again from the journal)"));
                        tracing::warn!(
                            queue_id = %id,
                            reason,
                            kept = %kept.as_ref().map_or_else(|e| e.to_string(), |p| p.display().to_string()),
                            "damaged spool file: its copy is kept, the message is written again from the journal"
                        );
                        report.damaged += 1;
                    }
                    Err(LoadError::Corrupt(_)) => {}
                    // Same boot, committed with a file, none now: it was delivered.
                    Err(LoadError::NotFound) if !(rebooted || *unwritten) => continue,
                    Err(LoadError::NotFound) => {}
                    Err(LoadError::Io(e)) => return Err(e),
                }
                self.write_message(id, header, raw).map_err(|e| match e {
                    StoreError::Full(e) | StoreError::Io(e) => e,
                })?;
                report.replayed += 1;
            }
            checkpoint(self, &path, &ids, &[])?;
        }
        Ok(report)
    }
}

impl Spool {
    /// Keeps a damaged journal record in `quarantine/` (`<id>.journal`, or named after its
    /// segment and offset when even its id is unreadable) with a note, and logs it once.
    fn keep_damaged_record(&self, segment: &Path, offset: u64, bytes: &[u8], id: Option<&QueueId>) {
        let stem = segment.file_stem().and_then(|s| s.to_str()).unwrap_or("segment");
        let name = id.map_or_else(|| format!("{stem}-{offset}"), |id| id.to_string());
        let dir = self.root.join("quarantine");
        let queued = id.is_some_and(|id| self.load(id).is_ok());
        let note = serde_json::json!({
            "reason": "journal record does not check out",
            "segment": segment.display().to_string(),
            "offset": offset,
            "good_copy_queued": queued,
            "quarantined_ms": crate::clock::now_ms(),
        });
        let kept =
            super::super::files::write_replace(&dir.join(format!("{name}.journal")), bytes, false).and_then(|()| {
                super::super::files::write_replace(
                    &dir.join(format!("{name}.json")),
                    note.to_string().as_bytes(),
                    false,
                )
            });
        tracing::warn!(
            queue_id = id.map(QueueId::as_str),
            segment = %segment.display(),
            offset,
            bytes = bytes.len(),
            good_copy_queued = queued,
            kept = %kept.map_or_else(|e| e.to_string(), |()| dir.join(format!("{name}.journal")).display().to_string()),
            "damaged journal record (checksum mismatch); it is not delivered"
        );
    }

    /// Messages a relay committed without a file and has not delivered yet, as its journal
    /// shows them (a record flagged unwritten, no tombstone, no file): for `queue list` and
    /// `queue show` in another process, which cannot see the relay's memory. Records being
    /// written are not trusted yet and not listed.
    pub fn journal_pending(&self) -> io::Result<Vec<StoredMessage>> {
        let mut segments: Vec<PathBuf> = fs::read_dir(self.root.join("journal"))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == SEGMENT_EXT))
            .collect();
        segments.sort();
        let mut delivered = HashSet::new();
        let mut records = Vec::new();
        for path in segments {
            // A segment checkpointed meanwhile is simply gone.
            let Ok(contents) = read_segment(&path) else { continue };
            delivered.extend(contents.tombstones);
            records.extend(contents.records.into_iter().filter(|r| r.3).map(|(id, header, raw, _)| StoredMessage {
                id,
                header,
                raw,
            }));
        }
        records.retain(|m| {
            !delivered.contains(&m.id)
                && !self.path(Area::Queue, &m.id, "msg").exists()
                && !self.path(Area::Dead, &m.id, "msg").exists()
        });
        Ok(records)
    }
}

/// Reads a segment up to its last trusted record.
pub(super) fn read_segment(path: &Path) -> io::Result<SegmentContents> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut data = Vec::new();
    reader.read_to_end(&mut data)?;
    let mut contents = SegmentContents {
        boot_id: String::new(),
        records: Vec::new(),
        tombstones: Vec::new(),
        torn_bytes: 0,
        damaged: Vec::new(),
    };
    let Some(rest) = data.strip_prefix(SEGMENT_MAGIC).or_else(|| data.strip_prefix(SEGMENT_MAGIC_V1)) else {
        // Torn while being created: it never held anything.
        contents.torn_bytes = data.len() as u64;
        return Ok(contents);
    };
    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
        contents.torn_bytes = data.len() as u64;
        return Ok(contents);
    };
    contents.boot_id = String::from_utf8_lossy(&rest[..nl]).into_owned();
    let start = (data.len() - rest.len() + nl + 1) as u64;
    let rest = &rest[nl + 1..];
    let mut pos = 0;
    while pos < rest.len() {
        if let Some((record, used)) = parse_record(&rest[pos..]) {
            match record {
                Record::Message { id, header, raw, unwritten } => contents.records.push((id, header, raw, unwritten)),
                Record::Tombstone(id) => contents.tombstones.push(id),
            }
            pos += used;
            continue;
        }
        // A record that does not check out: a torn tail (never acknowledged), unless a trusted
        // record follows it (then bytes on disk went bad, and the records after it still count).
        let Some(next) = (pos + 1..rest.len()).find(|&p| parse_record(&rest[p..]).is_some()) else { break };
        let id = rest.get(pos + 8..pos + 8 + ID_LEN).and_then(|b| std::str::from_utf8(b).ok()).and_then(QueueId::parse);
        contents.damaged.push((start + pos as u64, rest[pos..next].to_vec(), id));
        pos = next;
    }
    contents.torn_bytes = (rest.len() - pos) as u64;
    Ok(contents)
}

/// Parses one record, returning it and its length; `None` if it is incomplete or does not
/// check out.
pub(super) fn parse_record(data: &[u8]) -> Option<(Record, usize)> {
    let word = u64::from_le_bytes(data.get(..8)?.try_into().ok()?);
    let len = usize::try_from(word & RECORD_LEN).ok()?;
    let payload = data.get(8..8usize.checked_add(len)?)?;
    let id = QueueId::parse(std::str::from_utf8(payload.get(..ID_LEN)?).ok()?)?;
    if word & RECORD_TOMBSTONE != 0 {
        return (len == ID_LEN && word & RECORD_UNWRITTEN == 0).then_some((Record::Tombstone(id), 8 + len));
    }
    let mut reader = BufReader::new(&payload[ID_LEN..]);
    let (header, body_start) = super::super::read_header(&mut reader).ok()?;
    let raw = payload[ID_LEN..].get(usize::try_from(body_start).ok()?..)?;
    if raw.len() as u64 != header.size || !super::super::checksum_matches(raw, &header.checksum) {
        return None;
    }
    let unwritten = word & RECORD_UNWRITTEN != 0;
    Some((Record::Message { id, header, raw: raw.to_vec(), unwritten }, 8 + len))
}

/// The kernel's boot id: it changes on every boot, so a segment written under the current one
/// was written since the last boot and its files are still in the page cache.
pub(super) fn boot_id(root: &Path) -> String {
    #[cfg(test)]
    if let Some(id) = super::super::faults::power::boot_id(root) {
        return id;
    }
    #[cfg(not(test))]
    let _ = root;
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        .unwrap_or_else(|| UNKNOWN_BOOT.to_owned())
}
