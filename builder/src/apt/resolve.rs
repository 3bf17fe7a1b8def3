//! The dependency closure of a few root packages: what must be unpacked so
//! that `linux-headers-<KREL>`, its compiler and tools actually work.
//!
//! This is deliberately *not* APT's solver. The build chroot is assembled from
//! a handful of explicitly named roots, so a greedy walk is enough and keeps
//! the result predictable:
//!
//! * Only `Pre-Depends` and `Depends` are followed (no Recommends, no
//!   Essential-by-default: the roots name everything the build needs).
//! * A dependency already satisfied by a chosen package (real, or via a
//!   matching `Provides`) pulls nothing.
//! * Otherwise its alternatives are tried in order. An alternative matching
//!   an *exclusion* pattern (`linux-image-*`) counts as satisfied by the
//!   outside world, so `linux-image-X | linux-image-X-unsigned` pulls nothing.
//!   Else the first alternative with a candidate wins: the real package at
//!   the highest version satisfying the constraint, across all sources; or a
//!   provider of the virtual name (versioned Provides honoured).
//! * Exactly one version per name. If a later constraint rejects the version
//!   already chosen, that is an error naming both dependency chains —
//!   backtracking is out of scope.
//!
//! The output is sorted by name, so the same archive gives the same list.
//!
//! In a cross archive (see [`Archive`]) the roots name their architecture
//! ([`Archive::host_key`] for the programs, bare for the target's headers)
//! and each dependency is read as dpkg would on a host of the host
//! architecture with the target added: a host or `all` package's
//! dependencies are met by the host's packages (or `all` ones); a target
//! package's by the host's package when that one is `Multi-Arch: foreign`
//! (kbuild's tools, which run on the master), by the [`Mapping`]'s host
//! package where it names one (the target's native compiler is the cross
//! compiler), else by the target's own.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::archive::Archive;
use super::depends::{parse_depends, Alternative, DependsError};
use super::packages::Package;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("package {name} is not in any configured APT source{hint}")]
    UnknownRoot { name: String, hint: String },
    #[error("{chain} → {dependency} : no candidate ({detail})")]
    NoCandidate { chain: String, dependency: String, detail: String },
    #[error("{chain} → {dependency} : conflicts with {name} {chosen} already chosen for {chosen_chain} (one version per package; no backtracking)")]
    Conflict { chain: String, dependency: String, name: String, chosen: String, chosen_chain: String },
    #[error("the build root would need {name} of two architectures, {first} and {second} (a cross root holds each package once)")]
    TwoArchitectures { name: String, first: String, second: String },
    #[error("{name} {version}: cannot read its {field} field: {source}")]
    BadField { name: String, version: String, field: &'static str, source: DependsError },
}

/// Does `name` match the glob `pattern` (only `*` is special)?
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = &parts[..] else {
        return pattern == name; // no `*`
    };
    if name.len() < first.len() + last.len() || !name.starts_with(first) || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for m in middle {
        match rest.find(m) {
            Some(i) => rest = &rest[i + m.len()..],
            None => return false,
        }
    }
    true
}

/// A cross build's stand-ins: the host package that meets a target
/// package's dependency on a name (`gcc-14` → `gcc-14-aarch64-linux-gnu`).
pub type Mapping<'a> = &'a dyn Fn(&str) -> Option<String>;

struct Resolver<'a> {
    archive: &'a Archive,
    exclude: &'a [String],
    mapping: Mapping<'a>,
    /// name → chosen package index.
    chosen: BTreeMap<String, usize>,
    /// name → the name that pulled it in (roots have none).
    parent: HashMap<String, String>,
    queue: VecDeque<usize>,
}

/// Compute the Pre-Depends + Depends closure of `roots` (exact package
/// names) for the archive's architecture, skipping anything matching
/// `exclude`. Sorted by name, one version per name.
pub fn resolve(archive: &Archive, roots: &[String], exclude: &[String]) -> Result<Vec<Package>, ResolveError> {
    resolve_cross(archive, roots, exclude, &|_| None)
}

/// [`resolve`] in a cross archive, with `mapping` for the target's
/// dependencies (see the module's docs). Roots are index names: bare for
/// the archive's architecture, [`Archive::host_key`] for the host's.
pub fn resolve_cross(
    archive: &Archive,
    roots: &[String],
    exclude: &[String],
    mapping: Mapping<'_>,
) -> Result<Vec<Package>, ResolveError> {
    let mut r =
        Resolver { archive, exclude, mapping, chosen: BTreeMap::new(), parent: HashMap::new(), queue: VecDeque::new() };
    // Choose all roots first so their exact versions win over anything a
    // dependency could pick for them (e.g. `awk` → mawk when mawk is a root).
    for root in roots {
        if r.chosen.contains_key(root) {
            continue;
        }
        let Some(&i) = archive.candidates(root).first() else {
            return Err(ResolveError::UnknownRoot { name: root.clone(), hint: hint_for(archive, root) });
        };
        r.choose(i, None);
    }
    while let Some(i) = r.queue.pop_front() {
        let p = archive.package(i);
        for (field, text) in [("Pre-Depends", &p.pre_depends), ("Depends", &p.depends)] {
            let deps = parse_depends(text).map_err(|source| ResolveError::BadField {
                name: p.name.clone(),
                version: p.version.clone(),
                field,
                source,
            })?;
            let from = r.key_of(i);
            for dep in deps {
                let alts: Vec<Alternative> = dep
                    .alternatives
                    .iter()
                    .filter(|a| a.applies_to(r.arch_of(p)))
                    .map(|a| Alternative { name: r.dependency_key(p, a), ..a.clone() })
                    .collect();
                let alts: Vec<&Alternative> = alts.iter().collect();
                if alts.is_empty() || alts.iter().any(|a| r.satisfied(a)) {
                    continue;
                }
                r.satisfy(&from, &alts)?;
            }
        }
    }
    // One architecture per name: both would unpack the same paths.
    let mut seen: HashMap<&str, &Package> = HashMap::new();
    for &i in r.chosen.values() {
        let p = archive.package(i);
        if let Some(other) = seen.insert(&p.name, p) {
            return Err(ResolveError::TwoArchitectures {
                name: p.name.clone(),
                first: other.architecture.clone(),
                second: p.architecture.clone(),
            });
        }
    }
    Ok(r.chosen.values().map(|&i| archive.package(i).clone()).collect())
}

impl Resolver<'_> {
    /// The name `i` is indexed under (`make:amd64` for a cross archive's host package).
    fn key_of(&self, i: usize) -> String {
        let p = self.archive.package(i);
        match self.archive.host() {
            Some(host) if p.architecture == host => format!("{}:{host}", p.name),
            _ => p.name.clone(),
        }
    }

    /// The architecture whose packages meet `p`'s dependencies: an `all`
    /// package is the host's (dpkg's native), as in a native archive.
    fn arch_of<'p>(&'p self, p: &'p Package) -> &'p str {
        match self.archive.host() {
            Some(host) if p.architecture != self.archive.arch() => host,
            _ => self.archive.arch(),
        }
    }

    /// The index name that meets `p`'s dependency `alt`.
    fn dependency_key(&self, p: &Package, alt: &Alternative) -> String {
        let Some(_) = self.archive.host() else { return alt.name.clone() };
        if p.architecture != self.archive.arch() {
            return self.archive.host_key(&alt.name); // the host's (or `all`)
        }
        if let Some(stand_in) = (self.mapping)(&alt.name) {
            return self.archive.host_key(&stand_in);
        }
        let host = self.archive.host_key(&alt.name);
        let foreign = self.archive.candidates(&host).first().is_some_and(|&i| {
            let h = self.archive.package(i);
            h.architecture != "all" && h.multi_arch.as_deref() == Some("foreign")
        });
        if foreign {
            host
        } else {
            alt.name.clone()
        }
    }

    fn choose(&mut self, i: usize, parent: Option<&str>) {
        let name = self.key_of(i);
        if let Some(p) = parent {
            self.parent.insert(name.clone(), p.to_string());
        }
        self.chosen.insert(name, i);
        self.queue.push_back(i);
    }

    fn excluded(&self, name: &str) -> bool {
        self.exclude.iter().any(|p| glob_match(p, name))
    }

    /// Is `alt` met by something already chosen?
    fn satisfied(&self, alt: &Alternative) -> bool {
        if let Some(&i) = self.chosen.get(&alt.name) {
            if alt.constraint.as_ref().is_none_or(|c| c.allows(self.archive.version(i))) {
                return true;
            }
        }
        self.archive
            .providers(&alt.name)
            .iter()
            .any(|(i, pv)| self.chosen.get(&self.key_of(*i)) == Some(i) && provide_ok(alt, pv.as_ref()))
    }

    /// Pick a package for the first workable alternative, or explain why none.
    fn satisfy(&mut self, from: &str, alts: &[&Alternative]) -> Result<(), ResolveError> {
        for alt in alts {
            if self.excluded(&alt.name) {
                return Ok(()); // provided by the outside world (e.g. the running kernel's image)
            }
            if let Some(i) = self.candidate(alt) {
                self.choose(i, Some(from));
                return Ok(());
            }
        }
        let dependency = alts.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" | ");
        // Prefer the most useful explanation: a version clash with a chosen package.
        for alt in alts {
            if let Some(&i) = self.chosen.get(&alt.name) {
                return Err(ResolveError::Conflict {
                    chain: self.chain(from),
                    dependency,
                    name: alt.name.clone(),
                    chosen: self.archive.package(i).version.clone(),
                    chosen_chain: self.chain(&alt.name),
                });
            }
        }
        let detail = alts
            .iter()
            .map(|a| {
                let versions: Vec<&str> =
                    self.archive.versions_of(&a.name).iter().map(|p| p.version.as_str()).collect();
                if !versions.is_empty() {
                    format!("{} has only {}", a.name, versions.join(", "))
                } else if !self.archive.providers(&a.name).is_empty() {
                    format!("no provider of {} matches", a)
                } else {
                    format!("no package or provider named {}", a.name)
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        Err(ResolveError::NoCandidate { chain: self.chain(from), dependency, detail })
    }

    /// Highest real version satisfying `alt`, else the first provider (by
    /// name, then highest version) that satisfies it and is not excluded.
    fn candidate(&self, alt: &Alternative) -> Option<usize> {
        let real = self.archive.candidates(&alt.name);
        if self.chosen.contains_key(&alt.name) {
            return None; // chosen at a version that does not fit: a conflict
        }
        if let Some(&i) =
            real.iter().find(|&&i| alt.constraint.as_ref().is_none_or(|c| c.allows(self.archive.version(i))))
        {
            return Some(i);
        }
        let mut providers: Vec<usize> = self
            .archive
            .providers(&alt.name)
            .iter()
            .filter(|(_, pv)| provide_ok(alt, pv.as_ref()))
            .map(|(i, _)| *i)
            .filter(|&i| !self.excluded(&self.archive.package(i).name) && !self.chosen.contains_key(&self.key_of(i)))
            .collect();
        providers.sort_by(|&a, &b| {
            let (pa, pb) = (self.archive.package(a), self.archive.package(b));
            pa.name.cmp(&pb.name).then_with(|| self.archive.version(b).cmp(self.archive.version(a)))
        });
        providers.first().copied()
    }

    /// `root → a → b` for the package `name`.
    fn chain(&self, name: &str) -> String {
        let mut names = vec![name.to_string()];
        let mut cur = name;
        while let Some(p) = self.parent.get(cur) {
            if names.len() > 1000 {
                break; // cannot happen (parents form a tree), but never loop forever
            }
            names.push(p.clone());
            cur = p;
        }
        names.reverse();
        names.join(" → ")
    }
}

/// Does a `Provides` entry (with optional `= version`) satisfy `alt`?
/// Unversioned provides never satisfy a versioned dependency.
fn provide_ok(alt: &Alternative, provided: Option<&super::version::Version>) -> bool {
    match (&alt.constraint, provided) {
        (None, _) => true,
        (Some(c), Some(v)) => c.allows(v),
        (Some(_), None) => false,
    }
}

/// "did you mean" for a missing root: names sharing the longest prefix.
pub(crate) fn hint_for(archive: &Archive, name: &str) -> String {
    let mut cut = name.len();
    while cut > 0 {
        let prefix = &name[..cut];
        let near = archive.names_with_prefix(prefix);
        if !near.is_empty() && cut >= name.len().min(4) {
            let shown: Vec<&str> = near.iter().take(8).copied().collect();
            let more = if near.len() > shown.len() {
                format!(" and {} more", near.len() - shown.len())
            } else {
                String::new()
            };
            return format!(" (similar names: {}{more})", shown.join(", "));
        }
        cut = name[..cut].char_indices().next_back().map(|(i, _)| i).unwrap_or(0);
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt::archive::tests::pkg;

    fn names(p: &[Package]) -> Vec<String> {
        p.iter().map(|p| format!("{}={}", p.name, p.version)).collect()
    }
    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// An arm64 archive with the amd64 host's packages: the headers are
    /// arm64's, kbuild's tools (Multi-Arch: foreign) and the compiler the
    /// master's, the target's native compiler mapped to the cross one.
    fn cross_archive() -> Archive {
        let on = |arch: &str, mut p: Package| {
            p.architecture = arch.into();
            p
        };
        let foreign = |mut p: Package| {
            p.multi_arch = Some("foreign".into());
            p
        };
        Archive::from_packages_cross(
            "arm64",
            Some("amd64"),
            vec![
                on("arm64", pkg("linux-headers-6.12.1+deb13-arm64", "1", "linux-base, linux-headers-6.12.1+deb13-common (= 1), linux-image-6.12.1+deb13-arm64 (= 1), linux-kbuild-6.12.1+deb13, gcc-14", "")),
                on("all", pkg("linux-headers-6.12.1+deb13-common", "1", "", "")),
                on("all", pkg("linux-base", "4.12", "", "")),
                on("arm64", foreign(pkg("linux-kbuild-6.12.1+deb13", "1", "libc6 (>= 2.38)", ""))),
                on("amd64", foreign(pkg("linux-kbuild-6.12.1+deb13", "1", "libc6 (>= 2.38)", ""))),
                on("arm64", pkg("gcc-14", "14.2", "cpp-14, libc6", "")),
                on("amd64", pkg("gcc-14", "14.2", "cpp-14, libc6", "")),
                on("arm64", pkg("cpp-14", "14.2", "", "")),
                on("amd64", foreign(pkg("gcc-14-aarch64-linux-gnu", "14.2", "libc6 (>= 2.38), libgcc-14-dev-arm64-cross", ""))),
                on("all", pkg("libgcc-14-dev-arm64-cross", "14.2", "", "")),
                on("arm64", pkg("libc6", "2.41", "", "")),
                on("amd64", pkg("libc6", "2.41", "", "")),
                on("amd64", pkg("make", "4.4", "libc6", "")),
                on("arm64", pkg("make", "4.4", "libc6", "")),
                on("arm64", pkg("only-arm64", "1", "", "")),
                on("arm64", pkg("linux-headers-6.12.1+deb13-odd", "1", "only-arm64, libc6", "")),
            ],
        )
    }

    #[test]
    fn a_cross_root_takes_the_targets_headers_and_the_hosts_programs() {
        let a = cross_archive();
        let mapping = |n: &str| (n == "gcc-14").then(|| "gcc-14-aarch64-linux-gnu".to_owned());
        let roots = vec!["linux-headers-6.12.1+deb13-arm64".to_owned(), a.host_key("make")];
        assert_eq!(roots[1], "make:amd64");
        let got = resolve_cross(&a, &roots, &s(&["linux-image-*", "linux-base"]), &mapping).unwrap();
        let arches: Vec<String> = got.iter().map(|p| format!("{}:{}", p.name, p.architecture)).collect();
        assert_eq!(
            arches,
            [
                "gcc-14-aarch64-linux-gnu:amd64",
                "libc6:amd64",
                "libgcc-14-dev-arm64-cross:all",
                "linux-headers-6.12.1+deb13-arm64:arm64",
                "linux-headers-6.12.1+deb13-common:all",
                "linux-kbuild-6.12.1+deb13:amd64",
                "make:amd64",
            ],
            "kbuild (Multi-Arch: foreign) and the compiler are the master's; no arm64 gcc-14 or libc6"
        );
        // Without the mapping the target's native compiler would be arm64's,
        // and with it arm64's libc6 beside amd64's: refused, one per name.
        let e = resolve_cross(&a, &roots, &s(&["linux-image-*", "linux-base"]), &|_| None).unwrap_err().to_string();
        assert!(e.contains("libc6 of two architectures"), "{e}");
        // A target dependency the host has not as Multi-Arch: foreign is the target's own.
        let odd = resolve_cross(&a, &s(&["linux-headers-6.12.1+deb13-odd"]), &[], &mapping).unwrap();
        let odd: Vec<String> = odd.iter().map(|p| format!("{}:{}", p.name, p.architecture)).collect();
        assert_eq!(odd, ["libc6:arm64", "linux-headers-6.12.1+deb13-odd:arm64", "only-arm64:arm64"]);
        // A native archive indexes every package bare, as before.
        assert_eq!(kernel_archive().host_key("make"), "make");
    }

    fn kernel_archive() -> Archive {
        let mut hdr = pkg("linux-headers-6.12.117+deb12-amd64", "6.12.117-1~deb12u1", "linux-base (>= 4.12~), linux-headers-6.12.117+deb12-common (= 6.12.117-1~deb12u1), linux-image-6.12.117+deb12-amd64 (= 6.12.117-1~deb12u1) | linux-image-6.12.117+deb12-amd64-unsigned (= 6.12.117-1~deb12u1), linux-kbuild-6.12.117+deb12, gcc-12", "");
        hdr.pre_depends = "dpkg (>= 1.19)".into();
        Archive::from_packages(
            "amd64",
            vec![
                hdr,
                pkg("linux-headers-6.12.117+deb12-common", "6.12.117-1~deb12u1", "", ""),
                pkg("linux-headers-6.12.117+deb12-common", "6.12.120-1", "", ""),
                pkg("linux-image-6.12.117+deb12-amd64", "6.12.117-1~deb12u1", "initramfs-tools", ""),
                pkg("linux-base", "4.9", "", ""),
                pkg("linux-base", "4.12", "", ""),
                pkg("linux-kbuild-6.12.117+deb12", "6.12.117-1~deb12u1", "libc6 (>= 2.34)", ""),
                pkg("gcc-12", "12.2.0-14", "cpp-12 (= 12.2.0-14), libc6 (>= 2.36) | libc6.1 [alpha]", ""),
                pkg("cpp-12", "12.2.0-14", "", ""),
                pkg("libc6", "2.36-9+deb12u10", "", ""),
                pkg("libc6", "2.36-9+deb12u9", "", ""),
                pkg("dpkg", "1.21.22", "tar (>= 1.28-1)", ""),
                pkg("tar", "1.34+dfsg-1.2+deb12u1", "", ""),
                pkg("mawk", "1.3.4.20200120-3.1", "", "awk"),
                pkg("gawk", "1:5.2.1-2", "", "awk"),
                pkg("needs-awk", "1", "awk", ""),
                pkg("needs-abi", "1", "libfoo-abi (>= 2)", ""),
                pkg("libfoo2", "2.0", "", "libfoo-abi (= 2)"),
                pkg("libfoo-old", "1.0", "", "libfoo-abi"),
                pkg("wants-old-libc", "1", "libc6 (<< 2.36-9+deb12u10)", ""),
                pkg("wants-missing", "1", "ghost (>= 1) | phantom", ""),
                pkg("wants-new-base", "1", "linux-base (>= 9)", ""),
            ],
        )
    }

    #[test]
    fn closure_of_kernel_headers_with_image_excluded() {
        let a = kernel_archive();
        let got = resolve(&a, &s(&["linux-headers-6.12.117+deb12-amd64"]), &s(&["linux-image-*"])).unwrap();
        assert_eq!(
            names(&got),
            [
                "cpp-12=12.2.0-14",
                "dpkg=1.21.22",
                "gcc-12=12.2.0-14",
                "libc6=2.36-9+deb12u10",
                "linux-base=4.12",
                "linux-headers-6.12.117+deb12-amd64=6.12.117-1~deb12u1",
                "linux-headers-6.12.117+deb12-common=6.12.117-1~deb12u1",
                "linux-kbuild-6.12.117+deb12=6.12.117-1~deb12u1",
                "tar=1.34+dfsg-1.2+deb12u1",
            ]
        );
        // Without the exclusion the image (and its missing dependency) is pulled.
        let e = resolve(&a, &s(&["linux-headers-6.12.117+deb12-amd64"]), &[]).unwrap_err().to_string();
        assert!(
            e.contains("linux-headers-6.12.117+deb12-amd64 → linux-image-6.12.117+deb12-amd64 → initramfs-tools"),
            "{e}"
        );
    }

    #[test]
    fn virtual_packages_and_versioned_provides() {
        let a = kernel_archive();
        // Two providers of awk: deterministic pick by name (gawk) ...
        assert_eq!(names(&resolve(&a, &s(&["needs-awk"]), &[]).unwrap()), ["gawk=1:5.2.1-2", "needs-awk=1"]);
        // ... but a root that provides it wins.
        assert_eq!(
            names(&resolve(&a, &s(&["needs-awk", "mawk"]), &[]).unwrap()),
            ["mawk=1.3.4.20200120-3.1", "needs-awk=1"]
        );
        // Versioned dependency: only the versioned provider qualifies.
        assert_eq!(names(&resolve(&a, &s(&["needs-abi"]), &[]).unwrap()), ["libfoo2=2.0", "needs-abi=1"]);
    }

    #[test]
    fn conflicts_and_missing_are_explained() {
        let a = kernel_archive();
        let e = resolve(&a, &s(&["gcc-12", "wants-old-libc"]), &[]).unwrap_err().to_string();
        assert!(e.contains("wants-old-libc → libc6 (<< 2.36-9+deb12u10)") && e.contains("gcc-12 → libc6"), "{e}");
        let e = resolve(&a, &s(&["wants-missing"]), &[]).unwrap_err().to_string();
        assert!(e.contains("wants-missing → ghost (>= 1) | phantom : no candidate"), "{e}");
        let e = resolve(&a, &s(&["wants-new-base"]), &[]).unwrap_err().to_string();
        assert!(e.contains("linux-base has only 4.12, 4.9"), "{e}");
        let e = resolve(&a, &s(&["linux-headers-6.12.999-amd64"]), &[]).unwrap_err().to_string();
        assert!(e.contains("similar names: linux-headers-6.12.117+deb12-amd64"), "{e}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("linux-image-*", "linux-image-6.1.0-56-amd64"));
        assert!(glob_match("linux-base", "linux-base"));
        assert!(!glob_match("linux-base", "linux-base2"));
        assert!(glob_match("*-dbg", "libc6-dbg"));
        assert!(glob_match("a*b*c", "a-x-b-y-c"));
        assert!(!glob_match("a*b*c", "a-x-c"));
        assert!(!glob_match("ab*ba", "aba"));
        assert!(glob_match("*", "anything"));
    }
}
