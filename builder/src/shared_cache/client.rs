//! The HTTP side of the shared cache: the base URL and its credentials,
//! GET/HEAD/PUT with ureq, and the timeouts that bound what a dead or hanging
//! server costs (see the parent module). An `s3://` remote is the same client
//! with each request's URL presigned ([`super::s3`]).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::s3::{Method, S3Settings, S3};
use super::{redact, RemoteError, REMOTE, REMOTE_TOKEN};

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
    /// `scheme://host[:port][/prefix]` or `s3://bucket[/prefix]`, no
    /// userinfo, no trailing `/`.
    base: String,
    /// Plain HTTP's `Authorization` header (basic or bearer).
    authorization: Option<String>,
    /// Set for an `s3://` remote: requests go to presigned URLs.
    s3: Option<S3>,
    agent: ureq::Agent,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        // Statuses are answers to interpret here (404 = miss), not errors.
        .http_status_as_error(false)
        .timeout_connect(Some(CONNECT))
        .timeout_send_request(Some(CONNECT))
        .timeout_recv_response(Some(RESPONSE))
        .timeout_per_read(Some(PER_READ))
        .timeout_per_write(Some(PER_READ))
        .user_agent(concat!("hermod/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
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
        Ok(Client {
            base: format!("{scheme}://{host}{}", path.trim_end_matches('/')),
            authorization: basic.or(bearer),
            s3: None,
            agent: agent(),
        })
    }

    /// A client for the bucket and prefix of `url` (`s3://BUCKET[/PREFIX]`).
    pub fn s3(url: &str, settings: &S3Settings) -> Result<Client, RemoteError> {
        let s3 = S3::new(url, settings)?;
        Ok(Client { base: s3.base(), authorization: None, s3: Some(s3), agent: agent() })
    }

    /// Whether this client signs S3 requests (false: plain HTTP or anonymous S3).
    pub fn signs_s3(&self) -> bool {
        self.s3.as_ref().is_some_and(S3::signs)
    }

    /// The URL a request for `path` goes to, and the `Authorization` it
    /// carries. A presigned URL is valid a minute past the request's budget.
    fn target(&self, method: Method, path: &str, budget: Duration) -> (String, Option<&str>) {
        match &self.s3 {
            Some(s3) => (s3.presign(method, path, budget + Duration::from_secs(60)), None),
            None => (self.url(path), self.authorization.as_deref()),
        }
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

    fn status(&self, method: &'static str, url: String, status: u16) -> RemoteError {
        let hint = match (status, &self.s3) {
            (401 | 403, None) => " (check the credentials in HERMOD_REMOTE or HERMOD_REMOTE_TOKEN)",
            (401 | 403, Some(s3)) if s3.signs() => {
                " (check the S3 credentials, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or the \
                 profile in ~/.aws/credentials, their rights on the bucket, the region and the clock)"
            }
            (401 | 403, Some(_)) => {
                " (no S3 credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or \
                 a profile in ~/.aws/credentials)"
            }
            (301 | 400, Some(_)) => " (is the region right? set AWS_REGION or s3_region)",
            (404, Some(_)) => " (does the bucket exist?)",
            (405, None) => " (does the server accept this method? nginx needs `dav_methods PUT;`)",
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
        let budget = Self::budget(limit.min(MAX_BLOB));
        let (target, auth) = self.target(Method::Get, path, budget);
        let mut request = self.agent.get(&target).header("Accept-Encoding", "identity");
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let response =
            request.config().timeout_global(Some(budget)).build().call().map_err(|e| Self::http("GET", &url, e))?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            status => return Err(self.status("GET", url, status)),
        }
        let body = response.into_body().with_config().limit(limit).read_to_vec();
        body.map(Some).map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => {
                Self::http("GET", &url, format!("more than the expected {limit} bytes"))
            }
            e => Self::http("GET", &url, e),
        })
    }

    /// HEAD `path`: its Content-Length if it exists, `None` on 404.
    pub fn head(&self, path: &str) -> Result<Option<u64>, RemoteError> {
        let url = self.url(path);
        let (target, auth) = self.target(Method::Head, path, SMALL_BUDGET);
        let mut request = self.agent.head(&target);
        if let Some(auth) = auth {
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
            status => Err(self.status("HEAD", url, status)),
        }
    }

    /// PUT `bytes` at `path`.
    pub fn put(&self, path: &str, bytes: &[u8]) -> Result<(), RemoteError> {
        let url = self.url(path);
        let budget = Self::budget(bytes.len() as u64);
        let (target, auth) = self.target(Method::Put, path, budget);
        let mut request = self.agent.put(&target).header("Content-Type", "application/octet-stream");
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let response = request
            .config()
            .timeout_global(Some(budget))
            .build()
            .send(bytes)
            .map_err(|e| Self::http("PUT", &url, e))?;
        match response.status().as_u16() {
            200 | 201 | 204 => Ok(()),
            status => Err(self.status("PUT", url, status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
