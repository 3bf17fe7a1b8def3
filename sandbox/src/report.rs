//! The status pipe: how the sandbox init talks back to `run()`.
//!
//! The processes inside the namespaces cannot return a Rust error to the
//! caller, and an exit code alone cannot tell "mount failed with EPERM" from
//! "the compiler exited 1". So `run()` hands the helper the write end of a
//! pipe, and every process of the sandbox machinery (the intermediate
//! process, pid 1, the payload until it execs) may write one JSON line to it:
//!
//! * `SetupFailed` — a step before the command started went wrong;
//! * `OutputsFailed` — the command ended, but its outputs could not be
//!   copied to the host (over the limit, not a regular file…);
//! * `Payload` — pid 1 reaped the command, here is how it ended;
//! * `Init` — the intermediate process reaped pid 1 (always sent last).
//!
//! The command itself never sees the pipe (it is close-on-exec), so `run()`
//! reads until end-of-file, which comes once pid 1 — and with it the whole
//! pid namespace — is gone.

use std::os::fd::BorrowedFd;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

/// How a process ended, as sent over the pipe.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    Code(i32),
    Signal(i32),
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Report {
    SetupFailed { step: String, errno: Option<i32>, detail: String },
    OutputsFailed { detail: String },
    Payload(Ended),
    Init(Ended),
}

impl Report {
    /// One line of JSON. Kept well under `PIPE_BUF` (4096) so that a single
    /// `write` is atomic even if two processes report at once.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        if line.len() > 4000 {
            // Only a pathological step description gets here; drop the detail.
            if let Report::SetupFailed { step, errno, .. } = self {
                let short: String = step.chars().take(1000).collect();
                let cut = Report::SetupFailed { step: short, errno: *errno, detail: String::new() };
                line = serde_json::to_vec(&cut).unwrap_or_default();
            }
        }
        line.push(b'\n');
        line
    }

    /// Every well-formed line; garbage (there should be none) is skipped.
    pub(crate) fn decode_all(bytes: &[u8]) -> Vec<Report> {
        bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).filter_map(|l| serde_json::from_slice(l).ok()).collect()
    }

    /// Best effort: if the reader is gone there is nobody left to tell.
    pub(crate) fn send(&self, pipe: BorrowedFd<'_>) {
        let line = self.encode();
        let mut rest = &line[..];
        while !rest.is_empty() {
            match nix::unistd::write(pipe, rest) {
                Ok(0) => break,
                Ok(n) => rest = &rest[n..],
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
    }

    pub(crate) fn errno(&self) -> Option<Errno> {
        match self {
            Report::SetupFailed { errno: Some(e), .. } => Some(Errno::from_raw(*e)),
            _ => None,
        }
    }
}

impl Ended {
    pub(crate) fn from_wait(status: nix::sys::wait::WaitStatus) -> Option<Ended> {
        use nix::sys::wait::WaitStatus;
        match status {
            WaitStatus::Exited(_, code) => Some(Ended::Code(code)),
            WaitStatus::Signaled(_, sig, _) => Some(Ended::Signal(sig as i32)),
            _ => None,
        }
    }

    /// The shell convention, used where only an exit code can carry it.
    pub(crate) fn as_exit_code(self) -> i32 {
        match self {
            Ended::Code(c) => c,
            Ended::Signal(s) => 128 + s,
        }
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Code(c) => write!(f, "exit code {c}"),
            Ended::Signal(s) => match nix::sys::signal::Signal::try_from(*s) {
                Ok(sig) => write!(f, "signal {sig}"),
                Err(_) => write!(f, "signal {s}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_garbage_is_skipped() {
        let a = Report::SetupFailed { step: "mounting /proc".into(), errno: Some(1), detail: "x".into() };
        let b = Report::Payload(Ended::Signal(9));
        let c = Report::Init(Ended::Code(0));
        let mut bytes = a.encode();
        bytes.extend(b"not json\n");
        bytes.extend(b.encode());
        bytes.extend(c.encode());
        assert_eq!(Report::decode_all(&bytes), vec![a.clone(), b, c]);
        assert_eq!(a.errno(), Some(Errno::EPERM));
    }

    #[test]
    fn huge_steps_still_fit_in_one_atomic_write() {
        let r = Report::SetupFailed { step: "x".repeat(10_000), errno: Some(2), detail: "y".repeat(10_000) };
        let line = r.encode();
        assert!(line.len() < 4096);
        assert_eq!(Report::decode_all(&line)[0].errno(), Some(Errno::ENOENT));
    }

    #[test]
    fn signal_exit_codes_follow_the_shell() {
        assert_eq!(Ended::Signal(9).as_exit_code(), 137);
        assert_eq!(Ended::Code(3).as_exit_code(), 3);
        assert_eq!(Ended::Signal(15).to_string(), "signal SIGTERM");
    }
}
