//! Tests against the real Debian archive configured on this machine.
//!
//! `inrelease_of_configured_sources_verifies` is fast (a few hundred KB) and
//! skips itself when the archive is unreachable. `real_run` downloads ~80 MB
//! and is `#[ignore]`d; run it with
//! `cargo test --release -p hermod --lib apt::live::real_run -- --ignored --nocapture`.

use std::path::Path;
use std::time::Instant;

use super::release::{fetch_release, ReleaseError};
use super::sources::read_sources;
use super::transport::TransportError;
use super::*;

#[test]
fn inrelease_of_configured_sources_verifies() {
    let Ok(sources) = read_sources(Path::new("/")) else { return };
    for s in sources.iter().filter(|s| s.uri.starts_with("http://deb.debian.org")) {
        match fetch_release(s) {
            Ok(r) => {
                assert!(r.sha256.keys().any(|k| k.starts_with("main/binary-amd64/Packages")), "{}", s.suite);
                assert!(r.codename == s.suite || r.suite == s.suite);
            }
            Err(ReleaseError::Transport(TransportError::Http { url, message })) => {
                eprintln!("skipping live check, archive unreachable: {url}: {message}");
                return;
            }
            Err(e) => panic!("{}: {e}", s.suite),
        }
    }
}

#[test]
#[ignore = "downloads ~80 MB from the configured Debian mirror"]
fn real_run() {
    let cache = Path::new("/var/cache/hermod-dev");
    let t = Instant::now();
    let archive = Archive::from_system(cache, "amd64", false).unwrap();
    let t_index = t.elapsed();
    eprintln!("index: {} package versions in {t_index:.2?}", archive.len());
    let headers = archive.names_matching("linux-headers-", "-amd64");
    eprintln!("linux-headers-*-amd64: {} names, e.g. {:?}", headers.len(), &headers[headers.len().saturating_sub(3)..]);
    if let Some(meta) = archive.newest("linux-headers-amd64") {
        eprintln!("linux-headers-amd64 {} depends: {}", meta.version, meta.depends);
    }

    let roots: Vec<String> = "linux-headers-6.1.0-56-amd64 make bash coreutils sed grep mawk findutils diffutils"
        .split(' ')
        .map(String::from)
        .collect();
    let t = Instant::now();
    let pkgs = resolve(&archive, &roots, &["linux-image-*".to_string()]).unwrap();
    let t_resolve = t.elapsed();
    let bytes: u64 = pkgs.iter().map(|p| p.size).sum();
    eprintln!("resolve: {} packages, {:.1} MiB in {t_resolve:.2?}", pkgs.len(), bytes as f64 / 1048576.0);
    for p in &pkgs {
        eprintln!("  {} {} {}", p.name, p.version, p.architecture);
    }

    let t = Instant::now();
    let debs = download(&pkgs, &cache.join("packages"), false).unwrap();
    let t_download = t.elapsed();
    eprintln!("download: {} files in {t_download:.2?}", debs.len());

    let dest = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let mut files = 0;
    for d in &debs {
        files += unpack_data(d, dest.path()).unwrap();
    }
    let t_unpack = t.elapsed();
    eprintln!("unpack: {files} paths in {t_unpack:.2?}");
    assert!(
        dest.path().join("usr/src/linux-headers-6.1.0-56-amd64/Makefile").exists()
            || dest.path().join("usr/src/linux-headers-6.1.0-56-amd64").exists()
    );
    let c = control(&debs[0]).unwrap();
    assert_eq!(c.get("Package"), Some(pkgs[0].name.as_str()));
    eprintln!("SUMMARY packages={} bytes={bytes} index={t_index:.2?} resolve={t_resolve:.2?} download={t_download:.2?} unpack={t_unpack:.2?}", pkgs.len());
}
