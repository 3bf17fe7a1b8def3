//! `/etc/dkms/<module>….conf`: the administrator's overrides of a dkms.conf.
//!
//! DKMS 3.x sources, after dkms.conf and in this order, the files of
//! [`names`] that exist. hermod reads them from a directory of the host
//! (`/etc/dkms` by default: `--dkms-overrides DIR`, `HERMOD_DKMS_OVERRIDES`),
//! copies those that exist and apply to the module, version, kernel and
//! architecture into the sandbox's input, and hashes them into the cache key:
//! they change what is built. Files that do not apply are neither read nor
//! hashed. `framework.conf` is DKMS's own configuration, never an override.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where DKMS looks for overrides.
pub const DEFAULT_DIR: &str = "/etc/dkms";

#[derive(Debug, thiserror::Error)]
pub enum OverridesError {
    #[error("reading the dkms.conf overrides in {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
}

impl crate::exit::HasExitCode for OverridesError {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            OverridesError::Read { .. } => crate::exit::Code::BadInput,
        }
    }
}

/// One override file that applies: its name in the directory and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideFile {
    pub name: String,
    pub contents: Vec<u8>,
}

/// The file names DKMS 3.x sources after dkms.conf, in its order.
pub fn names(module: &str, version: &str, kernelver: &str, arch: &str) -> [String; 6] {
    [
        format!("{module}.conf"),
        format!("{module}-{version}.conf"),
        format!("{module}-{version}-{kernelver}.conf"),
        format!("{module}-{version}-{kernelver}-{arch}.conf"),
        format!("{module}--{kernelver}.conf"),
        format!("{module}--{kernelver}-{arch}.conf"),
    ]
}

/// Whether `dir` holds any file that could be an override (`*.conf` but
/// `framework.conf`). When it does not, which module a source declares does
/// not matter, and hermod need not evaluate dkms.conf to compute the key.
pub fn any_candidate(dir: &Path) -> Result<bool, OverridesError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(OverridesError::Read { path: dir.to_owned(), source }),
    };
    for entry in entries {
        let entry = entry.map_err(|source| OverridesError::Read { path: dir.to_owned(), source })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".conf") && name != "framework.conf" && entry.path().is_file() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The override files of `dir` that apply, in the order DKMS sources them.
/// `module` and `version` must be plain words (checked by the caller), so
/// every name stays inside `dir`.
pub fn applicable(
    dir: &Path,
    module: &str,
    version: &str,
    kernelver: &str,
    arch: &str,
) -> Result<Vec<OverrideFile>, OverridesError> {
    let mut files = Vec::new();
    for name in names(module, version, kernelver, arch) {
        if name == "framework.conf" || name.contains('/') {
            continue;
        }
        let path = dir.join(&name);
        // Only a regular file is opened (a FIFO would block), and bounded.
        match crate::bounded::read_user_file(&path, crate::bounded::MAX_USER_FILE) {
            Ok(contents) => files.push(OverrideFile { name, contents }),
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound) => {}
            Err(source) => return Err(OverridesError::Read { path, source }),
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_existing_files_that_apply_in_dkms_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["hello--6.1.0-56-amd64.conf", "hello.conf", "other.conf", "hello-0.2.conf", "framework.conf"] {
            fs::write(dir.path().join(name), name).unwrap();
        }
        let files = applicable(dir.path(), "hello", "0.1", "6.1.0-56-amd64", "x86_64").unwrap();
        let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["hello.conf", "hello--6.1.0-56-amd64.conf"]);
        assert_eq!(files[0].contents, b"hello.conf");
        assert!(any_candidate(dir.path()).unwrap());
    }

    #[test]
    fn framework_conf_alone_or_no_directory_is_no_candidate() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!any_candidate(&dir.path().join("absent")).unwrap());
        fs::write(dir.path().join("framework.conf"), "x").unwrap();
        fs::create_dir(dir.path().join("framework.conf.d")).unwrap();
        assert!(!any_candidate(dir.path()).unwrap());
        assert!(applicable(dir.path(), "framework", "1", "k", "x86_64").unwrap().is_empty());
    }
}
