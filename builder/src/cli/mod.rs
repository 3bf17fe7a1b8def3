//! Command-line interface: the argument grammar and what each command does.
//! Command and flag names are a contract with users and scripts: extend, never rename.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::input::{Input, Prepared};
use crate::limits::BuildLimits;
use crate::module_signing::ModuleSigning;
use crate::pipeline::{Archives, BuildOptions, CachePolicy, Context, PipelineError, Status};
use crate::rootfs::{Lock, Recipe, RootfsError};
use crate::say;
use crate::shared_cache::SharedCache;
use crate::store::Store;

mod build;
mod cache;
mod exit;
mod farm;
mod load_test;
mod plan;
mod repo;
mod roots;
mod status;
mod sync;
mod verify;

use cache::{cache_command, key_command};
pub use exit::{exit_code, AppError};

/// The exit-status table of `--help`, made from [`crate::exit::Code`].
pub fn exit_codes() -> String {
    crate::exit::Code::table()
}

/// A fixed default, so packages do not depend on the host that built them.
pub const DEFAULT_MAINTAINER: &str = "hermod module builder <hermod@packages.invalid>";

#[derive(Debug, Parser)]
#[command(name = "hermod", version, about = "Build out-of-tree Linux kernel modules once, hermetically, into reproducible .debs", after_help = exit_codes())]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Store directory [default: /var/cache/hermod as root, else $XDG_CACHE_HOME/hermod]
    #[arg(long, env = "HERMOD_STORE", global = true)]
    pub store: Option<PathBuf>,
    /// Directory for downloaded .debs (verified by SHA256, so several stores may share one)
    #[arg(long, env = "HERMOD_PACKAGE_CACHE", global = true)]
    pub package_cache: Option<PathBuf>,
    /// Rootfs recipe file [default: the builtin bookworm-amd64 recipe]
    #[arg(long, global = true)]
    pub recipe: Option<PathBuf>,
    /// Config file: package sources and more [default: /etc/hermod/config.toml if it exists]
    #[arg(long, env = "HERMOD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// More log output: -v what hermod does, -vv its details, -vvv its dependencies' too
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Maintainer field of the packages written (it is part of the cache key)
    #[arg(long, env = "HERMOD_MAINTAINER", global = true, default_value = DEFAULT_MAINTAINER)]
    pub maintainer: String,
    /// Only errors on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Directory of dkms.conf overrides (`<module>.conf`, `<module>-<version>.conf`, …), as
    /// DKMS reads /etc/dkms; those that apply are part of the cache key
    #[arg(long, env = "HERMOD_DKMS_OVERRIDES", global = true, default_value = crate::dkms::overrides::DEFAULT_DIR)]
    pub dkms_overrides: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build module packages from DKMS sources
    Build(BuildArgs),
    /// Print the cache key of a build; --explain lists its inputs, --against names what changed
    Key(KeyArgs),
    /// Write an OCI runtime bundle (config.json) that runs the build step in
    /// another runtime, e.g. `runc run --bundle DIR ID`; modules land in DIR/work/out
    Oci(OciArgs),
    /// The local cache of built packages (stats, gc, verify) and the shared cache's keys (keygen)
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Manage build roots (headers + toolchain)
    Rootfs {
        #[command(subcommand)]
        command: RootfsCommand,
    },
    /// Farm side: download module packages for a kernel from the repository (or the shared
    /// cache), verified, and install them with dpkg; needs no toolchain and no build root
    Fetch(farm::FetchArgs),
    /// For the kernel hooks: put the config's wanted module packages for KERNEL into
    /// /var/lib/hermod/pending (from debs/, the repository, the shared cache, or a build on a
    /// master); queue what none has. Never runs dpkg
    Prepare(farm::PrepareArgs),
    /// Install the pending module packages with dpkg and clear them (run by apt's
    /// DPkg::Post-Invoke after dpkg is done; defers inside a maintainer script)
    InstallPending,
    /// For hermod-boot.service: prepare and install the running kernel's wanted module
    /// packages, then load their modules
    Boot(farm::BootArgs),
    /// The build matrix for a CI engine (GitHub Actions, GitLab): one entry per module and
    /// kernel with its cache key and whether a cache already holds it
    Plan(plan::PlanArgs),
    /// Add .debs to a signed APT repository (pool/, dists/SUITE/…, InRelease written last);
    /// the same inputs give the same bytes
    Publish(repo::PublishArgs),
    /// The APT repository: its signing key (keygen), removing packages (remove), the retention
    /// policy (prune)
    Repo {
        #[command(subcommand)]
        command: repo::RepoCommand,
    },
    /// Boot linux-image-KREL from the archive under qemu (software emulation) with a tiny
    /// initramfs and load, then unload, the modules of built packages in it
    LoadTest(load_test::LoadTestArgs),
    /// Build twice, bypassing the cache, under varied conditions (paths, time, umask, uid, host
    /// name, environment, locale, TZ, jobs, file order) and compare the .debs byte for byte;
    /// --against DEB: rebuild once and compare with a published package
    Verify(verify::VerifyArgs),
    /// A master's loop, once (`--once`, for a systemd timer): build what the config wants
    /// (modules x kernels of its releases and flavours) and its repository lacks, then publish
    /// it; a kernel's packages only when every wanted module for it built
    Sync(sync::SyncArgs),
    /// Like `dkms status`: on a master, each wanted module x kernel (published, cached,
    /// failed with its log, skipped, missing); on a farm machine, its kernels and each wanted
    /// module (installed, pending, queued, available, missing). Exit 10 when something
    /// wanted is missing (farm: for the running or newest installed kernel)
    Status(status::StatusArgs),
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell), e.g.
    /// `hermod completions bash > /etc/bash_completion.d/hermod`; the package installs them
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Module source: a directory holding dkms.conf, a *-dkms_*.deb file, or pkg:NAME[=VERSION]
    /// (that -dkms package from the configured archive)
    #[arg(required = true)]
    pub sources: Vec<String>,
    #[command(flatten)]
    pub needs: NeedsArgs,
    /// Kernel release (repeatable; its release, bookworm or trixie, is the one whose suites
    /// offer its headers), or `all`: every plain-flavour kernel (-amd64) of every release, or
    /// `all:FLAVOURS` (globs, comma-separated: `all:cloud-amd64`, `all:*`) [default: the newest
    /// linux-headers-amd64 of the machine's own release]
    #[arg(long = "kernel")]
    pub kernels: Vec<String>,
    /// Build against the exact packages of this lock file (from `hermod rootfs lock`);
    /// reads no archive index, and needs no network when the packages are cached
    #[arg(long, value_name = "FILE", conflicts_with = "kernels")]
    pub lock: Option<PathBuf>,
    /// Output directory for the .debs
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Parallel jobs [default: number of CPUs]; several builds share them: up to JOBS builds
    /// run at once, each make getting JOBS / (builds at once)
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Wall-clock limit for one build, in seconds
    #[arg(long, default_value_t = DEFAULT_TIMEOUT.as_secs())]
    pub timeout: u64,
    /// Resource limit of the build sandbox, NAME=VALUE (repeatable): memory, pids,
    /// build-space, tmp-space, nproc, fsize, cpu, nofile, core; sizes as 512M or 4G; none lifts one
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    pub limits: Vec<String>,
    /// Print one JSON object per line per (source, kernel)
    #[arg(long)]
    pub json: bool,
    /// Print each build's cache key and whether a cache holds it; build nothing (a BUILD_EXCLUSIVE
    /// skip is only known by building)
    #[arg(long)]
    pub dry_run: bool,
    /// Fail (exit 9) if a package built here could not be pushed to the shared cache; without it
    /// a failed push is only a warning (for CI jobs whose builds others pull)
    #[arg(long)]
    pub require_push: bool,
    #[command(flatten)]
    pub signing: SigningArgs,
}

/// Module signing for Secure Boot (see `module_signing.rs`).
#[derive(Debug, Args)]
pub struct SigningArgs {
    /// Sign each module with this private key (PEM or DER, unencrypted) for Secure Boot, with
    /// the build root's sign-file [config: mok_signing_key]
    #[arg(long, value_name = "FILE", env = "HERMOD_MOK_SIGNING_KEY")]
    pub mok_signing_key: Option<PathBuf>,
    /// The X.509 certificate of that key (PEM or DER); its SHA-256 fingerprint is part of the
    /// cache key [config: mok_certificate]
    #[arg(long, value_name = "FILE", env = "HERMOD_MOK_CERTIFICATE")]
    pub mok_certificate: Option<PathBuf>,
}

impl SigningArgs {
    /// The flags, else the config file's keys.
    fn load(&self, global: &Global) -> Result<Option<ModuleSigning>, AppError> {
        let config = loaded_config(global)?;
        Ok(ModuleSigning::from_paths(
            self.mok_signing_key.as_deref().or(config.mok_signing_key.as_deref()),
            self.mok_certificate.as_deref().or(config.mok_certificate.as_deref()),
        )?)
    }
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Module source: a directory holding dkms.conf, a *-dkms_*.deb file, or pkg:NAME[=VERSION]
    pub source: String,
    #[command(flatten)]
    pub needs: NeedsArgs,
    /// Kernel release [default: the newest linux-headers-amd64 in the archive]
    #[arg(long)]
    pub kernel: Option<String>,
    /// Against the exact packages of this lock file
    #[arg(long, value_name = "FILE", conflicts_with = "kernel")]
    pub lock: Option<PathBuf>,
    /// List each input with its hash
    #[arg(long)]
    pub explain: bool,
    /// Name the inputs that differ from an earlier key (a key or unique prefix remembered in
    /// the store, or a file written by `hermod key --json`)
    #[arg(long, value_name = "KEY|FILE")]
    pub against: Option<String>,
    /// Print the key and its inputs (with --against: the differences) as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub signing: SigningArgs,
}

#[derive(Debug, Args)]
pub struct OciArgs {
    /// Module source: a directory holding dkms.conf, a *-dkms_*.deb file, or pkg:NAME[=VERSION]
    pub source: String,
    #[command(flatten)]
    pub needs: NeedsArgs,
    /// Kernel release [default: the newest linux-headers-amd64 in the archive]
    #[arg(long)]
    pub kernel: Option<String>,
    /// Bundle directory to write (must be empty or not exist)
    #[arg(long)]
    pub bundle: PathBuf,
    /// Resource limit, NAME=VALUE (repeatable), as for `hermod build`
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    pub limits: Vec<String>,
}

/// Declared build needs (see `crate::input`).
#[derive(Debug, Args)]
pub struct NeedsArgs {
    /// More packages for the build root (comma-separated or repeated; Depends syntax, e.g.
    /// libelf-dev or 'gawk | mawk'), besides a -dkms package's own Depends; they are locked and
    /// part of the cache key like the headers
    #[arg(long = "build-depends", value_name = "PKG[,PKG...]", value_delimiter = ',')]
    pub build_depends: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Entries, blobs, bytes, last use, packages per kernel
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Remove entries unused for DAYS, then the least recently used until the cache takes at
    /// most SIZE (e.g. 2G), then blobs no entry names; with DAYS, also the records of failed
    /// and skipped builds older than that
    Gc {
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
        #[arg(long, value_name = "DAYS")]
        older_than: Option<u64>,
        /// Print what would be removed; remove nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-hash every cached package; a corrupt one is quarantined and rebuilt on next use
    Verify,
    /// Upload every package of the local cache the shared cache lacks, signed (needs the push
    /// settings: HERMOD_REMOTE, HERMOD_REMOTE_PUSH, HERMOD_SIGNING_KEY); exit 9 if any upload failed
    Push,
    /// Write a new ed25519 secret key for signing shared-cache entries to FILE
    /// (mode 0600, never over an existing file); print its public key as NAME:BASE64,
    /// the form HERMOD_TRUSTED_KEYS takes
    Keygen {
        /// The secret key file to create
        file: PathBuf,
        /// The key's name [default: FILE's name without its extension]
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RootfsCommand {
    /// Resolve, download and unpack the build root for a kernel
    Build {
        #[arg(long)]
        kernel: Option<String>,
        /// Use this lock file's packages instead of resolving (no index is read)
        #[arg(long, value_name = "FILE", conflicts_with = "kernel")]
        lock: Option<PathBuf>,
    },
    /// Resolve the build root's exact package set into a lock file
    Lock {
        #[arg(long)]
        kernel: Option<String>,
        /// Write the lock here [default: standard output]
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        needs: NeedsArgs,
    },
    /// List the build roots: kernel, lock hash, compiler, size, bytes shared
    /// with other roots, last use; and what they take together on disk
    List {
        /// One JSON object per root, then one with the totals
        #[arg(long)]
        json: bool,
    },
    /// Show a kernel's lock: the headers hash and the toolchain hash (both
    /// feed the cache key) and their packages
    Show {
        #[arg(long)]
        kernel: Option<String>,
        /// Show this lock file's packages instead of resolving
        #[arg(long, value_name = "FILE", conflicts_with = "kernel")]
        lock: Option<PathBuf>,
    },
    /// Remove build roots not used for a while, then the stored files only
    /// they held; never a root in use
    Gc {
        /// Remove roots unused for this many days [default: 30; 0 with --kernel]
        #[arg(long, value_name = "DAYS", value_parser = parse_days)]
        older_than: Option<f64>,
        /// Only roots of this kernel
        #[arg(long)]
        kernel: Option<String>,
        /// Print what would be removed; remove nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-hash every file of the store, restore corrupt ones from their
    /// packages and re-link the roots that used them
    Verify,
    /// Write a build root (made first if needed) as an OCI image layout: one
    /// tar+zstd layer, the same digests on any host; prints the manifest digest
    Export {
        #[arg(long)]
        kernel: Option<String>,
        /// Export this lock file's root instead of resolving
        #[arg(long, value_name = "FILE", conflicts_with = "kernel")]
        lock: Option<PathBuf>,
        /// Image layout directory to write (must be empty or not exist)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Import an image layout written by `rootfs export` (every digest checked)
    /// as the build root of its lock; prints its hash, kernel and tree
    Import {
        /// OCI image layout directory
        dir: PathBuf,
    },
}

fn parse_days(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(days) if days.is_finite() && days >= 0.0 => Ok(days),
        _ => Err("expected a number of days, 0 or more (e.g. 30 or 0.5)".into()),
    }
}

fn loaded_config(global: &Global) -> Result<&'static Config, crate::config::ConfigError> {
    static CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config);
    }
    let config = Config::load(global.config.as_deref())?;
    Ok(CONFIG.get_or_init(|| config))
}

fn open_store(global: &Global) -> Result<Store, PipelineError> {
    let root = match &global.store {
        Some(root) => root.clone(),
        None => Store::default_root(&|name| std::env::var_os(name))?,
    };
    Ok(Store::open(&root, global.package_cache.as_deref())?)
}

/// `--recipe FILE`, if given.
fn load_recipe(global: &Global) -> Result<Option<Recipe>, PipelineError> {
    Ok(global.recipe.as_deref().map(Recipe::load).transpose()?)
}

/// The store, the platforms and the lock file given: what every command that
/// reads the archive uses, whether it builds or not.
fn archives(global: &Global, lock: Option<&Path>) -> Result<Archives, AppError> {
    let config = loaded_config(global)?;
    let recipe = load_recipe(global)?;
    let own = recipe.as_ref().map_or("", |r| r.name.as_str());
    let lock = lock.map(|path| Lock::read_file(path, own)).transpose().map_err(RootfsError::from)?;
    Ok(Archives::new(open_store(global)?, config.platforms(recipe)?, lock, global.quiet))
}

/// The wall-clock limit of one build when none is given (`--timeout` of `build` and `verify`).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// [`build_options`] from a building command's flags as given: `--jobs`,
/// `--timeout SECS` (at least 1) and the `--limit NAME=VALUE`s.
fn build_flags(
    global: &Global,
    jobs: Option<usize>,
    timeout: u64,
    limits: &[String],
) -> Result<BuildOptions, AppError> {
    let limits = BuildLimits::from_args(limits)?;
    Ok(build_options(global, jobs, Duration::from_secs(timeout.max(1)), limits))
}

/// The build options of the global flags and a command's `jobs` (none or 0:
/// one per CPU), `timeout` and `limits`; no module signing, no shared cache,
/// and a cached result or a build ([`CachePolicy::UseOrBuild`]): a command
/// that has those sets them.
fn build_options(global: &Global, jobs: Option<usize>, timeout: Duration, limits: BuildLimits) -> BuildOptions {
    let jobs = jobs.filter(|&j| j > 0).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    BuildOptions {
        maintainer: global.maintainer.clone(),
        jobs,
        timeout,
        limits,
        signing: None,
        shared: None,
        dkms_overrides: global.dkms_overrides.clone(),
        cache_policy: CachePolicy::UseOrBuild,
    }
}

/// The shared cache the config file and the environment name, if any.
fn shared_cache(global: &Global) -> Result<Option<SharedCache>, AppError> {
    let settings = crate::shared_cache::Settings::resolve(loaded_config(global)?, &|var| std::env::var(var).ok())?;
    Ok(SharedCache::from_settings(&settings)?)
}

/// The inputs, and which of them to build for which kernel (an index into the inputs).
pub(crate) type PerRelease = (Vec<Prepared>, Vec<(usize, String)>);

/// Each SOURCE made ready once per release among `kernels` (parsed,
/// downloaded, unpacked: all bad inputs are found before anything is built),
/// in the order asked; and the (input, kernel) pairs to build, each once (two
/// builds of one key at once would share a log). A kernel no release offers
/// is paired with the first release's input: its build fails alone, as it
/// always did, unless no kernel has a release.
pub(crate) fn prepare_per_release(
    archives: &Archives,
    sources: &[String],
    kernels: &[String],
    needs: &[String],
) -> Result<PerRelease, PipelineError> {
    // Releases in the order their first kernel comes, each with its kernels.
    let mut releases: Vec<(String, Vec<String>)> = Vec::new();
    let mut homeless: Vec<String> = Vec::new();
    let mut first_error = None;
    for kernel in kernels {
        match archives.platform(kernel) {
            Ok(platform) => {
                let name = &platform.recipe().name;
                match releases.iter_mut().find(|(n, _)| n == name) {
                    Some((_, ks)) => ks.push(kernel.clone()),
                    None => releases.push((name.clone(), vec![kernel.clone()])),
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
                homeless.push(kernel.clone());
            }
        }
    }
    match (releases.first_mut(), first_error) {
        (Some((_, ks)), _) => ks.extend(homeless),
        (None, Some(e)) => return Err(e),
        (None, None) => {}
    }
    let mut inputs: Vec<Prepared> = Vec::new();
    let mut pairs = Vec::new();
    let mut labels: Vec<&String> = Vec::new();
    for arg in sources {
        if labels.contains(&arg) {
            continue;
        }
        labels.push(arg);
        let first = inputs.len();
        for (_, ks) in &releases {
            inputs.push(Input::parse(arg)?.prepare(archives, &ks[0], arg, needs)?);
        }
        // The kernels in the order asked, each with its release's input.
        for kernel in kernels {
            let release = releases.iter().position(|(_, ks)| ks.contains(kernel)).expect("every kernel has a group");
            pairs.push((first + release, kernel.clone()));
        }
    }
    Ok((inputs, pairs))
}

/// Run a parsed command line.
pub fn run(cli: &Cli) -> Result<(), AppError> {
    match &cli.command {
        Command::Build(args) => build::build(&cli.global, args),
        Command::Key(args) => key_command(&cli.global, args),
        Command::Oci(args) => {
            let limits = BuildLimits::from_args(&args.limits)?;
            let options = build_options(&cli.global, None, DEFAULT_TIMEOUT, limits);
            let ctx = Context::new(archives(&cli.global, None)?, options);
            let kernel = match &args.kernel {
                Some(k) => k.clone(),
                None => ctx.archives.default_kernel()?,
            };
            let needs = &args.needs.build_depends;
            let input = Input::parse(&args.source)?.prepare(&ctx.archives, &kernel, &args.source, needs)?;
            let config = crate::oci_bundle::write(&ctx, &input, Some(&kernel), &args.bundle)?;
            println!("{config}");
            let dir = args.bundle.display();
            say::note(format_args!(
                "wrote {dir}/config.json; `runc run --bundle {dir} ID` builds into {dir}/work/out/module-N.ko"
            ));
            Ok(())
        }
        Command::Rootfs { command } => roots::rootfs_command(&cli.global, command),
        Command::Cache { command } => cache_command(&cli.global, command),
        Command::Fetch(args) => farm::fetch(&cli.global, args),
        Command::Prepare(args) => farm::prepare(&cli.global, args),
        Command::InstallPending => farm::install_pending(&cli.global),
        Command::Boot(args) => farm::boot(&cli.global, args),
        Command::Plan(args) => plan::plan(&cli.global, args),
        Command::Publish(args) => repo::publish(&cli.global, args),
        Command::Repo { command } => repo::repo_command(&cli.global, command),
        Command::LoadTest(args) => load_test::load_test(&cli.global, args),
        Command::Verify(args) => verify::verify(&cli.global, args),
        Command::Sync(args) => sync::sync(&cli.global, args),
        Command::Status(args) => status::status(&cli.global, args),
        Command::Completions { shell } => build::completions(*shell),
    }
}
