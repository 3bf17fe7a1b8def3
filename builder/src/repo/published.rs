//! What a repository publishes, read-only: the question `hermod sync` asks
//! before it builds anything (which cache keys are already published?), and
//! one `hermod status` can ask too.
//!
//! The repository's own `Packages` indices are the record (see `mod.rs`), so
//! this reads them as `publish` does (by descriptor, bounded, links refused:
//! `state.rs`), without taking the publish lock: every index appears by
//! rename, so a reader sees one whole index, the one before a concurrent
//! publish or the one after. A repository that does not exist yet publishes
//! nothing. Each package is reported with the `X-Hermod-Key` its control file
//! carries (every module package hermod builds names its cache key there;
//! metapackages and foreign packages carry none).

use std::path::Path;

use super::{check_name, state, RepoError};

/// One package of the component's indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub package: String,
    pub version: String,
    pub architecture: String,
    /// Lowercase hex, as the index states it.
    pub sha256: String,
    /// The cache key of the build that made it (`X-Hermod-Key`), if it names one.
    pub key: Option<String>,
}

/// Every package `dists/<suite>/<component>` of the repository at `dir`
/// lists, in the indices' order; none when the repository (or the suite) is
/// not there yet.
pub fn published(dir: &Path, suite: &str, component: &str) -> Result<Vec<Published>, RepoError> {
    check_name("suite", suite)?;
    check_name("component", component)?;
    let root = match hermod_hostfs::Dir::open(dir) {
        Ok(root) => root,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(state::fs_err(e)),
    };
    let entries = state::read_component(&root, suite, component)?;
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries.into_values() {
        // The stanza was parsed once already (read_component): it parses.
        let key = crate::apt::stanza::parse_one(&entry.stanza, &entry.filename)
            .ok()
            .and_then(|s| s.get("X-Hermod-Key").map(str::to_owned));
        out.push(Published {
            package: entry.package,
            version: entry.version,
            architecture: entry.architecture,
            sha256: entry.sha256,
            key,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_repository_publishes_nothing_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(published(&dir.path().join("none"), "hermod", "main").unwrap(), []);
        assert_eq!(published(dir.path(), "hermod", "main").unwrap(), []);
        assert!(matches!(published(dir.path(), "../x", "main"), Err(RepoError::BadName { .. })));
    }

    #[test]
    fn packages_are_read_back_with_their_keys() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("dists/hermod/main/binary-amd64");
        std::fs::create_dir_all(&index).unwrap();
        let sha = "a".repeat(64);
        std::fs::write(
            index.join("Packages"),
            format!(
                "Package: hello-modules-6.1.0-56-amd64\nVersion: 0.1+6.1.158-1\nArchitecture: amd64\n\
                 X-Hermod-Key: {k}\nFilename: pool/main/h/hello/hello-modules-6.1.0-56-amd64_0.1+6.1.158-1_amd64.deb\n\
                 Size: 10\nSHA256: {sha}\n\nPackage: hello-modules-amd64\nVersion: 6.1.0.56+0.1+6.1.158-1\n\
                 Architecture: amd64\nFilename: pool/main/h/hello/hello-modules-amd64_6.1.0.56+0.1+6.1.158-1_amd64.deb\n\
                 Size: 11\nSHA256: {sha}\n",
                k = "b".repeat(64)
            ),
        )
        .unwrap();
        let found = published(dir.path(), "hermod", "main").unwrap();
        assert_eq!(found.len(), 2);
        let module = found.iter().find(|p| p.package == "hello-modules-6.1.0-56-amd64").unwrap();
        assert_eq!(module.key.as_deref(), Some("b".repeat(64).as_str()));
        assert_eq!((module.version.as_str(), module.sha256.as_str()), ("0.1+6.1.158-1", sha.as_str()));
        let meta = found.iter().find(|p| p.package == "hello-modules-amd64").unwrap();
        assert_eq!(meta.key, None);
        assert_eq!(published(dir.path(), "hermod", "contrib").unwrap(), [], "another component is empty");
    }
}
