//! The file store of build roots: every file of every unpacked package, kept
//! once by its content.
//!
//! Build roots for different kernels differ in their headers and share their
//! toolchain (gcc, binutils, libc, make: ~250 MiB). Instead of unpacking each
//! .deb into each root, a package is unpacked once into this store, and a root
//! is a tree of directories, symlinks and *hard links* to the store's files.
//!
//! ```text
//! <store>/files/<2 hex>/<blake3>-<mode>     one blob per (content, mode); read-only
//! <store>/unpacked/<deb stem>.<sha256>.json one manifest per unpacked .deb
//! <store>/quarantine/<blob>.<time>-<pid>    blobs found corrupt, kept until gc
//! <store>/files.lock                        see rootfs::locks
//! ```
//!
//! * A blob's name is the blake3 of its content and its permission bits (octal,
//!   write bits cleared): hard links share one inode, hence one mode. Every blob
//!   has the same fixed mtime for the same reason.
//! * A manifest lists every entry of a package's `data.tar` in archive order
//!   (directories with mode and mtime, files by blob name, symlinks by target)
//!   and the package it came from, so a damaged blob can be repaired from the
//!   verified .deb. It is written atomically once all its blobs are in `files/`.
//! * Blobs are not fsynced (a root has ~20k files): a crash may leave a blob
//!   empty or short behind a manifest that names it. That is one more kind of
//!   corruption, and like any other it is caught by the hash check made every
//!   time a blob is linked into a new root ([`Cas::check`]), and repaired.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hermod_hostfs::Dir;
use serde::{Deserialize, Serialize};

use super::locks::{self, FileLock, Mode};
use crate::apt::debfile::{self, DataEntry, EntryKind};
use crate::apt::{self, DebFileError, Package};
use crate::store::Store;

/// The mtime of every blob (2024-01-01T00:00:00Z): one inode serves many
/// packages, so it cannot keep each package's own.
pub const BLOB_MTIME: u64 = 1_704_067_200;

const MANIFEST_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CasError {
    #[error("file store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Deb(#[from] DebFileError),
    #[error("package {package}: {source}")]
    Name { package: String, source: apt::SyntaxError },
    #[error("{deb}: {path:?} is not UTF-8; the file store keeps UTF-8 paths only")]
    NotUtf8 { deb: PathBuf, path: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CasError + '_ {
    move |source| CasError::Io { path: path.to_owned(), source }
}

/// One entry of a package's data, as a root is built from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Entry {
    Dir { path: String, mode: u32, mtime: u64 },
    File { path: String, blob: String, size: u64 },
    Symlink { path: String, target: String, mtime: u64 },
}

/// What one .deb unpacks to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub package: Package,
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Every blob name is one, every path relative with plain components.
    fn is_plain(&self) -> bool {
        self.entries.iter().all(|e| match e {
            Entry::Dir { path, .. } | Entry::Symlink { path, .. } => plain_path(path),
            Entry::File { path, blob, .. } => plain_path(path) && parse_blob_name(blob).is_some(),
        })
    }

    pub fn blobs(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().filter_map(|e| match e {
            Entry::File { blob, .. } => Some(blob.as_str()),
            _ => None,
        })
    }
}

/// A relative path of plain names, as `debfile::read_data` makes them.
fn plain_path(path: &str) -> bool {
    !path.is_empty() && path.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
}

/// What a hash check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    Good,
    Missing,
    /// Content, mode or type differ from what the name says.
    Corrupt,
}

/// `<blake3 hex>-<mode octal>`.
pub fn blob_name(hash: &blake3::Hash, mode: u32) -> String {
    format!("{}-{:03o}", hash.to_hex(), blob_mode(mode))
}

/// The permission bits a blob is stored with: read and execute bits as the
/// package has them, no write, no setuid/setgid/sticky.
pub fn blob_mode(mode: u32) -> u32 {
    mode & 0o555
}

/// The (hash, mode) a blob name stands for; `None` for a name that is not
/// one. A spill copy (`<blob>.<n>`, see [`Linker`]) stands for the same.
pub fn parse_blob_name(name: &str) -> Option<(&str, u32)> {
    let name = match name.split_once('.') {
        Some((blob, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => blob,
        Some(_) => return None,
        None => name,
    };
    let (hash, mode) = name.split_once('-')?;
    let ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    let mode = u32::from_str_radix(mode, 8).ok().filter(|m| *m == blob_mode(*m) && mode.len() == 3)?;
    ok.then_some((hash, mode))
}

/// The file store inside a hermod store.
#[derive(Debug, Clone)]
pub struct Cas {
    files: PathBuf,
    unpacked: PathBuf,
    quarantine: PathBuf,
    tmp: PathBuf,
    lock: PathBuf,
}

impl Cas {
    pub fn open(store: &Store) -> Result<Cas, CasError> {
        let cas = Cas {
            files: store.files_dir(),
            unpacked: store.unpacked_dir(),
            quarantine: store.quarantine_dir(),
            tmp: store.tmp(),
            lock: store.files_lock(),
        };
        for dir in [&cas.files, &cas.unpacked, &cas.quarantine, &cas.tmp] {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        Ok(cas)
    }

    pub fn files_dir(&self) -> &Path {
        &self.files
    }
    pub fn unpacked_dir(&self) -> &Path {
        &self.unpacked
    }
    pub fn quarantine_dir(&self) -> &Path {
        &self.quarantine
    }

    /// Shared: blobs may be added, none removed. Exclusive: gc's sweep.
    pub(crate) fn lock(&self, mode: Mode) -> Result<FileLock, CasError> {
        locks::lock(&self.lock, mode, true)
            .map_err(io_err(&self.lock))
            .map(|l| l.expect("a waiting lock always returns one"))
    }

    /// `files/<2 hex>/<name>`. A name that is not a blob's (nor a spill
    /// copy's, see [`parse_blob_name`]) gets `files/not-a-blob`, which never
    /// exists: a damaged manifest's name reaches nothing outside `files/`.
    pub fn blob_path(&self, name: &str) -> PathBuf {
        match parse_blob_name(name) {
            Some((hash, _)) => self.files.join(&hash[..2]).join(name),
            None => self.files.join("not-a-blob"),
        }
    }

    /// Add `content` with `mode` (if not already present); returns its name.
    pub fn insert(&self, content: &[u8], mode: u32) -> Result<String, CasError> {
        let name = blob_name(&blake3::hash(content), mode);
        let path = self.blob_path(&name);
        if fs::symlink_metadata(&path).is_ok() {
            return Ok(name);
        }
        let dir = path.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut tmp = tempfile::Builder::new().prefix("blob-").tempfile_in(&self.tmp).map_err(io_err(&self.tmp))?;
        io::Write::write_all(&mut tmp, content).map_err(io_err(tmp.path()))?;
        let file = tmp.as_file();
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(BLOB_MTIME))
            .map_err(io_err(tmp.path()))?;
        file.set_permissions(fs::Permissions::from_mode(blob_mode(mode))).map_err(io_err(tmp.path()))?;
        // link(2), not rename: a blob that appeared meanwhile (another process
        // unpacking the same file) is kept, so the roots linked to it stay shared.
        match tmp.persist_noclobber(&path) {
            Ok(_) => Ok(name),
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(name),
            Err(e) => Err(CasError::Io { path, source: e.error }),
        }
    }

    /// Re-hash a blob and compare with its name (content, mode, file type).
    pub fn check(&self, name: &str) -> BlobState {
        let Some((hash, mode)) = parse_blob_name(name) else { return BlobState::Corrupt };
        let path = self.blob_path(name);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return BlobState::Missing,
            Err(_) => return BlobState::Corrupt,
        };
        match file.metadata() {
            Ok(m) if m.is_file() && m.mode() & 0o7777 == mode => {}
            _ => return BlobState::Corrupt,
        }
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                }
                Err(_) => return BlobState::Corrupt,
            }
        }
        if hasher.finalize().to_hex().as_str() == hash {
            BlobState::Good
        } else {
            BlobState::Corrupt
        }
    }

    /// Make the spill copy `copy` of blob `name` (see [`Linker`]) unless a good
    /// one exists; the copy is made from the blob only if the blob checks out.
    fn ensure_copy(&self, name: &str, copy: &str) -> io::Result<()> {
        match self.check(copy) {
            BlobState::Good => return Ok(()),
            BlobState::Corrupt => {
                self.quarantine(copy).map_err(io::Error::other)?;
            }
            BlobState::Missing => {}
        }
        if self.check(name) != BlobState::Good {
            return Err(io::Error::other(format!("{name} fails its hash check; not copied")));
        }
        let content = fs::read(self.blob_path(name))?;
        let (_, mode) = parse_blob_name(name).expect("checked");
        let mut tmp = tempfile::Builder::new().prefix("blob-").tempfile_in(&self.tmp)?;
        io::Write::write_all(&mut tmp, &content)?;
        tmp.as_file().set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(BLOB_MTIME))?;
        tmp.as_file().set_permissions(fs::Permissions::from_mode(mode))?;
        match tmp.persist_noclobber(self.blob_path(copy)) {
            Err(e) if e.error.kind() != io::ErrorKind::AlreadyExists => Err(e.error),
            _ => Ok(()),
        }
    }

    /// Move a blob out of `files/` so it is never linked again; it stays in
    /// `quarantine/` (roots made before may still link it) until gc. Returns
    /// where it went, or `None` if it was not there.
    pub fn quarantine(&self, name: &str) -> Result<Option<PathBuf>, CasError> {
        let from = self.blob_path(name);
        crate::store::quarantine(&self.quarantine, &from, name).map_err(|source| CasError::Io { path: from, source })
    }

    /// The manifest file of a package: by name for people, by SHA256 for exactness.
    /// Refused unless the package's name, version, architecture and SHA256
    /// are Debian's syntax: the path is made of them.
    pub fn manifest_path(&self, pkg: &Package) -> Result<PathBuf, CasError> {
        let name = |source| CasError::Name { package: apt::syntax::quote(&pkg.name), source };
        let stem = apt::deb_file_name(pkg).map_err(name)?;
        apt::syntax::sha256(&pkg.sha256).map_err(name)?;
        let stem = stem.strip_suffix(".deb").unwrap_or(&stem);
        Ok(self.unpacked.join(format!("{stem}.{}.json", pkg.sha256)))
    }

    /// The package's manifest, if it was unpacked (a damaged manifest counts as not).
    pub fn manifest(&self, pkg: &Package) -> Option<Manifest> {
        read_manifest(&self.manifest_path(pkg).ok()?).filter(|m| m.package.sha256 == pkg.sha256)
    }

    /// Every manifest in the store, with its path.
    pub fn manifests(&self) -> Result<Vec<(PathBuf, Manifest)>, CasError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.unpacked).map_err(io_err(&self.unpacked))? {
            let path = entry.map_err(io_err(&self.unpacked))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                if let Some(m) = read_manifest(&path) {
                    out.push((path, m));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The manifest of `pkg`, unpacking `deb` first unless another process
    /// did. `deb` must already be verified against `pkg.sha256`.
    pub fn ensure_unpacked(&self, deb: &Path, pkg: &Package) -> Result<Manifest, CasError> {
        let _one_at_a_time = self.package_lock(pkg)?;
        if let Some(m) = self.manifest(pkg) {
            return Ok(m);
        }
        self.unpack_locked(deb, pkg)
    }

    /// Unpack `deb` again, adding the blobs that are missing (after a
    /// quarantine), and rewrite its manifest.
    pub fn unpack(&self, deb: &Path, pkg: &Package) -> Result<Manifest, CasError> {
        let _one_at_a_time = self.package_lock(pkg)?;
        self.unpack_locked(deb, pkg)
    }

    fn package_lock(&self, pkg: &Package) -> Result<FileLock, CasError> {
        let path = self.manifest_path(pkg)?.with_extension("lock");
        locks::lock(&path, Mode::Exclusive, true).map_err(io_err(&path)).map(|l| l.expect("waiting lock"))
    }

    fn unpack_locked(&self, deb: &Path, pkg: &Package) -> Result<Manifest, CasError> {
        let utf8 = |p: &Path| -> Result<String, CasError> {
            p.to_str()
                .map(str::to_owned)
                .ok_or_else(|| CasError::NotUtf8 { deb: deb.to_owned(), path: p.display().to_string() })
        };
        let mut entries = Vec::new();
        // Hard links become plain references to the blob of their target.
        let mut files: std::collections::HashMap<PathBuf, (String, u64)> = Default::default();
        let mut content = Vec::new();
        debfile::read_data(deb, |entry: DataEntry<'_>| -> Result<(), CasError> {
            let path = utf8(&entry.rel)?;
            let e = match entry.kind {
                EntryKind::Dir => Entry::Dir { path, mode: entry.mode, mtime: entry.mtime },
                EntryKind::File(reader) => {
                    content.clear();
                    reader.read_to_end(&mut content).map_err(|source| DebFileError::Unpack {
                        deb: deb.to_owned(),
                        path: path.clone(),
                        dest: self.files.clone(),
                        source,
                    })?;
                    let blob = self.insert(&content, entry.mode)?;
                    let size = content.len() as u64;
                    files.insert(entry.rel, (blob.clone(), size));
                    Entry::File { path, blob, size }
                }
                EntryKind::HardLink(to) => {
                    let (blob, size) = files.get(&to).cloned().ok_or_else(|| DebFileError::UnsafePath {
                        deb: deb.to_owned(),
                        member: "data.tar".into(),
                        path: path.clone(),
                        reason: "hard link target is not a file unpacked earlier",
                    })?;
                    files.insert(entry.rel, (blob.clone(), size));
                    Entry::File { path, blob, size }
                }
                EntryKind::Symlink(target) => Entry::Symlink { path, target: utf8(&target)?, mtime: entry.mtime },
            };
            entries.push(e);
            Ok(())
        })?;
        let manifest = Manifest { format: MANIFEST_FORMAT, package: pkg.clone(), entries };
        let path = self.manifest_path(pkg)?;
        let bytes = serde_json::to_vec(&manifest).expect("manifest serializes");
        crate::store::write_atomically(&path, &bytes).map_err(io_err(&path))?;
        Ok(manifest)
    }
}

/// How many spill copies one blob may have.
const MAX_COPIES: u32 = 1000;

/// Makes hard links to blobs.
///
/// A file system caps the links of one inode (ext4: 65000), and a few blobs
/// are linked thousands of times per root (the empty file: ~6500 times, once
/// per `include/config/*` of the headers). When a blob is full, further links
/// go to spill copies `<blob>.1`, `<blob>.2`, ... with the same content,
/// made from the blob (after a hash check) and checked before their first use.
pub struct Linker<'a> {
    cas: &'a Cas,
    /// The copy that last took a link, per blob (0: the blob itself).
    current: std::collections::HashMap<String, u32>,
    /// `files/`, opened on the first link.
    files: Option<Dir>,
}

impl<'a> Linker<'a> {
    pub fn new(cas: &'a Cas) -> Linker<'a> {
        Linker { cas, current: Default::default(), files: None }
    }

    /// Hard-link blob `name` as `dest` in `dir` (which must not have it),
    /// by descriptor: `linkat` from the store's `files/` into `dir`.
    pub fn link(&mut self, name: &str, dir: &Dir, dest: &OsStr) -> io::Result<()> {
        if self.files.is_none() {
            self.files = Some(Dir::open_nofollow(&self.cas.files)?);
        }
        let files = self.files.as_ref().expect("just opened");
        let start = self.current.get(name).copied().unwrap_or(0);
        for n in start..=MAX_COPIES {
            let copy = if n == 0 { name.to_owned() } else { format!("{name}.{n}") };
            if n > 0 && n != start {
                self.cas.ensure_copy(name, &copy)?;
            }
            let Some((hash, _)) = parse_blob_name(&copy) else {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{copy:?} is not a blob name")));
            };
            match files.hard_link(Path::new(&hash[..2]).join(&copy), dir, dest) {
                Err(hermod_hostfs::Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EMLINK) => continue,
                Err(e) => return Err(e.into()),
                Ok(()) => {
                    if n > start {
                        self.current.insert(name.to_owned(), n);
                    }
                    return Ok(());
                }
            }
        }
        Err(io::Error::from_raw_os_error(libc::EMLINK))
    }
}

fn read_manifest(path: &Path) -> Option<Manifest> {
    let bytes = fs::read(path).ok()?;
    // A manifest is the store's own, but a tree is assembled from it: one
    // naming a blob that is no blob, or a path that is not plain, counts as
    // damaged (the package is unpacked again).
    serde_json::from_slice::<Manifest>(&bytes).ok().filter(|m| m.format == MANIFEST_FORMAT && m.is_plain())
}

/// Call `f` with the name and metadata of every blob in `files/`.
pub(crate) fn for_each_blob(files: &Path, mut f: impl FnMut(&str, &fs::Metadata)) -> Result<(), super::RootfsError> {
    for shard in fs::read_dir(files).map_err(super::io_err(files))? {
        let shard = shard.map_err(super::io_err(files))?.path();
        if !shard.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&shard).map_err(super::io_err(&shard))? {
            let entry = entry.map_err(super::io_err(&shard))?;
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| parse_blob_name(n).is_some()) else { continue };
            let meta = entry.metadata().map_err(super::io_err(&entry.path()))?;
            f(name, &meta);
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "cas_tests.rs"]
mod tests;
