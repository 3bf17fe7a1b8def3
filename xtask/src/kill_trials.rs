//! `cargo xtask kill-trials [--trials N] [--kernel KREL]`: kill -9 hermod at
//! random moments of builds and store commits, and check after every kill
//! that the store serves nothing torn or partial and the next run succeeds
//! with the right bytes.
//!
//! A handful of distinct keys (the hello module with different Maintainer
//! fields) is built once in a clean store for reference. Each trial then
//! usually drops the cache (so the next build compiles and commits again),
//! starts `hermod build` for one key, kills it with SIGKILL after a random
//! delay — for a compiling build half the time anywhere in the run, half the
//! time near its end, where the .deb is written and committed; for a likely
//! cache hit within its first 40 ms — and then:
//! - `hermod cache verify` must find no bad entry (a torn entry would be one),
//! - the same build again must succeed with the reference's exact bytes,
//! - the output directory must hold only that complete .deb under its name.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const KEYS: usize = 4;

/// Tiny deterministic generator: trials are repeatable from `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn sha256(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum").arg(path).output()?;
    Ok(String::from_utf8(out.stdout)?.split_whitespace().next().unwrap_or_default().to_owned())
}

pub fn run(hermod: &Path, args: &[String]) -> Result<()> {
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let trials: usize = flag("--trials").map(|t| t.parse()).transpose()?.unwrap_or(100);
    let kernel = flag("--kernel").unwrap_or_else(|| "6.1.0-56-amd64".into());
    let seed: u64 = flag("--seed").map(|s| s.parse()).transpose()?.unwrap_or(0x5eed_1234);
    let packages = std::env::var_os("HERMOD_PACKAGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/hermod-test/packages"));
    let work = tempfile::Builder::new().prefix("hermod-kill-").tempdir_in("/var/tmp")?;
    let store = work.path().join("store");
    let source = crate::repo_root().join("testdata/modules/hello");
    let hermod_in = |store: &Path| {
        let mut c = Command::new(hermod);
        c.env("HERMOD_STORE", store).env("HERMOD_PACKAGE_CACHE", &packages).arg("-q");
        c
    };
    // One lock for every run: no archive access during the trials.
    let lock = work.path().join("hello.lock");
    let ok = hermod_in(&store).args(["rootfs", "lock", "--kernel", &kernel, "--out"]).arg(&lock).status()?;
    if !ok.success() {
        bail!("hermod rootfs lock failed");
    }
    let build = |store: &Path, key: usize, out: &Path| {
        let mut c = hermod_in(store);
        c.arg("build")
            .arg(&source)
            .arg("--lock")
            .arg(&lock)
            .arg("--out")
            .arg(out)
            .args(["--maintainer", &format!("Kill Trial {key} <trial{key}@hermod.invalid>")]);
        c
    };

    // References, and how long a compiling build takes.
    let reference_store = work.path().join("reference");
    let mut reference = Vec::new();
    let mut full = Duration::ZERO;
    for key in 0..KEYS {
        let out = work.path().join(format!("ref-{key}"));
        let started = Instant::now();
        let status = build(&reference_store, key, &out).stdout(Stdio::null()).status()?;
        // The first build also makes the build root; time the others.
        if key > 0 {
            full = full.max(started.elapsed());
        }
        if !status.success() {
            bail!("reference build {key} failed");
        }
        let deb = std::fs::read_dir(&out)?.flatten().next().context("reference .deb")?.path();
        reference.push((deb.file_name().unwrap().to_owned(), sha256(&deb)?));
    }
    println!("kill-trials: {trials} trials, {KEYS} keys, a compiling build takes {:.1} s", full.as_secs_f64());

    let mut rng = Rng(seed | 1);
    // The trials' store gets its build root before the first trial.
    let warm = work.path().join("warm");
    if !build(&store, KEYS, &warm).stdout(Stdio::null()).status()?.success() {
        bail!("the first build in the trials' store failed");
    }
    let (mut killed, mut finished, mut near_end) = (0, 0, 0);
    for trial in 0..trials {
        let dropped = rng.below(3) != 0;
        if dropped {
            let st = hermod_in(&store).args(["cache", "gc", "--max-size", "0"]).stdout(Stdio::null()).status()?;
            if !st.success() {
                bail!("trial {trial}: cache gc failed");
            }
        }
        let key = rng.below(KEYS as u64) as usize;
        let out = work.path().join(format!("out-{trial}"));
        let full_ms = full.as_millis() as u64;
        let delay = if !dropped {
            // Probably a cache hit: it takes milliseconds (lookup, export).
            rng.below(40)
        } else if rng.below(2) == 0 {
            rng.below(full_ms)
        } else {
            near_end += 1;
            full_ms.saturating_sub(400) + rng.below(500)
        };
        let mut child = build(&store, key, &out).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        std::thread::sleep(Duration::from_millis(delay));
        match child.try_wait()? {
            Some(_) => finished += 1,
            None => {
                child.kill()?; // SIGKILL
                killed += 1;
            }
        }
        child.wait()?;

        let verify = hermod_in(&store).args(["cache", "verify"]).output()?;
        if !verify.status.success() {
            bail!(
                "trial {trial} (key {key}, killed after {delay} ms): the store holds a bad entry:\n{}",
                String::from_utf8_lossy(&verify.stdout)
            );
        }
        let again = build(&store, key, &out).output()?;
        if !again.status.success() {
            bail!("trial {trial}: the run after the kill failed:\n{}", String::from_utf8_lossy(&again.stderr));
        }
        let (name, sha) = &reference[key];
        let got = sha256(&out.join(name))?;
        if &got != sha {
            bail!("trial {trial}: after the kill the .deb differs from the reference ({got} vs {sha})");
        }
        let visible: Vec<_> = std::fs::read_dir(&out)?
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| !n.to_string_lossy().starts_with(".tmp-"))
            .collect();
        if visible != [name.clone()] {
            bail!("trial {trial}: the output directory holds {visible:?}");
        }
        std::fs::remove_dir_all(&out)?;
        if (trial + 1) % 10 == 0 {
            println!("  {} trials: {killed} killed, {finished} had finished; all consistent", trial + 1);
        }
    }
    println!(
        "kill-trials: {trials} trials ({killed} killed mid-run, {near_end} aimed at the commit, {finished} finished first): \
         no torn or partial entry was ever served, every next run gave the reference bytes"
    );
    Ok(())
}
