//! End to end: the bundled hello module, built in the real sandbox against real
//! Debian headers, packaged as a .deb that dpkg and modinfo accept.

mod common;

use common::*;

#[test]
fn hello_builds_into_a_deb_with_the_kernels_vermagic() {
    let kernel = kernel();
    let out = tempfile::tempdir().unwrap();
    let source = testdata("modules/hello");
    let result = run(
        &shared_store(),
        &["build", source.to_str().unwrap(), "--kernel", &kernel, "--out", out.path().to_str().unwrap(), "--json"],
    );
    assert!(result.status.success(), "build failed: {}", stderr(&result));

    // --json: one object per (source, kernel) with the documented fields.
    let line = stdout(&result);
    let report: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON object");
    for field in ["package", "version", "kernel", "deb", "sha256", "key", "cache", "seconds"] {
        assert!(report.get(field).is_some(), "missing {field} in {report}");
    }
    assert_eq!(report["package"], format!("hello-modules-{kernel}"));
    assert_eq!(report["kernel"], kernel);
    assert!(matches!(report["cache"].as_str(), Some("hit" | "miss")));
    assert_eq!(report["key"].as_str().unwrap().len(), 64);

    let deb = std::path::PathBuf::from(report["deb"].as_str().unwrap());
    let name = deb.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with(&format!("hello-modules-{kernel}_")) && name.ends_with("_amd64.deb"), "{name}");
    assert_eq!(deb.parent().unwrap(), out.path());
    assert_eq!(report["sha256"].as_str().unwrap(), sha256(&deb));

    let listing = tool("dpkg-deb", &["-c", deb.to_str().unwrap()]);
    assert!(listing.contains(&format!("./lib/modules/{kernel}/updates/dkms/hello.ko")), "{listing}");
    assert!(listing.contains("./usr/share/doc/"), "{listing}");

    let control = tool("dpkg-deb", &["-f", deb.to_str().unwrap(), "Depends", "Package", "Architecture"]);
    assert!(control.contains(&format!("linux-image-{kernel} | linux-image-{kernel}-unsigned")), "{control}");

    // modinfo on the packaged module shows the kernel's vermagic.
    let x = tempfile::tempdir().unwrap();
    tool("dpkg-deb", &["-x", deb.to_str().unwrap(), x.path().to_str().unwrap()]);
    let ko = x.path().join(format!("lib/modules/{kernel}/updates/dkms/hello.ko"));
    let vermagic = tool("/sbin/modinfo", &["-F", "vermagic", ko.to_str().unwrap()]);
    assert!(vermagic.starts_with(&format!("{kernel} SMP preempt mod_unload modversions")), "vermagic: {vermagic}");
    let sections = tool("readelf", &["-S", ko.to_str().unwrap()]);
    assert!(!sections.contains(".debug_info"), "strip -g removed the debug info:\n{sections}");

    // lintian (installed by .ci/run) finds no error in the package.
    if require_tool("lintian") {
        let out = std::process::Command::new("lintian")
            .args(["--no-tag-display-limit", deb.to_str().unwrap()])
            .output()
            .expect("lintian runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!text.lines().any(|l| l.starts_with("E:")), "lintian errors:\n{text}");
    }

    // The same build again is a cache hit with the same bytes.
    let again = run(
        &shared_store(),
        &["build", source.to_str().unwrap(), "--kernel", &kernel, "--out", out.path().to_str().unwrap(), "--json"],
    );
    assert!(again.status.success());
    let again: serde_json::Value = serde_json::from_str(stdout(&again).trim()).unwrap();
    assert_eq!(again["cache"], "hit");
    assert_eq!(again["sha256"], report["sha256"]);
}

#[test]
fn without_kernel_the_newest_headers_of_the_archive_are_used() {
    let store = shared_store();
    let out = tempfile::tempdir().unwrap();
    // What the archive's linux-headers-amd64 points at, read independently with apt-cache.
    let show = tool("apt-cache", &["show", "--no-all-versions", "linux-headers-amd64"]);
    let depends = show.lines().find_map(|l| l.strip_prefix("Depends: ")).expect("Depends");
    let expected = depends.split_whitespace().next().unwrap().strip_prefix("linux-headers-").unwrap();

    let source = testdata("modules/hello");
    let result = run(&store, &["build", source.to_str().unwrap(), "--out", out.path().to_str().unwrap(), "--json"]);
    assert!(result.status.success(), "{}", stderr(&result));
    let report: serde_json::Value = serde_json::from_str(stdout(&result).trim()).unwrap();
    assert_eq!(report["kernel"], expected);
}

/// The newest 6.12 kernel of the archive (the 6.12 series is configured with
/// xz-compressed modules), read with apt-cache; HERMOD_TEST_KERNEL_612 overrides.
fn kernel_612() -> String {
    if let Some(k) = std::env::var("HERMOD_TEST_KERNEL_612").ok().filter(|k| !k.is_empty()) {
        return k;
    }
    let names = tool("apt-cache", &["pkgnames", "linux-headers-6.12."]);
    let mut releases: Vec<(Vec<u32>, String)> = names
        .lines()
        .filter_map(|n| n.strip_prefix("linux-headers-")?.strip_suffix("-amd64"))
        .filter(|k| !k.contains('-'))
        .map(|k| (k.split(['.', '+']).take(3).map(|n| n.parse().unwrap_or(0)).collect(), format!("{k}-amd64")))
        .collect();
    releases.sort();
    releases.pop().expect("the archive offers a 6.12 kernel").1
}

#[test]
fn one_command_builds_for_a_6_1_and_a_6_12_kernel() {
    let (k61, k612) = (kernel(), kernel_612());
    let out = tempfile::tempdir().unwrap();
    let source = testdata("modules/hello");
    let result = run(
        &shared_store(),
        &[
            "build",
            source.to_str().unwrap(),
            "--kernel",
            &k61,
            "--kernel",
            &k612,
            "--out",
            out.path().to_str().unwrap(),
            "--json",
        ],
    );
    assert!(result.status.success(), "build failed: {}", stderr(&result));
    let reports: Vec<serde_json::Value> =
        stdout(&result).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    let kernels: Vec<&str> = reports.iter().map(|r| r["kernel"].as_str().unwrap()).collect();
    assert_eq!(kernels, [k61.as_str(), k612.as_str()], "one report per kernel, in the order asked");

    // 6.12 compresses its modules with xz, and so does its package.
    let deb = reports[1]["deb"].as_str().unwrap();
    let x = tempfile::tempdir().unwrap();
    tool("dpkg-deb", &["-x", deb, x.path().to_str().unwrap()]);
    let ko_xz = x.path().join(format!("lib/modules/{k612}/updates/dkms/hello.ko.xz"));
    assert!(ko_xz.is_file(), "{}", tool("dpkg-deb", &["-c", deb]));
    let vermagic = tool("/sbin/modinfo", &["-F", "vermagic", ko_xz.to_str().unwrap()]);
    assert!(vermagic.starts_with(&format!("{k612} SMP preempt mod_unload modversions")), "vermagic: {vermagic}");
}

/// `-v` follows the build log as the sandbox writes it, each line naming the
/// build; without it (and on a pipe) the log stays in its file.
#[test]
fn verbose_follows_the_build_log_line_by_line() {
    let out = tempfile::tempdir().unwrap();
    let hello = testdata("modules/hello");
    // A Maintainer of its own: a cache miss, so the compile step runs.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let maintainer = format!("follow test {now} <follow@hermod.invalid>");
    let args = ["build", "-v", "--maintainer", &maintainer, hello.to_str().unwrap(), "--kernel", &kernel(), "--out"];
    let mut cmd = std::process::Command::new(hermod());
    cmd.args(args).arg(out.path()).env("HERMOD_STORE", shared_store()).env("HERMOD_PACKAGE_CACHE", package_cache());
    let result = run_logged(&mut cmd, &args);
    let err = stderr(&result);
    assert!(result.status.success(), "{err}");
    let prefix = format!("hermod: [hello {}] ", kernel());
    assert!(err.lines().any(|l| l.starts_with(&prefix) && l.contains("CC [M]") && l.contains("hello.o")), "{err}");
    assert!(err.lines().any(|l| l.starts_with(&prefix) && l.contains("LD [M]")), "{err}");

    let quiet = run(
        &shared_store(),
        &["build", hello.to_str().unwrap(), "--kernel", &kernel(), "--out", out.path().to_str().unwrap()],
    );
    assert!(!stderr(&quiet).contains("CC [M]"), "no log lines without -v");
}

/// `--json` reports every (source, kernel) outcome as one object on stdout,
/// failures included: a cache hit, a build, a BUILD_EXCLUSIVE skip and a
/// failed build in one run give four objects, in the order asked.
#[test]
fn json_reports_hit_miss_skip_and_failure_alike() {
    let kernel = kernel();
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path().join("out");
    let hello = testdata("modules/hello");
    let hit =
        run(&shared_store(), &["build", hello.to_str().unwrap(), "--kernel", &kernel, "--out", out.to_str().unwrap()]);
    assert!(hit.status.success(), "{}", stderr(&hit));
    // A copy with a byte of its own: a key no store has.
    let fresh = scratch.path().join("fresh");
    copy_tree(&hello, &fresh);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    std::fs::write(fresh.join("unique.txt"), format!("{now}\n")).unwrap();
    let sources = [hello.clone(), fresh.clone(), testdata("modules/exclusive"), testdata("bad/make-fails")]
        .map(|p| p.to_str().unwrap().to_owned());
    let mut args = vec!["build"];
    args.extend(sources.iter().map(String::as_str));
    args.extend(["--kernel", &kernel, "--json", "--out", out.to_str().unwrap()]);
    let result = run(&shared_store(), &args);
    assert_eq!(result.status.code(), Some(5), "the failure decides the exit status:\n{}", stderr(&result));
    let lines: Vec<serde_json::Value> =
        stdout(&result).lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    for (line, source) in lines.iter().zip(&sources) {
        assert_eq!(line["source"], source.as_str(), "{line}");
        assert_eq!(line["kernel"], kernel.as_str(), "{line}");
    }
    assert_eq!((lines[0]["status"].as_str(), lines[0]["cache"].as_str()), (Some("built"), Some("hit")), "{}", lines[0]);
    assert_eq!(
        (lines[1]["status"].as_str(), lines[1]["cache"].as_str()),
        (Some("built"), Some("miss")),
        "{}",
        lines[1]
    );
    assert!(lines[1]["deb"].as_str().is_some_and(|d| std::path::Path::new(d).is_file()), "{}", lines[1]);
    assert_eq!(lines[2]["status"], "skipped", "{}", lines[2]);
    let failed = &lines[3];
    assert_eq!((failed["status"].as_str(), failed["exit_code"].as_i64()), (Some("failed"), Some(5)), "{failed}");
    assert!(failed["message"].as_str().is_some_and(|m| m.contains("the build failed")), "{failed}");
    assert!(failed["log"].as_str().is_some_and(|l| std::path::Path::new(l).is_file()), "the log exists: {failed}");
}
