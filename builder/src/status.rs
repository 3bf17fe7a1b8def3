//! `hermod status`: what a fleet has, like `dkms status`, for people (a
//! table) and for monitoring (`--json`, and the exit status).
//!
//! Two views of the config's `wanted` modules:
//!
//! - **master** (config `role = "master"`, or `--master`): per module ×
//!   kernel (config `releases` × `flavours` × `architectures`, or
//!   `--kernel`), the cache key a build would have (as `hermod plan`
//!   computes it: nothing is built) and where that key stands:
//!   `published` (the `[publish]` repository lists a package built from
//!   this key: its `X-Hermod-Key`), `cached` (the local store or the
//!   shared cache holds it), `failed` (the store's record of its last
//!   build: status, message, log; [`crate::failures`]), `skipped`
//!   (BUILD_EXCLUSIVE_* excluded it when it was built: the store's record),
//!   or `missing`. A key not yet built is `missing` even if dkms.conf would
//!   skip it: only a build (in its root) evaluates dkms.conf.
//! - **farm** (the default role, or `--farm`): the running kernel, the
//!   kernels dpkg has installed (`linux-image-<KREL>`), and per module ×
//!   kernel: `installed` (dpkg: its version), `pending` (in
//!   `/var/lib/hermod/pending`), `queued` (in `queue/<KREL>`), `available`
//!   (the configured repository offers it), `missing`, or `unknown` (not
//!   installed, and the repository could not be read to tell).
//!
//! The exit status is 0 when nothing wanted is missing and 10
//! ([`crate::exit::Code::NotAvailable`]) otherwise: on a farm machine, for
//! the running kernel and the newest installed one (or those `--kernel`
//! names), anything not `installed`; on a master, anything `missing` or
//! `failed`, and, when a `[publish]` repository is configured, `cached`
//! (built but not yet published). This module is the pure part (rows,
//! table, JSON, verdict, and the farm's gathering over [`System`]); the
//! glue is `cli/status.rs`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use crate::farm::{FarmError, StateDir, System, Wanted};

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{count} wanted module package(s) missing for {kernels} (see the table above, or --json)")]
    Missing { count: usize, kernels: String },
    #[error("no wanted module in {config}: `hermod status` reports on the config's `wanted` list{what}")]
    NothingWanted { config: String, what: &'static str },
    #[error("--kernel {kernel:?} is not a kernel release: {why}")]
    BadKernel { kernel: String, why: String },
    #[error(transparent)]
    Farm(#[from] FarmError),
}

impl crate::exit::HasExitCode for StatusError {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            StatusError::Missing { .. } => crate::exit::Code::NotAvailable,
            StatusError::NothingWanted { .. } => crate::exit::Code::BadInput,
            StatusError::BadKernel { .. } => crate::exit::Code::Usage,
            StatusError::Farm(e) => e.exit_code(),
        }
    }
}

/// Where a master's (module, kernel) key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MasterState {
    Published,
    Cached,
    Failed,
    Skipped,
    Missing,
}

/// One (module, kernel) of a master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MasterRow {
    /// The module's package base name (or its SOURCE when that cannot be told).
    pub module: String,
    /// The SOURCE, as the config gives it.
    pub source: String,
    pub kernel: String,
    pub architecture: String,
    /// The key a build would have (None: it could not be computed, see `message`).
    pub key: Option<String>,
    pub state: MasterState,
    /// The package, when known: the published or cached one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `local` or `shared`, for a cached key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_in: Option<crate::plan::Cached>,
    /// A failure's status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// A failure's message, a skip's reason, or why the key is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A failure's build log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
    /// The version the repository has of this package from another build
    /// (another key), when this key's is not published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository_version: Option<String>,
}

impl MasterRow {
    /// Whether this row is something wanted that is not there; `publishing`:
    /// a repository is configured, so a cached key is not yet served.
    pub fn lacking(&self, publishing: bool) -> bool {
        match self.state {
            MasterState::Missing | MasterState::Failed => true,
            MasterState::Cached => publishing,
            MasterState::Published | MasterState::Skipped => false,
        }
    }

    fn detail(&self) -> String {
        let package = match (&self.package, &self.version) {
            (Some(p), Some(v)) => format!("{p} {v}"),
            (Some(p), None) => p.clone(),
            _ => String::new(),
        };
        let mut parts: Vec<String> = Vec::new();
        match self.state {
            MasterState::Published | MasterState::Cached => {
                parts.push(package);
                if let Some(place) = self.cached_in.filter(|_| self.state == MasterState::Cached) {
                    parts
                        .push(format!("({})", serde_json::to_value(place).expect("serializes").as_str().unwrap_or("")));
                }
            }
            MasterState::Failed => {
                parts.push(format!("exit {}: {}", self.exit_code.unwrap_or(1), self.message.as_deref().unwrap_or("")));
                if let Some(log) = &self.log {
                    parts.push(format!("(log: {})", log.display()));
                }
            }
            MasterState::Skipped | MasterState::Missing => parts.extend(self.message.clone()),
        }
        if let Some(v) = &self.repository_version {
            parts.push(format!("[repository has {v} from another build]"));
        }
        parts.retain(|p| !p.is_empty());
        parts.join(" ")
    }
}

/// A master's status.
#[derive(Debug, Clone, Serialize)]
pub struct MasterReport {
    /// `[publish]`'s `DIR suite/component`, when configured.
    pub repository: Option<String>,
    pub kernels: Vec<String>,
    pub entries: Vec<MasterRow>,
}

impl MasterReport {
    pub fn lacking(&self) -> Vec<&MasterRow> {
        self.entries.iter().filter(|r| r.lacking(self.repository.is_some())).collect()
    }

    /// The text table.
    pub fn table(&self) -> String {
        let rows: Vec<[String; 5]> = self
            .entries
            .iter()
            .map(|r| {
                let state = serde_json::to_value(r.state).expect("serializes").as_str().unwrap_or("").to_owned();
                [r.module.clone(), r.kernel.clone(), r.architecture.clone(), state, r.detail()]
            })
            .collect();
        table(["MODULE", "KERNEL", "ARCH", "STATE", "DETAIL"], &rows)
    }

    pub fn json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("serializes");
        value["role"] = "master".into();
        value["ok"] = self.lacking().is_empty().into();
        value["lacking"] = self.lacking().len().into();
        value
    }

    /// Ok, or the error whose status says something is missing.
    pub fn verdict(&self) -> Result<(), StatusError> {
        verdict(self.lacking().iter().map(|r| r.kernel.as_str()))
    }
}

/// Where a farm machine's (module, kernel) package stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FarmState {
    Installed,
    Pending,
    Queued,
    Available,
    Missing,
    /// Not installed, pending or queued, and the repository could not be read.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FarmRow {
    pub module: String,
    pub package: String,
    pub kernel: String,
    pub state: FarmState,
    /// The installed, or available, version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The pending .deb.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deb: Option<PathBuf>,
    /// Whether the exit status looks at this kernel.
    pub checked: bool,
}

/// The repository as the farm view sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "detail")]
pub enum RepositoryState {
    /// No `[repository]` in the config.
    None,
    /// Read: `URI SUITE/COMPONENT`.
    Read(String),
    /// Could not be read: why.
    Unreadable(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct FarmReport {
    pub running_kernel: String,
    /// dpkg's installed `linux-image-<KREL>`, oldest first.
    pub installed_kernels: Vec<String>,
    /// The kernels the exit status looks at.
    pub checked_kernels: Vec<String>,
    pub repository: RepositoryState,
    pub entries: Vec<FarmRow>,
}

impl FarmReport {
    pub fn lacking(&self) -> Vec<&FarmRow> {
        self.entries.iter().filter(|r| r.checked && r.state != FarmState::Installed).collect()
    }

    pub fn table(&self) -> String {
        let mut text = format!("running kernel: {}\n", self.running_kernel);
        let installed =
            if self.installed_kernels.is_empty() { "none".into() } else { self.installed_kernels.join(" ") };
        text.push_str(&format!("installed kernels: {installed}\n"));
        text.push_str(&format!(
            "repository: {}\n",
            match &self.repository {
                RepositoryState::None => "none configured".to_owned(),
                RepositoryState::Read(label) => label.clone(),
                RepositoryState::Unreadable(why) => format!("unreadable: {why}"),
            }
        ));
        let rows: Vec<[String; 5]> = self
            .entries
            .iter()
            .map(|r| {
                let state = serde_json::to_value(r.state).expect("serializes").as_str().unwrap_or("").to_owned();
                let mut detail = r.version.clone().unwrap_or_default();
                if let Some(deb) = &r.deb {
                    detail = deb.display().to_string();
                }
                let kernel = if r.checked { r.kernel.clone() } else { format!("({})", r.kernel) };
                [r.module.clone(), kernel, state, r.package.clone(), detail]
            })
            .collect();
        text.push('\n');
        text.push_str(&table(["MODULE", "KERNEL", "STATE", "PACKAGE", "VERSION/DEB"], &rows));
        text
    }

    pub fn json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("serializes");
        value["role"] = "farm".into();
        value["ok"] = self.lacking().is_empty().into();
        value["lacking"] = self.lacking().len().into();
        value
    }

    pub fn verdict(&self) -> Result<(), StatusError> {
        verdict(self.lacking().iter().map(|r| r.kernel.as_str()))
    }
}

fn verdict<'a>(lacking_kernels: impl Iterator<Item = &'a str>) -> Result<(), StatusError> {
    let kernels: Vec<&str> = lacking_kernels.collect();
    if kernels.is_empty() {
        return Ok(());
    }
    let distinct: BTreeSet<&str> = kernels.iter().copied().collect();
    Err(StatusError::Missing { count: kernels.len(), kernels: distinct.into_iter().collect::<Vec<_>>().join(", ") })
}

/// Columns padded to their widest cell; the last one is not padded.
fn table<const N: usize>(head: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut text = line(head.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

/// Kernel releases, oldest first (by their numbers, as dpkg orders versions).
pub fn sort_kernels(kernels: &mut [String]) {
    let version = |k: &str| crate::apt::Version::parse(&k.replace('-', ".")).ok();
    kernels.sort_by(|a, b| version(a).cmp(&version(b)).then_with(|| a.cmp(b)));
}

/// What the farm view needs besides dpkg and the state directory.
pub struct FarmInputs<'a> {
    pub wanted: &'a [Wanted],
    pub state: &'a StateDir,
    /// The kernels to report on and check (`--kernel`); empty: the running
    /// and the installed ones, checking the running and the newest installed.
    pub kernels: &'a [String],
    pub repository: RepositoryState,
    /// The version the repository offers of a package (only asked when the
    /// repository was read).
    pub offered: &'a dyn Fn(&str) -> Option<String>,
}

/// The farm view: dpkg's, `pending/`'s and `queue/`'s word for each wanted
/// module and kernel.
pub fn farm(system: &dyn System, inputs: &FarmInputs) -> Result<FarmReport, StatusError> {
    for kernel in inputs.kernels {
        crate::apt::syntax::kernel_release(kernel)
            .map_err(|e| StatusError::BadKernel { kernel: kernel.clone(), why: e.to_string() })?;
    }
    let running = system.running_kernel()?;
    let mut installed = system.installed_kernels()?;
    sort_kernels(&mut installed);
    let (kernels, checked): (Vec<String>, Vec<String>) = if inputs.kernels.is_empty() {
        let mut all = installed.clone();
        if !all.contains(&running) {
            all.push(running.clone());
        }
        sort_kernels(&mut all);
        let mut checked = vec![running.clone()];
        checked.extend(installed.last().filter(|&k| k != &running).cloned());
        (all, checked)
    } else {
        (inputs.kernels.to_vec(), inputs.kernels.to_vec())
    };
    let pending = crate::farm::pending::list(inputs.state)?;
    let mut entries = Vec::new();
    for kernel in &kernels {
        let queued = queued_labels(inputs.state, kernel);
        for w in inputs.wanted {
            let package = w.package(kernel);
            let prefix = format!("{package}_");
            let pending_deb =
                pending.iter().find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)));
            let (state, version, deb) = if let Some(version) = system.installed_version(&package) {
                (FarmState::Installed, Some(version), None)
            } else if let Some(deb) = pending_deb {
                (FarmState::Pending, None, Some(deb.clone()))
            } else if queued.contains(&w.label) {
                (FarmState::Queued, None, None)
            } else {
                match &inputs.repository {
                    RepositoryState::Read(_) => match (inputs.offered)(&package) {
                        Some(version) => (FarmState::Available, Some(version), None),
                        None => (FarmState::Missing, None, None),
                    },
                    RepositoryState::None => (FarmState::Missing, None, None),
                    RepositoryState::Unreadable(_) => (FarmState::Unknown, None, None),
                }
            };
            entries.push(FarmRow {
                module: w.base.clone(),
                package,
                kernel: kernel.clone(),
                state,
                version,
                deb,
                checked: checked.contains(kernel),
            });
        }
    }
    Ok(FarmReport {
        running_kernel: running,
        installed_kernels: installed,
        checked_kernels: checked,
        repository: inputs.repository.clone(),
        entries,
    })
}

/// The labels `queue/<kernel>` lists (one per line; `prepare` writes it).
fn queued_labels(state: &StateDir, kernel: &str) -> Vec<String> {
    if crate::apt::syntax::kernel_release(kernel).is_err() {
        return Vec::new();
    }
    let path = state.queue().join(kernel);
    match crate::bounded::read_user_text(&path, 1 << 20) {
        Ok(text) => text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
