//! The sandbox policy as an OCI runtime config (`config.json`).
//!
//! The Open Container Initiative's *runtime specification* describes one
//! container as a *bundle*: a directory holding a root filesystem and a
//! `config.json`. The config says, in a fixed JSON vocabulary, everything a
//! runtime (runc, crun, youki…) needs to start one process: its argv,
//! environment, working directory and user; its capabilities and rlimits;
//! the mounts; the namespaces and id mappings; cgroup limits; paths to mask
//! or make read-only; and a seccomp profile. [`runtime_config`] writes a
//! [`Spec`] in that vocabulary, so the policy can be read and checked with
//! standard tools, and [`write_bundle`] lays out a bundle that a second,
//! independent runtime can run: `runc run --bundle DIR ID`.
//!
//! How each part of hermod's sandbox is expressed:
//!
//! | hermod (`init/`) | OCI config |
//! |---|---|
//! | user, mount, pid, net, ipc, uts namespaces | `linux.namespaces` (the same six; no cgroup namespace) |
//! | `spec.uid`/`gid` mapped to `host_ids` (`userns.rs`) | `linux.uidMappings`/`gidMappings`: the same, plus container root mapped to host root, which the runtime's own init needs to set up the mounts; the command never runs as it |
//! | tmpfs root + read-only binds of the rootfs's top-level entries (`rootfs.rs`) | `root.path` is the bundle's own `rootfs/` (holding only the rootfs's top-level symlinks), `readonly`; each top-level entry bound read-only, `nosuid`, `nodev` |
//! | `/proc` `nosuid,noexec,nodev`; `procfs.rs`'s lists | a `proc` mount; `linux.maskedPaths`, `linux.readonlyPaths` |
//! | `/dev`: tmpfs, six host devices bound in, symlinks, `/dev/shm`, sealed (`dev.rs`) | a `/dev` tmpfs, in which every runtime must supply the same six devices (the runtime spec's *default devices*; runc binds them from the host in a user namespace) and the symlinks; a device cgroup that allows only those; `/dev/shm`; `/dev` in `readonlyPaths` |
//! | `Spec::shadowed`: a tmpfs of read-only binds of the directory's entries, sealed (`rootfs.rs`) | a `tmpfs` mount and a read-only bind per entry, the directory in `readonlyPaths` |
//! | `Spec::binds`, `Spec::tmpfs` (with `size=`) | `bind` mounts (never `rbind`), `tmpfs` mounts with `size=`, parents first |
//! | `Spec::outputs`: files copied out after the command exits | a writable bind of the host directory (see below) |
//! | rlimits, soft = hard (`limits.rs`) | `process.rlimits` |
//! | memory and pids cgroup limits | `linux.resources.memory.limit`, `linux.resources.pids.limit` |
//! | no capabilities, `no_new_privs`, umask 022, `oom_score_adj` 1000 (`payload.rs`) | all five capability sets empty, `noNewPrivileges`, `user.umask`, `oomScoreAdj` |
//! | seccomp (`seccomp.rs`) | `linux.seccomp`, made from the same rule table (see [`seccomp`]) |
//!
//! What does not carry over:
//!
//! * **Outputs.** hermod's pid 1 copies the command's results out of a
//!   size-limited tmpfs after the command has exited, so the command never
//!   holds a writable host directory. A runtime has no such step, so the
//!   outputs directory is bind-mounted writable instead: the command writes
//!   the host directory directly, bounded only by `RLIMIT_FSIZE` per file
//!   (`Outputs::max_bytes` is not enforced).
//! * **The timeout** (`Spec::timeout`): the OCI config has no wall-clock
//!   limit; the caller of the runtime has to enforce it.
//! * **The log** (`Spec::log`): the process writes to the runtime's own
//!   stdout and stderr; its stdin is the runtime's (give it `/dev/null`).
//! * **Rlimits are not clamped** to the caller's hard limits as hermod does;
//!   a runtime that cannot raise one fails to start.
//! * **Foreign ABIs** are killed by the runtime's seccomp library as a
//!   *thread* (`SCMP_ACT_KILL`), not as a whole process (see [`seccomp`]).
//! * **Symlinks in a shadowed directory** (`/usr/src/linux-kbuild-6.1`) are
//!   read-only binds of their targets (resolved as the container would,
//!   inside the rootfs, never through the host's paths; refused if they
//!   resolve nowhere): the directory is there, `readlink` finds none.
//! * Minor: runc also creates `/dev/ptmx` (a dangling link, there is no
//!   `/dev/pts`) and does not write `setgroups deny`.
//!
//! The config is for a runtime running as root: it maps two host ids
//! (root and `host_ids`), which an unprivileged runtime cannot do.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Arch, Capabilities, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder, LinuxIdMapping,
    LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder, Mount, MountBuilder, PosixRlimit, PosixRlimitBuilder,
    PosixRlimitType, ProcessBuilder, RootBuilder, SpecBuilder, UserBuilder,
};
use oci_spec::OciSpecError;

use crate::init::procfs;
use crate::init::seccomp::{self as filter, Check};
use crate::spec::{Limits, Spec};

/// The bundle's root directory, relative to the bundle (the OCI default).
pub const ROOT_DIR: &str = "rootfs";

/// The OCI runtime spec version the config claims.
const OCI_VERSION: &str = "1.0.2";

/// The size of `/dev/shm`, as `init/dev.rs` mounts it.
const SHM_SIZE: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot express in an OCI config: {0}")]
    Unsupported(String),
    #[error("building the OCI config: {0}")]
    Oci(#[from] OciSpecError),
    #[error("writing the OCI config: {0}")]
    Json(#[from] serde_json::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OciError + '_ {
    move |source| OciError::Io { path: path.to_owned(), source }
}

/// The OCI runtime config equivalent to running `spec` in hermod's sandbox.
///
/// `root.path` is [`ROOT_DIR`], relative to the bundle: an empty directory
/// except for the rootfs's top-level symlinks, which [`write_bundle`]
/// makes. The rootfs itself is never the OCI root, because a runtime
/// creates missing mount points (`/build`, `/hermod/in`…) inside the root
/// before sealing it, and hermod's build roots must never change. Host
/// paths are made absolute and canonical; they must exist.
pub fn runtime_config(spec: &Spec) -> Result<oci_spec::runtime::Spec, OciError> {
    spec.check_shape().map_err(OciError::InvalidSpec)?;
    if !spec.secrets.is_empty() {
        // A bundle is files on disk: a secret would become one.
        return Err(OciError::Unsupported("secrets (they would be written into the bundle)".into()));
    }
    let (host_uid, host_gid) = spec
        .host_ids
        .ok_or_else(|| OciError::Unsupported("a sandbox without host_ids (the command would be host root)".into()))?;
    let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(UserBuilder::default().uid(spec.uid).gid(spec.gid).umask(0o022u32).build()?)
        .args(spec.argv.clone())
        .env(env)
        .cwd(&spec.cwd)
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(Capabilities::new())
                .effective(Capabilities::new())
                .inheritable(Capabilities::new())
                .permitted(Capabilities::new())
                .ambient(Capabilities::new())
                .build()?,
        )
        .rlimits(rlimits(&spec.limits)?)
        .no_new_privileges(true)
        // payload.rs: the command volunteers for the OOM killer, so that
        // what supervises it survives a memory limit to report it.
        .oom_score_adj(1000)
        .build()?;

    let mut linux = LinuxBuilder::default()
        .namespaces(
            [
                LinuxNamespaceType::User,
                LinuxNamespaceType::Mount,
                LinuxNamespaceType::Pid,
                LinuxNamespaceType::Network,
                LinuxNamespaceType::Ipc,
                LinuxNamespaceType::Uts,
            ]
            .into_iter()
            .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
            .collect::<Result<Vec<_>, _>>()?,
        )
        .uid_mappings(id_mappings(spec.uid, host_uid)?)
        .gid_mappings(id_mappings(spec.gid, host_gid)?)
        .resources(resources(&spec.limits)?)
        .masked_paths(procfs::MASKED.iter().map(|p| p.to_string()).collect::<Vec<_>>())
        // `/dev` last: it is sealed once its devices are in, as dev.rs does.
        .readonly_paths(
            procfs::READ_ONLY
                .iter()
                .map(|p| p.to_string())
                .chain(["/dev".to_string()])
                .chain(spec.shadowed.iter().map(|d| d.display().to_string()))
                .collect::<Vec<_>>(),
        )
        .rootfs_propagation("rprivate")
        .build()?;
    if spec.seccomp {
        linux.set_seccomp(Some(seccomp()?));
    }

    let mut config = SpecBuilder::default()
        .version(OCI_VERSION)
        .root(RootBuilder::default().path(ROOT_DIR).readonly(true).build()?)
        .mounts(mounts(spec)?)
        .process(process)
        .hostname(spec.hostname.clone())
        .linux(linux)
        .build()?;
    config.set_annotations(None);
    Ok(config)
}

/// Lays out the bundle `dir` (which must exist): `dir/rootfs/` with the
/// rootfs's top-level symlinks, and `dir/config.json` (pretty JSON, with
/// `root.path` made absolute). Returns the config.
pub fn write_bundle(spec: &Spec, dir: &Path) -> Result<oci_spec::runtime::Spec, OciError> {
    let mut config = runtime_config(spec)?;
    let dir = dir.canonicalize().map_err(io_err(dir))?;
    let root = dir.join(ROOT_DIR);
    fs::create_dir(&root).map_err(io_err(&root))?;
    for entry in top_level(&spec.rootfs)? {
        if let Entry::Symlink { name, target } = entry {
            let link = root.join(&name);
            symlink(&target, &link).map_err(io_err(&link))?;
        }
    }
    config.set_root(Some(RootBuilder::default().path(&root).readonly(true).build()?));
    let json = serde_json::to_string_pretty(&config)? + "\n";
    let path = dir.join("config.json");
    fs::write(&path, json).map_err(io_err(&path))?;
    Ok(config)
}

/// Container root mapped to host root (the runtime's init runs as it while
/// it sets up), and the command's id to the host id hermod would use.
fn id_mappings(inside: u32, host: u32) -> Result<Vec<LinuxIdMapping>, OciError> {
    let map = |container_id: u32, host_id: u32| {
        LinuxIdMappingBuilder::default().container_id(container_id).host_id(host_id).size(1u32).build()
    };
    if inside == 0 {
        return Ok(vec![map(0, host)?]);
    }
    if host == 0 {
        return Err(OciError::Unsupported("host id 0 for the command: container root needs it".into()));
    }
    Ok(vec![map(0, 0)?, map(inside, host)?])
}

fn rlimits(limits: &Limits) -> Result<Vec<PosixRlimit>, OciError> {
    [
        (PosixRlimitType::RlimitNproc, limits.nproc),
        (PosixRlimitType::RlimitFsize, limits.fsize),
        (PosixRlimitType::RlimitCore, limits.core),
        (PosixRlimitType::RlimitCpu, limits.cpu),
        (PosixRlimitType::RlimitNofile, limits.nofile),
    ]
    .into_iter()
    .filter_map(|(typ, value)| Some(PosixRlimitBuilder::default().typ(typ).soft(value?).hard(value?).build()))
    .collect::<Result<Vec<_>, _>>()
    .map_err(OciError::from)
}

fn resources(limits: &Limits) -> Result<oci_spec::runtime::LinuxResources, OciError> {
    let signed = |what: &str, v: u64| {
        i64::try_from(v).map_err(|_| OciError::Unsupported(format!("{what} limit {v} does not fit an i64")))
    };
    // No device may be opened but the default ones the runtime supplies.
    // (Listing those in `linux.devices` as well is redundant, and runc
    // 1.1.5 then refuses to open /dev/null in a user namespace.)
    let deny_all = LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build()?;
    let mut resources = LinuxResourcesBuilder::default().devices(vec![deny_all]);
    if let Some(memory) = limits.memory {
        resources = resources.memory(LinuxMemoryBuilder::default().limit(signed("memory", memory)?).build()?);
    }
    if let Some(pids) = limits.pids {
        resources = resources.pids(LinuxPidsBuilder::default().limit(signed("pids", pids)?).build()?);
    }
    Ok(resources.build()?)
}

/// A top-level entry of the rootfs.
enum Entry {
    Mount { name: String, source: PathBuf },
    Symlink { name: String, target: PathBuf },
}

/// The rootfs's top-level entries, sorted, without `proc` and `dev` (fresh
/// ones are mounted there), as `init/rootfs.rs` binds them.
fn top_level(rootfs: &Path) -> Result<Vec<Entry>, OciError> {
    let mut entries = entries_of(&rootfs.canonicalize().map_err(io_err(rootfs))?)?;
    entries.retain(|e| entry_name(e) != "proc" && entry_name(e) != "dev");
    Ok(entries)
}

/// The entries of the host directory `rootfs` (the rootfs or a directory
/// in it), sorted.
fn entries_of(rootfs: &Path) -> Result<Vec<Entry>, OciError> {
    let rootfs = rootfs.to_path_buf();
    let mut entries = Vec::new();
    for entry in fs::read_dir(&rootfs).map_err(io_err(&rootfs))? {
        let entry = entry.map_err(io_err(&rootfs))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(OciError::Unsupported(format!("{}: a name that is not UTF-8", entry.path().display())));
        };
        let kind = entry.file_type().map_err(io_err(&entry.path()))?;
        entries.push(if kind.is_symlink() {
            Entry::Symlink { target: fs::read_link(entry.path()).map_err(io_err(&entry.path()))?, name }
        } else {
            Entry::Mount { source: entry.path(), name }
        });
    }
    entries.sort_by(|a, b| entry_name(a).cmp(entry_name(b)));
    Ok(entries)
}

fn entry_name(e: &Entry) -> &str {
    match e {
        Entry::Mount { name, .. } | Entry::Symlink { name, .. } => name,
    }
}

fn bind(source: &Path, target: &Path, writable: bool) -> Result<Mount, OciError> {
    let source = source.canonicalize().map_err(io_err(source))?;
    let access = if writable { "rw" } else { "ro" };
    Ok(MountBuilder::default()
        .destination(target)
        .typ("bind")
        .source(source)
        .options(["bind", access, "nosuid", "nodev"].map(String::from).to_vec())
        .build()?)
}

/// Where `inside` (a path of the container, through the rootfs's own
/// symlinks) is on the host, resolved as the container would resolve it:
/// `openat2(RESOLVE_IN_ROOT)` from the rootfs, so an absolute target or `..`
/// never leaves it and no path of the host is followed. `None` if it does not
/// resolve (dangling, a loop, or refused).
fn resolve_in_rootfs(rootfs: &Path, inside: &Path) -> Option<PathBuf> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use std::os::fd::AsRawFd;
    let root =
        nix::fcntl::open(rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
            .ok()?;
    let rel = inside.strip_prefix("/").unwrap_or(inside);
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(&root, rel, how).ok()?;
    // The kernel's name for what was opened: the real path, inside the rootfs.
    fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()
}

fn tmpfs(target: &Path, options: &[String]) -> Result<Mount, OciError> {
    Ok(MountBuilder::default().destination(target).typ("tmpfs").source("tmpfs").options(options.to_vec()).build()?)
}

/// In the order `init/rootfs.rs` mounts them: the rootfs's entries, `/proc`,
/// `/dev`, then the spec's binds and tmpfs mounts, parents before children.
fn mounts(spec: &Spec) -> Result<Vec<Mount>, OciError> {
    let mut mounts = Vec::new();
    for entry in top_level(&spec.rootfs)? {
        if let Entry::Mount { name, source } = entry {
            mounts.push(bind(&source, &Path::new("/").join(name), false)?);
        }
    }
    let opts = |o: &[&str]| o.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut shadowed: Vec<&PathBuf> = spec.shadowed.iter().collect();
    shadowed.sort_by_key(|d| d.components().count());
    for dir in shadowed {
        // The rootfs's own directory, no symlink on the way (as init/rootfs.rs checks).
        let rootfs = spec.rootfs.canonicalize().map_err(io_err(&spec.rootfs))?;
        let host = crate::spec::under(&rootfs, dir);
        if host.canonicalize().ok().as_ref() != Some(&host) || !host.is_dir() {
            return Err(OciError::Unsupported(format!("{} is not a directory of the rootfs", dir.display())));
        }
        mounts.push(tmpfs(dir, &opts(&["nosuid", "nodev", "mode=755"]))?);
        for entry in entries_of(&host)? {
            let (name, source) = match entry {
                Entry::Mount { name, source } => (name, source),
                // A runtime makes mounts, not links: the link's target is
                // bound instead, if it lies in the rootfs (see the module doc).
                Entry::Symlink { name, .. } => match resolve_in_rootfs(&rootfs, &dir.join(&name)) {
                    Some(target) if target.starts_with(&rootfs) => (name, target),
                    _ => {
                        return Err(OciError::Unsupported(format!(
                            "the symlink {} (in a shadowed directory) does not resolve inside the rootfs",
                            dir.join(name).display()
                        )))
                    }
                },
            };
            mounts.push(bind(&source, &dir.join(name), false)?);
        }
    }
    mounts.push(
        MountBuilder::default()
            .destination("/proc")
            .typ("proc")
            .source("proc")
            .options(opts(&["nosuid", "noexec", "nodev"]))
            .build()?,
    );
    mounts.push(tmpfs(Path::new("/dev"), &opts(&["nosuid", "nodev", "mode=755"]))?);
    let shm_size = format!("size={SHM_SIZE}");
    mounts.push(tmpfs(Path::new("/dev/shm"), &opts(&["nosuid", "nodev", "mode=1777", &shm_size]))?);

    // (depth, mount), sorted stably by depth as init/rootfs.rs does.
    let mut user: Vec<(usize, Mount)> = Vec::new();
    let depth = |p: &Path| p.components().count();
    for b in &spec.binds {
        user.push((depth(&b.target), bind(&b.source, &b.target, b.writable)?));
    }
    for t in &spec.tmpfs {
        // A runtime cannot copy results out after the command exits, as
        // hermod's pid 1 does: the host outputs directory takes the
        // tmpfs's place, writable (see the module comment).
        let mount = match &spec.outputs {
            Some(out) if out.inside == t.path => bind(&out.host, &out.inside, true)?,
            _ => {
                let mut o = opts(&["nosuid", "nodev", "mode=1777"]);
                o.extend(t.size.map(|s| format!("size={s}")));
                tmpfs(&t.path, &o)?
            }
        };
        user.push((depth(&t.path), mount));
    }
    if let Some(out) = &spec.outputs {
        if !spec.tmpfs.iter().any(|t| t.path == out.inside) {
            user.push((depth(&out.inside), bind(&out.host, &out.inside, true)?));
        }
    }
    user.sort_by_key(|(depth, _)| *depth);
    mounts.extend(user.into_iter().map(|(_, m)| m));
    Ok(mounts)
}

/// `init/seccomp.rs`'s filters as an OCI seccomp profile, from the same
/// rule table.
///
/// * Default action `SCMP_ACT_ALLOW`; each refused call `SCMP_ACT_ERRNO`
///   with its errno (`EPERM`, `ENOSYS` for `clone3`).
/// * A rule with several conditions becomes several entries: entries are
///   ORed, and runc splits one entry's conditions on the same argument into
///   separate (ORed) rules, so ANDed conditions on one argument cannot be
///   written. Masked compares are `SCMP_CMP_MASKED_EQ` with `value` the mask
///   and `valueTwo` the expected bits; a 32-bit compare is a mask without
///   the high 32 bits. "None of these values" (personality) becomes a set of
///   masked compares covering exactly the other values
///   ([`complement_cubes`]).
/// * Architectures: only `SCMP_ARCH_X86_64`. libseccomp then treats every
///   i386 syscall (another audit arch) and every x32 syscall (x86_64 arch,
///   number with bit 30 set) as a *bad architecture*, whose default action
///   is to kill — hermod's "kill on a foreign ABI". Listing `SCMP_ARCH_X86`
///   and `SCMP_ARCH_X32` too, as Docker's profile does, would instead allow
///   them under the same deny list. Unlike hermod's filter, libseccomp's
///   kill is `SCMP_ACT_KILL` (the thread), not the whole process.
/// * A name the runtime's libseccomp does not know is skipped by runc (a
///   debug message only), so an older libseccomp silently drops that rule;
///   Debian 12's runc and libseccomp know every name here, `fchmodat2`
///   included (checked by hand: it gets `EPERM` with a setuid mode).
fn seccomp() -> Result<LinuxSeccomp, OciError> {
    if !cfg!(target_arch = "x86_64") {
        return Err(OciError::Unsupported(format!(
            "the seccomp filter exists only for x86_64, not {}",
            std::env::consts::ARCH
        )));
    }
    let errno = |call_names: Vec<String>, errno: i32, args: Vec<(u8, u64, u64)>| -> Result<LinuxSyscall, OciError> {
        let mut b = LinuxSyscallBuilder::default().names(call_names).action(LinuxSeccompAction::ScmpActErrno);
        b = b.errno_ret(errno as u32);
        if !args.is_empty() {
            let args = args
                .into_iter()
                .map(|(index, mask, value)| {
                    LinuxSeccompArgBuilder::default()
                        .index(index as usize)
                        .value(mask)
                        .value_two(value)
                        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            b = b.args(args);
        }
        Ok(b.build()?)
    };
    // Unconditional rules grouped by errno (one entry each), in table order.
    let mut always: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut conditional = Vec::new();
    for rule in filter::rules() {
        if rule.when.is_empty() {
            always.entry(rule.errno).or_default().push(rule.call.name.to_string());
            continue;
        }
        for check in &rule.when {
            let cubes = match *check {
                Check::Masked { arg, wide, mask, value } => {
                    let mask = if wide { mask } else { mask & 0xffff_ffff };
                    vec![(arg, mask, value & mask)]
                }
                Check::NoneOf { arg, allowed } => {
                    complement_cubes(allowed, 32).into_iter().map(|(mask, value)| (arg, mask, value)).collect()
                }
            };
            for cube in cubes {
                conditional.push(errno(vec![rule.call.name.to_string()], rule.errno, vec![cube])?);
            }
        }
    }
    let mut syscalls = Vec::new();
    for (code, names) in always {
        syscalls.push(errno(names, code, Vec::new())?);
    }
    syscalls.extend(conditional);
    Ok(LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(vec![Arch::ScmpArchX86_64])
        .syscalls(syscalls)
        .build()?)
}

/// Masked compares `(mask, value)` that together match exactly the
/// `width`-bit numbers *not* in `allowed`: `x & mask == value` for some
/// pair if and only if `x` (its low `width` bits) is not allowed.
///
/// Bits that every allowed value sets alike form a class. (1) Within a
/// class of k ≥ 2 bits, x is refused if its bits there are not all equal;
/// k compares "bit i set, next bit of the class clear", around a cycle,
/// catch exactly that. (2) Otherwise x is one bit per class; a binary tree
/// over the classes' first bits lists the combinations no allowed value
/// has. For personality's five values: 30 + 2 compares.
fn complement_cubes(allowed: &[u64], width: u32) -> Vec<(u64, u64)> {
    let full = if width >= 64 { u64::MAX } else { (1u64 << width) - 1 };
    let mut allowed: Vec<u64> = allowed.iter().map(|a| a & full).collect();
    allowed.sort_unstable();
    allowed.dedup();
    if allowed.is_empty() {
        return vec![(0, 0)];
    }
    let mut classes: BTreeMap<Vec<bool>, Vec<u64>> = BTreeMap::new();
    for i in 0..width.min(64) {
        let bit = 1u64 << i;
        classes.entry(allowed.iter().map(|a| a & bit != 0).collect()).or_default().push(bit);
    }
    let mut classes: Vec<Vec<u64>> = classes.into_values().collect();
    classes.sort_by_key(|bits| bits[0]);
    let mut cubes = Vec::new();
    for bits in classes.iter().filter(|bits| bits.len() >= 2) {
        for (i, &bit) in bits.iter().enumerate() {
            let next = bits[(i + 1) % bits.len()];
            cubes.push((bit | next, bit));
        }
    }
    let reps: Vec<u64> = classes.iter().map(|bits| bits[0]).collect();
    tree(&reps, 0, (0, 0), &allowed, &mut cubes);
    cubes
}

/// Step (2) of [`complement_cubes`]: below the node `prefix` (the first
/// `depth` class bits fixed), the combinations no value of `rows` has.
fn tree(reps: &[u64], depth: usize, prefix: (u64, u64), rows: &[u64], out: &mut Vec<(u64, u64)>) {
    if rows.is_empty() {
        out.push(prefix);
        return;
    }
    let Some(&bit) = reps.get(depth) else { return };
    let (ones, zeros): (Vec<u64>, Vec<u64>) = rows.iter().partition(|&&r| r & bit != 0);
    tree(reps, depth + 1, (prefix.0 | bit, prefix.1), &zeros, out);
    tree(reps, depth + 1, (prefix.0 | bit, prefix.1 | bit), &ones, out);
}

#[cfg(test)]
#[path = "oci_tests.rs"]
mod tests;
