//! The build roots' locks: which lock guards what (always taken in this
//! order, never the reverse), and where those of a root are. The flock
//! itself, and the table of every lock file hermod takes, are [`crate::flock`]'s.
//!
//! | file | shared | exclusive |
//! |---|---|---|
//! | `rootfs/<hash>.use` | a process uses (or is creating) that root | `gc` removes it |
//! | `rootfs/<hash>.lock` | – | one process creates that root |
//! | `files.lock` | unpacking, assembling, verifying | `gc` deletes blobs |
//! | `unpacked/<package>.lock` | – | one process unpacks that package |

use std::path::PathBuf;

pub(crate) use crate::flock::{is_held, lock, FileLock, Mode};
use crate::store::Store;

/// `rootfs/<hash>.use`: shared while in use, its mtime the root's last use.
pub(crate) fn use_lock_path(store: &Store, hash: &str) -> PathBuf {
    store.rootfs_dir().join(format!("{hash}.use"))
}

/// `rootfs/<hash>.lock`: held by the one process creating that root.
pub(crate) fn create_lock_path(store: &Store, hash: &str) -> PathBuf {
    store.rootfs_dir().join(format!("{hash}.lock"))
}
