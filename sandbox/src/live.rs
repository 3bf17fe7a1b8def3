//! The sandboxes this process is running now, for a caller that must end
//! early.
//!
//! A sandbox dies with its caller anyway (the helper and pid 1 have
//! `PR_SET_PDEATHSIG`), but its cgroups do not: a group can be removed only
//! once its last process is gone, and a caller that simply exits is gone
//! before that. So a caller that is interrupted (hermod on SIGINT/SIGTERM)
//! calls [`abort_all`] from one thread: it kills every running helper,
//! waits for each group to empty and removes it, and leaves the registry
//! locked, so that no sandbox starts, and no `run()` returns, before the
//! caller exits.
//!
//! A helper is registered as it is spawned and until just before `run()`
//! reaps it, a group as it is made and until it is removed, each under the
//! registry's lock: so [`abort_all`] sees every helper and group there is,
//! and signals only a child not yet reaped, whose pid cannot be reused.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

struct Registry {
    helpers: Vec<u32>,
    groups: Vec<PathBuf>,
}

static LIVE: Mutex<Registry> = Mutex::new(Registry { helpers: Vec::new(), groups: Vec::new() });

fn live() -> MutexGuard<'static, Registry> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long [`abort_all`] waits for a killed sandbox's groups to empty.
const EMPTY_WAIT: Duration = Duration::from_secs(5);

/// A spawned, not yet reaped helper; [`Helper::reaping`] ends it.
pub(crate) struct Helper(u32);

impl Helper {
    /// Starts the helper and registers it under one hold of the lock: an
    /// [`abort_all`] sees it, or it never starts.
    pub(crate) fn spawn(cmd: &mut Command) -> io::Result<(Child, Helper)> {
        let mut reg = live();
        let child = cmd.spawn()?;
        reg.helpers.push(child.id());
        let pid = child.id();
        Ok((child, Helper(pid)))
    }

    /// Call right before waiting for the helper: from then on its pid may
    /// name another process. (Blocks forever once [`abort_all`] ran.)
    pub(crate) fn reaping(self) {
        live().helpers.retain(|p| *p != self.0);
    }
}

/// Creates the cgroup `dir` and registers it under one hold of the lock:
/// an [`abort_all`] removes it, or it is never made.
pub(crate) fn make_group(dir: &Path) -> io::Result<()> {
    let mut reg = live();
    std::fs::create_dir(dir)?;
    reg.groups.push(dir.to_owned());
    Ok(())
}

pub(crate) fn remove_group(dir: &Path) {
    live().groups.retain(|d| d != dir);
}

/// What [`abort_all`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aborted {
    /// Sandboxes killed.
    pub sandboxes: usize,
    /// cgroups removed.
    pub cgroups: usize,
}

/// Kills every sandbox this process is running and removes their cgroups
/// (waiting up to 5 s for each to empty). Meant for the last moments of a
/// process: afterwards the registry stays locked, so no sandbox of this
/// process starts and no running `run()` returns; exit next.
pub fn abort_all() -> Aborted {
    let mut reg = live();
    let mut aborted = Aborted::default();
    for pid in &reg.helpers {
        // SIGKILL the helper; pid 1 follows through its parent-death signal
        // and the kernel kills the rest of the pid namespace.
        if kill(Pid::from_raw(*pid as i32), Signal::SIGKILL).is_ok() {
            aborted.sandboxes += 1;
        }
    }
    let deadline = Instant::now() + EMPTY_WAIT;
    for dir in reg.groups.drain(..).rev() {
        loop {
            match std::fs::remove_dir(&dir) {
                Ok(()) => {
                    aborted.cgroups += 1;
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(_) => break,
            }
        }
    }
    std::mem::forget(reg);
    aborted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_and_groups_are_listed_while_live_only() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("hermod-test-group");
        make_group(&dir).unwrap();
        assert!(dir.is_dir());
        let (mut child, helper) = Helper::spawn(&mut Command::new("true")).unwrap();
        let pid = child.id();
        {
            let reg = live();
            assert!(reg.helpers.contains(&pid));
            assert!(reg.groups.contains(&dir));
        }
        helper.reaping();
        child.wait().unwrap();
        remove_group(&dir);
        let reg = live();
        assert!(!reg.helpers.contains(&pid));
        assert!(!reg.groups.contains(&dir));
    }
}
