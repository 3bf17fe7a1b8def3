//! Reading .deb files without dpkg.
//!
//! A .deb is an `ar` archive with three members, in order: `debian-binary`
//! (the format version, `2.0\n`), `control.tar[.gz|.xz|.zst]` (metadata and
//! maintainer scripts) and `data.tar[.xz|.zst|.gz]` (the files). We unpack
//! `data.tar` into a directory that will become (part of) a read-only build
//! chroot, and never run maintainer scripts.
//!
//! Safety rules while unpacking, since a .deb is only as trustworthy as the
//! hash chain that delivered it and several debs share one tree:
//! * every path is taken relative to `dest`; `..` components are rejected;
//! * `dest` is opened once and everything below it is reached by descriptor
//!   ([`hermod_hostfs::Dir`]): no host path is ever built from a package's names;
//! * symlinks already on disk inside `dest` (e.g. usrmerge `lib → usr/lib`)
//!   are followed *as the chroot will see them*: absolute targets resolve
//!   against `dest`, and nothing ever resolves above `dest`;
//! * an entry never writes through a symlink at its own final path: the old
//!   file or link is replaced, as dpkg does;
//! * setuid/setgid bits are dropped, ownership is not changed (we may be
//!   unprivileged), mtimes are kept for reproducible trees;
//! * symlink *targets* are written verbatim: they are only ever resolved by
//!   the kernel inside the chroot;
//! * hard links must point at a file this unpack already created inside
//!   `dest`.
//!
//! [`read_data`] applies the rules that do not depend on a destination (paths,
//! modes, hard-link targets); [`unpack_data`] and the build roots' file store
//! (`rootfs::cas`) both build on it.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use hermod_hostfs::{Dir, Error as HostError, Kind};

use super::stanza::{self, Stanza, StanzaError};

#[derive(Debug, thiserror::Error)]
pub enum DebFileError {
    #[error("cannot read {deb}: {source}")]
    Io { deb: PathBuf, source: io::Error },
    #[error("{deb} is not a Debian package: {reason}")]
    NotADeb { deb: PathBuf, reason: String },
    #[error("{deb}: unsupported member {member} (expected .tar, .tar.gz, .tar.xz or .tar.zst)")]
    Compression { deb: PathBuf, member: String },
    #[error("{deb}: unsafe path {path:?} in {member}: {reason}")]
    UnsafePath { deb: PathBuf, member: String, path: String, reason: &'static str },
    #[error("{deb}: cannot unpack {path} to {dest}: {source}")]
    Unpack { deb: PathBuf, path: String, dest: PathBuf, source: io::Error },
    #[error("{deb}: control.tar has no ./control file")]
    NoControl { deb: PathBuf },
    #[error(transparent)]
    Control(#[from] StanzaError),
}

/// Decompressed reader over the `control.tar*` or `data.tar*` member.
fn member_reader(deb: &Path, prefix: &str) -> Result<(String, Box<dyn Read>), DebFileError> {
    // Only a regular file is opened: a FIFO named like a package would block forever.
    let (file, _) = hermod_hostfs::open_regular_path(deb)
        .map_err(|e| DebFileError::Io { deb: deb.to_path_buf(), source: e.into() })?;
    member_reader_of(deb, BufReader::new(file), prefix)
}

/// [`member_reader`] over a .deb's bytes from any reader (`deb` names it in errors).
fn member_reader_of(deb: &Path, r: impl Read, prefix: &str) -> Result<(String, Box<dyn Read>), DebFileError> {
    let io_err = |source| DebFileError::Io { deb: deb.to_path_buf(), source };
    let not_deb = |reason: String| DebFileError::NotADeb { deb: deb.to_path_buf(), reason };
    let mut ar = ar::Archive::new(r);
    let mut first = true;
    while let Some(entry) = ar.next_entry() {
        let mut entry = entry.map_err(|e| not_deb(format!("bad ar archive: {e}")))?;
        let name = String::from_utf8_lossy(entry.header().identifier()).trim_end_matches('/').to_string();
        if first {
            if name != "debian-binary" {
                return Err(not_deb(format!("first member is {name:?}, expected debian-binary")));
            }
            let mut v = String::new();
            entry.by_ref().take(64).read_to_string(&mut v).map_err(io_err)?;
            if v.trim_end() != "2.0" {
                return Err(not_deb(format!("debian-binary says {:?}, expected \"2.0\"", v.trim_end())));
            }
            first = false;
            continue;
        }
        let Some(ext) = name.strip_prefix(prefix) else { continue };
        // Read the member fully: the ar entry borrows the archive, and
        // returning a decoder over it would need self-referential types.
        let mut bytes = Vec::with_capacity(entry.header().size() as usize);
        entry.read_to_end(&mut bytes).map_err(io_err)?;
        let cursor = io::Cursor::new(bytes);
        let r: Box<dyn Read> = match ext {
            "" => Box::new(cursor),
            ".gz" => Box::new(flate2::read::GzDecoder::new(cursor)),
            ".xz" => Box::new(liblzma::read::XzDecoder::new(cursor)),
            ".zst" => Box::new(zstd::stream::read::Decoder::new(cursor).map_err(io_err)?),
            _ => return Err(DebFileError::Compression { deb: deb.to_path_buf(), member: name }),
        };
        return Ok((name, r));
    }
    Err(not_deb(format!("no {prefix}* member")))
}

/// The package's `control` stanza (Package, Version, Depends, ...).
pub fn control(deb: &Path) -> Result<Stanza, DebFileError> {
    let (member, r) = member_reader(deb, "control.tar")?;
    let text = control_text_in(deb, &member, r)?;
    Ok(stanza::parse_one(&text, &format!("{}:control", deb.display()))?)
}

/// The `control` file's text, verbatim, of the .deb whose bytes are `bytes`
/// (`deb` names it in errors): the bytes read are the bytes checked.
pub fn control_text_of(deb: &Path, bytes: &[u8]) -> Result<String, DebFileError> {
    let (member, r) = member_reader_of(deb, bytes, "control.tar")?;
    control_text_in(deb, &member, r)
}

fn control_text_in(deb: &Path, member: &str, r: Box<dyn Read>) -> Result<String, DebFileError> {
    let mut tar = tar::Archive::new(r);
    let err =
        |source| DebFileError::Unpack { deb: deb.to_path_buf(), path: member.to_owned(), dest: PathBuf::new(), source };
    for entry in tar.entries().map_err(err)? {
        let mut entry = entry.map_err(err)?;
        let path = entry.path().map_err(err)?.into_owned();
        if normalize(&path).ok().flatten().as_deref() == Some(Path::new("control")) {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(err)?;
            return Ok(text);
        }
    }
    Err(DebFileError::NoControl { deb: deb.to_path_buf() })
}

/// Archive path → relative path; `Ok(None)` for the root (`./`).
fn normalize(p: &Path) -> Result<Option<PathBuf>, &'static str> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => return Err("contains `..`"),
            Component::Prefix(_) => return Err("not a Unix path"),
        }
    }
    Ok(if out.as_os_str().is_empty() { None } else { Some(out) })
}

/// The directory `rel` of a tree being unpacked or assembled under `root`,
/// as the chroot will see it, made where missing.
///
/// Everything is by descriptor: the kernel resolves `rel` with `root` as `/`
/// (`RESOLVE_IN_ROOT`: `lib -> usr/lib` followed, absolute targets and `..`
/// never leaving `root`). When something on the way is missing, the path is
/// walked as the kernel would walk it, one `*at` call at a time from the
/// directory the walk stands in, making each missing directory there (so a
/// dangling `lib64 -> /usr/lib` makes `usr/lib`) and replacing a file in the
/// way; a symlink is read, never followed by a host path.
pub(crate) fn dir_in_root(root: &Dir, rel: &Path) -> Result<Dir, HostError> {
    match root.open_dir_in_root(rel) {
        Ok(dir) => return Ok(dir),
        Err(e) if missing_dir(&e) => {}
        Err(e) => return Err(e),
    }
    let mut stack: Vec<OsString> = Vec::new();
    push_reversed(&mut stack, rel);
    let mut cur = root.try_clone()?;
    // The real path of `cur`: directories only, no symlink.
    let mut real = PathBuf::new();
    let mut hops = 0;
    while let Some(name) = stack.pop() {
        if name == ".." {
            real.pop(); // at the root `..` stays at the root, as in a chroot
            cur = root.open_dir(&real)?;
            continue;
        }
        cur = match cur.meta(&name)? {
            Some(m) if m.kind == Kind::Dir => cur.open_dir(&name)?,
            Some(m) if m.kind == Kind::Symlink => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(HostError::Symlink { path: root.shown(rel) });
                }
                let target = cur.read_link(&name)?;
                if target.is_absolute() {
                    real = PathBuf::new();
                    cur = root.try_clone()?;
                }
                push_reversed(&mut stack, &target);
                continue;
            }
            Some(_) => {
                cur.remove_file(&name)?;
                cur.create_dir(&name, 0o755)?
            }
            None => cur.create_dir(&name, 0o755)?,
        };
        real.push(&name);
    }
    Ok(cur)
}

/// Make way for a new entry `name` in `dir`: a file or symlink there is
/// removed (never written through), a directory is an error.
pub(crate) fn clear_at(dir: &Dir, name: &OsStr) -> io::Result<()> {
    match dir.meta(name)? {
        Some(m) if m.kind == Kind::Dir => {
            Err(io::Error::new(io::ErrorKind::AlreadyExists, "a directory is in the way"))
        }
        Some(_) => Ok(dir.remove_file(name)?),
        None => Ok(()),
    }
}

/// Whether opening a directory failed because something on the way is
/// missing, is not a directory, or is a symlink loop (walked then).
fn missing_dir(e: &HostError) -> bool {
    e.is_not_found() || matches!(e, HostError::NotADirectory { .. } | HostError::Symlink { .. })
}

/// The kernel's limit on symlinks followed in one lookup.
const MAX_HOPS: usize = 40;

/// `path`'s names (and `..`) onto `stack`, the first on top.
fn push_reversed(stack: &mut Vec<OsString>, path: &Path) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    stack.extend(names.into_iter().rev());
}

/// One entry of a package's `data.tar`, already checked against the safety
/// rules that do not depend on where it is unpacked.
pub(crate) struct DataEntry<'a> {
    /// Relative, normalized path (no `..`, never the root itself).
    pub rel: PathBuf,
    /// Permission bits with setuid/setgid dropped.
    pub mode: u32,
    pub mtime: u64,
    pub kind: EntryKind<'a>,
}

pub(crate) enum EntryKind<'a> {
    Dir,
    /// A regular file; its content is read from the reader.
    File(&'a mut dyn Read),
    /// A symlink; the target is kept verbatim (resolved only inside the chroot).
    Symlink(PathBuf),
    /// A hard link to a regular file *earlier in this archive* (normalized path).
    HardLink(PathBuf),
}

/// Walk the data member of `deb`, calling `visit` for each directory, file,
/// symlink and hard link in archive order. Device nodes and FIFOs are skipped:
/// they are never needed to compile modules, and making devices needs privileges.
pub(crate) fn read_data<E: From<DebFileError>>(
    deb: &Path,
    visit: impl FnMut(DataEntry<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let (member, r) = member_reader(deb, "data.tar")?;
    read_tar(r, deb, &member, visit)
}

/// [`read_data`] over the .deb's bytes (`deb` names it in errors).
pub(crate) fn read_data_of<E: From<DebFileError>>(
    deb: &Path,
    bytes: &[u8],
    visit: impl FnMut(DataEntry<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let (member, r) = member_reader_of(deb, bytes, "data.tar")?;
    read_tar(r, deb, &member, visit)
}

/// [`read_data`]'s walk over any tar stream (`origin` and `member` name it in
/// errors); an OCI image layer (`rootfs::oci_image`) is read with the same rules.
pub(crate) fn read_tar<E: From<DebFileError>>(
    r: impl Read,
    deb: &Path,
    member: &str,
    mut visit: impl FnMut(DataEntry<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let member = member.to_owned();
    let fail = |path: &Path, source| DebFileError::Unpack {
        deb: deb.to_path_buf(),
        path: path.display().to_string(),
        dest: PathBuf::new(),
        source,
    };
    let mut tar = tar::Archive::new(r);
    let mut files = std::collections::HashSet::new();
    for entry in tar.entries().map_err(|e| fail(Path::new(&member), e))? {
        let mut entry = entry.map_err(|e| fail(Path::new(&member), e))?;
        let raw = entry.path().map_err(|e| fail(Path::new(&member), e))?.into_owned();
        let unsafe_path = |reason| DebFileError::UnsafePath {
            deb: deb.to_path_buf(),
            member: member.clone(),
            path: raw.display().to_string(),
            reason,
        };
        let Some(rel) = normalize(&raw).map_err(unsafe_path)? else { continue };
        if rel.file_name().is_none() {
            return Err(unsafe_path("no file name").into());
        }
        let header = entry.header();
        let mode = header.mode().map_err(|e| fail(&rel, e))? & 0o1777; // no setuid/setgid
        let mtime = header.mtime().map_err(|e| fail(&rel, e))?;
        let kind = match header.entry_type() {
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                files.insert(rel.clone());
                EntryKind::File(&mut entry)
            }
            tar::EntryType::Symlink => EntryKind::Symlink(
                entry
                    .link_name()
                    .map_err(|e| fail(&rel, e))?
                    .ok_or_else(|| unsafe_path("symlink without target"))?
                    .into_owned(),
            ),
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(|e| fail(&rel, e))?
                    .ok_or_else(|| unsafe_path("hard link without target"))?;
                let Some(link_rel) = normalize(&link).map_err(|_| unsafe_path("hard link target contains `..`"))?
                else {
                    return Err(unsafe_path("hard link to the root directory").into());
                };
                if !files.contains(&link_rel) {
                    return Err(unsafe_path("hard link target is not a file unpacked earlier").into());
                }
                files.insert(rel.clone());
                EntryKind::HardLink(link_rel)
            }
            other => {
                tracing::debug!(deb = %deb.display(), path = %rel.display(), "skipping {other:?} entry");
                continue;
            }
        };
        visit(DataEntry { rel, mode, mtime, kind })?;
    }
    Ok(())
}

/// Unpack the data member of `deb` into `dest` (created if missing), by
/// descriptor beneath `dest` ([`dir_in_root`], [`clear_at`]).
/// Returns the relative paths unpacked, in archive order.
pub fn unpack_data(deb: &Path, dest: &Path) -> Result<Vec<PathBuf>, DebFileError> {
    let fail = |path: &Path, source| DebFileError::Unpack {
        deb: deb.to_path_buf(),
        path: path.display().to_string(),
        dest: dest.to_path_buf(),
        source,
    };
    fs::create_dir_all(dest).map_err(|e| fail(Path::new("."), e))?;
    let root = Dir::open_nofollow(dest).map_err(|e| fail(Path::new("."), e.into()))?;
    let mut unpacked = Vec::new();
    // Directory modes/mtimes are applied last: a read-only directory must
    // still receive its contents, and writing into it would bump its mtime.
    let mut dirs: Vec<(PathBuf, u32, u64)> = Vec::new();
    read_data(deb, |entry: DataEntry<'_>| {
        let DataEntry { rel, mode, mtime, kind } = entry;
        let name = rel.file_name().expect("checked by read_data");
        let on = |e: io::Error| fail(&rel, e);
        let host = |e: HostError| fail(&rel, e.into());
        if let EntryKind::Dir = kind {
            dir_in_root(&root, &rel).map_err(host)?;
            dirs.push((rel.clone(), mode, mtime));
            unpacked.push(rel);
            return Ok(());
        }
        let parent = dir_in_root(&root, rel.parent().unwrap_or(Path::new(""))).map_err(host)?;
        match kind {
            EntryKind::Dir => unreachable!("handled above"),
            EntryKind::File(content) => {
                clear_at(&parent, name).map_err(on)?;
                let mut f = parent.create_file(name, mode).map_err(host)?;
                io::copy(content, &mut f).map_err(on)?;
                f.set_modified(mtime_of(mtime)).map_err(on)?;
            }
            EntryKind::Symlink(link) => {
                clear_at(&parent, name).map_err(on)?;
                parent.symlink(&link, name).map_err(host)?;
                parent.set_mtime(name, mtime as i64).map_err(host)?;
            }
            EntryKind::HardLink(link_rel) => {
                // The target's directory as the chroot sees it; the target
                // itself not followed, and a regular file.
                let not_earlier = || DebFileError::UnsafePath {
                    deb: deb.to_path_buf(),
                    member: "data.tar".into(),
                    path: rel.display().to_string(),
                    reason: "hard link target is not a file unpacked earlier",
                };
                let link_name = link_rel.file_name().expect("checked by read_data");
                let from =
                    root.open_dir_in_root(link_rel.parent().unwrap_or(Path::new(""))).map_err(|_| not_earlier())?;
                if !from.meta(link_name).map_err(host)?.is_some_and(|m| m.kind == Kind::File) {
                    return Err(not_earlier());
                }
                clear_at(&parent, name).map_err(on)?;
                from.hard_link(link_name, &parent, name).map_err(host)?;
            }
        }
        unpacked.push(rel);
        Ok(())
    })?;
    for (rel, mode, mtime) in dirs.iter().rev() {
        let host = |e: HostError| fail(rel, e.into());
        let dir = root.open_dir_in_root(rel).map_err(host)?;
        dir.set_own_mode(*mode).map_err(host)?;
        dir.set_mtime("", *mtime as i64).map_err(host)?;
    }
    Ok(unpacked)
}

fn mtime_of(secs: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

#[cfg(test)]
#[path = "debfile_tests.rs"]
pub(crate) mod tests;
