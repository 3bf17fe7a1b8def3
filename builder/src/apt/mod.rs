//! The Debian archive as hermod sees it: from the machine's APT configuration
//! to a directory of verified `.deb` files and unpacked trees — without
//! running apt or dpkg, and without maintainer scripts.
//!
//! The pipeline and its chain of trust:
//!
//! 1. [`sources`]: which archives are configured (`/etc/apt/sources.list`,
//!    `sources.list.d/*.{list,sources}`) and which keyring signs each.
//! 2. [`release`]: fetch `dists/<suite>/InRelease`, check its OpenPGP
//!    signature against that keyring ([`keyring`]) and its `Valid-Until`.
//!    Its SHA256 list is now trusted.
//! 3. [`packages`]: fetch each `Packages.xz`, check size + SHA256 against the
//!    Release list *before* parsing; each entry now carries a trusted SHA256
//!    of its .deb. Gathered into an [`Archive`].
//! 4. [`resolve()`]: the Depends/Pre-Depends closure of a few root packages
//!    ([`depends`], [`version`] implement Debian's relation syntax and dpkg's
//!    version order).
//! 5. [`download`]: fetch the .debs, checking size + SHA256 ([`fetch`]).
//! 6. [`unpack_data`]: unpack their `data.tar` safely ([`debfile`]).
//!
//! [`PackageSources`] is where packages may come from: the signed archives
//! (the machine's APT sources and any configured in hermod's config file) and
//! local directories of .debs ([`local`]), which are trusted as configuration.
//! Its [`PackageSources::mirrors`] are where a lock file's packages are
//! fetched from, without reading any index.

pub mod archive;
mod deb_error;
pub mod debfile;
pub mod depends;
pub mod fetch;
pub mod keyring;
pub mod local;
pub mod packages;
pub mod release;
pub mod resolve;
pub mod sources;
pub mod stanza;
pub mod syntax;
mod tarwalk;
pub mod transport;
pub mod version;

#[cfg(test)]
mod live;

use std::path::{Path, PathBuf};

pub use archive::{Archive, Snapshot};
pub use debfile::{control, DebFileError};
pub use fetch::{deb_file_name, download_from, FetchError};
pub use local::LocalError;
pub use packages::{Package, PackagesError};
pub use release::ReleaseError;
pub use resolve::ResolveError;
pub use sources::{read_sources, SignedBy, Source, SourcesError};
pub use stanza::Stanza;
pub use syntax::SyntaxError;
pub use version::Version;

/// Anything that can go wrong while loading the archive metadata.
#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error(transparent)]
    Sources(#[from] SourcesError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error(transparent)]
    Packages(#[from] PackagesError),
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error("no configured package source serves architecture {arch} (check /etc/apt/sources.list.d and hermod's config file)")]
    NoSources { arch: String },
}

impl crate::exit::HasExitCode for AptError {
    /// Whatever went wrong with the archive, it is the archive's error.
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            AptError::Sources(_)
            | AptError::Release(_)
            | AptError::Packages(_)
            | AptError::Local(_)
            | AptError::NoSources { .. } => crate::exit::Code::Archive,
        }
    }
}

/// Everything packages may come from, in order of preference.
#[derive(Debug, Clone, Default)]
pub struct PackageSources {
    /// Archives whose InRelease must verify with their `Signed-By` keys.
    pub archives: Vec<Source>,
    /// Directories of .debs, trusted because the administrator put them there.
    pub local_dirs: Vec<PathBuf>,
}

impl PackageSources {
    /// The machine's APT sources alone.
    pub fn system() -> Result<PackageSources, AptError> {
        Ok(PackageSources { archives: read_sources(Path::new("/"))?, local_dirs: Vec::new() })
    }

    /// Verify every archive's InRelease and index the local directories.
    /// With `host`, that architecture's packages too (a cross archive:
    /// see [`Archive`]).
    pub fn snapshot(&self, arch: &str, host: Option<&str>) -> Result<Snapshot, AptError> {
        let mut local = Vec::new();
        for dir in &self.local_dirs {
            for arch in std::iter::once(arch).chain(host) {
                local.extend(local::scan(dir, arch)?);
            }
        }
        Snapshot::fetch_cross(&self.archives, local, arch, host)
    }

    /// The archives' suite names, each once, in order.
    pub fn suites(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for source in &self.archives {
            if !out.contains(&source.suite) {
                out.push(source.suite.clone());
            }
        }
        out
    }

    /// Archive roots and `file:` directories to fetch a known `Filename`
    /// from, in order, without duplicates. Reads nothing.
    pub fn mirrors(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let local = self.local_dirs.iter().map(|d| format!("file:{}", d.display()));
        for uri in self.archives.iter().map(|s| s.uri.clone()).chain(local) {
            if !out.contains(&uri) {
                out.push(uri);
            }
        }
        out
    }
}

/// Dependency closure of `roots` (exact package names), skipping anything
/// matching the `*` globs in `exclude`. Sorted by name; one version each.
pub fn resolve(archive: &Archive, roots: &[String], exclude: &[String]) -> Result<Vec<Package>, ResolveError> {
    resolve::resolve(archive, roots, exclude)
}

/// Download (or reuse from `dir`) each package's .deb, verified by SHA256.
/// Returns the paths in the order of `pkgs`.
pub fn download(pkgs: &[Package], dir: &Path, quiet: bool) -> Result<Vec<PathBuf>, FetchError> {
    fetch::download(pkgs, dir, quiet)
}

/// Unpack the files of a .deb into `dest`; returns the relative paths.
pub fn unpack_data(deb: &Path, dest: &Path) -> Result<usize, DebFileError> {
    debfile::unpack_data(deb, dest)
}
