//! The documented exit status of each error (the table is `EXIT_CODES`).
//! 130 and 143, an interrupted run, come from no error: `interrupt.rs`.

use super::*;
use crate::farm::FarmError;

/// The documented exit status for an error (see [`EXIT_CODES`]).
pub fn exit_code(err: &PipelineError) -> i32 {
    match err {
        PipelineError::Input(e) => e.exit_code(),
        PipelineError::Source(_) => 3,
        PipelineError::Rootfs(
            RootfsError::NoHeaders { .. } | RootfsError::BadKernelName(_) | RootfsError::AmbiguousKernel { .. },
        ) => 4,
        PipelineError::Rootfs(RootfsError::LockRecipe { .. }) => 3,
        PipelineError::Rootfs(RootfsError::Link { .. }) => 3,
        PipelineError::Rootfs(
            RootfsError::Apt(_) | RootfsError::Resolve(_) | RootfsError::Fetch(_) | RootfsError::Unpack(_),
        )
        | PipelineError::Apt(_) => 7,
        PipelineError::Rootfs(RootfsError::RecipeParse { .. } | RootfsError::RecipeRead { .. }) => 3,
        PipelineError::Rootfs(RootfsError::LockFile(LockFileError::Write { .. })) => 9,
        PipelineError::Rootfs(RootfsError::LockFile(_)) | PipelineError::Config(_) => 3,
        PipelineError::LockedKernel { .. } => 2,
        PipelineError::Skipped(_) => 77,
        PipelineError::Overrides(_) => 3,
        PipelineError::Rootfs(RootfsError::NoDefaultKernel(_)) => 7,
        PipelineError::Rootfs(RootfsError::OciImage(e)) => match **e {
            OciImageError::Size { .. } | OciImageError::Digest { .. } | OciImageError::DiffId { .. } => 7,
            OciImageError::Layout { .. } | OciImageError::LockHash { .. } | OciImageError::Layer(_) => 3,
            OciImageError::Io { .. } | OciImageError::NotEmpty { .. } | OciImageError::Export { .. } => 9,
        },
        PipelineError::Rootfs(
            RootfsError::Io { .. }
            | RootfsError::Gc { .. }
            | RootfsError::GcIncomplete { .. }
            | RootfsError::Store(_)
            | RootfsError::Cas(_)
            | RootfsError::Assemble { .. }
            | RootfsError::Unrepairable { .. }
            | RootfsError::Foreign { .. },
        ) => 9,
        PipelineError::Build { error, .. } => match error {
            BuildError::Source(_)
            | BuildError::Dkms(_)
            | BuildError::BuildDepends { .. }
            | BuildError::SourceDirTaken { .. }
            | BuildError::DkmsSyntax { .. }
            | BuildError::DkmsEval { .. } => 3,
            BuildError::Signing(_) => 3,
            BuildError::MakeFailed { .. }
            | BuildError::TimedOut { .. }
            | BuildError::SignFailed { .. }
            | BuildError::ModuleTooLarge { .. } => 5,
            BuildError::ModuleMissing { .. } => 6,
            BuildError::Sandbox(_) => 8,
            BuildError::Io { .. } | BuildError::NotReachable { .. } => 9,
        },
        PipelineError::Signing(_) | PipelineError::KeyInfo(_) => 3,
        // Only the settings are errors: the server itself is never a reason to fail.
        PipelineError::Remote(_) => 3,
        PipelineError::Trust(TrustError::Write { .. } | TrustError::Read { .. }) => 9,
        PipelineError::Trust(_) => 3,
        PipelineError::Deb(_) => 1,
        PipelineError::BuildNotAllowed { .. } => 10,
        PipelineError::Farm(e) => match e {
            FarmError::NotAvailable { .. } | FarmError::Queued { .. } => 10,
            FarmError::Tool { .. } | FarmError::InstallFailed(..) => 11,
            FarmError::NoRepository { .. } | FarmError::UnknownPackageName { .. } | FarmError::BadDeb { .. } => 3,
            FarmError::Apt(_) | FarmError::Fetch(_) | FarmError::Unavailable { .. } => 7,
            FarmError::Io { .. } => 9,
        },
        PipelineError::Repo(e) => {
            use crate::repo::{RepoError, SignError};
            match e {
                RepoError::Immutable { .. } | RepoError::WouldUnsign { .. } => 12,
                RepoError::Unsafe(_) => 3,
                RepoError::Damaged(_) | RepoError::Index(_) | RepoError::Io { .. } => 9,
                RepoError::Key(SignError::Write { .. }) => 9,
                _ => 3,
            }
        }
        PipelineError::BootCheck(e) => e.exit_code(),
        PipelineError::Plan(
            crate::plan::PlanError::TooManyForGithub { .. }
            | crate::plan::PlanError::SourcesFile { .. }
            | crate::plan::PlanError::NoSources { .. },
        ) => 3,
        PipelineError::Plan(crate::plan::PlanError::NoKernels { .. }) => 4,
        PipelineError::Verify(e) => e.exit_code(),
        PipelineError::Limit(_) => 2,
        PipelineError::Cache(crate::cache::CacheError::BadSize { .. }) => 2,
        PipelineError::Cache(_) | PipelineError::Store(_) | PipelineError::Io { .. } => 9,
    }
}
