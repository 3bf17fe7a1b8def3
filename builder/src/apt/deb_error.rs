//! The error of reading a .deb, in a module of its own: both the archive
//! layer (`debfile.rs`) and the tar walk under it (`tarwalk.rs`) make it, and
//! neither may use the other's.

use std::io;
use std::path::PathBuf;

use super::stanza::StanzaError;
use crate::bounded::Exceeded;

#[derive(Debug, thiserror::Error)]
pub enum DebFileError {
    #[error("cannot read {deb}: {source}")]
    Io { deb: PathBuf, source: io::Error },
    #[error("{deb} is not a Debian package: {reason}")]
    NotADeb { deb: PathBuf, reason: String },
    #[error("{deb}: unsupported member {member} (expected .tar, .tar.gz, .tar.xz or .tar.zst)")]
    Compression { deb: PathBuf, member: String },
    #[error("{deb}: unsafe path {path} in {member}: {reason}")]
    UnsafePath { deb: PathBuf, member: String, path: String, reason: &'static str },
    #[error("{deb}: cannot unpack {path} to {dest}: {source}")]
    Unpack { deb: PathBuf, path: String, dest: PathBuf, source: io::Error },
    #[error("{deb}: {member}: {exceeded}")]
    Limit { deb: PathBuf, member: String, exceeded: Exceeded },
    #[error("{deb}: control.tar has no ./control file")]
    NoControl { deb: PathBuf },
    #[error(transparent)]
    Control(#[from] StanzaError),
}
