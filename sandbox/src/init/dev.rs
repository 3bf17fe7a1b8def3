//! Step 4, continued: a minimal `/dev`.
//!
//! A user namespace cannot create device nodes (`mknod` needs
//! `CAP_MKNOD` in the initial namespace, and a tmpfs mounted from a user
//! namespace ignores devices anyway). So, like bubblewrap's `--dev`, we mount
//! a small tmpfs and bind-mount the few harmless character devices a build
//! needs from the host's `/dev`, each onto an empty file. The binds keep the
//! host mount's "devices allowed" flag; the tmpfs itself is sealed read-only.
//! No `/dev/pts`: builds run without a terminal.

use std::os::unix::fs::symlink;
use std::path::Path;

use nix::mount::{mount, MsFlags};

use super::mountflags::{remount, Want};
/// Size of `/dev/shm`: builds barely use POSIX shared memory.
const SHM_SIZE: u64 = 64 << 20;

use super::rootfs::{mount_tmpfs, touch, NEWROOT, OLDROOT};
use super::{SetupError, Step};

const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

const LINKS: [(&str, &str); 4] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

/// Device binds: no setuid, but device nodes must keep working (no nodev).
const DEVICE: Want = Want { readonly: false, nosuid: true, nodev: false };

pub(crate) fn populate() -> Result<(), SetupError> {
    let dev = Path::new(NEWROOT).join("dev");
    std::fs::create_dir(&dev).step(|| "creating /dev in the sandbox".into())?;
    mount_tmpfs(&dev, Path::new("/dev"), "mode=0755")?;
    for name in DEVICES {
        let shown = Path::new("/dev").join(name);
        let target = dev.join(name);
        touch(&target).step(|| format!("creating {} in the sandbox", shown.display()))?;
        let source = Path::new(OLDROOT).join("dev").join(name);
        mount(Some(&source), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .step(|| format!("bind-mounting the host's {} in the sandbox", shown.display()))?;
        remount(&target, &shown, DEVICE)?;
    }
    for (name, to) in LINKS {
        symlink(to, dev.join(name)).step(|| format!("creating the symlink /dev/{name} in the sandbox"))?;
    }
    let shm = dev.join("shm");
    std::fs::create_dir(&shm).step(|| "creating /dev/shm in the sandbox".into())?;
    // Bounded like every writable place: a tmpfs lives in memory.
    mount_tmpfs(&shm, Path::new("/dev/shm"), &format!("mode=1777,size={SHM_SIZE}"))?;
    remount(&dev, Path::new("/dev"), Want::SEALED)
}
