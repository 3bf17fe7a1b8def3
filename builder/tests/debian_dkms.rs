//! Debian's own `-dkms` packages, unpacked from the archive's .deb as a sysadmin
//! would (`apt-get download` + `dpkg-deb -x`), build into module packages.

mod common;

use common::*;

/// Fetch `<name>` with apt and return the /usr/src/<module>-<version> tree inside it.
fn unpack_dkms_package(name: &str, into: &std::path::Path) -> std::path::PathBuf {
    let status = std::process::Command::new("apt-get")
        .args(["download", name])
        .current_dir(into)
        .status()
        .expect("apt-get runs");
    assert!(status.success(), "apt-get download {name}");
    let deb = list(into).into_iter().find(|f| f.ends_with(".deb")).expect("downloaded .deb");
    let root = into.join("root");
    tool("dpkg-deb", &["-x", into.join(deb).to_str().unwrap(), root.to_str().unwrap()]);
    let usr_src = root.join("usr/src");
    let dir = list(&usr_src).into_iter().next().expect("a tree under /usr/src");
    usr_src.join(dir)
}

#[test]
fn v4l2loopback_dkms_from_the_archive_builds() {
    let kernel = kernel();
    let work = tempfile::tempdir().unwrap();
    let source = unpack_dkms_package("v4l2loopback-dkms", work.path());
    let out = work.path().join("out");
    let result = run(
        &shared_store(),
        &["build", source.to_str().unwrap(), "--kernel", &kernel, "--out", out.to_str().unwrap(), "--json"],
    );
    assert!(result.status.success(), "{}", stderr(&result));
    let report: serde_json::Value = serde_json::from_str(stdout(&result).trim()).unwrap();
    assert_eq!(report["package"], format!("v4l2loopback-modules-{kernel}"));
    let deb = report["deb"].as_str().unwrap();
    let listing = tool("dpkg-deb", &["-c", deb]);
    assert!(listing.contains(&format!("./lib/modules/{kernel}/updates/dkms/v4l2loopback.ko")), "{listing}");
    let x = work.path().join("x");
    tool("dpkg-deb", &["-x", deb, x.to_str().unwrap()]);
    let ko = x.join(format!("lib/modules/{kernel}/updates/dkms/v4l2loopback.ko"));
    let vermagic = tool("/sbin/modinfo", &["-F", "vermagic", ko.to_str().unwrap()]);
    assert!(vermagic.starts_with(&format!("{kernel} ")), "{vermagic}");
}
