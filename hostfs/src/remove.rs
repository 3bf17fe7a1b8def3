//! Removing a tree by descriptor, however deep it is.
//!
//! A removal cannot refuse a tree for its depth the way a walk does: what is
//! removed is a leftover (a dead build's work directory holds a copy of a
//! source, three levels below its top; a build's outputs are whatever it
//! left), and a tree that can never be removed makes every later cleanup
//! fail. Holding one descriptor per level would tie the number of open
//! descriptors to the tree's depth, and recursion would tie the stack to it.
//!
//! So the descent is a loop over at most [`OPEN_DEPTH`] open directories. A
//! subdirectory met at that depth is renamed, by descriptor, up into the top
//! directory being removed (both are held open; the name is new, and
//! `RENAME_NOREPLACE` makes sure of it), and removed from there later as a new
//! top-level entry: each such move brings the rest of that branch
//! `OPEN_DEPTH` levels closer to the top, so any depth is removed with a
//! bounded number of descriptors. Nothing is followed: each directory is
//! opened from its parent with `O_NOFOLLOW | O_DIRECTORY`, a symlink is
//! unlinked like a file.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, RenameFlags};

use crate::walk::list;
use crate::{errno_err, io_err, open_dir_at, Dir, Kind, Result};

/// Directories a removal holds open at most; a deeper one is moved up.
pub(crate) const OPEN_DEPTH: usize = 64;

/// A directory being emptied: its descriptor, its name in its parent (the
/// frame below it, or the caller's directory for the top), and the
/// subdirectories still to remove (its other entries are already gone).
struct Frame {
    fd: OwnedFd,
    name: OsString,
    shown: PathBuf,
    subdirs: Vec<OsString>,
}

impl Frame {
    /// Open `name` under `parent`, make it writable, unlink every entry that
    /// is not a directory and note the directories.
    fn open(parent: BorrowedFd<'_>, name: &OsStr, shown: PathBuf, mode: u32) -> Result<Frame> {
        let fd = open_dir_at(parent, name, &shown)?;
        // A read-only directory (a build root's, a package's) must be made
        // writable before its entries can go; it is ours to remove.
        if mode & 0o700 != 0o700 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700)).map_err(io_err("chmod", &shown))?;
        }
        let (entries, _) = list(fd.as_fd(), &shown, u64::MAX)?;
        let mut subdirs = Vec::new();
        for (child, kind) in entries {
            if kind == Kind::Dir {
                subdirs.push(child);
                continue;
            }
            match rustix::fs::unlinkat(&fd, &child, AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                // Became a directory since it was listed.
                Err(rustix::io::Errno::ISDIR | rustix::io::Errno::PERM) if is_dir_at(fd.as_fd(), &child) => {
                    subdirs.push(child)
                }
                Err(e) => return Err(errno_err("remove", &shown.join(&child), e)),
            }
        }
        Ok(Frame { fd, name: name.to_owned(), shown, subdirs })
    }
}

fn is_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

impl Dir {
    /// Remove `rel` and everything below it, however deep, reaching each
    /// directory by descriptor (a symlink is removed, never entered). Missing
    /// is fine. See `remove.rs` for how depth is handled.
    pub fn remove_all(&self, rel: impl AsRef<Path>) -> Result<()> {
        let rel = rel.as_ref();
        let shown = self.shown(rel);
        self.at(rel, |parent, name| remove_at(parent, name, &shown))
    }
}

/// Remove `name` under `parent` and everything below it. Missing is fine.
pub(crate) fn remove_at(parent: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<()> {
    remove_with_depth(parent, name, shown, OPEN_DEPTH)
}

/// [`remove_at`] holding at most `open_depth` directories open (tests use a small one).
pub(crate) fn remove_with_depth(parent: BorrowedFd<'_>, name: &OsStr, shown: &Path, open_depth: usize) -> Result<()> {
    let st = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(errno_err("stat", shown, e)),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(io_err("remove", shown));
    }
    let mut frames = vec![Frame::open(parent, name, shown.to_owned(), st.st_mode)?];
    let mut moved = 0u64;
    while let Some(frame) = frames.last_mut() {
        let next = frame.subdirs.pop();
        let Some(child) = next else {
            // Emptied: remove it from its parent.
            let done = frames.pop().expect("the frame just looked at");
            let parent = frames.last().map_or(parent, |f| f.fd.as_fd());
            rustix::fs::unlinkat(parent, &done.name, AtFlags::REMOVEDIR)
                .map_err(io_err("remove directory", &done.shown))?;
            continue;
        };
        let open = frames.len();
        let frame = frames.last_mut().expect("not empty");
        let child_shown = frame.shown.join(&child);
        if open < open_depth.max(2) {
            let mode = match rustix::fs::statat(&frame.fd, &child, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => st.st_mode,
                Ok(_) => {
                    // Swapped for a non-directory since it was listed.
                    rustix::fs::unlinkat(&frame.fd, &child, AtFlags::empty())
                        .map_err(io_err("remove", &child_shown))?;
                    continue;
                }
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(errno_err("stat", &child_shown, e)),
            };
            let next = Frame::open(frame.fd.as_fd(), &child, child_shown, mode)?;
            frames.push(next);
            continue;
        }
        // Too deep to hold open: move it up into the top directory (frame 0)
        // under a new name, and remove it from there once it is reached.
        let (top, rest) = frames.split_first_mut().expect("at least the top frame");
        let from = rest.last().expect("deeper than the top");
        let new = move_up(from.fd.as_fd(), &child, &child_shown, top.fd.as_fd(), &mut moved)?;
        top.subdirs.push(new);
    }
    Ok(())
}

/// Rename `name` under `from` into `top` under a name that is not taken
/// there (`RENAME_NOREPLACE`: never over an entry); returns that name.
fn move_up(from: BorrowedFd<'_>, name: &OsStr, shown: &Path, top: BorrowedFd<'_>, moved: &mut u64) -> Result<OsString> {
    loop {
        *moved += 1;
        let new = OsString::from(format!(".hermod-deep-{}", *moved));
        match rustix::fs::renameat_with(from, name, top, &new, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(new),
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(errno_err("move up to remove", shown, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    use super::*;

    /// `depth` nested directories `d` under `top`, a file and a link at each tenth level.
    fn deep(top: &Path, depth: usize, link_to: &Path) {
        let dir = Dir::open(top).unwrap();
        let mut cur = dir.create_dir("d", 0o755).unwrap();
        for level in 1..depth {
            if level % 10 == 0 {
                cur.write_file("f", b"x", 0o644).unwrap();
                cur.symlink(link_to, "l").unwrap();
            }
            let next = cur.create_dir("d", 0o755).unwrap();
            if level % 100 == 50 {
                // Read-only on the way: removal must open it up.
                cur.set_own_mode(0o555).unwrap();
            }
            cur = next;
        }
    }

    #[test]
    fn a_tree_of_any_depth_is_removed_with_few_descriptors() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("keep"), "").unwrap();
        fs::create_dir(t.path().join("top")).unwrap();
        deep(&t.path().join("top"), 1000, outside.path());
        let parent = Dir::open(t.path()).unwrap();
        // Far below the tree's depth: the default is only larger.
        remove_with_depth(parent.as_fd(), OsStr::new("top"), &t.path().join("top"), 8).unwrap();
        assert!(!t.path().join("top").exists());
        assert!(outside.path().join("keep").exists(), "a link is removed, never followed");
        // And the public entry point, with its own depth.
        fs::create_dir(t.path().join("again")).unwrap();
        deep(&t.path().join("again"), 1000, outside.path());
        parent.remove_all("again").unwrap();
        assert!(!t.path().join("again").exists());
    }

    #[test]
    fn moved_up_names_never_replace_an_entry_of_the_top() {
        let t = tempfile::tempdir().unwrap();
        let top = t.path().join("top");
        fs::create_dir_all(top.join("a/b/c/d/e")).unwrap();
        // A name the first move would take, already there (and read-only).
        fs::create_dir_all(top.join(".hermod-deep-1/x")).unwrap();
        fs::set_permissions(top.join(".hermod-deep-1"), fs::Permissions::from_mode(0o555)).unwrap();
        let parent = Dir::open(t.path()).unwrap();
        remove_with_depth(parent.as_fd(), OsStr::new("top"), &top, 2).unwrap();
        assert!(!top.exists());
    }

    #[test]
    fn a_file_or_link_is_removed_itself() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("f"), "").unwrap();
        symlink("/etc", t.path().join("l")).unwrap();
        let parent = Dir::open(t.path()).unwrap();
        parent.remove_all("f").unwrap();
        parent.remove_all("l").unwrap();
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
        assert!(Path::new("/etc").is_dir());
    }
}
