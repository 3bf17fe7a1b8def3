//! The system-call seam: every call the setup steps 2, 4, 5 and 6 make.
//!
//! Building the sandbox is a long, strictly ordered list of privileged
//! calls: switch ids, unshare, write the id maps, make mounts private, pivot
//! into a scratch tmpfs, bind and remount each rootfs entry, mask `/proc`,
//! pivot again. Its correctness lies mostly in that order and in the
//! arguments (a bind that is recursive, a remount that forgets `MS_NODEV`,
//! a tmpfs mounted before the bind it would hide), and none of it can run
//! without creating namespaces.
//!
//! So the steps (`userns.rs`, `rootfs.rs`, `dev.rs`, `procfs.rs`,
//! `mountflags.rs`, `net.rs`) never call nix or `std::fs` directly: they
//! call a [`Sys`]. In the sandbox that is [`Real`], a thin pass-through to
//! the kernel, exercised end to end by the integration tests
//! (`tests/sandbox`). In unit tests it is `recording::Recording`, which
//! touches nothing: it records each call with its arguments, answers reads
//! from a small fake filesystem and fails the calls it is told to, so the
//! sequence can be asserted as an ordinary user. (youki's `Syscall` trait
//! and its test double follow the same idea.)
//!
//! The methods return the error types the calls have always had
//! (`nix::Result`, `io::Result`), so `.step(|| …)` names a failed step
//! exactly as before. Steps 1, 3, 7–9 (fork, pipes, waiting, the command's
//! own set-up, copying outputs) are outside the seam: they are process
//! plumbing rather than a sequence of mounts, and run only for real.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use nix::sys::statvfs::FsFlags;
use nix::unistd::{Gid, Uid};

/// What a directory entry or path is, as far as the setup cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Dir,
    File,
    Symlink,
    /// Sockets, fifos, devices.
    Other,
}

impl FileKind {
    fn of(t: fs::FileType) -> FileKind {
        if t.is_symlink() {
            FileKind::Symlink
        } else if t.is_dir() {
            FileKind::Dir
        } else if t.is_file() {
            FileKind::File
        } else {
            FileKind::Other
        }
    }
}

/// One entry of [`Sys::read_dir`]. The kind is looked up per entry and may
/// fail on its own (it needs an `lstat` on file systems without `d_type`).
#[derive(Debug)]
pub(crate) struct DirEntry {
    pub name: OsString,
    pub kind: io::Result<FileKind>,
}

/// The calls of steps 2, 4, 5 and 6. Paths are as the calling process sees
/// them at that moment (`/oldroot/...` after the first pivot).
pub(crate) trait Sys {
    // Step 2: ids and namespaces.
    fn geteuid(&self) -> Uid;
    fn getegid(&self) -> Gid;
    fn setgroups(&self, groups: &[Gid]) -> nix::Result<()>;
    fn setresgid(&self, rgid: Gid, egid: Gid, sgid: Gid) -> nix::Result<()>;
    fn setresuid(&self, ruid: Uid, euid: Uid, suid: Uid) -> nix::Result<()>;
    fn set_dumpable(&self, dumpable: bool) -> nix::Result<()>;
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()>;
    /// The whole of `text` in one `write(2)` (files like `uid_map` take
    /// exactly one).
    fn write_file(&self, path: &Path, text: &str) -> io::Result<()>;

    // Steps 4 and 6: mounts and the file tree.
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()>;
    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()>;
    fn chdir(&self, path: &Path) -> nix::Result<()>;
    /// The current flags of the mount holding `path` (`statvfs(2)`).
    fn statvfs(&self, path: &Path) -> nix::Result<FsFlags>;
    /// `mkdir(2)`; `mode` is still subject to the umask.
    fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// A new empty file (`O_CREAT | O_EXCL`), to bind a file onto.
    fn create_file(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// A new file (`O_CREAT | O_EXCL | O_NOFOLLOW`) holding `contents`.
    fn write_new_file(&self, path: &Path, contents: &[u8], mode: u32) -> io::Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    fn read_link(&self, path: &Path) -> io::Result<PathBuf>;
    /// The entries of a directory, in the order the kernel lists them.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    /// `stat(2)`: follows symlinks.
    fn stat_kind(&self, path: &Path) -> io::Result<FileKind>;
    /// `lstat(2)`: a symlink is reported as one.
    fn lstat_kind(&self, path: &Path) -> io::Result<FileKind>;

    // Step 5: network and UTS namespaces.
    /// Sets `IFF_UP` on the interface `name` of our network namespace.
    fn interface_up(&self, name: &str) -> nix::Result<()>;
    fn sethostname(&self, name: &str) -> nix::Result<()>;
}

/// The kernel.
pub(crate) struct Real;

impl Sys for Real {
    fn geteuid(&self) -> Uid {
        nix::unistd::geteuid()
    }

    fn getegid(&self) -> Gid {
        nix::unistd::getegid()
    }

    fn setgroups(&self, groups: &[Gid]) -> nix::Result<()> {
        nix::unistd::setgroups(groups)
    }

    fn setresgid(&self, rgid: Gid, egid: Gid, sgid: Gid) -> nix::Result<()> {
        nix::unistd::setresgid(rgid, egid, sgid)
    }

    fn setresuid(&self, ruid: Uid, euid: Uid, suid: Uid) -> nix::Result<()> {
        nix::unistd::setresuid(ruid, euid, suid)
    }

    fn set_dumpable(&self, dumpable: bool) -> nix::Result<()> {
        nix::sys::prctl::set_dumpable(dumpable)
    }

    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        nix::sched::unshare(flags)
    }

    fn write_file(&self, path: &Path, text: &str) -> io::Result<()> {
        fs::write(path, text.as_bytes())
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
        nix::mount::umount2(target, flags)
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()> {
        nix::unistd::pivot_root(new_root, put_old)
    }

    fn chdir(&self, path: &Path) -> nix::Result<()> {
        nix::unistd::chdir(path)
    }

    fn statvfs(&self, path: &Path) -> nix::Result<FsFlags> {
        nix::sys::statvfs::statvfs(path).map(|s| s.flags())
    }

    fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
        fs::DirBuilder::new().mode(mode).create(path)
    }

    fn create_file(&self, path: &Path, mode: u32) -> io::Result<()> {
        fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map(drop)
    }

    fn write_new_file(&self, path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        io::Write::write_all(&mut file, contents)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        fs::read_link(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        fs::read_dir(path)?
            .map(|entry| {
                let entry = entry?;
                Ok(DirEntry { name: entry.file_name(), kind: entry.file_type().map(FileKind::of) })
            })
            .collect()
    }

    fn stat_kind(&self, path: &Path) -> io::Result<FileKind> {
        fs::metadata(path).map(|m| FileKind::of(m.file_type()))
    }

    fn lstat_kind(&self, path: &Path) -> io::Result<FileKind> {
        fs::symlink_metadata(path).map(|m| FileKind::of(m.file_type()))
    }

    /// The classic `SIOCGIFFLAGS`/`SIOCSIFFLAGS` pair on any socket of the
    /// namespace.
    fn interface_up(&self, name: &str) -> nix::Result<()> {
        // The name must leave room for its NUL within IFNAMSIZ.
        if name.len() >= libc::IFNAMSIZ || name.contains('\0') {
            return Err(Errno::EINVAL);
        }
        let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None)?;
        // SAFETY: ifreq is plain old data (names and integers in a union);
        // all zeroes is a valid value, and the name fits with its NUL.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        // SAFETY: both ioctls read and write exactly one `ifreq`, which `req`
        // is, and the socket is open for the duration of the calls. Reading
        // the `ifru_flags` member is what SIOCGIFFLAGS just filled in.
        unsafe {
            Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req))?;
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req))?;
        }
        Ok(())
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        nix::unistd::sethostname(name)
    }
}
