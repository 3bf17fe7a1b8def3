//! Writing a decided change: what `publish`, `repo remove` and `repo prune`
//! share once they know the component's packages after the change.
//!
//! The order is the repository's (mod.rs): new pool files (inputs, revised
//! inputs, metapackages), then the Packages indices, Release, and InRelease
//! last; only then are the pool files of removed packages deleted, so that
//! no state an interrupted change leaves has an index naming a missing file
//! (an unlisted pool file is harmless, and a later publish of the same
//! package finds it in place). A dry run decides and compares the same way
//! and writes nothing: its `written` lists the files that would change.

use std::collections::BTreeMap;
use std::path::Path;

use super::index::{self, Entry};
use super::input::Input;
use super::meta::Meta;
use super::release::{self, ReleaseInfo};
use super::{io_error, state, RepoError, SigningKey};

/// Where a change goes.
pub(super) struct Target<'a> {
    pub repo: &'a Path,
    pub suite: &'a str,
    pub component: &'a str,
    pub key: Option<&'a SigningKey>,
    pub dry_run: bool,
}

/// One pool file to put in place.
pub(super) enum PoolWrite<'a> {
    /// An input as it is.
    Input(&'a Input),
    /// An input rewritten to the revised `entry` (revision.rs).
    Revised(&'a Input, Entry),
    /// A metapackage hermod made.
    Meta(&'a Meta),
}

/// Everything a change writes, decided.
pub(super) struct Change<'a> {
    /// The component's packages after the change, by [`Entry::id`].
    pub state: BTreeMap<String, Entry>,
    pub pool: Vec<PoolWrite<'a>>,
    /// Packages taken out of the index: their pool files go last.
    pub removed: Vec<Entry>,
    pub date: i64,
}

/// Write `change` (see the module doc); the files written (or, in a dry
/// run, that would be) are added to `written`.
pub(super) fn commit(
    root: &hermod_hostfs::Dir,
    target: &Target,
    change: &Change,
    written: &mut Vec<String>,
) -> Result<(), RepoError> {
    let dists = Path::new("dists").join(target.suite);
    // The component's indices, one per architecture.
    let mut by_arch: BTreeMap<String, Vec<&Entry>> = BTreeMap::new();
    for entry in change.state.values() {
        by_arch.entry(entry.architecture.clone()).or_default().push(entry);
    }
    // An architecture whose last package went keeps an empty index: apt
    // then forgets its packages, rather than keeping the last list it read.
    for (arch, _) in state::arch_dirs(root, &dists.join(target.component))? {
        by_arch.entry(arch).or_default();
    }
    let mut ours: Vec<(String, Vec<u8>)> = Vec::new();
    for (arch, entries) in &by_arch {
        let text = index::packages_text(entries).into_bytes();
        let xz = index::xz(&text).map_err(io_error(target.repo))?;
        let dir = format!("{}/binary-{arch}", target.component);
        ours.push((format!("{dir}/Packages"), text));
        ours.push((format!("{dir}/Packages.xz"), xz));
    }
    let mut files: Vec<_> = ours.iter().map(|(path, bytes)| state::index_file(path, bytes)).collect();
    let state::OtherComponents { files: others, mut architectures, mut components } =
        state::other_components(root, &dists, target.component)?;
    files.extend(others);
    architectures.extend(by_arch.keys().cloned());
    components.insert(target.component.to_owned());
    let info = ReleaseInfo {
        suite: target.suite,
        date: change.date,
        architectures: architectures.into_iter().collect(),
        components: components.into_iter().collect(),
        files,
    };
    let release_text = release::release_text(&info);
    let in_release = target.key.map(|key| key.clearsign(&release_text, change.date)).transpose()?;

    // Writes, in the order that keeps every published state consistent.
    let mut writer = state::Writer { root, written, dry_run: target.dry_run };
    for pool in &change.pool {
        match pool {
            PoolWrite::Input(input) => writer.pool_file(input)?,
            PoolWrite::Revised(input, entry) => writer.revised_pool_file(input, entry)?,
            PoolWrite::Meta(meta) => writer.file(&meta.entry.filename, &meta.bytes)?,
        }
    }
    for (rel, bytes) in &ours {
        writer.file(&format!("dists/{}/{rel}", target.suite), bytes)?;
    }
    writer.file(&format!("dists/{}/Release", target.suite), release_text.as_bytes())?;
    if let Some(signed) = in_release {
        writer.file(&format!("dists/{}/InRelease", target.suite), signed.as_bytes())?;
    }
    if !target.dry_run {
        // Pool paths carry no suite: a file another suite lists stays.
        let elsewhere = state::other_suites(root, target.suite, target.component)?;
        for entry in &change.removed {
            // Another entry may name the same file only if the index was made by hand; keep it then.
            if change.state.values().any(|e| e.filename == entry.filename) || elsewhere.contains_key(&entry.filename) {
                continue;
            }
            match root.remove_file(&entry.filename) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(state::fs_err(e)),
            }
        }
    }
    Ok(())
}
