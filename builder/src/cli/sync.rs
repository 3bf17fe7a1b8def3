//! `hermod sync`: glue between the command line, the config (`wanted`,
//! `releases`, `flavours`, `architectures`, `[publish]`) and the engine,
//! `crate::sync`. Results go to stdout (text, or one JSON object per action).

use super::*;
use crate::repo::Publish;
use crate::sync::{Event, Outcome, Request, SyncError};

/// The `--help` text after the options: what a run does, and its one rule.
const AFTER_HELP: &str = "\
What one run does: read the repository's indices; for every wanted module (config `wanted`, each \
with a source) and every kernel of the config's `releases` x `flavours` x `architectures` (their \
release, -updates, -security and -backports suites), compute the cache key as `hermod build` \
does; build what the repository does not publish yet (a key the local store or the shared cache \
holds is taken from there); publish the new packages and move the module metapackages; stop.

A kernel's packages are published only when every wanted module for it built (or was skipped by \
its dkms.conf's BUILD_EXCLUSIVE_*): if one failed, none of that kernel's new packages is \
published (held back), so no metapackage moves farms to a kernel that lacks a module. The others \
are published; the exit status is then the first failure's.

A second run with nothing new builds and writes nothing. For a systemd timer: \
`systemctl enable --now hermod-sync.timer` (hermod-sync.service runs `hermod sync --once`).";

#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct SyncArgs {
    /// Run once and stop (for a systemd timer or a CI job); required: a resident loop may come
    /// later, under another flag
    #[arg(long, required = true)]
    pub once: bool,
    /// Print what would be built and published; build nothing, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object per line per action: {"action":"build"|"hold"|"keep"|"publish",…}
    #[arg(long)]
    pub json: bool,
    /// Only these kernels (repeatable; a release, `all` or `all:FLAVOURS`, as `hermod build
    /// --kernel` takes them) [default: every kernel of the config's flavours]
    #[arg(long = "kernel", value_name = "KREL")]
    pub kernels: Vec<String>,
    #[command(flatten)]
    pub place: super::repo::RepoPlace,
    /// Parallel jobs [default: number of CPUs], shared by the builds as `hermod build` shares them
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Wall-clock limit for one build, in seconds
    #[arg(long, default_value_t = DEFAULT_TIMEOUT.as_secs())]
    pub timeout: u64,
    /// Resource limit of the build sandbox, NAME=VALUE (repeatable), as for `hermod build`
    #[arg(long = "limit", value_name = "NAME=VALUE")]
    pub limits: Vec<String>,
}

/// `hermod sync`.
pub(super) fn sync(global: &Global, args: &SyncArgs) -> Result<(), AppError> {
    let config = loaded_config(global)?;
    let config_name =
        config.path.as_ref().map_or_else(|| crate::config::DEFAULT_PATH.into(), |p| p.display().to_string());

    // Where to publish: the flags, else [publish].
    let super::repo::Place { dir, suite, component, key } = args.place.resolve(global)?;

    // What is wanted: the sources, each made ready once per release.
    let mut sources: Vec<String> = Vec::new();
    for (i, item) in config.wanted.iter().enumerate() {
        match item.source() {
            Some(source) => sources.push(source.to_owned()),
            None => say::warning(format_args!(
                "wanted[{i}] ({}) names no source: sync cannot build it, so it is left out (add source = …)",
                item.package().unwrap_or("?")
            )),
        }
    }
    if sources.is_empty() {
        return Err(SyncError::NothingWanted { config: config_name }.into());
    }
    let signing = ModuleSigning::from_paths(config.mok_signing_key.as_deref(), config.mok_certificate.as_deref())?;
    let ctx = Context::new(
        archives(global, None)?,
        BuildOptions {
            signing,
            shared: shared_cache(global)?,
            ..build_flags(global, args.jobs, args.timeout, &args.limits)?
        },
    );
    let kernels = wanted_kernels(&ctx.archives, config, &args.kernels)?;
    let (inputs, wanted) = prepare_per_release(&ctx.archives, &sources, &kernels, &[])?;
    let pairs: Vec<(&Prepared, String)> = wanted.into_iter().map(|(i, k)| (&inputs[i], k)).collect();
    say::note(format_args!(
        "sync: {} modules x {} kernels into {} ({suite} {component}){}",
        sources.len(),
        kernels.len(),
        dir.display(),
        if args.dry_run { ", dry run" } else { "" }
    ));

    let publish = Publish {
        repo: &dir,
        suite: &suite,
        component: &component,
        key: key.as_ref(),
        source_date_epoch: repo::source_date_epoch()?,
        now: repo::now(),
        // sync keeps a version published with other bytes (its `keep` event);
        // `hermod publish --revision` ships such a rebuild on purpose.
        ..Publish::default()
    };
    let request = Request { pairs: &pairs, publish: &publish, dry_run: args.dry_run };
    let mut tell = |event: &Event| print_event(event, args.json);
    let result = crate::sync::sync(&ctx, &request, &mut tell);
    if let Ok(summary) = &result {
        say::note(format_args!(
            "sync: {} wanted, {} already published, {} built or taken from a cache, {} packages added",
            summary.wanted, summary.published, summary.built, summary.added
        ));
    }
    if key.is_none() && !args.dry_run {
        say::notice(
            "WARNING: the repository is NOT SIGNED (no sign_key in [publish], no --sign-key): apt refuses it. \
             Make a key with `hermod repo keygen --out PREFIX`.",
        );
    }
    result?;
    Ok(())
}

/// The kernels to sync: `--kernel`, else every kernel of the config's
/// flavours (`all:FLAVOURS`; none: `all`, the plain flavour) on the
/// platforms `architectures` covers.
fn wanted_kernels(archives: &Archives, config: &Config, asked: &[String]) -> Result<Vec<String>, AppError> {
    if !asked.is_empty() {
        return Ok(archives.kernels(asked)?);
    }
    let all = match &config.flavours {
        Some(flavours) if !flavours.is_empty() => format!("all:{}", flavours.join(",")),
        _ => "all".to_owned(),
    };
    let mut kernels = Vec::new();
    for kernel in archives.kernels(std::slice::from_ref(&all))? {
        if archives.platform(&kernel)?.platform.in_kernel_all {
            kernels.push(kernel);
        }
    }
    if kernels.is_empty() {
        let why = format!("the archive offers no kernel for `{all}` on the configured releases and architectures");
        return Err(SyncError::NoKernels { why }.into());
    }
    Ok(kernels)
}

/// One event on stdout: a JSON line, or a line for people (failures go to
/// stderr too, through `say`).
fn print_event(event: &Event, json: bool) {
    if let Event::Build(b) = event {
        if b.outcome == Outcome::Failed {
            // A build's error names its source first: said once.
            let message = b.message.as_deref().unwrap_or("failed");
            let rest = message.strip_prefix(b.source.as_str()).and_then(|r| r.strip_prefix(": ")).unwrap_or(message);
            say::failure(format_args!("error: {} for {}: {rest}", b.source, b.kernel));
        }
    }
    let line = if json { serde_json::to_string(event).expect("an event serializes") } else { text(event) };
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn text(event: &Event) -> String {
    match event {
        Event::Build(b) => {
            let what = b.package.as_deref().unwrap_or(&b.source);
            match b.outcome {
                Outcome::Built => format!("built {what} {}", b.version.as_deref().unwrap_or("")),
                Outcome::Cached => format!(
                    "cached {what} {} ({})",
                    b.version.as_deref().unwrap_or(""),
                    if b.cache == Some(crate::pipeline::CacheStatus::Remote) { "shared cache" } else { "local store" }
                ),
                Outcome::Skipped => format!(
                    "skipped {what} for {}: {}",
                    b.kernel,
                    b.message.as_deref().unwrap_or("excluded by dkms.conf")
                ),
                Outcome::Failed => format!(
                    "failed {} for {} (exit {}){}",
                    b.source,
                    b.kernel,
                    b.exit_code.unwrap_or(1),
                    b.log.as_ref().map(|l| format!("; log: {}", l.display())).unwrap_or_default()
                ),
                Outcome::Planned => format!(
                    "would build {} for {} (key {}; {})",
                    b.source,
                    b.kernel,
                    b.key.as_deref().map_or("?", |k| &k[..16.min(k.len())]),
                    match b.cached_in {
                        Some(crate::plan::Cached::Local) => "in the local store",
                        Some(crate::plan::Cached::Shared) => "in the shared cache",
                        None => "not cached: a build",
                    }
                ),
            }
        }
        Event::Hold(h) => format!(
            "held back {}: {}{}",
            h.kernel,
            h.reason,
            if h.withheld.is_empty() { String::new() } else { format!(" (not published: {})", h.withheld.join(", ")) }
        ),
        Event::Keep(k) => format!("kept {} {} as published: {}", k.package, k.version, k.reason),
        Event::Publish(p) if p.dry_run => format!(
            "would publish {} packages for {} into {}",
            p.packages.len(),
            p.kernels.join(", "),
            p.repo.display()
        ),
        Event::Publish(p) => format!(
            "published {} packages for {} into {} ({} metapackage versions, {} files written)",
            p.packages.len(),
            p.kernels.join(", "),
            p.repo.display(),
            p.metapackages.len(),
            p.files_written
        ),
    }
}
