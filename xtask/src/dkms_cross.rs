//! `cargo xtask dkms-corpus --arch arm64`: the report of a cross corpus
//! (`docs/dkms-corpus-RELEASE-arm64.md`). There is no arm64 DKMS on an amd64
//! master, so each package's arm64 outcome (hermod's) is set beside its amd64
//! outcomes, hermod's and DKMS's, read from the committed native report
//! (`docs/dkms-corpus-RELEASE.md`, its table parsed by [`parse_native`]), and
//! judged ([`judge`]): built on both, skipped as its BUILD_EXCLUSIVE_ARCH
//! declares, x86-only source, failing on both, or a cross problem to look at.

use crate::dkms_corpus::{truncate, Outcome, Row, Side};
use crate::dkms_report::{escape, notes_section};

/// One package's row of the committed native (amd64) report.
#[derive(Debug, Clone, PartialEq)]
pub struct Native {
    pub package: String,
    pub version: String,
    pub modules: Vec<String>,
    /// hermod's and DKMS's outcome (None: `not run` there).
    pub hermod: Option<Outcome>,
    pub dkms: Option<Outcome>,
    /// hermod's cause of a failure or skip, as the report's difference column says it.
    pub hermod_cause: Option<String>,
}

/// The native report's kernel and rows. Lines that are not rows of its
/// table (and its header) are ignored.
pub fn parse_native(markdown: &str) -> (Option<String>, Vec<Native>) {
    let kernel = markdown
        .lines()
        .find_map(|l| l.strip_prefix("- kernel: `"))
        .and_then(|rest| rest.split('`').next())
        .map(str::to_owned);
    let outcome = |cell: &str| match cell.split_whitespace().next() {
        Some("built") => Some(Outcome::Built),
        Some("skipped") => Some(Outcome::Skipped),
        Some("failed") => Some(Outcome::Failed),
        _ => None,
    };
    let mut rows = Vec::new();
    for line in markdown.lines() {
        let Some(inner) = line.strip_prefix("| ").and_then(|l| l.strip_suffix(" |").or(l.strip_suffix('|'))) else {
            continue;
        };
        // The difference column may hold escaped pipes: split on the first five.
        let cells: Vec<&str> = split_cells(inner);
        if cells.len() != 6 || cells[0] == "package" || cells[0].starts_with("---") {
            continue;
        }
        let hermod = outcome(cells[3]);
        let dkms = outcome(cells[4]);
        if hermod.is_none() && dkms.is_none() && !cells[3].starts_with("not run") {
            continue;
        }
        let difference = cells[5].replace("\\|", "|");
        let hermod_cause = ["hermod failed: ", "hermod skipped: "].iter().find_map(|tag| {
            let at = difference.find(tag)? + tag.len();
            let rest = &difference[at..];
            Some(rest[..rest.find("; DKMS ").unwrap_or(rest.len())].trim().to_owned())
        });
        rows.push(Native {
            package: cells[0].to_owned(),
            version: cells[1].to_owned(),
            modules: cells[2].split(", ").filter(|m| !m.is_empty()).map(str::to_owned).collect(),
            hermod,
            dkms,
            hermod_cause,
        });
    }
    (kernel, rows)
}

/// A Markdown table row's cells (without the outer pipes), `\|` kept inside a cell.
fn split_cells(inner: &str) -> Vec<&str> {
    let mut cells = Vec::new();
    let mut start = 0;
    let bytes = inner.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'|' && (i == 0 || bytes[i - 1] != b'\\') {
            cells.push(inner[start..i].trim());
            start = i + 1;
        }
    }
    cells.push(inner[start..].trim());
    cells
}

/// What a package's arm64 outcome says, against amd64's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Judgement {
    /// Built for arm64, and by hermod and DKMS for amd64.
    BuildsOnBoth,
    /// Skipped for arm64 because BUILD_EXCLUSIVE_ARCH does not match
    /// aarch64 (DKMS on an arm64 machine matches `uname -m`), or because
    /// BUILD_EXCLUSIVE_CONFIG is not met by the arm64 kernel's config (which
    /// DKMS there reads from the same headers): what DKMS on arm64 does.
    SkippedAsDeclared,
    /// Fails for arm64 at a compiler error in the module's own x86-specific
    /// code (x86 headers, asm, cpuid, MSRs), where amd64 built it.
    X86OnlySource,
    /// Fails (or is skipped) on amd64 too.
    FailsOnBoth,
    /// Built for arm64 where amd64 did not build it.
    Arm64Only,
    /// Not in the native report (an arm64-only package, or another archive).
    NoAmd64Row,
    /// Fails for arm64 where a configure step runs a program it compiled
    /// ("cannot run C compiled programs"): an arm64 machine runs it, the
    /// amd64 master cannot (no emulation in the sandbox). A known limit of
    /// cross building, not of the source.
    RunsTargetPrograms,
    /// Anything else: possibly hermod's cross setup, not the source. Looked at one by one.
    CrossProblem,
}

impl Judgement {
    pub const ALL: [Judgement; 8] = [
        Judgement::BuildsOnBoth,
        Judgement::SkippedAsDeclared,
        Judgement::X86OnlySource,
        Judgement::FailsOnBoth,
        Judgement::Arm64Only,
        Judgement::NoAmd64Row,
        Judgement::RunsTargetPrograms,
        Judgement::CrossProblem,
    ];

    pub fn words(self) -> &'static str {
        match self {
            Judgement::BuildsOnBoth => "builds on both",
            Judgement::SkippedAsDeclared => "skipped as declared",
            Judgement::X86OnlySource => "x86-only source",
            Judgement::FailsOnBoth => "fails on both",
            Judgement::Arm64Only => "builds on arm64 only",
            Judgement::NoAmd64Row => "no amd64 result",
            Judgement::RunsTargetPrograms => "runs target programs",
            Judgement::CrossProblem => "cross problem",
        }
    }
}

/// A compiler error (`file.c:LINE:COL: error: …`, as [`crate::dkms_corpus::first_error`]
/// shortens it) in the module's own source that names x86-only things.
/// `machine` is the target's `uname -m` (aarch64): an error that says the
/// source does not know it counts too.
/// A configure step that ran a program it cross-compiled (autoconf's words).
pub fn runs_target_programs(cause: &str) -> bool {
    ["cannot run C compiled programs", "cannot run test program while cross compiling"]
        .iter()
        .any(|w| cause.contains(w))
}

pub fn x86_specific(cause: &str) -> bool {
    let Some(error) = cause.split("make failed: ").nth(1) else { return false };
    let at_source = error.split(": ").next().is_some_and(|loc| {
        let file = loc.split(':').next().unwrap_or("");
        [".c", ".h", ".S"].iter().any(|ext| file.ends_with(ext))
    });
    const X86: [&str; 16] = [
        "asm/msr",
        "asm/cpufeature",
        "asm/e820",
        "asm/mtrr",
        "asm/apic",
        "asm/io_apic",
        "asm/processor-flags",
        "asm/fpu",
        "asm/i8259",
        "cpuid",
        "rdmsr",
        "wrmsr",
        "x86",
        "X86",
        "boot_cpu_data",
        "impossible constraint in 'asm'",
    ];
    // An `asm/` header the target's kernel headers lack (x86's
    // asm/mc146818rtc.h, asm/msr.h): DKMS on arm64 has the same headers.
    let missing_asm = error.contains("fatal error: asm/") && error.contains("No such file");
    at_source && (missing_asm || X86.iter().any(|m| error.contains(m)))
}

/// The judgement of one package: its arm64 side and its native row.
pub fn judge(arm64: &Side, native: Option<&Native>) -> Judgement {
    let Some(native) = native else {
        return if arm64.outcome == Outcome::Skipped && skipped_by_arch(arm64) {
            Judgement::SkippedAsDeclared
        } else {
            Judgement::NoAmd64Row
        };
    };
    let amd64_built = native.hermod == Some(Outcome::Built) || native.dkms == Some(Outcome::Built);
    match arm64.outcome {
        Outcome::Built if amd64_built => Judgement::BuildsOnBoth,
        Outcome::Built => Judgement::Arm64Only,
        Outcome::Skipped if skipped_by_arch(arm64) => Judgement::SkippedAsDeclared,
        _ if !amd64_built => Judgement::FailsOnBoth,
        Outcome::Failed if arm64.cause.as_deref().is_some_and(x86_specific) => Judgement::X86OnlySource,
        Outcome::Failed if arm64.cause.as_deref().is_some_and(runs_target_programs) => Judgement::RunsTargetPrograms,
        _ => Judgement::CrossProblem,
    }
}

/// hermod's skip names BUILD_EXCLUSIVE_ARCH not matching the target (`… does
/// not match aarch64`) or BUILD_EXCLUSIVE_CONFIG not met by the target kernel's config.
fn skipped_by_arch(side: &Side) -> bool {
    side.cause.as_deref().is_some_and(|c| {
        (c.contains("BUILD_EXCLUSIVE_ARCH") && c.contains("does not match")) || c.starts_with("BUILD_EXCLUSIVE_CONFIG")
    })
}

/// The cross report: the arm64 rows (hermod's side) and the native report's.
pub struct CrossReport {
    /// `trixie-arm64`.
    pub run_name: String,
    /// `--release trixie --arch arm64`.
    pub flags: String,
    pub arch: String,
    pub kernel: String,
    pub identity: String,
    pub sources: Vec<String>,
    /// The components whose `-dkms` packages are the corpus.
    pub components: Vec<String>,
    pub component_of: Vec<(String, String)>,
    pub excluded: Vec<(String, String)>,
    pub hermod_commits: Vec<(String, usize)>,
    /// Wall time of the hermod side this run (None: nothing built now).
    pub hermod_seconds: Option<f64>,
    pub hermod_reused: usize,
    /// The arm64 corpus; `hermod` is the arm64 side, `dkms` is None.
    pub rows: Vec<Row>,
    /// The native report's file name (`dkms-corpus-trixie.md`), kernel and rows.
    pub native_file: String,
    pub native_kernel: Option<String>,
    pub native: Vec<Native>,
}

fn word(o: Option<Outcome>) -> &'static str {
    match o {
        Some(Outcome::Built) => "built",
        Some(Outcome::Skipped) => "skipped",
        Some(Outcome::Failed) => "failed",
        None => "not run",
    }
}

impl CrossReport {
    fn native_of(&self, package: &str) -> Option<&Native> {
        self.native.iter().find(|n| n.package == package)
    }

    /// Each measured row with its judgement.
    pub fn judged(&self) -> Vec<(&Row, &Side, Judgement)> {
        self.rows
            .iter()
            .filter_map(|r| r.hermod.as_ref().map(|s| (r, s, judge(s, self.native_of(&r.package)))))
            .collect()
    }

    /// Rows without an arm64 result yet.
    pub fn missing(&self) -> Vec<&str> {
        self.rows.iter().filter(|r| r.hermod.is_none()).map(|r| r.package.as_str()).collect()
    }

    /// Native packages not in the target's archive.
    fn native_only(&self) -> Vec<&Native> {
        self.native.iter().filter(|n| !self.rows.iter().any(|r| r.package == n.package)).collect()
    }

    pub fn summary(&self) -> String {
        let judged = self.judged();
        let count = |o: Outcome| judged.iter().filter(|(_, s, _)| s.outcome == o).count();
        let mut out = format!(
            "{} packages; hermod {}: {} built, {} skipped, {} failed",
            self.rows.len(),
            self.arch,
            count(Outcome::Built),
            count(Outcome::Skipped),
            count(Outcome::Failed)
        );
        if !self.missing().is_empty() {
            out += &format!(", {} not run", self.missing().len());
        }
        let per: Vec<String> = Judgement::ALL
            .iter()
            .map(|j| (j, judged.iter().filter(|(_, _, k)| k == j).count()))
            .filter(|(_, n)| *n > 0)
            .map(|(j, n)| format!("{} {n}", j.words()))
            .collect();
        out + "; " + &per.join(", ")
    }

    /// The terminal lines: one per row, then the summary.
    pub fn table(&self) -> String {
        let mut out =
            format!("{:<30} {:<16} {:<10} {:<10} {:<20} cause\n", "package", self.arch, "amd64", "DKMS", "judgement");
        for row in &self.rows {
            let native = self.native_of(&row.package);
            let (cell, judgement) = match &row.hermod {
                Some(s) => (format!("{} {:.1} s", word(Some(s.outcome)), s.seconds), judge(s, native).words()),
                None => ("not run".to_owned(), ""),
            };
            out += &format!(
                "{:<30} {:<16} {:<10} {:<10} {:<20} {}\n",
                row.package,
                cell,
                word(native.and_then(|n| n.hermod)),
                word(native.and_then(|n| n.dkms)),
                judgement,
                row.hermod.as_ref().and_then(|s| s.cause.as_deref()).unwrap_or("")
            );
        }
        out + &self.summary() + "\n"
    }

    /// The report; `previous` is the file's old text, whose notes are kept.
    pub fn markdown(&self, previous: &str, date: &str) -> String {
        let mut md = format!(
            "# DKMS corpus ({}): hermod on every `-dkms` package, cross-built for {}\n\n",
            self.run_name, self.arch
        );
        md += &format!(
            "Generated by `cargo xtask dkms-corpus {}` (see [docs/development.md](development.md)); regenerate it \
             rather than edit the table. Every `*-dkms` package of the {} archive's {} Packages indices, {} (newest \
             version) built by hermod (`hermod build pkg:NAME --kernel KREL`) on an amd64 master, as \
             [docs/cross.md](cross.md) describes. There is no DKMS side: DKMS would need an {} machine. Beside each \
             package, its amd64 outcome by hermod and by DKMS, read from the committed [{}]({}){}.\n\n",
            self.flags,
            self.run_name.strip_suffix(&format!("-{}", self.arch)).unwrap_or(&self.run_name),
            self.arch,
            self.components.join(", "),
            self.arch,
            self.native_file,
            self.native_file,
            self.native_kernel.as_ref().map(|k| format!(" (kernel `{k}`)")).unwrap_or_default()
        );
        let missing = self.missing();
        if !missing.is_empty() {
            md += &format!(
                "**Partial report**: {} of {} packages have no {} result yet (`not run`): {}.\n\n",
                missing.len(),
                self.rows.len(),
                self.arch,
                missing.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
            );
        }
        md += &format!("- date: {date}\n- kernel: `{}`\n", self.kernel);
        md += &format!(
            "- archive: a generated hermod config file naming the machine's mirrors, every component: {}; \
             the corpus is read from the {} indices; index identity `{}`\n",
            self.sources.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "),
            self.arch,
            self.identity
        );
        for (name, component) in &self.component_of {
            md += &format!("- from {component}: `{name}`\n");
        }
        let commits = match self.hermod_commits.as_slice() {
            [] => "not run".to_owned(),
            [(c, _)] => format!("commit `{c}`"),
            many => format!(
                "commits {}",
                many.iter().map(|(c, n)| format!("`{c}` ({n} packages)")).collect::<Vec<_>>().join(", ")
            ),
        };
        md += &format!("- hermod: {commits}\n");
        let summed: f64 = self.rows.iter().filter_map(|r| r.hermod.as_ref()).map(|s| s.seconds).sum();
        let wall = match (self.hermod_seconds, self.hermod_reused) {
            (None, _) => "every result measured by an earlier run against the same archive and kernel".to_owned(),
            (Some(s), 0) => format!("the side's wall time {s:.0} s"),
            (Some(s), n) => {
                format!("the side's wall time {s:.0} s for the packages this run built; {n} measured by earlier runs")
            }
        };
        md += &format!(
            "- time: hermod {summed:.0} s summed over the packages (each `hermod build`, its build root included; {wall})\n"
        );
        for (name, why) in &self.excluded {
            md += &format!("- not in the corpus: `{name}`: {why}\n");
        }
        for n in self.native_only() {
            md += &format!("- in the amd64 corpus, not in the {} archive: `{}`\n", self.arch, n.package);
        }
        md += &format!("\n**{}**\n\n", self.summary());
        md += &format!("## How a package is judged\n\n{}\n", RULES.replace("{arch}", &self.arch));
        md += &format!(
            "\n| package | version | {} modules | {} (hermod) | amd64 hermod | amd64 DKMS | judgement | {} cause / note |\n\
             |---|---|---|---|---|---|---|---|\n",
            self.arch, self.arch, self.arch
        );
        for row in &self.rows {
            let native = self.native_of(&row.package);
            let (cell, judgement, cause) = match &row.hermod {
                Some(s) => {
                    let judgement = judge(s, native);
                    let mut cause = s.cause.clone().unwrap_or_default();
                    if let Some(n) = native.filter(|n| s.outcome == Outcome::Built && n.modules != s.modules) {
                        let only: Vec<&str> =
                            n.modules.iter().filter(|m| !s.modules.contains(m)).map(String::as_str).collect();
                        if !only.is_empty() {
                            cause = format!("amd64 also builds {}", only.join(", "));
                        }
                    }
                    if judgement == Judgement::FailsOnBoth {
                        if let Some(c) = native.and_then(|n| n.hermod_cause.as_deref()) {
                            cause += &format!(" (amd64: {})", truncate(c, 120));
                        }
                    }
                    (format!("{} {:.1} s", word(Some(s.outcome)), s.seconds), judgement.words(), cause)
                }
                None => ("not run".to_owned(), "", String::new()),
            };
            md += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                row.package,
                row.version,
                row.hermod.as_ref().map(|s| s.modules.join(", ")).unwrap_or_default(),
                cell,
                word(native.and_then(|n| n.hermod)),
                word(native.and_then(|n| n.dkms)),
                judgement,
                escape(&cause)
            );
        }
        md += &notes_section(previous);
        md
    }
}

const RULES: &str = "\
The DKMS side cannot run here (no {arch} machine), so the {arch} outcome is judged against what \
DKMS would do on one, by these rules, in this order (`judge` in `xtask/src/dkms_cross.rs`):

- **builds on both**: hermod built it for {arch}, and hermod or DKMS built it for amd64. Where \
  the module lists differ, the note names the modules amd64 has more of.
- **skipped as declared**: hermod skipped it because its `BUILD_EXCLUSIVE_ARCH` does not match \
  `aarch64`. hermod's `$arch` is the recipe's `machine`, `aarch64`, what `uname -m` says on an \
  arm64 machine, and DKMS matches `BUILD_EXCLUSIVE_ARCH` against `uname -m`, so DKMS on an arm64 \
  machine skips it too. Likewise a `BUILD_EXCLUSIVE_CONFIG` the arm64 kernel's config does not \
  meet: DKMS reads the same config, from the same headers package.
- **fails on both**: not built for {arch}, and built by neither hermod nor DKMS for amd64.
- **x86-only source**: failed for {arch}, built for amd64, and the first error is a compiler \
  error in the module's own source file (`FILE.c:LINE:COL: error: …`) naming x86-only things \
  (x86 `asm/` headers such as `asm/msr.h`, or any `asm/` header the {arch} kernel headers lack, \
  cpuid, rdmsr/wrmsr, `x86`, `boot_cpu_data`, x86 inline-asm constraints). DKMS on an arm64 machine compiles the same code with the same \
  compiler version and fails the same way.
- **builds on arm64 only**: built for {arch}, failed or skipped for amd64.
- **runs target programs**: failed for {arch}, built for amd64, at a configure step that runs a program it compiled (\"cannot run C compiled programs\"): a machine of that architecture runs it; the amd64 master cannot (no emulation in the sandbox). A limit of cross building, not of the source.
- **cross problem**: anything else that failed for {arch} and built for amd64: a missing tool, \
  a wrong ARCH, a Makefile asking `uname -m`, … Each is looked at in the notes below: is it \
  hermod's cross root, or the source?
";

#[cfg(test)]
mod tests {
    use super::*;

    fn side(outcome: Outcome, modules: &[&str], cause: Option<&str>) -> Side {
        Side {
            outcome,
            modules: modules.iter().map(|m| m.to_string()).collect(),
            seconds: 1.5,
            cause: cause.map(str::to_owned),
        }
    }

    const NATIVE: &str = "# DKMS corpus (trixie)\n\n- kernel: `6.12.118+deb13-amd64`\n\n\
| package | version | modules | hermod | DKMS | difference / cause |\n|---|---|---|---|---|---|\n\
| acpi-call-dkms | 1.2.2-2.1 | acpi_call | built 2.9 s | built 4.2 s |  |\n\
| ddcci-dkms | 0.4.5-1 | ddcci, ddcci-backlight | built 4.5 s | built 8.9 s |  |\n\
| lttng-modules-dkms | 2.13.18-1 |  | failed 56.4 s | failed 255.6 s | both failed; hermod failed: exit 5: make failed: x.h:1:6: error: conflicting types \\| a; b; DKMS failed: exit 10: make failed: x |\n\
| tp-smapi-dkms | 0.44-1.2 | hdaps, thinkpad_ec, tp_smapi | built 9.4 s | built 4.6 s |  |\n\
| r8125-dkms | 9.015.00-1 | r8125 | built 15.0 s | built 25.3 s |  |\n\
\n## Where hermod and DKMS differ\n\n- **x**: y\n";

    #[test]
    fn the_native_report_is_parsed() {
        let (kernel, rows) = parse_native(NATIVE);
        assert_eq!(kernel.as_deref(), Some("6.12.118+deb13-amd64"));
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[1].modules, ["ddcci", "ddcci-backlight"]);
        assert_eq!(rows[1].hermod, Some(Outcome::Built));
        let lttng = &rows[2];
        assert_eq!((lttng.hermod, lttng.dkms), (Some(Outcome::Failed), Some(Outcome::Failed)));
        assert_eq!(
            lttng.hermod_cause.as_deref(),
            Some("exit 5: make failed: x.h:1:6: error: conflicting types | a; b")
        );
        assert_eq!(lttng.version, "2.13.18-1");
    }

    #[test]
    fn outcomes_are_judged() {
        let (_, native) = parse_native(NATIVE);
        let row = |name: &str| native.iter().find(|n| n.package == name);
        assert_eq!(judge(&side(Outcome::Built, &["acpi_call"], None), row("acpi-call-dkms")), Judgement::BuildsOnBoth);
        let declared = side(Outcome::Skipped, &[], Some("BUILD_EXCLUSIVE_ARCH=\"x86_64\" does not match aarch64"));
        assert_eq!(judge(&declared, row("tp-smapi-dkms")), Judgement::SkippedAsDeclared);
        assert_eq!(judge(&declared, None), Judgement::SkippedAsDeclared);
        let config =
            side(Outcome::Skipped, &[], Some("BUILD_EXCLUSIVE_CONFIG: CONFIG_HDLC is not y or m in kernel k's config"));
        assert_eq!(judge(&config, row("ddcci-dkms")), Judgement::SkippedAsDeclared);
        let kernel_skip = side(Outcome::Skipped, &[], Some("BUILD_EXCLUSIVE_KERNEL=\"^5\" does not match 6.12"));
        assert_eq!(judge(&kernel_skip, row("acpi-call-dkms")), Judgement::CrossProblem);
        let both = side(Outcome::Failed, &[], Some("exit 5: make failed: a.c:1:1: error: x"));
        assert_eq!(judge(&both, row("lttng-modules-dkms")), Judgement::FailsOnBoth);
        let x86 = side(
            Outcome::Failed,
            &[],
            Some("exit 5: make failed: thinkpad_ec.c:9:10: fatal error: asm/msr.h: No such file"),
        );
        assert_eq!(judge(&x86, row("tp-smapi-dkms")), Judgement::X86OnlySource);
        let rtc = side(
            Outcome::Failed,
            &[],
            Some("exit 5: make failed: mc146818rtc.h:16:10: fatal error: asm/mc146818rtc.h: No such file or directory"),
        );
        assert_eq!(judge(&rtc, row("tp-smapi-dkms")), Judgement::X86OnlySource);
        let tool = side(
            Outcome::Failed,
            &[],
            Some("exit 5: make failed: make: x86_64-linux-gnu-gcc: No such file or directory"),
        );
        assert_eq!(judge(&tool, row("r8125-dkms")), Judgement::CrossProblem, "not at a source file: the setup");
        let flags = side(
            Outcome::Failed,
            &[],
            Some("exit 5: make failed: gcc: error: unrecognized command-line option '-mno-red-zone'"),
        );
        assert_eq!(judge(&flags, row("r8125-dkms")), Judgement::CrossProblem);
        let runs =
            side(Outcome::Failed, &[], Some("exit 5: make failed: configure: error: cannot run C compiled programs."));
        assert_eq!(judge(&runs, row("r8125-dkms")), Judgement::RunsTargetPrograms);
        assert_eq!(judge(&side(Outcome::Built, &[], None), row("lttng-modules-dkms")), Judgement::Arm64Only);
        assert_eq!(judge(&side(Outcome::Built, &[], None), None), Judgement::NoAmd64Row);
    }

    #[test]
    fn the_report_says_what_was_judged_and_what_is_missing() {
        let (native_kernel, native) = parse_native(NATIVE);
        let row = |name: &str, side: Option<Side>| Row {
            package: name.into(),
            version: "1".into(),
            hermod: side,
            dkms: None,
        };
        let report = CrossReport {
            run_name: "trixie-arm64".into(),
            flags: "--release trixie --arch arm64".into(),
            arch: "arm64".into(),
            kernel: "6.12.118+deb13-arm64".into(),
            identity: "0".repeat(64),
            sources: vec!["http://deb.debian.org/debian trixie (main)".into()],
            components: vec!["main".into()],
            component_of: Vec::new(),
            excluded: Vec::new(),
            hermod_commits: vec![("abc".into(), 3)],
            hermod_seconds: Some(12.0),
            hermod_reused: 0,
            rows: vec![
                row("acpi-call-dkms", Some(side(Outcome::Built, &["acpi_call"], None))),
                row("ddcci-dkms", Some(side(Outcome::Built, &["ddcci"], None))),
                row(
                    "tp-smapi-dkms",
                    Some(side(Outcome::Skipped, &[], Some("BUILD_EXCLUSIVE_ARCH=\"x86_64\" does not match aarch64"))),
                ),
                row("lttng-modules-dkms", Some(side(Outcome::Failed, &[], Some("exit 5: make failed: e")))),
                row("r8125-dkms", None),
            ],
            native_file: "dkms-corpus-trixie.md".into(),
            native_kernel,
            native,
        };
        assert_eq!(report.missing(), ["r8125-dkms"]);
        assert_eq!(
            report.summary(),
            "5 packages; hermod arm64: 2 built, 1 skipped, 1 failed, 1 not run; builds on both 2, skipped as declared 1, fails on both 1"
        );
        let md = report.markdown(
            "x\n<!-- notes: kept when the report is regenerated -->\nkept note\n<!-- end of notes -->\n",
            "today",
        );
        assert!(
            md.contains("**Partial report**: 1 of 5 packages have no arm64 result yet (`not run`): `r8125-dkms`."),
            "{md}"
        );
        assert!(md.contains("| ddcci-dkms | 1 | ddcci | built 1.5 s | built | built | builds on both | amd64 also builds ddcci-backlight |"), "{md}");
        assert!(md.contains("| tp-smapi-dkms | 1 |  | skipped 1.5 s | built | built | skipped as declared | BUILD_EXCLUSIVE_ARCH=\"x86_64\" does not match aarch64 |"), "{md}");
        assert!(md.contains("fails on both | exit 5: make failed: e (amd64: exit 5: make failed: x.h:1:6: error: conflicting types \\| a; b) |"), "{md}");
        assert!(md.contains("| r8125-dkms | 1 |  | not run | built | built |  |  |"), "{md}");
        assert!(md.contains("(kernel `6.12.118+deb13-amd64`)"));
        assert!(md.contains("kept note"));
        assert!(md.contains("commit `abc`"));
        assert!(report.table().lines().count() == 7);
    }
}
