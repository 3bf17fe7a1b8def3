//! Remounting a bind mount read-only (or just nosuid/nodev) without EPERM.
//!
//! A bind mount starts with the flags of the mount it copies. Changing them
//! takes `mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags)`, where
//! `flags` is the complete new set, not a delta. Inside a user namespace the
//! kernel *locks* the flags of every mount inherited from the host
//! (`MNT_LOCK_READONLY`, `_NODEV`, `_NOSUID`, `_NOEXEC`, `_ATIME`): a remount
//! that would clear one of them — including switching the atime mode — fails
//! with EPERM. So, like bubblewrap, we read the current flags with
//! `statvfs(2)` and carry every one of them over, adding what we want.

use std::path::Path;

use nix::mount::MsFlags;
use nix::sys::statvfs::FsFlags;

use super::sys::Sys;
use super::{SetupError, Step};

/// What a remount should guarantee, on top of what the mount already has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Want {
    pub readonly: bool,
    pub nosuid: bool,
    pub nodev: bool,
}

impl Want {
    /// Read-only, nosuid, nodev: the rootfs and read-only binds.
    pub const SEALED: Want = Want { readonly: true, nosuid: true, nodev: true };
    /// Writable binds: still no setuid binaries and no device nodes.
    pub const WRITABLE: Want = Want { readonly: false, nosuid: true, nodev: true };
}

/// The full flag set for `MS_REMOUNT | MS_BIND`, given the current flags.
pub(crate) fn remount_flags(current: FsFlags, want: Want) -> MsFlags {
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    let keep = [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ];
    for (st, ms) in keep {
        if current.contains(st) {
            flags |= ms;
        }
    }
    // Without an atime flag the kernel would default to relatime, which is a
    // change (EPERM) if the mount is locked to strictatime.
    if !current.intersects(FsFlags::ST_NOATIME | FsFlags::ST_RELATIME) {
        flags |= MsFlags::MS_STRICTATIME;
    }
    if want.readonly {
        flags |= MsFlags::MS_RDONLY;
    }
    if want.nosuid {
        flags |= MsFlags::MS_NOSUID;
    }
    if want.nodev {
        flags |= MsFlags::MS_NODEV;
    }
    flags
}

/// Applies `want` to the mount at `path` (already a mount point). `shown` is
/// the path as the user knows it, for the error message.
pub(crate) fn remount(sys: &dyn Sys, path: &Path, shown: &Path, want: Want) -> Result<(), SetupError> {
    let current = sys.statvfs(path).step(|| format!("reading the mount flags of {}", shown.display()))?;
    let flags = remount_flags(current, want);
    let what = if want.readonly { "read-only" } else { "nosuid,nodev" };
    sys.mount(None, path, None, flags, None).step(|| format!("remounting {} {what} in the sandbox", shown.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealing_adds_ro_nosuid_nodev_and_keeps_relatime() {
        let f = remount_flags(FsFlags::ST_RELATIME, Want::SEALED);
        assert_eq!(
            f,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_BIND
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_RELATIME
        );
    }

    #[test]
    fn locked_flags_are_carried_over() {
        let current = FsFlags::ST_RDONLY | FsFlags::ST_NOEXEC | FsFlags::ST_NOATIME;
        let f = remount_flags(current, Want::WRITABLE);
        // Already read-only on the host: asking for writable must not try to
        // clear it (that is EPERM in a user namespace).
        assert!(f.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME));
        assert!(!f.contains(MsFlags::MS_STRICTATIME));
    }

    #[test]
    fn strictatime_is_explicit() {
        let f = remount_flags(FsFlags::empty(), Want::WRITABLE);
        assert!(f.contains(MsFlags::MS_STRICTATIME));
        assert!(!f.contains(MsFlags::MS_RDONLY));
        assert!(f.contains(MsFlags::MS_NOSUID | MsFlags::MS_NODEV));
    }

    use crate::init::recording::Recording;
    use nix::errno::Errno;

    #[test]
    fn remount_reads_the_flags_then_remounts_that_path() {
        let sys = Recording::new().with_mount_flags("/newroot/usr", FsFlags::ST_NOEXEC | FsFlags::ST_NOATIME);
        remount(&sys, Path::new("/newroot/usr"), Path::new("/usr"), Want::SEALED).unwrap();
        assert_eq!(
            sys.lines(),
            [
                "statvfs(/newroot/usr)",
                "mount(-, /newroot/usr, -, MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC|MS_REMOUNT|MS_NOATIME|MS_BIND, -)",
            ]
        );
    }

    #[test]
    fn remount_errors_name_the_path_the_user_knows() {
        let sys = Recording::new().fail("statvfs", Errno::EACCES);
        let err = remount(&sys, Path::new("/newroot/usr"), Path::new("/usr"), Want::SEALED).unwrap_err();
        assert_eq!(err.to_string(), "reading the mount flags of /usr: EACCES: Permission denied");
        assert_eq!(sys.lines(), ["statvfs(/newroot/usr)"], "no remount without the current flags");

        let sys = Recording::new().fail("mount", Errno::EPERM);
        let err = remount(&sys, Path::new("/newroot/b"), Path::new("/b"), Want::WRITABLE).unwrap_err();
        assert_eq!(err.to_string(), "remounting /b nosuid,nodev in the sandbox: EPERM: Operation not permitted");
    }
}
