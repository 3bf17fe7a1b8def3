//! Module sources: a directory holding a dkms.conf.
//!
//! The tree is scanned once into a sorted list of [`Entry`]s. The scan is what
//! both the cache key (content, never path or mtime) and the copy into the
//! sandbox's `/build/src` are made from, so what is hashed is exactly what is
//! built. Only regular files, directories and symlinks that stay inside the tree
//! are accepted: a symlink to `/etc/shadow` or `../..` would let a build read the
//! host through the source copy.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source {0} does not exist or is not a directory")]
    NotADirectory(PathBuf),
    #[error(
        "{0} has no dkms.conf: a module source is a directory with a dkms.conf (as under /usr/src/<module>-<version>)"
    )]
    NoDkmsConf(PathBuf),
    #[error("{path}: symlink to {target:?} points outside the source tree")]
    SymlinkEscape { path: PathBuf, target: PathBuf },
    #[error("{0}: not a regular file, directory or symlink (devices, sockets and fifos are refused)")]
    SpecialFile(PathBuf),
    #[error("{0}: file name is not valid UTF-8")]
    NonUtf8(PathBuf),
    #[error("reading source {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SourceError + '_ {
    move |source| SourceError::Io { path: path.to_owned(), source }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// Regular file with its blake3 hash and whether any execute bit is set.
    File {
        hash: blake3::Hash,
        size: u64,
        executable: bool,
    },
    Symlink {
        target: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the tree root, `/`-separated.
    pub path: String,
    pub kind: Kind,
}

/// A scanned module source.
#[derive(Debug, Clone)]
pub struct SourceTree {
    pub root: PathBuf,
    pub entries: Vec<Entry>,
}

impl SourceTree {
    pub fn scan(root: &Path) -> Result<SourceTree, SourceError> {
        if !root.is_dir() {
            return Err(SourceError::NotADirectory(root.to_owned()));
        }
        if !root.join("dkms.conf").is_file() {
            return Err(SourceError::NoDkmsConf(root.to_owned()));
        }
        let mut entries = Vec::new();
        let walker = walkdir::WalkDir::new(root).min_depth(1).follow_links(false).sort_by_file_name();
        for item in walker {
            let item = item.map_err(|e| {
                let path = e.path().unwrap_or(root).to_owned();
                SourceError::Io { path, source: e.into() }
            })?;
            let path = item.path();
            let rel = path.strip_prefix(root).expect("walkdir stays under root");
            let rel_str = rel.to_str().ok_or_else(|| SourceError::NonUtf8(path.to_owned()))?.to_owned();
            let meta = item.path().symlink_metadata().map_err(io_err(path))?;
            let kind = if meta.is_dir() {
                Kind::Dir
            } else if meta.is_file() {
                let bytes = fs::read(path).map_err(io_err(path))?;
                Kind::File {
                    hash: blake3::hash(&bytes),
                    size: bytes.len() as u64,
                    executable: meta.permissions().mode() & 0o111 != 0,
                }
            } else if meta.file_type().is_symlink() {
                let target = fs::read_link(path).map_err(io_err(path))?;
                if !stays_inside(rel, &target) {
                    return Err(SourceError::SymlinkEscape { path: path.to_owned(), target });
                }
                let target = target.to_str().ok_or_else(|| SourceError::NonUtf8(path.to_owned()))?.to_owned();
                Kind::Symlink { target }
            } else {
                return Err(SourceError::SpecialFile(path.to_owned()));
            };
            entries.push(Entry { path: rel_str, kind });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(SourceTree { root: root.to_owned(), entries })
    }

    /// Copy the tree into `dest` (which must exist), with normalized modes:
    /// 0755 for directories and executables, 0644 for other files.
    pub fn copy_to(&self, dest: &Path) -> Result<(), SourceError> {
        for entry in &self.entries {
            let to = dest.join(&entry.path);
            match &entry.kind {
                Kind::Dir => fs::create_dir(&to).map_err(io_err(&to))?,
                Kind::File { executable, .. } => {
                    let from = self.root.join(&entry.path);
                    fs::copy(&from, &to).map_err(io_err(&from))?;
                    let mode = if *executable { 0o755 } else { 0o644 };
                    fs::set_permissions(&to, fs::Permissions::from_mode(mode)).map_err(io_err(&to))?;
                }
                Kind::Symlink { target } => symlink(target, &to).map_err(io_err(&to))?,
            }
        }
        Ok(())
    }

    pub fn total_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.kind {
                Kind::File { size, .. } => size,
                _ => 0,
            })
            .sum()
    }
}

/// Whether a symlink at `link` (relative to the tree root) with `target` resolves
/// inside the tree, judged lexically (the tree is copied, so that is what counts).
fn stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = link.components().count() as i64 - 1;
    for part in target.components() {
        match part {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, body) in files {
            let p = dir.path().join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, body).unwrap();
        }
        dir
    }

    #[test]
    fn scan_is_sorted_and_content_addressed() {
        let a = tree(&[("dkms.conf", "PACKAGE_NAME=x"), ("src/b.c", "b"), ("a.c", "a")]);
        let scan = SourceTree::scan(a.path()).unwrap();
        let paths: Vec<_> = scan.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a.c", "dkms.conf", "src", "src/b.c"]);
        let b = tree(&[("src/b.c", "b"), ("a.c", "a"), ("dkms.conf", "PACKAGE_NAME=x")]);
        assert_eq!(scan.entries, SourceTree::scan(b.path()).unwrap().entries);
    }

    #[test]
    fn missing_dkms_conf_and_escaping_symlinks_are_refused() {
        let no_conf = tree(&[("a.c", "a")]);
        assert!(matches!(SourceTree::scan(no_conf.path()), Err(SourceError::NoDkmsConf(_))));
        let esc = tree(&[("dkms.conf", "x")]);
        symlink("/etc/shadow", esc.path().join("shadow")).unwrap();
        assert!(matches!(SourceTree::scan(esc.path()), Err(SourceError::SymlinkEscape { .. })));
        let up = tree(&[("dkms.conf", "x"), ("sub/f", "")]);
        symlink("../../x", up.path().join("sub/l")).unwrap();
        assert!(matches!(SourceTree::scan(up.path()), Err(SourceError::SymlinkEscape { .. })));
        let ok = tree(&[("dkms.conf", "x"), ("sub/f", "")]);
        symlink("../dkms.conf", ok.path().join("sub/l")).unwrap();
        assert!(SourceTree::scan(ok.path()).is_ok());
    }

    #[test]
    fn copy_reproduces_tree_with_normalized_modes() {
        let src = tree(&[("dkms.conf", "x"), ("d/run.sh", "#!/bin/sh")]);
        fs::set_permissions(src.path().join("d/run.sh"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(src.path().join("dkms.conf"), fs::Permissions::from_mode(0o600)).unwrap();
        let scan = SourceTree::scan(src.path()).unwrap();
        let dest = tempfile::tempdir().unwrap();
        scan.copy_to(dest.path()).unwrap();
        let mode = |p: &str| fs::metadata(dest.path().join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("d/run.sh"), 0o755);
        assert_eq!(mode("dkms.conf"), 0o644);
        assert_eq!(SourceTree::scan(dest.path()).unwrap().entries, scan.entries);
    }
}
