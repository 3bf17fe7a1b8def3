//! OpenPGP keyrings as APT uses them, and gpgv-style signature checking.
//!
//! A keyring file is either binary (a concatenation of transferable public
//! keys, e.g. `/usr/share/keyrings/debian-archive-keyring.gpg`) or ASCII
//! armored (`-----BEGIN PGP PUBLIC KEY BLOCK-----`, the `.asc` files in
//! `trusted.gpg.d`). A signature is accepted if it verifies with a primary
//! key or a signing subkey whose binding to its primary verifies. Like gpgv,
//! one good signature is enough; Debian signs each InRelease with several
//! keys (current + next release key) so a keyring only needs one of them.

use std::path::{Path, PathBuf};

use pgp::composed::{Deserializable, SignedPublicKey};
use pgp::packet::Signature;
use pgp::types::KeyDetails;

use super::sources::SignedBy;

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("cannot read keyring {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("keyring {origin} holds no usable OpenPGP public key ({detail})")]
    Empty { origin: String, detail: String },
}

/// The set of keys trusted for one source.
pub struct Keyring {
    /// Human description (file names) for error messages.
    pub origin: String,
    keys: Vec<SignedPublicKey>,
}

impl Keyring {
    pub fn load(signed_by: &SignedBy) -> Result<Keyring, KeyringError> {
        match signed_by {
            SignedBy::Inline(armored) => {
                let origin = "inline Signed-By key".to_string();
                let keys = parse_keys(armored.as_bytes(), &origin)?;
                Ok(Keyring { origin, keys })
            }
            SignedBy::Keyrings(paths) => {
                let origin = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
                let mut keys = Vec::new();
                let mut problems = Vec::new();
                for p in paths {
                    let bytes = read(p)?;
                    match parse_keys(&bytes, &p.display().to_string()) {
                        Ok(k) => keys.extend(k),
                        // One broken file among trusted.gpg.d must not hide the others.
                        Err(e) => problems.push(e.to_string()),
                    }
                }
                if keys.is_empty() {
                    let detail =
                        if paths.is_empty() { "no keyring files configured".into() } else { problems.join("; ") };
                    return Err(KeyringError::Empty { origin, detail });
                }
                Ok(Keyring { origin, keys })
            }
        }
    }

    /// Number of primary keys loaded.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Key ids (16 hex digits) of primary keys and subkeys, for messages.
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for k in &self.keys {
            ids.push(k.primary_key.legacy_key_id().to_string());
            ids.extend(k.public_subkeys.iter().map(|s| s.key.legacy_key_id().to_string()));
        }
        ids
    }

    /// Does `sig` over `data` verify with any key (or bound subkey) here?
    pub fn verifies(&self, sig: &Signature, data: &[u8]) -> bool {
        for key in &self.keys {
            if sig.verify(&key.primary_key, data).is_ok() {
                return true;
            }
            for sub in &key.public_subkeys {
                if sig.verify(&sub.key, data).is_ok() && sub.verify_bindings(&key.primary_key).is_ok() {
                    return true;
                }
            }
        }
        false
    }
}

fn read(p: &Path) -> Result<Vec<u8>, KeyringError> {
    crate::bounded::read_user_file(p, crate::bounded::MAX_USER_FILE)
        .map_err(|source| KeyringError::Read { path: p.to_path_buf(), source })
}

/// Parse every public key in binary or armored bytes; keys the library
/// cannot parse (odd algorithms, old v3 keys) are skipped.
fn parse_keys(bytes: &[u8], origin: &str) -> Result<Vec<SignedPublicKey>, KeyringError> {
    let armored = bytes.trim_ascii_start().starts_with(b"-----BEGIN");
    let mut keys = Vec::new();
    let mut errors = Vec::new();
    if armored {
        // An .asc may hold several armored blocks back to back.
        let text = String::from_utf8_lossy(bytes);
        for block in text.split("-----BEGIN PGP PUBLIC KEY BLOCK-----").skip(1) {
            let block = format!("-----BEGIN PGP PUBLIC KEY BLOCK-----{block}");
            let parsed = SignedPublicKey::from_armor_many(block.as_bytes());
            match parsed {
                Ok((iter, _)) => collect(iter, &mut keys, &mut errors),
                Err(e) => errors.push(e.to_string()),
            };
        }
    } else {
        match SignedPublicKey::from_bytes_many(bytes) {
            Ok(iter) => collect(iter, &mut keys, &mut errors),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if keys.is_empty() {
        let detail = if errors.is_empty() { "no key found".to_string() } else { errors.join("; ") };
        return Err(KeyringError::Empty { origin: origin.to_string(), detail });
    }
    Ok(keys)
}

fn collect(
    iter: impl Iterator<Item = pgp::errors::Result<SignedPublicKey>>,
    keys: &mut Vec<SignedPublicKey>,
    errors: &mut Vec<String>,
) {
    for k in iter {
        match k {
            Ok(k) => keys.push(k),
            Err(e) => errors.push(e.to_string()),
        }
    }
}

/// Key ids a signature claims to be from (issuer / issuer fingerprint).
pub fn issuer_ids(sig: &Signature) -> Vec<String> {
    let mut ids: Vec<String> = sig.issuer_key_id().iter().map(|k| k.to_string()).collect();
    for fp in sig.issuer_fingerprint() {
        let hex = hex::encode(fp.as_bytes());
        // v4 fingerprints end with the key id; show the long form once.
        ids.retain(|id| !hex.ends_with(id.as_str()));
        ids.push(hex);
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

    #[test]
    fn loads_the_debian_binary_keyring() {
        if !Path::new(DEBIAN_KEYRING).exists() {
            return; // not a Debian machine
        }
        let k = Keyring::load(&SignedBy::Keyrings(vec![DEBIAN_KEYRING.into()])).unwrap();
        assert!(k.len() >= 3, "several archive keys, got {}", k.len());
        assert!(k.key_ids().iter().all(|id| id.len() == 16));
    }

    #[test]
    fn loads_armored_asc_files() {
        let p = Path::new("/etc/apt/trusted.gpg.d/debian-archive-bookworm-stable.asc");
        if !p.exists() {
            return;
        }
        let k = Keyring::load(&SignedBy::Keyrings(vec![p.into()])).unwrap();
        assert_eq!(k.len(), 1);
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.gpg");
        std::fs::write(&p, b"not a key").unwrap();
        let e = Keyring::load(&SignedBy::Keyrings(vec![p.clone()])).err().unwrap();
        assert!(e.to_string().contains("bad.gpg"), "{e}");
        let e = Keyring::load(&SignedBy::Keyrings(vec![dir.path().join("missing.gpg")])).err().unwrap();
        assert!(e.to_string().contains("missing.gpg"), "{e}");
        assert!(Keyring::load(&SignedBy::Keyrings(vec![])).is_err());
    }
}
