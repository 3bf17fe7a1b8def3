//! Which ELF sections differ between two builds of one kernel module.
//!
//! A `.ko` is a relocatable ELF object: its code in `.text*`, its metadata in
//! `.modinfo`, `__versions`, `.note.gnu.build-id` and so on. When two builds
//! differ, the names of the sections that differ say where to look (random
//! data in a section of its own, a build id over different code, a path in
//! `.debug_str`). Sections are matched by name and, for repeated names, by
//! their order among the sections of that name; `SHT_NOBITS` sections (`.bss`)
//! hold no bytes and are compared by size.

use object::{Object, ObjectSection, SectionKind};
use serde::Serialize;

/// One section that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SectionDiff {
    pub name: String,
    /// `content`, `size`, `only in first`, `only in second`, or `headers`
    /// (the file differs outside every section).
    pub what: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_size: Option<u64>,
}

struct Section {
    name: String,
    size: u64,
    bytes: Option<Vec<u8>>,
}

fn sections_of(data: &[u8], which: &str) -> Result<Vec<Section>, String> {
    let file = object::File::parse(data).map_err(|e| format!("the {which} module is not an ELF file: {e}"))?;
    let mut out = Vec::new();
    for section in file.sections() {
        let name = section.name().unwrap_or("(unnamed)").to_owned();
        let bytes = match section.kind() {
            SectionKind::UninitializedData | SectionKind::UninitializedTls => None,
            _ => Some(section.data().map_err(|e| format!("{which} module, section {name}: {e}"))?.to_vec()),
        };
        out.push(Section { name, size: section.size(), bytes });
    }
    Ok(out)
}

/// `name`, or `name#2` for the second section of that name.
fn keyed(sections: Vec<Section>) -> Vec<(String, Section)> {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    sections
        .into_iter()
        .map(|s| {
            let n = seen.entry(s.name.clone()).or_default();
            *n += 1;
            let key = if *n == 1 { s.name.clone() } else { format!("{}#{n}", s.name) };
            (key, s)
        })
        .collect()
}

/// The sections that differ between two ELF files, in the first file's order
/// (then those only in the second). Empty when the files are equal.
pub fn sections(first: &[u8], second: &[u8]) -> Result<Vec<SectionDiff>, String> {
    let a = keyed(sections_of(first, "first")?);
    let b = keyed(sections_of(second, "second")?);
    let mut out = Vec::new();
    for (key, sa) in &a {
        let diff = |what: &str, second_size| SectionDiff {
            name: key.clone(),
            what: what.into(),
            first_size: Some(sa.size),
            second_size,
        };
        match b.iter().find(|(k, _)| k == key) {
            None => out.push(diff("only in first", None)),
            Some((_, sb)) if sa.size != sb.size => out.push(diff("size", Some(sb.size))),
            Some((_, sb)) if sa.bytes != sb.bytes => out.push(diff("content", Some(sb.size))),
            Some(_) => {}
        }
    }
    for (key, sb) in b.iter().filter(|(k, _)| !a.iter().any(|(ka, _)| ka == k)) {
        out.push(SectionDiff {
            name: key.clone(),
            what: "only in second".into(),
            first_size: None,
            second_size: Some(sb.size),
        });
    }
    if out.is_empty() && first != second {
        out.push(SectionDiff {
            name: "(ELF headers)".into(),
            what: "headers".into(),
            first_size: None,
            second_size: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ELF64 relocatable object: a null section, the given
    /// (name, SHT type, bytes) sections and `.shstrtab`.
    pub(crate) fn elf(sections: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut shstrtab = vec![0u8];
        let mut names = Vec::new();
        for (name, _, _) in sections.iter().copied().chain([(".shstrtab", 3, &[][..])]) {
            names.push(shstrtab.len() as u32);
            shstrtab.extend_from_slice(name.as_bytes());
            shstrtab.push(0);
        }
        let mut body = Vec::new();
        let mut placed = Vec::new();
        for (_, _, bytes) in sections {
            placed.push((64 + body.len()) as u64);
            body.extend_from_slice(bytes);
        }
        let shstr_off = (64 + body.len()) as u64;
        body.extend_from_slice(&shstrtab);
        while body.len() % 8 != 0 {
            body.push(0);
        }
        let shoff = 64 + body.len() as u64;
        let count = sections.len() as u16 + 2;
        let mut f = Vec::new();
        f.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&1u16.to_le_bytes()); // ET_REL
        f.extend_from_slice(&62u16.to_le_bytes()); // x86-64
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes()); // entry
        f.extend_from_slice(&0u64.to_le_bytes()); // phoff
        f.extend_from_slice(&shoff.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes()); // flags
        f.extend_from_slice(&64u16.to_le_bytes()); // ehsize
        f.extend_from_slice(&0u16.to_le_bytes());
        f.extend_from_slice(&0u16.to_le_bytes());
        f.extend_from_slice(&64u16.to_le_bytes()); // shentsize
        f.extend_from_slice(&count.to_le_bytes());
        f.extend_from_slice(&(count - 1).to_le_bytes()); // shstrndx
        f.extend_from_slice(&body);
        let header = |f: &mut Vec<u8>, name: u32, kind: u32, off: u64, size: u64| {
            f.extend_from_slice(&name.to_le_bytes());
            f.extend_from_slice(&kind.to_le_bytes());
            f.extend_from_slice(&[0; 16]); // flags, addr
            f.extend_from_slice(&off.to_le_bytes());
            f.extend_from_slice(&size.to_le_bytes());
            f.extend_from_slice(&[0; 8]); // link, info
            f.extend_from_slice(&1u64.to_le_bytes()); // addralign
            f.extend_from_slice(&0u64.to_le_bytes()); // entsize
        };
        f.extend_from_slice(&[0; 64]);
        for (i, (_, kind, bytes)) in sections.iter().enumerate() {
            header(&mut f, names[i], *kind, placed[i], bytes.len() as u64);
        }
        header(&mut f, names[sections.len()], 3, shstr_off, shstrtab.len() as u64);
        f
    }

    #[test]
    fn names_the_section_whose_bytes_differ() {
        let a =
            elf(&[(".text", 1, b"\x90\x90\xc3"), (".hermod_random", 1, b"1234"), (".modinfo", 1, b"license=GPL\0")]);
        let b =
            elf(&[(".text", 1, b"\x90\x90\xc3"), (".hermod_random", 1, b"5678"), (".modinfo", 1, b"license=GPL\0")]);
        let d = sections(&a, &b).unwrap();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].name.as_str(), d[0].what.as_str()), (".hermod_random", "content"));
        assert!(sections(&a, &a).unwrap().is_empty());
    }

    #[test]
    fn sizes_presence_and_repeated_names() {
        let a = elf(&[(".text", 1, b"ab"), (".data", 1, b"x"), (".text", 1, b"cd")]);
        let b = elf(&[(".text", 1, b"ab"), (".text", 1, b"cde"), (".rodata", 1, b"y")]);
        let d = sections(&a, &b).unwrap();
        let got: Vec<(&str, &str)> = d.iter().map(|s| (s.name.as_str(), s.what.as_str())).collect();
        // The section names differ, so the table of names does too.
        let want =
            [(".data", "only in first"), (".text#2", "size"), (".shstrtab", "size"), (".rodata", "only in second")];
        assert_eq!(got, want);
    }

    #[test]
    fn not_elf_is_said() {
        let a = elf(&[(".text", 1, b"ab")]);
        let err = sections(b"not an elf file at all", &a).unwrap_err();
        assert!(err.contains("first module is not an ELF file"), "{err}");
    }
}
