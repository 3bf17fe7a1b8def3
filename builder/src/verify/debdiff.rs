//! What differs between two .deb files, named member by member.
//!
//! A .deb is an ar archive of `debian-binary`, `control.tar.*` and
//! `data.tar.*`. Two packages that differ in one byte usually differ in a
//! whole compressed stream, which says nothing; so each tar is unpacked in
//! memory and its entries compared by path: presence, type, mode, owner,
//! mtime, link target and content. A `.ko` (compressed or not) whose content
//! differs is handed to [`super::elfdiff`] for the ELF sections that differ.
//!
//! Reading is lenient: a member that cannot be decompressed or parsed (a
//! package damaged after publishing) is itself a difference, not an error.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::elfdiff::{self, SectionDiff};

/// One ar member, with its header fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArMember {
    pub name: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub data: Vec<u8>,
}

/// One tar entry of control.tar or data.tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// Without a leading `./`.
    pub path: String,
    pub kind: String,
    pub mode: u32,
    /// `uid:gid (uname:gname)`.
    pub owner: String,
    pub mtime: u64,
    pub link: Option<String>,
    pub data: Vec<u8>,
}

/// A .deb taken apart.
#[derive(Debug)]
pub struct Deb {
    /// The members, or why the file is not a readable ar archive.
    pub members: Result<Vec<ArMember>, String>,
    /// Per tar member (`control.tar`, `data.tar`): its entries, or why they
    /// cannot be read.
    pub tars: BTreeMap<String, Result<Vec<TarEntry>, String>>,
}

/// One aspect in which a member differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Aspect {
    /// `presence`, `content`, `mode`, `owner`, `mtime`, `type`, `link`, `order`, `readable`.
    pub what: String,
    pub first: String,
    pub second: String,
}

/// A member of the package that differs: an ar member (`data.tar.xz`) or an
/// entry of a tar (`data.tar:lib/modules/…/hello.ko`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub member: String,
    pub aspects: Vec<Aspect>,
    /// For a module: the ELF sections that differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub elf_sections: Vec<SectionDiff>,
    /// Why the sections could not be compared (not ELF, not decompressible).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elf_note: Option<String>,
}

/// Read a .deb's members and its tars' entries.
pub fn read(bytes: &[u8]) -> Deb {
    let members = read_ar(bytes);
    let mut tars = BTreeMap::new();
    if let Ok(members) = &members {
        for m in members {
            if let Some((base, ext)) = tar_name(&m.name) {
                tars.insert(base.to_owned(), read_tar(&m.data, ext));
            }
        }
    }
    Deb { members, tars }
}

/// `data.tar.xz` → (`data.tar`, `.xz`).
fn tar_name(name: &str) -> Option<(&str, &str)> {
    for base in ["control.tar", "data.tar"] {
        if let Some(ext) = name.strip_prefix(base) {
            return Some((base, ext));
        }
    }
    None
}

fn read_ar(bytes: &[u8]) -> Result<Vec<ArMember>, String> {
    if !bytes.starts_with(b"!<arch>\n") {
        return Err("not an ar archive (no !<arch> magic)".into());
    }
    let mut ar = ar::Archive::new(bytes);
    let mut members = Vec::new();
    while let Some(entry) = ar.next_entry() {
        let mut entry = entry.map_err(|e| format!("bad ar archive: {e}"))?;
        let h = entry.header();
        let name = String::from_utf8_lossy(h.identifier()).trim_end_matches('/').to_string();
        let (mode, uid, gid, mtime) = (h.mode(), h.uid(), h.gid(), h.mtime());
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| format!("member {name}: {e}"))?;
        members.push(ArMember { name, mode, uid, gid, mtime, data });
    }
    Ok(members)
}

/// Decompress a member by its name's extension, up to `max_unpacked_size`
/// (a published .deb is untrusted input; see [`crate::bounded`]).
pub fn decompress(data: &[u8], ext: &str) -> Result<Vec<u8>, String> {
    let plain: Box<dyn Read + '_> = match ext {
        "" => Box::new(data),
        ".xz" => {
            // liblzma's default has no memory limit; xz -9 needs 65 MiB.
            let stream = liblzma::stream::Stream::new_stream_decoder(128 << 20, 0).map_err(|e| e.to_string())?;
            Box::new(liblzma::read::XzDecoder::new_stream(data, stream))
        }
        ".zst" => Box::new(zstd::stream::read::Decoder::new(data).map_err(|e| e.to_string())?),
        ".gz" => Box::new(flate2::read::GzDecoder::new(data)),
        other => return Err(format!("unknown compression {}", crate::bounded::excerpt(other))),
    };
    let limits = crate::bounded::current();
    crate::bounded::read_capped(plain, crate::bounded::Limit::UnpackedSize, &limits)
        .map_err(|e| format!("cannot decompress ({}): {e}", ext.trim_start_matches('.')))
}

fn read_tar(data: &[u8], ext: &str) -> Result<Vec<TarEntry>, String> {
    let plain = decompress(data, ext)?;
    let mut archive = tar::Archive::new(&plain[..]);
    let mut entries = Vec::new();
    for entry in archive.entries().map_err(|e| format!("bad tar: {e}"))? {
        let mut entry = entry.map_err(|e| format!("bad tar entry: {e}"))?;
        let h = entry.header().clone();
        let path = entry.path().map_err(|e| format!("bad tar path: {e}"))?.to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").to_owned();
        let path = if path.is_empty() { ".".to_owned() } else { path };
        let name = |n: Result<Option<&str>, _>| n.ok().flatten().unwrap_or("").to_owned();
        let owner = format!(
            "{}:{} ({}:{})",
            h.uid().unwrap_or(u64::MAX),
            h.gid().unwrap_or(u64::MAX),
            name(h.username()),
            name(h.groupname())
        );
        let link = entry.link_name().ok().flatten().map(|l| l.to_string_lossy().into_owned());
        let mut content = Vec::new();
        entry.read_to_end(&mut content).map_err(|e| format!("{path}: {e}"))?;
        entries.push(TarEntry {
            path,
            kind: format!("{:?}", h.entry_type()),
            mode: h.mode().unwrap_or(0),
            owner,
            mtime: h.mtime().unwrap_or(0),
            link,
            data: content,
        });
    }
    Ok(entries)
}

fn content_summary(data: &[u8]) -> String {
    format!("{} bytes, sha256 {}", data.len(), &hex::encode(Sha256::digest(data))[..16])
}

fn aspect(what: &str, first: impl ToString, second: impl ToString) -> Aspect {
    Aspect { what: what.into(), first: first.to_string(), second: second.to_string() }
}

/// Every member that differs between `first` and `second`, in package order.
pub fn diff(first: &Deb, second: &Deb) -> Vec<Difference> {
    let mut out = Vec::new();
    let (a, b) = match (&first.members, &second.members) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            let state = |m: &Result<Vec<ArMember>, String>| match m {
                Ok(members) => format!("an ar archive of {} members", members.len()),
                Err(why) => why.clone(),
            };
            out.push(plain("(the .deb file)", vec![aspect("readable", state(a), state(b))]));
            return out;
        }
    };
    let names = |m: &[ArMember]| m.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
    if names(a) != names(b) {
        out.push(plain("(ar members)", vec![aspect("order", names(a).join(", "), names(b).join(", "))]));
    }
    for ma in a {
        let Some(mb) = b.iter().find(|m| m.name == ma.name) else {
            out.push(plain(&ma.name, vec![aspect("presence", "present", "absent")]));
            continue;
        };
        let mut aspects = Vec::new();
        if (ma.mode, ma.uid, ma.gid) != (mb.mode, mb.uid, mb.gid) {
            aspects.push(aspect(
                "ar header",
                format!("mode {:o} uid {} gid {}", ma.mode, ma.uid, ma.gid),
                format!("mode {:o} uid {} gid {}", mb.mode, mb.uid, mb.gid),
            ));
        }
        if ma.mtime != mb.mtime {
            aspects.push(aspect("mtime", ma.mtime, mb.mtime));
        }
        let mut inner = Vec::new();
        if ma.data != mb.data {
            match tar_name(&ma.name).map(|(base, _)| (base, &first.tars[base], second.tars.get(base))) {
                Some((base, Ok(ea), Some(Ok(eb)))) => inner = diff_entries(base, ea, eb),
                Some((_, ea, eb)) => {
                    let state = |t: Option<&Result<Vec<TarEntry>, String>>| match t {
                        Some(Ok(e)) => format!("{} entries", e.len()),
                        Some(Err(why)) => why.clone(),
                        None => "absent".into(),
                    };
                    aspects.push(aspect("readable", state(Some(ea)), state(eb)));
                }
                None => {}
            }
            // The stream differs while every entry is the same: say so, or
            // the difference would go unnamed.
            if inner.is_empty() {
                aspects.push(aspect("content", content_summary(&ma.data), content_summary(&mb.data)));
            }
        }
        if !aspects.is_empty() {
            out.push(plain(&ma.name, aspects));
        }
        out.extend(inner);
    }
    for mb in b.iter().filter(|mb| !a.iter().any(|ma| ma.name == mb.name)) {
        out.push(plain(&mb.name, vec![aspect("presence", "absent", "present")]));
    }
    out
}

fn plain(member: &str, aspects: Vec<Aspect>) -> Difference {
    Difference { member: member.to_owned(), aspects, elf_sections: Vec::new(), elf_note: None }
}

/// The entries of one tar (`base`: `data.tar`) that differ.
pub fn diff_entries(base: &str, a: &[TarEntry], b: &[TarEntry]) -> Vec<Difference> {
    let index = |entries: &[TarEntry]| -> BTreeMap<String, TarEntry> {
        entries.iter().map(|e| (e.path.clone(), e.clone())).collect()
    };
    let (ia, ib) = (index(a), index(b));
    let mut paths: Vec<&String> = ia.keys().chain(ib.keys()).collect();
    paths.sort();
    paths.dedup();
    let mut out = Vec::new();
    for path in paths {
        let member = format!("{base}:{path}");
        let (ea, eb) = match (ia.get(path), ib.get(path)) {
            (Some(ea), Some(eb)) => (ea, eb),
            (Some(_), None) => {
                out.push(plain(&member, vec![aspect("presence", "present", "absent")]));
                continue;
            }
            (None, _) => {
                out.push(plain(&member, vec![aspect("presence", "absent", "present")]));
                continue;
            }
        };
        let mut d = plain(&member, Vec::new());
        if ea.kind != eb.kind {
            d.aspects.push(aspect("type", &ea.kind, &eb.kind));
        }
        if ea.mode != eb.mode {
            d.aspects.push(aspect("mode", format!("{:04o}", ea.mode), format!("{:04o}", eb.mode)));
        }
        if ea.owner != eb.owner {
            d.aspects.push(aspect("owner", &ea.owner, &eb.owner));
        }
        if ea.mtime != eb.mtime {
            d.aspects.push(aspect("mtime", ea.mtime, eb.mtime));
        }
        if ea.link != eb.link {
            let show = |l: &Option<String>| l.clone().unwrap_or_else(|| "(none)".into());
            d.aspects.push(aspect("link", show(&ea.link), show(&eb.link)));
        }
        if ea.data != eb.data {
            d.aspects.push(aspect("content", content_summary(&ea.data), content_summary(&eb.data)));
            if let Some(ext) = module_compression(path) {
                match (decompress(&ea.data, ext), decompress(&eb.data, ext)) {
                    (Ok(ka), Ok(kb)) => match elfdiff::sections(&ka, &kb) {
                        Ok(sections) => d.elf_sections = sections,
                        Err(why) => d.elf_note = Some(why),
                    },
                    (Err(why), _) | (_, Err(why)) => d.elf_note = Some(why),
                }
            }
        }
        if !d.aspects.is_empty() {
            out.push(d);
        }
    }
    out
}

/// A kernel module's compression by its name (`.ko` → `""`), or `None` for other files.
fn module_compression(path: &str) -> Option<&'static str> {
    [(".ko", ""), (".ko.xz", ".xz"), (".ko.zst", ".zst"), (".ko.gz", ".gz")]
        .into_iter()
        .find(|(suffix, _)| path.ends_with(suffix))
        .map(|(_, ext)| ext)
}

#[cfg(test)]
#[path = "debdiff_tests.rs"]
mod tests;
