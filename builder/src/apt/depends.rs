//! Dependency fields (`Depends`, `Pre-Depends`) and `Provides`.
//!
//! Syntax (Debian Policy §7.1): a comma-separated list of *dependencies*,
//! all of which must hold; each is a `|`-separated list of *alternatives*, one
//! of which must hold. An alternative is
//! `name[:qualifier] [(op version)] [[arch ...]] [<profile ...>]`, e.g.
//! `libc6 (>= 2.34)`, `python3:any`, `foo [amd64 !i386]`. Architecture
//! restrictions are rare in binary packages but legal; an alternative whose
//! restriction excludes our architecture is dropped (and a dependency left
//! with none is vacuous). Build profiles (`<...>`) only matter for
//! Build-Depends and are ignored.
//!
//! `Provides` is a comma list of `name [(= version)]`: the package satisfies
//! dependencies on the virtual `name` (versioned ones only when it provides a
//! version).

use super::version::{Relation, Version, VersionError};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DependsError {
    #[error("cannot parse relation {}: {}", crate::bounded::excerpt(.text), crate::bounded::excerpt(.reason))]
    Syntax { text: String, reason: String },
}

/// `(op version)`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub relation: Relation,
    pub version: Version,
}

impl Constraint {
    pub fn allows(&self, v: &Version) -> bool {
        self.relation.holds(v, &self.version)
    }
}

impl std::fmt::Display for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.relation, self.version)
    }
}

/// One alternative of a dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    pub name: String,
    /// `any`, `native` or an architecture, from `name:qualifier`.
    pub arch_qualifier: Option<String>,
    pub constraint: Option<Constraint>,
    /// `[amd64 !i386]` entries, verbatim (with `!`).
    pub arch_restrictions: Vec<String>,
}

impl Alternative {
    /// Does the `[...]` restriction include `arch`? (No list = yes.)
    pub fn applies_to(&self, arch: &str) -> bool {
        if self.arch_restrictions.is_empty() {
            return true;
        }
        let negated = self.arch_restrictions.iter().all(|a| a.starts_with('!'));
        if negated {
            !self.arch_restrictions.iter().any(|a| arch_matches(&a[1..], arch))
        } else {
            self.arch_restrictions.iter().any(|a| arch_matches(a, arch))
        }
    }
}

impl std::fmt::Display for Alternative {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if let Some(q) = &self.arch_qualifier {
            write!(f, ":{q}")?;
        }
        if let Some(c) = &self.constraint {
            write!(f, " ({c})")?;
        }
        Ok(())
    }
}

/// Architecture wildcards as used in restriction lists (`any`, `linux-any`,
/// `any-amd64`); we only build for Linux.
fn arch_matches(pattern: &str, arch: &str) -> bool {
    pattern == arch
        || pattern == "any"
        || pattern == "linux-any"
        || pattern.strip_prefix("any-").is_some_and(|cpu| cpu == arch)
        || pattern.strip_prefix("linux-").is_some_and(|cpu| cpu == arch)
}

/// A dependency: one of the alternatives must be satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub alternatives: Vec<Alternative>,
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.alternatives.iter().map(|a| a.to_string()).collect();
        f.write_str(&parts.join(" | "))
    }
}

/// Parse a `Depends`-style field. Whitespace (including newlines of folded
/// fields) is insignificant; empty entries (`a, , b`, trailing comma) are
/// tolerated as dpkg does.
pub fn parse_depends(field: &str) -> Result<Vec<Dependency>, DependsError> {
    let mut out = Vec::new();
    for dep in field.split(',') {
        if dep.trim().is_empty() {
            continue;
        }
        let alternatives = dep.split('|').map(parse_alternative).collect::<Result<Vec<_>, _>>()?;
        out.push(Dependency { alternatives });
    }
    Ok(out)
}

fn parse_alternative(text: &str) -> Result<Alternative, DependsError> {
    let err = |reason: String| DependsError::Syntax { text: text.trim().to_string(), reason };
    let s = text.trim();
    let name_end = s.find(|c: char| c.is_whitespace() || c == '(' || c == '[' || c == '<').unwrap_or(s.len());
    let (full_name, mut rest) = (&s[..name_end], s[name_end..].trim_start());
    if full_name.is_empty() {
        return Err(err("missing package name".into()));
    }
    let (name, arch_qualifier) = match full_name.split_once(':') {
        Some((n, q)) => (n, Some(q.to_string())),
        None => (full_name, None),
    };
    let mut alt =
        Alternative { name: name.to_string(), arch_qualifier, constraint: None, arch_restrictions: Vec::new() };
    if let Some(r) = rest.strip_prefix('(') {
        let (inner, after) = r.split_once(')').ok_or_else(|| err("`(` without `)`".into()))?;
        let inner = inner.trim();
        let op_end = inner.find(|c: char| !matches!(c, '<' | '>' | '=')).unwrap_or(inner.len());
        let relation = Relation::parse(&inner[..op_end]).map_err(|e| err(e.to_string()))?;
        let version = Version::parse(inner[op_end..].trim()).map_err(|e: VersionError| err(e.to_string()))?;
        alt.constraint = Some(Constraint { relation, version });
        rest = after.trim_start();
    }
    if let Some(r) = rest.strip_prefix('[') {
        let (inner, after) = r.split_once(']').ok_or_else(|| err("`[` without `]`".into()))?;
        alt.arch_restrictions = inner.split_whitespace().map(str::to_string).collect();
        rest = after.trim_start();
    }
    // Build profiles: `<!nocheck> <stage1>`; irrelevant for binary packages.
    while let Some(r) = rest.strip_prefix('<') {
        let (_, after) = r.split_once('>').ok_or_else(|| err("`<` without `>`".into()))?;
        rest = after.trim_start();
    }
    if !rest.is_empty() {
        return Err(err(format!("unexpected text {rest:?}")));
    }
    Ok(alt)
}

/// One `Provides` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provide {
    pub name: String,
    /// Only `=` is allowed in Provides.
    pub version: Option<Version>,
}

pub fn parse_provides(field: &str) -> Result<Vec<Provide>, DependsError> {
    let mut out = Vec::new();
    for d in parse_depends(field)? {
        let [alt] = &d.alternatives[..] else {
            return Err(DependsError::Syntax {
                text: d.to_string(),
                reason: "alternatives (`|`) are not allowed in Provides".into(),
            });
        };
        let version = match &alt.constraint {
            None => None,
            Some(c) if c.relation == Relation::Eq => Some(c.version.clone()),
            Some(c) => {
                return Err(DependsError::Syntax {
                    text: alt.to_string(),
                    reason: format!("Provides only allows `=`, found `{}`", c.relation),
                })
            }
        };
        out.push(Provide { name: alt.name.clone(), version });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_linux_headers_depends() {
        let f = "linux-base (>= 4.12~), linux-headers-6.12.117+deb12-common (= 6.12.117-1~deb12u1), linux-image-6.12.117+deb12-amd64 (= 6.12.117-1~deb12u1) | linux-image-6.12.117+deb12-amd64-unsigned (= 6.12.117-1~deb12u1), linux-kbuild-6.12.117+deb12, gcc-12";
        let d = parse_depends(f).unwrap();
        assert_eq!(d.len(), 5);
        assert_eq!(d[0].alternatives[0].name, "linux-base");
        let c = d[0].alternatives[0].constraint.as_ref().unwrap();
        assert_eq!(c.relation, Relation::Ge);
        assert!(c.allows(&Version::parse("4.12").unwrap()));
        assert_eq!(d[2].alternatives.len(), 2);
        assert_eq!(d[2].alternatives[1].name, "linux-image-6.12.117+deb12-amd64-unsigned");
        assert_eq!(d[4].to_string(), "gcc-12");
        assert_eq!(d[2].to_string(), "linux-image-6.12.117+deb12-amd64 (= 6.12.117-1~deb12u1) | linux-image-6.12.117+deb12-amd64-unsigned (= 6.12.117-1~deb12u1)");
    }

    #[test]
    fn qualifiers_arch_lists_profiles_and_folding() {
        let d =
            parse_depends("python3:any (>= 3.9),\n perl:native, foo [amd64 i386] | bar [!amd64], baz <!nocheck>, , ")
                .unwrap();
        assert_eq!(d.len(), 4);
        assert_eq!(d[0].alternatives[0].arch_qualifier.as_deref(), Some("any"));
        assert_eq!(d[1].alternatives[0].name, "perl");
        assert!(d[2].alternatives[0].applies_to("amd64"));
        assert!(!d[2].alternatives[1].applies_to("amd64"));
        assert!(d[2].alternatives[1].applies_to("arm64"));
        assert_eq!(d[3].alternatives[0].name, "baz");
        let tight = parse_depends("libc6(>=2.34)").unwrap();
        assert_eq!(tight[0].alternatives[0].constraint.as_ref().unwrap().to_string(), ">= 2.34");
    }

    #[test]
    fn syntax_errors_name_the_text() {
        for bad in ["foo (>= 1", "foo (~= 1)", "foo [amd64", "(>= 1)", "foo bar"] {
            let e = parse_depends(bad).unwrap_err();
            assert!(e.to_string().contains("cannot parse relation"), "{bad}: {e}");
        }
    }

    #[test]
    fn provides() {
        let p = parse_provides("awk, libfoo-abi-2 (= 2.1), c-compiler").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].version.as_ref().unwrap().to_string(), "2.1");
        assert!(p[0].version.is_none());
        assert!(parse_provides("a | b").is_err());
        assert!(parse_provides("a (>= 1)").is_err());
    }
}
