//! Module sources: a directory holding a dkms.conf.
//!
//! The tree is scanned once into a sorted list of [`Entry`]s. The scan is what
//! the cache key is made of (content, never path or mtime), and the copy into
//! the sandbox's `/build/src` checks every byte it copies against it, so what
//! is hashed is exactly what is built: a file changed between the two is an
//! error, never a build of other bytes under the scanned key.
//!
//! The tree belongs to someone else and may change while hermod, as root,
//! reads it, so it is read only through [`hermod_hostfs`]: from the directory's
//! descriptor, never following a link, each file opened only after its
//! descriptor says it is a regular file (a FIFO, socket or device is refused
//! without being opened for reading). Only regular files, directories and
//! symlinks that stay inside the tree are accepted; a link is judged by
//! resolving it inside the tree as the kernel would (chains and `..`
//! included: `d -> .` with `e -> d/d/../../..` climbs out), once on the scan
//! and again on the copy, which is hermod's own and no longer changes.
//! Scan and copy both end at the preparation's deadline.
//!
//! The scan holds one path per entry, so it is bounded as it goes, by the
//! `[input_limits]` of the config ([`crate::bounded`]): the entries listed
//! (`max_entries`, counted by the walk while each directory is read, so a
//! directory of a million names is refused before its names are held), each
//! relative path (`max_path_length`: a longer one could not be copied or
//! built anyway) and the paths' bytes summed (`max_names_size`).
//!
//! A hard link is read as the file it is. A regular file with more than one
//! link whose owner is neither the source directory's owner nor the caller
//! is refused: it may be a link to a file its owner never meant to give
//! (`fs.protected_hardlinks=0` lets anyone link to anyone's file), and
//! hermod, as root, would read it for them.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use hermod_hostfs::{Dir, Kind as FsKind, Meta, Resolved};

use crate::bounded::{excerpt, Exceeded, InputLimits, Limit};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source {} does not exist or is not a directory{}", .0.display(), package_hint(.0))]
    NotADirectory(PathBuf),
    #[error(
        "{0} has no dkms.conf: a module source is a directory with a dkms.conf (as under /usr/src/<module>-<version>)"
    )]
    NoDkmsConf(PathBuf),
    #[error("{path}: symlink to {target:?} points outside the source tree")]
    SymlinkEscape { path: PathBuf, target: PathBuf },
    #[error("{0}: not a regular file, directory or symlink (devices, sockets and fifos are refused)")]
    SpecialFile(PathBuf),
    #[error("{0}: file name is not valid UTF-8")]
    NonUtf8(PathBuf),
    #[error("{0}: changed while hermod read the source; nothing was built from it")]
    Changed(PathBuf),
    #[error("reading the source took longer than the {0:?} timeout (--timeout); nothing was built from it")]
    TimedOut(std::time::Duration),
    #[error("source {root}: {limit}{}; nothing was built from it", at.as_deref().map(|a| format!(" (at {a})")).unwrap_or_default())]
    OverLimit { root: PathBuf, at: Option<String>, limit: Exceeded },
    #[error("{path}: a hard link to another user's file (owner uid {uid}, neither the source directory's owner nor the caller); hermod does not read it")]
    ForeignHardLink { path: PathBuf, uid: u32 },
    #[error("reading source {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// For a missing source that reads as a package name (`v4l2loopback-dkms`):
/// the SOURCE syntax that names an archive package.
fn package_hint(path: &Path) -> String {
    match path.to_str() {
        Some(name) if !name.contains('/') && crate::apt::syntax::package_name(name).is_ok() => {
            format!("; to build the archive's package {name}, say pkg:{name}")
        }
        _ => String::new(),
    }
}

impl crate::exit::HasExitCode for SourceError {
    /// Whatever stops the scan, the source is what cannot be used.
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            SourceError::NotADirectory { .. }
            | SourceError::NoDkmsConf { .. }
            | SourceError::SymlinkEscape { .. }
            | SourceError::SpecialFile { .. }
            | SourceError::NonUtf8 { .. }
            | SourceError::Changed { .. }
            | SourceError::TimedOut { .. }
            | SourceError::OverLimit { .. }
            | SourceError::ForeignHardLink { .. }
            | SourceError::Io { .. } => crate::exit::Code::BadInput,
        }
    }
}

impl From<hermod_hostfs::Error> for SourceError {
    fn from(e: hermod_hostfs::Error) -> SourceError {
        match e {
            hermod_hostfs::Error::NotRegular { path, .. } => SourceError::SpecialFile(path),
            hermod_hostfs::Error::Symlink { path } => SourceError::Changed(path),
            // The walk's entry budget (`max_entries`), spent while `path` was listed.
            hermod_hostfs::Error::TooMany { path, limit } => {
                SourceError::OverLimit { root: path, at: None, limit: Exceeded { limit: Limit::Entries, max: limit } }
            }
            e => SourceError::Io { path: e.path().to_owned(), source: e.into() },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// Regular file with its blake3 hash and whether any execute bit is set.
    File {
        hash: blake3::Hash,
        size: u64,
        executable: bool,
    },
    Symlink {
        target: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the tree root, `/`-separated.
    pub path: String,
    pub kind: Kind,
}

/// When reading a source must have ended (the build's `--timeout` covers the
/// preparation too).
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    limit: std::time::Duration,
}

impl Deadline {
    pub fn after(limit: std::time::Duration) -> Deadline {
        Deadline { at: Instant::now() + limit, limit }
    }

    /// No bound (for tests and for reading a tree hermod made itself).
    pub fn none() -> Deadline {
        Deadline::after(std::time::Duration::from_secs(u64::from(u32::MAX)))
    }

    fn check(&self) -> Result<(), SourceError> {
        if Instant::now() > self.at {
            return Err(SourceError::TimedOut(self.limit));
        }
        Ok(())
    }
}

/// A scanned module source.
#[derive(Debug, Clone)]
pub struct SourceTree {
    pub root: PathBuf,
    /// The tree's directory, opened once: the copy reads through it, not the path.
    dir: Arc<Dir>,
    /// Whose hard links are read: the source directory's owner and the caller.
    owners: [u32; 2],
    pub entries: Vec<Entry>,
}

/// Refuse a file with other links whose owner is not one of `owners`.
fn check_hard_link(meta: &Meta, owners: [u32; 2], shown: &Path) -> Result<(), SourceError> {
    if meta.nlink > 1 && !owners.contains(&meta.uid) {
        return Err(SourceError::ForeignHardLink { path: shown.to_owned(), uid: meta.uid });
    }
    Ok(())
}

/// What a link leads to, for the error message (its text alone).
fn escaping(rel: &Path, target: &Path, dir: &Dir) -> SourceError {
    SourceError::SymlinkEscape { path: dir.shown(rel), target: target.to_owned() }
}

/// Read a regular file through `file`, hashing it and handing each chunk to `sink`.
fn hash_stream(
    mut file: std::fs::File,
    deadline: &Deadline,
    shown: &Path,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<(blake3::Hash, u64), SourceError> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        deadline.check()?;
        let n = file.read(&mut buf).map_err(|source| SourceError::Io { path: shown.to_owned(), source })?;
        if n == 0 {
            return Ok((hasher.finalize(), size));
        }
        hasher.update(&buf[..n]);
        sink(&buf[..n]).map_err(|source| SourceError::Io { path: shown.to_owned(), source })?;
        size += n as u64;
    }
}

impl SourceTree {
    pub fn scan(root: &Path) -> Result<SourceTree, SourceError> {
        SourceTree::scan_until(root, &Deadline::none())
    }

    /// [`SourceTree::scan`], ending at `deadline`, within the config's input limits.
    pub fn scan_until(root: &Path, deadline: &Deadline) -> Result<SourceTree, SourceError> {
        SourceTree::scan_with(root, deadline, &crate::bounded::current())
    }

    /// [`SourceTree::scan_until`] within `limits`.
    pub fn scan_with(root: &Path, deadline: &Deadline, limits: &InputLimits) -> Result<SourceTree, SourceError> {
        let dir = Dir::open(root).map_err(|_| SourceError::NotADirectory(root.to_owned()))?;
        match dir.meta("dkms.conf")? {
            Some(m) if m.kind == FsKind::File => {}
            _ => return Err(SourceError::NoDkmsConf(root.to_owned())),
        }
        let owners = [dir.own_meta()?.uid, nix::unistd::geteuid().as_raw()];
        let over = |limit: Limit, at: Option<&Path>| SourceError::OverLimit {
            root: root.to_owned(),
            at: at.map(|p| excerpt(&p.to_string_lossy())),
            limit: Exceeded::new(limit, limits),
        };
        let mut entries = Vec::new();
        let mut names = 0u64;
        dir.walk_limited::<SourceError>(limits.max_entries, &mut |visit| {
            deadline.check()?;
            let len = visit.rel.as_os_str().len() as u64;
            if len > limits.max_path_length {
                return Err(over(Limit::PathLength, Some(visit.rel)));
            }
            names += len;
            if names > limits.max_names_size {
                return Err(over(Limit::NamesSize, None));
            }
            let shown = dir.shown(visit.rel);
            let path = visit.rel.to_str().ok_or_else(|| SourceError::NonUtf8(shown.clone()))?.to_owned();
            let kind = match visit.meta.kind {
                FsKind::Dir => Kind::Dir,
                FsKind::File => {
                    let (file, meta) = visit.parent.open_regular(visit.name)?;
                    check_hard_link(&meta, owners, &shown)?;
                    let (hash, size) = hash_stream(file, deadline, &shown, |_| Ok(()))?;
                    Kind::File { hash, size, executable: meta.mode & 0o111 != 0 }
                }
                FsKind::Symlink => {
                    let target = visit.parent.read_link(visit.name)?;
                    if !matches!(dir.resolve(visit.rel, true)?, Resolved::Inside(_)) {
                        return Err(escaping(visit.rel, &target, &dir));
                    }
                    let target = target.to_str().ok_or_else(|| SourceError::NonUtf8(shown.clone()))?.to_owned();
                    Kind::Symlink { target }
                }
                _ => return Err(SourceError::SpecialFile(shown)),
            };
            entries.push(Entry { path, kind });
            Ok(true)
        })?;
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(SourceTree { root: root.to_owned(), dir: Arc::new(dir), owners, entries })
    }

    /// Copy the tree into `dest` (which must exist), with normalized modes:
    /// 0755 for directories and executables, 0644 for other files, ending at
    /// `deadline`. Every file is read through the source's descriptor and must
    /// have the bytes the scan hashed; the copy's links are judged again where
    /// they now stand.
    pub fn copy_until(&self, dest: &Path, deadline: &Deadline) -> Result<(), SourceError> {
        let to = Dir::open_nofollow(dest)?;
        for entry in &self.entries {
            deadline.check()?;
            let rel = Path::new(&entry.path);
            match &entry.kind {
                Kind::Dir => {
                    to.create_dir(rel, 0o755)?;
                }
                Kind::File { hash, size, executable } => {
                    let (file, meta) = self.dir.open_regular(rel)?;
                    let shown = self.dir.shown(rel);
                    // Swapped for another user's file since the scan: not a byte of it is copied.
                    check_hard_link(&meta, self.owners, &shown)?;
                    let mode = if *executable { 0o755 } else { 0o644 };
                    let mut out = io::BufWriter::new(to.create_file(rel, mode)?);
                    let copied = hash_stream(file, deadline, &shown, |chunk| out.write_all(chunk))?;
                    out.flush().map_err(|source| SourceError::Io { path: to.shown(rel), source })?;
                    if copied != (*hash, *size) {
                        return Err(SourceError::Changed(shown));
                    }
                }
                Kind::Symlink { target } => {
                    if self.dir.read_link(rel)? != Path::new(target) {
                        return Err(SourceError::Changed(self.dir.shown(rel)));
                    }
                    to.symlink(target, rel)?;
                }
            }
        }
        for entry in &self.entries {
            if let Kind::Symlink { target } = &entry.kind {
                let rel = Path::new(&entry.path);
                if !matches!(to.resolve(rel, true)?, Resolved::Inside(_)) {
                    return Err(escaping(rel, Path::new(target), &self.dir));
                }
            }
        }
        Ok(())
    }

    pub fn total_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.kind {
                Kind::File { size, .. } => size,
                _ => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, body) in files {
            let p = dir.path().join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, body).unwrap();
        }
        dir
    }

    #[test]
    fn a_missing_source_named_like_a_package_suggests_pkg() {
        let e = SourceTree::scan(Path::new("v4l2loopback-dkms-does-not-exist")).unwrap_err().to_string();
        assert!(e.ends_with("; to build the archive's package v4l2loopback-dkms-does-not-exist, say pkg:v4l2loopback-dkms-does-not-exist"), "{e}");
        let e = SourceTree::scan(Path::new("/nonexistent/hello")).unwrap_err().to_string();
        assert_eq!(e, "source /nonexistent/hello does not exist or is not a directory");
        let e = SourceTree::scan(Path::new("Hello_World")).unwrap_err().to_string();
        assert!(!e.contains("pkg:"), "not a package name: {e}");
    }

    #[test]
    fn scan_is_sorted_and_content_addressed() {
        let a = tree(&[("dkms.conf", "PACKAGE_NAME=x"), ("src/b.c", "b"), ("a.c", "a")]);
        let scan = SourceTree::scan(a.path()).unwrap();
        let paths: Vec<_> = scan.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a.c", "dkms.conf", "src", "src/b.c"]);
        let b = tree(&[("src/b.c", "b"), ("a.c", "a"), ("dkms.conf", "PACKAGE_NAME=x")]);
        assert_eq!(scan.entries, SourceTree::scan(b.path()).unwrap().entries);
    }

    #[test]
    fn missing_dkms_conf_and_escaping_symlinks_are_refused() {
        let no_conf = tree(&[("a.c", "a")]);
        assert!(matches!(SourceTree::scan(no_conf.path()), Err(SourceError::NoDkmsConf(_))));
        let esc = tree(&[("dkms.conf", "x")]);
        symlink("/etc/shadow", esc.path().join("shadow")).unwrap();
        assert!(matches!(SourceTree::scan(esc.path()), Err(SourceError::SymlinkEscape { .. })));
        let up = tree(&[("dkms.conf", "x"), ("sub/f", "")]);
        symlink("../../x", up.path().join("sub/l")).unwrap();
        assert!(matches!(SourceTree::scan(up.path()), Err(SourceError::SymlinkEscape { .. })));
        let ok = tree(&[("dkms.conf", "x"), ("sub/f", "")]);
        symlink("../dkms.conf", ok.path().join("sub/l")).unwrap();
        assert!(SourceTree::scan(ok.path()).is_ok());
    }

    #[test]
    fn copy_reproduces_tree_with_normalized_modes() {
        let src = tree(&[("dkms.conf", "x"), ("d/run.sh", "#!/bin/sh")]);
        fs::set_permissions(src.path().join("d/run.sh"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(src.path().join("dkms.conf"), fs::Permissions::from_mode(0o600)).unwrap();
        let scan = SourceTree::scan(src.path()).unwrap();
        let dest = tempfile::tempdir().unwrap();
        scan.copy_until(dest.path(), &Deadline::none()).unwrap();
        let mode = |p: &str| fs::metadata(dest.path().join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("d/run.sh"), 0o755);
        assert_eq!(mode("dkms.conf"), 0o644);
        assert_eq!(SourceTree::scan(dest.path()).unwrap().entries, scan.entries);
    }

    #[test]
    fn a_symlink_chain_that_climbs_out_is_refused() {
        let t = tree(&[("dkms.conf", "x")]);
        symlink(".", t.path().join("d")).unwrap();
        symlink("d/d/d/../../../../../../etc/shadow", t.path().join("e")).unwrap();
        let err = SourceTree::scan(t.path()).unwrap_err();
        assert!(matches!(err, SourceError::SymlinkEscape { .. }), "{err}");
    }

    #[test]
    fn a_fifo_is_refused_without_being_opened() {
        let t = tree(&[("dkms.conf", "x")]);
        nix::unistd::mkfifo(&t.path().join("pipe"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        // Opening the FIFO for reading would block this test forever.
        assert!(matches!(SourceTree::scan(t.path()), Err(SourceError::SpecialFile(_))));
    }

    #[test]
    fn the_copy_checks_the_bytes_the_scan_hashed() {
        let t = tree(&[("dkms.conf", "x"), ("a.c", "int a;")]);
        let scan = SourceTree::scan(t.path()).unwrap();
        fs::write(t.path().join("a.c"), "int b;").unwrap();
        let dest = tempfile::tempdir().unwrap();
        assert!(matches!(scan.copy_until(dest.path(), &Deadline::none()), Err(SourceError::Changed(_))));
        // A file swapped for a link to a host file between scan and copy is
        // never read through the link.
        let t = tree(&[("dkms.conf", "x"), ("a.c", "int a;")]);
        let scan = SourceTree::scan(t.path()).unwrap();
        fs::remove_file(t.path().join("a.c")).unwrap();
        symlink("/etc/passwd", t.path().join("a.c")).unwrap();
        let dest = tempfile::tempdir().unwrap();
        assert!(scan.copy_until(dest.path(), &Deadline::none()).is_err());
        assert!(fs::read(dest.path().join("a.c")).map_or(true, |b| b.is_empty()));
    }

    #[test]
    fn a_past_deadline_stops_the_scan() {
        let t = tree(&[("dkms.conf", "x")]);
        let past = Deadline::after(std::time::Duration::ZERO);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(matches!(SourceTree::scan_until(t.path(), &past), Err(SourceError::TimedOut(_))));
    }

    fn limited(limits: InputLimits, root: &Path) -> Result<SourceTree, SourceError> {
        SourceTree::scan_with(root, &Deadline::none(), &limits)
    }

    #[test]
    fn the_scan_stops_at_the_entry_budget() {
        let t = tree(&[("dkms.conf", "x")]);
        fs::create_dir(t.path().join("many")).unwrap();
        for i in 0..50 {
            fs::write(t.path().join(format!("many/{i}")), "").unwrap();
        }
        let limits = InputLimits { max_entries: 40, ..InputLimits::default() };
        let err = limited(limits, t.path()).unwrap_err();
        assert!(matches!(&err, SourceError::OverLimit { limit, .. } if limit.limit == Limit::Entries), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("over the limit of 40 (input_limits.max_entries"), "{msg}");
        assert!(msg.contains(&t.path().display().to_string()), "names the source: {msg}");
        assert!(limited(InputLimits { max_entries: 52, ..InputLimits::default() }, t.path()).is_ok());
    }

    #[test]
    fn a_path_too_long_to_copy_is_refused_while_scanning() {
        let t = tree(&[("dkms.conf", "x")]);
        let name = "n".repeat(200);
        let mut deep = t.path().to_owned();
        for _ in 0..6 {
            deep.push(&name);
        }
        fs::create_dir_all(&deep).unwrap();
        let limits = InputLimits { max_path_length: 1000, ..InputLimits::default() };
        let err = limited(limits, t.path()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("path length is over the limit of 1000 bytes (input_limits.max_path_length"), "{msg}");
        assert!(msg.len() < 600, "the path is quoted in part: {msg}");
        assert!(limited(InputLimits { max_path_length: 1206, ..InputLimits::default() }, t.path()).is_ok());
    }

    #[test]
    fn the_paths_held_are_bounded_in_sum() {
        let t = tree(&[("dkms.conf", "x"), ("aaaaaaaaaa", ""), ("bbbbbbbbbb", "")]);
        // 9 + 10 + 10 bytes of paths.
        let err = limited(InputLimits { max_names_size: 28, ..InputLimits::default() }, t.path()).unwrap_err();
        assert!(err.to_string().contains("input_limits.max_names_size"), "{err}");
        assert!(limited(InputLimits { max_names_size: 29, ..InputLimits::default() }, t.path()).is_ok());
    }

    #[test]
    fn a_hard_link_to_another_users_file_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            return; // making a file of another owner takes root
        }
        let t = tree(&[("dkms.conf", "x"), ("mine.c", "int a;")]);
        // The caller's own hard links are fine.
        fs::hard_link(t.path().join("mine.c"), t.path().join("also-mine.c")).unwrap();
        assert!(SourceTree::scan(t.path()).is_ok());
        // A single-link file of another owner is fine too (copied in, say).
        let theirs = t.path().join("theirs.c");
        fs::write(&theirs, "int b;").unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        assert!(SourceTree::scan(t.path()).is_ok());
        // Linked into a tree owned by root: another user's file.
        fs::hard_link(&theirs, t.path().join("link.c")).unwrap();
        let err = SourceTree::scan(t.path()).unwrap_err();
        assert!(matches!(err, SourceError::ForeignHardLink { uid: 65534, .. }), "{err}");
        assert!(err.to_string().contains("a hard link to another user's file"), "{err}");
        // The same tree owned by that user is theirs to link in.
        std::os::unix::fs::chown(t.path(), Some(65534), Some(65534)).unwrap();
        assert!(SourceTree::scan(t.path()).is_ok());
    }
}
