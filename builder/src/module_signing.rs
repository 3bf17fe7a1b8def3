//! Module signing for Secure Boot, with the build root's own `sign-file`.
//!
//! A kernel that enforces module signatures (Secure Boot with lockdown, or
//! `CONFIG_MODULE_SIG_FORCE`) loads a module only if it ends in a signature
//! by a key the kernel trusts: the built-in keys, or a Machine Owner Key
//! (MOK) enrolled with `mokutil --import`. The signature is a detached
//! PKCS#7 (CMS) blob over the module's bytes, appended together with a
//! small trailer and the magic `~Module signature appended~\n`.
//!
//! DKMS signs with a per-host MOK it generates itself, so every machine's
//! module differs. hermod signs once with one fleet key: the key and
//! certificate come from the config (`mok_signing_key`, `mok_certificate`,
//! the names of DKMS's `framework.conf`) or from `--mok-signing-key` /
//! `--mok-certificate`. Modules are signed after stripping (a signature
//! covers the bytes it was made over) and before compression, with the
//! kernel's `scripts/sign-file` from the headers in the build root and the
//! hash the kernel's `.config` names (`CONFIG_MODULE_SIG_HASH`), in a
//! sandbox step of its own in which nothing of the module's build runs.
//! `sign-file` adds no signing time (it signs with `CMS_NOATTR`), so an RSA
//! key, whose PKCS#1 v1.5 signatures are deterministic, gives the same
//! signed module on every build; an ECDSA signature is randomized by nature.
//!
//! What enters the cache key is the certificate's SHA-256 fingerprint (the
//! one `openssl x509 -fingerprint -sha256` prints), never the key; the hash
//! algorithm follows from the build root, which the key already holds. The key and certificate must belong together: `sign-file`
//! refuses a mismatched pair, and the build fails with its message.
//!
//! The key never becomes a file on the host, not even for a moment: hermod
//! reads it (as root, from the path the administrator gave) and hands the
//! bytes to the sign step's sandbox as a `hermod_sandbox::Secret`, over the
//! pipe that carries the spec. The sandbox's pid 1 writes it into a tmpfs of
//! that sandbox's own mount namespace ([`KEY_INSIDE`], 0400), and a root
//! caller runs that sandbox as a host uid of its own
//! (`hermod_sandbox::private_host_ids`), not as the `nobody` other host
//! services share, so no other uid can reach it through `/proc/<pid>/root`
//! or ptrace either. The certificate is public and travels as a file.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hermod_sandbox::Secret;
use sha2::{Digest, Sha256};

/// Where the sign step finds the key: a private tmpfs of that sandbox alone.
pub const KEY_INSIDE: &str = "/hermod/secret/signing.key";

/// Appended last to every signed module.
pub const SIGNATURE_MAGIC: &[u8] = b"~Module signature appended~\n";

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("module signing needs both a key and a certificate; only the {given} was given (--mok-signing-key and --mok-certificate, or mok_signing_key and mok_certificate in the config)")]
    Incomplete { given: &'static str },
    #[error("module signing {what} {path}: {source}")]
    Read { what: &'static str, path: PathBuf, source: io::Error },
    #[error("module signing certificate {path}: {why}")]
    BadCertificate { path: PathBuf, why: String },
    #[error("module signing key {path}: {why}")]
    BadKey { path: PathBuf, why: &'static str },
    #[error("the kernel's .config names no usable CONFIG_MODULE_SIG_HASH ({0:?})")]
    NoHash(String),
}

impl crate::exit::HasExitCode for SigningError {
    /// A key or certificate hermod cannot use is bad input.
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            SigningError::Incomplete { .. }
            | SigningError::Read { .. }
            | SigningError::BadCertificate { .. }
            | SigningError::BadKey { .. }
            | SigningError::NoHash { .. } => crate::exit::Code::BadInput,
        }
    }
}

/// A key and certificate to sign modules with.
#[derive(Clone)]
pub struct ModuleSigning {
    key: Vec<u8>,
    certificate: Vec<u8>,
    /// SHA-256 of the certificate's DER encoding, lower-case hex.
    pub fingerprint: String,
}

impl std::fmt::Debug for ModuleSigning {
    /// Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleSigning").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

impl ModuleSigning {
    /// Both paths or neither: `None` when signing is not asked for.
    pub fn from_paths(key: Option<&Path>, cert: Option<&Path>) -> Result<Option<ModuleSigning>, SigningError> {
        match (key, cert) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(SigningError::Incomplete { given: "key" }),
            (None, Some(_)) => Err(SigningError::Incomplete { given: "certificate" }),
            (Some(key), Some(cert)) => ModuleSigning::load(key, cert).map(Some),
        }
    }

    pub fn load(key_path: &Path, cert_path: &Path) -> Result<ModuleSigning, SigningError> {
        let key = crate::bounded::read_user_file(key_path, crate::bounded::MAX_USER_FILE)
            .map_err(|source| SigningError::Read { what: "key", path: key_path.to_owned(), source })?;
        let certificate = crate::bounded::read_user_file(cert_path, crate::bounded::MAX_USER_FILE)
            .map_err(|source| SigningError::Read { what: "certificate", path: cert_path.to_owned(), source })?;
        check_key(&key).map_err(|why| SigningError::BadKey { path: key_path.to_owned(), why })?;
        let der = certificate_der(&certificate)
            .map_err(|why| SigningError::BadCertificate { path: cert_path.to_owned(), why })?;
        let fingerprint = hex::encode(Sha256::digest(&der));
        Ok(ModuleSigning { key, certificate, fingerprint })
    }

    /// The cache key's line for this signer. (The hash algorithm comes from
    /// the kernel's .config, so from the build root, which the key holds.)
    pub fn key_param(&self) -> String {
        format!("module-signing=sha256-fingerprint:{}\n", self.fingerprint)
    }

    /// The key as a sandbox secret: it exists as a file only inside the
    /// sign step's own mount namespace, at [`KEY_INSIDE`] (see
    /// `hermod_sandbox::Secret`); it is never written on the host.
    pub fn key_secret(&self) -> Secret {
        Secret { path: KEY_INSIDE.into(), contents: self.key.clone() }
    }

    /// Writes the certificate (public) into `dir` as `signing.crt`.
    pub fn write_certificate(&self, dir: &Path) -> io::Result<()> {
        fs::write(dir.join("signing.crt"), &self.certificate)
    }
}

/// The kernel's module signature hash (`CONFIG_MODULE_SIG_HASH`).
pub fn signature_hash(kernel_config: &str) -> Result<String, SigningError> {
    let value = kernel_config
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_MODULE_SIG_HASH="))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .unwrap_or_default();
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Ok(value)
    } else {
        Err(SigningError::NoHash(value))
    }
}

/// A PEM private key that is not encrypted (sign-file would ask for a pass
/// phrase on a terminal the sandbox does not have), or DER.
fn check_key(key: &[u8]) -> Result<(), &'static str> {
    let text = String::from_utf8_lossy(key);
    if text.contains("-----BEGIN") {
        if text.contains("ENCRYPTED") {
            return Err("is encrypted; give an unencrypted key (as DKMS's MOK key is), kept readable by root only");
        }
        if !text.contains("PRIVATE KEY-----") {
            return Err("is PEM but holds no PRIVATE KEY block");
        }
        return Ok(());
    }
    if key.first() == Some(&0x30) {
        return Ok(());
    }
    Err("is neither a PEM nor a DER private key")
}

/// The DER bytes of a PEM or DER X.509 certificate.
fn certificate_der(cert: &[u8]) -> Result<Vec<u8>, String> {
    if cert.first() == Some(&0x30) {
        return Ok(cert.to_vec());
    }
    let text = std::str::from_utf8(cert).map_err(|_| "is neither PEM nor DER".to_owned())?;
    let begin = "-----BEGIN CERTIFICATE-----";
    let start = text.find(begin).ok_or("holds no BEGIN CERTIFICATE block")? + begin.len();
    let end = text[start..].find("-----END CERTIFICATE-----").ok_or("has no END CERTIFICATE line")? + start;
    let body: String = text[start..end].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(body).map_err(|e| format!("bad base64 in the PEM block: {e}"))
}

/// The script of the sign step: sign each `/hermod/unsigned/module-N.ko`
/// into `/hermod/out/module-N.ko`.
pub fn sign_script(headers_dir: &str, hash: &str, count: usize) -> String {
    let mut s = String::from("#!/bin/bash\n# Generated by hermod: sign the built modules.\nset -e\n");
    for i in 0..count {
        let _ = writeln!(
            s,
            "{headers_dir}/scripts/sign-file {hash} {KEY_INSIDE} /hermod/unsigned/signing.crt \
             /hermod/unsigned/module-{i}.ko /hermod/out/module-{i}.ko"
        );
    }
    s
}

/// Splits a signed module into (content, PKCS#7 signature), or `None` if
/// it carries no appended signature.
pub fn split_signed(module: &[u8]) -> Option<(&[u8], &[u8])> {
    // struct module_signature: algo, hash, id_type, signer_len, key_id_len,
    // 3 pad bytes, then the signature length as a big-endian u32.
    const TRAILER: usize = 12;
    let body = module.strip_suffix(SIGNATURE_MAGIC)?;
    let trailer = body.get(body.len().checked_sub(TRAILER)?..)?;
    let sig_len = u32::from_be_bytes(trailer[8..12].try_into().ok()?) as usize;
    let rest = &body[..body.len() - TRAILER];
    let content_len = rest.len().checked_sub(sig_len)?;
    Some((&rest[..content_len], &rest[content_len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";

    #[test]
    fn pem_and_der_certificates_have_the_same_fingerprint() {
        let der = certificate_der(CERT_PEM.as_bytes()).unwrap();
        assert_eq!(der, [0x30, 0x03, 0x02, 0x01, 0x01]);
        assert_eq!(certificate_der(&der).unwrap(), der);
        assert!(certificate_der(b"hello").is_err());
        assert!(certificate_der(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----").is_err());
    }

    #[test]
    fn keys_are_checked_before_the_build() {
        assert!(check_key(b"-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n").is_ok());
        assert!(check_key(b"-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----\n").is_ok());
        assert!(check_key(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n").unwrap_err().contains("encrypted"));
        assert!(check_key(b"-----BEGIN CERTIFICATE-----\nx\n").is_err());
        assert!(check_key(b"plain text").is_err());
    }

    #[test]
    fn one_of_key_and_certificate_alone_is_an_error() {
        let e = ModuleSigning::from_paths(Some(Path::new("/k")), None).unwrap_err();
        assert!(e.to_string().contains("only the key was given"), "{e}");
        assert!(ModuleSigning::from_paths(None, None).unwrap().is_none());
        let e = ModuleSigning::from_paths(Some(Path::new("/nonexistent/k")), Some(Path::new("/c"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/k"), "{e}");
    }

    #[test]
    fn the_hash_comes_from_the_kernel_config() {
        assert_eq!(signature_hash("CONFIG_X=y\nCONFIG_MODULE_SIG_HASH=\"sha256\"\n").unwrap(), "sha256");
        assert!(signature_hash("CONFIG_X=y\n").is_err());
        assert!(signature_hash("CONFIG_MODULE_SIG_HASH=\"sha256; rm -rf /\"\n").is_err());
    }

    #[test]
    fn a_signed_module_splits_into_content_and_signature() {
        let mut m = b"ELF...module".to_vec();
        m.extend_from_slice(b"SIG!");
        m.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
        m.extend_from_slice(SIGNATURE_MAGIC);
        let (content, sig) = split_signed(&m).unwrap();
        assert_eq!(content, b"ELF...module");
        assert_eq!(sig, b"SIG!");
        assert!(split_signed(b"unsigned module").is_none());
    }
}
