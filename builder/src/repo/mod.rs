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
//! ## State, growth and immutability
//!
//! The repository only grows. Its own `Packages` files are the record of
//! what is published: a publish reads them, adds the new .debs, and writes
//! everything derived again. A package (name, version, architecture) once
//! published never changes: the same bytes again are a no-op, other bytes are
//! refused before anything is written (a farm machine that installed the
//! first would never see the second; a new build needs a new version).
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
//! (the inputs, then the metapackages made for them), then the Packages
//! indices, then Release, then InRelease last. A file whose bytes are already
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

pub mod index;
mod input;
mod listing;
mod meta;
pub mod openpgp;
pub mod release;
mod state;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::apt::debfile::DebFileError;
use index::{ControlError, Entry, IndexError};
use input::Input;
pub use listing::{listing, Listed};
pub use openpgp::{SignError, SigningKey};
use release::{DateSource, FutureDate, IndexFile, ReleaseInfo};

/// The defaults a farm's source line assumes: `hermod main`.
pub const DEFAULT_SUITE: &str = "hermod";
pub const DEFAULT_COMPONENT: &str = "main";

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{what} {value:?} is not usable: {why}")]
    BadName { what: &'static str, value: String, why: &'static str },
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
         Give the new build a new version. Nothing was changed."
    )]
    Immutable { id: String, filename: String, published: String, offered: String, deb: PathBuf },
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
            RepoError::Immutable { .. } | RepoError::WouldUnsign { .. } => Code::Refused,
            RepoError::Damaged(_) | RepoError::Index(_) | RepoError::Io { .. } => Code::Io,
            RepoError::Key(e) => e.exit_code(),
            RepoError::Unsafe(_)
            | RepoError::BadName { .. }
            | RepoError::ReadInput { .. }
            | RepoError::Deb { .. }
            | RepoError::Control { .. }
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
}

/// What a publish did.
#[derive(Debug, Default)]
pub struct Report {
    /// Each input: its pool path and whether it was new.
    pub packages: Vec<(String, bool)>,
    /// The pool paths of the metapackages made (meta.rs): new versions only.
    pub metapackages: Vec<String>,
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
    let _lock = state::lock(root)?;
    let dists = Path::new("dists").join(p.suite);
    state::remove_litter(root, &[Path::new("pool").join(p.component), dists.clone()]);
    let mut published = state::read_component(root, p.suite, p.component)?;

    // Decide everything before writing anything.
    let mut report = Report::default();
    let mut pool_writes: Vec<&Input> = Vec::new();
    for input in inputs {
        let entry = &input.entry;
        match published.get(&entry.id()) {
            Some(old) if old.sha256 != entry.sha256 => {
                return Err(RepoError::Immutable {
                    id: entry.id(),
                    filename: old.filename.clone(),
                    published: old.sha256.clone(),
                    offered: entry.sha256.clone(),
                    deb: input.path.clone(),
                })
            }
            Some(old) => {
                report.packages.push((old.filename.clone(), false));
                pool_writes.push(input);
            }
            None => {
                if let Some(other) = published.values().find(|e| e.filename == entry.filename) {
                    return Err(RepoError::PoolClash {
                        filename: entry.filename.clone(),
                        id: entry.id(),
                        other: other.id(),
                    });
                }
                report.packages.push((entry.filename.clone(), true));
                pool_writes.push(input);
            }
        }
    }
    // A listed pool file that is gone is damage, unless this publish brings it back.
    for entry in published.values() {
        let restores = inputs.iter().any(|i| i.entry.filename == entry.filename);
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

    for input in inputs {
        published.insert(input.entry.id(), input.entry.clone());
    }
    // The metapackages the whole repository now calls for (meta.rs).
    let metas = meta::metapackages(&published, p.component);
    for m in &metas {
        report.metapackages.push(m.entry.filename.clone());
        published.insert(m.entry.id(), m.entry.clone());
    }
    // The component's indices, one per architecture.
    let mut by_arch: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for entry in published.values() {
        by_arch.entry(entry.architecture.as_str()).or_default().push(entry);
    }
    let mut ours: Vec<(String, Vec<u8>)> = Vec::new();
    for (arch, entries) in &by_arch {
        let text = index::packages_text(entries).into_bytes();
        let xz = index::xz(&text).map_err(io_error(p.repo))?;
        let dir = format!("{}/binary-{arch}", p.component);
        ours.push((format!("{dir}/Packages"), text));
        ours.push((format!("{dir}/Packages.xz"), xz));
    }
    let mut files: Vec<IndexFile> = ours.iter().map(|(path, bytes)| state::index_file(path, bytes)).collect();
    let state::OtherComponents { files: others, mut architectures, mut components } =
        state::other_components(root, &dists, p.component)?;
    files.extend(others);
    architectures.extend(by_arch.keys().map(|a| a.to_string()));
    components.insert(p.component.to_owned());
    let info = ReleaseInfo {
        suite: p.suite,
        date,
        architectures: architectures.into_iter().collect(),
        components: components.into_iter().collect(),
        files,
    };
    let release_text = release::release_text(&info);
    let in_release = p.key.map(|key| key.clearsign(&release_text, date)).transpose()?;

    // Writes, in the order that keeps every published state consistent.
    let mut writer = state::Writer { root, written: &mut report.written };
    for input in &pool_writes {
        writer.pool_file(input)?;
    }
    for m in &metas {
        writer.file(&m.entry.filename, &m.bytes)?;
    }
    for (rel, bytes) in &ours {
        writer.file(&format!("dists/{}/{rel}", p.suite), bytes)?;
    }
    writer.file(&format!("dists/{}/Release", p.suite), release_text.as_bytes())?;
    if let Some(signed) = in_release {
        writer.file(&format!("dists/{}/InRelease", p.suite), signed.as_bytes())?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
