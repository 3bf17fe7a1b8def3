//! The guest's parts, from the configured archive: the kernel image package
//! `linux-image-<KREL>` (else `linux-image-<KREL>-unsigned`; either holds
//! `/boot/vmlinuz-<KREL>` and `[/usr]/lib/modules/<KREL>`) and `busybox-static`,
//! and the [`Machine`] that boots them.
//!
//! All come from the platform whose archive offers the kernel: its recipe's
//! architecture is the machine's, and its Packages indices (of that
//! architecture) hold the image and busybox; both are checked to be of that
//! machine (the image's boot header, busybox's ELF machine).
//! They are found in the verified Packages indices and downloaded into the
//! package cache with their SHA256 checked (`apt::download_from`), as build
//! roots are. The kernel and its module tree are unpacked once per image
//! .deb into the store (`boot-images/<package>_<sha256 prefix>/`: `vmlinuz`
//! and `modules/`, plain `.ko` files stored as `.ko.zst`), named by the
//! .deb's hash so a re-published image is a new directory, and written under
//! a temporary name first so a half-unpacked image is never used.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::machine::{self, Machine};
use super::modinfo;
use super::BootCheckError;
use crate::apt::debfile::{read_data, EntryKind};
use crate::apt::Package;
use crate::pipeline::{Archives, PipelineError};
use crate::rootfs::RootfsError;

/// A kernel image unpacked in the store.
#[derive(Debug, Clone)]
pub struct KernelImage {
    pub release: String,
    /// The machine it boots on.
    pub machine: Machine,
    /// The image package and its version.
    pub package: String,
    pub version: String,
    /// Holds `vmlinuz` and `modules/` (the image's `/lib/modules/<KREL>`).
    pub dir: PathBuf,
}

impl KernelImage {
    pub fn vmlinuz(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }

    /// Every loadable module of the image: normalized name → file.
    pub fn modules(&self) -> Result<HashMap<String, PathBuf>, BootCheckError> {
        let mut found = HashMap::new();
        for entry in walkdir::WalkDir::new(self.dir.join("modules")).sort_by_file_name() {
            let entry = entry.map_err(|e| BootCheckError::io(&self.dir, e.into()))?;
            if !entry.file_type().is_file() {
                continue;
            }
            if let Some(name) = entry.file_name().to_str().and_then(modinfo::module_name_of_file) {
                found.entry(name).or_insert_with(|| entry.path().to_owned());
            }
        }
        Ok(found)
    }

    /// Modules built into the kernel (`modules.builtin`): nothing to load.
    pub fn builtin(&self) -> HashSet<String> {
        let text = fs::read_to_string(self.dir.join("modules/modules.builtin")).unwrap_or_default();
        text.lines().filter_map(|l| l.rsplit('/').next().and_then(modinfo::module_name_of_file)).collect()
    }
}

/// The newest package of the first of `names` the archive offers.
fn newest<'a>(ctx: &'a Archives, kernel: &str, names: &[String]) -> Result<Option<&'a Package>, BootCheckError> {
    let archive = ctx.archive(kernel).map_err(|e| BootCheckError::Archive(Box::new(e)))?;
    Ok(names.iter().find_map(|n| archive.newest(n)))
}

fn download(ctx: &Archives, kernel: &str, package: &Package) -> Result<PathBuf, BootCheckError> {
    let mirrors = ctx.platform(kernel).map_err(|e| BootCheckError::Archive(Box::new(e)))?.platform.sources.mirrors();
    let store = ctx.store();
    let debs = crate::apt::download_from(
        std::slice::from_ref(package),
        &mirrors,
        store.packages(),
        ctx.quiet(),
        &package.name,
    )
    .map_err(|e| BootCheckError::Fetch(Box::new(e)))?;
    Ok(debs.into_iter().next().expect("one package asked, one path"))
}

/// The machine that boots `release`: that of the architecture of the
/// platform (the recipe) whose archive offers the kernel's headers. A kernel
/// no release offers has no image either: the error lists those of its
/// flavour the releases do have.
pub fn machine(ctx: &Archives, release: &str) -> Result<Machine, BootCheckError> {
    if !crate::rootfs::is_release(release) {
        return Err(BootCheckError::BadKernel(release.to_owned()));
    }
    match ctx.platform(release) {
        Ok(platform) => Machine::for_architecture(&platform.recipe().architecture),
        Err(PipelineError::Rootfs(RootfsError::NoHeaders { .. })) => Err(no_image(ctx, release)?),
        Err(e) => Err(BootCheckError::Archive(Box::new(e))),
    }
}

/// [`BootCheckError::NoImage`] for `release`, with the images of the same
/// flavour the releases do offer, oldest first within each, the machine's own
/// release first.
fn no_image(ctx: &Archives, release: &str) -> Result<BootCheckError, BootCheckError> {
    let flavour = crate::rootfs::kernel_flavour(release);
    let mut offered = Vec::new();
    for platform in ctx.platforms().iter().filter(|p| p.platform.has_sources()) {
        let archive = platform
            .archive(&ctx.store().indices())
            .map_err(|e| BootCheckError::Archive(Box::new(PipelineError::from(e))))?;
        offered.extend(crate::plan::kernels_offered(archive));
    }
    offered.retain(|k| crate::rootfs::kernel_flavour(k) == flavour);
    Ok(BootCheckError::NoImage { kernel: release.to_owned(), offered })
}

/// `linux-image-<release>` (or `-unsigned`) from the archive of its platform,
/// whose [`machine`] is `machine`, unpacked in the store.
pub fn kernel_image(ctx: &Archives, release: &str, machine: Machine) -> Result<KernelImage, BootCheckError> {
    if !crate::rootfs::is_release(release) {
        return Err(BootCheckError::BadKernel(release.to_owned()));
    }
    let names = [format!("linux-image-{release}"), format!("linux-image-{release}-unsigned")];
    let Some(package) = newest(ctx, release, &names)?.cloned() else {
        return Err(no_image(ctx, release)?);
    };
    let store = ctx.store();
    let dir = store.boot_images_dir().join(format!("{}_{}", package.name, &package.sha256[..16]));
    let image = KernelImage {
        release: release.to_owned(),
        machine,
        package: package.name.clone(),
        version: package.version.clone(),
        dir,
    };
    if image.vmlinuz().is_file() {
        return Ok(image);
    }
    let deb = download(ctx, release, &package)?;
    let parent = image.dir.parent().expect("has a parent");
    fs::create_dir_all(parent).map_err(|e| BootCheckError::io(parent, e))?;
    let staging =
        tempfile::Builder::new().prefix(".unpacking-").tempdir_in(parent).map_err(|e| BootCheckError::io(parent, e))?;
    unpack_kernel(&deb, release, staging.path())?;
    let vmlinuz = staging.path().join("vmlinuz");
    let Ok(file) = fs::File::open(&vmlinuz) else {
        return Err(BootCheckError::BadImage { deb, reason: format!("no boot/vmlinuz-{release}") });
    };
    let mut head = Vec::new();
    file.take(4096).read_to_end(&mut head).map_err(|e| BootCheckError::io(&vmlinuz, e))?;
    // A package of another architecture than its archive's would not boot.
    machine.check_image(&head).map_err(|reason| BootCheckError::BadImage { deb: deb.clone(), reason })?;
    match fs::rename(staging.path(), &image.dir) {
        Ok(()) => {}
        // Another run unpacked the same image first: use that one.
        Err(_) if image.vmlinuz().is_file() => {}
        Err(e) => return Err(BootCheckError::io(&image.dir, e)),
    }
    Ok(image)
}

/// Unpack `boot/vmlinuz-<release>` as `vmlinuz` and `[usr/]lib/modules/<release>/`
/// as `modules/`; nothing else of the package is needed.
fn unpack_kernel(deb: &Path, release: &str, dest: &Path) -> Result<(), BootCheckError> {
    let vmlinuz = PathBuf::from(format!("boot/vmlinuz-{release}"));
    let module_roots = [format!("lib/modules/{release}"), format!("usr/lib/modules/{release}")];
    read_data(deb, |entry| {
        let EntryKind::File(content) = entry.kind else { return Ok(()) };
        let target = if entry.rel == vmlinuz {
            dest.join("vmlinuz")
        } else if let Some(rest) = module_roots.iter().find_map(|r| entry.rel.strip_prefix(r).ok()) {
            dest.join("modules").join(rest)
        } else {
            return Ok(());
        };
        let mut bytes = Vec::new();
        content.read_to_end(&mut bytes).map_err(|e| BootCheckError::io(&entry.rel, e))?;
        // A plain module is kept zstd-compressed (a 6.1 image's 400 MB of
        // modules take 90 MB); `modinfo::module_bytes` undoes it on use.
        let is_plain_module = target.extension().is_some_and(|e| e == "ko");
        let (target, bytes) = if is_plain_module {
            let packed = zstd::bulk::compress(&bytes, 3).map_err(|e| BootCheckError::io(&entry.rel, e))?;
            (target.with_extension("ko.zst"), packed)
        } else {
            (target, bytes)
        };
        let parent = target.parent().expect("under dest");
        fs::create_dir_all(parent).map_err(|e| BootCheckError::io(parent, e))?;
        fs::write(&target, bytes).map_err(|e| BootCheckError::io(&target, e))
    })
}

/// `/bin/busybox` of `busybox-static` from `kernel`'s release, a program of
/// `machine`: the guest's only program.
pub fn busybox(ctx: &Archives, kernel: &str, machine: Machine) -> Result<Vec<u8>, BootCheckError> {
    let package = newest(ctx, kernel, &["busybox-static".to_owned()])?
        .cloned()
        .ok_or_else(|| BootCheckError::NoBusybox("busybox-static is not in the archive".into()))?;
    let deb = download(ctx, kernel, &package)?;
    let mut found = None;
    read_data(&deb, |entry| {
        if let EntryKind::File(content) = entry.kind {
            if entry.rel == Path::new("bin/busybox") || entry.rel == Path::new("usr/bin/busybox") {
                let mut bytes = Vec::new();
                content.read_to_end(&mut bytes).map_err(|e| BootCheckError::io(&entry.rel, e))?;
                found = Some(bytes);
            }
        }
        Ok::<(), BootCheckError>(())
    })?;
    let busybox = found.ok_or_else(|| BootCheckError::NoBusybox(format!("{} holds no bin/busybox", deb.display())))?;
    // The kernel would not run an init of another machine: say so before it boots.
    match machine::elf_architecture(&busybox) {
        Ok(arch) if arch == machine.elf() => Ok(busybox),
        Ok(arch) => Err(BootCheckError::BadImage {
            deb,
            reason: format!(
                "bin/busybox is a program for {}, not for the {} kernel",
                machine::architecture_name(arch),
                machine.architecture()
            ),
        }),
        Err(reason) => Err(BootCheckError::BadImage { deb, reason: format!("bin/busybox: {reason}") }),
    }
}
