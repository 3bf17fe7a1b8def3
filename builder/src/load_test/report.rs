//! What a load test found: per module under test, its load and unload
//! outcome with the kernel's lines; per dependency, its load; what was missing;
//! whether the guest finished. `--json` prints a [`BootReport`] as it is.

use serde::Serialize;

use super::guest::{Op, Step};
use super::{BootCheckError, Missing};

/// One step's result as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub ok: bool,
    /// The kernel's log lines during the step.
    pub kernel: Vec<String>,
    /// What insmod/rmmod printed.
    pub output: Vec<String>,
}

impl Outcome {
    pub(crate) fn of(step: &Step) -> Outcome {
        Outcome { ok: step.rc == 0, kernel: step.kernel.clone(), output: step.output.clone() }
    }
}

/// A module under test: loaded? unloaded?
#[derive(Debug, Clone, Serialize)]
pub struct ModuleReport {
    pub name: String,
    pub origin: String,
    pub vermagic: Option<String>,
    /// `None`: the guest never got to it (it crashed or hung first).
    pub load: Option<Outcome>,
    /// `None` when it did not load, or the guest never got to it.
    pub unload: Option<Outcome>,
}

/// An in-kernel dependency.
#[derive(Debug, Clone, Serialize)]
pub struct DependencyReport {
    pub name: String,
    /// Its path in the image's module tree.
    pub path: String,
    pub load: Option<Outcome>,
}

/// What a boot test found (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct BootReport {
    pub kernel: String,
    /// The image package and version booted.
    pub image: String,
    /// The kernel's Debian architecture (`amd64`, `arm64`): the machine qemu emulated.
    pub architecture: String,
    /// Every module under test loaded and unloaded, and the guest finished.
    pub passed: bool,
    pub modules: Vec<ModuleReport>,
    pub dependencies: Vec<DependencyReport>,
    pub missing: Vec<Missing>,
    /// The init script reached its end (no crash, no hang).
    pub finished: bool,
    pub timed_out: bool,
    /// Wall-clock seconds from starting qemu to its exit.
    pub seconds: f64,
    /// The step the kernel crashed or hung in, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<Interrupted>,
    /// The console's last lines when the guest did not finish.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub console_tail: Vec<String>,
}

/// A step the guest began and never finished.
#[derive(Debug, Clone, Serialize)]
pub struct Interrupted {
    pub op: Op,
    pub name: String,
    /// The console's first line saying why (`Kernel panic - not syncing: …`, `BUG: …`,
    /// `Oops: …`), if any.
    pub crash: Option<String>,
}

impl BootReport {
    /// `Ok` when the test passed, else the error (exit 14) that sums up its failures.
    pub fn verdict(&self) -> Result<(), BootCheckError> {
        if self.passed {
            return Ok(());
        }
        Err(BootCheckError::NotLoaded(format!("load test in {} failed: {}", self.kernel, self.failures().join("; "))))
    }

    /// One line per failure, for the error message and the exit status.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let said = |o: &Outcome| {
            // insmod may try two system calls, and the kernel then says it twice.
            let mut lines: Vec<&str> = Vec::new();
            for line in o.kernel.iter().chain(&o.output) {
                if !lines.contains(&line.as_str()) {
                    lines.push(line);
                }
            }
            if lines.is_empty() {
                "no message".to_owned()
            } else {
                lines.join(" | ")
            }
        };
        for m in &self.modules {
            let stopped_in = |op: Op| {
                self.interrupted.as_ref().filter(|i| i.op == op && i.name == m.name).map(|i| match &i.crash {
                    Some(crash) => format!(": {crash}"),
                    None => String::new(),
                })
            };
            if let Some(why) = stopped_in(Op::Insmod) {
                out.push(format!("{}: the kernel crashed or hung while loading it{why}", m.name));
                continue;
            }
            if let Some(why) = stopped_in(Op::Rmmod) {
                out.push(format!("{}: loaded, but the kernel crashed or hung while unloading it{why}", m.name));
                continue;
            }
            match (&m.load, &m.unload) {
                (None, _) => out.push(format!("{}: never loaded (the guest stopped before)", m.name)),
                (Some(l), _) if !l.ok => out.push(format!("{}: failed to load: {}", m.name, said(l))),
                (Some(_), None) => out.push(format!("{}: loaded, but the guest never unloaded it", m.name)),
                (Some(_), Some(u)) if !u.ok => out.push(format!("{}: failed to unload: {}", m.name, said(u))),
                _ => {}
            }
        }
        for m in &self.missing {
            out.push(format!("{} needs {}, which kernel {} does not have", m.needed_by, m.name, self.kernel));
        }
        if !self.finished {
            let why = if self.timed_out { "hit the wall-clock limit" } else { "stopped (crash or panic)" };
            out.push(format!("the guest {why} before the end of the test"));
        }
        out
    }
}

/// The console without terminal control sequences (the firmware clears the
/// screen) or carriage returns.
pub(crate) fn printable(console: &str) -> String {
    let mut out = String::with_capacity(console.len());
    let mut chars = console.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // ESC [ params final, or ESC and one character.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_control_sequences_are_dropped() {
        assert_eq!(printable("\u{1b}c\u{1b}[?7l\u{1b}[2J\u{1b}[0mSeaBIOS\r\nok\n"), "SeaBIOS\nok\n");
    }

    fn outcome(ok: bool, kernel: &[&str]) -> Option<Outcome> {
        Some(Outcome { ok, kernel: kernel.iter().map(|l| l.to_string()).collect(), output: Vec::new() })
    }

    fn report(modules: Vec<ModuleReport>, finished: bool) -> BootReport {
        BootReport {
            kernel: "6.1.0-1-amd64".into(),
            image: "linux-image-6.1.0-1-amd64 6.1.1-1".into(),
            architecture: "amd64".into(),
            passed: false,
            modules,
            dependencies: Vec::new(),
            missing: Vec::new(),
            finished,
            timed_out: false,
            seconds: 2.0,
            interrupted: None,
            console_tail: Vec::new(),
        }
    }

    fn module(load: Option<Outcome>, unload: Option<Outcome>) -> ModuleReport {
        ModuleReport { name: "hello".into(), origin: "x.deb".into(), vermagic: None, load, unload }
    }

    #[test]
    fn the_verdict_needs_a_load_an_unload_and_the_end() {
        assert!(report(vec![module(outcome(true, &[]), outcome(true, &[]))], true).failures().is_empty());
        let refused = report(vec![module(outcome(false, &["hello: bad", "hello: bad"]), None)], true);
        assert_eq!(refused.failures(), ["hello: failed to load: hello: bad"], "repeated kernel lines said once");
        assert_eq!(crate::exit::HasExitCode::exit_code(&refused.verdict().unwrap_err()), crate::exit::Code::LoadFailed);
        let stuck = report(vec![module(outcome(true, &[]), outcome(false, &["busy"]))], true);
        assert_eq!(stuck.failures(), ["hello: failed to unload: busy"]);
        let unfinished = report(vec![module(outcome(true, &[]), outcome(true, &[]))], false);
        assert_eq!(unfinished.failures().len(), 1, "{:?}", unfinished.failures());
        let mut crashed = report(vec![module(None, None)], false);
        crashed.interrupted = Some(Interrupted {
            op: Op::Insmod,
            name: "hello".into(),
            crash: Some("Kernel panic - not syncing: x".into()),
        });
        assert!(
            crashed.failures()[0].contains("crashed or hung while loading it: Kernel panic"),
            "{:?}",
            crashed.failures()
        );
        let mut missing = report(vec![module(outcome(false, &[]), None)], true);
        missing.missing.push(Missing { name: "videodev".into(), needed_by: "hello".into() });
        assert!(missing.failures().iter().any(|f| f.contains("needs videodev")), "{:?}", missing.failures());
    }
}
