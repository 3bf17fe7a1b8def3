//! `cargo xtask dkms-corpus`: the table (terminal), the JSON lines and the
//! committed Markdown report (`docs/dkms-corpus.md`, `docs/dkms-corpus-RELEASE[-backports].md`).

use crate::dkms_corpus::{Outcome, Row, Side};

pub struct Report {
    /// `bookworm`, `trixie`, `trixie-backports`.
    pub release: String,
    /// The components whose `-dkms` packages are the corpus.
    pub components: Vec<String>,
    /// Packages from another component than main, with it.
    pub component_of: Vec<(String, String)>,
    /// `URI SUITE (COMPONENTS)` of every archive read.
    pub sources: Vec<String>,
    /// Whether hermod read a generated config file (else the machine's sources).
    pub generated_config: bool,
    pub kernel: String,
    pub identity: String,
    /// The commits hermod's results were measured at, with how many rows each.
    pub hermod_commits: Vec<(String, usize)>,
    pub dkms_version: Option<String>,
    pub excluded: Vec<(String, String)>,
    pub rows: Vec<Row>,
    /// Wall time of the hermod side (None: nothing built by this run).
    pub hermod_seconds: Option<f64>,
    /// hermod results shown from an earlier run against the same archive and kernel.
    pub hermod_reused: usize,
    /// DKMS results shown from an earlier run against the same root.
    pub dkms_reused: usize,
}

/// Hand-written explanations between these markers survive a regenerated report.
const NOTES_START: &str = "<!-- notes: kept when the report is regenerated -->";
const NOTES_END: &str = "<!-- end of notes -->";

/// `built 3.2 s`, `failed 0.4 s`.
pub fn short(side: &Side) -> String {
    let mut s = format!("{} {:.1} s", outcome_word(side.outcome), side.seconds);
    if let Some(cause) = &side.cause {
        s += &format!(" ({cause})");
    }
    s
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Built => "built",
        Outcome::Skipped => "skipped",
        Outcome::Failed => "failed",
    }
}

fn cell(side: Option<&Side>) -> String {
    side.map_or_else(|| "not run".to_owned(), |s| format!("{} {:.1} s", outcome_word(s.outcome), s.seconds))
}

/// Empty when both sides agree; otherwise what differs and why.
pub fn difference(row: &Row) -> String {
    let why = |who: &str, s: &Side| format!("{who} {}: {}", outcome_word(s.outcome), s.cause.as_deref().unwrap_or("?"));
    match (&row.hermod, &row.dkms) {
        (Some(h), Some(d)) if h.outcome == d.outcome && h.modules == d.modules => match h.outcome {
            Outcome::Built => String::new(),
            _ => format!("both {}; {}; {}", outcome_word(h.outcome), why("hermod", h), why("DKMS", d)),
        },
        (Some(h), Some(d)) if h.outcome == d.outcome => {
            format!("modules differ: hermod {}; DKMS {}", h.modules.join(", "), d.modules.join(", "))
        }
        (Some(h), Some(d)) => [(h, "hermod"), (d, "DKMS")]
            .iter()
            .filter(|(s, _)| s.outcome != Outcome::Built)
            .map(|(s, who)| why(who, s))
            .collect::<Vec<_>>()
            .join("; "),
        (Some(s), None) | (None, Some(s)) if s.outcome != Outcome::Built => {
            why(if row.hermod.is_some() { "hermod" } else { "DKMS" }, s)
        }
        _ => String::new(),
    }
}

fn modules_of(row: &Row) -> &[String] {
    [&row.hermod, &row.dkms].into_iter().flatten().map(|s| s.modules.as_slice()).find(|m| !m.is_empty()).unwrap_or(&[])
}

impl Report {
    fn count(&self, pick: impl Fn(&Row) -> Option<&Side>, outcome: Outcome) -> usize {
        self.rows.iter().filter(|r| pick(r).is_some_and(|s| s.outcome == outcome)).count()
    }

    /// How many sides (hermod or DKMS of a row) have no result.
    pub fn missing(&self) -> usize {
        self.rows.iter().map(|r| usize::from(r.hermod.is_none()) + usize::from(r.dkms.is_none())).sum()
    }

    /// Packages DKMS builds and hermod does not: issue 5 wants none.
    pub fn regressions(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| {
                r.dkms.as_ref().is_some_and(|d| d.outcome == Outcome::Built)
                    && r.hermod.as_ref().is_some_and(|h| h.outcome != Outcome::Built)
            })
            .collect()
    }

    pub fn summary(&self) -> String {
        let side = |name: &str, pick: &dyn Fn(&Row) -> Option<&Side>| {
            if !self.rows.iter().any(|r| pick(r).is_some()) {
                return format!("{name}: not run");
            }
            format!(
                "{name}: {} built, {} skipped, {} failed",
                self.count(pick, Outcome::Built),
                self.count(pick, Outcome::Skipped),
                self.count(pick, Outcome::Failed)
            )
        };
        format!(
            "{} packages; {}; {}; built by DKMS but not by hermod: {}",
            self.rows.len(),
            side("hermod", &|r| r.hermod.as_ref()),
            side("DKMS", &|r| r.dkms.as_ref()),
            self.regressions().len()
        )
    }

    /// The terminal table of the rows `shown` keeps, then the whole corpus's summary.
    pub fn table(&self, shown: &dyn Fn(&Row) -> bool) -> String {
        let mut out = format!(
            "{:<30} {:<22} {:<26} {:<16} {:<16} difference / cause\n",
            "package", "version", "modules", "hermod", "DKMS"
        );
        for row in self.rows.iter().filter(|r| shown(r)) {
            let modules = modules_of(row);
            let shown = match modules.len() {
                0 => "-".to_owned(),
                1..=2 => modules.join(","),
                n => format!("{},… ({n})", modules[0]),
            };
            out += &format!(
                "{:<30} {:<22} {:<26} {:<16} {:<16} {}\n",
                row.package,
                row.version,
                shown,
                cell(row.hermod.as_ref()),
                cell(row.dkms.as_ref()),
                difference(row)
            );
        }
        out + &self.summary() + "\n"
    }

    pub fn json_lines(&self) -> String {
        let mut out = String::new();
        for row in &self.rows {
            let mut v = serde_json::to_value(row).expect("rows serialize");
            v["difference"] = difference(row).into();
            out += &format!("{v}\n");
        }
        let summary = serde_json::json!({
            "summary": self.summary(),
            "release": self.release,
            "kernel": self.kernel,
            "archive": self.identity,
            "hermod_commits": self.hermod_commits,
            "dkms": self.dkms_version,
            "dkms_builds_hermod_does_not": self.regressions().iter().map(|r| &r.package).collect::<Vec<_>>(),
        });
        out + &format!("{summary}\n")
    }

    /// The report; `previous` is the file's old text, whose notes are kept.
    pub fn markdown(&self, previous: &str) -> String {
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let seconds = |s: Option<f64>| s.map_or_else(|| "not run".to_owned(), |s| format!("{s:.0} s"));
        let title = if self.components == ["main"] {
            "every `-dkms` package of main".to_owned()
        } else {
            format!("every `-dkms` package of {}", self.components.join(", "))
        };
        let mut md = format!("# DKMS corpus ({}): hermod and DKMS on {title}\n\n", self.release);
        md += &format!(
            "Generated by `cargo xtask dkms-corpus{}` (see [docs/development.md](development.md)); regenerate it rather than edit \
             the table. Every `*-dkms` binary package of the archive's {} (newest version), \
             built by hermod (`hermod build pkg:NAME`) and by DKMS itself in a throwaway chroot.\n\n",
            self.command_flags(),
            self.components.join(", ")
        );
        if self.missing() > 0 {
            md += &format!(
                "**Partial report**: {} sides of the table were not measured (`not run`).\n\n",
                self.missing()
            );
        }
        md += &format!("- date: {date}\n- kernel: `{}`\n", self.kernel);
        let archives = if self.generated_config {
            format!(
                "a generated hermod config file (`use_system_sources = false`) naming the machine's mirrors with \
                 the suites renamed, as hermod derives them, and every component: {}; DKMS's root reads the same",
                self.sources.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
            )
        } else {
            "the main component of the machine's apt sources".to_owned()
        };
        md += &format!(
            "- archive: {archives}; index identity `{}` \
             (hermod's `Snapshot::identity`: the signed SHA256 of every Packages index read)\n",
            &self.identity
        );
        for (name, component) in &self.component_of {
            md += &format!("- from {component}: `{name}`\n");
        }
        let commits = if self.hermod_commits.is_empty() {
            "not run".to_owned()
        } else if self.hermod_commits.len() == 1 {
            format!("commit `{}`", self.hermod_commits[0].0)
        } else {
            let each: Vec<String> = self.hermod_commits.iter().map(|(c, n)| format!("`{c}` ({n} packages)")).collect();
            format!("commits {}", each.join(", "))
        };
        md += &format!("- hermod: {commits}\n");
        md += &format!(
            "- DKMS: `{}` in an `mmdebstrap --variant=apt` root holding `dkms`, `linux-headers-{}` and their \
             Depends; each package installed with its own Depends (`apt-get install --no-install-recommends`) \
             into its own overlay of that root, then `dkms add` + `dkms build -k {}` (exit 77 = skipped)\n",
            self.dkms_version.as_deref().unwrap_or("not run"),
            self.kernel,
            self.kernel
        );
        let total = |pick: &dyn Fn(&Row) -> Option<&Side>| -> f64 {
            self.rows.iter().filter_map(pick).map(|s| s.seconds).sum()
        };
        let wall = match (self.hermod_seconds, self.hermod_reused) {
            (None, 0) => "the side's wall time not run".to_owned(),
            (None, reused) => format!("all {reused} measured by earlier runs against the same archive and kernel"),
            (Some(_), 0) => format!("the side's wall time {}", seconds(self.hermod_seconds)),
            (Some(_), reused) => format!(
                "the side's wall time {} for the packages this run built; {reused} measured by earlier runs",
                seconds(self.hermod_seconds)
            ),
        };
        md += &format!(
            "- time: hermod {:.0} s summed over the packages (each `hermod build`, its build root included; \
             {}), DKMS {:.0} s summed over the `dkms build` runs (apt-get install not counted; \
             {} of them measured by an earlier run against the same root)\n",
            total(&|r| r.hermod.as_ref()),
            wall,
            total(&|r| r.dkms.as_ref()),
            self.dkms_reused
        );
        for (name, why) in &self.excluded {
            md += &format!("- not in the corpus: `{name}`: {why}\n");
        }
        md += &format!("\n**{}**\n\n", self.summary());
        md += "| package | version | modules | hermod | DKMS | difference / cause |\n|---|---|---|---|---|---|\n";
        for row in &self.rows {
            md += &format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                row.package,
                row.version,
                modules_of(row).join(", "),
                cell(row.hermod.as_ref()),
                cell(row.dkms.as_ref()),
                escape(&difference(row))
            );
        }
        md += "\n## Where hermod and DKMS differ\n\n";
        let differing: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| {
                r.hermod.is_some()
                    && r.dkms.is_some()
                    && !(r.hermod.as_ref().map(|s| (s.outcome, &s.modules))
                        == r.dkms.as_ref().map(|s| (s.outcome, &s.modules)))
            })
            .collect();
        if differing.is_empty() {
            md += "Nowhere: every package has the same outcome and the same modules on both sides.\n";
        }
        for row in differing {
            md += &format!("- **{}**: {}\n", row.package, escape(&difference(row)));
        }
        md += &notes_section(previous);
        md
    }
}

impl Report {
    /// The flags that make this report's corpus (the default run has none).
    fn command_flags(&self) -> String {
        let (release, backports) = match self.release.strip_suffix("-backports") {
            Some(r) => (r, true),
            None => (self.release.as_str(), false),
        };
        let mut flags = String::new();
        if release != "bookworm" || backports || self.generated_config {
            flags += &format!(" --release {release}");
        }
        if backports {
            flags += &format!(" --backports --kernel {}", self.kernel);
        }
        flags
    }
}

/// The hand-written notes of `previous` (a report), between their markers,
/// as the end of a regenerated report (also the cross reports', `dkms_cross.rs`).
pub(crate) fn notes_section(previous: &str) -> String {
    format!("\n{NOTES_START}\n{}\n{NOTES_END}\n", kept_notes(previous))
}

fn kept_notes(previous: &str) -> &str {
    let Some(start) = previous.find(NOTES_START) else { return "" };
    let body = &previous[start + NOTES_START.len()..];
    body[..body.find(NOTES_END).unwrap_or(body.len())].trim()
}

/// A table cell: no pipes, no newlines.
pub(crate) fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(outcome: Outcome, modules: &[&str], cause: Option<&str>) -> Option<Side> {
        Some(Side {
            outcome,
            modules: modules.iter().map(|m| m.to_string()).collect(),
            seconds: 1.0,
            cause: cause.map(str::to_owned),
        })
    }

    fn row(h: Option<Side>, d: Option<Side>) -> Row {
        Row { package: "x-dkms".into(), version: "1".into(), hermod: h, dkms: d }
    }

    #[test]
    fn differences_name_the_side_and_cause() {
        let same = row(side(Outcome::Built, &["a"], None), side(Outcome::Built, &["a"], None));
        assert_eq!(difference(&same), "");
        let worse = row(side(Outcome::Failed, &[], Some("exit 5: make failed: e")), side(Outcome::Built, &["a"], None));
        assert_eq!(difference(&worse), "hermod failed: exit 5: make failed: e");
        let mods = row(side(Outcome::Built, &["a"], None), side(Outcome::Built, &["a", "b"], None));
        assert_eq!(difference(&mods), "modules differ: hermod a; DKMS a, b");
        let report = Report {
            release: "bookworm".into(),
            components: vec!["main".into()],
            component_of: Vec::new(),
            sources: Vec::new(),
            generated_config: false,
            kernel: "k".into(),
            identity: "0".repeat(64),
            hermod_commits: Vec::new(),
            dkms_version: None,
            excluded: Vec::new(),
            rows: vec![worse, same],
            hermod_seconds: None,
            hermod_reused: 0,
            dkms_reused: 0,
        };
        assert_eq!(report.regressions().len(), 1);
        assert!(report.summary().contains("hermod: 1 built, 0 skipped, 1 failed"));
        assert_eq!(report.missing(), 0);
        assert_eq!(report.command_flags(), "");
        let md = report.markdown("");
        assert!(md.starts_with("# DKMS corpus (bookworm): hermod and DKMS on every `-dkms` package of main"));
        assert!(!md.contains("Partial report"));
    }

    #[test]
    fn notes_survive_regeneration() {
        let old = format!("# x\n{NOTES_START}\nopenafs needs libc6-dev.\n{NOTES_END}\n");
        assert_eq!(kept_notes(&old), "openafs needs libc6-dev.");
        assert_eq!(kept_notes("no notes"), "");
    }
}
