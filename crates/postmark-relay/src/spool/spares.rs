//! Spares: files of delivered messages kept in `spare/` for new messages to be written over. On
//! ext4, creating a file right after deleting thousands makes the kernel scan for an inode not
//! freed recently (`recently_deleted`); renaming a spare into place costs far less. At most
//! [`MAX_SPARES`] files and [`MAX_SPARE_BYTES`] are kept; they are deleted when the disk is full
//! and at start-up.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::Spool;
use super::files::remove_if_exists;

/// The files in `spare/`, with their sizes.
#[derive(Debug, Default)]
pub(crate) struct Spares {
    files: Vec<(PathBuf, u64)>,
    bytes: u64,
}

/// Most files kept in `spare/`.
pub(crate) const MAX_SPARES: usize = 1024;
/// Most bytes kept in `spare/`; bigger files are deleted instead.
pub(crate) const MAX_SPARE_BYTES: u64 = 32 * 1024 * 1024;
static SPARE_SEQUENCE: AtomicU32 = AtomicU32::new(0);

impl Spool {
    /// Takes a spare file to write a new message over, if there is one, with its length.
    pub(crate) fn take_spare(&self) -> Option<(PathBuf, u64)> {
        let mut spares = self.spares.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (path, len) = spares.files.pop()?;
        spares.bytes -= len;
        Some((path, len))
    }

    /// Deletes every spare file (when the disk is full). Returns how many there were.
    pub(crate) fn drop_spares(&self) -> usize {
        let files = std::mem::take(&mut *self.spares.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).files;
        for (path, _) in &files {
            let _ = super::disk::remove_file(path);
        }
        files.len()
    }

    /// Moves the file at `path` (a delivered message, or a spare a failed write used) to
    /// `spare/`, or deletes it once enough spares are kept.
    pub(crate) fn retire(&self, path: &Path) -> io::Result<()> {
        let len = match fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut spares = self.spares.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if spares.files.len() < MAX_SPARES && spares.bytes + len <= MAX_SPARE_BYTES {
            let seq = SPARE_SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let spare = self.root.join("spare").join(format!("{seq:08x}-{:08x}", rand::random::<u32>()));
            match super::disk::rename(path, &spare) {
                Ok(()) => {
                    spares.files.push((spare, len));
                    spares.bytes += len;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(_) => {}
            }
        }
        drop(spares);
        remove_if_exists(path)
    }
}
