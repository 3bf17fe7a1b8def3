//! Lock files: a [`Lock`] as a small, line-oriented, diffable text file.
//!
//! `hermod rootfs lock` writes one; `hermod build --lock FILE` and
//! `hermod rootfs build --lock FILE` build from it without reading any archive
//! index. The file names everything a build root is made of and where each
//! .deb lives below an archive root, but not *which* archive: on another
//! machine the packages come from that machine's configured mirrors, or from
//! its package cache. The SHA256 of each package is the trust anchor; the lock
//! itself is what the user vouches for, like a `Cargo.lock` under review.
//!
//! ```text
//! hermod-lock 1
//! recipe bookworm-amd64
//! kernel 6.1.0-56-amd64
//! architecture amd64
//! headers-version 6.1.192-2
//! suite bookworm
//! suite bookworm-security
//! package NAME VERSION ARCH SHA256 SIZE FILENAME SOURCE
//! link PATH TARGET
//! extra NAME
//! ```
//!
//! A cross root (see [`super::Cross`]) has a `host-architecture` line after
//! `architecture`: the architecture of its programs, where `architecture`
//! is its kernel's; a native root has none, and its lock reads as before.
//!
//! `suite` records say which suites the packages were resolved from (the
//! recipe's release: see [`crate::platform`]); a reader's record, not part of
//! the root's name, and absent from lock files written before releases were
//! recorded (which read as they always did).
//!
//! `extra` records name the declared build needs the root was resolved with
//! (see [`crate::input`]); each is also one of the `package` records. A lock
//! without them is written exactly as before they existed, so older lock files
//! read the same and name the same root.
//!
//! One record per line, fields separated by single spaces, packages sorted by
//! name, links by path, extras by name; blank lines and `#` comments are allowed when reading.
//! Anything else is refused with the line that is wrong: a lock is an input
//! that decides what compiles modules, so it is never guessed at.
//!
//! # What is checked
//!
//! A lock comes from anywhere (a review, a CI artifact, an attacker), and its
//! values become file names on the master host (`<name>_<version>_<arch>.deb`
//! in the package cache, `unpacked/…json`, `usr/src/linux-headers-<KREL>`) and
//! symlinks in a build root. So every field is checked against Debian's
//! syntax ([`crate::apt::syntax`]) before anything is used:
//!
//! * `recipe`: a recipe name that exists: the builtin one
//!   (`rootfs-recipes/`, compiled in) or the one given with `--recipe`;
//! * `kernel`: a kernel release (`[A-Za-z0-9.+_~-]+`, never `.`/`..`);
//! * `architecture`, a package's ARCH: `[a-z0-9][a-z0-9-]*`;
//! * `headers-version`, a package's VERSION: policy §5.6.12 (so never a `/`);
//! * NAME, SOURCE, `extra`: policy §5.6.1, `[a-z0-9][a-z0-9+.-]+`;
//! * SHA256: 64 lower-case hex digits; SIZE: decimal, no sign, no leading
//!   zero, within 64 bits;
//! * FILENAME: a relative path of plain components (no `.`, `..`, `//`)
//!   ending `.deb`;
//! * `link PATH TARGET`: PATH is `/` and plain components (inside the root by
//!   construction); TARGET is non-empty and, read from PATH's directory (or
//!   from the root when absolute), never climbs above the root; no PATH lies
//!   below another link's PATH, so no link is ever made *through* another
//!   (and [`super::materialize`] refuses one through a package's symlink,
//!   such as `/lib/…` when `lib -> usr/lib`).
//!
//! Each record at most once (a package, a link path, an extra, a header
//! field). An error names the line and the field, and quotes at most 200
//! bytes of the input.
//!
//! The lock hash (the build root's name) is still computed over
//! [`Lock::text`], the canonical subset, so a root is the same whether its
//! lock was resolved from the archive or read from a file.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::Lock;
use crate::apt::syntax::{self, quote};
use crate::apt::Package;

/// First line of every lock file; the number changes with the format.
const MAGIC: &str = "hermod-lock";
const FORMAT: u32 = 1;
/// A lock names a few hundred packages; anything much larger is not one.
const MAX_BYTES: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LockFileError {
    #[error("cannot read lock file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write lock file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("lock file {origin}: line {line}: {message}")]
    Line { origin: String, line: usize, message: String },
    #[error("lock file {origin}: {message}")]
    Incomplete { origin: String, message: String },
}

impl crate::exit::HasExitCode for LockFileError {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            LockFileError::Write { .. } => crate::exit::Code::Io,
            LockFileError::Read { .. } | LockFileError::Line { .. } | LockFileError::Incomplete { .. } => {
                crate::exit::Code::BadInput
            }
        }
    }
}

impl Lock {
    /// The lock as a file: header fields, then one line per package and link.
    pub fn file_text(&self) -> String {
        let mut text = format!(
            "{MAGIC} {FORMAT}\n# package NAME VERSION ARCHITECTURE SHA256 SIZE FILENAME SOURCE\nrecipe {}\nkernel {}\narchitecture {}\n",
            self.recipe, self.kernel, self.architecture
        );
        if let Some(host) = &self.host_architecture {
            text.push_str(&format!("host-architecture {host}\n"));
        }
        text.push_str(&format!("headers-version {}\n", self.headers_version));
        for suite in &self.suites {
            text.push_str(&format!("suite {suite}\n"));
        }
        let mut packages: Vec<&Package> = self.packages.iter().collect();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        for p in packages {
            text.push_str(&format!(
                "package {} {} {} {} {} {} {}\n",
                p.name, p.version, p.architecture, p.sha256, p.size, p.filename, p.source
            ));
        }
        for (link, target) in &self.links {
            text.push_str(&format!("link {link} {target}\n"));
        }
        for name in &self.extras {
            text.push_str(&format!("extra {name}\n"));
        }
        text
    }

    /// Read and parse a lock file; its recipe must be the builtin one or `recipe`.
    pub fn read_file(path: &Path, recipe: &str) -> Result<Lock, LockFileError> {
        // Only a regular file is opened (`--lock FIFO` would block forever), and read up to MAX_BYTES.
        let text = crate::bounded::read_user_text(path, MAX_BYTES)
            .map_err(|source| LockFileError::Read { path: path.to_owned(), source })?;
        Lock::parse_file_with(&text, &path.display().to_string(), &[recipe])
    }

    /// Parse the text of a lock file whose recipe is the builtin one; `origin` names it in errors.
    pub fn parse_file(text: &str, origin: &str) -> Result<Lock, LockFileError> {
        Lock::parse_file_with(text, origin, &[])
    }

    /// [`Lock::parse_file`], the recipes named in `recipes` known too.
    pub fn parse_file_with(text: &str, origin: &str, recipes: &[&str]) -> Result<Lock, LockFileError> {
        let mut header: BTreeMap<&str, (usize, String)> = BTreeMap::new();
        let mut packages: Vec<Package> = Vec::new();
        let mut package_lines: BTreeMap<String, usize> = BTreeMap::new();
        let mut links = BTreeMap::new();
        let mut link_lines: BTreeMap<String, usize> = BTreeMap::new();
        let mut extras: BTreeMap<String, usize> = BTreeMap::new();
        let mut suites: Vec<String> = Vec::new();
        let mut seen_magic = false;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |message: String| LockFileError::Line { origin: origin.to_owned(), line, message };
            if raw.trim().is_empty() || raw.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = raw.split(' ').collect();
            if words.iter().any(|w| w.is_empty() || w.contains(char::is_whitespace)) {
                return Err(err("fields must be separated by single spaces, with no leading or trailing space".into()));
            }
            if !seen_magic {
                match words[..] {
                    [MAGIC, v] if v == FORMAT.to_string() => seen_magic = true,
                    [MAGIC, v] => {
                        return Err(err(format!(
                            "lock format {} is not supported (this hermod reads {FORMAT})",
                            quote(v)
                        )))
                    }
                    _ => return Err(err(format!("not a hermod lock file (expected `{MAGIC} {FORMAT}` first)"))),
                }
                continue;
            }
            match words[0] {
                key @ ("recipe" | "kernel" | "architecture" | "host-architecture" | "headers-version") => {
                    let [_, value] = words[..] else {
                        return Err(err(format!("`{key}` takes exactly one value")));
                    };
                    check_header(key, value, recipes).map_err(err)?;
                    if let Some((first, _)) = header.insert(key, (line, value.to_owned())) {
                        return Err(err(format!("second `{key}` (the first is on line {first})")));
                    }
                }
                "package" => {
                    let package = parse_package(&words[1..]).map_err(err)?;
                    if let Some(first) = package_lines.insert(package.name.clone(), line) {
                        return Err(err(format!(
                            "package {} is listed twice (also on line {first}); a lock names one version per package",
                            package.name
                        )));
                    }
                    packages.push(package);
                }
                "link" => {
                    let [_, path, target] = words[..] else {
                        return Err(err("expected `link PATH TARGET`".into()));
                    };
                    check_link(path, target).map_err(err)?;
                    if let Some(first) = link_lines.insert(path.to_owned(), line) {
                        return Err(err(format!("link {} is listed twice (also on line {first})", quote(path))));
                    }
                    links.insert(path.to_owned(), target.to_owned());
                }
                "suite" => {
                    let [_, suite] = words[..] else {
                        return Err(err("expected `suite NAME`".into()));
                    };
                    if !suite.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                        return Err(err(format!("suite {} is not a suite name", quote(suite))));
                    }
                    if suites.iter().any(|s| s == suite) {
                        return Err(err(format!("suite {suite} is listed twice")));
                    }
                    suites.push(suite.to_owned());
                }
                "extra" => {
                    let [_, name] = words[..] else {
                        return Err(err("expected `extra NAME`".into()));
                    };
                    syntax::package_name(name).map_err(|e| err(format!("extra: {e}")))?;
                    if let Some(first) = extras.insert(name.to_owned(), line) {
                        return Err(err(format!("extra {name} is listed twice (also on line {first})")));
                    }
                }
                other => return Err(err(format!("unknown record {} (expected recipe, kernel, architecture, host-architecture, headers-version, suite, package, link or extra)", quote(other)))),
            }
        }
        let incomplete = |message: String| LockFileError::Incomplete { origin: origin.to_owned(), message };
        if !seen_magic {
            return Err(incomplete(format!("empty; a lock file starts with `{MAGIC} {FORMAT}`")));
        }
        let mut field =
            |key: &str| header.remove(key).map(|(_, v)| v).ok_or_else(|| incomplete(format!("no `{key}` line")));
        let (recipe, kernel, architecture, headers_version) =
            (field("recipe")?, field("kernel")?, field("architecture")?, field("headers-version")?);
        let host_architecture = header.remove("host-architecture").map(|(_, v)| v);
        if packages.is_empty() {
            return Err(incomplete("lists no packages".into()));
        }
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        // An extra was a root of the resolution: it is one of the packages.
        if let Some((name, &line)) = extras.iter().find(|(name, _)| !package_lines.contains_key(*name)) {
            let message =
                format!("extra {name} is not one of the lock's packages (every extra is resolved into the root)");
            return Err(LockFileError::Line { origin: origin.to_owned(), line, message });
        }
        // A link is made by descriptor in the directory its path names; a
        // link below another link's path would be made through that link.
        if let Some((inner, outer)) = nested_link(&link_lines) {
            let message = format!(
                "link {} lies below link {} (line {}): a link is never made through another",
                quote(inner),
                quote(outer),
                link_lines[outer]
            );
            return Err(LockFileError::Line { origin: origin.to_owned(), line: link_lines[inner], message });
        }
        let extras = extras.into_keys().collect();
        Ok(Lock {
            recipe,
            kernel,
            architecture,
            host_architecture,
            packages,
            links,
            headers_version,
            extras,
            mirrors: Vec::new(),
            suites,
        })
    }
}

/// A Debian package name: `[a-z0-9][a-z0-9+.-]+`.
pub(crate) fn package_name_ok(name: &str) -> bool {
    syntax::package_name(name).is_ok()
}

fn check_header(key: &str, value: &str, recipes: &[&str]) -> Result<(), String> {
    let checked = match key {
        "recipe" => {
            syntax::recipe_name(value).map_err(|e| e.to_string())?;
            if super::builtin_recipe_names().contains(&value) || recipes.contains(&value) {
                Ok(())
            } else {
                let mut known: Vec<&str> = super::builtin_recipe_names();
                known.extend(recipes);
                return Err(format!(
                    "recipe {} is not a known recipe (known: {}; another one is given with --recipe FILE)",
                    quote(value),
                    known.join(", ")
                ));
            }
        }
        "kernel" => syntax::kernel_release(value),
        "architecture" | "host-architecture" => syntax::architecture(value),
        "headers-version" => syntax::version(value),
        _ => unreachable!("the header keys are matched by the caller"),
    };
    checked.map_err(|e| format!("{key}: {e}"))
}

/// `link PATH TARGET` (also a recipe's `[links]`): PATH is `/` and plain
/// components; TARGET is non-empty, without control characters, and read
/// from PATH's directory (from the root when absolute) it never climbs above
/// the root. Whether a link passes through another is [`nested_link`]'s, and
/// through a package's symlink the assembly's.
pub(crate) fn check_link(path: &str, target: &str) -> Result<(), String> {
    let path_q = quote(path);
    let Some(rel) = path.strip_prefix('/') else {
        return Err(format!("link path {path_q} must be absolute (inside the root)"));
    };
    if path.len() > 4096 || target.len() > 4096 {
        return Err(format!("link {path_q}: longer than 4096 bytes"));
    }
    if rel.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(format!("link path {path_q} must be `/` and plain names (no `.`, `..` or `//`)"));
    }
    for (what, value) in [("path", path), ("target", target)] {
        if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!("link {what} {} has a control or space character", quote(value)));
        }
    }
    if target.is_empty() {
        return Err(format!("link {path_q} has an empty target"));
    }
    // Where the kernel starts reading the target: the link's directory.
    let mut depth: Vec<&str> = rel.split('/').collect();
    depth.pop();
    if target.starts_with('/') {
        depth.clear();
    }
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return Err(format!("link {path_q}: target {} leads above the root", quote(target)));
                }
            }
            c => depth.push(c),
        }
    }
    if depth.is_empty() {
        return Err(format!("link {path_q}: target {} is the root itself", quote(target)));
    }
    Ok(())
}

/// A link path with another link's path as a proper prefix (by component):
/// `(inner, outer)`. The paths are sorted, so a prefix comes right before
/// the paths below it, or before them with siblings in between.
pub(super) fn nested_link(links: &BTreeMap<String, usize>) -> Option<(&str, &str)> {
    let paths: Vec<&str> = links.keys().map(String::as_str).collect();
    for (i, outer) in paths.iter().enumerate() {
        let prefix = format!("{outer}/");
        if let Some(inner) = paths[i + 1..].iter().find(|p| p.starts_with(&prefix)) {
            return Some((inner, outer));
        }
    }
    None
}

/// `NAME VERSION ARCH SHA256 SIZE FILENAME SOURCE`, each checked.
fn parse_package(fields: &[&str]) -> Result<Package, String> {
    let [name, version, architecture, sha256, size, filename, source] = fields[..] else {
        return Err(format!(
            "expected `package NAME VERSION ARCHITECTURE SHA256 SIZE FILENAME SOURCE` (7 fields), found {}",
            fields.len()
        ));
    };
    syntax::package_name(name).map_err(|e| e.to_string())?;
    // Every later message names the package, now known to be a plain name.
    let field = |what: &str, r: Result<(), syntax::SyntaxError>| r.map_err(|e| format!("package {name}: {what}: {e}"));
    field("VERSION", syntax::version(version))?;
    field("ARCHITECTURE", syntax::architecture(architecture))?;
    field("SHA256", syntax::sha256(sha256))?;
    let size = syntax::size(size).map_err(|e| format!("package {name}: SIZE: {e}"))?;
    // A path below an archive root or a local .deb directory: never absolute,
    // never climbing out (the bytes are verified anyway, but a lock must not
    // make hermod read arbitrary files).
    field("FILENAME", syntax::archive_path(filename))?;
    field("SOURCE", syntax::source_name(source))?;
    Ok(Package {
        name: name.to_owned(),
        version: version.to_owned(),
        architecture: architecture.to_owned(),
        multi_arch: None,
        depends: String::new(),
        pre_depends: String::new(),
        provides: String::new(),
        source: source.to_owned(),
        filename: filename.to_owned(),
        size,
        sha256: sha256.to_owned(),
        installed_size: 0,
        base_uri: String::new(),
        not_automatic: false,
    })
}

#[cfg(test)]
#[path = "lockfile_tests.rs"]
mod tests;
