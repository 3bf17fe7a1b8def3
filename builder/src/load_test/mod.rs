//! The load test: does a built module load into, and unload from, the real
//! kernel it was built for — without ever touching the host's kernel?
//!
//! It boots that kernel under qemu with software emulation and asks it. The
//! guest is made of archive packages only: the Debian kernel image
//! `linux-image-<KREL>` and `busybox-static` ([`image`]). Its initramfs
//! ([`cpio`], newc) holds busybox, the modules under test, their in-kernel
//! dependencies from the image's own module tree — found by following each
//! module's `depends` field ([`modinfo`]) recursively, dependencies first
//! ([`load_order`]) — and an `/init` script ([`guest`]) that loads them all,
//! unloads the modules under test, and reports each step with the kernel's
//! log lines on the serial console. [`qemu`] runs the machine with a
//! wall-clock limit; the markers on the console become a [`BootReport`].
//!
//! The guest's architecture is the kernel's: that of the platform (recipe)
//! whose archive offers it, decided once ([`image::machine`]) as a
//! [`Machine`] (amd64: `qemu-system-x86_64`; arm64: `qemu-system-aarch64
//! -machine virt`), whose image and busybox come from that platform's
//! archive. A module under test of another architecture (its ELF machine) is
//! refused before anything boots.
//!
//! The kernel decides, not hermod: a module built for another kernel is
//! refused by the kernel's own checks (vermagic, symbol versions), and its
//! message is what the report shows.

pub mod cpio;
pub mod guest;
pub mod image;
pub mod machine;
pub mod modinfo;
pub mod qemu;
pub mod report;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::exit::{Code, HasExitCode};
use crate::pipeline::{Archives, PipelineError};
use guest::{Load, Op, Role};
pub use image::KernelImage;
pub use machine::Machine;
use report::printable;
pub use report::{BootReport, DependencyReport, Interrupted, ModuleReport, Outcome};

/// Why a load test could not give its verdict, or the verdict itself
/// ([`BootCheckError::NotLoaded`], exit 14). Bad inputs (3) and a wrong
/// request (2: modules of several kernels, an architecture no [`Machine`]
/// emulates, a module of another architecture than the kernel's) are found
/// before the kernel image is fetched or booted.
#[derive(Debug, thiserror::Error)]
pub enum BootCheckError {
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error("no kernel modules (*.ko, *.ko.xz, *.ko.zst, *.ko.gz) in {0}")]
    NoModules(PathBuf),
    #[error("the modules are built for different kernels ({0}); say which to boot with --kernel")]
    WhichKernel(String),
    /// The kernel's platform is of an architecture no [`Machine`] emulates.
    #[error("the kernel's recipe is for {0}: load tests boot amd64 and arm64 kernels only (qemu-system-x86_64, qemu-system-aarch64)")]
    Architecture(String),
    /// A module under test is of another architecture than the kernel to
    /// boot (whose kernel would refuse it).
    #[error("{origin}: a module for {module}, but {kernel} is an {machine} kernel: load-test it in a kernel of its own architecture")]
    ForeignModule { origin: String, module: String, kernel: String, machine: String },
    #[error("bad kernel release {0:?}")]
    BadKernel(String),
    #[error("no kernel image linux-image-{kernel} (or -unsigned) in the archive{}", offered_list(.offered))]
    /// `offered`: the releases of the same flavour the archive has images for.
    NoImage { kernel: String, offered: Vec<String> },
    #[error("{0}")]
    NoBusybox(String),
    #[error("{deb}: {reason}")]
    BadImage { deb: PathBuf, reason: String },
    #[error("reading a package from the archive: {0}")]
    ImageDeb(#[from] crate::apt::DebFileError),
    #[error("{0}")]
    Archive(Box<PipelineError>),
    #[error("downloading from the archive: {0}")]
    Fetch(Box<crate::apt::FetchError>),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("qemu: {0}")]
    Qemu(String),
    /// The kernel never ran the init script (no start marker).
    #[error("the kernel {kernel} did not boot to the test under qemu{}; console:\n{tail}", if *.timed_out { " (wall-clock limit reached)" } else { "" })]
    NoBoot { kernel: String, timed_out: bool, tail: String },
    /// The report has been printed; this is its verdict.
    #[error("{0}")]
    NotLoaded(String),
}

fn offered_list(offered: &[String]) -> String {
    if offered.is_empty() {
        String::new()
    } else {
        format!(" (it offers these kernels of that flavour: {})", offered.join(" "))
    }
}

impl BootCheckError {
    pub(crate) fn io(path: impl AsRef<Path>, source: std::io::Error) -> BootCheckError {
        BootCheckError::Io { path: path.as_ref().to_owned(), source }
    }
}

impl HasExitCode for BootCheckError {
    fn exit_code(&self) -> Code {
        match self {
            BootCheckError::Input { .. } | BootCheckError::NoModules(_) => Code::BadInput,
            BootCheckError::WhichKernel(_) | BootCheckError::Architecture(_) | BootCheckError::ForeignModule { .. } => {
                Code::Usage
            }
            BootCheckError::BadKernel(_) | BootCheckError::NoImage { .. } => Code::NoHeaders,
            BootCheckError::NoBusybox(_)
            | BootCheckError::BadImage { .. }
            | BootCheckError::ImageDeb(_)
            | BootCheckError::Fetch(_) => Code::Archive,
            // The pipeline's step (the archive, the platform, the store) says its own.
            BootCheckError::Archive(e) => e.exit_code(),
            BootCheckError::Io { .. } => Code::Io,
            BootCheckError::Qemu(_) | BootCheckError::NoBoot { .. } => Code::Sandbox,
            BootCheckError::NotLoaded(_) => Code::LoadFailed,
        }
    }
}

/// A module under test, read from a .deb, a directory or a file.
#[derive(Debug, Clone)]
pub struct ModuleUnderTest {
    /// Normalized module name (`name=` of its modinfo, else its file name).
    pub name: String,
    /// Where it came from: `PACKAGE.deb:lib/modules/…/hello.ko` or a path.
    pub origin: String,
    pub vermagic: Option<String>,
    pub depends: Vec<String>,
    /// Its ELF machine.
    pub architecture: object::Architecture,
    /// The plain ELF image.
    pub elf: Vec<u8>,
}

impl ModuleUnderTest {
    fn new(origin: String, file_name: &str, raw: Vec<u8>) -> Result<ModuleUnderTest, BootCheckError> {
        let bad = |reason: String| BootCheckError::Input { path: PathBuf::from(&origin), reason };
        let elf = modinfo::module_bytes(file_name, raw).map_err(bad)?;
        let fields = modinfo::fields(&elf).map_err(bad)?;
        let name = modinfo::field(&fields, "name")
            .map(modinfo::normalize)
            .or_else(|| modinfo::module_name_of_file(file_name))
            .unwrap_or_default();
        // The name becomes a file name in the initramfs and a word of the
        // init script: the kernel's own module names are [A-Za-z0-9_].
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad(format!("module name {name:?} is not a kernel module name")));
        }
        Ok(ModuleUnderTest {
            name,
            vermagic: modinfo::field(&fields, "vermagic").map(str::to_owned),
            depends: modinfo::depends(&fields),
            architecture: machine::elf_architecture(&elf).map_err(bad)?,
            origin,
            elf,
        })
    }

    /// The kernel release the module was built for (vermagic's first word).
    pub fn built_for(&self) -> Option<&str> {
        self.vermagic.as_deref().and_then(|v| v.split_whitespace().next())
    }
}

impl From<hermod_hostfs::Error> for BootCheckError {
    /// A walk of the caller's directory that fails is bad input.
    fn from(e: hermod_hostfs::Error) -> BootCheckError {
        BootCheckError::Input { path: e.path().to_owned(), reason: e.to_string() }
    }
}

/// The modules in `path`: a module package (.deb), a directory (searched
/// recursively) or one module file.
pub fn modules_in(path: &Path) -> Result<Vec<ModuleUnderTest>, BootCheckError> {
    let is_module = |p: &Path| p.file_name().and_then(|n| n.to_str()).and_then(modinfo::module_name_of_file).is_some();
    // The caller's files: what cannot be read is bad input, not a store error.
    let unreadable = |p: &Path, e: std::io::Error| BootCheckError::Input { path: p.to_owned(), reason: e.to_string() };
    let mut found = Vec::new();
    if let Err(e) = std::fs::metadata(path) {
        return Err(unreadable(path, e));
    }
    if path.is_dir() {
        // By descriptor: links in the tree are not followed, only regular files are opened.
        let dir = hermod_hostfs::Dir::open(path).map_err(|e| unreadable(path, e.into()))?;
        dir.walk::<BootCheckError>(&mut |visit| {
            if visit.meta.kind == hermod_hostfs::Kind::File && is_module(visit.rel) {
                let shown = dir.shown(visit.rel);
                let (file, _) = visit.parent.open_regular(visit.name).map_err(|e| unreadable(&shown, e.into()))?;
                let limits = crate::bounded::current();
                let raw = crate::bounded::read_capped(file, crate::bounded::Limit::ModuleSize, &limits)
                    .map_err(|e| unreadable(&shown, e))?;
                let file_name = visit.name.to_string_lossy().into_owned();
                found.push(ModuleUnderTest::new(shown.display().to_string(), &file_name, raw)?);
            }
            Ok(true)
        })?;
    } else if is_module(path) {
        let raw = read_module_file(path).map_err(|e| unreadable(path, e))?;
        let file_name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        found.push(ModuleUnderTest::new(path.display().to_string(), &file_name, raw)?);
    } else {
        let bad = |reason: String| BootCheckError::Input { path: path.to_owned(), reason };
        let mut files = Vec::new();
        crate::apt::debfile::read_data(path, |entry| {
            if let crate::apt::debfile::EntryKind::File(content) = entry.kind {
                if is_module(&entry.rel) {
                    let limits = crate::bounded::current();
                    let raw = crate::bounded::read_capped(content, crate::bounded::Limit::ModuleSize, &limits)
                        .map_err(|e| unreadable(path, e))?;
                    files.push((entry.rel.clone(), raw));
                }
            }
            Ok::<(), BootCheckError>(())
        })
        .map_err(|e| match e {
            BootCheckError::ImageDeb(e) => bad(format!("neither a module file, a directory nor a readable .deb: {e}")),
            other => other,
        })?;
        for (rel, raw) in files {
            let file_name = rel.file_name().unwrap_or_default().to_string_lossy().into_owned();
            found.push(ModuleUnderTest::new(format!("{}:{}", path.display(), rel.display()), &file_name, raw)?);
        }
    }
    if found.is_empty() {
        return Err(BootCheckError::NoModules(path.to_owned()));
    }
    Ok(found)
}

/// The kernel all `modules` were built for, from their vermagic.
pub fn kernel_of(modules: &[ModuleUnderTest]) -> Result<String, BootCheckError> {
    let mut kernels: Vec<&str> = modules.iter().filter_map(|m| m.built_for()).collect();
    kernels.sort();
    kernels.dedup();
    match kernels.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err(BootCheckError::WhichKernel("no vermagic".into())),
        many => Err(BootCheckError::WhichKernel(many.join(", "))),
    }
}

/// A dependency that neither the image nor the modules under test provide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    pub name: String,
    pub needed_by: String,
}

/// What [`load_order`] finds: the modules to load, in order, with their
/// role; and the dependencies nothing provides.
pub type LoadOrder = (Vec<(String, Role)>, Vec<Missing>);

/// Every module to load, dependencies before what needs them (depth first,
/// in `depends` order), each once. `tested` are the modules under test with
/// their `depends`; `lookup` gives an image module's `depends`, or `None`
/// when the image has no such module; `builtin` modules need no loading.
pub fn load_order<E>(
    tested: &[(String, Vec<String>)],
    builtin: &HashSet<String>,
    mut lookup: impl FnMut(&str) -> Result<Option<Vec<String>>, E>,
) -> Result<LoadOrder, E> {
    let under_test: HashMap<&str, &Vec<String>> = tested.iter().map(|(n, d)| (n.as_str(), d)).collect();
    let mut order = Vec::new();
    let mut missing = Vec::new();
    let mut seen = HashSet::new();
    // An explicit stack: (name, needed by, whether its depends were pushed).
    for (root, _) in tested {
        let mut stack = vec![(root.clone(), String::new(), false)];
        while let Some((name, needed_by, expanded)) = stack.pop() {
            if expanded {
                let role = if under_test.contains_key(name.as_str()) { Role::Tested } else { Role::Dependency };
                order.push((name, role));
                continue;
            }
            // A built-in module needs no loading, but a module under test that is
            // named like one is still tested (and refused by the kernel if it clashes).
            let is_builtin = builtin.contains(&name) && !under_test.contains_key(name.as_str());
            if is_builtin || !seen.insert(name.clone()) {
                continue;
            }
            let depends = match under_test.get(name.as_str()) {
                Some(d) => (*d).clone(),
                None => match lookup(&name)? {
                    Some(d) => d,
                    None => {
                        missing.push(Missing { name, needed_by });
                        continue;
                    }
                },
            };
            stack.push((name.clone(), needed_by, true));
            for dep in depends.iter().rev() {
                stack.push((dep.clone(), name.clone(), false));
            }
        }
    }
    Ok((order, missing))
}

/// How to run the machine.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// qemu's `-m`, e.g. `512M`.
    pub memory: String,
    /// Wall-clock limit for the whole boot.
    pub timeout: Duration,
}

impl Default for BootOptions {
    fn default() -> BootOptions {
        BootOptions { memory: "512M".into(), timeout: Duration::from_secs(180) }
    }
}

/// The whole load test of the modules in `paths` (.debs, directories or module
/// files, see [`modules_in`]) in `kernel`, else in the kernel they were built
/// for. A module that fails is in the report, not an error: see
/// [`BootReport::verdict`].
pub fn load_test(
    ctx: &Archives,
    kernel: Option<&str>,
    paths: &[PathBuf],
    options: &BootOptions,
) -> Result<BootReport, BootCheckError> {
    let mut modules = Vec::new();
    for path in paths {
        modules.extend(modules_in(path)?);
    }
    let kernel = match kernel {
        Some(k) => k.to_owned(),
        None => kernel_of(&modules)?,
    };
    boot_test(ctx, &kernel, &modules, options)
}

/// Boot `kernel` from the archive under qemu and load, then unload, `modules`.
pub fn boot_test(
    ctx: &Archives,
    kernel: &str,
    modules: &[ModuleUnderTest],
    options: &BootOptions,
) -> Result<BootReport, BootCheckError> {
    // One name is one module to the kernel: two under test with one name
    // would be one loaded and the other reported with its outcome.
    for (i, m) in modules.iter().enumerate() {
        if let Some(other) = modules[..i].iter().find(|o| o.name == m.name) {
            return Err(BootCheckError::Input {
                path: PathBuf::from(&m.origin),
                reason: format!("module {} is also in {}: test them one at a time", m.name, other.origin),
            });
        }
    }
    // The machine first: a kernel no release offers is told with the images
    // they do, one of an architecture no machine emulates before any download.
    let machine = image::machine(ctx, kernel)?;
    // The kernel would refuse a module of another architecture; this says why.
    if let Some(m) = modules.iter().find(|m| m.architecture != machine.elf()) {
        return Err(BootCheckError::ForeignModule {
            origin: m.origin.clone(),
            module: machine::architecture_name(m.architecture),
            kernel: kernel.to_owned(),
            machine: machine.architecture().to_owned(),
        });
    }
    let image = image::kernel_image(ctx, kernel, machine)?;
    let busybox = image::busybox(ctx, kernel, machine)?;
    let available = image.modules()?;
    let builtin = image.builtin();
    let tested: Vec<(String, Vec<String>)> = modules.iter().map(|m| (m.name.clone(), m.depends.clone())).collect();
    let mut image_elf: HashMap<String, (String, Vec<u8>)> = HashMap::new();
    let (order, missing) = load_order(&tested, &builtin, |name| {
        let Some(file) = available.get(name) else { return Ok(None) };
        let raw = read_module_file(file).map_err(|e| BootCheckError::io(file, e))?;
        let file_name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let bad = |reason| BootCheckError::BadImage { deb: file.clone(), reason };
        let elf = modinfo::module_bytes(&file_name, raw).map_err(bad)?;
        let depends = modinfo::depends(&modinfo::fields(&elf).map_err(bad)?);
        let rel = file.strip_prefix(image.dir.join("modules")).unwrap_or(file);
        // Uncompressed in the initramfs: insmod hands the kernel the plain ELF.
        let plain = rel.with_file_name(file_name.split(".ko").next().unwrap_or(name).to_owned() + ".ko");
        image_elf.insert(name.to_owned(), (format!("lib/modules/{kernel}/{}", plain.display()), elf));
        Ok::<_, BootCheckError>(Some(depends))
    })?;

    // The initramfs: busybox, the modules (plain ELF), /init.
    let mut loads = Vec::new();
    let mut initramfs = cpio::CpioWriter::new(Vec::new());
    let mut cpio_ok = || -> std::io::Result<()> {
        initramfs.file("bin/busybox", 0o755, &busybox)?;
        for (name, role) in &order {
            let (path, elf) = match role {
                Role::Tested => {
                    let m = modules.iter().find(|m| &m.name == name).expect("a module under test");
                    (format!("hermod-test/{name}.ko"), &m.elf)
                }
                Role::Dependency => {
                    let (path, elf) = &image_elf[name];
                    (path.clone(), elf)
                }
            };
            initramfs.file(&path, 0o644, elf)?;
            loads.push(Load { name: name.clone(), path: format!("/{path}"), role: *role });
        }
        initramfs.file("init", 0o755, guest::init_script(&loads).as_bytes())
    };
    cpio_ok().map_err(|e| BootCheckError::io("initramfs", e))?;
    let staging = ctx.store().staging_dir("boot-").map_err(|e| BootCheckError::Archive(Box::new(e.into())))?;
    let initrd = staging.path().join("initramfs.cpio");
    let bytes = initramfs.finish().map_err(|e| BootCheckError::io(&initrd, e))?;
    std::fs::write(&initrd, bytes).map_err(|e| BootCheckError::io(&initrd, e))?;

    let run = qemu::run(machine, &image.vmlinuz(), &initrd, &options.memory, options.timeout)?;
    let console = printable(&run.console);
    let transcript = guest::parse(&console);
    let tail = || -> Vec<String> {
        let lines: Vec<&str> = console.lines().collect();
        lines[lines.len().saturating_sub(40)..].iter().map(|l| l.to_string()).collect()
    };
    let interrupted = transcript.interrupted.as_ref().map(|(op, name)| {
        let begin = format!("{} begin {} {name}", guest::MARKER, if *op == Op::Insmod { "insmod" } else { "rmmod" });
        let after = console.rsplit_once(&begin).map_or("", |(_, after)| after);
        let crash = after
            .lines()
            .find(|l| ["Kernel panic", "BUG:", "Oops", "general protection fault"].iter().any(|w| l.contains(w)))
            .map(|l| guest::strip_timestamp(l.trim()).to_owned());
        Interrupted { op: *op, name: name.clone(), crash }
    });
    if transcript.kernel_release.is_none() {
        let mut text = tail().join("\n");
        if !run.stderr.trim().is_empty() {
            text.push_str(&format!("\nqemu: {}", run.stderr.trim()));
        }
        return Err(BootCheckError::NoBoot { kernel: kernel.to_owned(), timed_out: run.timed_out, tail: text });
    }
    let step = |op: Op, name: &str| transcript.steps.iter().find(|s| s.op == op && s.name == name).map(Outcome::of);
    let module_reports: Vec<ModuleReport> = order
        .iter()
        .filter(|(_, role)| *role == Role::Tested)
        .map(|(name, _)| {
            let m = modules.iter().find(|m| &m.name == name).expect("a module under test");
            ModuleReport {
                name: name.clone(),
                origin: m.origin.clone(),
                vermagic: m.vermagic.clone(),
                load: step(Op::Insmod, name),
                unload: step(Op::Rmmod, name),
            }
        })
        .collect();
    let dependencies = loads
        .iter()
        .filter(|l| l.role == Role::Dependency)
        .map(|l| DependencyReport { name: l.name.clone(), path: l.path.clone(), load: step(Op::Insmod, &l.name) })
        .collect();
    let mut report = BootReport {
        kernel: kernel.to_owned(),
        image: format!("{} {}", image.package, image.version),
        architecture: machine.architecture().to_owned(),
        passed: false,
        modules: module_reports,
        dependencies,
        missing,
        finished: transcript.finished,
        timed_out: run.timed_out,
        seconds: run.seconds,
        interrupted,
        console_tail: if transcript.finished { Vec::new() } else { tail() },
    };
    report.passed = report.failures().is_empty();
    Ok(report)
}

/// A module file given to the load test, at most `max_module_size` of it.
fn read_module_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let limits = crate::bounded::current();
    let (file, _) = crate::bounded::open_user_file(path)?;
    crate::bounded::read_capped(file, crate::bounded::Limit::ModuleSize, &limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(order: &[(String, Role)]) -> Vec<&str> {
        order.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn dependencies_come_first_each_once_builtins_skipped() {
        // v4l2loopback → videodev → mc; a second tested module shares videodev.
        let image: HashMap<&str, Vec<String>> =
            [("videodev", vec!["mc".to_string()]), ("mc", vec![]), ("v4l2_common", vec!["videodev".to_string()])]
                .into_iter()
                .collect();
        let tested = vec![
            ("v4l2loopback".to_string(), vec!["videodev".to_string(), "crc32c".to_string()]),
            ("other".to_string(), vec!["v4l2_common".to_string()]),
        ];
        let builtin: HashSet<String> = ["crc32c".to_string()].into();
        let mut asked = Vec::new();
        let (order, missing) = load_order(&tested, &builtin, |n| {
            asked.push(n.to_owned());
            Ok::<_, ()>(image.get(n).cloned())
        })
        .unwrap();
        assert_eq!(names(&order), ["mc", "videodev", "v4l2loopback", "v4l2_common", "other"]);
        assert_eq!(order[2].1, Role::Tested);
        assert_eq!(order[0].1, Role::Dependency);
        assert!(missing.is_empty());
        assert_eq!(asked, ["videodev", "mc", "v4l2_common"], "each image module read once, builtins never");
    }

    #[test]
    fn a_tested_module_may_depend_on_another_and_missing_ones_are_named() {
        let tested = vec![("b".to_string(), vec!["a".to_string(), "gone".to_string()]), ("a".to_string(), vec![])];
        let (order, missing) = load_order(&tested, &HashSet::new(), |_| Ok::<Option<Vec<String>>, ()>(None)).unwrap();
        assert_eq!(names(&order), ["a", "b"]);
        assert!(order.iter().all(|(_, r)| *r == Role::Tested));
        assert_eq!(missing, [Missing { name: "gone".into(), needed_by: "b".into() }]);
    }

    #[test]
    fn a_tested_module_named_like_a_builtin_is_still_tested() {
        // The kernel refuses it (or not): that is the test's answer, not a skip.
        let tested = vec![("crc32c".to_string(), vec![])];
        let builtin: HashSet<String> = ["crc32c".to_string()].into();
        let (order, _) = load_order(&tested, &builtin, |_| Ok::<Option<Vec<String>>, ()>(None)).unwrap();
        assert_eq!(order, [("crc32c".to_string(), Role::Tested)]);
    }

    #[test]
    fn a_dependency_cycle_does_not_loop() {
        let image: HashMap<&str, Vec<String>> =
            [("x", vec!["y".to_string()]), ("y", vec!["x".to_string()])].into_iter().collect();
        let tested = vec![("t".to_string(), vec!["x".to_string()])];
        let (order, _) = load_order(&tested, &HashSet::new(), |n| Ok::<_, ()>(image.get(n).cloned())).unwrap();
        assert_eq!(names(&order), ["y", "x", "t"]);
    }

    #[test]
    fn modules_are_read_from_directories_and_refused_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let elf = modinfo::tests::fake_module(&["name=hello", "vermagic=6.1.0-9-amd64 SMP preempt", "depends="]);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/hello.ko.xz"), crate::compress::Compression::Xz.apply(&elf).unwrap())
            .unwrap();
        let found = modules_in(dir.path()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "hello");
        assert_eq!(found[0].elf, elf);
        assert_eq!(kernel_of(&found).unwrap(), "6.1.0-9-amd64");

        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(modules_in(empty.path()), Err(BootCheckError::NoModules(_))));
        let junk = dir.path().join("junk.bin");
        std::fs::write(&junk, b"not a deb").unwrap();
        let err = modules_in(&junk).unwrap_err();
        assert_eq!(err.exit_code(), Code::BadInput, "{err}");
        let sneaky = modinfo::tests::fake_module(&["name=../../init", "vermagic=6.1.0-9-amd64 SMP"]);
        std::fs::write(dir.path().join("sneaky.ko"), sneaky).unwrap();
        let err = modules_in(&dir.path().join("sneaky.ko")).unwrap_err();
        assert!(err.to_string().contains("not a kernel module name"), "{err}");
        std::fs::write(dir.path().join("bad.ko"), b"not elf").unwrap();
        assert!(matches!(modules_in(&dir.path().join("bad.ko")), Err(BootCheckError::Input { .. })));
    }
}
