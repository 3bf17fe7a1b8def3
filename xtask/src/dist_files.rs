//! The generated files of hermod's package (see `dist.rs`): the man pages from
//! the clap grammar, the copyright file's list of statically linked crates, and
//! the Debian changelog.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use clap::CommandFactory;
use serde_json::Value;

use crate::dist::{MAINTAINER, PACKAGE};

/// The man pages of `hermod::cli::Cli`: `hermod.1` and one page per subcommand
/// (`hermod-build.1`, `hermod-cache-stats.1`…), as `(file name, roff)`, sorted.
pub fn man_pages() -> Result<Vec<(String, Vec<u8>)>> {
    let dir = tempfile::tempdir()?;
    clap_mangen::generate_to(hermod::cli::Cli::command(), dir.path()).context("generating the man pages")?;
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(dir.path())? {
        let entry = entry?;
        let name = entry.file_name().into_string().map_err(|n| anyhow::anyhow!("man page name {n:?}"))?;
        pages.push((name, std::fs::read(entry.path())?));
    }
    pages.sort();
    ensure!(pages.iter().any(|(n, _)| n == "hermod.1"), "clap_mangen wrote no hermod.1");
    Ok(pages)
}

/// The shell completion scripts of `hermod::cli::Cli`, as `(path in the
/// package, script)`: where bash-completion, zsh and fish look for vendors' scripts.
pub fn completions() -> Vec<(&'static str, Vec<u8>)> {
    use clap_complete::Shell;
    [
        (Shell::Bash, "usr/share/bash-completion/completions/hermod"),
        (Shell::Zsh, "usr/share/zsh/vendor-completions/_hermod"),
        (Shell::Fish, "usr/share/fish/vendor_completions.d/hermod.fish"),
    ]
    .into_iter()
    .map(|(shell, path)| {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut hermod::cli::Cli::command(), "hermod", &mut script);
        (path, script)
    })
    .collect()
}

/// `cargo xtask man --out DIR`: the man pages (and completion scripts), as the
/// package installs them, without building the package.
pub fn write_docs(args: &[String]) -> Result<()> {
    let out = match args {
        [flag, dir] if flag == "--out" => Path::new(dir).to_owned(),
        _ => bail!("usage: cargo xtask man --out DIR"),
    };
    let man = out.join("man1");
    std::fs::create_dir_all(&man)?;
    let pages = man_pages()?;
    for (name, page) in &pages {
        std::fs::write(man.join(name), page)?;
    }
    for (path, script) in completions() {
        let file = out.join("completions").join(Path::new(path).file_name().expect("a file name"));
        std::fs::create_dir_all(file.parent().expect("a parent"))?;
        std::fs::write(file, script)?;
    }
    println!(
        "{} man pages in {}; read one with `man -l {}`",
        pages.len(),
        man.display(),
        man.join("hermod.1").display()
    );
    Ok(())
}

/// One crate linked into the binary: name, version, license expression.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkedCrate {
    pub name: String,
    pub version: String,
    pub license: String,
}

/// The crates.io crates in hermod's binary: the normal-dependency closure of
/// the `hermod` package on x86_64 Linux, from `cargo metadata --locked`,
/// without proc-macro crates (they run in the compiler, they are not linked)
/// and without the workspace's own crates (they are hermod's license).
pub fn linked_crates(workspace: &Path) -> Result<Vec<LinkedCrate>> {
    let out = Command::new("cargo")
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .args(["--filter-platform", "x86_64-unknown-linux-gnu"])
        .current_dir(workspace)
        .output()
        .context("running cargo metadata")?;
    ensure!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    linked_crates_of(&serde_json::from_slice(&out.stdout)?)
}

fn linked_crates_of(metadata: &Value) -> Result<Vec<LinkedCrate>> {
    let packages: HashMap<&str, &Value> = metadata["packages"]
        .as_array()
        .context("cargo metadata: no packages")?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .context("cargo metadata: no resolve graph")?
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .context("cargo metadata: no workspace members")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let root = packages
        .values()
        .find(|p| p["name"] == PACKAGE && members.contains(p["id"].as_str().unwrap_or("")))
        .context("cargo metadata: no hermod package in the workspace")?;

    let mut seen = BTreeSet::new();
    let mut todo = vec![root["id"].as_str().unwrap()];
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        let node = nodes.get(id).with_context(|| format!("cargo metadata: {id} is not in the resolve graph"))?;
        for dep in node["deps"].as_array().into_iter().flatten() {
            let normal = dep["dep_kinds"].as_array().into_iter().flatten().any(|k| k["kind"].is_null());
            if normal {
                todo.push(dep["pkg"].as_str().context("cargo metadata: dependency without pkg")?);
            }
        }
    }

    let mut crates = Vec::new();
    for id in seen {
        let package = packages.get(id).with_context(|| format!("cargo metadata: no package {id}"))?;
        let proc_macro = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["kind"].as_array().into_iter().flatten().any(|k| k == "proc-macro"));
        if members.contains(id) || proc_macro {
            continue;
        }
        let name = package["name"].as_str().context("cargo metadata: package without name")?;
        let license = match package["license"].as_str() {
            Some(l) => l.to_owned(),
            None => match package["license_file"].as_str() {
                Some(_) => "see its license file".to_owned(),
                None => bail!("crate {name} declares no license: the copyright file cannot name it"),
            },
        };
        crates.push(LinkedCrate {
            name: name.to_owned(),
            version: package["version"].as_str().unwrap_or("?").to_owned(),
            license,
        });
    }
    crates.sort();
    Ok(crates)
}

/// The copyright file: `template` (dist/copyright) with its ` @CRATES@` line
/// replaced by one continuation line per crate.
pub fn copyright(template: &str, crates: &[LinkedCrate]) -> Result<String> {
    const MARK: &str = "@CRATES@";
    ensure!(
        template.lines().filter(|l| l.trim() == MARK).count() == 1,
        "dist/copyright must hold exactly one line {MARK}"
    );
    let list: String = crates.iter().map(|c| format!(" {} {}: {}\n", c.name, c.version, c.license)).collect();
    Ok(template.lines().map(|l| if l.trim() == MARK { list.clone() } else { format!("{l}\n") }).collect())
}

/// `changelog.Debian`: one entry for this version, dated SOURCE_DATE_EPOCH.
pub fn changelog(version: &str, commit: &str, epoch: u64) -> String {
    format!(
        "{PACKAGE} ({version}) unstable; urgency=medium\n\n  * Built by cargo xtask dist from commit\n    {commit}.\n\n -- {MAINTAINER}  {}\n",
        hermod::debpkg::rfc2822(epoch)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_cover_every_command() {
        let pages = man_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for name in ["hermod.1", "hermod-build.1", "hermod-rootfs.1"] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        let main = String::from_utf8(pages.iter().find(|(n, _)| n == "hermod.1").unwrap().1.clone()).unwrap();
        assert!(main.starts_with(".ie"), "not roff: {}", &main[..main.len().min(80)]);
        assert!(main.contains("hermod\\-build(1)"), "hermod.1 does not refer to hermod-build(1)");
    }

    #[test]
    fn completions_know_every_command() {
        let scripts = completions();
        assert_eq!(scripts.len(), 3);
        let commands: Vec<String> =
            hermod::cli::Cli::command().get_subcommands().map(|c| c.get_name().to_owned()).collect();
        assert!(commands.len() > 10, "{commands:?}");
        for (path, script) in scripts {
            let text = String::from_utf8(script).unwrap();
            for command in &commands {
                assert!(text.contains(command.as_str()), "{path} does not complete {command}");
            }
            assert!(text.contains("--kernel"), "{path} does not complete --kernel");
        }
    }

    /// A resolve graph: hermod → serde (→ serde_derive, a proc macro), →
    /// hermod-sandbox (workspace) → libc; tempfile only as a dev-dependency.
    fn metadata() -> Value {
        let package = |id: &str, license: Option<&str>, kind: &str| {
            serde_json::json!({"id": id, "name": id, "version": "1.0.0", "license": license,
                "targets": [{"kind": [kind]}]})
        };
        let dep = |pkg: &str, kind: Option<&str>| serde_json::json!({"pkg": pkg, "dep_kinds": [{"kind": kind}]});
        serde_json::json!({
            "packages": [
                package("hermod", Some("GPL-2.0-or-later"), "lib"),
                package("hermod-sandbox", Some("GPL-2.0-or-later"), "lib"),
                package("serde", Some("MIT OR Apache-2.0"), "lib"),
                package("serde_derive", Some("MIT OR Apache-2.0"), "proc-macro"),
                package("libc", Some("MIT OR Apache-2.0"), "lib"),
                package("tempfile", Some("MIT OR Apache-2.0"), "lib"),
            ],
            "workspace_members": ["hermod", "hermod-sandbox"],
            "resolve": {"nodes": [
                {"id": "hermod", "deps": [dep("serde", None), dep("hermod-sandbox", None), dep("tempfile", Some("dev"))]},
                {"id": "hermod-sandbox", "deps": [dep("libc", None)]},
                {"id": "serde", "deps": [dep("serde_derive", None)]},
                {"id": "serde_derive", "deps": []},
                {"id": "libc", "deps": []},
                {"id": "tempfile", "deps": []},
            ]}
        })
    }

    #[test]
    fn linked_crates_are_the_normal_closure_without_proc_macros() {
        let names: Vec<String> = linked_crates_of(&metadata()).unwrap().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["libc", "serde"]);
    }

    #[test]
    fn a_crate_without_license_is_refused() {
        let mut m = metadata();
        m["packages"][4]["license"] = Value::Null;
        let err = linked_crates_of(&m).unwrap_err().to_string();
        assert!(err.contains("crate libc declares no license"), "{err}");
    }

    #[test]
    fn the_copyright_template_gets_the_crate_list() {
        let crates =
            [LinkedCrate { name: "libc".into(), version: "0.2.1".into(), license: "MIT OR Apache-2.0".into() }];
        let text = copyright("Comment: linked:\n .\n @CRATES@\n\nFiles: *\n", &crates).unwrap();
        assert_eq!(text, "Comment: linked:\n .\n libc 0.2.1: MIT OR Apache-2.0\n\nFiles: *\n");
        assert!(copyright("no mark\n", &crates).is_err());
    }

    #[test]
    fn the_real_template_has_its_mark() {
        let template = std::fs::read_to_string(crate::repo_root().join("dist/copyright")).unwrap();
        let text = copyright(&template, &[]).unwrap();
        assert!(text.starts_with("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"));
        assert!(text.contains("\nLicense: GPL-2+\n"));
    }

    /// The example the package ships is read by hermod's own config parser.
    #[test]
    fn the_example_config_is_valid() {
        let path = crate::repo_root().join("dist/root/usr/share/doc/hermod/examples/config.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let config = hermod::config::Config::parse(&text, &path).unwrap();
        assert_eq!(config.role, hermod::config::Role::Farm);
        assert_eq!(config.wanted.len(), 1);
        assert_eq!(config.repository.unwrap().suite, "hermod");
        // The commented-out settings are valid too, once uncommented.
        let all: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(setting)
                    if setting
                        .split_once(" = ")
                        .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_')) =>
                {
                    format!("{setting}\n")
                }
                _ => format!("{l}\n"),
            })
            .collect();
        assert_eq!(
            all.lines().filter(|l| l.starts_with("# ")).count() + 15,
            text.lines().filter(|l| l.starts_with("# ")).count()
        );
        let config = hermod::config::Config::parse(&all, &path).unwrap();
        assert!(config.remote.is_some() && config.state_dir.is_some());
        assert_eq!(config.input_limits, hermod::bounded::InputLimits::default(), "the example states the defaults");
    }

    #[test]
    fn changelog_is_dated_by_the_epoch() {
        let c = changelog("0.1.0-1", &"a".repeat(40), 0);
        assert!(c.starts_with("hermod (0.1.0-1) unstable; urgency=medium\n"), "{c}");
        // lintian's debian-changelog-line-too-long: entries wrap at 80.
        assert!(c.lines().filter(|l| l.starts_with("  ")).all(|l| l.len() <= 80), "{c}");
        assert!(c.ends_with(&format!(" -- {MAINTAINER}  Thu, 01 Jan 1970 00:00:00 +0000\n")), "{c}");
    }
}
