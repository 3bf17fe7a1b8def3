//! `cargo xtask tidy`: invariants of ARCHITECTURE.md that a reader of one file
//! cannot see, checked over the whole tree (also a unit test, so
//! `cargo test --workspace` runs it), then rustfmt and clippy.
//!
//! - All `unsafe` lives in `sandbox/` (invariant: the other crates are safe Rust):
//!   no `unsafe` block, fn or impl outside it, and every other crate's root
//!   (`lib.rs`, `main.rs`, `build.rs`) says `#![forbid(unsafe_code)]`, so the
//!   compiler holds it too.
//! - Every `unsafe` block, fn or impl in `sandbox/` has a `// SAFETY:` comment
//!   in the comment lines just above it.
//! - Invariant 15: the modules that handle trees other users can write reach
//!   them only through `hermod-hostfs`; `walkdir` and path-based `std::fs`
//!   calls that follow links (`set_permissions`, `read_link`, `fs::copy`,
//!   `symlink_metadata`, `read_dir`) do not appear in them.
//! - Settings are read once, in `cli`, and user-facing lines go through
//!   `say.rs`: no environment read outside `ENV_ALLOWED`, no `eprintln!`
//!   outside `STDERR_ALLOWED` (test code aside).
//! - The codemap is complete: every `.rs` and `.sh` file under
//!   `{builder,sandbox,hostfs,xtask}/src` is named in ARCHITECTURE.md, by its
//!   path relative to the crate's `src/` (`rootfs/cas.rs`; a `mod.rs` also by
//!   its directory, `rootfs/`) as a whole word in its crate's `### `crate/``
//!   section (anywhere for a crate without one), or by its repository path.
//! - The builder's module graph (`modgraph.rs`): no cycle between its
//!   top-level modules, nor between the files of one directory (edges to and
//!   from a directory's `mod.rs`, its facade, aside); every top-level module
//!   in one of `LAYERS`, and none using one of a higher layer.
//! - `run` only: `cargo fmt --all -- --check` and
//!   `cargo clippy --workspace --all-targets -- -D warnings`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::modgraph;

/// Where the builder may read the environment: settings are resolved once in
/// `cli` (flags, environment, config file) and passed down; `main.rs` reads
/// `NO_COLOR`. `verify/` reads the caller's environment on purpose (it varies
/// it, and finds diffoscope on PATH).
const ENV_ALLOWED: &[&str] =
    &["builder/src/cli/", "builder/src/main.rs", "builder/src/verify/conditions.rs", "builder/src/verify/mod.rs"];

/// Where the builder may print to stderr itself: user-facing lines go through
/// `say.rs`, `cli/` and `main.rs` included; `interrupt.rs` prints from its
/// signal thread.
const STDERR_ALLOWED: &[&str] = &[
    "builder/src/say.rs",
    "builder/src/interrupt.rs",
    // Test modules (`#[cfg(test)] mod live;`; files named `*tests.rs` are skipped).
    "builder/src/apt/live.rs",
];

/// Modules that handle untrusted trees on the host (invariant 15).
const UNTRUSTED_TREE_MODULES: &[&str] = &[
    "builder/src/source.rs",
    "builder/src/input.rs",
    "builder/src/build.rs",
    "builder/src/sandbox_io.rs",
    "builder/src/verify/conditions.rs",
];

/// The top-level modules of `builder/src`, by layer, bottom to top (see
/// ARCHITECTURE.md, "Layers of `builder/`"): a module may use the modules of
/// its own layer and of the layers below it, never above. Every top-level
/// module must be in exactly one layer (a new module is placed on purpose).
const LAYERS: &[&[&str]] = &[
    &[
        "exit",
        "failures",
        "bounded",
        "limits",
        "interrupt",
        "store",
        "flock",
        "compress",
        "module_signing",
        "source",
        "dkms",
        "apt",
        "debpkg",
        "key",
        "keyinfo",
        "sandbox_io",
        "bombs",
        "fuzzing",
        "say",
        "watch",
        "work",
    ],
    &["rootfs", "platform", "config", "cache", "trust", "shared_cache", "build", "build_script"],
    &["input", "pipeline"],
    &["oci_bundle", "plan", "load_test", "verify", "farm", "repo", "sync", "cache_admin", "status"],
    &["cli"],
];

/// Path-based calls that resolve (and follow) names on every call.
const PATH_CALLS: &[&str] =
    &["walkdir::", "fs::set_permissions(", "fs::read_link(", "fs::copy(", "fs::symlink_metadata(", "fs::read_dir("];

/// The crates' source trees the checks read.
const SOURCE_DIRS: &[&str] = &["builder/src", "sandbox/src", "hostfs/src", "xtask/src"];

/// Cycles in the builder's module graph fail tidy (false: printed as
/// warnings, for a restructuring in progress).
const ENFORCE_ACYCLIC: bool = true;

pub fn run() -> Result<()> {
    let root = crate::repo_root();
    let report = check(&root)?;
    for w in &report.warnings {
        eprintln!("tidy: warning: {w}");
    }
    let mut problems = report.problems;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let commands: [(&str, &[&str], &str); 2] = [
        ("rustfmt", &["fmt", "--all", "--", "--check"], "the diffs above name file:line; run `cargo fmt --all`"),
        (
            "clippy",
            &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
            "the errors above name file:line",
        ),
    ];
    for (name, args, hint) in commands {
        eprintln!("tidy: cargo {}", args.join(" "));
        let status = Command::new(&cargo)
            .args(args)
            .current_dir(&root)
            .status()
            .with_context(|| format!("running cargo {}", args.join(" ")))?;
        if !status.success() {
            problems.push(format!("{name} failed ({hint})"));
        }
    }
    for p in &problems {
        eprintln!("tidy: {p}");
    }
    if !problems.is_empty() {
        bail!("{} tidy problem(s)", problems.len());
    }
    println!("tidy: ok");
    Ok(())
}

#[derive(Debug, Default)]
struct Report {
    /// Each fails tidy.
    problems: Vec<String>,
    /// Printed only (the module cycles while `ENFORCE_ACYCLIC` is false).
    warnings: Vec<String>,
}

fn check(root: &Path) -> Result<Report> {
    let mut report = Report::default();
    let problems = &mut report.problems;
    let codemap = std::fs::read_to_string(root.join("ARCHITECTURE.md")).context("reading ARCHITECTURE.md")?;
    for file in source_files(root)? {
        let rel = file.strip_prefix(root)?.to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file)?;
        if let Some(problem) = unmapped(&rel, &codemap) {
            problems.push(problem);
        }
        if !rel.ends_with(".rs") {
            continue;
        }
        let code = code_only(&text);
        if !rel.starts_with("sandbox/") {
            for (n, _) in unsafe_lines(&code) {
                problems.push(format!("{rel}:{}: `unsafe` outside sandbox/", n + 1));
            }
        }
        if rel.starts_with("builder/src/") && !rel.ends_with("tests.rs") {
            // Test code may do either (a test's own skips and environment).
            let checks: [(&[&str], &[&str], &str); 2] = [
                (
                    ENV_ALLOWED,
                    &["std::env::var", "env::var_os(", "env::var("],
                    "below cli/ (read settings in cli and pass them down)",
                ),
                (STDERR_ALLOWED, &["eprintln!(", "eprint!("], "outside say.rs (print through say.rs)"),
            ];
            let code = modgraph::without_cfg_test(&code);
            for (allowed, calls, why) in checks {
                if allowed.iter().any(|a| rel.starts_with(a)) {
                    continue;
                }
                for (n, line) in code.lines().enumerate() {
                    for call in calls {
                        if line.contains(call) {
                            problems.push(format!("{rel}:{}: `{call}` {why}", n + 1));
                        }
                    }
                }
            }
        }
        if UNTRUSTED_TREE_MODULES.contains(&rel.as_str()) {
            let code = modgraph::without_cfg_test(&code);
            for (n, line) in code.lines().enumerate() {
                for call in PATH_CALLS {
                    if line.contains(call) {
                        problems.push(format!(
                            "{rel}:{}: `{call}` in a module that handles untrusted trees (use hermod-hostfs)",
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    for file in sandbox_files(root)? {
        let rel = file.strip_prefix(root)?.to_string_lossy().into_owned();
        problems.extend(missing_safety_comments(&rel, &std::fs::read_to_string(&file)?));
    }
    for rel in crate_roots(root)? {
        let text = std::fs::read_to_string(root.join(&rel))?;
        if !code_only(&text).contains("#![forbid(unsafe_code)]") {
            problems.push(format!("{rel}:1: no `#![forbid(unsafe_code)]` (only sandbox/ may use `unsafe`)"));
        }
    }
    let builder = modgraph::Crate::read(&root.join("builder/src"))?;
    let graphs = builder.graphs("builder/src/");
    for (scope, graph) in &graphs {
        // Inside a directory, `mod.rs` is the facade: it declares and
        // re-exports its children, which use its error type and shared items.
        // Those edges are the directory's shape, not a cycle; the children
        // among themselves must not form one.
        let siblings: modgraph::Graph;
        let graph = if scope.is_empty() {
            graph
        } else {
            siblings = graph
                .iter()
                .filter(|(file, _)| !file.ends_with("mod.rs"))
                .map(|(file, uses)| {
                    let uses = uses.iter().filter(|(to, _)| !to.ends_with("mod.rs"));
                    (file.clone(), uses.map(|(to, at)| (to.clone(), at.clone())).collect())
                })
                .collect();
            &siblings
        };
        for cycle in modgraph::cycles(graph) {
            let what = if scope.is_empty() {
                "builder's top-level modules".to_string()
            } else {
                format!("the files of builder/src/{scope}")
            };
            let message = format!(
                "cycle between {what} {} (shortest: {}):\n    {}",
                cycle.join(", "),
                modgraph::shortest_cycle(graph, &cycle).join(" -> "),
                modgraph::describe(graph, &cycle).join("\n    ")
            );
            if ENFORCE_ACYCLIC {
                problems.push(message);
            } else {
                report.warnings.push(message);
            }
        }
    }
    report.problems.extend(modgraph::layer_violations(&graphs[0].1, LAYERS));
    Ok(report)
}

/// `Some(problem)` if ARCHITECTURE.md does not name `rel` (a repository path
/// under one of `SOURCE_DIRS`); see the module doc for the rule.
fn unmapped(rel: &str, codemap: &str) -> Option<String> {
    let (krate, in_src) = rel.split_once("/src/")?;
    let section = section_of(codemap, krate).unwrap_or(codemap);
    let mut names = vec![in_src.to_owned()];
    if let Some(dir) = in_src.strip_suffix("mod.rs") {
        if !dir.is_empty() {
            names.push(dir.to_owned());
        }
    }
    if names.iter().any(|n| mentions(section, n)) || mentions(codemap, rel) {
        return None;
    }
    Some(format!("{rel}:1: not named in ARCHITECTURE.md (add `{in_src}` to the {krate} codemap)"))
}

/// The text of `### `crate/`` up to the next heading of that level or above.
fn section_of<'a>(codemap: &'a str, krate: &str) -> Option<&'a str> {
    let start = codemap.find(&format!("\n### `{krate}/`"))? + 1;
    let rest = &codemap[start..];
    // `####` subsections belong to the crate's section.
    let end = ["\n# ", "\n## ", "\n### "].iter().filter_map(|h| rest[1..].find(h)).min().map_or(rest.len(), |e| e + 1);
    Some(&rest[..end])
}

/// Whether `name` occurs in `text` as a whole word: not the tail of a longer
/// path or name, not followed by more of a name.
fn mentions(text: &str, name: &str) -> bool {
    let path_char = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !before.is_some_and(path_char) && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Line indices (0-based) of `unsafe` blocks, fns, impls and traits in
/// code-only text.
fn unsafe_lines(code: &str) -> Vec<(usize, &str)> {
    code.lines()
        .enumerate()
        .filter(|(_, line)| {
            line.match_indices("unsafe").any(|(i, _)| {
                let before = line[..i].chars().next_back();
                let rest = line[i + "unsafe".len()..].trim_start();
                !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                    && (rest.starts_with('{')
                        || ["fn ", "impl", "trait ", "extern "].iter().any(|k| rest.starts_with(k))
                        || (rest.is_empty() && line.trim_end().ends_with("unsafe")))
            })
        })
        .collect()
}

/// Every `unsafe` in `text` (the file `rel`) without a `// SAFETY:` comment
/// in the comment lines just above it (an `unsafe fn` may say `# Safety` in
/// its doc instead).
fn missing_safety_comments(rel: &str, text: &str) -> Vec<String> {
    let code = code_only(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut problems = Vec::new();
    for (n, code_line) in unsafe_lines(&code) {
        let comments = lines[..n].iter().rev().map(|l| l.trim_start()).take_while(|l| l.starts_with("//"));
        let explained = comments.into_iter().any(|c| {
            c.contains("SAFETY:") || (code_line.contains("unsafe fn") && c.starts_with("///") && c.contains("# Safety"))
        });
        if !explained {
            problems.push(format!("{rel}:{}: `unsafe` without a `// SAFETY:` comment just above it", n + 1));
        }
    }
    problems
}

/// The crate roots of the workspace members other than sandbox/.
fn crate_roots(root: &Path) -> Result<Vec<String>> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let members = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("members = ["))
        .and_then(|l| l.strip_suffix(']'))
        .context("Cargo.toml: no one-line `members = [...]`")?;
    let members = members.split(',').map(|m| m.trim().trim_matches('"')).filter(|m| !m.is_empty());
    let mut roots = Vec::new();
    for member in members.filter(|m| *m != "sandbox") {
        for file in ["src/lib.rs", "src/main.rs", "build.rs"] {
            if root.join(member).join(file).exists() {
                roots.push(format!("{member}/{file}"));
            }
        }
    }
    Ok(roots)
}

/// Rust source with comments, string and character literals blanked
/// (newlines kept, so line numbers stay): what the checks search for code.
pub fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let prev_ident = i > 0 && ident(chars[i - 1]);
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                blank(&mut out, chars[i]);
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
            continue;
        }
        // Raw strings: r"…", r#"…"#, br"…", cr"…".
        let raw_at = match (c, next) {
            ('r', _) if !prev_ident => Some(i + 1),
            ('b' | 'c', Some('r')) if !prev_ident => Some(i + 2),
            _ => None,
        };
        if let Some(j) = raw_at {
            let hashes = chars[j..].iter().take_while(|c| **c == '#').count();
            if chars.get(j + hashes) == Some(&'"') {
                let close: String = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
                out.extend(&chars[i..j + hashes + 1]);
                i = j + hashes + 1;
                while i < chars.len() && !chars[i..].starts_with(&close.chars().collect::<Vec<_>>()) {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
                out.push_str(&close);
                i += close.chars().count();
                continue;
            }
        }
        if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
            continue;
        }
        if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'); otherwise a lifetime.
            let end = if next == Some('\\') {
                chars[i + 2..].iter().position(|c| *c == '\'').map(|p| i + 2 + p)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            if let Some(end) = end {
                out.push('\'');
                for c in &chars[i + 1..end] {
                    blank(&mut out, *c);
                }
                out.push('\'');
                i = end + 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// The `.rs` files and the `.sh` files (`include_str!`ed) of `SOURCE_DIRS`.
fn source_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for top in SOURCE_DIRS {
        files.extend(files_under(&root.join(top), &["rs", "sh"])?);
    }
    Ok(files)
}

/// The Rust files of sandbox/ (its sources and its tests).
fn sandbox_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = files_under(&root.join("sandbox/src"), &["rs"])?;
    files.extend(files_under(&root.join("sandbox/tests"), &["rs"])?);
    Ok(files)
}

fn files_under(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| extensions.iter().any(|x| e == *x)) {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_is_tidy() {
        let report = check(&crate::repo_root()).unwrap();
        for w in &report.warnings {
            eprintln!("tidy: warning: {w}");
        }
        assert!(report.problems.is_empty(), "{}", report.problems.join("\n"));
    }

    #[test]
    fn code_only_blanks_comments_strings_and_chars() {
        let text = "let a = \"unsafe { // \\\" x\"; // unsafe {\n/* unsafe\n */ let b = '{'; let c: &'a str = r#\"unsafe \"# ;";
        let code = code_only(text);
        assert_eq!(code.lines().count(), text.lines().count());
        assert!(!code.contains("unsafe"), "{code}");
        assert!(!code.contains('{'), "{code}");
        assert!(code.contains("&'a str"), "{code}");
        assert!(code.contains("let b"), "{code}");
    }

    #[test]
    fn unsafe_needs_a_safety_comment_just_above() {
        let text = "fn f() {\n    // SAFETY: fine.\n    // More words.\n    unsafe { g() };\n\n    // Not a reason.\n    let x = unsafe { h() };\n    // SAFETY: too far.\n    let y = 1;\n    unsafe { i() }\n}\n";
        assert_eq!(
            missing_safety_comments("f.rs", text),
            [
                "f.rs:7: `unsafe` without a `// SAFETY:` comment just above it",
                "f.rs:10: `unsafe` without a `// SAFETY:` comment just above it"
            ]
        );
        assert!(unsafe_lines(&code_only("let s = \"unsafe {\"; // unsafe {\n#![forbid(unsafe_code)]\n")).is_empty());
    }

    #[test]
    fn codemap_names_files_by_crate_section() {
        let codemap = "# A\n### `builder/` — x\n| `rootfs/cas.rs` | y |\n| `apt/` | z |\n### `sandbox/` — s\n| `lib.rs` |\n## Other\nsee `xtask/src/tidy.rs` and `bench.rs`\n";
        assert_eq!(unmapped("builder/src/rootfs/cas.rs", codemap), None);
        assert_eq!(unmapped("builder/src/apt/mod.rs", codemap), None);
        assert_eq!(unmapped("sandbox/src/lib.rs", codemap), None);
        // Another crate's `lib.rs`, or a longer path's tail, does not count.
        assert!(unmapped("builder/src/lib.rs", codemap).is_some());
        assert!(unmapped("builder/src/cas.rs", codemap).is_some());
        assert_eq!(unmapped("xtask/src/tidy.rs", codemap), None);
        assert_eq!(unmapped("xtask/src/bench.rs", codemap), None);
        assert_eq!(
            unmapped("xtask/src/main.rs", codemap).unwrap(),
            "xtask/src/main.rs:1: not named in ARCHITECTURE.md (add `main.rs` to the xtask codemap)"
        );
    }
}
