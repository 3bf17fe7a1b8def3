//! The text the `hermod rootfs` commands print (kept here so the CLI stays glue).

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::inventory::{compiler, read_roots, Inventory};
use super::{is_headers_package, GcReport, Lock, VerifyReport};
use crate::store::Store;

/// `12.3 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `3 min ago`, `2 days ago`.
fn age(epoch_secs: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let secs = now.saturating_sub(epoch_secs);
    match secs {
        0..60 => "just now".into(),
        60..7200 => format!("{} min ago", secs / 60),
        7200..172_800 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86400),
    }
}

/// `hermod rootfs list`: a table, or JSON lines (each root, then the totals).
pub fn list(inventory: &Inventory, json: bool) -> String {
    let mut out = String::new();
    if json {
        for root in &inventory.roots {
            let _ = writeln!(out, "{}", serde_json::to_string(root).expect("serializes"));
        }
        let totals = serde_json::json!({
            "total": {
                "roots": inventory.roots.len(),
                "apparent_bytes": inventory.apparent_bytes,
                "unique_bytes": inventory.unique_bytes,
                "disk_bytes": inventory.disk_bytes,
                "store_files_bytes": inventory.store_files_bytes,
            }
        });
        let _ = writeln!(out, "{totals}");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<24} {:<16} {:<16}  {:<26} {:>10} {:>10}  LAST USE",
        "KERNEL", "RECIPE", "LOCK", "COMPILER", "SIZE", "SHARED"
    );
    for r in &inventory.roots {
        let _ = writeln!(
            out,
            "{:<24} {:<16} {:<16}  {:<26} {:>10} {:>10}  {}{}",
            r.kernel,
            r.recipe,
            &r.lock[..16],
            r.compiler,
            size(r.apparent_bytes),
            size(r.shared_bytes),
            age(r.last_use),
            if r.in_use { " (in use)" } else { "" }
        );
    }
    let _ = writeln!(
        out,
        "total: {} roots, {} apparent, {} unique on disk ({} with directories, as du counts); file store {}",
        inventory.roots.len(),
        size(inventory.apparent_bytes),
        size(inventory.unique_bytes),
        size(inventory.disk_bytes),
        size(inventory.store_files_bytes),
    );
    out
}

/// `hermod rootfs show`: the lock, its two hashes and their packages.
pub fn show(store: &Store, lock: &Lock) -> String {
    let mut out = String::new();
    let hash = lock.hash();
    let _ = writeln!(out, "kernel     {}", lock.kernel);
    let _ = writeln!(out, "recipe     {} ({})", lock.recipe, lock.architecture);
    let _ = writeln!(out, "lock       {hash}");
    let _ = writeln!(out, "headers    {}", lock.headers_hash());
    let _ = writeln!(out, "toolchain  {}", lock.toolchain_hash());
    let packages = lock.packages.iter().map(|p| (p.name.as_str(), p.version.as_str()));
    let _ = writeln!(out, "compiler   {}", compiler(packages).unwrap_or_else(|| "-".into()));
    if !lock.extras.is_empty() {
        let _ = writeln!(out, "needs      {} (declared build needs)", lock.extras.join(", "));
    }
    let root =
        read_roots(store).ok().and_then(|roots| roots.into_iter().find(|r| r.hash == hash && r.kernel.is_some()));
    match root {
        Some(r) => {
            let used = r.last_use.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let _ = writeln!(out, "root       {} (last use {})", r.tree().display(), age(used));
        }
        None => {
            let _ = writeln!(out, "root       not materialized (hermod rootfs build --kernel {})", lock.kernel);
        }
    }
    for (title, headers) in [("headers packages", true), ("toolchain packages", false)] {
        let _ = writeln!(out, "{title}:");
        let mut packages: Vec<_> = lock.packages.iter().filter(|p| is_headers_package(&p.name) == headers).collect();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        for p in packages {
            let _ = writeln!(out, "  {} {} {} {}", p.name, p.version, p.architecture, p.sha256);
        }
    }
    for (link, target) in &lock.links {
        let _ = writeln!(out, "link       {link} -> {target}");
    }
    out
}

pub fn gc(report: &GcReport) -> String {
    let mut out = String::new();
    for (kernel, hash) in &report.removed {
        let _ = writeln!(out, "removed {kernel} {}", &hash[..16]);
    }
    for (kernel, hash) in &report.in_use {
        let _ = writeln!(out, "in use, kept {kernel} {}", &hash[..16]);
    }
    let _ = writeln!(
        out,
        "gc: {} roots removed, {} in use, {} kept; {} stored files ({}) and {} package manifests removed; {} leftovers of interrupted runs cleaned",
        report.removed.len(),
        report.in_use.len(),
        report.kept,
        report.blobs_removed,
        size(report.bytes_freed),
        report.manifests_removed,
        report.litter_removed
    );
    if !report.failed.is_empty() {
        let _ = writeln!(
            out,
            "gc: {} tree(s) could not be removed (warned about above); the next gc tries again",
            report.failed.len()
        );
    }
    out
}

/// The text of a dry `rootfs gc`: what a real one would remove and keep.
pub fn gc_dry(report: &GcReport) -> String {
    let mut out = String::new();
    for (kernel, hash) in &report.removed {
        let _ = writeln!(out, "would remove {kernel} {}", &hash[..16]);
    }
    for (kernel, hash) in &report.in_use {
        let _ = writeln!(out, "in use, would keep {kernel} {}", &hash[..16]);
    }
    let _ = writeln!(
        out,
        "gc (dry run, nothing removed): {} roots would be removed, {} in use, {} kept; then the stored files only they hold",
        report.removed.len(),
        report.in_use.len(),
        report.kept
    );
    out
}

pub fn verify(report: &VerifyReport) -> String {
    let mut out = String::new();
    for blob in &report.corrupt {
        let _ = writeln!(out, "corrupt  {blob} (restored)");
    }
    for blob in &report.missing {
        let _ = writeln!(out, "missing  {blob} (restored)");
    }
    for path in &report.relinked {
        let _ = writeln!(out, "relinked {}", path.display());
    }
    for path in &report.foreign {
        let _ = writeln!(out, "foreign  {}", path.display());
    }
    let _ = writeln!(
        out,
        "verify: {} stored files ({}) checked; {} corrupt, {} missing, restored; {} paths in build roots re-linked; {} foreign",
        report.blobs,
        size(report.bytes),
        report.corrupt.len(),
        report.missing.len(),
        report.relinked.len(),
        report.foreign.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_du_h() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(900 * 1024 * 1024), "900.0 MiB");
        assert_eq!(size(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
