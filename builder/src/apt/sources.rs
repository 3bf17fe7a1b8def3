//! The machine's APT sources: which archives (URI + suite + components) to
//! read and which OpenPGP keys are trusted to sign each of them.
//!
//! APT reads `etc/apt/sources.list` (one-line format:
//! `deb [arch=amd64 signed-by=/path] URI SUITE COMPONENT...`) and every
//! `etc/apt/sources.list.d/*.list` (same format) and `*.sources` (deb822
//! stanzas with `Types`, `URIs`, `Suites`, `Components`, `Signed-By`,
//! `Architectures`, `Enabled`). Files with any other name (e.g.
//! `foo.list.disabled`) are ignored, exactly like APT does.
//!
//! `Signed-By` pins the keys for one source. Without it APT trusts every key
//! in `etc/apt/trusted.gpg` and `etc/apt/trusted.gpg.d/*.{gpg,asc}`.
//!
//! The root directory is a parameter so tests (and builders of foreign roots)
//! can point it elsewhere; `Signed-By` paths are used as written, since they
//! name files on the machine doing the verification.

use std::path::{Path, PathBuf};

use super::stanza::{self, StanzaError};

#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    #[error("cannot read APT sources file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Syntax(#[from] StanzaError),
    #[error("{path}: line {line}: malformed `deb` line {text:?}: {reason}")]
    OneLine { path: PathBuf, line: usize, text: String, reason: &'static str },
    #[error("{path}: stanza at line {line}: {reason}")]
    Deb822 { path: PathBuf, line: usize, reason: String },
}

/// Which keys may sign a source's InRelease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedBy {
    /// Keyring files (binary `.gpg` or armored `.asc`); any key in any of them.
    Keyrings(Vec<PathBuf>),
    /// An armored public key block written inline in a `.sources` stanza.
    Inline(String),
}

/// One (URI, suite) pair to fetch, with its components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Archive root without trailing slash, e.g. `http://deb.debian.org/debian`.
    pub uri: String,
    pub suite: String,
    pub components: Vec<String>,
    /// Restriction from `arch=`/`Architectures:`; empty means "any".
    pub architectures: Vec<String>,
    pub signed_by: SignedBy,
    /// Whether an expired `Valid-Until` is refused (APT's `check-valid-until`,
    /// default yes). Snapshot mirrors serve old, long-expired Release files
    /// on purpose: their signature still holds, their date does not.
    pub check_valid_until: bool,
    /// The file that declared it, for error messages.
    pub declared_in: PathBuf,
    /// Not configured but derived, for another Debian release, from the
    /// source of this suite (see [`crate::platform`]): a mirror that does not
    /// carry it, or serves nothing verifiable, means only that the release is
    /// not read there (a warning), never an error.
    pub derived_from: Option<String>,
}

impl Source {
    /// Does this source serve `arch` (per its own `Architectures` restriction)?
    pub fn serves(&self, arch: &str) -> bool {
        self.architectures.is_empty() || self.architectures.iter().any(|a| a == arch)
    }
}

/// Read all enabled `deb` sources below `root` (normally `/`).
pub fn read_sources(root: &Path) -> Result<Vec<Source>, SourcesError> {
    let apt = root.join("etc/apt");
    let defaults = default_keyrings(&apt)?;
    let mut out = Vec::new();
    let main = apt.join("sources.list");
    if main.is_file() {
        out.extend(parse_one_line_file(&read(&main)?, &main, &defaults)?);
    }
    let dir = apt.join("sources.list.d");
    let mut names = list_dir(&dir)?;
    names.sort();
    for path in names {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if name.ends_with(".list") {
            out.extend(parse_one_line_file(&read(&path)?, &path, &defaults)?);
        } else if name.ends_with(".sources") {
            out.extend(parse_deb822_file(&read(&path)?, &path, &defaults)?);
        }
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String, SourcesError> {
    crate::bounded::read_user_text(path, crate::bounded::MAX_USER_FILE)
        .map_err(|source| SourcesError::Read { path: path.to_path_buf(), source })
}

/// Regular files in `dir` (missing dir = none).
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, SourcesError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(SourcesError::Read { path: dir.to_path_buf(), source }),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| SourcesError::Read { path: dir.to_path_buf(), source })?;
        if entry.path().is_file() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// `etc/apt/trusted.gpg.d/*.{gpg,asc}` (sorted) then `etc/apt/trusted.gpg`.
pub(crate) fn default_keyrings(apt: &Path) -> Result<Vec<PathBuf>, SourcesError> {
    let mut keys: Vec<PathBuf> = list_dir(&apt.join("trusted.gpg.d"))?
        .into_iter()
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("gpg" | "asc")))
        .collect();
    keys.sort();
    let legacy = apt.join("trusted.gpg");
    if legacy.is_file() {
        keys.push(legacy);
    }
    Ok(keys)
}

/// Parse the one-line format. `defaults` are the keyrings used when a line
/// has no `signed-by=` option.
pub fn parse_one_line_file(text: &str, path: &Path, defaults: &[PathBuf]) -> Result<Vec<Source>, SourcesError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err =
            |reason| SourcesError::OneLine { path: path.to_path_buf(), line: i + 1, text: raw.to_string(), reason };
        let (kind, mut rest) = line.split_once(char::is_whitespace).ok_or_else(|| err("too few words"))?;
        let mut architectures = Vec::new();
        let mut signed_by = None;
        let mut enabled = true;
        let mut check_valid_until = true;
        rest = rest.trim_start();
        if let Some(opts) = rest.strip_prefix('[') {
            let (opts, after) = opts.split_once(']').ok_or_else(|| err("`[` options without closing `]`"))?;
            for opt in opts.split_whitespace() {
                let (k, v) = opt.split_once('=').ok_or_else(|| err("option without `=`"))?;
                match k {
                    "arch" => architectures = v.split(',').map(str::to_string).collect(),
                    "signed-by" => signed_by = Some(v.split(',').map(PathBuf::from).collect()),
                    "enabled" => enabled = v != "no",
                    "check-valid-until" => check_valid_until = v != "no",
                    _ => {} // trusted=, lang=, target= ... do not affect what we fetch
                }
            }
            rest = after;
        }
        if kind != "deb" || !enabled {
            continue; // deb-src and friends: we only want binary packages
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        if words.len() < 3 {
            return Err(err(if words.len() == 2 && words[1].ends_with('/') {
                "flat repositories (suite ending in `/`) are not supported"
            } else {
                "expected URI, suite and at least one component"
            }));
        }
        out.push(Source {
            uri: words[0].trim_end_matches('/').to_string(),
            suite: words[1].to_string(),
            components: words[2..].iter().map(|s| s.to_string()).collect(),
            architectures,
            signed_by: SignedBy::Keyrings(signed_by.unwrap_or_else(|| defaults.to_vec())),
            check_valid_until,
            declared_in: path.to_path_buf(),
            derived_from: None,
        });
    }
    Ok(out)
}

/// Parse the deb822 `.sources` format: one stanza may expand to several
/// (URI × suite) sources.
pub fn parse_deb822_file(text: &str, path: &Path, defaults: &[PathBuf]) -> Result<Vec<Source>, SourcesError> {
    let mut out = Vec::new();
    for st in stanza::parse(text, &path.display().to_string())? {
        let err = |reason: String| SourcesError::Deb822 { path: path.to_path_buf(), line: st.line, reason };
        let words = |name: &str| -> Vec<String> {
            st.get(name).map(|v| v.split_whitespace().map(str::to_string).collect()).unwrap_or_default()
        };
        if st.get("Enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
            continue;
        }
        if !words("Types").iter().any(|t| t == "deb") {
            continue;
        }
        let uris = words("URIs");
        let suites = words("Suites");
        let components = words("Components");
        if uris.is_empty() || suites.is_empty() {
            return Err(err("needs both `URIs:` and `Suites:`".into()));
        }
        if components.is_empty() {
            return Err(err("no `Components:` (flat repositories are not supported)".into()));
        }
        let signed_by = match st.get("Signed-By") {
            None => SignedBy::Keyrings(defaults.to_vec()),
            Some(v) if v.contains("BEGIN PGP PUBLIC KEY BLOCK") => {
                SignedBy::Inline(stanza::value_lines(v).join("\n").trim().to_string())
            }
            Some(v) => {
                let paths: Vec<PathBuf> = v
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect();
                if let Some(fpr) = paths.iter().find(|p| !p.is_absolute()) {
                    return Err(err(format!(
                        "Signed-By {:?} is not an absolute keyring path; key fingerprints are not supported",
                        fpr
                    )));
                }
                SignedBy::Keyrings(paths)
            }
        };
        for uri in &uris {
            for suite in &suites {
                out.push(Source {
                    uri: uri.trim_end_matches('/').to_string(),
                    suite: suite.clone(),
                    components: components.clone(),
                    architectures: words("Architectures"),
                    signed_by: signed_by.clone(),
                    check_valid_until: !st.get("Check-Valid-Until").is_some_and(|v| v.eq_ignore_ascii_case("no")),
                    declared_in: path.to_path_buf(),
                    derived_from: None,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security/\nSuites: bookworm-security\nComponents: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb-src\nURIs: http://x\nSuites: y\nComponents: main\n\nTypes: deb\nEnabled: no\nURIs: http://off\nSuites: s\nComponents: main\n\nTypes: deb\nURIs: file:/srv/repo\nSuites: local\nComponents: main\nArchitectures: arm64\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBF\n -----END PGP PUBLIC KEY BLOCK-----\n";

    #[test]
    fn deb822_expands_uris_and_suites() {
        let s = parse_deb822_file(DEB822, Path::new("debian.sources"), &[]).unwrap();
        let got: Vec<_> = s.iter().map(|s| (s.uri.as_str(), s.suite.as_str())).collect();
        assert_eq!(
            got,
            [
                ("http://deb.debian.org/debian", "bookworm"),
                ("http://deb.debian.org/debian", "bookworm-updates"),
                ("http://deb.debian.org/debian-security", "bookworm-security"),
                ("file:/srv/repo", "local"),
            ]
        );
        assert_eq!(s[2].components, ["main", "contrib"]);
        assert_eq!(s[0].signed_by, SignedBy::Keyrings(vec!["/usr/share/keyrings/debian-archive-keyring.gpg".into()]));
        assert!(!s[3].serves("amd64") && s[3].serves("arm64") && s[0].serves("amd64"));
        assert_eq!(
            s[3].signed_by,
            SignedBy::Inline(
                "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBF\n-----END PGP PUBLIC KEY BLOCK-----".into()
            )
        );
    }

    #[test]
    fn one_line_with_options() {
        let text = "# comment\ndeb [arch=amd64,i386 signed-by=/k.gpg trusted=yes] http://a/debian/ bookworm main contrib # tail\ndeb-src http://a/debian bookworm main\ndeb http://b/ sid main\n";
        let s = parse_one_line_file(text, Path::new("sources.list"), &[PathBuf::from("/etc/apt/trusted.gpg")]).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].uri, "http://a/debian");
        assert_eq!(s[0].architectures, ["amd64", "i386"]);
        assert_eq!(s[0].signed_by, SignedBy::Keyrings(vec!["/k.gpg".into()]));
        assert_eq!(s[0].components, ["main", "contrib"]);
        assert_eq!(s[1].signed_by, SignedBy::Keyrings(vec!["/etc/apt/trusted.gpg".into()]));
        assert!(s[0].check_valid_until);
        let snapshot =
            "deb [check-valid-until=no] http://snapshot.debian.org/archive/debian/20250520T000000Z bookworm main\n";
        assert!(!parse_one_line_file(snapshot, Path::new("l"), &[]).unwrap()[0].check_valid_until);
        let e = parse_one_line_file("deb http://x sid\n", Path::new("l"), &[]).unwrap_err();
        assert!(e.to_string().contains("l: line 1"), "{e}");
    }

    #[test]
    fn reads_a_root_dir_and_skips_disabled_files() {
        let root = tempfile::tempdir().unwrap();
        let apt = root.path().join("etc/apt");
        std::fs::create_dir_all(apt.join("sources.list.d")).unwrap();
        std::fs::create_dir_all(apt.join("trusted.gpg.d")).unwrap();
        std::fs::write(apt.join("trusted.gpg.d/b.asc"), "").unwrap();
        std::fs::write(apt.join("trusted.gpg.d/a.gpg"), "").unwrap();
        std::fs::write(apt.join("trusted.gpg.d/readme.txt"), "").unwrap();
        std::fs::write(apt.join("sources.list"), "deb http://main/ stable main\n").unwrap();
        std::fs::write(apt.join("sources.list.d/debian.sources"), DEB822).unwrap();
        std::fs::write(apt.join("sources.list.d/x.list.disabled-by-farm"), "deb http://no/ x main\n").unwrap();
        std::fs::write(apt.join("sources.list.d/y.sources.disabled"), "Types: deb\nURIs: http://no\n").unwrap();
        let s = read_sources(root.path()).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].uri, "http://main");
        assert_eq!(
            s[0].signed_by,
            SignedBy::Keyrings(vec![apt.join("trusted.gpg.d/a.gpg"), apt.join("trusted.gpg.d/b.asc")])
        );
        assert!(s.iter().all(|s| !s.uri.contains("no")));
    }
}
