//! Which DKMS's reading of dkms.conf applies: each Debian release ships its
//! own `dkms` (bookworm 3.0.10, trixie 3.2.2), and a module built for a
//! release is read the way that release's DKMS reads it. The recipe names the
//! version (`dkms = "3.2.2"`); the differences that matter are listed in the
//! module docs of [`crate::dkms`], once.

/// A DKMS version hermod knows how to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Semantics {
    /// Debian bookworm's `dkms` 3.0.10.
    V3_0,
    /// Debian trixie's `dkms` 3.2.2 (and upstream 3.3 where it is a superset).
    V3_2,
}

impl Semantics {
    /// The series as `eval.sh` takes it (its last argument).
    pub fn series(self) -> &'static str {
        match self {
            Semantics::V3_0 => "3.0",
            Semantics::V3_2 => "3.2",
        }
    }

    /// The semantics for a recipe's `dkms` value (`3.0.10`, `3.2.2`, or any
    /// version of those series).
    pub fn parse(version: &str) -> Result<Semantics, String> {
        let mut parts = version.split(['.', '-', '~', '+']);
        let (major, minor) = (parts.next(), parts.next());
        match (major, minor) {
            (Some("3"), Some("0" | "1")) => Ok(Semantics::V3_0),
            (Some("3"), Some("2" | "3")) => Ok(Semantics::V3_2),
            _ => Err(format!(
                "dkms = {}: hermod reads dkms.conf as DKMS 3.0 (bookworm) or 3.2 (trixie) does",
                crate::bounded::excerpt(version)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Semantics;

    #[test]
    fn versions_map_to_their_series() {
        assert_eq!(Semantics::parse("3.0.10").unwrap(), Semantics::V3_0);
        assert_eq!(Semantics::parse("3.2.2").unwrap(), Semantics::V3_2);
        assert_eq!(Semantics::parse("3.3.0").unwrap(), Semantics::V3_2);
        assert!(Semantics::parse("2.8").unwrap_err().contains("3.0"));
        assert!(Semantics::parse("").is_err());
    }
}
