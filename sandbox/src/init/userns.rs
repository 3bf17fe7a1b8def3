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

use std::path::Path;

use nix::sched::CloneFlags;
use nix::unistd::{Gid, Uid};

use super::sys::Sys;
use super::{SetupError, Step};
use crate::spec::Spec;

/// Every namespace the sandbox has, created at once.
const NAMESPACES: CloneFlags = CloneFlags::CLONE_NEWUSER
    .union(CloneFlags::CLONE_NEWNS)
    .union(CloneFlags::CLONE_NEWPID)
    .union(CloneFlags::CLONE_NEWNET)
    .union(CloneFlags::CLONE_NEWIPC)
    .union(CloneFlags::CLONE_NEWUTS);

pub(crate) fn enter(sys: &dyn Sys, spec: &Spec) -> Result<(), SetupError> {
    drop_supplementary_groups(sys);
    if sys.geteuid().is_root() {
        if let Some((uid, gid)) = spec.host_ids {
            become_unprivileged(sys, uid, gid)?;
        }
    }
    let (outer_uid, outer_gid) = (sys.geteuid().as_raw(), sys.getegid().as_raw());
    sys.unshare(NAMESPACES)
        .step(|| "creating the sandbox namespaces (unshare user, mount, pid, net, ipc, uts)".into())?;
    write_proc(sys, "/proc/self/setgroups", "deny")?;
    write_proc(sys, "/proc/self/uid_map", &id_map(spec.uid, outer_uid))?;
    write_proc(sys, "/proc/self/gid_map", &id_map(spec.gid, outer_gid))?;
    Ok(())
}

/// A root caller first becomes an ordinary host user, so that whatever the
/// command does, the kernel's checks against the *global* root uid (sysctl
/// writes, root-owned files in /proc) never pass. Changing ids clears the
/// "dumpable" flag, which would make /proc/self/uid_map root-owned and
/// unwritable to us; it is set again (the parent-death signal, also cleared,
/// is re-armed by the caller after `enter`).
fn become_unprivileged(sys: &dyn Sys, uid: u32, gid: u32) -> Result<(), SetupError> {
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    sys.setresgid(gid, gid, gid).step(|| format!("switching to host gid {gid} before unsharing"))?;
    sys.setresuid(uid, uid, uid).step(|| format!("switching to host uid {uid} before unsharing"))?;
    sys.set_dumpable(true).step(|| "making the sandbox helper dumpable again".into())?;
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
fn drop_supplementary_groups(sys: &dyn Sys) {
    let _ = sys.setgroups(&[]);
}

fn write_proc(sys: &dyn Sys, path: &str, text: &str) -> Result<(), SetupError> {
    // A single write: the kernel accepts each of these files only once and
    // only as one write(2) call.
    sys.write_file(Path::new(path), text).step(|| format!("writing {:?} to {path}", text.trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::init::recording::{Call, Recording};
    use nix::errno::Errno;

    #[test]
    fn maps_one_id_onto_the_callers() {
        assert_eq!(id_map(1000, 0), "1000 0 1\n");
        assert_eq!(id_map(0, 65534), "0 65534 1\n");
    }

    fn spec(uid: u32, gid: u32) -> Spec {
        Spec { uid, gid, ..Spec::new("/srv/rootfs", vec!["/bin/true".into()]) }
    }

    fn write(path: &str, text: &str) -> Call {
        Call::WriteFile { path: path.into(), text: text.into() }
    }

    #[test]
    fn root_caller_becomes_nobody_before_unsharing() {
        let sys = Recording::new().caller(0, 0);
        enter(&sys, &spec(0, 0)).unwrap();
        let effects: Vec<Call> = sys.calls().into_iter().filter(|c| !c.is_read()).collect();
        assert_eq!(
            effects,
            [
                Call::Setgroups(vec![]),
                // gid first: after setresuid we could no longer change it.
                Call::Setresgid(65534, 65534, 65534),
                Call::Setresuid(65534, 65534, 65534),
                Call::SetDumpable(true),
                Call::Unshare(
                    CloneFlags::CLONE_NEWUSER
                        | CloneFlags::CLONE_NEWNS
                        | CloneFlags::CLONE_NEWPID
                        | CloneFlags::CLONE_NEWNET
                        | CloneFlags::CLONE_NEWIPC
                        | CloneFlags::CLONE_NEWUTS
                ),
                // setgroups deny must precede gid_map; both maps name the
                // switched-to ids, read after the switch.
                write("/proc/self/setgroups", "deny"),
                write("/proc/self/uid_map", "0 65534 1\n"),
                write("/proc/self/gid_map", "0 65534 1\n"),
            ]
        );
    }

    #[test]
    fn root_caller_uses_the_specs_host_ids() {
        let sys = Recording::new().caller(0, 0);
        enter(&sys, &Spec { host_ids: Some((4242, 4343)), ..spec(1000, 1000) }).unwrap();
        let effects = sys.effects();
        assert_eq!(effects[1..3], ["setresgid(4343, 4343, 4343)", "setresuid(4242, 4242, 4242)"]);
        assert_eq!(
            effects[6..],
            ["write(/proc/self/uid_map, \"1000 4242 1\\n\")", "write(/proc/self/gid_map, \"1000 4343 1\\n\")"]
        );
    }

    #[test]
    fn unprivileged_caller_maps_itself_without_switching_ids() {
        // Dropping supplementary groups fails without privilege; that is fine.
        let sys = Recording::new().caller(1000, 100).fail("setgroups", Errno::EPERM);
        enter(&sys, &spec(0, 0)).unwrap();
        let effects = sys.effects();
        assert_eq!(
            effects,
            [
                "setgroups([])",
                "unshare(CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET)",
                "write(/proc/self/setgroups, \"deny\")",
                "write(/proc/self/uid_map, \"0 1000 1\\n\")",
                "write(/proc/self/gid_map, \"0 100 1\\n\")",
            ]
        );
    }

    #[test]
    fn root_caller_without_host_ids_stays_root() {
        let sys = Recording::new().caller(0, 0);
        enter(&sys, &Spec { host_ids: None, ..spec(0, 0) }).unwrap();
        assert!(!sys.calls().iter().any(|c| matches!(c, Call::Setresuid(..) | Call::Setresgid(..))));
        assert_eq!(sys.effects().last().unwrap(), "write(/proc/self/gid_map, \"0 0 1\\n\")");
    }

    #[test]
    fn a_failed_switch_stops_before_unsharing() {
        let sys = Recording::new().caller(0, 0).fail("setresuid", Errno::EPERM);
        let err = enter(&sys, &spec(0, 0)).unwrap_err();
        assert!(
            matches!(&err, SetupError::Sys { step, errno: Errno::EPERM } if step == "switching to host uid 65534 before unsharing"),
            "{err}"
        );
        assert_eq!(sys.effects().last().unwrap(), "setresuid(65534, 65534, 65534)");
    }

    #[test]
    fn a_failed_map_write_names_the_file() {
        let sys = Recording::new().fail("write(/proc/self/uid_map", Errno::EPERM);
        let err = enter(&sys, &spec(0, 0)).unwrap_err();
        assert_eq!(err.to_string(), "writing \"0 1000 1\" to /proc/self/uid_map: EPERM: Operation not permitted");
        assert!(!sys.lines().iter().any(|l| l.contains("gid_map")));
    }
}
