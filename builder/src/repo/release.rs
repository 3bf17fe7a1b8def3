//! `dists/<suite>/Release`: the list of a suite's index files with their
//! sizes and SHA256s, and the time the repository claims.
//!
//! apt reads `Architectures` and `Components` to know which indices to fetch
//! and accepts an index only if its size and SHA256 are listed here. It looks
//! for the *uncompressed* `Packages` entry even when it downloads
//! `Packages.xz` (it checks the decompressed result against it), so both are
//! listed, and both are shipped.
//!
//! ## The Date, and the signature's time
//!
//! No wall clock: the same inputs must give the same bytes. The time is
//!
//! ```text
//! max( the Date of the Release already in the repository,
//!      SOURCE_DATE_EPOCH if set, else the newest file time inside the .debs of this run,
//!      the signing key's creation time )
//! ```
//!
//! * The .debs' own newest data time says when their content was made; for
//!   hermod's packages it is a fixed epoch, for others the build time. It is
//!   part of the input, so the result is reproducible. SOURCE_DATE_EPOCH, the
//!   reproducible-builds convention, replaces it for a publisher who wants a
//!   chosen time.
//! * The previous Date keeps the Date from going backwards: apt keeps the
//!   Release it has and silently ignores one dated earlier (its defence
//!   against downgrades), so a farm machine that saw the last publish would
//!   never see the next one. `max` is
//!   also why the order of publishes does not matter: publishing A then B
//!   ends with the same Date as publishing A and B together.
//! * gpgv refuses a signature older than its key, so a signed Release is
//!   never dated before the key was made.
//!
//! The result must not lie in the future (apt: "Release file … is not valid
//! yet"): the clock is read only to check that, never to choose the time.

use std::collections::BTreeMap;

/// A time no Release may carry: later than now.
#[derive(Debug, thiserror::Error)]
#[error(
    "the repository's Date would be {date}, which is {ahead} s in the future ({why}); apt would refuse it \
     as \"not valid yet\" (set SOURCE_DATE_EPOCH to a time in the past, or fix the clock)"
)]
pub struct FutureDate {
    pub date: String,
    pub ahead: i64,
    pub why: String,
}

/// Where the Date came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateSource {
    PreviousRelease,
    SourceDateEpoch,
    NewestData(String),
    KeyCreation,
}

impl std::fmt::Display for DateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DateSource::PreviousRelease => f.write_str("the Date of the Release already published"),
            DateSource::SourceDateEpoch => f.write_str("SOURCE_DATE_EPOCH"),
            DateSource::NewestData(deb) => write!(f, "the newest file inside {deb}"),
            DateSource::KeyCreation => f.write_str("the signing key's creation time"),
        }
    }
}

/// The candidates of the Date's `max`, each with where it came from.
pub fn choose_date(candidates: &[(i64, DateSource)], now: i64) -> Result<(i64, DateSource), FutureDate> {
    let (time, source) = candidates
        .iter()
        // Ties go to the earliest candidate listed (the previous Release first).
        .fold(None::<&(i64, DateSource)>, |best, c| match best {
            Some(b) if b.0 >= c.0 => Some(b),
            _ => Some(c),
        })
        .cloned()
        .unwrap_or((0, DateSource::SourceDateEpoch));
    if time > now {
        return Err(FutureDate { date: rfc2822(time), ahead: time - now, why: format!("from {source}") });
    }
    Ok((time, source))
}

/// One index file of the suite, listed in Release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    /// Relative to `dists/<suite>/`, e.g. `main/binary-amd64/Packages.xz`.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// What a Release file says.
#[derive(Debug, Clone)]
pub struct ReleaseInfo<'a> {
    pub suite: &'a str,
    pub date: i64,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    pub files: Vec<IndexFile>,
}

/// The Release text: fixed field order, files sorted by path.
pub fn release_text(info: &ReleaseInfo) -> String {
    let mut files: BTreeMap<&str, &IndexFile> = BTreeMap::new();
    for f in &info.files {
        files.insert(&f.path, f);
    }
    let mut text = format!(
        "Origin: hermod\nLabel: hermod\nSuite: {suite}\nCodename: {suite}\nDate: {date}\nArchitectures: {arches}\n\
         Components: {components}\nDescription: kernel module packages built by hermod\nSHA256:\n",
        suite = info.suite,
        date = rfc2822(info.date),
        arches = info.architectures.join(" "),
        components = info.components.join(" "),
    );
    for f in files.values() {
        text.push_str(&format!(" {} {:>8} {}\n", f.sha256, f.size, f.path));
    }
    text
}

/// Unix seconds as a Release file writes dates: `Sat, 14 Jun 2025 09:21:44 UTC`.
pub fn rfc2822(secs: i64) -> String {
    crate::apt::release::format_rfc2822(secs, "UTC")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt::release::{parse_rfc2822, Release};

    #[test]
    fn dates_round_trip_through_the_apt_parser() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 UTC");
        assert_eq!(rfc2822(1_749_892_904), "Sat, 14 Jun 2025 09:21:44 UTC");
        for t in [951_782_400, 1_709_164_800, 1_704_067_199, 4_102_444_800, 1_234_567_890] {
            assert_eq!(parse_rfc2822(&rfc2822(t)), Some(t), "{}", rfc2822(t));
        }
    }

    #[test]
    fn the_date_is_the_newest_candidate_and_never_in_the_future() {
        let c = [
            (100, DateSource::PreviousRelease),
            (300, DateSource::NewestData("a.deb".into())),
            (200, DateSource::KeyCreation),
        ];
        assert_eq!(choose_date(&c, 1000).unwrap(), (300, DateSource::NewestData("a.deb".into())));
        let tie = [(300, DateSource::PreviousRelease), (300, DateSource::KeyCreation)];
        assert_eq!(choose_date(&tie, 1000).unwrap().1, DateSource::PreviousRelease);
        let e = choose_date(&[(2000, DateSource::SourceDateEpoch)], 1000).unwrap_err();
        assert_eq!(e.ahead, 1000);
        assert!(e.to_string().contains("SOURCE_DATE_EPOCH") && e.to_string().contains("not valid yet"), "{e}");
    }

    #[test]
    fn release_text_parses_back_with_every_file() {
        let info = ReleaseInfo {
            suite: "hermod",
            date: 1_700_000_000,
            architectures: vec!["amd64".into()],
            components: vec!["main".into()],
            files: vec![
                IndexFile { path: "main/binary-amd64/Packages.xz".into(), size: 12, sha256: "b".repeat(64) },
                IndexFile { path: "main/binary-amd64/Packages".into(), size: 1234, sha256: "a".repeat(64) },
            ],
        };
        let text = release_text(&info);
        let parsed = Release::parse(&text, "test").unwrap();
        assert_eq!((parsed.suite.as_str(), parsed.codename.as_str()), ("hermod", "hermod"));
        assert_eq!(parse_rfc2822(&parsed.date), Some(1_700_000_000));
        assert_eq!(parsed.architectures, ["amd64"]);
        assert_eq!(parsed.components, ["main"]);
        assert_eq!(parsed.sha256.len(), 2);
        assert_eq!(parsed.sha256["main/binary-amd64/Packages"].size, 1234);
        assert_eq!(parsed.sha256["main/binary-amd64/Packages.xz"].sha256, "b".repeat(64));
        // Sorted by path: Packages before Packages.xz, whatever order they came in.
        let first = text.find("binary-amd64/Packages\n").unwrap();
        assert!(first < text.find("Packages.xz").unwrap());
        assert!(text.ends_with("main/binary-amd64/Packages.xz\n"));
    }
}
