//! After the command: copy its results to the host.
//!
//! The command never sees a writable host directory. Pid 1 opens the host
//! outputs directory *before* the pivot (while the host tree is still
//! reachable under `/oldroot`) and keeps that descriptor; the command
//! cannot reach it, since it closes every inherited descriptor but 0–2.
//! When the command has exited, pid 1 kills whatever it left running (so
//! nothing can change the files while they are copied), then copies the
//! regular files found directly in `Outputs::inside` into the host
//! directory, each created anew (`O_EXCL`), none followed through a
//! symlink (`O_NOFOLLOW`), and at most `Outputs::max_bytes` in all.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, openat, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::rootfs::OLDROOT;
use super::{SetupError, Step};
use crate::spec::{under, Outputs};

/// The most entries an outputs directory may hold.
const MAX_FILES: usize = 10_000;

/// Before the pivot: the host outputs directory, held open.
pub(crate) fn open_host_dir(outputs: &Outputs) -> Result<OwnedFd, SetupError> {
    let path = under(Path::new(OLDROOT), &outputs.host);
    open(&path, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW, Mode::empty())
        .step(|| format!("opening the host outputs directory {}", outputs.host.display()))
}

/// After the command: stop every process left, then copy. Returns a
/// sentence for the user on failure.
pub(crate) fn copy_out(outputs: &Outputs, host: &OwnedFd) -> Result<(), String> {
    kill_the_rest();
    let entries = match fs::read_dir(&outputs.inside) {
        Ok(entries) => entries,
        // The command may legitimately have produced nothing.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("listing {}: {e}", outputs.inside.display())),
    };
    let mut total = 0u64;
    let mut names =
        entries.collect::<io::Result<Vec<_>>>().map_err(|e| format!("listing {}: {e}", outputs.inside.display()))?;
    // Bytes are bounded by the limit; the number of files (inodes on the
    // host's disk) is bounded here.
    if names.len() > MAX_FILES {
        return Err(format!(
            "{} holds {} entries; at most {MAX_FILES} may be copied out",
            outputs.inside.display(),
            names.len()
        ));
    }
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let shown = outputs.inside.join(entry.file_name());
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if !is_file {
            continue;
        }
        let mut from = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(entry.path())
            .map_err(|e| format!("opening {}: {e}", shown.display()))?;
        let size = from.metadata().map_err(|e| format!("inspecting {}: {e}", shown.display()))?.len();
        total = total.saturating_add(size);
        if total > outputs.max_bytes {
            return Err(format!(
                "the outputs exceed their limit of {} bytes at {} ({size} bytes)",
                outputs.max_bytes,
                shown.display()
            ));
        }
        let to = openat(
            host.as_fd(),
            entry.file_name().as_os_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(|e| format!("creating {} in {}: {e}", shown.display(), outputs.host.display()))?;
        copy_at_most(&mut from, &mut File::from(to), size)
            .map_err(|e| format!("copying {} to {}: {e}", shown.display(), outputs.host.display()))?;
    }
    Ok(())
}

/// Copies exactly the `size` bytes measured (a file that grew meanwhile
/// cannot smuggle more past the limit).
fn copy_at_most(from: &mut File, to: &mut File, size: u64) -> io::Result<()> {
    let copied = io::copy(&mut from.take(size), to)?;
    if copied != size {
        return Err(io::Error::other(format!("file changed while copied ({copied} of {size} bytes)")));
    }
    to.flush()
}

/// Pid 1's `kill(-1)` reaches every other process of its pid namespace;
/// then it reaps them all.
fn kill_the_rest() {
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    // Until ECHILD: nobody is left.
    while matches!(waitpid(Pid::from_raw(-1), None), Ok(_) | Err(Errno::EINTR)) {}
}
