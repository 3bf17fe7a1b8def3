//! The local content-addressed cache: action entries and blobs.
//!
//! `ac/<key>` is a small JSON manifest naming the output of the build with that
//! key; `cas/<blake3>` holds the output bytes. Blobs are written before the entry
//! that names them, each atomically, so a reader that finds an entry finds its
//! blob; every read re-hashes the blob, and an entry whose blob is missing or
//! corrupt is treated as a miss: a corrupt blob is moved to `quarantine/`, the
//! entry removed, and the build that follows replaces both.
//!
//! Concurrency: a build takes `keylocks/<key>.lock` (flock, exclusive) after a
//! miss and looks again before compiling, so concurrent builds of one key
//! compile once and the others wait and reuse. Writers hold `cache.lock`
//! shared while they add a blob and its entry; `hermod cache gc` holds it
//! exclusive while it deletes. A hit sets the entry's mtime: its last use,
//! which gc goes by (least recently used first).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::{write_atomically, Store};

const MANIFEST_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot write the built package to {path} (the output directory, --out): {source}")]
    Out { path: PathBuf, source: io::Error },
    #[error("--max-size {value}: {why}")]
    BadSize { value: String, why: String },
    #[error("{count} cached package(s) were corrupt (now quarantined; they are rebuilt when next needed)")]
    Corrupt { count: usize },
}

impl crate::exit::HasExitCode for CacheError {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            // `cache gc --max-size` given something that is no size.
            CacheError::BadSize { .. } => crate::exit::Code::Usage,
            CacheError::Io { .. } | CacheError::Out { .. } | CacheError::Corrupt { .. } => crate::exit::Code::Io,
        }
    }
}

/// What one cache entry records about its output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub package: String,
    pub version: String,
    pub kernel: String,
    /// File name of the .deb.
    pub deb: String,
    pub blake3: String,
    pub sha256: String,
    pub size: u64,
}

impl Manifest {
    pub fn new(package: &str, version: &str, kernel: &str, deb: &str, bytes: &[u8]) -> Manifest {
        use sha2::Digest;
        Manifest {
            format: MANIFEST_FORMAT,
            package: package.into(),
            version: version.into(),
            kernel: kernel.into(),
            deb: deb.into(),
            blake3: blake3::hash(bytes).to_hex().to_string(),
            sha256: hex::encode(sha2::Sha256::digest(bytes)),
            size: bytes.len() as u64,
        }
    }
}

pub(crate) fn entry_path(store: &Store, key: &str) -> PathBuf {
    store.ac_dir().join(key)
}

pub(crate) fn blob_path(store: &Store, blake3: &str) -> PathBuf {
    store.cas_dir().join(blake3)
}

/// The cached output for `key`, verified, or None. A hit marks the entry used.
pub fn lookup(store: &Store, key: &str) -> Option<(Manifest, Vec<u8>)> {
    let (manifest, bytes) = read_entry(store, key)?;
    let now = filetime::FileTime::now();
    let _ = filetime::set_file_mtime(entry_path(store, key), now);
    Some((manifest, bytes))
}

/// Read and verify one entry without marking it used; a corrupt blob is
/// quarantined and its entry removed.
pub(crate) fn read_entry(store: &Store, key: &str) -> Option<(Manifest, Vec<u8>)> {
    let entry = entry_path(store, key);
    let text = fs::read(&entry).ok()?;
    let manifest = match parse_manifest(&text) {
        Some(m) => m,
        None => {
            tracing::warn!(key, "removing a malformed cache entry");
            let _ = fs::remove_file(&entry);
            return None;
        }
    };
    let blob = blob_path(store, &manifest.blake3);
    let bytes = fs::read(&blob).ok()?;
    if blake3::hash(&bytes).to_hex().as_str() != manifest.blake3 || bytes.len() as u64 != manifest.size {
        crate::say::warning(format_args!(
            "cached {} (key {}) does not match its hash; quarantined, rebuilding",
            manifest.deb,
            &key[..16.min(key.len())]
        ));
        quarantine(store, &blob, &manifest.blake3);
        let _ = fs::remove_file(&entry);
        return None;
    }
    Some((manifest, bytes))
}

pub(crate) fn parse_manifest(text: &[u8]) -> Option<Manifest> {
    let manifest: Manifest = serde_json::from_slice(text).ok()?;
    let ok = manifest.format == MANIFEST_FORMAT
        && is_hex_name(&manifest.blake3)
        && !manifest.deb.contains('/')
        && !manifest.deb.starts_with('.');
    ok.then_some(manifest)
}

/// Move a bad blob out of `cas/` (kept for inspection; `cache gc` removes
/// it). The caller goes on as for a miss either way: a blob that cannot be
/// moved is only warned about (it is re-hashed, and refused, on every read).
pub(crate) fn quarantine(store: &Store, blob: &Path, name: &str) {
    if let Err(e) = crate::store::quarantine(&store.quarantine_dir(), blob, &format!("cas-{name}")) {
        tracing::warn!(blob = %blob.display(), error = %e, "cannot move a corrupt cache blob to quarantine/");
    }
}

/// Held while one process builds one key (see the module doc).
pub(crate) struct KeyLock(#[allow(dead_code)] crate::flock::FileLock);

/// Wait until no other process builds `key`, then hold it.
pub(crate) fn lock_key(store: &Store, key: &str) -> Result<KeyLock, CacheError> {
    let dir = store.keylocks_dir();
    fs::create_dir_all(&dir).map_err(|source| CacheError::Io { path: dir.clone(), source })?;
    let path = dir.join(format!("{key}.lock"));
    let held = crate::flock::lock(&path, crate::flock::Mode::Exclusive, true)
        .map_err(|source| CacheError::Io { path: path.clone(), source })?;
    Ok(KeyLock(held.expect("a waiting lock is always taken")))
}

/// `cache.lock`: shared while adding, exclusive while gc deletes.
pub(crate) fn cache_lock(store: &Store, mode: crate::flock::Mode) -> Result<crate::flock::FileLock, CacheError> {
    let path = store.cache_lock();
    let held = crate::flock::lock(&path, mode, true).map_err(|source| CacheError::Io { path: path.clone(), source })?;
    Ok(held.expect("a waiting lock is always taken"))
}

/// Record `bytes` as the output for `key`: blob first, entry last.
pub fn insert(store: &Store, key: &str, manifest: &Manifest, bytes: &[u8]) -> Result<(), CacheError> {
    let _adding = cache_lock(store, crate::flock::Mode::Shared)?;
    let blob = blob_path(store, &manifest.blake3);
    write_atomically(&blob, bytes).map_err(|source| CacheError::Io { path: blob.clone(), source })?;
    let entry = entry_path(store, key);
    let text = serde_json::to_vec_pretty(manifest).expect("manifest serializes");
    write_atomically(&entry, &text).map_err(|source| CacheError::Io { path: entry.clone(), source })
}

pub(crate) fn is_hex_name(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Write `bytes` to `dir/name` atomically (a reader sees the old file or
/// the whole new one). Not fsynced: the store's cache is the durable copy,
/// and a hit must not wait for the disk. A file already there with the
/// same bytes is left as it is.
pub fn export(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, CacheError> {
    fs::create_dir_all(dir).map_err(|source| CacheError::Out { path: dir.to_owned(), source })?;
    let path = dir.join(name);
    // What is already there is compared by descriptor: a link planted at the
    // name is never read through (and the rename below replaces the link).
    let out = hermod_hostfs::Dir::open(dir).map_err(|e| CacheError::Out { path: dir.to_owned(), source: e.into() })?;
    let same = out
        .meta(name)
        .ok()
        .flatten()
        .is_some_and(|m| m.kind == hermod_hostfs::Kind::File && m.size == bytes.len() as u64)
        && out.read_limited(name, bytes.len() as u64).is_ok_and(|existing| existing == bytes);
    if same {
        return Ok(path);
    }
    crate::store::write_replacing(&path, bytes, false)
        .map_err(|source| CacheError::Out { path: path.clone(), source })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_then_lookup_and_corruption_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None).unwrap();
        let bytes = b"deb bytes".to_vec();
        let m = Manifest::new("p", "1", "k", "p_1_amd64.deb", &bytes);
        assert!(lookup(&store, "key1").is_none());
        insert(&store, "key1", &m, &bytes).unwrap();
        assert_eq!(lookup(&store, "key1").unwrap(), (m.clone(), bytes));
        fs::write(store.cas_dir().join(&m.blake3), b"deb bytez").unwrap();
        assert!(lookup(&store, "key1").is_none(), "a corrupt blob is never served");
        assert!(!store.cas_dir().join(&m.blake3).exists(), "it is quarantined");
        assert!(!entry_path(&store, "key1").exists(), "and its entry removed");
        assert_eq!(fs::read_dir(store.quarantine_dir()).unwrap().count(), 1);
    }
}
