//! Tests for [`super`]: SOURCE parsing, unpacking .debs built here, and
//! Depends → build needs against a fixture archive.

use super::*;
use crate::apt::archive::tests::pkg;
use crate::apt::debfile::tests::{tar_of, E};
use crate::rootfs::{Lock, Recipe};
use std::fs;

/// A .deb with this control text and data entries (uncompressed members:
/// hermod's reader takes `.tar` as well as compressed ones).
fn deb(dir: &Path, control: &str, data: &[E]) -> PathBuf {
    let control = tar_of(&[E::Dir("./", 0o755), E::File("./control", 0o644, control.as_bytes())]);
    let mut ar = ar::Builder::new(Vec::new());
    for (name, body) in [("debian-binary", b"2.0\n".to_vec()), ("control.tar", control), ("data.tar", tar_of(data))] {
        ar.append(&ar::Header::new(name.as_bytes().to_vec(), body.len() as u64), body.as_slice()).unwrap();
    }
    let path = dir.join("pkg.deb");
    fs::write(&path, ar.into_inner().unwrap()).unwrap();
    path
}

const CONTROL: &str =
    "Package: foo-dkms\nVersion: 1.0-1\nArchitecture: all\nDepends: dkms (>= 2.1.0.0), libelf-dev\nDescription: x\n";

fn dkms_tree() -> Vec<E<'static>> {
    vec![
        E::Dir("./", 0o755),
        E::Dir("./usr/", 0o755),
        E::Dir("./usr/src/", 0o755),
        E::Dir("./usr/src/foo-1.0/", 0o755),
        E::File("./usr/src/foo-1.0/dkms.conf", 0o644, b"PACKAGE_NAME=foo\nPACKAGE_VERSION=1.0\n"),
        E::File("./usr/src/foo-1.0/Makefile", 0o644, b"obj-m := foo.o\n"),
        E::File("./usr/src/foo-1.0/configure", 0o4755, b"#!/bin/sh\n"),
        E::Sym("./usr/src/foo-1.0/Kbuild", "Makefile"),
        E::Dir("./usr/share/", 0o755),
        E::Dir("./usr/share/doc/", 0o755),
        E::File("./usr/share/doc/README", 0o644, b"doc"),
    ]
}

#[test]
fn parses_the_three_kinds_of_source() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |s: &str| Input::parse(s);
    assert_eq!(p("pkg:v4l2loopback-dkms").unwrap(), Input::Package { name: "v4l2loopback-dkms".into(), version: None });
    assert_eq!(
        p("pkg:acpi-call-dkms=1.2.2-2.1").unwrap(),
        Input::Package { name: "acpi-call-dkms".into(), version: Some("1.2.2-2.1".into()) }
    );
    assert_eq!(p("x/foo-dkms_1.0_all.deb").unwrap(), Input::Deb("x/foo-dkms_1.0_all.deb".into()));
    let file = tmp.path().join("renamed");
    fs::write(&file, b"!<arch>\ndebian-binary").unwrap();
    assert_eq!(p(file.to_str().unwrap()).unwrap(), Input::Deb(file.clone()), "a package under another name");
    fs::write(&file, b"PACKAGE_NAME=x\n").unwrap();
    let e = p(file.to_str().unwrap()).unwrap_err().to_string();
    assert!(e.ends_with("a file, but neither a .deb nor a directory holding dkms.conf"), "{e}");
    assert_eq!(p(tmp.path().to_str().unwrap()).unwrap(), Input::Dir(tmp.path().to_owned()));
    assert_eq!(p("./pkg:odd").unwrap(), Input::Dir("./pkg:odd".into()));
    for (bad, says) in [
        ("pkg:", "not a Debian package name"),
        ("pkg:Foo-DKMS", "not a Debian package name"),
        ("pkg:foo bar", "not a Debian package name"),
        ("pkg:foo=", "version \"\""),
        ("pkg:foo=a b", "version"),
        ("", "empty path"),
    ] {
        let e = p(bad).unwrap_err().to_string();
        assert!(e.starts_with(&format!("source {bad:?}: ")) && e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn extracts_the_one_tree_with_dkms_conf() {
    let tmp = tempfile::tempdir().unwrap();
    let deb = deb(tmp.path(), CONTROL, &dkms_tree());
    let dest = tmp.path().join("staging");
    let tree = extract(&deb, &dest, "foo.deb").unwrap();
    assert_eq!(tree, dest.join("usr/src/foo-1.0"));
    assert_eq!(fs::read(tree.join("Makefile")).unwrap(), b"obj-m := foo.o\n");
    assert_eq!(fs::read_link(tree.join("Kbuild")).unwrap(), Path::new("Makefile"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(tree.join("configure")).unwrap().permissions().mode() & 0o7777, 0o755, "no setuid");
    // The tree scans like any directory source, so it hashes like one.
    let scanned = crate::source::SourceTree::scan(&tree).unwrap();
    assert_eq!(scanned.entries.len(), 4);
}

#[test]
fn a_package_without_exactly_one_tree_is_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, entries: &[E]| {
        let dir = tmp.path().join(name);
        fs::create_dir(&dir).unwrap();
        let deb = deb(&dir, CONTROL, entries);
        extract(&deb, &dir.join("staging"), "foo.deb").unwrap_err().to_string()
    };
    let e = run("none", &[E::Dir("./", 0o755), E::Dir("./usr/", 0o755), E::File("./usr/hello", 0o755, b"x")]);
    assert_eq!(
        e,
        "foo.deb is not a DKMS source package: it has no /usr/src/<module>-<version>/dkms.conf (it installs nothing under /usr/src)"
    );
    let e = run(
        "nodkms",
        &[
            E::Dir("./usr/src/bar-2/", 0o755),
            E::File("./usr/src/bar-2/Makefile", 0o644, b""),
            E::File("./usr/src/deeper/x/dkms.conf", 0o644, b""),
            E::Sym("./usr/src/link-1", "bar-2"),
        ],
    );
    assert!(e.ends_with("(/usr/src holds bar-2, deeper, link-1)"), "{e}");
    let mut two = dkms_tree();
    two.push(E::Dir("./usr/src/baz-2/", 0o755));
    two.push(E::File("./usr/src/baz-2/dkms.conf", 0o644, b""));
    let e = run("two", &two);
    assert!(e.contains("several DKMS source trees (/usr/src/baz-2, /usr/src/foo-1.0)"), "{e}");
    // Not a .deb at all, and hostile paths: the reader's rules, named.
    let junk = tmp.path().join("junk.deb");
    fs::write(&junk, b"just text").unwrap();
    let e = extract(&junk, &tmp.path().join("s2"), "junk.deb").unwrap_err().to_string();
    assert!(e.contains("is not a Debian package"), "{e}");
    let e = run("evil", &[E::File("./usr/src/../../etc/x", 0o644, b"")]);
    assert!(e.contains("unsafe path") && e.contains("`..`"), "{e}");
}

fn archive() -> Archive {
    let mut xt = pkg("xtables-addons-dkms", "3.23-1", "dkms (>= 2.1.0.0), xtables-addons-common (>= 3.23)", "");
    xt.architecture = "all".into();
    // The builtin recipe's tools, without dependencies.
    let tools = ["binutils", "dash", "coreutils", "sed", "grep", "findutils", "diffutils", "patch"]
        .map(|n| pkg(n, "1", "", ""));
    Archive::from_packages(
        "amd64",
        [
            pkg("linux-headers-6.1.0-56-amd64", "6.1.192-2", "gcc-12", ""),
            pkg("gcc-12", "12.2.0-14", "", ""),
            pkg("make", "4.3-4.1", "", ""),
            pkg("bash", "5.2.15-2", "", ""),
            pkg("dkms", "3.0.10-8", "gcc | c-compiler, kmod, linux-headers-amd64 | linux-headers-generic", ""),
            pkg("kmod", "30", "", ""),
            pkg("libelf-dev", "0.188-2.1", "libelf1", ""),
            pkg("libelf1", "0.188-2.1", "", ""),
            pkg("sysvinit-utils", "3.06-4", "", ""),
            pkg("lsb-base", "11.6", "", ""),
            pkg("perl", "5.36.0-7", "", ""),
            pkg("mawk", "1.3.4", "", "awk"),
            pkg("v4l2loopback-dkms", "0.12.7-2", "dkms (>= 2.1.0.0)", ""),
            pkg("v4l2loopback-utils", "0.12.7-2", "", ""),
            xt,
            pkg("xtables-addons-common", "3.23-1", "", ""),
        ]
        .into_iter()
        .chain(tools)
        .collect(),
    )
}

fn needs(field: &str) -> Result<Vec<String>, String> {
    let exclude = vec!["linux-image-*".to_string(), NEVER_A_BUILD_NEED.to_string()];
    let a = archive();
    let mut out = Vec::new();
    for dep in parse_depends(field).unwrap() {
        if let Some(name) = pick(&a, &dep, &exclude)? {
            out.push(name);
        }
    }
    Ok(out)
}

#[test]
fn depends_become_build_needs_like_apt_picks() {
    assert_eq!(needs("dkms (>= 2.1.0.0)").unwrap(), Vec::<String>::new(), "dkms is never a need");
    assert_eq!(needs("dkms (>= 3.0.3-4~), libelf-dev, make").unwrap(), ["libelf-dev", "make"]);
    // First alternative the archive has (and whose version fits), as apt.
    assert_eq!(needs("sysvinit-utils (>= 3.05-4~) | lsb-base (>= 3.0-6), dkms").unwrap(), ["sysvinit-utils"]);
    assert_eq!(needs("sysvinit-utils (>= 9) | lsb-base").unwrap(), ["lsb-base"]);
    assert_eq!(needs("ghost | perl:any").unwrap(), ["perl"], "arch qualifiers do not matter for names");
    assert_eq!(needs("awk").unwrap(), ["mawk"], "a virtual name: its provider");
    assert_eq!(
        needs("linux-image-6.1.0-56-amd64 | make").unwrap(),
        Vec::<String>::new(),
        "excluded first: met outside"
    );
    assert_eq!(needs("foo [arm64], make [amd64]").unwrap(), ["make"]);
    let e = needs("libfoo-dev (>= 1)").unwrap_err();
    assert_eq!(e, "no configured package source offers it (no package or provider named libfoo-dev)");
    let e = needs("libelf-dev (>= 0.190) | ghost").unwrap_err();
    assert!(e.contains("libelf-dev is at 0.188-2.1; no package or provider named ghost"), "{e}");
}

/// The needs are roots of the lock: resolved with dkms excluded (another
/// -dkms package brings its tree, not dkms's pile), named in the lock's text;
/// a lock without them is the lock it always was.
#[test]
fn needs_are_locked_without_dkms_and_leave_plain_locks_alone() {
    let a = archive();
    let recipe = Recipe::builtin();
    let plain = Lock::resolve(&a, &recipe, "6.1.0-56-amd64", &[]).unwrap();
    assert!(plain.extras.is_empty() && !plain.text().contains("extra"));
    let extras = vec!["xtables-addons-dkms".to_string(), "libelf-dev".to_string(), "libelf-dev".to_string()];
    let lock = Lock::resolve(&a, &recipe, "6.1.0-56-amd64", &extras).unwrap();
    assert_eq!(lock.extras, ["libelf-dev", "xtables-addons-dkms"], "sorted, once each");
    let names: Vec<&str> = lock.packages.iter().map(|p| p.name.as_str()).collect();
    for wanted in ["libelf-dev", "libelf1", "xtables-addons-dkms", "xtables-addons-common", "make", "gcc-12"] {
        assert!(names.contains(&wanted), "{wanted} in {names:?}");
    }
    assert!(!names.contains(&"dkms") && !names.contains(&"kmod"), "{names:?}");
    assert!(lock.text().ends_with("extra libelf-dev\nextra xtables-addons-dkms\n"), "{}", lock.text());
    assert_ne!(lock.hash(), plain.hash());
    assert_eq!(lock.headers_hash(), plain.headers_hash(), "needs are not the kernel's");
    // Round trip through a lock file.
    let back = Lock::parse_file(&lock.file_text(), "t.lock").unwrap();
    assert_eq!(back.extras, lock.extras);
    assert_eq!(back.hash(), lock.hash());
    let e = Lock::resolve(&a, &recipe, "6.1.0-56-amd64", &["libnothing-dev".into()]).unwrap_err().to_string();
    assert!(e.contains("libnothing-dev"), "{e}");
}

#[test]
fn packages_are_found_by_name_and_version() {
    let a = Archive::from_packages(
        "amd64",
        vec![
            pkg("vpoll-dkms", "0.1-3", "", ""),
            pkg("vpoll-dkms", "0.1-2", "", ""),
            pkg("v4l2loopback-dkms", "0.12.7-2", "", ""),
        ],
    );
    assert_eq!(find_package(&a, "vpoll-dkms", None).unwrap().version, "0.1-3");
    assert_eq!(find_package(&a, "vpoll-dkms", Some("0.1-2")).unwrap().version, "0.1-2");
    assert_eq!(find_package(&a, "vpoll-dkms", Some("0:0.1-2")).unwrap().version, "0.1-2", "dpkg's equality");
    let e = find_package(&a, "vpoll-dkms", Some("9")).unwrap_err().to_string();
    assert_eq!(e, "pkg:vpoll-dkms=9: the configured package sources have vpoll-dkms only in version(s) 0.1-3, 0.1-2");
    let e = find_package(&a, "vpol-dkms", None).unwrap_err().to_string();
    assert!(e.starts_with("pkg:vpol-dkms: no package vpol-dkms in any configured package source"), "{e}");
    assert!(e.contains("similar names: vpoll-dkms"), "{e}");
    let e = find_package(&a, "no-such-package-dkms", None).unwrap_err().to_string();
    assert!(e.ends_with("(the sources offer 2 -dkms packages: v4l2loopback-dkms, vpoll-dkms, …)"), "{e}");
}

#[test]
fn links_out_of_a_package_tree_are_dropped_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path();
    fs::create_dir(tree.join("sub")).unwrap();
    std::os::unix::fs::symlink("../../share/doc/x/README.gz", tree.join("README.gz")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", tree.join("sub/abs")).unwrap();
    std::os::unix::fs::symlink("../dkms.conf", tree.join("sub/inside")).unwrap();
    std::os::unix::fs::symlink("../../x", tree.join("sub/out")).unwrap();
    fs::write(tree.join("dkms.conf"), "PACKAGE_NAME=x\n").unwrap();
    let dropped = drop_escaping_links(tree).unwrap();
    assert_eq!(dropped, ["README.gz", "sub/abs", "sub/out"]);
    assert!(fs::symlink_metadata(tree.join("sub/inside")).is_ok(), "a link inside the tree stays");
}

#[test]
fn a_chain_of_links_that_climbs_out_of_a_package_tree_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path();
    fs::write(tree.join("dkms.conf"), "PACKAGE_NAME=x\n").unwrap();
    // Each harmless read alone; together out of the tree.
    std::os::unix::fs::symlink(".", tree.join("d")).unwrap();
    std::os::unix::fs::symlink("d/d/d/../../etc/shadow", tree.join("e")).unwrap();
    // Through a link that is itself dropped: judged again without it.
    std::os::unix::fs::symlink("../..", tree.join("up")).unwrap();
    std::os::unix::fs::symlink("up/x", tree.join("via")).unwrap();
    let dropped = drop_escaping_links(tree).unwrap();
    assert_eq!(dropped, ["e", "up", "via"]);
    assert!(fs::symlink_metadata(tree.join("d")).is_ok(), "d -> . stays inside");
}
