//! Tests for [`super`], with .deb files built in memory.

use super::*;
use crate::apt::stanza::StanzaError;
use crate::bounded::{InputLimits, Limit};
use std::fs::File;
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

/// Reads the data member of `deb` under `limits`, counting the content bytes
/// handed out: the error, and how much got through.
fn walk_counting(deb: &Path, limits: &InputLimits) -> (Result<(), DebFileError>, u64) {
    let mut seen = 0u64;
    let r = read_data_with(deb, File::open(deb).unwrap(), limits, |e: DataEntry<'_>| {
        if let EntryKind::File(content) = e.kind {
            seen +=
                io::copy(content, &mut io::sink()).map_err(|source| DebFileError::Io { deb: deb.into(), source })?;
        }
        Ok::<(), DebFileError>(())
    });
    (r, seen)
}

fn limit_of(e: &DebFileError) -> Option<Limit> {
    match e {
        DebFileError::Limit { exceeded, .. } => Some(exceeded.limit),
        DebFileError::Control(StanzaError::TooLong { exceeded, .. }) => Some(exceeded.limit),
        _ => None,
    }
}

#[test]
fn a_data_bomb_stops_at_the_unpacked_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let deb = tmp.path().join("bomb.deb");
    crate::bombs::data_bomb(&deb, 64 << 20).unwrap();
    assert!(std::fs::metadata(&deb).unwrap().len() < 64 << 10, "the bomb is small on disk");
    let limits = InputLimits { max_unpacked_size: 8 << 20, ..InputLimits::default() };
    let (r, seen) = walk_counting(&deb, &limits);
    let e = r.unwrap_err();
    assert_eq!(limit_of(&e), Some(Limit::UnpackedSize), "{e}");
    assert!(seen <= 8 << 20, "{seen} bytes got through");
    let text = e.to_string();
    assert!(text.contains("bomb.deb") && text.contains("data.tar.zst") && text.contains("max_unpacked_size"), "{text}");
    // The file-size limit refuses the entry from its header, before its bytes.
    let limits = InputLimits { max_file_size: 1 << 20, ..InputLimits::default() };
    let (r, seen) = walk_counting(&deb, &limits);
    assert_eq!(limit_of(&r.unwrap_err()), Some(Limit::FileSize));
    assert_eq!(seen, 0);
    // Under the defaults the same package is fine, and unpacks to disk.
    assert_eq!(walk_counting(&deb, &InputLimits::default()).1, 64 << 20);
}

#[test]
fn a_huge_control_field_is_refused_without_reading_it() {
    let tmp = tempfile::tempdir().unwrap();
    let deb = tmp.path().join("field.deb");
    crate::bombs::control_field_bomb(&deb, 1 << 30).unwrap();
    assert!(std::fs::metadata(&deb).unwrap().len() < 256 << 10);
    // Refused from its tar header: more than a file may hold.
    let e = control(&deb).unwrap_err();
    assert_eq!(limit_of(&e), Some(Limit::FileSize), "{e}");
    assert!(e.to_string().len() < 300, "{e}");
    // Smaller than a file may be, larger than a stanza: read up to the limit only.
    crate::bombs::control_field_bomb(&deb, 64 << 20).unwrap();
    let e = control(&deb).unwrap_err();
    assert_eq!(limit_of(&e), Some(Limit::StanzaSize), "{e}");
    assert!(e.to_string().contains("max_stanza_size") && e.to_string().len() < 300, "{e}");
    // A control.tar bigger than its own limit stops there too.
    let limits = InputLimits { max_control_size: 1 << 20, max_stanza_size: 128 << 20, ..InputLimits::default() };
    let e = control_text_with(&deb, File::open(&deb).unwrap(), &limits).unwrap_err();
    assert_eq!(limit_of(&e), Some(Limit::ControlSize), "{e}");
}

#[test]
fn an_ar_size_lie_allocates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let deb = tmp.path().join("lie.deb");
    crate::bombs::ar_size_lie(&deb, 9_999_999_999).unwrap();
    let e = unpack_data(&deb, &tmp.path().join("root")).unwrap_err();
    assert_eq!(limit_of(&e), Some(Limit::UnpackedSize), "{e}");
    assert!(e.to_string().contains("data.tar"), "{e}");
    // A claim under the limit but past the end of the file: truncated, not a crash.
    crate::bombs::ar_size_lie(&deb, 500_000_000).unwrap();
    let e = unpack_data(&deb, &tmp.path().join("root")).unwrap_err();
    assert!(matches!(e, DebFileError::Unpack { .. }), "{e}");
    assert_eq!(control(&deb).unwrap().get("Package"), Some("bomb-dkms"), "the members before it are fine");
}

#[test]
fn entry_count_and_name_lengths_are_limited() {
    let tmp = tempfile::tempdir().unwrap();
    let deb = tmp.path().join("many.deb");
    crate::bombs::many_files(&deb, 3000, 0).unwrap();
    let limits = InputLimits { max_entries: 1000, ..InputLimits::default() };
    let (r, _) = walk_counting(&deb, &limits);
    assert_eq!(limit_of(&r.unwrap_err()), Some(Limit::Entries));
    assert!(walk_counting(&deb, &InputLimits::default()).0.is_ok());
    for make in [crate::bombs::long_name, crate::bombs::long_link, crate::bombs::pax_bomb] {
        make(&deb, 64 << 20).unwrap();
        let (r, _) = walk_counting(&deb, &InputLimits::default());
        let e = r.unwrap_err();
        assert_eq!(limit_of(&e), Some(Limit::PathLength), "{e}");
        assert!(e.to_string().len() < 300, "{e}");
        // Within the limit, the long names are applied to the next entry.
        make(&deb, 3000).unwrap();
        let mut names = Vec::new();
        read_data_with(&deb, File::open(&deb).unwrap(), &InputLimits::default(), |e: DataEntry<'_>| {
            let link = match e.kind {
                EntryKind::Symlink(t) => t.as_os_str().len(),
                _ => 0,
            };
            names.push((e.rel.as_os_str().len(), link));
            Ok::<(), DebFileError>(())
        })
        .unwrap();
        assert!(names.iter().any(|&(n, l)| n >= 2990 || l == 3000) || names == [(1, 0)], "{names:?}");
    }
}

#[test]
fn a_plain_bomb_package_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let deb = tmp.path().join("plain.deb");
    crate::bombs::plain(&deb).unwrap();
    assert_eq!(control(&deb).unwrap().get("Package"), Some("bomb-dkms"));
    assert_eq!(unpack_data(&deb, &tmp.path().join("root")).unwrap(), 1);
}

/// A package's absolute symlink is followed inside `dest` only, as the
/// chroot will: a file "through" `out -> /<outside>` lands in
/// `dest/<outside>`, and the outside directory stays empty.
#[test]
fn paths_through_absolute_symlinks_stay_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("root");
    let abs = outside.path().to_str().unwrap();
    let deb = deb_of(
        tmp.path(),
        b"2.0\n",
        "data.tar",
        tar_of(&[
            E::Sym("./out", abs),
            E::File("./out/planted", 0o644, b"x"),
            E::Dir("./out/d/", 0o755),
            E::Sym("./loop", "loop"),
            E::File("./loop/x", 0o644, b"x"),
        ]),
    );
    let e = unpack_data(&deb, &dest).unwrap_err();
    assert!(e.to_string().contains("loop/x"), "a symlink loop is an error, not a walk: {e}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "nothing written outside");
    let inside = dest.join(abs.trim_start_matches('/'));
    assert_eq!(std::fs::read(inside.join("planted")).unwrap(), b"x");
    assert!(inside.join("d").is_dir());
    // A hard link to a symlink (here: to the outside) is refused.
    let deb = deb_of(
        tmp.path(),
        b"2.0\n",
        "data.tar",
        tar_of(&[E::File("./f", 0o644, b"x"), E::Sym("./f", abs), E::Hard("./h", "./f")]),
    );
    assert!(matches!(unpack_data(&deb, &dest), Err(DebFileError::UnsafePath { .. })));
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}
