//! Shared helpers for the integration tests: they run the real `hermod` binary,
//! with the real sandbox, on real packages from the machine's Debian archive.
//!
//! Downloads are kept in one package cache outside the clone
//! (`HERMOD_TEST_PACKAGE_CACHE`, default /var/cache/hermod-test/packages) so CI
//! runs do not fetch the same .debs again; they are verified by SHA256 on use.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod debroot;
pub mod nginx;
pub mod remote;
pub mod s3;

pub fn hermod() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hermod"))
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

pub fn testdata(rel: &str) -> PathBuf {
    repo_root().join("testdata").join(rel)
}

/// The kernel the tests build for.
pub fn kernel() -> String {
    std::env::var("HERMOD_TEST_KERNEL").unwrap_or_else(|_| "6.1.0-56-amd64".into())
}

fn var_dir(var: &str, default: &str) -> PathBuf {
    let dir = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn package_cache() -> PathBuf {
    var_dir("HERMOD_TEST_PACKAGE_CACHE", "/var/cache/hermod-test/packages")
}

/// A store shared by the tests of one run (its build roots are reused).
pub fn shared_store() -> PathBuf {
    var_dir("HERMOD_TEST_STORE", "/var/cache/hermod-test/store")
}

/// Run hermod with `args` against `store`.
pub fn run(store: &Path, args: &[&str]) -> Output {
    run_in(store, args, None)
}

pub fn run_in(store: &Path, args: &[&str], cwd: Option<&Path>) -> Output {
    let mut cmd = Command::new(hermod());
    cmd.args(args).env("HERMOD_STORE", store).env("HERMOD_PACKAGE_CACHE", package_cache()).arg("-q");
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    run_logged(&mut cmd, args)
}

/// Run hermod's `cmd` (whose arguments are `args`) and print what it did, for
/// the test's failure output.
pub fn run_logged(cmd: &mut Command, args: &[&str]) -> Output {
    let out = cmd.output().expect("hermod runs");
    eprintln!(
        "$ hermod {}\nstatus: {:?}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Copy a directory tree (used to build the same source from other paths).
pub fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// Streamed: a test that measures a child's peak RSS with `wait4` sees the
/// test process's own RSS at the fork too, so the tests never read a big file
/// (hermod's debug binary is ~200 MiB) into memory.
pub fn sha256(path: &Path) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut hasher).unwrap();
    hex::encode(hasher.finalize())
}

/// Run a host tool and return its stdout (panics with its stderr on failure).
pub fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The files in a directory (to check nothing half-written was left).
pub fn list(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut v: Vec<String> = rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

/// A second kernel of the archive, for tests of what roots share.
pub fn second_kernel() -> String {
    std::env::var("HERMOD_TEST_KERNEL2").unwrap_or_else(|_| "6.1.0-55-amd64".into())
}

/// A store of the test's own (for tests that remove, corrupt or race on
/// build roots), on disk beside the shared one's default place.
pub fn private_store(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("hermod-{tag}-")).tempdir_in("/var/tmp").unwrap()
}

/// Start hermod with `args` against `store` without waiting for it.
pub fn spawn(store: &Path, args: &[&str]) -> std::process::Child {
    Command::new(hermod())
        .args(args)
        .arg("-q")
        .env("HERMOD_STORE", store)
        .env("HERMOD_PACKAGE_CACHE", package_cache())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("hermod starts")
}

/// The Debian package that installs `tool` (for the messages below).
pub fn package_of(tool: &str) -> &str {
    match tool {
        "qemu-system-x86_64" => "qemu-system-x86",
        "qemu-system-aarch64" => "qemu-system-arm",
        "nginx" => "nginx-light",
        "diffoscope" => "diffoscope-minimal",
        "bwrap" => "bubblewrap",
        "unshare" | "chroot" => "util-linux",
        "dpkg-deb" => "dpkg",
        "dpkg-shlibdeps" => "dpkg-dev",
        "modinfo" => "kmod",
        "readelf" => "binutils",
        other => other,
    }
}

/// Where `tool` is: on PATH, or in /usr/sbin, /sbin (a non-root PATH may
/// lack them).
pub fn tool_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// Whether the tests must not skip (`HERMOD_TEST_REQUIRE_TOOLS` set and
/// non-empty; `cargo xtask ci` sets it).
pub fn tools_required() -> bool {
    std::env::var_os("HERMOD_TEST_REQUIRE_TOOLS").is_some_and(|v| !v.is_empty())
}

/// The running test's name (libtest names its threads after the tests).
fn test_name() -> String {
    std::thread::current().name().unwrap_or("this test").to_owned()
}

/// Whether `tool` is installed. If not: a panic naming its package when
/// `HERMOD_TEST_REQUIRE_TOOLS` is set; otherwise `skipped: <test> needs
/// <tool>` on stderr and false, and the test (or the part that needs the
/// tool) returns early.
pub fn require_tool(tool: &str) -> bool {
    if tool_path(tool).is_some() {
        return true;
    }
    skip_or_panic(&format!("{tool} (apt-get install {})", package_of(tool)))
}

/// Whether this process runs as root (what the tests that switch users or
/// make Debian roots need); like `require_tool` otherwise.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    skip_or_panic("root")
}

/// false after `skipped: <test> needs <need>` on stderr; a panic instead when
/// `HERMOD_TEST_REQUIRE_TOOLS` is set.
pub fn skip_or_panic(need: &str) -> bool {
    let test = test_name();
    if tools_required() {
        panic!("{test} needs {need}, and HERMOD_TEST_REQUIRE_TOOLS is set: nothing may be skipped");
    }
    eprintln!("skipped: {test} needs {need}");
    false
}
