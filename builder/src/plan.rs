//! The build matrix for a CI engine.
//!
//! A CI system that builds modules for many kernels spreads the work over
//! parallel jobs: GitHub Actions expands a job by `strategy.matrix` (here
//! `{"include": [{…}, …]}`, read with `fromJSON`), GitLab by
//! `parallel:matrix` (a list of variable sets, at most 200 per job, in a
//! child pipeline generated at run time). `hermod plan` computes, for every
//! (module source, kernel) pair, the same cache key `hermod build` would, and
//! whether the local store or the shared cache already holds its package, so
//! the pipeline builds only the misses and every other job pulls.
//!
//! This module is the pure part: the entries and their two renderings, and
//! which kernels an APT repository offers. The glue is `cli/plan.rs`.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{json, Value};

use crate::apt::{Archive, Version};
use crate::rootfs::is_release;

/// GitHub Actions refuses a matrix of more jobs than this.
pub const GITHUB_MATRIX_LIMIT: usize = 256;
/// GitLab refuses a `parallel:matrix` of more jobs than this (per job).
pub const GITLAB_MATRIX_LIMIT: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "{count} matrix entries are more than GitHub Actions runs from one matrix ({GITHUB_MATRIX_LIMIT}): \
         plan fewer modules or kernels per job, or use --misses-only"
    )]
    TooManyForGithub { count: usize },
    #[error("--kernels-from {}: {error}", path.display())]
    SourcesFile { path: std::path::PathBuf, error: crate::apt::SourcesError },
    #[error("--kernels-from {}: no enabled `deb` source in it", path.display())]
    NoSources { path: std::path::PathBuf },
    #[error("{origin} offers no kernel: no linux-image-<release> package for {arch}")]
    NoKernels { origin: String, arch: String },
}

impl crate::exit::HasExitCode for PlanError {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            PlanError::TooManyForGithub { .. } | PlanError::SourcesFile { .. } | PlanError::NoSources { .. } => {
                crate::exit::Code::BadInput
            }
            PlanError::NoKernels { .. } => crate::exit::Code::NoHeaders,
        }
    }
}

/// Where a build's package already is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cached {
    /// This host's store.
    Local,
    /// The shared cache, signed by a trusted key.
    Shared,
}

/// Which cache holds `key`'s package, if one does: the local store (only
/// read, no use recorded), else the shared cache.
pub fn cached_in(ctx: &crate::pipeline::Context, key: &str, kernel: &str) -> Option<Cached> {
    if crate::cache::read_entry(ctx.archives.store(), key).is_some() {
        Some(Cached::Local)
    } else if ctx.options.shared.as_ref().is_some_and(|shared| shared.holds(key, kernel).is_some()) {
        Some(Cached::Shared)
    } else {
        None
    }
}

/// One (module source, kernel) pair of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The SOURCE argument, as `hermod build` takes it.
    pub source: String,
    pub kernel: String,
    /// The kernel's Debian architecture (`amd64`, `arm64`): the package's,
    /// and what a CI job may pick its runner by (every one builds on amd64).
    pub architecture: String,
    /// The cache key `hermod build SOURCE --kernel KERNEL` computes.
    pub key: String,
    /// Whether a cache holds the package: what a CI job then pulls instead of building.
    pub cached: bool,
    /// Which cache, if one does.
    pub cached_in: Option<Cached>,
}

impl Entry {
    pub fn new(source: &str, kernel: &str, architecture: &str, key: &str, cached_in: Option<Cached>) -> Entry {
        Entry {
            source: source.to_owned(),
            kernel: kernel.to_owned(),
            architecture: architecture.to_owned(),
            key: key.to_owned(),
            cached: cached_in.is_some(),
            cached_in,
        }
    }
}

/// GitHub Actions: `{"include": [entry, …]}` for `strategy.matrix: ${{ fromJSON(…) }}`.
/// An empty list is valid JSON but GitHub refuses an empty matrix, so a
/// workflow guards the build job on the count (see docs/ci/github-actions.yml).
pub fn github(entries: &[Entry]) -> Result<Value, PlanError> {
    if entries.len() > GITHUB_MATRIX_LIMIT {
        return Err(PlanError::TooManyForGithub { count: entries.len() });
    }
    Ok(json!({ "include": entries }))
}

/// Settings of the GitLab child pipeline.
#[derive(Debug, Clone)]
pub struct Gitlab {
    /// The hidden job every build job extends (its script runs `hermod build`).
    pub extends: String,
    /// Project files the child pipeline includes (where that job is defined).
    pub include: Vec<String>,
}

/// GitLab: a whole child-pipeline document (JSON is YAML) whose build jobs
/// extend `settings.extends` with `parallel:matrix` over HERMOD_SOURCE,
/// HERMOD_KERNEL, HERMOD_ARCHITECTURE, HERMOD_KEY and HERMOD_CACHED (GitLab variables are
/// strings). Over 200 entries the jobs are split; with no entry at all, one
/// job says so, since GitLab refuses a child pipeline without jobs.
pub fn gitlab(entries: &[Entry], settings: &Gitlab) -> Value {
    let mut document = serde_json::Map::new();
    if !settings.include.is_empty() {
        let include: Vec<Value> = settings.include.iter().map(|file| json!({ "local": file })).collect();
        document.insert("include".into(), Value::Array(include));
    }
    if entries.is_empty() {
        document.insert(
            "hermod-nothing-to-build".into(),
            json!({ "script": ["echo 'hermod plan: every module package is cached; nothing to build'"] }),
        );
        return Value::Object(document);
    }
    let chunks: Vec<&[Entry]> = entries.chunks(GITLAB_MATRIX_LIMIT).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let name = if chunks.len() == 1 { "hermod-build".to_owned() } else { format!("hermod-build-{}", i + 1) };
        let matrix: Vec<Value> = chunk
            .iter()
            .map(|e| {
                json!({
                    "HERMOD_SOURCE": e.source,
                    "HERMOD_KERNEL": e.kernel,
                    "HERMOD_ARCHITECTURE": e.architecture,
                    "HERMOD_KEY": e.key,
                    "HERMOD_CACHED": if e.cached { "true" } else { "false" },
                })
            })
            .collect();
        document.insert(name, json!({ "extends": settings.extends, "parallel": { "matrix": matrix } }));
    }
    Value::Object(document)
}

/// The kernel releases an APT repository offers images of: `linux-image-K`
/// (signed or `-unsigned`, not `-dbg`), K a real release, not a meta
/// package's name. Oldest first, as `--kernel all`.
pub fn kernels_offered(archive: &Archive) -> Vec<String> {
    let mut found = BTreeSet::new();
    for name in archive.names_with_prefix("linux-image-") {
        let release = name.trim_start_matches("linux-image-");
        if release.ends_with("-dbg") {
            continue;
        }
        let release = release.strip_suffix("-unsigned").unwrap_or(release);
        if is_release(release) {
            found.insert(release.to_owned());
        }
    }
    let mut releases: Vec<String> = found.into_iter().collect();
    let version = |k: &str| Version::parse(&k.replace('-', ".")).ok();
    releases.sort_by(|a, b| version(a).cmp(&version(b)).then_with(|| a.cmp(b)));
    releases
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt::packages::parse_packages;

    fn entry(kernel: &str, cached: Option<Cached>) -> Entry {
        Entry::new("testdata/modules/hello", kernel, "amd64", &format!("key-{kernel}"), cached)
    }

    #[test]
    fn github_matrix_is_include_of_entries() {
        let entries = [entry("6.1.0-9-amd64", Some(Cached::Local)), entry("6.1.0-10-amd64", None)];
        let value = github(&entries).unwrap();
        let include = value["include"].as_array().unwrap();
        assert_eq!(include.len(), 2);
        assert_eq!(include[0]["kernel"], "6.1.0-9-amd64");
        assert_eq!(include[0]["architecture"], "amd64");
        assert_eq!(include[0]["cached"], true);
        assert_eq!(include[0]["cached_in"], "local");
        assert_eq!(include[1]["cached"], false);
        assert_eq!(include[1]["cached_in"], Value::Null);
        assert_eq!(include[1]["key"], "key-6.1.0-10-amd64");
        let many: Vec<Entry> = (0..=GITHUB_MATRIX_LIMIT).map(|i| entry(&format!("6.1.0-{i}-amd64"), None)).collect();
        let e = github(&many).unwrap_err().to_string();
        assert!(e.contains("257") && e.contains("256"), "{e}");
    }

    #[test]
    fn gitlab_pipeline_extends_the_template_and_splits_at_the_limit() {
        let settings = Gitlab { extends: ".hermod-build".into(), include: vec!["ci/hermod.yml".into()] };
        let entries = [entry("6.1.0-9-amd64", Some(Cached::Shared)), entry("6.1.0-10-amd64", None)];
        let doc = gitlab(&entries, &settings);
        assert_eq!(doc["include"][0]["local"], "ci/hermod.yml");
        let job = &doc["hermod-build"];
        assert_eq!(job["extends"], ".hermod-build");
        let matrix = job["parallel"]["matrix"].as_array().unwrap();
        assert_eq!(matrix[0]["HERMOD_KERNEL"], "6.1.0-9-amd64");
        assert_eq!(matrix[0]["HERMOD_CACHED"], "true");
        assert_eq!(matrix[1]["HERMOD_CACHED"], "false");
        assert!(matrix.iter().flat_map(|m| m.as_object().unwrap().values()).all(Value::is_string));

        let many: Vec<Entry> = (0..450).map(|i| entry(&format!("6.1.0-{i}-amd64"), None)).collect();
        let doc = gitlab(&many, &settings);
        let sizes: Vec<usize> = ["hermod-build-1", "hermod-build-2", "hermod-build-3"]
            .iter()
            .map(|j| doc[j]["parallel"]["matrix"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [200, 200, 50]);
        assert!(doc.get("hermod-build").is_none());

        let empty = gitlab(&[], &Gitlab { extends: ".x".into(), include: vec![] });
        assert!(empty.get("include").is_none());
        assert!(empty["hermod-nothing-to-build"]["script"].is_array(), "a child pipeline needs a job");
    }

    #[test]
    fn kernels_offered_are_the_releases_of_images() {
        let mut text = String::new();
        for name in [
            "linux-image-6.1.0-10-amd64",
            "linux-image-6.1.0-9-amd64-unsigned",
            "linux-image-6.1.0-9-amd64-dbg",
            "linux-image-amd64",
            "linux-image-6.1.0-9-cloud-amd64",
            "linux-image-6.12.57+deb12-amd64",
            "linux-headers-6.1.0-11-amd64",
            "linux-headers-6.1.0-9-common-rt",
        ] {
            text.push_str(&format!(
                "Package: {name}\nVersion: 1\nArchitecture: amd64\nFilename: pool/{name}.deb\nSize: 1\nSHA256: {}\n\n",
                "0".repeat(64)
            ));
        }
        let archive = Archive::from_packages("amd64", parse_packages(&text, "http://x", "amd64", "test").unwrap());
        assert_eq!(
            kernels_offered(&archive),
            ["6.1.0-9-amd64", "6.1.0-9-cloud-amd64", "6.1.0-10-amd64", "6.12.57+deb12-amd64"]
        );
    }
}
