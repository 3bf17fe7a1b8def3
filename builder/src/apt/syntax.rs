//! Debian's syntax for the names that become file names on the master host.
//!
//! A package name, a version, an architecture or a kernel release read from
//! an untrusted place (a lock file, a Packages index, a `-dkms` package, a
//! repository's index) ends up in a path: `<name>_<version>_<arch>.deb` in the
//! package cache, `unpacked/<stem>.<sha256>.json`, `linux-headers-<KREL>`, a
//! pool path. So every such value is checked here, against the syntax Debian
//! itself gives it, before it is used for anything; what passes has no `/`,
//! no NUL, no whitespace and is never `.` or `..`, so it names one file.
//!
//! * package and source names: policy §5.6.1, `[a-z0-9][a-z0-9+.-]+`;
//! * versions: policy §5.6.12, `[epoch:]upstream[-revision]`: the epoch
//!   decimal, the upstream starting with a digit, of `[A-Za-z0-9.+~-:]` with
//!   `-` only if there is a revision and `:` only if there is an epoch, the
//!   revision of `[A-Za-z0-9+.~]`;
//! * architectures: `[a-z0-9][a-z0-9-]*` (so `all` too);
//! * SHA256 and blake3 digests: 64 lower-case hex digits;
//! * sizes: decimal digits, no sign, no leading zero, no overflow;
//! * archive paths (`Filename`): relative, plain components of
//!   `[A-Za-z0-9._+~:%-]`, no `.`/`..`, no empty component, ending `.deb`;
//! * kernel releases: `[A-Za-z0-9.+_~-]+`, never `.` or `..`;
//! * recipe names: `[a-z0-9][a-z0-9.+_-]*`.
//!
//! Lengths are bounded too, so that `<name>_<version>_<arch>.deb` fits in one
//! file name (255 bytes). Errors quote at most [`QUOTE_LIMIT`] bytes of the
//! value: a hostile input does not get to fill the terminal.

/// The most bytes of an offending value an error message quotes.
pub const QUOTE_LIMIT: usize = crate::bounded::EXCERPT_BYTES;

/// The longest package or source name, and the longest version.
pub const MAX_NAME: usize = 100;
/// The longest architecture name.
pub const MAX_ARCH: usize = 32;
/// The longest archive path (`Filename`).
pub const MAX_PATH: usize = 1024;

/// A value that is not what Debian's syntax allows for `what`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value} {reason}")]
pub struct SyntaxError {
    /// What the value was meant to be ("package name", "version", ...).
    pub what: &'static str,
    /// The value, quoted and cut to [`QUOTE_LIMIT`] bytes.
    pub value: String,
    pub reason: String,
}

impl SyntaxError {
    fn new(what: &'static str, value: &str, reason: impl Into<String>) -> SyntaxError {
        SyntaxError { what, value: quote(value), reason: reason.into() }
    }
}

/// `value` as a Rust string literal, cut to [`QUOTE_LIMIT`] bytes (on a
/// character boundary), saying how much was left out: how every error quotes
/// input ([`crate::bounded::excerpt`]).
pub fn quote(value: &str) -> String {
    crate::bounded::excerpt(value)
}

fn too_long(what: &'static str, value: &str, max: usize) -> Result<(), SyntaxError> {
    if value.len() > max {
        return Err(SyntaxError::new(what, value, format!("is longer than {max} bytes")));
    }
    Ok(())
}

/// A binary package name (policy §5.6.1).
pub fn package_name(name: &str) -> Result<(), SyntaxError> {
    name_of("package name", name)
}

/// A source package name: the same syntax as a binary package's.
pub fn source_name(name: &str) -> Result<(), SyntaxError> {
    name_of("source package name", name)
}

fn name_of(what: &'static str, name: &str) -> Result<(), SyntaxError> {
    too_long(what, name, MAX_NAME)?;
    let b = name.as_bytes();
    let ok = b.len() >= 2
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+.-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(SyntaxError::new(what, name, "is not a Debian package name ([a-z0-9][a-z0-9+.-]+)"))
    }
}

/// A version (policy §5.6.12).
pub fn version(v: &str) -> Result<(), SyntaxError> {
    version_reason(v).map_err(|reason| SyntaxError::new("version", v, reason))
}

/// Why `v` is not a Debian version, in words (for callers with their own error type).
pub fn version_reason(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("is empty".into());
    }
    if v.len() > MAX_NAME {
        return Err(format!("is longer than {MAX_NAME} bytes"));
    }
    if v.chars().any(|c| c.is_whitespace()) {
        return Err("contains whitespace".into());
    }
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) => (Some(e), r),
        None => (None, v),
    };
    if let Some(e) = epoch {
        if e.is_empty() || !e.bytes().all(|c| c.is_ascii_digit()) {
            return Err("has an epoch that is not a non-empty decimal number".into());
        }
        if e.parse::<u32>().is_err() {
            return Err("has an epoch too large".into());
        }
    }
    let (upstream, revision) = match rest.rfind('-') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if upstream.is_empty() {
        return Err("has an empty upstream version".into());
    }
    if !upstream.as_bytes()[0].is_ascii_digit() {
        return Err("has an upstream version that does not start with a digit".into());
    }
    let upstream_ok = |c: u8| {
        c.is_ascii_alphanumeric()
            || b".+~".contains(&c)
            || (c == b'-' && revision.is_some())
            || (c == b':' && epoch.is_some())
    };
    if let Some(bad) = upstream.bytes().find(|&c| !upstream_ok(c)) {
        return Err(format!("has the character {:?} in its upstream version", bad as char));
    }
    if let Some(r) = revision {
        if r.is_empty() {
            return Err("has an empty Debian revision after '-'".into());
        }
        if let Some(bad) = r.bytes().find(|&c| !(c.is_ascii_alphanumeric() || b".+~".contains(&c))) {
            return Err(format!("has the character {:?} in its Debian revision", bad as char));
        }
    }
    Ok(())
}

/// One architecture name (`amd64`, `arm64`, `all`).
pub fn architecture(a: &str) -> Result<(), SyntaxError> {
    too_long("architecture", a, MAX_ARCH)?;
    let b = a.as_bytes();
    let ok = !b.is_empty()
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(SyntaxError::new("architecture", a, "is not an architecture name ([a-z0-9][a-z0-9-]*)"))
    }
}

/// A SHA256 (or blake3) digest as hermod writes it: 64 lower-case hex digits.
pub fn hex64(what: &'static str, h: &str) -> Result<(), SyntaxError> {
    if h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(SyntaxError::new(what, h, "is not 64 lower-case hex digits"))
    }
}

/// A SHA256 digest.
pub fn sha256(h: &str) -> Result<(), SyntaxError> {
    hex64("SHA256", h)
}

/// A size in bytes: decimal digits only (no sign, no leading zero), within `u64`.
pub fn size(s: &str) -> Result<u64, SyntaxError> {
    let bad = |reason| Err(SyntaxError::new("size", s, reason));
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return bad("is not a number of bytes (decimal digits only)");
    }
    if s.len() > 1 && s.starts_with('0') {
        return bad("has a leading zero");
    }
    match s.parse::<u64>() {
        Ok(n) => Ok(n),
        Err(_) => bad("is too large"),
    }
}

/// A path below an archive root or a local .deb directory (`Filename`).
pub fn archive_path(p: &str) -> Result<(), SyntaxError> {
    const WHAT: &str = "file name";
    too_long(WHAT, p, MAX_PATH)?;
    if p.starts_with('/') {
        return Err(SyntaxError::new(WHAT, p, "is absolute (it must be relative to the archive root)"));
    }
    for c in p.split('/') {
        match c {
            "" => return Err(SyntaxError::new(WHAT, p, "has an empty component (`//` or a trailing `/`)")),
            "." | ".." => return Err(SyntaxError::new(WHAT, p, "has a `.` or `..` component")),
            _ => {}
        }
        if let Some(bad) = c.bytes().find(|&b| !(b.is_ascii_alphanumeric() || b"._+~:%-".contains(&b))) {
            return Err(SyntaxError::new(WHAT, p, format!("has the character {:?}", bad as char)));
        }
    }
    if !p.ends_with(".deb") || p.rsplit('/').next() == Some(".deb") {
        return Err(SyntaxError::new(WHAT, p, "does not name a .deb"));
    }
    Ok(())
}

/// A kernel release (`6.1.0-56-amd64`, `6.12.117+deb12-amd64`).
pub fn kernel_release(k: &str) -> Result<(), SyntaxError> {
    too_long("kernel release", k, MAX_NAME)?;
    let ok =
        !k.is_empty() && k != "." && k != ".." && k.bytes().all(|c| c.is_ascii_alphanumeric() || b".+_~-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(SyntaxError::new("kernel release", k, "is not a kernel release ([A-Za-z0-9.+_~-]+)"))
    }
}

/// A recipe's name (`bookworm-amd64`): its file is `rootfs-recipes/<name>.toml`.
pub fn recipe_name(r: &str) -> Result<(), SyntaxError> {
    too_long("recipe", r, MAX_NAME)?;
    let b = r.as_bytes();
    let ok = !b.is_empty()
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b".+_-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(SyntaxError::new("recipe", r, "is not a recipe name ([a-z0-9][a-z0-9.+_-]*)"))
    }
}

/// `<name>_<version>_<arch>.deb`, the epoch's colon escaped as APT does,
/// once each part is checked: one file name, whatever the input said.
pub fn deb_file_name(name: &str, version_: &str, arch: &str) -> Result<String, SyntaxError> {
    package_name(name)?;
    version(version_)?;
    architecture(arch)?;
    Ok(format!("{name}_{}_{arch}.deb", version_.replace(':', "%3a")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names() {
        for ok in ["make", "g++", "linux-headers-6.1.0-56-amd64", "0ad", "libstdc++6"] {
            package_name(ok).unwrap();
        }
        for bad in ["", "a", "Make", "-x", ".x", "a/b", "..", "a b", "a_b", "a\0b", "mäke", &"a".repeat(101)] {
            assert!(package_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn versions() {
        for ok in ["1", "1:3.8-4", "4.3-4.1", "2.10-3+deb12u1", "1.0~rc1", "6.1.192-2", "1:2:3-4", "1.0-1-1"] {
            version(ok).unwrap();
        }
        let bad: &[(&str, &str)] = &[
            ("", "empty"),
            ("1.0/..", "'/'"),
            ("1/../../x", "'/'"),
            ("a1", "start with a digit"),
            ("x:1", "epoch"),
            ("99999999999:1", "too large"),
            ("1:", "empty upstream"),
            ("1.0-", "empty Debian revision"),
            ("1:1.0-a:b", "revision"),
            ("1.0_1", "'_'"),
            ("1 0", "whitespace"),
            ("1\u{0}", "'\\0'"),
        ];
        for (v, why) in bad {
            let e = version(v).expect_err(v).to_string();
            assert!(e.contains(why), "{v:?}: {e}");
        }
        // `:` in the upstream only with an epoch; `-` only with a revision.
        assert!(version("1:2").is_ok() && version("1.2:3").is_err());
    }

    #[test]
    fn architectures_digests_and_sizes() {
        for ok in ["amd64", "all", "x32", "kfreebsd-amd64"] {
            architecture(ok).unwrap();
        }
        for bad in ["", "AMD64", "amd64/..", "-x", "a b"] {
            assert!(architecture(bad).is_err(), "{bad:?}");
        }
        sha256(&"ab".repeat(32)).unwrap();
        assert!(sha256(&"AB".repeat(32)).is_err() && sha256("ab").is_err() && sha256(&"g".repeat(64)).is_err());
        assert_eq!(size("0").unwrap(), 0);
        assert_eq!(size("18446744073709551615").unwrap(), u64::MAX);
        for bad in ["", "+1", "-1", "1k", "01", " 1", "99999999999999999999", "18446744073709551616"] {
            assert!(size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn archive_paths() {
        for ok in ["pool/main/m/make-dfsg/make_4.3-4.1_amd64.deb", "hello_1%3a2.10-3_amd64.deb", "pool/x_1:2_all.deb"] {
            archive_path(ok).unwrap();
        }
        for bad in [
            "/etc/x.deb",
            "pool/../x.deb",
            "pool//x.deb",
            "./x.deb",
            "pool/x.tar",
            "pool/.deb",
            "pool/x y.deb",
            "pool/x\0.deb",
            "pool/x\\y.deb",
            "pool/x?.deb",
        ] {
            assert!(archive_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kernel_releases_and_recipes() {
        for ok in ["6.1.0-56-amd64", "6.12.117+deb12-amd64", "5.10.0-1_x"] {
            kernel_release(ok).unwrap();
        }
        for bad in ["", ".", "..", "../../etc", "6.1/x", "6.1 x", "6.1\n"] {
            assert!(kernel_release(bad).is_err(), "{bad:?}");
        }
        recipe_name("bookworm-amd64").unwrap();
        for bad in ["", "../x", "Bookworm", "a/b", "-x"] {
            assert!(recipe_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deb_file_names_are_one_component() {
        assert_eq!(deb_file_name("hello", "1:2.10-3", "amd64").unwrap(), "hello_1%3a2.10-3_amd64.deb");
        assert!(deb_file_name("hello", "1/../../../etc", "amd64").is_err());
        assert!(deb_file_name("hello", "1", "amd64/..").is_err());
        let longest = deb_file_name(&"a".repeat(MAX_NAME), &"1".repeat(MAX_NAME), &"b".repeat(MAX_ARCH)).unwrap();
        assert!(longest.len() <= 255, "{}", longest.len());
    }

    #[test]
    fn quotes_are_bounded() {
        let long = "é".repeat(500);
        let q = quote(&long);
        assert!(q.len() <= QUOTE_LIMIT + 40 && q.ends_with("more bytes)"), "{}", q.len());
        assert_eq!(quote("a\0b"), "\"a\\0b\"");
        let e = package_name(&"x".repeat(10_000)).unwrap_err().to_string();
        assert!(e.len() < 300, "{e}");
    }
}
