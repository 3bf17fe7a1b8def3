//! The hermod APT repository as a farm machine reads it: the same chain of
//! trust as for Debian's archive ([`crate::apt`]): InRelease verified with the
//! configured `signed_by` key, Packages checked against it, each .deb against
//! its SHA256. No apt, no dpkg, no toolchain.

use std::path::{Path, PathBuf};

use crate::apt::{self, Archive, Package, Source};

use super::FarmError;

pub struct Repository {
    source: Source,
    archive: Archive,
}

impl Repository {
    /// Fetch and verify the repository's indices (cached by hash in `lists`).
    pub fn open(source: Source, lists: &Path, arch: &str, quiet: bool) -> Result<Repository, FarmError> {
        std::fs::create_dir_all(lists).map_err(super::io_error(lists))?;
        let archive = Archive::from_sources(std::slice::from_ref(&source), lists, arch, quiet)?;
        Ok(Repository { source, archive })
    }

    /// `URI SUITE/COMPONENT`, for messages.
    pub fn label(&self) -> String {
        format!("{} {}/{}", self.source.uri, self.source.suite, self.source.components.join(","))
    }

    /// The newest version of `package`.
    pub fn find(&self, package: &str) -> Option<&Package> {
        self.archive.newest(package)
    }

    /// Download `package` (verified by size and SHA256) into `dir`.
    pub fn download(&self, package: &Package, dir: &Path, quiet: bool) -> Result<PathBuf, FarmError> {
        let mut paths = apt::download(std::slice::from_ref(package), dir, quiet)?;
        Ok(paths.remove(0))
    }
}

/// The repository as a [`super::prepare::Provider`]; opened on first use, so a
/// machine whose wanted packages are all installed never contacts it.
pub struct RepositoryProvider {
    pub source: Source,
    pub lists: PathBuf,
    pub arch: String,
    pub quiet: bool,
    opened: std::sync::OnceLock<Result<Repository, String>>,
}

impl RepositoryProvider {
    pub fn new(source: Source, lists: PathBuf, arch: &str, quiet: bool) -> RepositoryProvider {
        RepositoryProvider { source, lists, arch: arch.to_owned(), quiet, opened: std::sync::OnceLock::new() }
    }

    fn repository(&self) -> Result<&Repository, String> {
        self.opened
            .get_or_init(|| {
                Repository::open(self.source.clone(), &self.lists, &self.arch, self.quiet).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl super::prepare::Provider for RepositoryProvider {
    fn name(&self) -> String {
        format!("the repository {} {}", self.source.uri, self.source.suite)
    }

    fn provide(&self, wanted: &super::Wanted, kernel: &str, dir: &Path) -> Result<Option<PathBuf>, String> {
        let repository = self.repository()?;
        let Some(package) = repository.find(&wanted.package(kernel)) else { return Ok(None) };
        repository.download(package, dir, self.quiet).map(Some).map_err(|e| e.to_string())
    }
}
