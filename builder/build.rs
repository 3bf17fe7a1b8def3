//! Compiles every recipe of `rootfs-recipes/` into the binary: a new Debian
//! release is a new `<release>-<arch>.toml` there, not code. The list is
//! written to `$OUT_DIR/recipes.rs` as `(name, text)` pairs, sorted by name
//! (the recipes' own `release` order is applied at run time).
#![forbid(unsafe_code)]

use std::fs;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rootfs-recipes");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("rootfs-recipes/ is readable")
        .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".toml").map(str::to_owned))
        .collect();
    names.sort();
    let mut out = String::from("&[\n");
    for name in &names {
        let path = dir.join(format!("{name}.toml"));
        println!("cargo:rerun-if-changed={}", path.display());
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.canonicalize().expect("the recipe exists")
        ));
    }
    out.push(']');
    let target = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("recipes.rs");
    fs::write(target, out).expect("OUT_DIR is writable");
}
