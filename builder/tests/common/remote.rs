//! What the shared-cache tests (`remote_cache.rs` on nginx, `remote_s3.rs`
//! on an S3 server) share: hermod run with only the shared-cache settings a
//! test gives (none of the caller's own, no AWS files of the machine), its
//! `--json` report, and forgetting a store's cache entries.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use super::{hermod, list, sha256, stderr, stdout};

/// Every variable a shared cache reads; hermod_with clears them all.
pub const REMOTE_VARS: &[&str] = &[
    "HERMOD_REMOTE",
    "HERMOD_REMOTE_PUSH",
    "HERMOD_SIGNING_KEY",
    "HERMOD_TRUSTED_KEYS",
    "HERMOD_REMOTE_TOKEN",
    "HERMOD_S3_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
];

/// hermod with the shared-cache settings in `env` (and without `-q`, so
/// its warnings show). The machine's own AWS files are hidden behind
/// /dev/null unless `env` names others.
pub fn hermod_with(store: &Path, packages: &Path, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new(hermod());
    cmd.args(args).env("HERMOD_STORE", store).env("HERMOD_PACKAGE_CACHE", packages);
    for var in REMOTE_VARS {
        cmd.env_remove(var);
    }
    cmd.env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null").env("AWS_CONFIG_FILE", "/dev/null");
    for (var, value) in env {
        cmd.env(var, value);
    }
    let started = Instant::now();
    let out = cmd.output().expect("hermod runs");
    eprintln!(
        "$ {} hermod {} ({:.2} s)\nstatus: {:?}\nstdout:\n{}\nstderr:\n{}",
        env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "),
        args.join(" "),
        started.elapsed().as_secs_f64(),
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    out
}

pub fn report(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "hermod failed: {}", stderr(out));
    serde_json::from_str(stdout(out).trim()).expect("one JSON object")
}

pub fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Remove every cache entry and blob of a store (another host that never had this key).
pub fn forget(store: &Path) {
    for dir in ["ac", "cas"] {
        for name in list(&store.join(dir)) {
            std::fs::remove_file(store.join(dir).join(name)).unwrap();
        }
    }
}

/// The number in ", after N s)" of the unavailable-server warning.
pub fn seconds_lost(stderr: &str) -> f64 {
    let after = stderr.split(", after ").nth(1).unwrap_or_else(|| panic!("no `after N s` in {stderr}"));
    after.split(' ').next().unwrap().parse().unwrap()
}

/// A pull into an empty store `b` (no packages in `no_packages`): a remote
/// hit of `key` with A's bytes (`sha`, blob `blake3`), signed by the fleet's
/// key, and nothing of a build in B (no root, no indices, no log, no
/// download); the pulled blob is B's own. The report, for more checks.
pub fn assert_pulled(
    out: &Output,
    b: &Path,
    no_packages: &Path,
    key: &str,
    sha: &str,
    blake3: &str,
) -> serde_json::Value {
    let pulled = report(out);
    assert_eq!(pulled["cache"], "remote");
    assert_eq!((pulled["key"].as_str(), pulled["sha256"].as_str()), (Some(key), Some(sha)));
    assert_eq!(sha256(Path::new(pulled["deb"].as_str().unwrap())), sha);
    assert!(stderr(out).contains("signed by fleet"), "{}", stderr(out));
    for (what, dir) in [
        ("build roots", b.join("rootfs")),
        ("archive indices", b.join("indices")),
        ("build logs", b.join("logs")),
        ("downloaded packages", no_packages.to_owned()),
    ] {
        assert!(list(&dir).is_empty(), "a remote hit needs no {what}: {:?}", list(&dir));
    }
    assert_eq!(list(&b.join("cas")), [blake3], "the pulled blob is in B's own store");
    pulled
}
