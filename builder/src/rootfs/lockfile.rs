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
//! package NAME VERSION ARCH SHA256 SIZE FILENAME SOURCE
//! link PATH TARGET
//! extra NAME
//! ```
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
//! The lock hash (the build root's name) is still computed over
//! [`Lock::text`], the canonical subset, so a root is the same whether its
//! lock was resolved from the archive or read from a file.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use super::Lock;
use crate::apt::{Package, Version};

/// First line of every lock file; the number changes with the format.
const MAGIC: &str = "hermod-lock";
const FORMAT: u32 = 1;

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

impl Lock {
    /// The lock as a file: header fields, then one line per package and link.
    pub fn file_text(&self) -> String {
        let mut text = format!(
            "{MAGIC} {FORMAT}\n# package NAME VERSION ARCHITECTURE SHA256 SIZE FILENAME SOURCE\nrecipe {}\nkernel {}\narchitecture {}\nheaders-version {}\n",
            self.recipe, self.kernel, self.architecture, self.headers_version
        );
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

    /// Read and parse a lock file.
    pub fn read_file(path: &Path) -> Result<Lock, LockFileError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| LockFileError::Read { path: path.to_owned(), source })?;
        Lock::parse_file(&text, &path.display().to_string())
    }

    /// Parse the text of a lock file; `origin` names it in errors.
    pub fn parse_file(text: &str, origin: &str) -> Result<Lock, LockFileError> {
        let mut header: BTreeMap<&str, (usize, String)> = BTreeMap::new();
        let mut packages: Vec<Package> = Vec::new();
        let mut package_lines: BTreeMap<String, usize> = BTreeMap::new();
        let mut links = BTreeMap::new();
        let mut extras: BTreeMap<String, usize> = BTreeMap::new();
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
                        return Err(err(format!("lock format {v} is not supported (this hermod reads {FORMAT})")))
                    }
                    _ => return Err(err(format!("not a hermod lock file (expected `{MAGIC} {FORMAT}` first)"))),
                }
                continue;
            }
            match words[0] {
                key @ ("recipe" | "kernel" | "architecture" | "headers-version") => {
                    let [_, value] = words[..] else {
                        return Err(err(format!("`{key}` takes exactly one value")));
                    };
                    check_header(key, value).map_err(err)?;
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
                    if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
                        return Err(err(format!("link path {path:?} must be absolute, without `..`")));
                    }
                    if links.insert(path.to_owned(), target.to_owned()).is_some() {
                        return Err(err(format!("link {path} is listed twice")));
                    }
                }
                "extra" => {
                    let [_, name] = words[..] else {
                        return Err(err("expected `extra NAME`".into()));
                    };
                    if !package_name_ok(name) {
                        return Err(err(format!("extra {name:?} is not a Debian package name")));
                    }
                    if let Some(first) = extras.insert(name.to_owned(), line) {
                        return Err(err(format!("extra {name} is listed twice (also on line {first})")));
                    }
                }
                other => return Err(err(format!("unknown record {other:?} (expected recipe, kernel, architecture, headers-version, package, link or extra)"))),
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
        let extras = extras.into_keys().collect();
        Ok(Lock { recipe, kernel, architecture, packages, links, headers_version, extras, mirrors: Vec::new() })
    }
}

/// A Debian package name: `[a-z0-9][a-z0-9+.-]+`.
pub(crate) fn package_name_ok(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c))
}

fn check_header(key: &str, value: &str) -> Result<(), String> {
    let ok = match key {
        "kernel" => super::lock::kernel_name_ok(value),
        "architecture" => value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "headers-version" => Version::parse(value).is_ok(),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{key} {value:?} is not valid"))
    }
}

/// `NAME VERSION ARCH SHA256 SIZE FILENAME SOURCE`, each checked.
fn parse_package(fields: &[&str]) -> Result<Package, String> {
    let [name, version, architecture, sha256, size, filename, source] = fields[..] else {
        return Err(format!(
            "expected `package NAME VERSION ARCHITECTURE SHA256 SIZE FILENAME SOURCE` (7 fields), found {}",
            fields.len()
        ));
    };
    if !package_name_ok(name) {
        return Err(format!("{name:?} is not a Debian package name"));
    }
    Version::parse(version).map_err(|e| format!("package {name}: {e}"))?;
    if architecture.is_empty()
        || !architecture.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!("package {name}: {architecture:?} is not an architecture"));
    }
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("package {name}: SHA256 {sha256:?} is not 64 lower-case hex digits"));
    }
    let size = size.parse::<u64>().map_err(|_| format!("package {name}: size {size:?} is not a number of bytes"))?;
    // A path below an archive root or a local .deb directory: never absolute,
    // never climbing out (the bytes are verified anyway, but a lock must not
    // make hermod read arbitrary files).
    let components: BTreeSet<&str> = filename.split('/').collect();
    if filename.starts_with('/') || components.contains("..") || components.contains("") || !filename.ends_with(".deb")
    {
        return Err(format!("package {name}: file name {filename:?} must be a relative path to a .deb, without `..`"));
    }
    if !package_name_ok(source) {
        return Err(format!("package {name}: source {source:?} is not a Debian source package name"));
    }
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt::archive::tests::pkg;

    fn lock() -> Lock {
        let mut make = pkg("make", "4.3-4.1", "libc6", "");
        make.sha256 = "ab".repeat(32);
        make.filename = "pool/main/m/make-dfsg/make_4.3-4.1_amd64.deb".into();
        make.source = "make-dfsg".into();
        let mut diff = pkg("diffutils", "1:3.8-4", "", "");
        diff.size = 12345;
        Lock {
            recipe: "bookworm-amd64".into(),
            kernel: "6.1.0-56-amd64".into(),
            architecture: "amd64".into(),
            packages: vec![make, diff],
            links: [("/usr/bin/awk".to_string(), "mawk".to_string())].into(),
            headers_version: "6.1.192-2".into(),
            extras: Vec::new(),
            mirrors: vec!["http://deb.example".into()],
        }
    }

    #[test]
    fn round_trips_with_the_same_hash() {
        let lock = lock();
        let text = lock.file_text();
        assert_eq!(
            text,
            format!(
                "hermod-lock 1\n# package NAME VERSION ARCHITECTURE SHA256 SIZE FILENAME SOURCE\nrecipe bookworm-amd64\nkernel 6.1.0-56-amd64\narchitecture amd64\nheaders-version 6.1.192-2\npackage diffutils 1:3.8-4 amd64 {zero} 12345 pool/diffutils_1:3.8-4_amd64.deb diffutils\npackage make 4.3-4.1 amd64 {ab} 1000 pool/main/m/make-dfsg/make_4.3-4.1_amd64.deb make-dfsg\nlink /usr/bin/awk mawk\n",
                zero = "0".repeat(64),
                ab = "ab".repeat(32)
            )
        );
        let back = Lock::parse_file(&text, "t.lock").unwrap();
        assert_eq!(back.hash(), lock.hash(), "the root's name does not depend on where the lock came from");
        assert_eq!(back.file_text(), text);
        assert_eq!(back.headers_version, "6.1.192-2");
        assert_eq!(back.packages[1].size, 1000);
        assert_eq!(back.packages[1].source, "make-dfsg");
        assert!(back.packages.iter().all(|p| p.base_uri.is_empty()), "which mirror is the reader's business");
        // Comments, blank lines and order do not matter.
        let mut lines: Vec<&str> = text.lines().collect();
        lines.swap(6, 7);
        let shuffled = format!("{}\n\n# reviewed by ops\n", lines.join("\n"));
        assert_eq!(Lock::parse_file(&shuffled, "t.lock").unwrap().hash(), lock.hash());
    }

    /// Declared build needs are `extra` records after the links; without
    /// them a lock's text (and so its hash and file) is what it always was.
    #[test]
    fn extras_round_trip_and_plain_locks_are_unchanged() {
        let plain = lock();
        assert_eq!(
            plain.text(),
            format!(
                "hermod-rootfs-lock 3\nrecipe bookworm-amd64\nkernel 6.1.0-56-amd64\narchitecture amd64\npackage diffutils 1:3.8-4 amd64 {zero}\npackage make 4.3-4.1 amd64 {ab}\nlink /usr/bin/awk mawk\n",
                zero = "0".repeat(64),
                ab = "ab".repeat(32)
            ),
            "the hashed text of a lock without extras"
        );
        let mut with = lock();
        with.extras = vec!["diffutils".into(), "make".into()];
        let text = with.file_text();
        assert!(
            text.starts_with("hermod-lock 1\n")
                && text.ends_with("link /usr/bin/awk mawk\nextra diffutils\nextra make\n")
        );
        assert_ne!(with.hash(), plain.hash());
        let back = Lock::parse_file(&text, "t.lock").unwrap();
        assert_eq!(back.extras, ["diffutils", "make"]);
        assert_eq!((back.hash(), back.file_text()), (with.hash(), text.clone()));
        // Malformed extras are named like any other line.
        let e = Lock::parse_file(&format!("{text}extra make\n"), "x.lock").unwrap_err().to_string();
        assert!(e.contains("line 12") && e.contains("extra make is listed twice (also on line 11)"), "{e}");
        let e = Lock::parse_file(&format!("{text}extra gawk\n"), "x.lock").unwrap_err().to_string();
        assert!(e.contains("line 12") && e.contains("extra gawk is not one of the lock's packages"), "{e}");
        let e = Lock::parse_file(&format!("{text}extra Gawk x\n"), "x.lock").unwrap_err().to_string();
        assert!(e.contains("expected `extra NAME`"), "{e}");
    }

    /// Each malformed line is refused, naming the line and the problem.
    #[test]
    fn malformed_lines_are_named() {
        let good = lock().file_text();
        let cases: &[(&str, &str, usize, &str)] = &[
            ("hermod-lock 1", "hermod-lock 2", 1, "format 2 is not supported"),
            ("hermod-lock 1", "garbage", 1, "not a hermod lock file"),
            ("kernel 6.1.0-56-amd64", "kernel ../../etc", 4, "kernel"),
            ("kernel 6.1.0-56-amd64", "kernel  6.1.0-56-amd64", 4, "single spaces"),
            ("architecture amd64", "architecture amd64 i386", 5, "exactly one value"),
            ("headers-version 6.1.192-2", "headers-version :", 6, "headers-version"),
            ("package make 4.3-4.1 amd64", "package Make 4.3-4.1 amd64", 8, "not a Debian package name"),
            ("package make 4.3-4.1 amd64", "package make 4.3 4.1 amd64", 8, "7 fields"),
            (" 1000 pool/main/m", " 1k pool/main/m", 8, "size \"1k\""),
            ("pool/main/m/make-dfsg/make", "../../../etc/make", 8, "without `..`"),
            ("pool/main/m/make-dfsg/make", "/etc/make", 8, "without `..`"),
            ("_amd64.deb make-dfsg", "_amd64.tar make-dfsg", 8, "to a .deb"),
            ("link /usr/bin/awk mawk", "link usr/bin/awk mawk", 9, "absolute"),
            ("link /usr/bin/awk mawk", "symlink /usr/bin/awk mawk", 9, "unknown record \"symlink\""),
        ];
        for (from, to, line, message) in cases {
            let text = good.replacen(from, to, 1);
            assert_ne!(text, good, "{from}");
            let e = Lock::parse_file(&text, "x.lock").unwrap_err().to_string();
            assert!(e.starts_with(&format!("lock file x.lock: line {line}: ")) && e.contains(message), "{to}: {e}");
        }
        let upper = good.replace(&"ab".repeat(32), &"AB".repeat(32));
        let e = Lock::parse_file(&upper, "x.lock").unwrap_err().to_string();
        assert!(e.contains("line 8") && e.contains("package make: SHA256"), "{e}");
        let twice = format!("{good}{}", good.lines().nth(7).unwrap());
        let e = Lock::parse_file(&twice, "x.lock").unwrap_err().to_string();
        assert!(e.contains("line 10") && e.contains("also on line 8"), "{e}");
        let e = Lock::parse_file(&format!("{good}kernel 6.1.0-1-amd64\n"), "x.lock").unwrap_err().to_string();
        assert!(e.contains("line 10") && e.contains("first is on line 4"), "{e}");
        // Missing pieces are named too.
        let e = Lock::parse_file(&good.replace("recipe bookworm-amd64\n", ""), "x.lock").unwrap_err().to_string();
        assert_eq!(e, "lock file x.lock: no `recipe` line");
        let no_packages: String =
            good.lines().filter(|l| !l.starts_with("package ")).map(|l| format!("{l}\n")).collect();
        assert!(Lock::parse_file(&no_packages, "x.lock").unwrap_err().to_string().contains("no packages"));
        assert!(Lock::parse_file("", "x.lock").unwrap_err().to_string().contains("empty"));
    }
}
