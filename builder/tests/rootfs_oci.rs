//! `hermod rootfs export` / `import`: a build root as an OCI image layout,
//! with the real binary and real archive packages. The same root exports to
//! the same digest; imported on a machine-like store with no package cache and
//! no network, it is the root of the same lock and builds the same .deb; a
//! flipped byte in the layer is refused before anything appears.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// hermod against `store` with the package cache `cache`, offline (an empty
/// network namespace) if asked, and independent of /etc/hermod/config.toml.
fn hermod_in(store: &Path, cache: &Path, offline: bool, args: &[&str]) -> Output {
    let mut cmd = if offline {
        let mut c = Command::new("unshare");
        c.arg("--net").arg(hermod());
        c
    } else {
        Command::new(hermod())
    };
    cmd.args(args).args(["-q", "--config", "/dev/null"]).env("HERMOD_STORE", store).env("HERMOD_PACKAGE_CACHE", cache);
    let out = cmd.output().expect("hermod runs");
    eprintln!(
        "$ {}hermod {}\nstatus: {:?}\nstdout:\n{}\nstderr:\n{}",
        if offline { "unshare --net " } else { "" },
        args.join(" "),
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    out
}

fn ok(store: &Path, cache: &Path, offline: bool, args: &[&str]) -> String {
    let out = hermod_in(store, cache, offline, args);
    assert!(out.status.success(), "hermod {args:?} failed: {}", stderr(&out));
    stdout(&out)
}

/// The shared store's lock for the test kernel: (file, lock hash).
fn lock_file(dir: &Path) -> (PathBuf, String) {
    let path = dir.join("k.lock");
    let line = ok(
        &shared_store(),
        &package_cache(),
        false,
        &["rootfs", "lock", "--kernel", &kernel(), "--out", path.to_str().unwrap()],
    );
    (path, line.split_whitespace().next().unwrap().to_owned())
}

/// `rootfs export`: the manifest digest printed.
fn export(store: &Path, args: &[&str], out: &Path) -> String {
    let mut all = vec!["rootfs", "export"];
    all.extend(args);
    all.extend(["--out", out.to_str().unwrap()]);
    let digest = ok(store, &package_cache(), false, &all).trim().to_owned();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{digest}");
    digest
}

/// Build hello with `--json`; the report.
fn build(store: &Path, cache: &Path, offline: bool, lock: &Path) -> serde_json::Value {
    let out = tempfile::tempdir().unwrap();
    let source = testdata("modules/hello");
    let args = [
        "build",
        source.to_str().unwrap(),
        "--lock",
        lock.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
        "--json",
    ];
    serde_json::from_str(ok(store, cache, offline, &args).trim()).unwrap()
}

/// The `rootfs/<hash>` directories of a store.
fn roots(store: &Path) -> Vec<String> {
    list(&store.join("rootfs")).into_iter().filter(|n| n.len() == 64 && !n.contains('.')).collect()
}

#[test]
fn an_exported_root_imports_to_the_same_hash_and_builds_offline_with_no_download() {
    let files = tempfile::tempdir().unwrap();
    let (lock, hash) = lock_file(files.path());
    let shared = shared_store();
    let image = files.path().join("image");
    let digest = export(&shared, &["--lock", lock.to_str().unwrap()], &image);
    let again = export(&shared, &["--kernel", &kernel()], &files.path().join("again"));
    assert_eq!(digest, again, "the same root exports to the same manifest digest");
    eprintln!("manifest digest of {}: {digest}", kernel());
    let index = std::fs::read_to_string(image.join("index.json")).unwrap();
    assert!(
        index.contains(&format!("\"org.opencontainers.image.ref.name\":\"hermod-rootfs-{}\"", kernel())),
        "{index}"
    );
    assert!(index.contains(&format!("\"org.hermod.lock-hash\":\"{hash}\"")), "{index}");
    let online = build(&shared, &package_cache(), false, &lock);

    // Another machine: a fresh store, an empty package cache, no network.
    let store = private_store("oci-import");
    let empty_cache = tempfile::tempdir().unwrap();
    let line = ok(store.path(), empty_cache.path(), true, &["rootfs", "import", image.to_str().unwrap()]);
    let fields: Vec<&str> = line.split_whitespace().collect();
    let tree = store.path().join("rootfs").join(&hash).join("tree");
    assert_eq!(fields, [hash.as_str(), kernel().as_str(), tree.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(store.path().join("rootfs").join(&hash).join("lock")).unwrap(),
        std::fs::read_to_string(shared.join("rootfs").join(&hash).join("lock")).unwrap()
    );
    let offline = build(store.path(), empty_cache.path(), true, &lock);
    assert_eq!(offline["sha256"], online["sha256"], "the imported root builds the same .deb");
    assert_eq!(offline["key"], online["key"]);
    assert!(list(empty_cache.path()).is_empty(), "nothing was downloaded");
    assert_eq!(roots(store.path()), vec![hash.clone()], "the build used the imported root");

    // The imported root is a tree of links into the file store, and exports to the same image.
    let headers = tree.join(format!("usr/src/linux-headers-{}/Makefile", kernel()));
    assert!(std::os::unix::fs::MetadataExt::nlink(&std::fs::metadata(&headers).unwrap()) >= 2);
    assert_eq!(export(store.path(), &["--lock", lock.to_str().unwrap()], &files.path().join("back")), digest);
    let out = hermod_in(store.path(), empty_cache.path(), true, &["rootfs", "import", image.to_str().unwrap()]);
    assert!(out.status.success() && stdout(&out) == line, "a second import finds the root");
}

#[test]
fn a_flipped_byte_in_the_layer_is_refused_and_nothing_is_imported() {
    let files = tempfile::tempdir().unwrap();
    let (lock, hash) = lock_file(files.path());
    let image = files.path().join("image");
    export(&shared_store(), &["--lock", lock.to_str().unwrap()], &image);
    let blobs = image.join("blobs/sha256");
    let layer =
        list(&blobs).into_iter().map(|n| blobs.join(n)).max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
    let mut bytes = std::fs::read(&layer).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&layer, &bytes).unwrap();

    let store = private_store("oci-tampered");
    let empty_cache = tempfile::tempdir().unwrap();
    let out = hermod_in(store.path(), empty_cache.path(), true, &["rootfs", "import", image.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(7), "a checksum failure: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(layer.to_str().unwrap()) && err.contains("tampered"), "{err}");
    assert!(roots(store.path()).is_empty() && !store.path().join("rootfs").join(&hash).exists());
    assert!(list(&store.path().join("files")).is_empty(), "no file was stored");
}

#[test]
fn skopeo_reads_and_copies_the_layout() {
    if !require_tool("skopeo") {
        return;
    }
    let files = tempfile::tempdir().unwrap();
    let (lock, hash) = lock_file(files.path());
    let image = files.path().join("image");
    let digest = export(&shared_store(), &["--lock", lock.to_str().unwrap()], &image);
    let reference = format!("oci:{}:hermod-rootfs-{}", image.display(), kernel());
    let inspect: serde_json::Value = serde_json::from_str(&tool("skopeo", &["inspect", &reference])).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(inspect["Labels"]["org.hermod.lock-hash"], hash.as_str());
    assert_eq!(inspect["Labels"]["org.hermod.kernel"], kernel().as_str());
    assert_eq!(inspect["Layers"].as_array().map(Vec::len), Some(1));

    // Through skopeo, as through a registry: the copy imports to the same root.
    let copy = files.path().join("copy");
    let target = format!("oci:{}:hermod-rootfs-{}", copy.display(), kernel());
    tool("skopeo", &["copy", "--quiet", &reference, &target]);
    let store = private_store("oci-skopeo");
    let empty_cache = tempfile::tempdir().unwrap();
    let line = ok(store.path(), empty_cache.path(), true, &["rootfs", "import", copy.to_str().unwrap()]);
    assert!(line.starts_with(&format!("{hash} ")), "{line}");
}
