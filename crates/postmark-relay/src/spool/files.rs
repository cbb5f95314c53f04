//! File-system helpers of the spool: private directories and files, synced renames.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

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

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
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
        let mut file = private_file().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&tmp, path)?;
        if durable {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates, writes, fsyncs and unlinks the file `name` in `dir`: whether new files can be made
/// durable there. The error says which step failed, for which path.
pub(crate) fn probe_dir(dir: &Path, name: &str) -> Result<(), String> {
    use std::io::Write as _;
    let path = dir.join(name);
    let fail = |what: &str, e: io::Error| format!("{what} {}: {e}", path.display());
    let mut file =
        private_file().write(true).create(true).truncate(true).open(&path).map_err(|e| fail("cannot create", e))?;
    let written = file.write_all(b"ok\n").and_then(|()| file.sync_all());
    drop(file);
    let removed = std::fs::remove_file(&path);
    written.map_err(|e| fail("cannot write and fsync", e))?;
    removed.map_err(|e| fail("cannot remove", e))
}
