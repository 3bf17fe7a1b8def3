//! The build roots' file store: roots as hard links into one store of files,
//! warm materialization, corruption found by hash and repaired, kill -9 and
//! concurrent creators, gc. Each test has a store of its own.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// `hermod rootfs build --kernel K`: (lock hash, tree).
fn rootfs_build(store: &Path, kernel: &str) -> (String, PathBuf) {
    let out = run(store, &["rootfs", "build", "--kernel", kernel]);
    assert!(out.status.success(), "rootfs build {kernel}: {}", stderr(&out));
    parse_build_line(&stdout(&out))
}

fn parse_build_line(line: &str) -> (String, PathBuf) {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.len(), 3, "hash kernel tree: {line:?}");
    (words[0].to_owned(), PathBuf::from(words[2]))
}

/// Build hello for `kernel`; (sha256 of the .deb, cache status).
fn build_hello(store: &Path, kernel: &str) -> (String, String) {
    let out_dir = tempfile::tempdir().unwrap();
    let source = testdata("modules/hello");
    let out = run(
        store,
        &["build", source.to_str().unwrap(), "--kernel", kernel, "--out", out_dir.path().to_str().unwrap(), "--json"],
    );
    assert!(out.status.success(), "build hello for {kernel}: {}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let deb = PathBuf::from(report["deb"].as_str().unwrap());
    assert_eq!(report["sha256"].as_str().unwrap(), sha256(&deb));
    (sha256(&deb), report["cache"].as_str().unwrap().to_owned())
}

/// Forget built packages, so the next build compiles (in a root) again.
fn forget_outputs(store: &Path) {
    for entry in fs::read_dir(store.join("ac")).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }
}

fn inode(path: &Path) -> (u64, u64) {
    let m = fs::metadata(path).unwrap();
    (m.dev(), m.ino())
}

/// Where the store keeps the content of `path` (a file of a root).
fn blob_of(store: &Path, path: &Path) -> PathBuf {
    let mode = fs::metadata(path).unwrap().permissions().mode() & 0o555;
    let hash = blake3::hash(&fs::read(path).unwrap()).to_hex().to_string();
    store.join("files").join(&hash[..2]).join(format!("{hash}-{mode:03o}"))
}

fn count(dir: &Path, keep: impl Fn(&str) -> bool) -> usize {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && keep(&e.file_name().to_string_lossy()))
        .count()
}

/// Overwrite a file of a root in place, as a careless root (or `chmod u+w`) can.
fn corrupt(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(path, b"#!/bin/sh\nexit 1\n").unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o555)).unwrap();
}

/// Every directory under `rootfs/` is a complete root: `lock` (written last,
/// before the rename) and `tree/`. Nothing else but lock files.
fn assert_no_partial_root(store: &Path) {
    for entry in fs::read_dir(store.join("rootfs")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let lock = fs::read_to_string(path.join("lock")).unwrap_or_default();
            assert!(lock.lines().any(|l| l.starts_with("kernel ")), "{name}: a root without its lock file");
            assert!(path.join("tree/usr/bin/make").is_file(), "{name}: a root without its tree");
        } else {
            assert!(name.ends_with(".lock") || name.ends_with(".use"), "unexpected {name}");
        }
    }
}

#[test]
fn two_kernels_share_the_toolchain_and_a_warm_root_builds_the_same_deb() {
    let store = private_store("rootfs-share");
    let store = store.path();
    let (k1, k2) = (kernel(), second_kernel());
    let (deb, cache) = build_hello(store, &k1);
    assert_eq!(cache, "miss");
    let (h1, t1) = rootfs_build(store, &k1);
    let (h2, t2) = rootfs_build(store, &k2);
    assert_ne!(h1, h2);

    // One inode for the toolchain, in both roots and in the store; read-only.
    for tool in ["usr/bin/make", "usr/bin/x86_64-linux-gnu-gcc-12", "bin/bash"] {
        assert_eq!(inode(&t1.join(tool)), inode(&t2.join(tool)), "{tool}");
        assert_eq!(inode(&t1.join(tool)), inode(&blob_of(store, &t1.join(tool))), "{tool} is the store's file");
        assert_eq!(fs::metadata(t1.join(tool)).unwrap().permissions().mode() & 0o7777, 0o555, "{tool}");
    }
    assert!(t1.join(format!("usr/src/linux-headers-{k1}/.config")).is_file());
    assert!(!t2.join(format!("usr/src/linux-headers-{k1}")).exists());
    let release = |t: &Path, k: &str| t.join(format!("usr/src/linux-headers-{k}/include/generated/utsrelease.h"));
    assert_ne!(inode(&release(&t1, &k1)), inode(&release(&t2, &k2)));

    // list: both roots, most bytes shared, far less on disk than apparent.
    let list = run(store, &["rootfs", "list", "--json"]);
    assert!(list.status.success());
    let lines: Vec<serde_json::Value> = stdout(&list).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "two roots and the totals");
    for root in &lines[..2] {
        assert!(root["compiler"].as_str().unwrap().starts_with("gcc-"), "{root}");
        let (apparent, shared) = (root["apparent_bytes"].as_u64().unwrap(), root["shared_bytes"].as_u64().unwrap());
        assert!(shared > apparent / 2 && shared < apparent, "{root}");
    }
    let total = &lines[2]["total"];
    let (apparent, unique) = (total["apparent_bytes"].as_u64().unwrap(), total["unique_bytes"].as_u64().unwrap());
    eprintln!("two roots: {} MiB apparent, {} MiB unique", apparent >> 20, unique >> 20);
    assert!(unique < apparent * 6 / 10, "{total}");
    let table = stdout(&run(store, &["rootfs", "list"]));
    assert!(table.contains(&k1) && table.contains(&k2) && table.contains("total: 2 roots"), "{table}");

    // show: the headers hash differs, the toolchain hash does not.
    let show = |k: &str| -> Vec<String> {
        let out = stdout(&run(store, &["rootfs", "show", "--kernel", k]));
        ["lock ", "headers ", "toolchain "]
            .iter()
            .map(|f| {
                out.lines().find_map(|l| l.strip_prefix(f)).unwrap_or_else(|| panic!("{f} in {out}")).trim().into()
            })
            .collect()
    };
    let (s1, s2) = (show(&k1), show(&k2));
    assert_eq!((s1[0].as_str(), s2[0].as_str()), (h1.as_str(), h2.as_str()));
    assert_ne!(s1[1], s2[1], "headers hash");
    assert_eq!(s1[2], s2[2], "toolchain hash");

    // Warm: the root is gone, its packages are still unpacked in the store.
    let (blobs, manifests) =
        (count(&store.join("files"), |_| true), count(&store.join("unpacked"), |n| n.ends_with(".json")));
    fs::remove_dir_all(store.join("rootfs").join(&h1)).unwrap();
    let started = Instant::now();
    let (again, tree) = rootfs_build(store, &k1);
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("warm materialization of {k1}: {seconds:.2} s (whole command, debug build)");
    assert_eq!((again, tree), (h1, t1.clone()));
    assert_eq!(count(&store.join("files"), |_| true), blobs, "nothing unpacked again");
    assert_eq!(count(&store.join("unpacked"), |n| n.ends_with(".json")), manifests);
    assert!(seconds < 15.0, "warm materialization took {seconds:.2} s");
    forget_outputs(store);
    assert_eq!(build_hello(store, &k1), (deb, "miss".to_owned()), "the same bytes from the warm root");
}

#[test]
fn a_corrupt_store_file_is_found_by_hash_and_repaired_never_used() {
    let store = private_store("rootfs-corrupt");
    let store = store.path();
    let k = kernel();
    let (deb, _) = build_hello(store, &k);
    let (hash, tree) = rootfs_build(store, &k);
    let make = tree.join("usr/bin/make");
    let good = fs::read(&make).unwrap();

    // verify finds it, restores the store's file and re-links the root.
    corrupt(&make);
    let out = run(store, &["rootfs", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(report.contains("1 corrupt") && report.contains(&format!("relinked {}", make.display())), "{report}");
    assert_eq!(fs::read(&make).unwrap(), good);
    assert_eq!(inode(&make), inode(&blob_of(store, &make)));
    let again = stdout(&run(store, &["rootfs", "verify"]));
    assert!(again.contains("0 corrupt, 0 missing, restored; 0 paths in build roots re-linked; 0 foreign"), "{again}");

    // A new root made from a corrupt store: found while linking, repaired,
    // and the package built in it is the same as before.
    corrupt(&make);
    fs::remove_dir_all(store.join("rootfs").join(&hash)).unwrap();
    forget_outputs(store);
    assert_eq!(build_hello(store, &k), (deb, "miss".to_owned()));
    assert_eq!(fs::read(&make).unwrap(), good, "the new root links the restored file");
    assert!(count(&store.join("quarantine"), |_| true) >= 1);
}

#[test]
fn kill_9_during_materialization_leaves_nothing_half_made() {
    let store = private_store("rootfs-kill");
    let store = store.path();
    let k = kernel();
    let root_dir = |store: &Path| store.join("rootfs");
    // Cold (downloads verified from the package cache, unpacking), then warm
    // (assembling the tree only): killed at different moments.
    // Returns whether the kill left a staging tree (it hit the assembly).
    let kill_at = |store: &Path, millis: u64| -> bool {
        let mut child = spawn(store, &["rootfs", "build", "--kernel", &k]);
        std::thread::sleep(Duration::from_millis(millis));
        let _ = child.kill(); // SIGKILL; the child may have finished already
        let status = child.wait().unwrap();
        let staging = list(&store.join("tmp")).iter().any(|n| n.starts_with("rootfs-"));
        eprintln!("killed after {millis} ms: {status:?}, staging left: {staging}");
        assert_no_partial_root(store);
        staging
    };
    for millis in [300, 1500, 4000, 8000] {
        kill_at(store, millis);
    }
    let (hash, _) = rootfs_build(store, &k);
    assert_no_partial_root(store);
    // Warm: time a whole run, then kill at fractions of it.
    remove_root(store, &hash);
    let started = Instant::now();
    rootfs_build(store, &k);
    let whole = started.elapsed().as_millis() as u64;
    let mut hit_assembly = false;
    for fraction in [2, 4, 6, 8] {
        remove_root(store, &hash);
        hit_assembly |= kill_at(store, whole * fraction / 10);
    }
    assert!(hit_assembly, "no kill landed while the tree was being assembled (a run takes {whole} ms)");
    remove_root(store, &hash);
    let (again, tree) = rootfs_build(store, &k);
    assert_eq!(again, hash);
    assert!(tree.join("usr/bin/make").is_file());
    let staging: Vec<String> = list(&store.join("tmp")).into_iter().filter(|n| n.starts_with("rootfs-")).collect();
    assert!(staging.is_empty(), "the creator removes its killed predecessors' staging: {staging:?}");
    assert_eq!(list(&root_dir(store)).iter().filter(|n| n.len() == 64).count(), 1);
    // No store file was left half-written under its final name.
    let verify = stdout(&run(store, &["rootfs", "verify"]));
    assert!(verify.contains("0 corrupt, 0 missing"), "{verify}");
}

fn remove_root(store: &Path, hash: &str) {
    let dir = store.join("rootfs").join(hash);
    if dir.exists() {
        fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn two_processes_that_need_one_root_make_it_once() {
    let store = private_store("rootfs-race");
    let store = store.path();
    let k = kernel();
    let children: Vec<_> = (0..2).map(|_| spawn(store, &["rootfs", "build", "--kernel", &k])).collect();
    let outputs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for out in &outputs {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(outputs[0].stdout, outputs[1].stdout, "both name the same root");
    let (hash, _) = parse_build_line(&String::from_utf8_lossy(&outputs[0].stdout));
    let roots: Vec<String> = list(&store.join("rootfs")).into_iter().filter(|n| !n.contains('.')).collect();
    assert_eq!(roots, [hash]);
    let tmp = list(&store.join("tmp"));
    assert!(tmp.iter().all(|n| !n.starts_with("rootfs-")), "staging left: {tmp:?}");
}

#[test]
fn gc_removes_unused_roots_and_their_files_but_keeps_roots_in_use_and_shared_files() {
    let store = private_store("rootfs-gc");
    let store = store.path();
    let (k1, k2) = (kernel(), second_kernel());
    let (h1, t1) = rootfs_build(store, &k1);
    let (h2, t2) = rootfs_build(store, &k2);
    let only_k2 = blob_of(store, &t2.join(format!("usr/src/linux-headers-{k2}/include/generated/utsrelease.h")));
    let shared = blob_of(store, &t1.join("usr/bin/make"));
    assert!(only_k2.is_file() && shared.is_file());

    // A build holds k1's root (as `hermod build` does while it runs).
    let in_use = fs::File::open(store.join("rootfs").join(format!("{h1}.use"))).unwrap();
    let in_use = nix::fcntl::Flock::lock(in_use, nix::fcntl::FlockArg::LockShared).unwrap();
    let dry = run(store, &["rootfs", "gc", "--older-than", "0", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let report = stdout(&dry);
    assert!(report.contains(&format!("would remove {k2} {}", &h2[..16])), "{report}");
    assert!(report.contains(&format!("in use, would keep {k1} {}", &h1[..16])), "{report}");
    assert!(t2.is_dir() && only_k2.is_file(), "a dry run removes nothing");
    let out = run(store, &["rootfs", "gc", "--older-than", "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(report.contains(&format!("removed {k2} {}", &h2[..16])), "{report}");
    assert!(report.contains(&format!("in use, kept {k1} {}", &h1[..16])), "{report}");
    assert!(t1.join("usr/bin/make").is_file() && !t2.exists());
    assert!(!store.join("rootfs").join(format!("{h2}.use")).exists());
    assert!(!only_k2.exists(), "a file only the removed root had is gone");
    assert!(shared.is_file(), "a file another root links stays");
    let manifests = list(&store.join("unpacked"));
    assert!(!manifests.iter().any(|m| m.starts_with(&format!("linux-headers-{k2}"))), "{manifests:?}");
    assert!(manifests.iter().any(|m| m.starts_with(&format!("linux-headers-{k1}"))), "{manifests:?}");
    let verify = stdout(&run(store, &["rootfs", "verify"]));
    assert!(verify.contains("0 corrupt, 0 missing") && verify.contains("0 foreign"), "{verify}");
    drop(in_use);

    // By default only roots unused for 30 days go.
    let report = stdout(&run(store, &["rootfs", "gc"]));
    assert!(report.contains("0 roots removed") && report.contains("1 kept"), "{report}");
    // A kernel named: its roots go now; then the store holds nothing.
    let report = stdout(&run(store, &["rootfs", "gc", "--kernel", &k1]));
    assert!(report.contains(&format!("removed {k1}")), "{report}");
    assert_eq!(count(&store.join("files"), |_| true), 0);
    assert_eq!(count(&store.join("unpacked"), |_| true), 0);
    assert_eq!(list(&store.join("rootfs")), Vec::<String>::new());
    let bad = run(store, &["rootfs", "gc", "--older-than", "soon"]);
    assert_eq!(bad.status.code(), Some(2), "a usage error");
}
