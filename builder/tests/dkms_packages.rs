//! Debian's own `-dkms` packages as SOURCE: `pkg:NAME` (found in the
//! configured archive, downloaded and verified like build-root packages) and a
//! `.deb` path, built into module packages and checked with the real tools
//! (`dpkg-deb`, kmod's `modinfo`). Bad inputs of both kinds are refused clearly.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// What DKMS installs for each package: the module names, from
/// BUILT_MODULE_NAME (none of these sets DEST_MODULE_NAME), always under
/// updates/dkms on Debian whatever DEST_MODULE_LOCATION says. (acpi-call and
/// vpoll name DKMS's build directory, `$dkms_tree/$module/$version/build`, in
/// their MAKE line, and say DEST_MODULE_LOCATION=/extra.)
const PACKAGES: &[(&str, &str, &[&str])] = &[
    ("v4l2loopback-dkms", "v4l2loopback", &["v4l2loopback"]),
    ("acpi-call-dkms", "acpi-call", &["acpi_call"]),
    ("vpoll-dkms", "vpoll", &["vpoll"]),
    ("dm-writeboost-dkms", "dm-writeboost", &["dm-writeboost"]),
    // Depends: xserver-xorg-input-wacom: a declared build need.
    ("digimend-dkms", "digimend", &["hid-kye", "hid-polostar", "hid-uclogic", "hid-viewsonic"]),
];

/// Build `source` for the test kernel into `out`; the --json report.
fn build(store: &Path, source: &str, out: &Path, extra: &[&str]) -> serde_json::Value {
    let kernel = kernel();
    let mut args = vec!["build", source, "--kernel", &kernel, "--out", out.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let result = run(store, &args);
    assert!(result.status.success(), "{source}: {}", stderr(&result));
    serde_json::from_str(stdout(&result).trim()).unwrap()
}

/// The package's modules where DKMS puts them, named as DKMS names them,
/// with the kernel's vermagic.
fn check_modules(deb: &str, modules: &[&str]) {
    let kernel = kernel();
    let dir = format!("./lib/modules/{kernel}/updates/dkms/");
    let listing = tool("dpkg-deb", &["-c", deb]);
    let mut shipped: Vec<String> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter_map(|path| path.strip_prefix(&dir))
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    shipped.sort();
    let names: Vec<&str> = shipped.iter().map(|f| f.split(".ko").next().unwrap()).collect();
    let mut wanted = modules.to_vec();
    wanted.sort();
    assert_eq!(names, wanted, "{listing}");
    assert!(shipped.iter().all(|f| f.contains(".ko")), "{shipped:?}");
    let x = tempfile::tempdir().unwrap();
    tool("dpkg-deb", &["-x", deb, x.path().to_str().unwrap()]);
    for file in &shipped {
        let ko = x.path().join(&dir[2..]).join(file);
        let ko = ko.to_str().unwrap();
        let vermagic = tool("/sbin/modinfo", &["-F", "vermagic", ko]);
        assert!(vermagic.starts_with(&format!("{kernel} SMP")), "{file}: {vermagic}");
        let name = tool("/sbin/modinfo", &["-F", "name", ko]);
        let stem = file.split(".ko").next().unwrap();
        assert_eq!(name.trim(), stem.replace('-', "_"), "{file}: the kernel's name for it");
    }
}

#[test]
fn archive_dkms_packages_build_through_pkg() {
    let kernel = kernel();
    let work = tempfile::tempdir().unwrap();
    for (package, module_package, modules) in PACKAGES {
        let out = work.path().join(package);
        let report = build(&shared_store(), &format!("pkg:{package}"), &out, &[]);
        assert_eq!(report["package"], format!("{module_package}-modules-{kernel}"));
        check_modules(report["deb"].as_str().unwrap(), modules);
        // The build root is the recipe's plus the package's Depends (dkms dropped).
        let root = tool("dpkg-deb", &["-f", report["deb"].as_str().unwrap(), "X-Hermod-Rootfs"]);
        let needs: &[&str] =
            if *package == "digimend-dkms" { &["--build-depends", "xserver-xorg-input-wacom"] } else { &[] };
        let lock_file = work.path().join(format!("{package}.lock"));
        let mut args = vec!["rootfs", "lock", "--kernel", &kernel, "--out", lock_file.to_str().unwrap()];
        args.extend_from_slice(needs);
        let locked = run(&shared_store(), &args);
        assert!(locked.status.success(), "{}", stderr(&locked));
        assert!(stdout(&locked).starts_with(&format!("{} ", root.trim())), "{package}: root {root}");
    }
}

/// `apt-get download NAME` into `dir`: the .deb a sysadmin would have.
fn apt_download(name: &str, dir: &Path) -> PathBuf {
    let status =
        std::process::Command::new("apt-get").args(["download", name]).current_dir(dir).status().expect("apt-get runs");
    assert!(status.success(), "apt-get download {name}");
    let deb = list(dir).into_iter().find(|f| f.starts_with(&format!("{name}_")) && f.ends_with(".deb"));
    dir.join(deb.expect("downloaded .deb"))
}

/// A .deb path gives the very .deb `pkg:` gives, built in another store
/// (so from scratch, not from the first one's cache).
#[test]
fn a_deb_path_builds_the_same_bytes_as_pkg() {
    let work = tempfile::tempdir().unwrap();
    let from_pkg = build(&shared_store(), "pkg:dm-writeboost-dkms", &work.path().join("a"), &[]);
    let deb = apt_download("dm-writeboost-dkms", work.path());
    let store = private_store("deb-input");
    let from_deb = build(store.path(), deb.to_str().unwrap(), &work.path().join("b"), &[]);
    assert_eq!(from_deb["cache"], "miss", "built in its own store");
    assert_eq!(from_deb["key"], from_pkg["key"]);
    assert_eq!(from_deb["sha256"], from_pkg["sha256"]);
    assert_eq!(
        std::fs::read(from_deb["deb"].as_str().unwrap()).unwrap(),
        std::fs::read(from_pkg["deb"].as_str().unwrap()).unwrap()
    );
    assert!(
        list(&store.path().join("tmp")).is_empty(),
        "the unpacked package is gone: {:?}",
        list(&store.path().join("tmp"))
    );
}

/// `--build-depends` puts exact packages into the lock (`extra` records):
/// another build root, another key.
#[test]
fn build_depends_are_locked() {
    let kernel = kernel();
    let store = shared_store();
    let plain = run(&store, &["rootfs", "lock", "--kernel", &kernel]);
    assert!(plain.status.success());
    assert!(!stdout(&plain).contains("\nextra "), "a plain lock has no extras");
    let with = run(&store, &["rootfs", "lock", "--kernel", &kernel, "--build-depends", "libelf-dev,pkg-config"]);
    assert!(with.status.success(), "{}", stderr(&with));
    let text = stdout(&with);
    assert!(text.ends_with("extra libelf-dev\nextra pkg-config\n"), "{text}");
    assert!(text.contains("\npackage libelf-dev ") && text.contains("\npackage zlib1g-dev "), "with their closure");
    assert!(!text.contains("\npackage dkms "));
    for (args, says) in [
        (&["--build-depends", "libnothing-dev"][..], "--build-depends libnothing-dev needs libnothing-dev in the build root, but no configured package source offers it"),
        (&["--build-depends", "dkms"][..], "the recipe keeps it out of every build root"),
        (&["--build-depends", "foo (>>"][..], "cannot parse relation"),
    ] {
        let mut all = vec!["rootfs", "lock", "--kernel", &kernel];
        all.extend_from_slice(args);
        let out = run(&store, &all);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn bad_package_inputs_are_refused_clearly() {
    let kernel = kernel();
    let store = shared_store();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let build = |source: &str| run(&store, &["build", source, "--kernel", &kernel, "--out", out.to_str().unwrap()]);

    let r = build("pkg:no-such-package-dkms");
    assert_eq!(r.status.code(), Some(3));
    assert!(
        stderr(&r)
            .contains("pkg:no-such-package-dkms: no package no-such-package-dkms in any configured package source"),
        "{}",
        stderr(&r)
    );
    let r = build("pkg:vpoll-dkms=0.0-0");
    assert_eq!(r.status.code(), Some(3));
    assert!(stderr(&r).contains("have vpoll-dkms only in version(s) 0.1-3"), "{}", stderr(&r));

    // A real package that is no DKMS source.
    let make = apt_download("make", work.path());
    let r = build(make.to_str().unwrap());
    assert_eq!(r.status.code(), Some(3));
    let e = stderr(&r);
    assert!(e.contains(&format!("{} is not a DKMS source package", make.display())), "{e}");
    assert!(e.contains("/usr/src/<module>-<version>/dkms.conf"), "{e}");

    // Not a package at all; not there at all.
    let junk = work.path().join("junk.deb");
    std::fs::write(&junk, b"not an ar archive").unwrap();
    let r = build(junk.to_str().unwrap());
    assert_eq!(r.status.code(), Some(3));
    assert!(stderr(&r).contains("is not a Debian package"), "{}", stderr(&r));
    let r = build(work.path().join("missing.deb").to_str().unwrap());
    assert_eq!(r.status.code(), Some(3));
    assert!(stderr(&r).contains("missing.deb"), "{}", stderr(&r));
    assert!(!out.exists() || list(&out).is_empty(), "nothing written");
}
