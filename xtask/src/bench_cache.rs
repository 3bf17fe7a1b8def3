//! The cache part of `cargo xtask bench`: a whole-process local cache hit for
//! a real DKMS package's source, and key computation throughput on a large
//! tree next to `b3sum` over the same files, measured in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{median, ms, run_quiet};

/// Unpacks v4l2loopback-dkms's source (fetched with `apt-get download`)
/// into `work` and returns its /usr/src tree.
fn v4l2loopback_source(work: &Path) -> Result<PathBuf> {
    let dl = work.join("dl");
    std::fs::create_dir_all(&dl)?;
    let status = Command::new("apt-get").args(["download", "-q", "v4l2loopback-dkms"]).current_dir(&dl).status()?;
    if !status.success() {
        bail!("apt-get download v4l2loopback-dkms failed");
    }
    let deb = std::fs::read_dir(&dl)?.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|e| e == "deb"));
    let deb = deb.context("no .deb downloaded")?;
    let x = work.join("v4l2loopback");
    let status = Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x).status()?;
    if !status.success() {
        bail!("dpkg-deb -x {} failed", deb.display());
    }
    let src = std::fs::read_dir(x.join("usr/src"))?.flatten().map(|e| e.path()).next();
    src.context("no /usr/src tree in v4l2loopback-dkms")
}

/// Whole-process `hermod build` cache hits of v4l2loopback, with a lock file
/// (no archive access at all) and without (the signed Release files are
/// fetched to know the archive is unchanged).
pub fn local_hits(hermod_cmd: &dyn Fn() -> Command, kernel: &str, work: &Path, runs: usize) -> Result<()> {
    let src = v4l2loopback_source(work)?;
    let lock = work.join("bench.lock");
    let out = work.join("out-v4l2");
    let status = hermod_cmd()
        .args(["rootfs", "lock", "--kernel", kernel, "--out"])
        .arg(&lock)
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        bail!("hermod rootfs lock failed");
    }
    let build = |with_lock: bool| {
        let mut c = hermod_cmd();
        c.arg("build").arg(&src).arg("--out").arg(&out);
        if with_lock {
            c.arg("--lock").arg(&lock);
        } else {
            c.args(["--kernel", kernel]);
        }
        c
    };
    // The first build fills the cache (or hits already).
    run_quiet(&mut build(true))?;
    let runs = runs.max(20);
    let mut locked = Vec::new();
    let mut unlocked = Vec::new();
    for _ in 0..runs {
        locked.push(run_quiet(&mut build(true))?);
        unlocked.push(run_quiet(&mut build(false))?);
    }
    println!(
        "local cache hit, v4l2loopback, whole process ({runs} runs): with --lock {}  (goal <= 15 ms; DKMS rebuilds in 1.7 s)  \
         without a lock {} (fetches the signed Release files)",
        ms(median(locked)),
        ms(median(unlocked))
    );
    Ok(())
}

/// A tree of `files` pseudo-random files of `size` bytes each, plus a dkms.conf.
fn large_tree(dir: &Path, files: usize, size: usize) -> Result<u64> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut total = 0;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("dkms.conf"), "PACKAGE_NAME=big\nPACKAGE_VERSION=1\n")?;
    for i in 0..files {
        let sub = dir.join(format!("d{:02}", i % 64));
        std::fs::create_dir_all(&sub)?;
        let mut bytes = vec![0u8; size];
        for chunk in bytes.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = chunk.len();
            chunk.copy_from_slice(&state.to_le_bytes()[..n]);
        }
        std::fs::write(sub.join(format!("f{i}.c")), &bytes)?;
        total += size as u64;
    }
    Ok(total)
}

/// `hermod key` (scan + hash of every file, whole process) against `b3sum`
/// hashing the same files, warm page cache, same run.
pub fn key_throughput(hermod_cmd: &dyn Fn() -> Command, kernel: &str, work: &Path) -> Result<()> {
    let tree = work.join("large-tree");
    let bytes = large_tree(&tree, 4096, 64 << 10)?;
    let lock = work.join("bench.lock");
    if !lock.exists() {
        let status = hermod_cmd().args(["rootfs", "lock", "--kernel", kernel, "--out"]).arg(&lock).status()?;
        if !status.success() {
            bail!("hermod rootfs lock failed");
        }
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for d in std::fs::read_dir(&tree)?.flatten() {
        if d.path().is_dir() {
            files.extend(std::fs::read_dir(d.path())?.flatten().map(|e| e.path()));
        }
    }
    let have_b3sum = Command::new("b3sum").arg("--version").output().is_ok();
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..5 {
        ours.push(run_quiet(hermod_cmd().arg("key").arg(&tree).arg("--lock").arg(&lock))?);
        if have_b3sum {
            let started = Instant::now();
            let out = Command::new("b3sum").args(&files).output()?;
            if !out.status.success() {
                bail!("b3sum failed");
            }
            theirs.push(started.elapsed());
        }
    }
    let mbs = |d: Duration| bytes as f64 / 1048576.0 / d.as_secs_f64();
    let ours = median(ours);
    let line = format!(
        "key computation, {} MiB in {} files (whole process): hermod key {:.0} MB/s ({})",
        bytes >> 20,
        files.len(),
        mbs(ours),
        ms(ours)
    );
    if have_b3sum {
        let b3 = median(theirs);
        println!("{line}  b3sum {:.0} MB/s ({})  ratio {:.2}", mbs(b3), ms(b3), mbs(ours) / mbs(b3));
    } else {
        println!("{line}  (b3sum not installed: apt install b3sum)");
    }
    Ok(())
}
