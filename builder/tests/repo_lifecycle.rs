//! The repository's lifecycle with the real apt and dpkg in a throwaway
//! Debian root (`common/debroot.rs`): a rebuild with other bytes published
//! with `--revision` becomes `+hermod1` and a farm that had the first
//! upgrades to it; `hermod repo remove` takes a version out (apt still
//! accepts the re-signed repository and no longer offers it, the pool file
//! is gone); `hermod repo prune` removes exactly what it prints; and a farm
//! whose archive offers a kernel the repository has no module for yet
//! upgrades to it with `apt full-upgrade`, keeping the older module.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::debroot::{DebRoot, DebRootSpec};
use common::*;

/// hermod without the repository settings of the caller's environment.
fn hermod_cmd(args: &[&str]) -> Output {
    let mut cmd = Command::new(hermod());
    cmd.args(args).env_remove("HERMOD_REPO_SIGN_KEY").env_remove("SOURCE_DATE_EPOCH");
    run_logged(&mut cmd, args)
}

/// hello for `kernel`, built by the real binary with `maintainer` (part of the key: other bytes).
fn hello_deb(out: &Path, kernel: &str, maintainer: Option<&str>) -> PathBuf {
    let source = testdata("modules/hello");
    let mut args = vec!["build", source.to_str().unwrap(), "--kernel", kernel, "--out", out.to_str().unwrap()];
    if let Some(m) = maintainer {
        args.extend(["--maintainer", m]);
    }
    let built = run(&shared_store(), &args);
    assert!(built.status.success(), "building hello for {kernel}: {}", stderr(&built));
    PathBuf::from(stdout(&built).trim())
}

/// A world-readable scratch directory (apt's `_apt` user reads it).
fn scratch(tag: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(&format!("hermod-{tag}-")).tempdir_in("/var/tmp").unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `hermod repo keygen`: the secret key's path and the printed `.sources` stanza for `repo`.
fn keygen(dir: &Path, repo: &Path) -> (PathBuf, String) {
    let prefix = dir.join("farm");
    let url = format!("file:{}", repo.display());
    let out = hermod_cmd(&["repo", "keygen", "--out", prefix.to_str().unwrap(), "--url", &url]);
    assert!(out.status.success(), "keygen: {}", stderr(&out));
    (PathBuf::from(format!("{}.key", prefix.display())), stdout(&out))
}

/// The `Version` field of a .deb.
fn deb_version(deb: &Path) -> String {
    tool("dpkg-deb", &["--field", deb.to_str().unwrap(), "Version"]).trim().to_owned()
}

/// An empty module package for a kernel the archive does not offer, made by dpkg-deb.
fn fake_module(dir: &Path, kernel: &str) -> PathBuf {
    let tree = dir.join(format!("tree-{kernel}"));
    fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    fs::write(
        tree.join("DEBIAN/control"),
        format!(
            "Package: hello-modules-{kernel}\nSource: hello\nVersion: 0.1-1\nArchitecture: amd64\n\
             Maintainer: test <test@example.org>\nDepends: linux-image-{kernel} | linux-image-{kernel}-unsigned\n\
             Description: hello for a kernel no archive offers\n"
        ),
    )
    .unwrap();
    let deb = dir.join(format!("hello-modules-{kernel}.deb"));
    tool("dpkg-deb", &["-b", "--root-owner-group", tree.to_str().unwrap(), deb.to_str().unwrap()]);
    deb
}

fn status(root: &DebRoot, package: &str) -> String {
    String::from_utf8_lossy(&root.sh(&format!("dpkg-query -W -f '${{Status}} ${{Version}}' {package}")).stdout)
        .into_owned()
}

/// `apt-get update` must succeed without a warning or an error (the signature chain holds).
fn update_clean(root: &DebRoot) {
    let update = root.sh_ok("apt-get update 2>&1");
    assert!(!update.contains("W:") && !update.contains("E:"), "apt warned:\n{update}");
}

#[test]
fn revision_remove_and_prune_with_real_apt() {
    let kernel = kernel();
    let package = format!("hello-modules-{kernel}");
    let work = scratch("lifecycle");
    let first = hello_deb(&work.path().join("out-first"), &kernel, None);
    let rebuilt = hello_deb(&work.path().join("out-other"), &kernel, Some("Other Maintainer <other@example.org>"));
    assert_ne!(sha256(&first), sha256(&rebuilt), "another Maintainer, other bytes");
    let version = deb_version(&first);
    assert_eq!(deb_version(&rebuilt), version, "the same package and version");
    let repo = work.path().join("repo");
    let (key, stanza) = keygen(work.path(), &repo);
    let base = ["--repo", repo.to_str().unwrap(), "--sign-key", key.to_str().unwrap()];
    let publish = |extra: &[&str]| hermod_cmd(&[&["publish"][..], &base, extra].concat());
    assert!(publish(&[first.to_str().unwrap()]).status.success());

    let mut root = DebRoot::new(&DebRootSpec::farm(&kernel));
    root.ro_bind(work.path(), work.path().to_str().unwrap());
    root.sh_ok("rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*");
    root.write("/etc/apt/sources.list.d/hermod.sources", &stanza);
    update_clean(&root);
    root.sh_ok("apt-get install -y --no-install-recommends hello-modules-amd64");
    assert_eq!(status(&root, &package), format!("install ok installed {version}"));

    // (a) The rebuild: refused without --revision (the message names it), +hermod1 with it.
    let refused = publish(&[rebuilt.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(12), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--revision"), "{}", stderr(&refused));
    let dry = publish(&["--revision", "--dry-run", rebuilt.to_str().unwrap()]);
    assert!(dry.status.success() && stderr(&dry).contains("would write"), "{}", stderr(&dry));
    assert!(!stdout(&dry).trim().is_empty() && !Path::new(stdout(&dry).trim()).exists(), "a dry run writes nothing");
    let revised = publish(&["--revision", rebuilt.to_str().unwrap()]);
    assert!(revised.status.success(), "{}", stderr(&revised));
    let new_version = format!("{version}+hermod1");
    assert!(stderr(&revised).contains(&format!("published as {new_version}")), "{}", stderr(&revised));
    let pool = PathBuf::from(stdout(&revised).trim());
    assert_eq!(deb_version(&pool), new_version);
    // The same rebuild again mints nothing.
    let again = publish(&["--revision", rebuilt.to_str().unwrap()]);
    assert!(stderr(&again).contains(&format!("already published as {new_version}")), "{}", stderr(&again));
    assert!(stderr(&again).contains("0 files written"), "{}", stderr(&again));
    update_clean(&root);
    let upgrade = root.sh_ok("DEBIAN_FRONTEND=noninteractive apt-get full-upgrade -y --no-install-recommends 2>&1");
    assert_eq!(status(&root, &package), format!("install ok installed {new_version}"), "{upgrade}");
    let maintainer = root.sh_ok(&format!("dpkg-query -W -f '${{Maintainer}}' {package}"));
    assert_eq!(maintainer, "Other Maintainer <other@example.org>");

    // (b) Remove the first version: apt accepts the re-signed repository, no longer offers it.
    let old_pool = repo.join(format!("pool/main/h/hello/{package}_{version}_amd64.deb"));
    assert!(old_pool.exists());
    let remove = |extra: &[&str]| hermod_cmd(&[&["repo", "remove"][..], &base, extra].concat());
    let missing = remove(&["hello-modules-6.1.0-1-amd64"]);
    assert_eq!(missing.status.code(), Some(12), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("is not published"), "{}", stderr(&missing));
    let meta = remove(&["hello-modules-amd64"]);
    assert_eq!(meta.status.code(), Some(12), "{}", stderr(&meta));
    let spec = format!("{package}={version}");
    let removed = remove(&[&spec]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(stdout(&removed).contains(&format!("{package} {version} (amd64)")), "{}", stdout(&removed));
    assert!(!old_pool.exists(), "the pool file is gone");
    assert!(pool.exists(), "the revision stays");
    update_clean(&root);
    let offered = root.sh_ok(&format!("apt-cache madison {package}"));
    assert!(offered.contains(&new_version) && !offered.contains(&format!(" {version} ")), "{offered}");

    // (c) Prune: two kernels no archive offers; keep 1 keeps the test kernel (offered and newest).
    for fake in ["6.1.0-1-amd64", "6.1.0-2-amd64"] {
        assert!(publish(&[fake_module(work.path(), fake).to_str().unwrap()]).status.success());
    }
    let store = shared_store();
    let prune = |extra: &[&str]| {
        hermod_cmd(&[&["--store", store.to_str().unwrap(), "repo", "prune", "--keep", "1"][..], &base, extra].concat())
    };
    let packages = repo.join("dists/hermod/main/binary-amd64/Packages");
    let before = fs::read(&packages).unwrap();
    let dry = prune(&["--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert_eq!(fs::read(&packages).unwrap(), before, "a dry run changes nothing");
    let pruned = prune(&[]);
    assert!(pruned.status.success(), "{}", stderr(&pruned));
    let expect = "hello-modules-6.1.0-1-amd64 0.1-1 (amd64)\nhello-modules-6.1.0-2-amd64 0.1-1 (amd64)\n";
    assert_eq!(stdout(&dry), expect, "the dry run prints what the prune removes");
    assert_eq!(stdout(&pruned), expect);
    let listed = fs::read_to_string(&packages).unwrap();
    assert!(!listed.contains("6.1.0-1-amd64") && !listed.contains("6.1.0-2-amd64"), "{listed}");
    assert!(listed.contains(&format!("Package: {package}\n")), "{listed}");
    assert!(!repo.join("pool/main/h/hello/hello-modules-6.1.0-1-amd64_0.1-1_amd64.deb").exists());
    update_clean(&root);
    let offered = root.sh_ok("apt-cache pkgnames hello-modules");
    assert!(!offered.contains("6.1.0-1-amd64") && offered.contains(&package), "{offered}");
    // Nothing left to prune: nothing printed, nothing written.
    let again = prune(&[]);
    assert!(again.status.success() && stdout(&again).is_empty(), "{}", stderr(&again));
    // A signed repository is not pruned without its key.
    let unsigned = hermod_cmd(&[
        "--store",
        store.to_str().unwrap(),
        "repo",
        "prune",
        "--keep",
        "0",
        "--repo",
        repo.to_str().unwrap(),
    ]);
    assert_eq!(unsigned.status.code(), Some(12), "{}", stderr(&unsigned));
    assert!(stderr(&unsigned).contains("--sign-key"), "{}", stderr(&unsigned));
}

/// The issue's "a kernel the repository has no module for yet does not break
/// upgrades": the farm of `apt_repository.rs`'s full-upgrade test, but the
/// repository never gets hello for the archive's newest kernel.
#[test]
fn a_kernel_without_a_module_yet_is_upgraded_to_and_the_old_module_stays() {
    let old = kernel();
    let new = common::debroot::newest_kernel("bookworm", "amd64");
    assert_ne!(old, new, "the test kernel must be older than the archive's newest (HERMOD_TEST_KERNEL)");
    let work = scratch("nomodule");
    let old_deb = hello_deb(&work.path().join("out"), &old, None);
    let repo = work.path().join("repo");
    let (key, stanza) = keygen(work.path(), &repo);
    let out = hermod_cmd(&[
        "publish",
        "--repo",
        repo.to_str().unwrap(),
        "--sign-key",
        key.to_str().unwrap(),
        old_deb.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let mut root = DebRoot::new(&DebRootSpec::farm(&old));
    root.ro_bind(work.path(), work.path().to_str().unwrap());
    root.write("/etc/apt/sources.list.d/hermod.sources", &stanza);
    root.write("/etc/dpkg/dpkg.cfg.d/hermod-test", "path-exclude=/lib/modules/*/kernel/*\n");
    root.sh_ok(&format!(
        "mkdir -p /tmp/li/DEBIAN && printf '%s\\n' 'Package: linux-image-amd64' 'Version: 6.1~hermodtest' \
         'Architecture: amd64' 'Maintainer: test <test@example.org>' 'Depends: linux-image-{old}' \
         'Description: linux-image-amd64 as it was when {old} was the newest' > /tmp/li/DEBIAN/control && \
         dpkg-deb -b /tmp/li /tmp/li.deb >/dev/null && dpkg -i /tmp/li.deb"
    ));
    root.sh_ok("apt-get update 2>&1");
    root.sh_ok("DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends hello-modules-amd64");
    assert!(status(&root, &format!("hello-modules-{old}")).starts_with("install ok installed"));

    let upgrade = root.sh_ok("DEBIAN_FRONTEND=noninteractive apt-get full-upgrade -y --no-install-recommends 2>&1");
    assert!(status(&root, &format!("linux-image-{new}")).starts_with("install ok installed"), "{upgrade}");
    assert!(!status(&root, "linux-image-amd64").contains("6.1~hermodtest"), "{upgrade}");
    // The metapackage and the older kernel's module stay; nothing was removed or held back.
    assert!(status(&root, "hello-modules-amd64").starts_with("install ok installed"), "{upgrade}");
    assert!(status(&root, &format!("hello-modules-{old}")).starts_with("install ok installed"), "{upgrade}");
    assert!(!status(&root, &format!("hello-modules-{new}")).contains("installed"), "{upgrade}");
    assert!(!upgrade.contains("kept back") && upgrade.contains(" 0 to remove"), "{upgrade}");
}
