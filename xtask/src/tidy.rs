//! `cargo xtask tidy`: invariants of ARCHITECTURE.md that a reader of one file
//! cannot see, checked over the whole tree (also a unit test, so
//! `cargo test --workspace` runs it).
//!
//! - All `unsafe` lives in `sandbox/` (invariant: the other crates are safe Rust).
//! - Invariant 15: the modules that handle trees other users can write reach
//!   them only through `hermod-hostfs`; `walkdir` and path-based `std::fs`
//!   calls that follow links (`set_permissions`, `read_link`, `fs::copy`,
//!   `symlink_metadata`, `read_dir`) do not appear in them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// Modules that handle untrusted trees on the host (invariant 15).
const UNTRUSTED_TREE_MODULES: &[&str] =
    &["builder/src/source.rs", "builder/src/input.rs", "builder/src/build.rs", "builder/src/verify/conditions.rs"];

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
