//! `hermod verify`: the glue between the command line and [`crate::verify`].
//!
//! The parent prepares the source (a `.deb` or `pkg:` is unpacked once),
//! resolves the build root's lock once (both builds use that very lock, so an
//! archive that moves between them cannot fake a mismatch), and starts each
//! build as a child `hermod verify --child-out …` of this same executable
//! under its conditions ([`crate::verify::conditions`]). The child builds the
//! copied source tree with the cache bypassed and prints `hermod build
//! --json`'s report; the parent compares the packages.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Args;
use sha2::{Digest, Sha256};

use super::{AppError, Global, NeedsArgs, SigningArgs};
use crate::input::Input;
use crate::limits::BuildLimits;
use crate::pipeline::{Archives, BuildOptions, Context, PipelineError};
use crate::verify::conditions::{wait_past, Side};
use crate::verify::{self, BuildRecord, Report, Variation, VerifyError};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Module source: a directory holding dkms.conf, a *-dkms_*.deb file, or pkg:NAME[=VERSION]
    pub source: String,
    #[command(flatten)]
    pub needs: NeedsArgs,
    /// Kernel release [default: the newest linux-headers-amd64 in the archive]
    #[arg(long, value_name = "KREL")]
    pub kernel: Option<String>,
    /// Build once and compare with this already published package instead of building twice
    #[arg(long, value_name = "DEB")]
    pub against: Option<PathBuf>,
    /// Wall-clock limit for each build, in seconds
    #[arg(long, default_value_t = super::DEFAULT_TIMEOUT.as_secs())]
    pub timeout: u64,
    /// Resource limit of the build sandbox, NAME=VALUE (repeatable), as for `hermod build`
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    pub limits: Vec<String>,
    /// Print the report as one JSON object
    #[arg(long)]
    pub json: bool,
    /// Also boot the kernel the module is for (linux-image-KREL from the archive) under qemu
    /// with software emulation, and load and unload the built module in it (as `hermod
    /// load-test`); a module that does not load is exit 14, after a mismatch's 13
    #[arg(long)]
    pub boot: bool,
    #[command(flatten)]
    pub signing: SigningArgs,
    /// (internal) Make jobs of one build; each build's conditions set it
    #[arg(long, hide = true)]
    pub jobs: Option<usize>,
    /// (internal) Be one build of a verification: build SOURCE (a directory) once with this
    /// lock file, bypassing the cache, into --child-out
    #[arg(long, hide = true, value_name = "FILE", requires = "child_out")]
    pub child_lock: Option<PathBuf>,
    /// (internal) Where that one build writes its .deb
    #[arg(long, hide = true, value_name = "DIR", requires = "child_lock")]
    pub child_out: Option<PathBuf>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> VerifyError + '_ {
    move |source| VerifyError::Io { path: path.to_owned(), source }
}

/// `hermod verify`.
pub fn verify(global: &Global, args: &VerifyArgs) -> Result<(), AppError> {
    if let (Some(lock), Some(out)) = (&args.child_lock, &args.child_out) {
        return one_build(global, args, lock, out);
    }
    // The children build; the parent checks their limits and signing key
    // before anything is built.
    BuildLimits::from_args(&args.limits)?;
    let archives = super::archives(global, None)?;
    args.signing.load(global)?;
    // The published package is checked before anything is built.
    let published = match &args.against {
        Some(path) => Some((path.clone(), read_published(path)?)),
        None => None,
    };
    let kernel = match &args.kernel {
        Some(k) => k.clone(),
        None => archives.default_kernel()?,
    };
    let input = Input::parse(&args.source)?.prepare(&archives, &kernel, &args.source, &args.needs.build_depends)?;
    // The source is checked as a build checks it (special files, symlinks out of
    // the tree: exit 3) before it is copied for the two sides.
    crate::source::SourceTree::scan(&input.dir)?;
    let lock = archives.lock_with(&kernel, &input.build_depends)?;

    // The first side lives in the store's staging area, the second in the
    // system's temporary directory: two unrelated host paths.
    let store = archives.store();
    let here = store.staging_dir("verify-")?;
    let elsewhere = tempfile::Builder::new().prefix("hermod-verify-").tempdir().map_err(io_err(Path::new("/tmp")))?;
    let lock_file = here.path().join("build-root.lock");
    std::fs::write(&lock_file, lock.file_text()).map_err(io_err(&lock_file))?;
    let name = input.dir.file_name().map_or_else(|| "source".into(), |n| n.to_string_lossy().into_owned());
    let child_args = |side: &Side| child_args(global, args, &archives, &input.build_depends, &lock_file, side);
    let exe = std::env::current_exe().map_err(io_err(Path::new("/proc/self/exe")))?;

    let mut sides = Vec::new();
    if published.is_none() {
        sides.push(Side::first(&here.path().join("first"), &name));
        sides.push(Side::second("second", &elsewhere.path().join("second"), &name));
    } else {
        sides.push(Side::second("rebuild", &elsewhere.path().join("rebuild"), &name));
    }
    // The builds overlap: the second starts as soon as the wall clock has
    // passed the second the first started in (a later second is one of the
    // variations), while the first may still run. Each child's output pipes
    // are drained by a thread of its own.
    for side in &sides {
        side.prepare(&input.dir)?;
    }
    let mut running: Vec<(u64, u32, std::thread::JoinHandle<_>)> = Vec::new();
    for side in &mut sides {
        if let Some((after, _, _)) = running.last() {
            wait_past(*after);
        }
        let (role, from) = (&side.role, side.source.display());
        crate::say::note(format_args!("verify: {role} build: {} for {kernel}, from {from}", args.source));
        let child = match side.spawn(&exe, &child_args(side)) {
            Ok(child) => child,
            Err(e) => {
                // Not one build left running behind an error, nor waited for
                // to its end: killed (a build survives SIGKILL cleanly), then reaped.
                for (_, pid, handle) in running {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::SIGKILL);
                    drop(handle.join());
                }
                return Err(e.into());
            }
        };
        let pid = child.pid();
        running.push((child.started, pid, std::thread::spawn(move || child.finish())));
    }
    // Every child is waited for before any result is judged.
    let finished: Vec<(u64, std::io::Result<(std::process::Output, f64)>)> = running
        .into_iter()
        .map(|(started, _, handle)| (started, handle.join().expect("waiting for a child does not panic")))
        .collect();
    let mut built = Vec::new();
    for (side, (started, result)) in sides.iter().zip(finished) {
        let (output, seconds) = result.map_err(|source| VerifyError::Spawn { which: side.role.clone(), source })?;
        let deb = child_result(&side.role, &output)?;
        // The child's own output, yet read whole: bounded like any .deb.
        let bytes =
            crate::bounded::read_user_file(&deb, crate::bounded::current().max_deb_size).map_err(io_err(&deb))?;
        built.push((deb, started, seconds, bytes));
    }

    let mut builds: Vec<BuildRecord> = sides
        .iter()
        .zip(&built)
        .map(|(side, (deb, started, seconds, bytes))| BuildRecord {
            role: side.role.clone(),
            deb: PathBuf::from(deb.file_name().unwrap_or_default()),
            sha256: hex::encode(Sha256::digest(bytes)),
            started: Some(*started),
            started_utc: Some(verify::utc(*started)),
            seconds: Some(*seconds),
            conditions: side.describe(),
        })
        .collect();
    let (first_bytes, second_bytes) = match &published {
        Some((path, bytes)) => {
            // The published package is the reference: "first", listed first.
            builds.insert(
                0,
                BuildRecord {
                    role: "published".into(),
                    deb: path.clone(),
                    sha256: hex::encode(Sha256::digest(bytes)),
                    started: None,
                    started_utc: None,
                    seconds: None,
                    conditions: Default::default(),
                },
            );
            (bytes.as_slice(), built[0].3.as_slice())
        }
        None => (built[0].3.as_slice(), built[1].3.as_slice()),
    };
    let variations = match published {
        Some(_) => variations(&Side::caller(Path::new(&args.source)), None, &sides[0], Some(built[0].1)),
        None => variations(&sides[0], Some(built[0].1), &sides[1], Some(built[1].1)),
    };
    let differences = verify::compare(first_bytes, second_bytes);
    let package = built[0].0.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let mut report = Report {
        source: args.source.clone(),
        kernel: kernel.clone(),
        package: package.clone(),
        matches: differences.is_empty(),
        builds,
        variations,
        differences,
        kept: None,
        diffoscope: None,
        diffoscope_note: None,
        boot: None,
    };
    if !report.matches {
        // Failing to keep the evidence must not hide the verdict (exit 13).
        if let Err(e) = keep(store.logs(), &mut report, &built, published.as_ref().map(|(p, _)| p.as_path())) {
            report.diffoscope_note = Some(format!("the differing packages were not kept: {e}"));
        }
    }
    // The load test boots the package just built (the first side's; with
    // --against, the rebuild): what the fleet would install, if they match.
    let mut boot_error = None;
    if args.boot {
        let options = crate::load_test::BootOptions::default();
        match crate::load_test::load_test(&archives, Some(&kernel), std::slice::from_ref(&built[0].0), &options) {
            Ok(boot) => report.boot = Some(boot),
            Err(e) => boot_error = Some(e),
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("the report serializes"));
    } else {
        print!("{}", verify::text(&report));
        if let Some(boot) = &report.boot {
            print!("{}", super::load_test::human(boot));
        }
    }
    if !report.matches {
        let what = match args.against {
            Some(_) => "the rebuild differs from the published package",
            None => "the two builds differ",
        };
        return Err(VerifyError::Mismatch { package, what: what.into(), count: report.differences.len() }.into());
    }
    if let Some(e) = boot_error {
        return Err(e.into());
    }
    match &report.boot {
        Some(boot) => Ok(boot.verdict()?),
        None => Ok(()),
    }
}

/// Read `--against`'s package: it must exist and be an ar archive (a .deb);
/// anything it holds after that is compared, damaged or not.
fn read_published(path: &Path) -> Result<Vec<u8>, VerifyError> {
    let bad = |reason: String| VerifyError::BadAgainst { path: path.to_owned(), reason };
    // Read whole to be compared, so bounded (max_deb_size); only a regular file is opened
    // (a FIFO would block forever).
    let limits = crate::bounded::current();
    let bytes = crate::bounded::read_user_file(path, limits.max_deb_size).map_err(|e| match e.kind() {
        std::io::ErrorKind::FileTooLarge => {
            bad(crate::bounded::Exceeded::new(crate::bounded::Limit::DebSize, &limits).to_string())
        }
        _ => bad(e.to_string()),
    })?;
    if !bytes.starts_with(b"!<arch>\n") {
        return Err(VerifyError::BadAgainst {
            path: path.to_owned(),
            reason: "not a .deb (no ar archive magic)".into(),
        });
    }
    Ok(bytes)
}

/// `path` made absolute against the caller's directory: the children run
/// elsewhere (a relative `--dkms-overrides` would silently name nothing there).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The command line of one child build, without `--jobs` (the side adds it).
fn child_args(
    global: &Global,
    args: &VerifyArgs,
    archives: &Archives,
    build_depends: &[String],
    lock_file: &Path,
    side: &Side,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut flag = |name: &str, value: &dyn AsRef<std::ffi::OsStr>| {
        a.push(name.into());
        a.push(value.as_ref().to_owned());
    };
    flag("--store", &absolute(archives.store().root()));
    flag("--package-cache", &absolute(archives.store().packages()));
    flag("--maintainer", &global.maintainer);
    flag("--dkms-overrides", &absolute(&global.dkms_overrides));
    if let Some(recipe) = &global.recipe {
        flag("--recipe", &absolute(recipe));
    }
    if let Some(config) = &global.config {
        flag("--config", &absolute(config));
    }
    a.push("-q".into());
    a.push("verify".into());
    a.push(side.source.clone().into());
    let mut flag = |name: &str, value: &dyn AsRef<std::ffi::OsStr>| {
        a.push(name.into());
        a.push(value.as_ref().to_owned());
    };
    if let Some(key) = &args.signing.mok_signing_key {
        flag("--mok-signing-key", &absolute(key));
    }
    if let Some(cert) = &args.signing.mok_certificate {
        flag("--mok-certificate", &absolute(cert));
    }
    flag("--timeout", &args.timeout.to_string());
    for limit in &args.limits {
        flag("--limit", limit);
    }
    if !build_depends.is_empty() {
        flag("--build-depends", &build_depends.join(","));
    }
    flag("--child-lock", &lock_file);
    flag("--child-out", &side.out);
    a
}

/// The child's .deb, from its `hermod build --json` line.
fn child_result(which: &str, out: &std::process::Output) -> Result<PathBuf, AppError> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(25)..].join("\n");
        let code = out.status.code().unwrap_or(1);
        return Err(VerifyError::BuildFailed { which: which.into(), code, tail }.into());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let no_report = |reason: String| VerifyError::NoReport { which: which.into(), reason };
    let value: serde_json::Value = serde_json::from_str(stdout.trim())
        .map_err(|e| no_report(format!("{e} in {:?} (stderr: {stderr})", stdout.trim())))?;
    if value["status"] == "skipped" {
        let reason = value["reason"].as_str().unwrap_or("excluded by dkms.conf").to_owned();
        return Err(PipelineError::Skipped(format!("nothing to verify: the build was skipped ({reason})")).into());
    }
    let deb = value["deb"].as_str().ok_or_else(|| no_report(format!("no deb in {value}")))?;
    Ok(PathBuf::from(deb))
}

/// Each condition of `a` and `b` side by side, and the start times.
fn variations(a: &Side, a_started: Option<u64>, b: &Side, b_started: Option<u64>) -> Vec<Variation> {
    let (da, db) = (a.describe(), b.describe());
    let mut out: Vec<Variation> = da
        .iter()
        .map(|(name, first)| {
            let second = db.get(name).cloned().unwrap_or_default();
            let dropped = a.dropped.iter().chain(&b.dropped).find(|(n, _)| n == name).map(|(_, why)| why.clone());
            let same = *first == second;
            Variation {
                name: name.clone(),
                applied: !same && dropped.is_none(),
                first: first.clone(),
                second,
                note: dropped.or_else(|| same.then(|| "the same on both sides".into())),
            }
        })
        .collect();
    let show = |t: Option<u64>| t.map_or("(when the caller runs)".into(), verify::utc);
    let later = matches!((a_started, b_started), (Some(x), Some(y)) if y > x) || a_started.is_none();
    out.push(Variation {
        name: "wall-clock time".into(),
        applied: later,
        first: show(a_started),
        second: show(b_started),
        note: None,
    });
    out
}

/// Keep the differing packages (and diffoscope's report) under the store's logs.
fn keep(
    logs: PathBuf,
    report: &mut Report,
    built: &[(PathBuf, u64, f64, Vec<u8>)],
    published: Option<&Path>,
) -> Result<(), VerifyError> {
    let stem = report.package.trim_end_matches(".deb");
    let dir = logs.join(format!("verify-{stem}-{}", built[0].1));
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let mut paths = Vec::new();
    if let Some(p) = published {
        paths.push(p.to_owned());
    }
    let rebuilt = report.builds.iter_mut().filter(|b| b.role != "published");
    for (record, (_, _, _, bytes)) in rebuilt.zip(built) {
        let path = dir.join(format!("{}.deb", record.role));
        std::fs::write(&path, bytes).map_err(io_err(&path))?;
        record.deb = path.clone();
        paths.push(path);
    }
    match verify::diffoscope(&paths[0], &paths[1], &dir.join("diffoscope.txt")) {
        Ok(path) => report.diffoscope = Some(path),
        Err(note) => report.diffoscope_note = Some(note),
    }
    report.kept = Some(dir);
    Ok(())
}

/// The child: one build of the copied source, the cache bypassed.
fn one_build(global: &Global, args: &VerifyArgs, lock: &Path, out: &Path) -> Result<(), AppError> {
    let ctx = Context::new(
        super::archives(global, Some(lock))?,
        BuildOptions {
            signing: args.signing.load(global)?,
            cache_policy: crate::pipeline::CachePolicy::Bypass,
            ..super::build_flags(global, args.jobs, args.timeout, &args.limits)?
        },
    );
    let kernel = ctx.archives.default_kernel()?;
    let needs = &args.needs.build_depends;
    let input = Input::Dir(PathBuf::from(&args.source)).prepare(&ctx.archives, &kernel, &args.source, needs)?;
    let report = ctx.build_one(&input, &kernel, out)?;
    println!("{}", serde_json::to_string(&report).expect("the report serializes"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(v: &'a [Variation], name: &str) -> &'a Variation {
        v.iter().find(|v| v.name == name).unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn every_condition_is_listed_and_what_was_not_applied_says_why() {
        let a = Side::first(Path::new("/var/tmp/a"), "m");
        let mut b = Side::second("second", Path::new("/tmp/b"), "m");
        let all = variations(&a, Some(100), &b, Some(101));
        assert_eq!(all.len(), 10, "{all:?}");
        assert!(all.iter().all(|v| v.applied && v.note.is_none()), "{all:?}");

        // A variation the child could not get is reported, not dropped.
        b.dropped.push(("uid".into(), "not applied: a user namespace was refused (EPERM)".into()));
        let v = variations(&a, Some(100), &b, Some(101));
        let uid = find(&v, "uid");
        assert!(!uid.applied && uid.note.as_deref().unwrap().contains("refused"), "{uid:?}");

        // The same value on both sides, or no later second, is no variation.
        let same = variations(&a, Some(100), &a, Some(100));
        assert!(!find(&same, "umask").applied);
        assert_eq!(find(&same, "umask").note.as_deref(), Some("the same on both sides"));
        assert!(!find(&same, "wall-clock time").applied);
    }
}
