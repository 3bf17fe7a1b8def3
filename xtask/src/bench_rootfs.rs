//! `cargo xtask bench`, build-root part: hermod's materialization next to
//! mmdebstrap making the equivalent chroot (`--variant=essential` plus the
//! root's exact packages), cold (nothing downloaded) and warm (packages at
//! hand), measured in the same run; peak memory; disk use.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Wall time and peak RSS (KiB, from GNU time) of a command that must succeed.
fn measured(cmd: &mut Command) -> Result<(Duration, u64)> {
    let report = tempfile::NamedTempFile::new()?;
    let program = cmd.get_program().to_owned();
    let mut timed = Command::new("/usr/bin/time");
    timed.args(["-f", "%M", "-o"]).arg(report.path()).arg(program).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let started = Instant::now();
    let out = timed.stdout(Stdio::piped()).stderr(Stdio::piped()).output().context("running /usr/bin/time")?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!("{cmd:?} failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    let kib = std::fs::read_to_string(report.path())?.lines().last().unwrap_or("0").trim().parse().unwrap_or(0);
    Ok((took, kib))
}

/// The package names and versions of a materialized root, from its `lock` file.
fn locked_packages(root_dir: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(root_dir.join("lock")).context("reading the root's lock file")?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("package "))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some(format!("{}={}", f.next()?, f.next()?))
        })
        .collect())
}

/// The machine's APT source files, for mmdebstrap (never a hard-coded mirror).
pub fn apt_source_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("sources" | "list")));
    let main = PathBuf::from("/etc/apt/sources.list");
    if std::fs::read_to_string(&main).is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with("deb"))) {
        files.push(main);
    }
    files.sort();
    files
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn mib(kib: u64) -> String {
    format!("{} MiB", kib / 1024)
}

/// Everything below runs once (cold runs download ~80 MB).
pub fn bench(hermod: &Path, kernel: &str) -> Result<()> {
    let scratch = tempfile::Builder::new().prefix("hermod-bench-rootfs").tempdir_in("/var/tmp")?;
    let store = scratch.path().join("store");
    let packages = scratch.path().join("packages");
    let hermod_rootfs = || {
        let mut c = Command::new(hermod);
        c.env("HERMOD_STORE", &store)
            .env("HERMOD_PACKAGE_CACHE", &packages)
            .args(["-q", "rootfs", "build", "--kernel", kernel]);
        c
    };

    let (cold, cold_rss) = measured(&mut hermod_rootfs())?;
    let root_dir = std::fs::read_dir(store.join("rootfs"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .context("the rootfs build left no root")?;
    // Warm: the root is gone, its packages are downloaded (and unpacked, where the store keeps them).
    std::fs::remove_dir_all(&root_dir)?;
    let (warm, warm_rss) = measured(&mut hermod_rootfs())?;

    let have_mmdebstrap = Command::new("mmdebstrap").arg("--version").output().is_ok();
    if !have_mmdebstrap {
        println!(
            "build root cold: hermod {} (peak {})  warm: hermod {} (peak {})  mmdebstrap: not installed",
            secs(cold),
            mib(cold_rss),
            secs(warm),
            mib(warm_rss)
        );
        return Ok(());
    }
    // The same packages in the smallest chroot where dpkg can configure them:
    // their maintainer scripts need Debian's Essential set (base-passwd for
    // `chown root:root`, perl-base, libc-bin's ldconfig), which hermod's root,
    // unpacked without maintainer scripts, leaves out.
    let include = locked_packages(&root_dir)?.join(",");
    let mm = |target: &Path, warm_from: Option<&Path>| {
        let mut c = Command::new("mmdebstrap");
        c.args(["--variant=essential", "--mode=root", "--format=directory"]).arg(format!("--include={include}"));
        if let Some(debs) = warm_from {
            c.arg(format!(
                "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives && cp {}/*.deb \"$1\"/var/cache/apt/archives/",
                debs.display()
            ))
            .arg("--skip=download/empty");
        }
        c.arg("bookworm").arg(target).args(apt_source_files());
        c
    };
    let (mm_cold, mm_cold_rss) = measured(&mut mm(&scratch.path().join("mm-cold"), None))?;
    let (mm_warm, mm_warm_rss) = measured(&mut mm(&scratch.path().join("mm-warm"), Some(&packages)))?;
    println!(
        "build root cold (download + unpack): hermod {} (peak {})  mmdebstrap {} (peak {})  ratio {:.2}",
        secs(cold),
        mib(cold_rss),
        secs(mm_cold),
        mib(mm_cold_rss),
        cold.as_secs_f64() / mm_cold.as_secs_f64()
    );
    println!(
        "build root warm (packages at hand):  hermod {} (peak {})  mmdebstrap {} (peak {})  ratio {:.2}  (goal: hermod <= 2 s)",
        secs(warm),
        mib(warm_rss),
        secs(mm_warm),
        mib(mm_warm_rss),
        warm.as_secs_f64() / mm_warm.as_secs_f64()
    );
    Ok(())
}

/// Disk taken by the build roots of a store (`du` counts a hard-linked file once).
pub fn disk_use(store: &Path) -> String {
    let du = |extra: &[&str]| -> String {
        let dirs: Vec<PathBuf> =
            ["rootfs", "files", "unpacked"].iter().map(|d| store.join(d)).filter(|p| p.exists()).collect();
        Command::new("du")
            .arg("-csh")
            .args(extra)
            .args(&dirs)
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .last()
                    .map(|l| l.split('\t').next().unwrap_or("?").to_owned())
            })
            .unwrap_or_else(|| "?".into())
    };
    let roots = std::fs::read_dir(store.join("rootfs"))
        .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()).count())
        .unwrap_or(0);
    format!("{roots} build roots: {} on disk; {} if each were a separate chroot", du(&[]), du(&["--count-links"]))
}
