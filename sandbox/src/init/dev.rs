//! Step 4, continued: a minimal `/dev`.
//!
//! A user namespace cannot create device nodes (`mknod` needs
//! `CAP_MKNOD` in the initial namespace, and a tmpfs mounted from a user
//! namespace ignores devices anyway). So, like bubblewrap's `--dev`, we mount
//! a small tmpfs and bind-mount the few harmless character devices a build
//! needs from the host's `/dev`, each onto an empty file. The binds keep the
//! host mount's "devices allowed" flag; the tmpfs itself is sealed read-only.
//! No `/dev/pts`: builds run without a terminal.

use std::path::Path;

use nix::mount::MsFlags;

use super::mountflags::{remount, Want};
use super::rootfs::{mount_tmpfs, FILE_MODE, NEWROOT, OLDROOT};
use super::sys::Sys;
use super::{SetupError, Step};

/// Size of `/dev/shm`: builds barely use POSIX shared memory.
const SHM_SIZE: u64 = 64 << 20;

/// `std::fs::create_dir`'s mode (before the umask); a tmpfs covers it.
const DIR_MODE: u32 = 0o777;

const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

const LINKS: [(&str, &str); 4] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

/// Device binds: no setuid, but device nodes must keep working (no nodev).
const DEVICE: Want = Want { readonly: false, nosuid: true, nodev: false };

pub(crate) fn populate(sys: &dyn Sys) -> Result<(), SetupError> {
    let dev = Path::new(NEWROOT).join("dev");
    sys.mkdir(&dev, DIR_MODE).step(|| "creating /dev in the sandbox".into())?;
    mount_tmpfs(sys, &dev, Path::new("/dev"), "mode=0755")?;
    for name in DEVICES {
        let shown = Path::new("/dev").join(name);
        let target = dev.join(name);
        sys.create_file(&target, FILE_MODE).step(|| format!("creating {} in the sandbox", shown.display()))?;
        let source = Path::new(OLDROOT).join("dev").join(name);
        sys.mount(Some(&source), &target, None, MsFlags::MS_BIND, None)
            .step(|| format!("bind-mounting the host's {} in the sandbox", shown.display()))?;
        remount(sys, &target, &shown, DEVICE)?;
    }
    for (name, to) in LINKS {
        sys.symlink(Path::new(to), &dev.join(name))
            .step(|| format!("creating the symlink /dev/{name} in the sandbox"))?;
    }
    let shm = dev.join("shm");
    sys.mkdir(&shm, DIR_MODE).step(|| "creating /dev/shm in the sandbox".into())?;
    // Bounded like every writable place: a tmpfs lives in memory.
    mount_tmpfs(sys, &shm, Path::new("/dev/shm"), &format!("mode=1777,size={SHM_SIZE}"))?;
    remount(sys, &dev, Path::new("/dev"), Want::SEALED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::recording::Recording;
    use nix::errno::Errno;
    use nix::sys::statvfs::FsFlags;

    #[test]
    fn dev_is_a_sealed_tmpfs_with_bound_devices_links_and_shm() {
        // The host's /dev: nosuid, noexec, relatime (devices allowed).
        let host_dev = FsFlags::ST_NOSUID | FsFlags::ST_NOEXEC | FsFlags::ST_RELATIME;
        let mut sys = Recording::new();
        for name in DEVICES {
            sys = sys.with_mount_flags(&format!("/newroot/dev/{name}"), host_dev);
        }
        populate(&sys).unwrap();
        let mut want = vec![
            "mkdir(/newroot/dev, 0o777)".to_string(),
            "mount(tmpfs, /newroot/dev, tmpfs, MS_NOSUID|MS_NODEV, mode=0755)".into(),
        ];
        for name in DEVICES {
            want.push(format!("create_file(/newroot/dev/{name}, 0o644)"));
            want.push(format!("mount(/oldroot/dev/{name}, /newroot/dev/{name}, -, MS_BIND, -)"));
            want.push(format!("statvfs(/newroot/dev/{name})"));
            // Never MS_NODEV here: that would break the device.
            want.push(format!(
                "mount(-, /newroot/dev/{name}, -, MS_NOSUID|MS_NOEXEC|MS_REMOUNT|MS_BIND|MS_RELATIME, -)"
            ));
        }
        for (name, to) in LINKS {
            want.push(format!("symlink({to}, /newroot/dev/{name})"));
        }
        want.push("mkdir(/newroot/dev/shm, 0o777)".into());
        want.push("mount(tmpfs, /newroot/dev/shm, tmpfs, MS_NOSUID|MS_NODEV, mode=1777,size=67108864)".into());
        want.push("statvfs(/newroot/dev)".into());
        want.push("mount(-, /newroot/dev, -, MS_RDONLY|MS_NOSUID|MS_NODEV|MS_REMOUNT|MS_BIND|MS_RELATIME, -)".into());
        assert_eq!(sys.lines(), want);
    }

    #[test]
    fn a_missing_host_device_names_it() {
        let sys = Recording::new().fail("mount(/oldroot/dev/random,", Errno::ENOENT);
        let err = populate(&sys).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bind-mounting the host's /dev/random in the sandbox: ENOENT: No such file or directory"
        );
        assert_eq!(sys.lines().last().unwrap(), "mount(/oldroot/dev/random, /newroot/dev/random, -, MS_BIND, -)");
    }
}
