//! hermod's own package installed, removed and purged by the real dpkg in a
//! throwaway Debian root (mmdebstrap of the machine's apt sources, chroot):
//! the maintainer scripts run without error, postinst makes the state
//! directories and enables the boot unit, a failing kernel hook still exits 0
//! and says what to run, a removed-but-not-purged hook is silent, and purge
//! leaves nothing behind. Needs root, mmdebstrap and the archive (~1 minute).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn chroot(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("chroot");
    c.arg(root).args(args).env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env_remove("HERMOD_CONFIG");
    c
}

/// The machine's apt source files, as mmdebstrap takes them.
fn apt_sources() -> Vec<PathBuf> {
    let mut files = vec![];
    let list = Path::new("/etc/apt/sources.list");
    if std::fs::read_to_string(list).is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with("deb"))) {
        files.push(list.to_owned());
    }
    let mut parts: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    parts.sort();
    files.extend(parts.into_iter().filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources")));
    assert!(!files.is_empty(), "no apt sources on this machine");
    files
}

fn codename() -> String {
    let os = std::fs::read_to_string("/etc/os-release").unwrap();
    os.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .expect("VERSION_CODENAME in /etc/os-release")
        .trim_matches('"')
        .to_owned()
}

/// Every path in the root, except what dpkg and apt rewrite in place or log.
fn tree(root: &Path) -> BTreeSet<PathBuf> {
    let skip = ["proc", "sys", "dev", "run", "var/log", "var/cache/debconf"].map(|p| root.join(p));
    let mut out = BTreeSet::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if skip.contains(&path) {
                continue;
            }
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                todo.push(path.clone());
            }
            out.insert(path.strip_prefix(root).unwrap().to_owned());
        }
    }
    out
}

#[test]
fn hermod_deb_installs_removes_and_purges_cleanly() {
    let work = tempfile::Builder::new().prefix("hermod-dist-install-").tempdir_in("/var/tmp").unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("target"));
    run(Command::new("cargo").args(["build", "--quiet", "-p", "hermod"]).current_dir(workspace()));
    let out_dir = work.path().join("out");
    let built = run(Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("dist")
        .arg("--binary")
        .arg(target.join("debug/hermod"))
        .arg("--out")
        .arg(&out_dir));
    let deb = PathBuf::from(String::from_utf8(built.stdout).unwrap().lines().last().unwrap());
    assert!(deb.starts_with(&out_dir) && deb.is_file(), "{}", deb.display());

    let root = work.path().join("root");
    run(Command::new("mmdebstrap")
        .args(["--quiet", "--variant=apt", "--include=kmod,init-system-helpers"])
        .arg(codename())
        .arg(&root)
        .args(apt_sources()));
    let before = tree(&root);

    std::fs::copy(&deb, root.join("hermod.deb")).unwrap();
    run(&mut chroot(&root, &["dpkg", "-i", "/hermod.deb"]));
    std::fs::remove_file(root.join("hermod.deb")).unwrap();
    for dir in ["pending", "debs", "queue"] {
        assert!(root.join("var/lib/hermod").join(dir).is_dir(), "postinst made no /var/lib/hermod/{dir}");
    }
    let wants = root.join("etc/systemd/system/multi-user.target.wants/hermod-boot.service");
    assert_eq!(std::fs::read_link(&wants).unwrap(), Path::new("/lib/systemd/system/hermod-boot.service"));
    let conffiles = run(&mut chroot(&root, &["dpkg-query", "--showformat=${Conffiles}", "--show", "hermod"]));
    let conffiles = String::from_utf8(conffiles.stdout).unwrap();
    for f in ["/etc/apt/apt.conf.d/70hermod", "/etc/kernel/header_postinst.d/hermod", "/etc/kernel/postinst.d/hermod"] {
        assert!(conffiles.contains(f), "{f} is not a conffile: {conffiles}");
    }
    let apt = run(&mut chroot(&root, &["apt-config", "dump", "DPkg::Post-Invoke"]));
    assert!(String::from_utf8_lossy(&apt.stdout).contains("/usr/bin/hermod install-pending"));

    // A hook whose hermod fails (a config file that is not there, a kernel
    // release that is not one) exits 0 and says what to run by hand.
    for hook in ["header_postinst.d", "postinst.d"] {
        let out = chroot(&root, &["/bin/sh", &format!("/etc/kernel/{hook}/hermod"), "no/such/kernel", "/boot/vmlinuz"])
            .env("HERMOD_CONFIG", "/nonexistent/config.toml")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{hook}: the hook failed ({}): {stderr}", out.status);
        assert!(stderr.contains("FAILED to prepare the module packages for kernel no/such/kernel"), "{hook}: {stderr}");
        assert!(stderr.contains(&format!("/etc/kernel/{hook}/hermod: hermod prepare exited with status")), "{stderr}");
        assert!(stderr.contains("hermod prepare --kernel no/such/kernel"), "{hook}: {stderr}");
    }

    run(&mut chroot(&root, &["dpkg", "--remove", "hermod"]));
    assert!(!root.join("usr/bin/hermod").exists());
    // Removed, not purged: the conffiles stay, and do nothing.
    for hook in ["header_postinst.d", "postinst.d"] {
        let out = run(&mut chroot(&root, &["/bin/sh", &format!("/etc/kernel/{hook}/hermod"), "6.1.0-1-amd64"]));
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{hook} spoke after removal");
    }

    run(&mut chroot(&root, &["dpkg", "--purge", "hermod"]));
    let after = tree(&root);
    let left: Vec<_> = after.difference(&before).collect();
    let lost: Vec<_> = before.difference(&after).collect();
    assert!(left.is_empty() && lost.is_empty(), "purge left {left:?}, and took {lost:?}");
}
