//! Steps 7 and 8: the command, and pid 1's duty as its reaper.
//!
//! Pid 1 of a pid namespace inherits every orphan in it, so it must reap
//! them or they pile up as zombies; it keeps calling `waitpid(-1)` until the
//! command itself has exited. Then it exits too, and the kernel SIGKILLs
//! whatever the command left running (a daemonised helper, a stuck
//! background job): nothing outlives the build.
//!
//! The command (pid 2) sheds everything it inherited before `execve`:
//! a new session (no controlling terminal), umask 022, default signal
//! dispositions (Rust ignores SIGPIPE, and "ignored" survives exec), stdin from
//! `/dev/null`, no descriptor but 0–2, no capabilities in any set (the user
//! namespace gave it all of them, over the sandbox), `no_new_privs` so
//! that no setuid or file-capability binary can win any back, the resource
//! limits of `spec.limits` (`limits.rs`), and, as the very last step, the
//! seccomp filter (`seccomp.rs`) unless `spec.seccomp` is false.

use std::ffi::CString;
use std::os::fd::BorrowedFd;

use caps::CapSet;
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::prctl;
use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::stat::{umask, Mode};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{dup2_stdin, execve, fork, setsid, ForkResult, Pid};

use super::{limits, seccomp, SetupError, Step, SETUP_FAILED};
use crate::report::Ended;
use crate::spec::Spec;

/// Exit status when `execve` itself fails, as in shells.
const EXEC_FAILED: i32 = 127;

/// The command line, converted before forking so that errors are reported
/// as setup errors rather than from the child.
struct Command {
    path: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
}

/// Step 7: fork the command; returns its pid (2).
pub(crate) fn spawn(spec: &Spec, status: BorrowedFd<'_>) -> Result<Pid, SetupError> {
    let command = prepare(spec)?;
    // SAFETY: pid 1 is single-threaded, so the child may run any code.
    match unsafe { fork() }.step(|| "forking the command".into())? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => exec(spec, &command, status),
    }
}

/// Step 7: reap every process until the command is gone.
pub(crate) fn reap_until(command: Pid) -> Ended {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(status @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _))) if pid == command => {
                return Ended::from_wait(status).unwrap_or(Ended::Code(SETUP_FAILED));
            }
            Ok(_) | Err(Errno::EINTR) => continue,
            // No children left without having seen the command: cannot
            // happen, but must not spin.
            Err(_) => return Ended::Code(SETUP_FAILED),
        }
    }
}

fn prepare(spec: &Spec) -> Result<Command, SetupError> {
    let c = |s: String| CString::new(s).map_err(|e| SetupError::other("preparing the command line", e.to_string()));
    Ok(Command {
        path: c(spec.argv[0].clone())?,
        argv: spec.argv.iter().cloned().map(c).collect::<Result<_, _>>()?,
        env: spec.env.iter().map(|(k, v)| c(format!("{k}={v}"))).collect::<Result<_, _>>()?,
    })
}

/// Step 8, in the command's process. Never returns.
fn exec(spec: &Spec, command: &Command, status: BorrowedFd<'_>) -> ! {
    if let Err(e) = shed_inheritance(spec) {
        e.report().send(status);
        std::process::exit(SETUP_FAILED);
    }
    let Err(errno) = execve(&command.path, &command.argv, &command.env);
    // stderr is the log: tell the user there, as a shell would.
    eprintln!("hermod-sandbox: cannot execute {}: {errno}", command.path.to_string_lossy());
    std::process::exit(EXEC_FAILED)
}

fn shed_inheritance(spec: &Spec) -> Result<(), SetupError> {
    setsid().step(|| "starting a new session for the command".into())?;
    // File modes in the build output must not depend on the caller's umask.
    umask(Mode::from_bits_truncate(0o022));
    default_signals()?;
    stdin_from_dev_null()?;
    close_other_fds()?;
    first_for_the_oom_killer()?;
    limits::apply(&spec.limits)?;
    drop_capabilities()?;
    prctl::set_no_new_privs().step(|| "setting no_new_privs".into())?;
    // Last: from here on, every system call goes through the filter.
    if spec.seccomp {
        seccomp::install()?;
    }
    Ok(())
}

fn default_signals() -> Result<(), SetupError> {
    for sig in Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
        // SAFETY: installing SIG_DFL runs no code of ours in signal context.
        unsafe { signal(sig, SigHandler::SigDfl) }.step(|| format!("resetting the {sig} handler"))?;
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).step(|| "unblocking signals".into())
}

fn stdin_from_dev_null() -> Result<(), SetupError> {
    let null = open("/dev/null", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .step(|| "opening /dev/null in the sandbox".into())?;
    dup2_stdin(&null).step(|| "redirecting stdin from /dev/null".into())
}

/// Every descriptor from 3 up becomes close-on-exec: the command starts
/// with stdin, stdout and stderr only. (Marking rather than closing keeps
/// the status pipe usable until the very `execve`.)
fn close_other_fds() -> Result<(), SetupError> {
    // SAFETY: close_range only changes flags in our descriptor table; it
    // touches no memory.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if rc == 0 {
        return Ok(());
    }
    // Kernels before 5.11: walk /proc/self/fd instead.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .step(|| "listing open descriptors".into())?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: as above; an fd that vanished meanwhile (the directory's
        // own) just fails with EBADF, which we ignore.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// When the memory limit is hit, the kernel kills the "worst" process of the
/// cgroup, by size. The sandbox's own helper and pid 1 must survive to
/// report what happened, so the command and everything it starts volunteer
/// (raising `oom_score_adj` needs no privilege; lowering would).
fn first_for_the_oom_killer() -> Result<(), SetupError> {
    std::fs::write("/proc/self/oom_score_adj", "1000").step(|| "raising the command's oom_score_adj".into())
}

/// Bounding first (dropping it needs CAP_SETPCAP, still effective), then
/// ambient and inheritable, and finally effective and permitted.
fn drop_capabilities() -> Result<(), SetupError> {
    for set in [CapSet::Bounding, CapSet::Ambient, CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        caps::clear(None, set)
            .map_err(|e| SetupError::other(format!("clearing the {set:?} capability set"), e.to_string()))?;
    }
    Ok(())
}
