//! The build stage: evaluate dkms.conf and run make inside the sandbox.
//!
//! Layout inside the sandbox (see `hermod-sandbox` for the isolation itself):
//!
//! ```text
//! /                 the build root, read-only (headers + toolchain)
//! /build/src        a copy of the module source, writable: make runs here
//! /build/meta       hermod's scripts in, dkms records and built modules out
//! /tmp              tmpfs
//! ```
//!
//! The source is always at `/build/src` and the headers at
//! `/usr/src/linux-headers-<KREL>`, because those absolute paths end up in the
//! module (DWARF, `__FILE__`, and with them the build-id that survives
//! `strip -g`): fixed paths are what makes two builds bit-identical.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hermod_sandbox::{Bind, Exit, Outcome, SandboxError, Spec};

use crate::dkms::{self, DkmsConf, DkmsError};
use crate::rootfs::Rootfs;
use crate::source::{SourceError, SourceTree};

const SRC_INSIDE: &str = "/build/src";
const META_INSIDE: &str = "/build/meta";
const BUILD_UID: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("dkms.conf: {0}")]
    Dkms(#[from] DkmsError),
    #[error("dkms.conf is not valid bash (DKMS 3.0.10 would silently ignore the rest of it; hermod refuses):\n{tail}\nfull log: {log}")]
    DkmsSyntax { tail: String, log: PathBuf },
    #[error("evaluating dkms.conf failed ({exit}):\n{tail}\nfull log: {log}")]
    DkmsEval { exit: String, tail: String, log: PathBuf },
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    #[error("the build failed ({exit}); last lines of the log:\n{tail}\nfull log: {log}")]
    MakeFailed { exit: String, tail: String, log: PathBuf },
    #[error("the build ran longer than the {limit:?} timeout and was killed; last lines of the log:\n{tail}\nfull log: {log}")]
    TimedOut { limit: Duration, tail: String, log: PathBuf },
    #[error("module {name} was declared in dkms.conf but not built (expected {expected}); full log: {log}")]
    ModuleMissing { name: String, expected: String, log: PathBuf },
    #[error("{path} is not reachable by the sandbox user (uid {uid}): {blocker} is not searchable by others; `chmod o+x {blocker}` or choose another --store")]
    NotReachable { path: PathBuf, blocker: PathBuf, uid: u32 },
    #[error("build stage I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BuildError + '_ {
    move |source| BuildError::Io { path: path.to_owned(), source }
}

/// Knobs of one build.
#[derive(Debug, Clone)]
pub struct Settings {
    pub jobs: usize,
    pub timeout: Duration,
    /// SOURCE_DATE_EPOCH inside the sandbox and the mtime of every packaged file.
    pub source_date_epoch: u64,
}

/// One built (and, if asked, stripped) module.
#[derive(Debug, Clone)]
pub struct BuiltModule {
    pub dest_name: String,
    pub contents: Vec<u8>,
}

#[derive(Debug)]
pub struct Output {
    pub conf: DkmsConf,
    pub modules: Vec<BuiltModule>,
}

/// Build `source` against `rootfs`. `workdir` is an empty scratch directory;
/// `log` collects everything the sandboxed commands print.
pub fn build(
    rootfs: &Rootfs,
    source: &SourceTree,
    settings: &Settings,
    workdir: &Path,
    log: &Path,
) -> Result<Output, BuildError> {
    if nix::unistd::geteuid().is_root() {
        reachable_by_sandbox_user(&rootfs.tree)?;
    }
    let src = workdir.join("src");
    let meta = workdir.join("meta");
    for dir in [&src, &meta] {
        fs::create_dir(dir).map_err(io_err(dir))?;
    }
    source.copy_to(&src)?;

    let conf = evaluate_dkms_conf(rootfs, settings, workdir, log)?;

    let script = build_script(&conf);
    let script_path = meta.join("build.sh");
    fs::write(&script_path, script).map_err(io_err(&script_path))?;
    hand_over(&script_path)?;
    let outcome = run(rootfs, settings, workdir, log, &["/bin/bash", "/build/meta/build.sh"])?;
    match outcome.exit {
        Exit::Code(0) => {}
        Exit::TimedOut => {
            return Err(BuildError::TimedOut { limit: settings.timeout, tail: tail(log), log: log.to_owned() })
        }
        other => return Err(BuildError::MakeFailed { exit: describe(&other), tail: tail(log), log: log.to_owned() }),
    }

    let mut modules = Vec::new();
    for (index, module) in conf.modules.iter().enumerate() {
        let built = meta.join(format!("module-{index}.ko"));
        if !built.is_file() {
            let location =
                if module.built_location.is_empty() { String::new() } else { format!("{}/", module.built_location) };
            return Err(BuildError::ModuleMissing {
                name: module.built_name.clone(),
                expected: format!("{SRC_INSIDE}/{location}{}.ko", module.built_name),
                log: log.to_owned(),
            });
        }
        let contents = fs::read(&built).map_err(io_err(&built))?;
        modules.push(BuiltModule { dest_name: module.dest_name.clone(), contents });
    }
    Ok(Output { conf, modules })
}

/// When hermod runs as root, the sandbox runs the build as an unprivileged host
/// user (`hermod_sandbox::NOBODY`), never as host root; the writable parts of
/// the work directory are given to that user. An unprivileged caller's
/// sandbox runs as the caller, who owns them already.
fn hand_over_to_sandbox_user(workdir: &Path) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    fs::set_permissions(workdir, fs::Permissions::from_mode(0o755)).map_err(io_err(workdir))?;
    for top in ["src", "meta"] {
        hand_over(&workdir.join(top))?;
    }
    reachable_by_sandbox_user(workdir)
}

/// Every directory above `path` must be searchable by others, or the sandbox
/// user cannot reach it; say which one is not, rather than fail inside.
fn reachable_by_sandbox_user(path: &Path) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    for ancestor in path.ancestors().skip(1) {
        let mode = fs::metadata(ancestor).map_err(io_err(ancestor))?.permissions().mode();
        if mode & 0o001 == 0 {
            return Err(BuildError::NotReachable {
                path: path.to_owned(),
                blocker: ancestor.to_owned(),
                uid: hermod_sandbox::NOBODY.0,
            });
        }
    }
    Ok(())
}

/// Give `path` (and everything below it) to the sandbox user, when root.
fn hand_over(path: &Path) -> Result<(), BuildError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let (uid, gid) = hermod_sandbox::NOBODY;
    for entry in walkdir::WalkDir::new(path) {
        let entry = entry.map_err(|e| BuildError::Io { path: path.to_owned(), source: e.into() })?;
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            entry.path(),
            Some(uid.into()),
            Some(gid.into()),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|errno| BuildError::Io { path: entry.path().to_owned(), source: errno.into() })?;
    }
    Ok(())
}

/// Source dkms.conf with bash inside the sandbox and read back its directives.
fn evaluate_dkms_conf(
    rootfs: &Rootfs,
    settings: &Settings,
    workdir: &Path,
    log: &Path,
) -> Result<DkmsConf, BuildError> {
    let meta = workdir.join("meta");
    let eval = meta.join("eval.sh");
    fs::write(&eval, dkms::EVAL_SCRIPT).map_err(io_err(&eval))?;
    hand_over_to_sandbox_user(workdir)?;
    let headers = rootfs.headers_dir_inside();
    let jobs = settings.jobs.to_string();
    let outcome = run(
        rootfs,
        settings,
        workdir,
        log,
        &[
            "/bin/bash",
            "/build/meta/eval.sh",
            "/build/src/dkms.conf",
            &rootfs.lock.kernel,
            "x86_64",
            &headers,
            &jobs,
            "/build/meta/dkms.records",
        ],
    )?;
    match outcome.exit {
        Exit::Code(0) => {}
        Exit::Code(dkms::EXIT_SYNTAX_ERROR) => {
            return Err(BuildError::DkmsSyntax { tail: tail(log), log: log.to_owned() })
        }
        other => return Err(BuildError::DkmsEval { exit: describe(&other), tail: tail(log), log: log.to_owned() }),
    }
    let records_path = meta.join("dkms.records");
    let raw = fs::read(&records_path).map_err(io_err(&records_path))?;
    let records = dkms::parse_records(&raw)?;
    Ok(records.interpret(&dkms::Context {
        kernel_release: &rootfs.lock.kernel,
        kernel_source_dir: &headers,
        build_dir: SRC_INSIDE,
        parallel_jobs: settings.jobs,
    })?)
}

/// The script run for the build proper: DKMS's make command as DKMS runs it
/// (through bash, from the build directory), then each declared module copied
/// out and stripped with the build root's own binutils.
fn build_script(conf: &DkmsConf) -> String {
    let mut s = String::from("#!/bin/bash\n# Generated by hermod: the build of one module source.\n");
    let _ = writeln!(s, "cd {SRC_INSIDE} || exit 1");
    let _ = writeln!(s, "printf 'hermod: running: %s\\n' {}", shell_quote(&conf.make_command));
    let _ = writeln!(s, "{}\nstatus=$?", conf.make_command);
    let _ =
        writeln!(s, "if [ $status -ne 0 ]; then echo \"hermod: make exited with status $status\"; exit $status; fi");
    for (index, module) in conf.modules.iter().enumerate() {
        let location = if module.built_location.is_empty() { ".".to_owned() } else { module.built_location.clone() };
        let built = format!("{}/{}.ko", shell_quote(&location), shell_quote(&module.built_name));
        let out = format!("{META_INSIDE}/module-{index}.ko");
        let _ = writeln!(s, "if [ -f {built} ]; then");
        let _ = writeln!(s, "  cp {built} {out} || exit 1");
        if module.strip {
            let _ = writeln!(s, "  strip -g {out} || exit 1");
        }
        let _ = writeln!(s, "else echo \"hermod: {location}/{}.ko was not built\"; fi", module.built_name);
    }
    s
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn run(rootfs: &Rootfs, settings: &Settings, workdir: &Path, log: &Path, argv: &[&str]) -> Result<Outcome, BuildError> {
    let mut spec = Spec::new(rootfs.tree.clone(), argv.iter().map(|s| s.to_string()).collect());
    spec.binds = vec![
        Bind { source: workdir.join("src"), target: SRC_INSIDE.into(), writable: true },
        Bind { source: workdir.join("meta"), target: META_INSIDE.into(), writable: true },
    ];
    spec.tmpfs = vec!["/tmp".into()];
    spec.env = vec![
        ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ("HOME".into(), "/tmp".into()),
        ("LC_ALL".into(), "C".into()),
        ("TZ".into(), "UTC".into()),
        ("SOURCE_DATE_EPOCH".into(), settings.source_date_epoch.to_string()),
    ];
    spec.cwd = SRC_INSIDE.into();
    spec.hostname = "hermod".into();
    spec.uid = BUILD_UID;
    spec.gid = BUILD_UID;
    spec.timeout = Some(settings.timeout);
    spec.log = Some(log.to_owned());
    Ok(hermod_sandbox::run(&spec)?)
}

fn describe(exit: &Exit) -> String {
    match exit {
        Exit::Code(code) => format!("exit status {code}"),
        Exit::Signal(sig) => format!("killed by signal {sig}"),
        Exit::TimedOut => "timed out".into(),
    }
}

/// The last lines of a log, for error messages.
pub fn tail(log: &Path) -> String {
    const LINES: usize = 25;
    let text = fs::read(log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(LINES);
    lines[start..].iter().map(|l| format!("  | {l}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dkms::Module;

    #[test]
    fn build_script_runs_make_then_collects_and_strips() {
        let conf = DkmsConf {
            package_name: "p".into(),
            package_version: "1".into(),
            modules: vec![
                Module { built_name: "a".into(), built_location: String::new(), dest_name: "a".into(), strip: true },
                Module {
                    built_name: "b".into(),
                    built_location: "sub dir".into(),
                    dest_name: "b".into(),
                    strip: false,
                },
            ],
            make_command: "make -j2 KERNELRELEASE=k -C /usr/src/h M=/build/src".into(),
        };
        let s = build_script(&conf);
        assert!(s.contains("\nmake -j2 KERNELRELEASE=k -C /usr/src/h M=/build/src\nstatus=$?"));
        assert!(s.contains("cp '.'/'a'.ko /build/meta/module-0.ko"));
        assert!(s.contains("strip -g /build/meta/module-0.ko"));
        assert!(s.contains("cp 'sub dir'/'b'.ko /build/meta/module-1.ko"));
        assert!(!s.contains("strip -g /build/meta/module-1.ko"));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let body: String = (0..100).map(|i| format!("line {i}\n")).collect();
        fs::write(&log, body).unwrap();
        let t = tail(&log);
        assert!(t.contains("line 99") && t.contains("line 75") && !t.contains("line 74\n"));
    }
}
