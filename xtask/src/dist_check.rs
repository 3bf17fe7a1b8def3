//! The checks of hermod's package (see `dist.rs`).
//!
//! - `cargo xtask dist --check`: the package built twice from the same binary,
//!   in two different directories, must be the same bytes (else the files that
//!   differ are listed); then lintian must report no error (its warnings are
//!   printed; docs/farm.md lists each one that stays, with the reason).
//! - `cargo xtask dist --check-binary`: the release binary itself, built twice
//!   from the same commit in two different directories (each with its own
//!   target directory), must be the same bytes, stripped and unstripped. Two
//!   full release builds: slow, so it is run by hand, not by `ci`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};

use crate::dist::{self, Inputs};

/// Builds twice, compares, runs lintian; the package lands in `out`.
pub fn check(inputs: &Inputs, out: &Path) -> Result<PathBuf> {
    let first = tempfile::Builder::new().prefix("hermod-dist-a-").tempdir()?;
    let second = tempfile::Builder::new().prefix("hermod-dist-second-").tempdir()?;
    let deb_a = dist::build(inputs, first.path())?;
    // A deeper directory too: nothing may depend on where the tree is staged.
    let work_b = second.path().join("some/other/place");
    fs::create_dir_all(&work_b)?;
    let deb_b = dist::build(inputs, &work_b)?;
    let (a, b) = (fs::read(&deb_a)?, fs::read(&deb_b)?);
    if a != b {
        let differences = differences(&deb_a, &deb_b)?;
        bail!(
            "the package is not reproducible: two builds from the same binary differ ({} vs {} bytes):\n{}",
            a.len(),
            b.len(),
            differences.join("\n")
        );
    }
    println!(
        "reproducible: two builds are identical, sha256 {} ({} bytes)",
        dist::hex_string(&Sha256::digest(&a)),
        a.len()
    );
    lintian(&deb_a)?;
    dist::build_into(inputs, out)
}

/// lintian with info tags shown; any error fails.
fn lintian(deb: &Path) -> Result<()> {
    let out = Command::new("lintian")
        .args(["--fail-on", "error", "--display-info", "--tag-display-limit", "0"])
        .arg(deb)
        .output()
        .context("running lintian (package lintian)")?;
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    ensure!(out.status.success(), "lintian found errors:\n{report}");
    if report.trim().is_empty() {
        println!("lintian: no errors, no warnings, no info tags");
    } else {
        println!("lintian: no errors; it says:\n{}", report.trim_end());
    }
    Ok(())
}

/// What differs between two packages: ar members, then the entries of each
/// tarball (`dpkg-deb -c`: mode, owner, size, mtime) and the files' contents.
fn differences(a: &Path, b: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let (members_a, members_b) = (ar_members(a)?, ar_members(b)?);
    for (name, hash) in &members_a {
        match members_b.get(name) {
            Some(h) if h == hash => {}
            Some(_) => found.push(format!("ar member {name} differs")),
            None => found.push(format!("ar member {name} only in the first")),
        }
    }
    let (list_a, list_b) = (listing(a)?, listing(b)?);
    for line in list_a.iter().filter(|l| !list_b.contains(l)) {
        found.push(format!("entry differs, first:  {line}"));
    }
    for line in list_b.iter().filter(|l| !list_a.contains(l)) {
        found.push(format!("entry differs, second: {line}"));
    }
    let (tree_a, tree_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    for (deb, tree) in [(a, tree_a.path()), (b, tree_b.path())] {
        run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(tree))?;
    }
    let (hashes_a, hashes_b) = (file_hashes(tree_a.path())?, file_hashes(tree_b.path())?);
    for (path, hash) in &hashes_a {
        if hashes_b.get(path).is_some_and(|h| h != hash) {
            found.push(format!("content differs: /{path}"));
        }
    }
    if found.is_empty() {
        found.push("same members, entries and contents: the compressed streams differ".into());
    }
    Ok(found)
}

fn ar_members(deb: &Path) -> Result<BTreeMap<String, String>> {
    let names = run(Command::new("ar").arg("t").arg(deb))?;
    let mut members = BTreeMap::new();
    for name in names.lines() {
        let bytes = Command::new("ar").arg("p").arg(deb).arg(name).output()?.stdout;
        members.insert(name.to_owned(), dist::hex_string(&Sha256::digest(bytes)));
    }
    Ok(members)
}

fn listing(deb: &Path) -> Result<Vec<String>> {
    Ok(run(Command::new("dpkg-deb").arg("-c").arg(deb))?.lines().map(str::to_owned).collect())
}

fn file_hashes(root: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                todo.push(path);
            } else if entry.file_type()?.is_file() {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, dist::hex_string(&Sha256::digest(fs::read(&path)?)));
            }
        }
    }
    Ok(out)
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Two release builds of HEAD (`git archive`) in two directories; their
/// binaries must be identical. Uses $TMPDIR (two full target directories).
pub fn release_binary_reproducible() -> Result<()> {
    let repo = crate::repo_root();
    let commit = dist::git(&repo, &["rev-parse", "HEAD"])?;
    let mut results = Vec::new();
    for (n, prefix) in [(1, "hermod-repro-a-"), (2, "hermod-repro-second-")] {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let source = dir.path().join(format!("src{n}/hermod"));
        fs::create_dir_all(&source)?;
        let archive = Command::new("git").arg("-C").arg(&repo).args(["archive", "--format=tar", &commit]).output()?;
        ensure!(archive.status.success(), "git archive failed: {}", String::from_utf8_lossy(&archive.stderr));
        let mut tar =
            Command::new("tar").arg("-x").arg("-C").arg(&source).stdin(std::process::Stdio::piped()).spawn()?;
        std::io::Write::write_all(tar.stdin.as_mut().unwrap(), &archive.stdout)?;
        drop(tar.stdin.take());
        ensure!(tar.wait()?.success(), "unpacking the source failed");
        let paths = dist::HostPaths::of(&source, &dir.path().join(format!("target{n}")))?;
        let started = std::time::Instant::now();
        let binary = dist::build_release(&source, &paths)?;
        let stripped = dir.path().join("hermod.stripped");
        let out = Command::new("strip")
            .args(["--remove-section=.comment", "--remove-section=.note", "-o"])
            .arg(&stripped)
            .arg(&binary)
            .output()?;
        ensure!(out.status.success(), "strip failed: {}", String::from_utf8_lossy(&out.stderr));
        let (full, small) = (fs::read(&binary)?, fs::read(&stripped)?);
        println!(
            "build {n} in {}: {:.0} s, unstripped sha256 {} ({} bytes), stripped sha256 {} ({} bytes)",
            source.display(),
            started.elapsed().as_secs_f64(),
            dist::hex_string(&Sha256::digest(&full)),
            full.len(),
            dist::hex_string(&Sha256::digest(&small)),
            small.len()
        );
        results.push((Sha256::digest(&full), Sha256::digest(&small)));
    }
    ensure!(results[0].1 == results[1].1, "the stripped release binaries differ: the build is not reproducible");
    ensure!(
        results[0].0 == results[1].0,
        "the stripped binaries are identical, the unstripped ones (debug info) differ"
    );
    println!("reproducible: the release binary of {commit} is the same bytes from both directories");
    Ok(())
}
