//! `hermod publish` and `hermod repo keygen`: glue between the command line
//! and `crate::repo` (the APT repository a farm installs from).

use super::*;
use crate::repo::{self, Publish, RepoError, SigningKey};

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The repository's root directory (created if missing); serve it over http(s) or use it
    /// as a `file:` URI
    #[arg(long, value_name = "DIR")]
    pub repo: PathBuf,
    /// The suite (dists/SUITE)
    #[arg(long, value_name = "S", default_value = repo::DEFAULT_SUITE)]
    pub suite: String,
    /// The component (dists/SUITE/COMPONENT, pool/COMPONENT)
    #[arg(long, value_name = "C", default_value = repo::DEFAULT_COMPONENT)]
    pub component: String,
    /// Armored OpenPGP secret key that signs InRelease (PREFIX.key of `hermod repo keygen`);
    /// without one the repository is unsigned, and apt refuses it
    #[arg(long, value_name = "FILE", env = "HERMOD_REPO_SIGN_KEY")]
    pub sign_key: Option<PathBuf>,
    /// The packages to add; a name+version+architecture already published must have the
    /// same bytes (a published version is immutable)
    #[arg(required = true, value_name = "DEB")]
    pub debs: Vec<PathBuf>,
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
pub(super) fn publish(args: &PublishArgs) -> Result<(), AppError> {
    let key = args.sign_key.as_deref().map(SigningKey::read).transpose().map_err(RepoError::from)?;
    let request = Publish {
        repo: &args.repo,
        suite: &args.suite,
        component: &args.component,
        key: key.as_ref(),
        source_date_epoch: source_date_epoch()?,
        now: now(),
    };
    let report = repo::publish(&request, &args.debs)?;
    let mut stdout = std::io::stdout().lock();
    for (pool_path, _) in &report.packages {
        let _ = writeln!(stdout, "{}", args.repo.join(pool_path).display());
    }
    let added = report.packages.iter().filter(|(_, new)| *new).count();
    let date = repo::release::rfc2822(report.date);
    let from = report.date_source.as_ref().map(|s| s.to_string()).unwrap_or_default();
    say::note(format_args!(
        "{} ({} {}): {added} added, {} already published; {} files written; Date {date} ({from})",
        args.repo.display(),
        args.suite,
        args.component,
        report.packages.len() - added,
        report.written.len(),
    ));
    for meta in &report.metapackages {
        say::note(format_args!("metapackage {}", args.repo.join(meta).display()));
    }
    match &key {
        Some(key) => say::note(format_args!("dists/{}/InRelease signed by {}", args.suite, key.fingerprint())),
        // Loud even with -q: this repository is not usable as it stands.
        None => say::notice(
            "WARNING: the repository is NOT SIGNED (no --sign-key, no HERMOD_REPO_SIGN_KEY): it has no \
             InRelease, and apt refuses it. Only a source marked [trusted=yes] would use it, trusting anyone who \
             can change the files or the network path. Make a key with `hermod repo keygen --out PREFIX`.",
        ),
    }
    Ok(())
}

/// `hermod repo ...`.
pub(super) fn repo_command(command: &RepoCommand) -> Result<(), AppError> {
    match command {
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
