//! A [`Sys`] for unit tests: records the calls, touches nothing.
//!
//! [`Recording`] never makes a system call. It
//!
//! * records every call as a [`Call`] with its arguments, printable as one
//!   line such as `mount(tmpfs, /tmp, tmpfs, MS_NOSUID|MS_NODEV, mode=0755)`
//!   so a test can compare a whole sequence against a readable list;
//! * succeeds by default, and fails the calls it was told to with an errno
//!   ([`Recording::fail`], [`Recording::fail_when`]);
//! * answers the reads (`read_dir`, `read_link`, `stat`, `lstat`,
//!   `statvfs`, `geteuid`) from a small fake state: a flat map of paths to
//!   directories, files and symlinks (which `mkdir`, `create_file` and
//!   `symlink` add to), the mount flags `statvfs` reports per path prefix,
//!   and the caller's ids (which `setresuid`/`setresgid` change). Mounts do
//!   not change the fake tree: a test seeds the paths the code will look at
//!   under the names it will use for them (`/oldroot/...`, `/newroot/proc/...`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::statvfs::FsFlags;
use nix::unistd::{Gid, Uid};

use super::sys::{DirEntry, FileKind, Sys};

/// One call made through the seam, with its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    Geteuid,
    Getegid,
    Setgroups(Vec<u32>),
    Setresgid(u32, u32, u32),
    Setresuid(u32, u32, u32),
    SetDumpable(bool),
    Unshare(CloneFlags),
    WriteFile {
        path: PathBuf,
        text: String,
    },
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Umount2 {
        target: PathBuf,
        flags: MntFlags,
    },
    PivotRoot {
        new_root: PathBuf,
        put_old: PathBuf,
    },
    Chdir(PathBuf),
    Statvfs(PathBuf),
    Mkdir {
        path: PathBuf,
        mode: u32,
    },
    CreateFile {
        path: PathBuf,
        mode: u32,
    },
    /// The contents' length only: a test must not need the bytes to compare.
    WriteNewFile {
        path: PathBuf,
        len: usize,
        mode: u32,
    },
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    ReadLink(PathBuf),
    ReadDir(PathBuf),
    Stat(PathBuf),
    Lstat(PathBuf),
    InterfaceUp(String),
    Sethostname(String),
}

impl Call {
    /// Calls that only look: the rest change something.
    pub(crate) fn is_read(&self) -> bool {
        matches!(
            self,
            Call::Geteuid
                | Call::Getegid
                | Call::Statvfs(_)
                | Call::ReadLink(_)
                | Call::ReadDir(_)
                | Call::Stat(_)
                | Call::Lstat(_)
        )
    }
}

/// `A|B` by the flags' names, `0` when empty.
fn names<T>(flags: impl Iterator<Item = (&'static str, T)>) -> String {
    let all: Vec<&str> = flags.map(|(name, _)| name).collect();
    if all.is_empty() {
        "0".into()
    } else {
        all.join("|")
    }
}

fn or_dash(value: Option<impl fmt::Display>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Geteuid => write!(f, "geteuid()"),
            Call::Getegid => write!(f, "getegid()"),
            Call::Setgroups(groups) => write!(f, "setgroups({groups:?})"),
            Call::Setresgid(r, e, s) => write!(f, "setresgid({r}, {e}, {s})"),
            Call::Setresuid(r, e, s) => write!(f, "setresuid({r}, {e}, {s})"),
            Call::SetDumpable(d) => write!(f, "set_dumpable({d})"),
            Call::Unshare(flags) => write!(f, "unshare({})", names(flags.iter_names())),
            Call::WriteFile { path, text } => write!(f, "write({}, {text:?})", path.display()),
            Call::Mount { source, target, fstype, flags, data } => write!(
                f,
                "mount({}, {}, {}, {}, {})",
                or_dash(source.as_ref().map(|s| s.display())),
                target.display(),
                or_dash(fstype.as_ref()),
                names(flags.iter_names()),
                or_dash(data.as_ref()),
            ),
            Call::Umount2 { target, flags } => {
                write!(f, "umount2({}, {})", target.display(), names(flags.iter_names()))
            }
            Call::PivotRoot { new_root, put_old } => {
                write!(f, "pivot_root({}, {})", new_root.display(), put_old.display())
            }
            Call::Chdir(path) => write!(f, "chdir({})", path.display()),
            Call::Statvfs(path) => write!(f, "statvfs({})", path.display()),
            Call::Mkdir { path, mode } => write!(f, "mkdir({}, {mode:#o})", path.display()),
            Call::CreateFile { path, mode } => write!(f, "create_file({}, {mode:#o})", path.display()),
            Call::WriteNewFile { path, len, mode } => {
                write!(f, "write_new_file({}, {len} bytes, {mode:#o})", path.display())
            }
            Call::Symlink { target, link } => write!(f, "symlink({}, {})", target.display(), link.display()),
            Call::ReadLink(path) => write!(f, "read_link({})", path.display()),
            Call::ReadDir(path) => write!(f, "read_dir({})", path.display()),
            Call::Stat(path) => write!(f, "stat({})", path.display()),
            Call::Lstat(path) => write!(f, "lstat({})", path.display()),
            Call::InterfaceUp(name) => write!(f, "interface_up({name})"),
            Call::Sethostname(name) => write!(f, "sethostname({name:?})"),
        }
    }
}

/// A path in the fake tree.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File,
    Symlink(PathBuf),
}

impl Node {
    fn kind(&self) -> FileKind {
        match self {
            Node::Dir => FileKind::Dir,
            Node::File => FileKind::File,
            Node::Symlink(_) => FileKind::Symlink,
        }
    }
}

type Rule = (Box<dyn Fn(&Call) -> bool>, Errno);

struct State {
    calls: Vec<Call>,
    tree: BTreeMap<PathBuf, Node>,
    /// `statvfs` flags by path prefix; the longest prefix wins.
    mount_flags: BTreeMap<PathBuf, FsFlags>,
    failures: Vec<Rule>,
    euid: u32,
    egid: u32,
}

/// The recording double. Unprivileged caller (1000:1000), empty tree,
/// every mount `relatime` until told otherwise.
pub(crate) struct Recording {
    state: RefCell<State>,
}

impl Recording {
    pub(crate) fn new() -> Recording {
        let mut mount_flags = BTreeMap::new();
        mount_flags.insert(PathBuf::from("/"), FsFlags::ST_RELATIME);
        Recording {
            state: RefCell::new(State {
                calls: Vec::new(),
                tree: BTreeMap::new(),
                mount_flags,
                failures: Vec::new(),
                euid: 1000,
                egid: 1000,
            }),
        }
    }

    /// The ids the calling process starts with.
    pub(crate) fn caller(self, uid: u32, gid: u32) -> Recording {
        {
            let mut s = self.state.borrow_mut();
            s.euid = uid;
            s.egid = gid;
        }
        self
    }

    fn with(self, path: &str, node: Node) -> Recording {
        self.state.borrow_mut().tree.insert(PathBuf::from(path), node);
        self
    }

    pub(crate) fn with_dir(self, path: &str) -> Recording {
        self.with(path, Node::Dir)
    }

    pub(crate) fn with_file(self, path: &str) -> Recording {
        self.with(path, Node::File)
    }

    pub(crate) fn with_symlink(self, path: &str, target: &str) -> Recording {
        self.with(path, Node::Symlink(PathBuf::from(target)))
    }

    /// What `statvfs` reports for `prefix` and everything under it.
    pub(crate) fn with_mount_flags(self, prefix: &str, flags: FsFlags) -> Recording {
        self.state.borrow_mut().mount_flags.insert(PathBuf::from(prefix), flags);
        self
    }

    /// A Debian-like rootfs as the setup sees it at `at` (usually
    /// `/oldroot/<spec.rootfs>`): merged-/usr symlinks, `/proc` and `/dev`
    /// directories to be skipped, ordinary directories.
    pub(crate) fn with_debian_rootfs(self, at: &str) -> Recording {
        let mut r = self.with_dir(at);
        for dir in ["boot", "dev", "etc", "home", "proc", "root", "tmp", "usr", "var"] {
            r = r.with_dir(&format!("{at}/{dir}"));
        }
        for (link, target) in [("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"), ("sbin", "usr/sbin")] {
            r = r.with_symlink(&format!("{at}/{link}"), target);
        }
        r
    }

    /// Part of a kernel's `/proc`, at `/newroot/proc`: some of the entries
    /// `procfs.rs` protects (as the directories or files they are), not all.
    pub(crate) fn with_procfs(self) -> Recording {
        let mut r = self;
        for dir in ["bus", "fs", "irq", "sys", "acpi", "scsi"] {
            r = r.with_dir(&format!("/newroot/proc/{dir}"));
        }
        for file in ["sysrq-trigger", "kcore", "keys", "timer_list", "sched_debug"] {
            r = r.with_file(&format!("/newroot/proc/{file}"));
        }
        r
    }

    /// Fails every call for which `matches` is true with `errno` (after
    /// recording it, and without any effect on the fake state).
    pub(crate) fn fail_when(self, matches: impl Fn(&Call) -> bool + 'static, errno: Errno) -> Recording {
        self.state.borrow_mut().failures.push((Box::new(matches), errno));
        self
    }

    /// Fails every call whose printed line starts with `line`, e.g.
    /// `"mount(/oldroot/srv/rootfs/usr,"`.
    pub(crate) fn fail(self, line: &str, errno: Errno) -> Recording {
        let line = line.to_owned();
        self.fail_when(move |call| call.to_string().starts_with(&line), errno)
    }

    /// Every call so far, in order.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.state.borrow().calls.clone()
    }

    /// Every call so far, printed.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.calls().iter().map(Call::to_string).collect()
    }

    /// The calls that change something, printed (reads left out).
    pub(crate) fn effects(&self) -> Vec<String> {
        self.calls().iter().filter(|c| !c.is_read()).map(Call::to_string).collect()
    }

    /// The `mount` calls, printed.
    pub(crate) fn mounts(&self) -> Vec<String> {
        self.calls().iter().filter(|c| matches!(c, Call::Mount { .. })).map(Call::to_string).collect()
    }

    /// Records `call`; `Err` if a failure rule matches it.
    fn call(&self, call: Call) -> Result<(), Errno> {
        let mut s = self.state.borrow_mut();
        let failed = s.failures.iter().find(|(matches, _)| matches(&call)).map(|(_, errno)| *errno);
        s.calls.push(call);
        failed.map_or(Ok(()), Err)
    }

    fn io_call(&self, call: Call) -> io::Result<()> {
        self.call(call).map_err(|errno| io::Error::from_raw_os_error(errno as i32))
    }

    fn node(&self, path: &Path) -> io::Result<Node> {
        self.state.borrow().tree.get(path).cloned().ok_or_else(|| errno(Errno::ENOENT))
    }

    /// Adds `path` to the tree unless it is there already.
    fn create(&self, path: &Path, node: Node) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        if s.tree.contains_key(path) {
            return Err(errno(Errno::EEXIST));
        }
        s.tree.insert(path.to_path_buf(), node);
        Ok(())
    }
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn owned(path: Option<&Path>) -> Option<PathBuf> {
    path.map(Path::to_path_buf)
}

impl Sys for Recording {
    fn geteuid(&self) -> Uid {
        let _ = self.call(Call::Geteuid);
        Uid::from_raw(self.state.borrow().euid)
    }

    fn getegid(&self) -> Gid {
        let _ = self.call(Call::Getegid);
        Gid::from_raw(self.state.borrow().egid)
    }

    fn setgroups(&self, groups: &[Gid]) -> nix::Result<()> {
        self.call(Call::Setgroups(groups.iter().map(|g| g.as_raw()).collect()))
    }

    fn setresgid(&self, rgid: Gid, egid: Gid, sgid: Gid) -> nix::Result<()> {
        self.call(Call::Setresgid(rgid.as_raw(), egid.as_raw(), sgid.as_raw()))?;
        self.state.borrow_mut().egid = egid.as_raw();
        Ok(())
    }

    fn setresuid(&self, ruid: Uid, euid: Uid, suid: Uid) -> nix::Result<()> {
        self.call(Call::Setresuid(ruid.as_raw(), euid.as_raw(), suid.as_raw()))?;
        self.state.borrow_mut().euid = euid.as_raw();
        Ok(())
    }

    fn set_dumpable(&self, dumpable: bool) -> nix::Result<()> {
        self.call(Call::SetDumpable(dumpable))
    }

    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        self.call(Call::Unshare(flags))
    }

    fn write_file(&self, path: &Path, text: &str) -> io::Result<()> {
        self.io_call(Call::WriteFile { path: path.to_path_buf(), text: text.to_owned() })
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        self.call(Call::Mount {
            source: owned(source),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_owned),
            flags,
            data: data.map(str::to_owned),
        })
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
        self.call(Call::Umount2 { target: target.to_path_buf(), flags })
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()> {
        self.call(Call::PivotRoot { new_root: new_root.to_path_buf(), put_old: put_old.to_path_buf() })
    }

    fn chdir(&self, path: &Path) -> nix::Result<()> {
        self.call(Call::Chdir(path.to_path_buf()))
    }

    fn statvfs(&self, path: &Path) -> nix::Result<FsFlags> {
        self.call(Call::Statvfs(path.to_path_buf()))?;
        let s = self.state.borrow();
        let best = s
            .mount_flags
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix))
            .max_by_key(|(p, _)| p.as_os_str().len());
        Ok(best.map_or(FsFlags::empty(), |(_, flags)| *flags))
    }

    fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.io_call(Call::Mkdir { path: path.to_path_buf(), mode })?;
        self.create(path, Node::Dir)
    }

    fn create_file(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.io_call(Call::CreateFile { path: path.to_path_buf(), mode })?;
        self.create(path, Node::File)
    }

    fn write_new_file(&self, path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
        self.io_call(Call::WriteNewFile { path: path.to_path_buf(), len: contents.len(), mode })?;
        self.create(path, Node::File)
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.io_call(Call::Symlink { target: target.to_path_buf(), link: link.to_path_buf() })?;
        self.create(link, Node::Symlink(target.to_path_buf()))
    }

    fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        self.io_call(Call::ReadLink(path.to_path_buf()))?;
        match self.node(path)? {
            Node::Symlink(target) => Ok(target),
            _ => Err(errno(Errno::EINVAL)),
        }
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        self.io_call(Call::ReadDir(path.to_path_buf()))?;
        if self.node(path)? != Node::Dir {
            return Err(errno(Errno::ENOTDIR));
        }
        let s = self.state.borrow();
        let children = s.tree.iter().filter(|(p, _)| p.parent() == Some(path));
        Ok(children
            .map(|(p, node)| DirEntry { name: p.file_name().unwrap_or_default().to_owned(), kind: Ok(node.kind()) })
            .collect())
    }

    /// Follows symlinks in the last component only (relative ones from the
    /// link's directory), as far as the fake tree needs.
    fn stat_kind(&self, path: &Path) -> io::Result<FileKind> {
        self.io_call(Call::Stat(path.to_path_buf()))?;
        let mut path = path.to_path_buf();
        for _ in 0..40 {
            match self.node(&path)? {
                Node::Symlink(target) => path = path.parent().unwrap_or(Path::new("/")).join(target),
                node => return Ok(node.kind()),
            }
        }
        Err(errno(Errno::ELOOP))
    }

    fn lstat_kind(&self, path: &Path) -> io::Result<FileKind> {
        self.io_call(Call::Lstat(path.to_path_buf()))?;
        self.node(path).map(|n| n.kind())
    }

    fn interface_up(&self, name: &str) -> nix::Result<()> {
        self.call(Call::InterfaceUp(name.to_owned()))
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        self.call(Call::Sethostname(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_in_order_and_prints_readably() {
        let r = Recording::new();
        r.mount(Some(Path::new("tmpfs")), Path::new("/tmp"), Some("tmpfs"), MsFlags::MS_NOSUID, Some("mode=0755"))
            .unwrap();
        r.mount(None, Path::new("/"), None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None).unwrap();
        r.umount2(Path::new("."), MntFlags::MNT_DETACH).unwrap();
        assert_eq!(
            r.lines(),
            [
                "mount(tmpfs, /tmp, tmpfs, MS_NOSUID, mode=0755)",
                "mount(-, /, -, MS_REC|MS_PRIVATE, -)",
                "umount2(., MNT_DETACH)",
            ]
        );
    }

    #[test]
    fn fails_what_it_is_told_to_and_nothing_else() {
        let r = Recording::new().fail("mkdir(/a,", Errno::EROFS);
        let err = r.mkdir(Path::new("/a"), 0o755).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(Errno::EROFS as i32));
        assert!(r.lstat_kind(Path::new("/a")).is_err(), "a failed mkdir creates nothing");
        r.mkdir(Path::new("/b"), 0o755).unwrap();
        assert_eq!(r.lstat_kind(Path::new("/b")).unwrap(), FileKind::Dir);
        assert_eq!(r.mkdir(Path::new("/b"), 0o755).unwrap_err().raw_os_error(), Some(Errno::EEXIST as i32));
    }

    #[test]
    fn serves_a_fake_tree() {
        let r = Recording::new().with_debian_rootfs("/r").with_mount_flags("/r/usr", FsFlags::ST_RDONLY);
        let names: Vec<_> =
            r.read_dir(Path::new("/r")).unwrap().into_iter().map(|e| (e.name, e.kind.unwrap())).collect();
        assert!(names.contains(&("lib".into(), FileKind::Symlink)));
        assert!(names.contains(&("usr".into(), FileKind::Dir)));
        assert_eq!(r.read_link(Path::new("/r/lib")).unwrap(), Path::new("usr/lib"));
        assert_eq!(r.stat_kind(Path::new("/r/lib")).unwrap_err().raw_os_error(), Some(libc::ENOENT));
        assert_eq!(r.stat_kind(Path::new("/r/bin")).unwrap_err().raw_os_error(), Some(libc::ENOENT));
        assert_eq!(r.statvfs(Path::new("/r/usr/lib")).unwrap(), FsFlags::ST_RDONLY);
        assert_eq!(r.statvfs(Path::new("/r/etc")).unwrap(), FsFlags::ST_RELATIME);
        let r = r.with_dir("/r/usr/lib");
        assert_eq!(r.stat_kind(Path::new("/r/lib")).unwrap(), FileKind::Dir);
    }

    #[test]
    fn id_switches_change_what_geteuid_answers() {
        let r = Recording::new().caller(0, 0);
        assert!(r.geteuid().is_root());
        r.setresuid(Uid::from_raw(7), Uid::from_raw(7), Uid::from_raw(7)).unwrap();
        assert_eq!(r.geteuid().as_raw(), 7);
        assert_eq!(r.getegid().as_raw(), 0);
    }
}
