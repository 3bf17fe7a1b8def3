//! What `modinfo` reads: the `.modinfo` section of a kernel module, a list of
//! NUL-separated `key=value` strings (`name=hello`, `vermagic=6.1.0-56-amd64
//! SMP preempt mod_unload modversions`, `depends=videodev,v4l2-common`), read
//! here straight from the ELF file so no host tool is needed.
//!
//! Modules may be stored compressed (`.ko.xz`, `.ko.zst`, `.ko.gz`, as the
//! kernel's `CONFIG_MODULE_COMPRESS_*` says); [`module_bytes`] undoes that,
//! since the initramfs's `insmod` hands the kernel the plain ELF image.

use std::io::Read;

/// A module file's name without directory and suffix, in the kernel's
/// spelling (`v4l2-common.ko.xz` → `v4l2_common`): module names treat `-` and
/// `_` alike, and `depends` may use either.
pub fn module_name_of_file(file_name: &str) -> Option<String> {
    let stem = ["", ".xz", ".zst", ".gz"].iter().find_map(|z| file_name.strip_suffix(&format!(".ko{z}")))?;
    (!stem.is_empty()).then(|| normalize(stem))
}

/// `-` and `_` are the same in module names; the kernel uses `_`.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The plain ELF bytes of a module file, decompressed by its suffix, at most
/// `max_module_size` of them (a `.ko.xz` may be a bomb; see [`crate::bounded`]).
pub fn module_bytes(file_name: &str, raw: Vec<u8>) -> Result<Vec<u8>, String> {
    let plain: Box<dyn Read + '_> = if file_name.ends_with(".ko.xz") {
        // liblzma's default has no memory limit; xz -9 needs 65 MiB.
        let stream = liblzma::stream::Stream::new_stream_decoder(128 << 20, 0).map_err(|e| e.to_string())?;
        Box::new(liblzma::read::XzDecoder::new_stream(&raw[..], stream))
    } else if file_name.ends_with(".ko.zst") {
        Box::new(zstd::stream::read::Decoder::new(&raw[..]).map_err(|e| format!("cannot decompress: {e}"))?)
    } else if file_name.ends_with(".ko.gz") {
        Box::new(flate2::read::GzDecoder::new(&raw[..]))
    } else {
        return Ok(raw);
    };
    let limits = crate::bounded::current();
    crate::bounded::read_capped(plain, crate::bounded::Limit::ModuleSize, &limits)
        .map_err(|e| format!("cannot decompress: {e}"))
}

/// The `.modinfo` fields of a (decompressed) 64-bit little-endian ELF module,
/// in file order.
pub fn fields(elf: &[u8]) -> Result<Vec<(String, String)>, String> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if elf[4] != 2 || elf[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let u16_at = |at: usize| elf.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |at: usize| elf.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize);
    let u64_at = |at: usize| elf.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize);
    let truncated = || "truncated ELF section table".to_string();
    let shoff = u64_at(0x28).ok_or_else(truncated)?;
    let shentsize = u16_at(0x3a).ok_or_else(truncated)?;
    let shnum = u16_at(0x3c).ok_or_else(truncated)?;
    let shstrndx = u16_at(0x3e).ok_or_else(truncated)?;
    if shentsize < 64 || shstrndx >= shnum {
        return Err("bad ELF section table".into());
    }
    // (name offset, file offset, size) of section i.
    let section = |i: usize| -> Option<(usize, usize, usize)> {
        let at = shoff.checked_add(i.checked_mul(shentsize)?)?;
        Some((u32_at(at)?, u64_at(at.checked_add(24)?)?, u64_at(at.checked_add(32)?)?))
    };
    let bytes_of = |off: usize, size: usize| elf.get(off..off.checked_add(size)?);
    let (_, str_off, str_size) = section(shstrndx).ok_or_else(truncated)?;
    let names = bytes_of(str_off, str_size).ok_or_else(truncated)?;
    for i in 0..shnum {
        let (name_off, off, size) = section(i).ok_or_else(truncated)?;
        let name = names.get(name_off..).and_then(|n| n.split(|&b| b == 0).next()).unwrap_or_default();
        if name == b".modinfo" {
            let data = bytes_of(off, size).ok_or("truncated .modinfo section")?;
            return Ok(data
                .split(|&b| b == 0)
                .filter_map(|s| {
                    let s = String::from_utf8_lossy(s);
                    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))
                })
                .collect());
        }
    }
    Err("no .modinfo section (not a kernel module)".into())
}

/// The first value of `key`.
pub fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The `depends` field as normalized module names (empty when none).
pub fn depends(fields: &[(String, String)]) -> Vec<String> {
    field(fields, "depends").unwrap_or("").split(',').map(str::trim).filter(|d| !d.is_empty()).map(normalize).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal relocatable ELF64 with a section-name table and a
    /// `.modinfo` section holding `strings`.
    pub(crate) fn fake_module(strings: &[&str]) -> Vec<u8> {
        let shstrtab = b"\0.shstrtab\0.modinfo\0";
        let mut modinfo = Vec::new();
        for s in strings {
            modinfo.extend_from_slice(s.as_bytes());
            modinfo.push(0);
        }
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        let str_off = elf.len();
        elf.extend_from_slice(shstrtab);
        let info_off = elf.len();
        elf.extend_from_slice(&modinfo);
        while !elf.len().is_multiple_of(8) {
            elf.push(0);
        }
        let shoff = elf.len();
        let mut header = |name: u32, off: usize, size: usize| {
            let mut sh = vec![0u8; 64];
            sh[..4].copy_from_slice(&name.to_le_bytes());
            sh[24..32].copy_from_slice(&(off as u64).to_le_bytes());
            sh[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            elf.extend_from_slice(&sh);
        };
        header(0, 0, 0);
        header(1, str_off, shstrtab.len());
        header(11, info_off, modinfo.len());
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        elf
    }

    #[test]
    fn reads_the_modinfo_strings() {
        let elf = fake_module(&[
            "license=GPL",
            "depends=videodev,v4l2-common",
            "name=v4l2loopback",
            "vermagic=6.1.0-1-amd64 SMP",
        ]);
        let f = fields(&elf).unwrap();
        assert_eq!(field(&f, "name"), Some("v4l2loopback"));
        assert_eq!(field(&f, "vermagic"), Some("6.1.0-1-amd64 SMP"));
        assert_eq!(depends(&f), ["videodev", "v4l2_common"]);
        assert!(depends(&fields(&fake_module(&["depends="])).unwrap()).is_empty());
    }

    #[test]
    fn refuses_what_is_no_module() {
        assert!(fields(b"hello").unwrap_err().contains("not an ELF"));
        let mut elf = fake_module(&["a=b"]);
        elf.truncate(100);
        assert!(fields(&elf).is_err());
        let no_modinfo = {
            let mut e = fake_module(&[]);
            // Rename the section: ".modinfo" → ".modinfX".
            let at = e.windows(8).position(|w| w == b".modinfo").unwrap();
            e[at + 7] = b'X';
            e
        };
        assert!(fields(&no_modinfo).unwrap_err().contains("no .modinfo"));
    }

    #[test]
    fn names_and_compressed_modules() {
        assert_eq!(module_name_of_file("v4l2-common.ko.xz").as_deref(), Some("v4l2_common"));
        assert_eq!(module_name_of_file("hello.ko").as_deref(), Some("hello"));
        assert_eq!(module_name_of_file("modules.dep"), None);
        let elf = fake_module(&["name=x"]);
        let xz = crate::compress::Compression::Xz.apply(&elf).unwrap();
        assert_eq!(module_bytes("x.ko.xz", xz).unwrap(), elf);
        let zst = zstd::stream::encode_all(&elf[..], 3).unwrap();
        assert_eq!(module_bytes("x.ko.zst", zst).unwrap(), elf);
        assert!(module_bytes("x.ko.xz", b"junk".to_vec()).is_err());
    }
}
