//! `hermod publish`: a signed APT repository that farm machines install from.
//!
//! An APT repository is a tree of plain files that any web server (or a
//! `file:` URI) can serve:
//!
//! ```text
//! pool/<component>/<prefix>/<source>/<package>_<version>_<arch>.deb
//! dists/<suite>/<component>/binary-<arch>/Packages      one stanza per .deb (index.rs)
//! dists/<suite>/<component>/binary-<arch>/Packages.xz   the same, compressed
//! dists/<suite>/Release                                 every index's size and SHA256 (release.rs)
//! dists/<suite>/InRelease                               Release, clearsigned (sign.rs)
//! ```
//!
//! apt verifies a chain: the key named by `Signed-By:` → InRelease → the
//! Packages hashes → each .deb's SHA256. A repository without InRelease is
//! refused by apt (unless a source is marked `trusted=yes`); hermod still
//! writes one without a key, with a loud warning, for tests and air gaps.
//!
//! ## State, immutability, revisions and removals
//!
//! The repository's own `Packages` files are the record of what is
//! published: a publish reads them, adds the new .debs, and writes
//! everything derived again. A package (name, version, architecture) once
//! published never changes: the same bytes again are a no-op, other bytes are
//! refused before anything is written (a farm machine that installed the
//! first would never see the second; a new build needs a new version) —
//! unless the publish asks for a revision ([`Publish::revision`]): the
//! input is then published as `<version>+hermodN` (`revision.rs`), or, if
//! that very revision is already there, nothing happens. The repository
//! shrinks only by `repo remove` and `repo prune` (`remove.rs`), which take
//! entries out of the indices first and delete pool files last
//! (`commit.rs`). A dry run ([`Publish::dry_run`]) decides everything and
//! writes nothing.
//!
//! ## Module metapackages
//!
//! After the inputs are added, every publish makes the metapackages the
//! whole repository now calls for (`meta.rs`): `<module>-modules-<flavour>`
//! per module, kernel flavour and architecture, depending on the module
//! package of the newest kernel the repository has it for. They are derived
//! from the Packages state alone (not from this call's inputs), so publishing
//! A then B gives the same repository as publishing both at once; a version
//! already published is kept as it is; they obey the immutability rule like
//! every other package, and their version only goes up.
//!
//! ## Order of writes, and crashes
//!
//! Every file appears by rename from a temporary file in its own directory
//! (created exclusively, synced, renamed by descriptor), in this order: pool files
//! (the inputs or their revisions, then the metapackages made for them), then the Packages
//! indices, then Release, then InRelease last; a removal's pool files are
//! deleted after that (`commit.rs`). A file whose bytes are already
//! right is not touched, so publishing the same inputs twice writes nothing.
//! A crash at any point leaves at worst: pool files no index names yet
//! (the next publish of them finds them in place, and makes the same
//! metapackages again, byte for byte; others are harmless), or
//! indices newer than Release (apt then reports a hash mismatch until the next
//! publish, which rewrites Release and InRelease from the indices). Temporary
//! files of a killed publish (`.tmp-*`) are removed by the next one. One
//! publish at a time: `DIR/.hermod-publish.lock` (flock) is held throughout.
//!
//! ## Inputs
//!
//! Each .deb named is opened once, only if it is a regular file (a FIFO is
//! refused unopened), and read as a stream from that descriptor, never whole
//! into memory (`input.rs`): the `ar` magic first, then at most
//! `input_limits.max_deb_size` bytes, hashed on every pass and hashed again
//! while copied into the pool, so the index describes the very bytes published.
//!
//! ## Links
//!
//! DIR is opened once, as the user named it; everything below it is reached
//! by descriptor and never through a symbolic link (`state.rs`, with
//! `hermod-hostfs`): a `pool/` or `dists/` that leads out of the repository,
//! a linked Release, InRelease or Packages, is refused (exit 3) before
//! anything is read through it or written, and an index is read only up to
//! 256 MiB. Error messages quote at most 200 bytes of a file.
//!
//! ## Same inputs, same bytes
//!
//! The indices are sorted; xz runs single-threaded; Release's Date and the
//! signature's time are derived from the inputs (release.rs explains which
//! time and why); Ed25519 signatures are deterministic.

mod commit;
pub mod index;
mod input;
mod meta;
pub mod openpgp;
mod published;
pub mod release;
mod remove;
pub mod revision;
mod state;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::apt::debfile::DebFileError;
use commit::{Change, PoolWrite, Target};
use index::{ControlError, Entry, IndexError};
use input::Input;
pub use openpgp::{SignError, SigningKey};
pub use published::{published, Published};
use release::{DateSource, FutureDate};
pub use remove::{prune, remove, Prune, Removal, Remove};

/// The defaults a farm's source line assumes: `hermod main`.
pub const DEFAULT_SUITE: &str = "hermod";
pub const DEFAULT_COMPONENT: &str = "main";

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{what} {value:?} is not usable: {why}")]
    BadName { what: &'static str, value: String, why: &'static str },
    #[error(
        "no repository named: pass --repo DIR, or add a [publish] section to {config} (dir = \"/srv/hermod/repo\", \
         sign_key = \"/etc/hermod/repo.key\")"
    )]
    NoRepository { config: String },
    #[error("cannot read {path}: {source}")]
    ReadInput { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Deb(#[from] DebFileError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Key(#[from] SignError),
    #[error(transparent)]
    FutureDate(#[from] FutureDate),
    #[error(
        "{id} is already published with other bytes (SHA256 {published}, {filename}); {deb} has SHA256 {offered}. \
         A published version is immutable: farm machines that installed it would never see the change. \
         Publish it with --revision (its version then gets a +hermodN suffix, above the published one) or give the \
         new build a new version. Nothing was changed."
    )]
    Immutable { id: String, filename: String, published: String, offered: String, deb: PathBuf },
    #[error("{deb}: cannot write a revision of it: {problem}. Nothing was changed.")]
    Revision { deb: String, problem: String },
    /// `place`: the repository, suite and component; `hint`: the versions
    /// that are published, if any.
    #[error("{spec} is not published in {place}{hint}. Nothing was changed.")]
    NotPublished { spec: String, place: String, hint: String },
    #[error(
        "{id} is a metapackage: hermod makes it from the module packages, so it cannot be removed by itself. \
         Remove the module packages it points at ({target}); it goes with the last of them. Nothing was changed."
    )]
    DerivedMetapackage { id: String, target: String },
    #[error(
        "{repo} is signed (dists/{suite}/InRelease exists): removing without its key would leave that InRelease \
         describing old indices. Pass --sign-key (or HERMOD_REPO_SIGN_KEY). Nothing was changed."
    )]
    RemoveWouldUnsign { repo: PathBuf, suite: String },
    #[error(
        "the configured archive offers no kernel image (no linux-image-KREL in its indices): prune would keep \
         only the newest kernels. Check the sources (config.toml, /etc/apt). Nothing was changed."
    )]
    NoKernelsOffered,
    #[error("{0:?} is not PACKAGE or PACKAGE=VERSION with a Debian package name and version")]
    BadRemoval(String),
    #[error("{first} and {second} are both {id} but their bytes differ; publish one of them. Nothing was changed.")]
    InputsDiffer { id: String, first: PathBuf, second: PathBuf },
    #[error("{filename} would hold {id}, but the repository already lists {other} there. Nothing was changed.")]
    PoolClash { filename: String, id: String, other: String },
    #[error(
        "{repo} is signed (dists/{suite}/InRelease exists): publishing without a key would leave that InRelease \
         describing old indices. Pass --sign-key (or HERMOD_REPO_SIGN_KEY). Nothing was changed."
    )]
    WouldUnsign { repo: PathBuf, suite: String },
    #[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds since 1970")]
    BadSourceDateEpoch(String),
    #[error("the repository is damaged: {0} (nothing was changed; restore the file or publish into a new DIR)")]
    Damaged(String),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A link, special file or oversized file where the repository has its
    /// own plain files: nothing is read or written through it.
    #[error("refusing the repository: {0}. hermod reaches everything below DIR without following symbolic links; nothing was changed")]
    Unsafe(hermod_hostfs::Error),
}

impl crate::exit::HasExitCode for RepoError {
    fn exit_code(&self) -> crate::exit::Code {
        use crate::exit::Code;
        match self {
            RepoError::Immutable { .. }
            | RepoError::WouldUnsign { .. }
            | RepoError::RemoveWouldUnsign { .. }
            | RepoError::DerivedMetapackage { .. }
            | RepoError::NotPublished { .. } => Code::Refused,
            RepoError::Damaged(_) | RepoError::Index(_) | RepoError::Io { .. } => Code::Io,
            RepoError::Key(e) => e.exit_code(),
            RepoError::Unsafe(_)
            | RepoError::BadName { .. }
            | RepoError::ReadInput { .. }
            | RepoError::Deb { .. }
            | RepoError::Control { .. }
            | RepoError::Revision { .. }
            | RepoError::BadRemoval(_)
            | RepoError::NoKernelsOffered
            | RepoError::NoRepository { .. }
            | RepoError::FutureDate { .. }
            | RepoError::InputsDiffer { .. }
            | RepoError::PoolClash { .. }
            | RepoError::BadSourceDateEpoch(_) => Code::BadInput,
        }
    }
}

pub(crate) fn io_error(path: &Path) -> impl Fn(io::Error) -> RepoError + '_ {
    move |source| RepoError::Io { path: path.to_owned(), source }
}

/// What to publish where.
pub struct Publish<'a> {
    pub repo: &'a Path,
    pub suite: &'a str,
    pub component: &'a str,
    /// None: an unsigned repository (Release without InRelease).
    pub key: Option<&'a SigningKey>,
    /// SOURCE_DATE_EPOCH, when the environment sets it.
    pub source_date_epoch: Option<i64>,
    /// The clock, read only to refuse a Date in the future.
    pub now: i64,
    /// A package published with other bytes becomes `<version>+hermodN`
    /// (revision.rs) instead of being refused.
    pub revision: bool,
    /// Decide and report everything, write nothing (not even DIR).
    pub dry_run: bool,
}

impl Default for Publish<'_> {
    /// The default suite and component, unsigned, no revisions, no dry run;
    /// `repo` must still be set.
    fn default() -> Self {
        Publish {
            repo: Path::new(""),
            suite: DEFAULT_SUITE,
            component: DEFAULT_COMPONENT,
            key: None,
            source_date_epoch: None,
            now: 0,
            revision: false,
            dry_run: false,
        }
    }
}

/// An input published as a revision (revision.rs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revised {
    /// The input's own id, `package version (arch)`, published with other bytes.
    pub original: String,
    /// The version it is published as, `<version>+hermodN`.
    pub version: String,
    /// False when the same revision was already published (nothing minted).
    pub new: bool,
}

/// What a publish did.
#[derive(Debug, Default)]
pub struct Report {
    /// Each input: its pool path and whether it was new.
    pub packages: Vec<(String, bool)>,
    /// The pool paths of the metapackages made (meta.rs): new versions only.
    pub metapackages: Vec<String>,
    /// The inputs published as revisions, and as which version.
    pub revised: Vec<Revised>,
    /// Packages taken out (`repo remove`, `repo prune`), their ids.
    pub removed: Vec<String>,
    /// Metapackages that could not be made, each naming it and why.
    pub warnings: Vec<String>,
    /// Nothing was written: `written` lists what would have been.
    pub dry_run: bool,
    /// Files written (0 when everything was already in place).
    pub written: Vec<String>,
    pub date: i64,
    pub date_source: Option<DateSource>,
}

/// Suite and component names: one path component of `[A-Za-z0-9._+-]`.
pub fn check_name(what: &'static str, value: &str) -> Result<(), RepoError> {
    let bad = |why| RepoError::BadName { what, value: value.into(), why };
    if value.is_empty() || value.starts_with(['.', '-']) {
        return Err(bad("it must start with a letter or digit"));
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b)) {
        return Err(bad(
            "only letters, digits and . _ + - are allowed (it is a directory name and a word in apt's sources)",
        ));
    }
    Ok(())
}

/// Publish `debs` into the repository (see the module doc for the rules).
pub fn publish(p: &Publish, debs: &[PathBuf]) -> Result<Report, RepoError> {
    check_name("suite", p.suite)?;
    check_name("component", p.component)?;
    // Every input read and checked before anything is created or locked.
    let limits = crate::bounded::current();
    let mut inputs: Vec<Input> = Vec::new();
    for path in debs {
        let input = input::read_input(path, p.component, &limits)?;
        match inputs.iter().find(|i| i.entry.id() == input.entry.id()) {
            Some(same) if same.entry.sha256 == input.entry.sha256 => continue,
            Some(other) => {
                return Err(RepoError::InputsDiffer {
                    id: input.entry.id(),
                    first: other.path.clone(),
                    second: input.path,
                })
            }
            None => inputs.push(input),
        }
    }

    let new_repository = !p.repo.exists();
    if p.dry_run && new_repository {
        // Nothing is published yet: decide against an empty directory, create none.
        let empty = tempfile::tempdir().map_err(io_error(p.repo))?;
        let root = hermod_hostfs::Dir::open(empty.path()).map_err(state::fs_err)?;
        return publish_locked(p, &root, &inputs);
    }
    std::fs::create_dir_all(p.repo).map_err(io_error(p.repo))?;
    // DIR is the user's path, links and all; everything below it is reached
    // through this descriptor (state.rs).
    let root = hermod_hostfs::Dir::open(p.repo).map_err(state::fs_err)?;
    let result = publish_locked(p, &root, &inputs);
    if result.is_err() && new_repository {
        // A refused first publish leaves no directory behind (nothing else was written yet:
        // every refusal comes before the first write).
        let _ = root.remove_file(state::LOCK_FILE);
        let _ = std::fs::remove_dir(p.repo);
    }
    result
}

/// [`publish`] once the inputs are read: under the lock, decide, then write.
fn publish_locked(p: &Publish, root: &hermod_hostfs::Dir, inputs: &[Input]) -> Result<Report, RepoError> {
    let _lock = state::lock(root, p.dry_run)?;
    let dists = Path::new("dists").join(p.suite);
    if !p.dry_run {
        state::remove_litter(root, &[Path::new("pool").join(p.component), dists.clone()]);
    }
    let mut published = state::read_component(root, p.suite, p.component)?;
    // Pool paths carry no suite: what other suites list there is published too.
    let elsewhere = state::other_suites(root, p.suite, p.component)?;

    // Decide everything before writing anything.
    let mut report = Report { dry_run: p.dry_run, ..Report::default() };
    let mut pool: Vec<PoolWrite> = Vec::new();
    let mut added: Vec<Entry> = Vec::new();
    for input in inputs {
        let entry = &input.entry;
        match published.get(&entry.id()) {
            Some(old) if old.sha256 != entry.sha256 => {
                if !p.revision {
                    return Err(RepoError::Immutable {
                        id: entry.id(),
                        filename: old.filename.clone(),
                        published: old.sha256.clone(),
                        offered: entry.sha256.clone(),
                        deb: input.path.clone(),
                    });
                }
                let revised = revise(input, &published, p.component)?;
                let is_new = match published.get(&revised.id()) {
                    None => true,
                    // Only ever an earlier revision of these very bytes.
                    Some(same) if same.sha256 == revised.sha256 => false,
                    Some(other) => {
                        return Err(RepoError::Immutable {
                            id: revised.id(),
                            filename: other.filename.clone(),
                            published: other.sha256.clone(),
                            offered: revised.sha256.clone(),
                            deb: input.path.clone(),
                        })
                    }
                };
                if is_new {
                    pool_clash(&published, &revised)?;
                    other_suites_clash(&elsewhere, &revised, &input.path)?;
                }
                report.packages.push((revised.filename.clone(), is_new));
                report.revised.push(Revised { original: entry.id(), version: revised.version.clone(), new: is_new });
                added.push(revised.clone());
                pool.push(PoolWrite::Revised(input, revised));
            }
            Some(old) => {
                report.packages.push((old.filename.clone(), false));
                pool.push(PoolWrite::Input(input));
            }
            None => {
                pool_clash(&published, entry)?;
                other_suites_clash(&elsewhere, entry, &input.path)?;
                report.packages.push((entry.filename.clone(), true));
                added.push(entry.clone());
                pool.push(PoolWrite::Input(input));
            }
        }
    }
    // A listed pool file that is gone is damage, unless this publish brings it back.
    for entry in published.values() {
        let restores = added.iter().chain(inputs.iter().map(|i| &i.entry)).any(|e| e.filename == entry.filename);
        if !restores {
            state::check_pool_file(root, entry)?;
        }
    }
    if p.key.is_none() && state::exists(root, &dists.join("InRelease"))? {
        return Err(RepoError::WouldUnsign { repo: p.repo.into(), suite: p.suite.into() });
    }
    let previous = state::previous_date(root, &dists)?;
    let mut candidates: Vec<(i64, DateSource)> =
        previous.map(|d| (d, DateSource::PreviousRelease)).into_iter().collect();
    match p.source_date_epoch {
        Some(sde) => candidates.push((sde, DateSource::SourceDateEpoch)),
        None => {
            if let Some(i) = inputs.iter().max_by_key(|i| i.newest) {
                candidates.push((i.newest, DateSource::NewestData(i.path.display().to_string())));
            }
        }
    }
    if let Some(key) = p.key {
        candidates.push((key.created(), DateSource::KeyCreation));
    }
    let (date, source) = release::choose_date(&candidates, p.now)?;
    report.date = date;
    report.date_source = Some(source);

    for entry in added {
        published.insert(entry.id(), entry);
    }
    // The metapackages the whole repository now calls for (meta.rs).
    let metas = meta::metapackages(&published, &published, p.component);
    for m in &metas.new {
        report.metapackages.push(m.entry.filename.clone());
        published.insert(m.entry.id(), m.entry.clone());
    }
    report.warnings = metas.warnings;
    pool.extend(metas.new.iter().map(PoolWrite::Meta));
    let change = Change { state: published, pool, removed: Vec::new(), date };
    let target = Target { repo: p.repo, suite: p.suite, component: p.component, key: p.key, dry_run: p.dry_run };
    commit::commit(root, &target, &change, &mut report.written)?;
    Ok(report)
}

/// A new `entry` whose pool file another published package already has.
fn pool_clash(published: &BTreeMap<String, Entry>, entry: &Entry) -> Result<(), RepoError> {
    match published.values().find(|e| e.filename == entry.filename) {
        Some(other) => {
            Err(RepoError::PoolClash { filename: entry.filename.clone(), id: entry.id(), other: other.id() })
        }
        None => Ok(()),
    }
}

/// A new `entry` whose pool file another suite lists with other bytes (one
/// pool, several suites): refused, as within a suite.
fn other_suites_clash(elsewhere: &BTreeMap<String, Entry>, entry: &Entry, deb: &Path) -> Result<(), RepoError> {
    match elsewhere.get(&entry.filename) {
        Some(other) if other.sha256 != entry.sha256 => Err(RepoError::Immutable {
            id: entry.id(),
            filename: other.filename.clone(),
            published: other.sha256.clone(),
            offered: entry.sha256.clone(),
            deb: deb.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// The revision of `input` to publish (revision.rs): an earlier `+hermodM`
/// of the same bytes if there is one (so `--revision` twice mints nothing),
/// else the next `+hermodN`.
fn revise(input: &Input, published: &BTreeMap<String, Entry>, component: &str) -> Result<Entry, RepoError> {
    let entry = &input.entry;
    let siblings: Vec<&Entry> = published
        .values()
        .filter(|e| e.package == entry.package && e.architecture == entry.architecture)
        .filter(|e| revision::revision_of(&e.version, &entry.version).is_some())
        .collect();
    for earlier in &siblings {
        let (_, hash) = input::revise(input, &earlier.version, std::io::sink())?;
        if hash.sha256 == earlier.sha256 {
            return Ok((*earlier).clone());
        }
    }
    let origin = input.path.display().to_string();
    let bad = |problem: String| RepoError::Revision { deb: origin.clone(), problem };
    let n = revision::next_revision(&entry.version, siblings.iter().map(|e| e.version.as_str()))
        .ok_or_else(|| bad(format!("{} has no revision number left", entry.id())))?;
    let version = format!("{}{}{n}", entry.version, revision::SUFFIX);
    let (control, hash) = input::revise(input, &version, std::io::sink())?;
    let revised = Entry::from_deb(&origin, &control, &hash, component)?;
    // The rewritten control, read back, must be the same package with the new
    // version: a control.tar the reader and the rewrite see differently (two
    // control members, a long-name header) would publish something else.
    if (revised.package.as_str(), revised.architecture.as_str(), revised.version.as_str())
        != (entry.package.as_str(), entry.architecture.as_str(), version.as_str())
    {
        return Err(bad(format!(
            "the revision reads back as {} {} ({}), not {} {version} ({})",
            revised.package, revised.version, revised.architecture, entry.package, entry.architecture
        )));
    }
    Ok(revised)
}

#[cfg(test)]
mod tests;
