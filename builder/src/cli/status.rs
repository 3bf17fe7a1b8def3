//! `hermod status`: the glue between the command line, the config, the
//! pipeline's key computation (as `plan` does it), the store's records, the
//! repository and dpkg, and [`crate::status`]'s rows and renderings.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{AppError, Global, SigningArgs};
use crate::config::{Config, Role};
use crate::failures::{self, Kind};
use crate::farm::repository::Repository;
use crate::farm::{SystemTools, Wanted};
use crate::pipeline::{Context, PipelineError};
use crate::plan::Cached;
use crate::repo::Published;
use crate::source::SourceTree;
use crate::status::{self, FarmInputs, MasterReport, MasterRow, MasterState, RepositoryState, StatusError};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The master's view (module x kernel: published, cached, failed, skipped, missing)
    /// whatever the config's role [default: the config's role]
    #[arg(long, conflicts_with = "farm")]
    pub master: bool,
    /// The farm view (this machine's kernels: installed, pending, queued, available,
    /// missing) whatever the config's role
    #[arg(long)]
    pub farm: bool,
    /// Kernel releases to report on (repeatable). Master: also `all` or `all:FLAVOURS`
    /// [default: `all:` the config's `flavours`, over its `releases` and `architectures`].
    /// Farm: these kernels are the ones checked [default: the running and the newest
    /// installed kernel checked; every installed one shown]
    #[arg(long = "kernel", value_name = "KREL")]
    pub kernels: Vec<String>,
    /// One JSON object: the rows (`entries`), `ok` and `lacking`
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub signing: SigningArgs,
}

/// `hermod status`.
pub fn status(global: &Global, args: &StatusArgs) -> Result<(), AppError> {
    let config = super::loaded_config(global)?;
    let master = args.master || (!args.farm && config.role == Role::Master);
    let (text, json, verdict) = if master {
        let report = master_report(global, config, args)?;
        (report.table(), report.json(), report.verdict())
    } else {
        let report = farm_report(config, args)?;
        (report.table(), report.json(), report.verdict())
    };
    let shown = if args.json { format!("{json}\n") } else { text };
    std::io::stdout()
        .lock()
        .write_all(shown.as_bytes())
        .map_err(|source| PipelineError::Io { path: PathBuf::from("<stdout>"), source })?;
    Ok(verdict?)
}

fn config_name(config: &Config) -> String {
    config.path.as_deref().unwrap_or(Path::new(crate::config::DEFAULT_PATH)).display().to_string()
}

/// The master's view: every wanted source × kernel, its key and where it stands.
fn master_report(global: &Global, config: &Config, args: &StatusArgs) -> Result<MasterReport, AppError> {
    let sources: Vec<String> = config.wanted.iter().filter_map(|w| w.source().map(str::to_owned)).collect();
    if sources.is_empty() {
        return Err(StatusError::NothingWanted { config: config_name(config), what: " with a source" }.into());
    }
    let ctx = super::plan::key_context(global, &args.signing)?;
    let asked = if args.kernels.is_empty() {
        vec![match &config.flavours {
            Some(flavours) => format!("all:{}", flavours.join(",")),
            None => "all".to_owned(),
        }]
    } else {
        args.kernels.clone()
    };
    let kernels = ctx.archives.kernels(&asked)?;
    let listed = match &config.publish {
        Some(p) => Some(crate::repo::published(&p.dir, &p.suite, &p.component)?),
        None => None,
    };
    let (inputs, pairs) = super::prepare_per_release(&ctx.archives, &sources, &kernels, &[])?;
    let mut scanned: Vec<Option<SourceTree>> = inputs.iter().map(|_| None).collect();
    let mut entries = Vec::new();
    for (i, kernel) in &pairs {
        let input = &inputs[*i];
        if scanned[*i].is_none() {
            scanned[*i] = Some(SourceTree::scan(&input.dir)?);
        }
        let source = scanned[*i].as_ref().expect("scanned above");
        let module = Wanted::from_argument(&input.label, kernel).map_or_else(|_| input.label.clone(), |w| w.base);
        let row = match super::plan::entry(&ctx, &input.label, input, source, kernel) {
            Ok(entry) => master_row(&ctx, &module, entry, listed.as_deref()),
            // A kernel whose key cannot be computed (no headers, the archive
            // unreachable) cannot have been built: missing, and why.
            Err(e) => MasterRow {
                module,
                source: input.label.clone(),
                kernel: kernel.clone(),
                architecture: String::new(),
                key: None,
                state: MasterState::Missing,
                package: None,
                version: None,
                cached_in: None,
                exit_code: None,
                message: Some(format!("no key: {e}")),
                log: None,
                repository_version: None,
            },
        };
        entries.push(row);
    }
    let repository = config.publish.as_ref().map(|p| format!("{} {}/{}", p.dir.display(), p.suite, p.component));
    Ok(MasterReport { repository, kernels, entries })
}

/// Where one key stands: the repository, the caches, the store's records.
fn master_row(ctx: &Context, module: &str, entry: crate::plan::Entry, listed: Option<&[Published]>) -> MasterRow {
    let store = ctx.archives.store();
    let mut row = MasterRow {
        module: module.to_owned(),
        source: entry.source.clone(),
        kernel: entry.kernel.clone(),
        architecture: entry.architecture.clone(),
        key: Some(entry.key.clone()),
        state: MasterState::Missing,
        package: None,
        version: None,
        cached_in: entry.cached_in,
        exit_code: None,
        message: None,
        log: None,
        repository_version: None,
    };
    let guessed = crate::pipeline::package_name(module, &entry.kernel);
    if entry.cached_in == Some(Cached::Local) {
        if let Some((manifest, _)) = crate::cache::read_entry(store, &entry.key) {
            row.package = Some(manifest.package);
            row.version = Some(manifest.version);
        }
    }
    let listed = listed.unwrap_or_default();
    let architecture = |l: &&Published| l.architecture == entry.architecture;
    if let Some(published) = listed.iter().filter(architecture).find(|l| l.key.as_deref() == Some(&entry.key)) {
        row.state = MasterState::Published;
        row.package = Some(published.package.clone());
        row.version = Some(published.version.clone());
        return row;
    }
    let name = row.package.clone().unwrap_or(guessed);
    // The newest by dpkg's order (0.10 after 0.9), not the listing's.
    row.repository_version = listed
        .iter()
        .filter(architecture)
        .filter(|l| l.package == name)
        .filter_map(|l| crate::apt::version::Version::parse(&l.version).ok().map(|v| (v, &l.version)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, v)| v.clone());
    if entry.cached {
        row.state = MasterState::Cached;
        return row;
    }
    if let Some(record) = failures::read(store, Kind::Failed, &entry.key) {
        row.state = MasterState::Failed;
        row.exit_code = Some(record.exit_code);
        row.message = Some(record.message);
        row.log = record.log;
    } else if let Some(record) = failures::read(store, Kind::Skipped, &entry.key) {
        row.state = MasterState::Skipped;
        row.message = Some(record.message);
    }
    row
}

/// The farm view: dpkg, `pending/`, `queue/` and the configured repository.
fn farm_report(config: &Config, args: &StatusArgs) -> Result<status::FarmReport, AppError> {
    let wanted: Vec<Wanted> = config.wanted.iter().map(Wanted::from_entry).collect::<Result<_, _>>()?;
    if wanted.is_empty() {
        return Err(StatusError::NothingWanted { config: config_name(config), what: "" }.into());
    }
    let state = super::farm::state_dir(config);
    let (repository, opened) = match config.repository_source() {
        None => (RepositoryState::None, None),
        Some(source) => {
            let arch = super::farm::host_architecture();
            match Repository::open(source, &state.root().join("lists"), arch, true) {
                Ok(repo) => (RepositoryState::Read(repo.label()), Some(repo)),
                Err(e) => {
                    crate::say::warning(format_args!("the repository could not be read: {e}"));
                    (RepositoryState::Unreadable(e.to_string()), None)
                }
            }
        }
    };
    let offered = |package: &str| opened.as_ref().and_then(|r| r.find(package)).map(|p| p.version.clone());
    let inputs = FarmInputs { wanted: &wanted, state: &state, kernels: &args.kernels, repository, offered: &offered };
    Ok(status::farm(&SystemTools, &inputs)?)
}
