//! What the store holds: its build roots, their sizes, what they share.
//!
//! Sizes come from walking the trees: a file's bytes are *shared* when its
//! inode (a blob of the file store) is also linked from another root, and the
//! store's *unique* bytes count each inode once, which is what the roots take
//! on disk together (`du -s rootfs/` agrees).

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rayon::prelude::*;
use serde::Serialize;

use super::locks::{self, use_lock_path};
use super::{io_err, RootfsError};
use crate::store::Store;

/// A root directory found in the store.
#[derive(Debug, Clone)]
pub struct RootEntry {
    pub hash: String,
    pub dir: PathBuf,
    /// From its `lock` file; `None` for an incomplete directory.
    pub kernel: Option<String>,
    /// The recipe (release and architecture) it was made by, from its `lock` file.
    pub recipe: Option<String>,
    /// (name, version) of its packages.
    pub packages: Vec<(String, String)>,
    /// When a build last used it (or when it was made).
    pub last_use: SystemTime,
}

impl RootEntry {
    pub fn tree(&self) -> PathBuf {
        self.dir.join("tree")
    }

    /// The C compiler package: `gcc-NN` and its version.
    pub fn compiler(&self) -> Option<String> {
        compiler(self.packages.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }
}

/// `gcc-NN VERSION` of the first `gcc-<digits>` package; else of the first
/// compiler for one target, `gcc-NN-<triplet>` (what a backports kernel's
/// `gcc-NN-for-host` brings), shown as `gcc-NN`.
pub fn compiler<'a>(packages: impl Iterator<Item = (&'a str, &'a str)>) -> Option<String> {
    let mut for_target = None;
    for (name, version) in packages {
        let Some(rest) = name.strip_prefix("gcc-") else { continue };
        let (number, triplet) = rest.split_once('-').unwrap_or((rest, ""));
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        match triplet {
            "" => return Some(format!("{name} {version}")),
            "base" | "for-host" | "for-build" => {}
            _ if triplet.ends_with("-linux-gnu") => {
                for_target.get_or_insert_with(|| format!("gcc-{number} {version}"));
            }
            _ => {}
        }
    }
    for_target
}

/// Every `rootfs/<hash>` directory, sorted by kernel then hash.
pub fn read_roots(store: &Store) -> Result<Vec<RootEntry>, RootfsError> {
    let dir = store.rootfs_dir();
    let mut roots = Vec::new();
    for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
        let entry = entry.map_err(io_err(&dir))?;
        let hash = entry.file_name().to_string_lossy().into_owned();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) || !entry.path().is_dir() {
            continue;
        }
        let lock_file = entry.path().join("lock");
        let (kernel, recipe, packages) = match fs::read_to_string(&lock_file) {
            Ok(text) => parse_lock_text(&text),
            Err(_) => (None, None, Vec::new()),
        };
        let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
        let last_use = mtime(&use_lock_path(store, &hash))
            .or_else(|| mtime(&lock_file))
            .or_else(|| mtime(&entry.path()))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        roots.push(RootEntry { hash, dir: entry.path(), kernel, recipe, packages, last_use });
    }
    roots.sort_by(|a, b| a.kernel.cmp(&b.kernel).then_with(|| a.hash.cmp(&b.hash)));
    Ok(roots)
}

/// Kernel, recipe and packages from a root's `lock` file (`Lock::text`);
/// the kernel line is what makes a lock file complete.
#[allow(clippy::type_complexity)]
fn parse_lock_text(text: &str) -> (Option<String>, Option<String>, Vec<(String, String)>) {
    let kernel = text.lines().find_map(|l| l.strip_prefix("kernel ")).map(str::to_owned);
    let recipe = text.lines().find_map(|l| l.strip_prefix("recipe ")).map(str::to_owned);
    let packages = text
        .lines()
        .filter_map(|l| l.strip_prefix("package "))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect();
    (kernel, recipe, packages)
}

/// One line of `hermod rootfs list`.
#[derive(Debug, Clone, Serialize)]
pub struct RootStats {
    pub kernel: String,
    /// The recipe that made it (`trixie-amd64`): its release and architecture.
    pub recipe: String,
    pub lock: String,
    pub compiler: String,
    pub packages: usize,
    /// Regular files (paths) in the tree.
    pub files: u64,
    /// Sum of the file sizes of its paths.
    pub apparent_bytes: u64,
    /// Bytes of those files whose inode another root links too.
    pub shared_bytes: u64,
    /// Seconds since the epoch.
    pub last_use: u64,
    pub in_use: bool,
    pub tree: PathBuf,
}

/// All roots, and what they take together.
#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub roots: Vec<RootStats>,
    /// Sum of the roots' apparent sizes: what separate trees would take.
    pub apparent_bytes: u64,
    /// File bytes counting each inode once: what the roots take as hard links.
    pub unique_bytes: u64,
    /// Disk blocks of the roots' files, directories and symlinks, each inode once (`du -s`).
    pub disk_bytes: u64,
    /// Disk blocks of everything in the file store (`files/`), linked or not.
    pub store_files_bytes: u64,
}

/// Per tree: file inode → (size, blocks), paths, apparent size, other blocks.
struct Walk {
    inodes: HashMap<(u64, u64), (u64, u64)>,
    files: u64,
    apparent: u64,
    other_blocks: u64,
}

fn walk(tree: &Path) -> Walk {
    let mut w = Walk { inodes: HashMap::new(), files: 0, apparent: 0, other_blocks: 0 };
    for entry in walkdir::WalkDir::new(tree).into_iter().filter_map(Result::ok) {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() {
            w.files += 1;
            w.apparent += meta.size();
            w.inodes.insert((meta.dev(), meta.ino()), (meta.size(), meta.blocks() * 512));
        } else {
            w.other_blocks += meta.blocks() * 512;
        }
    }
    w
}

/// Walk every complete root (in parallel) and add up.
pub fn inventory(store: &Store) -> Result<Inventory, RootfsError> {
    let roots: Vec<RootEntry> = read_roots(store)?.into_iter().filter(|r| r.kernel.is_some()).collect();
    let walks: Vec<Walk> = roots.par_iter().map(|r| walk(&r.tree())).collect();
    let mut links: HashMap<(u64, u64), u32> = HashMap::new();
    for w in &walks {
        for inode in w.inodes.keys() {
            *links.entry(*inode).or_default() += 1;
        }
    }
    let mut unique = HashMap::new();
    let mut stats = Vec::new();
    let mut disk_bytes = 0;
    for (root, w) in roots.iter().zip(&walks) {
        let shared = w.inodes.iter().filter(|(i, _)| links[*i] > 1).map(|(_, (size, _))| size).sum();
        disk_bytes += w.other_blocks;
        unique.extend(w.inodes.iter().map(|(i, s)| (*i, *s)));
        stats.push(RootStats {
            kernel: root.kernel.clone().unwrap_or_default(),
            recipe: root.recipe.clone().unwrap_or_else(|| "-".into()),
            lock: root.hash.clone(),
            compiler: root.compiler().unwrap_or_else(|| "-".into()),
            packages: root.packages.len(),
            files: w.files,
            apparent_bytes: w.apparent,
            shared_bytes: shared,
            last_use: root.last_use.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            in_use: locks::is_held(&use_lock_path(store, &root.hash)),
            tree: root.tree(),
        });
    }
    let unique_bytes = unique.values().map(|(size, _)| size).sum();
    disk_bytes += unique.values().map(|(_, blocks)| blocks).sum::<u64>();
    let mut store_files_bytes = 0;
    let files = store.files_dir();
    if files.is_dir() {
        super::cas::for_each_blob(&files, |_, meta| store_files_bytes += meta.blocks() * 512)?;
    }
    Ok(Inventory {
        apparent_bytes: stats.iter().map(|s| s.apparent_bytes).sum(),
        roots: stats,
        unique_bytes,
        disk_bytes,
        store_files_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_text_gives_kernel_and_compiler() {
        let text = "hermod-rootfs-lock 3\nrecipe r\nkernel 6.1.0-56-amd64\narchitecture amd64\n\
                    package gcc-12-base 12.2.0-14 amd64 aa\npackage gcc-12 12.2.0-14+deb12u1 amd64 bb\n\
                    package make 4.3-4.1 amd64 cc\nlink /usr/bin/awk mawk\n";
        let (kernel, recipe, packages) = parse_lock_text(text);
        assert_eq!(kernel.as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!(recipe.as_deref(), Some("r"));
        assert_eq!(packages.len(), 3);
        let compiler = compiler(packages.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        assert_eq!(compiler.as_deref(), Some("gcc-12 12.2.0-14+deb12u1"));
        assert_eq!(parse_lock_text("garbage").0, None);
        // A backports kernel's root has only a compiler for one target.
        let backports =
            [("gcc-14-base", "14.2"), ("gcc-14-for-host", "14.2"), ("gcc-14-x86-64-linux-gnu", "14.2.0-19")];
        assert_eq!(super::compiler(backports.into_iter()).as_deref(), Some("gcc-14 14.2.0-19"));
        assert_eq!(super::compiler([("gcc-14-base", "1"), ("make", "4")].into_iter()), None);
    }
}
