//! The exact package set of a build root, and resolutions remembered per archive snapshot.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Recipe, RootfsError, LAYOUT_VERSION};
use crate::apt::{self, Archive, Package};
use crate::store::Store;

/// What a build root must never get as a declared need, besides the recipe's
/// own exclusions: DKMS itself (see `crate::input`'s docs).
pub const NEVER_A_BUILD_NEED: &str = "dkms";

/// The exact package set of one build root.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lock {
    pub recipe: String,
    pub kernel: String,
    pub architecture: String,
    /// A cross root's programs' architecture ([`super::Cross::host`]); none
    /// in a native root, whose text and hash stay as they were.
    #[serde(default)]
    pub host_architecture: Option<String>,
    pub packages: Vec<Package>,
    pub links: BTreeMap<String, String>,
    /// Version of the kernel's headers package (it names the kernel build).
    pub headers_version: String,
    /// Declared build needs (see [`crate::input`]): packages the root has
    /// as roots of its resolution besides the recipe's, sorted, once each.
    /// Part of the lock's text and hash only when there are some, so a root
    /// without them keeps the name it always had.
    #[serde(default)]
    pub extras: Vec<String>,
    /// Archive roots (and `file:` directories) to fetch a .deb from when its
    /// own origin fails or is unknown, as for a lock read from a file. Where
    /// the bytes come from does not change what they are (SHA256), so this is
    /// not part of the lock's text or hash.
    #[serde(skip)]
    pub mirrors: Vec<String>,
    /// The suites the packages were resolved from (`trixie`,
    /// `trixie-security`, …): a record of where, for the reader of a lock
    /// file. Like the mirrors, not part of the lock's text or hash.
    #[serde(skip)]
    pub suites: Vec<String>,
}

impl Lock {
    /// Resolve the recipe for `kernel` against the archive, with `extras`
    /// (exact package names: declared build needs) as further roots. With
    /// extras, `dkms` is excluded too: a needed `-dkms` package brings its
    /// source tree, not dkms's own dependencies.
    pub fn resolve(archive: &Archive, recipe: &Recipe, kernel: &str, extras: &[String]) -> Result<Lock, RootfsError> {
        if !kernel_name_ok(kernel) {
            return Err(RootfsError::BadKernelName(kernel.to_owned()));
        }
        let headers = recipe.headers_package(kernel);
        let headers_version = match archive.newest(&headers) {
            Some(pkg) => pkg.version.clone(),
            None => {
                return Err(RootfsError::NoHeaders {
                    kernel: kernel.to_owned(),
                    package: headers.clone(),
                    nearest: nearest_headers(archive, recipe, kernel),
                    searched: Vec::new(),
                })
            }
        };
        // A need the cross map names (the C library's headers) is its
        // stand-in, which the cross compiler reads: recorded as such.
        let mut extras: Vec<String> = extras.iter().map(|n| recipe.stand_in(n)).collect();
        extras.sort();
        extras.dedup();
        // The headers are the kernel's architecture's; what runs in the root
        // (the recipe's packages, declared build needs) the host's.
        let mut roots = vec![headers];
        roots.extend(recipe.packages.iter().chain(&extras).map(|n| archive.host_key(n)));
        let mut exclude = recipe.exclude.clone();
        if !extras.is_empty() {
            exclude.push(NEVER_A_BUILD_NEED.to_owned());
        }
        let mapping = |name: &str| recipe.cross.as_ref().and_then(|c| c.mapped(name));
        let packages = apt::resolve::resolve_cross(archive, &roots, &exclude, &mapping)?;
        Ok(Lock {
            recipe: recipe.name.clone(),
            kernel: kernel.to_owned(),
            architecture: recipe.architecture.clone(),
            host_architecture: recipe.cross.as_ref().map(|c| c.host.clone()),
            packages,
            links: recipe.links.clone(),
            headers_version,
            extras,
            mirrors: Vec::new(),
            suites: Vec::new(),
        })
    }

    /// Canonical text: what the lock hash is computed over.
    pub fn text(&self) -> String {
        let mut text = format!(
            "hermod-rootfs-lock {LAYOUT_VERSION}\nrecipe {}\nkernel {}\narchitecture {}\n",
            self.recipe, self.kernel, self.architecture
        );
        if let Some(host) = &self.host_architecture {
            text.push_str(&format!("host-architecture {host}\n"));
        }
        let mut packages: Vec<&Package> = self.packages.iter().collect();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        for p in packages {
            text.push_str(&format!("package {} {} {} {}\n", p.name, p.version, p.architecture, p.sha256));
        }
        for (link, target) in &self.links {
            text.push_str(&format!("link {link} {target}\n"));
        }
        for name in &self.extras {
            text.push_str(&format!("extra {name}\n"));
        }
        text
    }

    pub fn hash(&self) -> String {
        blake3::hash(self.text().as_bytes()).to_hex().to_string()
    }

    /// Hash of the kernel's own packages (`linux-headers-*`, `linux-kbuild-*`,
    /// `linux-compiler-*`: names, versions, architectures, SHA256s).
    pub fn headers_hash(&self) -> String {
        self.part_hash("hermod-headers-v1", is_headers_package)
    }

    /// Hash of everything else in the root: the toolchain and tools (gcc,
    /// binutils, libc, make, shell...) and the recipe's links.
    pub fn toolchain_hash(&self) -> String {
        self.part_hash("hermod-toolchain-v1", |p| !is_headers_package(p))
    }

    /// Hash of the compiler alone: gcc, cpp, binutils and the libraries
    /// they run on ([`is_compiler_package`]).
    pub fn compiler_hash(&self) -> String {
        self.part_hash("hermod-compiler-v1", is_compiler_package)
    }

    /// Hash of the other tools: libc, make, the shells, coreutils… and the links.
    pub fn tools_hash(&self) -> String {
        self.part_hash("hermod-tools-v1", |p| !is_headers_package(p) && !is_compiler_package(p))
    }

    fn part_hash(&self, domain: &str, member: impl Fn(&str) -> bool) -> String {
        let mut packages: Vec<&Package> = self.packages.iter().filter(|p| member(&p.name)).collect();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        let mut text = format!("{domain}\n");
        for p in &packages {
            text.push_str(&format!("package {} {} {} {}\n", p.name, p.version, p.architecture, p.sha256));
        }
        // The links are made by the recipe for the tools (awk → mawk).
        if domain != "hermod-headers-v1" && domain != "hermod-compiler-v1" {
            for (link, target) in &self.links {
                text.push_str(&format!("link {link} {target}\n"));
            }
        }
        blake3::hash(text.as_bytes()).to_hex().to_string()
    }

    /// `name version` of the packages of one part, for explanations.
    pub fn part_summary(&self, member: impl Fn(&str) -> bool) -> String {
        let mut names: Vec<String> =
            self.packages.iter().filter(|p| member(&p.name)).map(|p| format!("{} {}", p.name, p.version)).collect();
        names.sort();
        names.join(", ")
    }

    pub fn download_size(&self) -> u64 {
        self.packages.iter().map(|p| p.size).sum()
    }
}

/// A kernel release as it may appear in package names and paths.
pub(crate) fn kernel_name_ok(kernel: &str) -> bool {
    apt::syntax::kernel_release(kernel).is_ok()
}

/// Whether a package belongs to the kernel's headers (as opposed to the toolchain).
pub fn is_headers_package(name: &str) -> bool {
    ["linux-headers-", "linux-kbuild-", "linux-compiler-"].iter().any(|p| name.starts_with(p))
}

/// Whether a package is part of the compiler: gcc and cpp (any version, and
/// their `-base`), binutils, and the libraries the compiler itself runs on.
pub fn is_compiler_package(name: &str) -> bool {
    let base = name.trim_end_matches("-base");
    let versioned = |prefix: &str| {
        base == prefix
            || base.strip_prefix(prefix).and_then(|v| v.strip_prefix('-')).is_some_and(|v| {
                v.split('-').next().is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            })
    };
    versioned("gcc")
        || versioned("cpp")
        || name.starts_with("binutils")
        || ["libbinutils", "libctf", "libcc1-", "libisl", "libmpc", "libmpfr", "libgprofng", "libjansson"]
            .iter()
            .any(|p| name.starts_with(p))
        || (name.starts_with("libgcc-") && name.ends_with("-dev"))
}

/// Resolutions remembered per archive snapshot.
///
/// Resolving needs the parsed Packages indices (about a second for bookworm),
/// but its result depends only on the indices' content, which the signed
/// Release files name by hash ([`apt::Snapshot::identity`]). So a resolution is
/// kept under `<store>/locks/<hash of identity, recipe, question>` and reused
/// while the archive is unchanged. A memo that cannot be read is recomputed.
pub struct Memo<'a> {
    dir: PathBuf,
    identity: &'a str,
    recipe: &'a Recipe,
}

impl<'a> Memo<'a> {
    pub fn new(store: &Store, identity: &'a str, recipe: &'a Recipe) -> Memo<'a> {
        Memo { dir: store.locks_dir(), identity, recipe }
    }

    fn path(&self, question: &str) -> PathBuf {
        let recipe = serde_json::to_string(self.recipe).expect("recipe serializes");
        let mut h = blake3::Hasher::new();
        for part in ["hermod-memo-v1", self.identity, &recipe, question] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        self.dir.join(format!("{}.json", h.finalize().to_hex()))
    }

    /// The remembered answer to `question`, or `compute` it and remember it.
    pub fn get_or<T, E>(&self, question: &str, compute: impl FnOnce() -> Result<T, E>) -> Result<T, E>
    where
        T: Serialize + serde::de::DeserializeOwned,
    {
        let path = self.path(question);
        if let Some(value) = fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
            return Ok(value);
        }
        let value = compute()?;
        let bytes = serde_json::to_vec(&value).expect("memo value serializes");
        if let Err(e) = fs::create_dir_all(&self.dir).and_then(|()| crate::store::write_atomically(&path, &bytes)) {
            tracing::warn!(path = %path.display(), "could not remember a resolution: {e}");
        }
        Ok(value)
    }
}

/// Release names of the recipe's headers packages, nearest to `kernel` first.
pub fn nearest_headers(archive: &Archive, recipe: &Recipe, kernel: &str) -> Vec<String> {
    let (prefix, suffix) = recipe.headers.split_once("{kernel}").expect("checked in parse");
    let mut releases: Vec<String> = archive
        .names_with_prefix(prefix)
        .into_iter()
        .filter_map(|n| n.strip_prefix(prefix).and_then(|k| k.strip_suffix(suffix)))
        .filter(|k| super::is_release(k))
        .map(str::to_owned)
        .collect();
    rank_nearest(&mut releases, kernel);
    releases
}

/// Order kernel releases nearest to `kernel` first and keep six: the same
/// flavour (the part after the ABI: "amd64", "cloud-amd64", "rt-amd64")
/// first, then the same Debian release tag (`+deb13`), then the same series
/// (6.1, 6.12), then the newest.
pub fn rank_nearest(releases: &mut Vec<String>, kernel: &str) {
    let flavour = super::kernel_flavour;
    let series = |k: &str| -> String { k.split(['.', '-', '+']).take(2).collect::<Vec<_>>().join(".") };
    let tag = |k: &str| -> String {
        k.split_once('+').map(|(_, t)| t.split('-').next().unwrap_or("").to_owned()).unwrap_or_default()
    };
    let rank = |k: &str| (flavour(k) == flavour(kernel), tag(k) == tag(kernel), series(k) == series(kernel));
    let version = |k: &str| apt::Version::parse(&k.replace('-', ".")).ok();
    releases.sort_by(|a, b| rank(b).cmp(&rank(a)).then_with(|| version(b).cmp(&version(a))));
    releases.dedup();
    releases.truncate(6);
}
