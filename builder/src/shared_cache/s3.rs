//! The shared cache in an S3 bucket: `s3://BUCKET[/PREFIX]`, the same
//! `cas/` and `ac/` layout under the prefix, each request signed with AWS
//! Signature Version 4.
//!
//! An S3 request is an HTTP request whose URL (or headers) carry a signature
//! over the method, the object and the time, made with the secret key. We
//! sign **presigned URLs** (the signature in the query string, the payload
//! `UNSIGNED-PAYLOAD`) and send them with the same ureq agent, timeouts and
//! bounded reads as the plain-HTTP backend ([`super::Client`]): only the URL
//! differs, so an S3 server is held to exactly the rules of any other
//! server. The blob's integrity does not rest on the transport anyway: every
//! byte is checked against the signed entry ([`crate::trust`]).
//!
//! The signing is the `rusty-s3` crate's, not ours: SigV4 (canonical
//! request, HMAC-SHA256 key derivation, the query encoding S3 expects) is
//! easy to get subtly wrong, and rusty-s3 is small, maintained, does no I/O
//! of its own (so it adds no HTTP stack or async runtime next to ureq), and
//! is built with its RustCrypto backend only (hmac, sha2; no XML, no serde).
//! The official AWS SDK would bring tokio, hyper and its own HTTP client for
//! three requests.
//!
//! Addressing: with no endpoint, AWS's `https://BUCKET.s3.REGION.amazonaws.com`
//! (virtual-hosted style; path style for a bucket name with dots, which TLS
//! wildcards do not cover). With an endpoint (MinIO, Ceph's radosgw, Garage,
//! s3s), path style: `ENDPOINT/BUCKET/KEY`, which they all serve without
//! wildcard DNS. Credentials come from [`Credentials`] (the environment or
//! the shared credentials file, resolved in [`super::Settings`]); none means
//! unsigned requests, which a public-read bucket answers.

use std::time::Duration;

use rusty_s3::{Bucket, S3Action, UrlStyle};

use super::{RemoteError, REMOTE, S3_ENDPOINT};

/// The AWS region when none is set: what AWS and MinIO assume too.
pub const DEFAULT_REGION: &str = "us-east-1";

/// An access key, its secret and an optional session token, and where they
/// were found (for messages). Debug never shows the secret or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// `AWS_ACCESS_KEY_ID` or `FILE [PROFILE]`.
    pub from: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("from", &self.from)
            .finish()
    }
}

/// What an `s3://` remote needs besides its URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// `http(s)://HOST[:PORT]` of an S3-compatible server; None: AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub credentials: Option<Credentials>,
}

/// One bucket and prefix, and how to sign requests for it.
pub struct S3 {
    bucket: Bucket,
    /// Object-key prefix without slashes at either end; may be empty.
    prefix: String,
    credentials: Option<rusty_s3::Credentials>,
}

/// The HTTP methods the shared cache uses.
#[derive(Debug, Clone, Copy)]
pub enum Method {
    Get,
    Head,
    Put,
}

impl S3 {
    /// The bucket of `url` (`s3://BUCKET[/PREFIX]`) as `settings` reach it.
    pub fn new(url: &str, settings: &S3Settings) -> Result<S3, RemoteError> {
        let bad = |why: &str| RemoteError::Url { setting: REMOTE.label, url: super::redact(url), why: why.into() };
        let rest = url.strip_prefix("s3://").ok_or_else(|| bad("expected s3://BUCKET[/PREFIX]"))?;
        if rest.contains(['?', '#', '@']) || rest.contains(char::is_whitespace) {
            return Err(bad("a query, fragment, credentials or space has no place in an s3:// URL \
                 (credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials)"));
        }
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
        if name.len() < 3 || name.len() > 63 || !name.chars().all(valid) {
            return Err(bad("the bucket name must be 3 to 63 of a-z, 0-9, '.' and '-'"));
        }
        let prefix = prefix.trim_matches('/').to_owned();
        if prefix.split('/').any(|part| part.is_empty() || part == "." || part == "..") && !prefix.is_empty() {
            return Err(bad("the prefix has an empty, `.` or `..` component"));
        }
        let region = settings.region.clone().unwrap_or_else(|| DEFAULT_REGION.into());
        let (endpoint, style) = match &settings.endpoint {
            Some(endpoint) => {
                let bad_endpoint = |why: &str| RemoteError::Url {
                    setting: S3_ENDPOINT.label,
                    url: super::redact(endpoint),
                    why: why.into(),
                };
                let parsed = url::Url::parse(endpoint)
                    .map_err(|e| bad_endpoint(&format!("{e}; expected http(s)://HOST[:PORT]")))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(bad_endpoint("the endpoint must be http:// or https://"));
                }
                if !parsed.username().is_empty() || parsed.password().is_some() {
                    return Err(bad_endpoint("credentials have no place in the endpoint"));
                }
                if parsed.query().is_some() || parsed.fragment().is_some() {
                    return Err(bad_endpoint("a query or fragment has no place in the endpoint"));
                }
                (parsed, UrlStyle::Path)
            }
            None => {
                let aws = url::Url::parse(&format!("https://s3.{region}.amazonaws.com"))
                    .map_err(|e| bad(&format!("region {region:?}: {e}")))?;
                (aws, if name.contains('.') { UrlStyle::Path } else { UrlStyle::VirtualHost })
            }
        };
        let bucket = Bucket::new(endpoint, style, name.to_owned(), region).map_err(|e| {
            let why = match e {
                rusty_s3::BucketError::UnsupportedScheme => "the endpoint must be http:// or https://".to_owned(),
                rusty_s3::BucketError::MissingHost => "the endpoint has no host".to_owned(),
                rusty_s3::BucketError::ParseError(e) => e.to_string(),
            };
            RemoteError::Url { setting: S3_ENDPOINT.label, url: settings.endpoint.clone().unwrap_or_default(), why }
        })?;
        let credentials = settings.credentials.as_ref().map(|c| match &c.session_token {
            Some(token) => rusty_s3::Credentials::new_with_token(&c.access_key_id, &c.secret_access_key, token),
            None => rusty_s3::Credentials::new(&c.access_key_id, &c.secret_access_key),
        });
        Ok(S3 { bucket, prefix, credentials })
    }

    /// `s3://BUCKET[/PREFIX]`, for messages.
    pub fn base(&self) -> String {
        match self.prefix.as_str() {
            "" => format!("s3://{}", self.bucket.name()),
            prefix => format!("s3://{}/{prefix}", self.bucket.name()),
        }
    }

    /// Whether requests are signed (else they are anonymous).
    pub fn signs(&self) -> bool {
        self.credentials.is_some()
    }

    fn object(&self, path: &str) -> String {
        match self.prefix.as_str() {
            "" => path.to_owned(),
            prefix => format!("{prefix}/{path}"),
        }
    }

    /// The presigned URL of `method` on `path` (`ac/KEY`, `cas/BLAKE3`),
    /// valid for `expires` from now.
    pub fn presign(&self, method: Method, path: &str, expires: Duration) -> String {
        let object = self.object(path);
        let credentials = self.credentials.as_ref();
        let url = match method {
            Method::Get => self.bucket.get_object(credentials, &object).sign(expires),
            Method::Head => self.bucket.head_object(credentials, &object).sign(expires),
            Method::Put => self.bucket.put_object(credentials, &object).sign(expires),
        };
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
            from: "AWS_ACCESS_KEY_ID".into(),
        }
    }

    #[test]
    fn urls_addressing_and_signatures() {
        let local =
            S3Settings { endpoint: Some("http://127.0.0.1:9000".into()), region: None, credentials: Some(creds()) };
        let s3 = S3::new("s3://fleet-cache/hermod/", &local).unwrap();
        assert_eq!(s3.base(), "s3://fleet-cache/hermod");
        let url = s3.presign(Method::Get, "ac/abc", Duration::from_secs(60));
        assert!(url.starts_with("http://127.0.0.1:9000/fleet-cache/hermod/ac/abc?"), "path style: {url}");
        for part in ["X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Credential=AKIDEXAMPLE%2F", "%2Fus-east-1%2Fs3%2F"] {
            assert!(url.contains(part), "{part} in {url}");
        }
        assert!(url.contains("X-Amz-Signature=") && !url.contains("wJalrXUtnFEMI"), "{url}");
        let put = s3.presign(Method::Put, "ac/abc", Duration::from_secs(60));
        assert_ne!(url, put, "the method is signed");

        let aws = S3Settings { region: Some("eu-west-1".into()), ..Default::default() };
        let s3 = S3::new("s3://fleet-cache", &aws).unwrap();
        assert!(!s3.signs());
        let url = s3.presign(Method::Head, "cas/x", Duration::from_secs(60));
        assert_eq!(url, "https://fleet-cache.s3.eu-west-1.amazonaws.com/cas/x", "anonymous: unsigned");
        let dotted = S3::new("s3://fleet.cache/p", &aws).unwrap();
        let url = dotted.presign(Method::Get, "ac/k", Duration::from_secs(60));
        assert_eq!(url, "https://s3.eu-west-1.amazonaws.com/fleet.cache/p/ac/k");

        let token = S3Settings {
            credentials: Some(Credentials { session_token: Some("T0KEN".into()), ..creds() }),
            ..local.clone()
        };
        let url = S3::new("s3://b12", &token).unwrap().presign(Method::Get, "ac/k", Duration::from_secs(60));
        assert!(url.contains("X-Amz-Security-Token=T0KEN"), "{url}");
        let debug = format!("{:?}", token);
        assert!(!debug.contains("wJalr") && !debug.contains("T0KEN"), "secrets never printed: {debug}");

        let bad = [
            ("http://b/x", "expected s3://"),
            ("s3://AB/x", "bucket name"),
            ("s3://b", "bucket name"),
            ("s3://key:secretpw@bucket", "credentials"),
            ("s3://bucket/a//b", "empty"),
            ("s3://bucket/../b", "`..`"),
        ];
        for (url, why) in bad {
            let e = S3::new(url, &local).err().unwrap().to_string();
            assert!(e.starts_with("HERMOD_REMOTE (config: remote): ") && e.contains(why), "{url}: {e}");
            assert!(!e.contains("secretpw"), "credentials are never printed: {e}");
        }
        let endpoint = |e: &str| S3Settings { endpoint: Some(e.into()), ..Default::default() };
        let cases = [
            ("ftp://h", "http:// or https://"),
            ("h:9000", "http"),
            ("http://u:secretpw@h", "credentials"),
            ("http://u:secretpw@h:99999", "port"),
        ];
        for (e, why) in cases {
            let err = S3::new("s3://bucket", &endpoint(e)).err().unwrap().to_string();
            assert!(err.starts_with("HERMOD_S3_ENDPOINT (config: s3_endpoint): ") && err.contains(why), "{e}: {err}");
            assert!(!err.contains("secretpw"), "an endpoint's password is never printed: {err}");
        }
    }
}
