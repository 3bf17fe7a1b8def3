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

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

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

/// Resolve `rel` inside `root` following on-disk symlinks chroot-style; the
/// final component is followed only if `follow_last`. Never leaves `root`.
pub(crate) fn resolve_in(root: &Path, rel: &Path, follow_last: bool) -> io::Result<PathBuf> {
    let mut stack: Vec<std::ffi::OsString> = rel.components().rev().map(|c| c.as_os_str().to_owned()).collect();
    let mut cur = PathBuf::new(); // relative to root
    let mut hops = 0;
    while let Some(c) = stack.pop() {
        match c.to_str() {
            Some("." | "/" | "") => continue,
            Some("..") => {
                cur.pop(); // at the root `..` stays at the root, as in a chroot
                continue;
            }
            _ => {}
        }
        let candidate = cur.join(&c);
        let is_last = stack.is_empty();
        match fs::symlink_metadata(root.join(&candidate)) {
            Ok(m) if m.file_type().is_symlink() && (!is_last || follow_last) => {
                hops += 1;
                if hops > 40 {
                    return Err(io::Error::other("too many levels of symbolic links"));
                }
                let target = fs::read_link(root.join(&candidate))?;
                if target.is_absolute() {
                    cur = PathBuf::new();
                }
                stack.extend(target.components().rev().map(|c| c.as_os_str().to_owned()));
            }
            _ => cur = candidate,
        }
    }
    Ok(root.join(cur))
}

/// Remove whatever non-directory sits at `p` (never follows it).
pub(crate) fn clear(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => Err(io::Error::new(io::ErrorKind::AlreadyExists, "a directory is in the way")),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
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

/// Unpack the data member of `deb` into `dest` (created if missing).
/// Returns the relative paths unpacked, in archive order.
pub fn unpack_data(deb: &Path, dest: &Path) -> Result<Vec<PathBuf>, DebFileError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |path: &Path, source| DebFileError::Unpack {
        deb: deb.to_path_buf(),
        path: path.display().to_string(),
        dest: dest.to_path_buf(),
        source,
    };
    fs::create_dir_all(dest).map_err(|e| fail(Path::new("."), e))?;
    let mut unpacked = Vec::new();
    // Directory modes/mtimes are applied last: a read-only directory must
    // still receive its contents, and writing into it would bump its mtime.
    let mut dirs: Vec<(PathBuf, u32, u64)> = Vec::new();
    read_data(deb, |entry: DataEntry<'_>| {
        let DataEntry { rel, mode, mtime, kind } = entry;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let host_parent = resolve_in(dest, parent, true).map_err(|e| fail(&rel, e))?;
        fs::create_dir_all(&host_parent).map_err(|e| fail(&rel, e))?;
        let target = host_parent.join(rel.file_name().expect("checked by read_data"));
        match kind {
            EntryKind::Dir => {
                let real = resolve_in(dest, &rel, true).map_err(|e| fail(&rel, e))?;
                if !real.is_dir() {
                    clear(&real).map_err(|e| fail(&rel, e))?;
                    fs::create_dir(&real).map_err(|e| fail(&rel, e))?;
                }
                dirs.push((real, mode, mtime));
            }
            EntryKind::File(content) => {
                clear(&target).map_err(|e| fail(&rel, e))?;
                let mut f = File::create(&target).map_err(|e| fail(&rel, e))?;
                io::copy(content, &mut f).map_err(|e| fail(&rel, e))?;
                f.set_permissions(fs::Permissions::from_mode(mode)).map_err(|e| fail(&rel, e))?;
                f.set_modified(mtime_of(mtime)).map_err(|e| fail(&rel, e))?;
            }
            EntryKind::Symlink(link) => {
                clear(&target).map_err(|e| fail(&rel, e))?;
                std::os::unix::fs::symlink(&link, &target).map_err(|e| fail(&rel, e))?;
                let t = filetime::FileTime::from_unix_time(mtime as i64, 0);
                filetime::set_symlink_file_times(&target, t, t).map_err(|e| fail(&rel, e))?;
            }
            EntryKind::HardLink(link_rel) => {
                let source = resolve_in(dest, &link_rel, false).map_err(|e| fail(&rel, e))?;
                if !fs::symlink_metadata(&source).map(|m| m.is_file()).unwrap_or(false) {
                    return Err(DebFileError::UnsafePath {
                        deb: deb.to_path_buf(),
                        member: "data.tar".into(),
                        path: rel.display().to_string(),
                        reason: "hard link target is not a file unpacked earlier",
                    });
                }
                clear(&target).map_err(|e| fail(&rel, e))?;
                fs::hard_link(&source, &target).map_err(|e| fail(&rel, e))?;
            }
        }
        unpacked.push(rel);
        Ok(())
    })?;
    for (dir, mode, mtime) in dirs.iter().rev() {
        fs::set_permissions(dir, fs::Permissions::from_mode(*mode)).map_err(|e| fail(dir, e))?;
        let t = filetime::FileTime::from_unix_time(*mtime as i64, 0);
        filetime::set_file_mtime(dir, t).map_err(|e| fail(dir, e))?;
    }
    Ok(unpacked)
}

fn mtime_of(secs: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

#[cfg(test)]
#[path = "debfile_tests.rs"]
pub(crate) mod tests;
