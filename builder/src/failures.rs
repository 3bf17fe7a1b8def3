//! The store's records of builds that gave no package.
//!
//! A successful build leaves its package in the cache (`ac/<key>`); a build
//! that failed, or that dkms.conf's BUILD_EXCLUSIVE_* skipped, used to leave
//! nothing but a log, so a master could not say afterwards *why* a module is
//! missing for a kernel. The pipeline now writes one small record per key:
//!
//! ```text
//! <store>/failed/<key>    the last build of <key> failed: exit status, one line, its log
//! <store>/skipped/<key>   dkms.conf excludes <key>'s kernel: the reason
//! ```
//!
//! A record is JSON ([`Record`]), written atomically (temp file + rename,
//! invariant 1) after the outcome is known, and removed when the key later
//! builds (or is found in a cache): a key is the whole input of a build, so a
//! skip stays true for as long as the key does, while a failure may be
//! transient (a timeout, a network error) and is only the *last* word.
//! `hermod status` reads them (bounded: a record is at most
//! [`MAX_RECORD_BYTES`], never trusted to be small); `hermod cache gc
//! --older-than` removes records older than the entries it removes.
//! Keyed builds only: a failure before the key is known (an unreadable
//! source, no headers) has no key to be filed under and is only reported.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::store::Store;

/// The most a record file may hold (a record is a few hundred bytes).
pub const MAX_RECORD_BYTES: u64 = 64 << 10;

/// The most of an error message a record keeps (its first line).
const MAX_MESSAGE: usize = 400;

/// Which record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Failed,
    Skipped,
}

impl Kind {
    fn dir(self, store: &Store) -> PathBuf {
        match self {
            Kind::Failed => store.root().join("failed"),
            Kind::Skipped => store.root().join("skipped"),
        }
    }
}

/// What a record says about its key's last build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The cache key (64 hex), also the file's name.
    pub key: String,
    /// The SOURCE, as given.
    pub source: String,
    pub kernel: String,
    /// A failure's exit status (`crate::exit::Code`); 77 for a skip.
    pub exit_code: i32,
    /// A failure's message (first line), or a skip's reason.
    pub message: String,
    /// The build's log, when the build step ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
    /// When it was written (seconds since 1970).
    pub time: u64,
}

impl Record {
    /// A record of now; `message` is cut to its first line.
    pub fn new(key: &str, source: &str, kernel: &str, exit_code: i32, message: &str, log: Option<PathBuf>) -> Record {
        let first = message.lines().next().unwrap_or_default();
        let message = match first.char_indices().nth(MAX_MESSAGE) {
            Some((cut, _)) => format!("{}…", &first[..cut]),
            None => first.to_owned(),
        };
        let time = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Record {
            key: key.to_owned(),
            source: source.to_owned(),
            kernel: kernel.to_owned(),
            exit_code,
            message,
            log,
            time,
        }
    }
}

/// A key names a file only when it is a cache key (hex), never a path.
fn is_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Write `record` as its key's `kind` record, replacing the other kind's.
pub fn write(store: &Store, kind: Kind, record: &Record) -> io::Result<()> {
    if !is_key(&record.key) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{:?} is not a cache key", record.key)));
    }
    let dir = kind.dir(store);
    std::fs::create_dir_all(&dir)?;
    let text = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    crate::store::write_atomically(&dir.join(&record.key), &text)?;
    let other = if kind == Kind::Failed { Kind::Skipped } else { Kind::Failed };
    remove_one(&other.dir(store).join(&record.key))
}

/// Remove `key`'s records (it built).
pub fn clear(store: &Store, key: &str) -> io::Result<()> {
    if !is_key(key) {
        return Ok(());
    }
    for kind in [Kind::Failed, Kind::Skipped] {
        remove_one(&kind.dir(store).join(key))?;
    }
    Ok(())
}

fn remove_one(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `key`'s `kind` record, if there is a readable one. A record that is not
/// a regular file, too large or not a record is ignored (and said in the
/// log): it is the store's own file, but its size is never trusted.
pub fn read(store: &Store, kind: Kind, key: &str) -> Option<Record> {
    if !is_key(key) {
        return None;
    }
    let path = kind.dir(store).join(key);
    let bytes = match crate::bounded::read_user_file(&path, MAX_RECORD_BYTES) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable build record ignored");
            return None;
        }
    };
    match serde_json::from_slice::<Record>(&bytes) {
        Ok(record) if record.key == key => Some(record),
        _ => {
            tracing::warn!(path = %path.display(), "malformed build record ignored");
            None
        }
    }
}

/// Remove the records (and killed writers' `.tmp-*` files) older than
/// `older_than`; returns how many records went. Best effort, for `cache gc`.
pub fn gc(store: &Store, older_than: Duration) -> usize {
    let now = SystemTime::now();
    let mut removed = 0;
    for kind in [Kind::Failed, Kind::Skipped] {
        let Ok(entries) = std::fs::read_dir(kind.dir(store)) else { continue };
        for item in entries.flatten() {
            let old = item
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > older_than);
            let name = item.file_name();
            let name = name.to_string_lossy();
            if old && (is_key(&name) || name.starts_with(".tmp-")) && std::fs::remove_file(item.path()).is_ok() {
                removed += usize::from(is_key(&name));
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), None).unwrap();
        (dir, store)
    }

    #[test]
    fn a_record_is_written_read_replaced_and_cleared() {
        let (_dir, store) = store();
        let key = "ab".repeat(32);
        assert_eq!(read(&store, Kind::Failed, &key), None);
        let failed = Record::new(&key, "src", "6.1.0-9-amd64", 5, "make failed\nsecond line", Some("/l".into()));
        write(&store, Kind::Failed, &failed).unwrap();
        let back = read(&store, Kind::Failed, &key).unwrap();
        assert_eq!(back, failed);
        assert_eq!(back.message, "make failed");
        // A skip of the same key replaces the failure.
        let skipped = Record::new(&key, "src", "6.1.0-9-amd64", 77, "BUILD_EXCLUSIVE_KERNEL", None);
        write(&store, Kind::Skipped, &skipped).unwrap();
        assert_eq!(read(&store, Kind::Failed, &key), None);
        assert_eq!(read(&store, Kind::Skipped, &key), Some(skipped));
        clear(&store, &key).unwrap();
        assert_eq!(read(&store, Kind::Skipped, &key), None);
        assert_eq!(std::fs::read_dir(store.root().join("failed")).unwrap().count(), 0, "no temp files left");
    }

    #[test]
    fn bad_records_and_names_are_ignored() {
        let (_dir, store) = store();
        let key = "cd".repeat(32);
        let dir = store.root().join("failed");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(&key), b"not json").unwrap();
        assert_eq!(read(&store, Kind::Failed, &key), None);
        std::fs::write(dir.join(&key), vec![b' '; MAX_RECORD_BYTES as usize + 1]).unwrap();
        assert_eq!(read(&store, Kind::Failed, &key), None, "an oversized record is not read");
        std::fs::remove_file(dir.join(&key)).unwrap();
        nix::unistd::mkfifo(&dir.join(&key), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(read(&store, Kind::Failed, &key), None, "a FIFO is not opened (it would block)");
        // Another key's record under this name is not this key's.
        std::fs::remove_file(dir.join(&key)).unwrap();
        let other = Record::new(&"ef".repeat(32), "s", "k", 5, "m", None);
        std::fs::write(dir.join(&key), serde_json::to_vec(&other).unwrap()).unwrap();
        assert_eq!(read(&store, Kind::Failed, &key), None);
        assert_eq!(read(&store, Kind::Failed, "../escape"), None);
        assert!(write(&store, Kind::Failed, &Record::new("../x", "s", "k", 5, "m", None)).is_err());
        let long = "x".repeat(5000);
        assert!(Record::new(&key, "s", "k", 5, &long, None).message.chars().count() <= MAX_MESSAGE + 1);
    }

    #[test]
    fn gc_removes_old_records_only() {
        let (_dir, store) = store();
        let key = "12".repeat(32);
        write(&store, Kind::Failed, &Record::new(&key, "s", "k", 5, "m", None)).unwrap();
        assert_eq!(gc(&store, Duration::from_secs(3600)), 0);
        assert!(read(&store, Kind::Failed, &key).is_some());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(gc(&store, Duration::from_millis(1)), 1);
        assert!(read(&store, Kind::Failed, &key).is_none());
    }
}
