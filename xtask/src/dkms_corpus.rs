//! `cargo xtask dkms-corpus`: every `*-dkms` package of one Debian release's
//! archive (its main component; for another release than the machine's, also
//! contrib and non-free) built by hermod and by DKMS itself for one kernel,
//! side by side, so that every difference is visible (issue 5: hermod must
//! build at least what DKMS builds; issue 15: on every release). The DKMS
//! side is in [`crate::dkms_chroot`], the table and the committed report in
//! [`crate::dkms_report`].
//!
//! `--arch arm64` (issue 17): the release's arm64 corpus, cross-built by
//! hermod for an arm64 kernel through the release's cross recipe; no DKMS
//! side (it would need an arm64 machine), the report
//! ([`crate::dkms_cross`]) judges each package against the committed amd64
//! report instead.
//!
//! Releases: `--release bookworm` (the default, the machine's own) reads the
//! machine's apt sources as hermod does without a config file. Any other
//! release (or `--backports`, or `--components` beyond main) gets a
//! generated hermod config file (`config-RELEASE[-backports].toml`): the
//! release's suites from the machine's mirrors, suites renamed (hermod's
//! [`hermod::platform`] rules), with main, contrib, non-free and
//! non-free-firmware, and nothing else; DKMS's root is made from the same
//! sources, so both sides see the same archive.
//!
//! Everything it keeps lives under `/var/cache/hermod-corpus/`: hermod's
//! dedicated store (`store/`, `store-RELEASE/` for other releases), DKMS's
//! base roots (`dkms-root/`), apt's download cache for them
//! (`apt-archives/`), results of both sides (`results/ROOT/`, hermod's in
//! `results/ROOT/hermod/`) and logs (`logs/KREL/PACKAGE/`, hermod's
//! `hermod.log` there too).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::{dkms_chroot, dkms_cross, dkms_report};

pub const USAGE: &str = "cargo xtask dkms-corpus [--release NAME] [--backports] [--components LIST] [--arch amd64|arm64] [--kernel KREL] [--only NAME,...] [--hermod-only | --dkms-only | --kept] [--jobs N] [--fresh] [--report] [--json] [--out FILE]";

const CORPUS_DIR: &str = "/var/cache/hermod-corpus";
/// The master's architecture: the one DKMS can run on here.
const NATIVE_ARCH: &str = "amd64";
/// The architectures `--arch` takes (a recipe of each release builds for each).
const ARCHES: [&str; 2] = ["amd64", "arm64"];
/// The release whose report is `docs/dkms-corpus.md`, read from the machine's
/// own sources as they are (today's behaviour, issue 5).
const DEFAULT_RELEASE: &str = "bookworm";
/// The components of a generated config (and of DKMS's root made from it):
/// everything a `-dkms` package of main, contrib or non-free may depend on
/// (nvidia-kernel-dkms needs firmware-nvidia-gsp from non-free-firmware).
const ALL_COMPONENTS: [&str; 4] = ["main", "contrib", "non-free", "non-free-firmware"];

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

#[derive(Clone)]
pub struct Options {
    pub release: String,
    /// The kernels' architecture (`--arch`): amd64, or arm64 cross-built by
    /// hermod on this amd64 master (no DKMS side: it would need an arm64 machine).
    pub arch: String,
    pub backports: bool,
    /// The components whose packages are the corpus (None: main for the
    /// default release, main, contrib and non-free for any other).
    pub components: Option<Vec<String>>,
    pub kernel: Option<String>,
    pub only: Vec<String>,
    pub hermod: bool,
    pub dkms: bool,
    /// Run DKMS again even where a result for the same base root is kept.
    pub fresh: bool,
    /// Write the default report even when some row lacks a side.
    pub report: bool,
    pub jobs: usize,
    pub json: bool,
    pub out: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        release: DEFAULT_RELEASE.to_owned(),
        arch: NATIVE_ARCH.to_owned(),
        backports: false,
        components: None,
        kernel: None,
        only: Vec::new(),
        hermod: true,
        dkms: true,
        fresh: false,
        report: false,
        jobs: 1,
        json: false,
        out: None,
    };
    let list = |v: &str| v.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value; usage: {USAGE}"));
        match arg.as_str() {
            "--release" => o.release = value()?.clone(),
            "--arch" => o.arch = value()?.clone(),
            "--backports" => o.backports = true,
            "--components" => o.components = Some(list(value()?)),
            "--kernel" => o.kernel = Some(value()?.clone()),
            "--only" => o.only = list(value()?),
            "--hermod-only" => o.dkms = false,
            "--dkms-only" => o.hermod = false,
            "--kept" => (o.hermod, o.dkms) = (false, false),
            "--jobs" => o.jobs = value()?.parse().context("--jobs takes a number")?,
            "--fresh" => o.fresh = true,
            "--report" => o.report = true,
            "--json" => o.json = true,
            "--out" => o.out = Some(PathBuf::from(value()?)),
            _ => bail!("unknown argument {arg}; usage: {USAGE}"),
        }
    }
    if args.iter().any(|a| a == "--kept") && args.iter().any(|a| a == "--hermod-only" || a == "--dkms-only") {
        bail!("--kept builds nothing: it excludes --hermod-only and --dkms-only");
    }
    if args.iter().any(|a| a == "--hermod-only") && args.iter().any(|a| a == "--dkms-only") {
        bail!("--hermod-only and --dkms-only exclude each other (--kept reports kept results alone)");
    }
    if let Some(bad) = o.components.iter().flatten().find(|c| !ALL_COMPONENTS.contains(&c.as_str())) {
        bail!("--components: {bad} is not one of {}", ALL_COMPONENTS.join(", "));
    }
    if !ARCHES.contains(&o.arch.as_str()) {
        bail!("--arch: {} is not one of {}", o.arch, ARCHES.join(", "));
    }
    if o.arch != NATIVE_ARCH {
        if args.iter().any(|a| a == "--dkms-only") {
            bail!("--arch {}: DKMS runs only on an {} machine; this is an {NATIVE_ARCH} master", o.arch, o.arch);
        }
        // The DKMS side would need an arm64 machine (its `dkms build` runs
        // the target's compiler natively): hermod's side alone.
        o.dkms = false;
    }
    o.jobs = o.jobs.max(1);
    Ok(o)
}

impl Options {
    /// Whether hermod and DKMS read a generated config rather than the
    /// machine's sources as they are.
    fn generated_config(&self) -> bool {
        self.release != DEFAULT_RELEASE
            || self.arch != NATIVE_ARCH
            || self.backports
            || self.components.iter().flatten().any(|c| c != "main")
    }

    fn cross(&self) -> bool {
        self.arch != NATIVE_ARCH
    }

    fn corpus_components(&self) -> Vec<String> {
        self.components.clone().unwrap_or_else(|| {
            // The default release's corpus is its main component, on any
            // architecture (so that an arm64 run compares with docs/dkms-corpus.md).
            let main_only = self.release == DEFAULT_RELEASE && !self.backports;
            let default: &[&str] = if main_only { &["main"] } else { &["main", "contrib", "non-free"] };
            default.iter().map(|c| c.to_string()).collect()
        })
    }

    /// `bookworm`, `trixie`, `trixie-backports`, `trixie-arm64`: names the report and the config.
    fn run_name(&self) -> String {
        let arch = if self.cross() { format!("-{}", self.arch) } else { String::new() };
        format!("{}{}{arch}", self.release, if self.backports { "-backports" } else { "" })
    }

    fn default_report(&self) -> PathBuf {
        let file = if self.release == DEFAULT_RELEASE && !self.backports && !self.cross() {
            "dkms-corpus.md".to_owned()
        } else {
            format!("dkms-corpus-{}.md", self.run_name())
        };
        crate::repo_root().join("docs").join(file)
    }
}

/// What the archive says: the packages, the kernel, and which index content
/// they came from.
pub struct Corpus {
    pub packages: Vec<(String, String)>,
    /// Packages of the corpus from another component than main, with it.
    pub component_of: Vec<(String, String)>,
    /// The components the corpus lists packages of.
    pub components: Vec<String>,
    /// `*-dkms` names left out, with why.
    pub excluded: Vec<(String, String)>,
    pub kernel: String,
    /// [`hermod::apt::Snapshot::identity`] of every index read for the release.
    pub identity: String,
    /// The suite mmdebstrap is asked for (the release).
    pub suite: String,
    /// The archives read (hermod's and DKMS's alike).
    pub sources: Vec<hermod::apt::Source>,
    /// The generated hermod config file, if any (else the machine's sources as they are).
    pub config: Option<PathBuf>,
}

/// The sources of `release` as hermod derives them from the machine's apt
/// sources (same mirrors, suite renamed; backports if asked), every one with
/// [`ALL_COMPONENTS`], as a hermod config file's text that reads nothing else.
fn generated_config(release: &str, arch: &str, backports: bool) -> Result<String> {
    let system = hermod::apt::PackageSources::system()?;
    let choice = hermod::platform::Choice {
        archives: &system.archives,
        local_dirs: &[],
        backports: Some(backports),
        releases: None,
        architectures: None,
    };
    let platforms = hermod::platform::platforms(hermod::rootfs::Recipe::builtins(), &choice)?;
    let platform = platforms.iter().find(|p| builds_for(p, release, arch)).with_context(|| {
        let known: Vec<&str> = platforms.iter().map(|p| p.recipe.name.as_str()).collect();
        format!("no builtin recipe for release {release} on {arch} (hermod has: {})", known.join(", "))
    })?;
    let mut text = format!(
        "# Generated by `cargo xtask dkms-corpus --release {release}{}{}`: {release}'s suites on the\n\
         # machine's mirrors (suites renamed, as hermod derives them), every component.\n\
         use_system_sources = false\nreleases = [\"{release}\"]\nbackports = {backports}\n",
        if arch != NATIVE_ARCH { format!(" --arch {arch}") } else { String::new() },
        if backports { " --backports" } else { "" }
    );
    let mut seen = Vec::new();
    for source in &platform.sources.archives {
        if seen.contains(&(&source.uri, &source.suite)) {
            continue;
        }
        seen.push((&source.uri, &source.suite));
        let hermod::apt::SignedBy::Keyrings(keys) = &source.signed_by else {
            bail!("{} {}: an inline Signed-By key cannot go into a config file", source.uri, source.suite);
        };
        let quoted =
            |items: &mut dyn Iterator<Item = String>| items.map(|i| format!("{i:?}")).collect::<Vec<_>>().join(", ");
        text += &format!(
            "\n[[sources]]\nuri = {:?}\nsuites = [{:?}]\ncomponents = [{}]\n",
            source.uri,
            source.suite,
            quoted(&mut ALL_COMPONENTS.iter().map(|c| c.to_string()))
        );
        if !keys.is_empty() {
            text += &format!("signed_by = [{}]\n", quoted(&mut keys.iter().map(|k| k.display().to_string())));
        }
        if !source.check_valid_until {
            text += "check_valid_until = false\n";
        }
    }
    if seen.is_empty() {
        bail!("the machine's apt sources give no archive for {release}");
    }
    Ok(text)
}

/// List the newest version of every `*-dkms` binary package of the corpus's
/// components, through hermod's own verified chain (InRelease signature →
/// Packages SHA256), never the host's /var/lib/apt/lists. hermod's `Package`
/// does not record its component, so each component other than main is read
/// alone to know which packages are its own.
fn list_corpus(dir: &Path, store: &Path, opts: &Options) -> Result<Corpus> {
    let config_path = if opts.generated_config() {
        let path = dir.join(format!("config-{}.toml", opts.run_name()));
        std::fs::write(&path, generated_config(&opts.release, &opts.arch, opts.backports)?)?;
        Some(path)
    } else {
        None
    };
    let config = hermod::config::Config::load(config_path.as_deref())?;
    let platform = config
        .platforms(None)?
        .into_iter()
        .find(|p| builds_for(p, &opts.release, &opts.arch))
        .with_context(|| format!("no platform reads {} for {}", opts.release, opts.arch))?;
    let mut sources = platform.sources.clone();
    if config_path.is_none() {
        // The machine's sources as they are, main only (today's corpus).
        for s in &mut sources.archives {
            s.components.retain(|c| c == "main");
        }
        sources.archives.retain(|s| !s.components.is_empty());
    }
    // Local .deb directories have no component: not part of the archive.
    sources.local_dirs.clear();
    let suite = platform.recipe.release.clone();
    // The target's own indices: the packages (and `Architecture: all` ones)
    // an apt of that architecture sees, its kernels' headers.
    let snapshot = sources.snapshot(&opts.arch, None)?;
    let identity = snapshot.identity();
    let store = hermod::store::Store::open(store, None)?;
    let archive = snapshot.load(&store.indices())?;
    let kernel = match &opts.kernel {
        Some(k) => k.to_owned(),
        None => platform.recipe.default_kernel(&archive)?,
    };
    // Which names each other component has.
    let mut component_names: Vec<(String, Vec<String>)> = Vec::new();
    let read = sources.archives.iter().flat_map(|s| s.components.iter()).filter(|c| *c != "main");
    let mut others: Vec<String> = read.cloned().collect();
    others.sort();
    others.dedup();
    for component in others {
        let mut one = sources.clone();
        for s in &mut one.archives {
            s.components.retain(|c| *c == component);
        }
        one.archives.retain(|s| !s.components.is_empty());
        let archive = one.snapshot(&opts.arch, None)?.load(&store.indices())?;
        component_names.push((component, archive.names_matching("", "-dkms").into_iter().map(str::to_owned).collect()));
    }
    let component = |name: &str| {
        component_names.iter().find(|(_, names)| names.iter().any(|n| n == name)).map_or("main", |(c, _)| c)
    };
    let wanted = opts.corpus_components();
    let mut packages = Vec::new();
    let mut component_of = Vec::new();
    let mut excluded = Vec::new();
    for name in archive.names_matching("", "-dkms") {
        if !wanted.iter().any(|c| c == component(name)) {
            continue;
        }
        let p = archive.newest(name).expect("a listed name has a version");
        // dh-dkms (the debhelper add-on) is named like one but builds nothing:
        // a module package is one that needs dkms to be installed.
        if depends_on_dkms(&p.depends) {
            packages.push((p.name.clone(), p.version.clone()));
            if component(name) != "main" {
                component_of.push((p.name.clone(), component(name).to_owned()));
            }
        } else {
            excluded.push((p.name.clone(), "does not depend on dkms (a module package does)".to_owned()));
        }
    }
    Ok(Corpus {
        packages,
        component_of,
        components: wanted,
        excluded,
        kernel,
        identity,
        suite,
        sources: sources.archives,
        config: config_path,
    })
}

/// Whether `p` is the platform of `release` building for `arch`: the native
/// recipe for the master's architecture, the cross recipe for another.
fn builds_for(p: &hermod::platform::Platform, release: &str, arch: &str) -> bool {
    p.recipe.release == release && p.recipe.architecture == arch && p.recipe.cross.is_none() == (arch == NATIVE_ARCH)
}

/// Whether a Depends field names `dkms` (in any alternative).
fn depends_on_dkms(depends: &str) -> bool {
    depends.split([',', '|']).map(|d| d.trim().split([' ', '(', ':']).next().unwrap_or("")).any(|name| name == "dkms")
}

/// A hermod result kept for the report of a later run, with the commit it was measured at.
#[derive(Serialize, Deserialize)]
struct KeptHermod {
    commit: String,
    side: Side,
}

fn kept_file(results: &Path, package: &str, version: &str) -> PathBuf {
    results.join(format!("{package}_{}.json", version.replace(':', "%3a")))
}

pub fn run(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    let started = Instant::now();
    if opts.cross() {
        eprintln!(
            "dkms-corpus: --arch {}: hermod's side only (--hermod-only): DKMS would need an {} machine",
            opts.arch, opts.arch
        );
    }
    let dir = PathBuf::from(CORPUS_DIR);
    let default_store =
        if opts.release == DEFAULT_RELEASE { dir.join("store") } else { dir.join(format!("store-{}", opts.release)) };
    let store = std::env::var_os("HERMOD_CORPUS_STORE").map(PathBuf::from).unwrap_or(default_store);
    std::fs::create_dir_all(&store)?;
    let corpus = list_corpus(&dir, &store, &opts)?;
    let packages = corpus.packages.clone();
    for name in &opts.only {
        if let Some((_, why)) = corpus.excluded.iter().find(|(n, _)| n == name) {
            bail!("{name} is not in the corpus: it {why}");
        }
        if !packages.iter().any(|(n, _)| n == name) {
            bail!("{name} is not a -dkms package of {} ({})", opts.release, corpus.components.join(", "));
        }
    }
    let selected = |name: &str| opts.only.is_empty() || opts.only.iter().any(|n| n == name);
    let chosen: Vec<(String, String)> = packages.iter().filter(|(n, _)| selected(n)).cloned().collect();
    eprintln!(
        "dkms-corpus: {} of {} packages, {} ({}), kernel {}, archive {}{}",
        chosen.len(),
        packages.len(),
        opts.run_name(),
        corpus.components.join(", "),
        corpus.kernel,
        &corpus.identity[..16],
        corpus.config.as_ref().map(|c| format!(", hermod config {}", c.display())).unwrap_or_default()
    );

    // Every row of the corpus; those not built now show what an earlier run
    // against the same archive and kernel measured (if any).
    let mut rows: Vec<Row> = packages
        .iter()
        .map(|(package, version)| Row { package: package.clone(), version: version.clone(), hermod: None, dkms: None })
        .collect();
    let results = dir.join("results").join(format!("{}-{}", corpus.kernel, &corpus.identity[..16]));
    let hermod_results = results.join("hermod");
    std::fs::create_dir_all(&hermod_results)?;
    let mut commits: Vec<(String, usize)> = Vec::new();
    let mut count_commit = |commit: &str| match commits.iter_mut().find(|(c, _)| c == commit) {
        Some((_, n)) => *n += 1,
        None => commits.push((commit.to_owned(), 1)),
    };

    let hermod_started = Instant::now();
    let mut hermod_built_now = 0;
    if opts.hermod {
        let bin = crate::hermod_binary_from("HERMOD_BIN")?;
        let commit = git_commit();
        let logs = dir.join("logs").join(&corpus.kernel);
        let side = HermodSide::new(bin, store.clone(), &corpus.kernel, corpus.config.clone(), logs)?;
        let built = in_parallel(&chosen, opts.jobs, |(name, version)| {
            let side = side.build(name, version);
            let kept = KeptHermod { commit: commit.clone(), side: side.clone() };
            let _ = std::fs::write(
                kept_file(&hermod_results, name, version),
                serde_json::to_string(&kept).unwrap_or_default(),
            );
            side
        });
        hermod_built_now = built.len();
        for ((name, _), side) in chosen.iter().zip(built) {
            let row = rows.iter_mut().find(|r| &r.package == name).expect("chosen from the rows");
            row.hermod = Some(side);
            count_commit(&commit);
        }
    }
    let hermod_seconds = hermod_started.elapsed().as_secs_f64();
    let mut hermod_reused = 0;
    for row in rows.iter_mut().filter(|r| r.hermod.is_none()) {
        let text = std::fs::read_to_string(kept_file(&hermod_results, &row.package, &row.version));
        if let Some(kept) = text.ok().and_then(|t| serde_json::from_str::<KeptHermod>(&t).ok()) {
            row.hermod = Some(kept.side);
            count_commit(&kept.commit);
            hermod_reused += 1;
        }
    }

    let mut dkms_reused = 0;
    // Without --fresh, DKMS results already measured against the same base
    // root (same kernel, same archive content) are shown again; rows not
    // chosen (--only) or a run without the DKMS side show them and measure nothing.
    let base = if opts.cross() { None } else { dkms_chroot::Base::ensure(&dir, &corpus, opts.dkms)? };
    if let Some(base) = &base {
        let todo: Vec<usize> = (0..rows.len())
            .filter(|&i| {
                let run_now = opts.dkms && selected(&rows[i].package);
                rows[i].dkms = if opts.fresh && run_now { None } else { base.kept(&rows[i].package, &rows[i].version) };
                rows[i].dkms.is_none() && run_now
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

    if opts.cross() {
        return cross_report(&opts, &corpus, rows, commits, hermod_built_now, hermod_seconds, hermod_reused, started);
    }
    let report = dkms_report::Report {
        release: opts.run_name(),
        components: corpus.components.clone(),
        component_of: corpus.component_of.clone(),
        sources: corpus
            .sources
            .iter()
            .map(|s| format!("{} {} ({})", s.uri, s.suite, s.components.join(", ")))
            .collect(),
        generated_config: corpus.config.is_some(),
        kernel: corpus.kernel.clone(),
        identity: corpus.identity.clone(),
        hermod_commits: commits,
        dkms_version: base.as_ref().map(|b| b.dkms_version.clone()),
        excluded: corpus.excluded.clone(),
        rows,
        hermod_seconds: (hermod_built_now > 0).then_some(hermod_seconds),
        hermod_reused,
        dkms_reused,
    };
    if opts.json {
        print!("{}", report.json_lines());
    } else {
        print!("{}", report.table(&|r: &Row| selected(&r.package)));
    }
    // The committed report from a whole run, or from any run once every row
    // has both sides (kept results filling in), or when asked (--report, --out).
    let whole = opts.only.is_empty() && opts.hermod && opts.dkms;
    let complete = report.missing() == 0;
    let out = opts.out.clone().or_else(|| (whole || complete || opts.report).then(|| opts.default_report()));
    if let Some(out) = out {
        let previous = std::fs::read_to_string(&out).unwrap_or_default();
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&out, report.markdown(&previous))?;
        eprintln!("dkms-corpus: report written to {}", out.display());
    } else {
        eprintln!(
            "dkms-corpus: {} sides not measured yet: no report written (--report writes it anyway)",
            report.missing()
        );
    }
    eprintln!("dkms-corpus: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The end of an `--arch arm64` run: the arm64 rows beside the committed
/// native report's ([`crate::dkms_cross`]), written when every row has a
/// result (or with --report / --out: marked partial).
#[allow(clippy::too_many_arguments)]
fn cross_report(
    opts: &Options,
    corpus: &Corpus,
    rows: Vec<Row>,
    hermod_commits: Vec<(String, usize)>,
    built_now: usize,
    seconds: f64,
    reused: usize,
    started: Instant,
) -> Result<()> {
    let native_opts = Options { arch: NATIVE_ARCH.to_owned(), ..opts.clone() };
    let native_path = native_opts.default_report();
    let native_text = std::fs::read_to_string(&native_path).with_context(|| {
        format!("reading the native report {} (its table is the amd64 side)", native_path.display())
    })?;
    let (native_kernel, native) = dkms_cross::parse_native(&native_text);
    let mut flags = format!("--release {} --arch {}", opts.release, opts.arch);
    if opts.backports {
        flags += &format!(" --backports --kernel {}", corpus.kernel);
    } else if opts.kernel.is_some() {
        flags += &format!(" --kernel {}", corpus.kernel);
    }
    let report = dkms_cross::CrossReport {
        run_name: opts.run_name(),
        flags,
        arch: opts.arch.clone(),
        kernel: corpus.kernel.clone(),
        identity: corpus.identity.clone(),
        sources: corpus
            .sources
            .iter()
            .map(|s| format!("{} {} ({})", s.uri, s.suite, s.components.join(", ")))
            .collect(),
        components: corpus.components.clone(),
        component_of: corpus.component_of.clone(),
        excluded: corpus.excluded.clone(),
        hermod_commits,
        hermod_seconds: (built_now > 0).then_some(seconds),
        hermod_reused: reused,
        rows,
        native_file: native_path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        native_kernel,
        native,
    };
    print!("{}", report.table());
    let complete = report.missing().is_empty();
    let out = opts.out.clone().or_else(|| (complete || opts.report).then(|| opts.default_report()));
    if let Some(out) = out {
        let previous = std::fs::read_to_string(&out).unwrap_or_default();
        std::fs::write(&out, report.markdown(&previous, &utc_now()))?;
        eprintln!("dkms-corpus: report written to {}", out.display());
    } else {
        eprintln!(
            "dkms-corpus: {} packages not measured yet: no report written (--report writes it anyway)",
            report.missing().len()
        );
    }
    eprintln!("dkms-corpus: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
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
    /// The generated config file (`--config`), if any.
    config: Option<PathBuf>,
    /// `logs/KREL`: each package's hermod output goes to `PACKAGE/hermod.log`.
    logs: PathBuf,
    out: tempfile::TempDir,
}

impl HermodSide {
    fn new(bin: PathBuf, store: PathBuf, kernel: &str, config: Option<PathBuf>, logs: PathBuf) -> Result<HermodSide> {
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
        Ok(HermodSide { bin, store, packages, kernel: kernel.to_owned(), config, logs, out })
    }

    fn build(&self, name: &str, version: &str) -> Side {
        let started = Instant::now();
        let out_dir = self.out.path().join(name);
        let mut command = Command::new(&self.bin);
        command.env("HERMOD_STORE", &self.store).env("HERMOD_PACKAGE_CACHE", &self.packages);
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        let result = command
            // The version listed, so both sides build the same thing.
            .args(["build", &format!("pkg:{name}={version}"), "--kernel", &self.kernel, "--json", "--out"])
            .arg(&out_dir)
            .stdin(Stdio::null())
            .output();
        let seconds = started.elapsed().as_secs_f64();
        if let Ok(out) = &result {
            let logs = self.logs.join(name);
            let _ = std::fs::create_dir_all(&logs);
            let _ =
                std::fs::write(logs.join("hermod.log"), [&out.stderr[..], b"\n--- stdout ---\n", &out.stdout].concat());
        }
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
    // configure's "error: in `DIR':" (newer autoconf: 'DIR') only says
    // where; its next line says what.
    let is_error = |l: &&str| {
        (l.contains("error:") || l.contains("Error:")) && !l.contains("error: in `") && !l.contains("error: in '")
    };
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
        let newer = "configure: error: in '/build/src':\nconfigure: error: no acceptable C compiler found in $PATH\n";
        assert_eq!(first_error(newer).unwrap(), "configure: error: no acceptable C compiler found in $PATH");
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
    fn releases_name_their_report_and_corpus() {
        let args = |a: &[&str]| parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let default = args(&[]);
        assert!(!default.generated_config());
        assert_eq!(default.corpus_components(), ["main"]);
        assert!(default.default_report().ends_with("docs/dkms-corpus.md"));
        let trixie = args(&["--release", "trixie"]);
        assert!(trixie.generated_config());
        assert_eq!(trixie.corpus_components(), ["main", "contrib", "non-free"]);
        assert!(trixie.default_report().ends_with("docs/dkms-corpus-trixie.md"));
        let main_only = args(&["--release", "trixie", "--components", "main"]);
        assert!(main_only.generated_config());
        assert_eq!(main_only.corpus_components(), ["main"]);
        let backports = args(&["--release", "trixie", "--backports", "--kernel", "7.2.12+deb13-amd64"]);
        assert!(backports.default_report().ends_with("docs/dkms-corpus-trixie-backports.md"));
        assert_eq!(backports.run_name(), "trixie-backports");
        let kept = args(&["--kept"]);
        assert!(!kept.hermod && !kept.dkms);
        let parse = |a: &[&str]| parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(parse(&["--components", "universe"]).is_err());
        assert!(parse(&["--hermod-only", "--dkms-only"]).is_err());
    }

    #[test]
    fn arm64_is_hermod_alone_with_its_own_report() {
        let parse = |a: &[&str]| parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let arm64 = parse(&["--release", "trixie", "--arch", "arm64"]).unwrap();
        assert!(arm64.cross() && arm64.hermod && !arm64.dkms, "--arch arm64 implies --hermod-only");
        assert!(arm64.generated_config());
        assert_eq!(arm64.run_name(), "trixie-arm64");
        assert!(arm64.default_report().ends_with("docs/dkms-corpus-trixie-arm64.md"));
        assert_eq!(arm64.corpus_components(), ["main", "contrib", "non-free"]);
        let amd64 = parse(&["--release", "trixie", "--arch", "amd64"]).unwrap();
        assert!(!amd64.cross() && amd64.dkms);
        assert!(amd64.default_report().ends_with("docs/dkms-corpus-trixie.md"));
        let bookworm = parse(&["--arch", "arm64"]).unwrap();
        assert!(bookworm.generated_config(), "the cross platform's sources come from a generated config");
        assert!(bookworm.default_report().ends_with("docs/dkms-corpus-bookworm-arm64.md"));
        assert_eq!(bookworm.corpus_components(), ["main"], "as docs/dkms-corpus.md, its amd64 side");
        assert!(parse(&["--arch", "arm64", "--dkms-only"]).is_err());
        assert!(parse(&["--arch", "riscv64"]).is_err());
        let kept = parse(&["--arch", "arm64", "--kept"]).unwrap();
        assert!(!kept.hermod && !kept.dkms);
    }

    #[test]
    fn module_names_drop_suffixes() {
        assert_eq!(module_name("./lib/modules/k/updates/dkms/v4l2loopback.ko").as_deref(), Some("v4l2loopback"));
        assert_eq!(module_name("a/b.ko.xz").as_deref(), Some("b"));
        assert_eq!(module_name("a/b.c"), None);
    }
}
