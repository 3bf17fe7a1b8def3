//! Compression: of modules, as the kernel itself is configured to do it, and
//! the one decoder of every compressed input hermod reads (package members,
//! archive indices, modules), chosen by file-name suffix.
//!
//! A kernel built with `CONFIG_MODULE_COMPRESS_XZ=y` (Debian's 6.12 backports)
//! ships `foo.ko.xz` and its kmod looks for that name; DKMS compresses its
//! modules the same way. The choice is read from the headers' `.config`, never
//! guessed. Every encoder here is single-threaded with fixed settings, so the
//! bytes depend only on the input.

use std::io::{self, Read, Write};

/// The most memory the xz decoder may use: liblzma's default has no limit (a
/// header may ask for a 4 GiB dictionary); `xz -9` needs 65 MiB.
const XZ_MEMORY: u64 = 128 << 20;
/// The largest zstd window accepted (2^27 = 128 MiB, zstd's own default cap,
/// stated): a frame asking for more is refused.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// How a kernel wants its modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Xz,
    Zstd,
    Gzip,
}

impl Compression {
    /// Read `CONFIG_MODULE_COMPRESS_*` from a kernel `.config`.
    pub fn from_kernel_config(config: &str) -> Compression {
        let enabled = |opt: &str| config.lines().any(|l| l.trim() == format!("{opt}=y"));
        if enabled("CONFIG_MODULE_COMPRESS_XZ") {
            Compression::Xz
        } else if enabled("CONFIG_MODULE_COMPRESS_ZSTD") {
            Compression::Zstd
        } else if enabled("CONFIG_MODULE_COMPRESS_GZIP") {
            Compression::Gzip
        } else {
            Compression::None
        }
    }

    /// The format a file-name suffix names (`.xz`, `xz`, `.zst`, `.gz`; ``
    /// is plain); `None` for a suffix that names no format hermod reads.
    pub fn from_suffix(suffix: &str) -> Option<Compression> {
        match suffix.strip_prefix('.').unwrap_or(suffix) {
            "" => Some(Compression::None),
            "xz" => Some(Compression::Xz),
            "zst" => Some(Compression::Zstd),
            "gz" => Some(Compression::Gzip),
            _ => None,
        }
    }

    /// The plain bytes of `input`, compressed this way, with every decoder's
    /// memory bounded ([`XZ_MEMORY`], [`ZSTD_WINDOW_LOG_MAX`]). How much
    /// *output* may be read is the caller's bound (`crate::bounded`).
    pub fn decoder<'a, R: Read + 'a>(self, input: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(input),
            Compression::Xz => {
                let stream = liblzma::stream::Stream::new_stream_decoder(XZ_MEMORY, 0).map_err(io::Error::other)?;
                Box::new(liblzma::read::XzDecoder::new_stream(input, stream))
            }
            Compression::Zstd => {
                let mut d = zstd::stream::read::Decoder::new(input)?;
                d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                Box::new(d)
            }
            Compression::Gzip => Box::new(flate2::read::GzDecoder::new(input)),
        })
    }

    /// File name suffix after `.ko`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
            Compression::Gzip => ".gz",
        }
    }

    /// Compress as kbuild's `modules_install` does (scripts/Makefile.modinst):
    /// xz with CRC32 and a 1 MiB dictionary (the kernel's in-kernel decompressor
    /// needs both), zstd at level 19, gzip at level 9 with no name or time.
    pub fn apply(self, data: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Compression::None => Ok(data.to_vec()),
            Compression::Xz => {
                let mut opts = liblzma::stream::LzmaOptions::new_preset(6).map_err(io::Error::other)?;
                opts.dict_size(1 << 20);
                let mut filters = liblzma::stream::Filters::new();
                filters.lzma2(&opts);
                let stream = liblzma::stream::Stream::new_stream_encoder(&filters, liblzma::stream::Check::Crc32)
                    .map_err(io::Error::other)?;
                let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
                enc.write_all(data)?;
                enc.finish()
            }
            Compression::Zstd => zstd::stream::encode_all(data, 19),
            Compression::Gzip => {
                let mut enc = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
                enc.write_all(data)?;
                enc.finish()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernel_choice() {
        assert_eq!(Compression::from_kernel_config("CONFIG_MODULE_COMPRESS_XZ=y\n"), Compression::Xz);
        assert_eq!(
            Compression::from_kernel_config("# CONFIG_MODULE_COMPRESS_XZ is not set\nCONFIG_MODULE_COMPRESS_NONE=y\n"),
            Compression::None
        );
        assert_eq!(Compression::from_kernel_config("CONFIG_MODULE_COMPRESS_ZSTD=y"), Compression::Zstd);
    }

    #[test]
    fn xz_round_trips_deterministically_with_crc32() {
        let data: Vec<u8> = (0..50_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let a = Compression::Xz.apply(&data).unwrap();
        assert_eq!(a, Compression::Xz.apply(&data).unwrap());
        // Stream flags byte 7 of the xz header: check type 0x01 = CRC32.
        assert_eq!(&a[..6], b"\xFD7zXZ\x00");
        assert_eq!(a[7], 0x01);
        let mut back = Vec::new();
        liblzma::read::XzDecoder::new(&a[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn every_format_decodes_what_it_encodes() {
        let data = b"module bytes".repeat(100);
        for (suffix, c) in
            [("", Compression::None), (".xz", Compression::Xz), ("zst", Compression::Zstd), (".gz", Compression::Gzip)]
        {
            assert_eq!(Compression::from_suffix(suffix), Some(c));
            let mut back = Vec::new();
            c.decoder(&c.apply(&data).unwrap()[..]).unwrap().read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "{c:?}");
        }
        assert_eq!(Compression::from_suffix(".bz2"), None);
        let mut out = Vec::new();
        assert!(Compression::Xz.decoder(&b"junk"[..]).unwrap().read_to_end(&mut out).is_err());
    }

    #[test]
    fn gzip_and_zstd_are_deterministic() {
        let data = b"module bytes".repeat(100);
        for c in [Compression::Gzip, Compression::Zstd] {
            assert_eq!(c.apply(&data).unwrap(), c.apply(&data).unwrap());
        }
    }
}
