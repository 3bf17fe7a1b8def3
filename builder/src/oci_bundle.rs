//! `hermod oci`: the build step of one (source, kernel) pair as an OCI
//! runtime bundle, for a second runtime such as runc.
//!
//! Everything up to the build step happens as in `hermod build`: the source
//! is scanned, the build root resolved and materialized, and dkms.conf
//! evaluated in hermod's own sandbox ([`build::prepare`]). The build step's
//! sandbox spec is then written as `DIR/config.json` (see
//! `hermod_sandbox::oci`), with the work directory at `DIR/work`. After
//! `runc run --bundle DIR <id>`, the built modules are in
//! `DIR/work/out/module-N.ko` (N in dkms.conf's order, stripped if it says
//! so), just as `hermod build` collects them before packaging.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use hermod_sandbox::oci::{self, OciError};
use hermod_sandbox::SandboxError;

use crate::build::{self, BuildError};
use crate::input::Prepared;
use crate::pipeline::{Context, PipelineError};
use crate::rootfs;
use crate::source::SourceTree;

/// Lays out the bundle `dir` for building `input` against `kernel`
/// (default: the archive's newest) and returns its config as pretty JSON.
pub fn write(ctx: &Context, input: &Prepared, kernel: Option<&str>, dir: &Path) -> Result<String, PipelineError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| PipelineError::Io { path, source }
    };
    empty_dir(dir).map_err(io(dir))?;
    let kernel = match kernel {
        Some(k) => k.to_owned(),
        None => ctx.archives.default_kernel()?,
    };
    let source = SourceTree::scan(&input.dir)?;
    let lock = ctx.archives.lock_with(&kernel, &input.build_depends)?;
    let mut rootfs = None;
    let overrides = ctx.dkms_overrides(Path::new(&input.label), &source, &lock, &ctx.settings(&lock), &mut rootfs)?;
    let rootfs = match rootfs {
        Some(rootfs) => rootfs,
        None => rootfs::materialize(ctx.archives.store(), &lock, ctx.archives.quiet())?,
    };

    let workdir = dir.join("work");
    fs::create_dir(&workdir).map_err(io(&workdir))?;
    let log = dir.join("eval.log");
    fs::write(&log, b"").map_err(io(&log))?;
    let failed = |error| PipelineError::Build { source_dir: input.label.clone().into(), error };
    let prepared =
        build::prepare(&rootfs, &source, &ctx.settings(&lock), &workdir, &log, &overrides).map_err(failed)?;
    if let Some(reason) = &prepared.conf.skip {
        return Err(PipelineError::Skipped(format!("{} for {kernel} is skipped: {reason}", input.label)));
    }
    let config = oci::write_bundle(&prepared.spec, dir).map_err(|e| match e {
        OciError::Io { path, source } => PipelineError::Io { path, source },
        other => failed(BuildError::Sandbox(SandboxError::InvalidSpec(other.to_string()))),
    })?;
    Ok(serde_json::to_string_pretty(&config).expect("an OCI config serializes"))
}

/// Creates `dir` (mode 0755: the sandbox user must reach `work/` below it)
/// or checks that it is an empty directory.
fn empty_dir(dir: &Path) -> io::Result<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(io::Error::new(io::ErrorKind::AlreadyExists, "the bundle directory must be empty")),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_dir_must_be_empty_or_absent() {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("a/b");
        empty_dir(&new).unwrap();
        assert_eq!(fs::metadata(&new).unwrap().permissions().mode() & 0o777, 0o755);
        empty_dir(&new).unwrap();
        fs::write(new.join("x"), b"").unwrap();
        assert_eq!(empty_dir(&new).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert!(empty_dir(&new.join("x")).is_err());
    }
}
