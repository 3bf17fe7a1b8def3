//! Getting bytes for a URL: `http://` / `https://` through one shared `ureq`
//! agent (with timeouts, so a dead mirror fails instead of hanging a build),
//! and `file:` URIs straight from disk (local mirrors, tests).
//!
//! Nothing read here is trusted: callers check every byte against a hash
//! chain anchored in a signed InRelease before using it.

use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::bounded::{read_capped, Exceeded, InputLimits, Limit};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot download {url}: {message}")]
    Http { url: String, message: String },
    #[error("{url} does not exist on the server (HTTP 404)")]
    NotFound { url: String },
    #[error("cannot read {path} (from {url}): {source}")]
    File { url: String, path: PathBuf, source: std::io::Error },
    #[error("unsupported URI scheme in {url} (only http://, https:// and file: are supported)")]
    Scheme { url: String },
    #[error("reading {url} failed midway: {source}")]
    Body { url: String, source: std::io::Error },
    #[error("{url}: {exceeded}")]
    TooLarge { url: String, exceeded: crate::bounded::Exceeded },
}

impl TransportError {
    pub fn is_not_found(&self) -> bool {
        match self {
            TransportError::NotFound { .. } => true,
            TransportError::File { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(20)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            // Per-read rather than global: a 40 MB .deb on a slow link is
            // fine as long as bytes keep flowing.
            .timeout_per_read(Some(Duration::from_secs(60)))
            .user_agent(concat!("hermod/", env!("CARGO_PKG_VERSION")))
            .build()
            .into()
    })
}

/// Open `url` for streaming. Also returns the Content-Length when known.
pub fn open(url: &str) -> Result<(Box<dyn Read + Send>, Option<u64>), TransportError> {
    if let Some(path) = file_path(url) {
        // Only a regular file is opened: a FIFO in a file: archive would block forever.
        let (f, len) = crate::bounded::open_user_file(&path).map_err(|source| TransportError::File {
            url: url.to_string(),
            path: path.clone(),
            source,
        })?;
        return Ok((Box::new(f), Some(len)));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(TransportError::Scheme { url: url.to_string() });
    }
    // identity: we hash exactly the bytes the archive published, so the
    // transport must not transparently decompress anything.
    let resp = agent().get(url).header("Accept-Encoding", "identity").call().map_err(|e| match e {
        ureq::Error::StatusCode(404) => TransportError::NotFound { url: url.to_string() },
        e => TransportError::Http { url: url.to_string(), message: e.to_string() },
    })?;
    let len = resp.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    Ok((Box::new(resp.into_body().into_reader()), len))
}

/// Download `url` completely into memory, refusing more than `limit` of the
/// input limits (see [`crate::bounded`]): a runaway server must not eat RAM.
pub fn get_within(url: &str, limit: Limit, limits: &InputLimits) -> Result<Vec<u8>, TransportError> {
    let (r, len) = open(url)?;
    if len.is_some_and(|n| n > limit.of(limits)) {
        return Err(TransportError::TooLarge { url: url.to_string(), exceeded: Exceeded::new(limit, limits) });
    }
    read_capped(r, limit, limits).map_err(|source| match Exceeded::in_io(&source) {
        Some(exceeded) => TransportError::TooLarge { url: url.to_string(), exceeded },
        None => TransportError::Body { url: url.to_string(), source },
    })
}

/// Download `url` completely into memory, refusing more than `limit` bytes
/// (a size the caller knows, e.g. from a signed Release file).
pub fn get(url: &str, limit: u64) -> Result<Vec<u8>, TransportError> {
    let (r, _) = open(url)?;
    let mut buf = Vec::new();
    r.take(limit + 1).read_to_end(&mut buf).map_err(|source| TransportError::Body { url: url.to_string(), source })?;
    if buf.len() as u64 > limit {
        return Err(TransportError::Http {
            url: url.to_string(),
            message: format!("response is larger than the expected {limit} bytes"),
        });
    }
    Ok(buf)
}

/// `file:/srv/x`, `file:///srv/x` → `/srv/x`.
fn file_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("file:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    Some(PathBuf::from(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"hello").unwrap();
        let url = format!("file:{}", p.display());
        assert_eq!(get(&url, 100).unwrap(), b"hello");
        assert_eq!(get(&format!("file://{}", p.display()), 100).unwrap(), b"hello");
        assert!(get(&url, 3).is_err(), "limit enforced");
        let missing = get(&format!("file:{}/nope", dir.path().display()), 10).unwrap_err();
        assert!(missing.is_not_found());
        assert!(matches!(get("ftp://x/y", 1), Err(TransportError::Scheme { .. })));
        let small = InputLimits { max_release_size: 4, ..InputLimits::default() };
        let e = get_within(&url, Limit::ReleaseSize, &small).unwrap_err();
        assert!(e.to_string().contains("input_limits.max_release_size"), "{e}");
        assert_eq!(get_within(&url, Limit::ReleaseSize, &InputLimits::default()).unwrap(), b"hello");
    }
}
