//! The cross part of `cargo xtask bench`: what building for arm64 on this
//! amd64 master costs against building for amd64, the same module and the
//! same kernel version (trixie's newest arm64 kernel and its amd64 twin),
//! alternated in one run, each on a source no run has seen (a fresh key,
//! build roots present). Also each build root's size: the cross root holds
//! the arm64 headers, the master's tools and the cross compiler.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{fresh_hello, median, ms, run_quiet};

/// The newest kernel of flavour `arm64` the archive offers for trixie
/// (`hermod plan`'s reading of the archive), and its amd64 twin.
fn kernels(hermod_cmd: &dyn Fn() -> Command, hello: &Path) -> Result<(String, String)> {
    let out = hermod_cmd().args(["plan", "--modules"]).arg(hello).args(["--kernels", "all:arm64"]).output()?;
    if !out.status.success() {
        bail!("hermod plan --kernels all:arm64: {}", String::from_utf8_lossy(&out.stderr));
    }
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let version = |k: &str| -> Vec<u32> { k.split(['.', '+', '-']).map_while(|n| n.parse().ok()).collect() };
    let arm64 = plan["include"]
        .as_array()
        .context("a plan")?
        .iter()
        .filter_map(|e| e["kernel"].as_str())
        .filter(|k| k.ends_with("+deb13-arm64"))
        .max_by_key(|k| version(k))
        .context("the archive offers no trixie arm64 kernel")?
        .to_owned();
    let amd64 = format!("{}-amd64", arm64.strip_suffix("-arm64").expect("an arm64 flavour"));
    Ok((arm64, amd64))
}

/// `hermod rootfs build --kernel K`: the root's package count and size.
fn root(hermod_cmd: &dyn Fn() -> Command, kernel: &str) -> Result<String> {
    run_quiet(hermod_cmd().args(["rootfs", "build", "--kernel", kernel]))?;
    let lock = hermod_cmd().args(["rootfs", "lock", "--kernel", kernel]).output()?;
    let text = String::from_utf8(lock.stdout)?;
    let packages: Vec<&str> = text.lines().filter(|l| l.starts_with("package ")).collect();
    let bytes: u64 = packages.iter().filter_map(|l| l.split(' ').nth(5)?.parse::<u64>().ok()).sum();
    Ok(format!("{} packages, {:.1} MB of .debs", packages.len(), bytes as f64 / 1e6))
}

pub fn bench(hermod_cmd: &dyn Fn() -> Command, work: &Path, runs: usize) -> Result<()> {
    let (arm64, amd64) = kernels(hermod_cmd, &crate::repo_root().join("testdata/modules/hello"))?;
    println!("cross build roots:      arm64 {}  amd64 {}", root(hermod_cmd, &arm64)?, root(hermod_cmd, &amd64)?);
    let out = work.join("out-cross-bench");
    let build = |kernel: &str, salt: usize| -> Result<std::time::Duration> {
        let src = fresh_hello(work, salt)?;
        run_quiet(hermod_cmd().args(["build", src.to_str().unwrap(), "--kernel", kernel, "--out"]).arg(&out))
    };
    let (mut cross, mut native) = (Vec::new(), Vec::new());
    for i in 0..runs {
        cross.push(build(&arm64, 4000 + i)?);
        native.push(build(&amd64, 5000 + i)?);
    }
    let (c, n) = (median(cross), median(native));
    println!(
        "cold build of hello:    arm64 (cross, {arm64}) {}  amd64 ({amd64}) {}  ratio {:.2}",
        ms(c),
        ms(n),
        c.as_secs_f64() / n.as_secs_f64()
    );
    Ok(())
}
