//! Walking and removing trees by descriptor: each directory is opened from its
//! parent's descriptor with `O_NOFOLLOW | O_DIRECTORY`, so a directory swapped
//! for a symlink mid-walk is refused rather than entered.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode};

use crate::{errno_err, io_err, open_dir_at, Dir, Error, Kind, Meta, Result};

/// The deepest a walked tree may be: each level holds one descriptor open,
/// and no source or package needs more.
pub const MAX_DEPTH: usize = 256;

/// One entry met by [`Dir::walk`].
pub struct Visit<'a> {
    /// The directory holding the entry (operate on `name` through it).
    pub parent: &'a Dir,
    pub name: &'a OsStr,
    /// Path relative to the walked directory.
    pub rel: &'a Path,
    /// `lstat` of the entry; for a directory, `fstat` of the descriptor walked into.
    pub meta: Meta,
}

impl Dir {
    /// Visit every entry below this directory, depth first, names sorted by
    /// bytes, a directory before its contents. `visit` returns whether to
    /// descend into a directory. Symlinks are visited, never followed.
    pub fn walk<E: From<Error>>(&self, visit: &mut dyn FnMut(&Visit<'_>) -> Result<bool, E>) -> Result<(), E> {
        walk_in(self, &mut PathBuf::new(), 0, visit)
    }
}

fn walk_in<E: From<Error>>(
    dir: &Dir,
    rel: &mut PathBuf,
    depth: usize,
    visit: &mut dyn FnMut(&Visit<'_>) -> Result<bool, E>,
) -> Result<(), E> {
    if depth >= MAX_DEPTH {
        return Err(Error::TooDeep { path: dir.shown.clone() }.into());
    }
    for (name, kind) in dir.entries()? {
        rel.push(&name);
        let shown = dir.shown(&name);
        if kind == Kind::Dir {
            let fd = open_dir_at(dir.fd.as_fd(), &name, &shown)?;
            let meta = Meta::of(&rustix::fs::fstat(&fd).map_err(io_err("stat", &shown))?);
            let child = Dir { fd, shown };
            if visit(&Visit { parent: dir, name: &name, rel, meta })? {
                walk_in(&child, rel, depth + 1, visit)?;
            }
        } else {
            let meta = match rustix::fs::statat(&dir.fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Meta::of(&st),
                Err(e) => return Err(errno_err("stat", &shown, e).into()),
            };
            if meta.kind == Kind::Dir {
                // Replaced by a directory since it was listed: not walked.
                return Err(Error::Io {
                    op: "walk",
                    path: shown,
                    source: std::io::Error::other("changed while being read"),
                }
                .into());
            }
            visit(&Visit { parent: dir, name: &name, rel, meta })?;
        }
        rel.pop();
    }
    Ok(())
}

/// The entries of the directory `fd`, sorted, with their `lstat` kind.
pub(crate) fn entries(fd: BorrowedFd<'_>, shown: &Path) -> Result<Vec<(OsString, Kind)>> {
    let mut out = Vec::new();
    let dir = rustix::fs::Dir::read_from(fd).map_err(io_err("read directory", shown))?;
    for entry in dir {
        let entry = entry.map_err(io_err("read directory", shown))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsStr::from_bytes(name).to_owned();
        let kind = match entry.file_type() {
            FileType::Unknown => match rustix::fs::statat(fd, &name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Kind::of(FileType::from_raw_mode(st.st_mode)),
                Err(e) => return Err(errno_err("stat", &shown.join(&name), e)),
            },
            t => Kind::of(t),
        };
        out.push((name, kind));
    }
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(out)
}

/// Remove `name` under `parent` and everything below it.
pub(crate) fn remove_at(parent: BorrowedFd<'_>, name: &OsStr, shown: &Path, depth: usize) -> Result<()> {
    let st = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(errno_err("stat", shown, e)),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(io_err("remove", shown));
    }
    if depth >= MAX_DEPTH {
        return Err(Error::TooDeep { path: shown.to_owned() });
    }
    let fd = open_dir_at(parent, name, shown)?;
    // A read-only directory (a build root's, a package's) must be made
    // writable before its entries can go; it is ours to remove.
    if st.st_mode & 0o300 != 0o300 {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700)).map_err(io_err("chmod", shown))?;
    }
    for (child, _) in entries(fd.as_fd(), shown)? {
        remove_at(fd.as_fd(), &child, &shown.join(&child), depth + 1)?;
    }
    rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR).map_err(io_err("remove directory", shown))
}
