//! A throwaway Debian root with the real dpkg and apt in it, for tests that
//! need a machine to install packages on (the farm side of hermod).
//!
//! - **Made once, then reused.** `mmdebstrap` (variant `apt` unless asked
//!   otherwise) builds the root from the host's own apt sources (the host's
//!   `.sources`/`.list` files are passed as mirror arguments: no mirror is
//!   named here) straight into a tarball next to the test package cache
//!   (`<parent of HERMOD_TEST_PACKAGE_CACHE>/debroot-<hash>.tar`). The hash
//!   covers everything that shapes the root: the spec (variant, packages,
//!   dpkg excludes, release), the sources files' text and mmdebstrap's version. The
//!   .debs it downloads are kept in `debroot-debs/` beside it and handed to
//!   the next mmdebstrap run (its documented `sync-in`/`sync-out` hooks), so
//!   a new spec downloads only what it adds.
//! - **Another release** ([`DebRootSpec::farm_on`]): the same mirrors, the
//!   host's sources files with the host's codename replaced by the wanted one
//!   in their suites (`bookworm-security` becomes `trixie-security`, see
//!   [`sources_for_release`]), as a machine of that release would name them.
//! - **A fresh copy per test**: [`DebRoot::new`] extracts the tarball into
//!   a temporary directory under /var/tmp, removed when the `DebRoot` drops.
//! - **Commands run inside a mount and pid namespace of their own, with the
//!   root `pivot_root`ed in** (util-linux's `unshare` and a few `mount`s, see
//!   [`ENTER`]): a fresh /proc, the host's /dev and /sys, a 1777 tmpfs /tmp.
//!   Not chroot and not bubblewrap: a process inside must be able to make
//!   namespaces and mount its own /proc (hermod's sandbox does, when a kernel
//!   hook builds in the root), which the kernel refuses in a chroot and when
//!   the only /proc in sight has read-only overmounts (bwrap's --proc). The
//!   caller is root and keeps its capabilities, so dpkg can chown and apt can
//!   drop to `_apt`; when the command exits, the pid namespace ends every
//!   process it started; the network is the host's, so a server on loopback
//!   is reachable.
//! - **Host directories** are bound in with [`DebRoot::bind`] (for every later
//!   command) or copied in with [`DebRoot::copy_in`].
//!
//! Everything here needs root (mmdebstrap `--mode=root`, tar keeping owners,
//! namespaces): the tests run as root, as CI does.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use sha2::Digest;

/// The host-side shell program that enters a root: `ROOT [HOST INSIDE ro|rw]... --
/// COMMAND...`, run by `unshare --mount --pid --fork` (so every mount is private
/// to it). The host's own `mount` and `pivot_root` do the work; the old root is
/// detached with the root's `umount`, or the host's when the root has none.
const ENTER: &str = r#"
root=$1; shift
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --rbind /sys "$root/sys"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
if [ -e /etc/resolv.conf ]; then touch "$root/etc/resolv.conf"; mount --bind /etc/resolv.conf "$root/etc/resolv.conf"; fi
while [ "$1" != -- ]; do
    host=$1 inside=$2 mode=$3; shift 3
    if [ -d "$host" ]; then mkdir -p "$root$inside"; else mkdir -p "$(dirname "$root$inside")"; touch "$root$inside"; fi
    mount --bind "$host" "$root$inside"
    if [ "$mode" = ro ]; then mount -o remount,bind,ro "$root$inside"; fi
done
shift
cd "$root"
mkdir -p .old-root
pivot_root . .old-root
cd /
if [ -x /usr/bin/umount ]; then /usr/bin/umount -l /.old-root
elif [ -x /.old-root/usr/bin/umount ]; then /.old-root/usr/bin/umount -l /.old-root; fi
exec "$@"
"#;

/// What goes into a root.
#[derive(Debug, Clone)]
pub struct DebRootSpec {
    /// mmdebstrap's `--variant` (`apt`: Essential plus apt; `minbase`: plus Priority required).
    pub variant: String,
    /// Packages installed besides the variant's (with their Depends, without Recommends).
    pub include: Vec<String>,
    /// dpkg `path-exclude` globs while the root is made (files a test never
    /// reads, left out to keep the tarball small); later dpkg runs inside the
    /// root exclude nothing.
    pub path_exclude: Vec<String>,
    /// The Debian release (codename) of the root; `None`: the host's own.
    pub release: Option<String>,
}

impl DebRootSpec {
    /// A farm machine running `kernel`: its real `linux-image-<kernel>`
    /// package installed (so a module package's `Depends` holds), and debsums.
    /// The image's 390 MB of modules are left out (path-exclude: dpkg still
    /// records the package; only those files are missing), and so is the
    /// initramfs-tools hook that would spend seconds making an initrd of them.
    pub fn farm(kernel: &str) -> DebRootSpec {
        DebRootSpec {
            variant: "apt".into(),
            include: vec!["debsums".into(), format!("linux-image-{kernel}")],
            path_exclude: vec!["/lib/modules/*/kernel/*".into(), "/etc/kernel/postinst.d/initramfs-tools".into()],
            release: None,
        }
    }

    /// [`DebRootSpec::farm`] on another Debian release (`"trixie"`), from
    /// the host's mirrors (see [`sources_for_release`]). Since trixie the
    /// image ships its modules under `/usr/lib/modules` (dpkg matches the
    /// package's own paths): those are left out too.
    pub fn farm_on(release: &str, kernel: &str) -> DebRootSpec {
        let mut spec = DebRootSpec { release: Some(release.to_owned()), ..DebRootSpec::farm(kernel) };
        spec.path_exclude.insert(1, "/usr/lib/modules/*/kernel/*".into());
        spec
    }

    /// The text the tarball's name is hashed from. For the host's release it
    /// is what it was before specs had a release (the derived `Debug` of the
    /// three other fields), so those roots keep their cached tarballs.
    fn cache_text(&self) -> String {
        let DebRootSpec { variant, include, path_exclude, release } = self;
        let mut text =
            format!("DebRootSpec {{ variant: {variant:?}, include: {include:?}, path_exclude: {path_exclude:?} }}");
        if let Some(release) = release {
            text.push_str(&format!(" release {release:?}"));
        }
        text
    }
}

/// A fresh copy of a cached root; removed on drop.
pub struct DebRoot {
    dir: tempfile::TempDir,
    /// (host path, path inside, read-only) for every command from now on.
    binds: Vec<(PathBuf, String, bool)>,
}

/// The host's apt sources, as mmdebstrap's mirror arguments (sorted).
pub fn host_sources() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir("/etc/apt/sources.list.d")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("sources" | "list")));
    let main = PathBuf::from("/etc/apt/sources.list");
    if fs::read_to_string(&main).is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with("deb"))) {
        files.push(main);
    }
    files.sort();
    assert!(!files.is_empty(), "the host has no apt sources to make a Debian root from");
    files
}

/// The host's apt sources turned into a machine of `release`'s: each file's
/// path and its text with every suite that is the host's codename, or starts
/// with it and a dash, renamed (`bookworm` → `trixie`, `bookworm-updates` →
/// `trixie-updates`, `bookworm-security` → `trixie-security`). Only suites
/// change: URIs, components, keyrings and comments are the host's. Other
/// suites (a vendor's `nodistro`) are kept as they are.
pub fn sources_for_release(release: &str) -> Vec<(PathBuf, String)> {
    let host = host_codename();
    host_sources()
        .into_iter()
        .map(|file| {
            let text = fs::read_to_string(&file).unwrap();
            let deb822 = file.extension().is_some_and(|e| e == "sources");
            let renamed = sources_renamed(&text, deb822, &host, release);
            (file, renamed)
        })
        .collect()
}

/// The text of a sources file (`deb822`: a `.sources` file, else a
/// one-line `.list`) with its suites of release `from` renamed to `to`'s.
pub fn sources_renamed(text: &str, deb822: bool, from: &str, to: &str) -> String {
    let rename = |suite: &str| -> String {
        match suite.strip_prefix(from) {
            Some(rest) if rest.is_empty() || rest.starts_with('-') => format!("{to}{rest}"),
            _ => suite.to_owned(),
        }
    };
    let mut out = String::new();
    for line in text.lines() {
        let renamed = if deb822 {
            // `Suites: a b c` (the field name is case-insensitive).
            match line.split_once(':') {
                Some((field, value)) if field.trim().eq_ignore_ascii_case("suites") => {
                    let suites: Vec<String> = value.split_whitespace().map(rename).collect();
                    format!("{field}: {}", suites.join(" "))
                }
                _ => line.to_owned(),
            }
        } else {
            one_line_renamed(line, &rename)
        };
        out.push_str(&renamed);
        out.push('\n');
    }
    out
}

/// A one-line-style entry `deb [options] URI SUITE COMPONENT...` with its
/// suite renamed; other lines as they are.
fn one_line_renamed(line: &str, rename: &dyn Fn(&str) -> String) -> String {
    let trimmed = line.trim_start();
    if !(trimmed.starts_with("deb ") || trimmed.starts_with("deb-src ") || trimmed.starts_with("deb\t")) {
        return line.to_owned();
    }
    let mut words: Vec<String> = trimmed.split_whitespace().map(str::to_owned).collect();
    // Skip the type and the `[ ... ]` options; then URI, then the suite.
    let mut i = 1;
    if words.get(1).is_some_and(|w| w.starts_with('[')) {
        while i < words.len() && !words[i].ends_with(']') {
            i += 1;
        }
        i += 1;
    }
    let suite = i + 1;
    if suite < words.len() {
        words[suite] = rename(&words[suite]);
    }
    words.join(" ")
}

/// The host's Debian codename (mmdebstrap's SUITE argument).
fn host_codename() -> String {
    let text = fs::read_to_string("/etc/os-release").expect("/etc/os-release");
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("VERSION_CODENAME in /etc/os-release")
}

/// The cached tarball for `spec` (made if missing, under a lock).
pub fn cached_tarball(spec: &DebRootSpec) -> PathBuf {
    assert!(nix::unistd::geteuid().is_root(), "a Debian root for tests needs root (mmdebstrap --mode=root, mounts)");
    // (path, text) of each sources file: the host's, or derived for another release.
    let sources: Vec<(PathBuf, String)> = match &spec.release {
        None => host_sources().into_iter().map(|f| (f.clone(), fs::read_to_string(&f).unwrap())).collect(),
        Some(release) => sources_for_release(release),
    };
    let mmdebstrap = Command::new("mmdebstrap").arg("--version").output();
    let mmdebstrap = mmdebstrap.expect("mmdebstrap is not installed (apt-get install mmdebstrap; .ci/run does)");
    let mut hasher = sha2::Sha256::new();
    hasher.update(format!("debroot 1\n{}\n", spec.cache_text()).as_bytes());
    hasher.update(&mmdebstrap.stdout);
    for (file, text) in &sources {
        hasher.update(file.display().to_string().as_bytes());
        hasher.update(text.as_bytes());
    }
    let cache = super::package_cache();
    let cache_dir = cache.parent().expect("the package cache has a parent directory");
    let tarball = cache_dir.join(format!("debroot-{}.tar", &hex::encode(hasher.finalize())[..16]));
    if tarball.exists() {
        return tarball;
    }
    // One maker at a time (tests run in parallel threads and processes).
    let lock = fs::OpenOptions::new().create(true).truncate(false).write(true).open(tarball.with_extension("lock"));
    let _lock = nix::fcntl::Flock::lock(lock.unwrap(), nix::fcntl::FlockArg::LockExclusive).expect("flock");
    if tarball.exists() {
        return tarball;
    }
    let debs = cache_dir.join("debroot-debs");
    fs::create_dir_all(&debs).unwrap();
    let partial = tarball.with_extension(format!("tmp-{}.tar", std::process::id()));
    let started = Instant::now();
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(["--mode=root", "--format=tar", "--quiet"])
        .arg(format!("--variant={}", spec.variant))
        // Downloads kept between runs: the documented way (mmdebstrap(1), "--skip=download/empty").
        .args(["--skip=download/empty", "--skip=essential/unlink"])
        .arg("--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/")
        .arg(format!("--setup-hook=sync-in {} /var/cache/apt/archives/", debs.display()))
        .arg(format!("--customize-hook=sync-out /var/cache/apt/archives {}", debs.display()));
    if !spec.include.is_empty() {
        cmd.arg(format!("--include={}", spec.include.join(",")));
    }
    for glob in &spec.path_exclude {
        cmd.arg(format!("--dpkgopt=path-exclude={glob}"));
    }
    if !spec.path_exclude.is_empty() {
        // mmdebstrap keeps its dpkg options in the root; the excludes were for making it only.
        cmd.arg("--customize-hook=rm -f \"$1\"/etc/dpkg/dpkg.cfg.d/99mmdebstrap");
    }
    // The sources as files mmdebstrap reads (it tells the formats by extension).
    let sources_dir = tempfile::tempdir().unwrap();
    let mut mirrors = Vec::new();
    for (i, (file, text)) in sources.iter().enumerate() {
        let name = format!("{i}-{}", file.file_name().unwrap().to_string_lossy());
        let copy = sources_dir.path().join(name);
        fs::write(&copy, text).unwrap();
        mirrors.push(copy);
    }
    cmd.arg(spec.release.clone().unwrap_or_else(host_codename)).arg(&partial).args(&mirrors);
    let out = cmd.output().expect("mmdebstrap runs");
    if !out.status.success() {
        let _ = fs::remove_file(&partial);
        panic!(
            "mmdebstrap failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fs::rename(&partial, &tarball).unwrap();
    eprintln!(
        "debroot: made {} ({:.1} MiB) in {:.1} s",
        tarball.display(),
        fs::metadata(&tarball).unwrap().len() as f64 / 1048576.0,
        started.elapsed().as_secs_f64()
    );
    tarball
}

impl DebRoot {
    /// A fresh root made to `spec` (from the cached tarball).
    pub fn new(spec: &DebRootSpec) -> DebRoot {
        let tarball = cached_tarball(spec);
        let dir = tempfile::Builder::new().prefix("hermod-debroot-").tempdir_in("/var/tmp").unwrap();
        let started = Instant::now();
        super::tool("tar", &["--numeric-owner", "-xpf", tarball.to_str().unwrap(), "-C", dir.path().to_str().unwrap()]);
        eprintln!("debroot: extracted {} in {:.1} s", dir.path().display(), started.elapsed().as_secs_f64());
        DebRoot { dir, binds: Vec::new() }
    }

    /// The root's directory on the host.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Where a path inside the root is on the host.
    pub fn host_path(&self, inside: &str) -> PathBuf {
        self.path().join(inside.trim_start_matches('/'))
    }

    /// Bind `host` (read-write) at `inside` for every later command.
    pub fn bind(&mut self, host: &Path, inside: &str) {
        self.binds.push((host.to_owned(), inside.to_owned(), false));
    }

    /// Bind `host` read-only at `inside` for every later command.
    pub fn ro_bind(&mut self, host: &Path, inside: &str) {
        self.binds.push((host.to_owned(), inside.to_owned(), true));
    }

    /// Copy a host file or directory tree to `inside` (parents created).
    pub fn copy_in(&self, host: &Path, inside: &str) {
        let dest = self.host_path(inside);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        super::tool("cp", &["-a", "--", host.to_str().unwrap(), dest.to_str().unwrap()]);
    }

    /// Write a file inside the root (parents created).
    pub fn write(&self, inside: &str, contents: &str) {
        let dest = self.host_path(inside);
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::write(dest, contents).unwrap();
    }

    /// `program args...` inside the root (add more with the returned Command).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--pid", "--fork", "--propagation", "private", "--kill-child", "--"]);
        cmd.args(["sh", "-euc", ENTER, "enter"]).arg(self.path());
        for (host, inside, read_only) in &self.binds {
            cmd.arg(host).arg(inside).arg(if *read_only { "ro" } else { "rw" });
        }
        cmd.args(["--", "/usr/bin/env", "-i"]);
        for (var, value) in [
            ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            ("HOME", "/root"),
            ("LC_ALL", "C.UTF-8"),
            ("DEBIAN_FRONTEND", "noninteractive"),
        ] {
            cmd.arg(format!("{var}={value}"));
        }
        cmd.arg(program);
        cmd
    }

    /// A shell script inside the root (`sh -ec`); its output is printed for the test log.
    pub fn sh(&self, script: &str) -> Output {
        let out = self.command("sh").arg("-ec").arg(script).output().expect("unshare (util-linux) runs");
        eprintln!(
            "debroot$ {script}\nstatus: {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// [`DebRoot::sh`] that must succeed; its stdout.
    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "in the Debian root, `{script}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The kernel release `release`'s archive offers now for `flavour`
/// (`amd64`): what its meta package `linux-image-<flavour>` depends on, as
/// the host's apt reads it from [`sources_for_release`]. apt's state for this
/// is kept beside the tarballs (`debroot-apt-<release>/`), so a later
/// `apt-get update` fetches only what changed. Panics when the archive has no
/// such meta package: a test asking for it must fail, not skip.
pub fn newest_kernel(release: &str, flavour: &str) -> String {
    newest_kernel_of(release, flavour, None)
}

/// [`newest_kernel`] of another architecture than the host's (`arm64`):
/// apt reads that architecture's indices (`APT::Architecture`).
pub fn newest_kernel_of(release: &str, flavour: &str, arch: Option<&str>) -> String {
    let cache = super::package_cache();
    let state = match arch {
        Some(arch) => format!("debroot-apt-{release}-{arch}"),
        None => format!("debroot-apt-{release}"),
    };
    let dir = cache.parent().expect("the package cache has a parent directory").join(state);
    fs::create_dir_all(&dir).unwrap();
    let lock = fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock"));
    let _lock = nix::fcntl::Flock::lock(lock.unwrap(), nix::fcntl::FlockArg::LockExclusive).expect("flock");
    let parts = dir.join("sources.list.d");
    let _ = fs::remove_dir_all(&parts);
    fs::create_dir_all(&parts).unwrap();
    for (i, (file, text)) in sources_for_release(release).iter().enumerate() {
        fs::write(parts.join(format!("{i}-{}", file.file_name().unwrap().to_string_lossy())), text).unwrap();
    }
    for sub in ["state/lists/partial", "cache/archives/partial"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let mut options = vec![
        "-o".to_owned(),
        "Dir::Etc::SourceList=/dev/null".to_owned(),
        "-o".to_owned(),
        format!("Dir::Etc::SourceParts={}", parts.display()),
        "-o".to_owned(),
        format!("Dir::State={}", dir.join("state").display()),
        "-o".to_owned(),
        format!("Dir::State::status={}", dir.join("state/status").display()),
        "-o".to_owned(),
        format!("Dir::Cache={}", dir.join("cache").display()),
        // The package lists are all it needs (no AppStream metadata, no translations).
        "-o".to_owned(),
        "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".to_owned(),
        "-o".to_owned(),
        "Acquire::Languages=none".to_owned(),
    ];
    if let Some(arch) = arch {
        options.extend(["-o".to_owned(), format!("APT::Architecture={arch}")]);
        options.extend(["-o".to_owned(), format!("APT::Architectures={arch}")]);
    }
    fs::write(dir.join("state/status"), "").unwrap();
    let apt = |program: &str, args: &[&str]| -> String {
        let out = Command::new(program).args(&options).args(args).env("LC_ALL", "C.UTF-8").output();
        let out = out.unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} for {release} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let started = Instant::now();
    let update = apt("apt-get", &["update"]);
    assert!(!update.contains("\nW:") && !update.contains("\nE:"), "apt-get update for {release}:\n{update}");
    let meta = format!("linux-image-{flavour}");
    let depends = apt("apt-cache", &["depends", "--important", &meta]);
    let suffix = format!("-{flavour}");
    let kernel = depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: linux-image-"))
        .map(|p| p.trim())
        .find(|k| k.ends_with(&suffix) && k.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or_else(|| panic!("{release}'s {meta} depends on no linux-image-KREL:\n{depends}"))
        .to_owned();
    eprintln!("debroot: {release}'s newest {flavour} kernel is {kernel} ({:.1} s)", started.elapsed().as_secs_f64());
    kernel
}
