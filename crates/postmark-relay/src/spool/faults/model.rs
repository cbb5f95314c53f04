//! What a disk holds after a power cut, computed from the record of a spool's operations
//! ([`super::power`]). The rules are those of ext4 with `data=ordered` that the spool relies on,
//! and no more:
//!
//! * **File data** (writes and size changes) is durable only once that file is `fsync`'d or
//!   `fdatasync`'d. Of the data changes made after a file's last sync, a cut keeps a random prefix
//!   (none, some or all of them, in order), and the last change it keeps may be torn (only the
//!   first bytes of a write land). So a file created and written but never synced comes back
//!   empty, short, or whole.
//! * **Names** (creating, renaming, unlinking a file) reach the disk in the order they were made
//!   (ext4 commits its metadata journal in order), and a cut keeps a random prefix of them that
//!   contains every one made before the last `fsync` of a directory (which commits the journal).
//!   Syncing a file does not make its name durable, and no name is durable without that.
//! * Directories are not created or removed by the spool while it runs (they exist from the start).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rand::Rng;

/// One change to the spool's files, paths relative to its root.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// A new, empty file, and its inode number.
    Create(PathBuf, u64),
    /// Bytes written at an offset.
    Write { path: PathBuf, offset: u64, data: Vec<u8> },
    /// The file cut or extended to a length.
    SetLen { path: PathBuf, len: u64 },
    /// `fsync`/`fdatasync` of a file, by its inode number.
    Sync(u64),
    /// `fsync` of a directory.
    SyncDir,
    /// A rename.
    Rename(PathBuf, PathBuf),
    /// An unlink.
    Remove(PathBuf),
}

/// A spool's files: directories and every file's bytes, paths relative to the root.
#[derive(Debug, Clone, Default)]
pub(crate) struct Image {
    pub(crate) dirs: BTreeSet<PathBuf>,
    pub(crate) files: BTreeMap<PathBuf, Vec<u8>>,
    /// Each file's inode number where it was read (not compared).
    pub(crate) inos: BTreeMap<PathBuf, u64>,
}

impl PartialEq for Image {
    fn eq(&self, other: &Image) -> bool {
        self.dirs == other.dirs && self.files == other.files
    }
}

impl Eq for Image {}

/// Files of the spool that are not the spool's data (the lock file), and are not compared.
const IGNORED: &[&str] = &["relay.lock"];

impl Image {
    /// Reads the tree under `root`.
    pub(crate) fn read(root: &Path) -> io::Result<Image> {
        let mut image = Image::default();
        let mut todo = vec![PathBuf::new()];
        while let Some(rel) = todo.pop() {
            for entry in fs::read_dir(root.join(&rel))? {
                let entry = entry?;
                let path = rel.join(entry.file_name());
                if entry.file_type()?.is_dir() {
                    image.dirs.insert(path.clone());
                    todo.push(path);
                } else if !IGNORED.iter().any(|i| Path::new(i) == path) {
                    use std::os::unix::fs::MetadataExt;
                    image.inos.insert(path.clone(), entry.metadata()?.ino());
                    image.files.insert(path, fs::read(entry.path())?);
                }
            }
        }
        Ok(image)
    }

    /// Writes the tree under `root` (which must not exist yet).
    pub(crate) fn write(&self, root: &Path) -> io::Result<()> {
        fs::create_dir_all(root)?;
        for dir in &self.dirs {
            super::super::files::create_private_dir(&root.join(dir))?;
        }
        for (path, bytes) in &self.files {
            fs::write(root.join(path), bytes)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
enum Change {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

fn apply(bytes: &mut Vec<u8>, change: &Change) {
    match change {
        Change::Write { offset, data } => {
            let offset = usize::try_from(*offset).expect("an offset");
            if bytes.len() < offset + data.len() {
                bytes.resize(offset + data.len(), 0);
            }
            bytes[offset..offset + data.len()].copy_from_slice(data);
        }
        Change::SetLen(len) => bytes.resize(usize::try_from(*len).expect("a length"), 0),
    }
}

#[derive(Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    pending: Vec<Change>,
    live: Vec<u8>,
}

/// A name operation, its paths resolved to inodes.
enum NameOp {
    Link(PathBuf, usize),
    Rename(PathBuf, PathBuf),
    Unlink(PathBuf),
}

/// The record replayed: every inode's data, and the name operations in order.
struct Replay {
    inodes: Vec<Inode>,
    initial_names: HashMap<PathBuf, usize>,
    names: HashMap<PathBuf, usize>,
    name_ops: Vec<NameOp>,
    /// Name operations before the last directory sync: all durable.
    committed: usize,
}

fn replay(initial: &Image, ops: &[Op]) -> Result<Replay, String> {
    let mut inodes = Vec::new();
    let mut names = HashMap::new();
    // Real inode number → ours.
    let mut by_ino = HashMap::new();
    for (path, bytes) in &initial.files {
        if let Some(&ino) = initial.inos.get(path) {
            by_ino.insert(ino, inodes.len());
        }
        names.insert(path.clone(), inodes.len());
        inodes.push(Inode { durable: bytes.clone(), pending: Vec::new(), live: bytes.clone() });
    }
    let initial_names = names.clone();
    let mut name_ops = Vec::new();
    let mut committed = 0;
    let ino = |names: &HashMap<PathBuf, usize>, path: &PathBuf, i: usize| {
        names.get(path).copied().ok_or_else(|| format!("op {i}: {} is not a file", path.display()))
    };
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Create(path, ino) => {
                if names.contains_key(path) {
                    return Err(format!("op {i}: {} created twice", path.display()));
                }
                by_ino.insert(*ino, inodes.len());
                names.insert(path.clone(), inodes.len());
                name_ops.push(NameOp::Link(path.clone(), inodes.len()));
                inodes.push(Inode::default());
            }
            Op::Write { path, offset, data } => {
                let n = ino(&names, path, i)?;
                let change = Change::Write { offset: *offset, data: data.clone() };
                apply(&mut inodes[n].live, &change);
                inodes[n].pending.push(change);
            }
            Op::SetLen { path, len } => {
                let n = ino(&names, path, i)?;
                let change = Change::SetLen(*len);
                apply(&mut inodes[n].live, &change);
                inodes[n].pending.push(change);
            }
            Op::Sync(real) => {
                let n = *by_ino.get(real).ok_or_else(|| format!("op {i}: inode {real} is not a file"))?;
                let inode = &mut inodes[n];
                inode.durable = inode.live.clone();
                inode.pending.clear();
            }
            Op::SyncDir => committed = name_ops.len(),
            Op::Rename(from, to) => {
                let n = ino(&names, from, i)?;
                names.remove(from);
                names.insert(to.clone(), n);
                name_ops.push(NameOp::Rename(from.clone(), to.clone()));
            }
            Op::Remove(path) => {
                ino(&names, path, i)?;
                names.remove(path);
                name_ops.push(NameOp::Unlink(path.clone()));
            }
        }
    }
    Ok(Replay { inodes, initial_names, names, name_ops, committed })
}

/// The files as the running spool sees them after the recorded operations (no cut): a test
/// compares it with the real directory to show that the record misses nothing.
pub(crate) fn live(initial: &Image, ops: &[Op]) -> Result<Image, String> {
    let replay = replay(initial, ops)?;
    let files = replay.names.iter().map(|(path, &n)| (path.clone(), replay.inodes[n].live.clone())).collect();
    Ok(Image { dirs: initial.dirs.clone(), files, inos: BTreeMap::new() })
}

/// What the disk holds after a power cut following `ops`, with the cut's choices drawn from `rng`.
pub(crate) fn after_cut(initial: &Image, ops: &[Op], rng: &mut impl Rng) -> Result<Image, String> {
    let replay = replay(initial, ops)?;
    let kept = rng.random_range(replay.committed..=replay.name_ops.len());
    let mut names = replay.initial_names.clone();
    for op in &replay.name_ops[..kept] {
        match op {
            NameOp::Link(path, n) => {
                names.insert(path.clone(), *n);
            }
            NameOp::Rename(from, to) => {
                if let Some(n) = names.remove(from) {
                    names.insert(to.clone(), n);
                }
            }
            NameOp::Unlink(path) => {
                names.remove(path);
            }
        }
    }
    let mut files = BTreeMap::new();
    for (path, n) in names {
        let inode = &replay.inodes[n];
        let mut bytes = inode.durable.clone();
        let landed = rng.random_range(0..=inode.pending.len());
        for (i, change) in inode.pending[..landed].iter().enumerate() {
            match change {
                // The last change that lands may be torn.
                Change::Write { offset, data } if i + 1 == landed && rng.random_bool(0.5) => {
                    let torn = rng.random_range(0..data.len().max(1));
                    apply(&mut bytes, &Change::Write { offset: *offset, data: data[..torn.min(data.len())].to_vec() });
                }
                change => apply(&mut bytes, change),
            }
        }
        files.insert(path, bytes);
    }
    Ok(Image { dirs: initial.dirs.clone(), files, inos: BTreeMap::new() })
}
