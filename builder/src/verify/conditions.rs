//! The conditions each build of `hermod verify` runs under, and how they are
//! put in place.
//!
//! The first build runs much as the caller would run it: the caller's
//! environment (with a plain C locale and UTC), umask 022, the caller's uid
//! and host name, one CPU and one make job, the source copied in name order
//! under the store's staging directory. The second changes each of those: a
//! replaced environment (other HOME, USER, PATH order, locale, TZ, a
//! SOURCE_DATE_EPOCH and KBUILD_* values of its own, a random variable),
//! umask 077, another uid (a user namespace), another host name (a UTS
//! namespace), every CPU and one more make job than CPUs, the source copied in reverse order
//! into a deeper directory elsewhere (`/tmp`), and a later wall-clock second.
//! The process attributes are set by `hermod_sandbox::Variation` in the child.
//!
//! One thing is shared on purpose: the store, which holds the build root (an
//! input, like the source); each build stages in a fresh directory of it, and
//! neither reads nor writes its cache of built packages.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hermod_sandbox::Variation;

use super::VerifyError;

/// In which order a source tree's entries are created when it is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOrder {
    ByName,
    Reversed,
    /// Not copied: the caller's own tree (`--against`'s reference side).
    AsGiven,
}

/// One build's conditions.
#[derive(Debug, Clone)]
pub struct Side {
    /// `first`, `second` or `rebuild`.
    pub role: String,
    /// Its own directory: source copy, out, HOME, TMPDIR, working directory.
    pub dir: PathBuf,
    pub source: PathBuf,
    pub out: PathBuf,
    pub order: FileOrder,
    /// `false`: the caller's environment with `env` on top; `true`: only `env`.
    pub replace_env: bool,
    pub env: Vec<(String, String)>,
    pub umask: u32,
    pub hostname: Option<String>,
    pub ids: Option<(u32, u32)>,
    /// Restrict to this many CPUs.
    pub cpus: Option<usize>,
    pub jobs: usize,
    /// Why a wanted variation was dropped (it could not be applied here).
    pub dropped: Vec<(String, String)>,
}

fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| io::Read::read_exact(&mut f, &mut buf)).is_err() {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        buf = nanos.to_le_bytes()[..bytes.min(16)].to_vec();
    }
    hex::encode(buf)
}

/// A uid (and gid) other than the caller's, for the user namespace.
fn other_id(mine: u32) -> u32 {
    if mine == 1000 {
        1001
    } else {
        1000
    }
}

impl Side {
    /// The first build's conditions, in `dir`, for a source directory named `name`.
    pub fn first(dir: &Path, name: &str) -> Side {
        Side {
            role: "first".into(),
            dir: dir.to_owned(),
            source: dir.join("src").join(name),
            out: dir.join("out"),
            order: FileOrder::ByName,
            replace_env: false,
            env: vec![
                ("LANG".into(), "C.UTF-8".into()),
                ("LC_ALL".into(), "C.UTF-8".into()),
                ("TZ".into(), "UTC".into()),
                ("HOME".into(), dir.join("home").display().to_string()),
                ("TMPDIR".into(), dir.join("tmp").display().to_string()),
            ],
            umask: 0o022,
            hostname: None,
            ids: None,
            cpus: Some(1),
            jobs: 1,
            dropped: Vec::new(),
        }
    }

    /// The second build's (or `--against`'s rebuild's) conditions: every one
    /// other than the first's.
    pub fn second(role: &str, dir: &Path, name: &str) -> Side {
        let home = dir.join("home of another user");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let me = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        // More jobs than CPUs: unlike the first build (1 and 1) and unlike
        // `hermod build`'s default (as many as CPUs).
        let jobs = cpu_count() + 1;
        Side {
            role: role.into(),
            dir: dir.to_owned(),
            source: dir.join("a/much/deeper/path/to the source").join(name),
            out: dir.join("packages out"),
            order: FileOrder::Reversed,
            replace_env: true,
            env: vec![
                ("PATH".into(), "/bin:/sbin:/usr/bin:/usr/sbin:/usr/local/bin".into()),
                ("HOME".into(), home.display().to_string()),
                ("TMPDIR".into(), dir.join("tmp").display().to_string()),
                ("USER".into(), "verifier".into()),
                ("LOGNAME".into(), "verifier".into()),
                ("SHELL".into(), "/bin/sh".into()),
                ("LANG".into(), "de_DE.UTF-8".into()),
                ("LC_ALL".into(), "fr_FR.UTF-8".into()),
                ("LANGUAGE".into(), "fr:de".into()),
                ("TZ".into(), "Pacific/Kiritimati".into()),
                ("SOURCE_DATE_EPOCH".into(), now.to_string()),
                ("KBUILD_BUILD_TIMESTAMP".into(), format!("@{now}")),
                ("KBUILD_BUILD_USER".into(), "verifier".into()),
                ("KBUILD_BUILD_HOST".into(), "elsewhere".into()),
                ("HERMOD_VERIFY_NOISE".into(), random_hex(8)),
            ],
            umask: 0o077,
            hostname: Some(format!("hermod-verify-{}", random_hex(4))),
            ids: Some((other_id(me), other_id(gid))),
            cpus: None,
            jobs,
            dropped: Vec::new(),
        }
    }

    /// The caller's own conditions, as `hermod build` would run (the
    /// reference of `--against`, whose own build conditions are not known).
    pub fn caller(source: &Path) -> Side {
        let cwd = std::env::current_dir().unwrap_or_default();
        let mask = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        nix::sys::stat::umask(mask);
        Side {
            role: "caller".into(),
            dir: cwd.clone(),
            source: source.to_owned(),
            out: cwd.join("out"),
            order: FileOrder::AsGiven,
            replace_env: false,
            env: Vec::new(),
            umask: mask.bits(),
            hostname: None,
            ids: None,
            cpus: None,
            jobs: cpu_count(),
            dropped: Vec::new(),
        }
    }

    fn env_value(&self, name: &str) -> String {
        match self.env.iter().find(|(k, _)| k == name) {
            Some((_, v)) => v.clone(),
            None if self.replace_env => "(unset)".into(),
            None => std::env::var(name).unwrap_or_else(|_| "(unset)".into()),
        }
    }

    /// The conditions by variation name, as the report shows them.
    pub fn describe(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("host paths".into(), format!("source {}, out {}", self.source.display(), self.out.display()));
        m.insert("umask".into(), format!("{:04o}", self.umask));
        let uid = nix::unistd::geteuid().as_raw();
        m.insert(
            "uid".into(),
            match self.ids {
                Some((u, g)) => format!("{u}:{g} (a user namespace of the caller's {uid})"),
                None => format!("{uid}:{} (the caller's)", nix::unistd::getegid().as_raw()),
            },
        );
        let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
        m.insert(
            "host name".into(),
            match &self.hostname {
                Some(h) => format!("{h} (own UTS namespace)"),
                None => format!("{host} (the host's)"),
            },
        );
        let names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        m.insert(
            "environment".into(),
            if self.replace_env {
                format!("replaced: only {}", names.join(" "))
            } else if names.is_empty() {
                format!("the caller's ({} variables)", std::env::vars_os().count())
            } else {
                format!("the caller's ({} variables), with {} set", std::env::vars_os().count(), names.join(" "))
            },
        );
        m.insert("locale".into(), format!("LANG={} LC_ALL={}", self.env_value("LANG"), self.env_value("LC_ALL")));
        m.insert("TZ".into(), self.env_value("TZ"));
        let cpus = self.cpus.unwrap_or_else(cpu_count);
        m.insert("CPUs and jobs".into(), format!("{cpus} CPU(s), --jobs {}", self.jobs));
        m.insert(
            "file creation order".into(),
            match self.order {
                FileOrder::ByName => "by name".into(),
                FileOrder::Reversed => "reverse name order".into(),
                FileOrder::AsGiven => "as on disk".into(),
            },
        );
        m
    }

    /// Make the side's directories and copy the source tree into it.
    pub fn prepare(&self, from: &Path) -> Result<(), VerifyError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| VerifyError::Io { path, source }
        };
        for dir in [self.dir.join("tmp"), PathBuf::from(self.env_value("HOME"))] {
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        copy_tree(from, &self.source, self.order).map_err(io_err(&self.source))
    }

    /// Start `exe args` under these conditions; returns the child, when it
    /// started (seconds since the epoch) and a clock for its duration.
    pub fn spawn(&mut self, exe: &Path, args: &[OsString]) -> Result<Running, VerifyError> {
        loop {
            let mut cmd = Command::new(exe);
            cmd.args(args).arg("--jobs").arg(self.jobs.to_string()).current_dir(&self.dir);
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
            if self.replace_env {
                cmd.env_clear();
            }
            cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
            let variation =
                Variation { umask: Some(self.umask), hostname: self.hostname.clone(), ids: self.ids, cpus: self.cpus };
            variation.apply(&mut cmd).map_err(|source| VerifyError::Vary { which: self.role.clone(), source })?;
            let started = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            let clock = Instant::now();
            match cmd.spawn() {
                Ok(child) => return Ok(Running { child, started, clock }),
                // Unprivileged user namespaces may be disabled: then the uid
                // (and the host name, whose namespace needs one) stays, and the
                // report says so.
                Err(e) if self.ids.is_some() => {
                    let why = format!("not applied: a user namespace was refused ({e})");
                    self.dropped.push(("uid".into(), why.clone()));
                    self.dropped.push(("host name".into(), why));
                    self.ids = None;
                    self.hostname = None;
                }
                Err(source) => return Err(VerifyError::Spawn { which: self.role.clone(), source }),
            }
        }
    }
}

/// A build started by [`Side::spawn`].
pub struct Running {
    child: Child,
    /// Seconds since the epoch.
    pub started: u64,
    clock: Instant,
}

impl Running {
    /// The child's process id (to stop it when its sibling cannot start).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for it: its output and how many seconds it took.
    pub fn finish(self) -> io::Result<(Output, f64)> {
        let out = self.child.wait_with_output()?;
        Ok((out, (self.clock.elapsed().as_secs_f64() * 1000.0).round() / 1000.0))
    }
}

/// Wait until the wall clock is past second `after`.
pub fn wait_past(after: u64) {
    loop {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        if now.as_secs() > after {
            return;
        }
        std::thread::sleep(Duration::from_millis(1000 - u64::from(now.subsec_millis())).max(Duration::from_millis(1)));
    }
}

/// Copy a source tree, creating its entries in `order` (directories always
/// before what they hold), with the permission bits of the original whatever
/// the umask.
///
/// The source is read by descriptor ([`hermod_hostfs`]): no link in it is
/// followed, and only regular files are opened (a FIFO would block the copy
/// forever; the build's own scan refuses special files too).
pub fn copy_tree(from: &Path, to: &Path, order: FileOrder) -> io::Result<()> {
    use hermod_hostfs::{Dir, Kind};
    let src = Dir::open(from)?;
    let mut entries = Vec::new();
    src.walk::<hermod_hostfs::Error>(&mut |visit| {
        entries.push((visit.rel.to_owned(), visit.meta));
        Ok(true)
    })?;
    if order == FileOrder::Reversed {
        entries.reverse();
    }
    std::fs::create_dir_all(to)?;
    let dest = Dir::open_nofollow(to)?;
    for (rel, meta) in &entries {
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            dest.create_dir_all(parent, 0o700)?;
        }
        match meta.kind {
            Kind::Dir => drop(dest.create_dir_all(rel, 0o700)?),
            Kind::Symlink => dest.symlink(src.read_link(rel)?, rel)?,
            Kind::File => {
                let (mut file, _) = src.open_regular(rel)?;
                io::copy(&mut file, &mut dest.create_file(rel, meta.mode)?)?;
            }
            kind => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: a {kind}, not a regular file, directory or symlink", src.shown(rel).display()),
                ))
            }
        }
    }
    // Modes last: a directory made read-only early would stop the copy.
    for (rel, meta) in entries.iter().filter(|(_, m)| m.kind == Kind::Dir) {
        dest.set_mode(rel, meta.mode)?;
    }
    dest.set_own_mode(src.own_meta()?.mode)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn reversed_copy_creates_files_in_reverse_order_with_the_same_modes() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("sub")).unwrap();
        for name in ["a.c", "b.c", "sub/c.h"] {
            std::fs::write(src.path().join(name), name).unwrap();
        }
        std::fs::set_permissions(src.path().join("b.c"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("a.c", src.path().join("link")).unwrap();
        let dest = tempfile::tempdir().unwrap();
        for (order, dir) in [(FileOrder::ByName, "by-name"), (FileOrder::Reversed, "reversed")] {
            let to = dest.path().join(dir);
            copy_tree(src.path(), &to, order).unwrap();
            assert_eq!(std::fs::read_to_string(to.join("sub/c.h")).unwrap(), "sub/c.h");
            assert_eq!(std::fs::metadata(to.join("b.c")).unwrap().mode() & 0o777, 0o755);
            assert_eq!(std::fs::read_link(to.join("link")).unwrap(), Path::new("a.c"));
        }
        // Inode numbers follow creation order on a fresh directory: a.c before
        // b.c in one copy, after it in the other.
        let ino = |d: &str, f: &str| std::fs::metadata(dest.path().join(d).join(f)).unwrap().ino();
        assert!(ino("by-name", "a.c") < ino("by-name", "b.c"));
        assert!(ino("reversed", "a.c") > ino("reversed", "b.c"));
    }

    #[test]
    fn the_two_sides_differ_in_every_condition() {
        let a = Side::first(Path::new("/tmp/a"), "hello").describe();
        let b = Side::second("second", Path::new("/var/tmp/b"), "hello").describe();
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (name, first) in &a {
            assert_ne!(first, &b[name], "{name} must differ");
        }
    }
}
