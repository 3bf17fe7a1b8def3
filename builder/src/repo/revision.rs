//! Revisions: `hermod publish --revision` gives a rebuild whose (name,
//! version, architecture) is already published with other bytes the version
//! `<version>+hermodN`, the Debian way of a binary-only change (as `+bN`
//! for binNMUs): it sorts above `<version>` and above every earlier
//! `+hermodM` (dpkg's order: `+` after the end of a version, numbers as
//! numbers), so apt upgrades farms to it.
//!
//! The .deb is rewritten, not rebuilt: its `control` file gets the new
//! `Version:` (nothing else in it changes), control.tar is written again as
//! `control.tar.xz` (its other entries, headers and all, byte for byte; only
//! the control entry's size and checksum change), and every other `ar`
//! member — `debian-binary`, data.tar with the modules, md5sums' subjects —
//! is copied unchanged, headers included. The same input and N always give
//! the same bytes (xz single-threaded, as the indices), which is how a
//! second `--revision` of the same input finds its earlier revision and
//! publishes nothing ([`revised_hash`] of each published `+hermodM`).
//!
//! The rewrite streams: only control.tar (bounded by `max_control_size`)
//! is ever in memory; data.tar goes from the input's descriptor to the
//! output. The changelog inside data.tar still names the original version:
//! it is the build's record, and dpkg never compares the two.

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::index::DebHash;
use super::RepoError;
use crate::bounded::{self, InputLimits, Limit};
use crate::compress::Compression;

/// The suffix a revision adds: `<version>+hermodN`.
pub const SUFFIX: &str = "+hermod";

/// N of `version` if it is `original+hermodN` (N ≥ 1, no leading zero).
pub fn revision_of(version: &str, original: &str) -> Option<u32> {
    let n = version.strip_prefix(original)?.strip_prefix(SUFFIX)?;
    if n.is_empty() || n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// The revision to mint for `original` when `published` (versions of the same
/// package and architecture) are there: one above the highest `+hermodM`;
/// none past `u32::MAX` (a repository listing that is made by hand).
pub fn next_revision<'a>(original: &str, published: impl IntoIterator<Item = &'a str>) -> Option<u32> {
    published.into_iter().filter_map(|v| revision_of(v, original)).max().unwrap_or(0).checked_add(1)
}

/// Why a .deb cannot be revised (it was read and indexed, so this is rare:
/// a layout hermod's reader accepts but the rewrite does not handle).
fn bad(deb: &str, problem: impl Into<String>) -> RepoError {
    RepoError::Revision { deb: deb.into(), problem: problem.into() }
}

/// A writer that hashes and counts what passes through it to `inner`.
struct Hashing<W> {
    inner: W,
    sha256: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha256.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Write the .deb read from `deb` to `out` with `Version: version` in its
/// control file; the new control text and the hash of what was written.
/// `origin` names the input in errors.
pub fn rewrite(
    origin: &str,
    mut deb: impl Read,
    out: impl Write,
    version: &str,
    limits: &InputLimits,
) -> Result<(String, DebHash), RepoError> {
    let io_err = |e: io::Error| bad(origin, e.to_string());
    let mut out = Hashing { inner: out, sha256: Sha256::new(), size: 0 };
    let mut magic = [0u8; 8];
    deb.read_exact(&mut magic).map_err(io_err)?;
    if &magic != b"!<arch>\n" {
        return Err(bad(origin, "no ar magic"));
    }
    out.write_all(&magic).map_err(io_err)?;
    let mut control = None;
    loop {
        let mut header = [0u8; 60];
        match crate::apt::debfile::read_full(&mut deb, &mut header).map_err(io_err)? {
            0 => break,
            60 => {}
            _ => return Err(bad(origin, "a truncated ar header")),
        }
        if &header[58..60] != b"`\n" {
            return Err(bad(origin, "a damaged ar header"));
        }
        let size: u64 = std::str::from_utf8(&header[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| bad(origin, "an ar member size that is not a number"))?;
        let name = String::from_utf8_lossy(&header[..16]).trim_end().trim_end_matches('/').to_owned();
        let padded = size + size % 2;
        if let Some(suffix) = name.strip_prefix("control.tar") {
            if control.is_some() {
                return Err(bad(origin, "two control.tar members"));
            }
            let compression = Compression::from_suffix(suffix)
                .ok_or_else(|| bad(origin, format!("{name} is compressed in a way hermod does not read")))?;
            let packed = bounded::read_capped((&mut deb).take(size), Limit::ControlSize, limits).map_err(io_err)?;
            if packed.len() as u64 != size {
                return Err(bad(origin, format!("{name} is truncated")));
            }
            io::copy(&mut (&mut deb).take(padded - size), &mut io::sink()).map_err(io_err)?;
            let mut tar = Vec::new();
            compression
                .decoder(&packed[..])
                .and_then(|d| bounded::read_capped(d, Limit::ControlSize, limits))
                .map(|t| tar = t)
                .map_err(|e| bad(origin, format!("{name}: {e}")))?;
            let (new_tar, text) = set_control_version(origin, &tar, version)?;
            let new_member = super::index::xz(&new_tar).map_err(io_err)?;
            let mut new_header = header;
            let mut field = [b' '; 16];
            let slash = if header[..16].contains(&b'/') { "/" } else { "" };
            let new_name = format!("control.tar.xz{slash}");
            field[..new_name.len()].copy_from_slice(new_name.as_bytes());
            new_header[..16].copy_from_slice(&field);
            new_header[48..58].copy_from_slice(format!("{:<10}", new_member.len()).as_bytes());
            out.write_all(&new_header).map_err(io_err)?;
            out.write_all(&new_member).map_err(io_err)?;
            if new_member.len() % 2 == 1 {
                out.write_all(b"\n").map_err(io_err)?;
            }
            control = Some(text);
        } else {
            out.write_all(&header).map_err(io_err)?;
            let copied = io::copy(&mut (&mut deb).take(padded), &mut out).map_err(io_err)?;
            if copied != padded && copied != size {
                return Err(bad(origin, format!("{name} is truncated")));
            }
            if copied == size && padded != size {
                out.write_all(b"\n").map_err(io_err)?;
            }
        }
    }
    let control = control.ok_or_else(|| bad(origin, "no control.tar member"))?;
    let hash = DebHash { size: out.size, sha256: hex::encode(out.sha256.finalize()) };
    Ok((control, hash))
}

/// A tar header field's octal number.
fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// control.tar with its `control` entry's `Version:` set to `version`: the
/// new tar and control text. Every other block is copied as it is.
fn set_control_version(origin: &str, tar: &[u8], version: &str) -> Result<(Vec<u8>, String), RepoError> {
    let mut out = Vec::with_capacity(tar.len() + 512);
    let mut text = None;
    let mut at = 0;
    let mut previous_type = 0u8;
    while at + 512 <= tar.len() {
        let header = &tar[at..at + 512];
        if header.iter().all(|&b| b == 0) {
            out.extend_from_slice(&tar[at..]);
            break;
        }
        let size = octal(&header[124..136]).ok_or_else(|| bad(origin, "control.tar: a size hermod cannot read"))?;
        let data_end = at + 512 + (size as usize).div_ceil(512) * 512;
        if data_end > tar.len() {
            return Err(bad(origin, "control.tar is truncated"));
        }
        let name_end = header[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = &header[..name_end];
        let kind = header[156];
        if (kind == b'0' || kind == 0) && (name == b"./control" || name == b"control") {
            if text.is_some() {
                return Err(bad(origin, "control.tar holds two control files"));
            }
            if previous_type == b'x' {
                return Err(bad(origin, "control.tar's control file has a pax header"));
            }
            let old = std::str::from_utf8(&tar[at + 512..at + 512 + size as usize])
                .map_err(|_| bad(origin, "the control file is not UTF-8"))?;
            let new = with_version(old, version)
                .ok_or_else(|| bad(origin, "the control file has no Version field, or more than one"))?;
            let mut h = [0u8; 512];
            h.copy_from_slice(header);
            h[124..136].copy_from_slice(format!("{:011o}\0", new.len()).as_bytes());
            h[148..156].fill(b' ');
            let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(new.as_bytes());
            out.resize(out.len().div_ceil(512) * 512, 0);
            text = Some(new);
        } else {
            out.extend_from_slice(&tar[at..data_end]);
        }
        previous_type = kind;
        at = data_end;
    }
    match text {
        Some(text) => Ok((out, text)),
        None => Err(bad(origin, "control.tar has no control file")),
    }
}

/// `control` with its one `Version:` line's value replaced.
fn with_version(control: &str, version: &str) -> Option<String> {
    let mut found = false;
    let mut out = String::with_capacity(control.len() + 16);
    for line in control.split_inclusive('\n') {
        // A field's name as the stanza parser reads it (trimmed); a
        // continuation line (leading blank) is no field.
        let is_version = !line.starts_with([' ', '\t'])
            && line.split_once(':').is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case("Version"));
        if is_version && found {
            // Two Version fields: which one a reader takes is not ours to guess.
            return None;
        }
        if is_version {
            found = true;
            out.push_str("Version: ");
            out.push_str(version);
            out.push('\n');
        } else {
            out.push_str(line);
        }
    }
    found.then_some(out)
}

/// The hash [`rewrite`] gives `deb` with `version` (written nowhere).
pub fn revised_hash(origin: &str, deb: impl Read, version: &str, limits: &InputLimits) -> Result<DebHash, RepoError> {
    Ok(rewrite(origin, deb, io::sink(), version, limits)?.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt::version::Version;
    use crate::debpkg::tests_support::module_deb;

    #[test]
    fn revision_numbers_are_read_and_the_next_one_is_above_all() {
        assert_eq!(revision_of("1.0-1+hermod3", "1.0-1"), Some(3));
        assert_eq!(revision_of("1.0-1+hermod03", "1.0-1"), None);
        assert_eq!(revision_of("1.0-1+hermod", "1.0-1"), None);
        assert_eq!(revision_of("1.0-1", "1.0-1"), None);
        assert_eq!(next_revision("1.0-1", ["1.0-1"]), Some(1));
        assert_eq!(next_revision("1.0-1", ["1.0-1", "1.0-1+hermod1", "1.0-1+hermod9", "1.0-1+hermodx"]), Some(10));
        assert_eq!(next_revision("1.0-1", ["1.0-1+hermod4294967295"]), None, "no wrap to +hermod0");
        // dpkg orders the revisions as their numbers, all above the original.
        let v = |s: &str| Version::parse(s).unwrap();
        assert!(v("0.1+6.1.162-1") < v("0.1+6.1.162-1+hermod1"));
        assert!(v("0.1+6.1.162-1+hermod9") < v("0.1+6.1.162-1+hermod10"));
        assert!(v("2.0") < v("2.0+hermod1"), "a native version too");
        assert!(v("1:2.0-1") < v("1:2.0-1+hermod1"));
    }

    #[test]
    fn a_revision_changes_only_the_version_and_keeps_data_tar_byte_identical() {
        let (name, deb) = module_deb("hello-modules-k", "0.1-1");
        let limits = crate::bounded::current();
        let mut out = Vec::new();
        let (control, hash) = rewrite(&name, &deb[..], &mut out, "0.1-1+hermod1", &limits).unwrap();
        assert_eq!(hash, DebHash::of(&out));
        let old = crate::apt::debfile::control_text_with(std::path::Path::new("a.deb"), &deb[..], &limits).unwrap();
        assert_eq!(control, old.replace("Version: 0.1-1\n", "Version: 0.1-1+hermod1\n"));
        let back = crate::apt::debfile::control_text_with(std::path::Path::new("b.deb"), &out[..], &limits).unwrap();
        assert_eq!(back, control, "the control file reads back");
        // data.tar.xz is the same member, header and bytes.
        let members = |bytes: &[u8]| -> Vec<(String, Vec<u8>)> {
            let mut a = ar::Archive::new(bytes);
            let mut v = Vec::new();
            while let Some(m) = a.next_entry() {
                let mut m = m.unwrap();
                let id = String::from_utf8_lossy(m.header().identifier()).into_owned();
                let mut data = Vec::new();
                m.read_to_end(&mut data).unwrap();
                v.push((id, data));
            }
            v
        };
        let (before, after) = (members(&deb), members(&out));
        assert_eq!(before.len(), 3);
        assert_eq!(after[0], before[0]);
        assert_eq!(after[1].0, "control.tar.xz");
        assert_eq!(after[2], before[2]);
        // Deterministic, and the hash alone is what a repeat compares.
        assert_eq!(revised_hash(&name, &deb[..], "0.1-1+hermod1", &limits).unwrap(), hash);
        assert_ne!(revised_hash(&name, &deb[..], "0.1-1+hermod2", &limits).unwrap(), hash);
        // dpkg-deb agrees, when it is installed (the integration tests install with it).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.deb");
        std::fs::write(&path, &out).unwrap();
        if let Ok(o) = std::process::Command::new("dpkg-deb").arg("--field").arg(&path).arg("Version").output() {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0.1-1+hermod1");
        }
    }

    #[test]
    fn a_damaged_deb_is_named_not_rewritten() {
        let (name, deb) = module_deb("hello-modules-k", "0.1-1");
        let limits = crate::bounded::current();
        let e = rewrite(&name, &deb[..deb.len() / 2], io::sink(), "0.1-1+hermod1", &limits).unwrap_err();
        assert!(e.to_string().contains(&name), "{e}");
        let e = rewrite(&name, &b"not a deb"[..], io::sink(), "1", &limits).unwrap_err().to_string();
        assert!(e.contains("ar magic"), "{e}");
        assert_eq!(
            with_version("Package: a\nVersion: 1\nDepends: b\n", "2").unwrap(),
            "Package: a\nVersion: 2\nDepends: b\n"
        );
        assert!(with_version("Package: a\n", "2").is_none());
        assert!(
            with_version("Version : 1\nVersion: 9\n", "2").is_none(),
            "two Version fields, one spelled with a blank"
        );
        assert_eq!(
            with_version("Package: a\nDescription: x\n Version: 7\nVersion: 1\n", "2").unwrap(),
            "Package: a\nDescription: x\n Version: 7\nVersion: 2\n",
            "a continuation line is no field"
        );
    }
}
