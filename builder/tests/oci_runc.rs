//! A second runtime: `hermod oci` exports the hello build step as an OCI
//! bundle, Debian's runc runs it, and the module it leaves is byte for byte
//! the one in the .deb that `hermod build` made.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// The module file in an unpacked .deb, decompressed if the kernel wants
/// compressed modules (see `compress.rs`).
fn packaged_module(root: &Path, kernel: &str, name: &str) -> Vec<u8> {
    let dir = root.join(format!("lib/modules/{kernel}/updates/dkms"));
    let file = list(&dir).into_iter().find(|f| f.starts_with(&format!("{name}.ko"))).expect("module in the .deb");
    let bytes = std::fs::read(dir.join(&file)).unwrap();
    let mut plain = Vec::new();
    match file.rsplit_once(".ko").unwrap().1 {
        "" => return bytes,
        ".xz" => liblzma::read::XzDecoder::new(&bytes[..]).read_to_end(&mut plain).unwrap(),
        ".zst" => zstd::stream::read::Decoder::new(&bytes[..]).unwrap().read_to_end(&mut plain).unwrap(),
        ".gz" => flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut plain).unwrap(),
        other => panic!("unknown module suffix {other:?} in {file}"),
    };
    plain
}

#[test]
fn runc_builds_the_same_module_from_the_exported_config() {
    if !require_tool("runc") {
        return;
    }
    let runc = tool_path("runc").unwrap();
    let kernel = kernel();
    let store = shared_store();
    let source = testdata("modules/hello");
    let source = source.to_str().unwrap();

    let out = tempfile::tempdir().unwrap();
    let built = run(&store, &["build", source, "--kernel", &kernel, "--out", out.path().to_str().unwrap(), "--json"]);
    assert!(built.status.success(), "build failed: {}", stderr(&built));
    let report: serde_json::Value = serde_json::from_str(stdout(&built).trim()).unwrap();
    let unpacked = tempfile::tempdir().unwrap();
    tool("dpkg-deb", &["-x", report["deb"].as_str().unwrap(), unpacked.path().to_str().unwrap()]);
    let packaged = packaged_module(unpacked.path(), &kernel, "hello");

    // The bundle's parent must be reachable by the sandbox user (tempdir is 0700).
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bundle = tmp.path().join("bundle");
    let exported = run(&store, &["oci", source, "--kernel", &kernel, "--bundle", bundle.to_str().unwrap()]);
    assert!(exported.status.success(), "hermod oci failed: {}", stderr(&exported));
    let printed: serde_json::Value = serde_json::from_str(&stdout(&exported)).expect("config JSON on stdout");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(printed, written);
    assert_eq!(written["process"]["user"]["uid"], 1000);
    assert_eq!(written["root"]["path"], bundle.join("rootfs").to_str().unwrap());
    // A bundle directory that is not empty is refused.
    let again = run(&store, &["oci", source, "--kernel", &kernel, "--bundle", bundle.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(9), "{}", stderr(&again));

    let id = format!("hermod-oci-test-{}", std::process::id());
    let state = tmp.path().join("runc-state");
    let state = state.to_str().unwrap();
    let ran = Command::new(&runc)
        .args(["--root", state, "run", "--bundle", bundle.to_str().unwrap(), &id])
        .stdin(Stdio::null())
        .output()
        .expect("runc runs");
    let _ = Command::new(&runc).args(["--root", state, "delete", "--force", &id]).output();
    eprintln!(
        "$ runc run\nstatus: {:?}\nstdout:\n{}\nstderr:\n{}",
        ran.status.code(),
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(ran.status.success(), "runc run failed");

    let from_runc = std::fs::read(bundle.join("work/out/module-0.ko")).expect("runc left module-0.ko");
    assert!(
        from_runc == packaged,
        "runc's module ({} bytes) differs from the .deb's ({} bytes)",
        from_runc.len(),
        packaged.len()
    );
}
