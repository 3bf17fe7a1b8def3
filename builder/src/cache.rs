//! The local content-addressed cache: action entries and blobs.
//!
//! `ac/<key>` is a small JSON manifest naming the output of the build with that
//! key; `cas/<blake3>` holds the output bytes. Blobs are written before the entry
//! that names them, each atomically, so a reader that finds an entry finds its
//! blob; every read re-hashes the blob, and an entry whose blob is missing or
//! corrupt is treated as a miss (and the build that follows replaces it).

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

fn entry_path(store: &Store, key: &str) -> PathBuf {
    store.ac_dir().join(key)
}

fn blob_path(store: &Store, blake3: &str) -> PathBuf {
    store.cas_dir().join(blake3)
}

/// The cached output for `key`, verified, or None.
pub fn lookup(store: &Store, key: &str) -> Option<(Manifest, Vec<u8>)> {
    let text = fs::read(entry_path(store, key)).ok()?;
    let manifest: Manifest = serde_json::from_slice(&text).ok()?;
    if manifest.format != MANIFEST_FORMAT || !is_hex_name(&manifest.blake3) || manifest.deb.contains('/') {
        tracing::warn!(key, "ignoring a malformed cache entry");
        return None;
    }
    let bytes = fs::read(blob_path(store, &manifest.blake3)).ok()?;
    if blake3::hash(&bytes).to_hex().as_str() != manifest.blake3 || bytes.len() as u64 != manifest.size {
        tracing::warn!(key, blob = manifest.blake3, "cached blob does not match its hash; rebuilding");
        return None;
    }
    Some((manifest, bytes))
}

/// Record `bytes` as the output for `key`: blob first, entry last.
pub fn insert(store: &Store, key: &str, manifest: &Manifest, bytes: &[u8]) -> Result<(), CacheError> {
    let blob = blob_path(store, &manifest.blake3);
    write_atomically(&blob, bytes).map_err(|source| CacheError::Io { path: blob.clone(), source })?;
    let entry = entry_path(store, key);
    let text = serde_json::to_vec_pretty(manifest).expect("manifest serializes");
    write_atomically(&entry, &text).map_err(|source| CacheError::Io { path: entry.clone(), source })
}

fn is_hex_name(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Write `bytes` to `dir/name` atomically.
pub fn export(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, CacheError> {
    fs::create_dir_all(dir).map_err(|source| CacheError::Io { path: dir.to_owned(), source })?;
    let path = dir.join(name);
    write_atomically(&path, bytes).map_err(|source| CacheError::Io { path: path.clone(), source })?;
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
    }
}
