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
//! version follows, so a newer module build for the same kernel moves it too.
//! The newest is the greatest of these versions (dpkg's order): the
//! repository only grows, so a metapackage's version never goes down.
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
//! Otherwise its bytes depend on the chosen module package's stanza alone
//! (fixed mtime, `debpkg`'s reproducible writer).

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
    let meta_version = format!("{}+{}", abi.replace(['-', '_'], "."), entry.version.replace(':', "."));
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

/// The metapackages the repository's packages `published` call for, that
/// are not published yet (see the module doc).
pub(super) fn metapackages(published: &BTreeMap<String, Entry>, component: &str) -> Vec<Meta> {
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
    let mut metas = Vec::new();
    for package in newest.values() {
        let spec = spec(package);
        let id = format!("{} {} ({})", spec.package, spec.version, spec.architecture);
        if published.contains_key(&id) {
            continue;
        }
        let Ok(bytes) = debpkg::build_metapackage(&spec) else { continue };
        let control = control_of(&spec, &bytes);
        let Ok(entry) = Entry::from_deb(&debpkg::file_name(&spec), &control, &DebHash::of(&bytes), component) else {
            continue;
        };
        // Another package's pool file (only a hand-made package could be there): no metapackage.
        if published.values().any(|e| e.filename == entry.filename) {
            continue;
        }
        metas.push(Meta { entry, bytes });
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
fn control_of(spec: &DebSpec, bytes: &[u8]) -> String {
    let limits = crate::bounded::current();
    let name = debpkg::file_name(spec);
    crate::apt::debfile::control_text_with(std::path::Path::new(&name), bytes, &limits).unwrap_or_default()
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
        let metas = metapackages(&published, "main");
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
        let again = metapackages(&published, "main");
        assert!(metas.iter().zip(&again).all(|(a, b)| a.bytes == b.bytes && a.entry == b.entry));
        let mut with = published.clone();
        with.extend(metas.iter().map(|m| (m.entry.id(), m.entry.clone())));
        assert!(metapackages(&with, "main").is_empty(), "published metapackages are not generated again");
    }

    #[test]
    fn the_version_only_goes_up_with_newer_kernels_and_newer_module_builds() {
        let versions = |entries: &[Entry]| -> String {
            let metas = metapackages(&state(entries), "main");
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
        let metas = metapackages(&state(&[module("6.1.0-10-amd64", "0.1+6.1.38-1", "amd64")]), "main");
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
}
