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
//! A directory deeper in the rootfs can be rebuilt the same way
//! (`Spec::shadowed`, e.g. `/usr/src`): a tmpfs over it holding read-only
//! binds of its entries, so that a mount point it lacks (a writable
//! `/usr/src/<module>-<version>`) can be made there; it is sealed read-only
//! with the root.
//!
//! Finally `pivot_root(".", ".")` inside `/newroot` stacks the old root on
//! top of the new one, and a lazy unmount of `.` drops it — scratch tmpfs,
//! `/oldroot` and the host tree with it.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use super::mountflags::{remount, Want};
use super::sys::{FileKind, Sys};
use super::{dev, procfs, SetupError, Step};
use crate::spec::{under, Bind, Secret, Spec, Tmpfs};

/// Host directory the scratch tmpfs is mounted on, in our private mount
/// namespace only. It must exist; the host's own `/tmp` stays reachable as
/// `/oldroot/tmp` after the first pivot, so bind sources there still work.
const SCRATCH: &str = "/tmp";
pub(super) const NEWROOT: &str = "/newroot";
pub(super) const OLDROOT: &str = "/oldroot";

/// Mode of the directories we create (mount points, in tmpfs).
const DIR_MODE: u32 = 0o755;
/// Mode of the empty files we create to bind a file onto.
pub(super) const FILE_MODE: u32 = 0o644;
/// Mode of a secret: its owner (the command's uid) reads it, no one else.
const SECRET_MODE: u32 = 0o400;

/// Step 4, in order.
pub(crate) fn build(sys: &dyn Sys, spec: &Spec) -> Result<(), SetupError> {
    make_mounts_private(sys)?;
    enter_scratch_root(sys)?;
    mount_tmpfs(sys, Path::new(NEWROOT), Path::new("/"), "mode=0755")?;
    bind_rootfs_entries(sys, &spec.rootfs)?;
    let mut shadowed: Vec<&Path> = spec.shadowed.iter().map(PathBuf::as_path).collect();
    shadowed.sort_by_key(|dir| dir.components().count());
    for dir in &shadowed {
        shadow(sys, &spec.rootfs, dir)?;
    }
    mount_proc(sys)?;
    dev::populate(sys)?;
    procfs::seal(sys)?;
    for m in user_mounts(spec) {
        match m {
            UserMount::Bind(bind) => bind_mount(sys, bind)?,
            UserMount::Tmpfs(t) => {
                mount_point(sys, &t.path, true)?;
                mount_tmpfs(sys, &under(Path::new(NEWROOT), &t.path), &t.path, &tmpfs_options(t))?;
            }
        }
    }
    place_secrets(sys, &spec.secrets)?;
    for dir in shadowed.iter().rev() {
        remount(sys, &under(Path::new(NEWROOT), dir), dir, Want::SEALED)?;
    }
    remount(sys, Path::new(NEWROOT), Path::new("/"), Want::SEALED)
}

/// Each secret's directory becomes a tmpfs only the command's uid may enter
/// (pid 1 runs as that uid inside, so it owns the mount), sized for what it
/// holds; the files are written 0400 and the mount sealed read-only. Last
/// of the mounts, so no later one can hide them.
fn place_secrets(sys: &dyn Sys, secrets: &[Secret]) -> Result<(), SetupError> {
    let mut dirs: Vec<&Path> = secrets.iter().filter_map(Secret::dir).collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        let here: Vec<&Secret> = secrets.iter().filter(|s| s.dir() == Some(dir)).collect();
        // tmpfs counts whole pages: one more per file, and one spare.
        let size = here.iter().map(|s| s.contents.len()).sum::<usize>() + 4096 * (here.len() + 1);
        mount_point(sys, dir, true)?;
        let target = under(Path::new(NEWROOT), dir);
        mount_tmpfs(sys, &target, dir, &format!("mode=0700,size={size}"))?;
        for secret in here {
            sys.write_new_file(&under(Path::new(NEWROOT), &secret.path), &secret.contents, SECRET_MODE)
                .step(|| format!("writing the secret {} in the sandbox", secret.path.display()))?;
        }
        remount(sys, &target, dir, Want::SEALED)?;
    }
    Ok(())
}

/// Step 6: the new root becomes `/`, the host tree disappears.
pub(crate) fn pivot_into_new_root(sys: &dyn Sys, cwd: &Path) -> Result<(), SetupError> {
    let here = Path::new(".");
    sys.chdir(Path::new(NEWROOT)).step(|| "entering the new root".into())?;
    sys.pivot_root(here, here).step(|| "pivot_root into the new root".into())?;
    sys.umount2(here, MntFlags::MNT_DETACH).step(|| "detaching the host's root".into())?;
    sys.chdir(Path::new("/")).step(|| "changing to / in the sandbox".into())?;
    sys.chdir(cwd).step(|| format!("changing to the working directory {}", cwd.display()))
}

/// `mount --make-rprivate /`: our mounts must not leak to the host.
fn make_mounts_private(sys: &dyn Sys) -> Result<(), SetupError> {
    sys.mount(None, Path::new("/"), None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)
        .step(|| "making all mounts private in the sandbox's mount namespace".into())
}

/// First pivot: a scratch tmpfs becomes `/`, the host tree `/oldroot`.
fn enter_scratch_root(sys: &dyn Sys) -> Result<(), SetupError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    sys.mount(Some(Path::new("tmpfs")), Path::new(SCRATCH), Some("tmpfs"), flags, Some("mode=0755"))
        .step(|| format!("mounting the scratch tmpfs on {SCRATCH}"))?;
    for dir in [NEWROOT, OLDROOT] {
        let path = format!("{SCRATCH}{dir}");
        sys.mkdir(Path::new(&path), DIR_MODE).step(|| format!("creating {path} in the scratch tmpfs"))?;
    }
    sys.pivot_root(Path::new(SCRATCH), Path::new(&format!("{SCRATCH}{OLDROOT}")))
        .step(|| "pivot_root into the scratch tmpfs".into())?;
    sys.chdir(Path::new("/")).step(|| "changing to / in the scratch tmpfs".into())
}

/// Each top-level entry of the rootfs, read-only, into `/newroot`. `/proc`
/// and `/dev` are skipped: we mount fresh ones there.
fn bind_rootfs_entries(sys: &dyn Sys, rootfs: &Path) -> Result<(), SetupError> {
    let host = under(Path::new(OLDROOT), rootfs);
    let entries = sys.read_dir(&host).step(|| format!("listing rootfs {}", rootfs.display()))?;
    let entries = entries.into_iter().filter(|e| e.name != "proc" && e.name != "dev");
    bind_entries(sys, &host, Path::new("/"), entries)
}

/// A directory of the rootfs rebuilt the way the top level is (see
/// `Spec::shadowed`): a tmpfs over it, in which each of its entries is bound
/// read-only again (symlinks recreated), so that mount points can be made
/// beside them. Only a real directory of the rootfs: a symlink on the way
/// would resolve against the scratch root.
fn shadow(sys: &dyn Sys, rootfs: &Path, dir: &Path) -> Result<(), SetupError> {
    let (mut path, mut shown) = (PathBuf::from(NEWROOT), PathBuf::from("/"));
    for part in dir.components().skip(1) {
        path.push(part);
        shown.push(part);
        if !matches!(sys.lstat_kind(&path), Ok(FileKind::Dir)) {
            return Err(SetupError::other(
                format!("rebuilding {} in the sandbox", dir.display()),
                format!("{} is not a directory of the rootfs", shown.display()),
            ));
        }
    }
    let host = under(&under(Path::new(OLDROOT), rootfs), dir);
    let entries = sys.read_dir(&host).step(|| format!("listing {} in the rootfs", dir.display()))?;
    mount_tmpfs(sys, &path, dir, "mode=0755")?;
    bind_entries(sys, &host, dir, entries.into_iter())
}

/// `entries` of the host directory `host` (the rootfs's `inside`) into the
/// sandbox's `inside`: each directory or file bound read-only, each symlink
/// recreated.
fn bind_entries(
    sys: &dyn Sys,
    host: &Path,
    inside: &Path,
    entries: impl Iterator<Item = super::sys::DirEntry>,
) -> Result<(), SetupError> {
    for entry in entries {
        let name = entry.name;
        let shown = inside.join(&name);
        // (`name` comes from the directory listing: one plain component.)
        let source = host.join(&name);
        let target = under(Path::new(NEWROOT), &shown);
        let kind = entry.kind.step(|| format!("inspecting {} in the rootfs", shown.display()))?;
        if kind == FileKind::Symlink {
            let link = sys.read_link(&source).step(|| format!("reading symlink {} in the rootfs", shown.display()))?;
            sys.symlink(&link, &target).step(|| format!("recreating symlink {} in the sandbox", shown.display()))?;
            continue;
        }
        if kind == FileKind::Dir { sys.mkdir(&target, DIR_MODE) } else { sys.create_file(&target, FILE_MODE) }
            .step(|| format!("creating mount point {} in the sandbox", shown.display()))?;
        bind(sys, &source, &target, &shown)?;
        remount(sys, &target, &shown, Want::SEALED)?;
    }
    Ok(())
}

/// A fresh procfs. Only pid 1 of the new pid namespace may mount one that
/// shows that namespace, and the kernel allows it in a user namespace only
/// while a full procfs is visible — which `/oldroot/proc` still is.
fn mount_proc(sys: &dyn Sys) -> Result<(), SetupError> {
    let target = Path::new(NEWROOT).join("proc");
    sys.mkdir(&target, DIR_MODE).step(|| "creating /proc in the sandbox".into())?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    sys.mount(Some(Path::new("proc")), &target, Some("proc"), flags, None)
        .step(|| "mounting /proc in the sandbox".into())
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

fn bind_mount(sys: &dyn Sys, b: &Bind) -> Result<(), SetupError> {
    let source = under(Path::new(OLDROOT), &b.source);
    let kind = sys.stat_kind(&source).step(|| format!("inspecting bind source {}", b.source.display()))?;
    mount_point(sys, &b.target, kind == FileKind::Dir)?;
    let target = under(Path::new(NEWROOT), &b.target);
    bind(sys, &source, &target, &b.target)?;
    remount(sys, &target, &b.target, if b.writable { Want::WRITABLE } else { Want::SEALED })
}

/// Non-recursive on purpose: a recursive bind would carry submounts along,
/// and those would stay writable after we remount the top one read-only.
fn bind(sys: &dyn Sys, source: &Path, target: &Path, shown: &Path) -> Result<(), SetupError> {
    sys.mount(Some(source), target, None, MsFlags::MS_BIND, None)
        .step(|| format!("bind-mounting {} in the sandbox", shown.display()))
}

pub(super) fn mount_tmpfs(sys: &dyn Sys, target: &Path, shown: &Path, options: &str) -> Result<(), SetupError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    sys.mount(Some(Path::new("tmpfs")), target, Some("tmpfs"), flags, Some(options))
        .step(|| format!("mounting a tmpfs on {} in the sandbox", shown.display()))
}

/// Makes sure `inside` exists under `/newroot` as a directory (or a file to
/// bind a file onto), creating what is missing. Creation only succeeds in
/// the tmpfs parts of the tree: the rootfs binds are already read-only, so
/// the rootfs on disk is never modified. Symlinks are refused rather than
/// followed, because an absolute link would resolve against the scratch root
/// instead of the sandbox's.
fn mount_point(sys: &dyn Sys, inside: &Path, dir: bool) -> Result<(), SetupError> {
    let mut path = PathBuf::from(NEWROOT);
    let mut shown = PathBuf::from("/");
    let parts: Vec<_> = inside.components().skip(1).collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        shown.push(part);
        let last = i + 1 == parts.len();
        match sys.lstat_kind(&path) {
            Ok(FileKind::Symlink) => {
                return Err(SetupError::other(
                    format!("creating mount point {} in the sandbox", inside.display()),
                    format!("{} is a symlink; use the path it points to", shown.display()),
                ));
            }
            Ok(_) => {}
            Err(_) if last && !dir => sys
                .create_file(&path, FILE_MODE)
                .step(|| format!("creating mount point {} in the sandbox", shown.display()))?,
            Err(_) => sys
                .mkdir(&path, DIR_MODE)
                .step(|| format!("creating mount point {} in the sandbox", shown.display()))?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::recording::{Call, Recording};
    use nix::errno::Errno;

    const HOST_ROOTFS: &str = "/oldroot/srv/rootfs";
    const SEALED: &str = "MS_RDONLY|MS_NOSUID|MS_NODEV|MS_REMOUNT|MS_BIND|MS_RELATIME";

    /// No binds, no tmpfs: just the rootfs.
    fn spec() -> Spec {
        Spec { tmpfs: vec![], ..Spec::new("/srv/rootfs", vec!["/bin/true".into()]) }
    }

    /// Debian's top level plus one regular file, and part of a /proc.
    fn debian() -> Recording {
        Recording::new().with_debian_rootfs(HOST_ROOTFS).with_file(&format!("{HOST_ROOTFS}/README")).with_procfs()
    }

    fn position(lines: &[String], line: &str) -> usize {
        lines.iter().position(|l| l == line).unwrap_or_else(|| panic!("{line} not in {lines:#?}"))
    }

    #[test]
    fn build_makes_mounts_private_then_pivots_into_a_scratch_tmpfs() {
        let sys = debian();
        build(&sys, &spec()).unwrap();
        assert_eq!(
            sys.calls()[0],
            Call::Mount {
                source: None,
                target: "/".into(),
                fstype: None,
                flags: MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                data: None
            }
        );
        assert_eq!(
            sys.lines()[1..8],
            [
                "mount(tmpfs, /tmp, tmpfs, MS_NOSUID|MS_NODEV, mode=0755)",
                "mkdir(/tmp/newroot, 0o755)",
                "mkdir(/tmp/oldroot, 0o755)",
                "pivot_root(/tmp, /tmp/oldroot)",
                "chdir(/)",
                "mount(tmpfs, /newroot, tmpfs, MS_NOSUID|MS_NODEV, mode=0755)",
                "read_dir(/oldroot/srv/rootfs)",
            ]
        );
    }

    #[test]
    fn rootfs_entries_are_bound_read_only_and_symlinks_recreated() {
        let sys = debian();
        build(&sys, &spec()).unwrap();
        let lines = sys.lines();
        let from = position(&lines, "read_dir(/oldroot/srv/rootfs)") + 1;
        let to = position(&lines, "mkdir(/newroot/proc, 0o755)");
        let bound = |name: &str, create: String| {
            [
                create,
                format!("mount({HOST_ROOTFS}/{name}, /newroot/{name}, -, MS_BIND, -)"),
                format!("statvfs(/newroot/{name})"),
                format!("mount(-, /newroot/{name}, -, {SEALED}, -)"),
            ]
        };
        let dir = |name: &str| bound(name, format!("mkdir(/newroot/{name}, 0o755)"));
        let link = |name: &str, to: &str| {
            [format!("read_link({HOST_ROOTFS}/{name})"), format!("symlink({to}, /newroot/{name})")]
        };
        // The fake lists entries sorted; /proc and /dev are not taken from the rootfs.
        let want: Vec<String> = [
            bound("README", "create_file(/newroot/README, 0o644)".into()).to_vec(),
            link("bin", "usr/bin").to_vec(),
            dir("boot").to_vec(),
            dir("etc").to_vec(),
            dir("home").to_vec(),
            link("lib", "usr/lib").to_vec(),
            link("lib64", "usr/lib64").to_vec(),
            dir("root").to_vec(),
            link("sbin", "usr/sbin").to_vec(),
            dir("tmp").to_vec(),
            dir("usr").to_vec(),
            dir("var").to_vec(),
        ]
        .concat();
        assert_eq!(lines[from..to], want);
        for call in sys.calls() {
            if let Call::Mount { source: Some(source), flags, .. } = &call {
                assert!(!flags.contains(MsFlags::MS_REC), "recursive bind: {call}");
                assert!(!source.starts_with(format!("{HOST_ROOTFS}/proc")), "{call}");
                assert!(!source.starts_with(format!("{HOST_ROOTFS}/dev")), "{call}");
            }
        }
    }

    #[test]
    fn proc_then_dev_then_proc_masking_then_user_mounts() {
        let sys = debian();
        build(&sys, &Spec { tmpfs: vec![Tmpfs::new("/tmp", Some(1 << 20))], ..spec() }).unwrap();
        let lines = sys.lines();
        let proc = position(&lines, "mount(proc, /newroot/proc, proc, MS_NOSUID|MS_NODEV|MS_NOEXEC, -)");
        assert_eq!(lines[proc - 1], "mkdir(/newroot/proc, 0o755)");
        assert_eq!(lines[proc + 1], "mkdir(/newroot/dev, 0o777)", "dev.rs follows");
        let dev_sealed = position(&lines, &format!("mount(-, /newroot/dev, -, {SEALED}, -)"));
        let masked = position(&lines, "mount(/newroot/dev/null, /newroot/proc/kcore, -, MS_BIND, -)");
        let user = position(&lines, "mount(tmpfs, /newroot/tmp, tmpfs, MS_NOSUID|MS_NODEV, mode=1777,size=1048576)");
        assert!(proc < dev_sealed && dev_sealed < masked && masked < user, "{lines:#?}");
    }

    #[test]
    fn user_mounts_parents_first_with_sizes_then_the_root_sealed() {
        let sys = debian().with_dir("/oldroot/home/u/src").with_file("/oldroot/home/u/config");
        let spec = Spec {
            binds: vec![
                Bind { source: "/home/u/src".into(), target: "/build/src".into(), writable: true },
                Bind { source: "/home/u/config".into(), target: "/build/config".into(), writable: false },
            ],
            tmpfs: vec![Tmpfs::new("/build", Some(1 << 30)), Tmpfs::new("/tmp", None)],
            ..spec()
        };
        build(&sys, &spec).unwrap();
        let effects = sys.effects();
        let from = position(&effects, "mkdir(/newroot/build, 0o755)");
        assert_eq!(
            effects[from..],
            [
                "mkdir(/newroot/build, 0o755)".to_string(),
                "mount(tmpfs, /newroot/build, tmpfs, MS_NOSUID|MS_NODEV, mode=1777,size=1073741824)".into(),
                // /tmp is in the rootfs: the tmpfs goes over its read-only bind.
                "mount(tmpfs, /newroot/tmp, tmpfs, MS_NOSUID|MS_NODEV, mode=1777)".into(),
                "mkdir(/newroot/build/src, 0o755)".into(),
                "mount(/oldroot/home/u/src, /newroot/build/src, -, MS_BIND, -)".into(),
                "mount(-, /newroot/build/src, -, MS_NOSUID|MS_NODEV|MS_REMOUNT|MS_BIND|MS_RELATIME, -)".into(),
                "create_file(/newroot/build/config, 0o644)".into(),
                "mount(/oldroot/home/u/config, /newroot/build/config, -, MS_BIND, -)".into(),
                format!("mount(-, /newroot/build/config, -, {SEALED}, -)"),
                format!("mount(-, /newroot, -, {SEALED}, -)"),
            ]
        );
        assert_eq!(sys.lines()[sys.lines().len() - 2], "statvfs(/newroot)");
    }

    #[test]
    fn secrets_go_last_into_a_private_sealed_tmpfs_of_their_own() {
        let sys = debian();
        let key = Secret { path: "/hermod/secret/signing.key".into(), contents: vec![7; 5000] };
        let spec = Spec { tmpfs: vec![Tmpfs::new("/tmp", None)], secrets: vec![key], ..spec() };
        build(&sys, &spec).unwrap();
        let effects = sys.effects();
        let from = position(&effects, "mkdir(/newroot/hermod, 0o755)");
        assert!(from > position(&effects, "mount(tmpfs, /newroot/tmp, tmpfs, MS_NOSUID|MS_NODEV, mode=1777)"));
        assert_eq!(
            effects[from..],
            [
                "mkdir(/newroot/hermod, 0o755)".to_string(),
                "mkdir(/newroot/hermod/secret, 0o755)".into(),
                // 5000 bytes + a page for the file + a spare page.
                "mount(tmpfs, /newroot/hermod/secret, tmpfs, MS_NOSUID|MS_NODEV, mode=0700,size=13192)".into(),
                "write_new_file(/newroot/hermod/secret/signing.key, 5000 bytes, 0o400)".into(),
                format!("mount(-, /newroot/hermod/secret, -, {SEALED}, -)"),
                format!("mount(-, /newroot, -, {SEALED}, -)"),
            ]
        );
        // Nothing of it anywhere else: no bind from the host, no other write.
        assert!(!sys.lines().iter().any(|l| l.contains("signing.key") && !l.starts_with("write_new_file")));
    }

    #[test]
    fn a_secret_that_cannot_be_written_fails_the_setup() {
        let sys = debian().fail("write_new_file(", Errno::ENOSPC);
        let key = Secret { path: "/run/k/key".into(), contents: vec![1] };
        let err = build(&sys, &Spec { secrets: vec![key], ..spec() }).unwrap_err();
        assert_eq!(err.to_string(), "writing the secret /run/k/key in the sandbox: ENOSPC: No space left on device");
    }

    #[test]
    fn pivot_into_new_root_drops_the_host_tree() {
        let sys = Recording::new();
        pivot_into_new_root(&sys, Path::new("/build/src")).unwrap();
        assert_eq!(
            sys.calls(),
            [
                Call::Chdir("/newroot".into()),
                Call::PivotRoot { new_root: ".".into(), put_old: ".".into() },
                Call::Umount2 { target: ".".into(), flags: MntFlags::MNT_DETACH },
                Call::Chdir("/".into()),
                Call::Chdir("/build/src".into()),
            ]
        );
    }

    #[test]
    fn a_failed_pivot_stops_there_and_says_so() {
        let sys = Recording::new().fail("pivot_root(., .)", Errno::EINVAL);
        let err = pivot_into_new_root(&sys, Path::new("/")).unwrap_err();
        assert_eq!(err.to_string(), "pivot_root into the new root: EINVAL: Invalid argument");
        assert_eq!(sys.lines(), ["chdir(/newroot)", "pivot_root(., .)"]);
    }

    #[test]
    fn a_failed_mount_stops_the_sequence_and_names_the_step() {
        let sys = debian().fail("mount(/oldroot/srv/rootfs/etc,", Errno::EACCES);
        let err = build(&sys, &spec()).unwrap_err();
        assert!(
            matches!(&err, SetupError::Sys { step, errno: Errno::EACCES } if step == "bind-mounting /etc in the sandbox"),
            "{err}"
        );
        assert_eq!(sys.lines().last().unwrap(), "mount(/oldroot/srv/rootfs/etc, /newroot/etc, -, MS_BIND, -)");

        let sys = debian().fail("mount(-, /, ", Errno::EPERM);
        let err = build(&sys, &spec()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "making all mounts private in the sandbox's mount namespace: EPERM: Operation not permitted"
        );
        assert_eq!(sys.calls().len(), 1);
    }

    #[test]
    fn a_symlink_in_a_mount_point_path_is_refused_without_mounting() {
        // Debian's /lib is a symlink, recreated as one in the new root.
        let sys = debian().with_dir("/oldroot/home/u/modules");
        let bind = Bind { source: "/home/u/modules".into(), target: "/lib/modules".into(), writable: false };
        let err = build(&sys, &Spec { binds: vec![bind], ..spec() }).unwrap_err();
        assert!(
            matches!(&err, SetupError::Other { step, detail }
                if step == "creating mount point /lib/modules in the sandbox"
                && detail == "/lib is a symlink; use the path it points to"),
            "{err}"
        );
        assert_eq!(sys.lines().last().unwrap(), "lstat(/newroot/lib)");
        assert!(!sys.lines().iter().any(|l| l.contains("/newroot/lib/")));

        let sys = Recording::new().with_symlink("/newroot/build", "/elsewhere");
        assert!(mount_point(&sys, Path::new("/build/src"), true).is_err());
        assert_eq!(sys.lines(), ["lstat(/newroot/build)"]);
    }

    #[test]
    fn mount_points_create_only_what_is_missing() {
        let sys = Recording::new().with_dir("/newroot/build");
        mount_point(&sys, Path::new("/build/out/log"), false).unwrap();
        assert_eq!(
            sys.lines(),
            [
                "lstat(/newroot/build)",
                "lstat(/newroot/build/out)",
                "mkdir(/newroot/build/out, 0o755)",
                "lstat(/newroot/build/out/log)",
                "create_file(/newroot/build/out/log, 0o644)",
            ]
        );
    }

    #[test]
    fn a_shadowed_directory_is_a_sealed_tmpfs_of_read_only_binds_with_room_for_mounts() {
        let sys = debian()
            .with_dir(&format!("{HOST_ROOTFS}/usr/src"))
            .with_dir(&format!("{HOST_ROOTFS}/usr/src/linux-headers-6"))
            .with_symlink(&format!("{HOST_ROOTFS}/usr/src/linux"), "linux-headers-6")
            // What the read-only bind of /usr shows.
            .with_dir("/newroot/usr/src");
        let spec =
            Spec { shadowed: vec!["/usr/src".into()], tmpfs: vec![Tmpfs::new("/usr/src/m-1", Some(4096))], ..spec() };
        build(&sys, &spec).unwrap();
        let effects = sys.effects();
        let from = position(&effects, "mount(tmpfs, /newroot/usr/src, tmpfs, MS_NOSUID|MS_NODEV, mode=0755)");
        assert!(from > position(&effects, &format!("mount(-, /newroot/var, -, {SEALED}, -)")));
        assert_eq!(
            effects[from..from + 5],
            [
                "mount(tmpfs, /newroot/usr/src, tmpfs, MS_NOSUID|MS_NODEV, mode=0755)".to_string(),
                "symlink(linux-headers-6, /newroot/usr/src/linux)".into(),
                "mkdir(/newroot/usr/src/linux-headers-6, 0o755)".into(),
                format!(
                    "mount({HOST_ROOTFS}/usr/src/linux-headers-6, /newroot/usr/src/linux-headers-6, -, MS_BIND, -)"
                ),
                format!("mount(-, /newroot/usr/src/linux-headers-6, -, {SEALED}, -)"),
            ]
        );
        // The writable tmpfs's mount point is made in it; then it is sealed,
        // before the root.
        let end = effects.len();
        assert_eq!(
            effects[end - 4..],
            [
                "mkdir(/newroot/usr/src/m-1, 0o755)".to_string(),
                "mount(tmpfs, /newroot/usr/src/m-1, tmpfs, MS_NOSUID|MS_NODEV, mode=1777,size=4096)".into(),
                format!("mount(-, /newroot/usr/src, -, {SEALED}, -)"),
                format!("mount(-, /newroot, -, {SEALED}, -)"),
            ]
        );
    }

    #[test]
    fn only_a_real_directory_of_the_rootfs_is_shadowed() {
        // /lib is Debian's link to usr/lib: never followed.
        let err = build(&debian(), &Spec { shadowed: vec!["/lib/modules".into()], ..spec() }).unwrap_err();
        assert_eq!(err.to_string(), "rebuilding /lib/modules in the sandbox: /lib is not a directory of the rootfs");
        let err = build(&debian(), &Spec { shadowed: vec!["/usr/absent".into()], ..spec() }).unwrap_err();
        assert!(err.to_string().contains("/usr/absent is not a directory of the rootfs"), "{err}");
    }

    #[test]
    fn tmpfs_options_carry_the_size() {
        assert_eq!(tmpfs_options(&Tmpfs::new("/tmp", Some(4096))), "mode=1777,size=4096");
        assert_eq!(tmpfs_options(&Tmpfs::new("/tmp", None)), "mode=1777");
    }
}
