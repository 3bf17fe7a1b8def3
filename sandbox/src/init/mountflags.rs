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

use nix::mount::{mount, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};

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
pub(crate) fn remount(path: &Path, shown: &Path, want: Want) -> Result<(), SetupError> {
    let current = statvfs(path).step(|| format!("reading the mount flags of {}", shown.display()))?;
    let flags = remount_flags(current.flags(), want);
    let what = if want.readonly { "read-only" } else { "nosuid,nodev" };
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
        .step(|| format!("remounting {} {what} in the sandbox", shown.display()))
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
}
