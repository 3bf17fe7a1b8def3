//! Checking the whole file store by hash, repairing it, and re-linking roots.
//!
//! A blob whose content (or mode) no longer matches its name is corrupt: it is
//! moved to `quarantine/`, and the packages whose manifests name it are
//! unpacked again from their verified .debs. Since hard links share the inode,
//! every root linking the old blob saw the damage too; each such path is
//! replaced (atomically, by rename) with a link to the restored blob. The same
//! happens for roots still linking a blob quarantined earlier by a
//! materialization that found it corrupt.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::cas::{for_each_blob, BlobState, Cas, Linker};
use super::inventory::read_roots;
use super::locks::Mode;
use super::materialize::repair;
use super::{io_err, RootfsError};
use crate::store::Store;

/// What `hermod rootfs verify` found and did.
#[derive(Debug, Default, Clone)]
pub struct VerifyReport {
    pub blobs: u64,
    pub bytes: u64,
    /// Blobs that failed the check (all repaired unless an error was returned).
    pub corrupt: Vec<String>,
    /// Blobs named by a manifest but absent (restored too).
    pub missing: Vec<String>,
    /// Paths in roots re-linked to a restored blob.
    pub relinked: Vec<PathBuf>,
    /// Regular files in roots that are no blob of the store (left alone).
    pub foreign: Vec<PathBuf>,
}

impl VerifyReport {
    pub fn clean(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty() && self.relinked.is_empty() && self.foreign.is_empty()
    }
}

/// Check every blob; restore from the packages' own archives, then `mirrors`.
pub fn verify(store: &Store, mirrors: &[String], quiet: bool) -> Result<VerifyReport, RootfsError> {
    let cas = Cas::open(store)?;
    let _adding = cas.lock(Mode::Shared)?;
    let mut report = VerifyReport::default();
    let mut blobs = Vec::new();
    for_each_blob(cas.files_dir(), |name, meta| {
        report.bytes += meta.size();
        blobs.push(name.to_owned());
    })?;
    report.blobs = blobs.len() as u64;
    report.corrupt = blobs.par_iter().filter(|b| cas.check(b) != BlobState::Good).cloned().collect();
    let manifests: Vec<_> = cas.manifests()?.into_iter().map(|(_, m)| m).collect();
    let present: HashSet<&str> = blobs.iter().map(String::as_str).collect();
    let mut missing: Vec<&str> = manifests.iter().flat_map(|m| m.blobs()).filter(|b| !present.contains(b)).collect();
    missing.sort_unstable();
    missing.dedup();
    report.missing = missing.iter().map(|b| b.to_string()).collect();

    // Blobs no manifest names (finish_tree's few files) cannot be restored
    // from a package: quarantined, and reported below if a root links them.
    let named: HashSet<&str> = manifests.iter().flat_map(|m| m.blobs()).collect();
    let (restorable, orphans): (Vec<&str>, Vec<&str>) =
        report.corrupt.iter().map(String::as_str).chain(missing.iter().copied()).partition(|b| named.contains(b));
    for blob in &orphans {
        cas.quarantine(blob)?;
    }
    if !restorable.is_empty() {
        repair(store, &cas, manifests.iter(), &restorable, mirrors, quiet)?;
    }
    relink_roots(store, &cas, &mut report)?;
    Ok(report)
}

/// (device, inode) → blob name.
type Names = HashMap<(u64, u64), String>;

/// Blob name of every inode in `files/` and of every one in `quarantine/`.
fn inode_names(cas: &Cas) -> Result<(Names, Names), RootfsError> {
    let mut live = HashMap::new();
    for_each_blob(cas.files_dir(), |name, meta| {
        live.insert((meta.dev(), meta.ino()), name.to_owned());
    })?;
    let mut quarantined = HashMap::new();
    let dir = cas.quarantine_dir();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let blob = name.split('.').next().unwrap_or_default().to_owned();
        if let Ok(meta) = entry.metadata() {
            quarantined.insert((meta.dev(), meta.ino()), blob);
        }
    }
    Ok((live, quarantined))
}

/// Point every root path that links a quarantined inode at the good blob.
fn relink_roots(store: &Store, cas: &Cas, report: &mut VerifyReport) -> Result<(), RootfsError> {
    let (live, quarantined) = inode_names(cas)?;
    let mut linker = Linker::new(cas);
    for root in read_roots(store)?.into_iter().filter(|r| r.kernel.is_some()) {
        for entry in walkdir::WalkDir::new(root.tree()).into_iter().filter_map(Result::ok) {
            if !entry.file_type().is_file() {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let inode = (meta.dev(), meta.ino());
            if live.contains_key(&inode) {
                continue;
            }
            match quarantined.get(&inode) {
                Some(blob) if cas.blob_path(blob).is_file() => {
                    relink(&mut linker, blob, entry.path())?;
                    report.relinked.push(entry.path().to_owned());
                }
                _ => report.foreign.push(entry.path().to_owned()),
            }
        }
    }
    Ok(())
}

/// Replace `path` with a hard link to `blob`, atomically.
fn relink(linker: &mut Linker<'_>, blob: &str, path: &Path) -> Result<(), RootfsError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.hermod-relink-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let parent = path.parent().ok_or_else(|| io_err(path)(io::Error::other("no parent")))?;
    let dir = hermod_hostfs::Dir::open_nofollow(parent).map_err(|e| io_err(parent)(e.into()))?;
    let tmp_name = tmp.file_name().expect("named above");
    linker.link(blob, &dir, tmp_name).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}
