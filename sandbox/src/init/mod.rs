//! The sandbox init: the re-executed helper process, step by step.
//!
//! This runs in a fresh, single-threaded process started by `run()` with
//! `argv = [exe, INIT_ARG, <status fd>, <parent pid>]`, the spec (and the
//! cgroup v1 groups to join) as JSON on stdin and the log file as
//! stdout/stderr. The sequence, in order:
//!
//! 1. die with the parent; read the spec; join the cgroups;    (this file)
//! 2. unshare all namespaces, write the uid/gid maps;          (`userns.rs`)
//! 3. fork pid 1 of the new pid namespace; this process stays
//!    outside it, waits for pid 1 and reports how it ended;    (this file)
//! 4. in pid 1: build the new root;            (`rootfs.rs`, `dev.rs`, `procfs.rs`)
//! 5. bring up `lo`, set the hostname;                         (`net.rs`)
//! 6. pivot_root into the new root, chdir to the cwd;          (`rootfs.rs`)
//! 7. fork the command, reap every child until it exits;       (`payload.rs`)
//! 8. in the command: drop everything, set the resource limits,
//!    install the seccomp filter, execve.    (`payload.rs`, `limits.rs`, `seccomp.rs`)
//! 9. in pid 1, once the command is gone: kill what is left and copy
//!    the outputs to the host directory opened before step 6. (`outputs.rs`)
//!
//! A failure in any step is sent to `run()` over the status pipe as the
//! step's description plus errno, then the process exits with 125.
//!
//! Steps 2, 4, 5 and 6 make their system calls through the [`sys::Sys`]
//! seam: here it is [`sys::Real`], in their unit tests a recording double
//! (`recording.rs`) that lets the sequence be checked without privileges.

mod dev;
mod limits;
mod mountflags;
mod net;
mod outputs;
mod payload;
pub(crate) mod procfs;
#[cfg(test)]
mod recording;
mod rootfs;
pub(crate) mod seccomp;
mod sys;
mod userns;

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, getppid, ForkResult, Pid};

use crate::report::{Ended, Report};
use crate::run::Handoff;
use crate::spec::Spec;
use sys::Real;

/// Exit status of a sandbox process whose setup failed (as in `env(1)`).
const SETUP_FAILED: i32 = 125;

/// A setup step that failed, and why.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    #[error("{step}: {errno}")]
    Sys { step: String, errno: Errno },
    #[error("{step}: {detail}")]
    Other { step: String, detail: String },
}

impl SetupError {
    pub(crate) fn other(step: impl Into<String>, detail: impl Into<String>) -> SetupError {
        SetupError::Other { step: step.into(), detail: detail.into() }
    }

    fn report(&self) -> Report {
        match self {
            SetupError::Sys { step, errno } => {
                Report::SetupFailed { step: step.clone(), errno: Some(*errno as i32), detail: String::new() }
            }
            SetupError::Other { step, detail } => {
                Report::SetupFailed { step: step.clone(), errno: None, detail: detail.clone() }
            }
        }
    }
}

/// `.step(|| "mounting /proc")` names the step a system call belonged to.
pub(crate) trait Step<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, SetupError>;
}

impl<T> Step<T> for nix::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, SetupError> {
        self.map_err(|errno| SetupError::Sys { step: what(), errno })
    }
}

impl<T> Step<T> for io::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, SetupError> {
        self.map_err(|e| match e.raw_os_error() {
            Some(raw) => SetupError::Sys { step: what(), errno: Errno::from_raw(raw) },
            None => SetupError::Other { step: what(), detail: e.to_string() },
        })
    }
}

/// Entry point from `enter_if_requested`; returns the process exit status.
pub(crate) fn main(args: &[String]) -> i32 {
    let status = match status_pipe(args) {
        Ok(fd) => fd,
        Err(msg) => {
            eprintln!("hermod-sandbox init: {msg}");
            return SETUP_FAILED;
        }
    };
    match helper(status.as_fd(), args.get(1)) {
        Ok(code) => code,
        Err(e) => {
            e.report().send(status.as_fd());
            SETUP_FAILED
        }
    }
}

/// Steps 1–3, in the helper process (outside the new pid namespace).
fn helper(status: BorrowedFd<'_>, parent: Option<&String>) -> Result<i32, SetupError> {
    die_with_parent()?;
    if let Some(parent) = parent.and_then(|p| p.parse::<i32>().ok()) {
        if getppid() != Pid::from_raw(parent) {
            // run() is already gone; PDEATHSIG was set too late to fire.
            return Ok(SETUP_FAILED);
        }
    }
    let Handoff { spec, cgroup_tasks } = read_handoff()?;
    for tasks in &cgroup_tasks {
        join_cgroup(tasks)?;
    }
    userns::enter(&Real, &spec)?;
    // Creating the user namespace changed our credentials; make sure the
    // parent-death signal survived it.
    die_with_parent()?;

    let (lifeline_read, lifeline_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).step(|| "creating the lifeline pipe".into())?;
    // SAFETY: this process is single-threaded (a fresh exec whose main()
    // called enter_if_requested() first), so the child may keep running
    // arbitrary Rust code after fork.
    match unsafe { fork() }.step(|| "forking pid 1 of the sandbox".into())? {
        ForkResult::Child => {
            drop(lifeline_write);
            std::process::exit(pid1(&spec, status, lifeline_read))
        }
        ForkResult::Parent { child } => {
            drop(lifeline_read);
            let ended = wait_for(child).step(|| "waiting for pid 1 of the sandbox".into())?;
            Report::Init(ended).send(status);
            drop(lifeline_write);
            Ok(0)
        }
    }
}

/// Steps 4–7, in pid 1 of the new pid namespace. Returns its exit status.
fn pid1(spec: &Spec, status: BorrowedFd<'_>, lifeline: OwnedFd) -> i32 {
    let started = (|| -> Result<_, SetupError> {
        die_with_parent()?;
        parent_still_alive(lifeline)?;
        rootfs::build(&Real, spec)?;
        net::loopback_up(&Real)?;
        net::set_hostname(&Real, &spec.hostname)?;
        let host_outputs = spec.outputs.as_ref().map(outputs::open_host_dir).transpose()?;
        rootfs::pivot_into_new_root(&Real, &spec.cwd)?;
        Ok((payload::spawn(spec, status)?, host_outputs))
    })();
    match started {
        Err(e) => {
            e.report().send(status);
            SETUP_FAILED
        }
        Ok((command, host_outputs)) => {
            let ended = payload::reap_until(command);
            if let (Some(wanted), Some(host)) = (&spec.outputs, &host_outputs) {
                if let Err(detail) = outputs::copy_out(wanted, host) {
                    Report::OutputsFailed { detail }.send(status);
                }
            }
            Report::Payload(ended).send(status);
            // Exiting kills whatever the command left behind in the namespace.
            ended.as_exit_code()
        }
    }
}

/// Step 1: if `run()` (or, for pid 1, the helper) dies, so do we.
fn die_with_parent() -> Result<(), SetupError> {
    prctl::set_pdeathsig(Signal::SIGKILL).step(|| "setting the parent-death signal".into())
}

/// Step 1: move this (single-threaded) process into a cgroup v1 group by
/// writing `0`, "the writing thread", to its `tasks` file. A thread moving
/// itself spares the kernel's global threadgroup lock that moving another
/// process takes (milliseconds; see cgroup.rs). Before pid 1 is forked, so
/// everything the sandbox runs is born inside.
fn join_cgroup(tasks: &Path) -> Result<(), SetupError> {
    let step = || format!("joining the sandbox's cgroup ({})", tasks.display());
    // No O_CREAT: a group that is gone is an error, not a new file.
    let mut file = std::fs::OpenOptions::new().write(true).open(tasks).step(step)?;
    io::Write::write_all(&mut file, b"0").step(step)
}

/// Step 1: the spec arrives as JSON on stdin, closed by `run()` when done.
fn read_handoff() -> Result<Handoff, SetupError> {
    let mut json = Vec::new();
    io::stdin().lock().read_to_end(&mut json).step(|| "reading the sandbox spec from stdin".into())?;
    serde_json::from_slice(&json).map_err(|e| SetupError::other("decoding the sandbox spec", e.to_string()))
}

/// Pid 1 cannot use `getppid()` to detect that its parent died before
/// PDEATHSIG was armed (the parent is outside its pid namespace, so it always
/// reads 0). Instead it checks whether the parent's end of a pipe is gone.
fn parent_still_alive(lifeline: OwnedFd) -> Result<(), SetupError> {
    let mut fds = [PollFd::new(lifeline.as_fd(), PollFlags::POLLIN)];
    let ready = poll(&mut fds, PollTimeout::ZERO).step(|| "checking on the sandbox helper".into())?;
    if ready > 0 {
        return Err(SetupError::other("starting pid 1", "the sandbox helper died"));
    }
    Ok(())
}

/// The descriptor number `run()` passed as the first argument after INIT_ARG.
fn status_pipe(args: &[String]) -> Result<OwnedFd, String> {
    let fd: i32 = args
        .first()
        .and_then(|a| a.parse().ok())
        .filter(|fd| *fd > 2)
        .ok_or("missing status pipe descriptor; the sandbox init is only started by hermod_sandbox::run()")?;
    // SAFETY: F_SETFD only changes a flag of the descriptor table entry;
    // it fails with EBADF, touching nothing, if the number is not open.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(format!("status pipe descriptor {fd} is not open"));
    }
    // SAFETY: run() created this descriptor for us alone and nothing else in
    // this process knows its number, so we may own (and eventually close) it.
    // We just set it close-on-exec so the command never inherits it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits for one specific child, retrying on EINTR.
pub(crate) fn wait_for(child: Pid) -> nix::Result<Ended> {
    loop {
        match waitpid(child, None) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(status) => {
                if let Some(ended) = Ended::from_wait(status) {
                    return Ok(ended);
                }
            }
        }
    }
}
