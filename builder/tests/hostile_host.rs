//! Host-side hostile inputs: module sources and `-dkms` packages crafted to
//! make hermod itself — on the host, as root, before and after the sandbox —
//! follow a link, block, or change a file that is not its own (see
//! `testdata/hostile-host/README.md`). Each case runs as root and as an
//! unprivileged user and asserts the documented exit code and message, and
//! that nothing outside the store and `--out` changed: every entry of the
//! work directory (the sentinel "host" files the inputs aim at, and the
//! inputs themselves) keeps its kind, mode, owner and content, and no entry
//! appears or goes.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

/// Every entry below `dir` (not entering `skip`): kind, mode, owner, content.
fn snapshot(dir: &Path, skip: &[&Path]) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name().into_iter().filter_entry(|e| !skip.contains(&e.path()))
    {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        let what = if meta.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(entry.path()).unwrap().display())
        } else if meta.is_file() {
            format!("file {}", sha256(entry.path()))
        } else if meta.is_dir() {
            "dir".into()
        } else {
            "special".into()
        };
        out.insert(
            entry.path().to_owned(),
            format!("{what} mode {:o} owner {}:{}", meta.mode() & 0o7777, meta.uid(), meta.gid()),
        );
    }
    out
}

/// The work directory: the sentinel host files the inputs aim at, and the inputs.
struct Scene {
    _dir: tempfile::TempDir,
    root: PathBuf,
    cases: PathBuf,
    host: PathBuf,
}

impl Scene {
    /// `owner`: who owns the sentinels (the user hermod runs as, who could
    /// otherwise be made to change them).
    fn new(owner: u32) -> Scene {
        let dir = tempfile::Builder::new().prefix("hermod-hostile-host").tempdir_in("/var/tmp").unwrap();
        let root = dir.path().to_owned();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let host = root.join("host");
        let cases = root.join("cases");
        std::fs::create_dir_all(host.join("private")).unwrap();
        std::fs::create_dir(&cases).unwrap();
        std::fs::write(host.join("secret"), "TOP-SECRET signing material\n").unwrap();
        std::fs::write(host.join("private/key"), "another secret\n").unwrap();
        std::fs::set_permissions(host.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(host.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
        for p in [&host, &host.join("secret"), &host.join("private"), &host.join("private/key")] {
            nix::unistd::chown(p, Some(owner.into()), Some(owner.into())).unwrap();
        }
        Scene { _dir: dir, root, cases, host }
    }

    /// A module source (hello's files) named `name`, for a case to add to.
    fn source(&self, name: &str) -> PathBuf {
        let dir = self.cases.join(name);
        copy_tree(&testdata("modules/hello"), &dir);
        dir
    }
}

/// The host-side cases: (name, make the input, expected exit code, words of the message).
type Case = (&'static str, fn(&Scene) -> PathBuf, i32, &'static [&'static str]);

fn cases() -> Vec<Case> {
    vec![
        ("symlink chain out of a source directory", chain_source, 3, &["points outside the source tree"]),
        ("absolute symlink to a host file", absolute_link_source, 3, &["points outside the source tree"]),
        ("symlink to a host directory", dir_link_source, 3, &["points outside the source tree"]),
        ("a FIFO in the source", fifo_source, 3, &["fifos are refused"]),
        ("a socket in the source", socket_source, 3, &["sockets and fifos are refused"]),
        ("a FIFO named like a package", fifo_deb, 3, &["not a regular file"]),
        ("a hard link to another user's file", foreign_hard_link_source, 3, &["a hard link to another user's file"]),
    ]
}

/// A file of uid 1 (neither the source's owner, root, nor either caller)
/// hard-linked into the source: what `fs.protected_hardlinks=0` would let
/// anyone make of another user's file.
fn foreign_hard_link_source(scene: &Scene) -> PathBuf {
    let src = scene.source("hardlink");
    let theirs = scene.cases.join("daemons-file");
    std::fs::write(&theirs, "uid 1's bytes\n").unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o644)).unwrap();
    nix::unistd::chown(&theirs, Some(1.into()), Some(1.into())).unwrap();
    std::fs::hard_link(&theirs, src.join("config.h")).unwrap();
    src
}

/// `d -> .` and `e -> d/d/d/../../host/secret`: harmless each read alone,
/// out of the tree together (the kernel resolves `d/d/d` to the tree itself).
fn chain_source(scene: &Scene) -> PathBuf {
    let src = scene.source("chain");
    symlink(".", src.join("d")).unwrap();
    symlink("d/d/d/../../host/secret", src.join("e")).unwrap();
    assert_eq!(std::fs::canonicalize(src.join("e")).unwrap(), scene.host.join("secret"));
    src
}

fn absolute_link_source(scene: &Scene) -> PathBuf {
    let src = scene.source("absolute");
    symlink(scene.host.join("secret"), src.join("secret.h")).unwrap();
    src
}

fn dir_link_source(scene: &Scene) -> PathBuf {
    let src = scene.source("dirlink");
    std::fs::create_dir(src.join("sub")).unwrap();
    symlink("../../../host/private", src.join("sub/private")).unwrap();
    src
}

fn fifo_source(scene: &Scene) -> PathBuf {
    let src = scene.source("fifo");
    nix::unistd::mkfifo(&src.join("config.h"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    src
}

fn socket_source(scene: &Scene) -> PathBuf {
    let src = scene.source("socket");
    let listener = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    std::mem::forget(listener);
    src
}

fn fifo_deb(scene: &Scene) -> PathBuf {
    let deb = scene.cases.join("x-dkms_1_all.deb");
    nix::unistd::mkfifo(&deb, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    deb
}

/// Run `cmd`, killing it if it is still running after two minutes: a case
/// that hangs hermod fails instead of hanging the suite.
fn bounded(mut cmd: Command) -> Output {
    let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    loop {
        if let Ok(out) = rx.recv_timeout(Duration::from_millis(200)) {
            return out;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::SIGKILL);
            panic!("hermod did not finish within two minutes: an input made it hang");
        }
    }
}

fn run_cases(runner: &dyn Fn(&Path, &Path) -> Command, scene: &Scene, store: &Path) {
    let inputs: Vec<(Case, PathBuf)> = cases().into_iter().map(|case| (case, (case.1)(scene))).collect();
    let out = scene.root.join("out");
    let before = snapshot(&scene.root, &[store, &out]);
    for ((name, _, code, words), input) in &inputs {
        let result = bounded(runner(input, &out));
        let err = stderr(&result);
        assert_eq!(result.status.code(), Some(*code), "{name}: stderr:\n{err}");
        for word in *words {
            assert!(err.contains(word), "{name}: expected {word:?} in:\n{err}");
        }
        assert!(!err.contains("TOP-SECRET"), "{name}: a host secret reached the message:\n{err}");
        assert!(err.len() < 4096, "{name}: the message is {} bytes long", err.len());
        assert_eq!(snapshot(&scene.root, &[store, &out]), before, "{name}: something outside the store changed");
    }
}

fn build_args(input: &Path, out: &Path) -> Vec<String> {
    let (input, out) = (input.display().to_string(), out.display().to_string());
    ["build", &input, "--kernel", &kernel(), "--out", &out, "-q"].map(str::to_owned).to_vec()
}

#[test]
fn hostile_inputs_leave_the_host_unchanged_as_root() {
    let scene = Scene::new(nix::unistd::geteuid().as_raw());
    let store = shared_store();
    run_cases(
        &|input, out| {
            let mut cmd = Command::new(hermod());
            cmd.args(build_args(input, out)).env("HERMOD_STORE", &store).env("HERMOD_PACKAGE_CACHE", package_cache());
            cmd
        },
        &scene,
        &store,
    );
}

#[test]
fn hostile_inputs_leave_the_host_unchanged_as_an_unprivileged_user() {
    assert!(nix::unistd::geteuid().is_root(), "this test switches to uid 65534 and must run as root");
    let scene = Scene::new(65534);
    let binary = scene.root.join("hermod");
    std::fs::copy(hermod(), &binary).unwrap();
    let home = scene.root.join("home");
    std::fs::create_dir(&home).unwrap();
    nix::unistd::chown(&home, Some(65534.into()), Some(65534.into())).unwrap();
    let out = scene.root.join("out");
    std::fs::create_dir(&out).unwrap();
    nix::unistd::chown(&out, Some(65534.into()), Some(65534.into())).unwrap();
    run_cases(
        &|input, out| {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(&binary)
                .args(build_args(input, out))
                .env_clear()
                .env("HOME", &home)
                .env("PATH", "/usr/bin:/bin")
                .current_dir(&home);
            cmd
        },
        &scene,
        &home,
    );
}

/// A `-dkms` package whose /usr/src tree holds the chain: the escaping link
/// is left out with a note (DKMS copies such links and never reads them) and
/// nothing outside the store changes.
#[test]
fn a_packages_escaping_chain_is_left_out_with_a_note() {
    let scene = Scene::new(nix::unistd::geteuid().as_raw());
    let pkg = scene.cases.join("pkg");
    let tree = pkg.join("usr/src/hello-1.0");
    copy_tree(&testdata("modules/hello"), &tree);
    symlink(".", tree.join("d")).unwrap();
    symlink("d/d/d/../../../../../../host/secret", tree.join("e")).unwrap();
    std::fs::create_dir(pkg.join("DEBIAN")).unwrap();
    std::fs::write(
        pkg.join("DEBIAN/control"),
        "Package: hello-dkms\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n",
    )
    .unwrap();
    let deb = scene.cases.join("hello-dkms_1.0_all.deb");
    tool("dpkg-deb", &["--root-owner-group", "-b", pkg.to_str().unwrap(), deb.to_str().unwrap()]);
    let store = shared_store();
    let before = snapshot(&scene.root, &[]);
    let mut cmd = Command::new(hermod());
    cmd.args(["key", deb.to_str().unwrap(), "--kernel", &kernel()])
        .env("HERMOD_STORE", &store)
        .env("HERMOD_PACKAGE_CACHE", package_cache());
    let result = bounded(cmd);
    let err = stderr(&result);
    assert!(result.status.success(), "{err}");
    assert!(err.contains("left out 1 link(s) that point outside its source tree (e)"), "{err}");
    assert_eq!(snapshot(&scene.root, &[]), before);
}

/// A link planted in `--out` at the name of the package hermod writes there
/// is replaced, never written or read through.
#[test]
fn a_link_planted_in_out_is_replaced_not_followed() {
    let scene = Scene::new(nix::unistd::geteuid().as_raw());
    let store = shared_store();
    let out = scene.root.join("out");
    let build = || {
        let mut cmd = Command::new(hermod());
        cmd.args(build_args(&testdata("modules/hello"), &out))
            .env("HERMOD_STORE", &store)
            .env("HERMOD_PACKAGE_CACHE", package_cache());
        bounded(cmd)
    };
    let first = build();
    assert!(first.status.success(), "{}", stderr(&first));
    let name = list(&out).pop().expect("the package in --out");
    std::fs::remove_file(out.join(&name)).unwrap();
    symlink(scene.host.join("secret"), out.join(&name)).unwrap();
    let before = snapshot(&scene.root, &[&out]);
    let second = build();
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(out.join(&name).symlink_metadata().unwrap().is_file(), "the link was replaced by the package");
    assert_eq!(snapshot(&scene.root, &[&out]), before);
}

/// A process of the shared `nobody` user (any host service) tries, while a
/// root build's sandbox runs, to plant a link or write into the build's work
/// directory (to swap `dkms.records` or a module between the sandbox's copy
/// and hermod's read) or to read the source copy: the steps run as host ids of
/// that hermod's own, so every attempt is refused by the kernel.
#[test]
fn a_nobody_process_cannot_touch_a_running_builds_work_directory() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root to start the nobody process");
    let scene = Scene::new(0);
    let src = scene.source("private");
    // A cache miss: a source no one built.
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    std::fs::write(src.join("nonce.h"), format!("/* {nonce} */\n")).unwrap();
    let store = shared_store();
    let out = scene.root.join("out");
    let mut child = Command::new(hermod())
        .args(build_args(&src, &out))
        .env("HERMOD_STORE", &store)
        .env("HERMOD_PACKAGE_CACHE", package_cache())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let tag = format!("o{}.", child.id());
    let mut tried = 0;
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(120) {
        let work: Vec<PathBuf> = std::fs::read_dir(store.join("tmp"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(&tag))
            .map(|e| e.path())
            .collect();
        for dir in work {
            let (o, i) = (dir.join("out"), dir.join("in/src/hello.c"));
            let attack = format!(
                "ln -s /etc/shadow {o}/dkms.records.planted || echo x >> {o}/module-0.ko || cat {i} || exit 0; echo ESCAPED",
                o = o.display(),
                i = i.display()
            );
            let result = Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "sh", "-c", &attack])
                .output()
                .unwrap();
            assert!(!stdout(&result).contains("ESCAPED"), "nobody reached {}: {}", dir.display(), stderr(&result));
            tried += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait_with_output().unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert!(tried > 0, "the build's work directory was never seen");
}

/// A source of 3000 files under `[input_limits] max_entries = 1000` (set by
/// `--config`): refused while it is listed, exit 3, the message naming the
/// source, the limit and its key.
#[test]
fn a_source_past_the_entry_limit_is_refused_while_it_is_read() {
    let scene = Scene::new(nix::unistd::geteuid().as_raw());
    let src = scene.source("many");
    std::fs::create_dir(src.join("gen")).unwrap();
    for i in 0..3000 {
        std::fs::write(src.join(format!("gen/{i}.h")), "").unwrap();
    }
    let config = scene.root.join("config.toml");
    std::fs::write(&config, "[input_limits]\nmax_entries = 1000\n").unwrap();
    let store = shared_store();
    let out = scene.root.join("out");
    let before = snapshot(&scene.root, &[&store, &out]);
    let mut cmd = Command::new(hermod());
    cmd.args(build_args(&src, &out))
        .arg("--config")
        .arg(&config)
        .env("HERMOD_STORE", &store)
        .env("HERMOD_PACKAGE_CACHE", package_cache());
    let result = bounded(cmd);
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(3), "{err}");
    for word in ["over the limit of 1000", "input_limits.max_entries", &src.display().to_string()] {
        assert!(err.contains(word), "expected {word:?} in:\n{err}");
    }
    assert_eq!(snapshot(&scene.root, &[&store, &out]), before);
}

/// What a user-named file did to hermod: exit code, message, peak RSS.
struct Refusal {
    code: Option<i32>,
    stderr: String,
    max_rss: u64,
    seconds: f64,
}

/// hermod with `args` in `store`, waited for with `wait4` (its own peak RSS,
/// not the test process's other children's); killed after two minutes, so
/// a hang fails the test instead of hanging it.
fn refusal(store: &Path, args: &[&str]) -> Refusal {
    use std::os::unix::process::ExitStatusExt;
    let stderr_path = store.join("stderr");
    let started = Instant::now();
    // Reaped by wait4 below (for its rusage), which clippy cannot see.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(hermod())
        .args(args)
        .env("HERMOD_STORE", store)
        .env("HERMOD_PACKAGE_CACHE", package_cache())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("hermod runs");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(Duration::from_secs(120)).is_err() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
            return true;
        }
        false
    });
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; status and usage are valid out-pointers.
    let waited = unsafe { libc::wait4(pid.as_raw(), &mut status, 0, &mut usage) };
    let _ = done.send(());
    assert!(!watchdog.join().unwrap(), "hermod {args:?} did not finish within two minutes: the input made it hang");
    assert_eq!(waited, pid.as_raw(), "wait4: {}", std::io::Error::last_os_error());
    let status = std::process::ExitStatus::from_raw(status);
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("$ hermod {}\n{status:?}, {seconds:.2} s, max RSS {} KiB\n{stderr}", args.join(" "), usage.ru_maxrss);
    Refusal { code: status.code(), stderr, max_rss: usage.ru_maxrss as u64 * 1024, seconds }
}

/// Files named on the command line other than a SOURCE — `publish`'s .debs,
/// `build --lock`, `verify --against` — are opened only if they are regular
/// files (a FIFO would block hermod forever) and are never read whole: a
/// 3 GiB file (sparse: no disk) is refused at its first bytes or by its
/// size, in little memory. Each is exit 3, at once, and the repository is
/// not created.
#[test]
fn user_named_fifos_and_huge_files_are_refused_at_once() {
    let scene = Scene::new(nix::unistd::geteuid().as_raw());
    let store = private_store("user-files");
    let fifo = scene.cases.join("fifo.deb");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    // Not in the snapshot: hashing them would take this test 6 GiB of reading.
    let huge = scene.root.join("huge");
    std::fs::create_dir(&huge).unwrap();
    let text = huge.join("huge-text.deb");
    std::fs::File::create(&text).unwrap().set_len(3 << 30).unwrap();
    let ar = huge.join("huge-ar.deb");
    std::fs::write(&ar, b"!<arch>\n").unwrap();
    std::fs::OpenOptions::new().write(true).open(&ar).unwrap().set_len(3 << 30).unwrap();
    let repo = scene.root.join("repo");
    let (repo_s, src) = (repo.to_str().unwrap(), testdata("modules/hello"));
    let (src, k) = (src.to_str().unwrap(), kernel());
    let (fifo, text, ar) = (fifo.to_str().unwrap(), text.to_str().unwrap(), ar.to_str().unwrap());
    let before = snapshot(&scene.root, &[&huge]);
    let cases: [(&[&str], &[&str]); 6] = [
        (&["publish", "--repo", repo_s, fifo], &["fifo.deb", "a FIFO, not a regular file"]),
        (&["publish", "--repo", repo_s, text], &["huge-text.deb", "not a Debian package", "magic"]),
        (&["publish", "--repo", repo_s, ar], &["huge-ar.deb", "input_limits.max_deb_size"]),
        (&["build", src, "--lock", fifo, "-q"], &["lock file", "a FIFO, not a regular file"]),
        (&["verify", src, "--kernel", &k, "--against", fifo], &["fifo.deb", "a FIFO, not a regular file"]),
        (
            &["verify", src, "--kernel", &k, "--against", ar],
            &["huge-ar.deb", "over the limit of 1 GiB (input_limits.max_deb_size"],
        ),
    ];
    for (args, words) in cases {
        let got = refusal(store.path(), args);
        assert_eq!(got.code, Some(3), "{args:?}:\n{}", got.stderr);
        for word in words {
            assert!(got.stderr.contains(word), "{args:?}: expected {word:?} in:\n{}", got.stderr);
        }
        assert!(got.stderr.len() < 2048, "{args:?}: a short message: {} bytes", got.stderr.len());
        // Refused before anything is built or read on: a property, with room for a loaded machine.
        assert!(got.seconds < 30.0, "{args:?}: took {:.1} s", got.seconds);
        assert!(got.max_rss < 64 << 20, "{args:?}: peak RSS {} MiB", got.max_rss >> 20);
    }
    assert!(!repo.exists(), "a refused first publish creates no repository");
    assert_eq!(snapshot(&scene.root, &[&huge]), before, "nothing outside the store changed");
    assert_eq!(std::fs::metadata(ar).unwrap().len(), 3 << 30);
}
