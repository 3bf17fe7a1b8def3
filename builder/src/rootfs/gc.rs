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

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::cas::{parse_blob_name, Cas};
use super::inventory::{read_roots, RootEntry};
use super::locks::{self, Mode};
use super::materialize::{create_lock_path, use_lock_path};
use super::{io_err, RootfsError};
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
}

/// Remove roots unused for `older_than` (only those of `kernel`, if given),
/// then what the store holds for them alone.
pub fn gc(store: &Store, older_than: Duration, kernel: Option<&str>) -> Result<GcReport, RootfsError> {
    let mut report = GcReport::default();
    let now = SystemTime::now();
    for root in read_roots(store)? {
        let name = (root.kernel.clone().unwrap_or_else(|| "?".into()), root.hash.clone());
        let unused_for = now.duration_since(root.last_use).unwrap_or_default();
        let complete = root.kernel.is_some();
        if complete && (kernel.is_some_and(|k| Some(k) != root.kernel.as_deref()) || unused_for < older_than) {
            report.kept += 1;
            continue;
        }
        if remove_root(store, &root)? {
            report.removed.push(name);
        } else {
            report.in_use.push(name);
        }
    }
    report.litter_removed = remove_litter(store)?;
    let cas = Cas::open(store)?;
    let _sweeping = cas.lock(Mode::Exclusive)?;
    sweep(store, &cas, &mut report)?;
    Ok(report)
}

/// Remove one root unless it is in use or being made; false if it is.
fn remove_root(store: &Store, root: &RootEntry) -> Result<bool, RootfsError> {
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
    remove_tree(&aside)?;
    Ok(true)
}

/// Staging trees of killed creators, trees moved aside by a killed gc or
/// replaced as incomplete, lock files of roots that never appeared (a failed
/// materialization), work directories of killed builds (by age). Returns how
/// many were removed.
fn remove_litter(store: &Store) -> Result<u64, RootfsError> {
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
            remove_tree(&entry.path())?;
            if !store.rootfs_dir().join(hash).exists() {
                creating.remove().map_err(io_err(&create_path))?;
            }
            removed += 1;
        } else if name.starts_with("gc-") || name.starts_with("stale-") {
            remove_tree(&entry.path())?;
            removed += 1;
        } else if ["build-", "names-", "verify-", "boot-"].iter().any(|p| name.starts_with(p))
            && older_than(&entry.path(), BUILD_LEFTOVER_AGE)
        {
            // The work directory of a build, a dkms.conf evaluation, a verify
            // or a load test that was killed (a live one removes its own). Its
            // age tells: builds and boots have wall-clock limits.
            remove_tree(&entry.path())?;
            removed += 1;
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

/// Call `f` with the name and metadata of every blob in `files/`.
pub(super) fn for_each_blob(files: &Path, mut f: impl FnMut(&str, &fs::Metadata)) -> Result<(), RootfsError> {
    for shard in fs::read_dir(files).map_err(io_err(files))? {
        let shard = shard.map_err(io_err(files))?.path();
        if !shard.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&shard).map_err(io_err(&shard))? {
            let entry = entry.map_err(io_err(&shard))?;
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| parse_blob_name(n).is_some()) else { continue };
            let meta = entry.metadata().map_err(io_err(&entry.path()))?;
            f(name, &meta);
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

/// Delete a directory tree, making its directories writable first if a
/// read-only one stops an unprivileged owner.
pub(super) fn remove_tree(path: &Path) -> Result<(), RootfsError> {
    // By descriptor (hermod_hostfs): a tree built from packages holds their
    // symlinks and read-only directories; a symlink is removed, never
    // entered, and a read-only directory is opened up before it is emptied.
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io_err(path)(io::Error::other("not a directory to remove")));
    };
    let dir = match hermod_hostfs::Dir::open_nofollow(parent) {
        Ok(dir) => dir,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(io_err(parent)(e.into())),
    };
    dir.remove_all(name).map_err(|e| io_err(path)(e.into()))
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
        assert_eq!(remove_litter(&store).unwrap(), 1);
        assert!(!old.exists(), "a build dir older than any build's timeout is litter");
        assert!(live.exists(), "a recent build dir may belong to a running build");
    }
}
