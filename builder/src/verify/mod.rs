//! `hermod verify`: prove that a module package rebuilds bit for bit.
//!
//! A reproducible build gives the same bytes whoever runs it, wherever and
//! whenever. `verify` checks that claim the only way it can be checked: it
//! builds the package twice, bypassing every cache, and changes between the
//! two builds everything of the caller that a careless build could leak into
//! its output ([`conditions`]: paths, time, umask, uid, host name,
//! environment, locale, TZ, CPUs and jobs, the order the source's files were
//! created in). Each build is a child `hermod` process, so the process
//! attributes are really those of the build. With `--against DEB` there is
//! one such build, compared with a package already published: that is how CI
//! checks what a fleet runs.
//!
//! Equal bytes are the whole verdict. When they differ, [`debdiff`] names each
//! member of the .deb that differs and how, and [`elfdiff`] the ELF sections of
//! a module that differ; diffoscope is run too when it is installed.

use std::path::PathBuf;

use serde::Serialize;

pub mod conditions;
pub mod debdiff;
pub mod elfdiff;
mod render;

pub use render::text;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{package}: {what} ({count} difference(s), listed above)")]
    Mismatch { package: String, what: String, count: usize },
    /// A build failed: its own exit status is verify's (a make error stays 5).
    #[error("the {which} build failed (exit {code}):\n{tail}")]
    BuildFailed { which: String, code: i32, tail: String },
    #[error("the {which} build printed no report: {reason}")]
    NoReport { which: String, reason: String },
    #[error("starting the {which} build: {source}")]
    Spawn { which: String, source: std::io::Error },
    #[error("setting up the {which} build's conditions: {source}")]
    Vary { which: String, source: hermod_sandbox::VaryError },
    #[error("--against {path}: {reason}")]
    BadAgainst { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl crate::exit::HasExitCode for VerifyError {
    fn exit_code(&self) -> crate::exit::Code {
        use crate::exit::Code;
        match self {
            VerifyError::Mismatch { .. } => Code::Differs,
            VerifyError::BuildFailed { code, .. } => Code::Relayed(*code),
            VerifyError::NoReport { .. } => Code::Internal,
            VerifyError::Spawn { .. } | VerifyError::Vary { .. } => Code::Sandbox,
            VerifyError::BadAgainst { .. } => Code::BadInput,
            VerifyError::Io { .. } => Code::Io,
        }
    }
}

/// One build (or the published package) that took part.
#[derive(Debug, Clone, Serialize)]
pub struct BuildRecord {
    /// `first`, `second`, `rebuild` or `published`.
    pub role: String,
    pub deb: PathBuf,
    pub sha256: String,
    /// Wall-clock start, seconds since the epoch, and the same in UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_utc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// The conditions it ran under, by variation name.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub conditions: std::collections::BTreeMap<String, String>,
}

/// One condition changed between the two sides, or why it could not be.
#[derive(Debug, Clone, Serialize)]
pub struct Variation {
    pub name: String,
    pub applied: bool,
    pub first: String,
    pub second: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What `hermod verify` prints (`--json`: as one JSON object).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    pub kernel: String,
    pub package: String,
    #[serde(rename = "match")]
    pub matches: bool,
    pub builds: Vec<BuildRecord>,
    pub variations: Vec<Variation>,
    pub differences: Vec<debdiff::Difference>,
    /// Where the differing .debs were kept for inspection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<PathBuf>,
    /// diffoscope's text output, when diffoscope is installed and ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diffoscope: Option<PathBuf>,
    /// Why diffoscope did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diffoscope_note: Option<String>,
    /// With `--boot`: the load test of the built package in its kernel under qemu.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot: Option<crate::load_test::BootReport>,
}

/// Every difference between two .debs (empty when the bytes are equal).
pub fn compare(first: &[u8], second: &[u8]) -> Vec<debdiff::Difference> {
    if first == second {
        return Vec::new();
    }
    let found = debdiff::diff(&debdiff::read(first), &debdiff::read(second));
    if found.is_empty() {
        // Unreachable for two parseable packages, but never say "no
        // difference" about unequal bytes.
        return vec![debdiff::Difference {
            member: "(the .deb file)".into(),
            aspects: vec![debdiff::Aspect {
                what: "content".into(),
                first: format!("{} bytes", first.len()),
                second: format!("{} bytes", second.len()),
            }],
            elf_sections: Vec::new(),
            elf_note: None,
        }];
    }
    found
}

/// Run diffoscope on two files when it is installed: its text report goes to
/// `out`. `Err` says why it did not run (or failed).
pub fn diffoscope(first: &std::path::Path, second: &std::path::Path, out: &std::path::Path) -> Result<PathBuf, String> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("diffoscope")).find(|c| c.is_file()))
        .unwrap_or_default();
    let Some(exe) = found else { return Err("diffoscope is not installed".into()) };
    let status = std::process::Command::new(exe)
        .arg("--text")
        .arg(out)
        .arg(first)
        .arg(second)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("diffoscope did not start: {e}"))?;
    // 1 means "differences found", the expected outcome here.
    match status.code() {
        Some(0 | 1) => Ok(out.to_owned()),
        _ => Err(format!("diffoscope failed ({status})")),
    }
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let (year, month, day) = crate::apt::release::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_704_067_200), "2024-01-01T00:00:00Z");
        assert_eq!(utc(951_825_599), "2000-02-29T11:59:59Z");
    }

    #[test]
    fn equal_bytes_compare_equal_and_unequal_never_empty() {
        assert!(compare(b"same", b"same").is_empty());
        let d = compare(b"one", b"two");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].member, "(the .deb file)");
    }
}
