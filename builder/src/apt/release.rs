//! `dists/<suite>/InRelease`: the signed root of an archive's chain of hashes.
//!
//! InRelease is a deb822 stanza (Suite, Codename, Date, Valid-Until,
//! Architectures, Components, and `SHA256:` — a list of `hash size path` for
//! every index file of the suite), wrapped in an OpenPGP *cleartext
//! signature*. Trust flows down a chain: the keyring vouches for InRelease;
//! InRelease's SHA256 list vouches for each `Packages.xz`; each Packages
//! stanza's SHA256 vouches for one `.deb`. Break any link (use unverified
//! text, skip a size/hash check) and a mirror or network attacker can feed
//! arbitrary packages into the build chroot. So: verify the signature
//! first, and parse only the text the signature covers.
//!
//! `Valid-Until` bounds replay attacks (serving an old, validly signed but
//! vulnerable snapshot); an expired InRelease is rejected. We also insist
//! that `Suite` or `Codename` names the suite we asked for, as APT does,
//! so a validly signed `stable` cannot be substituted for `bookworm-security`.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use pgp::composed::CleartextSignedMessage;

use super::keyring::{issuer_ids, Keyring, KeyringError};
use super::sources::Source;
use super::stanza::{self, StanzaError};
use super::transport::{self, TransportError};

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error(transparent)]
    Syntax(#[from] StanzaError),
    #[error("{url} is not an OpenPGP clearsigned file: {message}")]
    NotSigned { url: String, message: String },
    #[error("{url}: no signature verifies with a key in {keyring} (signatures are from key ids: {seen}; keyring holds: {have})")]
    BadSignature { url: String, keyring: String, seen: String, have: String },
    #[error("{url} expired on {valid_until} (Valid-Until); the mirror serves stale metadata, refusing it")]
    Expired { url: String, valid_until: String },
    #[error("{url}: field {field} has unreadable value {}", crate::bounded::excerpt(.value))]
    BadField { url: String, field: &'static str, value: String },
    #[error("{url} describes suite {} (codename {}), but sources ask for {wanted:?}", crate::bounded::excerpt(.found), crate::bounded::excerpt(.codename))]
    WrongSuite { url: String, wanted: String, found: String, codename: String },
}

/// Hash and size of one index file listed in a Release file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHash {
    pub sha256: String,
    pub size: u64,
}

/// The parsed, verified Release data of one suite.
#[derive(Debug, Clone, Default)]
pub struct Release {
    pub suite: String,
    pub codename: String,
    pub date: String,
    pub valid_until: Option<String>,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    /// `NotAutomatic: yes` (backports, experimental): APT installs nothing
    /// from the suite unless asked or nothing else will do.
    pub not_automatic: bool,
    /// `Acquire-By-Hash: yes`: every index is also under
    /// `<dir>/by-hash/SHA256/<hash>`, kept there for a while after the suite
    /// moves on, so a download by hash never races an archive update.
    pub acquire_by_hash: bool,
    /// `path relative to dists/<suite>/` → hash and size.
    pub sha256: BTreeMap<String, FileHash>,
}

impl Release {
    /// Parse Release text (already verified). `url` names it in errors.
    pub fn parse(text: &str, url: &str) -> Result<Release, ReleaseError> {
        let st = stanza::parse(text, url)?.into_iter().next().unwrap_or_default();
        let field = |n: &str| st.get(n).unwrap_or_default().to_string();
        let words = |n: &str| st.get(n).map(|v| v.split_whitespace().map(str::to_string).collect()).unwrap_or_default();
        let mut sha256 = BTreeMap::new();
        for line in st.get("SHA256").unwrap_or_default().lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [hash, size, path] = parts[..] else {
                if parts.is_empty() {
                    continue;
                }
                return Err(ReleaseError::BadField { url: url.into(), field: "SHA256", value: line.into() });
            };
            let bad = || ReleaseError::BadField { url: url.into(), field: "SHA256", value: line.into() };
            let size = size.parse().map_err(|_| bad())?;
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            sha256.insert(path.to_string(), FileHash { sha256: hash.to_ascii_lowercase(), size });
        }
        Ok(Release {
            suite: field("Suite"),
            codename: field("Codename"),
            date: field("Date"),
            valid_until: st.get("Valid-Until").map(str::to_string),
            architectures: words("Architectures"),
            components: words("Components"),
            not_automatic: st.get("NotAutomatic").is_some_and(|v| v.trim().eq_ignore_ascii_case("yes")),
            acquire_by_hash: st.get("Acquire-By-Hash").is_some_and(|v| v.trim().eq_ignore_ascii_case("yes")),
            sha256,
        })
    }

    /// Reject if `Valid-Until` lies before `now`.
    pub fn check_valid_until(&self, now: SystemTime, url: &str) -> Result<(), ReleaseError> {
        let Some(vu) = &self.valid_until else { return Ok(()) };
        let t = parse_rfc2822(vu).ok_or_else(|| ReleaseError::BadField {
            url: url.into(),
            field: "Valid-Until",
            value: vu.clone(),
        })?;
        let now = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        if t < now {
            return Err(ReleaseError::Expired { url: url.into(), valid_until: vu.clone() });
        }
        Ok(())
    }
}

/// Check the clearsignature of `inrelease` against `keyring` and return the
/// signed text (with `\n` line ends). Accepts if any signature verifies.
pub fn verify_clearsigned(inrelease: &[u8], keyring: &Keyring, url: &str) -> Result<String, ReleaseError> {
    let text = std::str::from_utf8(inrelease)
        .map_err(|_| ReleaseError::NotSigned { url: url.into(), message: "not UTF-8 text".into() })?;
    let (msg, _) = CleartextSignedMessage::from_string(text)
        .map_err(|e| ReleaseError::NotSigned { url: url.into(), message: e.to_string() })?;
    let signed = msg.signed_text();
    if msg.signatures().iter().any(|sig| keyring.verifies(sig, signed.as_bytes())) {
        return Ok(signed.replace("\r\n", "\n"));
    }
    let seen: Vec<String> = msg.signatures().iter().flat_map(issuer_ids).collect();
    Err(ReleaseError::BadSignature {
        url: url.into(),
        keyring: keyring.origin.clone(),
        seen: if seen.is_empty() { "none".into() } else { seen.join(", ") },
        have: keyring.key_ids().join(", "),
    })
}

/// URL of the directory holding a suite's index files.
pub fn dists_url(source: &Source) -> String {
    format!("{}/dists/{}", source.uri, source.suite)
}

/// Fetch, verify and parse `dists/<suite>/InRelease` of `source`.
pub fn fetch_release(source: &Source) -> Result<Release, ReleaseError> {
    let url = format!("{}/InRelease", dists_url(source));
    let keyring = Keyring::load(&source.signed_by)?;
    // Debian's InRelease files are ~150 KB (see `bounded` for the cap).
    let bytes = transport::get_within(&url, crate::bounded::Limit::ReleaseSize, &crate::bounded::current())?;
    let text = verify_clearsigned(&bytes, &keyring, &url)?;
    let release = Release::parse(&text, &url)?;
    if source.check_valid_until {
        release.check_valid_until(SystemTime::now(), &url)?;
    }
    if release.suite != source.suite && release.codename != source.suite {
        return Err(ReleaseError::WrongSuite {
            url,
            wanted: source.suite.clone(),
            found: release.suite,
            codename: release.codename,
        });
    }
    Ok(release)
}

/// Parse an RFC 2822 date as used in Release files
/// (`Sat, 14 Jun 2025 09:21:44 UTC`) into Unix seconds.
pub fn parse_rfc2822(s: &str) -> Option<i64> {
    let mut w: Vec<&str> = s.split_whitespace().collect();
    if w.first().is_some_and(|d| d.ends_with(',')) {
        w.remove(0);
    }
    let [day, mon, year, time, zone] = w[..] else { return None };
    let day: i64 = day.parse().ok()?;
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let mon = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))? as i64 + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [h, m, sec] = hms[..] else { return None };
    let offset = match zone {
        "UTC" | "GMT" | "Z" => 0,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let n: i64 = z[1..].parse().ok()?;
            let secs = (n / 100) * 3600 + (n % 100) * 60;
            if z.starts_with('-') {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    if !(1..=31).contains(&day) || !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..=60).contains(&sec) {
        return None;
    }
    Some(days_from_civil(year, mon, day) * 86400 + h * 3600 + m * 60 + sec - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Unix seconds as `Sat, 14 Jun 2025 09:21:44 ZONE` (ZONE `UTC` for a
/// Release file, `+0000` for a changelog); the inverse of [`parse_rfc2822`].
pub fn format_rfc2822(secs: i64, zone: &str) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} {zone}",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm;
/// the inverse of `days_from_civil`).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt::sources::SignedBy;

    fn fixture(name: &str) -> &'static [u8] {
        match name {
            "InRelease" => include_bytes!("fixtures/InRelease"),
            "InRelease.expired" => include_bytes!("fixtures/InRelease.expired"),
            _ => unreachable!(),
        }
    }
    /// Test keys made with gpg: "hermod test archive" (signs with its
    /// subkey 8B7F8143230A976D) and "hermod other key".
    fn keyring(name: &str) -> Keyring {
        let asc = match name {
            "test.asc" => include_str!("fixtures/test.asc"),
            _ => include_str!("fixtures/other.asc"),
        };
        Keyring::load(&SignedBy::Inline(asc.to_string())).unwrap()
    }

    #[test]
    fn verifies_subkey_signature_and_parses() {
        let bytes = fixture("InRelease").to_vec();
        let text = verify_clearsigned(&bytes, &keyring("test.asc"), "fixture").unwrap();
        let r = Release::parse(&text, "fixture").unwrap();
        assert_eq!((r.suite.as_str(), r.codename.as_str()), ("testing", "hermod"));
        assert_eq!(r.architectures, ["amd64"]);
        assert_eq!(r.components, ["main"]);
        assert_eq!(r.sha256["main/binary-amd64/Packages"], FileHash { sha256: "0".repeat(64), size: 12 });
        r.check_valid_until(SystemTime::now(), "fixture").unwrap();
        assert!(!r.acquire_by_hash);
        let by_hash = text.replacen('\n', "\nAcquire-By-Hash: yes\n", 1);
        assert!(Release::parse(&by_hash, "fixture").unwrap().acquire_by_hash);
    }

    #[test]
    fn rejects_wrong_key_and_tampering() {
        let bytes = fixture("InRelease").to_vec();
        let e = verify_clearsigned(&bytes, &keyring("other.asc"), "http://x/InRelease").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("inline Signed-By key") && msg.contains("8b7f8143230a976d"), "{msg}");
        let tampered = String::from_utf8(bytes).unwrap().replace("Suite: testing", "Suite: testinG");
        assert!(matches!(
            verify_clearsigned(tampered.as_bytes(), &keyring("test.asc"), "x"),
            Err(ReleaseError::BadSignature { .. })
        ));
        assert!(matches!(
            verify_clearsigned(b"Suite: x\n", &keyring("test.asc"), "x"),
            Err(ReleaseError::NotSigned { .. })
        ));
    }

    #[test]
    fn one_good_signature_among_several_suffices_and_expiry_is_checked() {
        let bytes = fixture("InRelease.expired");
        // Signed by both keys; each keyring alone is enough.
        verify_clearsigned(bytes, &keyring("other.asc"), "x").unwrap();
        let text = verify_clearsigned(bytes, &keyring("test.asc"), "x").unwrap();
        let r = Release::parse(&text, "x").unwrap();
        assert!(matches!(r.check_valid_until(SystemTime::now(), "x"), Err(ReleaseError::Expired { .. })));
        let before = UNIX_EPOCH + std::time::Duration::from_secs(946_684_800); // 2000-01-01
        r.check_valid_until(before, "x").unwrap();
    }

    #[test]
    fn rfc2822_dates() {
        assert_eq!(parse_rfc2822("Sat, 01 Jan 2000 00:00:00 UTC"), Some(946_684_800));
        assert_eq!(parse_rfc2822("Sat, 14 Jun 2025 09:21:44 UTC"), Some(1_749_892_904));
        assert_eq!(parse_rfc2822("Sat, 14 Jun 2025 11:21:44 +0200"), Some(1_749_892_904));
        assert_eq!(parse_rfc2822("14 Jun 2025 09:21:44 GMT"), Some(1_749_892_904));
        assert_eq!(parse_rfc2822("yesterday"), None);
    }

    #[test]
    fn malformed_hash_lines_are_errors() {
        let e = Release::parse("Suite: x\nSHA256:\n abc 12 main/Packages\n", "u").unwrap_err();
        assert!(e.to_string().contains("SHA256"), "{e}");
    }
}
