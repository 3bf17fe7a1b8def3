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

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::mountflags::{remount, Want};
use super::rootfs::{mount_tmpfs, NEWROOT};
use super::sys::{FileKind, Sys};
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

pub(crate) fn seal(sys: &dyn Sys) -> Result<(), SetupError> {
    for inside in READ_ONLY {
        let path = in_new_root(inside);
        if sys.lstat_kind(&path).is_err() {
            continue;
        }
        bind(sys, &path, &path, inside)?;
        remount(sys, &path, Path::new(inside), Want::SEALED)?;
    }
    let null = in_new_root("/dev/null");
    for inside in MASKED {
        let path = in_new_root(inside);
        let Ok(kind) = sys.lstat_kind(&path) else { continue };
        if kind == FileKind::Dir {
            mount_tmpfs(sys, &path, Path::new(inside), "mode=0555,size=0")?;
            remount(sys, &path, Path::new(inside), Want::SEALED)?;
        } else {
            bind(sys, &null, &path, inside)?;
        }
    }
    Ok(())
}

fn in_new_root(inside: &str) -> PathBuf {
    Path::new(NEWROOT).join(inside.trim_start_matches('/'))
}

fn bind(sys: &dyn Sys, source: &Path, target: &Path, shown: &str) -> Result<(), SetupError> {
    sys.mount(Some(source), target, None, MsFlags::MS_BIND, None).step(|| format!("protecting {shown} in the sandbox"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::recording::Recording;
    use nix::errno::Errno;

    #[test]
    fn kernel_wide_trees_read_only_state_masked_missing_skipped() {
        let sys = Recording::new().with_procfs();
        seal(&sys).unwrap();
        let sealed = "MS_RDONLY|MS_NOSUID|MS_NODEV|MS_REMOUNT|MS_BIND|MS_RELATIME";
        let mut want = Vec::new();
        // asound, latency_stats and timer_stats are not in the fake /proc:
        // no mount for them.
        for tree in ["bus", "fs", "irq", "sys"] {
            want.push(format!("mount(/newroot/proc/{tree}, /newroot/proc/{tree}, -, MS_BIND, -)"));
            want.push(format!("mount(-, /newroot/proc/{tree}, -, {sealed}, -)"));
        }
        want.push("mount(/newroot/proc/sysrq-trigger, /newroot/proc/sysrq-trigger, -, MS_BIND, -)".into());
        want.push(format!("mount(-, /newroot/proc/sysrq-trigger, -, {sealed}, -)"));
        want.push("mount(tmpfs, /newroot/proc/acpi, tmpfs, MS_NOSUID|MS_NODEV, mode=0555,size=0)".into());
        want.push(format!("mount(-, /newroot/proc/acpi, -, {sealed}, -)"));
        for file in ["kcore", "keys", "sched_debug"] {
            want.push(format!("mount(/newroot/dev/null, /newroot/proc/{file}, -, MS_BIND, -)"));
        }
        want.push("mount(tmpfs, /newroot/proc/scsi, tmpfs, MS_NOSUID|MS_NODEV, mode=0555,size=0)".into());
        want.push(format!("mount(-, /newroot/proc/scsi, -, {sealed}, -)"));
        want.push("mount(/newroot/dev/null, /newroot/proc/timer_list, -, MS_BIND, -)".into());
        assert_eq!(sys.mounts(), want);
    }

    #[test]
    fn every_listed_path_is_looked_at_without_following_links() {
        let sys = Recording::new();
        seal(&sys).unwrap();
        let looked: Vec<String> = sys.lines();
        let want: Vec<String> = READ_ONLY.iter().chain(MASKED).map(|p| format!("lstat(/newroot{p})")).collect();
        assert_eq!(looked, want, "an empty /proc: nothing to mount");
    }

    #[test]
    fn a_failed_mask_names_the_path() {
        let sys = Recording::new().with_procfs().fail("mount(/newroot/dev/null, /newroot/proc/kcore,", Errno::EINVAL);
        let err = seal(&sys).unwrap_err();
        assert_eq!(err.to_string(), "protecting /proc/kcore in the sandbox: EINVAL: Invalid argument");
        assert_eq!(sys.mounts().last().unwrap(), "mount(/newroot/dev/null, /newroot/proc/kcore, -, MS_BIND, -)");
    }
}
