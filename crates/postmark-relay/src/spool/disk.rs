//! Every change the spool makes to its files, in one place: creating, writing, cutting, syncing,
//! renaming and unlinking a file, and syncing a directory. Outside the tests each function is the
//! plain system call. In the crate's tests the power-cut seam ([`super::faults::power`]) sees
//! each of them in the order they happen, so that a test can cut the power at any one of them and
//! compute what a disk would hold after the cut (see `faults/crash_tests.rs`).

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::path::Path;

#[cfg(test)]
use super::faults::power::gate;

use super::files::private_file;

/// Outside the tests: nothing to record.
#[cfg(not(test))]
struct Gate;

#[cfg(not(test))]
impl Gate {
    #[inline(always)]
    fn created(&self, _path: &Path) {}
    #[inline(always)]
    fn wrote(&self, _file: &File, _path: &Path, _len: usize) {}
    #[inline(always)]
    fn cut(&self, _path: &Path, _len: u64) {}
    #[inline(always)]
    fn synced(&self, _file: &File, _path: &Path) {}
    #[inline(always)]
    fn renamed(&self, _from: &Path, _to: &Path) {}
    #[inline(always)]
    fn removed(&self, _path: &Path) {}
}

#[cfg(not(test))]
#[inline(always)]
fn gate(_path: &Path) -> io::Result<Gate> {
    Ok(Gate)
}

/// Creates a new private file for writing; fails if it exists.
pub(crate) fn create_new(path: &Path) -> io::Result<File> {
    let g = gate(path)?;
    let file = private_file().write(true).create_new(true).open(path)?;
    g.created(path);
    Ok(file)
}

/// Creates a new private file for appending; fails if it exists.
pub(crate) fn create_new_append(path: &Path) -> io::Result<File> {
    let g = gate(path)?;
    let file = private_file().append(true).create_new(true).open(path)?;
    g.created(path);
    Ok(file)
}

/// Opens a private file for writing, creating it or cutting it to nothing.
pub(crate) fn create_truncate(path: &Path) -> io::Result<File> {
    let g = gate(path)?;
    let existed = path.exists();
    let file = private_file().write(true).create(true).truncate(true).open(path)?;
    if existed {
        g.cut(path, 0);
    } else {
        g.created(path);
    }
    Ok(file)
}

/// Opens an existing file for writing (a spare to write over).
pub(crate) fn open_existing(path: &Path) -> io::Result<File> {
    let _gate = gate(path)?;
    File::options().write(true).open(path)
}

/// Writes all of `slices` at the file's position, in as few system calls as it takes.
pub(crate) fn write(file: &mut File, path: &Path, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    let len: usize = slices.iter().map(|s| s.len()).sum();
    let g = gate(path)?;
    let mut left = len;
    while left > 0 {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "the file took no bytes")),
            Ok(n) => {
                IoSlice::advance_slices(&mut slices, n);
                left -= n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    g.wrote(file, path, len);
    Ok(())
}

/// [`write`] of one buffer.
pub(crate) fn write_all(file: &mut File, path: &Path, bytes: &[u8]) -> io::Result<()> {
    write(file, path, &mut [IoSlice::new(bytes)])
}

/// Cuts (or extends) the file to `len` bytes.
pub(crate) fn set_len(file: &File, path: &Path, len: u64) -> io::Result<()> {
    let g = gate(path)?;
    file.set_len(len)?;
    g.cut(path, len);
    Ok(())
}

/// `fsync` of a file: its data and size are on disk (not its name: see [`sync_dir`]).
pub(crate) fn sync_all(file: &File, path: &Path) -> io::Result<()> {
    let g = gate(path)?;
    file.sync_all()?;
    g.synced(file, path);
    Ok(())
}

/// `fdatasync` of a file: its data and size are on disk.
pub(crate) fn sync_data(file: &File, path: &Path) -> io::Result<()> {
    let g = gate(path)?;
    file.sync_data()?;
    g.synced(file, path);
    Ok(())
}

/// Renames a file.
pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    let g = gate(from)?;
    std::fs::rename(from, to)?;
    g.renamed(from, to);
    Ok(())
}

/// Unlinks a file.
pub(crate) fn remove_file(path: &Path) -> io::Result<()> {
    let g = gate(path)?;
    std::fs::remove_file(path)?;
    g.removed(path);
    Ok(())
}

/// `fsync` of a directory: the names created, renamed and unlinked in it are on disk.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    let g = gate(dir)?;
    let file = File::open(dir)?;
    file.sync_all()?;
    g.synced(&file, dir);
    Ok(())
}
