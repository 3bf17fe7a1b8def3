//! Downloading .deb files into a package cache, verified against the SHA256
//! and size from the (verified) Packages index — the last link of the chain
//! InRelease → Packages → .deb.
//!
//! Files are named like APT names them in `/var/cache/apt/archives`:
//! `<name>_<version>_<arch>.deb` with `:` (epoch) escaped as `%3a`. A file
//! already present is reused only if its hash matches; otherwise the .deb is
//! streamed into a temporary file *in the same directory* (hashing on the
//! fly), checked, fsynced and atomically renamed into place, so a crash or a
//! concurrent run never leaves a truncated or unverified file under the
//! final name.
//!
//! A package names its own archive root (`base_uri`, from the index that
//! listed it) when it was resolved here; a package read from a lock file does
//! not, since the lock may come from another machine. Either way the
//! configured *mirrors* are tried next, in order, with the same `Filename`:
//! what matters is the SHA256, not which server sent the bytes. A server that
//! sends other bytes is reported even when another one then succeeds.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use super::packages::Package;
use super::syntax::{self, SyntaxError};
use super::transport::{self, TransportError};

/// How many downloads run at once: enough to hide latency, few enough to be
/// polite to mirrors.
const PARALLEL: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{url}: got {found} bytes, but {name} {version} is {expected} bytes (Packages index or lock)")]
    SizeMismatch { url: String, name: String, version: String, expected: u64, found: u64 },
    #[error("{url}: SHA256 {found} does not match {expected}, the SHA256 of {name} {version} in the Packages index or lock (corrupt or tampered mirror, or a wrong lock)")]
    HashMismatch { url: String, name: String, version: String, expected: String, found: String },
    /// `package` is `NAME VERSION`.
    #[error("{package}: no copy has the expected SHA256 {expected} (from the lock or the Packages index){hint}: {}", tried.join("; "))]
    Unavailable { package: String, expected: String, hint: String, tried: Vec<String> },
    #[error("{name} {version}: no archive or mirror is configured to download {filename} from")]
    NoMirror { name: String, version: String, filename: String },
    #[error("package {name}: {source}")]
    Name { name: String, source: SyntaxError },
    #[error("package cache {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// `<name>_<version>_<arch>.deb`, epoch colon escaped as APT does; a name,
/// version or architecture outside Debian's syntax (a `/` in a version from
/// a crafted lock) is refused rather than made into a path.
pub fn deb_file_name(p: &Package) -> Result<String, SyntaxError> {
    syntax::deb_file_name(&p.name, &p.version, &p.architecture)
}

/// Download (or reuse) every package into `dir`; returns their paths in the
/// order of `pkgs`. A progress bar is drawn on stderr when it is a terminal
/// and `quiet` is false.
pub fn download(pkgs: &[Package], dir: &Path, quiet: bool) -> Result<Vec<PathBuf>, FetchError> {
    download_from(pkgs, &[], dir, quiet, "packages")
}

/// [`download`], trying each package's own archive first, then `mirrors`
/// (archive roots such as `http://deb.debian.org/debian` or `file:/srv/debs`).
/// `label` names what the packages are for on the progress bar (`build root
/// 6.1.0-56-amd64`): several downloads at once each get their own line.
pub fn download_from(
    pkgs: &[Package],
    mirrors: &[String],
    dir: &Path,
    quiet: bool,
    label: &str,
) -> Result<Vec<PathBuf>, FetchError> {
    std::fs::create_dir_all(dir).map_err(|source| FetchError::Io { path: dir.to_path_buf(), source })?;
    let total: u64 = pkgs.iter().map(|p| p.size).sum();
    let bar = progress_bar(total, quiet, label);
    // A failure stops handing out work; running downloads finish.
    let results = crate::work::run(pkgs, PARALLEL, |p| fetch_one(p, mirrors, dir, &bar), Result::is_err);
    bar.finish_and_clear();
    // Report the first failure in list order; entries never started stay None.
    let mut out = Vec::with_capacity(pkgs.len());
    for r in results {
        match r {
            Some(Ok(p)) => out.push(p),
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    if out.len() != pkgs.len() {
        // Only reachable when a failure stopped the queue and was reported above.
        return Err(FetchError::Io { path: dir.to_path_buf(), source: std::io::Error::other("download aborted") });
    }
    Ok(out)
}

fn progress_bar(total: u64, quiet: bool, label: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    // One line per download running in this process (two cold kernels built
    // at once fetch two build roots side by side), among the build spinners.
    let bar = crate::watch::bars().add(ProgressBar::new(total));
    if let Ok(style) = ProgressStyle::with_template(
        "fetching {prefix}: {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(label.to_owned());
    bar
}

fn fetch_one(p: &Package, mirrors: &[String], dir: &Path, bar: &ProgressBar) -> Result<PathBuf, FetchError> {
    let bad_name = |e: SyntaxError| FetchError::Name { name: syntax::quote(&p.name), source: e };
    let path = dir.join(deb_file_name(p).map_err(bad_name)?);
    // Appended to each archive root's URL: a plain relative path.
    syntax::archive_path(&p.filename).map_err(bad_name)?;
    let mut cached = None;
    if let Ok(mut f) = File::open(&path) {
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        let hash = hash_reader(&mut f).unwrap_or_default();
        if size == p.size && hash == p.sha256 {
            bar.inc(p.size);
            return Ok(path);
        }
        tracing::warn!(path = %path.display(), "cached .deb does not match the expected SHA256; downloading again");
        cached = Some((path.clone(), hash, size));
    }
    let mut urls = Vec::new();
    for base in std::iter::once(&p.base_uri).chain(mirrors).filter(|b| !b.is_empty()) {
        let url = format!("{}/{}", base.trim_end_matches('/'), p.filename);
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    if urls.is_empty() {
        return Err(FetchError::NoMirror {
            name: p.name.clone(),
            version: p.version.clone(),
            filename: p.filename.clone(),
        });
    }
    let mut failures = Vec::new();
    for url in &urls {
        let mut attempt = 0;
        let failure = loop {
            attempt += 1;
            match download_verified(p, url, dir, &path, bar) {
                Ok(()) => {
                    for f in &failures {
                        tracing::warn!("{f}");
                    }
                    return Ok(path);
                }
                // One retry for transient network trouble; hash mismatches are not transient.
                Err(FetchError::Transport(e)) if attempt < 2 && !e.is_not_found() => {
                    tracing::warn!(%url, "retrying after: {e}");
                }
                Err(e @ FetchError::Io { .. }) => return Err(e),
                Err(e) => break e,
            }
        };
        failures.push(failure);
    }
    if failures.len() == 1 && cached.is_none() {
        return Err(failures.remove(0));
    }
    let mut tried: Vec<String> = failures.iter().map(ToString::to_string).collect();
    let mut hint = String::new();
    if let Some((path, hash, size)) = cached {
        tried.insert(0, format!("the package cache's {} has SHA256 {hash} ({size} bytes): not used", path.display()));
        // Independent copies that agree with each other but not with the
        // expectation point at the expectation: most likely a wrong lock.
        let agreeing = failures.iter().find_map(|f| match f {
            FetchError::HashMismatch { url, found, .. } if *found == hash => Some(url),
            _ => None,
        });
        if let Some(url) = agreeing {
            hint = format!("; the package cache and {url} agree on {hash}: is the lock wrong?");
        }
    }
    let package = format!("{} {}", p.name, p.version);
    Err(FetchError::Unavailable { package, expected: p.sha256.clone(), hint, tried })
}

fn download_verified(p: &Package, url: &str, dir: &Path, path: &Path, bar: &ProgressBar) -> Result<(), FetchError> {
    let io = |source| FetchError::Io { path: dir.to_path_buf(), source };
    let (reader, _) = transport::open(url)?;
    let mut tmp = tempfile::Builder::new().prefix(".partial-").suffix(".deb").tempfile_in(dir).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut found = 0u64;
    // Read at most one byte more than expected: enough to detect "too big"
    // without letting a hostile server fill the disk.
    let mut limited = reader.take(p.size + 1);
    let mut buf = vec![0u8; 256 * 1024];
    let mut counted = 0u64;
    let result = (|| {
        loop {
            let n = limited.read(&mut buf).map_err(|source| TransportError::Body { url: url.to_string(), source })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).map_err(io)?;
            found += n as u64;
            let inc = (n as u64).min(p.size.saturating_sub(counted));
            counted += inc;
            bar.inc(inc);
        }
        Ok::<(), FetchError>(())
    })();
    if let Err(e) = result {
        bar.dec(counted); // the retry (if any) counts again
        return Err(e);
    }
    if found != p.size {
        bar.dec(counted);
        return Err(FetchError::SizeMismatch {
            url: url.into(),
            name: p.name.clone(),
            version: p.version.clone(),
            expected: p.size,
            found,
        });
    }
    let hash = hex::encode(hasher.finalize());
    if hash != p.sha256 {
        bar.dec(counted);
        return Err(FetchError::HashMismatch {
            url: url.into(),
            name: p.name.clone(),
            version: p.version.clone(),
            expected: p.sha256.clone(),
            found: hash,
        });
    }
    // tempfile creates 0600; a package cache is world-readable like APT's.
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

fn hash_reader(r: &mut impl Read) -> std::io::Result<String> {
    let mut h = Sha256::new();
    std::io::copy(r, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt::archive::tests::pkg;

    fn repo_with(content: &[u8]) -> (tempfile::TempDir, Package) {
        let repo = tempfile::tempdir().unwrap();
        let mut p = pkg("hello", "1:2.10-3", "", "");
        p.base_uri = format!("file:{}", repo.path().display());
        std::fs::create_dir_all(repo.path().join("pool")).unwrap();
        std::fs::write(repo.path().join(&p.filename), content).unwrap();
        p.size = content.len() as u64;
        p.sha256 = hex::encode(Sha256::digest(content));
        (repo, p)
    }

    #[test]
    fn names_like_apt() {
        let p = pkg("hello", "1:2.10-3", "", "");
        assert_eq!(deb_file_name(&p).unwrap(), "hello_1%3a2.10-3_amd64.deb");
    }

    #[test]
    fn downloads_verifies_and_reuses() {
        let (repo, p) = repo_with(b"deb contents");
        let cache = tempfile::tempdir().unwrap();
        let got = download(std::slice::from_ref(&p), cache.path(), true).unwrap();
        assert_eq!(got, [cache.path().join("hello_1%3a2.10-3_amd64.deb")]);
        assert_eq!(std::fs::read(&got[0]).unwrap(), b"deb contents");
        // Reused from the cache even when the mirror is gone.
        drop(repo);
        assert_eq!(download(std::slice::from_ref(&p), cache.path(), true).unwrap(), got);
        // No stray temporary files.
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
    }

    #[test]
    fn rejects_tampered_and_truncated_files() {
        let (repo, mut p) = repo_with(b"deb contents");
        let cache = tempfile::tempdir().unwrap();
        std::fs::write(repo.path().join(&p.filename), b"evil contents").unwrap();
        let e = download(std::slice::from_ref(&p), cache.path(), true).unwrap_err();
        assert!(matches!(e, FetchError::SizeMismatch { found: 13, expected: 12, .. }), "{e}");
        std::fs::write(repo.path().join(&p.filename), b"evil content").unwrap();
        let e = download(std::slice::from_ref(&p), cache.path(), true).unwrap_err();
        assert!(e.to_string().contains("hello 1:2.10-3") && e.to_string().contains("SHA256"), "{e}");
        // A corrupt file in the cache is replaced, not trusted.
        std::fs::write(repo.path().join(&p.filename), b"deb contents").unwrap();
        std::fs::write(cache.path().join(deb_file_name(&p).unwrap()), b"deb c0ntents").unwrap();
        let got = download(std::slice::from_ref(&p), cache.path(), true).unwrap();
        assert_eq!(std::fs::read(&got[0]).unwrap(), b"deb contents");
        p.filename = "pool/missing.deb".into();
        p.version = "9".into(); // else the verified cached file would be reused
        let e = download(&[p], cache.path(), true).unwrap_err();
        assert!(e.to_string().contains("missing.deb"), "{e}");
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1, "no partial files left");
    }

    /// A package from a lock has no archive of its own: the mirrors are tried
    /// in order; a tampered cache copy is named when no mirror can replace it.
    #[test]
    fn mirrors_are_tried_in_order() {
        let (good, mut p) = repo_with(b"deb contents");
        let (evil, _) = repo_with(b"deb c0ntents");
        let empty = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let uri = |d: &tempfile::TempDir| format!("file:{}", d.path().display());
        p.base_uri = String::new();
        let e = download(std::slice::from_ref(&p), cache.path(), true).unwrap_err();
        assert!(matches!(e, FetchError::NoMirror { .. }) && e.to_string().contains("hello 1:2.10-3"), "{e}");

        let got =
            download_from(std::slice::from_ref(&p), &[uri(&empty), uri(&evil), uri(&good)], cache.path(), true, "test")
                .unwrap();
        assert_eq!(std::fs::read(&got[0]).unwrap(), b"deb contents");

        // Tampered in the cache, and no mirror has a good copy: both are said.
        std::fs::write(&got[0], b"deb c0ntents").unwrap();
        let e = download_from(std::slice::from_ref(&p), &[uri(&empty), uri(&evil)], cache.path(), true, "test")
            .unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, FetchError::Unavailable { .. }), "{msg}");
        assert!(msg.starts_with(&format!("hello 1:2.10-3: no copy has the expected SHA256 {}", p.sha256)), "{msg}");
        assert!(msg.contains(&format!("the package cache's {} has SHA256", got[0].display())), "{msg}");
        assert!(msg.contains("the package cache and file:") && msg.contains("is the lock wrong?"), "{msg}");
        assert!(
            msg.contains("cannot read") && msg.contains("does not match"),
            "every mirror's failure is listed: {msg}"
        );
        assert_eq!(std::fs::read(&got[0]).unwrap(), b"deb c0ntents", "a failed download replaces nothing");
        // Its own archive (base_uri) comes first, mirrors after.
        p.base_uri = uri(&evil);
        download_from(std::slice::from_ref(&p), &[uri(&good)], cache.path(), true, "test").unwrap();
        assert_eq!(std::fs::read(&got[0]).unwrap(), b"deb contents");
    }
}
