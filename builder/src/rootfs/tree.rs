//! Assembling a build root's tree from package manifests: directories,
//! symlinks and hard links into the file store; no file content is written.
//!
//! The packages are laid down in lock order and each package's entries in
//! archive order, with the rules `apt::debfile::unpack_data` follows for a
//! real unpack, all by descriptor ([`hermod_hostfs::Dir`]):
//!
//! * the root is opened once; an entry's parent is opened with
//!   [`Dir::open_dir_in_root`], so the tree's own symlinks (`lib -> usr/lib`)
//!   are followed as the chroot will see them and nothing ever resolves above
//!   the root, whatever a package's symlink says (`/`, `..`, `/etc`);
//! * a missing parent is made component by component, each one in the
//!   directory the previous one resolved to; a file or a dangling symlink in
//!   the way of a directory is replaced by one;
//! * the entry itself is made through its parent's descriptor (`linkat`,
//!   `symlinkat`): what was at its name is removed first, never written
//!   through, and a directory is never replaced;
//! * directory modes and mtimes are applied last, by descriptor (a read-only
//!   directory must still receive its contents).

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

use hermod_hostfs::{Dir, Error as HostError};

use super::cas::{Cas, Entry, Linker, Manifest};
use super::{io_err, RootfsError};
use crate::apt::debfile::{clear_at, dir_in_root};

/// A tree being assembled under `root`.
pub(super) struct Assembly<'a> {
    cas: &'a Cas,
    linker: Linker<'a>,
    root: Dir,
    /// The directory the last entry went into (entries come grouped by
    /// directory). Forgotten whenever a symlink is made, since a symlink can
    /// change where a path leads.
    last_parent: Option<(PathBuf, Dir)>,
    /// (path as listed, mode, mtime) of every directory entry, applied at the end.
    dir_modes: Vec<(PathBuf, u32, u64)>,
}

impl<'a> Assembly<'a> {
    pub(super) fn new(cas: &'a Cas, root: &Path) -> Result<Assembly<'a>, RootfsError> {
        std::fs::create_dir_all(root).map_err(io_err(root))?;
        let root = Dir::open_nofollow(root).map_err(|e| io_err(root)(e.into()))?;
        Ok(Assembly { cas, linker: Linker::new(cas), root, last_parent: None, dir_modes: Vec::new() })
    }

    /// The root's descriptor (for what the system adds after the packages).
    pub(super) fn root(&self) -> &Dir {
        &self.root
    }

    pub(super) fn add(&mut self, manifest: &Manifest) -> Result<(), RootfsError> {
        for entry in &manifest.entries {
            self.entry(entry).map_err(|source| RootfsError::Assemble {
                package: format!("{} {}", manifest.package.name, manifest.package.version),
                path: match entry {
                    Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => path.clone(),
                },
                source,
            })?;
        }
        Ok(())
    }

    /// The directory `rel` as the chroot will see it, made where missing
    /// ([`dir_in_root`]).
    pub(super) fn dir(&self, rel: &Path) -> Result<Dir, HostError> {
        dir_in_root(&self.root, rel)
    }

    /// The parent directory of `rel` (taken from the cache; [`Assembly::keep`]
    /// puts it back) and `rel`'s name.
    fn parent_of<'p>(&mut self, rel: &'p Path) -> io::Result<(PathBuf, Dir, &'p OsStr)> {
        let name = rel.file_name().ok_or_else(|| io::Error::other("no file name"))?;
        let parent = rel.parent().unwrap_or(Path::new("")).to_owned();
        let dir = match self.last_parent.take() {
            Some((p, dir)) if p == parent => dir,
            _ => self.dir(&parent)?,
        };
        Ok((parent, dir, name))
    }

    fn keep(&mut self, parent: PathBuf, dir: Dir) {
        self.last_parent = Some((parent, dir));
    }

    pub(super) fn entry(&mut self, entry: &Entry) -> io::Result<()> {
        match entry {
            Entry::Dir { path, mode, mtime } => {
                self.dir(Path::new(path))?;
                self.dir_modes.push((PathBuf::from(path), *mode, *mtime));
            }
            Entry::File { path, blob, .. } => {
                let (rel, parent, name) = self.parent_of(Path::new(path))?;
                place(&parent, name, &mut |dir, name| self.linker.link(blob, dir, name))?;
                self.keep(rel, parent);
            }
            Entry::Symlink { path, target, mtime } => {
                // Not kept: a symlink can change where a path leads.
                let (_, parent, name) = self.parent_of(Path::new(path))?;
                place(&parent, name, &mut |dir, name| Ok(dir.symlink(target, name)?))?;
                parent.set_mtime(name, *mtime as i64)?;
            }
        }
        Ok(())
    }

    /// Link `content` (stored in the file store first) at `rel`.
    pub(super) fn add_file(&mut self, rel: &str, content: &[u8], mode: u32) -> Result<(), RootfsError> {
        let blob = self.cas.insert(content, mode)?;
        let entry = Entry::File { path: rel.to_owned(), blob, size: content.len() as u64 };
        self.entry(&entry).map_err(io_err(&self.root.shown(rel)))
    }

    /// Apply the directories' modes and mtimes, deepest last-listed first,
    /// each through its own descriptor (a mode never lands on a link's target).
    pub(super) fn finish(self) -> Result<(), RootfsError> {
        for (rel, mode, mtime) in self.dir_modes.iter().rev() {
            let host = |e: HostError| io_err(&self.root.shown(rel))(e.into());
            let dir = self.root.open_dir_in_root(rel).map_err(host)?;
            dir.set_own_mode(*mode).map_err(host)?;
            dir.set_mtime("", *mtime as i64).map_err(host)?;
        }
        Ok(())
    }
}

/// Make `name` in `dir` with `make`; if something is there, make way
/// ([`clear_at`]: never a directory) and make it again. The tree is new: try first.
fn place(dir: &Dir, name: &OsStr, make: &mut dyn FnMut(&Dir, &OsStr) -> io::Result<()>) -> io::Result<()> {
    match make(dir, name) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            clear_at(dir, name)?;
            make(dir, name)
        }
        other => other,
    }
}

/// Delete a directory tree, making its directories writable first if a
/// read-only one stops an unprivileged owner.
pub(crate) fn remove_tree(path: &Path) -> Result<(), RootfsError> {
    // By descriptor (hermod_hostfs): a tree built from packages holds their
    // symlinks and read-only directories; a symlink is removed, never
    // entered, and a read-only directory is opened up before it is emptied.
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(super::io_err(path)(io::Error::other("not a directory to remove")));
    };
    let dir = match hermod_hostfs::Dir::open_nofollow(parent) {
        Ok(dir) => dir,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(super::io_err(parent)(e.into())),
    };
    dir.remove_all(name).map_err(|e| super::io_err(path)(e.into()))
}
