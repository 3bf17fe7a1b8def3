//! Tests for [`super`] and the tree assembly, with .deb files built in memory.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;
use crate::apt::debfile::tests::{deb_of, sample, tar_of, E};
use crate::rootfs::tree::Assembly;

fn setup() -> (tempfile::TempDir, Cas) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store"), None).unwrap();
    let cas = Cas::open(&store).unwrap();
    (dir, cas)
}

/// A .deb with `data` in its own directory, and its package entry.
fn deb(dir: &Path, name: &str, data: Vec<u8>) -> (PathBuf, Package) {
    let sub = dir.join(name);
    fs::create_dir_all(&sub).unwrap();
    let path = deb_of(&sub, b"2.0\n", "data.tar", data);
    let mut pkg = crate::apt::archive::tests::pkg(name, "1.0", "", "");
    pkg.sha256 = crate::apt::debfile::tests::sha256_hex(&fs::read(&path).unwrap());
    (path, pkg)
}

fn file_blob<'m>(m: &'m Manifest, path: &str) -> &'m str {
    m.entries
        .iter()
        .find_map(|e| match e {
            Entry::File { path: p, blob, .. } if p == path => Some(blob.as_str()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{path} in {:?}", m.entries))
}

#[test]
fn a_package_is_unpacked_into_read_only_blobs_once() {
    let (dir, cas) = setup();
    let (path, pkg) = deb(dir.path(), "hello", sample());
    let m = cas.ensure_unpacked(&path, &pkg).unwrap();
    assert_eq!(m.entries.len(), 7, "{:?}", m.entries);
    assert_eq!(m.entries[0], Entry::Dir { path: "usr".into(), mode: 0o755, mtime: 1_700_000_000 });
    let hello = file_blob(&m, "usr/bin/hello");
    assert_eq!(hello, file_blob(&m, "usr/bin/hello2"), "a hard link is the same blob");
    assert!(hello.ends_with("-555"), "setuid and write bits dropped: {hello}");
    let meta = fs::metadata(cas.blob_path(hello)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o555);
    assert_eq!(meta.mtime() as u64, BLOB_MTIME);
    assert_eq!(fs::read(cas.blob_path(hello)).unwrap(), b"#!/bin/sh\necho hi\n");
    assert!(m.entries.contains(&Entry::Symlink {
        path: "usr/lib64".into(),
        target: "/usr/lib".into(),
        mtime: 1_700_000_000
    }));
    assert_eq!(cas.check(hello), BlobState::Good);
    assert_eq!(cas.manifest(&pkg).unwrap().entries, m.entries, "the manifest is kept");

    // The same content in another package is the same blob; another mode is another.
    let (path2, pkg2) = deb(
        dir.path(),
        "other",
        tar_of(&[
            E::File("./opt/hi", 0o755, b"#!/bin/sh\necho hi\n"),
            E::File("./opt/ro", 0o644, b"#!/bin/sh\necho hi\n"),
        ]),
    );
    let m2 = cas.ensure_unpacked(&path2, &pkg2).unwrap();
    assert_eq!(file_blob(&m2, "opt/hi"), hello);
    assert_eq!(file_blob(&m2, "opt/ro"), &format!("{}-444", &hello[..64]));
    let mut blobs = 0;
    crate::rootfs::cas::for_each_blob(cas.files_dir(), |_, _| blobs += 1).unwrap();
    assert_eq!(blobs, 3, "hello, libx.so, and hello as 0444");
    assert_eq!(cas.manifests().unwrap().len(), 2);
}

#[test]
fn a_corrupt_blob_is_detected_quarantined_and_restored() {
    let (dir, cas) = setup();
    let (path, pkg) = deb(dir.path(), "hello", sample());
    let m = cas.ensure_unpacked(&path, &pkg).unwrap();
    let blob = file_blob(&m, "usr/lib64/libx.so").to_owned();
    let on_disk = cas.blob_path(&blob);
    // Overwritten in place (as root, or after chmod u+w): content differs.
    fs::set_permissions(&on_disk, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&on_disk, b"LIB").unwrap();
    assert_eq!(cas.check(&blob), BlobState::Corrupt, "mode and content");
    fs::set_permissions(&on_disk, fs::Permissions::from_mode(0o444)).unwrap();
    assert_eq!(cas.check(&blob), BlobState::Corrupt, "content");
    fs::set_permissions(&on_disk, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&on_disk, b"lib").unwrap();
    assert_eq!(cas.check(&blob), BlobState::Corrupt, "mode only");
    assert_eq!(cas.check("not-a-blob"), BlobState::Corrupt);

    let moved = cas.quarantine(&blob).unwrap().expect("moved");
    assert!(moved.starts_with(cas.quarantine_dir()));
    assert_eq!(cas.check(&blob), BlobState::Missing);
    assert_eq!(cas.quarantine(&blob).unwrap(), None);
    // The manifest is still there, so only an explicit unpack restores.
    cas.ensure_unpacked(&path, &pkg).unwrap();
    assert_eq!(cas.check(&blob), BlobState::Missing);
    cas.unpack(&path, &pkg).unwrap();
    assert_eq!(cas.check(&blob), BlobState::Good);
    assert_eq!(fs::read(cas.blob_path(&blob)).unwrap(), b"lib");
}

#[test]
fn blob_names_carry_hash_and_mode() {
    let name = blob_name(&blake3::hash(b"x"), 0o4755);
    assert!(name.ends_with("-555"));
    assert_eq!(parse_blob_name(&name).map(|(_, m)| m), Some(0o555));
    for bad in ["", "abc-555", &name.replace("-555", "-755"), &name.replace("-555", "-55"), &name.to_uppercase()] {
        assert_eq!(parse_blob_name(bad), None, "{bad}");
    }
}

#[test]
fn a_tree_is_hard_links_laid_out_as_a_chroot_sees_them() {
    let (dir, cas) = setup();
    let (path, pkg) = deb(dir.path(), "hello", sample());
    let m = cas.ensure_unpacked(&path, &pkg).unwrap();
    // A second package that tries to leave the tree through symlinks.
    let (path2, pkg2) = deb(
        dir.path(),
        "evil",
        tar_of(&[
            E::Sym("./up", "../../.."),
            E::File("./up/escaped", 0o644, b"x"),
            E::Sym("./f", "/tmp/hermod-cas-outside"),
            E::File("./f", 0o644, b"y"),
        ]),
    );
    let m2 = cas.ensure_unpacked(&path2, &pkg2).unwrap();
    let tree = dir.path().join("tree");
    let mut assembly = Assembly::new(&cas, &tree).unwrap();
    assembly.add(&m).unwrap();
    assembly.add(&m2).unwrap();
    assembly.add_file("etc/passwd", b"root:x:0:0::/:/bin/sh\n", 0o644).unwrap();
    assembly.finish().unwrap();

    let hello = fs::metadata(tree.join("usr/bin/hello")).unwrap();
    let blob = fs::metadata(cas.blob_path(file_blob(&m, "usr/bin/hello"))).unwrap();
    assert_eq!((hello.dev(), hello.ino()), (blob.dev(), blob.ino()), "a hard link into the store");
    assert_eq!(fs::metadata(tree.join("usr/bin/hello2")).unwrap().ino(), blob.ino());
    assert_eq!(fs::read_link(tree.join("usr/bin/hi")).unwrap(), Path::new("hello"));
    // Written through the absolute symlink as the chroot resolves it.
    assert_eq!(fs::read(tree.join("usr/lib/libx.so")).unwrap(), b"lib");
    assert_eq!(fs::metadata(tree.join("usr/bin")).unwrap().permissions().mode() & 0o777, 0o555);
    assert_eq!(fs::metadata(tree.join("usr/bin")).unwrap().mtime(), 1_700_000_000);
    assert!(tree.join("escaped").exists() && !dir.path().join("escaped").exists());
    assert!(!Path::new("/tmp/hermod-cas-outside").exists(), "replaced the symlink, not written through it");
    assert_eq!(fs::read(tree.join("f")).unwrap(), b"y");
    let passwd = fs::metadata(tree.join("etc/passwd")).unwrap();
    assert_eq!(passwd.permissions().mode() & 0o777, 0o444);
    assert_eq!(passwd.nlink(), 2, "the store's link and the tree's");
    fs::set_permissions(tree.join("usr/bin"), fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_full_blob_spills_to_checked_copies() {
    let (dir, cas) = setup();
    let empty = cas.insert(b"", 0o644).unwrap();
    let links = dir.path().join("links");
    fs::create_dir(&links).unwrap();
    let links_dir = hermod_hostfs::Dir::open(&links).unwrap();
    let mut linker = Linker::new(&cas);
    // More links than ext4 allows one inode (65000).
    let n = 66_000;
    for i in 0..n {
        linker.link(&empty, &links_dir, i.to_string().as_ref()).unwrap();
    }
    let primary = fs::metadata(cas.blob_path(&empty)).unwrap().nlink();
    let spill = cas.blob_path(&format!("{empty}.1"));
    if primary > n {
        eprintln!("note: this file system took {n} links to one inode; no spill needed");
        assert!(!spill.exists());
        return;
    }
    let copy = fs::metadata(&spill).unwrap();
    assert_eq!(primary + copy.nlink(), n + 2, "every link landed on the blob or its copy");
    assert_eq!(copy.permissions().mode() & 0o7777, 0o444);
    assert_eq!(cas.check(&format!("{empty}.1")), BlobState::Good);
    // A damaged copy is not used again: a fresh linker replaces it.
    fs::set_permissions(&spill, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&spill, b"x").unwrap();
    Linker::new(&cas).link(&empty, &links_dir, "one-more".as_ref()).unwrap();
    assert_eq!(fs::read(links.join("one-more")).unwrap(), b"");
    assert_eq!(count_quarantined(&cas), 1);
}

fn count_quarantined(cas: &Cas) -> usize {
    fs::read_dir(cas.quarantine_dir()).unwrap().count()
}
