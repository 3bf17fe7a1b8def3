//! Walking and removing trees by descriptor: each directory is opened from its
//! parent's descriptor with `O_NOFOLLOW | O_DIRECTORY`, so a directory swapped
//! for a symlink mid-walk is refused rather than entered.
//!
//! A listing is read under a budget of entries: a directory of a million
//! names is refused while it is being read ([`Error::TooMany`]), before its
//! names are held. Removal is in `remove.rs`.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType};

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
        self.walk_limited(u64::MAX, visit)
    }

    /// [`Dir::walk`] listing at most `max_entries` entries in all: the
    /// listing that would pass the budget fails with [`Error::TooMany`] while
    /// it is read, so a tree of any size costs at most the budget's names.
    pub fn walk_limited<E: From<Error>>(
        &self,
        max_entries: u64,
        visit: &mut dyn FnMut(&Visit<'_>) -> Result<bool, E>,
    ) -> Result<(), E> {
        let mut budget = Budget { left: max_entries, limit: max_entries };
        walk_in(self, &mut PathBuf::new(), 0, &mut budget, visit)
    }

    /// This directory's entries (not `.`/`..`), sorted by name bytes, with the
    /// kind `lstat` gives.
    pub fn entries(&self) -> Result<Vec<(OsString, Kind)>> {
        Ok(list(self.fd.as_fd(), &self.shown, u64::MAX)?.0)
    }

    /// [`Dir::entries`], refused with [`Error::TooMany`] once the listing
    /// passes `limit` entries: reading stops there, so the names held stay
    /// within the limit.
    pub fn entries_limited(&self, limit: u64) -> Result<Vec<(OsString, Kind)>> {
        match list(self.fd.as_fd(), &self.shown, limit)? {
            (entries, true) => Ok(entries),
            (_, false) => Err(Error::TooMany { path: self.shown.clone(), limit }),
        }
    }

    /// The first `limit` entries the directory yields (in no useful order,
    /// then sorted), for a sweep that is retried later and need not see all.
    pub fn entries_up_to(&self, limit: u64) -> Result<Vec<(OsString, Kind)>> {
        Ok(list(self.fd.as_fd(), &self.shown, limit)?.0)
    }
}

/// Entries a walk may still list, out of `limit`.
struct Budget {
    left: u64,
    limit: u64,
}

fn walk_in<E: From<Error>>(
    dir: &Dir,
    rel: &mut PathBuf,
    depth: usize,
    budget: &mut Budget,
    visit: &mut dyn FnMut(&Visit<'_>) -> Result<bool, E>,
) -> Result<(), E> {
    if depth >= MAX_DEPTH {
        return Err(Error::TooDeep { path: dir.shown.clone() }.into());
    }
    let (entries, complete) = list(dir.fd.as_fd(), &dir.shown, budget.left)?;
    if !complete {
        return Err(Error::TooMany { path: dir.shown.clone(), limit: budget.limit }.into());
    }
    budget.left -= entries.len() as u64;
    for (name, kind) in entries {
        rel.push(&name);
        let shown = dir.shown(&name);
        if kind == Kind::Dir {
            let fd = open_dir_at(dir.fd.as_fd(), &name, &shown)?;
            let meta = Meta::of(&rustix::fs::fstat(&fd).map_err(io_err("stat", &shown))?);
            let child = Dir { fd, shown };
            if visit(&Visit { parent: dir, name: &name, rel, meta })? {
                walk_in(&child, rel, depth + 1, budget, visit)?;
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

/// The entries of the directory `fd` (not `.`/`..`), sorted, with their
/// `lstat` kind: at most `max` of them, and whether that was all (reading
/// stops at the first entry past `max`).
pub(crate) fn list(fd: BorrowedFd<'_>, shown: &Path, max: u64) -> Result<(Vec<(OsString, Kind)>, bool)> {
    let mut out = Vec::new();
    let mut complete = true;
    let dir = rustix::fs::Dir::read_from(fd).map_err(io_err("read directory", shown))?;
    for entry in dir {
        let entry = entry.map_err(io_err("read directory", shown))?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        if out.len() as u64 >= max {
            complete = false;
            break;
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
    Ok((out, complete))
}
