//! Leftovers of killed runs: a `hermod build` killed with SIGKILL while its
//! sandbox runs leaves an empty cgroup and its staging directory; the next
//! run removes both (and never a live run's: `owner.rs`, `cgroup.rs` and
//! `store.rs` unit tests). One interrupted by SIGINT or SIGTERM removes its
//! own before exiting 130 / 143 (`interrupt.rs`).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// The cgroup directories a sandbox of this process's children is made in:
/// the test's own group in each hierarchy (hermod makes its groups there).
fn cgroup_parents() -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut parents = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let rel = path.trim_start_matches('/');
        let roots: Vec<String> = if controllers.is_empty() {
            vec!["/sys/fs/cgroup".into(), "/sys/fs/cgroup/unified".into()]
        } else {
            controllers.split(',').map(|c| format!("/sys/fs/cgroup/{c}")).collect()
        };
        parents.extend(roots.into_iter().map(|r| Path::new(&r).join(rel)).filter(|p| p.is_dir()));
    }
    parents.sort();
    parents.dedup();
    parents
}

/// Entries of `dirs` whose name carries `pid`'s owner tag.
fn tagged(dirs: &[PathBuf], pid: u32) -> Vec<PathBuf> {
    let tag = format!("-o{pid}.");
    dirs.iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|r| r.flatten())
        .filter(|e| e.file_name().to_string_lossy().contains(&tag))
        .map(|e| e.path())
        .collect()
}

/// One test at a time: any hermod opening the store removes a dead run's
/// litter, which the SIGKILL test must still see before its next run.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fresh copy of hello that no one built (a cache miss, so the sandbox
/// runs), the `hermod build` arguments for it, and the directories they live in.
fn unbuilt_hello() -> (tempfile::TempDir, tempfile::TempDir, Vec<String>) {
    let src = tempfile::tempdir().unwrap();
    let source = src.path().join("hello");
    tool("cp", &["-R", testdata("modules/hello").to_str().unwrap(), source.to_str().unwrap()]);
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let c = std::fs::read_dir(&source)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "c"))
        .expect("a .c file");
    let mut text = std::fs::read_to_string(&c).unwrap();
    text.push_str(&format!("\n/* killed_runs {nonce} */\n"));
    std::fs::write(&c, text).unwrap();
    let out = tempfile::tempdir().unwrap();
    let args = ["build", source.to_str().unwrap(), "--kernel", &kernel(), "--out", out.path().to_str().unwrap()]
        .map(String::from)
        .to_vec();
    (src, out, args)
}

/// Waits until `child`'s sandbox runs: its cgroup and staging directory exist.
fn wait_for_sandbox(child: &mut std::process::Child, cgroups: &[PathBuf], tmp: &[PathBuf]) {
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if !tagged(cgroups, pid).is_empty() && !tagged(tmp, pid).is_empty() {
            return;
        }
        assert!(child.try_wait().unwrap().is_none(), "the build ended before a sandbox was seen");
        assert!(Instant::now() < deadline, "no sandbox cgroup of {pid} under {cgroups:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// An unbuilt hello's `hermod build`, one at a time, waited for until its
/// sandbox runs (its cgroups and staging directory exist).
struct Running {
    _serial: std::sync::MutexGuard<'static, ()>,
    _src: tempfile::TempDir,
    _out: tempfile::TempDir,
    store: PathBuf,
    args: Vec<String>,
    cgroups: Vec<PathBuf>,
    tmp: Vec<PathBuf>,
    child: std::process::Child,
    pid: u32,
}

fn running_build() -> Running {
    let _serial = serial();
    let store = shared_store();
    let (_src, _out, args) = unbuilt_hello();
    let cgroups = cgroup_parents();
    let tmp = vec![store.join("tmp")];
    let mut child = spawn(&store, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let pid = child.id();
    wait_for_sandbox(&mut child, &cgroups, &tmp);
    Running { _serial, _src, _out, store, args, cgroups, tmp, child, pid }
}

#[test]
fn the_next_run_removes_the_cgroups_and_staging_of_a_killed_build() {
    // Killed while its sandbox runs: its group and staging directory exist.
    let Running { _serial, _src, _out, store, args, cgroups, tmp, mut child, pid } = running_build();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    child.kill().unwrap();
    child.wait().unwrap();
    // Its sandbox dies with it (parent-death signal); what it made stays.
    std::thread::sleep(Duration::from_millis(200));
    let left_groups = tagged(&cgroups, pid);
    let left_tmp = tagged(&tmp, pid);
    assert!(!left_groups.is_empty() && !left_tmp.is_empty(), "a killed build leaves litter to clean up");

    // The next run (the same build, to the end) removes both.
    let next = run(&store, &args);
    assert!(next.status.success(), "{}", stderr(&next));
    assert_eq!(tagged(&cgroups, pid), Vec::<PathBuf>::new(), "cgroups of the killed build");
    assert_eq!(tagged(&tmp, pid), Vec::<PathBuf>::new(), "staging of the killed build");
}

/// SIGINT (Ctrl-C) or SIGTERM while the sandbox runs: hermod kills it, removes
/// its own cgroups and staging directories, says so, and exits 130 / 143,
/// with nothing left for a later run to clean.
fn interrupted_build_cleans_up(signal: nix::sys::signal::Signal, status: i32) {
    let Running { _serial, _src, _out, cgroups, tmp, child, pid, .. } = running_build();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(status), "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("hermod: interrupted; removed ") && l.contains(" staging director")),
        "{err}"
    );
    assert_eq!(tagged(&cgroups, pid), Vec::<PathBuf>::new(), "cgroups of the interrupted build");
    assert_eq!(tagged(&tmp, pid), Vec::<PathBuf>::new(), "staging of the interrupted build");
}

#[test]
fn an_interrupted_build_removes_its_own_cgroups_and_staging() {
    interrupted_build_cleans_up(nix::sys::signal::Signal::SIGINT, 130);
}

#[test]
fn a_terminated_build_removes_its_own_cgroups_and_staging() {
    interrupted_build_cleans_up(nix::sys::signal::Signal::SIGTERM, 143);
}
