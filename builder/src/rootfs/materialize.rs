//! Making a build root real: unpack what the file store lacks, check every
//! file it will link, assemble the tree, finish it, rename it into place.
//!
//! ```text
//! rootfs/<hash>.use   shared ─────────────────────────────────────────────▶ (held by the caller)
//! rootfs/<hash>.lock  exclusive ─▶ exists? ─no─▶ files.lock shared ─▶ download + unpack missing
//!                                                 ─▶ hash-check blobs (repair) ─▶ tmp/rootfs-<hash>-*/tree
//!                                                 ─▶ rename to rootfs/<hash>
//! ```
//!
//! A root whose packages are all unpacked needs no .deb and no decompression:
//! only a hash of each blob (in parallel) and a link per file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hermod_hostfs::Dir;
use rayon::prelude::*;

use super::cas::{BlobState, Cas, Manifest};
use super::locks::{self, create_lock_path, use_lock_path, FileLock, Mode};
use super::tree::Assembly;
use super::{io_err, Lock, RootfsError};
use crate::apt;
use crate::store::Store;

/// A materialized, complete build root, held in use (gc leaves it alone)
/// until this value and its clones are dropped.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub tree: PathBuf,
    pub lock: Lock,
    pub hash: String,
    /// Whether this call had to create it (false: reused).
    pub created: bool,
    /// How long making it took (zero when reused).
    pub seconds: f64,
    /// Corrupt or missing store files found and repaired while making it.
    pub repaired: usize,
    _in_use: std::sync::Arc<FileLock>,
}

impl Rootfs {
    pub fn headers_dir_inside(&self) -> String {
        format!("/usr/src/linux-headers-{}", self.lock.kernel)
    }

    /// `$kernel_source_dir` as DKMS sets it: `/lib/modules/<kernel>/build`
    /// (DKMS's `install_tree` is `/lib/modules` on every release; a merged-/usr
    /// root reaches it through `lib -> usr/lib`), the link the headers package
    /// ships. dkms.conf files derive paths from it (zfs takes its sibling
    /// `source`, the `-common` headers). A headers package without that link:
    /// the headers directory itself.
    pub fn kernel_source_dir_inside(&self) -> String {
        let dkms = format!("/lib/modules/{}/build", self.lock.kernel);
        let linked = Dir::open_nofollow(&self.tree).and_then(|root| root.open_dir_in_root(&dkms[1..])).is_ok();
        if linked {
            dkms
        } else {
            self.headers_dir_inside()
        }
    }

    /// The kernel's `.config`, read from the headers.
    pub fn kernel_config(&self) -> io::Result<String> {
        // By descriptor: the headers directory as the chroot sees it, the
        // file itself never through a symlink.
        let root = Dir::open_nofollow(&self.tree)?;
        let headers = root.open_dir_in_root(self.headers_dir_inside().trim_start_matches('/'))?;
        String::from_utf8(headers.read_limited(".config", MAX_CONFIG)?).map_err(io::Error::other)
    }
}

/// Staging directories of a root are named after its full hash, so the
/// creator (holding the create lock) knows any others are a crashed run's.
/// The last step of making a root (materialized or imported): its `lock`
/// file, which marks it complete, then one rename into `rootfs/<hash>`.
pub(super) fn publish(
    store: &Store,
    staging: tempfile::TempDir,
    lock: &Lock,
    hash: &str,
    final_dir: &Path,
) -> Result<(), RootfsError> {
    use std::os::unix::fs::PermissionsExt;
    let lock_text_path = staging.path().join("lock");
    // Synced before the rename: after a power cut, a root either is not
    // there or has its whole `lock` file (its mark of completeness).
    let mut lock_file = fs::File::create(&lock_text_path).map_err(io_err(&lock_text_path))?;
    io::Write::write_all(&mut lock_file, lock.text().as_bytes())
        .and_then(|()| lock_file.sync_all())
        .map_err(io_err(&lock_text_path))?;
    // The sandbox of a root caller reads the root as an unprivileged user.
    fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755)).map_err(io_err(staging.path()))?;
    let staged = staging.keep();
    if final_dir.exists() {
        // A leftover without its `lock` file: an interrupted rename can't produce
        // one, but a hand-edited store can. Move it aside (gc removes it).
        let aside = store.tmp().join(format!("stale-{hash}-{}", std::process::id()));
        fs::rename(final_dir, &aside).map_err(io_err(final_dir))?;
    }
    fs::rename(&staged, final_dir).map_err(io_err(final_dir))?;
    let parent = final_dir.parent().expect("rootfs/<hash> has a parent");
    fs::File::open(parent).and_then(|dir| dir.sync_all()).map_err(io_err(parent))
}

pub(super) fn staging_prefix(hash: &str) -> String {
    format!("rootfs-{hash}-")
}

/// Return the build root for `lock`, creating it if the store does not have it.
/// Concurrent callers for the same lock wait on a per-lock file lock; a crashed
/// creator leaves only a staging directory under `tmp/`, never a partial root.
pub fn materialize(store: &Store, lock: &Lock, quiet: bool) -> Result<Rootfs, RootfsError> {
    let hash = lock.hash();
    let final_dir = store.rootfs_dir().join(&hash);
    let use_path = use_lock_path(store, &hash);
    let in_use = locks::lock(&use_path, Mode::Shared, true).map_err(io_err(&use_path))?.expect("waiting lock");
    // The last use; `gc --older-than` reads it.
    filetime::set_file_mtime(&use_path, filetime::FileTime::now()).map_err(io_err(&use_path))?;
    let rootfs = |created, seconds, repaired, in_use| Rootfs {
        tree: final_dir.join("tree"),
        lock: lock.clone(),
        hash: hash.clone(),
        created,
        seconds,
        repaired,
        _in_use: std::sync::Arc::new(in_use),
    };
    if final_dir.join("lock").is_file() {
        return Ok(rootfs(false, 0.0, 0, in_use));
    }
    let create_path = create_lock_path(store, &hash);
    let _creating = locks::lock(&create_path, Mode::Exclusive, true).map_err(io_err(&create_path))?;
    if final_dir.join("lock").is_file() {
        return Ok(rootfs(false, 0.0, 0, in_use));
    }
    let started = Instant::now();
    remove_stale_staging(store, &hash)?;
    let cas = Cas::open(store)?;
    let _adding = cas.lock(Mode::Shared)?;
    let label = format!("build root {}", lock.kernel);
    let manifests = unpacked(store, &cas, &lock.packages, &lock.mirrors, quiet, &label)?;
    tracing::debug!("manifests ready after {:.3} s", started.elapsed().as_secs_f64());

    let staging = store.staging_dir(&staging_prefix(&hash))?;
    let tree = staging.path().join("tree");
    // The hash check (CPU, page cache) runs beside the assembly (directory
    // operations); the tree is only renamed into place once every blob it
    // links has passed. After a repair, the tree is assembled again.
    let (bad, assembled) = std::thread::scope(|scope| {
        let checker = scope.spawn(|| failed_blobs(&cas, &manifests));
        let assembled = assemble(&cas, &manifests, &tree, lock);
        (checker.join().expect("the hash check does not panic"), assembled)
    });
    tracing::debug!("tree assembled and blobs checked after {:.3} s", started.elapsed().as_secs_f64());
    let repaired = bad.len();
    if !bad.is_empty() {
        let names: Vec<&str> = bad.iter().map(String::as_str).collect();
        repair(store, &cas, manifests.iter(), &names, &lock.mirrors, quiet)?;
        super::tree::remove_tree(&tree)?;
        assemble(&cas, &manifests, &tree, lock)?;
    } else {
        assembled?;
    }
    publish(store, staging, lock, &hash, &final_dir)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(rootfs(true, seconds, repaired, in_use))
}

/// Staging trees of this root left by a killed creator (we hold the create
/// lock, so no live process is writing one).
pub(super) fn remove_stale_staging(store: &Store, hash: &str) -> Result<(), RootfsError> {
    let tmp = store.tmp();
    let prefix = staging_prefix(hash);
    for entry in fs::read_dir(&tmp).map_err(io_err(&tmp))? {
        let entry = entry.map_err(io_err(&tmp))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            super::tree::remove_tree(&entry.path())?;
        }
    }
    Ok(())
}

/// The manifests of `packages`, in their order: read from the store, or made
/// by downloading (or reusing) the .debs and unpacking them, in parallel.
pub(super) fn unpacked(
    store: &Store,
    cas: &Cas,
    packages: &[apt::Package],
    mirrors: &[String],
    quiet: bool,
    label: &str,
) -> Result<Vec<Manifest>, RootfsError> {
    let mut manifests: Vec<Option<Manifest>> = packages.iter().map(|p| cas.manifest(p)).collect();
    let missing: Vec<apt::Package> =
        packages.iter().zip(&manifests).filter(|(_, m)| m.is_none()).map(|(p, _)| p.clone()).collect();
    if !missing.is_empty() {
        let debs = apt::download_from(&missing, mirrors, store.packages(), quiet, label)?;
        let made: Vec<Manifest> =
            missing.par_iter().zip(&debs).map(|(pkg, deb)| cas.ensure_unpacked(deb, pkg)).collect::<Result<_, _>>()?;
        let mut made = made.into_iter();
        for slot in manifests.iter_mut().filter(|m| m.is_none()) {
            *slot = made.next();
        }
    }
    Ok(manifests.into_iter().map(|m| m.expect("every package unpacked")).collect())
}

/// The tree of a root: the packages' entries, then what the system would add.
fn assemble(cas: &Cas, manifests: &[Manifest], tree: &Path, lock: &Lock) -> Result<(), RootfsError> {
    let mut assembly = Assembly::new(cas, tree)?;
    for manifest in manifests {
        assembly.add(manifest)?;
    }
    finish_tree(&mut assembly, lock)?;
    assembly.finish()
}

/// Hash-check (in parallel) every blob the manifests name; the names of
/// those that are missing or corrupt.
fn failed_blobs(cas: &Cas, manifests: &[Manifest]) -> Vec<String> {
    let mut blobs: Vec<&str> = manifests.iter().flat_map(Manifest::blobs).collect();
    blobs.sort_unstable();
    blobs.dedup();
    blobs.par_iter().filter(|b| cas.check(b) != BlobState::Good).map(|b| b.to_string()).collect()
}

/// Quarantine `bad` blobs and restore them from the packages that have them.
pub(super) fn repair<'m>(
    store: &Store,
    cas: &Cas,
    manifests: impl Iterator<Item = &'m Manifest>,
    bad: &[&str],
    mirrors: &[String],
    quiet: bool,
) -> Result<(), RootfsError> {
    let wanted: std::collections::HashSet<&str> = bad.iter().copied().collect();
    let packages: Vec<apt::Package> =
        manifests.filter(|m| m.blobs().any(|b| wanted.contains(b))).map(|m| m.package.clone()).collect();
    if !quiet {
        let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        crate::say::note(format_args!(
            "{} file(s) in the store failed their hash check; restoring from {}",
            bad.len(),
            names.join(", ")
        ));
    }
    for blob in bad {
        cas.quarantine(blob)?;
    }
    let debs = apt::download_from(&packages, mirrors, store.packages(), quiet, "packages to restore")?;
    for (pkg, deb) in packages.iter().zip(&debs) {
        cas.unpack(deb, pkg)?;
    }
    let still: Vec<String> = bad.iter().filter(|b| cas.check(b) != BlobState::Good).map(|b| b.to_string()).collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(RootfsError::Unrepairable { blobs: still })
    }
}

/// What maintainer scripts and the system would have provided, made by
/// descriptor beneath the root (see [`make_link`] for the links).
fn finish_tree(assembly: &mut Assembly<'_>, lock: &Lock) -> Result<(), RootfsError> {
    let root = assembly.root().try_clone().map_err(host_err)?;
    for (link, target) in &lock.links {
        make_link(&root, link, target)?;
    }
    // Mount points the sandbox uses (/build is made by the sandbox in its own
    // tmpfs root), and what DKMS provides to dkms.conf.
    for dir in ["tmp", "proc", "dev", "boot", "etc", "var/lib/dkms"] {
        assembly.dir(Path::new(dir)).map_err(host_err)?;
    }
    // Every regular file of a root is a link into the file store, these too.
    if let Some(bytes) = headers_config(&root, &lock.kernel)? {
        assembly.add_file(&format!("boot/config-{}", lock.kernel), &bytes, 0o444)?;
    }
    // Tools that ask "who am I" (whoami, id -un, some configure scripts) need names.
    assembly.add_file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nbuild:x:1000:1000:hermod build:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        0o444,
    )?;
    assembly.add_file("etc/group", b"root:x:0:\nbuild:x:1000:\nnogroup:x:65534:\n", 0o444)?;
    Ok(())
}

/// The largest kernel `.config` read (they are ~300 KiB).
const MAX_CONFIG: u64 = 16 << 20;

/// The headers' `.config`: its directory resolved as the chroot sees it, the
/// file itself a regular file (a symlink there is not followed); `None` if
/// there is none.
fn headers_config(root: &Dir, kernel: &str) -> Result<Option<Vec<u8>>, RootfsError> {
    // The kernel release is a checked name (lock file, `Lock::resolve`).
    apt::syntax::kernel_release(kernel).map_err(|e| RootfsError::BadKernelName(e.value))?;
    let headers = match root.open_dir_in_root(format!("usr/src/linux-headers-{kernel}")) {
        Ok(dir) => dir,
        Err(e) if e.is_not_found() || matches!(e, hermod_hostfs::Error::NotADirectory { .. }) => return Ok(None),
        Err(e) => return Err(host_err(e)),
    };
    match headers.read_limited(".config", MAX_CONFIG) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(hermod_hostfs::Error::Symlink { .. } | hermod_hostfs::Error::NotRegular { .. }) => Ok(None),
        Err(e) => Err(host_err(e)),
    }
}

/// A lock's `link PATH TARGET`, as update-alternatives would make it.
///
/// PATH's directory is opened beneath the root with no symlink followed, so a
/// link is never made through a package's symlink (`/lib/x` when `lib ->
/// usr/lib`) nor through another link: that is refused. The symlink itself
/// is made by `symlinkat` in that directory; its target is data, read only
/// by the kernel inside the chroot. As before, a link is skipped when its
/// target is absent (a gcc the root lacks) or its PATH already exists.
fn make_link(root: &Dir, link: &str, target: &str) -> Result<(), RootfsError> {
    let refuse = |reason: String| RootfsError::Link { link: apt::syntax::quote(link), reason };
    // Checked when the lock was read; checked again where it is used.
    super::lockfile::check_link(link, target).map_err(refuse)?;
    let rel = Path::new(link.trim_start_matches('/'));
    let (dir, name) = (rel.parent().unwrap_or(Path::new("")), rel.file_name().expect("checked: plain names"));
    // Where the target is, read from the link's directory (inside the root:
    // checked), and whether the chroot would find something there.
    let mut to = if target.starts_with('/') { PathBuf::new() } else { dir.to_owned() };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                to.pop();
            }
            c => to.push(c),
        }
    }
    let (to_dir, to_name) = (to.parent().unwrap_or(Path::new("")), to.file_name().expect("checked: not the root"));
    let present = match root.open_dir_in_root(to_dir) {
        Ok(d) => d.meta(to_name).map_err(host_err)?.is_some(),
        Err(e) if e.is_not_found() || matches!(e, hermod_hostfs::Error::NotADirectory { .. }) => false,
        Err(e) => return Err(host_err(e)),
    };
    if !present {
        return Ok(());
    }
    let parent = match root.open_dir(dir) {
        Ok(parent) => parent,
        Err(hermod_hostfs::Error::Symlink { .. }) => {
            return Err(refuse(format!(
                "{} is or passes through a symbolic link in the root; a link is never made through one",
                dir.display()
            )))
        }
        Err(e) => return Err(host_err(e)),
    };
    if parent.meta(name).map_err(host_err)?.is_some() {
        return Ok(());
    }
    parent.symlink(target, name).map_err(host_err)
}

fn host_err(e: hermod_hostfs::Error) -> RootfsError {
    RootfsError::Io { path: e.path().to_owned(), source: e.into() }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn root() -> (tempfile::TempDir, Dir) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("usr/bin")).unwrap();
        std::fs::create_dir_all(t.path().join("usr/lib")).unwrap();
        std::fs::write(t.path().join("usr/bin/mawk"), "").unwrap();
        symlink("usr/lib", t.path().join("lib")).unwrap();
        let d = Dir::open(t.path()).unwrap();
        (t, d)
    }

    #[test]
    fn links_are_made_beneath_the_root_and_never_through_a_symlink() {
        let (t, root) = root();
        make_link(&root, "/usr/bin/awk", "mawk").unwrap();
        assert_eq!(fs::read_link(t.path().join("usr/bin/awk")).unwrap(), Path::new("mawk"));
        // Absent target: skipped, as before. Existing path: left alone.
        make_link(&root, "/usr/bin/gcc", "gcc-12").unwrap();
        assert!(fs::symlink_metadata(t.path().join("usr/bin/gcc")).is_err());
        make_link(&root, "/usr/bin/awk", "/usr/bin/mawk").unwrap();
        assert_eq!(fs::read_link(t.path().join("usr/bin/awk")).unwrap(), Path::new("mawk"));
        // Through a package's symlink (lib -> usr/lib): refused.
        let e = make_link(&root, "/lib/awk", "/usr/bin/mawk").unwrap_err();
        assert!(matches!(e, RootfsError::Link { .. }) && e.to_string().contains("symbolic link"), "{e}");
        assert!(fs::symlink_metadata(t.path().join("usr/lib/awk")).is_err());
        // The issue's lock: `/a -> <outside>` (absolute), then a link below it.
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("usr/lib/x")).unwrap();
        symlink(outside.path(), t.path().join("a")).unwrap();
        let e = make_link(&root, "/a/planted", "/usr/bin/mawk").unwrap_err();
        assert!(matches!(e, RootfsError::Link { .. }), "{e}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0, "nothing made outside the root");
        // A target is data: a link to `/a` is written, never followed here.
        make_link(&root, "/usr/bin/out", "/a").unwrap();
        assert_eq!(fs::read_link(t.path().join("usr/bin/out")).unwrap(), Path::new("/a"));
        // Unchecked records are checked again here.
        assert!(make_link(&root, "usr/bin/x", "mawk").is_err());
        assert!(make_link(&root, "/usr/bin/x", "../../../etc").is_err());
    }

    #[test]
    fn the_headers_config_is_read_as_a_regular_file_only() {
        let (t, root) = root();
        let k = "6.1.0-56-amd64";
        assert_eq!(headers_config(&root, k).unwrap(), None);
        let headers = t.path().join(format!("usr/src/linux-headers-{k}"));
        std::fs::create_dir_all(&headers).unwrap();
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), "host secret").unwrap();
        symlink(secret.path(), headers.join(".config")).unwrap();
        assert_eq!(headers_config(&root, k).unwrap(), None, "a symlinked .config is not followed");
        std::fs::remove_file(headers.join(".config")).unwrap();
        std::fs::write(headers.join(".config"), "CONFIG_X=y\n").unwrap();
        assert_eq!(headers_config(&root, k).unwrap().unwrap(), b"CONFIG_X=y\n");
        assert!(headers_config(&root, "../../etc").is_err());
    }
}
