//! Local directories of .deb files, as package sources beside the archives.
//!
//! A fleet still runs kernels whose headers are gone from the archive; an
//! administrator can drop their .debs (from an old mirror, a vendor, a backup)
//! into a directory named in `/etc/hermod/config.toml` (`local_debs`). Each
//! `*.deb` there is indexed from its own control file, like a one-directory
//! archive without a Packages file.
//!
//! Trust: no signature covers these files. They are trusted *because the
//! administrator put them there* — the directory is configuration, like the
//! keyrings that sign the archives. From the moment they are indexed they are
//! handled like any archive package: their SHA256 goes into the index entry,
//! the lock and the package cache, and every later use is verified against it.

use crate::bounded::{Bounded, Limit};
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::debfile::{self, DebFileError};
use super::packages::Package;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("local .deb directory {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("local .deb directory: {0}")]
    Deb(#[from] DebFileError),
    #[error("local .deb {path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

/// The packages of `dir` for `arch` (and `all`), sorted by file name.
/// `Filename` is the file's name in `dir`, `base_uri` is `file:<dir>`.
pub fn scan(dir: &Path, arch: &str) -> Result<Vec<Package>, LocalError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| LocalError::Io { path, source }
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let is_deb = path.extension().is_some_and(|e| e == "deb");
        if is_deb && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    let mut packages = Vec::with_capacity(files.len());
    for path in files {
        let invalid = |problem: String| LocalError::Invalid { path: path.clone(), problem };
        let filename = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if filename.is_empty() || filename.contains(char::is_whitespace) {
            return Err(invalid(
                "the file name must be UTF-8 without whitespace (it is recorded in lock files)".into(),
            ));
        }
        let control = debfile::control(&path)?;
        let field = |name: &'static str| control.get(name).map(str::to_owned);
        let need = |name: &'static str| field(name).ok_or_else(|| invalid(format!("control file has no {name} field")));
        let architecture = need("Architecture")?;
        if architecture != arch && architecture != "all" {
            continue;
        }
        let name = need("Package")?;
        // Only a regular file is opened (a FIFO would block); hashed as a stream, up to max_deb_size.
        let (file, _) = crate::bounded::open_user_file(&path).map_err(io_err(&path))?;
        let mut file = Bounded::new(file, Limit::DebSize, &crate::bounded::current());
        let mut hasher = Sha256::new();
        let size = io::copy(&mut file, &mut hasher).map_err(io_err(&path))?;
        packages.push(Package {
            source: field("Source")
                .and_then(|s| s.split_whitespace().next().map(str::to_owned))
                .unwrap_or(name.clone()),
            name,
            version: need("Version")?,
            architecture,
            multi_arch: field("Multi-Arch"),
            depends: field("Depends").unwrap_or_default(),
            pre_depends: field("Pre-Depends").unwrap_or_default(),
            provides: field("Provides").unwrap_or_default(),
            filename,
            size,
            sha256: hex::encode(hasher.finalize()),
            installed_size: field("Installed-Size").and_then(|v| v.parse().ok()).unwrap_or(0),
            base_uri: format!("file:{}", dir.display()),
            not_automatic: false,
        });
    }
    Ok(packages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debpkg::{DebSpec, ModuleFile};

    /// A real .deb, written by hermod's own package writer.
    fn sample_spec() -> DebSpec {
        let kernel = "6.1.0-99-amd64";
        DebSpec {
            package: format!("old-modules-{kernel}"),
            version: "1.0+6.1.100-1".into(),
            architecture: "amd64".into(),
            kernel_release: kernel.into(),
            maintainer: "hermod test <test@example.org>".into(),
            description_short: "a test package".into(),
            description_long: "A package in a local directory.".into(),
            source_name: "old".into(),
            depends: format!("linux-image-{kernel}"),
            extra_fields: vec![],
            files: vec![ModuleFile {
                install_dir: format!("lib/modules/{kernel}/updates/dkms"),
                file_name: "old.ko".into(),
                contents: b"\x7fELF not really a module\n".to_vec(),
            }],
            copyright: "Copyright: nobody\n".into(),
            changelog_entry: "Built for a test.".into(),
            mtime: 1_704_067_200,
        }
    }

    #[test]
    fn indexes_debs_by_their_control_files() {
        let dir = tempfile::tempdir().unwrap();
        let spec = sample_spec();
        let bytes = crate::debpkg::build_deb(&spec).unwrap();
        std::fs::write(dir.path().join("m.deb"), &bytes).unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"not a package").unwrap();
        let found = scan(dir.path(), "amd64").unwrap();
        assert_eq!(found.len(), 1);
        let p = &found[0];
        assert_eq!((p.name.as_str(), p.version.as_str()), (spec.package.as_str(), spec.version.as_str()));
        assert_eq!(p.depends, spec.depends);
        assert_eq!(p.size, bytes.len() as u64);
        assert_eq!(p.sha256, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(p.url(), format!("file:{}/m.deb", dir.path().display()));
        assert!(scan(dir.path(), "arm64").unwrap().is_empty(), "other architectures are left out");

        std::fs::write(dir.path().join("broken.deb"), b"!<arch>\nnot really").unwrap();
        let e = scan(dir.path(), "amd64").unwrap_err().to_string();
        assert!(e.contains("broken.deb"), "{e}");
        std::fs::remove_file(dir.path().join("broken.deb")).unwrap();
        std::fs::write(dir.path().join("with space.deb"), &bytes).unwrap();
        assert!(scan(dir.path(), "amd64").unwrap_err().to_string().contains("without whitespace"));
        let e = scan(&dir.path().join("missing"), "amd64").unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
    }
}
