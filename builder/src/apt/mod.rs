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

pub mod archive;
pub mod debfile;
pub mod depends;
pub mod fetch;
pub mod keyring;
pub mod packages;
pub mod release;
pub mod resolve;
pub mod sources;
pub mod stanza;
pub mod transport;
pub mod version;

#[cfg(test)]
mod live;

use std::path::{Path, PathBuf};

pub use archive::{Archive, Snapshot};
pub use debfile::{control, DebFileError};
pub use fetch::{deb_file_name, FetchError};
pub use packages::{Package, PackagesError};
pub use release::ReleaseError;
pub use resolve::ResolveError;
pub use sources::{read_sources, SignedBy, Source, SourcesError};
pub use stanza::Stanza;
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
    #[error("no configured APT source serves architecture {arch} (check /etc/apt/sources.list.d)")]
    NoSources { arch: String },
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
pub fn unpack_data(deb: &Path, dest: &Path) -> Result<Vec<PathBuf>, DebFileError> {
    debfile::unpack_data(deb, dest)
}
