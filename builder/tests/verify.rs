//! `hermod verify`: two real builds in the real sandbox under varied
//! conditions, compared byte for byte; `--against` a published package.
//! The hello module and Debian's v4l2loopback-dkms verify clean; the
//! deliberately non-reproducible fixture (testdata/modules/nondeterministic)
//! is reported with its module and the ELF section its randomness lands in;
//! a package altered after publishing is caught.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// `hermod verify ARGS --kernel K --json`: the exit status and the report.
fn verify(store: &Path, source: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let kernel = kernel();
    let mut args = vec!["verify", source, "--kernel", &kernel, "--json"];
    args.extend_from_slice(extra);
    let result = run(store, &args);
    let report = serde_json::from_str(stdout(&result).trim())
        .unwrap_or_else(|e| panic!("verify printed no JSON report ({e}): {}", stderr(&result)));
    (result.status.code(), report)
}

/// A copy of the hello module with a comment no other run has, so its key is
/// new: then "the cache was not written" can be checked by that key.
fn unique_hello(dir: &Path) -> PathBuf {
    let src = dir.join("hello");
    copy_tree(&testdata("modules/hello"), &src);
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let c = src.join("hello.c");
    let body = std::fs::read_to_string(&c).unwrap() + &format!("/* verify test {nonce} */\n");
    std::fs::write(c, body).unwrap();
    src
}

fn differing<'a>(report: &'a serde_json::Value, suffix: &str) -> Option<&'a serde_json::Value> {
    report["differences"].as_array().unwrap().iter().find(|d| d["member"].as_str().unwrap().ends_with(suffix))
}

#[test]
fn hello_verifies_clean_under_every_variation_and_leaves_the_cache_alone() {
    let store = shared_store();
    let work = tempfile::tempdir().unwrap();
    let src = unique_hello(work.path());
    let src = src.to_str().unwrap();

    let (status, report) = verify(&store, src, &[]);
    assert_eq!(status, Some(0), "{report:#}");
    assert_eq!(report["match"], true);
    assert!(report["differences"].as_array().unwrap().is_empty());
    let builds = report["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 2);
    assert_eq!(builds[0]["sha256"], builds[1]["sha256"]);
    assert!(builds[1]["started"].as_u64() > builds[0]["started"].as_u64(), "the second build starts a later second");

    // Every variation the issue names was applied (the suite runs as root;
    // otherwise the uid is changed in an unprivileged user namespace).
    let variations = report["variations"].as_array().unwrap();
    for name in [
        "host paths",
        "wall-clock time",
        "umask",
        "uid",
        "host name",
        "environment",
        "locale",
        "TZ",
        "CPUs and jobs",
        "file creation order",
    ] {
        let v = variations.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no {name} in {report:#}"));
        assert_eq!(v["applied"], true, "{name}: {v}");
        assert_ne!(v["first"], v["second"], "{name}");
    }

    // Neither build read nor wrote the cache: no entry under the source's key.
    let kernel = kernel();
    let key = run(&store, &["key", src, "--kernel", &kernel]);
    assert!(key.status.success(), "{}", stderr(&key));
    let key = stdout(&key).split_whitespace().next().unwrap().to_owned();
    assert!(!store.join("ac").join(&key).exists(), "verify wrote cache entry {key}");

    // The text report says MATCH and lists the variations.
    let text = run(&store, &["verify", src, "--kernel", &kernel]);
    assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
    let out = stdout(&text);
    assert!(out.contains("MATCH: the same bytes") && out.contains("umask") && out.contains("0077"), "{out}");
}

#[test]
fn nondeterministic_module_is_a_mismatch_naming_the_ko_and_its_section() {
    let store = shared_store();
    let src = testdata("modules/nondeterministic");
    let src = src.to_str().unwrap();

    let (status, report) = verify(&store, src, &[]);
    assert_eq!(status, Some(13), "a mismatch exits 13: {report:#}");
    assert_eq!(report["match"], false);
    let ko = differing(&report, "/nondeterministic.ko").unwrap_or_else(|| panic!("the .ko is not named: {report:#}"));
    assert!(ko["member"].as_str().unwrap().starts_with("data.tar:lib/modules/"), "{ko}");
    let sections: Vec<&str> =
        ko["elf_sections"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(sections.contains(&".hermod_random"), "{sections:?}");
    // Only what the randomness reaches differs: not the code.
    assert!(!sections.contains(&".text"), "{sections:?}");
    // The two packages were kept for inspection.
    let kept = PathBuf::from(report["kept"].as_str().unwrap());
    assert!(kept.join("first.deb").is_file() && kept.join("second.deb").is_file(), "{}", kept.display());
    // diffoscope's report beside them when it is installed (CI installs diffoscope-minimal);
    // otherwise the report says why there is none.
    if require_tool("diffoscope") {
        let text = std::fs::read_to_string(report["diffoscope"].as_str().expect("diffoscope ran")).unwrap();
        assert!(text.contains("nondeterministic.ko"), "{text}");
    } else {
        assert_eq!(report["diffoscope_note"], "diffoscope is not installed", "{report:#}");
    }

    // The text report names them too, and the error says what happened.
    let kernel = kernel();
    let text = run(&store, &["verify", src, "--kernel", &kernel]);
    assert_eq!(text.status.code(), Some(13));
    let out = stdout(&text);
    assert!(out.contains("MISMATCH"), "{out}");
    assert!(out.contains("nondeterministic.ko") && out.contains("ELF section .hermod_random: content"), "{out}");
    assert!(stderr(&text).contains("the two builds differ"), "{}", stderr(&text));
}

#[test]
fn against_accepts_the_published_deb_and_detects_one_modified_after_publishing() {
    let store = shared_store();
    let kernel = kernel();
    let work = tempfile::tempdir().unwrap();
    let src = testdata("modules/hello");
    let src = src.to_str().unwrap();

    // Publish: an ordinary build.
    let out = work.path().join("published");
    let built = run(&store, &["build", src, "--kernel", &kernel, "--out", out.to_str().unwrap(), "--json"]);
    assert!(built.status.success(), "{}", stderr(&built));
    let built: serde_json::Value = serde_json::from_str(stdout(&built).trim()).unwrap();
    let genuine = built["deb"].as_str().unwrap().to_owned();

    let (status, report) = verify(&store, src, &["--against", &genuine]);
    assert_eq!(status, Some(0), "{report:#}");
    assert_eq!(report["match"], true);
    let roles: Vec<&str> = report["builds"].as_array().unwrap().iter().map(|b| b["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["published", "rebuild"], "the published package is the reference, first");

    // Modified after publishing, the way someone would: unpack, change the
    // module's bytes (same length), pack again with dpkg-deb.
    let tree = work.path().join("tree");
    tool("dpkg-deb", &["-R", &genuine, tree.to_str().unwrap()]);
    let ko = tree.join(format!("lib/modules/{kernel}/updates/dkms/hello.ko"));
    let bytes = std::fs::read(&ko).unwrap();
    let at = bytes.windows(17).position(|w| w == b"hello from hermod").expect("the greeting is in the module");
    let mut altered = bytes.clone();
    altered[at..at + 17].copy_from_slice(b"HELLO FROM HERMOD");
    std::fs::write(&ko, altered).unwrap();
    let tampered = work.path().join("tampered.deb");
    tool("dpkg-deb", &["--root-owner-group", "-b", tree.to_str().unwrap(), tampered.to_str().unwrap()]);

    let (status, report) = verify(&store, src, &["--against", tampered.to_str().unwrap()]);
    assert_eq!(status, Some(13), "{report:#}");
    assert_eq!(report["match"], false);
    let ko = differing(&report, "/hello.ko").unwrap_or_else(|| panic!("the .ko is not named: {report:#}"));
    let sections = ko["elf_sections"].as_array().unwrap();
    assert!(!sections.is_empty(), "the altered section is named: {ko}");
    assert!(sections.iter().all(|s| s["what"] == "content"), "{ko}");

    // One flipped byte in the file itself.
    let mut damaged = std::fs::read(&genuine).unwrap();
    let middle = damaged.len() * 3 / 4;
    damaged[middle] ^= 0x55;
    let flipped = work.path().join("flipped.deb");
    std::fs::write(&flipped, damaged).unwrap();
    let (status, report) = verify(&store, src, &["--against", flipped.to_str().unwrap()]);
    assert_eq!(status, Some(13), "{report:#}");
    assert!(!report["differences"].as_array().unwrap().is_empty());

    // Not a package at all: bad input, before anything is built.
    let bogus = work.path().join("bogus.deb");
    std::fs::write(&bogus, "not a deb").unwrap();
    let r = run(&store, &["verify", src, "--kernel", &kernel, "--against", bogus.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(3), "{}", stderr(&r));
    assert!(stderr(&r).contains("not a .deb"), "{}", stderr(&r));
}

#[test]
fn v4l2loopback_from_the_archive_verifies_clean() {
    let (status, report) = verify(&shared_store(), "pkg:v4l2loopback-dkms", &[]);
    assert_eq!(status, Some(0), "{report:#}");
    assert_eq!(report["match"], true);
    assert!(report["package"].as_str().unwrap().starts_with("v4l2loopback-modules-"), "{report:#}");
}

#[test]
fn a_failing_build_keeps_its_exit_status() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("broken");
    copy_tree(&testdata("modules/hello"), &src);
    std::fs::write(src.join("hello.c"), "this is not C;\n").unwrap();
    let kernel = kernel();
    let r = run(&shared_store(), &["verify", src.to_str().unwrap(), "--kernel", &kernel]);
    assert_eq!(r.status.code(), Some(5), "a make error stays 5: {}", stderr(&r));
    assert!(stderr(&r).contains("the first build failed"), "{}", stderr(&r));
}
