//! The repository on disk: what is published (read back from its own
//! indices), the publish lock, leftovers of a killed publish, and the writer
//! that replaces a file only when its bytes change.
//!
//! The repository directory is opened once, by the path the user gave
//! ([`hermod_hostfs::Dir::open`]); everything below it — `pool/`, `dists/`,
//! the indices, Release, InRelease, the lock file, temporary files — is
//! reached through that descriptor and never through a symbolic link (see
//! `hermod-hostfs`). A `pool/` or `dists/` that is a link out of the
//! repository, a linked Release or Packages, are refused without being read
//! or written through ([`RepoError::Unsafe`]); what is read is bounded
//! ([`MAX_INDEX_BYTES`]), and messages quote at most [`excerpt`] of it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hermod_hostfs::{Dir, Kind};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

pub use super::index::excerpt;
use super::index::{self, Entry};
use super::input::Input;
use super::release::IndexFile;
use super::RepoError;
use crate::compress::Compression;

/// The publish lock's file name in the repository's root.
pub(super) const LOCK_FILE: &str = ".hermod-publish.lock";

/// The most an index, Release or InRelease may hold (decompressed, too).
pub const MAX_INDEX_BYTES: u64 = 256 << 20;

/// A [`hermod_hostfs::Error`] as the publish's error: a link, a special
/// file, an oversized file are bad input (the repository is not one hermod
/// wrote); anything else is an I/O failure.
pub(super) fn fs_err(e: hermod_hostfs::Error) -> RepoError {
    use hermod_hostfs::Error as E;
    match &e {
        E::Symlink { .. }
        | E::NotRegular { .. }
        | E::BadPath { .. }
        | E::NotADirectory { .. }
        | E::TooDeep { .. }
        | E::TooMany { .. } => RepoError::Unsafe(e),
        E::Io { source, .. } if source.kind() == std::io::ErrorKind::FileTooLarge => RepoError::Unsafe(e),
        E::Io { .. } => {
            let path = e.path().to_owned();
            RepoError::Io { path, source: e.into() }
        }
    }
}

fn damaged(what: String) -> RepoError {
    RepoError::Damaged(excerpt(&what))
}

/// Hold `DIR/.hermod-publish.lock` exclusively (waits for another publish).
/// The file is created, or opened, beside no link: a planted symlink or
/// FIFO is refused. A dry run creates no file: without one it holds
/// nothing (no change can be under way in a repository never written).
pub(super) fn lock(root: &Dir, dry_run: bool) -> Result<Option<Flock<File>>, RepoError> {
    let created = if dry_run {
        match root.open_regular(LOCK_FILE) {
            Ok((file, _)) => Ok(file),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(fs_err(e)),
        }
    } else {
        root.create_file(LOCK_FILE, 0o644)
    };
    let file = match created {
        Ok(file) => file,
        Err(hermod_hostfs::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
            root.open_regular(LOCK_FILE).map_err(fs_err)?.0
        }
        Err(e) => return Err(fs_err(e)),
    };
    let io = |errno: Errno| RepoError::Io { path: root.shown(LOCK_FILE), source: errno.into() };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(held) => Ok(Some(held)),
        Err((file, Errno::EWOULDBLOCK)) => {
            tracing::warn!("waiting for another publish into {} to finish", root.path().display());
            Flock::lock(file, FlockArg::LockExclusive).map(Some).map_err(|(_, errno)| io(errno))
        }
        Err((_, errno)) => Err(io(errno)),
    }
}

/// Remove the `.tmp-*` files a killed publish left under `dirs` (we hold the
/// lock, so none of them is being written). Best effort: litter is never an
/// error, and a linked directory is not entered (reading refuses it later).
pub(super) fn remove_litter(root: &Dir, dirs: &[PathBuf]) {
    for rel in dirs {
        let Ok(dir) = root.open_dir(rel) else { continue };
        let _ = dir.walk::<hermod_hostfs::Error>(&mut |v| {
            if v.meta.kind == Kind::File && v.name.to_string_lossy().starts_with(".tmp-") {
                let _ = v.parent.remove_file(v.name);
            }
            Ok(true)
        });
    }
}

/// The directory `rel`, or `None` when it does not exist; a link is refused.
fn open_dir_if_any(root: &Dir, rel: &Path) -> Result<Option<Dir>, RepoError> {
    match root.open_dir(rel) {
        Ok(dir) => Ok(Some(dir)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(fs_err(e)),
    }
}

/// Whether anything (a link too) is at `rel`; a link on the way is refused.
pub(super) fn exists(root: &Dir, rel: &Path) -> Result<bool, RepoError> {
    match root.meta(rel) {
        Ok(found) => Ok(found.is_some()),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(fs_err(e)),
    }
}

/// The file `rel`, at most [`MAX_INDEX_BYTES`], or `None` when it does not exist.
fn read_if_any(root: &Dir, rel: &Path) -> Result<Option<Vec<u8>>, RepoError> {
    match root.read_limited(rel, MAX_INDEX_BYTES) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(fs_err(e)),
    }
}

/// The binary-* directories of `dists/<suite>/<component>` (relative to
/// the repository), sorted; a linked one is refused.
pub(super) fn arch_dirs(root: &Dir, component_dir: &Path) -> Result<Vec<(String, PathBuf)>, RepoError> {
    let mut dirs = Vec::new();
    let Some(dir) = open_dir_if_any(root, component_dir)? else { return Ok(dirs) };
    for (name, kind) in dir.entries().map_err(fs_err)? {
        let name = name.to_string_lossy().into_owned();
        let Some(arch) = name.strip_prefix("binary-") else { continue };
        if !index::is_architecture(arch) {
            continue;
        }
        match kind {
            Kind::Dir => dirs.push((arch.to_owned(), component_dir.join(&name))),
            Kind::Symlink => {
                return Err(RepoError::Unsafe(hermod_hostfs::Error::Symlink {
                    path: root.shown(component_dir.join(&name)),
                }))
            }
            _ => {}
        }
    }
    Ok(dirs)
}

/// A directory's Packages text: `Packages`, else `Packages.xz` decompressed
/// (both bounded).
fn packages_text(root: &Dir, dir: &Path) -> Result<Option<String>, RepoError> {
    let plain = dir.join("Packages");
    let bytes = match read_if_any(root, &plain)? {
        Some(bytes) => bytes,
        None => {
            let packed = dir.join("Packages.xz");
            let Some(xz) = read_if_any(root, &packed)? else { return Ok(None) };
            let mut out = Vec::new();
            Compression::Xz
                .decoder(&xz[..])
                .map_err(|e| damaged(format!("{}: {e}", root.shown(&packed).display())))?
                .take(MAX_INDEX_BYTES + 1)
                .read_to_end(&mut out)
                .map_err(|e| damaged(format!("{}: {e}", root.shown(&packed).display())))?;
            if out.len() as u64 > MAX_INDEX_BYTES {
                return Err(damaged(format!(
                    "{} decompresses to more than {MAX_INDEX_BYTES} bytes",
                    root.shown(&packed).display()
                )));
            }
            out
        }
    };
    String::from_utf8(bytes).map(Some).map_err(|_| damaged(format!("{} is not UTF-8", root.shown(&plain).display())))
}

/// What the component already publishes, by [`Entry::id`].
pub(super) fn read_component(root: &Dir, suite: &str, component: &str) -> Result<BTreeMap<String, Entry>, RepoError> {
    let mut published = BTreeMap::new();
    let component_dir = Path::new("dists").join(suite).join(component);
    for (arch, dir) in arch_dirs(root, &component_dir)? {
        let Some(text) = packages_text(root, &dir)? else { continue };
        let origin = root.shown(dir.join("Packages")).display().to_string();
        for entry in index::parse_packages(&text, &origin)? {
            if entry.architecture != arch {
                return Err(damaged(format!("{origin} lists {} in binary-{arch}", entry.id())));
            }
            published.insert(entry.id(), entry);
        }
    }
    Ok(published)
}

/// The entries every *other* suite of the repository lists in `component`
/// (pool paths carry no suite: two suites may list one file), by pool path.
/// A removal keeps a file another suite lists; a publish never gives such a
/// file other bytes.
pub(super) fn other_suites(root: &Dir, suite: &str, component: &str) -> Result<BTreeMap<String, Entry>, RepoError> {
    let mut listed = BTreeMap::new();
    let Some(dists) = open_dir_if_any(root, Path::new("dists"))? else { return Ok(listed) };
    for (name, kind) in dists.entries().map_err(fs_err)? {
        let other = name.to_string_lossy().into_owned();
        if other == suite || super::check_name("suite", &other).is_err() {
            continue;
        }
        match kind {
            Kind::Dir => {}
            Kind::Symlink => {
                return Err(RepoError::Unsafe(hermod_hostfs::Error::Symlink {
                    path: root.shown(Path::new("dists").join(&name)),
                }))
            }
            _ => continue,
        }
        for entry in read_component(root, &other, component)?.into_values() {
            listed.insert(entry.filename.clone(), entry);
        }
    }
    Ok(listed)
}

/// A listed pool file must be there, a regular file reached without links,
/// with its listed size (the full hash is apt's to check; reading every file
/// on each publish would not scale).
pub(super) fn check_pool_file(root: &Dir, entry: &Entry) -> Result<(), RepoError> {
    let shown = root.shown(&entry.filename);
    match root.meta(&entry.filename) {
        Ok(Some(m)) if m.kind == Kind::File && m.size == entry.size => Ok(()),
        Ok(Some(m)) if m.kind == Kind::File => {
            Err(damaged(format!("{} has {} bytes, the index says {}", shown.display(), m.size, entry.size)))
        }
        Ok(Some(m)) => Err(RepoError::Unsafe(if m.kind == Kind::Symlink {
            hermod_hostfs::Error::Symlink { path: shown }
        } else {
            hermod_hostfs::Error::NotRegular { path: shown, kind: m.kind }
        })),
        Ok(None) => Err(damaged(format!("{} ({}) is listed but missing", shown.display(), entry.id()))),
        Err(e @ hermod_hostfs::Error::Io { .. }) => {
            Err(damaged(format!("{} ({}) is listed but unreadable: {e}", shown.display(), entry.id())))
        }
        Err(e) => Err(fs_err(e)),
    }
}

/// The Date of `dists/<suite>/Release`, if there is one.
pub(super) fn previous_date(root: &Dir, dists: &Path) -> Result<Option<i64>, RepoError> {
    let path = dists.join("Release");
    let Some(bytes) = read_if_any(root, &path)? else { return Ok(None) };
    let origin = root.shown(&path).display().to_string();
    let text = String::from_utf8(bytes).map_err(|_| damaged(format!("{origin} is not UTF-8")))?;
    let release = crate::apt::release::Release::parse(&text, &origin).map_err(|e| damaged(format!("{origin}: {e}")))?;
    match crate::apt::release::parse_rfc2822(&release.date) {
        Some(date) => Ok(Some(date)),
        None => Err(damaged(format!("{origin}: unreadable Date {:?}", release.date))),
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
pub(super) fn other_components(root: &Dir, dists: &Path, ours: &str) -> Result<OtherComponents, RepoError> {
    let (mut files, mut arches, mut components) = (Vec::new(), BTreeSet::new(), BTreeSet::new());
    let Some(dir) = open_dir_if_any(root, dists)? else { return Ok(OtherComponents::default()) };
    for (name, kind) in dir.entries().map_err(fs_err)? {
        let component = name.to_string_lossy().into_owned();
        if component == ours || super::check_name("component", &component).is_err() {
            continue;
        }
        match kind {
            Kind::Dir => {}
            Kind::Symlink => {
                return Err(RepoError::Unsafe(hermod_hostfs::Error::Symlink { path: root.shown(dists.join(&name)) }))
            }
            _ => continue,
        }
        let mut any = false;
        for (arch, arch_dir) in arch_dirs(root, &dists.join(&name))? {
            for file in ["Packages", "Packages.xz"] {
                if let Some(bytes) = read_if_any(root, &arch_dir.join(file))? {
                    files.push(index_file(&format!("{component}/binary-{arch}/{file}"), &bytes));
                    arches.insert(arch.clone());
                    any = true;
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
    pub root: &'a Dir,
    pub written: &'a mut Vec<String>,
    /// Compare and record, write nothing.
    pub dry_run: bool,
}

impl Writer<'_> {
    /// `rel` gets `bytes`, by temp file + rename, unless it already has them.
    pub fn file(&mut self, rel: &str, bytes: &[u8]) -> Result<(), RepoError> {
        if read_if_any(self.root, Path::new(rel))?.is_some_and(|old| old == bytes) {
            return Ok(());
        }
        self.replace(rel, bytes)
    }

    /// Whether the pool file `rel` already has the SHA256 `sha256` (cheaper
    /// than comparing bytes, and the same answer).
    fn has_hash(&self, rel: &str, sha256: &str) -> Result<bool, RepoError> {
        match self.root.open_regular(rel) {
            Ok((mut file, _)) => {
                let mut hasher = Sha256::new();
                std::io::copy(&mut file, &mut hasher)
                    .map_err(|source| RepoError::Io { path: self.root.shown(rel), source })?;
                Ok(hex::encode(hasher.finalize()) == sha256)
            }
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(fs_err(e)),
        }
    }

    /// An input's pool file: left alone when its content has the SHA256
    /// wanted, else copied from the input's descriptor, hashed again on the way.
    pub fn pool_file(&mut self, input: &Input) -> Result<(), RepoError> {
        let rel = input.entry.filename.as_str();
        if self.has_hash(rel, &input.entry.sha256)? {
            return Ok(());
        }
        // A leftover of a crashed publish (no index lists it: that was
        // checked), or a damaged copy of this very package: the input's
        // bytes are the right ones either way.
        self.replace_with(rel, |file| super::input::copy_checked(input, file))
    }

    /// A revised input's pool file (`entry`, revision.rs): as [`Writer::pool_file`],
    /// the rewrite streamed from the input's descriptor and hashed on the way.
    pub fn revised_pool_file(&mut self, input: &Input, entry: &Entry) -> Result<(), RepoError> {
        if self.has_hash(&entry.filename, &entry.sha256)? {
            return Ok(());
        }
        self.replace_with(&entry.filename, |file| super::input::copy_revised(input, entry, file))
    }

    /// A temporary file beside `rel` (exclusive create, never through a
    /// link), written and synced, renamed over `rel`, the directory synced.
    fn replace(&mut self, rel: &str, bytes: &[u8]) -> Result<(), RepoError> {
        let shown = self.root.shown(rel);
        self.replace_with(rel, move |file| {
            file.write_all(bytes).map_err(|source| RepoError::Io { path: shown, source })
        })
    }

    /// [`Writer::replace`] with the content `write` puts in the temporary file.
    fn replace_with(
        &mut self,
        rel: &str,
        write: impl FnOnce(&mut File) -> Result<(), RepoError>,
    ) -> Result<(), RepoError> {
        if self.dry_run {
            self.written.push(rel.to_owned());
            return Ok(());
        }
        let path = Path::new(rel);
        let (parent, name) = match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => (parent, name),
            _ => unreachable!("a file under the repository: {rel}"),
        };
        let dir = self.root.create_dir_all(parent, 0o755).map_err(fs_err)?;
        let tmp = format!(".tmp-{}-{}", std::process::id(), self.written.len());
        let io = |source| RepoError::Io { path: dir.shown(&tmp), source };
        let written = (|| {
            let mut file = dir.create_file(&tmp, 0o644).map_err(fs_err)?;
            write(&mut file)?;
            file.sync_all().map_err(io)?;
            dir.rename(&tmp, &dir, name).map_err(fs_err)?;
            dir.sync().map_err(fs_err)
        })();
        if written.is_err() {
            let _ = dir.remove_file(&tmp);
        }
        written?;
        self.written.push(rel.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded_on_a_character_boundary() {
        use super::super::index::EXCERPT_BYTES;
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(300);
        let cut = excerpt(&long);
        assert!(cut.len() <= EXCERPT_BYTES + "…".len() && cut.ends_with('…'), "{}", cut.len());
    }
}
