//! # Untrusted trees on the host, by descriptor
//!
//! A path string is resolved by the kernel anew at every call, component by
//! component, following every symbolic link on the way. hermod runs as root on
//! the master host, which holds the fleet's signing keys, and it handles trees
//! that others can write: a module source, the files of a `-dkms` package, a
//! sandbox's outputs, a build root being assembled, a repository directory.
//! In such a tree `src/d/e` can lead anywhere on the host as soon as one
//! component is a symlink, or becomes one between two calls.
//!
//! So every operation here starts from a directory file descriptor ([`Dir`])
//! and a relative path that the kernel resolves with `openat2(2)` and
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`: any
//! symlink on the way, any step above the directory, is refused by the kernel
//! itself, at the moment of the call. The last component is then operated on
//! through its parent's descriptor with the `*at` calls and
//! `AT_SYMLINK_NOFOLLOW`/`O_NOFOLLOW`, and what was opened is judged by
//! `fstat` on the descriptor, never by an earlier `stat` of the name.
//!
//! Files are opened for reading only after their descriptor (`O_PATH`, which
//! opens nothing) says they are regular files: a FIFO, socket or device is
//! refused without ever being opened (opening a FIFO blocks, opening a device
//! can act).
//!
//! Symlinks are data: [`Dir::symlink`] writes one, [`Dir::read_link`] reads
//! one, and [`Dir::resolve`] works out where a path would lead inside the
//! tree, the way the kernel would (chains, `..`), without following anything.
//! [`Dir::open_dir_in_root`] is the one chroot-style exception, for build roots
//! being assembled, where `lib -> usr/lib` must be followed as the chroot will
//! see it: `RESOLVE_IN_ROOT` makes the kernel treat the descriptor as `/`.
#![forbid(unsafe_code)]

mod remove;
mod resolve;
mod walk;

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, CWD};

pub use resolve::Resolved;
pub use walk::{Visit, MAX_DEPTH};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {op}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("{path}: is or passes through a symbolic link, which is never followed here")]
    Symlink { path: PathBuf },
    #[error("{path}: a {kind}, not a regular file (only regular files, directories and symbolic links are read)")]
    NotRegular { path: PathBuf, kind: Kind },
    #[error("{path}: not a directory")]
    NotADirectory { path: PathBuf },
    #[error("{path:?}: not a plain relative path ({reason})")]
    BadPath { path: PathBuf, reason: &'static str },
    #[error("{path}: more than {MAX_DEPTH} directories deep")]
    TooDeep { path: PathBuf },
    #[error("{path}: more than {limit} entries")]
    TooMany { path: PathBuf, limit: u64 },
}

impl Error {
    /// The path (as shown to the user) the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Error::Io { path, .. }
            | Error::Symlink { path }
            | Error::NotRegular { path, .. }
            | Error::NotADirectory { path }
            | Error::BadPath { path, .. }
            | Error::TooDeep { path }
            | Error::TooMany { path, .. } => path,
        }
    }

    /// Whether the error says the path does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Io { source, .. } => source.kind(),
            Error::Symlink { .. }
            | Error::NotRegular { .. }
            | Error::BadPath { .. }
            | Error::TooDeep { .. }
            | Error::TooMany { .. } => io::ErrorKind::InvalidInput,
            Error::NotADirectory { .. } => io::ErrorKind::NotADirectory,
        };
        io::Error::new(kind, e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a directory entry is, from `lstat` or from `fstat` of its descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Unknown,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Dir => "directory",
            Kind::File => "regular file",
            Kind::Symlink => "symbolic link",
            Kind::Fifo => "FIFO",
            Kind::Socket => "socket",
            Kind::CharDevice => "character device",
            Kind::BlockDevice => "block device",
            Kind::Unknown => "file of unknown type",
        })
    }
}

impl Kind {
    fn of(t: FileType) -> Kind {
        match t {
            FileType::Directory => Kind::Dir,
            FileType::RegularFile => Kind::File,
            FileType::Symlink => Kind::Symlink,
            FileType::Fifo => Kind::Fifo,
            FileType::Socket => Kind::Socket,
            FileType::CharacterDevice => Kind::CharDevice,
            FileType::BlockDevice => Kind::BlockDevice,
            _ => Kind::Unknown,
        }
    }
}

/// The attributes hermod judges an entry by (from `lstat`/`fstat`, never `stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// Permission bits, `0o7777`.
    pub mode: u32,
    pub size: u64,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
}

impl Meta {
    fn of(st: &rustix::fs::Stat) -> Meta {
        Meta {
            kind: Kind::of(FileType::from_raw_mode(st.st_mode)),
            mode: st.st_mode & 0o7777,
            size: st.st_size as u64,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: st.st_mtime,
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
        }
    }
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS).union(ResolveFlags::NO_MAGICLINKS);
const DIR_FLAGS: OFlags = OFlags::DIRECTORY.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC).union(OFlags::RDONLY);

/// An open directory: every operation resolves beneath it, without following links.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// The directory's path, for messages only: never used to reach anything.
    shown: PathBuf,
}

impl Dir {
    /// Open a directory the *user* named (its path is the user's choice, links
    /// and all); everything below it is then reached by descriptor.
    pub fn open(path: &Path) -> Result<Dir> {
        let fd = rustix::fs::open(path, OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY, Mode::empty())
            .map_err(io_err("open directory", path))?;
        Ok(Dir { fd, shown: path.to_owned() })
    }

    /// Open a directory hermod itself laid out (a store directory): the last
    /// component may not be a symlink.
    pub fn open_nofollow(path: &Path) -> Result<Dir> {
        let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty()).map_err(|e| errno_err("open directory", path, e))?;
        Ok(Dir { fd, shown: path.to_owned() })
    }

    /// Create the directory `path` (which must not exist) with exactly `mode`, and open it.
    pub fn create_new(path: &Path, mode: u32) -> Result<Dir> {
        rustix::fs::mkdir(path, Mode::from_raw_mode(0o700)).map_err(io_err("create directory", path))?;
        let dir = Dir::open_nofollow(path)?;
        dir.set_own_mode(mode)?;
        Ok(dir)
    }

    /// The path this directory was opened as (for messages).
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// `rel` under this directory, for messages.
    pub fn shown(&self, rel: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        if rel.as_os_str().is_empty() {
            self.shown.clone()
        } else {
            self.shown.join(rel)
        }
    }

    pub fn try_clone(&self) -> Result<Dir> {
        let fd = self.fd.try_clone().map_err(|source| Error::Io { op: "dup", path: self.shown.clone(), source })?;
        Ok(Dir { fd, shown: self.shown.clone() })
    }

    /// The directory `rel` beneath this one; no component may be a symlink.
    pub fn open_dir(&self, rel: impl AsRef<Path>) -> Result<Dir> {
        let rel = rel.as_ref();
        check_rel(rel)?;
        if rel.as_os_str().is_empty() {
            return self.try_clone();
        }
        let fd = match rustix::fs::openat2(&self.fd, rel, DIR_FLAGS, Mode::empty(), BENEATH) {
            Ok(fd) => fd,
            // O_NOFOLLOW | O_DIRECTORY on a final symlink says "not a directory".
            Err(rustix::io::Errno::NOTDIR) if matches!(self.meta(rel), Ok(Some(m)) if m.kind == Kind::Symlink) => {
                return Err(Error::Symlink { path: self.shown(rel) })
            }
            Err(e) => return Err(errno_err("open directory", &self.shown(rel), e)),
        };
        Ok(Dir { fd, shown: self.shown(rel) })
    }

    /// The directory `rel` with this directory taken as `/`, following the
    /// tree's own symlinks as a chroot would (absolute targets and `..` never
    /// leave it). For build roots being assembled (`lib -> usr/lib`); never for
    /// a tree another user can change.
    pub fn open_dir_in_root(&self, rel: impl AsRef<Path>) -> Result<Dir> {
        let rel = rel.as_ref();
        if rel.as_os_str().is_empty() {
            return self.try_clone();
        }
        let flags = OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY;
        let fd = rustix::fs::openat2(
            &self.fd,
            rel,
            flags,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| errno_err("open directory", &self.shown(rel), e))?;
        Ok(Dir { fd, shown: self.shown(rel) })
    }

    /// Call `f` with the descriptor of `rel`'s parent and `rel`'s last name.
    fn at<T>(&self, rel: &Path, f: impl FnOnce(BorrowedFd<'_>, &OsStr) -> Result<T>) -> Result<T> {
        check_rel(rel)?;
        let name = rel.file_name().ok_or(Error::BadPath { path: rel.to_owned(), reason: "no file name" })?;
        match rel.parent() {
            Some(p) if !p.as_os_str().is_empty() => {
                let parent = self.open_dir(p)?;
                f(parent.fd.as_fd(), name)
            }
            _ => f(self.fd.as_fd(), name),
        }
    }

    /// `lstat` of `rel` (the directory itself for an empty path); `None` if it does not exist.
    pub fn meta(&self, rel: impl AsRef<Path>) -> Result<Option<Meta>> {
        let rel = rel.as_ref();
        if rel.as_os_str().is_empty() {
            return self.own_meta().map(Some);
        }
        self.at(rel, |parent, name| match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Meta::of(&st))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(errno_err("stat", &self.shown(rel), e)),
        })
    }

    /// `fstat` of this directory.
    pub fn own_meta(&self) -> Result<Meta> {
        let st = rustix::fs::fstat(&self.fd).map_err(io_err("stat", &self.shown))?;
        Ok(Meta::of(&st))
    }

    /// Open the regular file `rel` for reading. Anything else — a symlink, a
    /// FIFO, a socket, a device — is refused without being opened for reading.
    pub fn open_regular(&self, rel: impl AsRef<Path>) -> Result<(File, Meta)> {
        let rel = rel.as_ref();
        self.at(rel, |parent, name| open_regular_at(parent, name, &self.shown(rel)))
    }

    /// Read the regular file `rel`, at most `limit` bytes (more is an error).
    pub fn read_limited(&self, rel: impl AsRef<Path>, limit: u64) -> Result<Vec<u8>> {
        use std::io::Read;
        let rel = rel.as_ref();
        let (file, meta) = self.open_regular(rel)?;
        let too_big = || Error::Io {
            op: "read",
            path: self.shown(rel),
            source: io::Error::new(io::ErrorKind::FileTooLarge, format!("larger than the {limit}-byte limit")),
        };
        if meta.size > limit {
            return Err(too_big());
        }
        let mut bytes = Vec::with_capacity(meta.size as usize);
        file.take(limit + 1).read_to_end(&mut bytes).map_err(|source| Error::Io {
            op: "read",
            path: self.shown(rel),
            source,
        })?;
        if bytes.len() as u64 > limit {
            return Err(too_big());
        }
        Ok(bytes)
    }

    /// Create the new file `rel` (it must not exist; never through a link) with exactly `mode`.
    pub fn create_file(&self, rel: impl AsRef<Path>, mode: u32) -> Result<File> {
        let rel = rel.as_ref();
        let shown = self.shown(rel);
        let fd = self.at(rel, |parent, name| {
            let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            rustix::fs::openat(parent, name, flags, Mode::from_raw_mode(0o600)).map_err(io_err("create", &shown))
        })?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(io_err("chmod", &shown))?;
        Ok(File::from(fd))
    }

    /// [`Dir::create_file`] with `contents`.
    pub fn write_file(&self, rel: impl AsRef<Path>, contents: &[u8], mode: u32) -> Result<()> {
        use std::io::Write;
        let rel = rel.as_ref();
        let mut f = self.create_file(rel, mode)?;
        f.write_all(contents).map_err(|source| Error::Io { op: "write", path: self.shown(rel), source })
    }

    /// Create the directory `rel` with exactly `mode` and open it.
    pub fn create_dir(&self, rel: impl AsRef<Path>, mode: u32) -> Result<Dir> {
        let rel = rel.as_ref();
        let shown = self.shown(rel);
        let fd = self.at(rel, |parent, name| {
            rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                .map_err(io_err("create directory", &shown))?;
            open_dir_at(parent, name, &shown)
        })?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(io_err("chmod", &shown))?;
        Ok(Dir { fd, shown })
    }

    /// The directory `rel`, created (with `mode`) where missing, component by
    /// component; an existing component must be a real directory.
    pub fn create_dir_all(&self, rel: impl AsRef<Path>, mode: u32) -> Result<Dir> {
        let rel = rel.as_ref();
        check_rel(rel)?;
        let mut cur = self.try_clone()?;
        let mut sofar = PathBuf::new();
        for c in rel.components() {
            let Component::Normal(name) = c else { continue };
            sofar.push(name);
            let shown = self.shown(&sofar);
            let fd = match open_dir_at(cur.fd.as_fd(), name, &shown) {
                Ok(fd) => fd,
                Err(e) if e.is_not_found() => {
                    match rustix::fs::mkdirat(&cur.fd, name, Mode::from_raw_mode(0o700)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(errno_err("create directory", &shown, e)),
                    }
                    let fd = open_dir_at(cur.fd.as_fd(), name, &shown)?;
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(io_err("chmod", &shown))?;
                    fd
                }
                Err(e) => return Err(e),
            };
            cur = Dir { fd, shown };
        }
        Ok(cur)
    }

    /// Write the symlink `rel` → `target` (the target is data, never resolved here).
    pub fn symlink(&self, target: impl AsRef<Path>, rel: impl AsRef<Path>) -> Result<()> {
        let rel = rel.as_ref();
        self.at(rel, |parent, name| {
            rustix::fs::symlinkat(target.as_ref(), parent, name).map_err(io_err("create symlink", &self.shown(rel)))
        })
    }

    /// The target of the symlink `rel`.
    pub fn read_link(&self, rel: impl AsRef<Path>) -> Result<PathBuf> {
        let rel = rel.as_ref();
        self.at(rel, |parent, name| {
            let target =
                rustix::fs::readlinkat(parent, name, Vec::new()).map_err(io_err("read symlink", &self.shown(rel)))?;
            Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
        })
    }

    /// Hard-link the file `from` (never through a link) as `to` under `to_dir`.
    pub fn hard_link(&self, from: impl AsRef<Path>, to_dir: &Dir, to: impl AsRef<Path>) -> Result<()> {
        let (from, to) = (from.as_ref(), to.as_ref());
        self.at(from, |from_parent, from_name| {
            to_dir.at(to, |to_parent, to_name| {
                rustix::fs::linkat(from_parent, from_name, to_parent, to_name, AtFlags::empty())
                    .map_err(io_err("hard link", &to_dir.shown(to)))
            })
        })
    }

    /// Set `rel`'s permission bits; a symlink is refused, never followed.
    pub fn set_mode(&self, rel: impl AsRef<Path>, mode: u32) -> Result<()> {
        let rel = rel.as_ref();
        if rel.as_os_str().is_empty() {
            return self.set_own_mode(mode);
        }
        let shown = self.shown(rel);
        self.at(rel, |parent, name| {
            let fd = rustix::fs::openat(parent, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
                .map_err(io_err("open", &shown))?;
            let meta = Meta::of(&rustix::fs::fstat(&fd).map_err(io_err("stat", &shown))?);
            if meta.kind == Kind::Symlink {
                return Err(Error::Symlink { path: shown.clone() });
            }
            // fchmod refuses an O_PATH descriptor; its /proc magic link names
            // exactly the inode opened (what glibc's fchmodat does for NOFOLLOW).
            rustix::fs::chmodat(CWD, proc_fd(&fd), Mode::from_raw_mode(mode), AtFlags::empty())
                .map_err(io_err("chmod", &shown))
        })
    }

    /// Set this directory's own permission bits.
    pub fn set_own_mode(&self, mode: u32) -> Result<()> {
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(mode)).map_err(io_err("chmod", &self.shown))
    }

    /// Change `rel`'s owner (a symlink's own owner, never its target's).
    pub fn set_owner(&self, rel: impl AsRef<Path>, uid: u32, gid: u32) -> Result<()> {
        let rel = rel.as_ref();
        let (uid, gid) = (Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)));
        if rel.as_os_str().is_empty() {
            return rustix::fs::fchown(&self.fd, uid, gid).map_err(io_err("chown", &self.shown));
        }
        self.at(rel, |parent, name| {
            rustix::fs::chownat(parent, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err("chown", &self.shown(rel)))
        })
    }

    /// Set `rel`'s modification (and access) time; a symlink's own.
    pub fn set_mtime(&self, rel: impl AsRef<Path>, secs: i64) -> Result<()> {
        let rel = rel.as_ref();
        let t = Timespec { tv_sec: secs, tv_nsec: 0 };
        let times = Timestamps { last_access: t, last_modification: t };
        if rel.as_os_str().is_empty() {
            return rustix::fs::futimens(&self.fd, &times).map_err(io_err("set time", &self.shown));
        }
        self.at(rel, |parent, name| {
            rustix::fs::utimensat(parent, name, &times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err("set time", &self.shown(rel)))
        })
    }

    /// Remove the non-directory `rel` (a symlink itself, never its target).
    pub fn remove_file(&self, rel: impl AsRef<Path>) -> Result<()> {
        let rel = rel.as_ref();
        self.at(rel, |parent, name| {
            rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(io_err("remove", &self.shown(rel)))
        })
    }

    /// Rename `from` to `to` under `to_dir` (same filesystem), replacing a file there.
    pub fn rename(&self, from: impl AsRef<Path>, to_dir: &Dir, to: impl AsRef<Path>) -> Result<()> {
        let (from, to) = (from.as_ref(), to.as_ref());
        self.at(from, |from_parent, from_name| {
            to_dir.at(to, |to_parent, to_name| {
                rustix::fs::renameat(from_parent, from_name, to_parent, to_name)
                    .map_err(io_err("rename", &to_dir.shown(to)))
            })
        })
    }

    /// `fsync` of the directory (after renames into it).
    pub fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.fd).map_err(io_err("fsync", &self.shown))
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<Dir> for OwnedFd {
    fn from(d: Dir) -> OwnedFd {
        d.fd
    }
}

/// Open the file the *user* named (its path is theirs to choose, links and
/// all) for reading, if and only if it is a regular file: a FIFO given as a
/// `.deb` is refused instead of blocking hermod forever.
pub fn open_regular_path(path: &Path) -> Result<(File, Meta)> {
    let fd = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).map_err(io_err("open", path))?;
    reopen_regular(fd, path)
}

/// Open `name` under `parent` for reading if and only if it is a regular file.
fn open_regular_at(parent: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<(File, Meta)> {
    let path_fd = rustix::fs::openat(parent, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
        .map_err(io_err("open", shown))?;
    reopen_regular(path_fd, shown)
}

/// The regular file behind the `O_PATH` descriptor `path_fd`, opened for reading.
fn reopen_regular(path_fd: OwnedFd, shown: &Path) -> Result<(File, Meta)> {
    let meta = Meta::of(&rustix::fs::fstat(&path_fd).map_err(io_err("stat", shown))?);
    match meta.kind {
        Kind::File => {}
        Kind::Symlink => return Err(Error::Symlink { path: shown.to_owned() }),
        kind => return Err(Error::NotRegular { path: shown.to_owned(), kind }),
    }
    // Re-open the very inode judged, through its descriptor's /proc link.
    let fd = rustix::fs::open(proc_fd(&path_fd), OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY, Mode::empty())
        .map_err(io_err("open", shown))?;
    let again = Meta::of(&rustix::fs::fstat(&fd).map_err(io_err("stat", shown))?);
    if (again.dev, again.ino) != (meta.dev, meta.ino) {
        return Err(Error::Io {
            op: "open",
            path: shown.to_owned(),
            source: io::Error::other("changed while being opened"),
        });
    }
    Ok((File::from(fd), again))
}

/// Open the directory `name` under `parent`, never through a symlink.
fn open_dir_at(parent: BorrowedFd<'_>, name: &OsStr, shown: &Path) -> Result<OwnedFd> {
    rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP
            if rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink) =>
        {
            Error::Symlink { path: shown.to_owned() }
        }
        e => errno_err("open directory", shown, e),
    })
}

fn proc_fd(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// A relative path of plain names (`.` allowed, `..` and absolute paths not).
fn check_rel(rel: &Path) -> Result<()> {
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(Error::BadPath { path: rel.to_owned(), reason: "contains `..`" }),
            Component::RootDir | Component::Prefix(_) => {
                return Err(Error::BadPath { path: rel.to_owned(), reason: "absolute" })
            }
        }
    }
    Ok(())
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(rustix::io::Errno) -> Error + 'a {
    move |e| Error::Io { op, path: path.to_owned(), source: e.into() }
}

/// Errors of a no-follow open, named for what they mean here.
fn errno_err(op: &'static str, path: &Path, e: rustix::io::Errno) -> Error {
    match e {
        rustix::io::Errno::LOOP => Error::Symlink { path: path.to_owned() },
        rustix::io::Errno::XDEV => Error::BadPath { path: path.to_owned(), reason: "leaves the directory" },
        rustix::io::Errno::NOTDIR => Error::NotADirectory { path: path.to_owned() },
        e => Error::Io { op, path: path.to_owned(), source: e.into() },
    }
}

#[cfg(test)]
mod tests;
