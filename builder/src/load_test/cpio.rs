//! A writer of the "newc" cpio format (`070701`), the only format the Linux
//! kernel unpacks as an initramfs (`Documentation/driver-api/early-userspace/buffer-format.rst`).
//!
//! Each entry is a 110-byte ASCII header (magic and thirteen 8-digit hex
//! fields), the NUL-terminated name padded to a multiple of 4 bytes (counting
//! the header), then the data padded to 4. The archive ends with an entry
//! named `TRAILER!!!`. The kernel creates entries in order, so a directory
//! must come before what it holds: [`CpioWriter`] emits every missing parent
//! directory itself.
//!
//! Written here rather than taken from a crate: the format is this small, and
//! the unit tests check it against the host's `cpio` and against a parser.

use std::collections::BTreeSet;
use std::io::{self, Write};

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// Streams a newc archive into `out`. Paths are relative (`bin/busybox`), as
/// the kernel unpacks them relative to the root of the initramfs.
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
    dirs: BTreeSet<String>,
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> CpioWriter<W> {
        CpioWriter { out, next_ino: 1, written: 0, dirs: BTreeSet::new() }
    }

    /// A directory (and its missing parents), with permission bits `perm`.
    pub fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        let path = clean(path)?;
        self.parents(&path)?;
        if self.dirs.insert(path.clone()) {
            self.entry(&path, S_IFDIR | (perm & 0o7777), 2, b"")?;
        }
        Ok(())
    }

    /// A regular file with permission bits `perm`.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        let path = clean(path)?;
        self.parents(&path)?;
        self.entry(&path, S_IFREG | (perm & 0o7777), 1, data)
    }

    /// A symbolic link whose content is `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let path = clean(path)?;
        self.parents(&path)?;
        self.entry(&path, S_IFLNK | 0o777, 1, target.as_bytes())
    }

    /// Write the trailer and return the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry(TRAILER, 0, 1, b"")?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn parents(&mut self, path: &str) -> io::Result<()> {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            let parent = &path[..at + i];
            if !self.dirs.contains(parent) {
                self.dirs.insert(parent.to_owned());
                self.entry(parent, S_IFDIR | 0o755, 2, b"")?;
            }
            at += i + 1;
        }
        Ok(())
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, data: &[u8]) -> io::Result<()> {
        let size = u32::try_from(data.len()).map_err(|_| io::Error::other(format!("{name}: over 4 GiB")))?;
        let ino = if name == TRAILER { 0 } else { self.next_ino };
        self.next_ino += 1;
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, name.len() as u32 + 1, 0];
        let mut header = String::with_capacity(110);
        header.push_str(MAGIC);
        for field in fields {
            header.push_str(&format!("{field:08X}"));
        }
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }
}

/// `path` without leading `/` or `./`; refuses empty names and `..`.
fn clean(path: &str) -> io::Result<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.is_empty() || parts.contains(&"..") {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad initramfs path {path:?}")));
    }
    Ok(parts.join("/"))
}

/// One entry read back by [`parse`] (tests and diagnostics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// Read a newc archive (up to its trailer); the inverse of [`CpioWriter`].
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let mut at = 0usize;
    let mut entries = Vec::new();
    let align = |n: usize| n.div_ceil(4) * 4;
    loop {
        let header = bytes.get(at..at + 110).ok_or_else(|| format!("truncated header at {at}"))?;
        if &header[..6] != MAGIC.as_bytes() {
            return Err(format!("bad magic at {at}"));
        }
        let field = |i: usize| -> Result<usize, String> {
            let text = std::str::from_utf8(&header[6 + 8 * i..14 + 8 * i]).map_err(|e| e.to_string())?;
            usize::from_str_radix(text, 16).map_err(|e| format!("field {i} at {at}: {e}"))
        };
        let (mode, size, namesize) = (field(1)?, field(6)?, field(11)?);
        let name_end = at + 110 + namesize;
        let name = bytes.get(at + 110..name_end - 1).ok_or("truncated name")?;
        let name = String::from_utf8(name.to_vec()).map_err(|e| e.to_string())?;
        let data_start = align(name_end);
        let data = bytes.get(data_start..data_start + size).ok_or("truncated data")?.to_vec();
        at = align(data_start + size);
        if name == TRAILER {
            return Ok(entries);
        }
        entries.push(Entry { name, mode: mode as u32, data });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = CpioWriter::new(Vec::new());
        w.file("/bin/busybox", 0o755, b"\x7fELF binary").unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        w.dir("proc", 0o555).unwrap();
        w.file("lib/modules/6.1.0-1-amd64/kernel/a.ko", 0o644, &[1, 2, 3, 4, 5]).unwrap();
        w.file("init", 0o755, b"#!/bin/busybox sh\n").unwrap();
        w.file("empty", 0o644, b"").unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn parents_come_first_and_everything_reads_back() {
        let bytes = sample();
        assert_eq!(bytes.len() % 4, 0);
        let entries = parse(&bytes).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/busybox",
                "bin/sh",
                "proc",
                "lib",
                "lib/modules",
                "lib/modules/6.1.0-1-amd64",
                "lib/modules/6.1.0-1-amd64/kernel",
                "lib/modules/6.1.0-1-amd64/kernel/a.ko",
                "init",
                "empty"
            ]
        );
        let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
        assert_eq!(get("bin/busybox").data, b"\x7fELF binary");
        assert_eq!(get("bin/busybox").mode, S_IFREG | 0o755);
        assert_eq!(get("bin/sh").mode, S_IFLNK | 0o777);
        assert_eq!(get("bin/sh").data, b"busybox");
        assert_eq!(get("proc").mode, S_IFDIR | 0o555);
        assert_eq!(get("lib/modules/6.1.0-1-amd64/kernel/a.ko").data, [1, 2, 3, 4, 5]);
        assert!(get("empty").data.is_empty());
    }

    #[test]
    fn refuses_dot_dot_and_empty_names() {
        let mut w = CpioWriter::new(Vec::new());
        assert!(w.file("../etc/passwd", 0o644, b"").is_err());
        assert!(w.file("/", 0o644, b"").is_err());
    }

    /// The host's GNU cpio lists and extracts what was written, when installed.
    #[test]
    fn the_hosts_cpio_reads_it() {
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let Ok(mut child) = Command::new("cpio")
            .args(["-i", "--make-directories", "--quiet", "--no-absolute-filenames"])
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        else {
            if std::env::var_os("HERMOD_TEST_REQUIRE_TOOLS").is_some_and(|v| !v.is_empty()) {
                panic!("cpio is not installed (apt-get install cpio), and HERMOD_TEST_REQUIRE_TOOLS is set");
            }
            eprintln!("skipped: the_hosts_cpio_reads_it needs cpio (apt-get install cpio)");
            return;
        };
        let dir = dir.path();
        child.stdin.take().unwrap().write_all(&sample()).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(std::fs::read(dir.join("bin/busybox")).unwrap(), b"\x7fELF binary");
        assert_eq!(std::fs::read_link(dir.join("bin/sh")).unwrap(), std::path::Path::new("busybox"));
        assert_eq!(std::fs::read(dir.join("lib/modules/6.1.0-1-amd64/kernel/a.ko")).unwrap(), [1, 2, 3, 4, 5]);
    }
}
