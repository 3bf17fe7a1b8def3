//! Where a path leads inside a tree, worked out the way the kernel resolves
//! it — component by component, symlink chains and `..` included — but with
//! every link read as data ([`Dir::read_link`]) and nothing followed.
//!
//! Judging a link by its own text is not enough: `d -> .` is harmless alone
//! and so is `e -> d/d/d/../../../x` read lexically from `e`'s directory, yet
//! together they climb out of the tree. Resolution here walks the real tree,
//! so a chain is judged as the kernel will follow it. Where a component does
//! not exist (or is no directory), the rest is judged lexically, which is
//! stricter than the kernel (it would stop there with an error).

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::{Dir, Error, Kind, Result};

/// The kernel's limit on symlinks followed in one resolution.
const MAX_HOPS: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The path leads to this place inside the tree (relative; it may not exist).
    Inside(PathBuf),
    /// The path leads above the tree, or to an absolute target.
    Outside,
    /// More than 40 links on the way (the kernel would fail with `ELOOP`).
    Loop,
}

impl Dir {
    /// Resolve `rel` inside this directory as the kernel would with this
    /// directory as the tree's top; `follow_last` follows a final symlink
    /// (asking where a link leads: pass the link's own path and `true`).
    pub fn resolve(&self, rel: impl AsRef<Path>, follow_last: bool) -> Result<Resolved> {
        let mut stack: Vec<OsString> = Vec::new();
        push_reversed(&mut stack, rel.as_ref());
        let mut cur = PathBuf::new();
        let mut hops = 0;
        // Once a component is missing (or no directory), the rest is lexical.
        let mut lexical = false;
        while let Some(part) = stack.pop() {
            match part.to_str() {
                Some("" | ".") => continue,
                Some("..") => {
                    if !cur.pop() {
                        return Ok(Resolved::Outside);
                    }
                    continue;
                }
                _ => {}
            }
            let candidate = cur.join(&part);
            let last = stack.is_empty();
            if !lexical {
                match self.meta(&candidate)? {
                    Some(m) if m.kind == Kind::Symlink && (follow_last || !last) => {
                        hops += 1;
                        if hops > MAX_HOPS {
                            return Ok(Resolved::Loop);
                        }
                        let target = self.read_link(&candidate)?;
                        if target.is_absolute() {
                            return Ok(Resolved::Outside);
                        }
                        push_reversed(&mut stack, &target);
                        continue;
                    }
                    Some(m) if m.kind == Kind::Dir || last => {}
                    _ => lexical = true,
                }
            }
            cur = candidate;
        }
        Ok(Resolved::Inside(cur))
    }
}

/// `path`'s names (and `..`) onto `stack`, the first on top.
fn push_reversed(stack: &mut Vec<OsString>, path: &Path) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    stack.extend(parts.into_iter().rev());
}

impl Dir {
    /// The directory `rel` with this directory taken as `/`, as a chroot will
    /// see it, made (with `mode`) where missing: for a build root being
    /// assembled from packages, whose own links (`lib -> usr/lib`) are
    /// followed inside it.
    ///
    /// The kernel resolves `rel` first (`RESOLVE_IN_ROOT`: absolute targets and
    /// `..` never leave this directory). When something on the way is missing,
    /// the path is walked as the kernel would walk it, one `*at` call at a time
    /// from the directory the walk stands in, making each missing directory
    /// there (so a dangling `lib64 -> /usr/lib` makes `usr/lib`) and replacing
    /// a file in the way; a link is read, never followed by a host path.
    pub fn make_dir_in_root(&self, rel: impl AsRef<Path>, mode: u32) -> Result<Dir> {
        let rel = rel.as_ref();
        match self.open_dir_in_root(rel) {
            Ok(dir) => return Ok(dir),
            Err(e) if e.is_not_found() || matches!(e, Error::NotADirectory { .. } | Error::Symlink { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut stack: Vec<OsString> = Vec::new();
        push_reversed(&mut stack, rel);
        let mut cur = self.try_clone()?;
        // The real path of `cur`: directories only, no symlink.
        let mut real = PathBuf::new();
        let mut hops = 0;
        while let Some(name) = stack.pop() {
            if name == ".." {
                real.pop(); // at the root `..` stays at the root, as in a chroot
                cur = self.open_dir(&real)?;
                continue;
            }
            cur = match cur.meta(&name)? {
                Some(m) if m.kind == Kind::Dir => cur.open_dir(&name)?,
                Some(m) if m.kind == Kind::Symlink => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(Error::Symlink { path: self.shown(rel) });
                    }
                    let target = cur.read_link(&name)?;
                    if target.is_absolute() {
                        real = PathBuf::new();
                        cur = self.try_clone()?;
                    }
                    push_reversed(&mut stack, &target);
                    continue;
                }
                Some(_) => {
                    cur.remove_file(&name)?;
                    cur.create_dir(&name, mode)?
                }
                None => cur.create_dir(&name, mode)?,
            };
            real.push(&name);
        }
        Ok(cur)
    }
}
