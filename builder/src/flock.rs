//! Advisory file locks (flock) that the store's writers and readers agree on.
//!
//! Every lock file hermod takes, and what it guards. Within a group, always
//! taken in the table's order, never the reverse; a build takes its key lock
//! before any build-root lock, and the cache lock only around a cache write.
//!
//! | file | shared | exclusive |
//! |---|---|---|
//! | `keylocks/<key>.lock` (`cache::lock_key`) | – | one process builds that key (others wait, then hit) |
//! | `rootfs/<hash>.use` (`rootfs/locks.rs`) | a process uses (or is creating) that root | `gc` removes it |
//! | `rootfs/<hash>.lock` | – | one process creates that root |
//! | `files.lock` | unpacking, assembling, verifying | `gc` deletes blobs |
//! | `unpacked/<package>.lock` | – | one process unpacks that package |
//! | `cache.lock` (`cache::cache_lock`) | a cache entry is written | `cache gc` deletes entries and blobs |
//! | `<repository>/.hermod-publish.lock` (`repo/state.rs`, not under the store) | – | one `publish` writes that repository |
//! | `<farm state>/pending/.lock` (`farm/pending.rs`, not under the store) | – | one installer of pending packages at a time |
//!
//! A lock file may be deleted by whoever holds it exclusively (gc does, so
//! removed roots leave nothing behind). A process that opened the old file and
//! then got the lock would hold a lock nobody else can see, so [`lock`] checks,
//! once it holds the lock, that the path still names the file it locked, and
//! starts again if not.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Shared,
    Exclusive,
}

/// A held lock; released when dropped.
pub(crate) struct FileLock {
    path: PathBuf,
    _flock: Flock<File>,
}

impl std::fmt::Debug for FileLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLock").field("path", &self.path).finish()
    }
}

impl FileLock {
    /// Delete the lock file while still holding it (the caller must hold it
    /// exclusively), then release it.
    pub(crate) fn remove(self) -> io::Result<()> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Take the lock at `path` (created if missing). With `wait` false, `Ok(None)`
/// when someone else holds a conflicting lock.
pub(crate) fn lock(path: &Path, mode: Mode, wait: bool) -> io::Result<Option<FileLock>> {
    let arg = match (mode, wait) {
        (Mode::Shared, true) => FlockArg::LockShared,
        (Mode::Shared, false) => FlockArg::LockSharedNonblock,
        (Mode::Exclusive, true) => FlockArg::LockExclusive,
        (Mode::Exclusive, false) => FlockArg::LockExclusiveNonblock,
    };
    loop {
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        let flock = match Flock::lock(file, arg) {
            Ok(flock) => flock,
            Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, errno)) => return Err(errno.into()),
        };
        let held = flock.metadata()?;
        match fs::metadata(path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                return Ok(Some(FileLock { path: path.to_owned(), _flock: flock }))
            }
            // Removed (or replaced) by its previous holder: lock the new one.
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Whether someone holds a lock on the existing file at `path` (which is
/// neither created nor locked by asking).
pub(crate) fn is_held(path: &Path) -> bool {
    let Ok(file) = File::open(path) else { return false };
    matches!(Flock::lock(file, FlockArg::LockExclusiveNonblock), Err((_, Errno::EWOULDBLOCK)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_locks_coexist_and_exclude_an_exclusive_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let a = lock(&path, Mode::Shared, true).unwrap().unwrap();
        let b = lock(&path, Mode::Shared, false).unwrap();
        assert!(b.is_some(), "two readers");
        assert!(lock(&path, Mode::Exclusive, false).unwrap().is_none(), "no writer while read");
        assert!(is_held(&path));
        drop((a, b));
        assert!(!is_held(&path));
        let x = lock(&path, Mode::Exclusive, false).unwrap().expect("free again");
        assert!(lock(&path, Mode::Shared, false).unwrap().is_none());
        x.remove().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn a_waiter_on_a_removed_lock_file_locks_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = lock(&path, Mode::Exclusive, true).unwrap().unwrap();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || lock(&path, Mode::Exclusive, true).unwrap().unwrap())
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        held.remove().unwrap();
        let got = waiter.join().unwrap();
        // The waiter holds the file that is now at the path, so a third party
        // that opens the path sees the lock.
        assert!(path.exists());
        assert!(lock(&path, Mode::Exclusive, false).unwrap().is_none());
        drop(got);
    }
}
