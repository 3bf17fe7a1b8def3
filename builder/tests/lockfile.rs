//! Lock files and package sources, with the real binary, the real archive and
//! the real sandbox: a lock is reproducible across stores, builds offline
//! (in an empty network namespace) from a warm package cache, and anything
//! tampered with — the lock, a cached .deb, a mirror's index — is refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// How to run hermod: which store, package cache, config, and whether the
/// network is there at all (`unshare --net`: an empty network namespace).
struct Run<'a> {
    store: &'a Path,
    cache: PathBuf,
    config: Option<&'a Path>,
    offline: bool,
}

impl<'a> Run<'a> {
    fn new(store: &'a Path) -> Run<'a> {
        Run { store, cache: package_cache(), config: None, offline: false }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = if self.offline {
            let mut c = Command::new("unshare");
            c.arg("--net").arg(hermod());
            c
        } else {
            Command::new(hermod())
        };
        cmd.args(args).env("HERMOD_STORE", self.store).env("HERMOD_PACKAGE_CACHE", &self.cache).arg("-q");
        match self.config {
            Some(config) => cmd.arg("--config").arg(config),
            // Independent of whatever /etc/hermod/config.toml the machine has.
            None => cmd.args(["--config", "/dev/null"]),
        };
        let out = cmd.output().expect("hermod runs");
        eprintln!(
            "$ {}hermod {}\nstatus: {:?}\nstdout:\n{}\nstderr:\n{}",
            if self.offline { "unshare --net " } else { "" },
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "hermod {args:?} failed: {}", stderr(&out));
        stdout(&out)
    }

    /// `rootfs lock --kernel KREL --out FILE`: the lock's text and hash.
    fn lock(&self, kernel: &str, file: &Path) -> (String, String) {
        let line = self.ok(&["rootfs", "lock", "--kernel", kernel, "--out", file.to_str().unwrap()]);
        let hash = line.split_whitespace().next().expect("hash KREL FILE").to_owned();
        (std::fs::read_to_string(file).unwrap(), hash)
    }

    /// `rootfs build --lock FILE`: the build root's hash.
    fn build_root(&self, lock: &Path) -> String {
        self.ok(&["rootfs", "build", "--lock", lock.to_str().unwrap()]).split_whitespace().next().unwrap().to_owned()
    }
}

/// A fresh store, as on a machine that never ran hermod.
fn fresh_store() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("hermod-lock-test-").tempdir().unwrap()
}

/// The (name, SHA256, FILENAME) of each `package` line.
fn packages(lock: &str) -> Vec<(String, String, String)> {
    lock.lines()
        .filter_map(|l| l.strip_prefix("package "))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_owned(), f[3].to_owned(), f[5].to_owned())
        })
        .collect()
}

/// The package cache's file for a `package` line: `<name>_<version>_<arch>.deb`.
fn cached_deb(cache: &Path, lock: &str, name: &str) -> PathBuf {
    let line = lock.lines().find(|l| l.starts_with(&format!("package {name} "))).expect("package in lock");
    let f: Vec<&str> = line.split(' ').collect();
    cache.join(format!("{}_{}_{}.deb", f[1], f[2].replace(':', "%3a"), f[3]))
}

/// The lock for the test kernel, with its packages in the shared package
/// cache (if one is missing, a real `rootfs build --lock` in a fresh store
/// downloads them all).
fn warm_lock(dir: &Path) -> (PathBuf, String, String) {
    let path = dir.join("warm.lock");
    let (text, hash) = Run::new(&shared_store()).lock(&kernel(), &path);
    if packages(&text).iter().any(|(name, _, _)| !cached_deb(&package_cache(), &text, name).is_file()) {
        let store = fresh_store();
        assert_eq!(Run::new(store.path()).build_root(&path), hash);
    }
    (path, text, hash)
}

#[test]
fn a_lock_is_the_same_from_two_stores_and_builds_the_same_root() {
    let kernel = kernel();
    let (a, b, c) = (fresh_store(), fresh_store(), fresh_store());
    let files = tempfile::tempdir().unwrap();
    let (text_a, hash_a) = Run::new(a.path()).lock(&kernel, &files.path().join("a.lock"));
    let (text_b, hash_b) = Run::new(b.path()).lock(&kernel, &files.path().join("b.lock"));
    assert_eq!(text_a, text_b, "two fresh stores resolve byte-identical locks");
    assert_eq!(hash_a, hash_b);
    assert!(text_a.starts_with("hermod-lock 1\n") && text_a.contains(&format!("\nkernel {kernel}\n")));
    assert!(packages(&text_a).iter().any(|(n, _, _)| n == &format!("linux-headers-{kernel}")));

    // Resolved on store a; from the lock on store c, which never saw an index.
    let resolved = Run::new(a.path()).ok(&["rootfs", "build", "--kernel", &kernel]);
    let resolved_hash = resolved.split_whitespace().next().unwrap();
    assert_eq!(resolved_hash, hash_a, "the lock hash names the build root");
    assert_eq!(Run::new(c.path()).build_root(&files.path().join("b.lock")), hash_a);
    assert!(list(&c.path().join("indices")).is_empty(), "a lock-based build reads no index");
    assert!(list(&c.path().join("locks")).is_empty(), "nor any resolution");
}

#[test]
fn a_lock_builds_offline_from_a_warm_package_cache() {
    let files = tempfile::tempdir().unwrap();
    let (lock, _, _) = warm_lock(files.path());
    let source = testdata("modules/hello");
    let build = |run: &Run, args: &[&str]| -> serde_json::Value {
        let out = tempfile::tempdir().unwrap();
        let mut all = vec!["build", source.to_str().unwrap(), "--out", out.path().to_str().unwrap(), "--json"];
        all.extend(args);
        serde_json::from_str(run.ok(&all).trim()).unwrap()
    };
    let online = build(&Run::new(&shared_store()), &["--kernel", &kernel()]);

    // The empty network namespace really has no network: resolving fails there.
    let store = fresh_store();
    let offline = Run { offline: true, ..Run::new(store.path()) };
    let out = offline.run(&["rootfs", "lock", "--kernel", &kernel()]);
    assert_eq!(out.status.code(), Some(7), "no archive offline: {}", stderr(&out));
    assert!(stderr(&out).contains("InRelease"), "{}", stderr(&out));

    let report = build(&offline, &["--lock", lock.to_str().unwrap()]);
    assert_eq!(report["cache"], "miss", "a fresh store compiles");
    assert_eq!(report["sha256"], online["sha256"], "offline from the lock: the same bytes as online");
    assert_eq!(report["key"], online["key"]);
    assert!(list(&store.path().join("indices")).is_empty());
}

#[test]
fn a_wrong_sha256_in_the_lock_is_refused_and_nothing_is_built() {
    let files = tempfile::tempdir().unwrap();
    let (_, text, _) = warm_lock(files.path());
    let (name, sha, _) = packages(&text).into_iter().find(|(n, _, _)| n == "make").unwrap();
    let wrong = format!("{}{}", &sha[..60], if sha.ends_with("0000") { "1111" } else { "0000" });
    let lock = files.path().join("wrong.lock");
    std::fs::write(&lock, text.replace(&sha, &wrong)).unwrap();

    let store = fresh_store();
    let out_dir = files.path().join("out");
    let out = Run::new(store.path()).run(&[
        "build",
        testdata("modules/hello").to_str().unwrap(),
        "--lock",
        lock.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("{name} 4.3-4.1: no copy has the expected SHA256 {wrong}")), "{err}");
    assert!(err.contains(&format!("{sha} does not match {wrong}")), "the mirror's copy too: {err}");
    assert!(err.contains("is the lock wrong?"), "{err}");
    let roots: Vec<String> = list(&store.path().join("rootfs"))
        .into_iter()
        .filter(|n| !n.ends_with(".lock") && !n.ends_with(".use"))
        .collect();
    assert!(roots.is_empty(), "no build root: {roots:?}");
    assert!(list(&out_dir).is_empty() && list(&store.path().join("cas")).is_empty(), "nothing built");
}

#[test]
fn a_tampered_deb_in_the_package_cache_is_refused() {
    let files = tempfile::tempdir().unwrap();
    let (lock, text, hash) = warm_lock(files.path());
    // A copy of the package cache with one .deb changed (same size, one byte).
    let cache = files.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    for (name, _, _) in packages(&text) {
        let from = cached_deb(&package_cache(), &text, &name);
        std::fs::copy(&from, cache.join(from.file_name().unwrap())).unwrap();
    }
    let victim = cached_deb(&cache, &text, "make");
    let mut bytes = std::fs::read(&victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&victim, &bytes).unwrap();

    let store = fresh_store();
    let offline = Run { cache: cache.clone(), offline: true, ..Run::new(store.path()) };
    let out = offline.run(&["rootfs", "build", "--lock", lock.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("make 4.3-4.1: no copy has the expected SHA256"), "{err}");
    assert!(err.contains(&format!("the package cache's {} has SHA256", victim.display())), "names the file: {err}");

    // With the network, the bad copy is replaced by a verified download.
    let online = Run { offline: false, ..offline };
    assert_eq!(online.build_root(&lock), hash);
    assert_eq!(sha256(&victim), packages(&text).iter().find(|p| p.0 == "make").unwrap().1);
}

#[test]
fn a_malformed_lock_is_refused_naming_the_line() {
    let files = tempfile::tempdir().unwrap();
    let store = fresh_store();
    let lock = files.path().join("bad.lock");
    let good =
        "hermod-lock 1\nrecipe bookworm-amd64\nkernel 6.1.0-56-amd64\narchitecture amd64\nheaders-version 6.1.192-2\n";
    std::fs::write(&lock, format!("{good}package make 4.3-4.1 amd64 not-a-hash 396208 pool/make.deb make\n")).unwrap();
    let out = Run::new(store.path()).run(&["rootfs", "build", "--lock", lock.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("lock file {}: line 6: package make: SHA256", lock.display())),
        "{}",
        stderr(&out)
    );

    let missing = files.path().join("missing.lock");
    let out = Run::new(store.path()).run(&["build", ".", "--lock", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("cannot read lock file"), "{}", stderr(&out));
    let out = Run::new(store.path()).run(&["rootfs", "build", "--lock", lock.to_str().unwrap(), "--kernel", "x"]);
    assert_eq!(out.status.code(), Some(2), "--lock and --kernel exclude each other");
}

/// The newest 6.12 amd64 kernel the archive has, found with apt-cache.
fn kernel_612() -> String {
    let found = tool("apt-cache", &["search", "--names-only", "^linux-headers-6\\.12\\..*-amd64$"]);
    let mut kernels: Vec<String> = found
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.strip_prefix("linux-headers-").map(str::to_owned))
        .filter(|k| !k.contains("cloud") && !k.contains("-rt-"))
        .collect();
    kernels.sort_by_key(|k| k.split(['.', '+']).nth(2).and_then(|n| n.parse::<u32>().ok()));
    kernels.pop().expect("a 6.12 kernel in the archive")
}

#[test]
fn the_612_headers_are_locked_without_a_kernel_image() {
    let kernel = kernel_612();
    // The headers do depend on an image (the reason for the exclusion rule).
    let show = tool("apt-cache", &["show", "--no-all-versions", &format!("linux-headers-{kernel}")]);
    assert!(show.lines().any(|l| l.starts_with("Depends:") && l.contains("linux-image-")), "{show}");

    let files = tempfile::tempdir().unwrap();
    let (text, _) = Run::new(&shared_store()).lock(&kernel, &files.path().join("612.lock"));
    let names: Vec<String> = packages(&text).into_iter().map(|p| p.0).collect();
    assert!(names.contains(&format!("linux-headers-{kernel}")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("linux-headers-6.12.") && n.ends_with("-common")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("linux-kbuild-6.12")), "{names:?}");
    assert!(names.contains(&"gcc-12".to_string()), "the kernel's compiler: {names:?}");
    assert!(!names.iter().any(|n| n.starts_with("linux-image-") || n == "linux-base"), "{names:?}");
}

/// The machine's configured URI serving `suite` (e.g. http://deb.debian.org/debian).
fn archive_uri(suite: &str) -> String {
    let sources = hermod::apt::read_sources(Path::new("/")).unwrap();
    sources.into_iter().find(|s| s.suite == suite).expect("the suite is configured").uri
}

#[test]
fn a_configured_mirror_is_verified_and_a_tampered_index_refused() {
    // A `file:` copy of the configured bookworm suite (InRelease + main's index):
    // "another mirror", signed by the Debian keys like the real one.
    let uri = archive_uri("bookworm");
    let mirror = tempfile::tempdir().unwrap();
    let dists = mirror.path().join("dists/bookworm");
    std::fs::create_dir_all(dists.join("main/binary-amd64")).unwrap();
    let get = |rel: &str| hermod::apt::transport::get(&format!("{uri}/dists/bookworm/{rel}"), 1 << 30).unwrap();
    let inrelease = get("InRelease");
    std::fs::write(dists.join("InRelease"), &inrelease).unwrap();
    let index = get("main/binary-amd64/Packages.xz");
    std::fs::write(dists.join("main/binary-amd64/Packages.xz"), &index).unwrap();

    let config = mirror.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "use_system_sources = false\n\n[[sources]]\nuri = \"file:{}\"\nsuites = [\"bookworm\"]\ncomponents = [\"main\"]\nsigned_by = \"/usr/share/keyrings/debian-archive-keyring.gpg\"\n",
            mirror.path().display()
        ),
    )
    .unwrap();
    let attempt = || {
        let store = fresh_store();
        // Offline: everything must come from the file: mirror.
        Run { config: Some(&config), offline: true, ..Run::new(store.path()) }.run(&["rootfs", "lock"])
    };
    let out = attempt();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(packages(&text).iter().any(|p| p.0.starts_with("linux-headers-6.1.0-")), "{text}");

    // One byte of the index changed: refused against the signed Release.
    let mut bad = index.clone();
    let last = bad.len() - 100;
    bad[last] ^= 1;
    std::fs::write(dists.join("main/binary-amd64/Packages.xz"), &bad).unwrap();
    let out = attempt();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Packages.xz: SHA256") && stderr(&out).contains("signed Release file"),
        "{}",
        stderr(&out)
    );

    // One signed line of InRelease changed: its signature no longer verifies.
    std::fs::write(dists.join("main/binary-amd64/Packages.xz"), &index).unwrap();
    let text = String::from_utf8(inrelease).unwrap().replacen("Suite: ", "Suite:  ", 1);
    std::fs::write(dists.join("InRelease"), text).unwrap();
    let out = attempt();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("no signature verifies"), "{}", stderr(&out));
}

#[test]
fn a_local_deb_directory_is_a_package_source() {
    let files = tempfile::tempdir().unwrap();
    let (_, text, hash) = warm_lock(files.path());
    // The admin's directory: the lock's .debs, and nothing else configured.
    let debs = files.path().join("debs");
    std::fs::create_dir(&debs).unwrap();
    for (name, _, _) in packages(&text) {
        let from = cached_deb(&package_cache(), &text, &name);
        std::fs::copy(&from, debs.join(from.file_name().unwrap())).unwrap();
    }
    let config = files.path().join("config.toml");
    std::fs::write(&config, format!("use_system_sources = false\nlocal_debs = [\"{}\"]\n", debs.display())).unwrap();

    // Resolved offline from the directory alone: the same packages, so the same lock hash.
    let store = fresh_store();
    let empty_cache = files.path().join("empty-cache");
    let run = Run { config: Some(&config), offline: true, cache: empty_cache.clone(), ..Run::new(store.path()) };
    let local_lock = files.path().join("local.lock");
    let (local_text, local_hash) = run.lock(&kernel(), &local_lock);
    assert_eq!(local_hash, hash);
    let local_files: Vec<String> = packages(&local_text).into_iter().map(|p| p.2).collect();
    assert!(local_files.iter().all(|f| !f.contains('/') && f.ends_with(".deb")), "{local_files:?}");

    // Built with an empty package cache: the .debs are fetched from the directory.
    let out_dir = files.path().join("out");
    let report = run.ok(&[
        "build",
        testdata("modules/hello").to_str().unwrap(),
        "--lock",
        local_lock.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    let online = tempfile::tempdir().unwrap();
    let source = testdata("modules/hello");
    let args = ["build", source.to_str().unwrap(), "--kernel", &kernel(), "--out", online.path().to_str().unwrap()];
    let online = PathBuf::from(Run::new(&shared_store()).ok(&args).trim());
    assert_eq!(report["sha256"].as_str().unwrap(), sha256(&online), "the same .deb as from the archive");
    assert_eq!(list(&empty_cache).len(), packages(&text).len(), "each .deb copied into the package cache");
}

#[test]
fn an_unknown_config_key_is_refused() {
    let files = tempfile::tempdir().unwrap();
    let config = files.path().join("config.toml");
    std::fs::write(&config, "use_system_sources = true\nlocal_deb = [\"/srv/debs\"]\n").unwrap();
    let store = fresh_store();
    let out = Run { config: Some(&config), ..Run::new(store.path()) }.run(&["rootfs", "lock"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("config file {}", config.display())) && err.contains("unknown field `local_deb`"),
        "{err}"
    );
}

/// The crafted locks of `testdata/hostile-host/locks` (see its README): each
/// is refused as bad input (exit 3) naming its line, by `rootfs build` and
/// `build`, and nothing appears outside the store: not in a sentinel
/// directory the lock points at, not in the package cache, not as a root.
#[test]
fn a_crafted_lock_is_refused_and_nothing_is_written_outside_the_store() {
    let cases: &[(&str, usize, &str)] = &[
        ("link-through-absolute-link.lock", 9, "lies below link \"/a\" (line 8)"),
        ("link-path-dotdot.lock", 8, "link path"),
        ("version-dotdot.lock", 7, "package make: VERSION: version"),
        ("name-path.lock", 7, "is not a Debian package name"),
        ("filename-dotdot.lock", 7, "package make: FILENAME"),
        ("recipe-path.lock", 3, "recipe"),
        ("kernel-path.lock", 4, "kernel: kernel release"),
        ("size-overflow.lock", 7, "SIZE: size \"99999999999999999999\" is too large"),
    ];
    let dir = testdata("hostile-host/locks");
    let mut files: Vec<String> = list(&dir).into_iter().filter(|n| n.ends_with(".lock")).collect();
    files.sort();
    let mut named: Vec<String> = cases.iter().map(|c| c.0.to_owned()).collect();
    named.sort();
    assert_eq!(files, named, "every crafted lock is tested");
    let files_dir = tempfile::tempdir().unwrap();
    let sentinel = tempfile::Builder::new().prefix("hermod-sentinel-").tempdir().unwrap();
    let source = testdata("modules/hello");
    for (file, line, message) in cases {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(text.contains("@SENTINEL@") || file.starts_with("size"), "{file} points at the sentinel");
        let lock = files_dir.path().join(file);
        std::fs::write(&lock, text.replace("@SENTINEL@", sentinel.path().to_str().unwrap())).unwrap();
        let store = fresh_store();
        let cache = tempfile::tempdir().unwrap();
        let run = Run { cache: cache.path().to_owned(), ..Run::new(store.path()) };
        let out_dir = files_dir.path().join("out");
        let lock_arg = lock.to_str().unwrap();
        let out = out_dir.to_str().unwrap();
        for args in [
            vec!["rootfs", "build", "--lock", lock_arg],
            vec!["build", source.to_str().unwrap(), "--lock", lock_arg, "--out", out],
        ] {
            let result = run.run(&args);
            let err = stderr(&result);
            assert_eq!(result.status.code(), Some(3), "{file}: {args:?}: {err}");
            assert!(err.contains(&format!("lock file {}: line {line}: ", lock.display())), "{file}: {err}");
            assert!(err.contains(message), "{file}: {err}");
        }
        assert!(list(sentinel.path()).is_empty(), "{file}: nothing in the sentinel directory");
        assert!(list(cache.path()).is_empty(), "{file}: nothing in the package cache");
        assert!(list(&out_dir).is_empty(), "{file}: nothing built");
        let roots: Vec<String> = list(&store.path().join("rootfs"));
        assert!(roots.is_empty(), "{file}: no build root: {roots:?}");
    }
}
