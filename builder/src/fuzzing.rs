//! Entry points for the cargo-fuzz targets in `fuzz/` (not an API): the
//! crate-private readers over bytes, with the caller's limits.

use std::path::Path;

use crate::apt::debfile::{self, DataEntry, DebFileError, EntryKind};
use crate::bounded::InputLimits;

/// A .deb's bytes read as hermod reads a package: the control file's text,
/// then every data entry walked and each file read to its end. Returns the
/// control text and the content bytes read.
pub fn read_deb(bytes: &[u8], limits: &InputLimits) -> Result<(String, u64), DebFileError> {
    let deb = Path::new("fuzz.deb");
    let control = debfile::control_text_with(deb, bytes, limits)?;
    let mut read = 0u64;
    debfile::read_data_with(deb, bytes, limits, |entry: DataEntry<'_>| {
        if let EntryKind::File(content) = entry.kind {
            let mut buf = [0u8; 8192];
            loop {
                let n = content.read(&mut buf).map_err(|source| DebFileError::Io { deb: deb.into(), source })?;
                if n == 0 {
                    break;
                }
                read += n as u64;
            }
        }
        Ok::<(), DebFileError>(())
    })?;
    Ok((control, read))
}
