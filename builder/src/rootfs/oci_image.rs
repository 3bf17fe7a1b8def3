//! A build root as an OCI image layout, and back: how a fleet moves toolchain
//! images between hosts through any OCI registry (`skopeo copy oci:DIR docker://…`).
//!
//! An OCI image layout is a directory of content-addressed blobs and two
//! small files:
//!
//! ```text
//! DIR/oci-layout                 {"imageLayoutVersion":"1.0.0"}
//! DIR/index.json                 the entry point: descriptors of the manifests, each
//!                                with its ref name (org.opencontainers.image.ref.name)
//! DIR/blobs/sha256/<hex>         every other file, named by the SHA-256 of its bytes
//! ```
//!
//! A *descriptor* is (media type, `sha256:<hex>` digest, size): it names a blob
//! and says what it is. index.json points at the manifest
//! (`application/vnd.oci.image.manifest.v1+json`), the manifest at the config
//! (`application/vnd.oci.image.config.v1+json`) and the layers; a layer is a
//! tar of files (`application/vnd.oci.image.layer.v1.tar+zstd`: compressed with
//! zstd), and the config's `rootfs.diff_ids` lists the SHA-256 of each layer
//! *uncompressed*. So index.json's digest of the manifest covers everything.
//!
//! What hermod writes: one layer holding the root's tree plus its lock file at
//! `.hermod/lock` (the `hermod-lock 1` text); the lock hash and the kernel as
//! config labels and manifest annotations (`org.hermod.lock-hash`,
//! `org.hermod.kernel`); the ref name `hermod-rootfs-<kernel>`. The layer is
//! deterministic, so one root exports to the same digests on any host with
//! the same hermod: entries sorted by name, every mtime [`LAYER_MTIME`],
//! owners 0:0 with no names, modes as in the tree, a file whose content and
//! mode already appeared earlier written as a hard link to it, zstd at a fixed
//! level on one thread; JSON with sorted keys and no timestamps.
//!
//! Import verifies before it uses: each blob's size and SHA-256 against its
//! descriptor, the layer's uncompressed stream against `diff_ids`, the lock
//! file's hash against the label. The layer is read with the .deb rules of
//! `apt::debfile` (no `..`, nothing written through a symlink or above the
//! root, no setuid/setgid bits, devices and FIFOs skipped); its files go into
//! the file store and the root is assembled as hard links, staged under
//! `tmp/` and renamed to `rootfs/<lock hash>` under that root's create lock,
//! as `materialize` does. Imported files are *not* recorded as package
//! manifests (`unpacked/`): the image is trusted for this one root only (like
//! a `local_debs` directory, by the administrator's word; the digests guard
//! the transport, not the origin), never for another root that shares a
//! package. `hermod rootfs verify` cannot restore them from a .deb; gc treats
//! them as any root's files.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};
use sha2::{Digest as _, Sha256};

use super::cas;
use super::{Lock, RootfsError};
use crate::apt::DebFileError;

/// The mtime of every layer entry: the file store's, so an imported root's
/// files look like a materialized root's.
pub const LAYER_MTIME: u64 = cas::BLOB_MTIME;
/// Where the lock file travels inside the layer (not part of the tree).
pub const LOCK_PATH: &str = ".hermod/lock";
pub const LABEL_LOCK_HASH: &str = "org.hermod.lock-hash";
pub const LABEL_KERNEL: &str = "org.hermod.kernel";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Fixed, so the layer digest depends only on the tree (and the zstd version).
const ZSTD_LEVEL: i32 = 9;
/// index.json, manifests and configs are small; a larger one is refused unread.
const MAX_JSON: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum OciImageError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{dir} is not a hermod OCI image layout: {reason}")]
    Layout { dir: PathBuf, reason: String },
    #[error(
        "{blob}: size {actual} bytes, but the descriptor says {expected}: the image is damaged or was tampered with"
    )]
    Size { blob: PathBuf, expected: u64, actual: u64 },
    #[error("{blob}: content has digest sha256:{actual}, not the sha256:{expected} that names it: the image is damaged or was tampered with")]
    Digest { blob: PathBuf, expected: String, actual: String },
    #[error("{blob}: uncompressed layer has digest {actual}, but the config's diff_ids say {expected}: the image is damaged or was tampered with")]
    DiffId { blob: PathBuf, expected: String, actual: String },
    #[error("{dir}: the lock file in the layer has hash {actual}, but the image is labelled {expected}")]
    LockHash { dir: PathBuf, expected: String, actual: String },
    #[error("{out} exists and is not empty; export writes a new image layout")]
    NotEmpty { out: PathBuf },
    #[error("exporting {tree}: {reason}")]
    Export { tree: PathBuf, reason: String },
    #[error(transparent)]
    Layer(#[from] DebFileError),
}

impl crate::exit::HasExitCode for OciImageError {
    fn exit_code(&self) -> crate::exit::Code {
        use crate::exit::Code;
        match self {
            // The image's bytes are not what it claims: as an archive's checksum.
            OciImageError::Size { .. } | OciImageError::Digest { .. } | OciImageError::DiffId { .. } => Code::Archive,
            OciImageError::Layout { .. } | OciImageError::LockHash { .. } | OciImageError::Layer(_) => Code::BadInput,
            OciImageError::Io { .. } | OciImageError::NotEmpty { .. } | OciImageError::Export { .. } => Code::Io,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OciImageError + '_ {
    move |source| OciImageError::Io { path: path.to_owned(), source }
}

impl From<OciImageError> for RootfsError {
    fn from(e: OciImageError) -> RootfsError {
        RootfsError::OciImage(Box::new(e))
    }
}

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// `sha256:<hex>` of the manifest: the image's identity.
    pub manifest_digest: String,
    pub layer_digest: String,
    pub layer_size: u64,
    pub ref_name: String,
}

/// The ref name of a root's image in index.json.
pub fn ref_name(kernel: &str) -> String {
    format!("hermod-rootfs-{kernel}")
}

/// A writer (or reader) that SHA-256s and counts the bytes passing through.
struct Hashing<T> {
    inner: T,
    hasher: Sha256,
    len: u64,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Hashing<T> {
        Hashing { inner, hasher: Sha256::new(), len: 0 }
    }
    fn finish(self) -> (T, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.len)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// JSON with sorted keys: oci-spec keeps annotations and labels in HashMaps,
/// whose order changes from run to run; serde_json's own map is sorted.
fn canonical_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("OCI types serialize");
    serde_json::to_vec(&value).expect("a JSON value serializes")
}

fn sha256_digest(hex: &str) -> Digest {
    Digest::try_from(format!("sha256:{hex}")).expect("a sha256 hex digest is a valid digest")
}

fn descriptor(media_type: MediaType, hex: &str, size: u64, annotations: Option<HashMap<String, String>>) -> Descriptor {
    let mut d = DescriptorBuilder::default()
        .media_type(media_type)
        .digest(sha256_digest(hex))
        .size(size)
        .build()
        .expect("all required fields set");
    d.set_annotations(annotations);
    d
}

/// Write the root `tree` (whose lock is `lock`) as an OCI image layout in
/// `out`, which must not exist or be empty. The layout appears whole (staged
/// beside `out`, then renamed).
pub fn export(tree: &Path, lock: &Lock, out: &Path) -> Result<Exported, OciImageError> {
    match fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(OciImageError::NotEmpty { out: out.to_owned() });
            }
            fs::remove_dir(out).map_err(io_err(out))?
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(out)(e)),
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    let staging = tempfile::Builder::new().prefix(".hermod-oci-").tempdir_in(&parent).map_err(io_err(&parent))?;
    let blobs = staging.path().join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;

    let (layer_hex, layer_size, diff_id) = write_layer(tree, lock, &blobs)?;
    let manifest_hex = write_metadata(staging.path(), lock, &layer_hex, layer_size, &diff_id)?;
    fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755)).map_err(io_err(staging.path()))?;
    let staged = staging.keep();
    fs::rename(&staged, out).map_err(io_err(out))?;
    Ok(Exported {
        manifest_digest: format!("sha256:{manifest_hex}"),
        layer_digest: format!("sha256:{layer_hex}"),
        layer_size,
        ref_name: ref_name(&lock.kernel),
    })
}

/// Config, manifest, index.json and oci-layout for a layer already in
/// `layout/blobs/sha256`; the manifest's digest (hex).
fn write_metadata(
    layout: &Path,
    lock: &Lock,
    layer_hex: &str,
    layer_size: u64,
    diff_id: &str,
) -> Result<String, OciImageError> {
    let blobs = layout.join("blobs/sha256");
    let hash = lock.hash();
    let labels: HashMap<String, String> =
        [(LABEL_LOCK_HASH.to_owned(), hash.clone()), (LABEL_KERNEL.to_owned(), lock.kernel.clone())].into();
    let config = ImageConfigurationBuilder::default()
        .architecture(Arch::from(lock.architecture.as_str()))
        .os(Os::Linux)
        .config(ConfigBuilder::default().labels(labels.clone()).build().expect("no required fields"))
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![format!("sha256:{diff_id}")])
                .build()
                .expect("all fields set"),
        )
        .build()
        .expect("all required fields set");
    let (config_hex, config_size) = write_blob(&blobs, &canonical_json(&config))?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, &config_hex, config_size, None))
        .layers(vec![descriptor(MediaType::ImageLayerZstd, layer_hex, layer_size, None)])
        .annotations(labels.clone())
        .build()
        .expect("all required fields set");
    let (manifest_hex, manifest_size) = write_blob(&blobs, &canonical_json(&manifest))?;
    let ref_name = ref_name(&lock.kernel);
    let mut annotations = labels;
    annotations.insert(REF_NAME.to_owned(), ref_name.clone());
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![descriptor(MediaType::ImageManifest, &manifest_hex, manifest_size, Some(annotations))])
        .build()
        .expect("all required fields set");
    let write = |name: &str, bytes: &[u8]| {
        let path = layout.join(name);
        fs::write(&path, bytes).map_err(io_err(&path))
    };
    write("index.json", &canonical_json(&index))?;
    write("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(manifest_hex)
}

/// Store `bytes` as a blob; (hex digest, size).
fn write_blob(blobs: &Path, bytes: &[u8]) -> Result<(String, u64), OciImageError> {
    let hex = hex::encode(Sha256::digest(bytes));
    let path = blobs.join(&hex);
    fs::write(&path, bytes).map_err(io_err(&path))?;
    Ok((hex, bytes.len() as u64))
}

/// The layer blob: (digest hex, compressed size, diff_id hex).
fn write_layer(tree: &Path, lock: &Lock, blobs: &Path) -> Result<(String, u64, String), OciImageError> {
    let tmp = blobs.join(".layer");
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let compressed = Hashing::new(BufWriter::new(file));
    let mut encoder = zstd::Encoder::new(compressed, ZSTD_LEVEL).map_err(io_err(&tmp))?;
    encoder.include_checksum(true).map_err(io_err(&tmp))?;
    let mut tar = tar::Builder::new(Hashing::new(encoder));
    write_tar(&mut tar, tree, lock.file_text().as_bytes())?;
    let plain = tar.into_inner().map_err(io_err(&tmp))?;
    let (encoder, diff_id, _) = plain.finish();
    let compressed = encoder.finish().map_err(io_err(&tmp))?;
    let (writer, digest, size) = compressed.finish();
    writer.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?.sync_all().map_err(io_err(&tmp))?;
    let path = blobs.join(&digest);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    Ok((digest, size, diff_id))
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(LAYER_MTIME);
    h
}

/// The tar stream of the layer: `.hermod/lock`, then the tree in name order.
pub(crate) fn write_tar<W: Write>(
    tar: &mut tar::Builder<W>,
    tree: &Path,
    lock_text: &[u8],
) -> Result<(), OciImageError> {
    let fail = |reason: String| OciImageError::Export { tree: tree.to_owned(), reason };
    if fs::symlink_metadata(tree.join(".hermod")).is_ok() {
        return Err(fail("the tree has a /.hermod of its own".into()));
    }
    tar.append_data(&mut header(tar::EntryType::Directory, 0o755, 0), ".hermod/", io::empty()).map_err(io_err(tree))?;
    tar.append_data(&mut header(tar::EntryType::Regular, 0o444, lock_text.len() as u64), LOCK_PATH, lock_text)
        .map_err(io_err(tree))?;
    // First path of each (content, mode): later ones become hard links to it.
    let mut first: HashMap<(blake3::Hash, u32), PathBuf> = HashMap::new();
    let walk = walkdir::WalkDir::new(tree).min_depth(1).sort_by_file_name();
    for entry in walk {
        let entry = entry.map_err(|e| fail(e.to_string()))?;
        let rel = entry.path().strip_prefix(tree).expect("walkdir stays under its root").to_owned();
        let meta = entry.metadata().map_err(|e| fail(e.to_string()))?;
        let mode = meta.mode() & 0o7777;
        let kind = meta.file_type();
        if kind.is_dir() {
            let mut name = rel.into_os_string();
            name.push("/");
            tar.append_data(&mut header(tar::EntryType::Directory, mode, 0), &name, io::empty())
                .map_err(io_err(entry.path()))?;
        } else if kind.is_symlink() {
            let target = fs::read_link(entry.path()).map_err(io_err(entry.path()))?;
            tar.append_link(&mut header(tar::EntryType::Symlink, 0o777, 0), &rel, &target)
                .map_err(io_err(entry.path()))?;
        } else if kind.is_file() {
            let content = fs::read(entry.path()).map_err(io_err(entry.path()))?;
            match first.entry((blake3::hash(&content), mode)) {
                std::collections::hash_map::Entry::Occupied(seen) => {
                    tar.append_link(&mut header(tar::EntryType::Link, mode, 0), &rel, seen.get())
                        .map_err(io_err(entry.path()))?;
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    let mut h = header(tar::EntryType::Regular, mode, content.len() as u64);
                    tar.append_data(&mut h, &rel, content.as_slice()).map_err(io_err(entry.path()))?;
                    slot.insert(rel);
                }
            }
        } else {
            return Err(fail(format!("{} is neither a file, a directory nor a symlink", rel.display())));
        }
    }
    Ok(())
}

#[path = "oci_import.rs"]
mod import;
pub use import::{import, Imported};

#[cfg(test)]
#[path = "oci_image_tests.rs"]
mod tests;
