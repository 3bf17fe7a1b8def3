//! Process attributes a build must not depend on, set for a child command.
//!
//! `hermod verify` proves a package reproducible by building it twice and
//! changing, between the two builds, everything of the caller that a careless
//! build could leak into its output. Some of those are process attributes only
//! the child itself can change, between `fork` and `exec`: its umask, its host
//! name (in a UTS namespace of its own, so the host's is untouched), the CPUs
//! it may run on, and its uid and gid. [`Variation::apply`] installs them on a
//! [`Command`]; this is the one place that needs `unsafe` for it.
//!
//! **The uid** is changed with a user namespace, not `setuid`: the child sees
//! itself as `uid`/`gid` (it is not root there and has no capabilities once it
//! execs), while the kernel still checks its file accesses as the caller's own
//! ids. So it can use the caller's store, yet every uid-dependent choice the
//! program makes (which sandbox path it takes, which ids it maps, what `id`
//! says) is that of another user. It works for root and, where unprivileged
//! user namespaces are allowed, for anyone.

use std::ffi::CString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sched::{CloneFlags, CpuSet};

/// What to change in a child. `None` leaves an attribute as the caller has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variation {
    /// The file mode creation mask, e.g. `0o077`.
    pub umask: Option<u32>,
    /// The host name, set in a new UTS namespace.
    pub hostname: Option<String>,
    /// The child's uid and gid, in a new user namespace mapping them to the
    /// caller's own (see the module docs). Must not be the caller's uid.
    pub ids: Option<(u32, u32)>,
    /// Run on only this many of the CPUs the caller may use (at least 1).
    pub cpus: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum VaryError {
    #[error("a host name must be 1 to 64 bytes without NUL, not {0:?}")]
    BadHostname(String),
    #[error("the child's uid must differ from the caller's ({0}): a user namespace maps one to the other")]
    SameUid(u32),
    #[error("reading this process's CPU affinity: {0}")]
    Affinity(nix::Error),
}

impl Variation {
    /// Install the variation on `cmd`: it takes effect in the child, right
    /// before `exec`. A failure there makes `spawn` return that error.
    pub fn apply(&self, cmd: &mut Command) -> Result<(), VaryError> {
        let plan = Plan::new(self)?;
        // SAFETY: the closure runs in the forked child before exec. It only
        // makes system calls on data prepared here, in the parent (no
        // allocation, no locks), as `pre_exec` requires.
        unsafe {
            cmd.pre_exec(move || plan.run());
        }
        Ok(())
    }
}

/// Everything the child needs, computed before the fork.
struct Plan {
    umask: Option<nix::sys::stat::Mode>,
    hostname: Option<String>,
    /// `(path, contents)` of /proc/self/{setgroups,uid_map,gid_map}, in order.
    id_maps: Vec<(CString, Vec<u8>)>,
    cpus: Option<CpuSet>,
}

impl Plan {
    fn new(v: &Variation) -> Result<Plan, VaryError> {
        if let Some(name) = &v.hostname {
            if name.is_empty() || name.len() > 64 || name.contains('\0') {
                return Err(VaryError::BadHostname(name.clone()));
            }
        }
        let mut id_maps = Vec::new();
        if let Some((uid, gid)) = v.ids {
            let (outer_uid, outer_gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
            if uid == outer_uid {
                return Err(VaryError::SameUid(uid));
            }
            let path = |name: &str| CString::new(format!("/proc/self/{name}")).expect("no NUL");
            id_maps.push((path("setgroups"), b"deny".to_vec()));
            id_maps.push((path("uid_map"), format!("{uid} {outer_uid} 1\n").into_bytes()));
            id_maps.push((path("gid_map"), format!("{gid} {outer_gid} 1\n").into_bytes()));
        }
        let cpus = match v.cpus {
            None => None,
            Some(wanted) => {
                let allowed =
                    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).map_err(VaryError::Affinity)?;
                let mut set = CpuSet::new();
                let mut taken = 0;
                for cpu in 0..CpuSet::count() {
                    if taken < wanted.max(1) && allowed.is_set(cpu).unwrap_or(false) {
                        set.set(cpu).map_err(VaryError::Affinity)?;
                        taken += 1;
                    }
                }
                Some(set)
            }
        };
        Ok(Plan {
            umask: v.umask.map(|m| nix::sys::stat::Mode::from_bits_truncate(m as libc::mode_t)),
            hostname: v.hostname.clone(),
            id_maps,
            cpus,
        })
    }

    /// In the child, between fork and exec.
    fn run(&self) -> io::Result<()> {
        let mut flags = CloneFlags::empty();
        if !self.id_maps.is_empty() {
            flags |= CloneFlags::CLONE_NEWUSER;
        }
        if self.hostname.is_some() {
            flags |= CloneFlags::CLONE_NEWUTS;
        }
        if !flags.is_empty() {
            nix::sched::unshare(flags)?;
        }
        for (path, contents) in &self.id_maps {
            write_proc(path, contents)?;
        }
        if let Some(name) = &self.hostname {
            nix::unistd::sethostname(name)?;
        }
        if let Some(mask) = self.umask {
            nix::sys::stat::umask(mask);
        }
        if let Some(set) = &self.cpus {
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), set)?;
        }
        Ok(())
    }
}

/// One write of `contents` to a /proc file (the id maps take exactly one).
fn write_proc(path: &CString, contents: &[u8]) -> io::Result<()> {
    // SAFETY: a valid NUL-terminated path; the descriptor is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `contents` is a live slice of the given length.
    let written = unsafe { libc::write(fd, contents.as_ptr().cast(), contents.len()) };
    let error = io::Error::last_os_error();
    // SAFETY: fd was opened above and is closed once.
    unsafe { libc::close(fd) };
    if written != contents.len() as isize {
        return Err(error);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_refused_before_the_fork() {
        let mut cmd = Command::new("true");
        let long = Variation { hostname: Some("x".repeat(65)), ..Default::default() };
        assert!(matches!(long.apply(&mut cmd), Err(VaryError::BadHostname(_))));
        let me = nix::unistd::geteuid().as_raw();
        let same = Variation { ids: Some((me, 0)), ..Default::default() };
        assert!(matches!(same.apply(&mut cmd), Err(VaryError::SameUid(_))));
    }

    #[test]
    fn umask_and_cpus_reach_the_child() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "umask; nproc"]);
        Variation { umask: Some(0o077), cpus: Some(1), ..Default::default() }.apply(&mut cmd).unwrap();
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, ["0077", "1"]);
    }

    #[test]
    fn uid_and_hostname_change_in_namespaces_of_the_child() {
        let me = nix::unistd::geteuid().as_raw();
        let other = if me == 1000 { 1001 } else { 1000 };
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "id -u; id -g; hostname"]);
        let v =
            Variation { ids: Some((other, other)), hostname: Some("hermod-vary-test".into()), ..Default::default() };
        v.apply(&mut cmd).unwrap();
        let out = match cmd.output() {
            Ok(out) => out,
            // Unprivileged user namespaces may be disabled for non-root callers.
            Err(e) if !nix::unistd::geteuid().is_root() => return eprintln!("note: user namespace refused: {e}"),
            Err(e) => panic!("{e}"),
        };
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, [other.to_string().as_str(), other.to_string().as_str(), "hermod-vary-test"]);
        // The host's own name is untouched.
        assert_ne!(nix::unistd::gethostname().unwrap().to_string_lossy(), "hermod-vary-test");
    }
}
