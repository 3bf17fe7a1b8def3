//! What to run and in which world: the [`Spec`].
//!
//! A `Spec` is plain data. `run()` validates it on the host (so a typo in a
//! path is reported as "rootfs /x does not exist" rather than as a mount
//! failure deep inside the namespaces), resolves host paths to their canonical
//! form, and hands it to the sandbox init as JSON.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One extra bind mount: a host path made visible inside the sandbox.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    /// Host path (file or directory).
    pub source: PathBuf,
    /// Absolute path inside the sandbox. Missing directories are created in
    /// the sandbox's own tmpfs root; it may not pass through a symlink.
    pub target: PathBuf,
    /// Read-write if true; otherwise remounted read-only.
    pub writable: bool,
}

/// Everything the sandbox needs to run one command.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Host directory that becomes `/` inside, read-only.
    pub rootfs: PathBuf,
    /// Extra bind mounts, e.g. host `work/src` -> `/build/src` writable.
    pub binds: Vec<Bind>,
    /// tmpfs mounts inside (e.g. `/tmp`): writable, nosuid, nodev, each
    /// with its own size limit.
    pub tmpfs: Vec<Tmpfs>,
    /// Directories of the rootfs below its top level (e.g. `/usr/src`) that
    /// are rebuilt as the root itself is: a tmpfs holding read-only binds of
    /// their entries (symlinks recreated), sealed read-only once the binds
    /// and tmpfs mounts are in place. The rootfs is read-only, so a mount
    /// point it lacks can only be made there (a writable tmpfs at
    /// `/usr/src/<module>-<version>`). Absent from JSON: none.
    #[serde(default)]
    pub shadowed: Vec<PathBuf>,
    /// `argv[0]` is an absolute path inside the rootfs (no `$PATH` search).
    pub argv: Vec<String>,
    /// The complete environment: nothing is inherited from the host.
    pub env: Vec<(String, String)>,
    /// Working directory inside.
    pub cwd: PathBuf,
    pub hostname: String,
    /// User id inside the sandbox the command runs as.
    pub uid: u32,
    /// Group id inside the sandbox the command runs as.
    pub gid: u32,
    /// Wall-clock limit; on expiry the whole pid namespace is killed.
    pub timeout: Option<Duration>,
    /// Host file the command's stdout and stderr are appended to (created if
    /// missing). `None` inherits the caller's stdout/stderr.
    pub log: Option<PathBuf>,
    /// Resource limits set on the command just before `execve`. Absent from
    /// JSON: [`Limits::default`].
    #[serde(default)]
    pub limits: Limits,
    /// Install the seccomp deny-list (see `init/seccomp.rs`) as the last step
    /// before `execve`. Absent from JSON: `true`. Only x86_64 has a filter;
    /// elsewhere `true` is a setup error.
    #[serde(default = "yes")]
    pub seccomp: bool,
    /// When the caller is root: the unprivileged host uid/gid the sandbox
    /// switches to *before* creating its namespaces, so the command is never
    /// host root. (Mapped to host root, a capability-less command could still
    /// write root-owned host interfaces such as `/proc/sys` or
    /// `/proc/sysrq-trigger`, whose checks compare against the global root uid.)
    /// Writable binds must then be writable by these ids. Ignored for
    /// unprivileged callers, who can only map themselves. Absent from JSON:
    /// nobody (65534:65534).
    #[serde(default = "nobody")]
    pub host_ids: Option<(u32, u32)>,
    /// Where the command's results go, if anywhere. Absent from JSON: none.
    #[serde(default)]
    pub outputs: Option<Outputs>,
    /// Files that exist only inside this sandbox (a signing key): see
    /// [`Secret`]. Absent from JSON: none.
    #[serde(default)]
    pub secrets: Vec<Secret>,
}

/// A file that must never exist on any host file system: its bytes travel
/// inside the spec, over the pipe `run()` writes the spec to (a pipe has no
/// name any other process could open), and pid 1 writes them, mode 0400,
/// owned by the command's uid, into a small tmpfs of its own mounted on
/// `path`'s parent directory (mode 0700) in the sandbox's private mount
/// namespace. The file disappears with the namespace.
///
/// Who else could still reach it: root, and processes of the sandbox's host
/// uid (through `/proc/<pid>/root` or ptrace). A root caller therefore gives
/// a sandbox that holds secrets host ids of its own ([`private_host_ids`]),
/// not the `nobody` that other services share.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct Secret {
    /// Absolute path inside the sandbox; its parent (not `/`) becomes the
    /// private tmpfs, hiding whatever was there.
    pub path: PathBuf,
    pub contents: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    /// Never the contents: a spec may be printed in a log or an error.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret {{ path: {:?}, contents: <{} bytes> }}", self.path, self.contents.len())
    }
}

/// Host uid/gid for a root caller's sandbox that holds a [`Secret`]: a
/// range no distribution or systemd allocates (systemd's container ranges
/// end below 0x70000000, its dynamic users are below 65536), offset by this
/// process's pid (< 2^22), so no other service, and no other hermod, shares
/// it.
pub fn private_host_ids() -> (u32, u32) {
    let id = PRIVATE_IDS_BASE + std::process::id();
    (id, id)
}

/// Start of the ids [`private_host_ids`] hands out.
pub const PRIVATE_IDS_BASE: u32 = 0x7e00_0000;

/// A tmpfs mounted inside the sandbox.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Tmpfs {
    /// Absolute path inside the sandbox.
    pub path: PathBuf,
    /// Size limit in bytes (the kernel's `size=` option, rounded up to
    /// whole pages); writes beyond it fail with `ENOSPC`. A tmpfs lives in
    /// memory (and swap), so this also bounds the memory a build can pin by
    /// writing files. `None` is the kernel default, half of RAM.
    pub size: Option<u64>,
}

impl Tmpfs {
    /// A tmpfs at `path` of at most `size` bytes.
    pub fn new(path: impl Into<PathBuf>, size: Option<u64>) -> Tmpfs {
        Tmpfs { path: path.into(), size }
    }
}

/// Results copied out of the sandbox after the command has exited.
///
/// The command never gets a writable view of any host directory: it writes
/// its results into `inside` (typically on a size-limited tmpfs), and when
/// it has exited, pid 1 copies the regular files found directly in `inside`
/// into the host directory `host` (which must exist and be writable by the
/// sandbox's host ids). Symlinks, devices and subdirectories are skipped;
/// a file that would push the total past `max_bytes` fails the copy. So the
/// most a hostile build can leave on the host disk is `max_bytes` (plus
/// the log, bounded by `Limits::fsize`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Outputs {
    pub inside: PathBuf,
    pub host: PathBuf,
    pub max_bytes: u64,
}

fn yes() -> bool {
    true
}

/// The host ids a root caller's sandbox runs as by default.
pub const NOBODY: (u32, u32) = (65534, 65534);

fn nobody() -> Option<(u32, u32)> {
    Some(NOBODY)
}

/// `setrlimit(2)` values for the command, soft and hard limit alike (so the
/// command cannot raise them again). `None` leaves the inherited limit. A
/// value above the caller's own hard limit is lowered to it: an unprivileged
/// caller cannot raise a hard limit, not even from inside its user namespace.
///
/// The defaults suit a kernel module build: generous, but a runaway `make`
/// or a fork bomb stops.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(default)]
pub struct Limits {
    /// `RLIMIT_NPROC`, default 4096. Careful: the kernel counts processes
    /// per *real uid* and checks the count at every level of the user
    /// namespace tree, so the sandbox's processes are added to everything
    /// else the caller's host uid runs (other builds, its login session).
    /// A caller running as host root (uid 0 mapped in) is exempt from the
    /// check altogether.
    pub nproc: Option<u64>,
    /// `RLIMIT_FSIZE` in bytes: the largest file the command may write,
    /// default 4 GiB. Writing past it raises `SIGXFSZ` (which kills), or
    /// fails with `EFBIG` if the signal is ignored.
    pub fsize: Option<u64>,
    /// `RLIMIT_CORE` in bytes, default 0: no core dumps.
    pub core: Option<u64>,
    /// `RLIMIT_CPU` in seconds of CPU time *per process*, default 3600
    /// (`SIGXCPU`, then `SIGKILL` at the hard limit). Use `Spec::timeout`
    /// for the build as a whole.
    pub cpu: Option<u64>,
    /// `RLIMIT_NOFILE`, default 4096 open descriptors per process.
    pub nofile: Option<u64>,
    /// Memory of the whole sandbox (every process, page cache and tmpfs
    /// pages it causes included) in bytes, default 8 GiB: a cgroup limit
    /// (`memory.max` in cgroup v2, `memory.limit_in_bytes` in v1). Enforced
    /// only where the host lets the caller create such a cgroup; see
    /// [`crate::Outcome::cgroup`].
    pub memory: Option<u64>,
    /// Processes and threads of the whole sandbox at once, default 2048: a
    /// cgroup limit (`pids.max`) that, unlike `nproc`, counts only the
    /// sandbox's own. Enforced like `memory`.
    pub pids: Option<u64>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            nproc: Some(4096),
            fsize: Some(4 << 30),
            core: Some(0),
            cpu: Some(3600),
            nofile: Some(4096),
            memory: Some(8 << 30),
            pids: Some(2048),
        }
    }
}

impl Limits {
    /// Leaves every limit as inherited.
    pub fn inherit() -> Limits {
        Limits { nproc: None, fsize: None, core: None, cpu: None, nofile: None, memory: None, pids: None }
    }
}

impl Spec {
    /// A spec with sane defaults: cwd `/`, hostname `hermod`, uid/gid 1000,
    /// a 1 GiB tmpfs on `/tmp`, `PATH` as the only variable, no timeout, no
    /// log, no outputs, [`Limits::default`] and the seccomp filter on.
    pub fn new(rootfs: impl Into<PathBuf>, argv: Vec<String>) -> Spec {
        Spec {
            rootfs: rootfs.into(),
            binds: Vec::new(),
            tmpfs: vec![Tmpfs::new("/tmp", Some(1 << 30))],
            shadowed: Vec::new(),
            argv,
            env: vec![("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())],
            cwd: PathBuf::from("/"),
            hostname: "hermod".into(),
            uid: 1000,
            gid: 1000,
            timeout: None,
            log: None,
            limits: Limits::default(),
            seccomp: true,
            host_ids: Some(NOBODY),
            outputs: None,
            secrets: Vec::new(),
        }
    }

    /// Checks that need no system call. Returns a sentence for the user.
    pub(crate) fn check_shape(&self) -> Result<(), String> {
        let Some(argv0) = self.argv.first() else {
            return Err("argv is empty".into());
        };
        if !argv0.starts_with('/') {
            return Err(format!("argv[0] {argv0:?} must be an absolute path inside the rootfs"));
        }
        if let Some(arg) = self.argv.iter().find(|a| a.contains('\0')) {
            return Err(format!("argument {arg:?} contains a NUL byte"));
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(format!("environment variable {k:?} is malformed"));
            }
        }
        inside_path("cwd", &self.cwd)?;
        for bind in &self.binds {
            inside_path("bind target", &bind.target)?;
            if bind.target == Path::new("/") {
                return Err("a bind mount cannot replace / (that is what rootfs is for)".into());
            }
        }
        for t in &self.tmpfs {
            inside_path("tmpfs", &t.path)?;
            if t.path == Path::new("/") {
                return Err("a tmpfs cannot replace /".into());
            }
            if t.size == Some(0) {
                return Err(format!("tmpfs {} has size 0", t.path.display()));
            }
        }
        for dir in &self.shadowed {
            inside_path("shadowed directory", dir)?;
            if dir.components().count() < 3 {
                return Err(format!(
                    "shadowed directory {} must lie below a top-level directory (those are made so already)",
                    dir.display()
                ));
            }
            if self.shadowed.iter().any(|other| other != dir && dir.starts_with(other)) {
                return Err(format!("shadowed directory {} lies in another one", dir.display()));
            }
        }
        if let Some(out) = &self.outputs {
            inside_path("outputs directory", &out.inside)?;
            if !out.host.is_absolute() {
                return Err(format!("host outputs directory {} must be an absolute path", out.host.display()));
            }
        }
        for secret in &self.secrets {
            inside_path("secret", &secret.path)?;
            if secret.dir().is_none() {
                return Err(format!("secret {} needs a directory of its own, not /", secret.path.display()));
            }
            if secret.contents.len() > MAX_SECRET_BYTES {
                return Err(format!("secret {} is larger than {MAX_SECRET_BYTES} bytes", secret.path.display()));
            }
        }
        if self.hostname.is_empty() || self.hostname.len() > 64 {
            return Err(format!("hostname {:?} must be 1 to 64 bytes", self.hostname));
        }
        Ok(())
    }
}

/// The most a [`Secret`] may hold (a key, not a data set: it lives in memory).
pub const MAX_SECRET_BYTES: usize = 1 << 20;

impl Secret {
    /// The directory the private tmpfs is mounted on; `None` for `/x`.
    pub(crate) fn dir(&self) -> Option<&Path> {
        self.path.parent().filter(|p| *p != Path::new("/") && self.path.file_name().is_some())
    }
}

/// Paths inside the sandbox are absolute and plain: no `..`, so that joining
/// them under the new root can never climb out of it.
fn inside_path(what: &str, path: &Path) -> Result<(), String> {
    if !path.is_absolute() {
        return Err(format!("{what} {} must be an absolute path", path.display()));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("{what} {} must not contain '..'", path.display()));
    }
    Ok(())
}

/// `inside` (absolute) re-rooted under `root`: `("/newroot", "/build/src")`
/// gives `/newroot/build/src`.
pub(crate) fn under(root: &Path, inside: &Path) -> PathBuf {
    let mut out = root.to_path_buf();
    out.extend(inside.components().filter(|c| matches!(c, Component::Normal(_))));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec::new("/srv/rootfs", vec!["/bin/sh".into(), "-c".into(), "true".into()])
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = spec();
        assert_eq!(s.cwd, Path::new("/"));
        assert_eq!(s.hostname, "hermod");
        assert_eq!((s.uid, s.gid), (1000, 1000));
        assert_eq!(s.tmpfs, vec![Tmpfs::new("/tmp", Some(1 << 30))]);
        assert!(s.outputs.is_none());
        assert_eq!(s.env, vec![("PATH".to_string(), "/usr/sbin:/usr/bin:/sbin:/bin".to_string())]);
        assert!(s.timeout.is_none() && s.log.is_none() && s.binds.is_empty());
        assert!(s.seccomp);
        assert_eq!(
            s.limits,
            Limits {
                nproc: Some(4096),
                fsize: Some(4 * 1024 * 1024 * 1024),
                core: Some(0),
                cpu: Some(3600),
                nofile: Some(4096),
                memory: Some(8 << 30),
                pids: Some(2048),
            }
        );
    }

    #[test]
    fn json_without_new_fields_gets_the_defaults() {
        let mut v = serde_json::to_value(spec()).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("limits");
        o.remove("seccomp");
        o.remove("outputs");
        o.remove("secrets");
        let back: Spec = serde_json::from_value(v).unwrap();
        assert_eq!(back, spec());
        // A partial limits object keeps the other defaults.
        let l: Limits = serde_json::from_str(r#"{"nofile": 64, "cpu": null}"#).unwrap();
        assert_eq!(l, Limits { nofile: Some(64), cpu: None, ..Limits::default() });
    }

    #[test]
    fn json_round_trip() {
        let mut s = spec();
        s.binds.push(Bind { source: "/h/src".into(), target: "/build/src".into(), writable: true });
        s.timeout = Some(Duration::from_millis(1500));
        s.log = Some("/h/log".into());
        s.limits.nproc = None;
        s.seccomp = false;
        let json = serde_json::to_string(&s).unwrap();
        let back: Spec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn shape_errors_name_the_field() {
        let mut s = spec();
        s.argv.clear();
        assert_eq!(s.check_shape().unwrap_err(), "argv is empty");
        let mut s = spec();
        s.argv[0] = "sh".into();
        assert!(s.check_shape().unwrap_err().contains("absolute"));
        let mut s = spec();
        s.cwd = "build".into();
        assert!(s.check_shape().unwrap_err().starts_with("cwd build"));
        let mut s = spec();
        s.binds.push(Bind { source: "/a".into(), target: "/build/../etc".into(), writable: false });
        assert!(s.check_shape().unwrap_err().contains(".."));
        let mut s = spec();
        s.env.push(("A=B".into(), "x".into()));
        assert!(s.check_shape().is_err());
        assert!(spec().check_shape().is_ok());
        let mut s = spec();
        s.secrets.push(Secret { path: "/key".into(), contents: b"k".to_vec() });
        assert!(s.check_shape().unwrap_err().contains("directory of its own"));
        s.secrets[0].path = "/run/../key".into();
        assert!(s.check_shape().unwrap_err().contains(".."));
        s.secrets[0].path = "/run/secret/key".into();
        assert!(s.check_shape().is_ok());
    }

    #[test]
    fn a_secret_never_prints_its_contents() {
        let secret = Secret { path: "/run/secret/key".into(), contents: b"PRIVATE KEY bytes".to_vec() };
        let mut s = spec();
        s.secrets.push(secret);
        let shown = format!("{s:?}");
        assert!(!shown.contains("PRIVATE") && shown.contains("<17 bytes>"), "{shown}");
    }

    #[test]
    fn private_host_ids_are_nobodys_and_no_one_elses() {
        let (uid, gid) = private_host_ids();
        assert_eq!(uid, gid);
        assert!(uid > PRIVATE_IDS_BASE && uid < PRIVATE_IDS_BASE + (1 << 22) && uid != NOBODY.0);
    }

    #[test]
    fn under_reroots_absolute_paths() {
        assert_eq!(under(Path::new("/newroot"), Path::new("/build/src")), Path::new("/newroot/build/src"));
        assert_eq!(under(Path::new("/oldroot"), Path::new("/")), Path::new("/oldroot"));
        assert_eq!(under(Path::new("/n"), Path::new("/a/./b/")), Path::new("/n/a/b"));
    }
}
