//! Packages indexes: `dists/<suite>/<component>/binary-<arch>/Packages.xz`.
//!
//! A Packages file has one deb822 stanza per binary package version, naming
//! its `Filename` (path below the archive root), `Size` and `SHA256` — the
//! next link in the chain of hashes started by InRelease. Before a single
//! byte of an index is parsed, its size and SHA256 are compared with the
//! values the *verified* Release lists for it; a mismatch means a broken or
//! malicious mirror and is an error, never a warning.
//!
//! Downloaded (still compressed) index files are cached as
//! `<cache>/indexes/<sha256>.<ext>`: the name *is* the content hash, so an
//! unchanged index is never downloaded twice and a stale one is never
//! mistaken for the current one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::release::{dists_url, FileHash, Release};
use super::sources::Source;
use super::stanza::{self, RawStanza, StanzaError};
use super::transport::{self, TransportError};
use crate::bounded::{Bounded, Exceeded, InputLimits, Limit};
use crate::compress::Compression;

#[derive(Debug, thiserror::Error)]
pub enum PackagesError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Syntax(#[from] StanzaError),
    #[error("Release file of {suite_url} lists no Packages index for {component}/binary-{arch} (tried Packages.xz, Packages.gz, Packages)")]
    NoIndex { suite_url: String, component: String, arch: String },
    #[error("{url}: size {found} bytes does not match the {expected} bytes listed in the signed Release file")]
    SizeMismatch { url: String, expected: u64, found: u64 },
    #[error("{url}: SHA256 {found} does not match {expected} listed in the signed Release file (corrupt or tampered mirror)")]
    HashMismatch { url: String, expected: String, found: String },
    #[error("cannot decompress {url}: {source}")]
    Decompress { url: String, source: std::io::Error },
    #[error("{url}: {exceeded}")]
    TooLarge { url: String, exceeded: crate::bounded::Exceeded },
    #[error("cache directory {path}: {source}")]
    Cache { path: PathBuf, source: std::io::Error },
    #[error("{origin}: package stanza at line {line} ({}) lacks required field {field}", crate::bounded::excerpt(.name))]
    MissingField { origin: String, line: usize, name: String, field: &'static str },
    #[error("{origin}: package {}: field {field} has unreadable value {}", crate::bounded::excerpt(.name), crate::bounded::excerpt(.value))]
    BadField { origin: String, name: String, field: &'static str, value: String },
}

/// One binary package version as listed in a Packages index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// `amd64`, `all`, ...
    pub architecture: String,
    pub multi_arch: Option<String>,
    /// Raw `Depends` field ("" when absent); see [`super::depends`].
    pub depends: String,
    pub pre_depends: String,
    pub provides: String,
    /// Source package name (without the optional `(version)`).
    pub source: String,
    /// Path of the .deb below `base_uri`, e.g. `pool/main/m/make-dfsg/make_4.3-4.1_amd64.deb`.
    pub filename: String,
    /// Size of the .deb in bytes.
    pub size: u64,
    /// Lower-case hex SHA256 of the .deb.
    pub sha256: String,
    /// `Installed-Size` in KiB (0 when absent).
    pub installed_size: u64,
    /// Archive root the `filename` is relative to, e.g. `http://deb.debian.org/debian`.
    pub base_uri: String,
    /// From a `NotAutomatic` suite (backports): chosen only where no other
    /// version will do (see [`super::Archive`]). Not part of any lock.
    #[serde(default, skip)]
    pub not_automatic: bool,
}

impl Package {
    /// Full download URL of the .deb.
    pub fn url(&self) -> String {
        format!("{}/{}", self.base_uri, self.filename)
    }
}

/// Convert the stanzas of a Packages text, keeping only `arch` and `all`.
pub fn parse_packages(text: &str, base_uri: &str, arch: &str, origin: &str) -> Result<Vec<Package>, PackagesError> {
    let mut out = Vec::with_capacity(text.len() / 900);
    stanza::for_each(text, origin, |st| {
        if let Some(p) = package_from(&st, base_uri, arch, origin)? {
            out.push(p);
        }
        Ok::<(), PackagesError>(())
    })?;
    Ok(out)
}

fn package_from(
    st: &RawStanza<'_>,
    base_uri: &str,
    arch: &str,
    origin: &str,
) -> Result<Option<Package>, PackagesError> {
    let name = st.get("Package").unwrap_or("?");
    let need = |field: &'static str| {
        st.get(field).ok_or_else(|| PackagesError::MissingField {
            origin: origin.into(),
            line: st.line,
            name: name.into(),
            field,
        })
    };
    let architecture = need("Architecture")?;
    if architecture != arch && architecture != "all" {
        return Ok(None);
    }
    let name = need("Package")?;
    let number = |field: &'static str, v: &str| {
        v.parse::<u64>().map_err(|_| PackagesError::BadField {
            origin: origin.into(),
            name: name.into(),
            field,
            value: v.into(),
        })
    };
    let sha256 = need("SHA256")?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PackagesError::BadField {
            origin: origin.into(),
            name: name.into(),
            field: "SHA256",
            value: sha256.into(),
        });
    }
    let opt = |f: &str| st.get(f).unwrap_or_default().to_string();
    Ok(Some(Package {
        name: name.to_string(),
        version: need("Version")?.to_string(),
        architecture: architecture.to_string(),
        multi_arch: st.get("Multi-Arch").map(str::to_string),
        depends: opt("Depends"),
        pre_depends: opt("Pre-Depends"),
        provides: opt("Provides"),
        source: st.get("Source").and_then(|s| s.split_whitespace().next()).unwrap_or(name).to_string(),
        filename: need("Filename")?.to_string(),
        size: number("Size", need("Size")?)?,
        sha256: sha256.to_ascii_lowercase(),
        installed_size: st.get("Installed-Size").map(|v| number("Installed-Size", v)).transpose()?.unwrap_or(0),
        base_uri: base_uri.to_string(),
        not_automatic: false,
    }))
}

/// Fetch (or take from cache), verify and parse one component's index.
pub fn load_index(
    source: &Source,
    release: &Release,
    component: &str,
    arch: &str,
    cache_dir: &Path,
) -> Result<Vec<Package>, PackagesError> {
    let suite_url = dists_url(source);
    let mut last_err = None;
    for ext in ["xz", "gz", ""] {
        let rel_path = if ext.is_empty() {
            format!("{component}/binary-{arch}/Packages")
        } else {
            format!("{component}/binary-{arch}/Packages.{ext}")
        };
        let Some(expected) = release.sha256.get(&rel_path) else { continue };
        let url = format!("{suite_url}/{rel_path}");
        let limits = crate::bounded::current();
        if expected.size > limits.max_index_size {
            let exceeded = Exceeded::new(Limit::IndexSize, &limits);
            return Err(PackagesError::TooLarge { url, exceeded });
        }
        // By hash when the archive offers it: the file of this very Release,
        // even if the suite was updated since it was read (apt does the same).
        let by_hash = release.acquire_by_hash.then(|| by_hash_url(&url, expected));
        let compressed = match cached_or_download(&url, by_hash.as_deref(), expected, ext, cache_dir) {
            Ok(b) => b,
            // Listed but missing on the mirror (e.g. only .xz is published): try the next form.
            Err(PackagesError::Transport(e)) if e.is_not_found() => {
                last_err = Some(PackagesError::Transport(e));
                continue;
            }
            Err(e) => return Err(e),
        };
        let text = decompress(&compressed, ext, &limits).map_err(|source| match Exceeded::in_io(&source) {
            Some(exceeded) => PackagesError::TooLarge { url: url.clone(), exceeded },
            None => PackagesError::Decompress { url: url.clone(), source },
        })?;
        return parse_packages(&text, &source.uri, arch, &url);
    }
    Err(last_err.unwrap_or(PackagesError::NoIndex { suite_url, component: component.into(), arch: arch.into() }))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Check `bytes` against the Release entry for `url`.
pub fn check_hash(url: &str, bytes: &[u8], expected: &FileHash) -> Result<(), PackagesError> {
    if bytes.len() as u64 != expected.size {
        return Err(PackagesError::SizeMismatch {
            url: url.into(),
            expected: expected.size,
            found: bytes.len() as u64,
        });
    }
    let found = sha256_hex(bytes);
    if found != expected.sha256 {
        return Err(PackagesError::HashMismatch { url: url.into(), expected: expected.sha256.clone(), found });
    }
    Ok(())
}

/// `…/binary-amd64/Packages.xz` → `…/binary-amd64/by-hash/SHA256/<sha256>`.
fn by_hash_url(url: &str, expected: &FileHash) -> String {
    let dir = url.rsplit_once('/').map_or(url, |(dir, _)| dir);
    format!("{dir}/by-hash/SHA256/{}", expected.sha256)
}

/// The compressed index, verified, from `<cache>/indexes/` or the network
/// (`by_hash` first, if given; the plain `url` if that is not found).
fn cached_or_download(
    url: &str,
    by_hash: Option<&str>,
    expected: &FileHash,
    ext: &str,
    cache_dir: &Path,
) -> Result<Vec<u8>, PackagesError> {
    let dir = cache_dir.join("indexes");
    let name = if ext.is_empty() { expected.sha256.clone() } else { format!("{}.{ext}", expected.sha256) };
    let path = dir.join(name);
    if let Ok(bytes) = std::fs::read(&path) {
        // Re-check: the cache dir may be shared or the disk may have lied.
        if check_hash(url, &bytes, expected).is_ok() {
            tracing::debug!(%url, path = %path.display(), "index from cache");
            return Ok(bytes);
        }
    }
    tracing::info!(%url, by_hash = by_hash.is_some(), "downloading index");
    let bytes = match by_hash.map(|h| transport::get(h, expected.size)) {
        Some(Ok(bytes)) => bytes,
        Some(Err(e)) if !e.is_not_found() => return Err(e.into()),
        _ => transport::get(url, expected.size)?,
    };
    check_hash(url, &bytes, expected)?;
    let cache_err = |source| PackagesError::Cache { path: dir.clone(), source };
    std::fs::create_dir_all(&dir).map_err(cache_err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(cache_err)?;
    tmp.write_all(&bytes).map_err(cache_err)?;
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(cache_err)?;
    tmp.persist(&path).map_err(|e| cache_err(e.error))?;
    Ok(bytes)
}

/// The index's text, at most `max_index_size` of it (an xz bomb stops there).
fn decompress(bytes: &[u8], ext: &str, limits: &InputLimits) -> std::io::Result<String> {
    // An unknown suffix is read as plain text (the index names only these).
    let plain = Compression::from_suffix(ext).unwrap_or(Compression::None).decoder(bytes)?;
    let mut text = String::new();
    Bounded::new(plain, Limit::IndexSize, limits).read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt::sources::SignedBy;

    pub(crate) const PACKAGES: &str = "Package: make\nVersion: 4.3-4.1\nInstalled-Size: 1592\nMaintainer: x\nArchitecture: amd64\nDepends: libc6 (>= 2.34)\nDescription: utility\n for directing compilation\nFilename: pool/main/m/make-dfsg/make_4.3-4.1_amd64.deb\nSize: 396208\nSHA256: 2D6D7E7A9F1E7D0C3E7A0C6C0F7A1F2B3C4D5E6F708192A3B4C5D6E7F8091A2B\n\nPackage: make\nVersion: 4.3-4.1\nArchitecture: arm64\nFilename: x\nSize: 1\nSHA256: 2d6d7e7a9f1e7d0c3e7a0c6c0f7a1f2b3c4d5e6f708192a3b4c5d6e7f8091a2b\n\nPackage: tzdata\nSource: tzdata (2025b-0+deb12u1)\nVersion: 2025b-0+deb12u1\nArchitecture: all\nMulti-Arch: foreign\nPre-Depends: debconf (>= 0.5) | debconf-2.0\nProvides: tzdata-bookworm\nFilename: pool/main/t/tzdata/tzdata_2025b-0+deb12u1_all.deb\nSize: 260000\nSHA256: 0000000000000000000000000000000000000000000000000000000000000001\n";

    #[test]
    fn by_hash_names_the_index_by_its_hash_beside_it() {
        let expected = FileHash { sha256: "ab".repeat(32), size: 1 };
        assert_eq!(
            by_hash_url("http://m/debian/dists/bookworm/main/binary-amd64/Packages.xz", &expected),
            format!("http://m/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/{}", "ab".repeat(32))
        );
    }

    #[test]
    fn parses_and_filters_architectures() {
        let p = parse_packages(PACKAGES, "http://deb.debian.org/debian", "amd64", "fixture").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "make");
        assert_eq!(p[0].installed_size, 1592);
        assert_eq!(p[0].sha256, "2d6d7e7a9f1e7d0c3e7a0c6c0f7a1f2b3c4d5e6f708192a3b4c5d6e7f8091a2b");
        assert_eq!(p[0].source, "make");
        assert_eq!(p[0].url(), "http://deb.debian.org/debian/pool/main/m/make-dfsg/make_4.3-4.1_amd64.deb");
        assert_eq!(p[1].source, "tzdata");
        assert_eq!(p[1].multi_arch.as_deref(), Some("foreign"));
        assert_eq!(p[1].pre_depends, "debconf (>= 0.5) | debconf-2.0");
        assert_eq!(p[1].provides, "tzdata-bookworm");
    }

    #[test]
    fn missing_or_bad_fields_are_named() {
        let e = parse_packages("Package: a\nVersion: 1\nArchitecture: all\nSize: 1\n", "u", "amd64", "Packages")
            .unwrap_err();
        assert!(e.to_string().contains("lacks required field"), "{e}");
        let e = parse_packages(&PACKAGES.replace("Size: 396208", "Size: many"), "u", "amd64", "P").unwrap_err();
        assert!(e.to_string().contains("make") && e.to_string().contains("Size"), "{e}");
    }

    /// A `file:` archive: index verified against Release, cached by hash,
    /// and a tampered index rejected before parsing.
    #[test]
    fn load_index_verifies_and_caches() {
        let repo = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let dir = repo.path().join("dists/t/main/binary-amd64");
        std::fs::create_dir_all(&dir).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(PACKAGES.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        std::fs::write(dir.join("Packages.gz"), &gz).unwrap();
        let source = Source {
            uri: format!("file:{}", repo.path().display()),
            suite: "t".into(),
            components: vec!["main".into()],
            architectures: vec![],
            signed_by: SignedBy::Keyrings(vec![]),
            check_valid_until: true,
            declared_in: "test".into(),
            derived_from: None,
        };
        let mut release = Release::default();
        let good = FileHash { sha256: sha256_hex(&gz), size: gz.len() as u64 };
        release.sha256.insert("main/binary-amd64/Packages.gz".into(), good.clone());
        let p = load_index(&source, &release, "main", "amd64", cache.path()).unwrap();
        assert_eq!(p.len(), 2);
        assert!(cache.path().join(format!("indexes/{}.gz", good.sha256)).exists());
        // Served from cache even when the mirror copy disappears.
        std::fs::remove_file(dir.join("Packages.gz")).unwrap();
        assert_eq!(load_index(&source, &release, "main", "amd64", cache.path()).unwrap().len(), 2);
        // Tampered mirror: same size, different bytes.
        std::fs::write(dir.join("Packages.gz"), vec![0u8; gz.len()]).unwrap();
        let fresh = tempfile::tempdir().unwrap();
        let e = load_index(&source, &release, "main", "amd64", fresh.path()).unwrap_err();
        assert!(matches!(e, PackagesError::HashMismatch { .. }), "{e}");
        release.sha256.insert("main/binary-amd64/Packages.gz".into(), FileHash { size: 3, ..good });
        let e = load_index(&source, &release, "main", "amd64", fresh.path()).unwrap_err();
        assert!(e.to_string().contains("3 bytes"), "{e}");
        let e = load_index(&source, &release, "contrib", "amd64", fresh.path()).unwrap_err();
        assert!(matches!(e, PackagesError::NoIndex { .. }), "{e}");
    }

    /// A small .xz that expands past the limit stops there, whatever its size.
    #[test]
    fn index_bombs_stop_at_the_limit() {
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        let zeros = vec![b'a'; 1 << 20];
        for _ in 0..64 {
            xz.write_all(&zeros).unwrap();
        }
        let xz = xz.finish().unwrap();
        assert!(xz.len() < 64 << 10, "{}", xz.len());
        let limits = InputLimits { max_index_size: 1 << 20, ..InputLimits::default() };
        let e = decompress(&xz, "xz", &limits).unwrap_err();
        assert_eq!(Exceeded::in_io(&e).map(|x| x.limit), Some(Limit::IndexSize), "{e}");
        assert_eq!(decompress(&xz, "xz", &InputLimits::default()).unwrap().len(), 64 << 20);
    }
}
