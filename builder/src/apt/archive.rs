//! [`Archive`]: every package version of every configured source, for one
//! architecture, indexed for the resolver.
//!
//! A cross archive ([`Snapshot::fetch_cross`]) holds a second, *host*
//! architecture's packages too, as apt's multiarch does: names of the
//! archive's own architecture (and `Architecture: all`) stand bare, the
//! host's carry their architecture, `make:amd64` ([`Archive::host_key`]). So
//! everything that asks about the kernels (headers, images, busybox) reads
//! the target's packages as before, and the resolver finds the programs that
//! run on the master under their qualified names.
//!
//! Loading walks the chain of trust source by source: signed InRelease →
//! verified Packages index → package records (each carrying the SHA256 of
//! its .deb). Suites are independent, so their InRelease files and indexes
//! are fetched and parsed in parallel; the merged result keeps source order
//! so that ties (the same name and version offered twice) resolve to the
//! first configured source, as with APT.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rayon::prelude::*;

use super::depends::parse_provides;
use super::packages::{load_index, Package};
use super::release::{fetch_release, Release};
use super::sources::{read_sources, Source};
use super::version::Version;
use super::AptError;

/// The verified Release data of every configured suite: the cheap first half
/// of loading an archive. The Packages index hashes it lists name the archive's
/// content exactly, so [`Snapshot::identity`] can key anything derived from the
/// indices (a resolved package set) without downloading or parsing them.
pub struct Snapshot {
    arch: String,
    /// The host architecture of a cross archive.
    host: Option<String>,
    /// (source, its verified Release, component, architecture) for every index to load.
    jobs: Vec<(Source, Release, String, String)>,
    /// Packages of local .deb directories (see [`super::local`]), already
    /// hashed; they follow the archives' packages.
    local: Vec<Package>,
}

impl Snapshot {
    /// Fetch and verify the InRelease of every source in `/etc/apt`.
    pub fn from_system(arch: &str) -> Result<Snapshot, AptError> {
        Snapshot::fetch(&read_sources(Path::new("/"))?, arch)
    }

    /// Fetch and verify the InRelease of every source serving `arch`.
    pub fn fetch(sources: &[Source], arch: &str) -> Result<Snapshot, AptError> {
        Snapshot::fetch_with_local(sources, Vec::new(), arch)
    }

    /// [`Snapshot::fetch`], plus the packages of local .deb directories.
    pub fn fetch_with_local(sources: &[Source], local: Vec<Package>, arch: &str) -> Result<Snapshot, AptError> {
        Snapshot::fetch_cross(sources, local, arch, None)
    }

    /// [`Snapshot::fetch_with_local`] for `arch`, and with `host` also that
    /// architecture's indices of the same sources (a cross archive: see the
    /// module's docs). Each InRelease is fetched once.
    pub fn fetch_cross(
        sources: &[Source],
        local: Vec<Package>,
        arch: &str,
        host: Option<&str>,
    ) -> Result<Snapshot, AptError> {
        let arches: Vec<&str> = std::iter::once(arch).chain(host).collect();
        let sources: Vec<&Source> = sources.iter().filter(|s| arches.iter().any(|a| s.serves(a))).collect();
        if sources.is_empty() && local.is_empty() {
            return Err(AptError::NoSources { arch: arch.to_string() });
        }
        let releases: Vec<_> = sources.par_iter().map(|s| fetch_release(s)).collect();
        let mut jobs = Vec::new();
        for (source, release) in sources.into_iter().zip(releases) {
            let release = match (release, &source.derived_from) {
                (Ok(release), _) => release,
                // A suite guessed for another release: the mirror may not carry it.
                (Err(e), Some(from)) => {
                    tracing::warn!(uri = %source.uri, suite = %source.suite, derived_from = %from, "not read: {e}");
                    continue;
                }
                (Err(e), None) => return Err(e.into()),
            };
            for &arch in arches.iter().filter(|a| source.serves(a)) {
                if !release.architectures.is_empty() && !release.architectures.iter().any(|a| a == arch) {
                    tracing::warn!(uri = %source.uri, suite = %source.suite, arch, "suite does not offer this architecture; skipped");
                    continue;
                }
                for component in &source.components {
                    // Judge by the hash list, not `Components:` — the security
                    // archive lists `updates/main` yet serves `main/binary-amd64/`.
                    let prefix = format!("{component}/binary-{arch}/Packages");
                    if !release.sha256.keys().any(|k| k.starts_with(&prefix)) {
                        tracing::warn!(uri = %source.uri, suite = %source.suite, component, arch, "suite has no Packages index for this component; skipped");
                        continue;
                    }
                    jobs.push((source.clone(), release.clone(), component.clone(), arch.to_owned()));
                }
            }
        }
        Ok(Snapshot { arch: arch.to_string(), host: host.map(str::to_owned), jobs, local })
    }

    /// A hash naming exactly the package indices this snapshot would load:
    /// source URI, suite, component and the signed SHA256 of each index form.
    pub fn identity(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(b"hermod-archive-identity-v1\0");
        h.update(self.arch.as_bytes());
        if let Some(host) = &self.host {
            // Said only for a cross archive: a native one keeps its identity.
            h.update(b"\0cross-host\0");
            h.update(host.as_bytes());
        }
        for (source, release, component, arch) in &self.jobs {
            for field in [source.uri.as_str(), source.suite.as_str(), component.as_str()] {
                h.update(&(field.len() as u64).to_le_bytes());
                h.update(field.as_bytes());
            }
            let prefix = format!("{component}/binary-{arch}/Packages");
            for (path, hash) in release.sha256.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)) {
                h.update(path.as_bytes());
                h.update(b"\0");
                h.update(hash.sha256.as_bytes());
            }
        }
        // Local packages are named by their hashes, as the indices are.
        for p in &self.local {
            for field in ["local", p.base_uri.as_str(), p.filename.as_str(), p.sha256.as_str()] {
                h.update(&(field.len() as u64).to_le_bytes());
                h.update(field.as_bytes());
            }
        }
        h.finalize().to_hex().to_string()
    }

    /// Fetch (or reuse from `cache_dir`), verify and parse every index.
    pub fn load(&self, cache_dir: &Path) -> Result<Archive, AptError> {
        let lists = self
            .jobs
            .par_iter()
            .map(|(s, r, c, arch)| {
                let mut list = load_index(s, r, c, arch, cache_dir)?;
                list.iter_mut().for_each(|p| p.not_automatic = r.not_automatic);
                Ok::<_, AptError>(list)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let packages = lists.into_iter().flatten().chain(self.local.iter().cloned()).collect();
        Ok(Archive::from_packages_cross(&self.arch, self.host.as_deref(), packages))
    }
}

/// All packages of all configured sources for one architecture (and, in a
/// cross archive, those of the host architecture too).
pub struct Archive {
    arch: String,
    /// The host architecture of a cross archive.
    host: Option<String>,
    packages: Vec<Package>,
    /// Parsed `packages[i].version`.
    versions: Vec<Version>,
    /// name → indexes into `packages`, newest version first, one per version.
    by_name: BTreeMap<String, Vec<usize>>,
    /// virtual name → (package index, provided version).
    providers: HashMap<String, Vec<(usize, Option<Version>)>>,
}

impl Archive {
    /// Read the machine's `/etc/apt` sources and load their indexes.
    pub fn from_system(cache_dir: &Path, arch: &str, quiet: bool) -> Result<Archive, AptError> {
        let sources = read_sources(Path::new("/"))?;
        Archive::from_sources(&sources, cache_dir, arch, quiet)
    }

    /// Load the given sources: verify each InRelease, then fetch (or reuse
    /// from `cache_dir`), verify and parse each component's Packages index.
    /// Nothing is drawn on the terminal here; `quiet` is accepted so callers
    /// treat all archive operations alike.
    pub fn from_sources(sources: &[Source], cache_dir: &Path, arch: &str, quiet: bool) -> Result<Archive, AptError> {
        let _ = quiet;
        Snapshot::fetch(sources, arch)?.load(cache_dir)
    }

    /// Index an already loaded package list (also handy for tests).
    pub fn from_packages(arch: &str, packages: Vec<Package>) -> Archive {
        Archive::from_packages_cross(arch, None, packages)
    }

    /// [`Archive::from_packages`] of a cross archive: packages of `host`
    /// are indexed as `name:host`.
    pub fn from_packages_cross(arch: &str, host: Option<&str>, packages: Vec<Package>) -> Archive {
        let mut versions = Vec::with_capacity(packages.len());
        let mut keep = Vec::with_capacity(packages.len());
        for p in packages {
            match Version::parse(&p.version) {
                Ok(v) => {
                    versions.push(v);
                    keep.push(p);
                }
                Err(e) => tracing::warn!(package = %p.name, "ignoring package with bad version: {e}"),
            }
        }
        let packages = keep;
        let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let key = |name: &str, p: &Package| {
            if p.architecture == arch || p.architecture == "all" {
                name.to_owned()
            } else {
                format!("{name}:{}", p.architecture)
            }
        };
        for (i, p) in packages.iter().enumerate() {
            by_name.entry(key(&p.name, p)).or_default().push(i);
        }
        for idxs in by_name.values_mut() {
            // Stable sort keeps source order among equal versions; dedup keeps the first.
            idxs.sort_by(|a, b| versions[*b].cmp(&versions[*a]));
            idxs.dedup_by(|a, b| versions[*a] == versions[*b]);
            // NotAutomatic versions (backports) after all others, as APT's
            // priority 100 against 500: the first candidate that satisfies a
            // dependency is the release's where it has one that will do.
            idxs.sort_by_key(|&i| packages[i].not_automatic);
        }
        let mut providers: HashMap<String, Vec<(usize, Option<Version>)>> = HashMap::new();
        for idxs in by_name.values() {
            for &i in idxs {
                if packages[i].provides.is_empty() {
                    continue;
                }
                match parse_provides(&packages[i].provides) {
                    Ok(list) => {
                        for pr in list {
                            providers.entry(key(&pr.name, &packages[i])).or_default().push((i, pr.version));
                        }
                    }
                    Err(e) => tracing::warn!(package = %packages[i].name, "ignoring unparsable Provides: {e}"),
                }
            }
        }
        Archive { arch: arch.to_string(), host: host.map(str::to_owned), packages, versions, by_name, providers }
    }

    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// The host architecture of a cross archive.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The name under which the host's `name` is indexed: `name:host` in a
    /// cross archive where the host has it, else `name` (an `all` package,
    /// or any package of a native archive).
    pub fn host_key(&self, name: &str) -> String {
        match &self.host {
            Some(host) => {
                let qualified = format!("{name}:{host}");
                if self.by_name.contains_key(&qualified) || self.providers.contains_key(&qualified) {
                    qualified
                } else if !self.candidates(name).is_empty()
                    && self.candidates(name).iter().all(|&i| self.packages[i].architecture == "all")
                {
                    name.to_owned()
                } else {
                    qualified
                }
            }
            None => name.to_owned(),
        }
    }

    /// Number of distinct (name, version) entries.
    pub fn len(&self) -> usize {
        self.by_name.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The highest version of `name` across all sources, preferring those
    /// not from a NotAutomatic suite (backports).
    pub fn newest(&self, name: &str) -> Option<&Package> {
        self.candidates(name).first().map(|&i| &self.packages[i])
    }

    /// All versions of `name`, newest first (NotAutomatic ones last).
    pub fn versions_of(&self, name: &str) -> Vec<&Package> {
        self.candidates(name).iter().map(|&i| &self.packages[i]).collect()
    }

    /// Real package names starting with `prefix`, sorted.
    pub fn names_with_prefix(&self, prefix: &str) -> Vec<&str> {
        self.by_name
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(n, _)| n.starts_with(prefix))
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Real package names with both `prefix` and `suffix`, sorted
    /// (e.g. `linux-headers-`, `-amd64`).
    pub fn names_matching(&self, prefix: &str, suffix: &str) -> Vec<&str> {
        self.names_with_prefix(prefix)
            .into_iter()
            .filter(|n| n.len() >= prefix.len() + suffix.len() && n.ends_with(suffix))
            .collect()
    }

    pub(crate) fn candidates(&self, name: &str) -> &[usize] {
        self.by_name.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    pub(crate) fn providers(&self, name: &str) -> &[(usize, Option<Version>)] {
        self.providers.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    pub(crate) fn package(&self, i: usize) -> &Package {
        &self.packages[i]
    }

    pub(crate) fn version(&self, i: usize) -> &Version {
        &self.versions[i]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fixture package with just the fields the resolver looks at.
    pub(crate) fn pkg(name: &str, version: &str, depends: &str, provides: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            architecture: "amd64".into(),
            multi_arch: None,
            depends: depends.into(),
            pre_depends: String::new(),
            provides: provides.into(),
            source: name.into(),
            filename: format!("pool/{name}_{version}_amd64.deb"),
            size: 1000,
            sha256: "0".repeat(64),
            installed_size: 1,
            base_uri: "http://deb.example".into(),
            not_automatic: false,
        }
    }

    #[test]
    fn not_automatic_versions_come_only_when_nothing_else_will_do() {
        let backport = |name: &str, version: &str, depends: &str| Package {
            not_automatic: true,
            ..pkg(name, version, depends, "")
        };
        let archive = Archive::from_packages(
            "amd64",
            vec![
                pkg("make", "4.4", "", ""),
                backport("make", "4.5", ""),
                backport("gcc-14", "14.3", ""),
                pkg("gcc-14", "14.2", "", ""),
                backport("linux-kbuild-7.2", "7.2.1", ""),
                backport("linux-headers-7.2.1-amd64", "7.2.1", "make, gcc-14 (>= 14.3), linux-kbuild-7.2"),
            ],
        );
        assert_eq!(archive.newest("make").unwrap().version, "4.4", "the release's make, though backports has newer");
        assert_eq!(archive.versions_of("make").iter().map(|p| p.version.as_str()).collect::<Vec<_>>(), ["4.4", "4.5"]);
        assert_eq!(archive.newest("linux-kbuild-7.2").unwrap().version, "7.2.1", "only backports has it");
        let roots = ["linux-headers-7.2.1-amd64".to_owned(), "make".to_owned()];
        let chosen = crate::apt::resolve(&archive, &roots, &[]).unwrap();
        let version = |n: &str| chosen.iter().find(|p| p.name == n).unwrap().version.clone();
        assert_eq!(version("make"), "4.4");
        assert_eq!(version("gcc-14"), "14.3", "a versioned dependency only backports meets takes backports'");
    }

    #[test]
    fn indexes_versions_and_names() {
        let a = Archive::from_packages(
            "amd64",
            vec![
                pkg("linux-headers-6.1.0-55-amd64", "6.1.190-1", "", ""),
                pkg("linux-headers-6.1.0-56-amd64", "6.1.192-1", "", ""),
                pkg("linux-headers-6.1.0-56-amd64", "6.1.192-2", "", ""),
                pkg("linux-headers-6.1.0-56-amd64", "6.1.192-2", "", ""),
                pkg("linux-headers-6.1.0-56-common", "6.1.192-2", "", ""),
                pkg("linux-headers-amd64", "6.1.192-2", "", "linux-headers"),
                pkg("bad", "not a version!", "", ""),
            ],
        );
        assert_eq!(a.newest("linux-headers-6.1.0-56-amd64").unwrap().version, "6.1.192-2");
        assert_eq!(a.versions_of("linux-headers-6.1.0-56-amd64").len(), 2, "duplicates merged");
        assert_eq!(
            a.names_matching("linux-headers-", "-amd64"),
            ["linux-headers-6.1.0-55-amd64", "linux-headers-6.1.0-56-amd64"],
            "like the glob linux-headers-*-amd64: the metapackage linux-headers-amd64 does not match"
        );
        assert_eq!(a.names_with_prefix("linux-headers-6.1.0-56").len(), 2);
        assert!(a.names_with_prefix("zzz").is_empty());
        assert!(a.newest("bad").is_none());
        assert_eq!(a.providers("linux-headers").len(), 1);
        assert_eq!(a.len(), 5);
    }
}
