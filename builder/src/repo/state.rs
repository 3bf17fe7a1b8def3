//! The repository on disk: what is published (read back from its own
//! indices), the publish lock, leftovers of a killed publish, and the writer
//! that replaces a file only when its bytes change.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::index::{self, Entry};
use super::release::IndexFile;
use super::{io_error, RepoError};
use crate::rootfs::locks::{self, FileLock, Mode};

/// The publish lock's file name in the repository's root.
pub(super) const LOCK_FILE: &str = ".hermod-publish.lock";

/// Hold `DIR/.hermod-publish.lock` exclusively (waits for another publish).
pub(super) fn lock(repo: &Path) -> Result<FileLock, RepoError> {
    let path = repo.join(LOCK_FILE);
    match locks::lock(&path, Mode::Exclusive, false).map_err(io_error(&path))? {
        Some(held) => Ok(held),
        None => {
            tracing::warn!("waiting for another publish into {} to finish", repo.display());
            Ok(locks::lock(&path, Mode::Exclusive, true).map_err(io_error(&path))?.expect("a waiting lock is taken"))
        }
    }
}

/// Remove the `.tmp-*` files a killed publish left (we hold the lock, so
/// none of them is being written). Best effort: litter is never an error.
pub(super) fn remove_litter(dirs: &[std::path::PathBuf]) {
    for dir in dirs {
        for entry in walkdir::WalkDir::new(dir).into_iter().filter_map(Result::ok) {
            let litter = entry.file_type().is_file() && entry.file_name().to_string_lossy().starts_with(".tmp-");
            if litter {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// The binary-* directories of `dists/<suite>/<component>`, sorted.
fn arch_dirs(component_dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>, RepoError> {
    let mut dirs = Vec::new();
    let read = match fs::read_dir(component_dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(dirs),
        Err(e) => return Err(io_error(component_dir)(e)),
    };
    for entry in read {
        let entry = entry.map_err(io_error(component_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(arch) = name.strip_prefix("binary-") {
            if entry.path().is_dir() && index::is_architecture(arch) {
                dirs.push((arch.to_owned(), entry.path()));
            }
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// A directory's Packages text: `Packages`, else `Packages.xz` decompressed.
fn packages_text(dir: &Path) -> Result<Option<String>, RepoError> {
    let plain = dir.join("Packages");
    let bytes = match fs::read(&plain) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let packed = dir.join("Packages.xz");
            match fs::read(&packed) {
                Ok(xz) => {
                    let mut out = Vec::new();
                    liblzma::read::XzDecoder::new(&xz[..])
                        .read_to_end(&mut out)
                        .map_err(|e| RepoError::Damaged(format!("{}: {e}", packed.display())))?;
                    out
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_error(&packed)(e)),
            }
        }
        Err(e) => return Err(io_error(&plain)(e)),
    };
    String::from_utf8(bytes).map(Some).map_err(|_| RepoError::Damaged(format!("{} is not UTF-8", plain.display())))
}

/// What the component already publishes, by [`Entry::id`].
pub(super) fn read_component(repo: &Path, suite: &str, component: &str) -> Result<BTreeMap<String, Entry>, RepoError> {
    let mut published = BTreeMap::new();
    let component_dir = repo.join("dists").join(suite).join(component);
    for (arch, dir) in arch_dirs(&component_dir)? {
        let Some(text) = packages_text(&dir)? else { continue };
        let origin = dir.join("Packages").display().to_string();
        for entry in index::parse_packages(&text, &origin)? {
            if entry.architecture != arch {
                return Err(RepoError::Damaged(format!("{origin} lists {} in binary-{arch}", entry.id())));
            }
            published.insert(entry.id(), entry);
        }
    }
    Ok(published)
}

/// A listed pool file must be there, with its listed size (the full hash is
/// apt's to check; reading every file on each publish would not scale).
pub(super) fn check_pool_file(repo: &Path, entry: &Entry) -> Result<(), RepoError> {
    let path = repo.join(&entry.filename);
    match fs::metadata(&path) {
        Ok(m) if m.is_file() && m.len() == entry.size => Ok(()),
        Ok(m) => {
            Err(RepoError::Damaged(format!("{} has {} bytes, the index says {}", path.display(), m.len(), entry.size)))
        }
        Err(e) => Err(RepoError::Damaged(format!("{} ({}) is listed but unreadable: {e}", path.display(), entry.id()))),
    }
}

/// The Date of `dists/<suite>/Release`, if there is one.
pub(super) fn previous_date(dists: &Path) -> Result<Option<i64>, RepoError> {
    let path = dists.join("Release");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(&path)(e)),
    };
    let origin = path.display().to_string();
    let release = crate::apt::release::Release::parse(&text, &origin)
        .map_err(|e| RepoError::Damaged(format!("{origin}: {e}")))?;
    match crate::apt::release::parse_rfc2822(&release.date) {
        Some(date) => Ok(Some(date)),
        None => Err(RepoError::Damaged(format!("{origin}: unreadable Date {:?}", release.date))),
    }
}

pub(super) fn index_file(path: &str, bytes: &[u8]) -> IndexFile {
    IndexFile { path: path.to_owned(), size: bytes.len() as u64, sha256: hex::encode(Sha256::digest(bytes)) }
}

/// What the suite's other components add to its Release.
#[derive(Default)]
pub(super) struct OtherComponents {
    /// Their index files, as they are on disk.
    pub files: Vec<IndexFile>,
    pub architectures: BTreeSet<String>,
    pub components: BTreeSet<String>,
}

/// The suite's components other than `ours`, as they are on disk.
pub(super) fn other_components(dists: &Path, ours: &str) -> Result<OtherComponents, RepoError> {
    let (mut files, mut arches, mut components) = (Vec::new(), BTreeSet::new(), BTreeSet::new());
    let read = match fs::read_dir(dists) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(OtherComponents::default()),
        Err(e) => return Err(io_error(dists)(e)),
    };
    let mut dirs: Vec<_> = read.filter_map(Result::ok).filter(|e| e.path().is_dir()).collect();
    dirs.sort_by_key(|e| e.file_name());
    for dir in dirs {
        let component = dir.file_name().to_string_lossy().into_owned();
        if component == ours || super::check_name("component", &component).is_err() {
            continue;
        }
        let mut any = false;
        for (arch, arch_dir) in arch_dirs(&dir.path())? {
            for name in ["Packages", "Packages.xz"] {
                let path = arch_dir.join(name);
                match fs::read(&path) {
                    Ok(bytes) => {
                        files.push(index_file(&format!("{component}/binary-{arch}/{name}"), &bytes));
                        arches.insert(arch.clone());
                        any = true;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error(&path)(e)),
                }
            }
        }
        if any {
            components.insert(component);
        }
    }
    Ok(OtherComponents { files, architectures: arches, components })
}

/// Writes files under the repository, each only if its bytes change.
pub(super) struct Writer<'a> {
    pub repo: &'a Path,
    pub written: &'a mut Vec<String>,
}

impl Writer<'_> {
    /// `rel` gets `bytes`, by temp file + rename, unless it already has them.
    pub fn file(&mut self, rel: &str, bytes: &[u8]) -> Result<(), RepoError> {
        let path = self.repo.join(rel);
        if fs::read(&path).is_ok_and(|old| old == bytes) {
            return Ok(());
        }
        self.replace(rel, bytes)
    }

    /// A pool file: left alone when its content has the SHA256 wanted
    /// (cheaper than comparing bytes, and the same answer).
    pub fn pool_file(&mut self, rel: &str, bytes: &[u8], sha256: &str) -> Result<(), RepoError> {
        let path = self.repo.join(rel);
        if fs::read(&path).is_ok_and(|old| hex::encode(Sha256::digest(&old)) == sha256) {
            return Ok(());
        }
        // A leftover of a crashed publish (no index lists it: that was
        // checked), or a damaged copy of this very package: the input's
        // bytes are the right ones either way.
        self.replace(rel, bytes)
    }

    fn replace(&mut self, rel: &str, bytes: &[u8]) -> Result<(), RepoError> {
        let path = self.repo.join(rel);
        let dir = path.parent().expect("a file under the repository");
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        crate::store::write_atomically(&path, bytes).map_err(io_error(&path))?;
        self.written.push(rel.to_owned());
        Ok(())
    }
}
