//! Assembling a build root's tree from package manifests: directories,
//! symlinks and hard links into the file store; no file content is written.
//!
//! The packages are laid down in lock order and each package's entries in
//! archive order, with the rules `apt::debfile::unpack_data` follows for a
//! real unpack: parents are resolved through the symlinks already in the tree
//! as the chroot will see them (never above the tree), an entry replaces the
//! file or symlink at its own path and never writes through it, and a
//! directory is never replaced. Directory modes and mtimes are applied last.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use super::cas::{Cas, Entry, Linker, Manifest};
use super::{io_err, RootfsError};
use crate::apt::debfile::{clear, resolve_in};

/// A tree being assembled under `root`.
pub(super) struct Assembly<'a> {
    cas: &'a Cas,
    linker: Linker<'a>,
    root: PathBuf,
    /// Paths (relative) known to be real directories: resolving them needs no
    /// look at the disk, since a directory is never replaced.
    dirs: HashSet<PathBuf>,
    /// (host path, mode, mtime) of every directory entry, applied at the end.
    dir_modes: Vec<(PathBuf, u32, u64)>,
}

impl<'a> Assembly<'a> {
    pub(super) fn new(cas: &'a Cas, root: &Path) -> Result<Assembly<'a>, RootfsError> {
        fs::create_dir_all(root).map_err(io_err(root))?;
        let mut dirs = HashSet::new();
        dirs.insert(PathBuf::new());
        Ok(Assembly { cas, linker: Linker::new(cas), root: root.to_owned(), dirs, dir_modes: Vec::new() })
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

    /// Where the directory `rel` is on the host, creating it (and its parents)
    /// if it does not exist.
    fn dir(&mut self, rel: &Path) -> io::Result<PathBuf> {
        if self.dirs.contains(rel) {
            return Ok(self.root.join(rel));
        }
        let host = resolve_in(&self.root, rel, true)?;
        if !host.is_dir() {
            clear(&host)?;
            fs::create_dir_all(&host)?;
        }
        if host == self.root.join(rel) {
            self.dirs.insert(rel.to_owned());
        }
        Ok(host)
    }

    pub(super) fn entry(&mut self, entry: &Entry) -> io::Result<()> {
        let path = match entry {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => Path::new(path),
        };
        if let Entry::Dir { mode, mtime, .. } = entry {
            let host = self.dir(path)?;
            self.dir_modes.push((host, *mode, *mtime));
            return Ok(());
        }
        let parent = self.dir(path.parent().unwrap_or(Path::new("")))?;
        let target = parent.join(path.file_name().ok_or_else(|| io::Error::other("no file name"))?);
        // The tree is new: try first, clear the way only when something is there.
        let place = |make: &mut dyn FnMut() -> io::Result<()>| match make() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                clear(&target)?;
                make()
            }
            other => other,
        };
        match entry {
            Entry::File { blob, .. } => {
                let linker = &mut self.linker;
                place(&mut || linker.link(blob, &target))
            }
            Entry::Symlink { target: link, mtime, .. } => {
                place(&mut || symlink(link, &target))?;
                let t = filetime::FileTime::from_unix_time(*mtime as i64, 0);
                filetime::set_symlink_file_times(&target, t, t)
            }
            Entry::Dir { .. } => unreachable!("handled above"),
        }
    }

    /// Link `content` (stored in the file store first) at `rel`.
    pub(super) fn add_file(&mut self, rel: &str, content: &[u8], mode: u32) -> Result<(), RootfsError> {
        let blob = self.cas.insert(content, mode)?;
        let entry = Entry::File { path: rel.to_owned(), blob, size: content.len() as u64 };
        self.entry(&entry).map_err(io_err(&self.root.join(rel)))
    }

    /// Apply the directories' modes and mtimes, deepest last-listed first.
    pub(super) fn finish(self) -> Result<(), RootfsError> {
        for (dir, mode, mtime) in self.dir_modes.iter().rev() {
            fs::set_permissions(dir, fs::Permissions::from_mode(*mode)).map_err(io_err(dir))?;
            let t = filetime::FileTime::from_unix_time(*mtime as i64, 0);
            filetime::set_file_mtime(dir, t).map_err(io_err(dir))?;
        }
        Ok(())
    }
}
