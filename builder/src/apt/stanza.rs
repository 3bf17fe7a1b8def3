//! deb822 "control file" syntax: the format of Packages, Release, `.sources`
//! files and a .deb's `control` file.
//!
//! A file is a sequence of *stanzas* (paragraphs) separated by blank lines.
//! Each stanza is a list of `Field-Name: value` lines; a line that starts
//! with a space or tab continues the previous field's value (multi-line
//! fields such as `Description`, the `SHA256` list of a Release file, or an
//! inline key in `Signed-By`). A continuation line holding just ` .` stands
//! for an empty line. Field names are case-insensitive. Lines starting with
//! `#` are comments (allowed in `.sources` files).
//!
//! The parser is zero-copy: [`RawStanza`] borrows from the input so that the
//! 45 MB Packages text of bookworm main can be walked without allocating a
//! string per field; [`Stanza`] is the owned form for small inputs.

use std::ops::Range;

use crate::bounded::{Exceeded, InputLimits, Limit};

/// Errors for text that is not deb822.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StanzaError {
    #[error("{origin}: line {line}: expected `Field: value`, found {}", crate::bounded::excerpt(.text))]
    NotAField { origin: String, line: usize, text: String },
    #[error("{origin}: line {line}: continuation line without a field before it")]
    OrphanContinuation { origin: String, line: usize },
    #[error("{origin}: the stanza at line {line}: {exceeded}")]
    TooLong { origin: String, line: usize, exceeded: crate::bounded::Exceeded },
}

/// One stanza borrowing from the input text.
#[derive(Debug, Clone, Default)]
pub struct RawStanza<'a> {
    /// (field name, raw value: the text after `:` up to the end of the last
    /// continuation line, trimmed; may contain `\n` for multi-line fields).
    pub fields: Vec<(&'a str, &'a str)>,
    /// 1-based line number of the stanza's first field, for error messages.
    pub line: usize,
}

impl<'a> RawStanza<'a> {
    /// Value of a field (case-insensitive name), trimmed.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }

    pub fn to_owned(&self) -> Stanza {
        Stanza { fields: self.fields.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect() }
    }
}

/// An owned stanza, e.g. a .deb's control file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stanza {
    pub fields: Vec<(String, String)>,
}

impl Stanza {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The lines of a multi-line field value, with the deb822 folding undone:
/// leading whitespace of continuation lines removed and ` .` turned into an
/// empty line. The first element is what followed the colon (often empty).
pub fn value_lines(value: &str) -> Vec<String> {
    value
        .lines()
        .map(|l| {
            let t = l.trim();
            if t == "." {
                String::new()
            } else {
                t.to_string()
            }
        })
        .collect()
}

/// Parse all stanzas of `text`. `origin` names the file/URL in errors.
pub fn parse<'a>(text: &'a str, origin: &str) -> Result<Vec<RawStanza<'a>>, StanzaError> {
    let mut out = Vec::new();
    for_each(text, origin, |s| {
        out.push(s);
        Ok::<(), StanzaError>(())
    })?;
    Ok(out)
}

/// Parse one stanza (the first; others are ignored) into owned form.
pub fn parse_one(text: &str, origin: &str) -> Result<Stanza, StanzaError> {
    Ok(parse(text, origin)?.first().map(RawStanza::to_owned).unwrap_or_default())
}

/// Streaming form of [`parse`]: calls `f` with each stanza in order so the
/// caller can convert and drop it (keeps memory flat for huge indexes). A
/// stanza longer than `max_stanza_size` is refused (see [`crate::bounded`]).
pub fn for_each<'a, E, F>(text: &'a str, origin: &str, f: F) -> Result<(), E>
where
    F: FnMut(RawStanza<'a>) -> Result<(), E>,
    E: From<StanzaError>,
{
    for_each_with(text, origin, &crate::bounded::current(), f)
}

/// [`for_each`] under `limits`.
pub fn for_each_with<'a, E, F>(text: &'a str, origin: &str, limits: &InputLimits, mut f: F) -> Result<(), E>
where
    F: FnMut(RawStanza<'a>) -> Result<(), E>,
    E: From<StanzaError>,
{
    let mut stanza_start = 0usize;
    let mut cur = RawStanza::default();
    // Byte range of the value being built, so continuations just extend it.
    let mut value: Option<(&'a str, Range<usize>)> = None;
    let mut offset = 0usize;
    let finish_field = |cur: &mut RawStanza<'a>, value: &mut Option<(&'a str, Range<usize>)>| {
        if let Some((name, r)) = value.take() {
            cur.fields.push((name, text[r].trim()));
        }
    };
    for (idx, raw_line) in text.split('\n').enumerate() {
        let line_start = offset;
        offset += raw_line.len() + 1;
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        let lineno = idx + 1;
        if line.trim().is_empty() {
            stanza_start = offset;
            finish_field(&mut cur, &mut value);
            if !cur.fields.is_empty() {
                f(std::mem::take(&mut cur))?;
            }
            continue;
        }
        if (offset - stanza_start) as u64 > limits.max_stanza_size {
            return Err(StanzaError::TooLong {
                origin: origin.to_string(),
                line: if cur.fields.is_empty() && value.is_none() { lineno } else { cur.line },
                exceeded: Exceeded::new(Limit::StanzaSize, limits),
            }
            .into());
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            match value.as_mut() {
                Some((_, r)) => r.end = line_start + line.len(),
                None => return Err(StanzaError::OrphanContinuation { origin: origin.to_string(), line: lineno }.into()),
            }
            continue;
        }
        let Some(colon) = line.find(':') else {
            return Err(StanzaError::NotAField {
                origin: origin.to_string(),
                line: lineno,
                text: line.chars().take(80).collect(),
            }
            .into());
        };
        finish_field(&mut cur, &mut value);
        if cur.fields.is_empty() {
            cur.line = lineno;
        }
        let name = line[..colon].trim();
        value = Some((name, line_start + colon + 1..line_start + line.len()));
    }
    finish_field(&mut cur, &mut value);
    if !cur.fields.is_empty() {
        f(cur)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "Package: foo\nVersion: 1.0\nDescription: short\n more\n .\n end\n\n\n# comment\npackage: bar\r\nDEPENDS: a,\n b (>= 1)\n";

    #[test]
    fn parses_stanzas_and_continuations() {
        let s = parse(TEXT, "test").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].get("package"), Some("foo"));
        assert_eq!(s[0].get("Description"), Some("short\n more\n .\n end"));
        assert_eq!(value_lines(s[0].get("Description").unwrap()), ["short", "more", "", "end"]);
        assert_eq!(s[1].get("Package"), Some("bar"));
        assert_eq!(s[1].get("depends"), Some("a,\n b (>= 1)"));
        assert_eq!(s[1].line, 10);
        assert_eq!(s[0].get("missing"), None);
    }

    #[test]
    fn rejects_garbage_with_line_numbers() {
        let e = parse("Package: a\nthis is not a field\n", "Packages").unwrap_err();
        assert!(e.to_string().contains("Packages: line 2"), "{e}");
        let e = parse(" orphan\n", "x").unwrap_err();
        assert!(matches!(e, StanzaError::OrphanContinuation { line: 1, .. }));
    }

    #[test]
    fn long_stanzas_are_refused_and_quotes_are_short() {
        let limits = InputLimits { max_stanza_size: 100, ..InputLimits::default() };
        let long = format!("Package: a\nDescription: {}\n\nPackage: b\n", "x".repeat(200));
        let e = for_each_with(&long, "P", &limits, |_| Ok::<(), StanzaError>(())).unwrap_err();
        assert!(matches!(e, StanzaError::TooLong { line: 1, .. }), "{e}");
        assert!(e.to_string().contains("input_limits.max_stanza_size"), "{e}");
        let ok = format!("Package: a\nDescription: {}\n\nPackage: b\n", "x".repeat(50));
        assert_eq!(for_each_with(&ok, "P", &limits, |_| Ok::<(), StanzaError>(())).map(|_| ()), Ok(()));
        let e = parse(&format!("Package: a\n{}\n", "y".repeat(1 << 20)), "P").unwrap_err().to_string();
        assert!(e.len() < 400, "{e}");
    }

    #[test]
    fn owned_form() {
        let s = parse_one("Package: x\nVersion: 2\n", "control").unwrap();
        assert_eq!(s.get("VERSION"), Some("2"));
        assert_eq!(parse_one("", "empty").unwrap(), Stanza::default());
    }
}
