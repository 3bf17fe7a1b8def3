//! hermod run by an ordinary user (no root, a user namespace with that user's
//! single uid mapped) builds the same .deb bytes as a root run.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;

#[test]
fn unprivileged_build_gives_the_same_bytes_as_root() {
    if !require_root() {
        return;
    }
    let kernel = kernel();

    // Root build in the shared store.
    let out = tempfile::tempdir().unwrap();
    let source = testdata("modules/hello");
    let root = run(
        &shared_store(),
        &["build", source.to_str().unwrap(), "--kernel", &kernel, "--out", out.path().to_str().unwrap(), "--json"],
    );
    assert!(root.status.success(), "{}", stderr(&root));
    let root: serde_json::Value = serde_json::from_str(stdout(&root).trim()).unwrap();

    // The same as uid/gid 65534 (nobody), with everything it uses in a place it can reach:
    // its own copy of the binary and the source, its own store and package cache.
    let place = tempfile::tempdir().unwrap();
    std::fs::set_permissions(place.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = place.path().join("hermod");
    std::fs::copy(hermod(), &binary).unwrap();
    let src = place.path().join("hello");
    copy_tree(&source, &src);
    let home = place.path().join("home");
    std::fs::create_dir(&home).unwrap();
    nix::unistd::chown(&home, Some(65534.into()), Some(65534.into())).unwrap();

    let result = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&binary)
        .args(["build", src.to_str().unwrap(), "--kernel", &kernel, "--out"])
        .arg(home.join("out"))
        .args(["--json", "-q"])
        .env_clear()
        .env("HOME", &home)
        .env("PATH", "/usr/bin:/bin")
        .current_dir(&home)
        .output()
        .expect("setpriv runs");
    eprintln!("{}", String::from_utf8_lossy(&result.stderr));
    assert!(result.status.success(), "rootless build failed: {}", String::from_utf8_lossy(&result.stderr));
    let rootless: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&result.stdout).trim()).unwrap();
    assert_eq!(rootless["cache"], "miss", "the unprivileged store was empty: it compiled");
    assert_eq!(rootless["key"], root["key"]);
    assert_eq!(rootless["sha256"], root["sha256"], "rootless and root builds must give the same bytes");
    // The store went to the user's XDG default, not to /var/cache.
    assert!(home.join(".cache/hermod/rootfs").is_dir());
}
