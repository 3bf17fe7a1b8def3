//! What a repository written by `hermod publish` lists, read-only: for
//! `hermod status` on a master, which module packages are published and
//! from which build.
//!
//! It reads the component's own Packages indices exactly as a publish reads
//! them (`state.rs`: DIR opened once, everything below by descriptor, no
//! link followed, indices bounded), and never takes the publish lock or
//! writes anything, so it may run beside a publish: it then sees the
//! indices before or after, each file whole. A package hermod built names
//! its cache key in its control file (`X-Hermod-Key`), which the index
//! repeats: that is how a listing tells which key a package was built from.

use std::path::Path;

use super::{state, RepoError};

/// One published package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub package: String,
    pub version: String,
    pub architecture: String,
    /// Path from the repository root.
    pub filename: String,
    pub sha256: String,
    /// The cache key it was built from (`X-Hermod-Key`), when it says.
    pub key: Option<String>,
}

/// Everything `dir`'s `suite`/`component` lists, sorted by name, version
/// and architecture. A repository (or suite, or component) that does not
/// exist yet lists nothing.
pub fn listing(dir: &Path, suite: &str, component: &str) -> Result<Vec<Listed>, RepoError> {
    super::check_name("suite", suite)?;
    super::check_name("component", component)?;
    let root = match hermod_hostfs::Dir::open(dir) {
        Ok(root) => root,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(state::fs_err(e)),
    };
    let published = state::read_component(&root, suite, component)?;
    Ok(published
        .into_values()
        .map(|e| Listed {
            key: field(&e.stanza, "X-Hermod-Key"),
            package: e.package,
            version: e.version,
            architecture: e.architecture,
            filename: e.filename,
            sha256: e.sha256,
        })
        .collect())
}

/// A single-line field of a stanza.
fn field(stanza: &str, name: &str) -> Option<String> {
    stanza.lines().find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field.eq_ignore_ascii_case(name).then(|| value.trim().to_owned()).filter(|v| !v.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_repository_lists_nothing_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(listing(&dir.path().join("none"), "hermod", "main").unwrap(), Vec::new());
        assert_eq!(listing(dir.path(), "hermod", "main").unwrap(), Vec::new());
        assert!(listing(dir.path(), "../x", "main").is_err());
    }

    #[test]
    fn the_index_is_read_with_its_keys_and_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let arch_dir = dir.path().join("dists/hermod/main/binary-amd64");
        std::fs::create_dir_all(&arch_dir).unwrap();
        let sha = "a".repeat(64);
        let text = format!(
            "Package: hello-modules-6.1.0-9-amd64\nVersion: 0.1+6.1.27-1\nArchitecture: amd64\n\
             X-Hermod-Key: {}\nFilename: pool/main/h/hello/hello-modules-6.1.0-9-amd64_0.1+6.1.27-1_amd64.deb\n\
             Size: 10\nSHA256: {sha}\n\n\
             Package: hello-modules-amd64\nVersion: 9+0.1\nArchitecture: amd64\n\
             Filename: pool/main/h/hello/hello-modules-amd64_9+0.1_amd64.deb\nSize: 5\nSHA256: {sha}\n",
            "b".repeat(64)
        );
        std::fs::write(arch_dir.join("Packages"), text).unwrap();
        let listed = listing(dir.path(), "hermod", "main").unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].package, "hello-modules-6.1.0-9-amd64");
        assert_eq!(listed[0].key.as_deref(), Some("b".repeat(64).as_str()));
        assert_eq!(listed[1].key, None, "a metapackage names no key");

        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::rename(arch_dir.join("Packages"), elsewhere.path().join("Packages")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join("Packages"), arch_dir.join("Packages")).unwrap();
        let e = listing(dir.path(), "hermod", "main").unwrap_err();
        assert!(matches!(e, RepoError::Unsafe(_)), "{e}");
    }
}
