//! `hermod publish`'s inputs: each .deb the user named, read as a stream
//! from one descriptor, never whole into memory.
//!
//! A .deb is opened once, and only if it is a regular file (a FIFO named
//! `x.deb` would block hermod forever; see `hermod_hostfs::open_regular_path`).
//! Its first bytes must be the `ar` magic, its size at most `max_deb_size`.
//! Then two passes over the descriptor, each hashing every byte of the file:
//! the control file (through the bounded .deb reader), then the data
//! member's newest mtime. Both passes must see the same SHA256, or the file
//! changed while being read and is refused: the index's fields, its SHA256
//! and the pool's copy are then all of the same bytes, because the copy into
//! the pool ([`copy_checked`]) is hashed again and must match too.
//!
//! So a publish holds at most one buffer per input, whatever the inputs'
//! sizes: a 3 GiB file is refused at its eighth byte or by its size.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::index::{DebHash, Entry};
use super::RepoError;
use crate::apt::debfile::{self, DebFileError};
use crate::bounded::{self, Bounded, Exceeded, InputLimits, Limit};

/// The `ar` archive's magic: every .deb starts with it.
const AR_MAGIC: &[u8; 8] = b"!<arch>\n";

/// One input .deb, read and checked before the repository is touched.
pub(super) struct Input {
    pub path: PathBuf,
    /// The file as opened and checked: the pool's copy is read from it.
    pub file: File,
    pub entry: Entry,
    /// The newest mtime inside its data.tar.
    pub newest: i64,
}

/// A reader that hashes (SHA256) and counts every byte read through it.
pub(super) struct Hashing<R> {
    inner: R,
    sha256: Sha256,
    size: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Hashing<R> {
        Hashing { inner, sha256: Sha256::new(), size: 0 }
    }

    /// The hash of the whole stream: what the caller did not read is read
    /// (and hashed) here.
    pub fn finish(mut self) -> io::Result<DebHash> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(DebHash { size: self.size, sha256: hex::encode(self.sha256.finalize()) })
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha256.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// `file` from its first byte, hashed, bounded by `max_deb_size`.
fn from_start<'a>(file: &'a File, limits: &InputLimits) -> io::Result<Hashing<Bounded<BufReader<&'a File>>>> {
    let mut f = file;
    f.seek(SeekFrom::Start(0))?;
    Ok(Hashing::new(Bounded::new(BufReader::new(f), Limit::DebSize, limits)))
}

/// Read and check the .deb at `path` (see the module doc).
pub(super) fn read_input(path: &Path, component: &str, limits: &InputLimits) -> Result<Input, RepoError> {
    let read_err = |source| RepoError::ReadInput { path: path.into(), source };
    let (file, size) = bounded::open_user_file(path).map_err(read_err)?;
    let mut head = Vec::with_capacity(AR_MAGIC.len());
    (&file).take(AR_MAGIC.len() as u64).read_to_end(&mut head).map_err(read_err)?;
    if head != AR_MAGIC {
        // Said before the size: a 3 GiB text file is "not a package", first.
        return Err(
            DebFileError::NotADeb { deb: path.into(), reason: "bad ar archive: no `!<arch>` magic".into() }.into()
        );
    }
    if size > limits.max_deb_size {
        return Err(read_err(Exceeded::new(Limit::DebSize, limits).into_io()));
    }
    let deb_err = |source| DebFileError::Io { deb: path.into(), source };

    let mut stream = from_start(&file, limits).map_err(read_err)?;
    let control = debfile::control_text_with(path, &mut stream, limits)?;
    let hash = stream.finish().map_err(deb_err)?;

    let mut stream = from_start(&file, limits).map_err(read_err)?;
    let mut newest = 0u64;
    debfile::read_data_with::<DebFileError>(path, &mut stream, limits, |e| {
        newest = newest.max(e.mtime);
        Ok(())
    })?;
    if stream.finish().map_err(deb_err)? != hash {
        return Err(changed(path));
    }
    let entry = Entry::from_deb(&path.display().to_string(), &control, &hash, component)?;
    Ok(Input { path: path.into(), file, entry, newest: i64::try_from(newest).unwrap_or(i64::MAX) })
}

fn changed(path: &Path) -> RepoError {
    RepoError::ReadInput {
        path: path.into(),
        source: io::Error::other("it changed while being read; nothing of it was published"),
    }
}

/// Copy `input` into `out`, hashing it again: other bytes than those indexed
/// are an error (the caller then removes `out`).
pub(super) fn copy_checked(input: &Input, out: &mut File) -> Result<(), RepoError> {
    let limits = bounded::current();
    let read_err = |source| RepoError::ReadInput { path: input.path.clone(), source };
    let mut stream = from_start(&input.file, &limits).map_err(read_err)?;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = stream.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(read_err)?;
    }
    let hash = stream.finish().map_err(read_err)?;
    if hash.size != input.entry.size || hash.sha256 != input.entry.sha256 {
        return Err(changed(&input.path));
    }
    Ok(())
}

/// Write `input` rewritten to the revised `entry` (its version) into `out`,
/// or only hash it when `out` is a sink; the control text and hash of the
/// result. The input is hashed on the way: other bytes than those read at
/// first are an error.
pub(super) fn revise(input: &Input, version: &str, out: impl Write) -> Result<(String, DebHash), RepoError> {
    let limits = bounded::current();
    let read_err = |source| RepoError::ReadInput { path: input.path.clone(), source };
    let mut stream = from_start(&input.file, &limits).map_err(read_err)?;
    let origin = input.path.display().to_string();
    let revised = super::revision::rewrite(&origin, &mut stream, out, version, &limits)?;
    let hash = stream.finish().map_err(read_err)?;
    if hash.size != input.entry.size || hash.sha256 != input.entry.sha256 {
        return Err(changed(&input.path));
    }
    Ok(revised)
}

/// [`revise`] into `out`, which must give the bytes `entry` describes.
pub(super) fn copy_revised(input: &Input, entry: &Entry, out: &mut File) -> Result<(), RepoError> {
    let (_, hash) = revise(input, &entry.version, &mut *out)?;
    if hash.size != entry.size || hash.sha256 != entry.sha256 {
        return Err(changed(&input.path));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_covers_what_the_caller_left_unread() {
        let mut r = Hashing::new(&b"0123456789"[..]);
        let mut two = [0u8; 2];
        r.read_exact(&mut two).unwrap();
        let h = r.finish().unwrap();
        assert_eq!(h, DebHash::of(b"0123456789"));
        assert_eq!(h.size, 10);
    }

    #[test]
    fn not_a_deb_or_too_large_is_refused_before_reading_on() {
        let dir = tempfile::tempdir().unwrap();
        let limits = InputLimits { max_deb_size: 100, ..InputLimits::default() };
        let text = dir.path().join("notes.deb");
        std::fs::write(&text, "just text, and long enough\n").unwrap();
        let e = read_input(&text, "main", &limits).err().unwrap().to_string();
        assert!(e.contains("not a Debian package") && e.contains("magic"), "{e}");
        let big = dir.path().join("big.deb");
        std::fs::write(&big, [&AR_MAGIC[..], &[b' '; 101]].concat()).unwrap();
        let e = read_input(&big, "main", &limits).err().unwrap().to_string();
        assert!(e.contains("big.deb") && e.contains("input_limits.max_deb_size"), "{e}");
        let fifo = dir.path().join("fifo.deb");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = read_input(&fifo, "main", &limits).err().unwrap().to_string();
        assert!(e.contains("fifo.deb") && e.contains("FIFO"), "{e}");
    }
}
