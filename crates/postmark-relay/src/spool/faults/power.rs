//! The power-cut seam (tests only): a spool under watch has every change to its files
//! ([`super::super::disk`]) recorded in the order it happened, until the power is cut at a chosen
//! operation; from then on every change fails with `EIO`, as on a machine without power. What a
//! disk would hold after the cut is computed from the record by [`super::model`].
//!
//! The operations are serialized while a spool is watched (one lock is held across the system
//! call and its record), so the record's order is the order the file system saw.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::model::{Image, Op};

/// Where to cut the power.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Never (a run that ends cleanly).
    Never,
    /// Before the operation with this index (0-based) of the whole spool.
    AtOp(usize),
    /// Before this (0-based) operation made by the checkpoint thread.
    AtCheckpointOp(usize),
}

/// One watched spool.
#[derive(Debug)]
pub(crate) struct Watch {
    root: PathBuf,
    boot_id: String,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    cut: Cut,
    off: bool,
    ops: Vec<Op>,
    checkpoint_ops: usize,
    initial: Image,
}

static WATCHED: Mutex<Vec<Arc<Watch>>> = Mutex::new(Vec::new());
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// Held across a watched operation and its record.
static SERIAL: Mutex<()> = Mutex::new(());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watch {
    /// Watches the spool at `root` (its files as they are now are on disk: see [`Image::read`]),
    /// which from now on runs under the boot id `boot_id`, cutting the power at `cut`.
    pub(crate) fn start(root: &Path, boot_id: &str, cut: Cut) -> io::Result<Arc<Watch>> {
        let initial = Image::read(root)?;
        let watch = Arc::new(Watch {
            root: root.to_path_buf(),
            boot_id: boot_id.to_owned(),
            state: Mutex::new(State { cut, off: false, ops: Vec::new(), checkpoint_ops: 0, initial }),
        });
        lock(&WATCHED).push(Arc::clone(&watch));
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        Ok(watch)
    }

    /// Whether the power is off.
    pub(crate) fn is_off(&self) -> bool {
        lock(&self.state).off
    }

    /// Cuts the power now (if it is still on).
    pub(crate) fn cut_now(&self) {
        let _serial = lock(&SERIAL);
        lock(&self.state).off = true;
    }

    /// The initial image and the record, once the power is off (nothing changes any more).
    pub(crate) fn record(&self) -> (Image, Vec<Op>) {
        let _serial = lock(&SERIAL);
        let state = lock(&self.state);
        (state.initial.clone(), state.ops.clone())
    }

    /// Stops watching.
    pub(crate) fn stop(self: &Arc<Self>) {
        let mut watched = lock(&WATCHED);
        let before = watched.len();
        watched.retain(|w| !Arc::ptr_eq(w, self));
        if watched.len() < before {
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn relative(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.root).unwrap_or(path).to_path_buf()
    }

    fn push(&self, op: Op) {
        lock(&self.state).ops.push(op);
    }
}

fn watch_of(path: &Path) -> Option<Arc<Watch>> {
    if ACTIVE.load(Ordering::SeqCst) == 0 {
        return None;
    }
    lock(&WATCHED).iter().find(|w| path.starts_with(&w.root)).cloned()
}

/// The boot id a watched spool runs under.
pub(crate) fn boot_id(root: &Path) -> Option<String> {
    watch_of(root).map(|w| w.boot_id.clone())
}

/// An operation about to happen on a watched spool (or on any other path: then nothing).
pub(crate) struct Gate {
    watch: Option<(Arc<Watch>, MutexGuard<'static, ()>)>,
}

fn power_off() -> io::Error {
    // EIO, as a disk without power answers.
    io::Error::from_raw_os_error(5)
}

/// Lets an operation on `path` through, or fails it once the power is off (and cuts the power
/// when this is the chosen operation).
pub(crate) fn gate(path: &Path) -> io::Result<Gate> {
    let Some(watch) = watch_of(path) else { return Ok(Gate { watch: None }) };
    let serial = lock(&SERIAL);
    {
        let mut state = lock(&watch.state);
        if state.off {
            return Err(power_off());
        }
        let on_checkpoint = std::thread::current().name() == Some("spool-checkpoint");
        let cut_here = match state.cut {
            Cut::Never => false,
            Cut::AtOp(n) => state.ops.len() >= n,
            Cut::AtCheckpointOp(n) => on_checkpoint && state.checkpoint_ops >= n,
        };
        if on_checkpoint {
            state.checkpoint_ops += 1;
        }
        if cut_here {
            state.off = true;
            return Err(power_off());
        }
    }
    Ok(Gate { watch: Some((watch, serial)) })
}

impl Gate {
    fn record(&self, op: impl FnOnce(&Watch) -> Op) {
        if let Some((watch, _)) = &self.watch {
            watch.push(op(watch));
        }
    }

    pub(crate) fn created(&self, path: &Path) {
        self.record(|w| Op::Create(w.relative(path), std::fs::metadata(path).expect("the file just created").ino()));
    }

    /// `len` bytes were just written to `file` at `path`, ending at its position.
    pub(crate) fn wrote(&self, file: &File, path: &Path, len: usize) {
        use std::io::Seek;
        self.record(|w| {
            // Read back what was written (the file may be write-only: read it by its name).
            let end = (&*file).stream_position().expect("a position");
            let offset = end - len as u64;
            let mut data = vec![0; len];
            File::open(path).and_then(|f| f.read_exact_at(&mut data, offset)).expect("the bytes just written");
            Op::Write { path: w.relative(path), offset, data }
        });
    }

    pub(crate) fn cut(&self, path: &Path, len: u64) {
        self.record(|w| Op::SetLen { path: w.relative(path), len });
    }

    /// A file or directory was synced (by its inode: the checkpoint may sync a file whose name
    /// the worker has just renamed).
    pub(crate) fn synced(&self, file: &File, _path: &Path) {
        self.record(|_| {
            let meta = file.metadata().expect("the synced file's metadata");
            if meta.is_dir() { Op::SyncDir } else { Op::Sync(meta.ino()) }
        });
    }

    pub(crate) fn renamed(&self, from: &Path, to: &Path) {
        self.record(|w| Op::Rename(w.relative(from), w.relative(to)));
    }

    pub(crate) fn removed(&self, path: &Path) {
        self.record(|w| Op::Remove(w.relative(path)));
    }
}
