//! What goes into the package: data entries, the control file, the changelog
//! and the maintainer scripts.

use super::*;

#[derive(Debug)]
pub(super) enum Kind {
    Dir,
    File { contents: Vec<u8>, mode: u32 },
}

#[derive(Debug)]
pub(super) struct Entry {
    /// Relative path without `./` and without trailing `/`; `""` is the root.
    pub(super) path: String,
    pub(super) kind: Kind,
}

impl Entry {
    pub(super) fn dir(path: &str) -> Entry {
        Entry { path: path.to_string(), kind: Kind::Dir }
    }
    pub(super) fn file(path: &str, contents: Vec<u8>, mode: u32) -> Entry {
        Entry { path: path.to_string(), kind: Kind::File { contents, mode } }
    }
    /// The name as stored in the tar archive: `./`, `./lib/`, `./lib/x.ko`.
    pub(super) fn tar_name(&self) -> String {
        match (&self.kind, self.path.is_empty()) {
            (_, true) => "./".to_string(),
            (Kind::Dir, false) => format!("./{}/", self.path),
            (Kind::File { .. }, false) => format!("./{}", self.path),
        }
    }
}

/// All entries of data.tar, sorted by tar name, directories explicit.
pub(super) fn data_entries(spec: &DebSpec) -> Result<Vec<Entry>, DebError> {
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
pub(super) fn changelog_name(version: &str) -> &'static str {
    let upstream_and_rev = version.split_once(':').map_or(version, |(_, r)| r);
    if upstream_and_rev.contains('-') {
        "changelog.Debian.gz"
    } else {
        "changelog.gz"
    }
}

pub(super) fn control_file(spec: &DebSpec, installed_size_kib: u64) -> String {
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
pub(super) fn format_long_description(long: &str) -> String {
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

pub(super) fn changelog_text(spec: &DebSpec) -> String {
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

pub(super) fn changelog_gz(spec: &DebSpec) -> Result<Vec<u8>, DebError> {
    let mut gz = flate2::GzBuilder::new().mtime(0).operating_system(3).write(Vec::new(), flate2::Compression::best());
    gz.write_all(changelog_text(spec).as_bytes()).map_err(io_err("gzip changelog"))?;
    gz.finish().map_err(io_err("gzip changelog"))
}

/// `Thu, 01 Jan 1970 00:00:00 +0000` (UTC), as a changelog's trailer line writes it.
pub fn rfc2822(t: u64) -> String {
    crate::apt::release::format_rfc2822(t as i64, "+0000")
}

pub(super) const SCRIPT_HEAD: &str = "#!/bin/sh\nset -e\n\n";

/// Shell fragment: run depmod for `$krel` if the kernel's module tree is present.
/// `$1` of the function is what to do when depmod fails.
pub(super) fn depmod_fn() -> &'static str {
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

pub(super) fn postinst(spec: &DebSpec) -> String {
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

pub(super) fn postrm(spec: &DebSpec) -> String {
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

// archives
