//! arm64 modules from this amd64 master: a cross build root (the arm64
//! headers, the master's make, kbuild tools and cross compiler) gives arm64
//! packages whose modules are AArch64 objects with the arm64 kernel's
//! vermagic, byte-identical wherever and in whichever store they are built;
//! one repository serves them beside the amd64 ones, and apt of an arm64
//! machine sees its own. Real archive, real builds, real apt.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// The newest trixie arm64 kernel, as apt reads the archive's arm64 indices.
fn arm64_kernel() -> String {
    common::debroot::newest_kernel_of("trixie", "arm64", Some("arm64"))
}

/// Build `sources` for `kernel` into `out` with `store`: the JSON reports.
fn build(store: &Path, sources: &[&str], kernel: &str, out: &Path) -> Vec<serde_json::Value> {
    let mut args = vec!["build"];
    args.extend(sources);
    args.extend(["--kernel", kernel, "--json", "--out", out.to_str().unwrap()]);
    let result = run(store, &args);
    assert!(result.status.success(), "{}", stderr(&result));
    stdout(&result).lines().map(|l| serde_json::from_str(l).expect("a JSON report")).collect()
}

/// The one module of `deb`, decompressed, and its `modinfo -F vermagic`.
fn module_of(deb: &str, kernel: &str) -> (PathBuf, String, tempfile::TempDir) {
    let x = tempfile::tempdir().unwrap();
    tool("dpkg-deb", &["-x", deb, x.path().to_str().unwrap()]);
    let dir = x.path().join(format!("usr/lib/modules/{kernel}/updates/dkms"));
    let files = list(&dir);
    let [name] = &files[..] else { panic!("one module in {deb}: {files:?}") };
    let xz = dir.join(name);
    assert!(name.ends_with(".ko.xz"), "trixie's arm64 kernel compresses its modules with xz: {name}");
    let vermagic = tool("/sbin/modinfo", &["-F", "vermagic", xz.to_str().unwrap()]).trim().to_owned();
    let ko = x.path().join("module.ko");
    let raw = std::process::Command::new("xz").args(["-dc", xz.to_str().unwrap()]).output().expect("xz runs");
    assert!(raw.status.success());
    std::fs::write(&ko, raw.stdout).unwrap();
    (ko, vermagic, x)
}

#[test]
fn hello_and_v4l2loopback_build_for_a_trixie_arm64_kernel_on_this_amd64_master() {
    if !require_tool("xz") || !require_tool("readelf") {
        return;
    }
    let kernel = arm64_kernel();
    assert!(kernel.ends_with("+deb13-arm64"), "{kernel}");
    let out = tempfile::tempdir().unwrap();
    let hello = testdata("modules/hello");
    let arm64_only = testdata("modules/arm64-only");
    let reports = build(
        &shared_store(),
        &[hello.to_str().unwrap(), "pkg:v4l2loopback-dkms", arm64_only.to_str().unwrap()],
        &kernel,
        out.path(),
    );
    assert_eq!(reports.len(), 3, "{reports:?}");
    for report in &reports {
        assert_eq!(report["status"], "built", "{report}");
        let deb = report["deb"].as_str().unwrap();
        assert!(deb.ends_with("_arm64.deb"), "{deb}");
        assert_eq!(tool("dpkg-deb", &["-f", deb, "Architecture"]).trim(), "arm64");
        let depends = tool("dpkg-deb", &["-f", deb, "Depends"]);
        assert_eq!(depends.trim(), format!("linux-image-{kernel} | linux-image-{kernel}-unsigned"));
        let (ko, vermagic, _x) = module_of(deb, &kernel);
        assert_eq!(vermagic, format!("{kernel} SMP mod_unload modversions aarch64"), "{deb}");
        let header = tool("readelf", &["-h", ko.to_str().unwrap()]);
        assert!(header.contains("AArch64") && header.contains("REL (Relocatable file)"), "{deb}:\n{header}");
    }
    // The plan's entry names the architecture and the key the build computed.
    let plan = run(&shared_store(), &["plan", "--modules", hello.to_str().unwrap(), "--kernels", &kernel]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan: serde_json::Value = serde_json::from_str(stdout(&plan).trim()).unwrap();
    let entry = &plan["include"][0];
    assert_eq!((&entry["architecture"], &entry["key"]), (&"arm64".into(), &reports[0]["key"]), "{plan}");

    // BUILD_EXCLUSIVE_ARCH saw `aarch64` above; for an amd64 kernel it skips.
    let skipped = run(
        &shared_store(),
        &["build", arm64_only.to_str().unwrap(), "--kernel", &common::kernel(), "--out", out.path().to_str().unwrap()],
    );
    assert_eq!(skipped.status.code(), Some(77), "skipped, as DKMS skips: {}", stderr(&skipped));
    let said = format!("{}{}", stdout(&skipped), stderr(&skipped));
    assert!(said.contains("BUILD_EXCLUSIVE_ARCH=\"^aarch64$\" does not match x86_64"), "{said}");

    // Another store, the source at another path: the same bytes.
    let store = private_store("cross");
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("somewhere/else/hello");
    copy_tree(&hello, &copy);
    let again_out = tempfile::tempdir().unwrap();
    let again = build(store.path(), &[copy.to_str().unwrap()], &kernel, again_out.path());
    assert_eq!(again[0]["cache"], "miss", "built afresh in the new store: {}", again[0]);
    assert_eq!(
        sha256(Path::new(again[0]["deb"].as_str().unwrap())),
        sha256(Path::new(reports[0]["deb"].as_str().unwrap())),
        "an arm64 package is the same whatever the path and store"
    );
    assert_eq!(again[0]["key"], reports[0]["key"]);

    // verify: two builds under varied conditions, bypassing the cache, the same bytes.
    let verify = run(&shared_store(), &["verify", hello.to_str().unwrap(), "--kernel", &kernel]);
    assert!(verify.status.success() && stdout(&verify).contains("MATCH: the same bytes"), "{}", stderr(&verify));

    // Signed for Secure Boot by kbuild's sign-file (an amd64 program of the root).
    if require_tool("openssl") {
        let keys = tempfile::tempdir().unwrap();
        let (key, cert) = (keys.path().join("mok.key"), keys.path().join("mok.crt"));
        let subject = ["-subj", "/CN=hermod cross test/", "-days", "30", "-keyout", key.to_str().unwrap()];
        let made = std::process::Command::new("openssl")
            .args(["req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-out", cert.to_str().unwrap()])
            .args(subject)
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let signed_out = tempfile::tempdir().unwrap();
        let mut args = vec!["build", hello.to_str().unwrap(), "--kernel", &kernel, "--json", "--out"];
        args.extend([signed_out.path().to_str().unwrap(), "--mok-signing-key", key.to_str().unwrap()]);
        args.extend(["--mok-certificate", cert.to_str().unwrap()]);
        let signed = run(store.path(), &args);
        assert!(signed.status.success(), "{}", stderr(&signed));
        let report: serde_json::Value = serde_json::from_str(stdout(&signed).trim()).unwrap();
        let (ko, _, _x) = module_of(report["deb"].as_str().unwrap(), &kernel);
        let signer = tool("/sbin/modinfo", &["-F", "signer", ko.to_str().unwrap()]);
        assert_eq!(signer.trim(), "hermod cross test");
    }

    // The lock names both architectures: the arm64 headers, the master's tools and compiler.
    let lock = run(store.path(), &["rootfs", "lock", "--kernel", &kernel]);
    assert!(lock.status.success(), "{}", stderr(&lock));
    let text = stdout(&lock);
    assert!(text.contains("\narchitecture arm64\nhost-architecture amd64\n"), "{text}");
    let arch_of = |name: &str| -> String {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("package {name} ")))
            .unwrap_or_else(|| panic!("{name}:\n{text}"));
        line.split(' ').nth(3).unwrap().to_owned()
    };
    assert_eq!(arch_of(&format!("linux-headers-{kernel}")), "arm64");
    assert_eq!(arch_of("gcc-14-aarch64-linux-gnu"), "amd64");
    assert_eq!(arch_of("make"), "amd64");
    let kbuild = text.lines().find(|l| l.starts_with("package linux-kbuild-")).expect("kbuild is in the root");
    assert_eq!(kbuild.split(' ').nth(3), Some("amd64"), "kbuild's tools run on the master: {kbuild}");
    assert!(!text.contains(" gcc-14 "), "no native arm64 compiler:\n{text}");

    // A declared need of the C library's headers is the cross compiler's own
    // (what libc6-dev:arm64 is on an arm64 machine), never the master's.
    let needs = run(store.path(), &["rootfs", "lock", "--kernel", &kernel, "--build-depends", "libc6-dev"]);
    assert!(needs.status.success(), "{}", stderr(&needs));
    let text = stdout(&needs);
    assert!(text.contains("\nextra libc6-dev-arm64-cross\n"), "{text}");
    assert!(!text.contains("package libc6-dev "), "{text}");
}

#[test]
fn one_repository_serves_amd64_and_arm64_and_apt_of_each_sees_its_own() {
    if !require_tool("gpg") || !require_root() {
        return;
    }
    let arm64 = arm64_kernel();
    let amd64 = kernel();
    // World-readable: apt's `_apt` user reads the repository.
    let work = tempfile::Builder::new().prefix("hermod-cross-repo").tempdir_in("/var/tmp").unwrap();
    std::fs::set_permissions(work.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = work.path().join("out");
    let hello = testdata("modules/hello");
    let a = build(&shared_store(), &[hello.to_str().unwrap()], &amd64, &out);
    let b = build(&shared_store(), &[hello.to_str().unwrap()], &arm64, &out);
    let (amd64_deb, arm64_deb) = (a[0]["deb"].as_str().unwrap(), b[0]["deb"].as_str().unwrap());

    let repo = work.path().join("repo");
    let prefix = work.path().join("farm");
    let keygen = run(
        &shared_store(),
        &["repo", "keygen", "--out", prefix.to_str().unwrap(), "--url", &format!("file:{}", repo.display())],
    );
    assert!(keygen.status.success(), "{}", stderr(&keygen));
    let stanza = stdout(&keygen);
    let key = prefix.with_extension("key");
    let published = std::process::Command::new(hermod())
        .args([
            "--store",
            shared_store().to_str().unwrap(),
            "publish",
            "--repo",
            repo.to_str().unwrap(),
            amd64_deb,
            arm64_deb,
        ])
        .env("HERMOD_REPO_SIGN_KEY", &key)
        .output()
        .unwrap();
    assert!(published.status.success(), "{}", stderr(&published));

    let index =
        |arch: &str| std::fs::read_to_string(repo.join(format!("dists/hermod/main/binary-{arch}/Packages"))).unwrap();
    let (amd64_index, arm64_index) = (index("amd64"), index("arm64"));
    assert!(
        amd64_index.contains(&format!("Package: hello-modules-{amd64}\n")) && !amd64_index.contains(&arm64),
        "{amd64_index}"
    );
    assert!(
        arm64_index.contains(&format!("Package: hello-modules-{arm64}\n")) && !arm64_index.contains(&amd64),
        "{arm64_index}"
    );
    assert!(arm64_index.contains("Architecture: arm64\n") && !arm64_index.contains("Architecture: amd64"));
    let release = std::fs::read_to_string(repo.join("dists/hermod/Release")).unwrap();
    assert!(release.lines().any(|l| l == "Architectures: amd64 arm64"), "{release}");

    // apt of an amd64 farm machine, and the same apt told it is arm64: each
    // verifies the signed repository and sees its own architecture's package.
    let mut root = common::debroot::DebRoot::new(&common::debroot::DebRootSpec::farm(&amd64));
    root.ro_bind(work.path(), work.path().to_str().unwrap());
    root.sh_ok("rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*");
    root.write("/etc/apt/sources.list.d/hermod.sources", &stanza);
    root.sh_ok("rm -rf /var/lib/apt/lists/*");
    let as_arm64 = "-o APT::Architecture=arm64 -o APT::Architectures=arm64";
    root.sh_ok(&format!("apt-get {as_arm64} update 2>&1"));
    let arm64_view = root.sh_ok(&format!("apt-cache {as_arm64} policy hello-modules-{arm64} hello-modules-{amd64}"));
    assert!(
        arm64_view.contains(&format!("hello-modules-{arm64}:\n  Installed: (none)\n  Candidate: ")),
        "{arm64_view}"
    );
    // (Each command has its own /tmp: download and hash in one.)
    let got = root.sh_ok(&format!(
        "cd /tmp && apt-get {as_arm64} download hello-modules-{arm64} >&2 && sha256sum hello-modules-{arm64}_*_arm64.deb"
    ));
    assert!(got.starts_with(&sha256(Path::new(arm64_deb))), "apt downloaded the published bytes: {got}");
    let missing = root.sh(&format!("apt-get {as_arm64} download hello-modules-{amd64} 2>&1"));
    assert!(!missing.status.success(), "an arm64 machine is not offered the amd64 package");

    root.sh_ok("rm -rf /var/lib/apt/lists/* && apt-get update 2>&1");
    let amd64_view = root.sh(&format!("apt-get download hello-modules-{arm64} 2>&1"));
    assert!(!amd64_view.status.success(), "an amd64 machine is not offered the arm64 package");
    root.sh_ok(&format!("cd /tmp && apt-get download hello-modules-{amd64} 2>&1"));
}
