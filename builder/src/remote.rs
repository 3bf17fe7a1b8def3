//! The shared cache: the local cache's `ac/` and `cas/` over plain HTTP.
//!
//! A fleet's builders push what they build and every other host pulls it
//! instead of compiling, through any server that does GET, HEAD and PUT of
//! files: nginx with WebDAV (`dav_methods PUT; create_full_put_path on;`),
//! S3-compatible stores, bazel-remote. The layout under the base URL:
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

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::cache::Manifest;
use crate::config::Config;
use crate::trust::{self, Entry, Rejection, SecretKey, TrustError, TrustedKeys};

/// Time to set up a TCP connection (and TLS).
pub const CONNECT: Duration = Duration::from_secs(2);
/// Time from the request's end to the response's headers.
pub const RESPONSE: Duration = Duration::from_secs(3);
/// Longest silence while reading a body.
pub const PER_READ: Duration = Duration::from_secs(2);
/// Whole-request budget for entries and other small requests.
pub const SMALL_BUDGET: Duration = Duration::from_millis(4500);
/// Blobs get [`SMALL_BUDGET`] plus one second per this many bytes.
const BLOB_BYTES_PER_SECOND: u64 = 2 << 20;
/// No blob above this size is fetched or pushed (module .debs are KiB to MiB).
pub const MAX_BLOB: u64 = 1 << 30;

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
}

/// The shared-cache settings, from the environment and the config file
/// (the environment wins; an empty variable unsets the file's value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub url: Option<String>,
    pub push: bool,
    pub signing_key: Option<PathBuf>,
    pub trusted_keys: Vec<String>,
    pub token: Option<String>,
}

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

impl Settings {
    /// Resolve from `env` (a lookup, so tests need not touch the process environment).
    pub fn resolve(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, RemoteError> {
        let text = |setting: Setting, from_config: Option<String>| match env(setting.env) {
            Some(v) if v.trim().is_empty() => None,
            Some(v) => Some(v.trim().to_owned()),
            None => from_config,
        };
        let push = match env(REMOTE_PUSH.env) {
            None => config.remote_push.unwrap_or(false),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "" | "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err(RemoteError::Setting {
                        setting: REMOTE_PUSH.label,
                        why: format!("{v:?} is not 1 or 0 (or true/false, yes/no, on/off)"),
                    })
                }
            },
        };
        let trusted_keys = match env(TRUSTED_KEYS.env) {
            Some(v) => v.split(',').map(str::to_owned).collect(),
            None => config.trusted_keys.as_ref().map(|k| k.items()).unwrap_or_default(),
        };
        Ok(Settings {
            url: text(REMOTE, config.remote.clone()),
            push,
            signing_key: text(SIGNING_KEY, config.signing_key.as_ref().map(|p| p.display().to_string()))
                .map(PathBuf::from),
            trusted_keys,
            token: text(REMOTE_TOKEN, config.remote_token.clone()),
        })
    }
}

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

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// An HTTP client for one shared cache's base URL.
pub struct Client {
    /// `scheme://host[:port][/prefix]`, no userinfo, no trailing `/`.
    base: String,
    authorization: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client for `url` (`http://` or `https://`, optional `user:password@`,
    /// optional path prefix), with an optional bearer `token`.
    pub fn new(url: &str, token: Option<&str>) -> Result<Client, RemoteError> {
        let bad = |why: &str| RemoteError::Url { setting: REMOTE.label, url: redact(url), why: why.into() };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("expected http://HOST[:PORT][/PREFIX]"))?;
        if scheme != "http" && scheme != "https" {
            return Err(bad("only http:// and https:// are supported"));
        }
        if rest.contains(['?', '#']) || rest.contains(char::is_whitespace) {
            return Err(bad("a query, fragment or space has no place in a base URL"));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (userinfo, host) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        if host.is_empty() || host.starts_with(':') {
            return Err(bad("no host"));
        }
        let basic = match userinfo {
            None => None,
            Some(info) => {
                let (user, password) = info.split_once(':').unwrap_or((info, ""));
                let user = percent_decode(user).ok_or_else(|| bad("bad %-escape in the user name"))?;
                let password = percent_decode(password).ok_or_else(|| bad("bad %-escape in the password"))?;
                Some(format!("Basic {}", BASE64.encode(format!("{user}:{password}"))))
            }
        };
        let bearer = match token.map(str::trim) {
            Some(t) if t.contains(|c: char| c.is_control() || c.is_whitespace()) => {
                return Err(RemoteError::Setting {
                    setting: REMOTE_TOKEN.label,
                    why: "the token holds spaces or control characters".into(),
                })
            }
            Some(t) if !t.is_empty() => Some(format!("Bearer {t}")),
            _ => None,
        };
        if basic.is_some() && bearer.is_some() {
            return Err(bad("it holds credentials and a token is set too: use one or the other"));
        }
        let agent = ureq::Agent::config_builder()
            // Statuses are answers to interpret here (404 = miss), not errors.
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT))
            .timeout_send_request(Some(CONNECT))
            .timeout_recv_response(Some(RESPONSE))
            .timeout_per_read(Some(PER_READ))
            .timeout_per_write(Some(PER_READ))
            .user_agent(concat!("hermod/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Client {
            base: format!("{scheme}://{host}{}", path.trim_end_matches('/')),
            authorization: basic.or(bearer),
            agent,
        })
    }

    /// The base URL, without credentials.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    fn budget(size: u64) -> Duration {
        SMALL_BUDGET + Duration::from_secs(size / BLOB_BYTES_PER_SECOND)
    }

    fn status(method: &'static str, url: String, status: u16) -> RemoteError {
        let hint = match status {
            401 | 403 => " (check the credentials in HERMOD_REMOTE or HERMOD_REMOTE_TOKEN)",
            405 => " (does the server accept this method? nginx needs `dav_methods PUT;`)",
            _ => "",
        };
        RemoteError::Status { method, url, status, hint }
    }

    fn http(method: &'static str, url: &str, e: impl std::fmt::Display) -> RemoteError {
        RemoteError::Http { method, url: url.into(), message: e.to_string() }
    }

    /// GET `path`, at most `limit` bytes: `None` on 404.
    pub fn get(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, RemoteError> {
        let url = self.url(path);
        let mut request = self.agent.get(&url).header("Accept-Encoding", "identity");
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        let response = request
            .config()
            .timeout_global(Some(Self::budget(limit.min(MAX_BLOB))))
            .build()
            .call()
            .map_err(|e| Self::http("GET", &url, e))?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            status => return Err(Self::status("GET", url, status)),
        }
        let body = response.into_body().with_config().limit(limit).read_to_vec();
        body.map(Some).map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => Self::http("GET", &url, format!("more than the expected {limit} bytes")),
            e => Self::http("GET", &url, e),
        })
    }

    /// HEAD `path`: its Content-Length if it exists, `None` on 404.
    pub fn head(&self, path: &str) -> Result<Option<u64>, RemoteError> {
        let url = self.url(path);
        let mut request = self.agent.head(&url);
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        let response = request
            .config()
            .timeout_global(Some(SMALL_BUDGET))
            .build()
            .call()
            .map_err(|e| Self::http("HEAD", &url, e))?;
        match response.status().as_u16() {
            200 => Ok(Some(
                response.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0),
            )),
            404 => Ok(None),
            status => Err(Self::status("HEAD", url, status)),
        }
    }

    /// PUT `bytes` at `path`.
    pub fn put(&self, path: &str, bytes: &[u8]) -> Result<(), RemoteError> {
        let url = self.url(path);
        let mut request = self.agent.put(&url).header("Content-Type", "application/octet-stream");
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        let response = request
            .config()
            .timeout_global(Some(Self::budget(bytes.len() as u64)))
            .build()
            .send(bytes)
            .map_err(|e| Self::http("PUT", &url, e))?;
        match response.status().as_u16() {
            200 | 201 | 204 => Ok(()),
            status => Err(Self::status("PUT", url, status)),
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
        let client = Client::new(url, settings.token.as_deref())?;
        let signer = match (&settings.signing_key, settings.push) {
            (Some(path), true) => Some(
                SecretKey::read(path).map_err(|error| RemoteError::Trust { setting: SIGNING_KEY.label, error })?,
            ),
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

    /// The verified output for `key` (a build for `kernel`), or None: a miss,
    /// a refused entry (warned) or an unavailable server (warned once).
    pub fn pull(&self, key: &str, kernel: &str) -> Option<Pulled> {
        if self.trusted.is_empty() || self.given_up() {
            return None;
        }
        let started = Instant::now();
        let text = match self.client.get(&format!("ac/{key}"), trust::MAX_ENTRY_BYTES) {
            Ok(Some(text)) => text,
            Ok(None) => return None,
            Err(e) => {
                self.give_up(&e, started, "building locally");
                return None;
            }
        };
        let entry = match Entry::parse(&text).and_then(|entry| {
            let signer = entry.verify(key, &self.trusted)?;
            if entry.kernel != kernel {
                return Err(Rejection::WrongKernel { wanted: kernel.into(), signed: entry.kernel.clone() });
            }
            if entry.size > MAX_BLOB {
                return Err(Rejection::Malformed(format!("a blob of {} bytes is more than hermod takes", entry.size)));
            }
            Ok((entry, signer))
        }) {
            Ok(entry) => entry,
            Err(why) => {
                self.reject(key, &why);
                return None;
            }
        };
        let (entry, signer) = entry;
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
    use std::path::Path;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |var: &str| pairs.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    }

    #[test]
    fn urls_credentials_and_tokens() {
        let c = Client::new("http://alice:p%40ss@127.0.0.1:8080/hermod/", None).unwrap();
        assert_eq!(c.base(), "http://127.0.0.1:8080/hermod");
        assert_eq!(c.url("ac/k"), "http://127.0.0.1:8080/hermod/ac/k");
        assert_eq!(c.authorization.as_deref(), Some(format!("Basic {}", BASE64.encode("alice:p@ss")).as_str()));
        let c = Client::new("https://cache.example", Some(" s3cret ")).unwrap();
        assert_eq!((c.base(), c.authorization.as_deref()), ("https://cache.example", Some("Bearer s3cret")));
        assert_eq!(Client::new("http://h", None).unwrap().authorization, None);

        let bad = [
            ("ftp://h/x", None, "only http:// and https://"),
            ("h/x", None, "expected http://"),
            ("http:///x", None, "no host"),
            ("http://h/x?y=1", None, "query"),
            ("http://u:%zz@h", None, "%-escape in the password"),
            ("http://u:secretpw@h", Some("t"), "one or the other"),
        ];
        for (url, token, why) in bad {
            let e = Client::new(url, token).err().unwrap().to_string();
            assert!(e.starts_with("HERMOD_REMOTE (config: remote): ") && e.contains(why), "{url}: {e}");
            assert!(!e.contains("secretpw"), "credentials are never printed: {e}");
        }
        assert!(Client::new("http://h", Some("a b")).is_err());
        assert_eq!(redact("http://u:p@h:1/x@y"), "http://***@h:1/x@y");
    }

    #[test]
    fn settings_from_env_and_config() {
        let config = Config::parse(
            "remote = \"http://cache:8080\"\nremote_push = true\nsigning_key = \"/etc/hermod/cache.key\"\n\
             trusted_keys = [\"a:AAAA\", \"b:BBBB\"]\nremote_token = \"t\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        let from_file = Settings::resolve(&config, &env_of(&[])).unwrap();
        assert_eq!(from_file.url.as_deref(), Some("http://cache:8080"));
        assert!(from_file.push);
        assert_eq!(from_file.trusted_keys, ["a:AAAA", "b:BBBB"]);
        assert_eq!(from_file.signing_key, Some(PathBuf::from("/etc/hermod/cache.key")));
        assert_eq!(from_file.token.as_deref(), Some("t"));

        let env = env_of(&[
            ("HERMOD_REMOTE", "http://other"),
            ("HERMOD_REMOTE_PUSH", "0"),
            ("HERMOD_TRUSTED_KEYS", "c:CCCC,d:DDDD"),
            ("HERMOD_REMOTE_TOKEN", ""),
        ]);
        let from_env = Settings::resolve(&config, &env).unwrap();
        assert_eq!(from_env.url.as_deref(), Some("http://other"));
        assert!(!from_env.push);
        assert_eq!(from_env.trusted_keys, ["c:CCCC", "d:DDDD"]);
        assert_eq!(from_env.token, None, "an empty variable unsets the file's value");

        let e = Settings::resolve(&config, &env_of(&[("HERMOD_REMOTE_PUSH", "maybe")])).unwrap_err().to_string();
        assert!(e.starts_with("HERMOD_REMOTE_PUSH (config: remote_push): \"maybe\" is not 1 or 0"), "{e}");
        let one_string = Config::parse("trusted_keys = \"a:AAAA, b:BBBB\"", Path::new("c.toml")).unwrap();
        assert_eq!(Settings::resolve(&one_string, &env_of(&[])).unwrap().trusted_keys.len(), 2);
        assert!(Config::parse("remote_pus = true", Path::new("c.toml")).is_err(), "unknown keys are refused");
    }

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
        assert_eq!(ok(Settings { url: url.clone(), trusted_keys: trusted.clone(), ..Default::default() }).unwrap(), Some(false));
        let pusher = Settings { url: url.clone(), push: true, signing_key: Some(key_path.clone()), ..Default::default() };
        assert_eq!(ok(pusher).unwrap(), Some(true), "a pusher need not trust anyone");

        let e = err(Settings { url: url.clone(), push: true, trusted_keys: trusted.clone(), ..Default::default() });
        assert!(e.contains("pushing needs a key") && e.contains("hermod cache keygen"), "{e}");
        let e = err(Settings { push: true, signing_key: Some(key_path.clone()), ..Default::default() });
        assert!(e.contains("no shared cache is set"), "{e}");
        let e = err(Settings { url: url.clone(), ..Default::default() });
        assert!(e.contains("no trusted key"), "{e}");
        let e = err(Settings { url: url.clone(), trusted_keys: vec!["x".into()], ..Default::default() });
        assert!(e.starts_with("HERMOD_TRUSTED_KEYS (config: trusted_keys): ") && e.contains("\"x\""), "{e}");
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
