//! `cargo xtask ci`'s first step: the Debian packages the tests use, installed
//! when missing, so the README's test command works on a fresh machine.
//!
//! The tests run real tools (dpkg, apt in a throwaway root, qemu, nginx…) and
//! fail when one is missing (`HERMOD_TEST_REQUIRE_TOOLS`), never skip. Rather
//! than a list in a CI script that a developer's machine does not run, the list
//! lives here: as root, what dpkg does not report installed is installed with
//! apt-get (from the machine's own apt sources); as another user, the exact
//! command to run is printed and the task fails.
//!
//! One test tool is no Debian package: the S3-compatible server of
//! `remote_s3.rs`, `s3s-fs` from crates.io ([`TEST_CRATES`]), installed with
//! `cargo install --locked` into the test tools' directory
//! (`HERMOD_TEST_TOOLS`, default `/var/cache/hermod-test/tools`), kept across
//! runs like the package cache: it is compiled once per machine (about 3.5
//! CPU-minutes, a 10 MB binary), then found there in no time. Why s3s-fs:
//! the issue asks for a real S3 server from the package registries, not a
//! mocking library. MinIO is in neither Debian nor crates.io (a download of
//! its own, which this CI cannot make); Ceph's `radosgw` is in Debian but
//! brings the Ceph libraries (hundreds of MB) and a standalone store still
//! marked experimental; moto is a mocking library. s3s-fs is the example
//! server of the `s3s` crate (an S3 protocol implementation used by
//! RustFS): buckets are directories and objects files (so a test tampers
//! with them as with nginx's), and given an access and a secret key it
//! checks every request's SigV4 signature: a wrong secret and an unsigned
//! request are answered 403 (`remote_s3.rs` asserts both). 0.14.1 is the
//! newest release that builds with our toolchain (0.15 needs Rust 1.96).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Each package the tests need, and why.
pub const TEST_PACKAGES: &[(&str, &str)] = &[
    ("kmod", "modinfo reads the built modules"),
    ("binutils", "readelf checks their ELF headers"),
    ("dpkg", "dpkg-deb reads and builds packages"),
    ("dpkg-dev", "dpkg-shlibdeps: the Depends of hermod's own package (cargo xtask dist)"),
    ("ca-certificates", "https archives"),
    ("lintian", "checks hermod's own package and the module packages"),
    ("runc", "the second OCI runtime that runs `hermod oci` bundles"),
    ("skopeo", "reads and copies the image layouts of `hermod rootfs export`"),
    ("openssl", "makes test MOK keys and verifies module signatures"),
    ("nginx-light", "the shared cache's WebDAV server (remote_cache.rs starts its own on loopback)"),
    ("mmdebstrap", "the throwaway Debian roots where apt installs from a published repository"),
    ("gpg", "mmdebstrap's and apt's signature checks in those roots"),
    ("bubblewrap", "the sandbox tests compare with bwrap's behaviour"),
    ("debsums", "checks the installed package's files in a throwaway root"),
    ("qemu-system-x86", "hermod load-test boots the archive's amd64 kernels"),
    ("qemu-system-arm", "hermod load-test boots the archive's arm64 kernels"),
    ("cpio", "reads back the initramfs writer's output"),
    ("diffoscope-minimal", "hermod verify runs it on a mismatch"),
    ("gcc", "builds the sandbox tests' probe.c (cargo links with it anyway)"),
];

/// Each crate whose binary the tests need: name, version, features, why.
pub const TEST_CRATES: &[(&str, &str, &str, &str)] =
    &[("s3s-fs", "0.14.1", "binary", "the S3-compatible server the S3 shared-cache tests run on loopback")];

/// Where `cargo install` puts the test tools (`builder/tests/common/s3.rs` looks there too).
pub fn test_tools() -> PathBuf {
    std::env::var_os("HERMOD_TEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/hermod-test/tools"))
}

/// Install the crates of `TEST_CRATES` not yet in [`test_tools`] at their version.
pub fn ensure_test_crates() -> Result<PathBuf> {
    let root = test_tools();
    // cargo install's own record of what it installed there.
    let record = std::fs::read_to_string(root.join(".crates.toml")).unwrap_or_default();
    for (name, version, features, why) in TEST_CRATES {
        let installed = record.contains(&format!("\"{name} {version} (")) && root.join("bin").join(name).is_file();
        if installed {
            continue;
        }
        let mut command = Command::new("cargo");
        command.args(["install", "--locked", name, "--version", version, "--features", features, "--root"]);
        command.arg(&root);
        // A temporary target directory of its own, not the workspace's.
        command.env_remove("CARGO_TARGET_DIR");
        eprintln!("xtask: installing {name} {version} into {} ({why}; compiled once)", root.display());
        if let Err(e) = std::fs::create_dir_all(&root).map_err(anyhow::Error::from).and_then(|()| run(&mut command)) {
            bail!("{e:#}\nthe tests need {name} ({why}): run {command:?}, or set HERMOD_TEST_TOOLS to a writable directory");
        }
    }
    Ok(root)
}

/// The packages of `TEST_PACKAGES` dpkg does not report installed.
pub fn missing() -> Result<Vec<&'static str>> {
    let names: Vec<&str> = TEST_PACKAGES.iter().map(|(name, _)| *name).collect();
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${db:Status-Abbrev}\n"])
        .args(&names)
        .output()
        .context("running dpkg-query: the tests need a Debian machine")?;
    // Unknown packages make dpkg-query exit 1 but still list the known ones.
    let text = String::from_utf8_lossy(&out.stdout);
    let installed: Vec<&str> =
        text.lines().filter_map(|l| l.split_once(' ')).filter(|(_, s)| s.starts_with("ii")).map(|(n, _)| n).collect();
    Ok(names.into_iter().filter(|n| !installed.contains(n)).collect())
}

/// Install what is missing (as root), or say how.
pub fn ensure_test_packages() -> Result<()> {
    let missing = missing()?;
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!("apt-get install --no-install-recommends {}", missing.join(" "));
    if !is_root() {
        bail!(
            "the tests need these Debian packages, not installed here: {}\nrun as root: {command}",
            missing.join(", ")
        );
    }
    eprintln!("xtask: installing the test tools this machine lacks: {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    // nginx-light's service must not start: the tests run their own servers.
    let _policy = DenyServiceStarts::install()?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    let still = self::missing()?;
    if !still.is_empty() {
        bail!("apt-get installed, but dpkg still lacks: {}", still.join(", "));
    }
    Ok(())
}

const POLICY: &str = "/usr/sbin/policy-rc.d";
/// What marks a policy-rc.d as this task's own (a leftover of a killed run is removed).
const POLICY_TEXT: &str = "#!/bin/sh\n# cargo xtask ci: no service starts while it installs test tools\nexit 101\n";

/// A policy-rc.d that denies every service start while it lives, unless the
/// machine has its own (kept as it is). Removed on drop, also when an install
/// fails; one left by a killed run (its text is ours) is replaced.
struct DenyServiceStarts {
    own: bool,
}

impl DenyServiceStarts {
    fn install() -> Result<DenyServiceStarts> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if std::fs::read_to_string(POLICY).is_ok_and(|text| text == POLICY_TEXT) {
            std::fs::remove_file(POLICY)?;
        }
        let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o755).open(POLICY);
        match created {
            Ok(mut file) => {
                let guard = DenyServiceStarts { own: true };
                file.write_all(POLICY_TEXT.as_bytes())?;
                Ok(guard)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(DenyServiceStarts { own: false }),
            Err(e) => Err(e).context(POLICY),
        }
    }
}

impl Drop for DenyServiceStarts {
    fn drop(&mut self) {
        if self.own {
            let _ = std::fs::remove_file(POLICY);
        }
    }
}

/// /proc/self belongs to the process's effective user.
fn is_root() -> bool {
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("/proc is mounted")) == 0
}

fn run(command: &mut Command) -> Result<()> {
    let status = command.status().with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_script_and_list_agree() {
        // .ci/run no longer lists packages: the list is here, once.
        let script = std::fs::read_to_string(crate::repo_root().join(".ci/run")).unwrap();
        assert!(!script.contains("apt-get install"), ".ci/run installs packages itself again");
        let names: Vec<&str> = TEST_PACKAGES.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "a package listed twice");
    }

    #[test]
    fn the_tests_look_for_the_crates_where_they_are_installed() {
        let starter = std::fs::read_to_string(crate::repo_root().join("builder/tests/common/s3.rs")).unwrap();
        assert!(starter.contains("\"/var/cache/hermod-test/tools\"") && starter.contains("HERMOD_TEST_TOOLS"));
        for (name, version, features, _) in TEST_CRATES {
            let hint = format!("cargo install --locked {name} --version {version} --features {features}");
            assert!(starter.contains(&hint), "common/s3.rs names another install command than {hint}");
        }
    }
}
