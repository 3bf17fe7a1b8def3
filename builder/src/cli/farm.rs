//! `hermod fetch`, `prepare`, `install-pending` and `boot`: the glue between
//! the command line, the config file and [`crate::farm`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::Args;

use super::{AppError, Global};
use crate::config::{Config, Role};
use crate::farm::prepare::{obtain, LocalDebs, Outcome, Provider};
use crate::farm::repository::RepositoryProvider;
use crate::farm::system::{inside_dpkg, module_names};
use crate::farm::{pending, FarmError, StateDir, System, SystemTools, Wanted};
use crate::input::Input;
use crate::limits::BuildLimits;
use crate::pipeline::{BuildOptions, CachePolicy, Context, PipelineError};
use crate::say;

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The kernel release the packages are for
    #[arg(long)]
    pub kernel: String,
    /// Module packages: NAME (hello), NAME-modules-KREL, a -dkms package name, pkg:NAME
    /// (also tried in the shared cache), a *-dkms .deb or a source directory
    #[arg(required = true)]
    pub packages: Vec<String>,
    /// Only download (verified) into --out; do not run dpkg
    #[arg(long)]
    pub download_only: bool,
    /// Where to put the .debs [default: the current directory with --download-only]
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// The kernel release to prepare the wanted modules for
    #[arg(long)]
    pub kernel: String,
    /// Which hook calls (for the messages): header_postinst.d, postinst.d
    #[arg(long, value_name = "NAME")]
    pub hook: Option<String>,
}

#[derive(Debug, Args)]
pub struct BootArgs {
    /// Kernel release to prepare for [default: the running kernel, `uname -r`]
    #[arg(long, value_name = "KREL")]
    pub kernel: Option<String>,
    /// Install but do not load the modules (implied when --kernel names another kernel)
    #[arg(long)]
    pub no_load: bool,
}

/// The wanted modules of the config file.
fn wanted(config: &Config) -> Result<Vec<Wanted>, FarmError> {
    config.wanted.iter().map(Wanted::from_entry).collect()
}

/// Builds (or, on a farm machine, only pulls from the shared cache) with the
/// pipeline. The context is made on first use: a machine that has everything
/// never opens a store.
struct BuildProvider<'a> {
    global: &'a Global,
    policy: CachePolicy,
    out: PathBuf,
    context: OnceLock<Result<Context, String>>,
}

impl<'a> BuildProvider<'a> {
    fn new(global: &'a Global, policy: CachePolicy, out: PathBuf) -> BuildProvider<'a> {
        BuildProvider { global, policy, out, context: OnceLock::new() }
    }

    fn context(&self) -> Result<&Context, String> {
        let make = || -> Result<Context, AppError> {
            let archives = super::archives(self.global, None)?;
            let config = super::loaded_config(self.global)?;
            let signing = crate::module_signing::ModuleSigning::from_paths(
                config.mok_signing_key.as_deref(),
                config.mok_certificate.as_deref(),
            )?;
            let options = BuildOptions {
                signing,
                shared: super::shared_cache(self.global)?,
                cache_policy: self.policy,
                ..super::build_options(self.global, None, super::DEFAULT_TIMEOUT, BuildLimits::default())
            };
            Ok(Context::new(archives, options))
        };
        self.context.get_or_init(|| make().map_err(|e| e.to_string())).as_ref().map_err(Clone::clone)
    }
}

impl Provider for BuildProvider<'_> {
    fn name(&self) -> String {
        if self.policy.may_build() { "the caches or a build here" } else { "the local or shared cache" }.into()
    }

    fn provide(&self, wanted: &Wanted, kernel: &str, dir: &Path) -> Result<Option<PathBuf>, String> {
        let Some(source) = &wanted.source else { return Ok(None) };
        let ctx = self.context()?;
        let input = Input::parse(source).map_err(|e| e.to_string())?;
        let input = input.prepare(&ctx.archives, kernel, source, &[]).map_err(|e| e.to_string())?;
        match ctx.build_one(&input, kernel, &self.out) {
            Ok(report) => {
                let deb = report.deb.ok_or_else(|| {
                    format!("no package: {}", report.reason.unwrap_or_else(|| "excluded by dkms.conf".into()))
                })?;
                let dest = dir.join(deb.file_name().expect("a file name"));
                crate::farm::move_file(&deb, &dest).map_err(|e| e.to_string())?;
                Ok(Some(dest))
            }
            Err(PipelineError::BuildNotAllowed { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Where a wanted module package may come from on this machine, in order.
fn providers<'a>(
    global: &'a Global,
    config: &Config,
    state: &StateDir,
    with_local: bool,
) -> (Option<LocalDebs>, Option<RepositoryProvider>, Option<BuildProvider<'a>>) {
    let local = with_local.then(|| LocalDebs { dir: state.debs() });
    let repository = config
        .repository_source()
        .map(|source| RepositoryProvider::new(source, state.root().join("lists"), host_architecture(), global.quiet));
    let may_build = config.role == Role::Master;
    let shared = config.remote.is_some() || std::env::var_os("HERMOD_REMOTE").is_some();
    let policy = if may_build { CachePolicy::UseOrBuild } else { CachePolicy::CachedOnly };
    let build = (may_build || shared).then(|| BuildProvider::new(global, policy, state.pending().join(".built")));
    (local, repository, build)
}

/// This machine's dpkg architecture (what `dpkg --print-architecture` says), the one
/// whose Packages index a farm machine reads; Rust names CPUs, Debian names ABIs.
pub(super) fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        "powerpc64" => "ppc64el",
        other => other,
    }
}

fn as_list<'a>(
    parts: &'a (Option<LocalDebs>, Option<RepositoryProvider>, Option<BuildProvider<'_>>),
) -> Vec<&'a dyn Provider> {
    let mut list: Vec<&dyn Provider> = Vec::new();
    if let Some(p) = &parts.0 {
        list.push(p);
    }
    if let Some(p) = &parts.1 {
        list.push(p);
    }
    if let Some(p) = &parts.2 {
        list.push(p);
    }
    list
}

/// `hermod fetch`.
pub fn fetch(global: &Global, args: &FetchArgs) -> Result<(), AppError> {
    let config = super::loaded_config(global)?;
    let state = state_dir(config);
    let configured = wanted(config)?;
    let mut wanted = Vec::new();
    for arg in &args.packages {
        let mut w = Wanted::from_argument(arg, &args.kernel)?;
        // A bare name the config also wants: its source lets the shared cache answer too.
        if w.source.is_none() {
            w.source = configured.iter().find(|c| c.base == w.base).and_then(|c| c.source.clone());
        }
        wanted.push(w);
    }
    if !args.download_only && inside_dpkg(&|v| std::env::var(v).ok()) {
        return Err(FarmError::Tool {
            what: "hermod fetch".into(),
            detail: "dpkg is running (this is a maintainer script): use --download-only, or `hermod prepare`".into(),
        }
        .into());
    }
    // `fetch` never builds: it is the farm's command, whatever the role.
    let mut parts = providers(global, config, &state, false);
    parts.2 = parts.2.map(|mut b| {
        b.policy = CachePolicy::CachedOnly;
        b
    });
    let list = as_list(&parts);
    if list.is_empty() {
        return Err(FarmError::NoRepository { config: config_origin(config) }.into());
    }
    let scratch;
    let out = match (&args.out, args.download_only) {
        (Some(out), _) => out.clone(),
        (None, true) => PathBuf::from("."),
        (None, false) => {
            scratch = tempfile::tempdir().map_err(|source| PipelineError::Io { path: std::env::temp_dir(), source })?;
            scratch.path().to_owned()
        }
    };
    std::fs::create_dir_all(&out).map_err(|source| PipelineError::Io { path: out.clone(), source })?;
    let mut debs = Vec::new();
    for w in &wanted {
        match obtain(w, &args.kernel, &list, &out)? {
            Ok((deb, from)) => {
                say::note(format_args!("{} from {from}", w.package(&args.kernel)));
                println!("{}", deb.display());
                debs.push(deb);
            }
            Err(missing) => {
                let (package, answers) = (w.package(&args.kernel), missing.answers.join("; "));
                return Err(if missing.failed {
                    FarmError::Unavailable { package, answers }
                } else {
                    FarmError::NotAvailable { package, answers }
                }
                .into());
            }
        }
    }
    if !args.download_only {
        SystemTools.install(&debs)?;
    }
    Ok(())
}

/// The config file as messages name it: its path, or that there is none.
fn config_origin(config: &Config) -> String {
    match &config.path {
        Some(path) => format!("the config file {}", path.display()),
        None => format!(
            "the configuration (no config file: {} does not exist, and neither --config nor HERMOD_CONFIG names one)",
            crate::config::DEFAULT_PATH
        ),
    }
}

/// `hermod prepare`: the kernel hooks' command.
pub fn prepare(global: &Global, args: &PrepareArgs) -> Result<(), AppError> {
    let config = super::loaded_config(global)?;
    let state = state_dir(config);
    let wanted = wanted(config)?;
    let from = args.hook.as_deref().map(|h| format!(" (from /etc/kernel/{h})")).unwrap_or_default();
    if wanted.is_empty() {
        say::warning(format_args!(
            "nothing to prepare: {} names no `wanted` modules (see /usr/share/doc/hermod/examples/config.toml)",
            config_origin(config)
        ));
    }
    say::note(format_args!("preparing {} wanted module package(s) for {}{from}", wanted.len(), args.kernel));
    let parts = providers(global, config, &state, true);
    let prepared = crate::farm::prepare(&args.kernel, &wanted, &state, &SystemTools, &as_list(&parts))?;
    report(&prepared);
    finish_prepare(&prepared, &state)
}

fn report(prepared: &crate::farm::PrepareReport) {
    for (w, outcome) in &prepared.outcomes {
        let package = w.package(&prepared.kernel);
        let line = match outcome {
            Outcome::Installed(v) => format!("{package}: installed ({v})"),
            Outcome::AlreadyPending(deb) => format!("{package}: pending ({})", deb.display()),
            Outcome::Pending { deb, from } => format!("{package}: pending, from {from} ({})", deb.display()),
            Outcome::Queued(why) => format!("{package}: QUEUED, nothing has it: {}", why.join("; ")),
        };
        println!("{line}");
    }
}

fn finish_prepare(prepared: &crate::farm::PrepareReport, state: &StateDir) -> Result<(), AppError> {
    match prepared.queued() {
        0 => Ok(()),
        n => Err(FarmError::Queued {
            count: n,
            kernel: prepared.kernel.clone(),
            queue: state.queue().join(&prepared.kernel),
        }
        .into()),
    }
}

/// `hermod install-pending`.
pub fn install_pending(global: &Global) -> Result<(), AppError> {
    let config = super::loaded_config(global)?;
    let state = state_dir(config);
    let done = pending::install(&state, &SystemTools, &|v| std::env::var(v).ok())?;
    report_installed(&done, &state);
    Ok(())
}

fn report_installed(done: &pending::Installed, state: &StateDir) {
    if done.deferred {
        say::notice("dpkg is running: pending packages are installed when it is done (apt's DPkg::Post-Invoke runs `hermod install-pending`; by hand: hermod install-pending)");
    }
    for (package, version) in &done.installed {
        println!("{package} {version}: installed");
    }
    for (package, dependency) in &done.waiting {
        println!("{package}: waiting in {} for {dependency}", state.pending().display());
    }
}

/// `hermod boot`: the running kernel's wanted modules, installed and loaded.
pub fn boot(global: &Global, args: &BootArgs) -> Result<(), AppError> {
    let config = super::loaded_config(global)?;
    let state = state_dir(config);
    let wanted = wanted(config)?;
    let system = SystemTools;
    let running = system.running_kernel()?;
    let kernel = args.kernel.clone().unwrap_or_else(|| running.clone());
    // Only the running kernel can load modules; another's are installed for its next boot.
    let load = !args.no_load && kernel == running;
    let parts = providers(global, config, &state, true);
    let prepared = crate::farm::prepare(&kernel, &wanted, &state, &system, &as_list(&parts))?;
    report(&prepared);
    // Install what is there even when something is queued: one missing module
    // must not keep the others from loading.
    let installed = pending::install(&state, &system, &|v| std::env::var(v).ok());
    if let Ok(done) = &installed {
        report_installed(done, &state);
    }
    let mut failed_loads = Vec::new();
    if load {
        for w in &wanted {
            let package = w.package(&kernel);
            if system.installed_version(&package).is_none() {
                continue;
            }
            for module in module_names(&system.files(&package)?) {
                match system.load_module(&module) {
                    Ok(()) => println!("{module}: loaded"),
                    Err(e) => {
                        say::failure(&e);
                        failed_loads.push(module);
                    }
                }
            }
        }
    }
    installed?;
    finish_prepare(&prepared, &state)?;
    if !failed_loads.is_empty() {
        return Err(FarmError::Tool {
            what: "modprobe".into(),
            detail: format!("not loaded: {}", failed_loads.join(", ")),
        }
        .into());
    }
    Ok(())
}

/// The farm's state directory: `HERMOD_STATE_DIR`, else the config's, else the default.
pub(super) fn state_dir(config: &Config) -> StateDir {
    StateDir::resolve(std::env::var_os("HERMOD_STATE_DIR").filter(|v| !v.is_empty()).map(PathBuf::from), config)
}
