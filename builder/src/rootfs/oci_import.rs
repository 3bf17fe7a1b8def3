//! Import of an image layout written by [`export`](super::export): verify
//! every digest, unpack the layer through the file store, check the lock
//! against the label, rename the root into place (see the parent module).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use sha2::{Digest as _, Sha256};

use super::super::cas::{self, BlobState, Cas, Entry};
use super::super::locks::{self, create_lock_path, use_lock_path, Mode};
use super::super::materialize::{publish, remove_stale_staging, staging_prefix};
use super::super::tree::Assembly;
use super::super::{Lock, RootfsError};
use super::{io_err, Hashing, OciImageError, LABEL_KERNEL, LABEL_LOCK_HASH, LOCK_PATH, MAX_JSON};
use crate::apt::debfile::{self, DataEntry, EntryKind};
use crate::apt::DebFileError;
use crate::store::Store;

/// What [`import`] found or made.
#[derive(Debug, Clone)]
pub struct Imported {
    pub hash: String,
    pub kernel: String,
    pub tree: PathBuf,
    pub manifest_digest: String,
    /// False when the store already had this root (the image was checked, not unpacked).
    pub created: bool,
}

/// The parts of a verified layout that import needs.
struct Image {
    manifest_digest: String,
    layer: PathBuf,
    diff_id: String,
    hash: String,
    kernel: String,
}

/// Import the image layout `dir` into the store as the root of its lock.
pub fn import(store: &Store, dir: &Path) -> Result<Imported, RootfsError> {
    let image = open_image(dir)?;
    let hash = image.hash.clone();
    let final_dir = store.rootfs_dir().join(&hash);
    let rootfs_err = super::io_err;
    let use_path = use_lock_path(store, &hash);
    let _in_use = locks::lock(&use_path, Mode::Shared, true).map_err(rootfs_err(&use_path))?;
    filetime::set_file_mtime(&use_path, filetime::FileTime::now()).map_err(rootfs_err(&use_path))?;
    let imported = |created| Imported {
        hash: hash.clone(),
        kernel: image.kernel.clone(),
        tree: final_dir.join("tree"),
        manifest_digest: image.manifest_digest.clone(),
        created,
    };
    if final_dir.join("lock").is_file() {
        return Ok(imported(false));
    }
    let create_path = create_lock_path(store, &hash);
    let _creating = locks::lock(&create_path, Mode::Exclusive, true).map_err(rootfs_err(&create_path))?;
    if final_dir.join("lock").is_file() {
        return Ok(imported(false));
    }
    remove_stale_staging(store, &hash)?;
    let cas = Cas::open(store)?;
    let _adding = cas.lock(Mode::Shared)?;
    let staging = store.staging_dir(&staging_prefix(&hash))?;
    let lock = unpack_layer(&cas, &image, dir, &staging.path().join("tree"))?;
    publish(store, staging, &lock, &hash, &final_dir)?;
    Ok(imported(true))
}

/// Read index.json → manifest → config, each blob verified; the layer blob
/// verified by size and digest too (its content is checked again, against
/// diff_ids, while it is unpacked).
fn open_image(dir: &Path) -> Result<Image, OciImageError> {
    let bad = |reason: String| OciImageError::Layout { dir: dir.to_owned(), reason };
    let layout: serde_json::Value =
        serde_json::from_slice(&read_small(&dir.join("oci-layout"))?).map_err(|e| bad(format!("oci-layout: {e}")))?;
    if layout.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
        return Err(bad("oci-layout does not say imageLayoutVersion 1.0.0".into()));
    }
    let index: ImageIndex =
        serde_json::from_slice(&read_small(&dir.join("index.json"))?).map_err(|e| bad(format!("index.json: {e}")))?;
    let manifests: Vec<&Descriptor> =
        index.manifests().iter().filter(|d| *d.media_type() == MediaType::ImageManifest).collect();
    let [manifest_desc] = manifests[..] else {
        return Err(bad(format!("index.json lists {} image manifests; import takes one", manifests.len())));
    };
    let manifest: ImageManifest =
        serde_json::from_slice(&read_blob(dir, manifest_desc)?).map_err(|e| bad(format!("manifest: {e}")))?;
    if *manifest.config().media_type() != MediaType::ImageConfig {
        return Err(bad(format!("config media type {}", manifest.config().media_type())));
    }
    let config: ImageConfiguration =
        serde_json::from_slice(&read_blob(dir, manifest.config())?).map_err(|e| bad(format!("config: {e}")))?;
    let [layer] = &manifest.layers()[..] else {
        return Err(bad(format!("{} layers; a hermod root has exactly one", manifest.layers().len())));
    };
    if *layer.media_type() != MediaType::ImageLayerZstd {
        return Err(bad(format!("layer media type {} (expected {})", layer.media_type(), MediaType::ImageLayerZstd)));
    }
    let [diff_id] = &config.rootfs().diff_ids()[..] else {
        return Err(bad("the config's rootfs.diff_ids does not list exactly one layer".into()));
    };
    let label = |key: &str| {
        config
            .labels_of_config()
            .and_then(|l| l.get(key))
            .cloned()
            .ok_or_else(|| bad(format!("the config has no {key} label (not made by hermod rootfs export?)")))
    };
    let hash = label(LABEL_LOCK_HASH)?;
    // It names `rootfs/<hash>`: one file name, nothing else.
    if crate::apt::syntax::hex64("lock hash", &hash).is_err() {
        return Err(bad(format!("{LABEL_LOCK_HASH} {hash:?} is not a lock hash")));
    }
    let path = blob_path(dir, layer)?;
    verify_file(&path, layer)?;
    Ok(Image {
        manifest_digest: manifest_desc.digest().to_string(),
        layer: path,
        diff_id: diff_id.clone(),
        hash,
        kernel: label(LABEL_KERNEL)?,
    })
}

fn read_small(path: &Path) -> Result<Vec<u8>, OciImageError> {
    let (file, _) = crate::bounded::open_user_file(path).map_err(io_err(path))?;
    let mut bytes = Vec::new();
    file.take(MAX_JSON).read_to_end(&mut bytes).map_err(io_err(path))?;
    Ok(bytes)
}

/// `blobs/sha256/<hex>` of a descriptor; only sha256 digests (what the OCI
/// spec requires every implementation to support) are accepted.
fn blob_path(dir: &Path, d: &Descriptor) -> Result<PathBuf, OciImageError> {
    let digest = d.digest();
    let hex = digest.digest();
    let is_hex = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if digest.algorithm().as_ref() != "sha256" || !is_hex {
        return Err(OciImageError::Layout {
            dir: dir.to_owned(),
            reason: format!("digest {digest} is not a sha256 digest"),
        });
    }
    Ok(dir.join("blobs/sha256").join(hex))
}

/// A small blob's bytes, checked against its descriptor.
fn read_blob(dir: &Path, d: &Descriptor) -> Result<Vec<u8>, OciImageError> {
    let path = blob_path(dir, d)?;
    if d.size() > MAX_JSON {
        return Err(OciImageError::Layout {
            dir: dir.to_owned(),
            reason: format!("{} claims {} bytes; JSON blobs are small", path.display(), d.size()),
        });
    }
    let bytes = read_small(&path)?;
    check(&path, d, bytes.len() as u64, &hex::encode(Sha256::digest(&bytes)))?;
    Ok(bytes)
}

/// Stream a blob file through SHA-256 and check it against its descriptor.
fn verify_file(path: &Path, d: &Descriptor) -> Result<(), OciImageError> {
    let size = fs::metadata(path).map_err(io_err(path))?.len();
    if size != d.size() {
        return Err(OciImageError::Size { blob: path.to_owned(), expected: d.size(), actual: size });
    }
    let (file, _) = crate::bounded::open_user_file(path).map_err(io_err(path))?;
    let mut reader = Hashing::new(BufReader::new(file));
    io::copy(&mut reader, &mut io::sink()).map_err(io_err(path))?;
    let (_, hex, len) = reader.finish();
    check(path, d, len, &hex)
}

fn check(path: &Path, d: &Descriptor, size: u64, hex: &str) -> Result<(), OciImageError> {
    if size != d.size() {
        return Err(OciImageError::Size { blob: path.to_owned(), expected: d.size(), actual: size });
    }
    if hex != d.digest().digest() {
        return Err(OciImageError::Digest {
            blob: path.to_owned(),
            expected: d.digest().digest().to_owned(),
            actual: hex.to_owned(),
        });
    }
    Ok(())
}

/// Unpack the (verified) layer into `tree` through the file store; the lock
/// it carries, checked against the image's label.
fn unpack_layer(cas: &Cas, image: &Image, dir: &Path, tree: &Path) -> Result<Lock, RootfsError> {
    let layer = &image.layer;
    let (file, _) = crate::bounded::open_user_file(layer).map_err(io_err(layer))?;
    let mut plain = Hashing::new(zstd::Decoder::new(file).map_err(io_err(layer))?);
    let mut assembly = Assembly::new(cas, tree)?;
    let mut lock_text = None;
    let mut files: HashMap<PathBuf, (String, u64)> = HashMap::new();
    let mut checked: HashSet<String> = HashSet::new();
    let mut content = Vec::new();
    let unsafe_path = |path: &Path, reason| DebFileError::UnsafePath {
        deb: layer.clone(),
        member: "layer".into(),
        path: path.display().to_string(),
        reason,
    };
    debfile::read_tar(&mut plain, layer, "layer", |entry: DataEntry<'_>| -> Result<(), RootfsError> {
        let rel = entry.rel;
        let path = rel.to_str().ok_or_else(|| unsafe_path(&rel, "not UTF-8"))?.to_owned();
        if rel.starts_with(".hermod") {
            return match entry.kind {
                EntryKind::Dir if path == ".hermod" => Ok(()),
                EntryKind::File(reader) if path == LOCK_PATH => {
                    let mut text = String::new();
                    reader.take(MAX_JSON).read_to_string(&mut text).map_err(io_err(layer))?;
                    lock_text = Some(text);
                    Ok(())
                }
                _ => Err(unsafe_path(&rel, "only .hermod/lock may be under .hermod").into()),
            };
        }
        let e = match entry.kind {
            EntryKind::Dir => Entry::Dir { path, mode: entry.mode, mtime: entry.mtime },
            EntryKind::File(reader) => {
                content.clear();
                reader.read_to_end(&mut content).map_err(io_err(layer))?;
                let blob = insert_checked(cas, &content, entry.mode, &mut checked)?;
                files.insert(rel, (blob.clone(), content.len() as u64));
                Entry::File { path, blob, size: content.len() as u64 }
            }
            EntryKind::HardLink(to) => {
                let (blob, size) = files.get(&to).cloned().ok_or_else(|| unsafe_path(&rel, "hard link target"))?;
                files.insert(rel, (blob.clone(), size));
                Entry::File { path, blob, size }
            }
            EntryKind::Symlink(target) => {
                let target = target.to_str().ok_or_else(|| unsafe_path(&rel, "symlink target not UTF-8"))?.to_owned();
                Entry::Symlink { path, target, mtime: entry.mtime }
            }
        };
        assembly.entry(&e).map_err(|source| RootfsError::Assemble {
            package: format!("layer {}", layer.display()),
            path: path_of(&e).to_owned(),
            source,
        })
    })
    .map_err(|e| match e {
        // An unsafe layer is bad input, not a bad download.
        RootfsError::Unpack(e) => OciImageError::Layer(e).into(),
        e => e,
    })?;
    assembly.finish()?;
    // The tar's end-of-archive blocks and padding belong to the diff_id too.
    io::copy(&mut plain, &mut io::sink()).map_err(io_err(layer))?;
    let (_, hex, _) = plain.finish();
    if format!("sha256:{hex}") != image.diff_id {
        return Err(OciImageError::DiffId {
            blob: layer.clone(),
            expected: image.diff_id.clone(),
            actual: format!("sha256:{hex}"),
        }
        .into());
    }
    let text = lock_text.ok_or_else(|| OciImageError::Layout {
        dir: dir.to_owned(),
        reason: format!("the layer has no {LOCK_PATH}"),
    })?;
    let lock = Lock::parse_file(&text, &format!("{}: {LOCK_PATH}", dir.display()))?;
    if lock.hash() != image.hash || lock.kernel != image.kernel {
        return Err(OciImageError::LockHash {
            dir: dir.to_owned(),
            expected: format!("{} ({})", image.hash, image.kernel),
            actual: format!("{} ({})", lock.hash(), lock.kernel),
        }
        .into());
    }
    Ok(lock)
}

fn path_of(e: &Entry) -> &str {
    match e {
        Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => path,
    }
}

/// Add a file to the store; a blob of that name already there is hash-checked
/// once (a corrupt one is quarantined and replaced by these bytes).
fn insert_checked(cas: &Cas, content: &[u8], mode: u32, checked: &mut HashSet<String>) -> Result<String, RootfsError> {
    let name = cas::blob_name(&blake3::hash(content), mode);
    if checked.insert(name.clone()) && cas.check(&name) == BlobState::Corrupt {
        cas.quarantine(&name)?;
    }
    Ok(cas.insert(content, mode)?)
}
