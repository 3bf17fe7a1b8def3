//! `Packages` indices: one stanza per published .deb.
//!
//! A stanza is the package's own `control` file, verbatim, followed by the
//! three fields apt needs to fetch and check the file: `Filename` (its path
//! from the repository's root), `Size` and `SHA256`. Fields of those names in
//! the control file (a .deb has none) are dropped, so the repository's values
//! are the only ones.
//!
//! The pool path follows Debian's layout:
//! `pool/<component>/<prefix>/<source>/<package>_<version without epoch>_<arch>.deb`,
//! where the prefix is the source name's first letter, or its first four for
//! `lib*` sources (`libf/libfoo`), so no directory grows too large.
//!
//! Stanzas are sorted by package name, then version (dpkg's order), then
//! architecture: the text depends on the set of packages, never on the order
//! they were published in.
//!
//! The same parser reads the index back (`parse_packages`): the repository's
//! own Packages files are the record of what is published (see `mod.rs`).

use std::cmp::Ordering;

use sha2::{Digest, Sha256};

use crate::apt::stanza;
use crate::apt::syntax;
use crate::apt::version::Version;
use crate::debpkg::{check_version, is_package_name};

/// The most of a file's content an error message quotes. Here, at the
/// bottom of `repo`, because the indices' own errors quote with it too.
pub const EXCERPT_BYTES: usize = 200;

/// `text` cut to [`EXCERPT_BYTES`] (on a character boundary), marked when cut.
pub fn excerpt(text: &str) -> String {
    if text.len() <= EXCERPT_BYTES {
        return text.to_owned();
    }
    let mut end = EXCERPT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Why a .deb's control file cannot be indexed.
#[derive(Debug, thiserror::Error)]
#[error("{deb}: {problem}")]
pub struct ControlError {
    pub deb: String,
    pub problem: String,
}

/// Fields the repository sets; a control file's own are dropped.
const REPOSITORY_FIELDS: [&str; 6] = ["Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512"];

/// A .deb's size and SHA256, as its stanza states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebHash {
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

impl DebHash {
    pub fn of(bytes: &[u8]) -> DebHash {
        DebHash { size: bytes.len() as u64, sha256: hex::encode(Sha256::digest(bytes)) }
    }
}

/// One package of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub package: String,
    pub version: String,
    pub architecture: String,
    /// Path from the repository root, e.g. `pool/main/h/hello/hello_1.0_amd64.deb`.
    pub filename: String,
    pub size: u64,
    pub sha256: String,
    /// The whole stanza, each line ending in `\n`, no blank line.
    pub stanza: String,
}

impl Entry {
    /// What identifies a published package: it never changes once published.
    pub fn id(&self) -> String {
        format!("{} {} ({})", self.package, self.version, self.architecture)
    }

    /// The entry of a .deb whose `control` text is `control`, its bytes `deb`.
    /// The entry of the .deb named `origin` (in errors), whose control file
    /// is `control` and whose bytes hash to `deb`.
    pub fn from_deb(origin: &str, control: &str, deb: &DebHash, component: &str) -> Result<Entry, ControlError> {
        let bad = |problem: String| ControlError { deb: origin.into(), problem };
        if control.contains('\r') {
            return Err(bad("the control file has CR line ends".into()));
        }
        let body = control.trim_end_matches('\n');
        if body.split('\n').any(|l| l.trim().is_empty()) {
            return Err(bad("the control file holds more than one stanza (a blank line)".into()));
        }
        let parsed = stanza::parse_one(body, &format!("{origin}:control")).map_err(|e| bad(e.to_string()))?;
        let need = |name: &str| {
            parsed
                .get(name)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("the control file has no {name} field")))
        };
        let (package, version, architecture) = (need("Package")?, need("Version")?, need("Architecture")?);
        if !is_package_name(&package) {
            return Err(bad(format!("Package {package:?} is not a Debian package name ([a-z0-9][a-z0-9+.-]+)")));
        }
        check_version(&version).map_err(|why| bad(format!("Version {version:?}: {why}")))?;
        if !is_architecture(&architecture) {
            return Err(bad(format!("Architecture {architecture:?} is not one architecture name ([a-z0-9-]+)")));
        }
        let source = match parsed.get("Source") {
            Some(s) => s.split_whitespace().next().unwrap_or_default().to_owned(),
            None => package.clone(),
        };
        if !is_package_name(&source) {
            return Err(bad(format!("Source {source:?} is not a Debian source package name")));
        }
        let upstream = version.split_once(':').map_or(version.as_str(), |(_, rest)| rest);
        let filename = format!(
            "pool/{component}/{prefix}/{source}/{package}_{upstream}_{architecture}.deb",
            prefix = pool_prefix(&source)
        );
        let DebHash { size, sha256 } = deb.clone();
        let mut text = String::new();
        let mut skipping = false;
        for line in body.split('\n') {
            if !line.starts_with([' ', '\t']) {
                let name = line.split(':').next().unwrap_or_default().trim();
                skipping = REPOSITORY_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name));
            }
            if !skipping {
                text.push_str(line);
                text.push('\n');
            }
        }
        text.push_str(&format!("Filename: {filename}\nSize: {size}\nSHA256: {sha256}\n"));
        Ok(Entry { package, version, architecture, filename, size, sha256, stanza: text })
    }
}

/// `[a-z0-9][a-z0-9-]*`: one Debian architecture name.
pub fn is_architecture(s: &str) -> bool {
    syntax::architecture(s).is_ok()
}

/// Debian's pool prefix: `libf` for `libfoo`, else the first letter.
fn pool_prefix(source: &str) -> &str {
    if source.starts_with("lib") && source.len() > 3 {
        &source[..4]
    } else {
        &source[..1]
    }
}

/// The order of stanzas: name, then dpkg's version order, then architecture.
fn order(a: &Entry, b: &Entry) -> Ordering {
    let version = |e: &Entry| Version::parse(&e.version).ok();
    a.package
        .cmp(&b.package)
        .then_with(|| match (version(a), version(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => Ordering::Equal,
        })
        // Equal for dpkg (`1.0` and `0:1.0`) still needs one fixed order.
        .then_with(|| a.version.cmp(&b.version))
        .then_with(|| a.architecture.cmp(&b.architecture))
}

/// The Packages text of `entries` (sorted here), stanzas separated by one blank line.
pub fn packages_text(entries: &[&Entry]) -> String {
    let mut sorted = entries.to_vec();
    sorted.sort_by(|a, b| order(a, b));
    sorted.iter().map(|e| e.stanza.as_str()).collect::<Vec<_>>().join("\n")
}

/// Why a Packages file already in the repository cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: stanza at line {line}: {problem}")]
pub struct IndexError {
    pub path: String,
    pub line: usize,
    pub problem: String,
}

/// Read back a Packages text written by [`packages_text`].
pub fn parse_packages(text: &str, path: &str) -> Result<Vec<Entry>, IndexError> {
    let mut entries = Vec::new();
    let mut lines: Vec<&str> = Vec::new();
    let mut first_line = 1;
    let all: Vec<&str> = text.split('\n').collect();
    for (i, line) in all.iter().enumerate() {
        if !line.trim().is_empty() {
            if lines.is_empty() {
                first_line = i + 1;
            }
            lines.push(line);
        }
        let end = line.trim().is_empty() || i + 1 == all.len();
        if end && !lines.is_empty() {
            entries.push(entry_of(&lines, path, first_line)?);
            lines.clear();
        }
    }
    Ok(entries)
}

fn entry_of(lines: &[&str], path: &str, line: usize) -> Result<Entry, IndexError> {
    // The problem may quote the file: bounded, like every repository message.
    let bad = |problem: String| IndexError { path: path.into(), line, problem: excerpt(&problem) };
    let mut stanza_text = lines.join("\n");
    stanza_text.push('\n');
    let parsed = stanza::parse_one(&stanza_text, path).map_err(|e| bad(e.to_string()))?;
    let need = |name: &str| parsed.get(name).map(str::to_owned).ok_or_else(|| bad(format!("no {name} field")));
    let size = need("Size")?;
    let sha256 = need("SHA256")?;
    let filename = need("Filename")?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(format!("SHA256 {sha256:?} is not 64 hex digits")));
    }
    // Pool paths become paths below DIR when the repository is checked or
    // grown: plain components under pool/, each name Debian's syntax.
    if !filename.starts_with("pool/") {
        return Err(bad(format!("Filename {} is not a path under pool/", syntax::quote(&filename))));
    }
    syntax::archive_path(&filename).map_err(|e| bad(format!("Filename: {e}")))?;
    let (package, version, architecture) = (need("Package")?, need("Version")?, need("Architecture")?);
    syntax::package_name(&package).map_err(|e| bad(e.to_string()))?;
    syntax::version(&version).map_err(|e| bad(e.to_string()))?;
    syntax::architecture(&architecture).map_err(|e| bad(e.to_string()))?;
    Ok(Entry {
        package,
        version,
        architecture,
        size: syntax::size(&size).map_err(|e| bad(format!("Size: {e}")))?,
        sha256: sha256.to_ascii_lowercase(),
        filename,
        stanza: stanza_text,
    })
}

/// xz as Debian's indices use it: single-threaded (the bytes do not depend on
/// the machine), preset 6, CRC64.
pub fn xz(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let stream =
        liblzma::stream::Stream::new_easy_encoder(6, liblzma::stream::Check::Crc64).map_err(std::io::Error::other)?;
    let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    encoder.write_all(data)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTROL: &str = "Package: hello-modules-6.1.0-56-amd64\nSource: hello (1.0)\nVersion: 1:1.0+6.1.0-1\n\
        Architecture: amd64\nMaintainer: m <m@example.org>\nSHA256: forged\nDepends: linux-image-6.1.0-56-amd64\n\
        Description: the hello module\n a module\n .\n that says hello\n";

    #[test]
    fn a_stanza_is_the_control_file_plus_the_repositorys_fields() {
        let e = Entry::from_deb("hello.deb", CONTROL, &DebHash::of(b"deb bytes"), "main").unwrap();
        assert_eq!(e.filename, "pool/main/h/hello/hello-modules-6.1.0-56-amd64_1.0+6.1.0-1_amd64.deb");
        assert_eq!(e.size, 9);
        assert_eq!(e.sha256, hex::encode(Sha256::digest(b"deb bytes")));
        assert_eq!(
            e.stanza,
            format!(
                "Package: hello-modules-6.1.0-56-amd64\nSource: hello (1.0)\nVersion: 1:1.0+6.1.0-1\n\
                 Architecture: amd64\nMaintainer: m <m@example.org>\nDepends: linux-image-6.1.0-56-amd64\n\
                 Description: the hello module\n a module\n .\n that says hello\n\
                 Filename: {}\nSize: 9\nSHA256: {}\n",
                e.filename, e.sha256
            ),
            "the forged SHA256 field is dropped, everything else kept verbatim"
        );
        assert_eq!(e.id(), "hello-modules-6.1.0-56-amd64 1:1.0+6.1.0-1 (amd64)");
        let lib = CONTROL.replace("Source: hello (1.0)", "Source: libhello");
        assert!(Entry::from_deb("x", &lib, &DebHash::of(b""), "contrib")
            .unwrap()
            .filename
            .starts_with("pool/contrib/libh/libhello/"));
    }

    #[test]
    fn bad_control_files_are_named() {
        for (control, expect) in [
            (CONTROL.replace("Package: hello-modules-6.1.0-56-amd64\n", ""), "no Package field"),
            (CONTROL.replace("Package: hello-modules", "Package: Hello_modules"), "not a Debian package name"),
            (CONTROL.replace("Version: 1:1.0+6.1.0-1", "Version: 1.0 beta"), "Version"),
            (CONTROL.replace("Architecture: amd64", "Architecture: amd64 i386"), "Architecture"),
            (CONTROL.replace("Source: hello (1.0)", "Source: ../x"), "Source"),
            (format!("{CONTROL}\nPackage: second\n"), "more than one stanza"),
            (CONTROL.replace('\n', "\r\n"), "CR line ends"),
            ("this is not a control file\n".to_owned(), "expected `Field: value`"),
        ] {
            let e = Entry::from_deb("in.deb", &control, &DebHash::of(b""), "main").unwrap_err().to_string();
            assert!(e.starts_with("in.deb: ") && e.contains(expect), "{expect}: {e}");
        }
    }

    #[test]
    fn packages_text_is_sorted_and_reads_back() {
        let entry = |pkg: &str, ver: &str, arch: &str| {
            let control = format!("Package: {pkg}\nVersion: {ver}\nArchitecture: {arch}\nDescription: d\n x\n");
            Entry::from_deb("t", &control, &DebHash::of(format!("{pkg}{ver}{arch}").as_bytes()), "main").unwrap()
        };
        let a = entry("beta", "1.10", "amd64");
        let b = entry("beta", "1.9", "amd64");
        let c = entry("alpha", "2.0~rc1", "amd64");
        let d = entry("alpha", "2.0", "amd64");
        let text = packages_text(&[&a, &b, &c, &d]);
        assert_eq!(text, packages_text(&[&d, &c, &b, &a]), "the order published does not matter");
        let back = parse_packages(&text, "Packages").unwrap();
        let versions: Vec<(&str, &str)> = back.iter().map(|e| (e.package.as_str(), e.version.as_str())).collect();
        assert_eq!(versions, [("alpha", "2.0~rc1"), ("alpha", "2.0"), ("beta", "1.9"), ("beta", "1.10")]);
        assert_eq!(back[3], a, "an entry reads back exactly");
        assert!(parse_packages("", "Packages").unwrap().is_empty());
        let damaged = text.replacen("SHA256: ", "SHA256: zz", 1);
        let e = parse_packages(&damaged, "dists/hermod/main/binary-amd64/Packages").unwrap_err().to_string();
        assert!(e.contains("Packages: stanza at line 1: SHA256"), "{e}");
        let escaping = text.replacen("Filename: pool/", "Filename: pool/../../", 1);
        assert!(parse_packages(&escaping, "P").is_err());
    }

    #[test]
    fn xz_is_deterministic_and_decodes() {
        let data = b"Package: a\n".repeat(1000);
        let packed = xz(&data).unwrap();
        assert_eq!(packed, xz(&data).unwrap());
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut liblzma::read::XzDecoder::new(&packed[..]), &mut back).unwrap();
        assert_eq!(back.len(), data.len());
    }
}
