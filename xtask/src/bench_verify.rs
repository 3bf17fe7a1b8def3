//! The verify part of `cargo xtask bench`: `hermod verify` of the hello module
//! next to one cold `hermod build` of it (a cache miss, build root present),
//! alternated in the same run, each on a source no run has seen (a fresh key).
//! verify is two cold builds bypassing the cache, plus the work around them
//! (copying the source twice, the comparison, the variations); the goal is
//! ≤ 2.1× one cold build.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::{fresh_hello, median, ms, run_quiet};

pub fn bench(hermod_cmd: &dyn Fn() -> Command, kernel: &str, work: &Path, runs: usize) -> Result<()> {
    let out = work.join("out-verify-bench");
    let mut cold = Vec::new();
    let mut verify = Vec::new();
    for i in 0..runs {
        let src = fresh_hello(work, 2000 + i)?;
        cold.push(run_quiet(hermod_cmd().args([
            "build",
            src.to_str().unwrap(),
            "--kernel",
            kernel,
            "--out",
            out.to_str().unwrap(),
        ]))?);
        let src = fresh_hello(work, 3000 + i)?;
        verify.push(run_quiet(hermod_cmd().args(["verify", src.to_str().unwrap(), "--kernel", kernel]))?);
    }
    let (c, v) = (median(cold), median(verify));
    println!(
        "verify of hello:        {}  one cold build {}  ratio {:.2}  (goal <= 2.1)",
        ms(v),
        ms(c),
        v.as_secs_f64() / c.as_secs_f64()
    );
    Ok(())
}
