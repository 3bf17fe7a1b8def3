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

use std::ffi::OsStr;
use std::fs;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use hermod_hostfs::{Dir, Error as HostError, Kind};

pub use super::deb_error::DebFileError;
use super::stanza::{self, Stanza};
use super::tarwalk::walk;
pub(crate) use super::tarwalk::{DataEntry, EntryKind};
use crate::bounded::{self, Bounded, Exceeded, InputLimits, Limit};
use crate::compress::Compression;

/// The ar archive's magic, then 60-byte member headers (`ar(5)`).
const AR_MAGIC: &[u8; 8] = b"!<arch>\n";
const AR_HEADER: usize = 60;

/// Decompressed, bounded reader over the `control.tar*` or `data.tar*` member.
fn member_reader(deb: &Path, prefix: &str, limits: &InputLimits) -> Result<(String, Box<dyn Read>), DebFileError> {
    // Only a regular file is opened: a FIFO named like a package would block forever.
    let (file, _) = hermod_hostfs::open_regular_path(deb)
        .map_err(|e| DebFileError::Io { deb: deb.to_path_buf(), source: e.into() })?;
    member_reader_of(deb, BufReader::new(file), prefix, limits)
}

/// [`member_reader`] over a .deb's bytes from any reader (`deb` names it in
/// errors). The ar format is read here, as a stream: a member's header size
/// only bounds how far its reader goes, nothing is allocated from it, and
/// the decompressed bytes are counted against `max_unpacked_size` (data) or
/// `max_control_size` (control).
fn member_reader_of<'a>(
    deb: &Path,
    mut r: impl Read + 'a,
    prefix: &str,
    limits: &InputLimits,
) -> Result<(String, Box<dyn Read + 'a>), DebFileError> {
    let io_err = |source| DebFileError::Io { deb: deb.to_path_buf(), source };
    let not_deb = |reason: String| DebFileError::NotADeb { deb: deb.to_path_buf(), reason };
    let mut magic = [0u8; 8];
    if r.read_exact(&mut magic).is_err() || &magic != AR_MAGIC {
        return Err(not_deb("bad ar archive: no `!<arch>` magic".into()));
    }
    let budget = if prefix == "data.tar" { Limit::UnpackedSize } else { Limit::ControlSize };
    let mut first = true;
    loop {
        let mut header = [0u8; AR_HEADER];
        match read_full(&mut r, &mut header).map_err(io_err)? {
            0 => return Err(not_deb(format!("no {prefix}* member"))),
            AR_HEADER => {}
            _ => return Err(not_deb("bad ar archive: truncated member header".into())),
        }
        if &header[58..60] != b"`\n" {
            return Err(not_deb("bad ar archive: corrupt member header".into()));
        }
        let name = String::from_utf8_lossy(&header[..16]).trim_end().trim_end_matches('/').to_string();
        let size = std::str::from_utf8(&header[48..58])
            .ok()
            .and_then(|s| s.trim_end().parse::<u64>().ok())
            .ok_or_else(|| not_deb(format!("bad ar archive: member {} has no size", bounded::excerpt(&name))))?;
        let padded = size + size % 2;
        if first {
            if name != "debian-binary" {
                return Err(not_deb(format!("first member is {}, expected debian-binary", bounded::excerpt(&name))));
            }
            let mut v = Vec::new();
            (&mut r).take(padded.min(64)).read_to_end(&mut v).map_err(io_err)?;
            skip(&mut r, padded.saturating_sub(64)).map_err(io_err)?;
            let v = String::from_utf8_lossy(&v[..v.len().min(size as usize)]).into_owned();
            if v.trim_end() != "2.0" {
                return Err(not_deb(format!(
                    "debian-binary says {}, expected \"2.0\"",
                    bounded::excerpt(v.trim_end())
                )));
            }
            first = false;
            continue;
        }
        let Some(ext) = name.strip_prefix(prefix) else {
            skip(&mut r, padded).map_err(io_err)?;
            continue;
        };
        // A member never holds more than its unpacked budget (an uncompressed
        // tar is the largest form), so a bigger claim is a lie or a bomb.
        if size > budget.of(limits) {
            return Err(DebFileError::Limit {
                deb: deb.to_path_buf(),
                member: name,
                exceeded: Exceeded::new(budget, limits),
            });
        }
        let body = r.take(size);
        let Some(format) = Compression::from_suffix(ext) else {
            return Err(DebFileError::Compression { deb: deb.to_path_buf(), member: bounded::excerpt(&name) });
        };
        let plain = format.decoder(body).map_err(io_err)?;
        return Ok((name, Box::new(Bounded::new(plain, budget, limits))));
    }
}

/// Reads until `buf` is full or the input ends; the bytes read.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads past `n` bytes (a member hermod does not need), without keeping them.
fn skip(r: &mut impl Read, n: u64) -> io::Result<()> {
    io::copy(&mut r.take(n), &mut io::sink())?;
    Ok(())
}

/// The package's `control` stanza (Package, Version, Depends, ...).
pub fn control(deb: &Path) -> Result<Stanza, DebFileError> {
    let limits = bounded::current();
    let (member, r) = member_reader(deb, "control.tar", &limits)?;
    let text = control_text_in(deb, &member, r, &limits)?;
    Ok(stanza::parse_one(&text, &format!("{}:control", deb.display()))?)
}

/// The `control` file's text, verbatim, of the .deb whose bytes are `bytes`
/// (`deb` names it in errors): the bytes read are the bytes checked.
pub fn control_text_of(deb: &Path, bytes: &[u8]) -> Result<String, DebFileError> {
    control_text_with(deb, bytes, &bounded::current())
}

/// [`control_text_of`] under `limits`.
pub fn control_text_with(deb: &Path, r: impl Read, limits: &InputLimits) -> Result<String, DebFileError> {
    let (member, r) = member_reader_of(deb, r, "control.tar", limits)?;
    control_text_in(deb, &member, r, limits)
}

/// The `control` file of a control.tar stream, read up to `max_stanza_size`:
/// a longer one is refused before it is in memory.
fn control_text_in(deb: &Path, member: &str, r: impl Read, limits: &InputLimits) -> Result<String, DebFileError> {
    let mut text = None;
    walk(r, deb, member, limits, |entry: DataEntry<'_>| -> Result<(), DebFileError> {
        let EntryKind::File(content) = entry.kind else { return Ok(()) };
        if text.is_some() || entry.rel != Path::new("control") {
            return Ok(());
        }
        let bytes =
            bounded::read_capped(content, Limit::StanzaSize, limits).map_err(|source| {
                match Exceeded::in_io(&source) {
                    Some(exceeded) => {
                        DebFileError::Limit { deb: deb.to_path_buf(), member: "control".into(), exceeded }
                    }
                    None => {
                        DebFileError::Unpack { deb: deb.into(), path: "control".into(), dest: PathBuf::new(), source }
                    }
                }
            })?;
        let t = String::from_utf8(bytes).map_err(|_| DebFileError::NotADeb {
            deb: deb.to_path_buf(),
            reason: "the control file is not UTF-8".into(),
        })?;
        text = Some(t);
        Ok(())
    })?;
    text.ok_or_else(|| DebFileError::NoControl { deb: deb.to_path_buf() })
}

/// The directory `rel` of a tree being unpacked or assembled under `root`,
/// as the chroot will see it, made where missing ([`Dir::make_dir_in_root`]).
pub(crate) fn dir_in_root(root: &Dir, rel: &Path) -> Result<Dir, HostError> {
    root.make_dir_in_root(rel, 0o755)
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

/// Walk the data member of `deb`, calling `visit` for each directory, file,
/// symlink and hard link in archive order, under the process's input limits
/// (see [`super::tarwalk::walk`] for the rules).
pub(crate) fn read_data<E: From<DebFileError>>(
    deb: &Path,
    visit: impl FnMut(DataEntry<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let limits = bounded::current();
    let (member, r) = member_reader(deb, "data.tar", &limits)?;
    walk(r, deb, &member, &limits, visit)
}

/// [`read_data`] over the .deb's bytes from any reader (`deb` names it in errors).
pub(crate) fn read_data_with<E: From<DebFileError>>(
    deb: &Path,
    r: impl Read,
    limits: &InputLimits,
    visit: impl FnMut(DataEntry<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let (member, r) = member_reader_of(deb, r, "data.tar", limits)?;
    walk(r, deb, &member, limits, visit)
}

/// [`read_data`]'s walk over any tar stream (`origin` and `member` name it in
/// errors); an OCI image layer (`rootfs::oci_image`) is read with the same
/// rules, its total bounded by `max_layer_size`.
pub(crate) fn read_tar<E: From<DebFileError>>(
    r: impl Read,
    deb: &Path,
    member: &str,
    visit: impl FnMut(DataEntry<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let limits = bounded::current();
    walk(Bounded::new(r, Limit::LayerSize, &limits), deb, member, &limits, visit)
}

/// Unpack the data member of `deb` into `dest` (created if missing), by
/// descriptor beneath `dest` ([`dir_in_root`], [`clear_at`]).
/// Returns the number of entries unpacked. The data member's limits bound
/// the disk it fills too (`max_unpacked_size`).
pub fn unpack_data(deb: &Path, dest: &Path) -> Result<usize, DebFileError> {
    let fail = |path: &Path, source| DebFileError::Unpack {
        deb: deb.to_path_buf(),
        path: path.display().to_string(),
        dest: dest.to_path_buf(),
        source,
    };
    fs::create_dir_all(dest).map_err(|e| fail(Path::new("."), e))?;
    let root = Dir::open_nofollow(dest).map_err(|e| fail(Path::new("."), e.into()))?;
    let mut unpacked = 0usize;
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
            unpacked += 1;
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
        unpacked += 1;
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
