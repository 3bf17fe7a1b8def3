//! Step 4, continued: the parts of `/proc` a build must not touch.
//!
//! A fresh procfs shows only the sandbox's own processes, but it still holds
//! kernel-wide files: `/proc/sys` (sysctls), `/proc/sysrq-trigger` (which can
//! reboot the machine), `/proc/kcore` (kernel memory), `/proc/keys`. The
//! sandbox command is never host root, so the kernel already refuses it most
//! of them; these mounts are the second wall, the same list OCI runtimes use
//! by default: kernel-wide trees are bound read-only onto themselves, and
//! files that leak kernel state are covered by `/dev/null` (directories by an
//! empty read-only tmpfs). Paths a kernel does not have are skipped.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use super::mountflags::{remount, Want};
use super::rootfs::{mount_tmpfs, NEWROOT};
use super::{SetupError, Step};

/// Kernel-wide trees: visible, never writable.
pub(crate) const READ_ONLY: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Kernel state nobody building a module needs to see.
pub(crate) const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
];

pub(crate) fn seal() -> Result<(), SetupError> {
    for inside in READ_ONLY {
        let path = in_new_root(inside);
        if fs::symlink_metadata(&path).is_err() {
            continue;
        }
        bind(&path, &path, inside)?;
        remount(&path, Path::new(inside), Want::SEALED)?;
    }
    let null = in_new_root("/dev/null");
    for inside in MASKED {
        let path = in_new_root(inside);
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            mount_tmpfs(&path, Path::new(inside), "mode=0555,size=0")?;
            remount(&path, Path::new(inside), Want::SEALED)?;
        } else {
            bind(&null, &path, inside)?;
        }
    }
    Ok(())
}

fn in_new_root(inside: &str) -> PathBuf {
    Path::new(NEWROOT).join(inside.trim_start_matches('/'))
}

fn bind(source: &Path, target: &Path, shown: &str) -> Result<(), SetupError> {
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .step(|| format!("protecting {shown} in the sandbox"))
}
