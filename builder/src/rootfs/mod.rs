//! Build roots: the kernel's headers and toolchain, unpacked from real Debian packages.
//!
//! A build root is what `mmdebstrap --variant=custom` would make for the recipe's
//! package list, minus everything a build does not need: the Depends/Pre-Depends
//! closure of `linux-headers-<KREL>` plus a shell and make, resolved from the
//! archive's signed indices, downloaded and verified by SHA256, and unpacked with
//! no maintainer scripts run. The few things maintainer scripts would have done
//! (alternatives links) are done from the recipe.
//!
//! A root is keyed by the hash of its [`Lock`], the exact package set, so two
//! builds that need the same packages share one root, and a root is never
//! changed after it appears: it is staged under `tmp/` and renamed into place.
//! The sandbox mounts it read-only.
//!
//! Packages are unpacked once into a content-addressed file store ([`cas`]);
//! a root is a tree of hard links into it ([`tree`], [`materialize()`]), so
//! roots for many kernels store their common toolchain once. [`inventory`],
//! [`gc()`] and [`verify()`] are the operations on the roots and the store;
//! [`locks`] says which file lock guards what; [`oci_image`] moves a root
//! between hosts as an OCI image.

pub mod cas;
mod gc;
pub mod inventory;
mod lock;
mod lockfile;
pub(crate) mod locks;
mod materialize;
pub mod oci_image;
pub mod report;
mod tree;
mod verify;

pub use gc::{gc, gc_dry, GcReport};
pub use inventory::{inventory, read_roots, Inventory, RootStats};
pub(crate) use lock::kernel_name_ok;
pub use lock::{
    is_compiler_package, is_headers_package, nearest_headers, rank_nearest, Lock, Memo, NEVER_A_BUILD_NEED,
};
pub(crate) use lockfile::package_name_ok;
pub use lockfile::LockFileError;
pub use materialize::{materialize, Rootfs};
pub use oci_image::OciImageError;
pub use verify::{verify, VerifyReport};

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::apt::{self, Archive};

/// The recipes hermod ships: every `rootfs-recipes/<name>.toml`, compiled in
/// by `builder/build.rs` (a new release is a new file there), sorted by name;
/// another can be given with `--recipe`.
const BUILTIN_RECIPE_TEXTS: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/recipes.rs"));

/// The names of the recipes compiled in: what a lock file's `recipe` may
/// name besides the one given with `--recipe`.
pub fn builtin_recipe_names() -> Vec<&'static str> {
    BUILTIN_RECIPE_TEXTS.iter().map(|(name, _)| *name).collect()
}

/// Version of the rootfs layout produced by [`materialize`]; part of the lock hash,
/// so a change in how roots are assembled never reuses an old root.
/// 3: trees of hard links into the file store (read-only files, fixed mtimes).
pub(crate) const LAYOUT_VERSION: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("cannot read recipe {path}: {source}")]
    RecipeRead { path: PathBuf, source: io::Error },
    #[error("recipe {path} is not valid: {message}")]
    RecipeParse { path: String, message: String },
    #[error("no headers package {package} in {} for kernel {kernel}{}", searched_list(.searched), nearest_list(.nearest))]
    NoHeaders { kernel: String, package: String, nearest: Vec<String>, searched: Vec<String> },
    #[error("kernel {kernel}: more than one release offers its headers ({}); name one with --recipe or config `releases`", .platforms.join(", "))]
    AmbiguousKernel { kernel: String, platforms: Vec<String> },
    #[error("the lock names recipe {recipe}, which is not among the releases built for ({}); check config `releases`", .known.join(", "))]
    LockRecipe { recipe: String, known: Vec<String> },
    #[error("cannot find the newest kernel: {0}")]
    NoDefaultKernel(String),
    #[error("{0:?} is not a kernel release (expected something like 6.1.0-56-amd64)")]
    BadKernelName(String),
    #[error(transparent)]
    LockFile(#[from] LockFileError),
    // Boxed: these are large, and every Result of the pipeline carries them.
    #[error(transparent)]
    Apt(Box<apt::AptError>),
    #[error(transparent)]
    Resolve(Box<apt::ResolveError>),
    #[error(transparent)]
    Fetch(Box<apt::FetchError>),
    #[error(transparent)]
    Unpack(#[from] apt::DebFileError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Cas(#[from] cas::CasError),
    #[error("lock link {link}: {reason}")]
    Link { link: String, reason: String },
    #[error("assembling the build root: {path} of {package}: {source}")]
    Assemble { package: String, path: String, source: io::Error },
    #[error("files in the store still fail their hash check after unpacking their packages again (disk trouble?): {}", .blobs.join(", "))]
    Unrepairable { blobs: Vec<String> },
    #[error("{count} file(s) in build roots are not from the store (listed above); remove those roots with `hermod rootfs gc --kernel KREL` and build them again")]
    Foreign { count: usize },
    #[error(transparent)]
    OciImage(Box<OciImageError>),
    #[error("materializing the build root in {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("rootfs gc: {path}: {source}")]
    Gc { path: PathBuf, source: io::Error },
    #[error("rootfs gc could not remove {} build root(s), named above: {}", .roots.len(), .roots.join(", "))]
    GcIncomplete { roots: Vec<String> },
}

impl crate::exit::HasExitCode for RootfsError {
    fn exit_code(&self) -> crate::exit::Code {
        use crate::exit::Code;
        match self {
            RootfsError::NoHeaders { .. } | RootfsError::BadKernelName(_) | RootfsError::AmbiguousKernel { .. } => {
                Code::NoHeaders
            }
            RootfsError::LockRecipe { .. }
            | RootfsError::Link { .. }
            | RootfsError::RecipeParse { .. }
            | RootfsError::RecipeRead { .. } => Code::BadInput,
            RootfsError::Apt(_)
            | RootfsError::Resolve(_)
            | RootfsError::Fetch(_)
            | RootfsError::Unpack(_)
            | RootfsError::NoDefaultKernel(_) => Code::Archive,
            RootfsError::LockFile(e) => e.exit_code(),
            RootfsError::OciImage(e) => e.exit_code(),
            RootfsError::Io { .. }
            | RootfsError::Gc { .. }
            | RootfsError::GcIncomplete { .. }
            | RootfsError::Store(_)
            | RootfsError::Cas(_)
            | RootfsError::Assemble { .. }
            | RootfsError::Unrepairable { .. }
            | RootfsError::Foreign { .. } => Code::Io,
        }
    }
}

impl From<apt::AptError> for RootfsError {
    fn from(e: apt::AptError) -> RootfsError {
        RootfsError::Apt(Box::new(e))
    }
}

impl From<apt::ResolveError> for RootfsError {
    fn from(e: apt::ResolveError) -> RootfsError {
        RootfsError::Resolve(Box::new(e))
    }
}

impl From<apt::FetchError> for RootfsError {
    fn from(e: apt::FetchError) -> RootfsError {
        RootfsError::Fetch(Box::new(e))
    }
}

fn searched_list(searched: &[String]) -> String {
    if searched.is_empty() {
        "the archive".to_owned()
    } else {
        searched.join(" or ")
    }
}

fn nearest_list(nearest: &[String]) -> String {
    if nearest.is_empty() {
        String::new()
    } else {
        format!("; nearest available: {}", nearest.join(", "))
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RootfsError + '_ {
    move |source| RootfsError::Io { path: path.to_owned(), source }
}

/// What goes into a build root, besides the headers' own closure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    /// The kernels' (and the built packages') Debian architecture.
    pub architecture: String,
    /// `uname -m` on a machine of that architecture: what a DKMS host there
    /// calls `$arch` (and matches BUILD_EXCLUSIVE_ARCH against). Defaults by
    /// architecture ([`default_machine`]).
    #[serde(default)]
    pub machine: String,
    /// Set when the root's programs run on another architecture than the
    /// kernels': a cross build ([`Cross`]).
    #[serde(default)]
    pub cross: Option<Cross>,
    /// The Debian release (codename) the root is resolved from. Empty in a
    /// recipe that names none: it then reads every configured source.
    #[serde(default)]
    pub release: String,
    /// The suites read for the release (the release, -updates, -security).
    #[serde(default)]
    pub suites: Vec<String>,
    /// The release's backports suite, read when backports are enabled;
    /// its packages are taken only where the release has none that will do.
    #[serde(default)]
    pub backports: Option<String>,
    /// The DKMS version whose reading of dkms.conf applies (Debian's `dkms`
    /// in the release); see [`crate::dkms`].
    #[serde(default = "default_dkms")]
    pub dkms: String,
    /// Where the release's packages put kernel modules, relative to `/`:
    /// `lib/modules` until bookworm, `usr/lib/modules` from trixie on (the
    /// merged-/usr move: trixie's packages ship nothing in aliased `/lib`).
    #[serde(default = "default_modules_dir")]
    pub modules_dir: String,
    /// Headers package name with `{kernel}` for the release.
    pub headers: String,
    /// Meta package whose first dependency is the newest kernel's headers.
    pub default_kernel_from: String,
    pub packages: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Link path (absolute, inside the root) → target, as update-alternatives would make.
    #[serde(default)]
    pub links: BTreeMap<String, String>,
}

/// How a cross recipe builds for [`Recipe::architecture`] on a master of
/// another: the headers are the target's, everything that runs is the host's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Cross {
    /// The Debian architecture of the root's programs (the master's).
    pub host: String,
    /// The target's GNU triplet: the cross tools' prefix
    /// (`CROSS_COMPILE=<triplet>-`).
    pub triplet: String,
    /// The kernel's name for the architecture (`ARCH=arm64`).
    pub kernel_arch: String,
    /// A target package's dependency on a name on the left (and a declared
    /// build need of that name) is met by the host's package on the right,
    /// `{N}` standing for a version number: the target's native compiler
    /// (`gcc-14`) is the cross compiler (`gcc-14-aarch64-linux-gnu`), the
    /// target's C library headers the cross compiler's (`libc6-dev` →
    /// `libc6-dev-arm64-cross`).
    #[serde(default)]
    pub map: BTreeMap<String, String>,
}

impl Cross {
    /// The host package that stands in for the target's `name`, if the map says so.
    pub fn mapped(&self, name: &str) -> Option<String> {
        self.map.iter().find_map(|(from, to)| {
            let Some((prefix, suffix)) = from.split_once("{N}") else {
                return (from == name).then(|| to.clone());
            };
            let n = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
            let version = !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.');
            version.then(|| to.replace("{N}", n))
        })
    }

    /// The prefix of the cross tools: `aarch64-linux-gnu-`.
    pub fn prefix(&self) -> String {
        format!("{}-", self.triplet)
    }
}

/// `uname -m` of a Debian architecture's machines, for the ones Debian's
/// kernels are built for.
pub fn default_machine(architecture: &str) -> Option<&'static str> {
    Some(match architecture {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "armhf" | "armel" => "armv7l",
        "i386" => "i686",
        "ppc64el" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "loong64" => "loongarch64",
        _ => return None,
    })
}

/// Debian's codenames in release order (the Toy Story names), so recipes
/// list oldest first; a codename not here sorts after them all.
const RELEASE_ORDER: &[&str] = &["buster", "bullseye", "bookworm", "trixie", "forky", "duke", "sid"];

/// The DKMS a recipe that names none is read with: bookworm's, the reading
/// hermod had before recipes named one.
fn default_dkms() -> String {
    "3.0.10".to_owned()
}

fn default_modules_dir() -> String {
    "lib/modules".to_owned()
}

impl Recipe {
    /// The first builtin recipe (bookworm amd64), as before there were several.
    pub fn builtin() -> Recipe {
        Recipe::named("bookworm-amd64").expect("the builtin recipe exists")
    }

    /// Every builtin recipe, oldest release first.
    pub fn builtins() -> Vec<Recipe> {
        let mut recipes: Vec<Recipe> = BUILTIN_RECIPE_TEXTS
            .iter()
            .map(|(name, text)| Recipe::parse(text, &format!("<builtin {name}>")).expect("the builtin recipes parse"))
            .collect();
        // Oldest release first (a codename not in RELEASE_ORDER after them all).
        let rank = |r: &Recipe| RELEASE_ORDER.iter().position(|n| *n == r.release).unwrap_or(RELEASE_ORDER.len());
        recipes.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.name.cmp(&b.name)));
        recipes
    }

    /// The builtin recipe called `name`.
    pub fn named(name: &str) -> Option<Recipe> {
        Recipe::builtins().into_iter().find(|r| r.name == name)
    }

    /// Every suite read for this recipe: its own, then backports if enabled.
    pub fn suites_with(&self, backports: bool) -> Vec<String> {
        let mut suites = self.suites.clone();
        if backports {
            suites.extend(self.backports.iter().cloned());
        }
        suites
    }

    pub fn load(path: &Path) -> Result<Recipe, RootfsError> {
        let text = crate::bounded::read_user_text(path, crate::bounded::MAX_USER_FILE)
            .map_err(|source| RootfsError::RecipeRead { path: path.to_owned(), source })?;
        Recipe::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, origin: &str) -> Result<Recipe, RootfsError> {
        let mut recipe: Recipe = toml::from_str(text)
            .map_err(|e| RootfsError::RecipeParse { path: origin.to_owned(), message: e.to_string() })?;
        if !recipe.headers.contains("{kernel}") {
            return Err(RootfsError::RecipeParse {
                path: origin.to_owned(),
                message: "`headers` must contain {kernel}".into(),
            });
        }
        let bad = |message: String| RootfsError::RecipeParse { path: origin.to_owned(), message };
        // The recipe's name, architecture and links end up in lock files:
        // the lock file's rules hold for them.
        apt::syntax::recipe_name(&recipe.name).map_err(|e| bad(e.to_string()))?;
        apt::syntax::architecture(&recipe.architecture).map_err(|e| bad(e.to_string()))?;
        if recipe.machine.is_empty() {
            recipe.machine = default_machine(&recipe.architecture)
                .ok_or_else(|| bad(format!("architecture {}: say its `machine` (uname -m)", recipe.architecture)))?
                .to_owned();
        }
        if !recipe.machine.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad(format!("machine = {}: not a machine name", crate::bounded::excerpt(&recipe.machine))));
        }
        if let Some(cross) = &recipe.cross {
            apt::syntax::architecture(&cross.host).map_err(|e| bad(format!("cross.host: {e}")))?;
            if cross.host == recipe.architecture {
                return Err(bad(format!("cross.host is the recipe's own architecture {}", cross.host)));
            }
            let word_ok = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
            if !word_ok(&cross.triplet) {
                return Err(bad(format!(
                    "cross.triplet = {}: not a GNU triplet",
                    crate::bounded::excerpt(&cross.triplet)
                )));
            }
            if !word_ok(&cross.kernel_arch) {
                return Err(bad(format!(
                    "cross.kernel_arch = {}: not an ARCH",
                    crate::bounded::excerpt(&cross.kernel_arch)
                )));
            }
            for (from, to) in &cross.map {
                if from.matches("{N}").count() > 1 || to.matches("{N}").count() > from.matches("{N}").count() {
                    return Err(bad(format!(
                        "cross.map {from:?} = {to:?}: {{N}} at most once, and on the right only if on the left"
                    )));
                }
            }
        }
        for (link, target) in &recipe.links {
            lockfile::check_link(link, target).map_err(bad)?;
        }
        for suite in recipe.suites.iter().chain(&recipe.backports) {
            if suite.is_empty() || !suite.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(bad(format!("suite {} is not a suite name", crate::bounded::excerpt(suite))));
            }
        }
        if recipe.release.is_empty() != recipe.suites.is_empty() {
            return Err(bad("`release` and `suites` go together: a release is read from its suites".into()));
        }
        crate::dkms::Semantics::parse(&recipe.dkms).map_err(bad)?;
        if !["lib/modules", "usr/lib/modules"].contains(&recipe.modules_dir.as_str()) {
            return Err(bad(format!(
                "modules_dir = {}: kernel modules live in lib/modules or usr/lib/modules",
                crate::bounded::excerpt(&recipe.modules_dir)
            )));
        }
        let paths = recipe.links.keys().map(|p| (p.clone(), 0)).collect();
        if let Some((inner, outer)) = lockfile::nested_link(&paths) {
            return Err(bad(format!("link {inner:?} lies below link {outer:?}")));
        }
        Ok(recipe)
    }

    /// The package that meets a declared build need `name` in this
    /// recipe's roots: its cross stand-in ([`Cross::map`]) or itself.
    pub fn stand_in(&self, name: &str) -> String {
        self.cross.as_ref().and_then(|c| c.mapped(name)).unwrap_or_else(|| name.to_owned())
    }

    /// The machine this recipe's roots build for (see [`crate::build::Target`]).
    pub fn target(&self) -> crate::build_script::Target {
        crate::build_script::Target {
            machine: self.machine.clone(),
            cross: self.cross.as_ref().map(|c| (c.kernel_arch.clone(), c.prefix())),
        }
    }

    pub fn headers_package(&self, kernel: &str) -> String {
        self.headers.replace("{kernel}", kernel)
    }

    /// Every kernel release whose flavour (see [`kernel_flavour`]) matches
    /// one of the `flavours` globs (`amd64`, `cloud-*`, `*`) and whose
    /// headers the archive offers, oldest first.
    pub fn all_kernels(&self, archive: &Archive, flavours: &[String]) -> Vec<String> {
        let (prefix, suffix) = self.headers.split_once("{kernel}").expect("checked in parse");
        let mut releases: Vec<String> = archive
            .names_with_prefix(prefix)
            .into_iter()
            .filter_map(|n| n.strip_prefix(prefix).and_then(|k| k.strip_suffix(suffix)))
            .filter(|k| is_release(k) && flavours.iter().any(|f| apt::resolve::glob_match(f, &kernel_flavour(k))))
            .map(str::to_owned)
            .collect();
        let version = |k: &str| apt::Version::parse(&k.replace('-', ".")).ok();
        releases.sort_by(|a, b| version(a).cmp(&version(b)).then_with(|| a.cmp(b)));
        releases
    }

    /// The kernel release whose headers `default_kernel_from` currently depends on.
    pub fn default_kernel(&self, archive: &Archive) -> Result<String, RootfsError> {
        let meta = archive.newest(&self.default_kernel_from).ok_or_else(|| {
            RootfsError::NoDefaultKernel(format!("{} is not in the archive", self.default_kernel_from))
        })?;
        let (prefix, suffix) = self.headers.split_once("{kernel}").expect("checked in parse");
        meta.depends
            .split([',', '|'])
            .map(|dep| dep.split_whitespace().next().unwrap_or(""))
            .find_map(|name| name.strip_prefix(prefix).and_then(|k| k.strip_suffix(suffix)))
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                RootfsError::NoDefaultKernel(format!(
                    "{} {} depends on no {} package",
                    meta.name, meta.version, self.headers
                ))
            })
    }
}

/// A kernel release names a version with a patch level and an ABI
/// (`6.1.0-56-amd64`, `6.12.117+deb12-amd64`), unlike the headers meta
/// packages (`linux-headers-6.12-amd64`) and the shared `-common` ones.
pub fn is_release(kernel: &str) -> bool {
    let version = kernel.split('-').next().unwrap_or("");
    let numbers: Vec<&str> = version.split(['.', '+']).take(3).collect();
    numbers.len() == 3
        && numbers.iter().all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        && !kernel.ends_with("-common")
}

/// A kernel release's flavour: what follows the version and ABI, e.g.
/// `amd64` for `6.1.0-56-amd64` and `6.12.117+deb12-amd64`, `cloud-amd64`
/// for `6.1.0-56-cloud-amd64`.
pub fn kernel_flavour(kernel: &str) -> String {
    kernel.split('-').skip_while(|part| part.starts_with(|c: char| c.is_ascii_digit())).collect::<Vec<_>>().join("-")
}

#[cfg(test)]
mod tests {
    use super::lock::nearest_headers;
    use super::*;
    use crate::apt::Package;
    use crate::store::Store;
    use std::fs;

    #[test]
    fn builtin_recipe_parses() {
        let recipe = Recipe::builtin();
        assert_eq!(recipe.headers_package("6.1.0-56-amd64"), "linux-headers-6.1.0-56-amd64");
        assert!(recipe.exclude.iter().any(|e| e == "linux-image-*"));
        assert_eq!(recipe.links.get("/usr/bin/awk").map(String::as_str), Some("mawk"));
        let names: Vec<String> = Recipe::builtins().into_iter().map(|r| r.name).collect();
        let all = ["bookworm-amd64", "bookworm-arm64", "trixie-amd64", "trixie-arm64"];
        assert_eq!(names, all, "every file of rootfs-recipes/, oldest release first");
        assert_eq!(builtin_recipe_names(), all);
        for recipe in Recipe::builtins() {
            assert!(recipe.suites.first() == Some(&recipe.release), "{} reads its release first", recipe.name);
            assert!(recipe.name.starts_with(&recipe.release) && recipe.name.ends_with(&recipe.architecture));
            assert_eq!(Some(recipe.machine.as_str()), default_machine(&recipe.architecture));
        }
        let arm64 = Recipe::named("trixie-arm64").unwrap();
        let cross = arm64.cross.as_ref().expect("trixie-arm64 is a cross recipe");
        assert_eq!((cross.host.as_str(), arm64.machine.as_str()), ("amd64", "aarch64"));
        assert_eq!(cross.mapped("gcc-14").as_deref(), Some("gcc-14-aarch64-linux-gnu"));
        assert_eq!(cross.mapped("gcc-14-for-host").as_deref(), Some("gcc-14-aarch64-linux-gnu"));
        assert_eq!(cross.mapped("gcc-14-base"), None, "{{N}} is a version, nothing more");
        assert_eq!(
            cross.mapped("libc6-dev").as_deref(),
            Some("libc6-dev-arm64-cross"),
            "a name without {{N}} is itself"
        );
        assert_eq!(cross.mapped("libgcc-s1"), None);
        let target = arm64.target();
        assert_eq!(
            target.env(),
            [("ARCH".into(), "arm64".into()), ("CROSS_COMPILE".into(), "aarch64-linux-gnu-".into())]
        );
        assert_eq!(target.tool("strip"), "aarch64-linux-gnu-strip");
        assert!(Recipe::builtin().target().env().is_empty() && Recipe::builtin().target().tool("strip") == "strip");
    }

    #[test]
    fn a_cross_recipe_is_checked() {
        let base = "name='x-arm64'\narchitecture='arm64'\nheaders='h-{kernel}'\ndefault_kernel_from='m'\npackages=[]\n";
        let ok = format!("{base}[cross]\nhost='amd64'\ntriplet='aarch64-linux-gnu'\nkernel_arch='arm64'\n");
        assert_eq!(Recipe::parse(&ok, "t").unwrap().machine, "aarch64", "the machine defaults by architecture");
        for (bad, says) in [
            (ok.replace("host='amd64'", "host='arm64'"), "own architecture"),
            (ok.replace("triplet='aarch64-linux-gnu'", "triplet='a b'"), "triplet"),
            (ok.replace("kernel_arch='arm64'", "kernel_arch='$(x)'"), "kernel_arch"),
            (format!("{ok}[cross.map]\n'gcc'='gcc-{{N}}-cross'\n"), "{N}"),
            (base.replace("arm64'\nh", "sparc9'\nh"), "machine"),
            (format!("{base}machine='a/b'\n"), "machine"),
        ] {
            let e = Recipe::parse(&bad, "t").unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    fn package(name: &str, version: &str, depends: &str) -> Package {
        crate::apt::archive::tests::pkg(name, version, depends, "")
    }

    fn fixture_archive() -> Archive {
        let mut packages =
            vec![package("linux-headers-amd64", "6.1.192-2", "linux-headers-6.1.0-56-amd64 (= 6.1.192-2)")];
        for k in [
            "6.1.0-9-amd64",
            "6.1.0-55-amd64",
            "6.1.0-56-amd64",
            "6.1.0-56-cloud-amd64",
            "6.1.0-56-common",
            "6.12.99+deb12-amd64",
            "6.12.117+deb12-amd64",
            "6.12-amd64",
        ] {
            packages.push(package(&format!("linux-headers-{k}"), "1", ""));
        }
        Archive::from_packages("amd64", packages)
    }

    #[test]
    fn all_kernels_are_those_of_one_flavour_oldest_first() {
        let archive = fixture_archive();
        let all = Recipe::builtin().all_kernels(&archive, &["amd64".into()]);
        assert_eq!(
            all,
            ["6.1.0-9-amd64", "6.1.0-55-amd64", "6.1.0-56-amd64", "6.12.99+deb12-amd64", "6.12.117+deb12-amd64"]
        );
        assert_eq!(Recipe::builtin().all_kernels(&archive, &["cloud-amd64".into()]), ["6.1.0-56-cloud-amd64"]);
        assert_eq!(Recipe::builtin().all_kernels(&archive, &["*".into()]).len(), 6, "every flavour");
        assert_eq!(kernel_flavour("6.12.117+deb12-rt-amd64"), "rt-amd64");
        assert!(is_release("6.1.0-56-amd64") && is_release("6.12.117+deb12-amd64"));
        assert!(!is_release("6.12-amd64") && !is_release("6.1.0-56-common") && !is_release("amd64"));
    }

    #[test]
    fn default_kernel_follows_the_meta_package() {
        assert_eq!(Recipe::builtin().default_kernel(&fixture_archive()).unwrap(), "6.1.0-56-amd64");
    }

    #[test]
    fn nearest_kernels_prefer_same_flavour_then_series_then_newest() {
        let archive = fixture_archive();
        let recipe = Recipe::builtin();
        let near = nearest_headers(&archive, &recipe, "6.1.0-99-amd64");
        assert_eq!(near[..3], ["6.1.0-56-amd64", "6.1.0-55-amd64", "6.1.0-9-amd64"]);
        assert!(!near.iter().any(|k| k.ends_with("-common")));
        assert_eq!(near.last().unwrap(), "6.1.0-56-cloud-amd64");
        let near = nearest_headers(&archive, &recipe, "6.12.1+deb12-amd64");
        assert_eq!(near[..2], ["6.12.117+deb12-amd64", "6.12.99+deb12-amd64"]);
        let err = Lock::resolve(&archive, &recipe, "6.1.0-99-amd64", &[]).unwrap_err().to_string();
        assert!(
            err.contains("linux-headers-6.1.0-99-amd64") && err.contains("nearest available: 6.1.0-56-amd64"),
            "{err}"
        );
        assert!(matches!(Lock::resolve(&archive, &recipe, "../x", &[]), Err(RootfsError::BadKernelName(_))));
    }

    #[test]
    fn memo_answers_from_the_store_until_the_archive_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None).unwrap();
        let recipe = Recipe::builtin();
        let calls = std::cell::Cell::new(0);
        let compute = || -> Result<String, RootfsError> {
            calls.set(calls.get() + 1);
            Ok(format!("answer {}", calls.get()))
        };
        let memo = Memo::new(&store, "archive-1", &recipe);
        assert_eq!(memo.get_or("q", compute).unwrap(), "answer 1");
        assert_eq!(memo.get_or("q", compute).unwrap(), "answer 1", "second call is remembered");
        assert_eq!(Memo::new(&store, "archive-2", &recipe).get_or("q", compute).unwrap(), "answer 2");
        // A damaged memo is recomputed, never trusted.
        for entry in fs::read_dir(store.locks_dir()).unwrap() {
            fs::write(entry.unwrap().path(), b"{not json").unwrap();
        }
        assert_eq!(memo.get_or("q", compute).unwrap(), "answer 3");
        // Errors are not remembered.
        let failing = || -> Result<String, RootfsError> { Err(RootfsError::BadKernelName("x".into())) };
        assert!(Memo::new(&store, "archive-3", &recipe).get_or("q", failing).is_err());
        assert_eq!(Memo::new(&store, "archive-3", &recipe).get_or("q", compute).unwrap(), "answer 4");
    }

    #[test]
    fn headers_and_toolchain_hashes_move_independently() {
        let mut lock = Lock {
            recipe: "r".into(),
            kernel: "6.1.0-56-amd64".into(),
            architecture: "amd64".into(),
            host_architecture: None,
            packages: vec![
                package("linux-headers-6.1.0-56-amd64", "1", ""),
                package("linux-kbuild-6.1", "1", ""),
                package("gcc-12", "12.2", ""),
            ],
            links: BTreeMap::new(),
            headers_version: "1".into(),
            extras: Vec::new(),
            mirrors: Vec::new(),
            suites: Vec::new(),
        };
        let (headers, toolchain, whole) = (lock.headers_hash(), lock.toolchain_hash(), lock.hash());
        assert_ne!(headers, toolchain);
        lock.packages[2].sha256 = "another compiler".into();
        assert_eq!(lock.headers_hash(), headers, "a new compiler leaves the headers hash");
        assert_ne!(lock.toolchain_hash(), toolchain);
        let toolchain = lock.toolchain_hash();
        lock.packages[1].version = "2".into();
        assert_ne!(lock.headers_hash(), headers, "kbuild belongs to the headers");
        assert_eq!(lock.toolchain_hash(), toolchain);
        lock.links.insert("/usr/bin/awk".into(), "mawk".into());
        assert_ne!(lock.toolchain_hash(), toolchain, "links are part of the toolchain");
        assert_ne!(lock.hash(), whole);
        assert!(is_headers_package("linux-compiler-gcc-12-x86") && !is_headers_package("linux-base"));
    }

    #[test]
    fn bad_recipes_are_rejected() {
        let bad = "name='x'\narchitecture='amd64'\nheaders='linux-headers'\ndefault_kernel_from='m'\npackages=[]\n";
        let err = Recipe::parse(bad, "t.toml").unwrap_err().to_string();
        assert!(err.contains("{kernel}"), "{err}");
        let unknown =
            "name='x'\narchitecture='amd64'\nheaders='h-{kernel}'\ndefault_kernel_from='m'\npackages=[]\nbogus=1\n";
        assert!(Recipe::parse(unknown, "t.toml").unwrap_err().to_string().contains("bogus"));
        let escape = "name='x'\narchitecture='amd64'\nheaders='h-{kernel}'\ndefault_kernel_from='m'\npackages=[]\n[links]\n'/../x'='y'\n";
        assert!(Recipe::parse(escape, "t.toml").is_err());
        let nested = "name='x'\narchitecture='amd64'\nheaders='h-{kernel}'\ndefault_kernel_from='m'\npackages=[]\n[links]\n'/a'='/etc'\n'/a/b'='y'\n";
        assert!(Recipe::parse(nested, "t.toml").unwrap_err().to_string().contains("lies below link"));
        let named = "name='../x'\narchitecture='amd64'\nheaders='h-{kernel}'\ndefault_kernel_from='m'\npackages=[]\n";
        assert!(Recipe::parse(named, "t.toml").unwrap_err().to_string().contains("recipe"));
    }
}
