//! The shared cache: the local cache's `ac/` and `cas/` over plain HTTP or S3.
//!
//! A fleet's builders push what they build and every other host pulls it
//! instead of compiling, through any server that does GET, HEAD and PUT of
//! files: nginx with WebDAV (`dav_methods PUT; create_full_put_path on;`),
//! bazel-remote, or an S3 bucket (`s3://BUCKET/PREFIX`, AWS or an
//! S3-compatible server, requests signed with SigV4: see [`s3`]). The layout
//! under the base URL (or the bucket's prefix):
//!
//! ```text
//! <base>/cas/<blake3>   the .deb, named by its blake3
//! <base>/ac/<key>       the signed entry for a cache key (format: crate::trust)
//! ```
//!
//! **Pull**, on a local miss: GET the entry; a 404 is a miss. The entry is
//! used only if a trusted key signed it for this very key (see
//! [`crate::trust`]); then GET its blob and check size, blake3 and SHA-256
//! against the signed entry. Anything refused is a warning naming the entry
//! and the reason, and the build goes on locally; nothing refused reaches the
//! local store or `--out`.
//!
//! **Push**, after a local build when enabled: PUT the blob first and the
//! entry last, so a reader who finds an entry finds its blob.
//!
//! **The server is never a reason to fail a build**: a transport error, a
//! timeout or an unexpected status is a warning, and the remote is not asked
//! again for the rest of the run. The timeouts ([`CONNECT`], [`RESPONSE`],
//! [`SMALL_BUDGET`]) keep what a dead or hanging server costs under 5 s.
//!
//! Credentials: `http://user:password@host/prefix` sends HTTP basic auth (the
//! userinfo is taken out of the URL and never printed); a token
//! (`HERMOD_REMOTE_TOKEN`) is sent as `Authorization: Bearer`. Both at once
//! are refused as ambiguous. Over plain `http://` both travel in clear text.
//! An `s3://` remote takes AWS credentials instead ([`aws`]: the environment
//! or `~/.aws/credentials`); its secret key never leaves the host (only
//! signatures do), and pushing to it needs credentials.

mod aws;
mod client;
pub mod s3;
mod settings;

pub use client::{Client, CONNECT, MAX_BLOB, PER_READ, RESPONSE, SMALL_BUDGET};
pub use s3::{Credentials, S3Settings};
pub use settings::Settings;

use std::sync::Mutex;
use std::time::Instant;

use crate::cache::Manifest;
use crate::trust::{self, Entry, Rejection, SecretKey, TrustError, TrustedKeys};

/// A setting's two names: the environment variable and the config file key.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub env: &'static str,
    pub key: &'static str,
    /// Both, for messages.
    pub label: &'static str,
}

macro_rules! setting {
    ($env:literal, $key:literal) => {
        Setting { env: $env, key: $key, label: concat!($env, " (config: ", $key, ")") }
    };
}

pub const REMOTE: Setting = setting!("HERMOD_REMOTE", "remote");
pub const REMOTE_PUSH: Setting = setting!("HERMOD_REMOTE_PUSH", "remote_push");
pub const SIGNING_KEY: Setting = setting!("HERMOD_SIGNING_KEY", "signing_key");
pub const TRUSTED_KEYS: Setting = setting!("HERMOD_TRUSTED_KEYS", "trusted_keys");
pub const REMOTE_TOKEN: Setting = setting!("HERMOD_REMOTE_TOKEN", "remote_token");
pub const S3_ENDPOINT: Setting = setting!("HERMOD_S3_ENDPOINT", "s3_endpoint");
pub const S3_REGION: Setting = setting!("AWS_REGION", "s3_region");

/// A URL with any userinfo replaced, for messages.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{setting}: {why}")]
    Setting { setting: &'static str, why: String },
    #[error("{setting}: {url:?} is not a usable shared cache URL: {why}")]
    Url { setting: &'static str, url: String, why: String },
    #[error("{setting}: {error}")]
    Trust { setting: &'static str, error: TrustError },
    #[error("{method} {url}: {message}")]
    Http { method: &'static str, url: String, message: String },
    #[error("{method} {url}: the server answered HTTP {status}{hint}")]
    Status { method: &'static str, url: String, status: u16, hint: &'static str },
    /// `cache push`, or a build with `--require-push`: the packages stay in the local store.
    #[error("{count} package(s) could not be pushed to the shared cache (the warnings above say why); they are kept in the local store: `hermod cache push` uploads them later")]
    PushFailed { count: usize },
}

impl crate::exit::HasExitCode for RemoteError {
    /// Only the settings are errors: the server itself is never a reason to
    /// fail, so even a trust key that cannot be read is a bad setting here.
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            RemoteError::Setting { .. }
            | RemoteError::Url { .. }
            | RemoteError::Trust { .. }
            | RemoteError::Http { .. }
            | RemoteError::Status { .. } => crate::exit::Code::BadInput,
            RemoteError::PushFailed { .. } => crate::exit::Code::Io,
        }
    }
}

/// A result pulled from the shared cache, verified.
#[derive(Debug)]
pub struct Pulled {
    pub manifest: Manifest,
    pub bytes: Vec<u8>,
    /// The trusted key that signed the entry.
    pub signer: String,
}

/// A configured shared cache: client, trust and whether to push.
pub struct SharedCache {
    client: Client,
    trusted: TrustedKeys,
    /// Push after local builds, signing with this.
    signer: Option<SecretKey>,
    /// Why the server was given up on in this run, once it failed.
    unavailable: Mutex<Option<String>>,
}

impl SharedCache {
    /// The shared cache the settings describe, if any; every setting checked.
    pub fn from_settings(settings: &Settings) -> Result<Option<SharedCache>, RemoteError> {
        let trusted = TrustedKeys::parse(settings.trusted_keys.iter().map(String::as_str), TRUSTED_KEYS.label)
            .map_err(|error| RemoteError::Trust { setting: TRUSTED_KEYS.label, error })?;
        let Some(url) = &settings.url else {
            if settings.push {
                return Err(RemoteError::Setting {
                    setting: REMOTE_PUSH.label,
                    why: "pushing is asked for, but no shared cache is set (HERMOD_REMOTE or remote)".into(),
                });
            }
            return Ok(None);
        };
        let client = if url.starts_with("s3://") {
            if settings.token.is_some() {
                return Err(RemoteError::Setting {
                    setting: REMOTE_TOKEN.label,
                    why: "an s3:// remote signs its requests with AWS credentials; a bearer token has no use there"
                        .into(),
                });
            }
            let client = Client::s3(url, &settings.s3)?;
            if settings.push && !client.signs_s3() {
                return Err(RemoteError::Setting {
                    setting: REMOTE_PUSH.label,
                    why: format!(
                        "pushing to {} needs S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                         or a profile in ~/.aws/credentials (AWS_PROFILE)",
                        client.base()
                    ),
                });
            }
            client
        } else {
            Client::new(url, settings.token.as_deref())?
        };
        let signer = match (&settings.signing_key, settings.push) {
            (Some(path), true) => {
                Some(SecretKey::read(path).map_err(|error| RemoteError::Trust { setting: SIGNING_KEY.label, error })?)
            }
            (None, true) => {
                return Err(RemoteError::Setting {
                    setting: REMOTE_PUSH.label,
                    why: "pushing needs a key to sign the entries with: set HERMOD_SIGNING_KEY or signing_key \
                          (make one with `hermod cache keygen FILE`)"
                        .into(),
                })
            }
            (_, false) => None,
        };
        if trusted.is_empty() && signer.is_none() {
            return Err(RemoteError::Setting {
                setting: TRUSTED_KEYS.label,
                why: format!(
                    "a shared cache is set ({}) but no trusted key: only entries signed by a trusted key are used, \
                     so none could be",
                    client.base()
                ),
            });
        }
        Ok(Some(SharedCache { client, trusted, signer, unavailable: Mutex::new(None) }))
    }

    pub fn base(&self) -> &str {
        self.client.base()
    }

    fn given_up(&self) -> bool {
        self.unavailable.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Note a transport failure: said once, and the server is left alone after it.
    fn give_up(&self, error: &RemoteError, started: Instant, doing: &str) {
        let mut unavailable = self.unavailable.lock().unwrap_or_else(|e| e.into_inner());
        if unavailable.is_none() {
            tracing::warn!(
                "shared cache {} unavailable ({error}, after {:.1} s); {doing}, and not asking it again in this run",
                self.client.base(),
                started.elapsed().as_secs_f64()
            );
            *unavailable = Some(error.to_string());
        }
    }

    fn reject(&self, key: &str, why: &Rejection) {
        tracing::warn!("shared cache: rejected {}: {why}; building locally", self.client.url(&format!("ac/{key}")));
    }

    /// The signed entry for `key` (a build for `kernel`), verified against the
    /// trusted keys, with its signer; None on a miss, a refused entry (warned)
    /// or an unavailable server (warned once).
    fn verified_entry(&self, key: &str, kernel: &str, doing: &str) -> Option<(Entry, String)> {
        if self.trusted.is_empty() || self.given_up() {
            return None;
        }
        let started = Instant::now();
        let text = match self.client.get(&format!("ac/{key}"), trust::MAX_ENTRY_BYTES) {
            Ok(Some(text)) => text,
            Ok(None) => return None,
            Err(e) => {
                self.give_up(&e, started, doing);
                return None;
            }
        };
        match Entry::parse(&text).and_then(|entry| {
            let signer = entry.verify(key, &self.trusted)?;
            if entry.kernel != kernel {
                return Err(Rejection::WrongKernel { wanted: kernel.into(), signed: entry.kernel.clone() });
            }
            if entry.size > MAX_BLOB {
                return Err(Rejection::Malformed(format!("a blob of {} bytes is more than hermod takes", entry.size)));
            }
            Ok((entry, signer))
        }) {
            Ok(entry) => Some(entry),
            Err(why) => {
                self.reject(key, &why);
                None
            }
        }
    }

    /// Whether the server holds a usable output for `key`: a trusted, signed
    /// entry for `kernel` and the blob it names (asked with HEAD, not
    /// downloaded). The signer, if so. What `hermod plan` marks as cached.
    pub fn holds(&self, key: &str, kernel: &str) -> Option<String> {
        let (entry, signer) = self.verified_entry(key, kernel, "marking entries as not cached")?;
        let started = Instant::now();
        match self.client.head(&format!("cas/{}", entry.blake3)) {
            Ok(Some(size)) if size == entry.size => Some(signer),
            Ok(_) => None,
            Err(e) => {
                self.give_up(&e, started, "marking entries as not cached");
                None
            }
        }
    }

    /// The verified output for `key` (a build for `kernel`), or None: a miss,
    /// a refused entry (warned) or an unavailable server (warned once).
    pub fn pull(&self, key: &str, kernel: &str) -> Option<Pulled> {
        let (entry, signer) = self.verified_entry(key, kernel, "building locally")?;
        let started = Instant::now();
        let bytes = match self.client.get(&format!("cas/{}", entry.blake3), entry.size) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                tracing::warn!(
                    "shared cache: {} names blob {} which the server does not have; building locally",
                    self.client.url(&format!("ac/{key}")),
                    entry.blake3
                );
                return None;
            }
            Err(e) => {
                self.give_up(&e, started, "building locally");
                return None;
            }
        };
        if let Err(why) = entry.check_blob(&bytes) {
            self.reject(key, &why);
            return None;
        }
        let manifest = Manifest::new(&entry.package, &entry.version, &entry.kernel, &entry.deb, &bytes);
        Some(Pulled { manifest, bytes, signer })
    }

    /// Whether [`SharedCache::push`] uploads anything.
    pub fn pushes(&self) -> bool {
        self.signer.is_some()
    }

    /// Upload a local build's output, signed: blob first, entry last. A
    /// failure is a warning (the build itself succeeded); true if pushed.
    pub fn push(&self, key: &str, manifest: &Manifest, bytes: &[u8]) -> bool {
        let Some(signer) = &self.signer else { return false };
        if self.given_up() {
            tracing::warn!("shared cache {} was unavailable earlier; not pushing {key}", self.client.base());
            return false;
        }
        let started = Instant::now();
        let mut entry = Entry::new(key, manifest);
        entry.sign(signer);
        let pushed = self
            .client
            .put(&format!("cas/{}", manifest.blake3), bytes)
            .and_then(|()| self.client.put(&format!("ac/{key}"), entry.document().as_bytes()));
        match pushed {
            Ok(()) => true,
            Err(e) => {
                self.give_up(&e, started, "the build is kept locally but not shared");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("fleet.key");
        let key = SecretKey::generate("fleet").unwrap();
        key.write_new(&key_path).unwrap();
        let trusted = vec![key.public().to_string()];
        let url = Some("http://127.0.0.1:9".to_string());
        let ok = |s: Settings| SharedCache::from_settings(&s).map(|c| c.map(|c| c.pushes()));
        let err = |s: Settings| SharedCache::from_settings(&s).err().expect("refused").to_string();

        assert_eq!(ok(Settings::default()).unwrap(), None);
        assert_eq!(
            ok(Settings { url: url.clone(), trusted_keys: trusted.clone(), ..Default::default() }).unwrap(),
            Some(false)
        );
        let pusher =
            Settings { url: url.clone(), push: true, signing_key: Some(key_path.clone()), ..Default::default() };
        assert_eq!(ok(pusher).unwrap(), Some(true), "a pusher need not trust anyone");

        let e = err(Settings { url: url.clone(), push: true, trusted_keys: trusted.clone(), ..Default::default() });
        assert!(e.contains("pushing needs a key") && e.contains("hermod cache keygen"), "{e}");
        let e = err(Settings { push: true, signing_key: Some(key_path.clone()), ..Default::default() });
        assert!(e.contains("no shared cache is set"), "{e}");
        let e = err(Settings { url: url.clone(), ..Default::default() });
        assert!(e.contains("no trusted key"), "{e}");
        let e = err(Settings { url: url.clone(), trusted_keys: vec!["x".into()], ..Default::default() });
        assert!(e.starts_with("HERMOD_TRUSTED_KEYS (config: trusted_keys): ") && e.contains("\"x\""), "{e}");
        let s3 = Some("s3://fleet-cache/hermod".to_string());
        let e =
            err(Settings { url: s3.clone(), push: true, signing_key: Some(key_path.clone()), ..Default::default() });
        assert!(e.contains("pushing to s3://fleet-cache/hermod needs S3 credentials"), "{e}");
        let e = err(Settings {
            url: s3.clone(),
            trusted_keys: trusted.clone(),
            token: Some("t".into()),
            ..Default::default()
        });
        assert!(e.contains("a bearer token has no use there"), "{e}");
        let anonymous_reader = Settings { url: s3, trusted_keys: trusted.clone(), ..Default::default() };
        assert_eq!(ok(anonymous_reader).unwrap(), Some(false), "a public-read bucket needs no credentials");
        let missing = dir.path().join("missing.key");
        let e = err(Settings { url, push: true, signing_key: Some(missing), ..Default::default() });
        assert!(e.starts_with("HERMOD_SIGNING_KEY (config: signing_key): ") && e.contains("missing.key"), "{e}");
    }

    /// A server that is down (closed port) or hangs (accepts, never answers)
    /// costs a pull less than 5 s, and the next pull nothing.

    #[test]
    fn a_dead_or_hanging_server_is_given_up_quickly() {
        let key = SecretKey::generate("k").unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        // Never accepted: the kernel completes the handshake, nobody answers.
        let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        for addr in [closed, hanging.local_addr().unwrap()] {
            let cache = SharedCache::from_settings(&Settings {
                url: Some(format!("http://{addr}")),
                trusted_keys: vec![key.public().to_string()],
                ..Default::default()
            })
            .unwrap()
            .unwrap();
            let started = Instant::now();
            assert!(cache.pull(&"a".repeat(64), "k").is_none());
            let first = started.elapsed();
            assert!(first < Duration::from_secs(5), "{addr}: {first:?}");
            assert!(cache.given_up());
            let again = Instant::now();
            assert!(cache.pull(&"b".repeat(64), "k").is_none());
            assert!(again.elapsed() < Duration::from_millis(50), "not asked again");
        }
        drop(hanging);
    }
}
