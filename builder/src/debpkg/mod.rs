//! The `.deb` writer: turns a built module set into a bit-identical, dpkg-tracked
//! binary package `<module>-modules-<KREL>_<version>_<arch>.deb`.
//!
//! Written with library crates (`ar`, `tar`, `liblzma`, `flate2`, `md-5`), not by
//! calling `dpkg-deb`, so the bytes depend on the [`DebSpec`] alone:
//!
//! * ar archive (common/BSD-less SysV format as dpkg writes it): `debian-binary`
//!   (`"2.0\n"`), `control.tar.xz`, `data.tar.xz`, in that order; every ar header
//!   has mtime = `spec.mtime`, uid 0, gid 0, mode `100644`.
//! * tar members in GNU format, names with the `./` prefix dpkg-deb produces,
//!   directories listed explicitly (`./`, `./lib/`, …) with a trailing `/`, entries
//!   sorted bytewise by name (which puts every directory before its contents),
//!   owner `root:root` (0/0), mtime = `spec.mtime`, modes explicit: directories
//!   0755, regular files 0644, maintainer scripts 0755. Names longer than 100
//!   bytes use a GNU `././@LongLink` entry, like GNU tar.
//! * xz: liblzma "easy" encoder, preset 6 (dpkg's default), check CRC64 (like dpkg),
//!   single-threaded, so the output does not depend on the number of CPUs.
//! * `changelog.Debian.gz` (`changelog.gz` for a native version without Debian
//!   revision, as policy wants): gzip level 9, header mtime 0, no file name, OS byte 3
//!   (what `gzip -9n` writes on Unix).
//!
//! `Installed-Size` follows dpkg-gencontrol's documented rule: every regular file
//! counts its size rounded up to whole KiB, every other filesystem object
//! (directories, including the root `./`) counts 1 KiB.
//!
//! The maintainer scripts call `depmod -a <KREL>` only when the kernel's own
//! module tree is installed (`/lib/modules/<KREL>/modules.order`, shipped by every
//! kernel image package and by `make modules_install`) and `depmod` is on `PATH`.
//! Our own files create `/lib/modules/<KREL>/…`, so the mere existence of that
//! directory says nothing about the kernel. If the kernel is installed later, its
//! own postinst runs depmod and picks up our modules. The postrm never fails
//! because of depmod (it warns instead). Both honour `$DPKG_ROOT` (chrootless
//! installs, `depmod -b`).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

/// Fixed xz preset (dpkg-deb's default compression level for xz).
const XZ_PRESET: u32 = 6;
/// Earliest accepted `mtime`: 1975-01-01T00:00:00Z (lintian flags older files as
/// "ancient"; dpkg-deb itself refuses timestamps before 1975 in some code paths).
pub const MIN_MTIME: u64 = 157_766_400;
/// Latest accepted `mtime`: the largest value an 11-digit octal tar field holds.
pub const MAX_MTIME: u64 = 0o77_777_777_777;

/// One kernel module file to ship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// Directory relative to `/`, no leading `/`, e.g. `lib/modules/6.1.0-56-amd64/updates/dkms`.
    pub install_dir: String,
    /// `hello.ko` or `hello.ko.xz`.
    pub file_name: String,
    pub contents: Vec<u8>,
}

/// Everything that goes into the package; the same spec always gives the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebSpec {
    /// `hello-modules-6.1.0-56-amd64`
    pub package: String,
    /// Debian version, e.g. `0.1+6.1.192-2` (optionally with `epoch:`).
    pub version: String,
    /// `amd64`
    pub architecture: String,
    /// `6.1.0-56-amd64`
    pub kernel_release: String,
    /// `Name <address>`
    pub maintainer: String,
    pub description_short: String,
    /// May be multi-line; empty lines become ` .`.
    pub description_long: String,
    /// The module's PACKAGE_NAME, for `Source:`; must be a valid (lower-case) package name.
    pub source_name: String,
    /// `Depends:` value; empty means no Depends field.
    pub depends: String,
    /// Appended to the control file verbatim, after `Priority:` and before `Description:`.
    pub extra_fields: Vec<(String, String)>,
    pub files: Vec<ModuleFile>,
    /// Text of `/usr/share/doc/<package>/copyright` (a final newline is added if missing).
    pub copyright: String,
    /// Body of the single changelog entry. The first line becomes `  * <line>`;
    /// later lines starting with `* ` or `- ` start new bullets, other lines are
    /// continuation lines (indented by four spaces); blank lines are dropped.
    pub changelog_entry: String,
    /// Fixed time (seconds since the epoch) for every entry; `MIN_MTIME..=MAX_MTIME`.
    pub mtime: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("invalid {field} {}: {reason}", crate::bounded::excerpt(.value))]
    Invalid { field: String, value: String, reason: String },
    #[error("package {package:?} has no files to install (refusing to build an empty module package)")]
    NoFiles { package: String },
    #[error("path {path:?} occurs twice in the package (or is both a file and a directory)")]
    DuplicatePath { path: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl crate::exit::HasExitCode for DebError {
    /// hermod made the package from checked parts: a failure is its own.
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            DebError::Invalid { .. }
            | DebError::NoFiles { .. }
            | DebError::DuplicatePath { .. }
            | DebError::Io { .. } => crate::exit::Code::Internal,
        }
    }
}

fn invalid(field: impl Into<String>, value: &str, reason: impl Into<String>) -> DebError {
    DebError::Invalid { field: field.into(), value: value.to_string(), reason: reason.into() }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> DebError {
    let context = context.into();
    move |source| DebError::Io { context, source }
}

/// `<package>_<version without epoch>_<arch>.deb`
pub fn file_name(spec: &DebSpec) -> String {
    let version = match spec.version.split_once(':') {
        Some((_, rest)) => rest,
        None => spec.version.as_str(),
    };
    format!("{}_{}_{}.deb", spec.package, version, spec.architecture)
}

/// Build the `.deb` in memory.
pub fn build_deb(spec: &DebSpec) -> Result<Vec<u8>, DebError> {
    build(spec, PackageKind::Modules)
}

/// Build a metapackage in memory: `spec.files` must be empty, and the package
/// has no maintainer scripts (nothing to run depmod for); its only files are
/// the copyright and the changelog. Same writer, same rules, same bytes for
/// the same spec (`repo/meta.rs` makes the specs).
pub fn build_metapackage(spec: &DebSpec) -> Result<Vec<u8>, DebError> {
    build(spec, PackageKind::Meta)
}

/// What [`build`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PackageKind {
    /// Module files and the depmod maintainer scripts.
    Modules,
    /// No files but the documentation, no scripts.
    Meta,
}

fn build(spec: &DebSpec, kind: PackageKind) -> Result<Vec<u8>, DebError> {
    validate(spec, kind)?;

    let data_entries = data_entries(spec)?;
    let installed_size_kib: u64 = data_entries
        .iter()
        .map(|e| match &e.kind {
            Kind::Dir => 1,
            Kind::File { contents, .. } => (contents.len() as u64).div_ceil(1024),
        })
        .sum();

    let mut md5sums = String::new();
    for e in &data_entries {
        if let Kind::File { contents, .. } = &e.kind {
            let digest = Md5::digest(contents);
            let _ = writeln!(md5sums, "{}  {}", hex::encode(digest), e.path);
        }
    }

    let mut control_entries = vec![
        Entry::dir(""),
        Entry::file("control", control_file(spec, installed_size_kib).into_bytes(), 0o644),
        Entry::file("md5sums", md5sums.into_bytes(), 0o644),
    ];
    if kind == PackageKind::Modules {
        control_entries.push(Entry::file("postinst", postinst(spec).into_bytes(), 0o755));
        control_entries.push(Entry::file("postrm", postrm(spec).into_bytes(), 0o755));
    }

    let control_tar_xz = xz(&tar(control_entries, spec.mtime)?)?;
    let data_tar_xz = xz(&tar(data_entries, spec.mtime)?)?;

    let mut ar = ar::Builder::new(Vec::new());
    for (name, bytes) in
        [("debian-binary", &b"2.0\n"[..]), ("control.tar.xz", &control_tar_xz[..]), ("data.tar.xz", &data_tar_xz[..])]
    {
        let mut h = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
        h.set_mtime(spec.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(0o100644);
        ar.append(&h, bytes).map_err(io_err(format!("writing ar member {name}")))?;
    }
    ar.into_inner().map_err(io_err("finishing ar archive"))
}

/// Build the `.deb` and put it at `out_dir/file_name(spec)`: written to a temporary
/// file in `out_dir`, fsynced, renamed over the final name, directory fsynced.
/// Nothing half-written is ever visible under the final name.
pub fn write_deb_atomically(spec: &DebSpec, out_dir: &Path) -> Result<PathBuf, DebError> {
    let bytes = build_deb(spec)?;
    let name = file_name(spec);
    let final_path = out_dir.join(&name);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(out_dir)
        .map_err(io_err(format!("creating temporary file in {}", out_dir.display())))?;
    tmp.write_all(&bytes).map_err(io_err(format!("writing {}", tmp.path().display())))?;
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io_err(format!("chmod {}", tmp.path().display())))?;
    }
    tmp.as_file().sync_all().map_err(io_err(format!("fsync {}", tmp.path().display())))?;
    tmp.persist(&final_path).map_err(|e| DebError::Io {
        context: format!("renaming temporary file to {}", final_path.display()),
        source: e.error,
    })?;
    std::fs::File::open(out_dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("fsync directory {}", out_dir.display())))?;
    Ok(final_path)
}

// validation

mod archive;
mod checks;
mod content;
#[cfg(test)]
mod tests;

use archive::*;
use checks::*;
pub(crate) use checks::{check_version, is_package_name};
/// A changelog's date (hermod's own package uses it too, `xtask/src/dist.rs`).
pub use content::rfc2822;
use content::*;

/// Small real module packages for other modules' tests.
#[cfg(test)]
pub mod tests_support {
    use super::*;

    /// A valid module .deb for `package` at `version` (kernel `k`): its file name and bytes.
    pub fn module_deb(package: &str, version: &str) -> (String, Vec<u8>) {
        module_deb_depending(package, version, "")
    }

    /// [`module_deb`] with a `Depends:` field (none when empty).
    pub fn module_deb_depending(package: &str, version: &str, depends: &str) -> (String, Vec<u8>) {
        let spec = DebSpec {
            package: package.into(),
            version: version.into(),
            architecture: "amd64".into(),
            kernel_release: "k".into(),
            maintainer: "Hermod Test <test@example.org>".into(),
            description_short: format!("{package} test package"),
            description_long: "A package made by a unit test.".into(),
            source_name: format!("{}-src", package.split("-modules-").next().unwrap_or(package)),
            depends: depends.into(),
            extra_fields: Vec::new(),
            files: vec![ModuleFile {
                install_dir: "lib/modules/k/updates/dkms".into(),
                file_name: "m.ko".into(),
                contents: b"\x7fELF test".to_vec(),
            }],
            copyright: "test".into(),
            changelog_entry: "test".into(),
            mtime: 1_704_067_200,
        };
        (file_name(&spec), build_deb(&spec).expect("test package builds"))
    }
}
