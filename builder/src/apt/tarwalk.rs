//! Walking an untrusted tar stream under the safety rules and the input
//! limits, holding at most one entry's names in memory.
//!
//! The tar crate is used in *raw* mode: by itself it reads a GNU long name,
//! long link or pax extended header into memory whatever size its header
//! claims. Here those records are read with a cap ([`InputLimits::max_path_length`]
//! for names, a little more for a pax record) and applied to the next entry;
//! pax global headers and GNU sparse files are skipped (dpkg does not make
//! them). Every entry counts against `max_entries` and its size against
//! `max_file_size`; the stream's total (headers included) is bounded by the
//! caller's [`Bounded`](crate::bounded::Bounded) reader. The hard-link
//! targets seen so far are remembered as 128-bit hashes, so a million paths
//! of 4 KiB cost 16 MB, not 4 GB.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

use super::deb_error::DebFileError;
use crate::bounded::{Exceeded, InputLimits, Limit};

/// Archive path → relative path; `Ok(None)` for the root (`./`).
pub(crate) fn normalize(p: &Path) -> Result<Option<PathBuf>, &'static str> {
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

/// Names a pax record may carry beyond a path and a link target (times, ids).
const PAX_SLACK: u64 = 64 << 10;

/// Walks the tar stream `r` (already bounded by the caller), calling `visit`
/// for each directory, file, symlink and hard link in archive order. Device
/// nodes, FIFOs and sparse files are skipped: never needed to compile
/// modules, and devices need privileges. `deb` and `member` name the stream
/// in errors.
pub(crate) fn walk<E: From<DebFileError>>(
    r: impl Read,
    deb: &Path,
    member: &str,
    limits: &InputLimits,
    mut visit: impl FnMut(DataEntry<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let fail = |path: &Path, source: io::Error| match Exceeded::in_io(&source) {
        Some(exceeded) => DebFileError::Limit { deb: deb.to_path_buf(), member: member.to_owned(), exceeded },
        None => DebFileError::Unpack {
            deb: deb.to_path_buf(),
            path: crate::bounded::excerpt(&path.display().to_string()),
            dest: PathBuf::new(),
            source,
        },
    };
    let over = |limit| DebFileError::Limit {
        deb: deb.to_path_buf(),
        member: member.to_owned(),
        exceeded: Exceeded::new(limit, limits),
    };
    let here = Path::new(member);
    let mut tar = tar::Archive::new(r);
    let mut files: HashSet<u128> = HashSet::new();
    let mut count = 0u64;
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    for entry in tar.entries().map_err(|e| fail(here, e))?.raw(true) {
        let mut entry = entry.map_err(|e| fail(here, e))?;
        count += 1;
        if count > limits.max_entries {
            return Err(over(Limit::Entries).into());
        }
        let header = entry.header();
        let size = header.entry_size().map_err(|e| fail(here, e))?;
        let kind = header.entry_type();
        // Extension records: read with a cap, applied to the next entry.
        let cap = match kind {
            tar::EntryType::GNULongName | tar::EntryType::GNULongLink => Some(limits.max_path_length),
            tar::EntryType::XHeader => Some(2 * limits.max_path_length + PAX_SLACK),
            tar::EntryType::XGlobalHeader => {
                continue; // global defaults (comment, mtime) change nothing hermod reads
            }
            _ => None,
        };
        if let Some(cap) = cap {
            if size > cap {
                return Err(over(Limit::PathLength).into());
            }
            let mut bytes = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut bytes).map_err(|e| fail(here, e))?;
            match kind {
                tar::EntryType::GNULongName => long_name = Some(trim_nul(bytes)),
                tar::EntryType::GNULongLink => long_link = Some(trim_nul(bytes)),
                _ => {
                    for ext in tar::PaxExtensions::new(&bytes) {
                        let ext = ext.map_err(|e| fail(here, e))?;
                        match ext.key_bytes() {
                            b"path" => long_name = Some(ext.value_bytes().to_vec()),
                            b"linkpath" => long_link = Some(ext.value_bytes().to_vec()),
                            _ => {}
                        }
                    }
                }
            }
            continue;
        }
        let raw_name = long_name.take().unwrap_or_else(|| entry.path_bytes().into_owned());
        let raw_link = long_link.take().or_else(|| entry.link_name_bytes().map(|l| l.into_owned()));
        if raw_name.len() as u64 > limits.max_path_length
            || raw_link.as_ref().is_some_and(|l| l.len() as u64 > limits.max_path_length)
        {
            return Err(over(Limit::PathLength).into());
        }
        let raw = PathBuf::from(OsString::from_vec(raw_name));
        let unsafe_path = |reason| DebFileError::UnsafePath {
            deb: deb.to_path_buf(),
            member: member.to_owned(),
            path: crate::bounded::excerpt(&raw.display().to_string()),
            reason,
        };
        let Some(rel) = normalize(&raw).map_err(unsafe_path)? else { continue };
        if rel.file_name().is_none() {
            return Err(unsafe_path("no file name").into());
        }
        let header = entry.header();
        let mode = header.mode().map_err(|e| fail(&rel, e))? & 0o1777; // no setuid/setgid
        let mtime = header.mtime().map_err(|e| fail(&rel, e))?;
        let link = raw_link.map(|l| PathBuf::from(OsString::from_vec(l)));
        let kind = match kind {
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if size > limits.max_file_size {
                    return Err(over(Limit::FileSize).into());
                }
                files.insert(path_hash(&rel));
                EntryKind::File(&mut entry)
            }
            tar::EntryType::Symlink => EntryKind::Symlink(link.ok_or_else(|| unsafe_path("symlink without target"))?),
            tar::EntryType::Link => {
                let link = link.ok_or_else(|| unsafe_path("hard link without target"))?;
                let Some(link_rel) = normalize(&link).map_err(|_| unsafe_path("hard link target contains `..`"))?
                else {
                    return Err(unsafe_path("hard link to the root directory").into());
                };
                if !files.contains(&path_hash(&link_rel)) {
                    return Err(unsafe_path("hard link target is not a file unpacked earlier").into());
                }
                files.insert(path_hash(&rel));
                EntryKind::HardLink(link_rel)
            }
            other => {
                tracing::debug!(deb = %deb.display(), path = %rel.display(), "skipping {other:?} entry");
                continue;
            }
        };
        // A budget that runs out while the visitor reads is the error to
        // report, whatever the visitor made of the I/O error.
        let tripped = std::cell::Cell::new(None);
        let mut watched;
        let kind = match kind {
            EntryKind::File(content) => {
                watched = Watch { inner: content, tripped: &tripped };
                EntryKind::File(&mut watched)
            }
            other => other,
        };
        if let Err(e) = visit(DataEntry { rel, mode, mtime, kind }) {
            return Err(match tripped.get() {
                Some(exceeded) => {
                    DebFileError::Limit { deb: deb.to_path_buf(), member: member.to_owned(), exceeded }.into()
                }
                None => e,
            });
        }
    }
    if long_name.is_some() || long_link.is_some() {
        return Err(DebFileError::UnsafePath {
            deb: deb.to_path_buf(),
            member: member.to_owned(),
            path: String::new(),
            reason: "a long-name record with no entry after it",
        }
        .into());
    }
    Ok(())
}

/// An entry's content, remembering an [`Exceeded`] its reads met.
struct Watch<'r, 'c> {
    inner: &'r mut dyn Read,
    tripped: &'c std::cell::Cell<Option<Exceeded>>,
}

impl Read for Watch<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if let Some(x) = Exceeded::in_io(e) {
                self.tripped.set(Some(x));
            }
        })
    }
}

/// A GNU long name is NUL-terminated inside its record.
fn trim_nul(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    bytes
}

/// 128 bits of blake3: collisions need 2^64 work, far beyond a .deb's entries.
fn path_hash(p: &Path) -> u128 {
    use std::os::unix::ffi::OsStrExt;
    let hash = blake3::hash(p.as_os_str().as_bytes());
    u128::from_le_bytes(hash.as_bytes()[..16].try_into().expect("16 bytes"))
}
