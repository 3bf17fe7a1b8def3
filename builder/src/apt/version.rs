//! Debian version numbers, compared exactly as `dpkg --compare-versions` does.
//!
//! A version is `[epoch:]upstream[-revision]`. The epoch is a plain integer
//! (missing = 0) compared numerically first; then the upstream part, then the
//! revision (everything after the *last* hyphen; missing = "0"... well, missing
//! compares equal to an empty string, which sorts like "0").
//!
//! Upstream and revision are compared with dpkg's `verrevcmp`: the strings are
//! split into alternating non-digit and digit runs. Non-digit runs are compared
//! character by character with a special order — `~` sorts before everything
//! (even the end of the string, so `1.0~rc1 < 1.0`), then the end of the
//! string, then letters, then all other characters (by ASCII). Digit runs are
//! compared numerically (leading zeroes ignored). Getting this exactly right
//! matters: relations like `linux-kbuild-6.1 (>= 6.1.192-2)` or
//! `linux-base (>= 4.12~)` are decided with it.

use std::cmp::Ordering;

use serde::Serialize;

/// Errors while reading a version string or a relation operator.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VersionError {
    #[error("invalid Debian version {}: {reason}", crate::bounded::excerpt(.version))]
    Invalid { version: String, reason: &'static str },
    #[error("unknown version relation {} (expected one of <<, <=, =, >=, >>)", crate::bounded::excerpt(.0))]
    UnknownRelation(String),
}

/// A parsed Debian version. Ordering and equality follow dpkg, so
/// `1.0` == `0:1.0` and `1.0-0` != `1.0` only if dpkg says so (it does not).
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub epoch: u64,
    pub upstream: String,
    pub revision: String,
}

impl Version {
    /// Parse `[epoch:]upstream[-revision]`. Like dpkg we are lenient about
    /// characters but insist on a numeric epoch and a non-empty upstream part.
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        let s = s.trim();
        let invalid = |reason| VersionError::Invalid { version: s.to_string(), reason };
        if s.is_empty() {
            return Err(invalid("empty version string"));
        }
        if s.contains(char::is_whitespace) {
            return Err(invalid("contains whitespace"));
        }
        let (epoch, rest) = match s.split_once(':') {
            Some((e, rest)) => {
                let epoch = e.parse::<u64>().map_err(|_| invalid("epoch is not a number"))?;
                (epoch, rest)
            }
            None => (0, s),
        };
        let (upstream, revision) = match rest.rfind('-') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return Err(invalid("empty upstream version"));
        }
        if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            // dpkg only warns about this; real archives contain none, but
            // accepting it costs nothing and keeps us as lenient as dpkg.
        }
        Ok(Version { epoch, upstream: upstream.to_string(), revision: revision.to_string() })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}:", self.epoch)?;
        }
        f.write_str(&self.upstream)?;
        if !self.revision.is_empty() {
            write!(f, "-{}", self.revision)?;
        }
        Ok(())
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(&self.upstream, &other.upstream))
            .then_with(|| verrevcmp(&self.revision, &other.revision))
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Version {}

/// Weight of one character in a non-digit run (dpkg's `order()`); `None`
/// is the end of the run.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

/// dpkg's `verrevcmp`, on byte strings.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit prefix, character by character.
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let bc = order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            // Only advance a side that is still in its non-digit run.
            if i < a.len() && !a[i].is_ascii_digit() {
                i += 1;
            }
            if j < b.len() && !b[j].is_ascii_digit() {
                j += 1;
            }
        }
        // Digit run: skip leading zeroes, then longer run wins, else lexical.
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let si = i;
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        let sj = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (da, db) = (&a[si..i], &b[sj..j]);
        let c = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
        if c != Ordering::Equal {
            return c;
        }
    }
    Ordering::Equal
}

/// A version relation operator as written in dependency fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Relation {
    /// `<<`
    Lt,
    /// `<=` (also the obsolete `<`)
    Le,
    /// `=`
    Eq,
    /// `>=` (also the obsolete `>`)
    Ge,
    /// `>>`
    Gt,
}

impl Relation {
    pub fn parse(s: &str) -> Result<Relation, VersionError> {
        Ok(match s {
            "<<" => Relation::Lt,
            "<=" | "<" => Relation::Le,
            "=" => Relation::Eq,
            ">=" | ">" => Relation::Ge,
            ">>" => Relation::Gt,
            _ => return Err(VersionError::UnknownRelation(s.to_string())),
        })
    }

    /// Does `candidate <op> wanted` hold?
    pub fn holds(self, candidate: &Version, wanted: &Version) -> bool {
        let c = candidate.cmp(wanted);
        match self {
            Relation::Lt => c == Ordering::Less,
            Relation::Le => c != Ordering::Greater,
            Relation::Eq => c == Ordering::Equal,
            Relation::Ge => c != Ordering::Less,
            Relation::Gt => c == Ordering::Greater,
        }
    }
}

impl std::fmt::Display for Relation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Relation::Lt => "<<",
            Relation::Le => "<=",
            Relation::Eq => "=",
            Relation::Ge => ">=",
            Relation::Gt => ">>",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    /// Expectations written down from `dpkg --compare-versions A lt B` etc.
    /// on Debian bookworm (dpkg 1.21).
    #[test]
    fn dpkg_known_orderings() {
        let less = [
            ("1.0~rc1", "1.0"),
            ("1.0~~", "1.0~"),
            ("1.0~", "1.0"),
            ("1.0", "1.0a"),
            ("1.0a", "1.0+"),
            ("1.0", "1.0.1"),
            ("1.0", "1.0-1"),
            ("1.0-1", "1.0-2"),
            ("1.0-2", "1.0-10"),
            ("1.9", "1.10"),
            ("1:0.1", "2:0.0"),
            ("9.9", "1:0.1"),
            ("6.1.192-1", "6.1.192-2"),
            ("6.1.192-2~bpo11+1", "6.1.192-2"),
            ("4.12~", "4.12"),
            ("4.9", "4.12~"),
            ("2.36-9+deb12u9", "2.36-9+deb12u10"),
            ("1.2.3-1", "1.2.3-1+b1"),
            ("0.0", "0.0.0"),
            ("a", "b"),
            ("1.0-a", "1.0-+"),
            ("1~", "1"),
            ("1.2~beta", "1.2~gamma"),
            ("6.1.0-56", "6.12.117+deb12"),
        ];
        for (a, b) in less {
            assert!(v(a) < v(b), "{a} < {b}");
            assert!(v(b) > v(a), "{b} > {a}");
        }
        let equal = [("1.0", "0:1.0"), ("1.0", "1.0-"), ("1.00", "1.0"), ("1.0-0", "1.0-"), ("01", "1")];
        for (a, b) in equal {
            assert_eq!(v(a), v(b), "{a} = {b}");
        }
    }

    #[test]
    fn parses_parts() {
        let x = v("2:1.2-3-4");
        assert_eq!((x.epoch, x.upstream.as_str(), x.revision.as_str()), (2, "1.2-3", "4"));
        assert_eq!(x.to_string(), "2:1.2-3-4");
        assert_eq!(v("6.1.192-2").to_string(), "6.1.192-2");
        assert!(Version::parse("").is_err());
        assert!(Version::parse("x:1").is_err());
        assert!(Version::parse("1:-2").is_err());
        assert!(Version::parse("1 2").is_err());
    }

    #[test]
    fn relations() {
        let r = |s| Relation::parse(s).unwrap();
        assert!(r(">=").holds(&v("6.1.192-2"), &v("6.1.192-2")));
        assert!(r(">=").holds(&v("4.12"), &v("4.12~")));
        assert!(!r("<<").holds(&v("1.0"), &v("1.0")));
        assert!(r("<=").holds(&v("1.0"), &v("1.0")));
        assert!(r("=").holds(&v("0:1.0"), &v("1.0")));
        assert!(r(">>").holds(&v("1.0.1"), &v("1.0")));
        assert!(r("<").holds(&v("1.0"), &v("1.0")), "obsolete < means <=");
        assert!(Relation::parse("!=").is_err());
    }
}
