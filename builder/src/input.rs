//! What `hermod build SOURCE` (and `hermod oci SOURCE`) accepts, and how each
//! kind of SOURCE becomes a source tree with its declared build needs.
//!
//! * **A directory** holding a `dkms.conf`: scanned as it is.
//! * **A `.deb` file**, normally a Debian `*-dkms` package: read with hermod's
//!   own reader ([`apt::debfile`], with its safety rules: no `..`, nothing
//!   written above the destination or through a symlink, no setuid bits, no
//!   devices), unpacked into a staging directory of the store, and its one
//!   `/usr/src/<module>-<version>/` tree that holds a `dkms.conf` is the source.
//! * **`pkg:NAME[=VERSION]`**: that package from the configured archive (the
//!   newest version unless one is given), downloaded into the package cache and
//!   verified by SHA256 exactly like a build-root package, then as a `.deb`.
//!
//! So the same tree gives the same source hash whichever way it arrived: the
//! scan sees relative paths, contents and modes, never where the tree was put.
//!
//! **Declared build needs.** DKMS builds on the host and silently uses what
//! the host happens to have: libc6-dev for a configure step, pkg-config, some
//! `-dev` package, another `-dkms` package's `/usr/src` tree. hermod's build
//! root has only the headers and their toolchain, so what a source needs
//! beyond that must be named, and then it is part of the root like every other
//! package: exact, locked, in the cache key. The names come from the `-dkms`
//! package's `Depends` (for `.deb` and `pkg:` inputs) and from
//! `--build-depends` (for any input). `dkms` itself and what the recipe
//! excludes are dropped: dkms is the tool hermod replaces, and its own
//! dependencies (headers meta packages, a compiler of the host's choosing)
//! are not build needs. Each dependency becomes one package name, the first
//! alternative the archive has, as apt picks; they become extra roots of the
//! build root's lock ([`crate::rootfs::Lock::resolve`]), resolved with `dkms`
//! excluded too, so depending on another `-dkms` package brings its source
//! tree but not dkms's dependencies.

use std::io;
use std::path::{Path, PathBuf};

use crate::apt::depends::{parse_depends, Dependency};
use crate::apt::{self, resolve::glob_match, Archive, Package, Version};
use crate::platform::Live;
use crate::rootfs::Lock;
use crate::store::{Store, StoreError};

/// What preparing a SOURCE asks of the archives: `pipeline::Archives` is
/// the one. A trait defined here, so this first stage of the pipeline uses
/// nothing of the pipeline above it; the errors are the caller's, which
/// carry this module's and the store's.
pub trait Archives {
    type Error: From<InputError> + From<StoreError>;
    /// The platform that builds `kernel`.
    fn platform(&self, kernel: &str) -> Result<&Live, Self::Error>;
    /// The archive of `kernel`'s platform.
    fn archive(&self, kernel: &str) -> Result<&Archive, Self::Error>;
    /// The lock file's package set, when building from one (then no index is read).
    fn given_lock(&self) -> Option<&Lock>;
    fn store(&self) -> &Store;
    fn quiet(&self) -> bool;
}

/// Defined with the lock that applies it (a module below this one).
pub use crate::rootfs::NEVER_A_BUILD_NEED;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("source {arg:?}: {reason}")]
    BadSpec { arg: String, reason: String },
    #[error("pkg:{name}: no package {name} in any configured package source{hint}")]
    UnknownPackage { name: String, hint: String },
    #[error("pkg:{name}={version}: the configured package sources have {name} only in version(s) {available}")]
    UnknownVersion { name: String, version: String, available: String },
    #[error("{origin} is not a DKMS source package: it has no /usr/src/<module>-<version>/dkms.conf ({found})")]
    NotDkms { origin: String, found: String },
    #[error("{origin} holds several DKMS source trees ({}); hermod builds one tree per SOURCE (unpack it and name the directory)", .trees.join(", "))]
    SeveralTrees { origin: String, trees: Vec<String> },
    #[error("{origin}: cannot read {field}: {reason}")]
    BadDepends { origin: String, field: String, reason: String },
    #[error("{origin} needs {dependency} in the build root, but {detail}")]
    Unmet { origin: String, dependency: String, detail: String },
    #[error("{origin} needs {name} in the build root, which the lock file does not contain; make a lock that does with `hermod rootfs lock --build-depends {name}`")]
    NotInLock { origin: String, name: String },
    #[error("pkg:{name} needs the archive's index, and a build with --lock reads none; download the package (`apt-get download {name}`) and give the .deb's path instead")]
    PackageWithLock { name: String },
    #[error(transparent)]
    Deb(#[from] apt::DebFileError),
    // Boxed: large, and carried by every Result of the pipeline.
    #[error(transparent)]
    Fetch(Box<apt::FetchError>),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl crate::exit::HasExitCode for InputError {
    /// A bad SOURCE is bad input, a failed download an archive error.
    fn exit_code(&self) -> crate::exit::Code {
        use crate::exit::Code;
        match self {
            InputError::PackageWithLock { .. } => Code::Usage,
            InputError::Fetch(_) => Code::Archive,
            InputError::Io { .. } => Code::Io,
            InputError::BadSpec { .. }
            | InputError::UnknownPackage { .. }
            | InputError::UnknownVersion { .. }
            | InputError::NotDkms { .. }
            | InputError::SeveralTrees { .. }
            | InputError::BadDepends { .. }
            | InputError::Unmet { .. }
            | InputError::NotInLock { .. }
            | InputError::Deb(_) => Code::BadInput,
        }
    }
}

/// One SOURCE argument, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A directory holding dkms.conf.
    Dir(PathBuf),
    /// A `.deb` file (a `*-dkms` package).
    Deb(PathBuf),
    /// `pkg:NAME[=VERSION]`: a package of the configured archive.
    Package { name: String, version: Option<String> },
}

/// An input made ready to build: a source tree on disk and its build needs.
#[derive(Debug)]
pub struct Prepared {
    /// The SOURCE argument, for messages (a staging path means nothing to the user).
    pub label: String,
    /// The tree holding dkms.conf.
    pub dir: PathBuf,
    /// Package names the build root gets besides the recipe's (sorted, once each).
    pub build_depends: Vec<String>,
    /// Where a .deb was unpacked; removed when the build is done.
    _staging: Option<tempfile::TempDir>,
}

impl Input {
    /// Read a SOURCE argument: `pkg:NAME[=VERSION]`; a path ending in `.deb`
    /// or a file that is an `ar` archive (a package); else a directory. A directory
    /// literally named `pkg:…` can be given as `./pkg:…`.
    pub fn parse(arg: &str) -> Result<Input, InputError> {
        let bad = |reason: String| InputError::BadSpec { arg: arg.to_owned(), reason };
        if let Some(spec) = arg.strip_prefix("pkg:") {
            let (name, version) = match spec.split_once('=') {
                Some((name, version)) => (name, Some(version)),
                None => (spec, None),
            };
            if !crate::rootfs::package_name_ok(name) {
                return Err(bad(format!(
                    "{name:?} is not a Debian package name (expected pkg:NAME or pkg:NAME=VERSION, e.g. pkg:v4l2loopback-dkms)"
                )));
            }
            if let Some(v) = version {
                Version::parse(v).map_err(|e| bad(format!("version {v:?}: {e}")))?;
            }
            return Ok(Input::Package { name: name.to_owned(), version: version.map(str::to_owned) });
        }
        if arg.is_empty() {
            return Err(bad("empty path".into()));
        }
        let path = PathBuf::from(arg);
        if arg.ends_with(".deb") {
            return Ok(Input::Deb(path));
        }
        if path.is_file() {
            // A package under another name is still an `ar` archive.
            let mut magic = [0u8; 8];
            let is_ar = crate::bounded::open_user_file(&path)
                .is_ok_and(|(mut f, _)| io::Read::read_exact(&mut f, &mut magic).is_ok())
                && &magic == b"!<arch>\n";
            if !is_ar {
                return Err(bad("a file, but neither a .deb nor a directory holding dkms.conf".into()));
            }
            return Ok(Input::Deb(path));
        }
        Ok(Input::Dir(path))
    }

    /// Make the input a tree on disk: unpack a .deb (after downloading it,
    /// for `pkg:`), and work out the build needs: the package's `Depends` and
    /// `cli_needs` (`--build-depends`, Depends syntax), each as one package.
    /// The archive is that of `kernel`'s release: `pkg:NAME` is the release's
    /// own package (what DKMS on a machine of that release would build), and
    /// the needs are that release's packages; prepare once per release.
    pub fn prepare<C: Archives>(
        &self,
        ctx: &C,
        kernel: &str,
        label: &str,
        cli_needs: &[String],
    ) -> Result<Prepared, C::Error> {
        let mut needs = build_depends(ctx, kernel, cli_needs)?;
        let (dir, staging) = match self {
            Input::Dir(dir) => (dir.clone(), None),
            Input::Deb(deb) => {
                // Unpacked first: a package that is no DKMS source is refused
                // before its Depends send anyone to the archive.
                let unpacked = unpack(ctx, deb, label)?;
                let depends = apt::control(deb).map_err(InputError::from)?.get("Depends").unwrap_or("").to_owned();
                needs.extend(declared_needs(ctx, kernel, &depends, label)?);
                unpacked
            }
            Input::Package { name, version } => {
                if ctx.given_lock().is_some() {
                    return Err(InputError::PackageWithLock { name: name.clone() }.into());
                }
                let package = find_package(ctx.archive(kernel)?, name, version.as_deref())?.clone();
                let mirrors = ctx.platform(kernel)?.platform.sources.mirrors();
                let store = ctx.store();
                let debs =
                    apt::download_from(std::slice::from_ref(&package), &mirrors, store.packages(), ctx.quiet(), label)
                        .map_err(|e| InputError::Fetch(Box::new(e)))?;
                let unpacked = unpack(ctx, &debs[0], label)?;
                // The index's Depends: the same field as the .deb's control, verified.
                needs.extend(declared_needs(ctx, kernel, &package.depends, label)?);
                unpacked
            }
        };
        needs.sort();
        needs.dedup();
        Ok(Prepared { label: label.to_owned(), dir, build_depends: needs, _staging: staging })
    }
}

/// `--build-depends` values (each in Depends syntax, e.g. `libelf-dev` or
/// `gawk | mawk`) as package names, checked against `kernel`'s archive or the lock.
pub fn build_depends<C: Archives>(ctx: &C, kernel: &str, cli_needs: &[String]) -> Result<Vec<String>, C::Error> {
    let mut names = Vec::new();
    for text in cli_needs.iter().filter(|t| !t.trim().is_empty()) {
        let origin = format!("--build-depends {text}");
        let deps = parse_depends(text).map_err(|e| InputError::BadDepends {
            origin: "--build-depends".into(),
            field: format!("{text:?}"),
            reason: e.to_string(),
        })?;
        names.extend(choose(ctx, kernel, &deps, &origin, false)?);
    }
    Ok(names)
}

/// A package's `Depends` as build needs (dkms and the recipe's exclusions dropped).
fn declared_needs<C: Archives>(ctx: &C, kernel: &str, depends: &str, origin: &str) -> Result<Vec<String>, C::Error> {
    let deps = parse_depends(depends).map_err(|e| InputError::BadDepends {
        origin: origin.to_owned(),
        field: "its Depends field".into(),
        reason: e.to_string(),
    })?;
    choose(ctx, kernel, &deps, origin, true)
}

/// Each dependency as one package name, from the archive, or from the lock's
/// packages when building from a lock file (which reads no index). A
/// dependency whose first alternative is excluded is met by the outside world
/// (as in [`apt::resolve()`]): dropped from a package's Depends, refused on the
/// command line. The archive is only loaded when there is something to choose.
fn choose<C: Archives>(
    ctx: &C,
    kernel: &str,
    deps: &[Dependency],
    origin: &str,
    skip_excluded: bool,
) -> Result<Vec<String>, C::Error> {
    let recipe = ctx.platform(kernel)?.recipe();
    let mut exclude = recipe.exclude.clone();
    exclude.push(NEVER_A_BUILD_NEED.to_owned());
    let from_lock = ctx
        .given_lock()
        .map(|l| Archive::from_packages_cross(&l.architecture, l.host_architecture.as_deref(), l.packages.clone()));
    let mut names = Vec::new();
    for dep in deps {
        let archive = match &from_lock {
            Some(archive) => archive,
            None => ctx.archive(kernel)?,
        };
        match pick(archive, dep, &exclude) {
            Ok(Some(name)) => names.push(name),
            Ok(None) if skip_excluded => {}
            Ok(None) => {
                let detail = format!(
                    "the recipe keeps it out of every build root (exclude = {:?}, and {NEVER_A_BUILD_NEED})",
                    recipe.exclude
                );
                return Err(InputError::Unmet { origin: origin.to_owned(), dependency: dep.to_string(), detail }.into());
            }
            Err(_) if from_lock.is_some() => {
                let name = dep.alternatives.first().map_or_else(String::new, |a| a.name.clone());
                return Err(InputError::NotInLock { origin: origin.to_owned(), name }.into());
            }
            Err(detail) => {
                return Err(InputError::Unmet { origin: origin.to_owned(), dependency: dep.to_string(), detail }.into())
            }
        }
    }
    Ok(names)
}

/// The first alternative of `dep` that `archive` has for its architecture,
/// as apt picks: `Ok(None)` if an excluded name comes first; a real package
/// whose newest version fits (the resolver takes a root at its newest); else
/// a provider of the virtual name (first by name, as the resolver picks).
/// Err: why none fits.
pub(crate) fn pick(archive: &Archive, dep: &Dependency, exclude: &[String]) -> Result<Option<String>, String> {
    let mut why = Vec::new();
    let alternatives: Vec<_> = dep.alternatives.iter().filter(|a| a.applies_to(archive.arch())).collect();
    if alternatives.is_empty() {
        return Ok(None); // not for this architecture: vacuous, as for the resolver
    }
    for alt in alternatives {
        if exclude.iter().any(|p| glob_match(p, &alt.name)) {
            return Ok(None);
        }
        let fits = |v: &Version| alt.constraint.as_ref().is_none_or(|c| c.allows(v));
        if let Some(newest) = archive.newest(&alt.name) {
            match Version::parse(&newest.version) {
                Ok(v) if fits(&v) => return Ok(Some(newest.name.clone())),
                _ => why.push(format!("{} is at {}", alt.name, newest.version)),
            }
            continue;
        }
        let mut providers: Vec<&Package> = archive
            .providers(&alt.name)
            .iter()
            .filter(|(_, provided)| alt.constraint.is_none() || provided.as_ref().is_some_and(fits))
            .map(|&(i, _)| archive.package(i))
            .filter(|p| !exclude.iter().any(|x| glob_match(x, &p.name)))
            .collect();
        providers.sort_by(|a, b| a.name.cmp(&b.name));
        match providers.first() {
            Some(p) => return Ok(Some(p.name.clone())),
            None => why.push(format!("no package or provider named {}", alt.name)),
        }
    }
    Err(format!("no configured package source offers it ({})", why.join("; ")))
}

/// The package `name` (newest, or exactly `version`) in `archive`.
pub(crate) fn find_package<'a>(
    archive: &'a Archive,
    name: &str,
    version: Option<&str>,
) -> Result<&'a Package, InputError> {
    let versions = archive.versions_of(name);
    let Some(newest) = versions.first() else {
        let mut hint = apt::resolve::hint_for(archive, name);
        if hint.is_empty() && name.ends_with("-dkms") {
            let dkms: Vec<&str> = archive.names_with_prefix("").into_iter().filter(|n| n.ends_with("-dkms")).collect();
            let shown: Vec<&str> = dkms.iter().take(6).copied().collect();
            hint = format!(" (the sources offer {} -dkms packages: {}, …)", dkms.len(), shown.join(", "));
        }
        return Err(InputError::UnknownPackage { name: name.to_owned(), hint });
    };
    let Some(wanted) = version else { return Ok(newest) };
    let wanted_v = Version::parse(wanted).ok();
    versions.iter().find(|p| Version::parse(&p.version).ok() == wanted_v).copied().ok_or_else(|| {
        InputError::UnknownVersion {
            name: name.to_owned(),
            version: wanted.to_owned(),
            available: versions.iter().map(|p| p.version.as_str()).collect::<Vec<_>>().join(", "),
        }
    })
}

/// Unpack `deb` into a staging directory of the store and find its tree.
fn unpack<C: Archives>(ctx: &C, deb: &Path, origin: &str) -> Result<(PathBuf, Option<tempfile::TempDir>), C::Error> {
    // `build-` prefix: if hermod is killed, `rootfs gc` removes it like a build's work dir.
    let staging = ctx.store().staging_dir("build-src-")?;
    let dir = extract(deb, staging.path(), origin)?;
    let dropped = drop_escaping_links(&dir)?;
    if !dropped.is_empty() && !ctx.quiet() {
        crate::say::note(format_args!(
            "note: {origin}: left out {} link(s) that point outside its source tree ({}); \
             DKMS copies them but no build can follow them",
            dropped.len(),
            dropped.join(", ")
        ));
    }
    Ok((dir, Some(staging)))
}

/// A package's /usr/src tree may hold links to files it installs elsewhere
/// (`README.gz -> ../../share/doc/…`). DKMS copies such a link and never
/// reads it; hermod, which refuses links out of a tree the user gives, drops
/// them from a package's tree and says so. Returns their relative paths.
///
/// A link is judged by where it leads inside the tree as the kernel would
/// resolve it (chains through other links, `..`), and dropping one can change
/// where another leads, so the tree is judged again until nothing escapes.
pub(crate) fn drop_escaping_links(tree: &Path) -> Result<Vec<String>, InputError> {
    let fs_err = |e: hermod_hostfs::Error| InputError::Io { path: e.path().to_owned(), source: e.into() };
    let dir = hermod_hostfs::Dir::open_nofollow(tree).map_err(fs_err)?;
    let mut dropped = Vec::new();
    loop {
        let mut links = Vec::new();
        dir.walk::<hermod_hostfs::Error>(&mut |visit| {
            if visit.meta.kind == hermod_hostfs::Kind::Symlink {
                links.push(visit.rel.to_owned());
            }
            Ok(true)
        })
        .map_err(fs_err)?;
        let mut escaping = Vec::new();
        for rel in links {
            if !matches!(dir.resolve(&rel, true).map_err(fs_err)?, hermod_hostfs::Resolved::Inside(_)) {
                escaping.push(rel);
            }
        }
        if escaping.is_empty() {
            return Ok(dropped);
        }
        for rel in escaping {
            dir.remove_file(&rel).map_err(fs_err)?;
            dropped.push(rel.to_string_lossy().into_owned());
        }
    }
}

/// Unpack `deb` into `dest` (hermod's reader, its rules) and return its one
/// `usr/src/<dir>` holding a dkms.conf (real directory, regular file: a
/// symlinked tree is not what DKMS would find installed there either).
pub(crate) fn extract(deb: &Path, dest: &Path, origin: &str) -> Result<PathBuf, InputError> {
    apt::unpack_data(deb, dest)?;
    let usr_src = dest.join("usr/src");
    let fs_err = |e: hermod_hostfs::Error| InputError::Io { path: e.path().to_owned(), source: e.into() };
    let mut trees = Vec::new();
    let mut seen = Vec::new();
    let top = hermod_hostfs::Dir::open_nofollow(dest).map_err(fs_err)?;
    if top.meta("usr/src").map_err(fs_err)?.is_some_and(|m| m.kind == hermod_hostfs::Kind::Dir) {
        let dir = top.open_dir("usr/src").map_err(fs_err)?;
        for (name, kind) in dir.entries().map_err(fs_err)? {
            let name = name.to_string_lossy().into_owned();
            if kind == hermod_hostfs::Kind::Dir
                && dir
                    .meta(Path::new(&name).join("dkms.conf"))
                    .map_err(fs_err)?
                    .is_some_and(|m| m.kind == hermod_hostfs::Kind::File)
            {
                trees.push(name.clone());
            }
            seen.push(name);
        }
    }
    trees.sort();
    seen.sort();
    match &trees[..] {
        [one] => Ok(usr_src.join(one)),
        [] => {
            let found = if seen.is_empty() {
                "it installs nothing under /usr/src".to_owned()
            } else {
                format!("/usr/src holds {}", seen.join(", "))
            };
            Err(InputError::NotDkms { origin: origin.to_owned(), found })
        }
        _ => Err(InputError::SeveralTrees {
            origin: origin.to_owned(),
            trees: trees.iter().map(|t| format!("/usr/src/{t}")).collect(),
        }),
    }
}

#[cfg(test)]
#[path = "input_tests.rs"]
mod tests;
