//! `hermod sync`: the master's loop, run once (by a systemd timer or a CI job).
//!
//! A master keeps a repository ahead of its farm: every wanted module built
//! for every kernel the archive offers, before a farm machine asks. What is
//! wanted is the config's: the `wanted` sources × the kernels of its
//! `releases`, `flavours` and `architectures` (the CLI glue, `cli/sync.rs`,
//! turns that into (source, kernel) pairs, each source made ready once per
//! release). One run:
//!
//! 1. reads what the repository publishes (`repo::published`): every module
//!    package names the cache key of its build (`X-Hermod-Key`);
//! 2. computes each pair's key as `hermod build` and `hermod plan` do; a pair
//!    whose key is published is done (the common case: nothing to do);
//! 3. builds the others through the pipeline (`Context::build_many`: up to
//!    `--jobs` at once, one build per key under its key lock; a key the local
//!    store or the shared cache holds costs a copy, so builds done by a CI
//!    matrix or another master count as built here);
//! 4. publishes the packages of every *complete* kernel in one `repo::publish`
//!    (which also moves the module metapackages), then stops.
//!
//! ## Never half a kernel's set
//!
//! A module metapackage (`hello-modules-amd64`) follows the newest kernel the
//! repository has that module for, and its module package pulls that kernel
//! in. If, for kernel K, module A built and module B failed, publishing A's
//! package would move A's metapackage to K: `apt full-upgrade` on a farm
//! would then install kernel K, which has no B. So a kernel's packages are
//! published only when every wanted module for it built (or was skipped by
//! its dkms.conf's BUILD_EXCLUSIVE_*, which is a declared "not for this
//! kernel"); otherwise none of this run's packages for K are, and the kernel
//! is reported held back ([`Event::Hold`]). The next run tries again; the
//! other kernels are published as usual.
//!
//! ## Idempotent
//!
//! A second run finds every key published and builds and writes nothing (a
//! BUILD_EXCLUSIVE skip is not cached, so deciding it again costs an
//! evaluation of dkms.conf per run). One failing build does not stop the
//! others: every failure is reported, and the run's error, after the
//! publish, carries the first failure's exit status.
//!
//! A key that changed while the package version did not (the toolchain
//! moved under the same kernel, e.g. a gcc security update) gives a package
//! whose name and version are already published with other bytes. A
//! published version never changes (`repo`'s rule), so the published one is
//! kept and said so ([`Event::Keep`]): the farm already has a package for
//! that kernel.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::exit::{Code, HasExitCode};
use crate::input::Prepared;
use crate::pipeline::{CacheStatus, Context, PipelineError, Status};
use crate::repo::{self, Publish, RepoError};
use crate::source::SourceTree;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    // Boxed: a command's error stays small (clippy's result_large_err).
    #[error(transparent)]
    Repo(Box<RepoError>),
    #[error(transparent)]
    Pipeline(Box<PipelineError>),
    #[error(
        "nothing to sync: `wanted` in {config} names no module source (add e.g. wanted = [\"pkg:v4l2loopback-dkms\"])"
    )]
    NothingWanted { config: String },
    #[error("no kernel to sync: {why}")]
    NoKernels { why: String },
    #[error("{failed} of {total} builds failed (each is reported above){held}")]
    Failed { failed: usize, total: usize, held: String, code: Code },
}

impl From<RepoError> for SyncError {
    fn from(e: RepoError) -> SyncError {
        SyncError::Repo(Box::new(e))
    }
}

impl From<PipelineError> for SyncError {
    fn from(e: PipelineError) -> SyncError {
        SyncError::Pipeline(Box::new(e))
    }
}

impl HasExitCode for SyncError {
    fn exit_code(&self) -> Code {
        match self {
            SyncError::Repo(e) => e.exit_code(),
            SyncError::Pipeline(e) => e.exit_code(),
            SyncError::NothingWanted { .. } => Code::BadInput,
            SyncError::NoKernels { .. } => Code::NoHeaders,
            SyncError::Failed { code, .. } => *code,
        }
    }
}

/// What became of one wanted (source, kernel) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Compiled here.
    Built,
    /// Taken from the local store or the shared cache (`cache` says which).
    Cached,
    /// dkms.conf's BUILD_EXCLUSIVE_* excludes the kernel: nothing to publish, not a failure.
    Skipped,
    Failed,
    /// `--dry-run`: would be built (or taken from a cache: `cached_in`).
    Planned,
}

/// One build (or planned build) of a wanted pair whose key is not published.
#[derive(Debug, Clone, Serialize)]
pub struct BuildEvent {
    /// The SOURCE, as the config names it.
    pub source: String,
    pub kernel: String,
    /// Absent when it could not be computed (the failure says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_in: Option<crate::plan::Cached>,
    /// A failure's exit status, as `hermod build` would exit with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// A failure's message, or a skip's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A failed build's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
}

/// A kernel whose packages are not published this run, and why.
#[derive(Debug, Clone, Serialize)]
pub struct HoldEvent {
    pub kernel: String,
    pub reason: String,
    /// The sources that failed for it.
    pub failed: Vec<String>,
    /// The packages built for it and not published.
    pub withheld: Vec<String>,
}

/// A package built now whose name and version the repository already
/// publishes with other bytes: the published one stays.
#[derive(Debug, Clone, Serialize)]
pub struct KeepEvent {
    pub kernel: String,
    pub package: String,
    pub version: String,
    pub key: String,
    pub reason: String,
}

/// The one publish of a run (or what it would publish).
#[derive(Debug, Clone, Serialize)]
pub struct PublishEvent {
    pub repo: PathBuf,
    pub suite: String,
    pub component: String,
    pub kernels: Vec<String>,
    /// Pool paths of the module packages added (`--dry-run`: the SOURCE@KERNEL pairs).
    pub packages: Vec<String>,
    /// Pool paths of the metapackage versions made.
    pub metapackages: Vec<String>,
    pub files_written: usize,
    pub dry_run: bool,
}

/// One line of `hermod sync --json`: `{"action": "build"|"hold"|"keep"|"publish", …}`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Event {
    Build(BuildEvent),
    Hold(HoldEvent),
    Keep(KeepEvent),
    Publish(PublishEvent),
}

/// What to sync: the pairs, and where to publish.
pub struct Request<'a> {
    /// Each wanted (source, kernel) pair once.
    pub pairs: &'a [(&'a Prepared, String)],
    pub publish: &'a Publish<'a>,
    /// Print what would be built and published; build and write nothing.
    pub dry_run: bool,
}

/// What a run found and did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub wanted: usize,
    /// Pairs whose key the repository already publishes.
    pub published: usize,
    /// Pairs built (or taken from a cache) this run, skipped ones included.
    pub built: usize,
    pub failed: usize,
    pub held: Vec<String>,
    /// Packages added to the repository.
    pub added: usize,
}

/// One sync (see the module doc). `tell` gets every event as it happens.
/// A failing build is an event, and at the end the error; a repository that
/// cannot be read or written is the error at once.
pub fn sync(ctx: &Context, request: &Request, tell: &mut dyn FnMut(&Event)) -> Result<Summary, SyncError> {
    let p = request.publish;
    let published = repo::published(p.repo, p.suite, p.component)?;
    let published_keys: HashSet<&str> = published.iter().filter_map(|e| e.key.as_deref()).collect();
    let mut summary = Summary { wanted: request.pairs.len(), ..Summary::default() };

    let mut failures = Failures::default();

    // The keys, and the pairs not published yet.
    let mut trees: HashMap<PathBuf, SourceTree> = HashMap::new();
    let mut missing: Vec<(&Prepared, String, String)> = Vec::new();
    for (input, kernel) in request.pairs {
        match key_of(ctx, input, kernel, &mut trees) {
            Ok(key) if published_keys.contains(key.as_str()) => summary.published += 1,
            Ok(key) => missing.push((input, kernel.clone(), key)),
            Err(e) => {
                failures.add(failed_event(&input.label, kernel, None, &e), e.exit_code(), tell);
            }
        }
    }

    let mut complete: Vec<String> = Vec::new();
    for (_, kernel, _) in &missing {
        if !failures.by_kernel.contains_key(kernel) && !complete.contains(kernel) {
            complete.push(kernel.clone());
        }
    }
    if request.dry_run {
        for (input, kernel, key) in &missing {
            let cached_in = crate::plan::cached_in(ctx, key, kernel);
            let mut event = build_event(&input.label, kernel, Some(key), Outcome::Planned);
            event.cached_in = cached_in;
            tell(&Event::Build(event));
        }
        if !complete.is_empty() {
            let packages = missing
                .iter()
                .filter(|(_, k, _)| complete.contains(k))
                .map(|(input, kernel, _)| format!("{}@{kernel}", input.label))
                .collect();
            tell(&Event::Publish(publish_event(p, complete, packages, Vec::new(), 0, true)));
        }
        failures.tell_holds(&[], tell);
        return failures.finish(summary);
    }

    // Build what is missing: all of it at once, up to --jobs builds in parallel.
    let out = ctx.archives.store().staging_dir("sync-").map_err(PipelineError::from)?;
    let pairs: Vec<(&Prepared, String)> = missing.iter().map(|(input, kernel, _)| (*input, kernel.clone())).collect();
    let results = if pairs.is_empty() { Vec::new() } else { ctx.build_many(&pairs, out.path()) };
    let mut built: Vec<(String, PathBuf, String, String, String)> = Vec::new(); // kernel, deb, package, version, key
    for ((input, kernel, key), result) in missing.iter().zip(results) {
        match result {
            Ok(report) => {
                summary.built += 1;
                let outcome = match (report.status, report.cache) {
                    (Status::Skipped, _) => Outcome::Skipped,
                    (Status::Built, Some(CacheStatus::Miss) | None) => Outcome::Built,
                    (Status::Built, Some(_)) => Outcome::Cached,
                };
                let mut event = build_event(&input.label, kernel, Some(&report.key), outcome);
                event.package = Some(report.package.clone());
                event.version = Some(report.version.clone());
                event.cache = report.cache;
                event.message = report.reason.clone();
                tell(&Event::Build(event));
                if let Some(deb) = report.deb {
                    built.push((kernel.clone(), deb, report.package, report.version, report.key));
                }
            }
            Err(e) => {
                failures.add(failed_event(&input.label, kernel, Some(key), &e), e.exit_code(), tell);
            }
        }
    }

    // Held kernels: none of their packages is published.
    failures.tell_holds(&built.iter().map(|b| (b.0.as_str(), b.2.as_str())).collect::<Vec<_>>(), tell);

    // The rest, but for what is already published under its name and version.
    let by_id: HashMap<(&str, &str, &str), &str> = published
        .iter()
        .map(|e| ((e.package.as_str(), e.version.as_str(), e.architecture.as_str()), e.sha256.as_str()))
        .collect();
    let mut debs: Vec<PathBuf> = Vec::new();
    let mut kernels: Vec<String> = Vec::new();
    for (kernel, deb, package, version, key) in built.iter().filter(|b| !failures.by_kernel.contains_key(&b.0)) {
        let arch = deb_architecture(deb);
        if by_id.contains_key(&(package.as_str(), version.as_str(), arch)) {
            tell(&Event::Keep(KeepEvent {
                kernel: kernel.clone(),
                package: package.clone(),
                version: version.clone(),
                key: key.clone(),
                reason: "this version is already published from another build (its inputs changed, its version \
                         did not); a published version never changes, so the published one stays"
                    .into(),
            }));
            continue;
        }
        debs.push(deb.clone());
        if !kernels.contains(kernel) {
            kernels.push(kernel.clone());
        }
    }
    if !debs.is_empty() {
        let report = repo::publish(p, &debs)?;
        let added: Vec<String> = report.packages.iter().filter(|(_, new)| *new).map(|(path, _)| path.clone()).collect();
        summary.added = added.len();
        tell(&Event::Publish(publish_event(p, kernels, added, report.metapackages, report.written.len(), false)));
    }
    drop(out);
    failures.finish(summary)
}

/// The run's failures: each kernel's failed sources, in the pairs' order,
/// and the first failure's status.
#[derive(Default)]
struct Failures {
    by_kernel: BTreeMap<String, Vec<String>>,
    first: Option<Code>,
}

impl Failures {
    /// Record a failed pair, and tell it.
    fn add(&mut self, event: BuildEvent, code: Code, tell: &mut dyn FnMut(&Event)) {
        self.by_kernel.entry(event.kernel.clone()).or_default().push(event.source.clone());
        self.first.get_or_insert(code);
        tell(&Event::Build(event));
    }

    /// A hold per kernel with a failure; `built` are the (kernel, package)
    /// pairs built this run, withheld when their kernel is held.
    fn tell_holds(&self, built: &[(&str, &str)], tell: &mut dyn FnMut(&Event)) {
        for (kernel, sources) in &self.by_kernel {
            let withheld = built.iter().filter(|b| b.0 == kernel).map(|b| b.1.to_owned()).collect();
            tell(&Event::Hold(HoldEvent {
                kernel: kernel.clone(),
                reason: format!(
                    "{} failed for it: publishing the other modules' packages would move their metapackages to a \
                     kernel that lacks it",
                    sources.join(", ")
                ),
                failed: sources.clone(),
                withheld,
            }));
        }
    }

    /// The run's result: the summary, or the failures' error (the first one's status).
    fn finish(self, mut summary: Summary) -> Result<Summary, SyncError> {
        summary.failed = self.by_kernel.values().map(Vec::len).sum();
        summary.held = self.by_kernel.keys().cloned().collect();
        match self.first {
            None => Ok(summary),
            Some(code) => Err(SyncError::Failed {
                failed: summary.failed,
                total: summary.wanted,
                held: format!("; held back, nothing published for: {}", summary.held.join(", ")),
                code,
            }),
        }
    }
}

/// The cache key `hermod build` computes for `input` on `kernel` (as
/// `hermod plan` does; each source tree scanned once).
fn key_of(
    ctx: &Context,
    input: &Prepared,
    kernel: &str,
    trees: &mut HashMap<PathBuf, SourceTree>,
) -> Result<String, PipelineError> {
    if !trees.contains_key(&input.dir) {
        trees.insert(input.dir.clone(), SourceTree::scan(&input.dir)?);
    }
    let source = &trees[&input.dir];
    let lock = ctx.archives.lock_with(kernel, &input.build_depends)?;
    let overrides = ctx.dkms_overrides(Path::new(&input.label), source, &lock, &ctx.settings(&lock), &mut None)?;
    Ok(ctx.key_for(source, &lock, &overrides).hex)
}

fn build_event(source: &str, kernel: &str, key: Option<&str>, outcome: Outcome) -> BuildEvent {
    BuildEvent {
        source: source.to_owned(),
        kernel: kernel.to_owned(),
        key: key.map(str::to_owned),
        outcome,
        package: None,
        version: None,
        cache: None,
        cached_in: None,
        exit_code: None,
        message: None,
        log: None,
    }
}

fn failed_event(source: &str, kernel: &str, key: Option<&str>, e: &PipelineError) -> BuildEvent {
    let mut event = build_event(source, kernel, key, Outcome::Failed);
    event.exit_code = Some(e.exit_code().number());
    event.message = Some(e.to_string());
    event.log = e.log().map(Path::to_owned);
    event
}

/// The architecture of a .deb named `<package>_<version>_<arch>.deb`.
fn deb_architecture(deb: &Path) -> &str {
    let name = deb.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name.strip_suffix(".deb").and_then(|n| n.rsplit_once('_')).map_or("", |(_, arch)| arch)
}

fn publish_event(
    p: &Publish,
    kernels: Vec<String>,
    packages: Vec<String>,
    metapackages: Vec<String>,
    files_written: usize,
    dry_run: bool,
) -> PublishEvent {
    PublishEvent {
        repo: p.repo.to_owned(),
        suite: p.suite.to_owned(),
        component: p.component.to_owned(),
        kernels,
        packages,
        metapackages,
        files_written,
        dry_run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_json_object_each_with_its_action() {
        let mut build = build_event("/src/hello", "6.1.0-56-amd64", Some("abc"), Outcome::Failed);
        build.exit_code = Some(5);
        let line = serde_json::to_value(Event::Build(build)).unwrap();
        assert_eq!(line["action"], "build");
        assert_eq!(line["outcome"], "failed");
        assert_eq!(line["exit_code"], 5);
        assert!(line.get("package").is_none() && line.get("log").is_none(), "{line}");
        let hold = Event::Hold(HoldEvent {
            kernel: "k".into(),
            reason: "r".into(),
            failed: vec!["s".into()],
            withheld: vec![],
        });
        assert_eq!(serde_json::to_value(hold).unwrap()["action"], "hold");
    }

    #[test]
    fn the_architecture_is_the_deb_name_s_last_field() {
        assert_eq!(deb_architecture(Path::new("/o/hello-modules-6.1.0-56-amd64_0.1+6.1.158-1_amd64.deb")), "amd64");
        assert_eq!(deb_architecture(Path::new("x.deb")), "");
    }

    #[test]
    fn a_failure_s_status_is_the_run_s() {
        let mut failures = Failures::default();
        let mut told = Vec::new();
        let event = build_event("/src/broken", "6.1.0-56-amd64", None, Outcome::Failed);
        failures.add(event, Code::BuildFailed, &mut |e: &Event| told.push(serde_json::to_string(e).unwrap()));
        assert_eq!(told.len(), 1);
        let e = failures.finish(Summary { wanted: 4, ..Summary::default() }).unwrap_err();
        assert_eq!(e.exit_code(), Code::BuildFailed);
        let text = e.to_string();
        assert!(text.contains("1 of 4 builds failed") && text.contains("6.1.0-56-amd64"), "{text}");
        assert!(Failures::default().finish(Summary::default()).is_ok());
    }
}
