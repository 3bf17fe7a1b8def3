//! `hermod rootfs ...`: the build roots' commands (the work is in `crate::rootfs`).

use std::path::Path;
use std::time::Duration;

use super::{archives, open_store, AppError, Global, RootfsCommand};
use crate::pipeline::Archives;
use crate::rootfs::{self, Lock, LockFileError, RootfsError};
use crate::say;

/// `hermod rootfs ...`: the work is in `rootfs`; this is glue.
pub(super) fn rootfs_command(global: &Global, command: &RootfsCommand) -> Result<(), AppError> {
    let locked = |kernel: &Option<String>, lock: Option<&Path>| -> Result<(Archives, Lock), AppError> {
        let archives = archives(global, lock)?;
        let kernel = match kernel {
            Some(k) => k.clone(),
            None => archives.default_kernel()?,
        };
        let lock = archives.lock(&kernel)?;
        Ok((archives, lock))
    };
    match command {
        RootfsCommand::Lock { kernel, out, needs } => {
            write_lock(global, kernel.as_deref(), out.as_deref(), &needs.build_depends)
        }
        RootfsCommand::Build { kernel, lock } => {
            let (archives, lock) = locked(kernel, lock.as_deref())?;
            let root = rootfs::materialize(archives.store(), &lock, global.quiet)?;
            if root.created {
                say::note(format_args!("build root {} made in {:.2} s", &root.hash[..16], root.seconds));
            }
            println!("{} {} {}", root.hash, lock.kernel, root.tree.display());
            Ok(())
        }
        RootfsCommand::Show { kernel, lock } => {
            let (archives, lock) = locked(kernel, lock.as_deref())?;
            print!("{}", rootfs::report::show(archives.store(), &lock));
            Ok(())
        }
        RootfsCommand::List { json } => {
            let inventory = rootfs::inventory(&open_store(global)?)?;
            print!("{}", rootfs::report::list(&inventory, *json));
            Ok(())
        }
        RootfsCommand::Gc { older_than, kernel, dry_run } => {
            let days = older_than.unwrap_or(if kernel.is_some() { 0.0 } else { 30.0 });
            if *dry_run {
                let older = Duration::from_secs_f64(days * 86400.0);
                let report = rootfs::gc_dry(&open_store(global)?, older, kernel.as_deref())?;
                print!("{}", rootfs::report::gc_dry(&report));
                return Ok(());
            }
            let report = rootfs::gc(&open_store(global)?, Duration::from_secs_f64(days * 86400.0), kernel.as_deref())?;
            for (path, why) in &report.failed {
                say::warning(format_args!("rootfs gc could not remove {}, skipped: {why}", path.display()));
            }
            print!("{}", rootfs::report::gc(&report));
            if report.roots_failed.is_empty() {
                Ok(())
            } else {
                let roots =
                    report.roots_failed.iter().map(|(kernel, hash)| format!("{kernel} {}", &hash[..16])).collect();
                Err(RootfsError::GcIncomplete { roots }.into())
            }
        }
        RootfsCommand::Export { kernel, lock, out } => {
            let (archives, lock) = locked(kernel, lock.as_deref())?;
            let root = rootfs::materialize(archives.store(), &lock, global.quiet)?;
            let exported = rootfs::oci_image::export(&root.tree, &lock, out).map_err(RootfsError::from)?;
            println!("{}", exported.manifest_digest);
            say::note(format_args!(
                "wrote {} ({}, layer {:.1} MiB); e.g. `skopeo copy oci:{}:{} docker://REGISTRY/NAME:TAG`",
                out.display(),
                exported.ref_name,
                exported.layer_size as f64 / 1048576.0,
                out.display(),
                exported.ref_name
            ));
            Ok(())
        }
        RootfsCommand::Import { dir } => {
            let imported = rootfs::oci_image::import(&open_store(global)?, dir)?;
            let what = if imported.created { "imported" } else { "already in the store:" };
            say::note(format_args!("{what} {} ({})", imported.manifest_digest, imported.kernel));
            println!("{} {} {}", imported.hash, imported.kernel, imported.tree.display());
            Ok(())
        }
        RootfsCommand::Verify => {
            let mirrors = super::loaded_config(global)?.package_sources()?.mirrors();
            let report = rootfs::verify(&open_store(global)?, &mirrors, global.quiet)?;
            print!("{}", rootfs::report::verify(&report));
            if report.foreign.is_empty() {
                Ok(())
            } else {
                Err(RootfsError::Foreign { count: report.foreign.len() }.into())
            }
        }
    }
}

/// `hermod rootfs lock`: resolve, then print or write the lock file.
fn write_lock(global: &Global, kernel: Option<&str>, out: Option<&Path>, needs: &[String]) -> Result<(), AppError> {
    let archives = archives(global, None)?;
    let kernel = match kernel {
        Some(k) => k.to_owned(),
        None => archives.default_kernel()?,
    };
    let extras = crate::input::build_depends(&archives, &kernel, needs)?;
    let lock = archives.lock_with(&kernel, &extras)?;
    let text = lock.file_text();
    match out {
        Some(path) => {
            crate::store::write_atomically(path, text.as_bytes())
                .map_err(|source| RootfsError::from(LockFileError::Write { path: path.to_owned(), source }))?;
            println!("{} {} {}", lock.hash(), kernel, path.display());
        }
        None => print!("{text}"),
    }
    say::note(format_args!(
        "lock for {kernel}: {} packages, {:.1} MiB, lock hash {}",
        lock.packages.len(),
        lock.download_size() as f64 / 1048576.0,
        lock.hash()
    ));
    Ok(())
}
