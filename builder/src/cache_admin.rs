//! `hermod cache stats|gc|verify`: looking after the local cache.
//!
//! The cache is `ac/<key>` entries naming `cas/<blake3>` blobs (see
//! [`crate::cache`]). An entry's mtime is its last use (a hit sets it), so gc
//! can remove the least recently used entries first. gc holds `cache.lock`
//! exclusively, so no build adds a blob while it decides which blobs no
//! entry names; it removes entries before the blobs they name, so a reader
//! never finds an entry whose blob was deliberately deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::cache::{self, CacheError, Manifest};
use crate::flock::Mode;
use crate::store::Store;

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io { path: path.to_owned(), source }
}

/// One entry as gc and stats see it.
struct Entry {
    key: String,
    manifest: Manifest,
    last_use: SystemTime,
}

/// Every readable entry (malformed ones are skipped: `verify` reports them).
fn entries(store: &Store) -> Result<Vec<Entry>, CacheError> {
    let dir = store.ac_dir();
    let mut out = Vec::new();
    for item in fs::read_dir(&dir).map_err(io(&dir))? {
        let item = item.map_err(io(&dir))?;
        let key = item.file_name().to_string_lossy().into_owned();
        if !cache::is_hex_name(&key) {
            continue;
        }
        let Ok(text) = fs::read(item.path()) else { continue };
        let Some(manifest) = cache::parse_manifest(&text) else { continue };
        let last_use = item.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
        out.push(Entry { key, manifest, last_use });
    }
    Ok(out)
}

/// `cas/` blobs: name → size.
fn blobs(store: &Store) -> Result<BTreeMap<String, u64>, CacheError> {
    let dir = store.cas_dir();
    let mut out = BTreeMap::new();
    for item in fs::read_dir(&dir).map_err(io(&dir))? {
        let item = item.map_err(io(&dir))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if cache::is_hex_name(&name) {
            out.insert(name, item.metadata().map(|m| m.len()).unwrap_or(0));
        }
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct Stats {
    pub store: PathBuf,
    pub entries: usize,
    pub blobs: usize,
    pub bytes: u64,
    /// Blobs no entry names (left by a killed run or a removed entry).
    pub unreferenced_blobs: usize,
    pub kernels: BTreeMap<String, usize>,
    /// Seconds since the least / most recently used entry was used.
    pub oldest_use_seconds: Option<u64>,
    pub newest_use_seconds: Option<u64>,
}

pub fn stats(store: &Store) -> Result<Stats, CacheError> {
    let entries = entries(store)?;
    let blobs = blobs(store)?;
    let named: BTreeSet<&str> = entries.iter().map(|e| e.manifest.blake3.as_str()).collect();
    let mut kernels = BTreeMap::new();
    for e in &entries {
        *kernels.entry(e.manifest.kernel.clone()).or_insert(0) += 1;
    }
    let age = |t: SystemTime| SystemTime::now().duration_since(t).unwrap_or_default().as_secs();
    Ok(Stats {
        store: store.root().to_owned(),
        entries: entries.len(),
        blobs: blobs.len(),
        bytes: blobs.values().sum(),
        unreferenced_blobs: blobs.keys().filter(|b| !named.contains(b.as_str())).count(),
        kernels,
        oldest_use_seconds: entries.iter().map(|e| e.last_use).min().map(age),
        newest_use_seconds: entries.iter().map(|e| e.last_use).max().map(age),
    })
}

pub fn stats_text(s: &Stats) -> String {
    let mut out = format!(
        "store {}\nentries {}  blobs {}  {:.1} MiB  unreferenced blobs {}\n",
        s.store.display(),
        s.entries,
        s.blobs,
        s.bytes as f64 / 1048576.0,
        s.unreferenced_blobs
    );
    if let (Some(old), Some(new)) = (s.oldest_use_seconds, s.newest_use_seconds) {
        let _ = writeln!(out, "last use: oldest {} ago, newest {} ago", human(old), human(new));
    }
    for (kernel, n) in &s.kernels {
        let _ = writeln!(out, "  {kernel}: {n} package{}", if *n == 1 { "" } else { "s" });
    }
    out
}

fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

/// What `gc` removed.
#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    pub entries_removed: usize,
    pub blobs_removed: usize,
    pub bytes_freed: u64,
    pub bytes_left: u64,
    /// Failed and skipped builds' records (`failures.rs`) older than `older_than`.
    pub records_removed: usize,
    /// The entries removed (or, dry, that would be): `package for kernel (key)`.
    pub removed: Vec<String>,
}

/// Remove entries unused for longer than `older_than`, then the least
/// recently used ones until the blobs take at most `max_bytes`, then every
/// blob no entry names, and the quarantine. `dry`: decide the same, report
/// it, remove nothing.
pub fn gc(
    store: &Store,
    max_bytes: Option<u64>,
    older_than: Option<Duration>,
    dry: bool,
) -> Result<GcReport, CacheError> {
    let _exclusive = cache::cache_lock(store, Mode::Exclusive)?;
    let mut entries = entries(store)?;
    entries.sort_by_key(|e| e.last_use);
    let blobs = blobs(store)?;
    let mut report = GcReport::default();
    let now = SystemTime::now();
    let mut keep: Vec<&Entry> = Vec::new();
    for e in &entries {
        let stale = older_than.is_some_and(|limit| now.duration_since(e.last_use).unwrap_or_default() > limit);
        if stale {
            remove_entry(store, e, dry, &mut report)?;
        } else {
            keep.push(e);
        }
    }
    // Bytes the kept entries need (a blob shared by two entries counts once).
    let needed = |kept: &[&Entry]| -> u64 {
        let names: BTreeSet<&str> = kept.iter().map(|e| e.manifest.blake3.as_str()).collect();
        names.iter().map(|n| blobs.get(*n).copied().unwrap_or(0)).sum()
    };
    if let Some(max) = max_bytes {
        while !keep.is_empty() && needed(&keep) > max {
            let oldest = keep.remove(0);
            remove_entry(store, oldest, dry, &mut report)?;
        }
    }
    let named: BTreeSet<&str> = keep.iter().map(|e| e.manifest.blake3.as_str()).collect();
    for (name, size) in &blobs {
        if !named.contains(name.as_str()) {
            let path = store.cas_dir().join(name);
            if dry {
                report.blobs_removed += 1;
                report.bytes_freed += size;
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => {
                    report.blobs_removed += 1;
                    report.bytes_freed += size;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CacheError::Io { path, source: e }),
            }
        }
    }
    report.bytes_left = needed(&keep);
    if dry {
        return Ok(report);
    }
    // The records of builds that gave no package age like entries: one
    // older than the entries removed describes a build nobody asked for since.
    if let Some(limit) = older_than {
        report.records_removed = crate::failures::gc(store, limit);
    }
    // Temporary files of killed writers (`write_atomically` names them
    // `.tmp-*`; a live writer needs seconds, not an hour).
    for dir in [store.ac_dir(), store.cas_dir()] {
        for item in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let old = item
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > Duration::from_secs(3600));
            if item.file_name().to_string_lossy().starts_with(".tmp-") && old {
                let _ = fs::remove_file(item.path());
            }
        }
    }
    // Quarantined blobs (kept for inspection until now) and idle key locks.
    for dir in [store.quarantine_dir(), store.keylocks_dir()] {
        for item in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            let idle = name.ends_with(".lock") && !crate::flock::is_held(&item.path());
            if name.starts_with("cas-") || idle {
                let _ = fs::remove_file(item.path());
            }
        }
    }
    Ok(report)
}

fn remove_entry(store: &Store, e: &Entry, dry: bool, report: &mut GcReport) -> Result<(), CacheError> {
    let path = cache::entry_path(store, &e.key);
    let what = format!("{} for {} ({})", e.manifest.package, e.manifest.kernel, e.key);
    if dry {
        report.entries_removed += 1;
        report.removed.push(what);
        return Ok(());
    }
    match fs::remove_file(&path) {
        Ok(()) => {
            report.entries_removed += 1;
            report.removed.push(what);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CacheError::Io { path, source: e }),
    }
}

/// What `push` did.
#[derive(Debug, Default, Serialize)]
pub struct PushReport {
    /// Entries uploaded now: `package for kernel (key)`.
    pub pushed: Vec<String>,
    /// Entries the shared cache already had.
    pub present: usize,
    /// Entries not uploaded (the server failed; the warning said why).
    pub failed: Vec<String>,
}

/// Upload every local entry the shared cache does not hold yet, signed as a
/// build's push is (blob first, entry last). Each blob is read verified
/// (`cache::read_entry`); a corrupt one is skipped (`verify` deals with it).
pub fn push(store: &Store, shared: &crate::shared_cache::SharedCache) -> Result<PushReport, CacheError> {
    let mut report = PushReport::default();
    let mut entries = entries(store)?;
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    for e in entries {
        let what = format!("{} for {} ({})", e.manifest.package, e.manifest.kernel, e.key);
        if shared.holds(&e.key, &e.manifest.kernel).is_some() {
            report.present += 1;
            continue;
        }
        // A blob that fails its hash is not pushed: counted as failed (`cache verify` quarantines it).
        let Some((manifest, bytes)) = cache::read_entry(store, &e.key) else {
            report.failed.push(format!("{what}: its blob is missing or corrupt (run `hermod cache verify`)"));
            continue;
        };
        if shared.push(&e.key, &manifest, &bytes) {
            report.pushed.push(what);
        } else {
            report.failed.push(what);
        }
    }
    Ok(report)
}

/// What `verify` found.
#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub entries_ok: usize,
    /// Keys whose blob was corrupt (quarantined, entry removed) or missing.
    pub bad: Vec<String>,
}

/// Re-hash every entry's blob; a bad one is quarantined and its entry
/// removed, so the next build of that key rebuilds it.
pub fn verify(store: &Store) -> Result<VerifyReport, CacheError> {
    let mut report = VerifyReport::default();
    let dir = store.ac_dir();
    for item in fs::read_dir(&dir).map_err(io(&dir))? {
        let key = item.map_err(io(&dir))?.file_name().to_string_lossy().into_owned();
        if !cache::is_hex_name(&key) {
            continue;
        }
        match cache::read_entry(store, &key) {
            Some(_) => report.entries_ok += 1,
            None => {
                // A missing blob leaves the entry: remove it too.
                let _ = fs::remove_file(cache::entry_path(store, &key));
                report.bad.push(key);
            }
        }
    }
    report.bad.sort();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(store: &Store, key: &str, body: &[u8], age_days: u64) {
        let m = Manifest::new("p", "1", "k", "p_1_amd64.deb", body);
        cache::insert(store, key, &m, body).unwrap();
        let t = SystemTime::now() - Duration::from_secs(age_days * 86400);
        filetime::set_file_mtime(cache::entry_path(store, key), filetime::FileTime::from_system_time(t)).unwrap();
    }

    fn key(c: char) -> String {
        c.to_string().repeat(64)
    }

    #[test]
    fn gc_removes_the_least_recently_used_first_and_unnamed_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None).unwrap();
        add(&store, &key('a'), &[1; 1000], 30);
        add(&store, &key('b'), &[2; 1000], 3);
        add(&store, &key('c'), &[3; 1000], 1);
        fs::write(store.cas_dir().join("d".repeat(64)), [4; 500]).unwrap(); // left by a killed run
        let s = stats(&store).unwrap();
        assert_eq!((s.entries, s.blobs, s.bytes, s.unreferenced_blobs), (3, 4, 3500, 1));

        let dry = gc(&store, None, Some(Duration::from_secs(7 * 86400)), true).unwrap();
        assert_eq!((dry.entries_removed, dry.blobs_removed, dry.bytes_freed), (1, 2, 1500));
        assert!(cache::entry_path(&store, &key('a')).exists(), "a dry run removes nothing");
        assert_eq!(stats(&store).unwrap().blobs, 4);
        let r = gc(&store, None, Some(Duration::from_secs(7 * 86400)), false).unwrap();
        assert_eq!((r.entries_removed, r.blobs_removed, r.bytes_freed), (1, 2, 1500));
        assert_eq!(r.removed, dry.removed);
        assert!(r.removed[0].ends_with(&format!("({})", key('a'))), "{:?}", r.removed);
        assert!(cache::lookup(&store, &key('a')).is_none());

        let r = gc(&store, Some(1500), None, false).unwrap();
        assert_eq!((r.entries_removed, r.bytes_left), (1, 1000));
        assert!(cache::lookup(&store, &key('b')).is_none(), "b was used longer ago than c");
        assert!(cache::lookup(&store, &key('c')).is_some());
    }

    #[test]
    fn verify_quarantines_corrupt_blobs_and_drops_their_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None).unwrap();
        add(&store, &key('a'), b"good", 0);
        add(&store, &key('b'), b"soon bad", 0);
        let blob = blake3::hash(b"soon bad").to_hex().to_string();
        fs::write(store.cas_dir().join(&blob), b"now  bad").unwrap();
        let r = verify(&store).unwrap();
        assert_eq!(r.entries_ok, 1);
        assert_eq!(r.bad, [key('b')]);
        assert!(!cache::entry_path(&store, &key('b')).exists());
        assert_eq!(stats(&store).unwrap().entries, 1);
    }
}
