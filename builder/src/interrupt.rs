//! An interrupted hermod removes what it made.
//!
//! SIGINT (Ctrl-C) and SIGTERM (`systemctl stop`, `kill`) would otherwise
//! end hermod on the spot: its sandboxes die with it (parent-death signal),
//! but its staging directories in `<store>/tmp` and its sandboxes' cgroups
//! stay until a later run finds their owner dead. So hermod never lets these
//! signals kill it. [`install`], first thing in `main` (before any thread
//! exists, since threads inherit the signal mask), blocks both in the whole
//! process and starts one thread that waits for them with `sigwait`; no
//! asynchronous signal handler runs, so the cleanup may allocate, lock and
//! print like any code. On a signal, that thread
//!
//! 1. kills every running sandbox and removes its cgroups
//!    (`hermod_sandbox::abort_all`, which also keeps any new sandbox from
//!    starting),
//! 2. removes, by descriptor, every entry of each store's `tmp/` that
//!    carries this process's owner tag (the staging directories it made:
//!    `store.rs`; each store registers its `tmp/` when opened),
//! 3. says `hermod: interrupted; removed N staging directories` and exits
//!    with 128 + the signal: 130 for SIGINT, 143 for SIGTERM, as a shell
//!    reports a process a signal killed.
//!
//! Children hermod starts with `std::process::Command` get an empty signal
//! mask (the standard library resets it before `exec`), so builds, tools
//! and the sandbox see these signals as usual. SIGKILL cannot be caught:
//! what a killed hermod leaves is removed by the next run (`store.rs`,
//! `hermod_sandbox::owner`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hermod_hostfs::Dir;
use hermod_sandbox::owner::Owner;
use nix::sys::signal::{SigSet, Signal};

#[derive(Debug, thiserror::Error)]
pub enum InterruptError {
    #[error("blocking SIGINT and SIGTERM: {0}")]
    Block(nix::Error),
    #[error("starting the signal thread: {0}")]
    Thread(std::io::Error),
}

/// Each opened store's `tmp/`, by descriptor (a path replaced by a link
/// later still leads to the directory the store opened).
static STAGING: Mutex<Vec<(PathBuf, Dir)>> = Mutex::new(Vec::new());

fn signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set
}

/// Blocks SIGINT and SIGTERM and starts the thread that handles them (see
/// the module doc). Call it before any other thread is started.
pub fn install() -> Result<(), InterruptError> {
    let set = signals();
    set.thread_block().map_err(InterruptError::Block)?;
    std::thread::Builder::new()
        .name("hermod-signals".into())
        .spawn(move || loop {
            // Only an invalid set makes sigwait fail; never spin on it.
            let Ok(signal) = set.wait() else { return };
            if matches!(signal, Signal::SIGINT | Signal::SIGTERM) {
                interrupted(signal);
            }
        })
        .map(drop)
        .map_err(InterruptError::Thread)
}

/// Registers a store's staging directory `tmp` (by descriptor). Best
/// effort: a directory that cannot be opened is left to the next run.
pub fn watch_staging(tmp: &Path) {
    let mut staging = STAGING.lock().unwrap_or_else(|p| p.into_inner());
    if staging.iter().any(|(path, _)| path == tmp) {
        return;
    }
    if let Ok(dir) = Dir::open_nofollow(tmp) {
        staging.push((tmp.to_owned(), dir));
    }
}

/// Removes the entries of the registered `tmp/` directories that carry this
/// process's owner tag; returns how many went. Keeps the registry locked:
/// this runs only on the way out.
fn remove_own_staging() -> usize {
    let staging = STAGING.lock().unwrap_or_else(|p| p.into_inner());
    let me = Owner::me();
    let removed = staging.iter().map(|(_, dir)| remove_tagged(dir, me)).sum();
    std::mem::forget(staging);
    removed
}

/// Removes the entries of `dir` whose name carries `owner`'s tag.
fn remove_tagged(dir: &Dir, owner: Owner) -> usize {
    let Ok(entries) = dir.entries() else { return 0 };
    let mut removed = 0;
    for (name, _) in entries {
        let tagged = name.to_str().and_then(Owner::in_name) == Some(owner);
        // remove_all never follows a link: a symlink is removed itself.
        if tagged && dir.remove_all(&name).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The exit status of a run ended by `signal`: 128 + its number.
pub fn exit_status(signal: Signal) -> i32 {
    128 + signal as i32
}

/// The one line an interrupted run prints.
pub fn message(removed: usize) -> String {
    let noun = if removed == 1 { "directory" } else { "directories" };
    format!("hermod: interrupted; removed {removed} staging {noun}")
}

fn interrupted(signal: Signal) -> ! {
    // Sandboxes first: their processes may still write into a staging
    // directory (their outputs), and their groups empty only once they die.
    hermod_sandbox::abort_all();
    let removed = remove_own_staging();
    eprintln!("{}", message(removed));
    std::process::exit(exit_status(signal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_are_the_shells() {
        assert_eq!(exit_status(Signal::SIGINT), 130);
        assert_eq!(exit_status(Signal::SIGTERM), 143);
        assert_eq!(message(1), "hermod: interrupted; removed 1 staging directory");
        assert_eq!(message(3), "hermod: interrupted; removed 3 staging directories");
    }

    #[test]
    fn only_this_processs_staging_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let me = Owner::me();
        let other = Owner { pid: me.pid + 1, ..me };
        let mine = tmp.path().join(format!("build-{}-x1", me.tag()));
        std::fs::create_dir_all(mine.join("in/src")).unwrap();
        std::fs::write(mine.join("in/src/a.c"), "x").unwrap();
        std::fs::create_dir(tmp.path().join(format!("build-{}-x2", other.tag()))).unwrap();
        std::fs::create_dir(tmp.path().join("untagged")).unwrap();
        // A link carrying our tag is removed as a link, its target kept.
        let target = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(target.path(), tmp.path().join(format!("names-{}-x3", me.tag()))).unwrap();
        watch_staging(tmp.path());
        watch_staging(tmp.path());
        // (remove_own_staging keeps the registry locked on the way out, so
        // the test calls what it does for each registered directory.)
        let removed = remove_tagged(&Dir::open_nofollow(tmp.path()).unwrap(), me);
        assert_eq!(removed, 2);
        let mut left: Vec<String> =
            std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, [format!("build-{}-x2", other.tag()), "untagged".to_owned()]);
        assert!(target.path().is_dir());
        assert_eq!(STAGING.lock().unwrap().iter().filter(|(p, _)| p == tmp.path()).count(), 1, "registered once");
    }
}
