//! The store: hermod's one directory of state.
//!
//! ```text
//! <store>/packages/        verified .debs downloaded from the archive (by name_version_arch)
//! <store>/indices/         verified archive indices, by SHA256
//! <store>/locks/           resolutions remembered per archive snapshot (rootfs::Memo),
//!                          and `release-of-<blake3 of a kernel>`: the release that offered it
//! <store>/files/           the build roots' file store: one read-only blob per file content
//!                          and mode, <2 hex>/<blake3>-<mode> (rootfs::cas)
//! <store>/unpacked/        one manifest per unpacked .deb: its entries, files by blob name
//! <store>/quarantine/      blobs found corrupt (moved out of files/, removed by gc)
//! <store>/rootfs/<lock>/   build roots, one per exact package set: `lock` (written last)
//!                          and `tree/`, whose regular files are all hard links into files/
//! <store>/rootfs/<lock>.use   held shared while a root is used; its mtime is the last use
//! <store>/rootfs/<lock>.lock  held while a root is created
//! <store>/files.lock       held shared while blobs are added, exclusive while gc deletes
//! <store>/cas/<blake3>     content-addressed outputs (.deb files)
//! <store>/ac/<key>         action entries: cache key -> outputs
//! <store>/cache.lock       held shared by cache writers, exclusive by cache gc
//! <store>/keylocks/<key>   held while one key is built (one build per key)
//! <store>/keys/            the signing certificates' public records (keyinfo)
//! <store>/boot-images/     kernels and initramfs material unpacked for load tests
//! <store>/logs/            build logs
//! <store>/failed/<key>     the last build of <key> failed: its status, message, log (failures.rs)
//! <store>/skipped/<key>    BUILD_EXCLUSIVE_* excludes <key>'s kernel: the reason (failures.rs)
//! <store>/tmp/             staging; everything in the store proper appears by rename
//! ```
//!
//! Invariant: nothing is ever visible under a final name before it is complete.
//! Writers stage under `tmp/` (same filesystem) and rename. A staging
//! directory's name carries its creator's owner tag (`hermod_sandbox::owner`):
//! opening the store removes those of creators that died (SIGKILL, or a
//! signal that ended the process before it could clean up). An interrupted
//! hermod (SIGINT, SIGTERM) removes its own first (`interrupt.rs`).

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hermod_sandbox::owner::Owner;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the store at {path}: {source} (choose another with --store or HERMOD_STORE)")]
    Io { path: PathBuf, source: io::Error },
    #[error("no store directory: set --store or HERMOD_STORE (HOME is not set either)")]
    NoDefault,
}

impl crate::exit::HasExitCode for StoreError {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            StoreError::Io { .. } | StoreError::NoDefault => crate::exit::Code::Io,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    packages: PathBuf,
}

impl Store {
    /// Open (creating if needed) the store at `root`. `package_cache` overrides
    /// where downloaded .debs are kept (they are verified by SHA256 on every use,
    /// so one download directory can safely serve several stores).
    pub fn open(root: &Path, package_cache: Option<&Path>) -> Result<Store, StoreError> {
        let root = if root.is_absolute() {
            root.to_owned()
        } else {
            std::env::current_dir().map_err(io_err(root))?.join(root)
        };
        let packages = package_cache.map_or_else(|| root.join("packages"), Path::to_owned);
        fs::create_dir_all(&root).map_err(io_err(&root))?;
        if nix::unistd::geteuid().is_root() {
            open_to_sandbox_user(&root)?;
        }
        let store = Store { root, packages };
        for dir in [
            store.root.clone(),
            store.packages.clone(),
            store.indices(),
            store.rootfs_dir(),
            store.cas_dir(),
            store.ac_dir(),
            store.logs(),
            store.tmp(),
        ] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        // A log holds whatever a build printed: its owner's alone.
        fs::set_permissions(store.logs(), fs::Permissions::from_mode(0o700)).map_err(io_err(&store.logs()))?;
        remove_dead_staging(&store.tmp());
        // An interrupted run removes its own staging (interrupt.rs).
        crate::interrupt::watch_staging(&store.tmp());
        Ok(store)
    }

    /// The default location: /var/cache/hermod for root, else
    /// $XDG_CACHE_HOME/hermod, else $HOME/.cache/hermod (`env` reads the
    /// caller's environment: settings are read once, in `cli`).
    ///
    /// (For a root caller, see [`open_to_sandbox_user`].)
    pub fn default_root(env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Result<PathBuf, StoreError> {
        if nix::unistd::geteuid().is_root() {
            return Ok(PathBuf::from("/var/cache/hermod"));
        }
        if let Some(xdg) = env("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(xdg).join("hermod"));
        }
        let home = env("HOME").filter(|v| !v.is_empty()).ok_or(StoreError::NoDefault)?;
        Ok(PathBuf::from(home).join(".cache/hermod"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn packages(&self) -> &Path {
        &self.packages
    }
    pub fn indices(&self) -> PathBuf {
        self.root.join("indices")
    }
    pub fn rootfs_dir(&self) -> PathBuf {
        self.root.join("rootfs")
    }
    pub fn files_dir(&self) -> PathBuf {
        self.root.join("files")
    }
    pub fn unpacked_dir(&self) -> PathBuf {
        self.root.join("unpacked")
    }
    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }
    pub fn cas_dir(&self) -> PathBuf {
        self.root.join("cas")
    }
    pub fn ac_dir(&self) -> PathBuf {
        self.root.join("ac")
    }
    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }
    pub fn files_lock(&self) -> PathBuf {
        self.root.join("files.lock")
    }
    pub fn cache_lock(&self) -> PathBuf {
        self.root.join("cache.lock")
    }
    pub fn keylocks_dir(&self) -> PathBuf {
        self.root.join("keylocks")
    }
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }
    pub fn boot_images_dir(&self) -> PathBuf {
        self.root.join("boot-images")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh staging directory under `tmp/`, removed when dropped; named
    /// `<prefix><owner tag>-<random>` so that the next run can remove it if
    /// this process is killed ([`remove_dead_staging`]).
    pub fn staging_dir(&self, prefix: &str) -> Result<tempfile::TempDir, StoreError> {
        let tmp = self.tmp();
        let prefix = format!("{prefix}{}-", Owner::me().tag());
        tempfile::Builder::new().prefix(&prefix).tempdir_in(&tmp).map_err(io_err(&tmp))
    }
}

/// Entries of `tmp/` one opening of the store reads at most.
const STAGING_SWEEP: u64 = 100_000;

/// Move a file found corrupt (`from`) into the store's `quarantine/` as
/// `<name>.<seconds>-<pid>`, kept for inspection until a gc removes it (the
/// file store's gc its blobs, `cache gc` the cache's, named `cas-…`).
/// `Ok(None)` when `from` is already gone (another process moved it first).
pub fn quarantine(dir: &Path, from: &Path, name: &str) -> io::Result<Option<PathBuf>> {
    fs::create_dir_all(dir)?;
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let to = dir.join(format!("{name}.{secs}-{}", std::process::id()));
    match fs::rename(from, &to) {
        Ok(()) => {
            tracing::warn!(file = %from.display(), to = %to.display(), "corrupt file moved out of the store");
            Ok(Some(to))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Remove the staging directories under `tmp` whose creator is certainly
/// dead (killed, or interrupted by a signal before it could remove them):
/// see `hermod_sandbox::owner`. A live creator's, an untagged one's, one of
/// another pid namespace are left alone (`rootfs gc` removes old litter by
/// age). Best effort and bounded: a failure here never stops a command,
/// at most [`STAGING_SWEEP`] names are read (the rest wait for a later run),
/// and a tree of any depth is removed with a bounded number of descriptors.
/// Returns how many were removed.
pub fn remove_dead_staging(tmp: &Path) -> usize {
    let Ok(dir) = hermod_hostfs::Dir::open_nofollow(tmp) else { return 0 };
    let Ok(entries) = dir.entries_up_to(STAGING_SWEEP) else { return 0 };
    let mut removed = 0;
    for (name, _) in entries {
        let dead = name.to_str().and_then(Owner::in_name).is_some_and(|owner| owner.is_dead());
        // Never through a link: remove_all removes a symlink itself.
        if dead && dir.remove_all(&name).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// A root caller's builds run as host `nobody` (see hermod-sandbox's
/// `Spec::host_ids`), which must reach the build roots and work directories in
/// the store: the store root is made searchable (0755; it may have been made by
/// `mktemp -d`). Directories above it are not hermod's to change; the build
/// stage checks them and says which one blocks.
fn open_to_sandbox_user(root: &Path) -> Result<(), StoreError> {
    let meta = fs::metadata(root).map_err(io_err(root))?;
    if meta.permissions().mode() & 0o005 != 0o005 {
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).map_err(io_err(root))?;
    }
    Ok(())
}

/// Write `bytes` to `dest` atomically: a temp file beside it, fsync, rename,
/// fsync of the directory. Readers see the old file or the new one, never a part.
pub fn write_atomically(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    write_replacing(dest, bytes, true)
}

/// `write_atomically`, with the fsyncs only when `durable`: a copy whose
/// durable original is elsewhere (an export to `--out`) need not wait for
/// the disk, and is still never seen half-written.
pub fn write_replacing(dest: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    replace_with(dest, durable, |tmp| tmp.write_all(bytes))
}

/// [`write_atomically`] of what `from` holds, streamed (never whole in memory).
pub fn copy_atomically(dest: &Path, from: &mut impl io::Read) -> io::Result<()> {
    replace_with(dest, true, |tmp| io::copy(from, tmp).map(drop))
}

/// A temporary file beside `dest`, filled by `write`, renamed over `dest`.
fn replace_with(dest: &Path, durable: bool, write: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    // tempfile creates 0600; outputs and cache entries are ordinary readable files.
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    write(tmp.as_file_mut())?;
    if durable {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(dest).map_err(|e| e.error)?;
    if durable {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_layout_and_atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), None).unwrap();
        for sub in ["packages", "indices", "rootfs", "cas", "ac", "logs", "tmp"] {
            assert!(store.root().join(sub).is_dir(), "{sub}");
        }
        let file = store.ac_dir().join("k");
        write_atomically(&file, b"one").unwrap();
        write_atomically(&file, b"two").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o644);
        let leftovers: Vec<_> = fs::read_dir(store.ac_dir()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
    }

    #[test]
    fn a_root_callers_store_is_opened_to_the_sandbox_user() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let made_by_mktemp = dir.path().join("store");
        fs::create_dir(&made_by_mktemp).unwrap();
        fs::set_permissions(&made_by_mktemp, fs::Permissions::from_mode(0o700)).unwrap();
        Store::open(&made_by_mktemp, None).unwrap();
        assert_eq!(fs::metadata(&made_by_mktemp).unwrap().permissions().mode() & 0o777, 0o755);
    }

    #[test]
    fn staging_dirs_of_dead_creators_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), None).unwrap();
        let mine = store.staging_dir("build-").unwrap();
        let me = Owner::me();
        let dead = store.tmp().join(format!("build-{}-Xy12ab", Owner { start: me.start + 1, ..me }.tag()));
        fs::create_dir_all(dead.join("sign/out")).unwrap();
        fs::write(dead.join("sign/out/module.ko"), b"x").unwrap();
        let untagged = store.tmp().join("build-Ab12cd");
        fs::create_dir(&untagged).unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), b"x").unwrap();
        let link = store.tmp().join(format!("names-{}-Zz99zz", Owner { start: me.start + 1, ..me }.tag()));
        std::os::unix::fs::symlink(&outside, &link).unwrap();

        // Deeper than any walk goes (a dead build's copy of a 255-deep source
        // is 258 levels): removed all the same.
        let mut deep = dead.join("out");
        for _ in 0..300 {
            deep.push("d");
        }
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("f"), b"x").unwrap();

        assert_eq!(remove_dead_staging(&store.tmp()), 2);
        assert!(!dead.exists() && !link.is_symlink(), "the dead creator's directory and link");
        assert!(outside.join("keep").exists(), "a link is removed, never followed");
        assert!(mine.path().is_dir(), "a live creator's (this process) stays");
        assert!(untagged.is_dir(), "untagged litter is left to gc's age rule");
        assert!(mine.path().file_name().unwrap().to_str().unwrap().contains(&me.tag()));
    }

    #[test]
    fn logs_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), None).unwrap();
        assert_eq!(fs::metadata(store.logs()).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn separate_package_cache_is_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s"), Some(&dir.path().join("debs"))).unwrap();
        assert_eq!(store.packages(), dir.path().join("debs"));
        assert!(store.packages().is_dir());
    }
}
