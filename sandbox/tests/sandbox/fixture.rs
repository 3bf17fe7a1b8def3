//! The test rootfs and helpers to run commands in it.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hermod_sandbox::{run, Outcome, Spec};

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub base: PathBuf,
    pub rootfs: PathBuf,
    /// `/usr/bin/hermod-probe` (from `probe.c`) is in the rootfs: the host
    /// has a working gcc. Tests that need it are skipped otherwise.
    pub probe: bool,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::Builder::new().prefix("hermod-sandbox-test").tempdir().expect("tempdir");
        let base = dir.path().to_path_buf();
        fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
        let rootfs = base.join("rootfs");
        for d in ["usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "etc", "tmp", "proc", "dev"] {
            fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        for (link, to) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")] {
            symlink(to, rootfs.join(link)).unwrap();
        }
        for tool in [
            "/bin/sh",
            "/bin/cat",
            "/bin/ls",
            "/usr/bin/id",
            "/bin/hostname",
            "/usr/bin/env",
            "/bin/sleep",
            "/bin/chmod",
            "/bin/ln",
            "/bin/mkdir",
            "/usr/bin/head",
            "/usr/bin/seq",
            "/usr/bin/tr",
            "/usr/bin/mkfifo",
        ] {
            copy_with_libs(Path::new(tool), &rootfs);
        }
        let probe = build_probe(&base, &rootfs);
        fs::create_dir(base.join("work")).unwrap();
        fs::write(base.join("host-secret"), "secret\n").unwrap();
        Fixture { _dir: dir, base, rootfs, probe }
    }

    /// A directory the command may write through a writable bind. A root
    /// caller's sandbox runs as host `NOBODY` (see `Spec::host_ids`), so it is
    /// handed to that user, as hermod does with its build directories.
    pub fn writable(&self, path: &Path) {
        fs::create_dir_all(path).unwrap();
        if nix::unistd::geteuid().is_root() {
            let (uid, gid) = hermod_sandbox::NOBODY;
            nix::unistd::chown(path, Some(uid.into()), Some(gid.into())).unwrap();
        }
    }

    pub fn spec(&self, argv: &[&str]) -> Spec {
        let mut spec = Spec::new(&self.rootfs, argv.iter().map(|s| s.to_string()).collect());
        spec.timeout = Some(Duration::from_secs(30));
        spec
    }

    pub fn sh(&self, script: &str) -> Spec {
        self.spec(&["/bin/sh", "-c", script])
    }

    /// Runs with a fresh log; returns the outcome and what was logged.
    pub fn run_logged(&self, mut spec: Spec) -> Result<(Outcome, String), String> {
        let log = tempfile::NamedTempFile::new_in(&self.base).unwrap().into_temp_path();
        spec.log = Some(log.to_path_buf());
        let outcome = run(&spec).map_err(|e| format!("run failed: {e}"))?;
        Ok((outcome, fs::read_to_string(&log).unwrap_or_default()))
    }

    /// Runs and requires exit code 0; returns the log.
    pub fn output(&self, spec: Spec) -> Result<String, String> {
        let (outcome, log) = self.run_logged(spec)?;
        if !outcome.success() {
            return Err(format!("{:?}, log:\n{log}", outcome.exit));
        }
        Ok(log)
    }
}

/// Compiles `probe.c` with the host's gcc into the rootfs (dynamically: the
/// rootfs already has the libc that dash needs). Prints why not if it can't.
fn build_probe(base: &Path, rootfs: &Path) -> bool {
    let src = base.join("probe.c");
    fs::write(&src, include_str!("probe.c")).unwrap();
    let out = rootfs.join("usr/bin/hermod-probe");
    match Command::new("gcc").args(["-O2", "-o"]).arg(&out).arg(&src).output() {
        Ok(o) if o.status.success() => {
            copy_with_libs(&out, rootfs);
            true
        }
        Ok(o) => probe_skipped(&format!("gcc could not build probe.c:\n{}", String::from_utf8_lossy(&o.stderr))),
        Err(e) => probe_skipped(&format!("no gcc ({e}; apt-get install gcc)")),
    }
}

/// Without gcc the probe.c tests are skipped, with a note; with
/// `HERMOD_TEST_REQUIRE_TOOLS` set (`.ci/run` sets it) that is a failure.
fn probe_skipped(why: &str) -> bool {
    if std::env::var_os("HERMOD_TEST_REQUIRE_TOOLS").is_some_and(|v| !v.is_empty()) {
        panic!("the probe.c tests cannot run, and HERMOD_TEST_REQUIRE_TOOLS is set: {why}");
    }
    println!("skipped: the probe.c tests: {why}");
    false
}

/// Copies `tool` and everything `ldd` says it loads to the same paths under
/// `root` (through the rootfs's own /bin, /lib symlinks).
fn copy_with_libs(tool: &Path, root: &Path) {
    let ldd = Command::new("ldd").arg(tool).output().expect("running ldd");
    let mut files = vec![tool.to_path_buf()];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = match line.split("=>").nth(1) {
            Some(rest) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            files.push(PathBuf::from(p));
        }
    }
    for file in files {
        let dest = root.join(file.strip_prefix("/").unwrap());
        if !dest.exists() {
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::copy(&file, &dest).unwrap_or_else(|e| panic!("copying {}: {e}", file.display()));
        }
    }
}

pub fn expect<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}
