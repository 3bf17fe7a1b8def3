//! Making a build root real: download, verify, unpack, finish, rename into place.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::{io_err, Lock, RootfsError};
use crate::apt;
use crate::store::Store;

/// A materialized, complete build root.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub tree: PathBuf,
    pub lock: Lock,
    pub hash: String,
    /// Whether this call had to create it (false: reused).
    pub created: bool,
}

impl Rootfs {
    pub fn headers_dir_inside(&self) -> String {
        format!("/usr/src/linux-headers-{}", self.lock.kernel)
    }

    /// The kernel's `.config`, read from the headers.
    pub fn kernel_config(&self) -> io::Result<String> {
        fs::read_to_string(self.tree.join(self.headers_dir_inside().trim_start_matches('/')).join(".config"))
    }
}

/// Return the build root for `lock`, creating it if the store does not have it.
/// Concurrent callers for the same lock wait on a per-lock file lock; a crashed
/// creator leaves only a staging directory under `tmp/`, never a partial root.
pub fn materialize(store: &Store, lock: &Lock, quiet: bool) -> Result<Rootfs, RootfsError> {
    let hash = lock.hash();
    let dir = store.rootfs_dir();
    let final_dir = dir.join(&hash);
    let lock_path = dir.join(format!("{hash}.lock"));
    let lock_file =
        fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io_err(&lock_path))?;
    let _guard = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| RootfsError::Io { path: lock_path.clone(), source: errno.into() })?;

    let rootfs = |created| Rootfs { tree: final_dir.join("tree"), lock: lock.clone(), hash: hash.clone(), created };
    if final_dir.join("lock").is_file() {
        return Ok(rootfs(false));
    }

    let debs = apt::download_from(&lock.packages, &lock.mirrors, store.packages(), quiet)?;
    let staging = store.staging_dir(&format!("rootfs-{}-", &hash[..16]))?;
    let tree = staging.path().join("tree");
    fs::create_dir_all(&tree).map_err(io_err(&tree))?;
    for deb in &debs {
        apt::unpack_data(deb, &tree)?;
    }
    finish_tree(&tree, lock)?;
    let lock_text_path = staging.path().join("lock");
    fs::write(&lock_text_path, lock.text()).map_err(io_err(&lock_text_path))?;

    // The sandbox of a root caller reads the root as an unprivileged user.
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755)).map_err(io_err(staging.path()))?;
    }
    let staged = staging.keep();
    if final_dir.exists() {
        // A leftover without its `lock` file: an interrupted rename can't produce
        // one, but a hand-edited store can. Replace it.
        fs::remove_dir_all(&final_dir).map_err(io_err(&final_dir))?;
    }
    fs::rename(&staged, &final_dir).map_err(io_err(&final_dir))?;
    Ok(rootfs(true))
}

/// What maintainer scripts and the system would have provided.
fn finish_tree(tree: &Path, lock: &Lock) -> Result<(), RootfsError> {
    for (link, target) in &lock.links {
        let path = tree.join(link.trim_start_matches('/'));
        let parent = path.parent().expect("absolute link path has a parent");
        let resolved =
            if target.starts_with('/') { tree.join(target.trim_start_matches('/')) } else { parent.join(target) };
        if resolved.exists() && fs::symlink_metadata(&path).is_err() {
            symlink(target, &path).map_err(io_err(&path))?;
        }
    }
    // Mount points the sandbox uses (/build is made by the sandbox in its own
    // tmpfs root), and what DKMS provides to dkms.conf.
    for dir in ["tmp", "proc", "dev", "boot", "etc", "var/lib/dkms"] {
        let path = tree.join(dir);
        fs::create_dir_all(&path).map_err(io_err(&path))?;
    }
    let headers = tree.join(format!("usr/src/linux-headers-{}", lock.kernel));
    let config = headers.join(".config");
    if config.is_file() {
        let boot = tree.join(format!("boot/config-{}", lock.kernel));
        fs::copy(&config, &boot).map_err(io_err(&boot))?;
    }
    // Tools that ask "who am I" (whoami, id -un, some configure scripts) need names.
    let passwd = tree.join("etc/passwd");
    fs::write(&passwd, "root:x:0:0:root:/root:/bin/sh\nbuild:x:1000:1000:hermod build:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
        .map_err(io_err(&passwd))?;
    let group = tree.join("etc/group");
    fs::write(&group, "root:x:0:\nbuild:x:1000:\nnogroup:x:65534:\n").map_err(io_err(&group))?;
    Ok(())
}
