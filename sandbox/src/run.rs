//! The host side: start the sandbox helper, feed it the spec, wait for it.
//!
//! Unsharing namespaces from a multithreaded process is either impossible
//! (`CLONE_NEWUSER` refuses with `EINVAL`) or unsafe (forking a process with
//! live threads and then allocating). So `run()` never does it in-process: it
//! re-executes an init executable — by default the current one — with
//! [`INIT_ARG`](crate::INIT_ARG). That fresh, single-threaded process reads
//! the [`Spec`] as JSON on its stdin and answers on a status pipe (see
//! `report.rs`). Its stdout and stderr already are the log file, so the
//! command inherits them without ever touching a host path.
//!
//! The helper and pid 1 both die with their parent (`PR_SET_PDEATHSIG`), so
//! killing the helper — which is what a timeout does — tears down the whole
//! pid namespace. (`PR_SET_PDEATHSIG` fires when the *thread* that started
//! the helper exits; `run()` blocks that thread until the sandbox is gone, so
//! this only ever happens when the whole caller dies.)

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::{Deserialize, Serialize};

use crate::cgroup::{self, Cgroup};
use crate::live;
use crate::report::{Ended, Report};
use crate::spec::Spec;

/// Environment variable naming the init executable `run()` re-executes,
/// instead of `std::env::current_exe()`. Meant for tests of crates whose test
/// binary does not call [`enter_if_requested`](crate::enter_if_requested):
/// point it at a binary that does (e.g. `env!("CARGO_BIN_EXE_hermod")`).
pub const INIT_EXE_ENV: &str = "HERMOD_SANDBOX_INIT";

/// How long to wait, after killing a timed-out sandbox, for pid 1 to be gone.
const TEARDOWN_GRACE: Duration = Duration::from_secs(5);

/// How the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
    /// The timeout expired and the whole sandbox was killed.
    TimedOut,
}

/// The result of a command that could be started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub exit: Exit,
    /// Wall-clock time from starting the helper to the sandbox being gone.
    pub wall: Duration,
    /// Which cgroup limits held, and whether the memory limit killed.
    pub cgroup: Cgroup,
}

impl Outcome {
    /// True if the command exited with code 0.
    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }
}

/// Why the command could not be run. Every message names the step.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    #[error("rootfs {} does not exist", .0.display())]
    RootfsMissing(PathBuf),
    #[error("bind mount source {} does not exist", .0.display())]
    BindSourceMissing(PathBuf),
    #[error("opening log file {}: {source}", path.display())]
    Log { path: PathBuf, source: io::Error },
    /// A host-side operation (pipes, starting the helper, waiting) failed.
    #[error("{step}: {source}")]
    Host { step: String, source: io::Error },
    /// A step inside the sandbox failed before the command could start,
    /// e.g. `mounting /proc in the sandbox: EPERM: Operation not permitted`.
    #[error("{step}: {}", cause(errno, detail))]
    Setup { step: String, errno: Option<Errno>, detail: String },
    /// The command ran, but its outputs could not be copied to the host.
    #[error("copying the sandbox's outputs to the host: {0}")]
    Outputs(String),
    /// The helper did not follow the protocol (or died unexpectedly).
    #[error("sandbox init: {0}")]
    Protocol(String),
}

fn cause(errno: &Option<Errno>, detail: &str) -> String {
    match (errno, detail.is_empty()) {
        (Some(e), true) => e.to_string(),
        (Some(e), false) => format!("{e} ({detail})"),
        (None, _) => detail.to_string(),
    }
}

fn host(step: impl Into<String>) -> impl FnOnce(io::Error) -> SandboxError {
    let step = step.into();
    move |source| SandboxError::Host { step, source }
}

/// Runs `spec` in a fresh sandbox and blocks until it is done.
///
/// The init executable is [`INIT_EXE_ENV`] if set, else the current
/// executable, whose `main()` must call
/// [`enter_if_requested`](crate::enter_if_requested) first.
pub fn run(spec: &Spec) -> Result<Outcome, SandboxError> {
    let exe = match std::env::var_os(INIT_EXE_ENV) {
        Some(exe) if !exe.is_empty() => PathBuf::from(exe),
        _ => std::env::current_exe().map_err(host("finding the current executable"))?,
    };
    run_with_init(spec, &exe)
}

/// Like [`run`], with an explicit init executable (one whose `main()` calls
/// [`enter_if_requested`](crate::enter_if_requested) first).
pub fn run_with_init(spec: &Spec, init_exe: &Path) -> Result<Outcome, SandboxError> {
    let resolved = resolve(spec)?;
    let (stdout, stderr) = output_for(spec)?;
    let (status_read, status_write) = status_pipe()?;

    let start = Instant::now();
    let mut cmd = Command::new(init_exe);
    cmd.arg(crate::INIT_ARG)
        .arg(status_write.as_raw_fd().to_string())
        .arg(std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(stderr);
    let fd = status_write.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only calls
    // fcntl(2), which is async-signal-safe. Clearing FD_CLOEXEC here, rather
    // than in this (multithreaded) process, keeps other threads' children
    // from inheriting the pipe and holding it open.
    unsafe {
        cmd.pre_exec(move || match libc::fcntl(fd, libc::F_SETFD, 0) {
            -1 => Err(io::Error::last_os_error()),
            _ => Ok(()),
        });
    }

    let (mut child, helper) =
        live::Helper::spawn(&mut cmd).map_err(host(format!("starting the sandbox helper {}", init_exe.display())))?;
    // Only the helper may hold the write end, or end-of-file never comes.
    drop(status_write);
    // The group is made while the helper starts (exec, loading) on another
    // CPU: it waits for the handoff below before it joins anything.
    let mut group = cgroup::create(&spec.limits);
    // (cgroup v2) Before the handoff: the helper waits for it, so every
    // process of the sandbox is born inside the group.
    if let Err(why) = group.attach(child.id()) {
        let _ = child.kill();
        helper.reaping();
        let _ = child.wait();
        return Err(SandboxError::Host { step: "entering the sandbox's cgroup".into(), source: io::Error::other(why) });
    }
    let handoff = Handoff { spec: resolved, cgroup_tasks: group.join_files() };
    let json =
        serde_json::to_vec(&handoff).map_err(|e| SandboxError::InvalidSpec(format!("cannot encode spec: {e}")))?;
    if let Some(stdin) = child.stdin.take() {
        send(stdin, json);
    }

    let mut status = File::from(status_read);
    let mut buf = Vec::new();
    let deadline = spec.timeout.map(|t| start + t);
    let finished = read_to_eof(&mut status, &mut buf, deadline).map_err(host("reading the sandbox status pipe"))?;
    if !finished {
        // SIGKILL the helper; pid 1 follows through PDEATHSIG and takes the
        // namespace with it. Wait for pid 1's end (EOF) so nothing outlives us.
        let _ = child.kill();
        let _ = read_to_eof(&mut status, &mut buf, Some(Instant::now() + TEARDOWN_GRACE));
        helper.reaping();
        let _ = child.wait();
        group.finish();
        return Ok(Outcome { exit: Exit::TimedOut, wall: start.elapsed(), cgroup: group.report.clone() });
    }
    helper.reaping();
    let ended = child.wait().map_err(host("waiting for the sandbox helper"))?;
    let wall = start.elapsed();
    group.finish();
    let exit = interpret(&Report::decode_all(&buf), ended, init_exe)?;
    Ok(Outcome { exit, wall, cgroup: group.report.clone() })
}

/// What the helper reads on its stdin: the spec, and the cgroup v1 `tasks`
/// files it joins itself before it forks pid 1 (see cgroup.rs).
#[derive(Serialize, Deserialize)]
pub(crate) struct Handoff {
    pub(crate) spec: Spec,
    pub(crate) cgroup_tasks: Vec<PathBuf>,
}

/// Writes the handoff and closes the pipe. A write of at most `PIPE_BUF`
/// bytes into a fresh pipe (never smaller than one page) cannot block, so
/// the usual few hundred bytes go directly; anything longer goes from a
/// thread, so that a helper that never reads (a wrong executable) cannot
/// block us past the timeout. That thread ends on EOF/EPIPE.
fn send(mut stdin: ChildStdin, json: Vec<u8>) {
    if json.len() <= libc::PIPE_BUF {
        let _ = io::Write::write_all(&mut stdin, &json);
        return;
    }
    let _ = std::thread::Builder::new()
        .name("hermod-sandbox-spec".into())
        .spawn(move || io::Write::write_all(&mut stdin, &json));
}

/// Host-side validation, and host paths made canonical so that the init can
/// find them under `/oldroot` without following any symlink.
fn resolve(spec: &Spec) -> Result<Spec, SandboxError> {
    spec.check_shape().map_err(SandboxError::InvalidSpec)?;
    let mut out = spec.clone();
    out.rootfs = match spec.rootfs.canonicalize() {
        Ok(p) if p.is_dir() => p,
        Ok(_) => return Err(SandboxError::InvalidSpec(format!("rootfs {} is not a directory", spec.rootfs.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(SandboxError::RootfsMissing(spec.rootfs.clone())),
        Err(e) => return Err(host(format!("resolving rootfs {}", spec.rootfs.display()))(e)),
    };
    for bind in &mut out.binds {
        bind.source = match bind.source.canonicalize() {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SandboxError::BindSourceMissing(bind.source.clone()))
            }
            Err(e) => return Err(host(format!("resolving bind mount source {}", bind.source.display()))(e)),
        };
    }
    if let Some(outputs) = &mut out.outputs {
        outputs.host = match outputs.host.canonicalize() {
            Ok(p) if p.is_dir() => p,
            Ok(_) => {
                return Err(SandboxError::InvalidSpec(format!(
                    "host outputs directory {} is not a directory",
                    outputs.host.display()
                )))
            }
            Err(e) => return Err(host(format!("resolving the host outputs directory {}", outputs.host.display()))(e)),
        };
    }
    Ok(out)
}

/// The helper's stdout and stderr, which the command inherits.
fn output_for(spec: &Spec) -> Result<(Stdio, Stdio), SandboxError> {
    let Some(path) = &spec.log else {
        return Ok((Stdio::inherit(), Stdio::inherit()));
    };
    let log_err = |source| SandboxError::Log { path: path.clone(), source };
    // Owner-only: a log holds whatever the build printed (the caller's
    // uid opens it; the sandbox writes through this descriptor, whatever
    // its own host ids are).
    let file = OpenOptions::new().append(true).create(true).mode(0o600).open(path).map_err(log_err)?;
    // A log made by an older hermod (0644) is narrowed too.
    let perms = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
    file.set_permissions(perms).map_err(log_err)?;
    let again = file.try_clone().map_err(log_err)?;
    Ok((Stdio::from(file), Stdio::from(again)))
}

/// A close-on-exec pipe whose write end is numbered 3 or higher, so that the
/// child's stdio setup (dup2 onto 0, 1, 2) cannot clobber it.
fn status_pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    let io = |e: Errno| SandboxError::Host { step: "creating the sandbox status pipe".into(), source: e.into() };
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io)?;
    let raw = fcntl(write.as_fd(), FcntlArg::F_DUPFD_CLOEXEC(3)).map_err(io)?;
    // SAFETY: F_DUPFD_CLOEXEC just returned this new descriptor; we own it.
    let write = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    Ok((read, write))
}

/// Reads until end-of-file (true) or until the deadline passes (false).
fn read_to_eof(pipe: &mut File, buf: &mut Vec<u8>, deadline: Option<Instant>) -> io::Result<bool> {
    let mut chunk = [0u8; 4096];
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                // Round up so we never spin on a sub-millisecond remainder.
                let ms = (left.as_micros().div_ceil(1000)).min(60_000) as u16;
                PollTimeout::from(ms)
            }
        };
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        match pipe.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Turns what the sandbox said into the command's exit, or an error.
fn interpret(reports: &[Report], helper: ExitStatus, exe: &Path) -> Result<Exit, SandboxError> {
    if let Some(r @ Report::SetupFailed { step, detail, .. }) = reports.first() {
        return Err(SandboxError::Setup { step: step.clone(), errno: r.errno(), detail: detail.clone() });
    }
    let outputs_failed = reports.iter().find_map(|r| match r {
        Report::OutputsFailed { detail } => Some(detail),
        _ => None,
    });
    for r in reports {
        if let Report::Payload(ended) = r {
            // A command that failed is reported as such, whatever its outputs did.
            if let (Ended::Code(0), Some(detail)) = (ended, outputs_failed) {
                return Err(SandboxError::Outputs(detail.clone()));
            }
            return Ok(match *ended {
                Ended::Code(c) => Exit::Code(c),
                Ended::Signal(s) => Exit::Signal(s),
            });
        }
    }
    if let Some(Report::Init(ended)) = reports.last() {
        return Err(SandboxError::Protocol(format!("pid 1 of the sandbox ended ({ended}) before the command did")));
    }
    Err(SandboxError::Protocol(format!(
        "the init executable {} ended ({helper}) without reporting; does its main() call \
         hermod_sandbox::enter_if_requested() first?",
        exe.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn setup_errors_read_like_sentences() {
        let e = SandboxError::Setup {
            step: "mounting /proc in the sandbox".into(),
            errno: Some(Errno::EPERM),
            detail: String::new(),
        };
        assert_eq!(e.to_string(), "mounting /proc in the sandbox: EPERM: Operation not permitted");
        assert_eq!(SandboxError::RootfsMissing("/x".into()).to_string(), "rootfs /x does not exist");
    }

    #[test]
    fn interpret_prefers_setup_errors_then_payload() {
        let ok = ExitStatus::from_raw(0);
        let exe = Path::new("/bin/hermod");
        let fail = Report::SetupFailed { step: "s".into(), errno: Some(13), detail: String::new() };
        let r = interpret(&[fail, Report::Payload(Ended::Code(125)), Report::Init(Ended::Code(125))], ok, exe);
        assert!(matches!(r, Err(SandboxError::Setup { errno: Some(Errno::EACCES), .. })));
        let r = interpret(&[Report::Payload(Ended::Signal(9)), Report::Init(Ended::Code(137))], ok, exe);
        assert_eq!(r.unwrap(), Exit::Signal(9));
        let r = interpret(&[Report::Init(Ended::Signal(9))], ok, exe);
        assert!(r.unwrap_err().to_string().contains("pid 1"));
        let over = Report::OutputsFailed { detail: "over the limit".into() };
        let r = interpret(&[over.clone(), Report::Payload(Ended::Code(0)), Report::Init(Ended::Code(0))], ok, exe);
        assert!(matches!(r, Err(SandboxError::Outputs(_))));
        let r = interpret(&[over, Report::Payload(Ended::Code(2)), Report::Init(Ended::Code(2))], ok, exe);
        assert_eq!(r.unwrap(), Exit::Code(2), "the command's own failure comes first");
        let r = interpret(&[], ok, exe);
        assert!(r.unwrap_err().to_string().contains("enter_if_requested"));
    }

    #[test]
    fn missing_rootfs_is_reported_before_starting_anything() {
        let spec = Spec::new("/nonexistent/rootfs", vec!["/bin/true".into()]);
        let err = run_with_init(&spec, Path::new("/nonexistent/exe")).unwrap_err();
        assert_eq!(err.to_string(), "rootfs /nonexistent/rootfs does not exist");
    }
}
