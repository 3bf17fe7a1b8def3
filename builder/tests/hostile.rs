//! Hostile builds: every source in testdata/hostile tries one escape. Each must
//! fail or be contained, the host must be unchanged, and hermod must say so.
//!
//! A hostile Makefile prints `HOSTILE-ESCAPED: …` when an attempt succeeds and
//! always ends in failure; the host side is checked independently: sentinel
//! files and processes, a TCP listener on the host's loopback, the hostname,
//! and the build root's files.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;

const SECRET: &str = "HERMOD-HOST-SECRET-7c1e";
const LISTENER_PORT: u16 = 47321;

/// A case's source as it is built: its own files plus the shared `_common/` ones.
fn assemble(case: &Path, into: &Path) -> PathBuf {
    let dest = into.join(case.file_name().unwrap());
    copy_tree(case, &dest);
    for entry in std::fs::read_dir(testdata("hostile/_common")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
    }
    dest
}

fn hostile_sources() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(testdata("hostile"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("dkms.conf").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Everything on the host a hostile build could change, observed from outside.
struct Host {
    hostname: String,
    sentinel: PathBuf,
    sleeper: std::process::Child,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    listener: Option<std::thread::JoinHandle<()>>,
}

/// The suites share one listener port and the root's home sentinel: one at a time.
static ONE_SUITE_AT_A_TIME: Mutex<()> = Mutex::new(());

impl Host {
    fn prepare(dir: &Path) -> Host {
        let sentinel = dir.join("sentinel");
        std::fs::write(&sentinel, SECRET).unwrap();
        if nix::unistd::geteuid().is_root() {
            std::fs::write("/root/.hermod-hostile-secret", SECRET).unwrap();
        }
        let listener = TcpListener::bind(("127.0.0.1", LISTENER_PORT)).expect("test listener port is free");
        listener.set_nonblocking(true).unwrap();
        // An abstract unix socket lives in the network namespace of its creator.
        let name = std::os::unix::net::SocketAddr::from_abstract_name(b"hermod-hostile-abstract").unwrap();
        let abstract_listener = std::os::unix::net::UnixListener::bind_addr(&name).expect("abstract socket is free");
        abstract_listener.set_nonblocking(true).unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let listener = std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                if let Ok((mut stream, _)) = listener.accept() {
                    seen.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.read(&mut [0u8; 64]);
                }
                if abstract_listener.accept().is_ok() {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        let sleeper = Command::new("sleep").arg("600").spawn().unwrap();
        Host { hostname: tool("hostname", &[]), sentinel, sleeper, connections, stop, listener: Some(listener) }
    }

    fn assert_unchanged(&mut self, case: &str) {
        assert_eq!(tool("hostname", &[]), self.hostname, "{case}: host name changed");
        assert_eq!(std::fs::read_to_string(&self.sentinel).unwrap(), SECRET, "{case}: sentinel changed");
        assert!(self.sleeper.try_wait().unwrap().is_none(), "{case}: a host process was killed");
        assert_eq!(
            self.connections.load(Ordering::SeqCst),
            0,
            "{case}: a host listener (TCP or abstract unix) saw a connection"
        );
        assert!(!daemon_left_behind(), "{case}: a process from the build outlived it");
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
        let _ = std::fs::remove_file("/root/.hermod-hostile-secret");
        self.stop.store(true, Ordering::SeqCst);
        if let Some(listener) = self.listener.take() {
            let _ = listener.join();
        }
    }
}

/// Whether any `sleep 600` other than our own sentinel runs (the background-daemon case).
fn daemon_left_behind() -> bool {
    let own = std::process::id();
    std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()).any(|e| {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let ppid = std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).map(str::to_owned))
            .unwrap_or_default();
        cmdline == b"sleep\x00600\x00" && ppid != own.to_string()
    })
}

fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(4000);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn log_path(stderr: &str) -> Option<PathBuf> {
    stderr.split("full log: ").nth(1).map(|rest| PathBuf::from(rest.split_whitespace().next().unwrap()))
}

fn check_case(case: &str, out: &Output, host: &mut Host, root_files: &RootfsWitness) {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{case}: a hostile build must not succeed\n{err}");
    assert!(err.contains("hermod: error:"), "{case}: hermod must report the failure clearly:\n{err}");
    let log = log_path(&err).map(|p| std::fs::read_to_string(p).unwrap_or_default()).unwrap_or_default();
    for text in [&err, &log, &String::from_utf8_lossy(&out.stdout).into_owned()] {
        assert!(!text.contains("HOSTILE-ESCAPED"), "{case}: escaped:\n{text}");
        assert!(!text.contains(SECRET), "{case}: the host secret leaked:\n{text}");
    }
    // The attack really ran to its end (a case whose compile failed would
    // "fail safely" without testing anything), except where ending is the point.
    const NEVER_FINISH: &[&str] = &["run-forever", "signal-outside"];
    if case == "fill-disk" {
        // It ends by filling its log up to the file size limit (16M), so the
        // final words cannot be written; the earlier refusals must be there.
        assert!(log.len() <= 16 << 20, "{case}: the log grew past the file size limit: {} bytes", log.len());
        assert!(log.contains("/dev/shm: refused"), "{case}: the attack did not run to its end:\n{}", tail(&log));
    } else if !NEVER_FINISH.contains(&case) {
        assert!(log.contains("attack finished"), "{case}: the attack did not run to its end:\n{log}");
    }
    host.assert_unchanged(case);
    root_files.assert_unchanged(case);
}

/// What the build root looked like before the hostile builds.
struct RootfsWitness {
    tree: PathBuf,
    headers_makefile: Vec<u8>,
}

impl RootfsWitness {
    /// From the output of `hermod rootfs build` (`<hash> <kernel> <tree>`).
    fn from_rootfs_build(out: &Output) -> RootfsWitness {
        assert!(out.status.success(), "{}", stderr(out));
        let tree = PathBuf::from(stdout(out).split_whitespace().nth(2).unwrap());
        let headers_makefile = std::fs::read(headers_makefile(&tree)).unwrap();
        RootfsWitness { tree, headers_makefile }
    }

    fn assert_unchanged(&self, case: &str) {
        assert!(!self.tree.join("usr/bin/hermod-hostile").exists(), "{case}: wrote into the build root");
        let now = std::fs::read(headers_makefile(&self.tree)).unwrap();
        assert_eq!(now, self.headers_makefile, "{case}: modified the headers");
    }
}

fn headers_makefile(tree: &Path) -> PathBuf {
    tree.join(format!("usr/src/linux-headers-{}/Makefile", kernel()))
}

/// Run every case with `build(source, out_dir)`, checking the host after each.
fn run_hostile_suite(build: impl Fn(&Path, &Path) -> Output, witness: &RootfsWitness, work: &Path) {
    let scratch = tempfile::tempdir().unwrap();
    let mut host = Host::prepare(scratch.path());
    let cases = hostile_sources();
    assert!(cases.len() >= 25, "the hostile suite has {} cases", cases.len());
    for case_dir in cases {
        let case = case_dir.file_name().unwrap().to_string_lossy().into_owned();
        let source = assemble(&case_dir, &work.join("sources"));
        let out_dir = work.join(format!("out-{case}"));
        let out = build(&source, &out_dir);
        check_case(&case, &out, &mut host, witness);
        assert!(list(&out_dir).is_empty(), "{case}: wrote to --out");
    }
}

/// Small tmpfs and file size limits (set through `--limit`) so that the
/// fill-disk case hits them in a moment; the other limits keep their defaults.
fn build_args<'a>(source: &'a Path, kernel: &'a str, out_dir: &'a Path) -> Vec<&'a str> {
    let mut args = vec![
        "build",
        source.to_str().unwrap(),
        "--kernel",
        kernel,
        "--timeout",
        "10",
        "--out",
        out_dir.to_str().unwrap(),
    ];
    for limit in ["build-space=64M", "tmp-space=32M", "fsize=16M"] {
        args.extend(["--limit", limit]);
    }
    args
}

#[test]
fn hostile_builds_are_contained_as_root() {
    let _one = ONE_SUITE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let kernel = kernel();
    let store = shared_store();
    let witness = RootfsWitness::from_rootfs_build(&run(&store, &["rootfs", "build", "--kernel", &kernel]));
    let work = tempfile::tempdir().unwrap();
    run_hostile_suite(|source, out_dir| run(&store, &build_args(source, &kernel, out_dir)), &witness, work.path());
}

#[test]
fn hostile_builds_are_contained_as_an_unprivileged_user() {
    if !require_root() {
        return;
    }
    let _one = ONE_SUITE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let kernel = kernel();
    let place = tempfile::tempdir().unwrap();
    std::fs::set_permissions(place.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = place.path().join("hermod");
    std::fs::copy(hermod(), &binary).unwrap();
    let home = place.path().join("home");
    std::fs::create_dir(&home).unwrap();
    nix::unistd::chown(&home, Some(65534.into()), Some(65534.into())).unwrap();
    let store = home.join("store");
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&binary)
            .args(args)
            .arg("-q")
            .env_clear()
            .env("HOME", &home)
            .env("HERMOD_STORE", &store)
            .env("PATH", "/usr/bin:/bin")
            .current_dir(&home)
            .output()
            .unwrap()
    };
    let witness = RootfsWitness::from_rootfs_build(&as_nobody(&["rootfs", "build", "--kernel", &kernel]));
    run_hostile_suite(|source, out_dir| as_nobody(&build_args(source, &kernel, out_dir)), &witness, &home);
}
