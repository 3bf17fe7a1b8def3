//! The human-readable form of a [`Report`].

use std::fmt::Write;

use super::Report;

/// The report as text: the verdict, the builds, what was varied, and every difference.
pub fn text(r: &Report) -> String {
    let mut s = String::new();
    let verdict = if r.matches { "MATCH: the same bytes" } else { "MISMATCH" };
    let _ = writeln!(s, "hermod verify: {} for {}: {verdict}", r.package, r.kernel);
    for b in &r.builds {
        let when = match (&b.started_utc, b.seconds) {
            (Some(at), Some(secs)) => format!(", started {at}, {secs:.1} s"),
            _ => String::new(),
        };
        let _ = writeln!(s, "  {:<9} {} (sha256 {}){when}", format!("{}:", b.role), b.deb.display(), b.sha256);
    }
    if !r.variations.is_empty() {
        let header = match r.builds.as_slice() {
            [p, _] if p.role == "published" => {
                "the rebuild's conditions, against the caller's (caller | rebuild):".into()
            }
            [a, b] => format!("varied between the builds ({} | {}):", a.role, b.role),
            _ => "conditions:".into(),
        };
        let _ = writeln!(s, "{header}");
        for v in &r.variations {
            let mark = if v.applied { "yes" } else { "NOT APPLIED" };
            let _ = writeln!(s, "  {:<20} {mark}: {}  |  {}", v.name, v.first, v.second);
            if let Some(note) = &v.note {
                let _ = writeln!(s, "  {:<20} ({note})", "");
            }
        }
    }
    if !r.differences.is_empty() {
        let _ = writeln!(s, "differences ({}):", r.differences.len());
    }
    for d in &r.differences {
        let _ = writeln!(s, "  {}", d.member);
        for a in &d.aspects {
            let _ = writeln!(s, "    {}: {}  |  {}", a.what, a.first, a.second);
        }
        for sec in &d.elf_sections {
            let size = |n: Option<u64>| n.map_or("-".to_string(), |n| n.to_string());
            let _ = writeln!(
                s,
                "    ELF section {}: {} (size {} | {})",
                sec.name,
                sec.what,
                size(sec.first_size),
                size(sec.second_size)
            );
        }
        if let Some(note) = &d.elf_note {
            let _ = writeln!(s, "    ELF sections not compared: {note}");
        }
    }
    if let Some(kept) = &r.kept {
        let _ = writeln!(s, "kept: {}", kept.display());
    }
    match (&r.diffoscope, &r.diffoscope_note) {
        (Some(path), _) => {
            let _ = writeln!(s, "diffoscope: {}", path.display());
        }
        (None, Some(note)) if !r.matches => {
            let _ = writeln!(s, "diffoscope: not run ({note})");
        }
        _ => {}
    }
    s
}
