use std::os::unix::fs::symlink;

use super::*;
use crate::apt::archive::tests::pkg;
use crate::store::Store;
use std::os::unix::fs::MetadataExt;

fn sample_lock() -> Lock {
    let mut make = pkg("make", "4.3-4.1", "", "");
    make.sha256 = "ab".repeat(32);
    Lock {
        recipe: "bookworm-amd64".into(),
        kernel: "6.1.0-56-amd64".into(),
        architecture: "amd64".into(),
        host_architecture: None,
        packages: vec![make],
        links: Default::default(),
        headers_version: "6.1.192-2".into(),
        extras: Vec::new(),
        mirrors: Vec::new(),
        suites: Vec::new(),
    }
}

fn file(root: &Path, rel: &str, content: &[u8], mode: u32) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, content).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A small root: directories, files (two with the same content and mode,
/// one with the same content and another mode), a symlink, an empty dir.
/// `reversed` creates them in another order; `mtime` differs per tree.
fn sample_tree(root: &Path, reversed: bool, mtime: i64) {
    let mut files: Vec<(&str, &[u8], u32)> = vec![
        ("usr/bin/tool", b"#!/bin/sh\n", 0o555),
        ("usr/lib/a.h", b"same", 0o444),
        ("usr/lib/b.h", b"same", 0o444),
        ("usr/lib/c.h", b"same", 0o555),
        ("etc/passwd", b"root:x:0:0::/:/bin/sh\n", 0o444),
    ];
    if reversed {
        files.reverse();
    }
    for (rel, content, mode) in files {
        file(root, rel, content, mode);
    }
    fs::create_dir_all(root.join("tmp")).unwrap();
    symlink("usr/lib", root.join("lib")).unwrap();
    for entry in walkdir::WalkDir::new(root).into_iter().map(Result::unwrap) {
        let t = filetime::FileTime::from_unix_time(mtime, 0);
        filetime::set_symlink_file_times(entry.path(), t, t).unwrap();
    }
}

fn tar_bytes(tree: &Path) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    write_tar(&mut tar, tree, b"lock text\n").unwrap();
    tar.into_inner().unwrap()
}

#[test]
fn the_tar_depends_on_the_tree_only() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    sample_tree(a.path(), false, 1_000_000);
    sample_tree(&b.path().join("elsewhere"), true, 2_000_000_000);
    let bytes = tar_bytes(a.path());
    assert_eq!(bytes, tar_bytes(&b.path().join("elsewhere")), "same tree, other path, order and times");

    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        assert_eq!((h.uid().unwrap(), h.gid().unwrap(), h.mtime().unwrap()), (0, 0, LAYER_MTIME));
        let link = entry.link_name().unwrap().map(|l| l.display().to_string());
        seen.push((entry.path().unwrap().display().to_string(), h.entry_type(), h.mode().unwrap(), link));
    }
    let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        names,
        [
            ".hermod/",
            ".hermod/lock",
            "etc/",
            "etc/passwd",
            "lib",
            "tmp/",
            "usr/",
            "usr/bin/",
            "usr/bin/tool",
            "usr/lib/",
            "usr/lib/a.h",
            "usr/lib/b.h",
            "usr/lib/c.h"
        ]
    );
    let b_h = seen.iter().find(|s| s.0 == "usr/lib/b.h").unwrap();
    assert_eq!((b_h.1, b_h.2, b_h.3.as_deref()), (tar::EntryType::Link, 0o444, Some("usr/lib/a.h")));
    let c_h = seen.iter().find(|s| s.0 == "usr/lib/c.h").unwrap();
    assert_eq!((c_h.1, c_h.2), (tar::EntryType::Regular, 0o555), "another mode is another file");
    let lib = seen.iter().find(|s| s.0 == "lib").unwrap();
    assert_eq!((lib.1, lib.3.as_deref()), (tar::EntryType::Symlink, Some("usr/lib")));
}

#[test]
fn json_keys_are_sorted_whatever_the_hashmap_order() {
    let many: HashMap<String, String> = (0..20).map(|i| (format!("k{i:02}"), i.to_string())).collect();
    let text = String::from_utf8(canonical_json(&many)).unwrap();
    let keys: Vec<usize> = (0..20).map(|i| text.find(&format!("\"k{i:02}\"")).unwrap()).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{text}");
}

fn store(dir: &Path) -> Store {
    Store::open(&dir.join("store"), Some(&dir.join("packages"))).unwrap()
}

/// (relative path, kind, mode, content or target) of every entry.
fn listing(tree: &Path) -> Vec<(String, String, u32, Vec<u8>)> {
    walkdir::WalkDir::new(tree)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(tree).unwrap().display().to_string();
            let meta = e.path().symlink_metadata().unwrap();
            let (kind, data) = if meta.is_dir() {
                ("dir", Vec::new())
            } else if meta.file_type().is_symlink() {
                ("link", fs::read_link(e.path()).unwrap().into_os_string().into_encoded_bytes())
            } else {
                ("file", fs::read(e.path()).unwrap())
            };
            (rel, kind.to_owned(), meta.mode() & 0o7777, data)
        })
        .collect()
}

#[test]
fn export_import_export_gives_the_same_root_and_digest() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    sample_tree(&tree, false, 1_000_000);
    let lock = sample_lock();
    let one = export(&tree, &lock, &dir.path().join("one")).unwrap();
    let two = export(&tree, &lock, &dir.path().join("two")).unwrap();
    assert_eq!(one.manifest_digest, two.manifest_digest);
    assert!(matches!(export(&tree, &lock, &dir.path().join("one")), Err(OciImageError::NotEmpty { .. })));

    let store = store(dir.path());
    let imported = import(&store, &dir.path().join("one")).unwrap();
    assert!(imported.created);
    assert_eq!((imported.hash.as_str(), imported.kernel.as_str()), (lock.hash().as_str(), "6.1.0-56-amd64"));
    assert_eq!(imported.tree, store.rootfs_dir().join(lock.hash()).join("tree"));
    assert_eq!(fs::read_to_string(store.rootfs_dir().join(lock.hash()).join("lock")).unwrap(), lock.text());
    assert_eq!(listing(&imported.tree), listing(&tree));
    // Every file is a link into the file store, equal content and mode sharing one blob.
    let ino = |p: &str| fs::metadata(imported.tree.join(p)).unwrap().ino();
    assert_eq!(ino("usr/lib/a.h"), ino("usr/lib/b.h"));
    assert_ne!(ino("usr/lib/a.h"), ino("usr/lib/c.h"));
    assert!(fs::metadata(imported.tree.join("usr/lib/a.h")).unwrap().nlink() >= 3);
    let again = export(&imported.tree, &lock, &dir.path().join("three")).unwrap();
    assert_eq!(again.manifest_digest, one.manifest_digest, "the imported root exports to the same image");
    assert!(!import(&store, &dir.path().join("two")).unwrap().created, "already there");
}

#[test]
fn a_flipped_byte_or_a_short_blob_is_refused_before_use() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    sample_tree(&tree, false, 1_000_000);
    let lock = sample_lock();
    let out = dir.path().join("image");
    let exported = export(&tree, &lock, &out).unwrap();
    let layer = out.join("blobs/sha256").join(exported.layer_digest.trim_start_matches("sha256:"));
    let good = fs::read(&layer).unwrap();
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0x01;
    fs::write(&layer, &bad).unwrap();
    let store = store(dir.path());
    let err = import(&store, &out).unwrap_err();
    assert!(matches!(&err, RootfsError::OciImage(e) if matches!(**e, OciImageError::Digest { .. })), "{err}");
    assert!(err.to_string().contains("tampered"), "{err}");
    fs::write(&layer, &good[..good.len() - 1]).unwrap();
    let err = import(&store, &out).unwrap_err();
    assert!(matches!(&err, RootfsError::OciImage(e) if matches!(**e, OciImageError::Size { .. })), "{err}");
    assert!(!store.rootfs_dir().join(lock.hash()).exists());
}

/// A layout around a hand-made (uncompressed) tar.
fn layout_of(dir: &Path, tar: &[u8], lock: &Lock) -> PathBuf {
    let layout = dir.join("handmade");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let compressed = zstd::encode_all(tar, 3).unwrap();
    let (hex, size) = write_blob(&blobs, &compressed).unwrap();
    write_metadata(&layout, lock, &hex, size, &hex::encode(Sha256::digest(tar))).unwrap();
    layout
}

fn raw_entry(tar: &mut tar::Builder<Vec<u8>>, name: &[u8], kind: tar::EntryType, mode: u32, data: &[u8]) {
    let mut h = header(kind, mode, data.len() as u64);
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_cksum();
    tar.append(&h, data).unwrap();
}

#[test]
fn a_layer_path_with_dotdot_is_refused_and_nothing_appears() {
    let dir = tempfile::tempdir().unwrap();
    let lock = sample_lock();
    let text = lock.file_text();
    let mut tar = tar::Builder::new(Vec::new());
    raw_entry(&mut tar, b".hermod/lock", tar::EntryType::Regular, 0o444, text.as_bytes());
    raw_entry(&mut tar, b"usr/../../evil", tar::EntryType::Regular, 0o644, b"x");
    let layout = layout_of(dir.path(), &tar.into_inner().unwrap(), &lock);
    let store = store(dir.path());
    let err = import(&store, &layout).unwrap_err();
    assert!(err.to_string().contains("unsafe path") && err.to_string().contains(".."), "{err}");
    assert!(!store.rootfs_dir().join(lock.hash()).exists());
    assert!(!dir.path().join("evil").exists() && !store.root().join("evil").exists());
}

#[test]
fn setuid_bits_are_dropped_and_symlinked_parents_stay_inside() {
    let dir = tempfile::tempdir().unwrap();
    let lock = sample_lock();
    let text = lock.file_text();
    let mut tar = tar::Builder::new(Vec::new());
    raw_entry(&mut tar, b".hermod/lock", tar::EntryType::Regular, 0o444, text.as_bytes());
    raw_entry(&mut tar, b"/usr/bin/su", tar::EntryType::Regular, 0o4755, b"su");
    let mut link = header(tar::EntryType::Symlink, 0o777, 0);
    link.set_link_name("/../../../..").unwrap();
    tar.append_data(&mut link, "up", io::empty()).unwrap();
    raw_entry(&mut tar, b"up/escaped", tar::EntryType::Regular, 0o644, b"inside");
    let layout = layout_of(dir.path(), &tar.into_inner().unwrap(), &lock);
    let store = store(dir.path());
    let imported = import(&store, &layout).unwrap();
    assert_eq!(fs::metadata(imported.tree.join("usr/bin/su")).unwrap().mode() & 0o7777, 0o555);
    assert_eq!(fs::read(imported.tree.join("escaped")).unwrap(), b"inside", "`..` above the root stays at the root");
}

#[test]
fn a_label_that_is_not_the_lock_hash_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lock = sample_lock();
    let mut other = lock.clone();
    other.kernel = "6.1.0-55-amd64".into();
    let mut tar = tar::Builder::new(Vec::new());
    raw_entry(&mut tar, b".hermod/lock", tar::EntryType::Regular, 0o444, other.file_text().as_bytes());
    let layout = layout_of(dir.path(), &tar.into_inner().unwrap(), &lock);
    let store = store(dir.path());
    let err = import(&store, &layout).unwrap_err();
    assert!(matches!(&err, RootfsError::OciImage(e) if matches!(**e, OciImageError::LockHash { .. })), "{err}");
    assert!(!store.rootfs_dir().join(lock.hash()).exists());
}
