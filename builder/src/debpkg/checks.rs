//! Validation of a DebSpec before anything is written: every field a user or
//! dkms.conf controls ends up in control files or maintainer scripts.

use super::*;

/// Policy §5.6.1 (the one definition is `apt::syntax`).
pub(crate) fn is_package_name(s: &str) -> bool {
    crate::apt::syntax::package_name(s).is_ok()
}

/// Debian version syntax, as dpkg's parseversion() checks it (plus "upstream must
/// start with a digit", which dpkg enforces when building): `apt::syntax`'s rules.
pub(crate) fn check_version(v: &str) -> Result<(), String> {
    crate::apt::syntax::version_reason(v)
}

pub(super) fn check_single_line(field: &str, value: &str, allow_empty: bool) -> Result<(), DebError> {
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
pub(super) fn check_component(field: &str, whole: &str, comp: &str) -> Result<(), DebError> {
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

pub(super) fn validate(spec: &DebSpec, kind: PackageKind) -> Result<(), DebError> {
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
    if crate::apt::syntax::architecture(&spec.architecture).is_err() {
        return Err(invalid("architecture", &spec.architecture, "must match [a-z0-9][a-z0-9-]*"));
    }
    let k = &spec.kernel_release;
    if crate::apt::syntax::kernel_release(k).is_err() {
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
    if spec.description_long.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid("long description", &spec.description_long, "control characters other than newline/tab"));
    }
    check_single_line("Depends", &spec.depends, true)?;

    const BUILTIN: [&str; 10] = [
        "Package",
        "Source",
        "Version",
        "Architecture",
        "Maintainer",
        "Installed-Size",
        "Depends",
        "Section",
        "Priority",
        "Description",
    ];
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in &spec.extra_fields {
        let field = format!("extra field name {name:?}");
        let b = name.as_bytes();
        if b.is_empty() || b[0] == b'#' || b[0] == b'-' || !b.iter().all(|&c| (b'!'..=b'~').contains(&c) && c != b':') {
            return Err(invalid(
                field,
                name,
                "field names are printable ASCII without ':' or spaces, not starting with '#' or '-'",
            ));
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

    match kind {
        PackageKind::Modules if spec.files.is_empty() => {
            return Err(DebError::NoFiles { package: spec.package.clone() })
        }
        PackageKind::Meta if !spec.files.is_empty() => {
            return Err(invalid("files", &spec.package, "a metapackage ships no module files"))
        }
        _ => {}
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
