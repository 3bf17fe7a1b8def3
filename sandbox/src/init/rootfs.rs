//! Steps 4 and 6: building the new root and moving into it.
//!
//! A mount namespace starts as a copy of the host's mount table. We first
//! make every mount in it *private*, so nothing we do propagates back to the
//! host (and nothing the host mounts later shows up inside).
//!
//! We then pivot once into a scratch tmpfs, like bubblewrap: afterwards the
//! host's whole tree is reachable under `/oldroot`, and the root we are
//! building is `/newroot`, a second tmpfs. Building on a tmpfs rather than on
//! the rootfs directory itself means mount points such as `/build/src`,
//! `/proc` or `/tmp` can be created even though the rootfs is read-only: each
//! top-level entry of the rootfs is bind-mounted read-only into `/newroot`
//! (symlinks such as Debian's `/lib -> usr/lib` are recreated), and new
//! top-level directories are simply made in the tmpfs, which is itself
//! remounted read-only once everything is in place.
//!
//! Finally `pivot_root(".", ".")` inside `/newroot` stacks the old root on
//! top of the new one, and a lazy unmount of `.` drops it — scratch tmpfs,
//! `/oldroot` and the host tree with it.

use std::fs;
use std::os::unix::fs::{symlink, DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root};

use super::mountflags::{remount, Want};
use super::{dev, procfs, SetupError, Step};
use crate::spec::{under, Bind, Spec, Tmpfs};

/// Host directory the scratch tmpfs is mounted on, in our private mount
/// namespace only. It must exist; the host's own `/tmp` stays reachable as
/// `/oldroot/tmp` after the first pivot, so bind sources there still work.
const SCRATCH: &str = "/tmp";
pub(super) const NEWROOT: &str = "/newroot";
pub(super) const OLDROOT: &str = "/oldroot";

/// Step 4, in order.
pub(crate) fn build(spec: &Spec) -> Result<(), SetupError> {
    make_mounts_private()?;
    enter_scratch_root()?;
    mount_tmpfs(Path::new(NEWROOT), Path::new("/"), "mode=0755")?;
    bind_rootfs_entries(&spec.rootfs)?;
    mount_proc()?;
    dev::populate()?;
    procfs::seal()?;
    for m in user_mounts(spec) {
        match m {
            UserMount::Bind(bind) => bind_mount(bind)?,
            UserMount::Tmpfs(t) => {
                mount_point(&t.path, true)?;
                mount_tmpfs(&under(Path::new(NEWROOT), &t.path), &t.path, &tmpfs_options(t))?;
            }
        }
    }
    remount(Path::new(NEWROOT), Path::new("/"), Want::SEALED)
}

/// Step 6: the new root becomes `/`, the host tree disappears.
pub(crate) fn pivot_into_new_root(cwd: &Path) -> Result<(), SetupError> {
    chdir(NEWROOT).step(|| "entering the new root".into())?;
    pivot_root(".", ".").step(|| "pivot_root into the new root".into())?;
    umount2(".", MntFlags::MNT_DETACH).step(|| "detaching the host's root".into())?;
    chdir("/").step(|| "changing to / in the sandbox".into())?;
    chdir(cwd).step(|| format!("changing to the working directory {}", cwd.display()))
}

/// `mount --make-rprivate /`: our mounts must not leak to the host.
fn make_mounts_private() -> Result<(), SetupError> {
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .step(|| "making all mounts private in the sandbox's mount namespace".into())
}

/// First pivot: a scratch tmpfs becomes `/`, the host tree `/oldroot`.
fn enter_scratch_root() -> Result<(), SetupError> {
    mount(Some("tmpfs"), SCRATCH, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=0755"))
        .step(|| format!("mounting the scratch tmpfs on {SCRATCH}"))?;
    for dir in [NEWROOT, OLDROOT] {
        let path = format!("{SCRATCH}{dir}");
        mkdir(Path::new(&path)).step(|| format!("creating {path} in the scratch tmpfs"))?;
    }
    pivot_root(SCRATCH, format!("{SCRATCH}{OLDROOT}").as_str()).step(|| "pivot_root into the scratch tmpfs".into())?;
    chdir("/").step(|| "changing to / in the scratch tmpfs".into())
}

/// Each top-level entry of the rootfs, read-only, into `/newroot`. `/proc`
/// and `/dev` are skipped: we mount fresh ones there.
fn bind_rootfs_entries(rootfs: &Path) -> Result<(), SetupError> {
    let host = under(Path::new(OLDROOT), rootfs);
    let entries = fs::read_dir(&host).step(|| format!("listing rootfs {}", rootfs.display()))?;
    for entry in entries {
        let entry = entry.step(|| format!("listing rootfs {}", rootfs.display()))?;
        let name = entry.file_name();
        if name == "proc" || name == "dev" {
            continue;
        }
        let inside = Path::new("/").join(&name);
        let target = Path::new(NEWROOT).join(&name);
        let kind = entry.file_type().step(|| format!("inspecting {} in the rootfs", inside.display()))?;
        if kind.is_symlink() {
            let link =
                fs::read_link(entry.path()).step(|| format!("reading symlink {} in the rootfs", inside.display()))?;
            symlink(&link, &target).step(|| format!("recreating symlink {} in the sandbox", inside.display()))?;
            continue;
        }
        if kind.is_dir() { mkdir(&target) } else { touch(&target) }
            .step(|| format!("creating mount point {} in the sandbox", inside.display()))?;
        bind(&entry.path(), &target, &inside)?;
        remount(&target, &inside, Want::SEALED)?;
    }
    Ok(())
}

/// A fresh procfs. Only pid 1 of the new pid namespace may mount one that
/// shows that namespace, and the kernel allows it in a user namespace only
/// while a full procfs is visible — which `/oldroot/proc` still is.
fn mount_proc() -> Result<(), SetupError> {
    let target = Path::new(NEWROOT).join("proc");
    mkdir(&target).step(|| "creating /proc in the sandbox".into())?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), &target, Some("proc"), flags, None::<&str>).step(|| "mounting /proc in the sandbox".into())
}

enum UserMount<'a> {
    Bind(&'a Bind),
    Tmpfs(&'a Tmpfs),
}

/// World-writable with the sticky bit, like `/tmp`, and the size limit.
fn tmpfs_options(t: &Tmpfs) -> String {
    match t.size {
        Some(bytes) => format!("mode=1777,size={bytes}"),
        None => "mode=1777".to_owned(),
    }
}

/// The spec's binds and tmpfs mounts, parents before children (a tmpfs on
/// `/build` must not hide a bind on `/build/src`), otherwise in spec order.
fn user_mounts(spec: &Spec) -> Vec<UserMount<'_>> {
    let mut all: Vec<UserMount<'_>> = spec.binds.iter().map(UserMount::Bind).collect();
    all.extend(spec.tmpfs.iter().map(UserMount::Tmpfs));
    all.sort_by_key(|m| match m {
        UserMount::Bind(b) => b.target.components().count(),
        UserMount::Tmpfs(t) => t.path.components().count(),
    });
    all
}

fn bind_mount(b: &Bind) -> Result<(), SetupError> {
    let source = under(Path::new(OLDROOT), &b.source);
    let is_dir = fs::metadata(&source).step(|| format!("inspecting bind source {}", b.source.display()))?.is_dir();
    mount_point(&b.target, is_dir)?;
    let target = under(Path::new(NEWROOT), &b.target);
    bind(&source, &target, &b.target)?;
    remount(&target, &b.target, if b.writable { Want::WRITABLE } else { Want::SEALED })
}

/// Non-recursive on purpose: a recursive bind would carry submounts along,
/// and those would stay writable after we remount the top one read-only.
fn bind(source: &Path, target: &Path, shown: &Path) -> Result<(), SetupError> {
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .step(|| format!("bind-mounting {} in the sandbox", shown.display()))
}

pub(super) fn mount_tmpfs(target: &Path, shown: &Path, options: &str) -> Result<(), SetupError> {
    mount(Some("tmpfs"), target, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(options))
        .step(|| format!("mounting a tmpfs on {} in the sandbox", shown.display()))
}

/// Makes sure `inside` exists under `/newroot` as a directory (or a file to
/// bind a file onto), creating what is missing. Creation only succeeds in
/// the tmpfs parts of the tree: the rootfs binds are already read-only, so
/// the rootfs on disk is never modified. Symlinks are refused rather than
/// followed, because an absolute link would resolve against the scratch root
/// instead of the sandbox's.
fn mount_point(inside: &Path, dir: bool) -> Result<(), SetupError> {
    let mut path = PathBuf::from(NEWROOT);
    let mut shown = PathBuf::from("/");
    let parts: Vec<_> = inside.components().skip(1).collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        shown.push(part);
        let last = i + 1 == parts.len();
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(SetupError::other(
                    format!("creating mount point {} in the sandbox", inside.display()),
                    format!("{} is a symlink; use the path it points to", shown.display()),
                ));
            }
            Ok(_) => {}
            Err(_) if last && !dir => {
                touch(&path).step(|| format!("creating mount point {} in the sandbox", shown.display()))?
            }
            Err(_) => mkdir(&path).step(|| format!("creating mount point {} in the sandbox", shown.display()))?,
        }
    }
    Ok(())
}

fn mkdir(path: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new().mode(0o755).create(path)
}

pub(super) fn touch(path: &Path) -> std::io::Result<()> {
    fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(path).map(drop)
}
