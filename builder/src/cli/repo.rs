//! `hermod publish` and `hermod repo keygen|remove|prune`: glue between the
//! command line and `crate::repo` (the APT repository a farm installs from).

use std::collections::BTreeSet;

use super::*;
use crate::repo::{self, Publish, Removal, Remove, RepoError, Report, SigningKey};

/// Which repository, and its signing key: each flag, else the config's
/// `[publish]` (a master's repository), else the default.
#[derive(Debug, Args)]
pub struct RepoPlace {
    /// The repository's root directory (created by a publish if missing); serve it over
    /// http(s) or use it as a `file:` URI [default: config [publish] dir]
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// The suite (dists/SUITE) [default: config [publish] suite, else hermod]
    #[arg(long, value_name = "S")]
    pub suite: Option<String>,
    /// The component (dists/SUITE/COMPONENT, pool/COMPONENT) [default: config [publish]
    /// component, else main]
    #[arg(long, value_name = "C")]
    pub component: Option<String>,
    /// Armored OpenPGP secret key that signs InRelease (PREFIX.key of `hermod repo keygen`);
    /// without one the repository is unsigned, and apt refuses it [default: config [publish]
    /// sign_key]
    #[arg(long, value_name = "FILE", env = "HERMOD_REPO_SIGN_KEY")]
    pub sign_key: Option<PathBuf>,
}

/// A [`RepoPlace`] resolved: the directory, suite and component (names
/// checked), and the key read.
pub struct Place {
    pub dir: PathBuf,
    pub suite: String,
    pub component: String,
    pub key: Option<SigningKey>,
}

impl RepoPlace {
    pub fn resolve(&self, global: &Global) -> Result<Place, AppError> {
        let config = loaded_config(global)?;
        let entry = config.publish.as_ref();
        let Some(dir) = self.repo.clone().or_else(|| entry.map(|e| e.dir.clone())) else {
            let config =
                config.path.as_ref().map_or_else(|| crate::config::DEFAULT_PATH.into(), |p| p.display().to_string());
            return Err(RepoError::NoRepository { config }.into());
        };
        let suite = self.suite.clone().or_else(|| entry.map(|e| e.suite.clone())).unwrap_or(repo::DEFAULT_SUITE.into());
        let component = self
            .component
            .clone()
            .or_else(|| entry.map(|e| e.component.clone()))
            .unwrap_or(repo::DEFAULT_COMPONENT.into());
        repo::check_name("suite", &suite)?;
        repo::check_name("component", &component)?;
        let key_file = self.sign_key.clone().or_else(|| entry.and_then(|e| e.sign_key.clone()));
        let key = key_file.as_deref().map(SigningKey::read).transpose().map_err(RepoError::from)?;
        Ok(Place { dir, suite, component, key })
    }
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub place: RepoPlace,
    /// A package whose name+version+architecture is already published with other bytes is
    /// published as VERSION+hermodN (N one above its earlier revisions; its control file's
    /// Version rewritten, its files unchanged) instead of being refused; the same bytes again
    /// are still a no-op, and so is a revision already published
    #[arg(long)]
    pub revision: bool,
    /// Decide everything and print it (what would be added, revised, written), write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// The packages to add; a name+version+architecture already published must have the
    /// same bytes (a published version is immutable; see --revision)
    #[arg(required = true, value_name = "DEB")]
    pub debs: Vec<PathBuf>,
}

/// Which repository a removal rewrites, and its key (InRelease is signed
/// again: a signed repository is never left unsigned, so without its key
/// nothing is removed).
#[derive(Debug, Args)]
pub struct RepoTarget {
    #[command(flatten)]
    pub place: RepoPlace,
    /// Print what would be removed and made, write nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum RepoCommand {
    /// Write a new signing key for the APT repository: PREFIX.key (secret, mode 0600, never
    /// over an existing file) and PREFIX.asc (public); print the deb822 source stanza a farm
    /// machine puts in /etc/apt/sources.list.d/hermod.sources
    Keygen {
        /// Path prefix of the two key files
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
        /// The repository's URL as farm machines reach it, for the printed stanza
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// The key's user id
        #[arg(long, value_name = "NAME", default_value = "hermod repository signing key <hermod@packages.invalid>")]
        name: String,
    },
    /// Stop offering packages: every version and architecture of PACKAGE, or PACKAGE=VERSION.
    /// The indices, Release and InRelease are rewritten first, the pool files deleted after;
    /// the metapackages pointing at a removed package are made again from what is left (their
    /// version never goes down). Metapackages cannot be named: they follow their module
    /// packages. What is not published is an error (exit 12), and nothing changes
    Remove {
        #[command(flatten)]
        target: RepoTarget,
        /// PACKAGE or PACKAGE=VERSION
        #[arg(required = true, value_name = "PACKAGE[=VERSION]")]
        packages: Vec<Removal>,
    },
    /// The retention policy: per module, kernel flavour and architecture, keep the module
    /// packages of the kernels the configured archive still offers (linux-image-KREL in its
    /// indices) and of the newest N kernels the repository has; remove the rest as `remove`
    /// does, and the metapackage versions a newer one supersedes. Prints every package removed
    Prune {
        #[command(flatten)]
        target: RepoTarget,
        /// How many of the newest kernels to keep per module, flavour and architecture, offered
        /// or not
        #[arg(long, value_name = "N", default_value_t = 2)]
        keep: usize,
    },
}

/// The seconds since 1970 the environment's SOURCE_DATE_EPOCH names, if set.
pub(super) fn source_date_epoch() -> Result<Option<i64>, RepoError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => match text.trim().parse::<i64>() {
            Ok(secs) if secs >= 0 => Ok(Some(secs)),
            _ => Err(RepoError::BadSourceDateEpoch(text)),
        },
        Err(_) => Ok(None),
    }
}

pub(super) fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// `hermod publish`.
pub(super) fn publish(global: &Global, args: &PublishArgs) -> Result<(), AppError> {
    let place = args.place.resolve(global)?;
    let request = Publish {
        repo: &place.dir,
        suite: &place.suite,
        component: &place.component,
        key: place.key.as_ref(),
        source_date_epoch: source_date_epoch()?,
        now: now(),
        revision: args.revision,
        dry_run: args.dry_run,
    };
    let report = repo::publish(&request, &args.debs)?;
    let mut stdout = std::io::stdout().lock();
    for (pool_path, _) in &report.packages {
        let _ = writeln!(stdout, "{}", place.dir.join(pool_path).display());
    }
    for revised in &report.revised {
        let what = if revised.new { "published as" } else { "already published as" };
        say::note(format_args!(
            "revision: {} has other bytes than the one published; {what} {}",
            revised.original, revised.version
        ));
    }
    let added = report.packages.iter().filter(|(_, new)| *new).count();
    let date = repo::release::rfc2822(report.date);
    let from = report.date_source.as_ref().map(|s| s.to_string()).unwrap_or_default();
    say::note(format_args!(
        "{} ({} {}): {added} added, {} already published; {} files {}; Date {date} ({from})",
        place.dir.display(),
        place.suite,
        place.component,
        report.packages.len() - added,
        report.written.len(),
        if report.dry_run { "would be written (dry run: nothing was)" } else { "written" },
    ));
    say_common(&place.dir, &report);
    match &place.key {
        Some(key) => say::note(format_args!("dists/{}/InRelease signed by {}", place.suite, key.fingerprint())),
        // Loud even with -q: this repository is not usable as it stands.
        None => say::notice(
            "WARNING: the repository is NOT SIGNED (no --sign-key, no HERMOD_REPO_SIGN_KEY): it has no \
             InRelease, and apt refuses it. Only a source marked [trusted=yes] would use it, trusting anyone who \
             can change the files or the network path. Make a key with `hermod repo keygen --out PREFIX`.",
        ),
    }
    Ok(())
}

/// What publish, remove and prune all say: metapackages made, warnings, and
/// in a dry run the files that would change.
fn say_common(repo: &Path, report: &Report) {
    for meta in &report.metapackages {
        say::note(format_args!("metapackage {}", repo.join(meta).display()));
    }
    for warning in &report.warnings {
        say::warning(warning);
    }
    if report.dry_run {
        for file in &report.written {
            say::note(format_args!("would write {}", repo.join(file).display()));
        }
    }
}

/// `repo remove` and `repo prune`: the removal's request, done by `run`,
/// and its report (stdout: one line per package removed, `id`).
fn removal(
    global: &Global,
    target: &RepoTarget,
    run: impl FnOnce(Remove) -> Result<Report, RepoError>,
) -> Result<(), AppError> {
    let place = target.place.resolve(global)?;
    let request = Remove {
        repo: &place.dir,
        suite: &place.suite,
        component: &place.component,
        key: place.key.as_ref(),
        source_date_epoch: source_date_epoch()?,
        now: now(),
        dry_run: target.dry_run,
    };
    let report = run(request)?;
    let mut stdout = std::io::stdout().lock();
    for id in &report.removed {
        let _ = writeln!(stdout, "{id}");
    }
    say::note(format_args!(
        "{} ({} {}): {} {}; {} files {}",
        place.dir.display(),
        place.suite,
        place.component,
        report.removed.len(),
        if report.dry_run { "would be removed" } else { "removed" },
        report.written.len(),
        if report.dry_run { "would be written (dry run: nothing was)" } else { "written" },
    ));
    say_common(&place.dir, &report);
    Ok(())
}

/// The kernel releases the configured archive offers images of, over every
/// platform with sources; none is an error (prune would keep too little).
fn kernels_offered(global: &Global) -> Result<BTreeSet<String>, AppError> {
    let archives = archives(global, None)?;
    let mut offered = BTreeSet::new();
    for platform in archives.platforms().iter().filter(|p| p.platform.has_sources()) {
        let archive = platform.archive(&archives.store().indices()).map_err(PipelineError::from)?;
        offered.extend(crate::plan::kernels_offered(archive));
    }
    if offered.is_empty() {
        return Err(RepoError::NoKernelsOffered.into());
    }
    Ok(offered)
}

/// `hermod repo ...`.
pub(super) fn repo_command(global: &Global, command: &RepoCommand) -> Result<(), AppError> {
    match command {
        RepoCommand::Remove { target, packages } => removal(global, target, |r| repo::remove(&r, packages)),
        RepoCommand::Prune { target, keep } => {
            let offered = kernels_offered(global)?;
            say::note(format_args!(
                "the archive offers {} kernels; keeping those and the newest {keep}",
                offered.len()
            ));
            removal(global, target, |r| repo::prune(&repo::Prune { repo: r, keep: *keep, offered: &offered }))
        }
        RepoCommand::Keygen { out, url, name } => {
            let created = u32::try_from(now()).unwrap_or(u32::MAX);
            let key = SigningKey::generate(name, created).map_err(RepoError::from)?;
            let (secret, public) = key.write_new(out).map_err(RepoError::from)?;
            let public =
                std::path::absolute(&public).map_err(|source| RepoError::Io { path: public.clone(), source })?;
            print!("{}", sources_stanza(url.as_deref(), &public));
            say::note(format_args!(
                "wrote {} (secret: keep it on the publishing host; `hermod publish --sign-key {}`) and {} \
                 (public: copy it to that path on every farm machine); key {}",
                secret.display(),
                secret.display(),
                public.display(),
                key.fingerprint()
            ));
            if url.is_none() {
                say::note("no --url given: replace the URIs line with the repository's URL");
            }
            Ok(())
        }
    }
}

/// The deb822 source a farm machine needs (`/etc/apt/sources.list.d/hermod.sources`).
pub fn sources_stanza(url: Option<&str>, public_key: &Path) -> String {
    format!(
        "Types: deb\nURIs: {}\nSuites: {}\nComponents: {}\nSigned-By: {}\n",
        url.unwrap_or("REPLACE-WITH-THE-REPOSITORY-URL"),
        repo::DEFAULT_SUITE,
        repo::DEFAULT_COMPONENT,
        public_key.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt::sources::{parse_deb822_file, SignedBy};

    #[test]
    fn the_printed_stanza_is_a_source_apt_and_hermod_read() {
        let text = sources_stanza(Some("http://repo.example.org/hermod"), Path::new("/etc/apt/keyrings/hermod.asc"));
        assert_eq!(
            text,
            "Types: deb\nURIs: http://repo.example.org/hermod\nSuites: hermod\nComponents: main\n\
             Signed-By: /etc/apt/keyrings/hermod.asc\n"
        );
        let sources = parse_deb822_file(&text, Path::new("hermod.sources"), &[]).unwrap();
        assert_eq!(sources.len(), 1);
        assert_eq!((sources[0].uri.as_str(), sources[0].suite.as_str()), ("http://repo.example.org/hermod", "hermod"));
        assert_eq!(sources[0].components, ["main"]);
        assert!(
            matches!(&sources[0].signed_by, SignedBy::Keyrings(k) if k == &[PathBuf::from("/etc/apt/keyrings/hermod.asc")])
        );
    }
}
