//! Tests for [`super`], with .deb files built in memory.

use super::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

pub(crate) enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a [u8]),
    Sym(&'a str, &'a str),
    Hard(&'a str, &'a str),
}

/// A tar stream; names are written raw so hostile paths (`..`) can be made.
pub(crate) fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, data): (&str, &[u8]) = match e {
            E::Dir(n, m) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*m);
                (n, b"")
            }
            E::File(n, m, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*m);
                (n, d)
            }
            E::Sym(n, t) | E::Hard(n, t) => {
                h.set_entry_type(if matches!(e, E::Sym(..)) { tar::EntryType::Symlink } else { tar::EntryType::Link });
                h.set_mode(0o777);
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
                (n, b"")
            }
        };
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub(crate) fn deb_of(dir: &Path, version: &[u8], data_name: &str, data: Vec<u8>) -> PathBuf {
    let control =
        tar_of(&[E::Dir("./", 0o755), E::File("./control", 0o644, b"Package: hello\nVersion: 1.0\nDepends: libc6\n")]);
    let mut ar = ar::Builder::new(Vec::new());
    for (name, body) in [("debian-binary", version.to_vec()), ("control.tar.gz", gz(&control)), (data_name, data)] {
        ar.append(&ar::Header::new(name.as_bytes().to_vec(), body.len() as u64), body.as_slice()).unwrap();
    }
    let path = dir.join("hello_1.0_amd64.deb");
    std::fs::write(&path, ar.into_inner().unwrap()).unwrap();
    path
}

pub(crate) fn sample() -> Vec<u8> {
    tar_of(&[
        E::Dir("./", 0o755),
        E::Dir("./usr/", 0o755),
        E::Dir("./usr/bin/", 0o555),
        E::File("./usr/bin/hello", 0o4755, b"#!/bin/sh\necho hi\n"),
        E::Hard("./usr/bin/hello2", "./usr/bin/hello"),
        E::Sym("./usr/bin/hi", "hello"),
        E::Sym("./usr/lib64", "/usr/lib"),
        E::File("./usr/lib64/libx.so", 0o644, b"lib"),
    ])
}

#[test]
fn unpacks_files_links_and_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("root");
    for (name, data) in [("data.tar.gz", gz(&sample())), ("data.tar.zst", zstd::encode_all(&sample()[..], 1).unwrap())]
    {
        let deb = deb_of(tmp.path(), b"2.0\n", name, data);
        assert_eq!(unpack_data(&deb, &dest).unwrap(), 7);
        let hello = std::fs::metadata(dest.join("usr/bin/hello")).unwrap();
        assert_eq!(hello.permissions().mode() & 0o7777, 0o755, "setuid dropped");
        assert_eq!(hello.mtime(), 1_700_000_000);
        assert_eq!(std::fs::metadata(dest.join("usr/bin")).unwrap().permissions().mode() & 0o777, 0o555);
        assert_eq!(std::fs::metadata(dest.join("usr/bin/hello2")).unwrap().ino(), hello.ino(), "hard link");
        assert_eq!(std::fs::read_link(dest.join("usr/bin/hi")).unwrap(), Path::new("hello"));
        // The absolute symlink was followed inside dest, chroot-style.
        assert_eq!(std::fs::read_link(dest.join("usr/lib64")).unwrap(), Path::new("/usr/lib"));
        assert_eq!(std::fs::read(dest.join("usr/lib/libx.so")).unwrap(), b"lib");
        assert_eq!(control(&deb).unwrap().get("Depends"), Some("libc6"));
    }
    // Let the tempdir clean up the read-only directory.
    std::fs::set_permissions(dest.join("usr/bin"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn rejects_escapes() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("root");
    let deb = deb_of(tmp.path(), b"2.0\n", "data.tar", tar_of(&[E::File("./../evil", 0o644, b"x")]));
    let e = unpack_data(&deb, &dest).unwrap_err();
    assert!(matches!(e, DebFileError::UnsafePath { .. }), "{e}");
    assert!(!tmp.path().join("evil").exists());
    let deb = deb_of(tmp.path(), b"2.0\n", "data.tar", tar_of(&[E::Hard("./x", "../../etc/passwd")]));
    assert!(matches!(unpack_data(&deb, &dest), Err(DebFileError::UnsafePath { .. })));
    let deb = deb_of(tmp.path(), b"2.0\n", "data.tar", tar_of(&[E::Hard("./x", "/etc/passwd")]));
    assert!(
        matches!(unpack_data(&deb, &dest), Err(DebFileError::UnsafePath { .. })),
        "absolute hard link target must resolve inside dest"
    );
    // A symlink pointing outside, then a file written "through" it: stays inside.
    let deb = deb_of(
        tmp.path(),
        b"2.0\n",
        "data.tar",
        tar_of(&[
            E::Sym("./up", "../../.."),
            E::File("./up/escaped", 0o644, b"x"),
            E::Sym("./f", "/tmp/hermod-outside"),
            E::File("./f", 0o644, b"y"),
        ]),
    );
    unpack_data(&deb, &dest).unwrap();
    assert!(dest.join("escaped").exists() && !tmp.path().join("escaped").exists());
    assert!(!Path::new("/tmp/hermod-outside").exists(), "file replaced the symlink, not written through it");
    assert_eq!(std::fs::read(dest.join("f")).unwrap(), b"y");
}

#[test]
fn rejects_non_debs() {
    let tmp = tempfile::tempdir().unwrap();
    let deb = deb_of(tmp.path(), b"3.0\n", "data.tar", tar_of(&[]));
    assert!(unpack_data(&deb, tmp.path()).unwrap_err().to_string().contains("expected \"2.0\""));
    let deb = deb_of(tmp.path(), b"2.0\n", "data.tar.bz2", vec![]);
    assert!(matches!(unpack_data(&deb, tmp.path()), Err(DebFileError::Compression { .. })));
    let junk = tmp.path().join("junk.deb");
    std::fs::write(&junk, b"hello").unwrap();
    assert!(matches!(unpack_data(&junk, tmp.path()), Err(DebFileError::NotADeb { .. })));
    assert!(matches!(unpack_data(&tmp.path().join("none.deb"), tmp.path()), Err(DebFileError::Io { .. })));
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
