//! The pipeline's error and its exit status.

use std::io;
use std::path::PathBuf;

use crate::apt;
use crate::build::BuildError;
use crate::cache::CacheError;
use crate::debpkg::DebError;
use crate::exit::{Code, HasExitCode};
use crate::input::InputError;
use crate::rootfs::RootfsError;
use crate::source::SourceError;

/// What can stop the pipeline: its own steps' failures and those of the
/// modules below it, never those of a command above it (`cli::AppError`
/// gathers those).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error("{source_dir}: {error}")]
    Build { source_dir: PathBuf, error: BuildError },
    #[error("packaging: {0}")]
    Deb(#[from] DebError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("reading the archive: {0}")]
    Apt(#[from] apt::AptError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Overrides(#[from] crate::dkms::OverridesError),
    /// Nothing built, and nothing failed: BUILD_EXCLUSIVE excluded every build (exit 77, as DKMS).
    #[error("nothing to build: {0}")]
    Skipped(String),
    #[error("the lock is for kernel {locked}, not {wanted}")]
    LockedKernel { locked: String, wanted: String },
    /// A farm machine (config `role = "farm"`) found no prebuilt package.
    #[error("{source_label} for {kernel}: not in the shared cache, and this machine may not build ({why})")]
    BuildNotAllowed { source_label: String, kernel: String, why: String },
}

impl PipelineError {
    /// The build log a failure names ("full log: …"), for reports that carry
    /// it apart from the message (`--json`, `sync`'s events).
    pub fn log(&self) -> Option<&std::path::Path> {
        use BuildError as B;
        match self {
            PipelineError::Build {
                error:
                    B::DkmsSyntax { log, .. }
                    | B::DkmsEval { log, .. }
                    | B::MakeFailed { log, .. }
                    | B::TimedOut { log, .. }
                    | B::ModuleMissing { log, .. }
                    | B::ModuleTooLarge { log, .. }
                    | B::SignFailed { log, .. },
                ..
            } => Some(log),
            _ => None,
        }
    }
}

impl HasExitCode for PipelineError {
    fn exit_code(&self) -> Code {
        match self {
            PipelineError::Input(e) => e.exit_code(),
            PipelineError::Source(e) => e.exit_code(),
            PipelineError::Rootfs(e) => e.exit_code(),
            PipelineError::Build { error, .. } => error.exit_code(),
            PipelineError::Deb(e) => e.exit_code(),
            PipelineError::Cache(e) => e.exit_code(),
            PipelineError::Apt(e) => e.exit_code(),
            PipelineError::Store(e) => e.exit_code(),
            PipelineError::Io { .. } => Code::Io,
            PipelineError::Overrides(e) => e.exit_code(),
            PipelineError::Skipped(_) => Code::NothingBuilt,
            PipelineError::LockedKernel { .. } => Code::Usage,
            PipelineError::BuildNotAllowed { .. } => Code::NotAvailable,
        }
    }
}
