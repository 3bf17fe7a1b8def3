//! Step 2: new namespaces, and who we are inside them.
//!
//! `unshare(CLONE_NEWUSER | …)` moves this process into a new user namespace
//! together with new mount, pid, network, IPC and UTS namespaces owned by it.
//! Right after, the process has every capability — but only over those
//! namespaces — and its ids are unmapped ("nobody"). The kernel lets any
//! process map exactly one id: its own. We write
//!
//! ```text
//! /proc/self/setgroups   deny               (required before gid_map when unprivileged)
//! /proc/self/uid_map     <spec.uid> <euid> 1
//! /proc/self/gid_map     <spec.gid> <egid> 1
//! ```
//!
//! so inside, the command is `spec.uid`/`spec.gid`, while on the host its
//! files still belong to whoever ran hermod. This works the same as root and
//! as an unprivileged user; no setuid helper, no subordinate id ranges.
//!
//! `CLONE_NEWPID` does not move this process: only its next child becomes
//! pid 1 of the new pid namespace (step 3).

use std::fs;

use nix::sched::{unshare, CloneFlags};
use nix::sys::prctl;
use nix::unistd::{getegid, geteuid, setgroups, setresgid, setresuid, Gid, Uid};

use super::{SetupError, Step};
use crate::spec::Spec;

pub(crate) fn enter(spec: &Spec) -> Result<(), SetupError> {
    drop_supplementary_groups();
    if geteuid().is_root() {
        if let Some((uid, gid)) = spec.host_ids {
            become_unprivileged(uid, gid)?;
        }
    }
    let (outer_uid, outer_gid) = (geteuid().as_raw(), getegid().as_raw());
    unshare(
        CloneFlags::CLONE_NEWUSER
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS,
    )
    .step(|| "creating the sandbox namespaces (unshare user, mount, pid, net, ipc, uts)".into())?;
    write_proc("/proc/self/setgroups", "deny")?;
    write_proc("/proc/self/uid_map", &id_map(spec.uid, outer_uid))?;
    write_proc("/proc/self/gid_map", &id_map(spec.gid, outer_gid))?;
    Ok(())
}

/// A root caller first becomes an ordinary host user, so that whatever the
/// command does, the kernel's checks against the *global* root uid (sysctl
/// writes, root-owned files in /proc) never pass. Changing ids clears the
/// "dumpable" flag, which would make /proc/self/uid_map root-owned and
/// unwritable to us; it is set again (the parent-death signal, also cleared,
/// is re-armed by the caller after `enter`).
fn become_unprivileged(uid: u32, gid: u32) -> Result<(), SetupError> {
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    setresgid(gid, gid, gid).step(|| format!("switching to host gid {gid} before unsharing"))?;
    setresuid(uid, uid, uid).step(|| format!("switching to host uid {uid} before unsharing"))?;
    prctl::set_dumpable(true).step(|| "making the sandbox helper dumpable again".into())?;
    Ok(())
}

/// One line of `uid_map`/`gid_map`: `inside outside count`.
fn id_map(inside: u32, outside: u32) -> String {
    format!("{inside} {outside} 1\n")
}

/// Supplementary groups cannot be mapped (only our one gid is), so inside
/// they would show as `nogroup` yet still grant access on the host. Root can
/// drop them before unsharing; an unprivileged caller cannot (EPERM), and
/// then has only its own groups anyway.
fn drop_supplementary_groups() {
    let _ = setgroups(&[]);
}

fn write_proc(path: &str, text: &str) -> Result<(), SetupError> {
    // A single write: the kernel accepts each of these files only once and
    // only as one write(2) call.
    fs::write(path, text.as_bytes()).step(|| format!("writing {:?} to {path}", text.trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_one_id_onto_the_callers() {
        assert_eq!(id_map(1000, 0), "1000 0 1\n");
        assert_eq!(id_map(0, 65534), "0 65534 1\n");
    }
}
