//! The error of a whole command, and its exit status. Each module's error
//! says its own status ([`HasExitCode`], beside its definition; the table is
//! [`crate::exit::Code`]); this is only where the commands' errors meet.
//! 130 and 143, an interrupted run, come from no error: `interrupt.rs`.

use crate::exit::{Code, HasExitCode};
use crate::pipeline::PipelineError;

/// What a command can fail with: the pipeline's errors, and those of the
/// commands above it, which the pipeline does not know.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Farm(#[from] crate::farm::FarmError),
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    #[error(transparent)]
    BootCheck(#[from] crate::load_test::BootCheckError),
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
    #[error(transparent)]
    Status(#[from] crate::status::StatusError),
    // What the commands read before any pipeline runs: the config, the
    // flags' values, keys.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitError),
    #[error(transparent)]
    Signing(#[from] crate::module_signing::SigningError),
    #[error(transparent)]
    KeyInfo(#[from] crate::keyinfo::KeyInfoError),
    #[error(transparent)]
    Remote(#[from] crate::shared_cache::RemoteError),
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
}

/// The errors of the layers below the pipeline reach a command through it,
/// as they always did (same message, same status).
macro_rules! through_pipeline {
    ($($error:ty),* $(,)?) => {
        $(impl From<$error> for AppError {
            fn from(e: $error) -> AppError {
                AppError::Pipeline(e.into())
            }
        })*
    };
}

through_pipeline!(
    crate::input::InputError,
    crate::source::SourceError,
    crate::rootfs::RootfsError,
    crate::debpkg::DebError,
    crate::cache::CacheError,
    crate::apt::AptError,
    crate::store::StoreError,
    crate::dkms::OverridesError,
);

impl HasExitCode for AppError {
    fn exit_code(&self) -> Code {
        match self {
            AppError::Pipeline(e) => e.exit_code(),
            AppError::Farm(e) => e.exit_code(),
            AppError::Repo(e) => e.exit_code(),
            AppError::BootCheck(e) => e.exit_code(),
            AppError::Plan(e) => e.exit_code(),
            AppError::Verify(e) => e.exit_code(),
            AppError::Sync(e) => e.exit_code(),
            AppError::Status(e) => e.exit_code(),
            AppError::Config(e) => e.exit_code(),
            AppError::Limit(e) => e.exit_code(),
            AppError::Signing(e) => e.exit_code(),
            AppError::KeyInfo(e) => e.exit_code(),
            AppError::Remote(e) => e.exit_code(),
            AppError::Trust(e) => e.exit_code(),
        }
    }
}

/// The documented exit status for an error (see [`Code::table`]).
pub fn exit_code(err: &AppError) -> i32 {
    err.exit_code().number()
}
