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

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::apt::{self, Archive, Package};
use crate::store::Store;

/// The recipe hermod ships; others can be given with `--recipe`.
pub const BUILTIN_RECIPE: &str = include_str!("../../rootfs-recipes/bookworm-amd64.toml");

/// Version of the rootfs layout produced by [`materialize`]; part of the lock hash,
/// so a change in how roots are assembled never reuses an old root.
const LAYOUT_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("cannot read recipe {path}: {source}")]
    RecipeRead { path: PathBuf, source: io::Error },
    #[error("recipe {path} is not valid: {message}")]
    RecipeParse { path: String, message: String },
    #[error("no headers package {package} in the archive for kernel {kernel}{}", nearest_list(.nearest))]
    NoHeaders { kernel: String, package: String, nearest: Vec<String> },
    #[error("cannot find the newest kernel: {0}")]
    NoDefaultKernel(String),
    #[error("{0:?} is not a kernel release (expected something like 6.1.0-56-amd64)")]
    BadKernelName(String),
    #[error(transparent)]
    Apt(#[from] apt::AptError),
    #[error(transparent)]
    Resolve(#[from] apt::ResolveError),
    #[error(transparent)]
    Fetch(#[from] apt::FetchError),
    #[error(transparent)]
    Unpack(#[from] apt::DebFileError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("materializing the build root in {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn nearest_list(nearest: &[String]) -> String {
    if nearest.is_empty() {
        String::new()
    } else {
        format!("; nearest available: {}", nearest.join(", "))
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RootfsError + '_ {
    move |source| RootfsError::Io { path: path.to_owned(), source }
}

/// What goes into a build root, besides the headers' own closure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    pub architecture: String,
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

impl Recipe {
    pub fn builtin() -> Recipe {
        Recipe::parse(BUILTIN_RECIPE, "<builtin bookworm-amd64>").expect("the builtin recipe parses")
    }

    pub fn load(path: &Path) -> Result<Recipe, RootfsError> {
        let text =
            fs::read_to_string(path).map_err(|source| RootfsError::RecipeRead { path: path.to_owned(), source })?;
        Recipe::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, origin: &str) -> Result<Recipe, RootfsError> {
        let recipe: Recipe = toml::from_str(text)
            .map_err(|e| RootfsError::RecipeParse { path: origin.to_owned(), message: e.to_string() })?;
        if !recipe.headers.contains("{kernel}") {
            return Err(RootfsError::RecipeParse {
                path: origin.to_owned(),
                message: "`headers` must contain {kernel}".into(),
            });
        }
        for link in recipe.links.keys() {
            if !link.starts_with('/') || link.split('/').any(|p| p == "..") {
                return Err(RootfsError::RecipeParse {
                    path: origin.to_owned(),
                    message: format!("link {link:?} must be an absolute path without `..`"),
                });
            }
        }
        Ok(recipe)
    }

    pub fn headers_package(&self, kernel: &str) -> String {
        self.headers.replace("{kernel}", kernel)
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

/// The exact package set of one build root.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lock {
    pub recipe: String,
    pub kernel: String,
    pub architecture: String,
    pub packages: Vec<Package>,
    pub links: BTreeMap<String, String>,
    /// Version of the kernel's headers package (it names the kernel build).
    pub headers_version: String,
}

impl Lock {
    /// Resolve the recipe for `kernel` against the archive.
    pub fn resolve(archive: &Archive, recipe: &Recipe, kernel: &str) -> Result<Lock, RootfsError> {
        if kernel.is_empty() || !kernel.chars().all(|c| c.is_ascii_alphanumeric() || "+-._~".contains(c)) {
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
                })
            }
        };
        let mut roots = vec![headers];
        roots.extend(recipe.packages.iter().cloned());
        let packages = apt::resolve(archive, &roots, &recipe.exclude)?;
        Ok(Lock {
            recipe: recipe.name.clone(),
            kernel: kernel.to_owned(),
            architecture: recipe.architecture.clone(),
            packages,
            links: recipe.links.clone(),
            headers_version,
        })
    }

    /// Canonical text: what the lock hash is computed over.
    pub fn text(&self) -> String {
        let mut text = format!(
            "hermod-rootfs-lock {LAYOUT_VERSION}\nrecipe {}\nkernel {}\narchitecture {}\n",
            self.recipe, self.kernel, self.architecture
        );
        let mut packages: Vec<&Package> = self.packages.iter().collect();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        for p in packages {
            text.push_str(&format!("package {} {} {} {}\n", p.name, p.version, p.architecture, p.sha256));
        }
        for (link, target) in &self.links {
            text.push_str(&format!("link {link} {target}\n"));
        }
        text
    }

    pub fn hash(&self) -> String {
        blake3::hash(self.text().as_bytes()).to_hex().to_string()
    }

    pub fn download_size(&self) -> u64 {
        self.packages.iter().map(|p| p.size).sum()
    }
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
        Memo { dir: store.root().join("locks"), identity, recipe }
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
fn nearest_headers(archive: &Archive, recipe: &Recipe, kernel: &str) -> Vec<String> {
    let (prefix, suffix) = recipe.headers.split_once("{kernel}").expect("checked in parse");
    let mut releases: Vec<String> = archive
        .names_with_prefix(prefix)
        .into_iter()
        .filter_map(|n| n.strip_prefix(prefix).and_then(|k| k.strip_suffix(suffix)))
        .filter(|k| k.starts_with(|c: char| c.is_ascii_digit()) && !k.ends_with("-common"))
        .map(str::to_owned)
        .collect();
    // Same flavour (the part after the ABI: "amd64", "cloud-amd64", "rt-amd64")
    // first, then the same series (6.1, 6.12), then the newest.
    let flavour = |k: &str| -> String {
        k.split('-').skip_while(|part| part.starts_with(|c: char| c.is_ascii_digit())).collect::<Vec<_>>().join("-")
    };
    let series = |k: &str| -> String { k.split(['.', '-', '+']).take(2).collect::<Vec<_>>().join(".") };
    let rank = |k: &str| (flavour(k) == flavour(kernel), series(k) == series(kernel));
    let version = |k: &str| apt::Version::parse(&k.replace('-', ".")).ok();
    releases.sort_by(|a, b| rank(b).cmp(&rank(a)).then_with(|| version(b).cmp(&version(a))));
    releases.truncate(6);
    releases
}

/// A materialized, complete build root.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub tree: PathBuf,
    pub lock: Lock,
    pub hash: String,
    /// Whether this call had to create it (false: reused).
    pub created: bool,
}

impl Rootfs {
    pub fn headers_dir_inside(&self) -> String {
        format!("/usr/src/linux-headers-{}", self.lock.kernel)
    }

    /// The kernel's `.config`, read from the headers.
    pub fn kernel_config(&self) -> io::Result<String> {
        fs::read_to_string(self.tree.join(self.headers_dir_inside().trim_start_matches('/')).join(".config"))
    }
}

/// Return the build root for `lock`, creating it if the store does not have it.
/// Concurrent callers for the same lock wait on a per-lock file lock; a crashed
/// creator leaves only a staging directory under `tmp/`, never a partial root.
pub fn materialize(store: &Store, lock: &Lock, quiet: bool) -> Result<Rootfs, RootfsError> {
    let hash = lock.hash();
    let dir = store.rootfs_dir();
    let final_dir = dir.join(&hash);
    let lock_path = dir.join(format!("{hash}.lock"));
    let lock_file =
        fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io_err(&lock_path))?;
    let _guard = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| RootfsError::Io { path: lock_path.clone(), source: errno.into() })?;

    let rootfs = |created| Rootfs { tree: final_dir.join("tree"), lock: lock.clone(), hash: hash.clone(), created };
    if final_dir.join("lock").is_file() {
        return Ok(rootfs(false));
    }

    let debs = apt::download(&lock.packages, store.packages(), quiet)?;
    let staging = store.staging_dir(&format!("rootfs-{}-", &hash[..16]))?;
    let tree = staging.path().join("tree");
    fs::create_dir_all(&tree).map_err(io_err(&tree))?;
    for deb in &debs {
        apt::unpack_data(deb, &tree)?;
    }
    finish_tree(&tree, lock)?;
    let lock_text_path = staging.path().join("lock");
    fs::write(&lock_text_path, lock.text()).map_err(io_err(&lock_text_path))?;

    // The sandbox of a root caller reads the root as an unprivileged user.
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755)).map_err(io_err(staging.path()))?;
    }
    let staged = staging.keep();
    if final_dir.exists() {
        // A leftover without its `lock` file: an interrupted rename can't produce
        // one, but a hand-edited store can. Replace it.
        fs::remove_dir_all(&final_dir).map_err(io_err(&final_dir))?;
    }
    fs::rename(&staged, &final_dir).map_err(io_err(&final_dir))?;
    Ok(rootfs(true))
}

/// What maintainer scripts and the system would have provided.
fn finish_tree(tree: &Path, lock: &Lock) -> Result<(), RootfsError> {
    for (link, target) in &lock.links {
        let path = tree.join(link.trim_start_matches('/'));
        let parent = path.parent().expect("absolute link path has a parent");
        let resolved =
            if target.starts_with('/') { tree.join(target.trim_start_matches('/')) } else { parent.join(target) };
        if resolved.exists() && fs::symlink_metadata(&path).is_err() {
            symlink(target, &path).map_err(io_err(&path))?;
        }
    }
    // Mount points the sandbox uses (/build is made by the sandbox in its own
    // tmpfs root), and what DKMS provides to dkms.conf.
    for dir in ["tmp", "proc", "dev", "boot", "etc", "var/lib/dkms"] {
        let path = tree.join(dir);
        fs::create_dir_all(&path).map_err(io_err(&path))?;
    }
    let headers = tree.join(format!("usr/src/linux-headers-{}", lock.kernel));
    let config = headers.join(".config");
    if config.is_file() {
        let boot = tree.join(format!("boot/config-{}", lock.kernel));
        fs::copy(&config, &boot).map_err(io_err(&boot))?;
    }
    // Tools that ask "who am I" (whoami, id -un, some configure scripts) need names.
    let passwd = tree.join("etc/passwd");
    fs::write(&passwd, "root:x:0:0:root:/root:/bin/sh\nbuild:x:1000:1000:hermod build:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
        .map_err(io_err(&passwd))?;
    let group = tree.join("etc/group");
    fs::write(&group, "root:x:0:\nbuild:x:1000:\nnogroup:x:65534:\n").map_err(io_err(&group))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_recipe_parses() {
        let recipe = Recipe::builtin();
        assert_eq!(recipe.headers_package("6.1.0-56-amd64"), "linux-headers-6.1.0-56-amd64");
        assert!(recipe.exclude.iter().any(|e| e == "linux-image-*"));
        assert_eq!(recipe.links.get("/usr/bin/awk").map(String::as_str), Some("mawk"));
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
        ] {
            packages.push(package(&format!("linux-headers-{k}"), "1", ""));
        }
        Archive::from_packages("amd64", packages)
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
        let err = Lock::resolve(&archive, &recipe, "6.1.0-99-amd64").unwrap_err().to_string();
        assert!(
            err.contains("linux-headers-6.1.0-99-amd64") && err.contains("nearest available: 6.1.0-56-amd64"),
            "{err}"
        );
        assert!(matches!(Lock::resolve(&archive, &recipe, "../x"), Err(RootfsError::BadKernelName(_))));
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
        for entry in fs::read_dir(store.root().join("locks")).unwrap() {
            fs::write(entry.unwrap().path(), b"{not json").unwrap();
        }
        assert_eq!(memo.get_or("q", compute).unwrap(), "answer 3");
        // Errors are not remembered.
        let failing = || -> Result<String, RootfsError> { Err(RootfsError::BadKernelName("x".into())) };
        assert!(Memo::new(&store, "archive-3", &recipe).get_or("q", failing).is_err());
        assert_eq!(Memo::new(&store, "archive-3", &recipe).get_or("q", compute).unwrap(), "answer 4");
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
    }
}
