//! Developer tasks: `cargo xtask <task>`.
//!
//! - `tidy`: the codemap's invariants that no single file shows (`tidy.rs`).
//! - `ci`: the README's test command: installs the Debian packages the tests use
//!   when missing (as root; `setup.rs`) and the S3 test server (`cargo install`,
//!   once per machine), then tidy, the whole test suite, then
//!   hermod's own package from the test build's binary (`dist --check`).
//! - `dist [--binary PATH] [--out DIR] [--check] | --check-binary`: hermod as a
//!   Debian package (`dist.rs`), its reproducibility and lintian checks.
//! - `man --out DIR`: the man pages (DIR/man1) and shell completion scripts
//!   (DIR/completions) the package installs, without building it (`dist_files.rs`).
//! - `bench`: speed figures measured side by side in one run (ratios, not
//!   absolute times: machines are noisy). Targets are printed next to them.
//!   `--only verify`: just `hermod verify` against one cold build (`bench_verify.rs`).
//!   `--only cross`: an arm64 cross build against the amd64 build of the same
//!   module and kernel version (`bench_cross.rs`).
//!   `--only bombs`: hermod's peak RSS on hostile .debs and a 1 GiB build output
//!   (`bench_bombs.rs`; goal <= 256 MiB each).
//! - `all-kernels [SOURCE]`: build SOURCE (default: the hello module) for every
//!   kernel the archive offers (`hermod build --kernel all`) in the bench store,
//!   and print one line per kernel plus the build roots' disk use.
//! - `kill-trials [--trials N]`: kill -9 hermod at random moments of builds
//!   and store commits; after each, the store must serve nothing torn and the
//!   next run must give the reference bytes (`kill_trials.rs`).
//! - `dkms-corpus [--release NAME] [--backports]`: every `*-dkms` package of
//!   the archive's main component (another release: also contrib, non-free)
//!   built by hermod and by DKMS (in a throwaway chroot), side by side; writes
//!   `docs/dkms-corpus.md`, `docs/dkms-corpus-RELEASE[-backports].md` (see
//!   `dkms_corpus.rs`); `--arch arm64`: hermod alone, cross-built, judged
//!   against the amd64 report (`docs/dkms-corpus-RELEASE-arm64.md`, `dkms_cross.rs`).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

mod bench_bombs;
mod bench_cache;
mod bench_cross;
mod bench_remote;
mod bench_rootfs;
mod bench_verify;
mod dist;
mod dist_check;
mod dist_files;
mod dkms_chroot;
mod dkms_corpus;
mod dkms_cross;
mod dkms_report;
mod kill_trials;
mod modgraph;
mod setup;
mod tidy;

fn main() -> Result<()> {
    // The sandbox bench runs hermod's sandbox in-process; the sandbox re-executes
    // this binary as its init.
    hermod_sandbox::enter_if_requested();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("tidy") => tidy::run(),
        Some("bench") => bench(&args[1..]),
        Some("all-kernels") => all_kernels(&args[1..]),
        Some("kill-trials") => kill_trials::run(&hermod_binary()?, &args[1..]),
        Some("dkms-corpus") => dkms_corpus::run(&args[1..]),
        Some("dist") => dist::run(&args[1..]),
        Some("man") => dist_files::write_docs(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask ci | tidy\n       cargo xtask bench [--kernel KREL] [--runs N] [--only sandbox --tree DIR | --only rootfs | --only cache | --only verify | --only cross | --only bombs]\n       \
                 cargo xtask all-kernels [SOURCE]\n       cargo xtask man --out DIR\n       cargo xtask kill-trials [--trials N] [--kernel KREL] [--seed N]\n       {}\n       {}",
                dkms_corpus::USAGE,
                dist::USAGE
            );
            std::process::exit(2);
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The README's test command: the tests, then the package of the binary the
/// tests just built (a debug build: CI compiles hermod once).
fn ci() -> Result<()> {
    setup::ensure_test_packages()?;
    let tools = setup::ensure_test_crates()?;
    tidy::run()?;
    // The tools are there now: a test that finds one missing fails, never skips.
    let status = Command::new("cargo")
        // Every test binary runs even after one fails: a CI log names all failures.
        .args(["test", "--workspace", "--no-fail-fast"])
        .env("HERMOD_TEST_REQUIRE_TOOLS", "1")
        .env("HERMOD_TEST_TOOLS", tools)
        .current_dir(repo_root())
        .status()?;
    if !status.success() {
        bail!("tests failed");
    }
    let binary = target_dir().join("debug/hermod");
    if !binary.is_file() {
        bail!("cargo test built no {}", binary.display());
    }
    dist::run(&["--binary".into(), binary.to_string_lossy().into_owned(), "--check".into()])
}

/// CARGO_TARGET_DIR, else the workspace's target/.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"))
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// The release hermod, built now; `HERMOD_BENCH_BIN` names another binary.
fn hermod_binary() -> Result<PathBuf> {
    hermod_binary_from("HERMOD_BENCH_BIN")
}

/// The release hermod, built now, unless the variable `env` names a binary.
fn hermod_binary_from(env: &str) -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os(env) {
        return Ok(PathBuf::from(bin));
    }
    let status = Command::new("cargo")
        .args(["build", "--release", "-p", "hermod", "--quiet"])
        .current_dir(repo_root())
        .status()?;
    if !status.success() {
        bail!("building hermod failed");
    }
    Ok(target_dir().join("release/hermod"))
}

fn run_quiet(cmd: &mut Command) -> Result<Duration> {
    let started = Instant::now();
    let out = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).output()?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!("{cmd:?} failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok(took)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A copy of the hello module whose source differs by one comment, so its key
/// is new and hermod must compile it.
fn fresh_hello(dir: &Path, salt: usize) -> Result<PathBuf> {
    let src = repo_root().join("testdata/modules/hello");
    let dest = dir.join(format!("hello-{salt}"));
    std::fs::create_dir_all(&dest)?;
    for name in ["dkms.conf", "Makefile", "hello.c"] {
        std::fs::copy(src.join(name), dest.join(name))?;
    }
    let c = dest.join("hello.c");
    // Unique per bench run too, so an earlier run's cache entries never hit.
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
    let body = std::fs::read_to_string(&c)? + &format!("/* bench salt {salt} {nonce} */\n");
    std::fs::write(c, body)?;
    Ok(dest)
}

fn bench(args: &[String]) -> Result<()> {
    let kernel = flag(args, "--kernel").unwrap_or_else(|| "6.1.0-56-amd64".into());
    let runs: usize = flag(args, "--runs").map(|r| r.parse()).transpose()?.unwrap_or(5);
    // `--only sandbox --tree DIR`: just the sandbox start, in an existing build root.
    if flag(args, "--only").as_deref() == Some("sandbox") {
        let tree = flag(args, "--tree").context("--only sandbox needs --tree <build root directory>")?;
        return sandbox_start(Path::new(&tree), runs.max(200));
    }
    let hermod = hermod_binary()?;
    if flag(args, "--only").as_deref() == Some("rootfs") {
        return bench_rootfs::bench(&hermod, &kernel);
    }
    let only_cache = flag(args, "--only").as_deref() == Some("cache");
    let only_verify = flag(args, "--only").as_deref() == Some("verify");
    let work = tempfile::tempdir()?;
    let store = std::env::var_os("HERMOD_BENCH_STORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/hermod-bench/store"));
    let packages = std::env::var_os("HERMOD_PACKAGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/hermod-test/packages"));
    if flag(args, "--only").as_deref() == Some("bombs") {
        return bench_bombs::bench(&hermod, &kernel, &store);
    }
    let hermod_cmd = || {
        let mut c = Command::new(&hermod);
        c.env("HERMOD_STORE", &store).env("HERMOD_PACKAGE_CACHE", &packages).arg("-q");
        c
    };

    if flag(args, "--only").as_deref() == Some("cross") {
        println!("hermod bench: {runs} runs each, medians");
        return bench_cross::bench(&hermod_cmd, work.path(), runs);
    }
    if only_verify {
        println!("hermod bench: kernel {kernel}, {runs} runs each, medians");
        // The build root first, so no sample pays for making it.
        run_quiet(hermod_cmd().args(["rootfs", "build", "--kernel", &kernel]))?;
        return bench_verify::bench(&hermod_cmd, &kernel, work.path(), runs);
    }
    if only_cache {
        bench_cache::local_hits(&hermod_cmd, &kernel, work.path(), runs)?;
        bench_remote::bench(&hermod, &store, &packages, &kernel, runs)?;
        return bench_cache::key_throughput(&hermod_cmd, &kernel, work.path());
    }

    println!("hermod bench: kernel {kernel}, {runs} runs each, medians");
    // Make sure the build root exists, and find it.
    let out = hermod_cmd().args(["rootfs", "build", "--kernel", &kernel]).output()?;
    if !out.status.success() {
        bail!("rootfs build failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let line = String::from_utf8(out.stdout)?;
    let tree = PathBuf::from(line.split_whitespace().nth(2).context("rootfs build prints hash kernel tree")?);

    // 1. Cold build (cache miss, build root present) vs bare make in the same root.
    let mut hermod_times = Vec::new();
    let mut make_times = Vec::new();
    for i in 0..runs {
        let src = fresh_hello(work.path(), i)?;
        let out_dir = work.path().join("out");
        hermod_times.push(run_quiet(hermod_cmd().args([
            "build",
            src.to_str().unwrap(),
            "--kernel",
            &kernel,
            "--out",
            out_dir.to_str().unwrap(),
        ]))?);
        let bare = fresh_hello(work.path(), 1000 + i)?;
        make_times.push(bare_make(&tree, &bare, &kernel)?);
    }
    let (h, m) = (median(hermod_times), median(make_times));
    println!(
        "cold build of hello:   hermod {}  bare make (unshare+chroot, same root) {}  ratio {:.2}  (goal <= 1.05)",
        ms(h),
        ms(m),
        h.as_secs_f64() / m.as_secs_f64()
    );

    // 1b. verify: two cold builds bypassing the cache, against one cold build.
    bench_verify::bench(&hermod_cmd, &kernel, work.path(), runs)?;
    // 1c. arm64 from this amd64 master, against amd64.
    bench_cross::bench(&hermod_cmd, work.path(), runs)?;

    // 2. Reusing an existing build root: resolve + find it, no download.
    let mut reuse = Vec::new();
    for _ in 0..runs {
        reuse.push(run_quiet(hermod_cmd().args(["rootfs", "build", "--kernel", &kernel]))?);
    }
    println!("reuse of existing root: {}  (index check + resolve + lookup)", ms(median(reuse)));

    // 3. Cache hit of an unchanged module, for scale against DKMS's 1.7 s rebuild.
    let src = work.path().join("hello-0");
    let mut hits = Vec::new();
    for _ in 0..runs {
        hits.push(run_quiet(hermod_cmd().args([
            "build",
            src.to_str().unwrap(),
            "--kernel",
            &kernel,
            "--out",
            work.path().join("out").to_str().unwrap(),
        ]))?);
    }
    println!("cache hit of hello:     {}", ms(median(hits)));
    bench_cache::local_hits(&hermod_cmd, &kernel, work.path(), runs)?;
    bench_remote::bench(&hermod, &store, &packages, &kernel, runs)?;
    bench_cache::key_throughput(&hermod_cmd, &kernel, work.path())?;

    sandbox_start(&tree, runs.max(200))?;

    // 4. Build roots: materialization cold and warm against mmdebstrap; disk use.
    bench_rootfs::bench(&hermod, &kernel)?;
    println!(
        "disk: {}  (goal for all 11 kernels <= 900 MiB; fill the store with `cargo xtask all-kernels`)",
        bench_rootfs::disk_use(&store)
    );
    Ok(())
}

/// Start + exit of `/bin/true` inside the build root: hermod's sandbox next to
/// `unshare` and `bwrap` doing the same (namespaces, the root, /proc), same run.
fn sandbox_start(tree: &Path, runs: usize) -> Result<()> {
    let spec = hermod_sandbox::Spec::new(tree.to_owned(), vec!["/bin/true".into()]);
    // The same without the cgroup limits, to show what the group costs.
    let mut no_cgroup = spec.clone();
    (no_cgroup.limits.memory, no_cgroup.limits.pids) = (None, None);
    let tree_s = tree.to_str().context("root path is UTF-8")?;
    let mut ours = Vec::new();
    let mut ours_no_cgroup = Vec::new();
    let mut unshare = Vec::new();
    let mut bwrap = Vec::new();
    let have_bwrap = Command::new("bwrap").arg("--version").output().is_ok();
    for _ in 0..runs {
        let started = Instant::now();
        let outcome = hermod_sandbox::run(&spec)?;
        ours.push(started.elapsed());
        if !outcome.success() {
            bail!("hermod sandbox: /bin/true ended with {:?}", outcome.exit);
        }
        let started = Instant::now();
        hermod_sandbox::run(&no_cgroup)?;
        ours_no_cgroup.push(started.elapsed());
        unshare.push(run_quiet(Command::new("unshare").args(["-Urmnpi", "--fork", "chroot", tree_s, "/bin/true"]))?);
        if have_bwrap {
            bwrap.push(run_quiet(Command::new("bwrap").args([
                "--unshare-all",
                "--ro-bind",
                tree_s,
                "/",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--tmpfs",
                "/tmp",
                "/bin/true",
            ]))?);
        }
    }
    let ours = median(ours);
    let bw = if have_bwrap { ms(median(bwrap.clone())) } else { "not installed".into() };
    println!(
        "sandbox start+exit of /bin/true ({runs} runs): hermod {}  unshare -Urmnpi {}  bwrap {}  (goal <= 3 ms and <= bwrap)",
        ms(ours),
        ms(median(unshare)),
        bw
    );
    println!("  hermod without cgroup limits {}", ms(median(ours_no_cgroup)));
    if have_bwrap {
        println!("  ratio hermod/bwrap {:.2}", ours.as_secs_f64() / median(bwrap).as_secs_f64());
    }
    Ok(())
}

/// `make` for the module in `src` inside `tree`, with only unshare + chroot
/// (the baseline the project was first measured against): the floor hermod's sandbox is compared to.
/// The source is bound over the root's empty /tmp, the one mount point it has;
/// `-j` is the same as hermod's default.
fn bare_make(tree: &Path, src: &Path, kernel: &str) -> Result<Duration> {
    let script = format!(
        "mount --bind {src} {tree}/tmp && exec chroot {tree} /usr/bin/make -j{jobs} -C /usr/src/linux-headers-{kernel} M=/tmp KERNELRELEASE={kernel} modules",
        src = src.display(),
        tree = tree.display(),
        jobs = std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    run_quiet(Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]))
}

/// `hermod build SOURCE --kernel all` in the bench store: a table per kernel
/// and the disk the build roots take (`du` counts hard-linked files once).
fn all_kernels(args: &[String]) -> Result<()> {
    let source = args.first().map(PathBuf::from).unwrap_or_else(|| repo_root().join("testdata/modules/hello"));
    let hermod = hermod_binary()?;
    let store = std::env::var_os("HERMOD_BENCH_STORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/hermod-bench/store"));
    let out = tempfile::tempdir()?;
    let started = Instant::now();
    let result = Command::new(&hermod)
        .env("HERMOD_STORE", &store)
        .args(["build", source.to_str().context("source path is UTF-8")?, "--kernel", "all", "--json", "--out"])
        .arg(out.path())
        .stderr(Stdio::inherit())
        .output()?;
    let took = started.elapsed();
    let mut built = 0;
    println!("{:<28} {:<6} {:>9}  package", "kernel", "cache", "seconds");
    for line in String::from_utf8(result.stdout)?.lines() {
        let r: serde_json::Value = serde_json::from_str(line)?;
        built += 1;
        println!(
            "{:<28} {:<6} {:>9.1}  {}",
            r["kernel"].as_str().unwrap_or("?"),
            r["cache"].as_str().unwrap_or("?"),
            r["seconds"].as_f64().unwrap_or(0.0),
            Path::new(r["deb"].as_str().unwrap_or("?")).file_name().unwrap_or_default().to_string_lossy()
        );
    }
    let du = |args: &[&str]| -> String {
        Command::new("du")
            .args(args)
            .arg(store.join("rootfs"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap_or("?").to_owned())
            .unwrap_or_else(|_| "?".into())
    };
    println!(
        "{built} packages in {:.0} s; build roots on disk: {} (apparent size, hard links counted each time: {})",
        took.as_secs_f64(),
        du(&["-sh"]),
        du(&["-sh", "--count-links"])
    );
    if !result.status.success() {
        bail!("hermod build --kernel all failed ({})", result.status);
    }
    Ok(())
}
