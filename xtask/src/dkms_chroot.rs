//! `cargo xtask dkms-corpus`, DKMS side: DKMS itself building each package
//! in a throwaway Debian root, as a sysadmin's host would.
//!
//! - The base root is made once per (kernel, archive content) by `mmdebstrap
//!   --variant=apt` from the archives hermod reads for the corpus (the
//!   machine's own apt sources for its release; for another release the same
//!   mirrors, suites renamed, every component: see `dkms_corpus.rs`),
//!   written as one deb822 file under `sources/`, with `dkms` and
//!   `linux-headers-KREL` and nothing else but their Depends (mmdebstrap
//!   leaves Recommends out). It keeps its apt lists, so packages can be
//!   installed into copies of it later, and gets `/etc/dkms/no-autoinstall`:
//!   a -dkms package's postinst (DKMS's `common.postinst`) would otherwise
//!   build at install time for `uname -r` (the host's kernel, which has no
//!   headers there) and for the newest kernel in `/lib/modules`, mixing the
//!   build into apt's run and its time. With the file it only says so and
//!   stops; `dkms_chroot.sh` then adds and builds the tree for KREL alone,
//!   timed. DKMS itself honours that file, so nothing of DKMS is patched.
//! - A tree whose dkms.conf names BUILD_DEPENDS: DKMS builds it only when
//!   those modules are *installed* for the kernel, as they are on a host where
//!   the package's Depends brought them (their postinst built them). Here the
//!   postinsts stopped at no-autoinstall, so the script adds and installs
//!   each such module for KREL first (untimed; log `depends-NAME.log`).
//! - Each package is built in its own overlay of the base root (see the
//!   script): no package sees another's Depends or leftovers, so a build that
//!   only works after another package was installed shows up as a failure,
//!   as on a real host with just that package.
//! - Everything is mounted inside `unshare -m -p --fork` with private
//!   propagation, so no mount reaches the host and every process started in
//!   the root dies with the script.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::dkms_corpus::{first_error, module_name, truncate, Corpus, Outcome, Side};

const SCRIPT: &str = include_str!("dkms_chroot.sh");

pub struct Base {
    /// The root itself, never written after it appears (overlays on top).
    root: PathBuf,
    /// Results measured against this root, one JSON file per package version.
    results: PathBuf,
    logs: PathBuf,
    archives: PathBuf,
    apt_lock: PathBuf,
    kernel: String,
    pub dkms_version: String,
}

impl Base {
    /// The base root for this kernel and archive content; made if `create`
    /// (else `None` when it does not exist yet). Roots of older archive
    /// content for the same kernel are removed, with their results.
    pub fn ensure(dir: &Path, corpus: &Corpus, create: bool) -> Result<Option<Base>> {
        let name = format!("{}-{}", corpus.kernel, &corpus.identity[..16]);
        let roots = dir.join("dkms-root");
        let root = roots.join(&name);
        if !root.is_dir() {
            if !create {
                return Ok(None);
            }
            std::fs::create_dir_all(&roots)?;
            make_base(dir, &root, corpus)?;
            for old in std::fs::read_dir(&roots)?.filter_map(|e| e.ok()) {
                let file_name = old.file_name().to_string_lossy().into_owned();
                if file_name != name && file_name.starts_with(&format!("{}-", corpus.kernel)) && old.path().is_dir() {
                    eprintln!("dkms-corpus: removing the outdated base root {}", old.path().display());
                    std::fs::remove_dir_all(old.path())?;
                    let _ = std::fs::remove_dir_all(dir.join("results").join(&file_name));
                }
            }
        }
        let out = Command::new("chroot").arg(&root).args(["dpkg-query", "-W", "-f", "${Version}", "dkms"]).output()?;
        let archives = dir.join("apt-archives");
        std::fs::create_dir_all(archives.join("partial"))?;
        let base = Base {
            results: dir.join("results").join(&name),
            logs: dir.join("logs").join(&corpus.kernel),
            archives,
            apt_lock: dir.join("apt.lock"),
            kernel: corpus.kernel.clone(),
            dkms_version: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            root,
        };
        std::fs::create_dir_all(&base.results)?;
        Ok(Some(base))
    }

    /// A result measured earlier against this same root.
    pub fn kept(&self, package: &str, version: &str) -> Option<Side> {
        let text = std::fs::read_to_string(self.result_file(package, version)).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn result_file(&self, package: &str, version: &str) -> PathBuf {
        self.results.join(format!("{package}_{}.json", version.replace(':', "%3a")))
    }

    /// Install `package` (= `version`) into a fresh overlay and `dkms build` it.
    pub fn build(&self, package: &str, version: &str) -> Side {
        let side = self.build_inner(package, version).unwrap_or_else(|e| Side {
            outcome: Outcome::Failed,
            modules: Vec::new(),
            seconds: 0.0,
            cause: Some(format!("corpus runner: {e:#}")),
        });
        eprintln!("dkms   {package}: {}", crate::dkms_report::short(&side));
        // Only real measurements are kept; a runner error is retried next time.
        if !side.cause.as_deref().is_some_and(|c| c.starts_with("corpus runner:")) {
            let _ =
                std::fs::write(self.result_file(package, version), serde_json::to_string(&side).unwrap_or_default());
        }
        side
    }

    fn build_inner(&self, package: &str, version: &str) -> Result<Side> {
        let work = tempfile::Builder::new().prefix("hermod-corpus-dkms").tempdir_in("/var/tmp")?;
        let mut child = Command::new("unshare")
            .args(["-m", "-p", "--fork", "--propagation", "private", "bash", "-s"])
            .arg(&self.root)
            .arg(work.path())
            .args([package, version, &self.kernel])
            .arg(&self.archives)
            .arg(&self.apt_lock)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running unshare")?;
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin is piped"), SCRIPT.as_bytes())?;
        let out = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("the chroot script failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        }
        // Keep the logs for a look later; the root's copy goes with `work`.
        // (hermod's own log, `hermod.log`, shares the directory and stays.)
        let logs = self.logs.join(package);
        for old in std::fs::read_dir(&logs).into_iter().flatten().filter_map(|e| e.ok()) {
            if old.file_name() != "hermod.log" {
                let _ = std::fs::remove_file(old.path());
            }
        }
        std::fs::create_dir_all(&logs)?;
        for entry in std::fs::read_dir(work.path().join("logs"))?.filter_map(|e| e.ok()) {
            std::fs::copy(entry.path(), logs.join(entry.file_name()))?;
        }
        Ok(parse_script_output(&stdout, &logs))
    }
}

/// `mmdebstrap` into `<root>.tmp`, renamed into place when complete.
fn make_base(dir: &Path, root: &Path, corpus: &Corpus) -> Result<()> {
    // (Not `with_extension`: a kernel release has dots.)
    let name = root.file_name().expect("a root has a name").to_string_lossy().into_owned();
    let tmp = root.with_file_name(format!("{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    // The archives hermod reads for this corpus, as one deb822 file: the
    // machine's own sources for its release, the same mirrors with the
    // suites renamed (and every component) for another (see dkms_corpus.rs).
    // apt ignores a sources.list.d file with a `+` in its name (a kernel
    // release has one), and mmdebstrap keeps the file's name.
    let sources = dir.join("sources").join(format!("{}.sources", name.replace('+', "_")));
    std::fs::create_dir_all(sources.parent().expect("a file has a directory"))?;
    std::fs::write(&sources, deb822(&corpus.sources)?)?;
    eprintln!("dkms-corpus: making the DKMS base root {} (mmdebstrap, {})", root.display(), sources.display());
    let status = Command::new("mmdebstrap")
        .args(["--variant=apt", "--mode=root", "--format=directory", "--skip=cleanup/apt/lists", "--quiet"])
        .arg(format!("--include=dkms,linux-headers-{}", corpus.kernel))
        .arg("--customize-hook=touch \"$1/etc/dkms/no-autoinstall\"")
        .arg(&corpus.suite)
        .arg(&tmp)
        .arg(&sources)
        .status()
        .context("running mmdebstrap (apt-get install mmdebstrap)")?;
    if !status.success() {
        bail!("mmdebstrap failed ({status})");
    }
    std::fs::rename(&tmp, root)?;
    Ok(())
}

/// `sources` as one deb822 `.sources` file (mmdebstrap pastes it into the root).
fn deb822(sources: &[hermod::apt::Source]) -> Result<String> {
    let mut text = String::new();
    for s in sources {
        let hermod::apt::SignedBy::Keyrings(keys) = &s.signed_by else {
            bail!("{} {}: an inline Signed-By key is not supported here", s.uri, s.suite);
        };
        text += &format!("Types: deb\nURIs: {}\nSuites: {}\nComponents: {}\n", s.uri, s.suite, s.components.join(" "));
        if !keys.is_empty() {
            let keys: Vec<String> = keys.iter().map(|k| k.display().to_string()).collect();
            text += &format!("Signed-By: {}\n", keys.join(" "));
        }
        if !s.check_valid_until {
            text += "Check-Valid-Until: no\n";
        }
        text += "\n";
    }
    Ok(text)
}

/// The script's `key value` lines (see `dkms_chroot.sh`) → a [`Side`].
/// Logs are read from `logs`, where they were copied.
fn parse_script_output(stdout: &str, logs: &Path) -> Side {
    let log = |name: &str| std::fs::read_to_string(logs.join(name)).unwrap_or_default();
    let mut builds: Vec<(String, i32)> = Vec::new();
    let mut seconds = 0.0;
    let mut modules = Vec::new();
    for line in stdout.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "failed" => {
                let cause = match value {
                    "apt-get install" => {
                        let apt = log("apt.log");
                        let first = apt.lines().find(|l| l.starts_with("E: ")).map(str::to_owned);
                        format!("apt-get install failed: {}", first.unwrap_or_else(|| last(&apt)))
                    }
                    other => other.to_owned(),
                };
                return Side { outcome: Outcome::Failed, modules, seconds, cause: Some(truncate(&cause, 200)) };
            }
            "build" => builds.push((value.split(' ').next().unwrap_or("").to_owned(), -1)),
            "status" => {
                if let Some(b) = builds.last_mut() {
                    b.1 = value.parse().unwrap_or(-1);
                }
            }
            "seconds" => seconds += value.parse::<f64>().unwrap_or(0.0),
            "module" => modules.extend(module_name(value)),
            _ => {}
        }
    }
    modules.sort();
    modules.dedup();
    if builds.is_empty() {
        let cause = Some("dkms add registered no module (see add-*.log)".to_owned());
        return Side { outcome: Outcome::Failed, modules, seconds, cause };
    }
    let cause_of = |name: &str, status: i32| {
        let dkms_log = log(&format!("dkms-{name}.log"));
        let make = first_error(&log(&format!("make-{name}.log")));
        let said = dkms_log.lines().find(|l| l.starts_with("Error!")).map(str::to_owned);
        let why = match (status, make) {
            (10, Some(first)) => format!("make failed: {first}"),
            _ => said.or_else(|| first_error(&dkms_log)).unwrap_or_else(|| last(&dkms_log)),
        };
        truncate(&format!("exit {status}: {why}"), 200)
    };
    let outcome = if builds.iter().any(|(_, s)| *s != 0 && *s != 77) {
        Outcome::Failed
    } else if builds.iter().all(|(_, s)| *s == 77) {
        Outcome::Skipped
    } else {
        Outcome::Built
    };
    let cause = builds.iter().find(|(_, s)| *s != 0).map(|(name, s)| cause_of(name, *s));
    Side { outcome, modules, seconds, cause }
}

fn last(text: &str) -> String {
    text.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("(no output)").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_become_deb822() {
        let source = hermod::apt::Source {
            uri: "http://mirror.example/debian".into(),
            suite: "trixie".into(),
            components: vec!["main".into(), "contrib".into()],
            architectures: Vec::new(),
            signed_by: hermod::apt::SignedBy::Keyrings(vec!["/usr/share/keyrings/k.gpg".into()]),
            check_valid_until: true,
            declared_in: "/x".into(),
            derived_from: None,
        };
        assert_eq!(
            deb822(&[source]).unwrap(),
            "Types: deb\nURIs: http://mirror.example/debian\nSuites: trixie\nComponents: main contrib\n\
             Signed-By: /usr/share/keyrings/k.gpg\n\n"
        );
    }

    #[test]
    fn script_output_is_read() {
        let logs = tempfile::tempdir().unwrap();
        std::fs::write(logs.path().join("make-b.log"), "cc x.c\n/var/lib/dkms/b/1/build/x.c:1:2: error: nope\n")
            .unwrap();
        let out = "tree /usr/src/a-1\nbuild a 1\nstatus 0\nseconds 1.5\nmodule a.ko\ntree /usr/src/b-1\nbuild b 1\nstatus 10\nseconds 2\n";
        let side = parse_script_output(out, logs.path());
        assert_eq!(side.outcome, Outcome::Failed);
        assert_eq!(side.modules, ["a"]);
        assert_eq!(side.seconds, 3.5);
        assert_eq!(side.cause.as_deref(), Some("exit 10: make failed: x.c:1:2: error: nope"));
        let skipped = parse_script_output("build a 1\nstatus 77\nseconds 0.2\n", logs.path());
        assert_eq!(skipped.outcome, Outcome::Skipped);
        std::fs::write(logs.path().join("apt.log"), "Reading\nE: Unable to locate package x\n").unwrap();
        let apt = parse_script_output("failed apt-get install\n", logs.path());
        assert_eq!(apt.cause.as_deref(), Some("apt-get install failed: E: Unable to locate package x"));
    }
}
