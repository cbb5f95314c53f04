//! A fault-injection seam in the spool's writer, compiled for the crate's own tests only: a
//! spool can be given a budget of free bytes, and each new message file and each journal append
//! is charged against it; once a write does not fit it fails with `ErrorKind::StorageFull`
//! (`ENOSPC`) before a byte is written, as a full file system would. Writing over a spare file
//! (its blocks are already allocated) costs nothing, and nothing is credited back when files are
//! removed: tests give space back with [`set_free`].
//!
//! So the disk-full behaviour (`452 4.3.1`, never a `250` for mail that is not on disk, nothing
//! left behind in `tmp/`) is tested on every machine, without root or namespaces. In a build that
//! is not a test, [`charge`] is an empty inline function.

use std::io;
use std::path::Path;

#[cfg(test)]
static BUDGETS: std::sync::Mutex<Vec<(std::path::PathBuf, u64)>> = std::sync::Mutex::new(Vec::new());

/// Gives the spool at `root` this many free bytes from now on (`None`: unlimited again).
#[cfg(test)]
pub(crate) fn set_free(root: &Path, bytes: Option<u64>) {
    let mut budgets = BUDGETS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    budgets.retain(|(r, _)| r != root);
    if let Some(bytes) = bytes {
        budgets.push((root.to_path_buf(), bytes));
    }
}

/// Takes `bytes` from the budget of the spool at `root`, or fails with `StorageFull`.
#[cfg(test)]
pub(crate) fn charge(root: &Path, bytes: u64) -> io::Result<()> {
    let mut budgets = BUDGETS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match budgets.iter_mut().find(|(r, _)| r == root) {
        Some((_, free)) if *free < bytes => {
            Err(io::Error::new(io::ErrorKind::StorageFull, "No space left on device (injected by a test)"))
        }
        Some((_, free)) => {
            *free -= bytes;
            Ok(())
        }
        None => Ok(()),
    }
}

/// Outside the tests: nothing.
#[cfg(not(test))]
#[inline(always)]
pub(crate) fn charge(_root: &Path, _bytes: u64) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
pub(crate) mod model;
#[cfg(test)]
pub(crate) mod power;
#[cfg(test)]
mod tests;
