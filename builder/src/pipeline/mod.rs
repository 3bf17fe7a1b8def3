//! The whole pipeline for one (source, kernel) pair:
//! source → key → cache → rootfs → sandbox → .deb → store → out.
//!
//! Everything that can be checked before compiling is checked first (source,
//! dkms.conf presence, kernel headers in the archive), and nothing is written to
//! `--out` or the store until the .deb is complete.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::build::{self, Settings};
use crate::cache::{self, Manifest};
use crate::compress::Compression;
use crate::debpkg::{self, ModuleFile};
use crate::input::Prepared;
use crate::key::{Key, KeyInputs};
use crate::limits::BuildLimits;
use crate::rootfs::{self, Lock};
use crate::source::SourceTree;

mod archives;
mod error;
mod package;

pub use archives::Archives;
pub use error::PipelineError;
use package::deb_spec;
pub use package::{package_name, package_version, SOURCE_DATE_EPOCH};

/// What became of one (source, kernel) pair, as `--json` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A package was built or found in the cache.
    Built,
    /// dkms.conf's BUILD_EXCLUSIVE_* excludes this kernel: no package, not a failure.
    Skipped,
}

/// Where a result came from, as `--json` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheStatus {
    Hit,
    Miss,
    /// Pulled from the shared cache, signature and hashes checked.
    Remote,
}

/// One line of `hermod build --json`. A skipped build has `status` and
/// `reason` and no `deb`, `sha256` or `cache` (skips are not cached: deciding
/// one takes an evaluation of dkms.conf in the build root).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub package: String,
    pub version: String,
    pub kernel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deb: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStatus>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub seconds: f64,
    /// For a package built here while pushing is on: whether it reached the
    /// shared cache (`--require-push` fails the run if not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed: Option<bool>,
}

/// What a build makes and how, beyond the archives: the knobs of its steps,
/// what goes into its package (and so into its key), and which caches it uses.
/// Only the commands that build, or compute what a build would (`key`,
/// `plan`, `oci`), take them.
pub struct BuildOptions {
    /// The Maintainer of the packages hermod writes (part of the cache key: it is in the bytes).
    pub maintainer: String,
    pub jobs: usize,
    pub timeout: Duration,
    pub limits: BuildLimits,
    /// Sign modules with this key (see [`crate::module_signing`]).
    pub signing: Option<crate::module_signing::ModuleSigning>,
    /// The shared cache: pulled from on a local miss, pushed to after a build
    /// (see [`crate::shared_cache`]).
    pub shared: Option<crate::shared_cache::SharedCache>,
    /// The directory of dkms.conf override files (`/etc/dkms`, see [`crate::dkms::overrides`]).
    pub dkms_overrides: PathBuf,
    /// Whether results come from the caches, from a build, or both.
    pub cache_policy: CachePolicy,
}

/// How a build uses the caches (the store's and the shared one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// A cached result if there is one, else a build whose result is cached
    /// (`hermod build`, a master).
    UseOrBuild,
    /// A cached result or none: no build root is made and nothing is
    /// compiled (a farm machine, `fetch`).
    CachedOnly,
    /// Always a build, and nothing put in any cache (`hermod verify`'s builds).
    Bypass,
}

impl CachePolicy {
    /// Whether a result may be taken from a cache, and a new one put there.
    pub fn uses_caches(self) -> bool {
        self != CachePolicy::Bypass
    }

    /// Whether a miss may be built here.
    pub fn may_build(self) -> bool {
        self != CachePolicy::CachedOnly
    }
}

/// A build's context: the [`Archives`] and the [`BuildOptions`]. Where a
/// package goes is each build's own (`out` of [`Context::build_one`]).
pub struct Context {
    pub archives: Archives,
    pub options: BuildOptions,
    /// The "cgroup limits not enforced" note is said once per run.
    cgroup_noted: std::sync::atomic::AtomicBool,
}

impl Context {
    pub fn new(archives: Archives, options: BuildOptions) -> Context {
        Context { archives, options, cgroup_noted: Default::default() }
    }

    /// The knobs of every build step in `lock`'s root, from the options and
    /// its recipe (whose DKMS reads dkms.conf).
    pub fn settings(&self, lock: &Lock) -> Settings {
        self.settings_with_jobs(lock, self.options.jobs)
    }

    /// The DKMS whose reading of dkms.conf applies in `lock`'s root: its
    /// recipe's (bookworm's 3.0 for a recipe not built for).
    fn semantics(&self, lock: &Lock) -> crate::dkms::Semantics {
        self.archives
            .recipe_of(lock)
            .and_then(|r| crate::dkms::Semantics::parse(&r.dkms).ok())
            .unwrap_or(crate::dkms::Semantics::V3_0)
    }

    /// The machine `lock`'s root builds for, from its recipe (an amd64
    /// machine for a recipe not built for: a lock of an older hermod).
    pub fn target(&self, lock: &Lock) -> crate::build::Target {
        match self.archives.recipe_of(lock) {
            Some(recipe) => recipe.target(),
            None => crate::build::Target::native_amd64(),
        }
    }

    fn settings_with_jobs(&self, lock: &Lock, jobs: usize) -> Settings {
        let limits = &self.options.limits;
        Settings {
            jobs,
            timeout: self.options.timeout,
            source_date_epoch: SOURCE_DATE_EPOCH,
            limits: limits.sandbox.clone(),
            build_space: limits.build_space,
            tmp_space: limits.tmp_space,
            signing: self.options.signing.clone(),
            deadline: crate::source::Deadline::after(self.options.timeout),
            semantics: self.semantics(lock),
            target: self.target(lock),
        }
    }

    /// The cache key of `source` built in the root `lock` describes.
    /// `overrides` are the `/etc/dkms` files that apply ([`Context::dkms_overrides`]).
    pub fn key_for(&self, source: &SourceTree, lock: &Lock, overrides: &[crate::dkms::OverrideFile]) -> Key {
        use crate::key::Input;
        use crate::rootfs::{is_compiler_package, is_headers_package};
        let compilers = |p: &str| is_compiler_package(p) && (p.starts_with("gcc-") || p == "binutils");
        let tools = lock.packages.iter().filter(|p| !is_headers_package(&p.name) && !is_compiler_package(&p.name));
        Key::compute(&KeyInputs {
            source,
            kernel: &lock.kernel,
            architecture: &lock.architecture,
            rootfs_lock: &lock.hash(),
            params: &self.key_params(lock),
            extra: vec![
                Input::new("headers", lock.headers_hash(), lock.part_summary(is_headers_package)),
                Input::new("compiler", lock.compiler_hash(), lock.part_summary(compilers)),
                Input::new("tools", lock.tools_hash(), format!("{} packages and the recipe's links", tools.count())),
            ]
            .into_iter()
            .chain(crate::key::overrides_input(overrides))
            .collect(),
        })
    }

    /// Where `lock`'s recipe puts modules (`lib/modules` for a recipe not built for).
    fn modules_dir(&self, lock: &Lock) -> &str {
        self.archives.recipe_of(lock).map_or("lib/modules", |r| r.modules_dir.as_str())
    }

    /// The build parameters that change the output, for the cache key.
    fn key_params(&self, lock: &Lock) -> String {
        let mut params = format!("strip=dkms\nmaintainer={}\n", self.options.maintainer);
        // How dkms.conf is read is the recipe's DKMS (since it became so,
        // every key names it: bookworm's reading changed then too).
        params.push_str(&format!("dkms={:?}\n", self.semantics(lock)));
        // dkms.conf sees `$kernel_source_dir` as DKMS sets it (since it
        // became so; before, the headers directory under /usr/src).
        params.push_str("kernel_source_dir=/lib/modules/<kernel>/build\n");
        // Where the modules go is the recipe's; said only where it is not
        // the long-standing /lib/modules, so older keys stay what they were.
        let dir = self.modules_dir(lock);
        if dir != "lib/modules" {
            params.push_str(&format!("modules_dir={dir}\n"));
        }
        // A cross build's environment (what runs is the root's, named by
        // the lock; the machine and tools are the recipe's). Said only for
        // one, so native keys stay what they were.
        let target = self.target(lock);
        if let Some((arch, prefix)) = &target.cross {
            params.push_str(&format!("machine={}\ncross=ARCH={arch} CROSS_COMPILE={prefix}\n", target.machine));
        }
        if let Some(signer) = &self.options.signing {
            params.push_str(&signer.key_param());
        }
        params
    }

    /// The build root of `lock`, made if the store lacks it.
    fn materialize(&self, lock: &Lock) -> Result<rootfs::Rootfs, PipelineError> {
        let rootfs = rootfs::materialize(self.archives.store(), lock, self.archives.quiet())?;
        if rootfs.created {
            self.say(&format!("build root {} ready ({} packages)", &rootfs.hash[..16], lock.packages.len()));
        }
        Ok(rootfs)
    }

    /// The `/etc/dkms` override files that apply to `source` on `lock`'s kernel.
    /// Which apply depends on the module's name and version, which only an
    /// evaluation of dkms.conf in the build root tells; so when the directory
    /// holds candidates, the root is made (into `rootfs`) before the key.
    pub fn dkms_overrides(
        &self,
        source_dir: &Path,
        source: &SourceTree,
        lock: &Lock,
        settings: &Settings,
        rootfs: &mut Option<rootfs::Rootfs>,
    ) -> Result<Vec<crate::dkms::OverrideFile>, PipelineError> {
        use crate::dkms::overrides;
        let dir = &self.options.dkms_overrides;
        if !overrides::any_candidate(dir)? {
            return Ok(Vec::new());
        }
        if !self.options.cache_policy.may_build() {
            return Err(PipelineError::BuildNotAllowed {
                source_label: source_dir.display().to_string(),
                kernel: lock.kernel.clone(),
                why: format!("{} holds dkms.conf overrides, which only a build root can match", dir.display()),
            });
        }
        let root = self.materialize(lock)?;
        let store = self.archives.store();
        let workdir = store.staging_dir("names-")?;
        let source_hash = crate::key::source_hash(source);
        let log = store.logs().join(format!("{}-{}-names.log", &source_hash[..16], lock.kernel));
        fs::write(&log, b"").map_err(|source| PipelineError::Io { path: log.clone(), source })?;
        let (name, version) = build::package_names(&root, source, settings, workdir.path(), &log)
            .map_err(|error| PipelineError::Build { source_dir: source_dir.to_owned(), error })?;
        *rootfs = Some(root);
        Ok(overrides::applicable(dir, &name, &version, &lock.kernel, &self.target(lock).machine)?)
    }

    fn say(&self, message: &str) {
        if !self.archives.quiet() {
            crate::say::note(message);
        }
    }

    /// Build (or reuse) the package of `source` for `kernel`, and put it in `out`.
    pub fn build_one(&self, source: &Prepared, kernel: &str, out: &Path) -> Result<Report, PipelineError> {
        self.build_one_with(source, kernel, self.options.jobs, out)
    }

    /// Every (source, kernel) pair, up to `--jobs` at once, each build's make
    /// getting its share of the jobs, each package put in `out`. Results come
    /// back in the pairs' order.
    pub fn build_many(&self, pairs: &[(&Prepared, String)], out: &Path) -> Vec<Result<Report, PipelineError>> {
        // Resolve each lock first, one after the other: the first one loads
        // the archive, which the threads would otherwise each load at once.
        // An error here is found again, and reported, per pair.
        let mut locks: Vec<(&String, &Vec<String>)> = pairs.iter().map(|(s, k)| (k, &s.build_depends)).collect();
        locks.sort();
        locks.dedup();
        for (kernel, extras) in locks {
            let _ = self.archives.lock_with(kernel, extras);
        }
        let at_once = self.options.jobs.clamp(1, pairs.len().max(1));
        let jobs_each = (self.options.jobs / at_once).max(1);
        crate::work::run(
            pairs,
            at_once,
            |(source, kernel)| self.build_one_with(source, kernel, jobs_each, out),
            |_| false,
        )
        .into_iter()
        .map(|result| result.expect("nothing stops the queue: every pair was built"))
        .collect()
    }

    fn build_one_with(&self, input: &Prepared, kernel: &str, jobs: usize, out: &Path) -> Result<Report, PipelineError> {
        let started = Instant::now();
        let store = self.archives.store();
        // The preparation's deadline starts now, before the lock is resolved.
        let deadline = crate::source::Deadline::after(self.options.timeout);
        let source = SourceTree::scan_until(&input.dir, &deadline)?;
        let lock = self.archives.lock_with(kernel, &input.build_depends)?;
        let settings = Settings { deadline, ..self.settings_with_jobs(&lock, jobs) };
        let mut rootfs = None;
        let overrides = self.dkms_overrides(Path::new(&input.label), &source, &lock, &settings, &mut rootfs)?;
        let key = self.key_for(&source, &lock, &overrides);
        let bypass = !self.options.cache_policy.uses_caches();
        if !bypass {
            crate::keyinfo::remember(store, &key);
        }

        // The build proper; its outcome is filed under the key (failures.rs).
        let mut log_used: Option<PathBuf> = None;
        let result = (|| -> Result<Report, PipelineError> {
            // Hand out a cached result: export it to --out and say where it came from.
            let deliver = |manifest: Manifest, bytes: &[u8], cache: CacheStatus, from: &str| {
                let deb = cache::export(out, &manifest.deb, bytes)?;
                self.say(&format!("{} for {kernel}: {from} ({})", manifest.package, deb.display()));
                Ok::<_, PipelineError>(report(manifest, deb, &key, cache, started))
            };
            if let Some((manifest, bytes)) = (!bypass).then(|| cache::lookup(store, &key.hex)).flatten() {
                return deliver(manifest, &bytes, CacheStatus::Hit, "cache hit");
            }
            // A miss: build, unless another process is building this very key,
            // in which case wait for it and take its result.
            let _building = if bypass { None } else { Some(cache::lock_key(store, &key.hex)?) };
            if let Some((manifest, bytes)) = (!bypass).then(|| cache::lookup(store, &key.hex)).flatten() {
                return deliver(manifest, &bytes, CacheStatus::Hit, "built meanwhile by another hermod");
            }
            // Then the shared cache (under the key's lock, so concurrent builds pull
            // once), before the build root: a remote hit needs no root, no package
            // and no compiler.
            let shared = self.options.shared.as_ref().filter(|_| !bypass);
            if let Some(pulled) = shared.and_then(|shared| shared.pull(&key.hex, kernel)) {
                cache::insert(store, &key.hex, &pulled.manifest, &pulled.bytes)?;
                let from = format!("from the shared cache, signed by {}", pulled.signer);
                return deliver(pulled.manifest, &pulled.bytes, CacheStatus::Remote, &from);
            }

            if !self.options.cache_policy.may_build() {
                return Err(PipelineError::BuildNotAllowed {
                    source_label: input.label.clone(),
                    kernel: kernel.to_owned(),
                    why: "role = \"farm\"".into(),
                });
            }
            let rootfs = match rootfs {
                Some(rootfs) => rootfs,
                None => self.materialize(&lock)?,
            };
            let workdir = store.staging_dir("build-")?;
            // `hermod verify`'s two builds of one key run side by side: one log each.
            let suffix = if bypass { format!("-verify-{}", std::process::id()) } else { String::new() };
            let log = store.logs().join(format!("{}-{kernel}{suffix}.log", &key.hex[..16]));
            fs::write(&log, b"").map_err(|source| PipelineError::Io { path: log.clone(), source })?;
            log_used = Some(log.clone());
            self.say(&format!("building {} for {kernel} (log: {})", input.label, log.display()));
            let output = build::build(&rootfs, &source, &settings, workdir.path(), &log, &overrides)
                .map_err(|error| PipelineError::Build { source_dir: PathBuf::from(&input.label), error })?;
            if let Some(reason) = &output.conf.skip {
                let conf = &output.conf;
                self.say(&format!("{} {} for {kernel}: skipped: {reason}", conf.package_name, conf.package_version));
                return Ok(Report {
                    package: package_name(&conf.package_name, kernel),
                    version: package_version(&conf.package_version, &lock.headers_version),
                    kernel: kernel.to_owned(),
                    deb: None,
                    sha256: None,
                    key: key.hex.clone(),
                    cache: None,
                    status: Status::Skipped,
                    reason: Some(reason.clone()),
                    seconds: seconds(started),
                    pushed: None,
                });
            }
            if let Some(why) = &output.cgroup.not_enforced {
                if !self.cgroup_noted.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    self.say(&format!("note: {why}"));
                }
            }

            let config = rootfs.kernel_config().map_err(|source| PipelineError::Io {
                path: rootfs.tree.join(rootfs.headers_dir_inside().trim_start_matches('/')).join(".config"),
                source,
            })?;
            let compression = Compression::from_kernel_config(&config);
            let install_dir = format!("{}/{kernel}/updates/dkms", self.modules_dir(&lock));
            let mut files = Vec::new();
            for module in &output.modules {
                let contents = compression
                    .apply(&module.contents)
                    .map_err(|source| PipelineError::Io { path: PathBuf::from(&module.dest_name), source })?;
                files.push(ModuleFile {
                    install_dir: install_dir.clone(),
                    file_name: format!("{}.ko{}", module.dest_name, compression.suffix()),
                    contents,
                });
            }

            let conf = &output.conf;
            let spec = deb_spec(conf, &lock, &key, &self.options.maintainer, files);
            let bytes = debpkg::build_deb(&spec)?;
            let name = debpkg::file_name(&spec);
            let manifest = Manifest::new(&spec.package, &spec.version, kernel, &name, &bytes);
            if !bypass {
                cache::insert(store, &key.hex, &manifest, &bytes)?;
            }
            let deb = cache::export(out, &name, &bytes)?;
            self.say(&format!("wrote {}", deb.display()));
            let mut pushed = None;
            if let Some(shared) = shared.filter(|s| s.pushes()) {
                let ok = shared.push(&key.hex, &manifest, &bytes);
                if ok {
                    self.say(&format!("pushed {} to {}", manifest.deb, shared.base()));
                }
                pushed = Some(ok);
            }
            Ok(Report { pushed, ..report(manifest, deb, &key, CacheStatus::Miss, started) })
        })();
        if !bypass {
            file_outcome(store, &key.hex, &input.label, kernel, &result, log_used);
        }
        result
    }
}

/// Record what became of a keyed build in the store (see [`crate::failures`]):
/// a package clears the key's records, a skip or a failure writes one. A farm
/// machine's refusal to build is no outcome of the build. Recording is best
/// effort: a store that cannot take a record never changes the build's result.
fn file_outcome(
    store: &crate::store::Store,
    key: &str,
    source: &str,
    kernel: &str,
    result: &Result<Report, PipelineError>,
    log: Option<PathBuf>,
) {
    use crate::exit::HasExitCode;
    use crate::failures::{self, Kind, Record};
    let written = match result {
        Ok(report) if report.status == Status::Built => failures::clear(store, key),
        Ok(report) => {
            let reason = report.reason.as_deref().unwrap_or("excluded by dkms.conf");
            let code = crate::exit::Code::NothingBuilt.number();
            failures::write(store, Kind::Skipped, &Record::new(key, source, kernel, code, reason, None))
        }
        Err(PipelineError::BuildNotAllowed { .. }) => Ok(()),
        Err(e) => {
            let record = Record::new(key, source, kernel, e.exit_code().number(), &e.to_string(), log);
            failures::write(store, Kind::Failed, &record)
        }
    };
    if let Err(e) = written {
        tracing::warn!(key, error = %e, "the build's outcome could not be recorded in the store");
    }
}

fn report(m: Manifest, deb: PathBuf, key: &Key, cache: CacheStatus, started: Instant) -> Report {
    Report {
        package: m.package,
        version: m.version,
        kernel: m.kernel,
        deb: Some(deb),
        sha256: Some(m.sha256),
        key: key.hex.clone(),
        cache: Some(cache),
        status: Status::Built,
        reason: None,
        seconds: seconds(started),
        pushed: None,
    }
}

fn seconds(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failures::{self, Kind};

    fn report(status: Status) -> Report {
        Report {
            package: "m-modules-k".into(),
            version: "1".into(),
            kernel: "6.1.0-9-amd64".into(),
            deb: None,
            sha256: None,
            key: "ab".repeat(32),
            cache: None,
            status,
            reason: (status == Status::Skipped).then(|| "BUILD_EXCLUSIVE_KERNEL does not match".into()),
            seconds: 0.0,
            pushed: None,
        }
    }

    #[test]
    fn a_keyed_builds_outcome_is_filed_and_a_package_clears_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("s"), None).unwrap();
        let key = "ab".repeat(32);
        let k = "6.1.0-9-amd64";
        let failed: Result<Report, PipelineError> =
            Err(PipelineError::Io { path: "/x".into(), source: std::io::Error::other("disk full") });
        file_outcome(&store, &key, "src", k, &failed, Some("/log".into()));
        let record = failures::read(&store, Kind::Failed, &key).unwrap();
        assert_eq!((record.exit_code, record.message.as_str()), (9, "/x: disk full"));
        assert_eq!(record.log.as_deref(), Some(Path::new("/log")));

        file_outcome(&store, &key, "src", k, &Ok(report(Status::Skipped)), None);
        assert!(failures::read(&store, Kind::Failed, &key).is_none());
        assert_eq!(failures::read(&store, Kind::Skipped, &key).unwrap().exit_code, 77);

        // A farm machine's refusal to build says nothing about the build.
        let refused =
            Err(PipelineError::BuildNotAllowed { source_label: "s".into(), kernel: k.into(), why: "farm".into() });
        file_outcome(&store, &key, "src", k, &refused, None);
        assert!(failures::read(&store, Kind::Skipped, &key).is_some());

        file_outcome(&store, &key, "src", k, &Ok(report(Status::Built)), None);
        assert!(
            failures::read(&store, Kind::Skipped, &key).is_none()
                && failures::read(&store, Kind::Failed, &key).is_none()
        );
    }
}
