//! Trust for the shared cache: ed25519 keys and signed cache entries.
//!
//! A shared cache is a plain HTTP server (see [`crate::shared_cache`]); whoever can
//! write to it, or sits between it and a client, can serve any bytes. So a
//! client trusts nothing because of where it came from. The builders that push
//! sign each entry with an ed25519 key; a client accepts an entry only if a key
//! in its trusted list signed it, and then only the blob whose blake3, SHA-256
//! and size the signed text names. This is the scheme of Nix's narinfo files.
//!
//! **The entry document**, served at `<prefix>/ac/<cache key>`, is UTF-8 text,
//! one `name: value` per line, each line ending in `\n`, in exactly this order:
//!
//! ```text
//! hermod-cache-entry: 1
//! cache-key: <64 hex: the cache key, as in the URL>
//! package: hello-modules-6.1.0-56-amd64
//! version: 0.1+6.1.192-2
//! kernel: 6.1.0-56-amd64
//! deb: hello-modules-6.1.0-56-amd64_0.1+6.1.192-2_amd64.deb
//! size: 5420
//! blake3: <64 hex: of the .deb, also its name under <prefix>/cas/>
//! sha256: <64 hex: of the .deb>
//! signature: fleet-1:<base64 of a 64-byte ed25519 signature>
//! ```
//!
//! **The signed text** is the first nine lines, byte for byte as above (the
//! format line included, so a signature can never be replayed as something
//! else). One or more `signature: <key name>:<base64>` lines follow; any other
//! line, a field out of order, a repeated field or a value outside its syntax
//! makes the document malformed. Since the cache key is signed, an entry copied
//! to another `ac/<key>` is refused: its signed key is not the one asked for.
//!
//! **Keys**: a public key is written `<name>:<base64 of 32 bytes>` (the form of
//! `HERMOD_TRUSTED_KEYS`, comma-separated); a secret key file holds one line,
//! `<name>:<base64 of 64 bytes>` (the 32-byte seed, then the public key, which
//! is checked against the seed when read). Names are 1–64 characters of
//! `A-Z a-z 0-9 . _ -`; the name only selects which trusted key to check a
//! signature with: a signature under a trusted name that does not verify with
//! that key is a bad signature.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// The first line of every entry document.
pub const ENTRY_FORMAT_LINE: &str = "hermod-cache-entry: 1";
/// An entry document larger than this is refused unread (a real one is < 1 KiB).
pub const MAX_ENTRY_BYTES: u64 = 64 * 1024;
/// More signature lines than this make a document malformed.
const MAX_SIGNATURES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} already exists; refusing to overwrite a key file (remove it first if you mean to)")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path} is not a hermod cache secret key file: {why}")]
    BadSecretKey { path: PathBuf, why: String },
    #[error("{what}: {text:?} is not a public key `NAME:BASE64` ({why})")]
    BadPublicKey { what: String, text: String, why: String },
    #[error("{what}: key name {name:?} is not 1-64 characters of A-Z a-z 0-9 . _ -")]
    BadName { what: String, name: String },
    #[error("{what}: two different keys are named {name:?}")]
    DuplicateName { what: String, name: String },
}

impl crate::exit::HasExitCode for TrustError {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            TrustError::Write { .. } | TrustError::Read { .. } => crate::exit::Code::Io,
            TrustError::Exists { .. }
            | TrustError::BadSecretKey { .. }
            | TrustError::BadPublicKey { .. }
            | TrustError::BadName { .. }
            | TrustError::DuplicateName { .. } => crate::exit::Code::BadInput,
        }
    }
}

/// Why a shared-cache entry was refused. Each is a reason to build locally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("malformed entry: {0}")]
    Malformed(String),
    #[error("the entry is for cache key {signed}, served under {served}")]
    WrongKey { served: String, signed: String },
    #[error("the entry is for kernel {signed}, not {wanted}")]
    WrongKernel { wanted: String, signed: String },
    #[error("the entry is not signed")]
    Unsigned,
    #[error("bad signature: it does not verify with the trusted key {name:?}")]
    BadSignature { name: String },
    #[error("signed only by untrusted key(s) {}", names.join(", "))]
    Untrusted { names: Vec<String> },
    #[error("the blob does not match the signed entry: {what} is {got}, the entry says {signed}")]
    BlobMismatch { what: &'static str, signed: String, got: String },
}

fn check_name(name: &str, what: &str) -> Result<(), TrustError> {
    let ok =
        !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(TrustError::BadName { what: what.into(), name: name.into() })
    }
}

/// A signer: an ed25519 secret key and its name.
pub struct SecretKey {
    name: String,
    key: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key material, even in a debug print.
        write!(f, "SecretKey({})", self.public())
    }
}

impl SecretKey {
    /// A new key from the kernel's random source.
    pub fn generate(name: &str) -> Result<SecretKey, TrustError> {
        check_name(name, "new key")?;
        let mut seed = [0u8; 32];
        let urandom = Path::new("/dev/urandom");
        fs::File::open(urandom)
            .and_then(|mut f| f.read_exact(&mut seed))
            .map_err(|source| TrustError::Read { path: urandom.into(), source })?;
        Ok(SecretKey { name: name.into(), key: SigningKey::from_bytes(&seed) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn public(&self) -> PublicKey {
        PublicKey { name: self.name.clone(), key: self.key.verifying_key() }
    }

    /// `name:base64sig` over `text`.
    pub fn sign(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes());
        format!("{}:{}", self.name, BASE64.encode(signature.to_bytes()))
    }

    /// The key file's text: one line, `name:base64(seed ‖ public key)`.
    pub fn file_text(&self) -> String {
        format!("{}:{}\n", self.name, BASE64.encode(self.key.to_keypair_bytes()))
    }

    pub fn parse(text: &str, path: &Path) -> Result<SecretKey, TrustError> {
        let bad = |why: &str| TrustError::BadSecretKey { path: path.into(), why: why.into() };
        let line = text.strip_suffix('\n').unwrap_or(text);
        if line.contains('\n') {
            return Err(bad("expected one line, NAME:BASE64"));
        }
        let (name, data) = line.split_once(':').ok_or_else(|| bad("expected NAME:BASE64"))?;
        check_name(name, &path.display().to_string())?;
        let bytes = BASE64.decode(data.trim()).map_err(|e| bad(&format!("bad base64: {e}")))?;
        let pair: [u8; 64] = match bytes.len() {
            64 => bytes.try_into().expect("64 bytes"),
            32 => return Err(bad("it holds 32 bytes: that is a public key (NAME:BASE64 of 64 bytes expected)")),
            n => return Err(bad(&format!("it holds {n} bytes, 64 expected"))),
        };
        let key = SigningKey::from_keypair_bytes(&pair)
            .map_err(|_| bad("its public half does not belong to its secret half (damaged file?)"))?;
        Ok(SecretKey { name: name.into(), key })
    }

    pub fn read(path: &Path) -> Result<SecretKey, TrustError> {
        let text = crate::bounded::read_user_text(path, crate::bounded::MAX_USER_FILE)
            .map_err(|source| TrustError::Read { path: path.into(), source })?;
        SecretKey::parse(&text, path)
    }

    /// Write the key to a new file, readable by its owner only; never over an existing one.
    pub fn write_new(&self, path: &Path) -> Result<(), TrustError> {
        let mut file =
            fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|source| {
                if source.kind() == io::ErrorKind::AlreadyExists {
                    TrustError::Exists { path: path.into() }
                } else {
                    TrustError::Write { path: path.into(), source }
                }
            })?;
        let written = file.write_all(self.file_text().as_bytes()).and_then(|()| file.sync_all());
        if let Err(source) = written {
            // A half-written key is worse than none: it would fail later, far from here.
            let _ = fs::remove_file(path);
            return Err(TrustError::Write { path: path.into(), source });
        }
        Ok(())
    }
}

/// The default name of a key written to `path`: the file name without its extension.
pub fn name_from_path(path: &Path) -> Result<String, TrustError> {
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    check_name(&name, &format!("{} (use --name)", path.display()))?;
    Ok(name)
}

/// A verifier: an ed25519 public key and its name, written `name:base64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    name: String,
    key: VerifyingKey,
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, BASE64.encode(self.key.to_bytes()))
    }
}

impl PublicKey {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Parse `name:base64`; `what` says where the text came from, for the error.
    pub fn parse(text: &str, what: &str) -> Result<PublicKey, TrustError> {
        let bad = |why: &str| TrustError::BadPublicKey { what: what.into(), text: text.into(), why: why.into() };
        let (name, data) = text.split_once(':').ok_or_else(|| bad("no `:`"))?;
        check_name(name, what)?;
        let bytes = BASE64.decode(data).map_err(|e| bad(&format!("bad base64: {e}")))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| bad(&format!("{} bytes, 32 expected", b.len())))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not an ed25519 public key"))?;
        Ok(PublicKey { name: name.into(), key })
    }
}

/// The keys a client accepts entries from.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys(Vec<PublicKey>);

impl TrustedKeys {
    /// From `name:base64` items (empty items are skipped, so a trailing comma is harmless).
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>, what: &str) -> Result<TrustedKeys, TrustError> {
        let mut keys: Vec<PublicKey> = Vec::new();
        for item in items.into_iter().map(str::trim).filter(|i| !i.is_empty()) {
            let key = PublicKey::parse(item, what)?;
            match keys.iter().find(|k| k.name == key.name) {
                Some(k) if k.key != key.key => {
                    return Err(TrustError::DuplicateName { what: what.into(), name: key.name });
                }
                Some(_) => {}
                None => keys.push(key),
            }
        }
        Ok(TrustedKeys(keys))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|k| k.name.as_str()).collect()
    }

    fn get(&self, name: &str) -> Option<&PublicKey> {
        self.0.iter().find(|k| k.name == name)
    }
}

/// A shared-cache entry: what a cache key's output is, and who says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub cache_key: String,
    pub package: String,
    pub version: String,
    pub kernel: String,
    pub deb: String,
    pub size: u64,
    pub blake3: String,
    pub sha256: String,
    /// `name:base64` each.
    pub signatures: Vec<String>,
}

/// The signed fields, in their order in the document.
const FIELDS: [&str; 8] = ["cache-key", "package", "version", "kernel", "deb", "size", "blake3", "sha256"];

impl Entry {
    /// An unsigned entry for `cache_key`'s output described by `manifest`.
    pub fn new(cache_key: &str, manifest: &crate::cache::Manifest) -> Entry {
        Entry {
            cache_key: cache_key.into(),
            package: manifest.package.clone(),
            version: manifest.version.clone(),
            kernel: manifest.kernel.clone(),
            deb: manifest.deb.clone(),
            size: manifest.size,
            blake3: manifest.blake3.clone(),
            sha256: manifest.sha256.clone(),
            signatures: Vec::new(),
        }
    }

    fn values(&self) -> [String; 8] {
        [
            self.cache_key.clone(),
            self.package.clone(),
            self.version.clone(),
            self.kernel.clone(),
            self.deb.clone(),
            self.size.to_string(),
            self.blake3.clone(),
            self.sha256.clone(),
        ]
    }

    /// The text the signatures cover (see the module doc).
    pub fn signed_text(&self) -> String {
        let mut text = format!("{ENTRY_FORMAT_LINE}\n");
        for (name, value) in FIELDS.iter().zip(self.values()) {
            text.push_str(&format!("{name}: {value}\n"));
        }
        text
    }

    /// Add `key`'s signature.
    pub fn sign(&mut self, key: &SecretKey) {
        let signature = key.sign(&self.signed_text());
        self.signatures.retain(|s| s.split_once(':').map(|(n, _)| n) != Some(key.name()));
        self.signatures.push(signature);
    }

    /// The whole document: the signed text, then the signatures.
    pub fn document(&self) -> String {
        let mut text = self.signed_text();
        for signature in &self.signatures {
            text.push_str(&format!("signature: {signature}\n"));
        }
        text
    }

    /// Parse a document strictly: any deviation from the format is malformed.
    pub fn parse(bytes: &[u8]) -> Result<Entry, Rejection> {
        let bad = |why: String| Rejection::Malformed(why);
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8 text".into()))?;
        let body = text.strip_suffix('\n').ok_or_else(|| bad("the last line does not end in a newline".into()))?;
        let mut lines = body.split('\n');
        if lines.next() != Some(ENTRY_FORMAT_LINE) {
            return Err(bad(format!("the first line is not {ENTRY_FORMAT_LINE:?}")));
        }
        let mut values = Vec::new();
        for (n, name) in FIELDS.iter().enumerate() {
            let line = lines.next().ok_or_else(|| bad(format!("ends before the {name} field")))?;
            let value = line
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(": "))
                .ok_or_else(|| bad(format!("line {} is not the {name} field: {line:?}", n + 2)))?;
            check_value(name, value).map_err(|why| bad(format!("{name}: {value:?}: {why}")))?;
            values.push(value.to_owned());
        }
        let mut signatures = Vec::new();
        for line in lines {
            let signature = line.strip_prefix("signature: ").ok_or_else(|| bad(format!("unexpected line {line:?}")))?;
            let (name, data) =
                signature.split_once(':').ok_or_else(|| bad(format!("signature {signature:?}: no `:`")))?;
            check_name(name, "").map_err(|_| bad(format!("signature {signature:?}: bad key name")))?;
            if BASE64.decode(data).map_or(true, |b| b.len() != 64) {
                return Err(bad(format!("signature by {name:?}: not the base64 of 64 bytes")));
            }
            signatures.push(signature.to_owned());
        }
        if signatures.len() > MAX_SIGNATURES {
            return Err(bad(format!("{} signatures (at most {MAX_SIGNATURES})", signatures.len())));
        }
        let [cache_key, package, version, kernel, deb, size, blake3, sha256]: [String; 8] =
            values.try_into().expect("eight fields");
        let size = size.parse().expect("checked by check_value");
        Ok(Entry { cache_key, package, version, kernel, deb, size, blake3, sha256, signatures })
    }

    /// Accept the entry for `served_key` if a trusted key signed it; the name of that key.
    ///
    /// Every signature by a trusted name must verify: a trusted name with a
    /// bad signature is an attack or damage, and is never outvoted.
    pub fn verify(&self, served_key: &str, trusted: &TrustedKeys) -> Result<String, Rejection> {
        if self.cache_key != served_key {
            return Err(Rejection::WrongKey { served: served_key.into(), signed: self.cache_key.clone() });
        }
        if self.signatures.is_empty() {
            return Err(Rejection::Unsigned);
        }
        let text = self.signed_text();
        let mut good = None;
        let mut untrusted = Vec::new();
        for signature in &self.signatures {
            let (name, data) = signature.split_once(':').unwrap_or(("", signature));
            let Some(key) = trusted.get(name) else {
                untrusted.push(name.to_owned());
                continue;
            };
            let bytes: Option<[u8; 64]> = BASE64.decode(data).ok().and_then(|b| b.try_into().ok());
            let verified =
                bytes.is_some_and(|b| key.key.verify_strict(text.as_bytes(), &Signature::from_bytes(&b)).is_ok());
            if !verified {
                return Err(Rejection::BadSignature { name: name.into() });
            }
            good.get_or_insert_with(|| name.to_owned());
        }
        good.ok_or(Rejection::Untrusted { names: untrusted })
    }

    /// Check downloaded bytes against the signed size and hashes.
    pub fn check_blob(&self, bytes: &[u8]) -> Result<(), Rejection> {
        use sha2::Digest;
        let mismatch =
            |what, signed: &str, got: String| Err(Rejection::BlobMismatch { what, signed: signed.into(), got });
        if bytes.len() as u64 != self.size {
            return mismatch("its size", &self.size.to_string(), bytes.len().to_string());
        }
        let blake3 = blake3::hash(bytes).to_hex().to_string();
        if blake3 != self.blake3 {
            return mismatch("its blake3", &self.blake3, blake3);
        }
        let sha256 = hex::encode(sha2::Sha256::digest(bytes));
        if sha256 != self.sha256 {
            return mismatch("its sha256", &self.sha256, sha256);
        }
        Ok(())
    }
}

/// The syntax of each signed field's value.
fn check_value(name: &str, value: &str) -> Result<(), &'static str> {
    let hex64 = |v: &str| v.len() == 64 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let word = |v: &str| !v.is_empty() && v.len() <= 255 && v.bytes().all(|b| b.is_ascii_graphic());
    match name {
        "cache-key" | "blake3" | "sha256" if !hex64(value) => Err("not 64 lower-case hex digits"),
        "size" if value.is_empty() || value.len() > 15 || !value.bytes().all(|b| b.is_ascii_digit()) => {
            Err("not a size in bytes")
        }
        "size" if value.len() > 1 && value.starts_with('0') => Err("not in canonical form (leading zero)"),
        "package" | "version" | "kernel" | "deb" if !word(value) => Err("empty, too long, or not printable ASCII"),
        // The file name is written into --out: it must stay a plain name there.
        "deb" if value.contains('/') || value.starts_with('.') || !value.ends_with(".deb") => {
            Err("not a plain .deb file name")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Manifest;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn entry(bytes: &[u8]) -> Entry {
        let manifest =
            Manifest::new("hello-modules-6.1.0-56-amd64", "0.1+6.1.192-2", "6.1.0-56-amd64", "h_1_amd64.deb", bytes);
        Entry::new(KEY, &manifest)
    }

    fn key(name: &str) -> SecretKey {
        SecretKey::generate(name).unwrap()
    }

    #[test]
    fn document_format_is_exactly_as_documented() {
        let mut e = entry(b"deb");
        let k = key("fleet-1");
        e.sign(&k);
        let doc = e.document();
        let lines: Vec<&str> = doc.lines().collect();
        assert_eq!(lines[0], "hermod-cache-entry: 1");
        assert_eq!(lines[1], format!("cache-key: {KEY}"));
        assert_eq!(lines[2], "package: hello-modules-6.1.0-56-amd64");
        assert_eq!(lines[6], "size: 3");
        assert_eq!(lines[7], format!("blake3: {}", blake3::hash(b"deb").to_hex()));
        assert!(lines[9].starts_with("signature: fleet-1:"));
        assert_eq!(lines.len(), 10);
        assert_eq!(doc, format!("{}signature: {}\n", e.signed_text(), e.signatures[0]));
        let parsed = Entry::parse(doc.as_bytes()).unwrap();
        assert_eq!(parsed, e);
        let trusted = TrustedKeys::parse([k.public().to_string().as_str()], "test").unwrap();
        assert_eq!(parsed.verify(KEY, &trusted), Ok("fleet-1".into()));
        assert_eq!(parsed.check_blob(b"deb"), Ok(()));
    }

    #[test]
    fn every_rejection_has_its_reason() {
        let k = key("fleet");
        let other = key("other");
        let impostor = key("fleet"); // the trusted name, another key
        let trusted = TrustedKeys::parse([k.public().to_string().as_str()], "test").unwrap();
        let mut e = entry(b"deb");
        assert_eq!(e.verify(KEY, &trusted), Err(Rejection::Unsigned));
        e.sign(&other);
        assert_eq!(e.verify(KEY, &trusted), Err(Rejection::Untrusted { names: vec!["other".into()] }));
        let mut forged = e.clone();
        forged.sign(&impostor);
        assert_eq!(forged.verify(KEY, &trusted), Err(Rejection::BadSignature { name: "fleet".into() }));
        e.sign(&k);
        assert_eq!(e.verify(KEY, &trusted), Ok("fleet".into()), "one trusted signature is enough");
        let other_key = "f".repeat(64);
        assert!(matches!(e.verify(&other_key, &trusted), Err(Rejection::WrongKey { .. })));
        // Changing any signed field breaks the signature.
        let mut changed = e.clone();
        changed.version = "0.2+6.1.192-2".into();
        assert_eq!(changed.verify(KEY, &trusted), Err(Rejection::BadSignature { name: "fleet".into() }));
        let mut moved = e.clone();
        moved.cache_key = other_key.clone();
        assert_eq!(moved.verify(&other_key, &trusted), Err(Rejection::BadSignature { name: "fleet".into() }));
        // The blob.
        assert!(matches!(e.check_blob(b"dec"), Err(Rejection::BlobMismatch { what: "its blake3", .. })));
        assert!(matches!(e.check_blob(b"debs"), Err(Rejection::BlobMismatch { what: "its size", .. })));
    }

    #[test]
    fn malformed_documents_are_named() {
        let mut e = entry(b"deb");
        e.sign(&key("k"));
        let doc = e.document();
        let cases: Vec<(String, &str)> = vec![
            ("garbage".into(), "does not end in a newline"),
            ("{\"format\":1}\n".into(), "first line"),
            (doc.replace("package: ", "package:"), "not the package field"),
            (doc.replace("size: 3", "size: 03"), "leading zero"),
            (doc.replace("size: 3", "size: -3"), "not a size"),
            (doc.replace("h_1_amd64.deb", "../h_1_amd64.deb"), "plain .deb"),
            (doc.replace(KEY, &KEY.to_uppercase()), "64 lower-case hex"),
            (format!("{doc}x: y\n"), "unexpected line"),
            (doc.replace("signature: k:", "signature: k:AAAA"), "base64 of 64 bytes"),
            (doc.lines().take(5).map(|l| format!("{l}\n")).collect(), "ends before the deb field"),
            (doc.replace("kernel: ", "kernel: \u{7f}"), "printable"),
        ];
        for (text, why) in cases {
            match Entry::parse(text.as_bytes()) {
                Err(Rejection::Malformed(m)) => assert!(m.contains(why), "{text:?}: {m}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(Entry::parse(&[0xff, b'\n']).is_err());
    }

    #[test]
    fn key_files_and_public_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fleet-1.key");
        assert_eq!(name_from_path(&path).unwrap(), "fleet-1");
        assert!(name_from_path(Path::new("/x/bad name.key")).is_err());
        let k = key("fleet-1");
        k.write_new(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(matches!(k.write_new(&path), Err(TrustError::Exists { .. })));
        let back = SecretKey::read(&path).unwrap();
        assert_eq!(back.public(), k.public());
        assert_eq!(back.sign("x"), k.sign("x"), "ed25519 signatures are deterministic");

        let public = k.public().to_string();
        assert!(public.starts_with("fleet-1:") && PublicKey::parse(&public, "t").unwrap() == k.public());
        // A public key where a secret one belongs is named as such.
        fs::write(dir.path().join("pub"), format!("{public}\n")).unwrap();
        let e = SecretKey::read(&dir.path().join("pub")).unwrap_err().to_string();
        assert!(e.contains("that is a public key"), "{e}");
        // A damaged secret key file.
        let mut text = k.file_text().into_bytes();
        let n = text.len();
        text[n - 5] = if text[n - 5] == b'A' { b'B' } else { b'A' };
        fs::write(dir.path().join("bad"), &text).unwrap();
        assert!(SecretKey::read(&dir.path().join("bad")).is_err());

        for bad in ["nocolon", "n:!!!", "n:AAAA", ":AAAA", "bad name:AAAA"] {
            assert!(PublicKey::parse(bad, "HERMOD_TRUSTED_KEYS").is_err(), "{bad}");
        }
        let e = PublicKey::parse("n:AAAA", "HERMOD_TRUSTED_KEYS").unwrap_err().to_string();
        assert!(e.starts_with("HERMOD_TRUSTED_KEYS: \"n:AAAA\" is not a public key") && e.contains("3 bytes"), "{e}");
        let list = format!("{public}, {},", key("b").public());
        let trusted = TrustedKeys::parse(list.split(','), "t").unwrap();
        assert_eq!(trusted.names(), ["fleet-1", "b"]);
        let clash = format!("{public},{}", key("fleet-1").public());
        assert!(matches!(TrustedKeys::parse(clash.split(','), "t"), Err(TrustError::DuplicateName { .. })));
        assert!(format!("{k:?}").contains(&public), "debug shows the public half only");
    }
}
