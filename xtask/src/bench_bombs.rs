//! `cargo xtask bench --only bombs`: hermod's peak RSS on hostile inputs
//! (`hermod::bombs`), one table, against the 256 MiB goal of issue 14.
//!
//! Each .deb is given as SOURCE to `hermod build` in a fresh store: it must be
//! refused while being read (exit 3), before any build root. The last case, a
//! build that leaves a 1 GiB module, needs a build root for `--kernel`: it runs
//! in the bench store (`HERMOD_BENCH_STORE`) and is skipped when that store
//! cannot make one (it then says so).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};

/// Peak RSS hermod may reach on any hostile input.
const GOAL_KIB: u64 = 256 * 1024;

type Maker = fn(&Path) -> std::io::Result<()>;

pub fn bench(hermod: &Path, kernel: &str, store: &Path) -> Result<()> {
    let cases: [(&str, Maker); 7] = [
        ("data.tar expanding to 2 GiB (one file)", |p| hermod::bombs::data_bomb(p, 2 << 30)),
        ("data.tar of 1.25 GiB in 5 MiB files", |p| hermod::bombs::many_files(p, 256, 5 << 20)),
        ("control field of 1 GiB", |p| hermod::bombs::control_field_bomb(p, 1 << 30)),
        ("control field of 200 MiB", |p| hermod::bombs::control_field_bomb(p, 200 << 20)),
        ("ar header claiming 10 GB", |p| hermod::bombs::ar_size_lie(p, 9_999_999_999)),
        ("GNU long name of 512 MiB", |p| hermod::bombs::long_name(p, 512 << 20)),
        ("pax record of 512 MiB", |p| hermod::bombs::pax_bomb(p, 512 << 20)),
    ];
    println!("hermod on hostile inputs: peak RSS (goal <= {} MiB)", GOAL_KIB / 1024);
    println!("{:<42} {:>5} {:>10} {:>8}  verdict", "case", "exit", "peak RSS", "time");
    let mut over = 0;
    for (name, make) in cases {
        let dir = tempfile::tempdir()?;
        let deb = dir.path().join("bomb-dkms_1_all.deb");
        make(&deb).with_context(|| format!("making {name}"))?;
        let fresh = dir.path().join("store");
        let (code, kib, secs, _) = measured(hermod, &fresh, kernel, &deb, dir.path())?;
        over += row(name, code, kib, secs, 3);
    }
    let dir = tempfile::tempdir()?;
    match output_bomb(dir.path()) {
        Ok(src) => {
            let (code, kib, secs, stderr) = measured(hermod, store, kernel, &src, dir.path())?;
            if code == Some(5) && stderr.contains("max_module_size") {
                over += row("a build leaving a 1 GiB module", code, kib, secs, 5);
            } else {
                println!(
                    "{:<42} skipped: the build did not get as far as its outputs:\n{stderr}",
                    "a build leaving a 1 GiB module"
                );
            }
        }
        Err(e) => println!("a build leaving a 1 GiB module: skipped ({e})"),
    }
    if over > 0 {
        anyhow::bail!("{over} case(s) over the goal or with the wrong exit status");
    }
    Ok(())
}

/// One table row; 1 when the case misses the goal or the expected exit status.
fn row(name: &str, code: Option<i32>, kib: u64, secs: f64, expected: i32) -> u32 {
    let ok = kib <= GOAL_KIB && code == Some(expected);
    let exit = code.map_or("sig".to_string(), |c| c.to_string());
    let verdict = if ok { "ok" } else { "OVER GOAL or wrong exit" };
    println!("{name:<42} {exit:>5} {:>6} MiB {secs:>7.1}s  {verdict}", kib / 1024);
    u32::from(!ok)
}

/// `hermod build SOURCE` under GNU time: exit code, peak RSS in KiB, seconds, stderr.
fn measured(
    hermod: &Path,
    store: &Path,
    kernel: &str,
    source: &Path,
    dir: &Path,
) -> Result<(Option<i32>, u64, f64, String)> {
    let report = dir.join("time");
    let out = dir.join("out");
    let started = Instant::now();
    let result = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(hermod)
        .args(["build", "-q", "--kernel", kernel, "--out"])
        .arg(&out)
        .arg(source)
        .env("HERMOD_STORE", store)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("running /usr/bin/time (package `time`)")?;
    let secs = started.elapsed().as_secs_f64();
    let kib = std::fs::read_to_string(&report)?
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .context("GNU time's report")?;
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    Ok((result.status.code(), kib, secs, stderr))
}

/// A DKMS source whose "make" leaves a 1 GiB module (zeros; not stripped).
fn output_bomb(dir: &Path) -> Result<std::path::PathBuf> {
    let src = dir.join("bigout");
    std::fs::create_dir(&src)?;
    std::fs::write(
        src.join("dkms.conf"),
        "PACKAGE_NAME=bigout\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=bigout\nSTRIP[0]=no\n\
         MAKE[0]=\"head -c 1073741824 /dev/zero > bigout.ko\"\n",
    )?;
    Ok(src)
}
