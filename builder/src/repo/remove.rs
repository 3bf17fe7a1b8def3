//! `hermod repo remove` and `hermod repo prune`: the repository stops
//! offering packages.
//!
//! A removal takes entries out of the component's indices and then, once
//! the indices, Release and InRelease are rewritten (commit.rs), deletes
//! their pool files: an interrupted removal leaves at worst unlisted pool
//! files, never an index naming a missing one. Farm machines that installed
//! a removed package keep it (apt never removes a package because its
//! repository stopped listing it); they are only no longer offered it.
//!
//! Metapackages (meta.rs) are derived, so they are never named: removing
//! one directly is refused. A metapackage whose module package is removed
//! goes with it, and the metapackages are made again from what is left,
//! against the versions the repository held before (meta.rs: the version
//! never goes down), so a farm follows the newest kernel still offered.
//! Removing what is not published is an error, and nothing is changed.
//!
//! `prune` is the retention policy: per module, kernel flavour and
//! architecture it keeps the module packages (every version) of the kernels
//! the configured archive still offers and of the newest `keep` kernels the
//! repository has, removes the rest as `remove` does, and drops metapackage
//! versions superseded by a newer one of the same name (apt installs only the
//! newest). A signed repository stays signed: without its key nothing is
//! removed, as publish refuses to unsign.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::commit::{self, Change, PoolWrite, Target};
use super::index::Entry;
use super::release::{self, DateSource};
use super::{check_name, meta, state, RepoError, Report, SigningKey};
use crate::apt::version::Version;

/// Which repository, and how to sign what a removal rewrites.
pub struct Remove<'a> {
    pub repo: &'a Path,
    pub suite: &'a str,
    pub component: &'a str,
    /// Required when the repository is signed.
    pub key: Option<&'a SigningKey>,
    pub source_date_epoch: Option<i64>,
    pub now: i64,
    /// Decide and report, write nothing.
    pub dry_run: bool,
}

/// `PACKAGE` (every version and architecture) or `PACKAGE=VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub package: String,
    pub version: Option<String>,
}

impl std::str::FromStr for Removal {
    type Err = RepoError;
    fn from_str(text: &str) -> Result<Removal, RepoError> {
        let (package, version) = match text.split_once('=') {
            Some((p, v)) => (p, Some(v.to_owned())),
            None => (text, None),
        };
        let good_version = version.as_deref().is_none_or(|v| crate::debpkg::check_version(v).is_ok());
        if !crate::debpkg::is_package_name(package) || !good_version {
            return Err(RepoError::BadRemoval(text.to_owned()));
        }
        Ok(Removal { package: package.to_owned(), version })
    }
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}={v}", self.package),
            None => f.write_str(&self.package),
        }
    }
}

/// The retention policy's settings.
pub struct Prune<'a> {
    pub repo: Remove<'a>,
    /// The newest kernels kept per module, flavour and architecture.
    pub keep: usize,
    /// The kernel releases the configured archive still offers images of.
    pub offered: &'a BTreeSet<String>,
}

/// Remove `what` (see the module doc).
pub fn remove(r: &Remove, what: &[Removal]) -> Result<Report, RepoError> {
    locked(r, |published| {
        let mut chosen = BTreeSet::new();
        for removal in what {
            let matching: Vec<&Entry> = published
                .values()
                .filter(|e| e.package == removal.package)
                .filter(|e| removal.version.as_ref().is_none_or(|v| *v == e.version))
                .collect();
            if matching.is_empty() {
                let others: Vec<&str> =
                    published.values().filter(|e| e.package == removal.package).map(|e| e.version.as_str()).collect();
                let hint =
                    if others.is_empty() { String::new() } else { format!(" (published: {})", others.join(", ")) };
                return Err(RepoError::NotPublished {
                    spec: removal.to_string(),
                    place: format!("{} ({} {})", r.repo.display(), r.suite, r.component),
                    hint,
                });
            }
            for entry in matching {
                if let Some((package, version)) = meta::target_of(entry) {
                    return Err(RepoError::DerivedMetapackage {
                        id: entry.id(),
                        target: format!("{package} {version}"),
                    });
                }
                chosen.insert(entry.id());
            }
        }
        Ok(chosen)
    })
}

/// Prune by the retention policy (see the module doc).
pub fn prune(p: &Prune) -> Result<Report, RepoError> {
    locked(&p.repo, |published| Ok(prune_selection(published, p.offered, p.keep)))
}

/// The ids `prune` removes from `published`.
pub(super) fn prune_selection(
    published: &BTreeMap<String, Entry>,
    offered: &BTreeSet<String>,
    keep: usize,
) -> BTreeSet<String> {
    let mut kernels: BTreeMap<(String, String, String), BTreeSet<String>> = BTreeMap::new();
    for entry in published.values() {
        if let Some((module, flavour, kernel)) = meta::module_kernel(entry) {
            kernels.entry((module, flavour, entry.architecture.clone())).or_default().insert(kernel);
        }
    }
    let order = |k: &String| Version::parse(&k.replace('-', ".")).ok();
    let mut kept: BTreeSet<(String, String, String)> = BTreeSet::new();
    for ((module, _, arch), set) in &kernels {
        let mut sorted: Vec<&String> = set.iter().collect();
        sorted.sort_by(|a, b| order(b).cmp(&order(a)).then_with(|| b.cmp(a)));
        for (i, kernel) in sorted.into_iter().enumerate() {
            if i < keep || offered.contains(kernel) {
                kept.insert((module.clone(), kernel.clone(), arch.clone()));
            }
        }
    }
    let mut chosen = BTreeSet::new();
    for entry in published.values() {
        if let Some((module, _, kernel)) = meta::module_kernel(entry) {
            if !kept.contains(&(module, kernel, entry.architecture.clone())) {
                chosen.insert(entry.id());
            }
        }
    }
    // Superseded metapackage versions: all but the newest of each name and architecture.
    let mut metas: BTreeMap<(&str, &str), Vec<(Version, String)>> = BTreeMap::new();
    for entry in published.values().filter(|e| meta::target_of(e).is_some()) {
        if let Ok(version) = Version::parse(&entry.version) {
            metas.entry((&entry.package, &entry.architecture)).or_default().push((version, entry.id()));
        }
    }
    for mut versions in metas.into_values() {
        versions.sort();
        versions.pop();
        chosen.extend(versions.into_iter().map(|(_, id)| id));
    }
    chosen
}

/// Open, lock, read; `choose` the ids to remove; then remove them (and the
/// metapackages pointing at them), remake the metapackages, commit.
fn locked(
    r: &Remove,
    choose: impl FnOnce(&BTreeMap<String, Entry>) -> Result<BTreeSet<String>, RepoError>,
) -> Result<Report, RepoError> {
    check_name("suite", r.suite)?;
    check_name("component", r.component)?;
    let root = hermod_hostfs::Dir::open(r.repo).map_err(state::fs_err)?;
    let _lock = state::lock(&root, r.dry_run)?;
    let dists = Path::new("dists").join(r.suite);
    if !r.dry_run {
        state::remove_litter(&root, &[Path::new("pool").join(r.component), dists.clone()]);
    }
    let published = state::read_component(&root, r.suite, r.component)?;
    let mut chosen = choose(&published)?;
    // The metapackages pointing at a removed package go with it.
    let gone: BTreeSet<(String, String, String)> = chosen
        .iter()
        .filter_map(|id| published.get(id))
        .map(|e| (e.package.clone(), e.version.clone(), e.architecture.clone()))
        .collect();
    for entry in published.values() {
        if let Some((package, version)) = meta::target_of(entry) {
            if gone.contains(&(package, version, entry.architecture.clone())) {
                chosen.insert(entry.id());
            }
        }
    }
    let mut report = Report { dry_run: r.dry_run, ..Report::default() };
    let mut rest = published.clone();
    let mut removed = Vec::new();
    for id in &chosen {
        if let Some(entry) = rest.remove(id) {
            report.removed.push(id.clone());
            removed.push(entry);
        }
    }
    for entry in rest.values() {
        state::check_pool_file(&root, entry)?;
    }
    if r.key.is_none() && state::exists(&root, &dists.join("InRelease"))? {
        return Err(RepoError::RemoveWouldUnsign { repo: PathBuf::from(r.repo), suite: r.suite.into() });
    }
    let mut candidates: Vec<(i64, DateSource)> =
        state::previous_date(&root, &dists)?.map(|d| (d, DateSource::PreviousRelease)).into_iter().collect();
    if let Some(sde) = r.source_date_epoch {
        candidates.push((sde, DateSource::SourceDateEpoch));
    }
    if let Some(key) = r.key {
        candidates.push((key.created(), DateSource::KeyCreation));
    }
    let (date, source) = release::choose_date(&candidates, r.now)?;
    report.date = date;
    report.date_source = Some(source);
    if removed.is_empty() {
        // Nothing to take out (a prune with nothing to prune): nothing is rewritten.
        return Ok(report);
    }
    let metas = meta::metapackages(&rest, &published, r.component);
    for m in &metas.new {
        report.metapackages.push(m.entry.filename.clone());
        rest.insert(m.entry.id(), m.entry.clone());
    }
    report.warnings = metas.warnings;
    let pool = metas.new.iter().map(PoolWrite::Meta).collect();
    let change = Change { state: rest, pool, removed, date };
    let target = Target { repo: r.repo, suite: r.suite, component: r.component, key: r.key, dry_run: r.dry_run };
    commit::commit(&root, &target, &change, &mut report.written)?;
    Ok(report)
}
