//! The `.deb` writer: turns a built module set into a bit-identical, dpkg-tracked
//! binary package `<module>-modules-<KREL>_<version>_<arch>.deb`.
//!
//! Written with library crates (`ar`, `tar`, `liblzma`, `flate2`, `md-5`), not by
//! calling `dpkg-deb`, so the bytes depend on the [`DebSpec`] alone:
//!
//! * ar archive (common/BSD-less SysV format as dpkg writes it): `debian-binary`
//!   (`"2.0\n"`), `control.tar.xz`, `data.tar.xz`, in that order; every ar header
//!   has mtime = `spec.mtime`, uid 0, gid 0, mode `100644`.
//! * tar members in GNU format, names with the `./` prefix dpkg-deb produces,
//!   directories listed explicitly (`./`, `./lib/`, …) with a trailing `/`, entries
//!   sorted bytewise by name (which puts every directory before its contents),
//!   owner `root:root` (0/0), mtime = `spec.mtime`, modes explicit: directories
//!   0755, regular files 0644, maintainer scripts 0755. Names longer than 100
//!   bytes use a GNU `././@LongLink` entry, like GNU tar.
//! * xz: liblzma "easy" encoder, preset 6 (dpkg's default), check CRC64 (like dpkg),
//!   single-threaded, so the output does not depend on the number of CPUs.
//! * `changelog.Debian.gz` (`changelog.gz` for a native version without Debian
//!   revision, as policy wants): gzip level 9, header mtime 0, no file name, OS byte 3
//!   (what `gzip -9n` writes on Unix).
//!
//! `Installed-Size` follows dpkg-gencontrol's documented rule: every regular file
//! counts its size rounded up to whole KiB, every other filesystem object
//! (directories, including the root `./`) counts 1 KiB.
//!
//! The maintainer scripts call `depmod -a <KREL>` only when the kernel's own
//! module tree is installed (`/lib/modules/<KREL>/modules.order`, shipped by every
//! kernel image package and by `make modules_install`) and `depmod` is on `PATH`.
//! Our own files create `/lib/modules/<KREL>/…`, so the mere existence of that
//! directory says nothing about the kernel. If the kernel is installed later, its
//! own postinst runs depmod and picks up our modules. The postrm never fails
//! because of depmod (it warns instead). Both honour `$DPKG_ROOT` (chrootless
//! installs, `depmod -b`).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

/// Fixed xz preset (dpkg-deb's default compression level for xz).
const XZ_PRESET: u32 = 6;
/// Earliest accepted `mtime`: 1975-01-01T00:00:00Z (lintian flags older files as
/// "ancient"; dpkg-deb itself refuses timestamps before 1975 in some code paths).
pub const MIN_MTIME: u64 = 157_766_400;
/// Latest accepted `mtime`: the largest value an 11-digit octal tar field holds.
pub const MAX_MTIME: u64 = 0o77_777_777_777;

/// One kernel module file to ship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// Directory relative to `/`, no leading `/`, e.g. `lib/modules/6.1.0-56-amd64/updates/dkms`.
    pub install_dir: String,
    /// `hello.ko` or `hello.ko.xz`.
    pub file_name: String,
    pub contents: Vec<u8>,
}

/// Everything that goes into the package; the same spec always gives the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebSpec {
    /// `hello-modules-6.1.0-56-amd64`
    pub package: String,
    /// Debian version, e.g. `0.1+6.1.192-2` (optionally with `epoch:`).
    pub version: String,
    /// `amd64`
    pub architecture: String,
    /// `6.1.0-56-amd64`
    pub kernel_release: String,
    /// `Name <address>`
    pub maintainer: String,
    pub description_short: String,
    /// May be multi-line; empty lines become ` .`.
    pub description_long: String,
    /// The module's PACKAGE_NAME, for `Source:`; must be a valid (lower-case) package name.
    pub source_name: String,
    /// `Depends:` value; empty means no Depends field.
    pub depends: String,
    /// Appended to the control file verbatim, after `Priority:` and before `Description:`.
    pub extra_fields: Vec<(String, String)>,
    pub files: Vec<ModuleFile>,
    /// Text of `/usr/share/doc/<package>/copyright` (a final newline is added if missing).
    pub copyright: String,
    /// Body of the single changelog entry. The first line becomes `  * <line>`;
    /// later lines starting with `* ` or `- ` start new bullets, other lines are
    /// continuation lines (indented by four spaces); blank lines are dropped.
    pub changelog_entry: String,
    /// Fixed time (seconds since the epoch) for every entry; `MIN_MTIME..=MAX_MTIME`.
    pub mtime: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid {
        field: String,
        value: String,
        reason: String,
    },
    #[error("package {package:?} has no files to install (refusing to build an empty module package)")]
    NoFiles { package: String },
    #[error("path {path:?} occurs twice in the package (or is both a file and a directory)")]
    DuplicatePath { path: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn invalid(field: impl Into<String>, value: &str, reason: impl Into<String>) -> DebError {
    DebError::Invalid {
        field: field.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> DebError {
    let context = context.into();
    move |source| DebError::Io { context, source }
}

/// `<package>_<version without epoch>_<arch>.deb`
pub fn file_name(spec: &DebSpec) -> String {
    let version = match spec.version.split_once(':') {
        Some((_, rest)) => rest,
        None => spec.version.as_str(),
    };
    format!("{}_{}_{}.deb", spec.package, version, spec.architecture)
}

/// Build the `.deb` in memory.
pub fn build_deb(spec: &DebSpec) -> Result<Vec<u8>, DebError> {
    validate(spec)?;

    let data_entries = data_entries(spec)?;
    let installed_size_kib: u64 = data_entries
        .iter()
        .map(|e| match &e.kind {
            Kind::Dir => 1,
            Kind::File { contents, .. } => (contents.len() as u64).div_ceil(1024),
        })
        .sum();

    let mut md5sums = String::new();
    for e in &data_entries {
        if let Kind::File { contents, .. } = &e.kind {
            let digest = Md5::digest(contents);
            let _ = writeln!(md5sums, "{}  {}", hex::encode(digest), e.path);
        }
    }

    let control_entries = vec![
        Entry::dir(""),
        Entry::file("control", control_file(spec, installed_size_kib).into_bytes(), 0o644),
        Entry::file("md5sums", md5sums.into_bytes(), 0o644),
        Entry::file("postinst", postinst(spec).into_bytes(), 0o755),
        Entry::file("postrm", postrm(spec).into_bytes(), 0o755),
    ];

    let control_tar_xz = xz(&tar(control_entries, spec.mtime)?)?;
    let data_tar_xz = xz(&tar(data_entries, spec.mtime)?)?;

    let mut ar = ar::Builder::new(Vec::new());
    for (name, bytes) in [
        ("debian-binary", &b"2.0\n"[..]),
        ("control.tar.xz", &control_tar_xz[..]),
        ("data.tar.xz", &data_tar_xz[..]),
    ] {
        let mut h = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
        h.set_mtime(spec.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(0o100644);
        ar.append(&h, bytes)
            .map_err(io_err(format!("writing ar member {name}")))?;
    }
    ar.into_inner().map_err(io_err("finishing ar archive"))
}

/// Build the `.deb` and put it at `out_dir/file_name(spec)`: written to a temporary
/// file in `out_dir`, fsynced, renamed over the final name, directory fsynced.
/// Nothing half-written is ever visible under the final name.
pub fn write_deb_atomically(spec: &DebSpec, out_dir: &Path) -> Result<PathBuf, DebError> {
    let bytes = build_deb(spec)?;
    let name = file_name(spec);
    let final_path = out_dir.join(&name);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(out_dir)
        .map_err(io_err(format!("creating temporary file in {}", out_dir.display())))?;
    tmp.write_all(&bytes)
        .map_err(io_err(format!("writing {}", tmp.path().display())))?;
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io_err(format!("chmod {}", tmp.path().display())))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(io_err(format!("fsync {}", tmp.path().display())))?;
    tmp.persist(&final_path).map_err(|e| DebError::Io {
        context: format!("renaming temporary file to {}", final_path.display()),
        source: e.error,
    })?;
    std::fs::File::open(out_dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("fsync directory {}", out_dir.display())))?;
    Ok(final_path)
}

// ---------------------------------------------------------------------------
// validation

fn is_package_name(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+-.".contains(&c))
}

/// Debian version syntax, as dpkg's parseversion() checks it (plus "upstream must
/// start with a digit", which dpkg enforces when building).
fn check_version(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("empty version".into());
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
            return Err("epoch must be a non-empty decimal number".into());
        }
        if e.parse::<u32>().is_err() {
            return Err("epoch too large".into());
        }
    }
    let (upstream, revision) = match rest.rfind('-') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if upstream.is_empty() {
        return Err("empty upstream version".into());
    }
    if !upstream.as_bytes()[0].is_ascii_digit() {
        return Err("upstream version must start with a digit".into());
    }
    let upstream_ok = |c: u8| {
        c.is_ascii_alphanumeric()
            || b".+~".contains(&c)
            || (c == b'-' && revision.is_some())
            || (c == b':' && epoch.is_some())
    };
    if let Some(bad) = upstream.bytes().find(|&c| !upstream_ok(c)) {
        return Err(format!("invalid character {:?} in upstream version", bad as char));
    }
    if let Some(r) = revision {
        if r.is_empty() {
            return Err("empty Debian revision after '-'".into());
        }
        if let Some(bad) = r
            .bytes()
            .find(|&c| !(c.is_ascii_alphanumeric() || b".+~".contains(&c)))
        {
            return Err(format!("invalid character {:?} in Debian revision", bad as char));
        }
    }
    Ok(())
}

fn check_single_line(field: &str, value: &str, allow_empty: bool) -> Result<(), DebError> {
    if !allow_empty && value.trim().is_empty() {
        return Err(invalid(field, value, "must not be empty"));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(invalid(field, value, "must be a single line without control characters"));
    }
    if value != value.trim() {
        return Err(invalid(field, value, "must not have leading or trailing whitespace"));
    }
    Ok(())
}

/// A relative path component that is safe in tar, md5sums and shell-free contexts.
fn check_component(field: &str, whole: &str, comp: &str) -> Result<(), DebError> {
    if comp.is_empty() {
        return Err(invalid(field, whole, "empty path component (leading, trailing or double '/')"));
    }
    if comp == "." || comp == ".." {
        return Err(invalid(field, whole, "'.' and '..' components are not allowed"));
    }
    if comp.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return Err(invalid(field, whole, "whitespace, control characters and '\\' are not allowed"));
    }
    Ok(())
}

fn validate(spec: &DebSpec) -> Result<(), DebError> {
    if !is_package_name(&spec.package) {
        return Err(invalid(
            "package name",
            &spec.package,
            "must be at least 2 characters of [a-z0-9+.-], starting with a letter or digit",
        ));
    }
    if !is_package_name(&spec.source_name) {
        return Err(invalid(
            "source name",
            &spec.source_name,
            "must be at least 2 characters of [a-z0-9+.-], starting with a letter or digit \
             (lower-case the DKMS PACKAGE_NAME)",
        ));
    }
    check_version(&spec.version).map_err(|r| invalid("version", &spec.version, r))?;
    let a = spec.architecture.as_bytes();
    if a.is_empty()
        || !a[0].is_ascii_lowercase() && !a[0].is_ascii_digit()
        || !a.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        return Err(invalid("architecture", &spec.architecture, "must match [a-z0-9][a-z0-9-]*"));
    }
    let k = &spec.kernel_release;
    if k.is_empty()
        || k == "."
        || k == ".."
        || !k.bytes().all(|c| c.is_ascii_alphanumeric() || b"._+~-".contains(&c))
    {
        return Err(invalid(
            "kernel release",
            k,
            "must be non-empty and consist of [A-Za-z0-9._+~-] (it is embedded in maintainer scripts)",
        ));
    }
    check_single_line("maintainer", &spec.maintainer, false)?;
    {
        let m = &spec.maintainer;
        let ok = match (m.find('<'), m.ends_with('>')) {
            (Some(i), true) => i > 0 && m[i + 1..m.len() - 1].contains('@'),
            _ => false,
        };
        if !ok {
            return Err(invalid("maintainer", m, "must have the form 'Full Name <address@example.org>'"));
        }
    }
    check_single_line("short description", &spec.description_short, false)?;
    if spec
        .description_long
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(invalid("long description", &spec.description_long, "control characters other than newline/tab"));
    }
    check_single_line("Depends", &spec.depends, true)?;

    const BUILTIN: [&str; 10] = [
        "Package", "Source", "Version", "Architecture", "Maintainer", "Installed-Size",
        "Depends", "Section", "Priority", "Description",
    ];
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in &spec.extra_fields {
        let field = format!("extra field name {name:?}");
        let b = name.as_bytes();
        if b.is_empty()
            || b[0] == b'#'
            || b[0] == b'-'
            || !b.iter().all(|&c| (b'!'..=b'~').contains(&c) && c != b':')
        {
            return Err(invalid(field, name, "field names are printable ASCII without ':' or spaces, not starting with '#' or '-'"));
        }
        let lower = name.to_ascii_lowercase();
        if BUILTIN.iter().any(|f| f.eq_ignore_ascii_case(name)) || seen.contains(&lower) {
            return Err(invalid(field, name, "duplicates another control field"));
        }
        seen.push(lower);
        let field = format!("value of extra field {name}");
        if value.trim().is_empty() {
            return Err(invalid(field, value, "must not be empty"));
        }
        if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Err(invalid(field, value, "control characters other than newline/tab"));
        }
        let mut lines = value.split('\n');
        let first = lines.next().unwrap_or("");
        if first != first.trim_start() {
            return Err(invalid(field, value, "first line must not start with whitespace"));
        }
        for l in lines {
            if !(l.starts_with(' ') || l.starts_with('\t')) || l.trim().is_empty() {
                return Err(invalid(
                    field,
                    value,
                    "continuation lines must start with a space and must not be blank (use ' .')",
                ));
            }
        }
    }

    if spec.changelog_entry.trim().is_empty() {
        return Err(invalid("changelog entry", &spec.changelog_entry, "must not be empty"));
    }
    if spec.changelog_entry.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid("changelog entry", &spec.changelog_entry, "control characters other than newline/tab"));
    }
    if !(MIN_MTIME..=MAX_MTIME).contains(&spec.mtime) {
        return Err(invalid(
            "mtime",
            &spec.mtime.to_string(),
            format!("must be between {MIN_MTIME} (1975-01-01) and {MAX_MTIME}"),
        ));
    }

    if spec.files.is_empty() {
        return Err(DebError::NoFiles { package: spec.package.clone() });
    }
    for f in &spec.files {
        let dir_field = format!("install_dir of {}", f.file_name);
        if f.install_dir.starts_with('/') {
            return Err(invalid(dir_field, &f.install_dir, "must be relative (no leading '/')"));
        }
        for comp in f.install_dir.split('/') {
            check_component(&dir_field, &f.install_dir, comp)?;
        }
        if f.file_name.contains('/') {
            return Err(invalid("module file name", &f.file_name, "must not contain '/'"));
        }
        check_component("module file name", &f.file_name, &f.file_name)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// content

#[derive(Debug)]
enum Kind {
    Dir,
    File { contents: Vec<u8>, mode: u32 },
}

#[derive(Debug)]
struct Entry {
    /// Relative path without `./` and without trailing `/`; `""` is the root.
    path: String,
    kind: Kind,
}

impl Entry {
    fn dir(path: &str) -> Entry {
        Entry { path: path.to_string(), kind: Kind::Dir }
    }
    fn file(path: &str, contents: Vec<u8>, mode: u32) -> Entry {
        Entry { path: path.to_string(), kind: Kind::File { contents, mode } }
    }
    /// The name as stored in the tar archive: `./`, `./lib/`, `./lib/x.ko`.
    fn tar_name(&self) -> String {
        match (&self.kind, self.path.is_empty()) {
            (_, true) => "./".to_string(),
            (Kind::Dir, false) => format!("./{}/", self.path),
            (Kind::File { .. }, false) => format!("./{}", self.path),
        }
    }
}

/// All entries of data.tar, sorted by tar name, directories explicit.
fn data_entries(spec: &DebSpec) -> Result<Vec<Entry>, DebError> {
    use std::collections::{BTreeMap, BTreeSet};
    let doc = format!("usr/share/doc/{}", spec.package);
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut add = |path: String, contents: Vec<u8>| -> Result<(), DebError> {
        if files.insert(path.clone(), contents).is_some() {
            return Err(DebError::DuplicatePath { path });
        }
        Ok(())
    };
    for f in &spec.files {
        add(format!("{}/{}", f.install_dir, f.file_name), f.contents.clone())?;
    }
    let mut copyright = spec.copyright.clone().into_bytes();
    if copyright.last() != Some(&b'\n') {
        copyright.push(b'\n');
    }
    add(format!("{doc}/copyright"), copyright)?;
    add(format!("{doc}/{}", changelog_name(&spec.version)), changelog_gz(spec)?)?;

    let mut dirs: BTreeSet<String> = BTreeSet::new();
    dirs.insert(String::new());
    for path in files.keys() {
        let mut p = path.as_str();
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            dirs.insert(p.to_string());
        }
    }
    if let Some(d) = dirs.iter().find(|d| files.contains_key(*d)) {
        return Err(DebError::DuplicatePath { path: d.clone() });
    }
    let mut entries: Vec<Entry> = dirs.iter().map(|d| Entry::dir(d)).collect();
    entries.extend(files.into_iter().map(|(p, c)| Entry::file(&p, c, 0o644)));
    entries.sort_by_key(Entry::tar_name);
    Ok(entries)
}

/// `changelog.Debian.gz`, or `changelog.gz` for a native version (no Debian
/// revision), as Debian policy 12.7 wants (lintian: wrong-name-for-changelog-of-native-package).
fn changelog_name(version: &str) -> &'static str {
    let upstream_and_rev = version.split_once(':').map_or(version, |(_, r)| r);
    if upstream_and_rev.contains('-') {
        "changelog.Debian.gz"
    } else {
        "changelog.gz"
    }
}

fn control_file(spec: &DebSpec, installed_size_kib: u64) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "Package: {}", spec.package);
    let _ = writeln!(c, "Source: {}", spec.source_name);
    let _ = writeln!(c, "Version: {}", spec.version);
    let _ = writeln!(c, "Architecture: {}", spec.architecture);
    let _ = writeln!(c, "Maintainer: {}", spec.maintainer);
    let _ = writeln!(c, "Installed-Size: {installed_size_kib}");
    if !spec.depends.is_empty() {
        let _ = writeln!(c, "Depends: {}", spec.depends);
    }
    c.push_str("Section: kernel\n");
    c.push_str("Priority: optional\n");
    for (name, value) in &spec.extra_fields {
        let _ = writeln!(c, "{name}: {value}");
    }
    let _ = writeln!(c, "Description: {}", spec.description_short);
    c.push_str(&format_long_description(&spec.description_long));
    c
}

/// Extended description lines: each prefixed with a space, blank lines as ` .`,
/// leading/trailing blank lines and trailing whitespace dropped.
fn format_long_description(long: &str) -> String {
    let lines: Vec<&str> = long.lines().map(|l| l.trim_end()).collect();
    let start = lines.iter().position(|l| !l.is_empty()).unwrap_or(lines.len());
    let end = lines.iter().rposition(|l| !l.is_empty()).map_or(start, |i| i + 1);
    let mut out = String::new();
    for l in &lines[start..end] {
        if l.is_empty() {
            out.push_str(" .\n");
        } else {
            let _ = writeln!(out, " {l}");
        }
    }
    out
}

fn changelog_text(spec: &DebSpec) -> String {
    let mut c = format!("{} ({}) unstable; urgency=medium\n\n", spec.package, spec.version);
    let mut first = true;
    for line in spec.changelog_entry.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        if first {
            let l = l.strip_prefix("* ").or_else(|| l.strip_prefix("- ")).unwrap_or(l);
            let _ = writeln!(c, "  * {l}");
            first = false;
        } else if let Some(rest) = l.strip_prefix("* ").or_else(|| l.strip_prefix("- ")) {
            let _ = writeln!(c, "  * {rest}");
        } else {
            let _ = writeln!(c, "    {l}");
        }
    }
    let _ = writeln!(c, "\n -- {}  {}", spec.maintainer, rfc2822(spec.mtime));
    c
}

fn changelog_gz(spec: &DebSpec) -> Result<Vec<u8>, DebError> {
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(changelog_text(spec).as_bytes())
        .map_err(io_err("gzip changelog"))?;
    gz.finish().map_err(io_err("gzip changelog"))
}

/// `Thu, 01 Jan 1970 00:00:00 +0000` (UTC).
fn rfc2822(t: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (t / 86_400) as i64;
    let secs = t % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

const SCRIPT_HEAD: &str = "#!/bin/sh\nset -e\n\n";

/// Shell fragment: run depmod for `$krel` if the kernel's module tree is present.
/// `$1` of the function is what to do when depmod fails.
fn depmod_fn() -> &'static str {
    r#"run_depmod() {
	# Only when the kernel itself is installed: our own files create
	# /lib/modules/$krel, but only the kernel ships modules.order. A kernel
	# installed later runs depmod in its own postinst.
	if [ -e "$DPKG_ROOT/lib/modules/$krel/modules.order" ] &&
	   command -v depmod >/dev/null 2>&1; then
		if [ -n "$DPKG_ROOT" ]; then
			depmod -a -b "$DPKG_ROOT" "$krel"
		else
			depmod -a "$krel"
		fi
	fi
}
"#
}

fn postinst(spec: &DebSpec) -> String {
    format!(
        "{SCRIPT_HEAD}# postinst for {pkg}, generated by hermod.\n\
         krel=\"{krel}\"\n\n{depmod}\n\
         case \"$1\" in\n\
         \tconfigure|abort-upgrade|abort-remove|abort-deconfigure)\n\
         \t\trun_depmod\n\
         \t\t;;\n\
         esac\n\nexit 0\n",
        pkg = spec.package,
        krel = spec.kernel_release,
        depmod = depmod_fn(),
    )
}

fn postrm(spec: &DebSpec) -> String {
    format!(
        "{SCRIPT_HEAD}# postrm for {pkg}, generated by hermod.\n\
         krel=\"{krel}\"\n\n{depmod}\n\
         case \"$1\" in\n\
         \tremove|abort-install|abort-upgrade|disappear)\n\
         \t\t# Removal must never fail because of depmod.\n\
         \t\trun_depmod || echo \"{pkg}: warning: 'depmod -a $krel' failed; run it by hand\" >&2\n\
         \t\t;;\n\
         esac\n\nexit 0\n",
        pkg = spec.package,
        krel = spec.kernel_release,
        depmod = depmod_fn(),
    )
}

// ---------------------------------------------------------------------------
// archives

fn tar_header(name: &[u8], kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> Result<tar::Header, DebError> {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().expect("new_gnu header");
        let n = name.len().min(gnu.name.len());
        gnu.name[..n].copy_from_slice(&name[..n]);
    }
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("root").map_err(io_err("tar header"))?;
    h.set_groupname("root").map_err(io_err("tar header"))?;
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_cksum();
    Ok(h)
}

/// GNU tar with explicit headers; names are written byte-for-byte (the tar crate's
/// path setters would strip the `./` prefix). Names over 100 bytes get a GNU
/// `././@LongLink` entry first, like GNU tar writes.
fn tar(entries: Vec<Entry>, mtime: u64) -> Result<Vec<u8>, DebError> {
    let mut b = tar::Builder::new(Vec::new());
    for e in &entries {
        let name = e.tar_name();
        let name = name.as_bytes();
        if name.len() > 100 {
            let mut long = name.to_vec();
            long.push(0);
            let h = tar_header(b"././@LongLink", tar::EntryType::GNULongName, 0o644, long.len() as u64, mtime)?;
            b.append(&h, &long[..]).map_err(io_err("writing tar"))?;
        }
        let (h, data): (tar::Header, &[u8]) = match &e.kind {
            Kind::Dir => (tar_header(name, tar::EntryType::Directory, 0o755, 0, mtime)?, &[]),
            Kind::File { contents, mode } => (
                tar_header(name, tar::EntryType::Regular, *mode, contents.len() as u64, mtime)?,
                contents,
            ),
        };
        b.append(&h, data).map_err(io_err("writing tar"))?;
    }
    b.into_inner().map_err(io_err("finishing tar"))
}

fn xz(data: &[u8]) -> Result<Vec<u8>, DebError> {
    let stream = liblzma::stream::Stream::new_easy_encoder(XZ_PRESET, liblzma::stream::Check::Crc64)
        .map_err(|e| DebError::Io {
            context: "initialising xz encoder".into(),
            source: io::Error::other(e),
        })?;
    let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    enc.write_all(data).map_err(io_err("xz compression"))?;
    enc.finish().map_err(io_err("xz compression"))
}

/// All members of a .deb's ar archive (tests only).
#[cfg(test)]
fn ar_members(deb: &[u8]) -> Vec<(ar::Header, Vec<u8>)> {
    use std::io::Read;
    let mut a = ar::Archive::new(deb);
    let mut out = Vec::new();
    while let Some(e) = a.next_entry() {
        let mut e = e.unwrap();
        let mut v = Vec::new();
        e.read_to_end(&mut v).unwrap();
        out.push((e.header().clone(), v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::process::Command;

    const KREL: &str = "6.1.0-56-amd64";
    const MTIME: u64 = 1_700_000_000; // Tue, 14 Nov 2023 22:13:20 +0000

    /// A small real ELF relocatable object (built with gcc if available) so lintian
    /// sees something module-like; falls back to fixed bytes.
    fn ko_bytes() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("hello.c");
        std::fs::write(
            &c,
            "static const char __mod_license[] __attribute__((used, section(\".modinfo\"))) = \"license=GPL\";\n\
             static const char __mod_desc[] __attribute__((used, section(\".modinfo\"))) = \"description=hello\";\n\
             int init_module(void) { return 0; }\nvoid cleanup_module(void) {}\n",
        )
        .unwrap();
        let o = dir.path().join("hello.o");
        let ok = Command::new("gcc")
            .args(["-c", "-O2", "-fno-asynchronous-unwind-tables", "-o"])
            .arg(&o)
            .arg(&c)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            std::fs::read(&o).unwrap()
        } else {
            eprintln!("note: gcc unavailable, using fake .ko bytes");
            b"\x7fELF not really a module\n".to_vec()
        }
    }

    fn spec() -> DebSpec {
        let pkg = format!("hello-modules-{KREL}");
        DebSpec {
            package: pkg,
            version: "0.1+6.1.192-2".into(),
            architecture: "amd64".into(),
            kernel_release: KREL.into(),
            maintainer: "Hermod Builder <hermod@example.org>".into(),
            description_short: "hello kernel module for Linux 6.1.0-56-amd64".into(),
            description_long: "This package provides the hello kernel module built by hermod\n\
                               for the kernel 6.1.0-56-amd64.\n\
                               \n\
                               It was built hermetically from the DKMS source."
                .into(),
            source_name: "hello".into(),
            depends: format!("linux-image-{KREL} | linux-image-{KREL}-unsigned"),
            extra_fields: vec![
                ("Built-Using".into(), "linux (= 6.1.192-2)".into()),
                ("X-Hermod-Key".into(), "0123456789abcdef".into()),
            ],
            files: vec![ModuleFile {
                install_dir: format!("lib/modules/{KREL}/updates/dkms"),
                file_name: "hello.ko".into(),
                contents: ko_bytes(),
            }],
            copyright: "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
                        Upstream-Name: hello\n\n\
                        Files: *\n\
                        Copyright: 2024 Example Author <author@example.org>\n\
                        License: GPL-2\n \
                        On Debian systems, the full text of the GNU General Public License\n \
                        version 2 can be found in the file `/usr/share/common-licenses/GPL-2'.\n"
                .into(),
            changelog_entry: "Built hello 0.1 for Linux 6.1.0-56-amd64 with hermod.".into(),
            mtime: MTIME,
        }
    }

    fn have(tool: &str) -> bool {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn run(cmd: &mut Command) -> String {
        let out = cmd.output().expect("spawn");
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn unxz(data: &[u8]) -> Vec<u8> {
        let mut d = liblzma::read::XzDecoder::new(data);
        let mut v = Vec::new();
        d.read_to_end(&mut v).unwrap();
        v
    }

    /// (name, mode, uid, gid, uname, gname, mtime, contents) of a tar member.
    type TarMember = (String, u32, u64, u64, String, String, u64, Vec<u8>);

    fn tar_listing(tar_bytes: &[u8]) -> Vec<TarMember> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
                let h = e.header().clone();
                let mut v = Vec::new();
                e.read_to_end(&mut v).unwrap();
                (
                    name,
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.username().unwrap().unwrap().to_string(),
                    h.groupname().unwrap().unwrap().to_string(),
                    h.mtime().unwrap(),
                    v,
                )
            })
            .collect()
    }

    fn write_tmp(deb: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(file_name(&spec()));
        std::fs::write(&p, deb).unwrap();
        (dir, p)
    }

    #[test]
    fn deterministic_and_sorted() {
        let a = build_deb(&spec()).unwrap();
        let b = build_deb(&spec()).unwrap();
        assert_eq!(a, b, "same spec must give the same bytes");

        let members = ar_members(&a);
        let names: Vec<_> = members
            .iter()
            .map(|(h, _)| String::from_utf8(h.identifier().to_vec()).unwrap())
            .collect();
        assert_eq!(names, ["debian-binary", "control.tar.xz", "data.tar.xz"]);
        for (h, _) in &members {
            assert_eq!((h.mtime(), h.uid(), h.gid(), h.mode()), (MTIME, 0, 0, 0o100644));
        }
        assert_eq!(members[0].1, b"2.0\n");
        // xz stream flags: check type 0x04 = CRC64.
        assert_eq!(&members[2].1[..6], b"\xfd7zXZ\0");
        assert_eq!(members[2].1[7], 0x04);

        let data = tar_listing(&unxz(&members[2].1));
        let names: Vec<&str> = data.iter().map(|e| e.0.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "data.tar entries sorted");
        let pkg = spec().package;
        assert_eq!(
            names,
            [
                "./".to_string(),
                "./lib/".into(),
                "./lib/modules/".into(),
                format!("./lib/modules/{KREL}/"),
                format!("./lib/modules/{KREL}/updates/"),
                format!("./lib/modules/{KREL}/updates/dkms/"),
                format!("./lib/modules/{KREL}/updates/dkms/hello.ko"),
                "./usr/".into(),
                "./usr/share/".into(),
                "./usr/share/doc/".into(),
                format!("./usr/share/doc/{pkg}/"),
                format!("./usr/share/doc/{pkg}/changelog.Debian.gz"),
                format!("./usr/share/doc/{pkg}/copyright"),
            ]
        );
        for (name, mode, uid, gid, un, gn, mt, _) in &data {
            assert_eq!((*uid, *gid, un.as_str(), gn.as_str(), *mt), (0, 0, "root", "root", MTIME), "{name}");
            assert_eq!(*mode, if name.ends_with('/') { 0o755 } else { 0o644 }, "{name}");
        }

        let control = tar_listing(&unxz(&members[1].1));
        let cnames: Vec<(&str, u32)> = control.iter().map(|e| (e.0.as_str(), e.1)).collect();
        assert_eq!(
            cnames,
            [("./", 0o755), ("./control", 0o644), ("./md5sums", 0o644), ("./postinst", 0o755), ("./postrm", 0o755)]
        );
    }

    #[test]
    fn every_field_changes_the_bytes() {
        let base = build_deb(&spec()).unwrap();
        type Mutator = fn(&mut DebSpec);
        let mutators: &[(&str, Mutator)] = &[
            ("package", |s| s.package = "hello-modules-other".into()),
            ("version", |s| s.version = "0.1+6.1.192-3".into()),
            ("architecture", |s| s.architecture = "arm64".into()),
            ("kernel_release", |s| s.kernel_release = "6.1.0-57-amd64".into()),
            ("maintainer", |s| s.maintainer = "Someone Else <x@example.org>".into()),
            ("description_short", |s| s.description_short.push('!')),
            ("description_long", |s| s.description_long.push_str("\nMore.")),
            ("source_name", |s| s.source_name = "hello2".into()),
            ("depends", |s| s.depends = "linux-image-6.1.0-56-amd64".into()),
            ("extra_fields", |s| s.extra_fields[1].1 = "fedcba9876543210".into()),
            ("extra_fields order", |s| s.extra_fields.reverse()),
            ("install_dir", |s| s.files[0].install_dir = format!("lib/modules/{KREL}/extra")),
            ("file_name", |s| s.files[0].file_name = "hello2.ko".into()),
            ("contents", |s| s.files[0].contents.push(0)),
            ("copyright", |s| s.copyright.push_str("\nextra\n")),
            ("changelog_entry", |s| s.changelog_entry.push_str(" Again.")),
            ("mtime", |s| s.mtime += 1),
        ];
        for (what, m) in mutators {
            let mut s = spec();
            m(&mut s);
            let other = build_deb(&s).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_ne!(base, other, "changing {what} must change the bytes");
        }
    }

    #[test]
    fn control_and_changelog_text() {
        let s = spec();
        let c = control_file(&s, 42);
        assert_eq!(
            c,
            format!(
                "Package: hello-modules-{KREL}\nSource: hello\nVersion: 0.1+6.1.192-2\nArchitecture: amd64\n\
                 Maintainer: Hermod Builder <hermod@example.org>\nInstalled-Size: 42\n\
                 Depends: linux-image-{KREL} | linux-image-{KREL}-unsigned\nSection: kernel\nPriority: optional\n\
                 Built-Using: linux (= 6.1.192-2)\nX-Hermod-Key: 0123456789abcdef\n\
                 Description: hello kernel module for Linux 6.1.0-56-amd64\n \
                 This package provides the hello kernel module built by hermod\n \
                 for the kernel 6.1.0-56-amd64.\n .\n It was built hermetically from the DKMS source.\n"
            )
        );
        assert_eq!(
            changelog_text(&s),
            format!(
                "hello-modules-{KREL} (0.1+6.1.192-2) unstable; urgency=medium\n\n  \
                 * Built hello 0.1 for Linux 6.1.0-56-amd64 with hermod.\n\n \
                 -- Hermod Builder <hermod@example.org>  Tue, 14 Nov 2023 22:13:20 +0000\n"
            )
        );
        assert_eq!(rfc2822(MIN_MTIME), "Wed, 01 Jan 1975 00:00:00 +0000");
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(changelog_name("0.1+6.1.192-2"), "changelog.Debian.gz");
        assert_eq!(changelog_name("1:0.1"), "changelog.gz");
        assert_eq!(format_long_description("\n a\n\n\nb  \n\n"), "  a\n .\n .\n b\n");
    }

    #[test]
    fn file_names() {
        let mut s = spec();
        assert_eq!(file_name(&s), format!("hello-modules-{KREL}_0.1+6.1.192-2_amd64.deb"));
        s.version = "1:0.1-1".into();
        assert_eq!(file_name(&s), format!("hello-modules-{KREL}_0.1-1_amd64.deb"));
    }

    #[test]
    fn validation_errors() {
        type Mutator = fn(&mut DebSpec);
        let bad: &[(&str, Mutator)] = &[
            ("package name", |s| s.package = "Hello".into()),
            ("package name", |s| s.package = "h".into()),
            ("package name", |s| s.package = "-hello".into()),
            ("source name", |s| s.source_name = "Hello_World".into()),
            ("version", |s| s.version = "".into()),
            ("version", |s| s.version = "a1.0".into()),
            ("version", |s| s.version = "1.0-".into()),
            ("version", |s| s.version = "x:1.0".into()),
            ("version", |s| s.version = "1.0 1".into()),
            ("version", |s| s.version = "1_0".into()),
            ("version", |s| s.version = "1:".into()),
            ("architecture", |s| s.architecture = "AMD64".into()),
            ("kernel release", |s| s.kernel_release = "6.1; rm -rf /".into()),
            ("maintainer", |s| s.maintainer = "nobody".into()),
            ("maintainer", |s| s.maintainer = "A <a@b>\nB <c@d>".into()),
            ("short description", |s| s.description_short = "".into()),
            ("Depends", |s| s.depends = "a,\n b".into()),
            ("extra field", |s| s.extra_fields.push(("Package".into(), "x".into()))),
            ("extra field", |s| s.extra_fields.push(("Bad Name".into(), "x".into()))),
            ("extra field", |s| s.extra_fields.push(("X-Multi".into(), "a\nb".into()))),
            ("changelog entry", |s| s.changelog_entry = " \n".into()),
            ("mtime", |s| s.mtime = 100),
            ("install_dir", |s| s.files[0].install_dir = "/lib/modules".into()),
            ("install_dir", |s| s.files[0].install_dir = "lib/../etc".into()),
            ("install_dir", |s| s.files[0].install_dir = "lib//modules".into()),
            ("module file name", |s| s.files[0].file_name = "a/b.ko".into()),
            ("no files", |s| s.files.clear()),
            ("twice", |s| {
                let f = s.files[0].clone();
                s.files.push(f)
            }),
            ("twice", |s| {
                let mut f = s.files[0].clone();
                f.install_dir = format!("lib/modules/{KREL}/updates");
                f.file_name = "dkms".into();
                s.files.push(f)
            }),
        ];
        for (want, m) in bad {
            let mut s = spec();
            m(&mut s);
            let err = build_deb(&s).expect_err(want).to_string();
            eprintln!("{want}: {err}");
            assert!(err.contains(want), "error {err:?} should mention {want:?}");
        }
        // Multi-line extra fields with proper continuation lines are fine, epochs too.
        let mut s = spec();
        s.extra_fields.push(("X-Multi".into(), "first\n second\n .".into()));
        s.version = "2:1.0~rc1+dfsg-1.1~bpo12+1".into();
        build_deb(&s).unwrap();
    }

    #[test]
    fn long_paths_use_gnu_longname() {
        let mut s = spec();
        s.files[0].install_dir = format!("lib/modules/{KREL}/updates/dkms/{}", "d".repeat(90));
        let deb = build_deb(&s).unwrap();
        let data = tar_listing(&unxz(&ar_members(&deb)[2].1));
        let want = format!("./{}/{}", s.files[0].install_dir, s.files[0].file_name);
        assert!(want.len() > 100);
        assert!(data.iter().any(|e| e.0 == want), "{want} missing");
        if have("dpkg-deb") {
            let (_d, p) = write_tmp(&deb);
            let listing = run(Command::new("dpkg-deb").arg("-c").arg(&p));
            assert!(listing.contains(&want), "{listing}");
        }
    }

    #[test]
    fn write_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_deb_atomically(&spec(), dir.path()).unwrap();
        assert_eq!(p, dir.path().join(file_name(&spec())));
        assert_eq!(std::fs::read(&p).unwrap(), build_deb(&spec()).unwrap());
        // Overwrite in place, still no leftovers.
        write_deb_atomically(&spec(), dir.path()).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [file_name(&spec())]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
        // Invalid spec: nothing written.
        let mut s = spec();
        s.files.clear();
        let empty = tempfile::tempdir().unwrap();
        assert!(write_deb_atomically(&s, empty.path()).is_err());
        assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
    }

    #[test]
    fn dpkg_deb_parses_it() {
        if !have("dpkg-deb") {
            eprintln!("note: dpkg-deb not installed, skipping");
            return;
        }
        let s = spec();
        let deb = build_deb(&s).unwrap();
        let (dir, p) = write_tmp(&deb);

        let info = run(Command::new("dpkg-deb").arg("--info").arg(&p));
        eprintln!("{info}");
        assert!(info.contains(&format!("Package: {}", s.package)));
        assert!(info.contains("control.tar.xz") || info.contains("control"));

        let f = run(Command::new("dpkg-deb").arg("-f").arg(&p).args(["Package", "Version", "Architecture", "X-Hermod-Key"]));
        assert_eq!(
            f,
            format!("Package: {}\nVersion: {}\nArchitecture: amd64\nX-Hermod-Key: 0123456789abcdef\n", s.package, s.version)
        );
        let inst = run(Command::new("dpkg-deb").arg("-f").arg(&p).arg("Installed-Size"));
        // 7 directories + usr/share/doc/<pkg> tree (4) + root … every dir 1 KiB, files rounded up.
        eprintln!("Installed-Size: {inst}");

        let listing = run(Command::new("dpkg-deb").arg("-c").arg(&p));
        eprintln!("{listing}");
        let ko = format!("./lib/modules/{KREL}/updates/dkms/hello.ko");
        let line = listing.lines().find(|l| l.ends_with(&ko)).expect("module listed");
        assert!(line.starts_with("-rw-r--r-- root/root"), "{line}");
        assert!(line.contains("2023-11-14 22:13"), "{line}");
        for l in listing.lines() {
            assert!(l.contains(" root/root "), "{l}");
            assert!(l.contains("2023-11-14 22:13"), "{l}");
        }

        // Extract and compare md5sums with the real files.
        let x = dir.path().join("x");
        let e = dir.path().join("e");
        run(Command::new("dpkg-deb").arg("-x").arg(&p).arg(&x));
        run(Command::new("dpkg-deb").arg("-e").arg(&p).arg(&e));
        let md5sums = std::fs::read_to_string(e.join("md5sums")).unwrap();
        let mut n = 0;
        for l in md5sums.lines() {
            let (sum, path) = l.split_once("  ").unwrap();
            assert!(!path.starts_with('/') && !path.starts_with("./"));
            let out = run(Command::new("md5sum").arg(x.join(path)));
            assert_eq!(out.split_whitespace().next().unwrap(), sum, "{path}");
            n += 1;
        }
        assert_eq!(n, 3);
        assert_eq!(std::fs::read(x.join(&ko[2..])).unwrap(), s.files[0].contents);
        let cl = run(Command::new("zcat").arg(x.join(format!("usr/share/doc/{}/changelog.Debian.gz", s.package))));
        assert_eq!(cl, changelog_text(&s));
        // Scripts are syntactically valid sh.
        for sc in ["postinst", "postrm"] {
            run(Command::new("sh").arg("-n").arg(e.join(sc)));
        }
    }

    #[test]
    fn lintian_has_no_errors() {
        if !have("lintian") {
            eprintln!("note: lintian not installed, skipping (apt-get install -y lintian)");
            return;
        }
        let deb = build_deb(&spec()).unwrap();
        let (_d, p) = write_tmp(&deb);
        let out = Command::new("lintian")
            .args(["--tag-display-limit", "0", "--display-info", "--pedantic"])
            .arg(&p)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        eprintln!("lintian says:\n{text}");
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E:")).collect();
        assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
    }

    /// Install into a throwaway root with the real dpkg and check `dpkg -L`; the
    /// maintainer scripts run chrootless (they honour $DPKG_ROOT) with a fake
    /// `depmod` that records its arguments.
    #[test]
    fn dpkg_installs_into_throwaway_root() {
        if !have("dpkg") {
            eprintln!("note: dpkg not installed, skipping");
            return;
        }
        let s = spec();
        let deb = build_deb(&s).unwrap();
        let (dir, p) = write_tmp(&deb);
        let root = dir.path().join("root");
        let admin = root.join("var/lib/dpkg");
        for d in ["updates", "info", "triggers"] {
            std::fs::create_dir_all(admin.join(d)).unwrap();
        }
        std::fs::write(admin.join("status"), "").unwrap();
        std::fs::write(admin.join("available"), "").unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let calls = dir.path().join("depmod-calls");
        let fail = dir.path().join("depmod-fails");
        std::fs::write(
            bin.join("depmod"),
            format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\n[ ! -e '{}' ]\n",
                calls.display(),
                fail.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("depmod"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display());
        let dpkg = |args: &[&str]| {
            let mut c = Command::new("dpkg");
            c.arg(format!("--root={}", root.display()))
                .args([
                    "--force-depends",
                    "--force-not-root",
                    "--force-script-chrootless",
                    "--force-unsafe-io",
                    "--log=/dev/null",
                ])
                .args(args)
                .env("PATH", &path);
            c
        };
        let calls_text = || std::fs::read_to_string(&calls).unwrap_or_default();
        let ko = root.join(format!("lib/modules/{KREL}/updates/dkms/hello.ko"));

        // 1. No kernel in the root: install works, depmod is not called.
        run(&mut dpkg(&["-i", p.to_str().unwrap()]));
        let listed = run(&mut dpkg(&["-L", &s.package]));
        eprintln!("dpkg -L:\n{listed}");
        assert!(listed.lines().any(|l| l == format!("/lib/modules/{KREL}/updates/dkms/hello.ko")), "{listed}");
        let status = run(&mut dpkg(&["-s", &s.package]));
        assert!(status.contains("Status: install ok installed"), "{status}");
        assert_eq!(std::fs::read(&ko).unwrap(), s.files[0].contents);
        run(&mut dpkg(&["-V", &s.package]));
        assert_eq!(calls_text(), "");
        run(&mut dpkg(&["--purge", &s.package]));
        assert!(!ko.exists());

        // 2. "Kernel" present (modules.order): depmod runs against $DPKG_ROOT on
        // configure and on remove; a failing depmod does not fail removal.
        std::fs::create_dir_all(root.join(format!("lib/modules/{KREL}"))).unwrap();
        std::fs::write(root.join(format!("lib/modules/{KREL}/modules.order")), "").unwrap();
        run(&mut dpkg(&["-i", p.to_str().unwrap()]));
        let want = format!("-a -b {} {KREL}\n", root.display());
        assert_eq!(calls_text(), want);
        std::fs::write(&fail, "").unwrap();
        run(&mut dpkg(&["--remove", &s.package]));
        assert_eq!(calls_text(), want.repeat(2));
        assert!(!ko.exists());
    }
}
