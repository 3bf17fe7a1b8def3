//! What `modinfo` reads: the `.modinfo` section of a kernel module, a list of
//! NUL-separated `key=value` strings (`name=hello`, `vermagic=6.1.0-56-amd64
//! SMP preempt mod_unload modversions`, `depends=videodev,v4l2-common`), read
//! here straight from the ELF file (the `object` crate, as `verify` reads
//! modules) so no host tool is needed.
//!
//! Modules may be stored compressed (`.ko.xz`, `.ko.zst`, `.ko.gz`, as the
//! kernel's `CONFIG_MODULE_COMPRESS_*` says); [`module_bytes`] undoes that,
//! since the initramfs's `insmod` hands the kernel the plain ELF image.

use crate::compress::Compression;

/// A module file's name without directory and suffix, in the kernel's
/// spelling (`v4l2-common.ko.xz` → `v4l2_common`): module names treat `-` and
/// `_` alike, and `depends` may use either.
pub fn module_name_of_file(file_name: &str) -> Option<String> {
    let (stem, _) = split_module_file(file_name)?;
    (!stem.is_empty()).then(|| normalize(stem))
}

/// `name.ko[.xz|.zst|.gz]` as its stem and compression; `None` for any other name.
fn split_module_file(file_name: &str) -> Option<(&str, Compression)> {
    let (stem, suffix) = file_name.rsplit_once(".ko")?;
    Some((stem, Compression::from_suffix(suffix)?))
}

/// `-` and `_` are the same in module names; the kernel uses `_`.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The plain ELF bytes of a module file, decompressed by its suffix, at most
/// `max_module_size` of them (a `.ko.xz` may be a bomb; see [`crate::bounded`]).
pub fn module_bytes(file_name: &str, raw: Vec<u8>) -> Result<Vec<u8>, String> {
    let format = match split_module_file(file_name) {
        Some((_, format)) => format,
        None if file_name.contains(".ko") => return Err(format!("unknown compression: {file_name}")),
        None => Compression::None,
    };
    if format == Compression::None {
        return Ok(raw);
    }
    let plain = format.decoder(&raw[..]).map_err(|e| format!("cannot decompress: {e}"))?;
    let limits = crate::bounded::current();
    crate::bounded::read_capped(plain, crate::bounded::Limit::ModuleSize, &limits)
        .map_err(|e| format!("cannot decompress: {e}"))
}

/// The `.modinfo` fields of a (decompressed) ELF module,
/// in file order.
pub fn fields(elf: &[u8]) -> Result<Vec<(String, String)>, String> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(elf).map_err(|e| format!("not an ELF file: {e}"))?;
    let section = file.section_by_name(".modinfo").ok_or("no .modinfo section (not a kernel module)")?;
    let data = section.data().map_err(|_| "truncated .modinfo section")?;
    Ok(data
        .split(|&b| b == 0)
        .filter_map(|s| {
            let s = String::from_utf8_lossy(s);
            s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect())
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
        elf[4] = 2; // ELFCLASS64
        elf[5] = 1; // little-endian
        elf[6] = 1; // EV_CURRENT
        elf[0x10] = 1; // ET_REL, as modules are
        elf[0x12] = 62; // EM_X86_64
        elf[0x14] = 1; // e_version
        elf[0x34] = 64; // e_ehsize
        let str_off = elf.len();
        elf.extend_from_slice(shstrtab);
        let info_off = elf.len();
        elf.extend_from_slice(&modinfo);
        while !elf.len().is_multiple_of(8) {
            elf.push(0);
        }
        let shoff = elf.len();
        let mut header = |name: u32, kind: u32, off: usize, size: usize| {
            let mut sh = vec![0u8; 64];
            sh[..4].copy_from_slice(&name.to_le_bytes());
            sh[4..8].copy_from_slice(&kind.to_le_bytes());
            sh[24..32].copy_from_slice(&(off as u64).to_le_bytes());
            sh[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            elf.extend_from_slice(&sh);
        };
        header(0, 0, 0, 0);
        header(1, 3, str_off, shstrtab.len()); // SHT_STRTAB
        header(11, 1, info_off, modinfo.len()); // SHT_PROGBITS
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
