//! File-system helpers of the spool: private directories and files, synced renames.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;

use super::disk;

/// Creates `dir` (and its parents) readable by the owner only: spooled mail is private.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Options for a new spool file, readable by the owner only.
pub(crate) fn private_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

pub(crate) use super::disk::sync_dir;

pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match disk::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes `path` by way of a sibling temporary file and a rename; with `durable` the file and its
/// directory are fsync'd.
pub(crate) fn write_replace(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{:08x}.tmp", rand::random::<u32>()));
    let result = (|| {
        let mut file = disk::create_new(&tmp)?;
        disk::write_all(&mut file, &tmp, bytes)?;
        if durable {
            disk::sync_all(&file, &tmp)?;
        }
        drop(file);
        disk::rename(&tmp, path)?;
        if durable {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = disk::remove_file(&tmp);
    }
    result
}

/// Creates, writes, fsyncs and unlinks the file `name` in `dir`: whether new files can be made
/// durable there. The error says which step failed, for which path.
pub(crate) fn probe_dir(dir: &Path, name: &str) -> Result<(), String> {
    let path = dir.join(name);
    let fail = |what: &str, e: io::Error| format!("{what} {}: {e}", path.display());
    let mut file = disk::create_truncate(&path).map_err(|e| fail("cannot create", e))?;
    let written = disk::write_all(&mut file, &path, b"ok\n").and_then(|()| disk::sync_all(&file, &path));
    drop(file);
    let removed = disk::remove_file(&path);
    written.map_err(|e| fail("cannot write and fsync", e))?;
    removed.map_err(|e| fail("cannot remove", e))
}
