//! The maildrop: where `sendmail` leaves messages for the relay, whether or not it is running.
//!
//! `sendmail` writes `<spool>/maildrop/.<id>.tmp`, syncs it, renames it to `<id>.msg` and syncs
//! the directory: once it exits 0 the message survives a crash. The relay imports what it finds
//! there at start and every second: it applies the same checks and policy as to a message
//! received over SMTP, stores the message in `queue/` under the same id (so a crash between the
//! two steps cannot store it twice), then deletes the drop file.
//!
//! Permissions: the relay creates the directory `0700` (only its own user can submit). To let
//! other local users submit (cron jobs of other users, PHP as `www-data`) without letting them
//! read the spool, give the spool `0710` and the maildrop `1730` with a submitters' group (see
//! the README): members can create files there, but cannot list, read or delete other people's.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::files::sync_dir;
use super::format::{Header, QueueId, encode_head};
use super::{LoadError, StoredMessage, read_message};

/// The maildrop's directory name inside the spool.
pub const DIR: &str = "maildrop";

/// A `.tmp` file older than this was left by a `sendmail` that died; it is removed.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// The maildrop of the spool at `root`.
pub fn dir(root: &Path) -> PathBuf {
    root.join(DIR)
}

/// Creates the maildrop (and the spool directory) if missing, private to this user. An existing
/// directory keeps the mode the operator gave it.
pub fn ensure(root: &Path) -> io::Result<()> {
    let dir = dir(root);
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)
}

/// Messages written but not yet published (see [`Staged::publish`]).
#[derive(Debug)]
pub struct Staged {
    dir: PathBuf,
    files: Vec<(PathBuf, PathBuf)>,
    published: bool,
}

/// Writes each `(header, raw)` to its own synced temporary file; nothing is visible to the relay
/// until [`Staged::publish`].
pub fn stage(root: &Path, messages: &[(Header, Vec<u8>)]) -> io::Result<(Staged, Vec<QueueId>)> {
    let dir = dir(root);
    // Others may create files here when the directory is shared: then the relay (the
    // directory's owner, not the file's) must be able to read them.
    let shared = fs::metadata(&dir)?.permissions().mode() & 0o077 != 0;
    let mode = if shared { 0o644 } else { 0o600 };
    let mut staged = Staged { dir: dir.clone(), files: Vec::new(), published: false };
    let mut ids = Vec::new();
    for (header, raw) in messages {
        let id = QueueId::generate();
        let tmp = dir.join(format!(".{id}.tmp"));
        let dest = dir.join(format!("{id}.msg"));
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        staged.files.push((tmp, dest));
        file.write_all(&encode_head(header)?)?;
        file.write_all(raw)?;
        file.sync_all()?;
        ids.push(id);
    }
    Ok((staged, ids))
}

impl Staged {
    /// Makes every staged message visible at once (renames, then one directory sync). If a
    /// rename fails, the ones already made are taken back: nothing is half-queued.
    pub fn publish(mut self) -> io::Result<()> {
        for i in 0..self.files.len() {
            let (tmp, dest) = &self.files[i];
            if let Err(e) = fs::rename(tmp, dest) {
                for (_, done) in &self.files[..i] {
                    let _ = fs::remove_file(done);
                }
                return Err(e);
            }
        }
        self.published = true;
        sync_dir(&self.dir)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.published {
            for (tmp, _) in &self.files {
                let _ = fs::remove_file(tmp);
            }
        }
    }
}

/// The messages waiting in the maildrop, oldest id first. Removes stale temporary files.
pub fn waiting(root: &Path) -> io::Result<Vec<(QueueId, PathBuf)>> {
    let dir = dir(root);
    let mut out = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    let now = SystemTime::now();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') && name.ends_with(".tmp") {
            let old = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| now.duration_since(t).ok());
            if old.is_some_and(|age| age > STALE_TMP) {
                let _ = fs::remove_file(entry.path());
            }
            continue;
        }
        if let Some(id) = name.strip_suffix(".msg").and_then(QueueId::parse) {
            out.push((id, entry.path()));
        }
    }
    out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    Ok(out)
}

/// Reads a waiting message.
pub fn read(id: &QueueId, path: &Path) -> Result<StoredMessage, LoadError> {
    read_message(path, id)
}

/// Deletes an imported message's drop file durably.
pub fn remove(path: &Path) -> io::Result<()> {
    fs::remove_file(path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Envelope;

    fn message(subject: &str) -> (Header, Vec<u8>) {
        let raw = format!("From: a@example.com\r\nTo: b@example.com\r\nSubject: {subject}\r\n\r\nhi\r\n").into_bytes();
        (Header::new(Envelope::new("a@example.com".to_owned(), ["b@example.com".to_owned()]), &raw), raw)
    }

    #[test]
    fn staged_messages_appear_only_when_published_and_read_back_intact() {
        let root = tempfile::tempdir().unwrap();
        ensure(root.path()).unwrap();
        let mode = fs::metadata(dir(root.path())).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let (staged, ids) = stage(root.path(), &[message("one"), message("two")]).unwrap();
        assert!(waiting(root.path()).unwrap().is_empty(), "nothing visible before publish");
        staged.publish().unwrap();
        let found = waiting(root.path()).unwrap();
        assert_eq!(found.len(), 2);
        for (id, path) in &found {
            assert!(ids.contains(id));
            let msg = read(id, path).unwrap();
            assert!(String::from_utf8_lossy(&msg.raw).contains("Subject: "));
            let file_mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(file_mode, 0o600, "private when the maildrop is private");
            remove(path).unwrap();
        }
        assert!(waiting(root.path()).unwrap().is_empty());
    }

    #[test]
    fn a_staging_that_is_dropped_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        ensure(root.path()).unwrap();
        let (staged, _) = stage(root.path(), &[message("x")]).unwrap();
        drop(staged);
        assert_eq!(fs::read_dir(dir(root.path())).unwrap().count(), 0);
    }

    #[test]
    fn a_shared_maildrop_gets_files_the_relay_can_read() {
        let root = tempfile::tempdir().unwrap();
        ensure(root.path()).unwrap();
        fs::set_permissions(dir(root.path()), fs::Permissions::from_mode(0o1730)).unwrap();
        let (staged, _) = stage(root.path(), &[message("x")]).unwrap();
        staged.publish().unwrap();
        let (_, path) = &waiting(root.path()).unwrap()[0];
        assert_eq!(fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o644);
        fs::set_permissions(dir(root.path()), fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn corrupt_and_foreign_files_are_told_apart() {
        let root = tempfile::tempdir().unwrap();
        ensure(root.path()).unwrap();
        let id = QueueId::generate();
        let path = dir(root.path()).join(format!("{id}.msg"));
        fs::write(&path, b"not a spool file").unwrap();
        fs::write(dir(root.path()).join("README"), b"ignored").unwrap();
        let found = waiting(root.path()).unwrap();
        assert_eq!(found.len(), 1);
        assert!(matches!(read(&found[0].0, &found[0].1), Err(LoadError::Corrupt(_))));
    }
}
