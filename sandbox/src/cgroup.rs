//! Memory and process-count limits for the whole sandbox, through cgroups.
//!
//! A *control group* is a directory in the cgroup filesystem: the processes
//! listed in its `cgroup.procs` (and all their descendants, which inherit
//! the group) share the limits written into its control files. rlimits are
//! per process (or, for `RLIMIT_NPROC`, per host uid); only a cgroup can say
//! "this build, all of it, may use 8 GiB and 2048 tasks".
//!
//! Two layouts exist. **cgroup v2** is one tree at `/sys/fs/cgroup` with
//! `memory.max`, `memory.swap.max` and `pids.max`; a group may use a
//! controller only if its parent lists it in `cgroup.subtree_control`. The
//! older **cgroup v1** mounts one tree per controller (`…/memory/`,
//! `…/pids/`) with `memory.limit_in_bytes` and `pids.max`. Debian bookworm
//! boots v2 only; containers and older hosts often still give v1, and a
//! "hybrid" host mounts both with every controller on the v1 side.
//!
//! `run()` creates a fresh group `hermod-<owner tag>-<n>` under the caller's
//! own group, for each controller where it can: v2 first, else v1. (On v2,
//! the caller's group can hand controllers down only once it holds no
//! process, so hermod first moves itself into a leaf `hermod-self` beside
//! the sandbox groups: [`enable_controllers`].) The helper is in the group
//! before it forks pid 1, so every process of the sandbox is born inside.
//!
//! *How* it gets there is most of what the limits cost. Moving another
//! process (its pid written to `cgroup.procs`) takes the kernel's global
//! threadgroup lock for writing, which waits out an RCU grace period:
//! 5–13 ms per sandbox on the development machine, busy, against 0.3 ms for
//! the rest of the group's life. A thread that moves *itself* through v1's
//! `tasks` file (writing `0`) skips that lock on current kernels. So on v1
//! the helper joins its groups itself, as soon as `run()` hands it the spec
//! and the groups' names ([`Group::join_files`]); on v2, where a single
//! thread may not leave its process's domain group, `run()` still moves it
//! ([`Group::attach`]) before that handoff. `run()` makes the groups while
//! the freshly spawned helper is still starting, on another CPU. An
//! unprivileged caller can do this only in a group
//! delegated to it (e.g. a systemd user slice with `Delegate=yes`); where
//! nothing is possible, the build still runs, the rlimits still apply, and
//! [`Cgroup`] says plainly which limits were not enforced and why.
//!
//! A hermod killed with SIGKILL leaves its (by then empty) groups behind.
//! Their names carry the creator's [`Owner`] tag, so the next `run()` of
//! any hermod removes those of dead creators from the parent it uses
//! (`sweep_dead`), and never a live one's.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::owner::Owner;
use crate::spec::Limits;

const ROOT: &str = "/sys/fs/cgroup";

/// What the cgroup limits of one run amounted to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Cgroup {
    /// `Limits::memory` was enforced (by a cgroup of this `version`).
    pub memory: bool,
    /// `Limits::pids` was enforced.
    pub pids: bool,
    /// 1 or 2 when a group was created.
    pub version: Option<u8>,
    /// Why a requested limit is not enforced, as a sentence for the user.
    pub not_enforced: Option<String>,
    /// The kernel's OOM killer killed a process of the sandbox because of
    /// the memory limit.
    pub oom_killed: bool,
}

/// A group this run created; removed on drop.
pub(crate) struct Group {
    dirs: Vec<PathBuf>,
    memory_events: Option<(PathBuf, &'static str)>,
    pub(crate) report: Cgroup,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// `hermod-<owner tag>-<n>`: the tag lets a later run tell the group of a
/// killed hermod from a live one's ([`sweep_dead`]).
fn name() -> String {
    format!("hermod-{}-{}", Owner::me().tag(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Parents already swept by this process: once each is enough.
static SWEPT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Remove the empty groups that hermods killed before they could remove
/// their own left in `parent` (the first time this process uses it). Only
/// groups whose tag names a dead owner are touched; `rmdir` removes a group
/// only when no process is left in it, so even a wrong verdict could not
/// take a group from a running sandbox.
fn sweep_once(parent: &Path) {
    let mut swept = SWEPT.lock().unwrap_or_else(|p| p.into_inner());
    if swept.iter().any(|p| p == parent) {
        return;
    }
    swept.push(parent.to_owned());
    drop(swept);
    sweep_dead(parent);
}

/// [`sweep_once`]'s work; returns how many groups were removed.
pub(crate) fn sweep_dead(parent: &Path) -> usize {
    let Ok(entries) = fs::read_dir(parent) else { return 0 };
    let mut removed = 0;
    // Bounded: a cgroup directory holds few entries, but never walk forever.
    for entry in entries.flatten().take(10_000) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(tagged) = name.strip_prefix("hermod-") else { continue };
        if Owner::in_name(tagged).is_some_and(|owner| owner.is_dead()) && fs::remove_dir(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Creates the group(s) for `limits`. Never fails: what cannot be done is
/// recorded in the report.
pub(crate) fn create(limits: &Limits) -> Group {
    let mut group = Group { dirs: Vec::new(), memory_events: None, report: Cgroup::default() };
    if limits.memory.is_none() && limits.pids.is_none() {
        return group;
    }
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let v2 = match unified_root() {
        Some(root) => group.try_v2(&root, &own, limits),
        None => Err("the cgroup v2 hierarchy is not mounted".to_owned()),
    };
    if let Err(v2_reason) = v2 {
        // Undo a half-made v2 group before trying v1.
        group.remove();
        group.memory_events = None;
        if let Err(v1_reason) = group.try_v1(&own, limits) {
            group.remove();
            group.report = Cgroup {
                not_enforced: Some(format!(
                    "{} not enforced (cgroup v2: {v2_reason}; cgroup v1: {v1_reason}); the rlimits still apply",
                    match (limits.memory, limits.pids) {
                        (Some(_), Some(_)) => "the memory and pids limits are",
                        (Some(_), None) => "the memory limit is",
                        _ => "the pids limit is",
                    }
                )),
                ..Cgroup::default()
            };
        }
    }
    group
}

/// Where cgroup v2 is mounted: `/sys/fs/cgroup` itself, or `…/unified` on
/// a hybrid host.
fn unified_root() -> Option<PathBuf> {
    [ROOT.to_owned(), format!("{ROOT}/unified")].into_iter().map(PathBuf::from).find(|p| {
        nix::sys::statfs::statfs(p)
            .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
            .unwrap_or(false)
    })
}

/// The caller's group path in `/proc/self/cgroup` for a v1 controller, or
/// for v2 (`controller` empty, the `0::` line).
fn own_path(own: &str, controller: &str) -> Option<String> {
    own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if controller.is_empty() { list.is_empty() } else { list.split(',').any(|c| c == controller) };
        matches.then(|| path.to_owned())
    })
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("writing {value:?} to {}: {}", path.display(), short(&e)))
}

fn short(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_lowercase(),
        None => e.to_string(),
    }
}

fn limit_text(v: u64) -> String {
    v.to_string()
}

/// The few file operations [`enable_controllers`] needs: the real cgroup
/// filesystem, or a fake in the tests.
trait CgroupFs {
    fn read(&self, path: &Path) -> io::Result<String>;
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
    fn mkdir(&self, path: &Path) -> io::Result<()>;
}

struct RealFs;

impl CgroupFs for RealFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        fs::read_to_string(path)
    }
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        fs::write(path, value)
    }
    fn mkdir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }
}

/// The leaf group hermod moves itself into (see [`enable_controllers`]).
const SELF_LEAF: &str = "hermod-self";

/// Makes `controllers` usable by new children of `parent` (cgroup v2).
///
/// v2's *no internal processes* rule: a group that holds processes cannot
/// hand controllers to children (writing `cgroup.subtree_control` fails
/// with EBUSY), and `parent` is where hermod itself runs. So on EBUSY,
/// hermod moves itself (`pid`, all its threads) into a leaf child
/// `hermod-self`, as systemd does with a delegated service, and tries
/// again; the sandbox groups are then siblings of that leaf. If other
/// processes share `parent` (a shell in the same session scope), it still
/// fails, and the reason says so; hermod does not move what is not its own.
fn enable_controllers(fs: &dyn CgroupFs, parent: &Path, controllers: &[&str], pid: u32) -> Result<(), String> {
    let control = parent.join("cgroup.subtree_control");
    let mut moved = false;
    for c in controllers {
        if fs.read(&control).unwrap_or_default().split_whitespace().any(|e| e == *c) {
            continue;
        }
        loop {
            match fs.write(&control, &format!("+{c}")) {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && !moved => {
                    let leaf = parent.join(SELF_LEAF);
                    match fs.mkdir(&leaf) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(format!("creating {}: {}", leaf.display(), short(&e))),
                    }
                    fs.write(&leaf.join("cgroup.procs"), &pid.to_string())
                        .map_err(|e| format!("moving hermod into {}: {}", leaf.display(), short(&e)))?;
                    moved = true;
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    return Err(format!(
                        "the {c} controller cannot be enabled below {}: other processes share that group \
                         (cgroup v2 allows controllers only below groups without processes); \
                         run hermod in a group of its own, e.g. `systemd-run --scope -p Delegate=yes hermod …`",
                        parent.display()
                    ))
                }
                Err(e) => {
                    return Err(format!(
                        "the {c} controller is not available to {}: writing \"+{c}\" to {}: {}",
                        parent.display(),
                        control.display(),
                        short(&e)
                    ))
                }
            }
        }
    }
    Ok(())
}

impl Group {
    fn try_v2(&mut self, root: &Path, own: &str, limits: &Limits) -> Result<(), String> {
        let parent = root.join(own_path(own, "").ok_or("no v2 entry in /proc/self/cgroup")?.trim_start_matches('/'));
        let wanted: Vec<&str> =
            [("memory", limits.memory), ("pids", limits.pids)].into_iter().filter_map(|(c, v)| v.map(|_| c)).collect();
        enable_controllers(&RealFs, &parent, &wanted, std::process::id())?;
        sweep_once(&parent);
        let dir = parent.join(name());
        crate::live::make_group(&dir).map_err(|e| format!("creating {}: {}", dir.display(), short(&e)))?;
        self.dirs.push(dir.clone());
        if let Some(m) = limits.memory {
            write(&dir.join("memory.max"), &limit_text(m))?;
            // Without this the limit only moves the excess to swap.
            let _ = fs::write(dir.join("memory.swap.max"), "0");
            self.memory_events = Some((dir.join("memory.events"), "oom_kill"));
            self.report.memory = true;
        }
        if let Some(p) = limits.pids {
            write(&dir.join("pids.max"), &limit_text(p))?;
            self.report.pids = true;
        }
        self.report.version = Some(2);
        Ok(())
    }

    fn try_v1(&mut self, own: &str, limits: &Limits) -> Result<(), String> {
        self.report = Cgroup::default();
        let mut reasons = Vec::new();
        if let Some(m) = limits.memory {
            match self.v1_group(own, "memory") {
                Ok(dir) => {
                    write(&dir.join("memory.limit_in_bytes"), &limit_text(m))?;
                    // Present only with swap accounting; best effort.
                    let _ = fs::write(dir.join("memory.memsw.limit_in_bytes"), limit_text(m));
                    self.memory_events = Some((dir.join("memory.oom_control"), "oom_kill"));
                    self.report.memory = true;
                }
                Err(e) => reasons.push(e),
            }
        }
        if let Some(p) = limits.pids {
            match self.v1_group(own, "pids") {
                Ok(dir) => {
                    write(&dir.join("pids.max"), &limit_text(p))?;
                    self.report.pids = true;
                }
                Err(e) => reasons.push(e),
            }
        }
        if self.report.memory || self.report.pids {
            self.report.version = Some(1);
            if !reasons.is_empty() {
                self.report.not_enforced = Some(format!("partly enforced: {}", reasons.join("; ")));
            }
            return Ok(());
        }
        Err(reasons.join("; "))
    }

    fn v1_group(&mut self, own: &str, controller: &str) -> Result<PathBuf, String> {
        let mount = Path::new(ROOT).join(controller);
        let is_cgroup = nix::sys::statfs::statfs(&mount)
            .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP_SUPER_MAGIC)
            .unwrap_or(false);
        if !is_cgroup {
            return Err(format!("no {controller} hierarchy at {}", mount.display()));
        }
        let path = own_path(own, controller).ok_or(format!("no {controller} entry in /proc/self/cgroup"))?;
        let parent = mount.join(path.trim_start_matches('/'));
        sweep_once(&parent);
        let dir = parent.join(name());
        crate::live::make_group(&dir).map_err(|e| format!("creating {}: {}", dir.display(), short(&e)))?;
        self.dirs.push(dir.clone());
        Ok(dir)
    }

    /// The v1 `tasks` files the helper writes `0` to, joining its groups
    /// itself before it forks pid 1 (see the module doc: no global lock).
    /// Empty on v2 and without a group.
    pub(crate) fn join_files(&self) -> Vec<PathBuf> {
        match self.report.version {
            Some(1) => self.dirs.iter().map(|d| d.join("tasks")).collect(),
            _ => Vec::new(),
        }
    }

    /// On v2, puts `pid` (the helper, before it starts anything) into the
    /// group; on v1 the helper joins by itself ([`Group::join_files`]).
    pub(crate) fn attach(&mut self, pid: u32) -> Result<(), String> {
        if self.report.version != Some(2) {
            return Ok(());
        }
        for dir in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// After the run: did the memory limit kill anything?
    pub(crate) fn finish(&mut self) {
        if let Some((file, key)) = &self.memory_events {
            let text = fs::read_to_string(file).unwrap_or_default();
            self.report.oom_killed = text
                .lines()
                .filter_map(|l| l.split_once(' '))
                .any(|(k, v)| k == *key && v.trim().parse::<u64>().unwrap_or(0) > 0);
        }
    }

    /// Removes the groups. A group can be removed only once empty; the last
    /// processes of a killed pid namespace may take a moment to be reaped.
    fn remove(&mut self) {
        for dir in self.dirs.drain(..).rev() {
            for _ in 0..100 {
                match fs::remove_dir(&dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => std::thread::sleep(Duration::from_millis(5)),
                    _ => break,
                }
            }
            crate::live::remove_group(&dir);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "9:name=systemd:/\n8:pids:/a\n4:memory:/process_api/x\n2:cpu,cpuacct:/c\n0::/user.slice\n";

    #[test]
    fn own_group_paths_come_from_proc_self_cgroup() {
        assert_eq!(own_path(HYBRID, "memory").as_deref(), Some("/process_api/x"));
        assert_eq!(own_path(HYBRID, "pids").as_deref(), Some("/a"));
        assert_eq!(own_path(HYBRID, "cpuacct").as_deref(), Some("/c"));
        assert_eq!(own_path(HYBRID, "").as_deref(), Some("/user.slice"));
        assert_eq!(own_path("0::/\n", "memory"), None);
    }

    #[test]
    fn no_limits_means_no_group_and_nothing_to_report() {
        let g = create(&Limits::inherit());
        assert!(g.dirs.is_empty());
        assert_eq!(g.report, Cgroup::default());
    }
    /// A cgroup v2 tree in memory: `cgroup.procs` files hold pids, and
    /// enabling a controller in a group that holds processes fails with
    /// EBUSY, as the kernel's no-internal-processes rule says.
    #[derive(Default)]
    struct FakeFs {
        files: std::cell::RefCell<std::collections::BTreeMap<PathBuf, String>>,
        calls: std::cell::RefCell<Vec<String>>,
    }

    impl FakeFs {
        fn with(files: &[(&str, &str)]) -> FakeFs {
            let fake = FakeFs::default();
            for (p, v) in files {
                fake.files.borrow_mut().insert(PathBuf::from(p), v.to_string());
            }
            fake
        }
        fn get(&self, p: &str) -> String {
            self.files.borrow().get(Path::new(p)).cloned().unwrap_or_default()
        }
    }

    impl CgroupFs for FakeFs {
        fn read(&self, path: &Path) -> io::Result<String> {
            self.files.borrow().get(path).cloned().ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
        }
        fn write(&self, path: &Path, value: &str) -> io::Result<()> {
            self.calls.borrow_mut().push(format!("write {} {value}", path.display()));
            let dir = path.parent().unwrap().to_owned();
            let mut files = self.files.borrow_mut();
            match path.file_name().unwrap().to_str().unwrap() {
                "cgroup.subtree_control" => {
                    if !files.get(&dir.join("cgroup.procs")).is_none_or(|p| p.trim().is_empty()) {
                        return Err(io::Error::from_raw_os_error(libc::EBUSY));
                    }
                    let entry = files.entry(path.to_owned()).or_default();
                    entry.push_str(value.trim_start_matches('+'));
                    entry.push(' ');
                }
                "cgroup.procs" => {
                    for (p, procs) in files.iter_mut() {
                        if p.ends_with("cgroup.procs") {
                            *procs =
                                procs.split_whitespace().filter(|p| *p != value).map(|p| format!("{p}\n")).collect();
                        }
                    }
                    files.entry(path.to_owned()).or_default().push_str(&format!("{value}\n"));
                }
                _ => {
                    files.insert(path.to_owned(), value.to_owned());
                }
            }
            Ok(())
        }
        fn mkdir(&self, path: &Path) -> io::Result<()> {
            self.calls.borrow_mut().push(format!("mkdir {}", path.display()));
            let procs = path.join("cgroup.procs");
            let mut files = self.files.borrow_mut();
            if files.contains_key(&procs) {
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            files.insert(procs, String::new());
            Ok(())
        }
    }

    #[test]
    fn v2_hermod_moves_itself_into_a_leaf_before_enabling_controllers() {
        let fake = FakeFs::with(&[("/cg/svc/cgroup.procs", "42\n"), ("/cg/svc/cgroup.subtree_control", "")]);
        enable_controllers(&fake, Path::new("/cg/svc"), &["memory", "pids"], 42).unwrap();
        assert_eq!(
            *fake.calls.borrow(),
            [
                "write /cg/svc/cgroup.subtree_control +memory",
                "mkdir /cg/svc/hermod-self",
                "write /cg/svc/hermod-self/cgroup.procs 42",
                "write /cg/svc/cgroup.subtree_control +memory",
                "write /cg/svc/cgroup.subtree_control +pids",
            ]
        );
        assert_eq!(fake.get("/cg/svc/cgroup.procs").trim(), "");
        assert_eq!(fake.get("/cg/svc/hermod-self/cgroup.procs").trim(), "42");
        assert_eq!(fake.get("/cg/svc/cgroup.subtree_control").split_whitespace().count(), 2);
    }

    #[test]
    fn v2_controllers_already_enabled_or_a_leaf_already_there() {
        let fake = FakeFs::with(&[("/cg/a/cgroup.procs", ""), ("/cg/a/cgroup.subtree_control", "memory pids")]);
        enable_controllers(&fake, Path::new("/cg/a"), &["memory", "pids"], 7).unwrap();
        assert!(fake.calls.borrow().is_empty(), "{:?}", fake.calls.borrow());
        // A second hermod in the same group: the leaf exists, it joins it.
        let fake = FakeFs::with(&[
            ("/cg/b/cgroup.procs", "8\n"),
            ("/cg/b/cgroup.subtree_control", ""),
            ("/cg/b/hermod-self/cgroup.procs", "7\n"),
        ]);
        enable_controllers(&fake, Path::new("/cg/b"), &["pids"], 8).unwrap();
        assert_eq!(fake.get("/cg/b/hermod-self/cgroup.procs").split_whitespace().collect::<Vec<_>>(), ["7", "8"]);
    }

    #[test]
    fn v2_other_processes_in_the_group_are_named_not_moved() {
        let fake = FakeFs::with(&[("/cg/s/cgroup.procs", "42\n99\n"), ("/cg/s/cgroup.subtree_control", "")]);
        let err = enable_controllers(&fake, Path::new("/cg/s"), &["memory"], 42).unwrap_err();
        assert!(err.contains("other processes share that group"), "{err}");
        // 99 is not hermod's to move.
        assert_eq!(fake.get("/cg/s/cgroup.procs").trim(), "99");
    }

    #[test]
    fn the_sweep_removes_groups_of_dead_owners_only() {
        let parent = tempfile::tempdir().unwrap();
        let me = Owner::me();
        let dead = Owner { start: me.start + 1, ..me };
        let other_ns = Owner { pid: 1, start: 1, pidns: me.pidns + 1 };
        for owner in [me, dead, other_ns] {
            fs::create_dir(parent.path().join(format!("hermod-{}-0", owner.tag()))).unwrap();
        }
        for name in ["hermod-self", "hermod-1-0", "other"] {
            fs::create_dir(parent.path().join(name)).unwrap();
        }
        assert_eq!(sweep_dead(parent.path()), 1);
        let mut left: Vec<String> =
            fs::read_dir(parent.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        left.sort();
        let mut want = vec![
            format!("hermod-{}-0", me.tag()),
            format!("hermod-{}-0", other_ns.tag()),
            "hermod-1-0".into(),
            "hermod-self".into(),
            "other".into(),
        ];
        want.sort();
        assert_eq!(left, want, "only the dead owner's group went");
    }
}
