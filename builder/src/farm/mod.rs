//! The farm side: getting module packages onto machines that should not compile.
//!
//! A fleet has one master that builds (and publishes to an APT repository, see
//! [`crate::repo`]) and many farm machines that only install. Each machine says
//! in its config which modules it wants ([`crate::config::WantedEntry`]); when a
//! kernel arrives, the module packages for that kernel must follow. The kernel
//! packages call hooks at two moments, both *inside* dpkg:
//!
//! * `/etc/kernel/header_postinst.d/` when headers are installed (a build
//!   becomes possible), and `/etc/kernel/postinst.d/` when an image is.
//!
//! dpkg holds its lock while a maintainer script runs, so a hook cannot install
//! anything. Like `update-grub`, the work is split in two:
//!
//! 1. [`prepare`] (`hermod prepare --kernel K`, run by both hooks) puts the .debs
//!    in `pending/`: from `debs/` (dropped in by hand), the repository, the
//!    shared cache, or a build if this machine is a master; what none of them
//!    has is written to `queue/K` for the boot service. It never runs dpkg.
//! 2. [`pending::install`] (`hermod install-pending`, run by apt's
//!    `DPkg::Post-Invoke` once dpkg is done, or by hand) installs `pending/` with
//!    dpkg and removes what dpkg now has.
//!
//! At boot, `hermod boot` (hermod-boot.service) does both for the running
//! kernel and loads the modules: the safety net for a kernel that arrived
//! while the repository was unreachable.
//!
//! dpkg, dpkg-query and modprobe are reached through the [`System`] trait, so
//! the decisions here are tested with a recording double and the real tools
//! are used by the binary (and the integration tests in a Debian root).

pub mod pending;
pub mod prepare;
pub mod repository;
pub mod system;

use std::path::{Path, PathBuf};

pub use prepare::{prepare, Outcome, PrepareReport};
pub use system::{System, SystemTools};

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hermod";

#[derive(Debug, thiserror::Error)]
pub enum FarmError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no [repository] in {config}: a farm machine needs one to fetch from (see `hermod repo keygen`, and the example /usr/share/doc/hermod/examples/config.toml)")]
    NoRepository { config: String },
    #[error("{package} is not available: {answers}")]
    NotAvailable { package: String, answers: String },
    /// Not had because a source failed or was refused (not merely lacking it).
    #[error("{package} could not be had: {answers}")]
    Unavailable { package: String, answers: String },
    #[error("{count} wanted module package(s) for {kernel} could not be had; queued in {queue} for hermod-boot.service (or run `hermod prepare --kernel {kernel}` again)")]
    Queued { count: usize, kernel: String, queue: PathBuf },
    #[error("{wanted}: cannot tell the module package name from this source; give it in the config: {{ source = \"{wanted}\", package = \"NAME\" }}")]
    UnknownPackageName { wanted: String },
    #[error("{what} failed: {detail}")]
    Tool { what: String, detail: String },
    #[error("{path}: not a usable .deb: {detail}")]
    BadDeb { path: PathBuf, detail: String },
    #[error("{0} package(s) could not be installed; they stay in {1}")]
    InstallFailed(usize, PathBuf),
    #[error("reading the repository: {0}")]
    Apt(#[from] crate::apt::AptError),
    #[error("downloading from the repository: {0}")]
    Fetch(#[from] crate::apt::FetchError),
}

impl crate::exit::HasExitCode for FarmError {
    fn exit_code(&self) -> crate::exit::Code {
        use crate::exit::Code;
        match self {
            FarmError::NotAvailable { .. } | FarmError::Queued { .. } => Code::NotAvailable,
            FarmError::Tool { .. } | FarmError::InstallFailed(..) => Code::Install,
            FarmError::NoRepository { .. } | FarmError::UnknownPackageName { .. } | FarmError::BadDeb { .. } => {
                Code::BadInput
            }
            FarmError::Apt(_) | FarmError::Fetch(_) | FarmError::Unavailable { .. } => Code::Archive,
            FarmError::Io { .. } => Code::Io,
        }
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> FarmError + '_ {
    move |source| FarmError::Io { path: path.to_owned(), source }
}

/// Rename `from` to `to`, or copy (to a temporary name beside `to`, then
/// rename) and remove `from` when they are on different filesystems.
pub fn move_file(from: &Path, to: &Path) -> Result<(), FarmError> {
    match std::fs::rename(from, to) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            // Streamed, never whole in memory; only a regular file is opened (a FIFO would block).
            let (mut file, _) = crate::bounded::open_user_file(from).map_err(io_error(from))?;
            crate::store::copy_atomically(to, &mut file).map_err(io_error(to))?;
            std::fs::remove_file(from).map_err(io_error(from))
        }
        other => other.map_err(io_error(to)),
    }
}

/// `/var/lib/hermod` and its parts.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// `from_env` (`HERMOD_STATE_DIR`, which the caller read), else the
    /// config's `state_dir`, else [`DEFAULT_STATE_DIR`].
    pub fn resolve(from_env: Option<PathBuf>, config: &crate::config::Config) -> StateDir {
        let root = from_env.or_else(|| config.state_dir.clone()).unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        StateDir::new(root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Packages waiting for `install-pending`.
    pub fn pending(&self) -> PathBuf {
        self.root.join("pending")
    }

    /// Packages an administrator dropped in, used before any repository.
    pub fn debs(&self) -> PathBuf {
        self.root.join("debs")
    }

    /// `queue/<KREL>`: the wanted packages nothing could provide yet.
    pub fn queue(&self) -> PathBuf {
        self.root.join("queue")
    }

    /// Create a part (and the root) if missing.
    pub fn ensure(&self, dir: &Path) -> Result<(), FarmError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))
    }
}

/// What a `wanted` entry (or a `hermod fetch` argument) asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// How the user wrote it, for messages.
    pub label: String,
    /// The module package's base name: `<base>-modules-<KREL>`.
    pub base: String,
    /// What to build it from, when known.
    pub source: Option<String>,
}

impl Wanted {
    /// From a config entry; `None` package and an unnamed source is an error.
    pub fn from_entry(entry: &crate::config::WantedEntry) -> Result<Wanted, FarmError> {
        let source = entry.source().map(str::to_owned);
        let label = source.clone().or_else(|| entry.package().map(str::to_owned)).unwrap_or_default();
        let base = match entry.package() {
            Some(p) => p.to_owned(),
            None => base_name_of(&label)?,
        };
        Ok(Wanted { label, base, source })
    }

    /// From a `hermod fetch` argument: `hello`, `hello-modules-<KREL>`,
    /// `v4l2loopback-dkms`, `pkg:v4l2loopback-dkms[=VER]`, a -dkms .deb or a
    /// source directory.
    pub fn from_argument(arg: &str, kernel: &str) -> Result<Wanted, FarmError> {
        let full_suffix = format!("-modules-{kernel}");
        if let Some(base) = arg.strip_suffix(&full_suffix) {
            return Ok(Wanted { label: arg.to_owned(), base: base.to_owned(), source: None });
        }
        let is_source = arg.starts_with("pkg:") || arg.contains('/') || arg.ends_with(".deb");
        Ok(Wanted { label: arg.to_owned(), base: base_name_of(arg)?, source: is_source.then(|| arg.to_owned()) })
    }

    /// `<base>-modules-<kernel>`, as [`crate::pipeline::package_name`] names it.
    pub fn package(&self, kernel: &str) -> String {
        crate::pipeline::package_name(&self.base, kernel)
    }
}

/// The module package base name a SOURCE or name implies: a -dkms package's
/// name without `-dkms` (Debian's convention: `v4l2loopback-dkms` builds
/// `v4l2loopback`), a directory's dkms.conf `PACKAGE_NAME` when it is a plain
/// literal, or the word itself.
fn base_name_of(wanted: &str) -> Result<String, FarmError> {
    let unknown = || FarmError::UnknownPackageName { wanted: wanted.to_owned() };
    let name = if let Some(pkg) = wanted.strip_prefix("pkg:") {
        pkg.split('=').next().unwrap_or(pkg).to_owned()
    } else if wanted.ends_with(".deb") {
        let file = Path::new(wanted).file_name().and_then(|f| f.to_str()).ok_or_else(unknown)?;
        file.split('_').next().unwrap_or(file).to_owned()
    } else if wanted.contains('/') {
        let conf = Path::new(wanted).join("dkms.conf");
        let text = crate::bounded::read_user_text(&conf, crate::bounded::MAX_USER_FILE).map_err(io_error(&conf))?;
        literal_package_name(&text).ok_or_else(unknown)?
    } else {
        wanted.to_owned()
    };
    let base = name.strip_suffix("-dkms").unwrap_or(&name).to_ascii_lowercase().replace('_', "-");
    if base.is_empty() || !base.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return Err(unknown());
    }
    Ok(base)
}

/// `PACKAGE_NAME=hello` or `PACKAGE_NAME="hello"`: only a plain word, never
/// anything the shell would expand (that needs dkms.conf's evaluation, which
/// needs a build root a farm machine does not have).
fn literal_package_name(dkms_conf: &str) -> Option<String> {
    let value = dkms_conf.lines().rev().find_map(|line| line.trim().strip_prefix("PACKAGE_NAME="))?;
    let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
    let plain = !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c));
    plain.then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_arguments_name_their_package() {
        let k = "6.1.0-56-amd64";
        let cases = [
            ("hello", "hello", None),
            ("hello-modules-6.1.0-56-amd64", "hello", None),
            ("v4l2loopback-dkms", "v4l2loopback", None),
            ("pkg:acpi-call-dkms=1.2.2-2", "acpi-call", Some("pkg:acpi-call-dkms=1.2.2-2")),
            ("/srv/debs/vpoll-dkms_0.1_all.deb", "vpoll", Some("/srv/debs/vpoll-dkms_0.1_all.deb")),
        ];
        for (arg, base, source) in cases {
            let w = Wanted::from_argument(arg, k).unwrap();
            assert_eq!((w.base.as_str(), w.source.as_deref()), (base, source), "{arg}");
        }
        assert_eq!(Wanted::from_argument("hello", k).unwrap().package(k), "hello-modules-6.1.0-56-amd64");
        assert!(Wanted::from_argument("pkg:", k).is_err());
    }

    #[test]
    fn a_directory_names_its_package_when_dkms_conf_is_plain() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dkms.conf"), "PACKAGE_NAME=\"My_Mod\"\nPACKAGE_VERSION=1\n").unwrap();
        let arg = dir.path().to_str().unwrap();
        assert_eq!(Wanted::from_argument(arg, "k").unwrap().base, "my-mod");
        std::fs::write(dir.path().join("dkms.conf"), "PACKAGE_NAME=$(basename $PWD)\n").unwrap();
        let e = Wanted::from_argument(arg, "k").unwrap_err().to_string();
        assert!(e.contains("package = \"NAME\""), "{e}");
        let missing = Wanted::from_argument("/nonexistent/src", "k").unwrap_err().to_string();
        assert!(missing.starts_with("/nonexistent/src/dkms.conf: "), "{missing}");
    }

    #[test]
    fn config_entries_may_name_the_package() {
        use crate::config::{WantedEntry, WantedTable};
        let table = WantedEntry::Table(WantedTable { source: Some("pkg:x-dkms".into()), package: Some("y".into()) });
        let w = Wanted::from_entry(&table).unwrap();
        assert_eq!((w.base.as_str(), w.source.as_deref()), ("y", Some("pkg:x-dkms")));
        let plain = Wanted::from_entry(&WantedEntry::Source("pkg:v4l2loopback-dkms".into())).unwrap();
        assert_eq!(plain.base, "v4l2loopback");
    }
}
