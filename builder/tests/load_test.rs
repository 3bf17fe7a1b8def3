//! `hermod load-test`: modules built by the real pipeline, loaded and unloaded
//! in the real Debian kernel they were built for, booted from the archive's
//! linux-image package under qemu with software emulation; and a module built
//! for a kernel of another series, refused by that kernel. One test does the
//! same on another Debian release (trixie's newest kernel, whose packages
//! ship their modules xz-compressed).

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Build `source` for `kernel` into `out`; the .deb's path.
fn build(source: &str, kernel: &str, out: &Path) -> PathBuf {
    let result = run(&shared_store(), &["build", source, "--kernel", kernel, "--out", out.to_str().unwrap(), "--json"]);
    assert!(result.status.success(), "build failed: {}", stderr(&result));
    let report: serde_json::Value = serde_json::from_str(stdout(&result).trim()).expect("one JSON object");
    PathBuf::from(report["deb"].as_str().unwrap())
}

fn load_test(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut all = vec!["load-test", "--json"];
    all.extend_from_slice(args);
    let out = run(&shared_store(), &all);
    let report = serde_json::from_str(stdout(&out).trim()).unwrap_or(serde_json::Value::Null);
    (out.status.code(), report, stderr(&out))
}

fn module<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {report}"))
}

fn kernel_lines(outcome: &serde_json::Value) -> String {
    outcome["kernel"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_owned()).collect::<Vec<_>>().join("\n")
}

#[test]
fn hello_loads_and_unloads_in_its_kernel() {
    let kernel = kernel();
    let out = tempfile::tempdir().unwrap();
    let deb = build(testdata("modules/hello").to_str().unwrap(), &kernel, out.path());

    // No --kernel: the one the module was built for (its vermagic).
    let (code, report, err) = load_test(&[deb.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["finished"], true);
    assert_eq!(report["kernel"], kernel);
    assert!(report["image"].as_str().unwrap().starts_with(&format!("linux-image-{kernel}")), "{report}");
    let hello = module(&report, "hello");
    assert_eq!(hello["load"]["ok"], true, "{hello}");
    assert_eq!(hello["unload"]["ok"], true, "{hello}");
    // The module's own init and exit ran in that kernel: their printk lines.
    assert!(kernel_lines(&hello["load"]).contains("hello: hello from hermod"), "{hello}");
    assert!(kernel_lines(&hello["unload"]).contains("hello: goodbye"), "{hello}");
    assert!(report["dependencies"].as_array().unwrap().is_empty(), "hello needs no other module: {report}");

    // A wall-clock limit shorter than the boot: the machine is killed, and
    // the kernel that never reached the test is no pass.
    let (code, _, err) = load_test(&["--timeout", "1", deb.to_str().unwrap()]);
    assert_eq!(code, Some(8), "{err}");
    assert!(err.contains("did not boot to the test") && err.contains("wall-clock limit"), "{err}");
}

/// The farm on trixie: hello built by hermod for the newest kernel trixie's
/// archive offers (its meta package's, as apt reads the machine's mirrors
/// renamed to trixie), and `hermod load-test` boots that kernel's own
/// image, taken from trixie's archive, with trixie's busybox-static. Debian
/// 13 packages compress modules (`hello.ko.xz`): the load test hands the
/// kernel the plain ELF.
#[test]
fn hello_loads_and_unloads_in_the_newest_trixie_kernel() {
    let kernel = common::debroot::newest_kernel("trixie", "amd64");
    let out = tempfile::tempdir().unwrap();
    let deb = build(testdata("modules/hello").to_str().unwrap(), &kernel, out.path());
    let (code, report, err) = load_test(&[deb.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["finished"], true, "{report}");
    assert_eq!(report["kernel"], kernel.as_str());
    let image = report["image"].as_str().unwrap();
    assert!(image.starts_with(&format!("linux-image-{kernel} ")), "{report}");
    let hello = module(&report, "hello");
    assert!(
        hello["origin"].as_str().unwrap().ends_with(&format!("lib/modules/{kernel}/updates/dkms/hello.ko.xz")),
        "trixie's package holds the module compressed, as its kernel's own: {hello}"
    );
    assert!(hello["vermagic"].as_str().unwrap().starts_with(&format!("{kernel} ")), "{hello}");
    assert_eq!(hello["load"]["ok"], true, "{hello}");
    assert_eq!(hello["unload"]["ok"], true, "{hello}");
    assert!(kernel_lines(&hello["load"]).contains("hello: hello from hermod"), "{hello}");
    assert!(kernel_lines(&hello["unload"]).contains("hello: goodbye"), "{hello}");
}

/// testdata/modules/panics calls panic() in its init: the guest stops in
/// the middle of the test, and the report names the step and the panic.
#[test]
fn a_module_that_panics_the_kernel_is_reported_with_the_panic() {
    let kernel = kernel();
    let out = tempfile::tempdir().unwrap();
    let deb = build(testdata("modules/panics").to_str().unwrap(), &kernel, out.path());
    let (code, report, err) = load_test(&[deb.to_str().unwrap()]);
    assert_eq!(code, Some(14), "{err}");
    assert_eq!(report["passed"], false, "{report}");
    assert_eq!(report["finished"], false, "{report}");
    assert_eq!(report["timed_out"], false, "panic=-1 and -no-reboot end the run at once: {report}");
    assert_eq!(report["interrupted"]["op"], "insmod", "{report}");
    assert_eq!(report["interrupted"]["name"], "panics", "{report}");
    let crash = report["interrupted"]["crash"].as_str().unwrap_or_default();
    assert!(crash.contains("Kernel panic") && crash.contains("crashing on purpose"), "{report}");
    assert!(!report["console_tail"].as_array().unwrap().is_empty(), "{report}");
    assert!(err.contains("panics: the kernel crashed or hung while loading it"), "{err}");
}

/// The newest kernel of `kernel`'s flavour from another upstream series
/// (6.12 for 6.1), read from the list hermod gives when asked for a kernel
/// the archive has no image of (which is exit 4); `None` when the archive
/// offers only one series.
fn kernel_of_another_series(kernel: &str, deb: &Path) -> Option<String> {
    let flavour: Vec<&str> = kernel.split('-').skip_while(|p| p.starts_with(|c: char| c.is_ascii_digit())).collect();
    let absent = format!("0.0.1-1-{}", flavour.join("-"));
    let (code, _, err) = load_test(&["--kernel", &absent, deb.to_str().unwrap()]);
    assert_eq!(code, Some(4), "{err}");
    let list =
        err.split("of that flavour: ").nth(1).expect("the offered kernels are listed").split(')').next().unwrap();
    let offered: Vec<&str> = list.split_whitespace().collect();
    assert!(offered.contains(&kernel), "{kernel} not in {offered:?}");
    let series = |k: &str| k.split(['.', '-', '+']).take(2).collect::<Vec<_>>().join(".");
    offered.iter().rev().find(|k| series(k) != series(kernel)).map(|k| k.to_string())
}

#[test]
fn a_module_built_for_another_kernel_fails_to_load() {
    let kernel = kernel();
    let out = tempfile::tempdir().unwrap();
    let deb = build(testdata("modules/hello").to_str().unwrap(), &kernel, out.path());
    // Within one series Debian keeps the symbol versions the modules use, and
    // with CONFIG_MODVERSIONS the kernel then accepts a module of another
    // release of that series (it compares those, not the release): the kernel
    // that must refuse it is one of another series.
    let Some(other) = kernel_of_another_series(&kernel, &deb) else {
        panic!("the archive offers no kernel of another series than {kernel}; set HERMOD_TEST_KERNEL")
    };
    let (code, report, err) = load_test(&["--kernel", &other, deb.to_str().unwrap()]);
    assert_eq!(code, Some(14), "{err}");
    assert_eq!(report["passed"], false, "{report}");
    assert_eq!(report["finished"], true, "a refused module is no crash: {report}");
    let hello = module(&report, "hello");
    assert_eq!(hello["load"]["ok"], false, "{hello}");
    assert!(hello["unload"].is_null(), "what did not load is not unloaded: {hello}");
    // The kernel's own reason, and insmod's, are in the report and the error.
    let said = format!("{}\n{}", kernel_lines(&hello["load"]), hello["load"]["output"]);
    assert!(
        [
            "disagrees about version of symbol",
            "version magic",
            "struct module size",
            "Invalid module format",
            "invalid module format"
        ]
        .iter()
        .any(|m| said.contains(m)),
        "{said}"
    );
    assert!(err.contains("hello: failed to load"), "{err}");
}

#[test]
fn what_holds_no_module_is_refused_before_anything_boots() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.deb");
    std::fs::write(&junk, b"not a package").unwrap();
    let (code, _, err) = load_test(&[junk.to_str().unwrap()]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("junk.deb"), "{err}");
    let (code, _, err) = load_test(&[dir.path().join("missing.ko").to_str().unwrap()]);
    assert_eq!(code, Some(3), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = load_test(&[empty.path().to_str().unwrap()]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("no kernel modules"), "{err}");
}

/// v4l2loopback, the real Debian -dkms package: it needs the kernel's own
/// videodev (and what videodev needs), found by following modinfo's depends
/// in the image's module tree.
#[test]
fn v4l2loopback_loads_with_its_in_kernel_dependencies() {
    let kernel = kernel();
    let out = tempfile::tempdir().unwrap();
    let deb = build("pkg:v4l2loopback-dkms", &kernel, out.path());
    let (code, report, err) = load_test(&["--kernel", &kernel, deb.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["passed"], true, "{report}");
    let deps: Vec<&str> =
        report["dependencies"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert!(deps.contains(&"videodev"), "{deps:?}");
    for dep in report["dependencies"].as_array().unwrap() {
        assert_eq!(dep["load"]["ok"], true, "{dep}");
        assert!(dep["path"].as_str().unwrap().starts_with(&format!("/lib/modules/{kernel}/kernel/")), "{dep}");
    }
    // v4l2loopback's depends names videodev alone; what else is loaded was
    // found by recursion, and comes before videodev, which needs it.
    assert!(deps.len() >= 2, "videodev's own dependencies were not followed: {deps:?}");
    assert_eq!(deps.last(), Some(&"videodev"), "{deps:?}");
    let v4l2 = module(&report, "v4l2loopback");
    assert_eq!(v4l2["unload"]["ok"], true, "{v4l2}");
    assert!(kernel_lines(&v4l2["load"]).contains("v4l2loopback driver version"), "{v4l2}");
}

/// `hermod verify --boot`: the two builds match, and the package built loads
/// and unloads in its kernel; the load test is part of the JSON report.
#[test]
fn verify_boot_rebuilds_compares_and_loads_hello() {
    let hello = testdata("modules/hello");
    let k = kernel();
    let out = run(&shared_store(), &["verify", hello.to_str().unwrap(), "--kernel", &k, "--boot", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("one JSON object");
    assert_eq!(report["match"], true);
    let boot = &report["boot"];
    assert_eq!(boot["kernel"], k.as_str());
    assert_eq!(boot["passed"], true, "{boot}");
    let hello = module(boot, "hello");
    assert!(kernel_lines(&hello["load"]).contains("hello from hermod"), "{hello}");
}
