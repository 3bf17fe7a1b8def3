//! The repository's OpenPGP signing key, and the clearsigned `InRelease`.
//!
//! apt trusts a repository through one file: `dists/<suite>/InRelease`, the
//! Release text wrapped in an OpenPGP *cleartext signature*, checked by gpgv
//! against the key that the farm's `.sources` stanza names in `Signed-By:`.
//!
//! The key is a v4 key with one Ed25519 primary key in the legacy EdDSA
//! encoding (algorithm 22), flagged to certify and to sign. That is the form
//! bookworm's gpgv (GnuPG 2.2) understands; the RFC 9580 Ed25519 encoding
//! and v6 keys are refused by it. No subkeys: the primary key signs, which
//! gpgv accepts when the key carries the sign flag.
//!
//! Files: `PREFIX.key` holds the armored secret key, unprotected (the publish
//! job runs unattended), mode 0600, never overwritten; `PREFIX.asc` the armored
//! public key, the file a farm machine names in `Signed-By:`.
//!
//! Determinism: Ed25519 signatures are deterministic, a v4 signature has no
//! salt, and the signature's creation time is given by the caller (derived
//! from the inputs, see `release.rs`), so the same text, key and time give the
//! same InRelease bytes. gpgv refuses a signature older than its key ("key is
//! newer than the signature"), so [`SigningKey::created`] is the earliest time
//! a signature may carry.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, Deserializable, KeyType, SecretKeyParamsBuilder, SignedPublicKey,
    SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::public_key::PublicKeyAlgorithm;
use pgp::packet::{SignatureConfig, SignatureType, Subpacket, SubpacketData};
use pgp::types::{KeyDetails, KeyVersion, Password, Timestamp};

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read the repository signing key {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "{path} is not an armored OpenPGP secret key ({detail}); make one with `hermod repo keygen --out PREFIX` \
         and pass PREFIX.key"
    )]
    NotASecretKey { path: PathBuf, detail: String },
    #[error("{path}: {problem}")]
    Unusable { path: PathBuf, problem: String },
    #[error("{path} exists; a key file is never overwritten (choose another --out PREFIX or remove it)")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{what}: {detail}")]
    Pgp { what: &'static str, detail: String },
    #[error("the key's user id must be one line of printable text, got {0:?}")]
    BadName(String),
}

impl crate::exit::HasExitCode for SignError {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            SignError::Write { .. } => crate::exit::Code::Io,
            SignError::Read { .. }
            | SignError::NotASecretKey { .. }
            | SignError::Unusable { .. }
            | SignError::Exists { .. }
            | SignError::Pgp { .. }
            | SignError::BadName { .. } => crate::exit::Code::BadInput,
        }
    }
}

fn pgp_error(what: &'static str) -> impl Fn(pgp::errors::Error) -> SignError {
    move |e| SignError::Pgp { what, detail: e.to_string() }
}

/// A secret key able to sign InRelease files.
pub struct SigningKey {
    secret: SignedSecretKey,
    /// Where it came from, for messages.
    pub origin: String,
}

/// Names the key, never its secret.
impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("origin", &self.origin).field("fingerprint", &self.fingerprint()).finish()
    }
}

impl SigningKey {
    /// A new key for the user id `name`, created at `created` (Unix seconds).
    pub fn generate(name: &str, created: u32) -> Result<SigningKey, SignError> {
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(SignError::BadName(name.into()));
        }
        let mut params = SecretKeyParamsBuilder::default();
        params
            .version(KeyVersion::V4)
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .created_at(Timestamp::from_secs(created))
            .preferred_hash_algorithms(vec![HashAlgorithm::Sha512, HashAlgorithm::Sha256].into())
            .primary_user_id(name.into());
        let params = params.build().map_err(|e| SignError::Pgp { what: "key parameters", detail: e.to_string() })?;
        let secret = params.generate(rand::thread_rng()).map_err(pgp_error("generating the key"))?;
        Ok(SigningKey { secret, origin: "a new key".into() })
    }

    /// Read an armored secret key file and check that it can sign.
    pub fn read(path: &Path) -> Result<SigningKey, SignError> {
        let bytes = crate::bounded::read_user_file(path, crate::bounded::MAX_USER_FILE)
            .map_err(|source| SignError::Read { path: path.into(), source })?;
        let not_key = |detail: String| SignError::NotASecretKey { path: path.into(), detail };
        if bytes.windows(17).any(|w| w == b"PUBLIC KEY BLOCK-") {
            return Err(not_key("that is a public key (PREFIX.asc); the secret key is PREFIX.key".into()));
        }
        let (secret, _) = SignedSecretKey::from_armor_single(&bytes[..]).map_err(|e| not_key(e.to_string()))?;
        let unusable = |problem: &str| SignError::Unusable { path: path.into(), problem: problem.into() };
        secret.verify_bindings().map_err(|e| unusable(&format!("its self-signatures do not verify: {e}")))?;
        if secret.primary_key.secret_params().is_encrypted() {
            return Err(unusable(
                "the secret key is protected by a passphrase; publishing runs unattended, so hermod needs an \
                 unprotected key file (mode 0600)",
            ));
        }
        let signing = secret.details.users.iter().flat_map(|u| &u.signatures).any(|s| s.key_flags().sign());
        if !signing {
            return Err(unusable("the primary key is not flagged for signing (hermod signs with the primary key)"));
        }
        if !matches!(
            secret.primary_key.algorithm(),
            PublicKeyAlgorithm::EdDSALegacy | PublicKeyAlgorithm::RSA | PublicKeyAlgorithm::ECDSA
        ) {
            return Err(unusable(&format!(
                "algorithm {:?} is not one bookworm's gpgv verifies (use `hermod repo keygen`)",
                secret.primary_key.algorithm()
            )));
        }
        Ok(SigningKey { secret, origin: path.display().to_string() })
    }

    /// The key's creation time, or a later self-signature's: no signature
    /// may be older (gpgv: "key … was created … seconds in the future").
    pub fn created(&self) -> i64 {
        let sigs = self.secret.details.users.iter().flat_map(|u| &u.signatures);
        let newest = sigs.filter_map(|s| s.created()).map(|t| t.as_secs()).max().unwrap_or(0);
        i64::from(self.secret.primary_key.created_at().as_secs().max(newest))
    }

    /// The fingerprint, upper-case hex, as gpg prints it.
    pub fn fingerprint(&self) -> String {
        hex::encode_upper(self.secret.primary_key.fingerprint().as_bytes())
    }

    /// The public key, ASCII-armored (the `.asc` a farm names in `Signed-By:`).
    pub fn public_armored(&self) -> Result<String, SignError> {
        let public: SignedPublicKey = self.secret.to_public_key();
        public.to_armored_string(ArmorOptions::default()).map_err(pgp_error("armoring the public key"))
    }

    fn secret_armored(&self) -> Result<String, SignError> {
        self.secret.to_armored_string(ArmorOptions::default()).map_err(pgp_error("armoring the secret key"))
    }

    /// Write `PREFIX.key` (secret, 0600) and `PREFIX.asc` (public); neither
    /// may exist. Returns both paths.
    pub fn write_new(&self, prefix: &Path) -> Result<(PathBuf, PathBuf), SignError> {
        let with = |ext: &str| {
            let mut p = prefix.as_os_str().to_owned();
            p.push(ext);
            PathBuf::from(p)
        };
        let (key, asc) = (with(".key"), with(".asc"));
        for path in [&key, &asc] {
            if fs::symlink_metadata(path).is_ok() {
                return Err(SignError::Exists { path: path.clone() });
            }
        }
        write_new_file(&key, self.secret_armored()?.as_bytes(), 0o600)?;
        if let Err(e) = write_new_file(&asc, self.public_armored()?.as_bytes(), 0o644) {
            // Both or neither: a secret key without its public half would only confuse.
            let _ = fs::remove_file(&key);
            return Err(e);
        }
        Ok((key, asc))
    }

    /// `text` as a cleartext-signed message, signed at `time` (Unix seconds).
    pub fn clearsign(&self, text: &str, time: i64) -> Result<String, SignError> {
        let key = &self.secret.primary_key;
        let time = u32::try_from(time).map_err(|_| SignError::Pgp {
            what: "signing",
            detail: format!("signature time {time} is outside OpenPGP's range"),
        })?;
        let mut config = SignatureConfig::v4(SignatureType::Text, key.algorithm(), HashAlgorithm::Sha512);
        let subpacket = |data| Subpacket::regular(data).map_err(pgp_error("signature subpacket"));
        config.hashed_subpackets = vec![
            subpacket(SubpacketData::SignatureCreationTime(Timestamp::from_secs(time)))?,
            subpacket(SubpacketData::IssuerFingerprint(key.fingerprint()))?,
        ];
        config.unhashed_subpackets = vec![subpacket(SubpacketData::IssuerKeyId(key.legacy_key_id()))?];
        let message =
            CleartextSignedMessage::new(text, config, key, &Password::empty()).map_err(pgp_error("signing"))?;
        message.to_armored_string(ArmorOptions::default()).map_err(pgp_error("armoring the signature"))
    }
}

/// Create `path` (never replacing anything) with `mode`, write, fsync; on
/// failure remove what was begun.
fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SignError> {
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            SignError::Exists { path: path.into() }
        } else {
            SignError::Write { path: path.into(), source }
        }
    })?;
    if let Err(source) = file.write_all(bytes).and_then(|()| file.sync_all()) {
        let _ = fs::remove_file(path);
        return Err(SignError::Write { path: path.into(), source });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt::keyring::Keyring;
    use crate::apt::release::verify_clearsigned;
    use crate::apt::sources::SignedBy;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    const CREATED: u32 = 1_700_000_000;

    fn key_files() -> (tempfile::TempDir, SigningKey, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate("hermod test repository <repo@example.org>", CREATED).unwrap();
        let (secret, public) = key.write_new(&dir.path().join("repo")).unwrap();
        (dir, key, secret, public)
    }

    #[test]
    fn keygen_writes_both_files_once_and_reads_back() {
        let (dir, key, secret, public) = key_files();
        assert_eq!(fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&public).unwrap().permissions().mode() & 0o777, 0o644);
        assert!(fs::read_to_string(&public).unwrap().starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        let again = key.write_new(&dir.path().join("repo")).unwrap_err();
        assert!(matches!(again, SignError::Exists { .. }), "{again}");
        let back = SigningKey::read(&secret).unwrap();
        assert_eq!(back.fingerprint(), key.fingerprint());
        assert!(back.created() >= i64::from(CREATED));
        // The public key where the secret one belongs, garbage, and no file at all.
        let e = SigningKey::read(&public).unwrap_err().to_string();
        assert!(e.contains("that is a public key"), "{e}");
        fs::write(dir.path().join("junk"), "hello\n").unwrap();
        let e = SigningKey::read(&dir.path().join("junk")).unwrap_err().to_string();
        assert!(e.contains("not an armored OpenPGP secret key"), "{e}");
        assert!(matches!(SigningKey::read(&dir.path().join("none")), Err(SignError::Read { .. })));
        assert!(SigningKey::generate("two\nlines", CREATED).is_err());
    }

    #[test]
    fn clearsigned_text_verifies_with_hermods_own_verifier_and_is_deterministic() {
        let (_dir, key, _secret, public) = key_files();
        let text = "Suite: hermod\nSHA256:\n 00 1 main/binary-amd64/Packages\n-dashed line\n";
        let signed = key.clearsign(text, i64::from(CREATED) + 60).unwrap();
        assert_eq!(signed, key.clearsign(text, i64::from(CREATED) + 60).unwrap(), "same inputs, same bytes");
        assert_ne!(signed, key.clearsign(text, i64::from(CREATED) + 61).unwrap(), "the time is signed");
        let keyring = Keyring::load(&SignedBy::Keyrings(vec![public])).unwrap();
        let verified = verify_clearsigned(signed.as_bytes(), &keyring, "test").unwrap();
        assert_eq!(verified, text);
        // One changed byte of the signed text and it no longer verifies.
        let tampered = signed.replace("Suite: hermod", "Suite: hermoD");
        assert!(verify_clearsigned(tampered.as_bytes(), &keyring, "test").is_err());
        // Another key's signature is refused.
        let other = SigningKey::generate("other <o@example.org>", CREATED).unwrap();
        let by_other = other.clearsign(text, i64::from(CREATED) + 60).unwrap();
        assert!(verify_clearsigned(by_other.as_bytes(), &keyring, "test").is_err());
    }

    /// The real verifier apt uses: gpgv with a keyring dearmored from PREFIX.asc.
    #[test]
    fn gpgv_accepts_the_signature_and_refuses_tampering() {
        if Command::new("gpgv").arg("--version").output().is_err() {
            panic!("gpgv is not installed (apt-get install gpgv; apt depends on it)");
        }
        let (dir, key, _secret, public) = key_files();
        let keyring = dir.path().join("repo.gpg");
        let dearmored = dearmor(&fs::read_to_string(&public).unwrap());
        fs::write(&keyring, dearmored).unwrap();
        let text = "Origin: hermod\nSuite: hermod\n";
        let signed = dir.path().join("InRelease");
        fs::write(&signed, key.clearsign(text, key.created()).unwrap()).unwrap();
        let gpgv = |file: &Path| {
            Command::new("gpgv").arg("--keyring").arg(&keyring).arg(file).env("GNUPGHOME", dir.path()).output().unwrap()
        };
        let out = gpgv(&signed);
        assert!(out.status.success(), "gpgv refused: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains(&key.fingerprint()[24..]), "names the key");
        let tampered = dir.path().join("InRelease.bad");
        fs::write(&tampered, fs::read_to_string(&signed).unwrap().replace("Origin: hermod", "Origin: hermoD")).unwrap();
        let out = gpgv(&tampered);
        assert!(!out.status.success(), "gpgv accepted a tampered file");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("BAD signature"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The binary packets of an armored block (what `gpg --dearmor` does).
    pub(crate) fn dearmor(armored: &str) -> Vec<u8> {
        let mut reader = pgp::armor::Dearmor::new(armored.as_bytes());
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut bytes).unwrap();
        bytes
    }
}
