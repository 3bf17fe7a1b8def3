//! `cargo xtask dkms-corpus`: every `*-dkms` package of the archive's main
//! component built by hermod and by DKMS itself for one kernel, side by side,
//! so that every difference is visible (issue 5: hermod must build at least
//! what DKMS builds). The DKMS side is in [`crate::dkms_chroot`], the table
//! and the committed report in [`crate::dkms_report`].
//!
//! Everything it keeps lives under `/var/cache/hermod-corpus/`: hermod's
//! dedicated store (`store/`), DKMS's base root (`dkms-root/`), apt's download
//! cache for it (`apt-archives/`), DKMS results (`results/`) and logs (`logs/`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::{dkms_chroot, dkms_report};

pub const USAGE: &str = "cargo xtask dkms-corpus [--kernel KREL] [--only NAME,...] [--hermod-only | --dkms-only] [--jobs N] [--fresh] [--json] [--out FILE]";

const CORPUS_DIR: &str = "/var/cache/hermod-corpus";
const ARCH: &str = "amd64";

/// How one side fared on one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Built,
    Skipped,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Side {
    pub outcome: Outcome,
    /// Module names (without `.ko` and compression suffix), sorted.
    pub modules: Vec<String>,
    pub seconds: f64,
    /// Why it failed or was skipped: the first meaningful line.
    pub cause: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub package: String,
    pub version: String,
    pub hermod: Option<Side>,
    pub dkms: Option<Side>,
}

pub struct Options {
    pub kernel: Option<String>,
    pub only: Vec<String>,
    pub hermod: bool,
    pub dkms: bool,
    pub jobs: usize,
    /// Run DKMS again even where a result for the same base root is kept.
    pub fresh: bool,
    pub json: bool,
    pub out: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        kernel: None,
        only: Vec::new(),
        hermod: true,
        dkms: true,
        jobs: 1,
        fresh: false,
        json: false,
        out: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value; usage: {USAGE}"));
        match arg.as_str() {
            "--kernel" => o.kernel = Some(value()?.clone()),
            "--only" => o.only = value()?.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            "--hermod-only" => o.dkms = false,
            "--dkms-only" => o.hermod = false,
            "--jobs" => o.jobs = value()?.parse().context("--jobs takes a number")?,
            "--fresh" => o.fresh = true,
            "--json" => o.json = true,
            "--out" => o.out = Some(PathBuf::from(value()?)),
            _ => bail!("unknown argument {arg}; usage: {USAGE}"),
        }
    }
    if !o.hermod && !o.dkms {
        bail!("--hermod-only and --dkms-only exclude each other");
    }
    o.jobs = o.jobs.max(1);
    Ok(o)
}

/// What the archive says: the packages, the kernel, and which index content
/// they came from.
pub struct Corpus {
    pub packages: Vec<(String, String)>,
    /// `*-dkms` names left out, with why.
    pub excluded: Vec<(String, String)>,
    pub kernel: String,
    /// [`hermod::apt::Snapshot::identity`] of the main component's indices.
    pub identity: String,
    /// The suite mmdebstrap is asked for (the first configured one without a `-`).
    pub suite: String,
}

/// List the newest version of every `*-dkms` binary package of the **main**
/// component, through hermod's own verified chain (InRelease signature →
/// Packages SHA256), never the host's /var/lib/apt/lists. hermod's `Package`
/// does not record its component, so the sources are narrowed to `main`
/// before any index is read.
fn list_corpus(store: &Path, kernel: Option<&str>) -> Result<Corpus> {
    let config = hermod::config::Config::load(None)?;
    let mut sources = config.package_sources()?;
    for s in &mut sources.archives {
        s.components.retain(|c| c == "main");
    }
    sources.archives.retain(|s| !s.components.is_empty());
    // Local .deb directories have no component: not part of "the archive's main".
    sources.local_dirs.clear();
    let suite = sources
        .archives
        .iter()
        .map(|s| s.suite.clone())
        .find(|s| !s.contains('-'))
        .context("no configured archive has a plain release suite (like bookworm) with a main component")?;
    let snapshot = sources.snapshot(ARCH)?;
    let identity = snapshot.identity();
    let store = hermod::store::Store::open(store, None)?;
    let archive = snapshot.load(&store.indices())?;
    let kernel = match kernel {
        Some(k) => k.to_owned(),
        None => hermod::rootfs::Recipe::builtin().default_kernel(&archive)?,
    };
    let mut packages = Vec::new();
    let mut excluded = Vec::new();
    for name in archive.names_matching("", "-dkms") {
        let p = archive.newest(name).expect("a listed name has a version");
        // dh-dkms (the debhelper add-on) is named like one but builds nothing:
        // a module package is one that needs dkms to be installed.
        if depends_on_dkms(&p.depends) {
            packages.push((p.name.clone(), p.version.clone()));
        } else {
            excluded.push((p.name.clone(), "does not depend on dkms (a module package does)".to_owned()));
        }
    }
    Ok(Corpus { packages, excluded, kernel, identity, suite })
}

/// Whether a Depends field names `dkms` (in any alternative).
fn depends_on_dkms(depends: &str) -> bool {
    depends.split([',', '|']).map(|d| d.trim().split([' ', '(', ':']).next().unwrap_or("")).any(|name| name == "dkms")
}

pub fn run(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    let started = Instant::now();
    let dir = PathBuf::from(CORPUS_DIR);
    let store = std::env::var_os("HERMOD_CORPUS_STORE").map(PathBuf::from).unwrap_or_else(|| dir.join("store"));
    std::fs::create_dir_all(&store)?;
    let corpus = list_corpus(&store, opts.kernel.as_deref())?;
    let mut packages = corpus.packages.clone();
    if !opts.only.is_empty() {
        for name in &opts.only {
            if let Some((_, why)) = corpus.excluded.iter().find(|(n, _)| n == name) {
                bail!("{name} is not in the corpus: it {why}");
            }
            if !packages.iter().any(|(n, _)| n == name) {
                bail!("{name} is not a -dkms package of the main component");
            }
        }
        packages.retain(|(n, _)| opts.only.contains(n));
    }
    eprintln!("dkms-corpus: {} packages, kernel {}, archive {}", packages.len(), corpus.kernel, &corpus.identity[..16]);

    let mut rows: Vec<Row> = packages
        .iter()
        .map(|(package, version)| Row { package: package.clone(), version: version.clone(), hermod: None, dkms: None })
        .collect();

    let hermod_started = Instant::now();
    let mut hermod_commit = None;
    if opts.hermod {
        let bin = crate::hermod_binary_from("HERMOD_BIN")?;
        hermod_commit = Some(git_commit());
        let side = HermodSide::new(bin, store.clone(), &corpus.kernel)?;
        let results = in_parallel(&packages, opts.jobs, |(name, version)| side.build(name, version));
        for (row, side) in rows.iter_mut().zip(results) {
            row.hermod = Some(side);
        }
    }
    let hermod_seconds = hermod_started.elapsed().as_secs_f64();

    let mut dkms_reused = 0;
    // Without --fresh, DKMS results already measured against the same base
    // root (same kernel, same archive content) are shown again; with
    // --hermod-only they are shown but nothing new is measured.
    let base = dkms_chroot::Base::ensure(&dir, &corpus, opts.dkms)?;
    if let Some(base) = &base {
        let todo: Vec<usize> = (0..rows.len())
            .filter(|&i| {
                rows[i].dkms = if opts.fresh { None } else { base.kept(&rows[i].package, &rows[i].version) };
                rows[i].dkms.is_none() && opts.dkms
            })
            .collect();
        dkms_reused = rows.iter().filter(|r| r.dkms.is_some()).count();
        let pairs: Vec<(String, String)> =
            todo.iter().map(|&i| (rows[i].package.clone(), rows[i].version.clone())).collect();
        let results = in_parallel(&pairs, opts.jobs, |(name, version)| base.build(name, version));
        for (i, side) in todo.into_iter().zip(results) {
            rows[i].dkms = Some(side);
        }
    }

    let report = dkms_report::Report {
        kernel: corpus.kernel.clone(),
        identity: corpus.identity.clone(),
        hermod_commit,
        dkms_version: base.as_ref().map(|b| b.dkms_version.clone()),
        excluded: corpus.excluded.clone(),
        rows,
        hermod_seconds: opts.hermod.then_some(hermod_seconds),
        dkms_reused,
    };
    if opts.json {
        print!("{}", report.json_lines());
    } else {
        print!("{}", report.table());
    }
    // The committed report only from a whole run, unless a file is named.
    let whole = opts.only.is_empty() && opts.hermod && opts.dkms;
    let out = opts.out.clone().or_else(|| whole.then(|| crate::repo_root().join("docs/dkms-corpus.md")));
    if let Some(out) = out {
        let previous = std::fs::read_to_string(&out).unwrap_or_default();
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&out, report.markdown(&previous))?;
        eprintln!("dkms-corpus: report written to {}", out.display());
    }
    eprintln!("dkms-corpus: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `f` over `items`, `jobs` at a time; results in the items' order.
fn in_parallel<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(items.len()).max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let result = f(item);
                *slots[i].lock().unwrap() = Some(result);
            });
        }
    });
    slots.into_iter().map(|s| s.into_inner().unwrap().expect("every item ran")).collect()
}

/// The commit hermod was built from, `-dirty` if the tree had changes.
fn git_commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(crate::repo_root())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    format!("{commit}{}", if dirty { "-dirty" } else { "" })
}

/// The hermod side: `hermod build pkg:NAME` per package in a dedicated store.
struct HermodSide {
    bin: PathBuf,
    store: PathBuf,
    packages: PathBuf,
    kernel: String,
    out: tempfile::TempDir,
}

impl HermodSide {
    fn new(bin: PathBuf, store: PathBuf, kernel: &str) -> Result<HermodSide> {
        // A corpus run must compile every package: a cache hit would test
        // nothing (hermod's own changes are not in the key) and time nothing.
        // So the dedicated store's build cache goes; its build roots,
        // indices and logs stay.
        for sub in ["ac", "cas"] {
            let path = store.join(sub);
            if path.exists() {
                std::fs::remove_dir_all(&path).with_context(|| format!("emptying {}", path.display()))?;
            }
        }
        // Downloads are shared with the usual package cache (every .deb is
        // SHA256-checked on use, so sharing is safe).
        let packages = std::env::var_os("HERMOD_PACKAGE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/cache/hermod/packages"));
        let out = tempfile::Builder::new().prefix("hermod-corpus-out").tempdir_in("/var/tmp")?;
        Ok(HermodSide { bin, store, packages, kernel: kernel.to_owned(), out })
    }

    fn build(&self, name: &str, version: &str) -> Side {
        let started = Instant::now();
        let out_dir = self.out.path().join(name);
        let result = Command::new(&self.bin)
            .env("HERMOD_STORE", &self.store)
            .env("HERMOD_PACKAGE_CACHE", &self.packages)
            // The version listed, so both sides build the same thing.
            .args(["build", &format!("pkg:{name}={version}"), "--kernel", &self.kernel, "--json", "--out"])
            .arg(&out_dir)
            .stdin(Stdio::null())
            .output();
        let seconds = started.elapsed().as_secs_f64();
        let side = match result {
            Ok(out) => hermod_outcome(out.status.code(), &out.stdout, &out.stderr, seconds),
            Err(e) => failed(format!("could not run {}: {e}", self.bin.display()), seconds),
        };
        eprintln!("hermod {name}: {}", dkms_report::short(&side));
        side
    }
}

fn failed(cause: String, seconds: f64) -> Side {
    Side { outcome: Outcome::Failed, modules: Vec::new(), seconds, cause: Some(cause) }
}

/// hermod's exit status and output → a [`Side`] (exit codes: `hermod --help`;
/// 77 = every build skipped, as DKMS's own code for a skip).
fn hermod_outcome(code: Option<i32>, stdout: &[u8], stderr: &[u8], wall: f64) -> Side {
    let stdout = String::from_utf8_lossy(stdout);
    let stderr = String::from_utf8_lossy(stderr);
    let mut modules = Vec::new();
    let mut skipped = None;
    for line in stdout.lines() {
        let Ok(r) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if let Some(deb) = r["deb"].as_str() {
            modules.extend(deb_modules(Path::new(deb)));
        } else if r["status"].as_str() == Some("skipped") || r["skipped"].as_bool() == Some(true) {
            skipped = Some(r["reason"].as_str().or(r["cause"].as_str()).unwrap_or("skipped").to_owned());
        }
    }
    modules.sort();
    modules.dedup();
    let error = hermod_error(&stderr);
    match code {
        Some(0) => Side { outcome: Outcome::Built, modules, seconds: wall, cause: None },
        Some(77) => Side {
            outcome: Outcome::Skipped,
            modules,
            seconds: wall,
            cause: skipped.or(error).or_else(|| Some("skipped".into())),
        },
        Some(code) => {
            let mut cause = error.unwrap_or_else(|| last_line(&stderr).unwrap_or_default());
            if code == 5 {
                // make failed: the first compiler error says more than the tail.
                if let Some(log) = log_path(&stderr) {
                    if let Some(first) = std::fs::read_to_string(log).ok().as_deref().and_then(first_error) {
                        cause = format!("make failed: {first}");
                    }
                }
            }
            Side { outcome: Outcome::Failed, modules, seconds: wall, cause: Some(format!("exit {code}: {cause}")) }
        }
        None => failed("hermod was killed by a signal".into(), wall),
    }
}

/// The first line of `hermod: error: ...`, the part worth a table cell.
fn hermod_error(stderr: &str) -> Option<String> {
    let at = stderr.find("hermod: error: ")?;
    let first = stderr[at + "hermod: error: ".len()..].lines().next()?.trim();
    Some(first.trim_end_matches(':').to_owned())
}

fn log_path(stderr: &str) -> Option<&str> {
    let at = stderr.rfind("full log: ")?;
    stderr[at + "full log: ".len()..].split_whitespace().next()
}

fn last_line(text: &str) -> Option<String> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty()).map(str::to_owned)
}

/// The first compiler or make error of a build log, paths shortened to the
/// file name (the build directories differ between hermod and DKMS).
pub fn first_error(log: &str) -> Option<String> {
    // configure's "error: in `DIR':" only says where; its next line says what.
    let is_error = |l: &&str| (l.contains("error:") || l.contains("Error:")) && !l.contains("error: in `");
    let line = log.lines().find(is_error).or_else(|| log.lines().find(|l| l.contains("*** ")))?;
    let line = line.trim();
    let shortened = match line.find(": ") {
        Some(colon) if line[..colon].contains('/') && !line[..colon].contains(' ') => {
            let location = &line[..colon];
            format!("{}{}", &location[location.rfind('/').map_or(0, |s| s + 1)..], &line[colon..])
        }
        _ => line.to_owned(),
    };
    Some(truncate(&shortened, 200))
}

pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Module names in a .deb: `*.ko` files, compression suffix dropped.
fn deb_modules(deb: &Path) -> Vec<String> {
    let Ok(out) = Command::new("dpkg-deb").arg("-c").arg(deb).output() else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter_map(module_name)
        .collect()
}

/// `.../foo.ko`, `foo.ko.xz` → `foo`.
pub fn module_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().find_map(|s| file.strip_suffix(s))?;
    Some(stem.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dkms_dependency_is_recognised() {
        assert!(depends_on_dkms("dkms (>= 2.1.0.0), libc6-dev"));
        assert!(depends_on_dkms("perl, dkms"));
        assert!(depends_on_dkms("foo | dkms:any"));
        assert!(!depends_on_dkms("debhelper (>= 13), dkms-helper"));
        assert!(!depends_on_dkms(""));
    }

    #[test]
    fn first_error_prefers_the_compiler_line() {
        let log = "make -C x\n  CC [M]  /build/src/a.o\n/build/src/sub/a.c:3:5: error: 'x' undeclared\nmake[2]: *** [a.o] Error 1\n";
        assert_eq!(first_error(log).unwrap(), "a.c:3:5: error: 'x' undeclared");
        assert_eq!(first_error("make: *** [all] Error 2\n").unwrap(), "make: *** [all] Error 2");
        assert_eq!(first_error("all fine\n"), None);
        let configure = "configure: error: in `/build/src':\nconfigure: error: C compiler cannot create executables\n";
        assert_eq!(first_error(configure).unwrap(), "configure: error: C compiler cannot create executables");
    }

    #[test]
    fn hermod_failures_name_their_cause() {
        let stderr = b"hermod: building x\nhermod: error: bad input: dkms.conf: no PACKAGE_NAME\nmore\n";
        let side = hermod_outcome(Some(3), b"", stderr, 1.0);
        assert_eq!(side.outcome, Outcome::Failed);
        assert_eq!(side.cause.as_deref(), Some("exit 3: bad input: dkms.conf: no PACKAGE_NAME"));
        let skipped =
            hermod_outcome(Some(77), b"{\"status\":\"skipped\",\"reason\":\"BUILD_EXCLUSIVE_KERNEL\"}\n", b"", 1.0);
        assert_eq!(skipped.outcome, Outcome::Skipped);
        assert_eq!(skipped.cause.as_deref(), Some("BUILD_EXCLUSIVE_KERNEL"));
    }

    #[test]
    fn module_names_drop_suffixes() {
        assert_eq!(module_name("./lib/modules/k/updates/dkms/v4l2loopback.ko").as_deref(), Some("v4l2loopback"));
        assert_eq!(module_name("a/b.ko.xz").as_deref(), Some("b"));
        assert_eq!(module_name("a/b.c"), None);
    }
}
