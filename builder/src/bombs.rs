//! Hostile .deb files, for the tests, `cargo xtask bench --only bombs` and
//! the fuzz seeds: each is small on disk and written as a stream, whatever
//! it claims or expands to, so making a 2 GiB bomb costs no memory.
//!
//! Every package is otherwise well formed (`debian-binary`, a control.tar
//! with a `control` file, a data.tar), so a reader gets as far as the one
//! thing that is wrong.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

/// The control file of every bomb (a `-dkms` package as `hermod build` wants).
pub const CONTROL: &[u8] =
    b"Package: bomb-dkms\nVersion: 1\nArchitecture: all\nMaintainer: x <x@example.org>\nDescription: hostile\n";

/// A .deb of `members` (name, bytes) after `debian-binary`.
fn write_deb(path: &Path, members: &[(&str, &[u8])]) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    out.write_all(b"!<arch>\n")?;
    for (name, body) in [("debian-binary", &b"2.0\n"[..])].iter().chain(members) {
        ar_header(&mut out, name, body.len() as u64)?;
        out.write_all(body)?;
        if body.len() % 2 == 1 {
            out.write_all(b"\n")?;
        }
    }
    out.flush()
}

/// One ar member header (60 bytes), with any `size` claimed.
fn ar_header(out: &mut impl Write, name: &str, size: u64) -> io::Result<()> {
    writeln!(out, "{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`", 0, 0, 0, "100644")
}

/// A tar stream compressed with zstd, of entries added by `fill`.
fn zstd_tar(
    fill: impl FnOnce(&mut tar::Builder<zstd::Encoder<'static, Vec<u8>>>) -> io::Result<()>,
) -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(zstd::Encoder::new(Vec::new(), 3)?);
    fill(&mut b)?;
    b.into_inner()?.finish()
}

fn file_header(path: &str, size: u64) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_gnu();
    h.set_path(path)?;
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    Ok(h)
}

fn control_tar(control: &[u8]) -> io::Result<Vec<u8>> {
    zstd_tar(|b| b.append(&file_header("./control", control.len() as u64)?, control))
}

/// A normal `-dkms` data.tar: `usr/src/bomb-1/dkms.conf`.
fn dkms_data() -> io::Result<Vec<u8>> {
    let conf = b"PACKAGE_NAME=bomb\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=bomb\n";
    zstd_tar(|b| b.append(&file_header("./usr/src/bomb-1/dkms.conf", conf.len() as u64)?, &conf[..]))
}

/// data.tar.zst holding one file of `unpacked` zero bytes (a few KB per GiB).
pub fn data_bomb(path: &Path, unpacked: u64) -> io::Result<()> {
    let data = zstd_tar(|b| b.append(&file_header("./usr/src/bomb-1/zeros", unpacked)?, io::repeat(0).take(unpacked)))?;
    write_deb(path, &[("control.tar.zst", &control_tar(CONTROL)?), ("data.tar.zst", &data)])
}

/// data.tar.zst of `files` files of `each` zero bytes (`unpacked` spread thin).
pub fn many_files(path: &Path, files: u64, each: u64) -> io::Result<()> {
    let data = zstd_tar(|b| {
        for i in 0..files {
            b.append(&file_header(&format!("./usr/src/bomb-1/{i:x}"), each)?, io::repeat(0).take(each))?;
        }
        Ok(())
    })?;
    write_deb(path, &[("control.tar.zst", &control_tar(CONTROL)?), ("data.tar.zst", &data)])
}

/// A control file whose Description is `field` bytes long.
pub fn control_field_bomb(path: &Path, field: u64) -> io::Result<()> {
    let head = b"Package: bomb-dkms\nVersion: 1\nArchitecture: all\nDescription: ";
    let size = head.len() as u64 + field + 1;
    let body = head.chain(io::repeat(b'a').take(field)).chain(&b"\n"[..]);
    let control = zstd_tar(|b| b.append(&file_header("./control", size)?, body))?;
    write_deb(path, &[("control.tar.zst", &control), ("data.tar.zst", &dkms_data()?)])
}

/// A data.tar member whose ar header claims `claimed` bytes (at most
/// 9,999,999,999: ten digits); one tar header follows.
pub fn ar_size_lie(path: &Path, claimed: u64) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    out.write_all(b"!<arch>\n")?;
    ar_header(&mut out, "debian-binary", 4)?;
    out.write_all(b"2.0\n")?;
    let control = control_tar(CONTROL)?;
    ar_header(&mut out, "control.tar.zst", control.len() as u64)?;
    out.write_all(&control)?;
    if control.len() % 2 == 1 {
        out.write_all(b"\n")?;
    }
    ar_header(&mut out, "data.tar", claimed)?;
    // A tar header whose file never comes: the member ends with the .deb.
    out.write_all(file_header("./usr/src/bomb-1/x", 100 << 20)?.as_bytes())?;
    out.flush()
}

/// A GNU long-name record of `len` bytes before one small file (a deep path).
pub fn long_name(path: &Path, len: u64) -> io::Result<()> {
    let data = zstd_tar(|b| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.as_gnu_mut().expect("gnu").name[..13].copy_from_slice(b"././@LongLink");
        h.set_size(len + 1);
        h.set_mode(0o644);
        h.set_cksum();
        let name = b"./usr/src/".chain(io::repeat(b'd').take(len - 10)).chain(&[0u8][..]);
        b.append(&h, name)?;
        b.append(&file_header("./short", 1)?, &b"x"[..])
    })?;
    write_deb(path, &[("control.tar.zst", &control_tar(CONTROL)?), ("data.tar.zst", &data)])
}

/// A pax extended header with one record whose value is `len` bytes.
pub fn pax_bomb(path: &Path, len: u64) -> io::Result<()> {
    let data = zstd_tar(|b| {
        let value_len = len;
        // "<n> comment=<value>\n" where <n> counts the whole record, itself included.
        let rest = " comment=".len() as u64 + value_len + 1;
        let mut n = rest + 1;
        while n != rest + n.to_string().len() as u64 {
            n = rest + n.to_string().len() as u64;
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_path("./PaxHeaders/x")?;
        h.set_size(n);
        h.set_mode(0o644);
        h.set_cksum();
        let record = io::Cursor::new(format!("{n} comment=")).chain(io::repeat(b'v').take(value_len)).chain(&b"\n"[..]);
        b.append(&h, record)?;
        b.append(&file_header("./x", 1)?, &b"x"[..])
    })?;
    write_deb(path, &[("control.tar.zst", &control_tar(CONTROL)?), ("data.tar.zst", &data)])
}

/// A symlink whose target is `len` bytes (via a GNU long-link record).
pub fn long_link(path: &Path, len: u64) -> io::Result<()> {
    let data = zstd_tar(|b| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongLink);
        h.as_gnu_mut().expect("gnu").name[..13].copy_from_slice(b"././@LongLink");
        h.set_size(len + 1);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, io::repeat(b'l').take(len).chain(&[0u8][..]))?;
        let mut s = tar::Header::new_gnu();
        s.set_path("./link")?;
        s.set_entry_type(tar::EntryType::Symlink);
        s.set_size(0);
        s.set_mode(0o777);
        s.set_cksum();
        b.append(&s, io::empty())
    })?;
    write_deb(path, &[("control.tar.zst", &control_tar(CONTROL)?), ("data.tar.zst", &data)])
}

/// A well-formed small `-dkms` package (the fuzz seed and the control case).
pub fn plain(path: &Path) -> io::Result<()> {
    write_deb(path, &[("control.tar.zst", &control_tar(CONTROL)?), ("data.tar.zst", &dkms_data()?)])
}
