//! Module signing for Secure Boot: the hello module signed with a fleet key
//! by the build root's own sign-file, checked with openssl and modinfo.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// An RSA key and self-signed certificate made by openssl, as an admin
/// would make a MOK (`openssl req -new -x509 -newkey rsa:2048 -nodes …`).
fn make_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.pem"));
    tool(
        "openssl",
        &[
            "req",
            "-new",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "36500",
            "-subj",
            &format!("/CN={name}/"),
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
    );
    (key, cert)
}

fn build(store: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let kernel = kernel();
    let source = testdata("modules/hello");
    let mut args =
        vec!["build", source.to_str().unwrap(), "--kernel", &kernel, "--out", out.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    run(store, &args)
}

fn report(output: &std::process::Output) -> serde_json::Value {
    assert!(output.status.success(), "build failed: {}", stderr(output));
    serde_json::from_str(stdout(output).trim()).expect("one JSON object")
}

/// The packaged hello.ko of a .deb.
fn module_of(deb: &str) -> Vec<u8> {
    let x = tempfile::tempdir().unwrap();
    tool("dpkg-deb", &["-x", deb, x.path().to_str().unwrap()]);
    std::fs::read(x.path().join(format!("lib/modules/{}/updates/dkms/hello.ko", kernel()))).unwrap()
}

#[test]
fn modules_are_signed_after_stripping_with_one_fleet_key_reproducibly() {
    let keys = tempfile::tempdir().unwrap();
    let (key, cert) = make_key(keys.path(), "hermod test fleet");
    let (key_s, cert_s) = (key.to_str().unwrap(), cert.to_str().unwrap());
    let store = shared_store();
    let out = tempfile::tempdir().unwrap();
    // Both packages have the same file name: one out directory each.
    let out_unsigned = tempfile::tempdir().unwrap();

    let unsigned = report(&build(&store, out_unsigned.path(), &[]));
    let signed = report(&build(&store, out.path(), &["--mok-signing-key", key_s, "--mok-certificate", cert_s]));
    assert_ne!(unsigned["key"], signed["key"], "the signer is part of the cache key");

    // The signed module is the unsigned (stripped) one plus an appended signature.
    let plain = module_of(unsigned["deb"].as_str().unwrap());
    let module = module_of(signed["deb"].as_str().unwrap());
    let (content, signature) = hermod::module_signing::split_signed(&module).expect("a signature is appended");
    let first_difference = content.iter().zip(&plain).position(|(a, b)| a != b);
    assert!(
        content == &plain[..],
        "signing happens after stripping, on the very module bytes: {} vs {} bytes, first difference at {first_difference:?}",
        content.len(),
        plain.len()
    );

    // openssl verifies the PKCS#7 signature over those bytes with the certificate.
    let dir = tempfile::tempdir().unwrap();
    let (content_path, sig_path) = (dir.path().join("content"), dir.path().join("sig.der"));
    std::fs::write(&content_path, content).unwrap();
    std::fs::write(&sig_path, signature).unwrap();
    let verify = |content: &Path| {
        std::process::Command::new("openssl")
            .args(["cms", "-verify", "-binary", "-inform", "DER", "-nointern", "-noverify", "-out", "/dev/null"])
            .args(["-in", sig_path.to_str().unwrap(), "-content", content.to_str().unwrap(), "-certfile", cert_s])
            .output()
            .unwrap()
    };
    let ok = verify(&content_path);
    assert!(ok.status.success(), "openssl cms -verify: {}", String::from_utf8_lossy(&ok.stderr));
    let tampered = dir.path().join("tampered");
    let mut bytes = content.to_vec();
    bytes[100] ^= 1;
    std::fs::write(&tampered, bytes).unwrap();
    assert!(!verify(&tampered).status.success(), "a changed module must fail verification");

    // modinfo shows the signer the kernel will check against the enrolled MOK.
    let ko = dir.path().join("hello.ko");
    std::fs::write(&ko, &module).unwrap();
    assert_eq!(tool("/sbin/modinfo", &["-F", "signer", ko.to_str().unwrap()]).trim(), "hermod test fleet");
    assert_eq!(tool("/sbin/modinfo", &["-F", "sig_hashalgo", ko.to_str().unwrap()]).trim(), "sha256");

    // Another machine (an empty store) signing with the same key gets the same bytes.
    let other = private_store("signing");
    let again = report(&build(other.path(), out.path(), &["--mok-signing-key", key_s, "--mok-certificate", cert_s]));
    assert_eq!(again["cache"], "miss");
    assert_eq!(again["sha256"], signed["sha256"], "RSA module signatures are deterministic");

    // Another key is another cache entry.
    let (key2, cert2) = make_key(keys.path(), "another key");
    let other_key = report(&build(
        &store,
        out.path(),
        &["--mok-signing-key", key2.to_str().unwrap(), "--mok-certificate", cert2.to_str().unwrap()],
    ));
    assert_ne!(other_key["key"], signed["key"]);
}

#[test]
fn bad_signing_inputs_are_refused_clearly() {
    let keys = tempfile::tempdir().unwrap();
    let (key, cert) = make_key(keys.path(), "one");
    let (_key2, cert2) = make_key(keys.path(), "two");
    let store = shared_store();
    let out = tempfile::tempdir().unwrap();

    // Only one half of the pair.
    let half = build(&store, out.path(), &["--mok-signing-key", key.to_str().unwrap()]);
    assert_eq!(half.status.code(), Some(3), "{}", stderr(&half));
    assert!(stderr(&half).contains("needs both a key and a certificate"), "{}", stderr(&half));

    // A certificate that is not one.
    let junk = keys.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let bad = build(
        &store,
        out.path(),
        &["--mok-signing-key", key.to_str().unwrap(), "--mok-certificate", junk.to_str().unwrap()],
    );
    assert_eq!(bad.status.code(), Some(3), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("junk.pem"), "{}", stderr(&bad));

    // A key with the wrong certificate: sign-file refuses, the build fails.
    let mismatch = build(
        &store,
        out.path(),
        &["--mok-signing-key", key.to_str().unwrap(), "--mok-certificate", cert2.to_str().unwrap()],
    );
    assert_eq!(mismatch.status.code(), Some(5), "{}", stderr(&mismatch));
    assert!(stderr(&mismatch).contains("signing the modules failed"), "{}", stderr(&mismatch));
    assert!(list(out.path()).is_empty(), "nothing written on failure: {:?}", list(out.path()));
    let _ = cert;
}

/// Every regular file under `dir` (at most `depth` levels, never following
/// links, skipping `skip`) whose bytes contain `needle`: (path, mode, uid).
fn files_holding(dir: &Path, needle: &[u8], depth: usize, skip: &Path, found: &mut Vec<(PathBuf, u32, u32)>) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.starts_with(skip) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() && depth > 0 {
            files_holding(&path, needle, depth - 1, skip, found);
        } else if meta.is_file() && meta.len() >= needle.len() as u64 && meta.len() < (64 << 10) {
            // (A key file is a few KiB: skipping objects and modules keeps a
            // scan short enough to see a file that lives for milliseconds.)
            if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push((path, meta.mode() & 0o7777, meta.uid()));
                }
            }
        }
    }
}

#[test]
fn the_signing_key_is_never_a_file_on_the_host_and_logs_are_private() {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    let keys = tempfile::tempdir().unwrap();
    // A fresh key: a new cache key, so the sign step really runs.
    let (key, cert) = make_key(keys.path(), "hermod secret watch");
    let pem = std::fs::read_to_string(&key).unwrap();
    // A line from the middle of the PEM body: in no file but the key's own.
    let needle = pem.lines().nth(5).unwrap().as_bytes().to_vec();
    assert!(needle.len() >= 60, "a base64 line of the key: {needle:?}");
    let store = shared_store();
    let out = tempfile::tempdir().unwrap();

    // The store's changing parts (build roots and blobs come from .debs)
    // and the shared temporary directory, scanned over and over meanwhile.
    let done = AtomicBool::new(false);
    let mut found = Vec::new();
    let mut scans = 0;
    let result = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut found = Vec::new();
            let mut scans = 0;
            while !done.load(Ordering::Relaxed) {
                // Staging (where work directories live) at every turn, fast
                // enough to see a file that exists for a fraction of a second;
                // the rest now and then, never first (a shared store's blobs
                // can take longer to read than the whole build).
                files_holding(&store.join("tmp"), &needle, 12, keys.path(), &mut found);
                if scans % 10 == 9 {
                    for sub in ["logs", "cas", "ac", "keys", "keylocks"] {
                        files_holding(&store.join(sub), &needle, 12, keys.path(), &mut found);
                    }
                    files_holding(&std::env::temp_dir(), &needle, 3, keys.path(), &mut found);
                }
                scans += 1;
            }
            (found, scans)
        });
        let result = build(
            &store,
            out.path(),
            &["--mok-signing-key", key.to_str().unwrap(), "--mok-certificate", cert.to_str().unwrap()],
        );
        done.store(true, Ordering::Relaxed);
        (found, scans) = watcher.join().unwrap();
        result
    });
    found.sort();
    found.dedup();
    let signed = report(&result);
    assert_eq!(signed["cache"], "miss", "the sign step ran");
    assert!(scans >= 2, "the watcher looked while the build ran ({scans} scans)");
    assert!(found.is_empty(), "the key appeared as a file on the host ({scans} scans): {found:?}");

    // Still a valid signature by that key.
    let module = module_of(signed["deb"].as_str().unwrap());
    let (content, signature) = hermod::module_signing::split_signed(&module).expect("a signature is appended");
    let dir = tempfile::tempdir().unwrap();
    let (content_path, sig_path) = (dir.path().join("content"), dir.path().join("sig.der"));
    std::fs::write(&content_path, content).unwrap();
    std::fs::write(&sig_path, signature).unwrap();
    let ok = std::process::Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-nointern", "-noverify", "-out", "/dev/null"])
        .args(["-in", sig_path.to_str().unwrap(), "-content", content_path.to_str().unwrap()])
        .args(["-certfile", cert.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(ok.status.success(), "openssl cms -verify: {}", String::from_utf8_lossy(&ok.stderr));

    // Logs hold what builds printed: owner-only, in an owner-only directory.
    let logs = store.join("logs");
    assert_eq!(std::fs::metadata(&logs).unwrap().permissions().mode() & 0o777, 0o700);
    let prefix = &signed["key"].as_str().unwrap()[..16];
    let log = std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .expect("the build's log");
    assert_eq!(log.metadata().unwrap().permissions().mode() & 0o777, 0o600, "{}", log.path().display());
}
