//! Module metapackages: `<module>-modules-<flavour>` (`hello-modules-amd64`,
//! `hello-modules-cloud-amd64`), one per module, kernel flavour and
//! architecture, made by `publish` from the repository's whole state.
//!
//! A module package is a published package `<module>-modules-<KREL>` whose
//! Depends starts with `linux-image-<KREL>` (what `pipeline/package.rs`
//! writes); its flavour is the kernel release's (`rootfs::kernel_flavour`).
//! Of each (module, flavour, architecture), the newest kernel's package is
//! chosen, and the metapackage
//!
//! ```text
//! Package: hello-modules-amd64
//! Version: <ABI, '-' → '.'>+<module package's version>   6.1.0.57+0.1+6.1.162-1
//! Depends: hello-modules-6.1.0-57-amd64 (>= 0.1+6.1.162-1)
//! ```
//!
//! The version leads with the kernel's ABI name (`6.1.0-57`, `6.12.38+deb13`:
//! the kernel release without its flavour, which Debian raises with every
//! ABI), so it orders by the newest kernel pointed at; the module package's
//! version follows, so a newer module build (or a `+hermodN` revision,
//! `revision.rs`) for the same kernel moves it too. The newest is the
//! greatest of these versions (dpkg's order).
//!
//! A module version with an epoch (`1:2.0-1`) cannot be put after the ABI as
//! it is (a `:` there would be read as the metapackage's own epoch, and the
//! epoch would then outrank the kernel). It becomes `<ABI>++<epoch>.<rest>`
//! (`6.1.0.57++1.2.0-1`): after the same ABI, `++` sorts above the `+` and
//! digit every epoch-less version continues with (dpkg: a non-letter after
//! the end of a part sorts above its end), the epochs then compare as
//! numbers, and the rest as the rest — so the mapping keeps dpkg's order of
//! the module versions, and the kernel still comes first. An epoch `0` is
//! no epoch; a `:` inside the rest (only legal after an epoch) becomes `.`.
//!
//! ## The version never goes down
//!
//! apt acts on a metapackage only when its version rises. Publishing only
//! adds packages, so the natural version above only rises; `hermod repo
//! remove`/`prune` can take the newest kernel's package away, and the newest
//! left is then an older kernel, whose natural version is below what farms
//! already installed. So every metapackage is made against a *floor*: the
//! highest version of that metapackage the repository has held (the state
//! before a removal; a publish's own state otherwise). A natural version
//! above the floor is used as it is; one at or below it (after a removal)
//! becomes `<floor>+really<natural>` — Debian's convention for going back
//! to older contents without an epoch (`2.0+really1.0`), and, unlike an
//! epoch, a new pool file name. `X+reallyY` sorts above X whatever Y is (X
//! is a prefix, then `+`), and below the natural version of any newer
//! kernel (the ABI differs first), so the next kernel's metapackage returns
//! to the plain form. A metapackage whose module package is removed is
//! removed with it; when a module has no package left for a flavour, its
//! metapackage is gone, and a later first publish starts again from the
//! natural version (farms that kept the old one installed upgrade when a
//! newer kernel's version passes it).
//!
//! The Depends names only the module package, never `linux-image-<flavour>`:
//! the module package itself depends on `linux-image-<KREL>`, so `apt
//! full-upgrade` installs the new kernel and its module in one transaction,
//! and a kernel the repository has no module for yet is upgraded to by
//! `linux-image-<flavour>` alone while the metapackage keeps the older
//! module (docs/farm.md explains the choice against Debian's own).
//!
//! A metapackage already published at its version is left as it is (even if
//! this hermod would write other bytes): a published package never changes.
//! Otherwise its bytes depend on the chosen module package's stanza (and the
//! floor) alone (fixed mtime, `debpkg`'s reproducible writer). One that
//! cannot be made (its spec refused by the writer, its pool path taken by
//! another package) is not published and is named in a warning: the module
//! packages are published all the same, and the repository's farms keep the
//! metapackage they have.

use std::collections::BTreeMap;

use super::index::{DebHash, Entry};
use crate::apt::stanza;
use crate::apt::version::Version;
use crate::debpkg::{self, DebSpec};

/// One module package of the repository, as the metapackages see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ModulePackage<'a> {
    /// `hello`
    module: String,
    /// `hello` (its `Source:`)
    source: String,
    /// `6.1.0-57-amd64`
    kernel: String,
    /// `amd64`
    flavour: String,
    entry: &'a Entry,
    maintainer: String,
    /// The metapackage version it would give.
    meta_version: String,
}

/// A metapackage to publish: its index entry and bytes.
pub(super) struct Meta {
    pub entry: Entry,
    pub bytes: Vec<u8>,
}

/// The metapackages to publish, and those that could not be made.
#[derive(Default)]
pub(super) struct Metas {
    pub new: Vec<Meta>,
    /// One line per metapackage not made, naming it and why.
    pub warnings: Vec<String>,
}

/// The metapackage version of module package version `version` for the
/// kernel ABI `abi` (see the module doc: the epoch mapping).
pub(super) fn natural_version(abi: &str, version: &str) -> String {
    let abi = abi.replace(['-', '_'], ".");
    match version.split_once(':') {
        Some((epoch, rest)) if epoch.bytes().all(|b| b.is_ascii_digit()) => {
            let rest = rest.replace(':', ".");
            match epoch.trim_start_matches('0') {
                "" => format!("{abi}+{rest}"),
                epoch => format!("{abi}++{epoch}.{rest}"),
            }
        }
        _ => format!("{abi}+{}", version.replace(':', ".")),
    }
}

/// `entry` as a module package, if it is one.
fn module_package(entry: &Entry) -> Option<ModulePackage<'_>> {
    let fields = stanza::parse_one(&entry.stanza, &entry.filename).ok()?;
    let depends = fields.get("Depends")?;
    let first = depends.split(',').next()?.split('|').next()?.trim();
    let kernel = first.strip_prefix("linux-image-")?.split([' ', '(']).next()?;
    let module = entry.package.strip_suffix(kernel)?.strip_suffix("-modules-")?;
    if module.is_empty() {
        return None;
    }
    let flavour = crate::rootfs::kernel_flavour(kernel);
    let abi = kernel.strip_suffix(&flavour)?.strip_suffix('-')?;
    if flavour.is_empty() || !abi.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let meta_version = natural_version(abi, &entry.version);
    Version::parse(&meta_version).ok()?;
    let source = fields.get("Source").and_then(|s| s.split_whitespace().next()).unwrap_or(module);
    Some(ModulePackage {
        module: module.to_owned(),
        source: source.to_owned(),
        kernel: kernel.to_owned(),
        flavour,
        entry,
        maintainer: fields.get("Maintainer")?.to_owned(),
        meta_version,
    })
}

/// `entry`'s module, kernel flavour and kernel release, if it is a module package.
pub(super) fn module_kernel(entry: &Entry) -> Option<(String, String, String)> {
    module_package(entry).map(|m| (m.module, m.flavour, m.kernel))
}

/// The module package a metapackage `entry` points at: (package, version),
/// if `entry` is one of the metapackages this file makes (one Depends,
/// `<module>-modules-<KREL> (>= V)`, of `entry`'s module and flavour).
pub(super) fn target_of(entry: &Entry) -> Option<(String, String)> {
    let fields = stanza::parse_one(&entry.stanza, &entry.filename).ok()?;
    let depends = fields.get("Depends")?.trim();
    if depends.contains([',', '|']) {
        return None;
    }
    let (package, rest) = depends.split_once(" (>= ")?;
    let version = rest.strip_suffix(')')?;
    let (module, flavour) = entry.package.split_once("-modules-")?;
    let kernel = package.strip_prefix(module)?.strip_prefix("-modules-")?;
    if crate::rootfs::kernel_flavour(kernel) != flavour || kernel == flavour {
        return None;
    }
    Some((package.to_owned(), version.to_owned()))
}

/// The highest version of package `name` on `arch` among `entries`.
fn highest<'a>(entries: &'a BTreeMap<String, Entry>, name: &str, arch: &str) -> Option<(Version, &'a Entry)> {
    entries
        .values()
        .filter(|e| e.package == name && e.architecture == arch)
        .filter_map(|e| Version::parse(&e.version).ok().map(|v| (v, e)))
        .max_by(|a, b| a.0.cmp(&b.0))
}

/// The metapackages the repository's packages `published` call for, that
/// are not published yet (see the module doc). `seen` is what the repository
/// held before this change (`published` itself for a publish; the state
/// before a removal), whose metapackage versions are the floors.
pub(super) fn metapackages(
    published: &BTreeMap<String, Entry>,
    seen: &BTreeMap<String, Entry>,
    component: &str,
) -> Metas {
    let mut newest: BTreeMap<(String, String, String), ModulePackage> = BTreeMap::new();
    for package in published.values().filter_map(module_package) {
        let key = (package.module.clone(), package.flavour.clone(), package.entry.architecture.clone());
        let newer = match newest.get(&key) {
            None => true,
            Some(old) => {
                let (new_v, old_v) = (Version::parse(&package.meta_version), Version::parse(&old.meta_version));
                match (new_v, old_v) {
                    // Equal for dpkg still needs one fixed choice: the larger package name.
                    (Ok(n), Ok(o)) => n.cmp(&o).then_with(|| package.entry.package.cmp(&old.entry.package)).is_gt(),
                    _ => false,
                }
            }
        };
        if newer {
            newest.insert(key, package);
        }
    }
    let mut metas = Metas::default();
    for package in newest.values() {
        let mut spec = spec(package);
        let floor = highest(seen, &spec.package, &spec.architecture);
        if let Some((floor, floor_entry)) = floor {
            let natural = Version::parse(&spec.version).ok();
            if natural.as_ref().is_none_or(|n| *n <= floor) {
                let current = target_of(floor_entry)
                    .is_some_and(|(p, v)| p == package.entry.package && v == package.entry.version);
                if current && published.contains_key(&floor_entry.id()) {
                    continue;
                }
                spec.version = format!("{}+really{}", floor_entry.version, spec.version);
            }
        }
        let id = format!("{} {} ({})", spec.package, spec.version, spec.architecture);
        if published.contains_key(&id) {
            continue;
        }
        let warn = |why: String| format!("metapackage {id} (for {}) not published: {why}", package.entry.id());
        let bytes = match debpkg::build_metapackage(&spec) {
            Ok(bytes) => bytes,
            Err(e) => {
                metas.warnings.push(warn(e.to_string()));
                continue;
            }
        };
        let entry = control_of(&spec, &bytes).and_then(|control| {
            Entry::from_deb(&debpkg::file_name(&spec), &control, &DebHash::of(&bytes), component)
                .map_err(|e| e.to_string())
        });
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                metas.warnings.push(warn(e));
                continue;
            }
        };
        // Another package's pool file (only a hand-made package could be there): no metapackage.
        if let Some(other) = published.values().find(|e| e.filename == entry.filename) {
            metas.warnings.push(warn(format!("its pool file {} holds {}", entry.filename, other.id())));
            continue;
        }
        metas.new.push(Meta { entry, bytes });
    }
    metas
}

/// The metapackage of `package`, the newest module package of its kind.
fn spec(package: &ModulePackage) -> DebSpec {
    let (module, flavour, kernel) = (&package.module, &package.flavour, &package.kernel);
    let target = &package.entry.package;
    DebSpec {
        package: format!("{module}-modules-{flavour}"),
        version: package.meta_version.clone(),
        architecture: package.entry.architecture.clone(),
        kernel_release: kernel.clone(),
        maintainer: package.maintainer.clone(),
        description_short: format!("{module} kernel modules for the newest Linux {flavour} kernel"),
        description_long: format!(
            "This metapackage depends on the {module} modules of the newest {flavour}\n\
             kernel this repository has them for: {target}.\n\
             Installed beside linux-image-{flavour}, `apt full-upgrade` brings a new\n\
             kernel and its {module} modules together. Made by hermod publish."
        ),
        source_name: package.source.clone(),
        depends: format!("{target} (>= {})", package.entry.version),
        extra_fields: Vec::new(),
        files: Vec::new(),
        copyright: format!(
            "This metapackage was made by hermod publish; it contains no program or\nmodule, only this file and \
             its changelog. The {module} modules are in\n{target} and the other {module}-modules-* packages.\n"
        ),
        changelog_entry: format!("Points at {target} {}.", package.entry.version),
        mtime: crate::pipeline::SOURCE_DATE_EPOCH,
    }
}

/// The control text of a metapackage hermod just wrote: read back from its
/// bytes, so the index describes exactly what is in the pool.
fn control_of(spec: &DebSpec, bytes: &[u8]) -> Result<String, String> {
    let limits = crate::bounded::current();
    let name = debpkg::file_name(spec);
    crate::apt::debfile::control_text_with(std::path::Path::new(&name), bytes, &limits).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(package: &str, version: &str, arch: &str, depends: &str) -> Entry {
        let control = format!(
            "Package: {package}\nSource: hello\nVersion: {version}\nArchitecture: {arch}\n\
             Maintainer: t <t@example.org>\nDepends: {depends}\nDescription: d\n x\n"
        );
        Entry::from_deb("t", &control, &DebHash::of(format!("{package}{version}{arch}").as_bytes()), "main").unwrap()
    }

    fn module(kernel: &str, version: &str, arch: &str) -> Entry {
        entry(
            &format!("hello-modules-{kernel}"),
            version,
            arch,
            &format!("linux-image-{kernel} | linux-image-{kernel}-unsigned"),
        )
    }

    fn state(entries: &[Entry]) -> BTreeMap<String, Entry> {
        entries.iter().map(|e| (e.id(), e.clone())).collect()
    }

    fn depends(meta: &Meta) -> String {
        let fields = stanza::parse_one(&meta.entry.stanza, "t").unwrap();
        fields.get("Depends").unwrap().to_owned()
    }

    #[test]
    fn one_metapackage_per_module_flavour_and_architecture_pointing_at_the_newest_kernel() {
        let published = state(&[
            module("6.1.0-9-amd64", "0.1+6.1.20-1", "amd64"),
            module("6.1.0-10-amd64", "0.1+6.1.38-1", "amd64"),
            module("6.1.0-10-cloud-amd64", "0.1+6.1.38-1", "amd64"),
            module("6.1.0-9-arm64", "0.1+6.1.20-1", "arm64"),
            entry("unrelated", "1.0", "amd64", "libc6"),
            entry("hello-modules-extra", "1.0", "amd64", "linux-image-amd64"),
        ]);
        let metas = metapackages(&published, &published, "main").new;
        let got: Vec<(String, String, String)> =
            metas.iter().map(|m| (m.entry.id(), depends(m), m.entry.filename.clone())).collect();
        assert_eq!(
            got,
            [
                (
                    "hello-modules-amd64 6.1.0.10+0.1+6.1.38-1 (amd64)".to_owned(),
                    "hello-modules-6.1.0-10-amd64 (>= 0.1+6.1.38-1)".to_owned(),
                    "pool/main/h/hello/hello-modules-amd64_6.1.0.10+0.1+6.1.38-1_amd64.deb".to_owned()
                ),
                (
                    "hello-modules-arm64 6.1.0.9+0.1+6.1.20-1 (arm64)".to_owned(),
                    "hello-modules-6.1.0-9-arm64 (>= 0.1+6.1.20-1)".to_owned(),
                    "pool/main/h/hello/hello-modules-arm64_6.1.0.9+0.1+6.1.20-1_arm64.deb".to_owned()
                ),
                (
                    "hello-modules-cloud-amd64 6.1.0.10+0.1+6.1.38-1 (amd64)".to_owned(),
                    "hello-modules-6.1.0-10-cloud-amd64 (>= 0.1+6.1.38-1)".to_owned(),
                    "pool/main/h/hello/hello-modules-cloud-amd64_6.1.0.10+0.1+6.1.38-1_amd64.deb".to_owned()
                ),
            ]
        );
        // Same state, same bytes; a metapackage already published is not made again.
        let again = metapackages(&published, &published, "main").new;
        assert!(metas.iter().zip(&again).all(|(a, b)| a.bytes == b.bytes && a.entry == b.entry));
        let mut with = published.clone();
        with.extend(metas.iter().map(|m| (m.entry.id(), m.entry.clone())));
        assert!(metapackages(&with, &with, "main").new.is_empty(), "published metapackages are not generated again");
    }

    #[test]
    fn the_version_only_goes_up_with_newer_kernels_and_newer_module_builds() {
        let versions = |entries: &[Entry]| -> String {
            let metas = metapackages(&state(entries), &state(entries), "main").new;
            assert_eq!(metas.len(), 1);
            metas[0].entry.version.clone()
        };
        let old = module("6.1.0-9-amd64", "0.2+6.1.20-1", "amd64");
        let newer_kernel = module("6.1.0-10-amd64", "0.1+6.1.38-1", "amd64");
        let newer_module = module("6.1.0-10-amd64", "0.2+6.1.38-1", "amd64");
        let trixie_kernel = module("6.12.38+deb13-amd64", "0.1+6.12.38-1", "amd64");
        let steps = [
            versions(std::slice::from_ref(&old)),
            versions(&[old.clone(), newer_kernel.clone()]),
            versions(&[old.clone(), newer_kernel.clone(), newer_module.clone()]),
            versions(&[old, newer_kernel, newer_module, trixie_kernel]),
        ];
        assert_eq!(steps[1], "6.1.0.10+0.1+6.1.38-1", "a newer kernel wins over a newer module build of an older one");
        assert_eq!(steps[3], "6.12.38+deb13+0.1+6.12.38-1");
        for pair in steps.windows(2) {
            assert!(Version::parse(&pair[0]).unwrap() < Version::parse(&pair[1]).unwrap(), "{pair:?}");
        }
    }

    #[test]
    fn a_metapackage_is_a_real_package_without_scripts() {
        let one = state(&[module("6.1.0-10-amd64", "0.1+6.1.38-1", "amd64")]);
        let metas = metapackages(&one, &one, "main").new;
        let meta = &metas[0];
        assert_eq!(meta.entry.size, meta.bytes.len() as u64);
        assert_eq!(meta.entry.sha256, DebHash::of(&meta.bytes).sha256);
        let stanza = &meta.entry.stanza;
        assert!(stanza.starts_with("Package: hello-modules-amd64\nSource: hello\n"), "{stanza}");
        assert!(stanza.contains("Maintainer: t <t@example.org>\n"), "{stanza}");
        let dir = tempfile::tempdir().unwrap();
        let deb = dir.path().join("m.deb");
        std::fs::write(&deb, &meta.bytes).unwrap();
        let out = std::process::Command::new("dpkg-deb").arg("--contents").arg(&deb).output();
        if let Some(out) = out.ok().filter(|o| o.status.success()) {
            let list = String::from_utf8_lossy(&out.stdout);
            assert!(list.contains("./usr/share/doc/hello-modules-amd64/copyright"), "{list}");
            assert!(!list.contains(".ko"), "{list}");
            let info = std::process::Command::new("dpkg-deb").arg("--info").arg(&deb).output().unwrap();
            let info = String::from_utf8_lossy(&info.stdout);
            assert!(!info.contains("postinst") && !info.contains("postrm"), "{info}");
        }
    }

    #[test]
    fn a_module_epoch_keeps_its_order_and_the_kernel_still_comes_first() {
        let v = |s: &str| Version::parse(s).unwrap();
        assert_eq!(natural_version("6.1.0-57", "1:2.0-1"), "6.1.0.57++1.2.0-1");
        assert_eq!(natural_version("6.1.0-57", "0:2.0-1"), "6.1.0.57+2.0-1", "epoch 0 is no epoch");
        assert_eq!(natural_version("6.1.0-57", "2.5-1"), "6.1.0.57+2.5-1");
        // The module versions' dpkg order, pair by pair, is the metapackage versions' order.
        let modules = ["0.9-1", "2.5-1", "2.10-1", "1:0.1-1", "1:2.0-1", "1:10.0-1", "2:0.1-1", "2:0.1-1+hermod1"];
        for a in modules {
            for b in modules {
                let (ma, mb) = (natural_version("6.1.0-57", a), natural_version("6.1.0-57", b));
                assert_eq!(v(a).cmp(&v(b)), v(&ma).cmp(&v(&mb)), "{a} vs {b}: {ma} vs {mb}");
            }
        }
        // A newer kernel wins over any epoch of an older one's module.
        assert!(v(&natural_version("6.1.0-58", "0.1-1")) > v(&natural_version("6.1.0-57", "9:9.9-9")));
        let published =
            state(&[module("6.1.0-10-amd64", "2.5-1", "amd64"), module("6.1.0-10-amd64", "1:2.0-1", "amd64")]);
        let metas = metapackages(&published, &published, "main").new;
        assert_eq!(metas[0].entry.version, "6.1.0.10++1.2.0-1");
        assert_eq!(depends(&metas[0]), "hello-modules-6.1.0-10-amd64 (>= 1:2.0-1)");
    }

    #[test]
    fn a_metapackage_that_cannot_be_made_is_a_warning_naming_it() {
        let mut bad = module("6.1.0-10-amd64", "0.1-1", "amd64");
        bad.stanza = bad.stanza.replace("Maintainer: t <t@example.org>", "Maintainer: t\u{7f}");
        let published = state(&[bad]);
        let metas = metapackages(&published, &published, "main");
        assert!(metas.new.is_empty());
        assert_eq!(metas.warnings.len(), 1, "{:?}", metas.warnings);
        assert!(
            metas.warnings[0].starts_with("metapackage hello-modules-amd64 6.1.0.10+0.1-1 (amd64)"),
            "{:?}",
            metas.warnings
        );
    }
}
