//! `hermod load-test`: boot a Debian kernel under qemu and load, then unload,
//! built modules in it (see [`crate::load_test`]); the glue between the
//! command line and that module.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{AppError, Global};
use crate::load_test::guest::Op;
use crate::load_test::{self, BootOptions, BootReport, Outcome};

#[derive(Debug, Args)]
pub struct LoadTestArgs {
    /// Module packages (.deb), directories holding modules, or module files (.ko, .ko.xz,
    /// .ko.zst, .ko.gz); every module in them is loaded, then unloaded
    #[arg(required = true, value_name = "DEB|DIR|KO")]
    pub modules: Vec<PathBuf>,
    /// Kernel release to boot (linux-image-KREL from the archive) [default: the kernel the
    /// modules were built for, from their vermagic]
    #[arg(long, value_name = "KREL")]
    pub kernel: Option<String>,
    /// Memory of the virtual machine (qemu's -m)
    #[arg(long, default_value = "512M")]
    pub memory: String,
    /// Wall-clock limit for the boot and the test, in seconds
    #[arg(long, default_value_t = 180)]
    pub timeout: u64,
    /// Print the report as one JSON object
    #[arg(long)]
    pub json: bool,
}

pub fn load_test(global: &Global, args: &LoadTestArgs) -> Result<(), AppError> {
    let archives = super::archives(global, None)?;
    let options = BootOptions { memory: args.memory.clone(), timeout: Duration::from_secs(args.timeout.max(1)) };
    let report = load_test::load_test(&archives, args.kernel.as_deref(), &args.modules, &options)?;
    let mut stdout = std::io::stdout().lock();
    let text =
        if args.json { serde_json::to_string(&report).expect("report serializes") + "\n" } else { human(&report) };
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    crate::say::note(format_args!(
        "booted {} ({}) under qemu (software emulation) in {:.1} s",
        report.image, report.architecture, report.seconds
    ));
    Ok(report.verdict()?)
}

/// One line per module (`NAME: loaded, unloaded` or what failed), each with
/// the kernel's lines indented below.
pub(super) fn human(report: &BootReport) -> String {
    let mut s = String::new();
    let lines = |s: &mut String, o: &Outcome| {
        for line in o.kernel.iter().chain(&o.output) {
            s.push_str(&format!("    {line}\n"));
        }
    };
    for dep in &report.dependencies {
        if let Some(load) = &dep.load {
            let what = if load.ok { "loaded" } else { "FAILED to load" };
            s.push_str(&format!("dependency {} ({}): {what}\n", dep.name, dep.path));
            if !load.ok {
                lines(&mut s, load);
            }
        }
    }
    for m in &report.modules {
        let crashed = report.interrupted.as_ref().filter(|i| i.name == m.name).map(|i| {
            let during = if i.op == Op::Insmod { "loading" } else { "unloading" };
            format!(
                "the kernel CRASHED or HUNG while {during} it{}",
                i.crash.as_ref().map(|c| format!(": {c}")).unwrap_or_default()
            )
        });
        let verdict = match (&m.load, &m.unload) {
            _ if crashed.is_some() => crashed.clone().unwrap_or_default(),
            (None, _) => "not reached".to_owned(),
            (Some(l), _) if !l.ok => "FAILED to load".to_owned(),
            (Some(_), None) => "loaded, not unloaded".to_owned(),
            (Some(_), Some(u)) if !u.ok => "loaded, FAILED to unload".to_owned(),
            _ => "loaded, unloaded".to_owned(),
        };
        let built_for = m.vermagic.as_deref().and_then(|v| v.split_whitespace().next()).unwrap_or("?");
        s.push_str(&format!("{} (built for {built_for}) in {}: {verdict}\n", m.name, report.kernel));
        if built_for != report.kernel && m.load.as_ref().is_some_and(|l| l.ok) {
            // With CONFIG_MODVERSIONS the kernel compares symbol versions, not the release.
            s.push_str(&format!(
                "    note: built for another kernel; {} accepted its symbol versions\n",
                report.kernel
            ));
        }
        for o in m.load.iter().chain(&m.unload) {
            lines(&mut s, o);
        }
    }
    for missing in &report.missing {
        s.push_str(&format!("missing: {} (needed by {})\n", missing.name, missing.needed_by));
    }
    if !report.console_tail.is_empty() {
        s.push_str("console (last lines):\n");
        for line in &report.console_tail {
            s.push_str(&format!("    {line}\n"));
        }
    }
    s
}
