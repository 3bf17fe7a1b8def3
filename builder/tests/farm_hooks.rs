//! The farm workflow end to end, in a throwaway Debian root with the real apt
//! and dpkg (`common/debroot.rs`) that has the test kernel's `linux-image`
//! installed and no compiler, and hermod installed as its package lays it out
//! (the binary plus `dist/root/`: kernel hooks, apt hook, unit):
//!
//! - a master: `apt-get install linux-headers-KREL` runs the header hook,
//!   which builds the wanted hello module inside the root (hermod's sandbox
//!   nested in the root's namespaces) into `pending/`; apt's Post-Invoke then
//!   runs `install-pending`, and dpkg owns the module.
//! - a farm machine: `hermod fetch` installs from the signed repository with
//!   no toolchain anywhere; `prepare` (the image hook's command) + `install-pending`
//!   do the same; what nothing provides is queued (exit 10); a tampered
//!   package in the repository is refused (exit 7) and nothing is installed.
//! - a farm machine on trixie (the newest kernel trixie offers, its real
//!   image): apt installs the module package over http from nginx, then
//!   `fetch`, `prepare` + `install-pending` and `boot` do it from the same
//!   repository.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::debroot::{DebRoot, DebRootSpec};
use common::*;

fn package() -> String {
    format!("hello-modules-{}", kernel())
}

/// A root with hermod installed the way its .deb installs it.
fn root_with_hermod() -> DebRoot {
    root_of_spec_with_hermod(&DebRootSpec::farm(&kernel()))
}

fn root_of_spec_with_hermod(spec: &DebRootSpec) -> DebRoot {
    let root = DebRoot::new(spec);
    root.copy_in(&hermod(), "/usr/bin/hermod");
    let dist = repo_root().join("dist/root");
    assert!(dist.is_dir(), "{} is missing", dist.display());
    // File by file: the root is merged-/usr, so its /lib is a link to usr/lib.
    for file in files_under(&dist) {
        let inside = file.strip_prefix(&dist).unwrap();
        let dest = root.path().join(inside);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::copy(&file, &dest).unwrap();
    }
    root
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn status_of(root: &DebRoot, package: &str) -> String {
    root.sh_ok(&format!("dpkg-query -W -f '${{db:Status-Status}}' {package} 2>/dev/null || true"))
}

fn pending_debs(root: &DebRoot) -> Vec<String> {
    list(&root.host_path("/var/lib/hermod/pending")).into_iter().filter(|n| n.ends_with(".deb")).collect()
}

#[test]
fn installing_headers_builds_into_pending_and_apt_installs_it() {
    let mut root = root_with_hermod();
    root.copy_in(&testdata("modules/hello"), "/usr/src/hello-0.1");
    root.write("/etc/hermod/config.toml", "role = \"master\"\nwanted = [\"/usr/src/hello-0.1\"]\n");
    // The archive's packages the tests already downloaded: hermod's build root
    // reads them through HERMOD_PACKAGE_CACHE, apt through its own archive
    // directory (verified against the archive's index either way).
    root.bind(&package_cache(), "/var/cache/hermod-packages");
    root.sh_ok("cp -n /var/cache/hermod-packages/*.deb /var/cache/apt/archives/ || true");
    assert_eq!(
        root.sh_ok("command -v gcc gcc-12 cc || echo none").trim(),
        "none",
        "the root starts without a compiler"
    );

    let out = root.sh(&format!(
        "export HERMOD_PACKAGE_CACHE=/var/cache/hermod-packages; apt-get update -qq; apt-get install -y --no-install-recommends linux-headers-{} 2>&1",
        kernel()
    ));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "apt-get install of the headers failed:\n{said}");
    let k = kernel();
    // The header hook ran hermod inside dpkg: it built (no cache in this root) into pending/ ...
    assert!(
        said.contains(&format!("preparing 1 wanted module package(s) for {k} (from /etc/kernel/header_postinst.d)")),
        "{said}"
    );
    assert!(said.contains("building /usr/src/hello-0.1"), "{said}");
    assert!(said.contains(&format!("{}: pending, from the caches or a build here", package())), "{said}");
    // ... and apt's Post-Invoke installed it once dpkg was done.
    assert!(said.contains(&format!("{} 0.1+", package())) && said.contains(": installed"), "{said}");
    assert_eq!(status_of(&root, &package()), "installed");
    let owner = root.sh_ok(&format!("dpkg -S /lib/modules/{k}/updates/dkms/hello.ko*"));
    assert!(owner.starts_with(&format!("{}: ", package())), "{owner}");
    root.sh_ok(&format!("debsums -s {}", package()));
    assert!(pending_debs(&root).is_empty(), "pending/ still holds {:?}", pending_debs(&root));
    // Nothing of the build was left where dpkg or the module tree would see it.
    assert!(!root.host_path("/var/lib/hermod/queue").join(&k).exists());
}

/// hello's package, published (signed) in a fresh repository; returns the
/// repository directory and the public key file.
fn published_repository(dir: &Path) -> (PathBuf, PathBuf) {
    published_repository_for(dir, &kernel())
}

fn published_repository_for(dir: &Path, kernel: &str) -> (PathBuf, PathBuf) {
    let built = run(
        &shared_store(),
        &[
            "build",
            testdata("modules/hello").to_str().unwrap(),
            "--kernel",
            kernel,
            "--out",
            dir.join("out").to_str().unwrap(),
        ],
    );
    assert!(built.status.success(), "building hello: {}", stderr(&built));
    let deb = stdout(&built).trim().to_owned();
    let prefix = dir.join("repo-key");
    let keygen = Command::new(hermod()).args(["repo", "keygen", "--out", prefix.to_str().unwrap()]).output().unwrap();
    assert!(keygen.status.success(), "keygen: {}", stderr(&keygen));
    let repo = dir.join("repo");
    let publish = Command::new(hermod())
        .args(["publish", "--repo", repo.to_str().unwrap(), "--sign-key", &format!("{}.key", prefix.display()), &deb])
        .env_remove("HERMOD_REPO_SIGN_KEY")
        .output()
        .unwrap();
    assert!(publish.status.success(), "publish: {}", stderr(&publish));
    (repo, PathBuf::from(format!("{}.asc", prefix.display())))
}

fn farm_config(repo: &str, wanted: &str) -> String {
    farm_config_uri(&format!("file:{repo}"), wanted)
}

fn farm_config_uri(uri: &str, wanted: &str) -> String {
    format!(
        "role = \"farm\"\nwanted = {wanted}\n[repository]\nuri = \"{uri}\"\nsigned_by = \"/etc/apt/keyrings/hermod.asc\"\n"
    )
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

#[test]
fn a_farm_machine_fetches_prepares_and_installs_without_a_toolchain() {
    let dir = tempfile::Builder::new().prefix("hermod-farm-").tempdir_in("/var/tmp").unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let (repo, public_key) = published_repository(dir.path());
    let mut root = root_with_hermod();
    root.ro_bind(&repo, "/srv/repo");
    root.copy_in(&public_key, "/etc/apt/keyrings/hermod.asc");
    root.write("/etc/hermod/config.toml", &farm_config("/srv/repo", "[{ package = \"hello\" }]"));
    let k = kernel();

    // fetch: verified download and dpkg -i, with no compiler and no build root.
    root.sh_ok(&format!("hermod fetch --kernel {k} hello"));
    assert_eq!(status_of(&root, &package()), "installed");
    assert_eq!(root.sh_ok("command -v gcc gcc-12 cc || echo none").trim(), "none");
    assert!(!root.host_path("/var/cache/hermod/rootfs").exists(), "a farm machine made a build root");
    root.sh_ok(&format!("debsums -s {0} && dpkg --purge {0}", package()));

    // The image hook's command, then apt's Post-Invoke's.
    let prepared = root.sh_ok(&format!("hermod prepare --kernel {k} --hook postinst.d"));
    assert!(
        prepared.contains(&format!("{}: pending, from the repository file:/srv/repo hermod", package())),
        "{prepared}"
    );
    assert_eq!(pending_debs(&root).len(), 1);
    let installed = root.sh_ok("hermod install-pending");
    assert!(installed.contains(": installed"), "{installed}");
    assert_eq!(status_of(&root, &package()), "installed");
    assert!(pending_debs(&root).is_empty());
    // Installed already: prepare has nothing to do.
    let again = root.sh_ok(&format!("hermod prepare --kernel {k}"));
    assert!(again.contains(&format!("{}: installed", package())), "{again}");

    // The boot service's command, for a kernel that is not the running one:
    // the package is pulled and installed, and nothing is loaded.
    root.sh_ok(&format!("dpkg --purge {}", package()));
    let booted = root.sh_ok(&format!("hermod boot --kernel {k}"));
    assert!(booted.contains(": installed") && !booted.contains("loaded"), "{booted}");
    assert_eq!(status_of(&root, &package()), "installed");

    // Something nothing provides: queued for the boot service, exit 10,
    // and the kernel's own installation would go on (the hook exits 0).
    root.write(
        "/etc/hermod/config.toml",
        &farm_config("/srv/repo", "[{ package = \"hello\" }, { package = \"absent\" }]"),
    );
    let queued = root.sh(&format!("hermod prepare --kernel {k}"));
    assert_eq!(code(&queued), Some(10), "{}", String::from_utf8_lossy(&queued.stderr));
    let queue = fs::read_to_string(root.host_path(&format!("/var/lib/hermod/queue/{k}"))).unwrap();
    assert_eq!(queue, "absent\n");
    let hook = root.sh(&format!("/etc/kernel/postinst.d/hermod {k}"));
    assert_eq!(code(&hook), Some(0), "the hook must never fail the kernel's installation");
    let said = format!("{}{}", String::from_utf8_lossy(&hook.stdout), String::from_utf8_lossy(&hook.stderr));
    assert!(
        said.contains("absent-modules-") && said.contains("FAILED"),
        "the hook says loudly what is missing: {said}"
    );

    // A package changed after publishing: its SHA256 no longer matches the signed index.
    let tampered = dir.path().join("tampered");
    tool("cp", &["-a", repo.to_str().unwrap(), tampered.to_str().unwrap()]);
    let pool_deb = files_under(&tampered.join("pool"))
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&format!("{}_", package()))))
        .expect("the module's .deb in the pool (not its metapackage)");
    let mut bytes = fs::read(&pool_deb).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&pool_deb, bytes).unwrap();
    root.ro_bind(&tampered, "/srv/tampered");
    root.write("/etc/hermod/config.toml", &farm_config("/srv/tampered", "[{ package = \"hello\" }]"));
    root.sh_ok(&format!("dpkg --purge {}", package()));
    let refused = root.sh(&format!("rm -rf /var/lib/hermod/lists; hermod fetch --kernel {k} hello"));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(code(&refused), Some(7), "{said}");
    assert!(said.contains("SHA256") || said.contains("sha256"), "the refusal names the hash check: {said}");
    assert_eq!(status_of(&root, &package()), "", "a tampered package was installed");
}

/// The farm on trixie, with real components: hello built by hermod (on this
/// machine, whatever its release) for the newest kernel trixie's archive
/// offers, published signed and served over http by nginx on loopback, and a
/// trixie root (mmdebstrap from this machine's mirrors, suites renamed) with
/// that kernel's real `linux-image` package and hermod installed as its .deb
/// lays it out. apt installs the module package from the repository; then
/// hermod's own farm commands do it over the same http repository: `fetch`,
/// the image hook's `prepare` + apt's `install-pending`, and the boot
/// service's `boot` for a kernel that is not the running one.
#[test]
fn a_trixie_farm_machine_installs_over_http_with_apt_and_hermod() {
    let k = common::debroot::newest_kernel("trixie", "amd64");
    let package = format!("hello-modules-{k}");
    let dir = tempfile::Builder::new().prefix("hermod-farm-trixie-").tempdir_in("/var/tmp").unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let (repo, public_key) = published_repository_for(dir.path(), &k);
    let nginx = common::nginx::Nginx::serve(&repo, "hermod");
    let url = format!("http://127.0.0.1:{}/hermod", nginx.port);

    let root = root_of_spec_with_hermod(&DebRootSpec::farm_on("trixie", &k));
    assert_eq!(root.sh_ok(". /etc/os-release; echo $VERSION_CODENAME").trim(), "trixie");
    assert_eq!(status_of(&root, &format!("linux-image-{k}")), "installed");
    root.copy_in(&public_key, "/etc/apt/keyrings/hermod.asc");
    // The repository is the root's only apt source.
    root.sh_ok("rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*");
    root.write(
        "/etc/apt/sources.list.d/hermod.sources",
        &format!(
            "Types: deb\nURIs: {url}\nSuites: hermod\nComponents: main\nSigned-By: /etc/apt/keyrings/hermod.asc\n"
        ),
    );

    // apt: the signed index over http, the package's Depends on the image hold.
    let update = root.sh_ok("apt-get update 2>&1");
    assert!(update.contains(&url) && !update.contains("W:") && !update.contains("E:"), "{update}");
    let install = root.sh_ok(&format!("apt-get install -y --no-install-recommends {package} 2>&1"));
    assert!(install.contains(&format!("Get:1 {url} hermod/main amd64 {package}")), "{install}");
    assert_eq!(status_of(&root, &package), "installed");
    let module = format!("/usr/lib/modules/{k}/updates/dkms/hello.ko.xz");
    let listed = root.sh_ok(&format!("dpkg -L {package}"));
    assert!(listed.lines().any(|l| l == module), "dpkg -L {package} lists {module}:\n{listed}");
    assert_eq!(root.sh_ok(&format!("dpkg -S {module}")).trim(), format!("{package}: {module}"));
    assert_eq!(root.sh_ok(&format!("debsums -s {package}")), "", "debsums finds every file intact");
    assert_eq!(
        root.sh_ok(&format!("grep -c '^updates/dkms/hello.ko.xz:' /lib/modules/{k}/modules.dep")).trim(),
        "1",
        "trixie's depmod ran and indexed the compressed module"
    );
    let vermagic = root.sh_ok(&format!("modinfo -F vermagic {module}"));
    assert!(vermagic.starts_with(&format!("{k} ")), "trixie's kmod reads the module: {vermagic}");
    root.sh_ok(&format!("apt-get purge -y {package}"));
    assert_eq!(status_of(&root, &package), "");

    // hermod fetch from the same repository over http, no toolchain anywhere.
    root.write("/etc/hermod/config.toml", &farm_config_uri(&url, "[{ package = \"hello\" }]"));
    root.sh_ok(&format!("hermod fetch --kernel {k} hello"));
    assert_eq!(status_of(&root, &package), "installed");
    assert_eq!(root.sh_ok("command -v gcc gcc-14 cc || echo none").trim(), "none");
    assert!(!root.host_path("/var/cache/hermod/rootfs").exists(), "a farm machine made a build root");
    root.sh_ok(&format!("debsums -s {package} && dpkg --purge {package}"));

    // The image hook's command, then apt's Post-Invoke's.
    let prepared = root.sh_ok(&format!("hermod prepare --kernel {k} --hook postinst.d"));
    assert!(prepared.contains(&format!("{package}: pending, from the repository {url} hermod")), "{prepared}");
    assert_eq!(pending_debs(&root).len(), 1);
    let installed = root.sh_ok("hermod install-pending");
    assert!(installed.contains(": installed"), "{installed}");
    assert_eq!(status_of(&root, &package), "installed");
    assert!(pending_debs(&root).is_empty());

    // The boot service's command for a kernel that is not the running one.
    root.sh_ok(&format!("dpkg --purge {package}"));
    let booted = root.sh_ok(&format!("hermod boot --kernel {k}"));
    assert!(booted.contains(": installed") && !booted.contains("loaded"), "{booted}");
    assert_eq!(status_of(&root, &package), "installed");
    root.sh_ok(&format!("debsums -s {package}"));
}

/// A trixie master: hermod inside a trixie machine, whose apt sources name
/// only trixie, builds for a bookworm kernel (bookworm's suites read from
/// the same mirrors); its own release's newest kernel is its default.
#[test]
fn a_trixie_master_builds_for_bookworm() {
    let k = common::debroot::newest_kernel("trixie", "amd64");
    let mut root = root_of_spec_with_hermod(&DebRootSpec::farm_on("trixie", &k));
    let sources = root.sh_ok("cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || true");
    assert!(sources.contains("trixie") && !sources.contains("bookworm"), "a trixie machine's sources: {sources}");
    // The packages come through the tests' shared package cache (each .deb
    // verified by SHA256 on use); the store is the root's own.
    root.bind(&package_cache(), "/var/cache/hermod-packages");
    root.copy_in(&testdata("modules/hello"), "/usr/src/hello-0.1");
    let build = |kernel: &str| -> serde_json::Value {
        let out = root.sh_ok(&format!(
            "HERMOD_PACKAGE_CACHE=/var/cache/hermod-packages hermod -q build /usr/src/hello-0.1 {kernel} --out /tmp/out --json"
        ));
        serde_json::from_str(out.trim()).expect("one JSON report")
    };
    let bookworm = kernel();
    let report = build(&format!("--kernel {bookworm}"));
    assert_eq!(report["kernel"], bookworm.as_str(), "{report}");
    // Its own release is the default: resolved (not built: that is the farm test's).
    let lock = root.sh_ok("hermod -q rootfs lock");
    assert!(lock.contains(&format!("\nkernel {k}\n")) && lock.contains("\nrecipe trixie-amd64\n"), "{lock}");
    let roots = root.sh_ok("hermod rootfs list --json");
    let first: serde_json::Value = serde_json::from_str(roots.lines().next().unwrap()).unwrap();
    assert_eq!((first["kernel"].as_str(), first["recipe"].as_str()), (Some(bookworm.as_str()), Some("bookworm-amd64")));
}
