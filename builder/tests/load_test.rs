//! `hermod load-test`: modules built by the real pipeline, loaded and unloaded
//! in the real Debian kernel they were built for, booted from the archive's
//! linux-image package under qemu with software emulation; and a module built
//! for a kernel of another series, refused by that kernel. One test does the
//! same on another Debian release (trixie's newest kernel, whose packages
//! ship their modules xz-compressed), two on another architecture (hello
//! cross-built for trixie's newest arm64 kernel, and that image's own
//! modules, under qemu-system-aarch64).

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

/// A relocatable ELF64 of `machine` (62 x86-64, 183 aarch64) whose only
/// content is a `.modinfo` section of `strings`: what `hermod load-test`
/// reads of a module, and a module every kernel refuses to load.
fn fake_module(machine: u16, strings: &[&str]) -> Vec<u8> {
    let shstrtab = b"\0.shstrtab\0.modinfo\0";
    let modinfo: Vec<u8> = strings.iter().flat_map(|s| s.bytes().chain([0])).collect();
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4..7].copy_from_slice(&[2, 1, 1]); // ELFCLASS64, little-endian, EV_CURRENT
    elf[0x10] = 1; // ET_REL
    elf[0x12..0x14].copy_from_slice(&machine.to_le_bytes());
    elf[0x14] = 1; // e_version
    elf[0x34] = 64; // e_ehsize
    let (str_off, info_off) = (elf.len(), elf.len() + shstrtab.len());
    elf.extend_from_slice(shstrtab);
    elf.extend_from_slice(&modinfo);
    elf.resize(elf.len().next_multiple_of(8), 0);
    let shoff = elf.len();
    for (name, kind, off, size) in
        [(0u32, 0u32, 0, 0), (1, 3, str_off, shstrtab.len()), (11, 1, info_off, modinfo.len())]
    {
        let mut sh = [0u8; 64];
        sh[..4].copy_from_slice(&name.to_le_bytes());
        sh[4..8].copy_from_slice(&kind.to_le_bytes());
        sh[24..32].copy_from_slice(&(off as u64).to_le_bytes());
        sh[32..40].copy_from_slice(&(size as u64).to_le_bytes());
        elf.extend_from_slice(&sh);
    }
    elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
    elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes()); // e_shnum
    elf[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes()); // e_shstrndx
    elf
}

/// The newest trixie arm64 kernel, as apt reads the archive's arm64 indices.
fn arm64_kernel() -> String {
    common::debroot::newest_kernel_of("trixie", "arm64", Some("arm64"))
}

/// The arm64 guest: hello cross-built by hermod for trixie's newest arm64
/// kernel, load-tested in that kernel's own arm64 image, booted with
/// `qemu-system-aarch64 -machine virt` and trixie's arm64 busybox-static.
/// The kernel comes from the module's vermagic, the machine from the
/// kernel's platform (trixie-arm64). A module of another architecture is
/// refused before anything boots.
#[test]
fn hello_and_v4l2loopback_load_and_unload_in_the_newest_trixie_arm64_kernel() {
    if !require_tool("qemu-system-aarch64") {
        return;
    }
    let kernel = arm64_kernel();
    let out = tempfile::tempdir().unwrap();
    let deb = build(testdata("modules/hello").to_str().unwrap(), &kernel, out.path());
    assert!(deb.to_str().unwrap().ends_with("_arm64.deb"), "{}", deb.display());
    // Debian's v4l2loopback-dkms, cross-built too: its in-kernel dependencies
    // (videodev, mc) come from the arm64 image.
    let v4l2 = build("pkg:v4l2loopback-dkms", &kernel, out.path());
    let (code, report, err) = load_test(&[deb.to_str().unwrap(), v4l2.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["finished"], true, "{report}");
    assert_eq!(report["kernel"], kernel.as_str());
    assert_eq!(report["architecture"], "arm64", "{report}");
    assert!(report["image"].as_str().unwrap().starts_with(&format!("linux-image-{kernel} ")), "{report}");
    let hello = module(&report, "hello");
    assert!(hello["origin"].as_str().unwrap().ends_with("/hello.ko.xz"), "{hello}");
    assert!(hello["vermagic"].as_str().unwrap().ends_with(" aarch64"), "{hello}");
    assert_eq!(hello["load"]["ok"], true, "{hello}");
    assert_eq!(hello["unload"]["ok"], true, "{hello}");
    // hello's own init and exit ran in the arm64 kernel: their printk lines.
    assert!(kernel_lines(&hello["load"]).contains("hello: hello from hermod"), "{hello}");
    assert!(kernel_lines(&hello["unload"]).contains("hello: goodbye"), "{hello}");
    let v4l2 = module(&report, "v4l2loopback");
    assert_eq!((&v4l2["load"]["ok"], &v4l2["unload"]["ok"]), (&true.into(), &true.into()), "{v4l2}");
    assert!(kernel_lines(&v4l2["load"]).contains("v4l2-loopback driver version"), "{v4l2}");
    eprintln!("arm64: {kernel} booted, loaded and unloaded hello and v4l2loopback in {} s", report["seconds"]);

    // An amd64 module: refused with both architectures named, before the boot.
    let amd64 = out.path().join("amd64.ko");
    std::fs::write(&amd64, fake_module(62, &["name=amd64", &format!("vermagic={kernel} SMP")])).unwrap();
    let (code, report, err) = load_test(&["--kernel", &kernel, amd64.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&format!("a module for amd64, but {kernel} is an arm64 kernel")), "{err}");
    assert!(report.is_null(), "no report: nothing booted: {report}");
}

/// The arm64 image's own modules (`.ko.xz`, as trixie ships them):
/// `macvtap` with its dependencies `tap` and `macvlan` found in the image,
/// and `tun`, whose init prints a line, load and unload; a module that is
/// no real module is refused by the arm64 kernel itself (exit 14).
#[test]
fn the_arm64_images_own_modules_load_with_their_dependencies_and_a_fake_one_is_refused() {
    if !require_tool("qemu-system-aarch64") {
        return;
    }
    let kernel = arm64_kernel();
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.ko");
    let vermagic = format!("vermagic={kernel} SMP mod_unload modversions aarch64");
    std::fs::write(&bogus, fake_module(183, &["name=bogus", &vermagic])).unwrap();
    // (This also fetches the image and unpacks it into the store.)
    let (code, report, err) = load_test(&[bogus.to_str().unwrap()]);
    assert_eq!(code, Some(14), "{err}");
    assert_eq!(report["architecture"], "arm64", "{report}");
    assert_eq!(report["finished"], true, "a refused module is no crash: {report}");
    let refused = module(&report, "bogus");
    assert_eq!(refused["load"]["ok"], false, "{refused}");
    assert!(refused["load"]["output"].to_string().contains("invalid module format"), "{refused}");
    eprintln!("arm64: {kernel} booted, refused a fake module, powered off in {} s", report["seconds"]);

    let images = shared_store().join("boot-images");
    let image = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&format!("linux-image-{kernel}_")))
        .unwrap_or_else(|| panic!("{kernel}'s image is not unpacked in {}", images.display()));
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    for name in ["macvtap", "tun"] {
        let file = format!("{name}.ko.xz");
        std::fs::copy(image.join("modules/kernel/drivers/net").join(&file), modules.join(&file)).unwrap();
    }
    let (code, report, err) = load_test(&[modules.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["kernel"], kernel.as_str());
    assert_eq!(report["architecture"], "arm64", "{report}");
    for name in ["macvtap", "tun"] {
        let m = module(&report, name);
        assert_eq!(m["load"]["ok"], true, "{m}");
        assert_eq!(m["unload"]["ok"], true, "{m}");
    }
    assert!(kernel_lines(&module(&report, "tun")["load"]).contains("Universal TUN/TAP device driver"), "{report}");
    let deps: Vec<&str> =
        report["dependencies"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(deps, ["tap", "macvlan"], "macvtap's depends, from the arm64 image: {report}");
    for dep in report["dependencies"].as_array().unwrap() {
        assert_eq!(dep["load"]["ok"], true, "{dep}");
        let path = dep["path"].as_str().unwrap();
        assert!(path.starts_with(&format!("/lib/modules/{kernel}/kernel/drivers/net/")), "{dep}");
    }
    eprintln!("arm64: {kernel} booted, loaded and unloaded macvtap and tun in {} s", report["seconds"]);
}
