//! Fuzz lock files (`Lock::parse_file`): a lock comes from anywhere, and its
//! fields become file names and symlinks on the master host. No input may
//! panic; a parsed lock must keep the syntax rules its users rely on, and its
//! `file_text()` must parse back to the same lock (same text, same hash).
#![no_main]

use hermod::apt::syntax;
use hermod::rootfs::Lock;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(lock) = Lock::parse_file(text, "fuzz.lock") else { return };
    for p in &lock.packages {
        let name = syntax::deb_file_name(&p.name, &p.version, &p.architecture).expect("a parsed package names one file");
        assert!(!name.contains('/') && name.len() <= 255, "{name}");
        assert!(!p.filename.starts_with('/') && !p.filename.split('/').any(|c| c == ".." || c.is_empty()));
    }
    assert!(syntax::kernel_release(&lock.kernel).is_ok());
    for (path, _) in &lock.links {
        assert!(path.starts_with('/') && !path[1..].split('/').any(|c| c.is_empty() || c == "." || c == ".."));
        for (other, _) in &lock.links {
            assert!(!other.starts_with(&format!("{path}/")), "{other} below {path}");
        }
    }
    let again = Lock::parse_file(&lock.file_text(), "again.lock").expect("file_text parses back");
    assert_eq!(again.file_text(), lock.file_text());
    assert_eq!(again.hash(), lock.hash());
});
