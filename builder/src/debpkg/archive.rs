//! The deterministic tar and xz encoders.

use super::*;

pub(super) fn tar_header(
    name: &[u8],
    kind: tar::EntryType,
    mode: u32,
    size: u64,
    mtime: u64,
) -> Result<tar::Header, DebError> {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().expect("new_gnu header");
        let n = name.len().min(gnu.name.len());
        gnu.name[..n].copy_from_slice(&name[..n]);
    }
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("root").map_err(io_err("tar header"))?;
    h.set_groupname("root").map_err(io_err("tar header"))?;
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_cksum();
    Ok(h)
}

/// GNU tar with explicit headers; names are written byte-for-byte (the tar crate's
/// path setters would strip the `./` prefix). Names over 100 bytes get a GNU
/// `././@LongLink` entry first, like GNU tar writes.
pub(super) fn tar(entries: Vec<Entry>, mtime: u64) -> Result<Vec<u8>, DebError> {
    let mut b = tar::Builder::new(Vec::new());
    for e in &entries {
        let name = e.tar_name();
        let name = name.as_bytes();
        if name.len() > 100 {
            let mut long = name.to_vec();
            long.push(0);
            let h = tar_header(b"././@LongLink", tar::EntryType::GNULongName, 0o644, long.len() as u64, mtime)?;
            b.append(&h, &long[..]).map_err(io_err("writing tar"))?;
        }
        let (h, data): (tar::Header, &[u8]) = match &e.kind {
            Kind::Dir => (tar_header(name, tar::EntryType::Directory, 0o755, 0, mtime)?, &[]),
            Kind::File { contents, mode } => {
                (tar_header(name, tar::EntryType::Regular, *mode, contents.len() as u64, mtime)?, contents)
            }
        };
        b.append(&h, data).map_err(io_err("writing tar"))?;
    }
    b.into_inner().map_err(io_err("finishing tar"))
}

pub(super) fn xz(data: &[u8]) -> Result<Vec<u8>, DebError> {
    let stream = liblzma::stream::Stream::new_easy_encoder(XZ_PRESET, liblzma::stream::Check::Crc64)
        .map_err(|e| DebError::Io { context: "initialising xz encoder".into(), source: io::Error::other(e) })?;
    let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    enc.write_all(data).map_err(io_err("xz compression"))?;
    enc.finish().map_err(io_err("xz compression"))
}
