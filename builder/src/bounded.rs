//! Bounded reading of untrusted input: the limits, the counting reader, and
//! the one way an error quotes input.
//!
//! Every byte hermod reads from a .deb (a SOURCE, an archive package, a
//! published .deb), an archive index, an OCI layer or a build's outputs is
//! read as a stream under a budget, never into a buffer sized by a header:
//! a 74 KB .deb may claim or expand to any size. [`InputLimits`] holds every
//! budget in one place; the defaults are far above any real package (the
//! largest `-dkms` package, trixie's zfs-dkms 2.3.9: 19.3 MB unpacked, 988
//! entries, largest file 2.8 MB, control.tar 120 KB, control file 971 bytes,
//! longest path 84 bytes; openafs-modules-dkms is smaller: 7.2 MB, 734
//! entries) and above the archive packages a build root or a load test reads
//! (linux-headers-*-common: ~18,000 entries; a linux-image: ~400 MB).
//!
//! The limits are set by `[input_limits]` in the config file. Readers deep in
//! the archive code take them from a process-wide setting ([`current`]),
//! installed once when the config file is read ([`install`], from
//! `Config::load`); tests and fuzz targets pass their own to the `*_with`
//! functions instead.
//!
//! Errors quote input through [`excerpt`] only: at most [`EXCERPT_BYTES`]
//! bytes, cut at a character boundary, with the number of bytes left out.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;

/// Bytes of input an error message quotes at most.
pub const EXCERPT_BYTES: usize = 200;

/// `text` quoted for an error message: Rust string syntax, at most
/// [`EXCERPT_BYTES`] bytes of it, and how many bytes were left out.
pub fn excerpt(text: &str) -> String {
    if text.len() <= EXCERPT_BYTES {
        return format!("{text:?}");
    }
    let mut cut = EXCERPT_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{:?}… ({} more bytes)", &text[..cut], text.len() - cut)
}

/// [`excerpt`] of bytes that may not be UTF-8 (invalid sequences replaced).
pub fn excerpt_bytes(bytes: &[u8]) -> String {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(EXCERPT_BYTES)]);
    let mut quoted = excerpt(&head);
    if bytes.len() > EXCERPT_BYTES {
        quoted.push_str(&format!("… ({} more bytes)", bytes.len() - EXCERPT_BYTES));
    }
    quoted
}

/// One budget of [`InputLimits`]; names the config key in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    UnpackedSize,
    FileSize,
    Entries,
    PathLength,
    ControlSize,
    StanzaSize,
    IndexSize,
    ReleaseSize,
    ModuleSize,
    LayerSize,
    NamesSize,
    DebSize,
}

impl Limit {
    /// The key of `[input_limits]`.
    pub fn key(self) -> &'static str {
        match self {
            Limit::UnpackedSize => "max_unpacked_size",
            Limit::FileSize => "max_file_size",
            Limit::Entries => "max_entries",
            Limit::PathLength => "max_path_length",
            Limit::ControlSize => "max_control_size",
            Limit::StanzaSize => "max_stanza_size",
            Limit::IndexSize => "max_index_size",
            Limit::ReleaseSize => "max_release_size",
            Limit::ModuleSize => "max_module_size",
            Limit::LayerSize => "max_layer_size",
            Limit::NamesSize => "max_names_size",
            Limit::DebSize => "max_deb_size",
        }
    }

    /// What the budget counts, for the message.
    fn what(self) -> &'static str {
        match self {
            Limit::UnpackedSize => "unpacked size",
            Limit::FileSize => "file size",
            Limit::Entries => "number of entries",
            Limit::PathLength => "path length",
            Limit::ControlSize => "control.tar size",
            Limit::StanzaSize => "stanza size",
            Limit::IndexSize => "index size",
            Limit::ReleaseSize => "Release file size",
            Limit::ModuleSize => "module size",
            Limit::LayerSize => "OCI layer size",
            Limit::NamesSize => "size of the paths held",
            Limit::DebSize => ".deb file size",
        }
    }

    fn is_count(self) -> bool {
        self == Limit::Entries
    }

    /// This limit's value in `limits`.
    pub fn of(self, limits: &InputLimits) -> u64 {
        match self {
            Limit::UnpackedSize => limits.max_unpacked_size,
            Limit::FileSize => limits.max_file_size,
            Limit::Entries => limits.max_entries,
            Limit::PathLength => limits.max_path_length,
            Limit::ControlSize => limits.max_control_size,
            Limit::StanzaSize => limits.max_stanza_size,
            Limit::IndexSize => limits.max_index_size,
            Limit::ReleaseSize => limits.max_release_size,
            Limit::ModuleSize => limits.max_module_size,
            Limit::LayerSize => limits.max_layer_size,
            Limit::NamesSize => limits.max_names_size,
            Limit::DebSize => limits.max_deb_size,
        }
    }
}

/// A budget ran out: which one, and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} is over the limit of {} (input_limits.{} in the config file)", .limit.what(), amount(.limit, .max), .limit.key())]
pub struct Exceeded {
    pub limit: Limit,
    pub max: u64,
}

fn amount(limit: &Limit, n: &u64) -> String {
    if limit.is_count() {
        return n.to_string();
    }
    size_text(*n)
}

/// `n` bytes in the largest binary unit that divides it.
fn size_text(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

impl Exceeded {
    pub fn new(limit: Limit, limits: &InputLimits) -> Exceeded {
        Exceeded { limit, max: limit.of(limits) }
    }

    /// The [`Exceeded`] inside an I/O error, however deep a decoder or the
    /// tar reader wrapped it.
    pub fn in_io(e: &io::Error) -> Option<Exceeded> {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|r| r as _);
        while let Some(err) = cur {
            if let Some(x) = err.downcast_ref::<Exceeded>() {
                return Some(*x);
            }
            if let Some(inner) = err.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
                cur = Some(inner);
                continue;
            }
            cur = err.source();
        }
        None
    }

    pub fn into_io(self) -> io::Error {
        io::Error::other(self)
    }
}

/// Every budget for untrusted input (`[input_limits]` in the config file).
/// Sizes in the file take binary suffixes ("1G", "256MiB") or a plain number
/// of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputLimits {
    /// Bytes of one package's `data.tar` once decompressed (also the disk an
    /// unpack may fill), and of an OCI layer.
    #[serde(deserialize_with = "size")]
    pub max_unpacked_size: u64,
    /// Bytes of one file inside a package.
    #[serde(deserialize_with = "size")]
    pub max_file_size: u64,
    /// Entries of one tar stream (files, directories, links, extension headers).
    pub max_entries: u64,
    /// Bytes of one path or link target inside a package.
    #[serde(deserialize_with = "size")]
    pub max_path_length: u64,
    /// Bytes of a package's `control.tar` once decompressed.
    #[serde(deserialize_with = "size")]
    pub max_control_size: u64,
    /// Bytes of one deb822 stanza: a package's `control` file, one stanza of an index.
    #[serde(deserialize_with = "size")]
    pub max_stanza_size: u64,
    /// Bytes of a Packages index, downloaded and decompressed.
    #[serde(deserialize_with = "size")]
    pub max_index_size: u64,
    /// Bytes of an InRelease file.
    #[serde(deserialize_with = "size")]
    pub max_release_size: u64,
    /// Bytes of one built module (a `.ko` a build leaves in its outputs).
    #[serde(deserialize_with = "size")]
    pub max_module_size: u64,
    /// Bytes of an OCI image layer once decompressed (`hermod rootfs import`).
    #[serde(deserialize_with = "size")]
    pub max_layer_size: u64,
    /// Bytes of the relative paths of a module source's entries, summed: what
    /// the scan of a source directory holds in memory (`max_entries` and
    /// `max_path_length` bound a source's entries and each path too).
    #[serde(deserialize_with = "size")]
    pub max_names_size: u64,
    /// Bytes of one .deb file read whole or streamed from the host (`hermod
    /// publish`'s inputs, `verify`'s builds, a farm's `debs/`).
    #[serde(deserialize_with = "size")]
    pub max_deb_size: u64,
}

impl Default for InputLimits {
    fn default() -> InputLimits {
        InputLimits {
            // 50× zfs-dkms, 2.5× a linux-image a load test unpacks.
            max_unpacked_size: 1 << 30,
            // 90× zfs-dkms' largest file; above any real module or library a build root needs.
            max_file_size: 256 << 20,
            // 200× zfs-dkms, 10× linux-headers-*-common.
            max_entries: 200_000,
            // Linux's PATH_MAX; real packages stay under 300 bytes.
            max_path_length: 4096,
            // 130× zfs-dkms' control.tar, 8× the largest md5sums list (linux-headers).
            max_control_size: 16 << 20,
            // 1000× a real control file; Packages stanzas are a few KB.
            max_stanza_size: 1 << 20,
            // 4.5× trixie main's Packages (56.6 MB), 27× its Packages.xz.
            max_index_size: 256 << 20,
            // 100× trixie's InRelease (140 KB).
            max_release_size: 16 << 20,
            // nvidia's module, the largest there is, is under 100 MB.
            max_module_size: 256 << 20,
            // A whole build root is 1–2 GB.
            max_layer_size: 32 << 30,
            // 200,000 entries (max_entries) of 160-byte paths; zfs-dkms'
            // 988 paths are at most 84 bytes each.
            max_names_size: 32 << 20,
            // A data.tar is refused past max_unpacked_size (1 GiB) even uncompressed, its
            // largest form, so a bigger .deb could not be read anyway; hermod's module
            // packages are a few MB.
            max_deb_size: 1 << 30,
        }
    }
}

fn size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(n) => Ok(n),
        Size::Text(t) => crate::limits::parse_size(&t).map_err(serde::de::Error::custom),
    }
}

static CURRENT: OnceLock<InputLimits> = OnceLock::new();

/// Sets the process-wide limits; the first call wins (the config is read
/// once per command; a reader that ran before it used the defaults).
pub fn install(limits: InputLimits) {
    let _ = CURRENT.set(limits);
}

/// The process-wide limits: the config's, else the defaults.
pub fn current() -> InputLimits {
    *CURRENT.get_or_init(InputLimits::default)
}

/// A reader that fails with [`Exceeded`] once more than `max` bytes passed
/// through it; a read never returns a byte past the budget.
pub struct Bounded<R> {
    inner: R,
    left: u64,
    exceeded: Exceeded,
}

impl<R: Read> Bounded<R> {
    pub fn new(inner: R, limit: Limit, limits: &InputLimits) -> Bounded<R> {
        Bounded { inner, left: limit.of(limits), exceeded: Exceeded::new(limit, limits) }
    }

    /// Bytes still allowed.
    pub fn left(&self) -> u64 {
        self.left
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // One byte more tells "exactly at the limit" from "over it".
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(self.exceeded.into_io()),
            };
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads all of `r` into memory, or fails with [`Exceeded`] past `limit`:
/// never more than the limit plus one byte is held.
pub fn read_capped(r: impl Read, limit: Limit, limits: &InputLimits) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    Bounded::new(r, limit, limits).read_to_end(&mut out)?;
    Ok(out)
}

/// The most hermod reads of a file a person writes or installs — a config,
/// a recipe, a sources list, a key, a certificate, a keyring, a dkms
/// override, a key record: each is a few KB; 16 MiB still takes any real one
/// and keeps a wrong path (a disk image, a log) from filling memory.
pub const MAX_USER_FILE: u64 = 16 << 20;

/// Opens the file the user named (on the command line or in the config),
/// links and all, if and only if it is a regular file: a FIFO, socket or
/// device is refused without being opened (opening a FIFO blocks until a
/// writer comes; opening a device can act). Also its size, from the
/// descriptor. The error does not repeat the path: callers name it.
///
/// The one device taken is `/dev/null` (by device number, under any name):
/// `--config /dev/null` is how a user says "no settings", and it reads empty.
pub fn open_user_file(path: &Path) -> io::Result<(File, u64)> {
    use hermod_hostfs::Error as E;
    use std::os::unix::fs::MetadataExt;
    match hermod_hostfs::open_regular_path(path) {
        Ok((file, meta)) => Ok((file, meta.size)),
        Err(E::NotRegular { kind: hermod_hostfs::Kind::CharDevice, .. })
            if std::fs::metadata(path)?.rdev() == std::fs::metadata("/dev/null")?.rdev() =>
        {
            Ok((File::open("/dev/null")?, 0))
        }
        Err(E::NotRegular { kind, .. }) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a {kind}, not a regular file (only regular files are opened: a FIFO would block)"),
        )),
        Err(E::Io { source, .. }) => Err(source),
        Err(e) => Err(e.into()),
    }
}

/// The file the user named, read whole ([`open_user_file`]), or an error of
/// kind `FileTooLarge` past `max` bytes: never more than `max` plus one byte
/// is read, whatever the file's size says (it may grow while being read).
pub fn read_user_file(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let too_large = || {
        io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {}, the most hermod reads of such a file", size_text(max)),
        )
    };
    let (file, size) = open_user_file(path)?;
    if size > max {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(size as usize);
    file.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(too_large());
    }
    Ok(out)
}

/// [`read_user_file`] of a text file: not UTF-8 is an `InvalidData` error.
pub fn read_user_text(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_user_file(path, max)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_cut_at_char_boundaries() {
        assert_eq!(excerpt("abc"), "\"abc\"");
        let long = "é".repeat(1000); // 2000 bytes
        let e = excerpt(&long);
        assert!(e.len() < EXCERPT_BYTES + 40, "{e}");
        assert!(e.ends_with("(1800 more bytes)"), "{e}");
        let e = excerpt_bytes(&[b'x'; 1 << 20]);
        assert!(e.len() < 2 * EXCERPT_BYTES && e.contains(&format!("({} more bytes)", (1 << 20) - 200)), "{e}");
    }

    #[test]
    fn bounded_reader_stops_at_the_budget() {
        let limits = InputLimits { max_stanza_size: 10, ..InputLimits::default() };
        assert_eq!(read_capped(&[7u8; 10][..], Limit::StanzaSize, &limits).unwrap().len(), 10);
        let e = read_capped(io::repeat(0), Limit::StanzaSize, &limits).unwrap_err();
        let x = Exceeded::in_io(&e).unwrap();
        assert_eq!(x, Exceeded { limit: Limit::StanzaSize, max: 10 });
        assert_eq!(
            x.to_string(),
            "stanza size is over the limit of 10 bytes (input_limits.max_stanza_size in the config file)"
        );
        // Found through a wrapping error too.
        let wrapped = io::Error::new(io::ErrorKind::InvalidData, e);
        assert_eq!(Exceeded::in_io(&wrapped), Some(x));
        assert_eq!(Exceeded::in_io(&io::Error::other("plain")), None);
    }

    #[test]
    fn limits_parse_from_toml_with_sizes() {
        let l: InputLimits = toml::from_str(
            "max_unpacked_size = \"2G\"\nmax_entries = 5\nmax_file_size = 4096\nmax_names_size = \"1M\"",
        )
        .unwrap();
        assert_eq!(l.max_names_size, 1 << 20);
        assert_eq!(
            Exceeded::new(Limit::NamesSize, &l).to_string(),
            "size of the paths held is over the limit of 1 MiB (input_limits.max_names_size in the config file)"
        );
        assert_eq!(l.max_unpacked_size, 2 << 30);
        assert_eq!(l.max_entries, 5);
        assert_eq!(l.max_file_size, 4096);
        assert_eq!(l.max_module_size, InputLimits::default().max_module_size);
        assert!(toml::from_str::<InputLimits>("max_unpacked = 1").is_err(), "unknown keys refused");
        assert!(toml::from_str::<InputLimits>("max_file_size = \"lots\"").is_err());
        assert!(Exceeded::new(Limit::UnpackedSize, &l).to_string().contains("2 GiB"));
    }

    #[test]
    fn user_files_are_read_whole_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_user_file(&path, 10).unwrap(), b"0123456789");
        assert_eq!(read_user_text(&path, 10).unwrap(), "0123456789");
        let e = read_user_file(&path, 9).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "larger than 9 bytes, the most hermod reads of such a file");
        // A sparse file claiming 3 GiB is refused by its size, before a byte is read.
        let big = File::create(&path).unwrap();
        big.set_len(3 << 30).unwrap();
        let e = read_user_file(&path, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("larger than 1 MiB"), "{e}");
        std::fs::write(&path, b"\xff").unwrap();
        assert_eq!(read_user_text(&path, 10).unwrap_err().kind(), io::ErrorKind::InvalidData);
        // Links the user named are theirs to choose.
        std::fs::write(dir.path().join("target"), b"t").unwrap();
        std::os::unix::fs::symlink("target", dir.path().join("link")).unwrap();
        assert_eq!(read_user_file(&dir.path().join("link"), 1).unwrap(), b"t");
    }

    #[test]
    fn a_fifo_or_device_is_refused_unopened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Opening it for reading would block here forever: no writer ever comes.
        let e = read_user_file(&fifo, 1 << 20).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().starts_with("a FIFO, not a regular file"), "{e}");
        let e = read_user_file(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        assert!(open_user_file(dir.path()).is_err(), "a directory is no file");
        // `--config /dev/null`: no settings.
        assert_eq!(read_user_file(Path::new("/dev/null"), 1 << 20).unwrap(), Vec::<u8>::new());
    }
}
