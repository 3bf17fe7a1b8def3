//! Removing build roots nobody uses, then the stored files only they held.
//!
//! 1. Each root not used for `older_than` (the mtime of `<hash>.use`) and not in
//!    use now (its `.use` lock can be taken exclusively) is renamed into `tmp/`,
//!    which makes it disappear at once, and deleted from there.
//! 2. Litter of killed processes in `tmp/`: staging trees whose creator is gone
//!    (their create lock is free), trees a killed gc had moved there.
//! 3. Under the exclusive store lock (no one adds or links blobs meanwhile):
//!    blobs whose only link is the store's own; first the manifests that name
//!    them (so a manifest never names a missing blob), then the blobs; then
//!    quarantined blobs no root links any more.
//!
//! Each step leaves the store consistent if the process is killed after it.
//!
//! A tree that cannot be removed (a permission hermod lacks, a disk error)
//! is named in [`GcReport::failed`] and skipped; gc goes on with the rest and
//! with the sweep, and the next gc (or opening of the store, for a dead
//! run's staging) tries again. Only a root gc was asked to remove and that is
//! still a root afterwards ([`GcReport::roots_failed`]) makes the command
//! fail: a leftover in `tmp/` that stays is no root and blocks nothing.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::cas::{for_each_blob, Cas};
use super::inventory::{read_roots, RootEntry};
use super::locks::{self, create_lock_path, use_lock_path, Mode};
use super::tree::remove_tree;
use super::RootfsError;
use crate::store::Store;

/// What gc did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// (kernel, lock hash) of each root removed.
    pub removed: Vec<(String, String)>,
    /// (kernel, lock hash) of roots that would have gone but are in use.
    pub in_use: Vec<(String, String)>,
    pub kept: usize,
    pub blobs_removed: u64,
    pub bytes_freed: u64,
    pub manifests_removed: u64,
    pub litter_removed: u64,
    /// Trees gc could not remove, and why; skipped, to be tried again.
    pub failed: Vec<(PathBuf, String)>,
    /// (kernel, lock hash) of roots that should have gone and are still roots.
    pub roots_failed: Vec<(String, String)>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RootfsError + '_ {
    move |source| RootfsError::Gc { path: path.to_owned(), source }
}

/// Remove roots unused for `older_than` (only those of `kernel`, if given),
/// then what the store holds for them alone.
pub fn gc(store: &Store, older_than: Duration, kernel: Option<&str>) -> Result<GcReport, RootfsError> {
    let mut report = GcReport::default();
    for (root, name) in candidates(store, older_than, kernel, &mut report)? {
        match remove_root(store, &root, &mut report.failed) {
            Ok(true) => report.removed.push(name),
            Ok(false) => report.in_use.push(name),
            Err(e) => {
                report.failed.push((root.dir.clone(), e.to_string()));
                report.roots_failed.push(name);
            }
        }
    }
    report.litter_removed = remove_litter(store, &mut report.failed)?;
    let cas = Cas::open(store)?;
    let _sweeping = cas.lock(Mode::Exclusive)?;
    sweep(store, &cas, &mut report)?;
    Ok(report)
}

/// A root as reports name it: (kernel, lock hash).
type RootName = (String, String);

/// The roots gc is to remove, each with its (kernel, lock hash); the others
/// counted as kept. An incomplete root (no kernel: its lock never written)
/// always goes.
fn candidates(
    store: &Store,
    older_than: Duration,
    kernel: Option<&str>,
    report: &mut GcReport,
) -> Result<Vec<(RootEntry, RootName)>, RootfsError> {
    let now = SystemTime::now();
    let mut out = Vec::new();
    for root in read_roots(store)? {
        let name = (root.kernel.clone().unwrap_or_else(|| "?".into()), root.hash.clone());
        let unused_for = now.duration_since(root.last_use).unwrap_or_default();
        let complete = root.kernel.is_some();
        if complete && (kernel.is_some_and(|k| Some(k) != root.kernel.as_deref()) || unused_for < older_than) {
            report.kept += 1;
        } else {
            out.push((root, name));
        }
    }
    Ok(out)
}

/// What [`gc`] would remove: the roots (in `removed`) and those it would
/// keep because they are in use now; nothing is removed, and the stored
/// files only those roots hold are not counted (the real run finds them).
pub fn gc_dry(store: &Store, older_than: Duration, kernel: Option<&str>) -> Result<GcReport, RootfsError> {
    let mut report = GcReport::default();
    for (root, name) in candidates(store, older_than, kernel, &mut report)? {
        // In use: a shared hold on its `.use` lock; trying is taking it for a moment.
        let use_path = use_lock_path(store, &root.hash);
        match locks::lock(&use_path, Mode::Exclusive, false).map_err(io_err(&use_path))? {
            Some(_free) => report.removed.push(name),
            None => report.in_use.push(name),
        }
    }
    Ok(report)
}

/// Remove one root unless it is in use or being made; false if it is. Once
/// it is renamed aside it is no root any more: a tree that then stays is
/// noted in `failed`, and is litter for the next gc.
fn remove_root(store: &Store, root: &RootEntry, failed: &mut Vec<(PathBuf, String)>) -> Result<bool, RootfsError> {
    let use_path = use_lock_path(store, &root.hash);
    let Some(using) = locks::lock(&use_path, Mode::Exclusive, false).map_err(io_err(&use_path))? else {
        return Ok(false);
    };
    let create_path = create_lock_path(store, &root.hash);
    let Some(creating) = locks::lock(&create_path, Mode::Exclusive, false).map_err(io_err(&create_path))? else {
        return Ok(false);
    };
    let aside = store.tmp().join(format!("gc-{}-{}", root.hash, std::process::id()));
    fs::rename(&root.dir, &aside).map_err(io_err(&root.dir))?;
    creating.remove().map_err(io_err(&create_path))?;
    using.remove().map_err(io_err(&use_path))?;
    remove_or_note(&aside, failed);
    Ok(true)
}

/// Remove the tree `path`; true if it went, else its failure is noted.
fn remove_or_note(path: &Path, failed: &mut Vec<(PathBuf, String)>) -> bool {
    match remove_tree(path) {
        Ok(()) => true,
        Err(RootfsError::Io { source, .. }) => {
            failed.push((path.to_owned(), source.to_string()));
            false
        }
        Err(e) => {
            failed.push((path.to_owned(), e.to_string()));
            false
        }
    }
}

/// Staging trees of killed creators, trees moved aside by a killed gc or
/// replaced as incomplete, lock files of roots that never appeared (a failed
/// materialization), work directories of killed builds (by age). Returns how
/// many were removed.
fn remove_litter(store: &Store, failed: &mut Vec<(PathBuf, String)>) -> Result<u64, RootfsError> {
    let tmp = store.tmp();
    let mut removed = 0;
    let roots = store.rootfs_dir();
    for entry in fs::read_dir(&roots).map_err(io_err(&roots))? {
        let path = entry.map_err(io_err(&roots))?.path();
        let Some(hash) = entry_name(&path).strip_suffix(".use").map(str::to_owned) else { continue };
        if roots.join(&hash).exists() {
            continue;
        }
        let use_path = use_lock_path(store, &hash);
        let Some(using) = locks::lock(&use_path, Mode::Exclusive, false).map_err(io_err(&use_path))? else {
            continue; // being made right now
        };
        let create_path = create_lock_path(store, &hash);
        if let Some(creating) = locks::lock(&create_path, Mode::Exclusive, false).map_err(io_err(&create_path))? {
            if !roots.join(&hash).exists() {
                creating.remove().map_err(io_err(&create_path))?;
                using.remove().map_err(io_err(&use_path))?;
                removed += 1;
            }
        }
    }
    for entry in fs::read_dir(&tmp).map_err(io_err(&tmp))? {
        let entry = entry.map_err(io_err(&tmp))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix("rootfs-") {
            let Some(hash) = rest.split('-').next().filter(|h| h.len() == 64) else { continue };
            let create_path = create_lock_path(store, hash);
            let Some(creating) = locks::lock(&create_path, Mode::Exclusive, false).map_err(io_err(&create_path))?
            else {
                continue; // being made right now
            };
            if !remove_or_note(&entry.path(), failed) {
                continue;
            }
            if !store.rootfs_dir().join(hash).exists() {
                creating.remove().map_err(io_err(&create_path))?;
            }
            removed += 1;
        } else if name.starts_with("gc-") || name.starts_with("stale-") {
            removed += u64::from(remove_or_note(&entry.path(), failed));
        } else if ["build-", "names-", "verify-", "boot-"].iter().any(|p| name.starts_with(p))
            && older_than(&entry.path(), BUILD_LEFTOVER_AGE)
        {
            // The work directory of a build, a dkms.conf evaluation, a verify
            // or a load test that was killed (a live one removes its own). Its
            // age tells: builds and boots have wall-clock limits.
            removed += u64::from(remove_or_note(&entry.path(), failed));
        }
    }
    Ok(removed)
}

/// A `tmp/build-*` (or `names-`, `verify-`, `boot-`) directory this old belongs to no running command.
const BUILD_LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(2 * 24 * 3600);

fn older_than(path: &Path, age: std::time::Duration) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|elapsed| elapsed > age)
}

/// The blob sweep; the caller holds the store lock exclusively.
fn sweep(store: &Store, cas: &Cas, report: &mut GcReport) -> Result<(), RootfsError> {
    // Half-written blobs of killed unpackers (no unpacker runs now).
    let tmp = store.tmp();
    for entry in fs::read_dir(&tmp).map_err(io_err(&tmp))? {
        let entry = entry.map_err(io_err(&tmp))?;
        if entry.file_name().to_string_lossy().starts_with("blob-") {
            remove_file(&entry.path())?;
            report.litter_removed += 1;
        }
    }
    let mut unlinked: HashSet<String> = HashSet::new();
    let mut sizes = Vec::new();
    for_each_blob(cas.files_dir(), |name, meta| {
        if meta.nlink() <= 1 {
            unlinked.insert(name.to_owned());
            sizes.push(meta.blocks() * 512);
        }
    })?;
    for (path, manifest) in cas.manifests()? {
        if manifest.blobs().any(|b| unlinked.contains(b)) {
            remove_file(&path)?;
            remove_file(&path.with_extension("lock"))?;
            report.manifests_removed += 1;
        }
    }
    // Lock files of packages that have no manifest (an unpack was killed),
    // and temporary files of a manifest write that was.
    let unpacked = cas.unpacked_dir();
    for entry in fs::read_dir(unpacked).map_err(io_err(unpacked))? {
        let path = entry.map_err(io_err(unpacked))?.path();
        let orphan_lock = path.extension().is_some_and(|e| e == "lock") && !path.with_extension("json").exists();
        if orphan_lock || entry_name(&path).starts_with(".tmp-") {
            remove_file(&path)?;
        }
    }
    for name in &unlinked {
        remove_file(&cas.blob_path(name))?;
    }
    report.blobs_removed += unlinked.len() as u64;
    report.bytes_freed += sizes.iter().sum::<u64>();
    let quarantine = cas.quarantine_dir();
    for entry in fs::read_dir(quarantine).map_err(io_err(quarantine))? {
        let entry = entry.map_err(io_err(quarantine))?;
        let meta = entry.metadata().map_err(io_err(&entry.path()))?;
        if meta.nlink() <= 1 {
            remove_file(&entry.path())?;
            report.bytes_freed += meta.blocks() * 512;
        }
    }
    Ok(())
}

fn entry_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn remove_file(path: &Path) -> Result<(), RootfsError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn litter_removes_old_build_leftovers_and_keeps_recent_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None).unwrap();
        let old = store.tmp().join("build-killed");
        let live = store.tmp().join("build-running");
        for d in [&old, &live] {
            fs::create_dir_all(d.join("in/src")).unwrap();
            fs::write(d.join("in/src/x.c"), "x").unwrap();
        }
        let three_days_ago = filetime::FileTime::from_system_time(
            std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 24 * 3600),
        );
        filetime::set_file_mtime(&old, three_days_ago).unwrap();
        assert_eq!(remove_litter(&store, &mut Vec::new()).unwrap(), 1);
        assert!(!old.exists(), "a build dir older than any build's timeout is litter");
        assert!(live.exists(), "a recent build dir may belong to a running build");
    }

    #[test]
    fn a_leftover_of_any_depth_goes_and_one_that_cannot_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None).unwrap();
        let three_days_ago = filetime::FileTime::from_system_time(
            std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 24 * 3600),
        );
        // A dead build's staging, 300 directories deep (more than a walk enters).
        let deep_top = store.tmp().join("build-o99999.1.4026531836-abcdef");
        let mut deep = deep_top.join("out");
        for _ in 0..300 {
            deep.push("d");
        }
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("f"), "x").unwrap();
        filetime::set_file_mtime(&deep_top, three_days_ago).unwrap();
        let report = gc(&store, Duration::from_secs(30 * 24 * 3600), None).unwrap();
        assert!(!deep_top.exists(), "{report:?}");
        assert_eq!((report.litter_removed, report.failed.len()), (1, 0));

        // One that cannot be removed: a mount point inside it (EBUSY, even
        // for root). Noted and skipped, and gc goes on.
        let stuck = store.tmp().join("gc-stuck");
        fs::create_dir_all(stuck.join("mnt")).unwrap();
        let flags = nix::mount::MsFlags::empty();
        if nix::mount::mount(Some("none"), &stuck.join("mnt"), Some("tmpfs"), flags, None::<&str>).is_err() {
            return; // mounting takes root (the deep case above has run)
        }
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let _unmount = Unmount(stuck.join("mnt"));
        let other = store.tmp().join("stale-other");
        fs::create_dir(&other).unwrap();
        let report = gc(&store, Duration::from_secs(30 * 24 * 3600), None).unwrap();
        assert!(!other.exists(), "gc went on after the failure");
        assert_eq!(report.failed.len(), 1, "{report:?}");
        assert_eq!(report.failed[0].0, stuck);
        assert!(report.failed[0].1.contains("mnt"), "names what failed: {report:?}");
        assert!(report.roots_failed.is_empty());
    }
}
