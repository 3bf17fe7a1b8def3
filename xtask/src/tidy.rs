//! `cargo xtask tidy`: invariants of ARCHITECTURE.md that a reader of one file
//! cannot see, checked over the whole tree (also a unit test, so
//! `cargo test --workspace` runs it).
//!
//! - All `unsafe` lives in `sandbox/` (invariant: the other crates are safe Rust).
//! - Invariant 15: the modules that handle trees other users can write reach
//!   them only through `hermod-hostfs`; `walkdir` and path-based `std::fs`
//!   calls that follow links (`set_permissions`, `read_link`, `fs::copy`,
//!   `symlink_metadata`, `read_dir`) do not appear in them.
//! - The layers of `builder/` (ARCHITECTURE.md): a top-level module uses only
//!   modules of its own layer or below, and no two use each other, even
//!   through others.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// Modules that handle untrusted trees on the host (invariant 15).
const UNTRUSTED_TREE_MODULES: &[&str] = &[
    "builder/src/source.rs",
    "builder/src/input.rs",
    "builder/src/build.rs",
    "builder/src/sandbox_io.rs",
    "builder/src/verify/conditions.rs",
];

/// The top-level modules of `builder/src`, by layer, bottom to top (see
/// ARCHITECTURE.md, "Layers of `builder/`"). A new module must be placed.
const LAYERS: &[&[&str]] = &[
    &[
        "exit",
        "bounded",
        "limits",
        "interrupt",
        "store",
        "flock",
        "compress",
        "signing",
        "source",
        "dkms",
        "apt",
        "debpkg",
        "key",
        "keyinfo",
        "sandbox_io",
        "bombs",
        "fuzzing",
    ],
    &["rootfs", "platform", "config", "cache", "trust", "remote", "build", "build_script"],
    &["input", "pipeline"],
    &["oci_bundle", "plan", "bootcheck", "verify", "farm", "repo", "cache_admin"],
    &["cli"],
];

/// Path-based calls that resolve (and follow) names on every call.
const PATH_CALLS: &[&str] =
    &["walkdir::", "fs::set_permissions(", "fs::read_link(", "fs::copy(", "fs::symlink_metadata(", "fs::read_dir("];

pub fn run() -> Result<()> {
    let problems = check(&crate::repo_root())?;
    for p in &problems {
        eprintln!("tidy: {p}");
    }
    if !problems.is_empty() {
        bail!("{} tidy problem(s)", problems.len());
    }
    println!("tidy: ok");
    Ok(())
}

fn check(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for file in rust_files(root)? {
        let rel = file.strip_prefix(root)?.to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file)?;
        let code = without_tests(&text);
        if !rel.starts_with("sandbox/") && !rel.starts_with("xtask/src/tidy.rs") {
            for (n, line) in code.lines().enumerate() {
                let line = line.split("//").next().unwrap_or("");
                if ["unsafe {", "unsafe fn", "unsafe impl"].iter().any(|u| line.contains(u)) {
                    problems.push(format!("{rel}:{}: `unsafe` outside sandbox/", n + 1));
                }
            }
        }
        if UNTRUSTED_TREE_MODULES.contains(&rel.as_str()) {
            for (n, line) in code.lines().enumerate() {
                for call in PATH_CALLS {
                    if line.split("//").next().unwrap_or("").contains(call) {
                        problems.push(format!(
                            "{rel}:{}: `{call}` in a module that handles untrusted trees (use hermod-hostfs)",
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    problems.extend(layer_problems(root)?);
    Ok(problems)
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Upward uses and cycles among `builder/src`'s top-level modules, from the
/// `crate::NAME` paths of their code (comments and tests left out: a doc
/// link or a test may point anywhere).
fn layer_problems(root: &Path) -> Result<Vec<String>> {
    use std::collections::{BTreeMap, BTreeSet};
    let src = root.join("builder/src");
    let mut problems = Vec::new();
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(root)?.into_iter().filter(|f| f.starts_with(&src)) {
        let rel = file.strip_prefix(&src)?.to_string_lossy().into_owned();
        let name = rel.split('/').next().unwrap_or("").trim_end_matches(".rs").to_owned();
        if name == "main" || name == "lib" || rel.ends_with("tests.rs") {
            continue;
        }
        if layer_of(&name).is_none() {
            problems.push(format!("builder/src/{rel}: module `{name}` has no layer in tidy.rs's LAYERS"));
            continue;
        }
        let text = std::fs::read_to_string(&file)?;
        for (n, line) in without_tests(&text).lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let used: String =
                    code[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if used == name || used.is_empty() {
                    continue;
                }
                match (layer_of(&name), layer_of(&used)) {
                    (Some(mine), Some(theirs)) if theirs > mine => problems.push(format!(
                        "builder/src/{rel}:{}: `{name}` (layer {}) uses `{used}` (layer {})",
                        n + 1,
                        mine + 1,
                        theirs + 1
                    )),
                    _ => {}
                }
                uses.entry(name.clone()).or_default().insert(used);
            }
        }
    }
    // A cycle within a layer: a module that reaches itself.
    for start in uses.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = uses[start].iter().collect();
        while let Some(m) = todo.pop() {
            if m == start {
                problems.push(format!("builder/src: `{start}` uses itself through other modules (a cycle)"));
                break;
            }
            if seen.insert(m) {
                todo.extend(uses.get(m).into_iter().flatten());
            }
        }
    }
    Ok(problems)
}

/// The text before a `#[cfg(test)]` module: tests build their fixtures by path.
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests").map_or(text, |i| &text[..i])
}

fn rust_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for top in ["builder/src", "sandbox/src", "hostfs/src", "xtask/src"] {
        for entry in walkdir::WalkDir::new(root.join(top)).sort_by_file_name() {
            let entry = entry?;
            if entry.path().extension().is_some_and(|e| e == "rs") {
                files.push(entry.into_path());
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_tree_is_tidy() {
        let problems = super::check(&crate::repo_root()).unwrap();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
