//! The cache key: what a build's output may depend on, and nothing else.
//!
//! Each input is hashed on its own (so `hermod key --explain` can say which one
//! changed) and the key is blake3 over the sorted, length-prefixed list of
//! `(input name, input hash)`. The source is hashed from its scan: relative
//! paths, kinds, the execute bit, symlink targets and contents, never absolute
//! paths, owners or mtimes. Anything that does not change the .deb bytes
//! (host path, time, user, -j) stays out of the key.

use crate::source::{Kind, SourceTree};

/// Bump when the build or packaging changes what hermod produces from the same inputs.
pub const BUILD_FORMAT_VERSION: u32 = 1;

/// One named input of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub name: String,
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub inputs: Vec<Input>,
    pub hex: String,
}

/// Length-prefixed fields: no choice of file names can make two inputs collide.
struct Encoder(blake3::Hasher);

impl Encoder {
    fn new(domain: &str) -> Encoder {
        let mut e = Encoder(blake3::Hasher::new());
        e.field(domain.as_bytes());
        e
    }
    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }
    fn finish(&self) -> String {
        self.0.finalize().to_hex().to_string()
    }
}

/// Hash of a scanned source tree.
pub fn source_hash(tree: &SourceTree) -> String {
    let mut e = Encoder::new("hermod-source-v1");
    for entry in &tree.entries {
        match &entry.kind {
            Kind::Dir => e.field(b"d").field(entry.path.as_bytes()),
            Kind::File { hash, size, executable } => e
                .field(if *executable { b"x" } else { b"f" })
                .field(entry.path.as_bytes())
                .field(&size.to_le_bytes())
                .field(hash.as_bytes()),
            Kind::Symlink { target } => e.field(b"l").field(entry.path.as_bytes()).field(target.as_bytes()),
        };
    }
    e.finish()
}

fn text_hash(text: &str) -> String {
    Encoder::new("hermod-text-v1").field(text.as_bytes()).finish()
}

/// Everything a build's key is made of.
pub struct KeyInputs<'a> {
    pub source: &'a SourceTree,
    pub kernel: &'a str,
    pub architecture: &'a str,
    /// Hash of the build root's exact package set.
    pub rootfs_lock: &'a str,
    /// Build parameters that change the output, as `name=value` lines.
    pub params: &'a str,
}

impl Key {
    pub fn compute(inputs: &KeyInputs<'_>) -> Key {
        let mut list = vec![
            Input { name: "format".into(), hash: text_hash(&BUILD_FORMAT_VERSION.to_string()) },
            Input { name: "source".into(), hash: source_hash(inputs.source) },
            Input { name: "kernel".into(), hash: text_hash(inputs.kernel) },
            Input { name: "architecture".into(), hash: text_hash(inputs.architecture) },
            Input { name: "rootfs".into(), hash: inputs.rootfs_lock.to_owned() },
            Input { name: "params".into(), hash: text_hash(inputs.params) },
        ];
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let mut e = Encoder::new("hermod-key-v1");
        for input in &list {
            e.field(input.name.as_bytes()).field(input.hash.as_bytes());
        }
        Key { hex: e.finish(), inputs: list }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn source(files: &[(&str, &str)]) -> (tempfile::TempDir, SourceTree) {
        let dir = tempfile::tempdir().unwrap();
        for (p, body) in files {
            fs::write(dir.path().join(p), body).unwrap();
        }
        let tree = SourceTree::scan(dir.path()).unwrap();
        (dir, tree)
    }

    fn key(tree: &SourceTree, kernel: &str, lock: &str) -> Key {
        Key::compute(&KeyInputs { source: tree, kernel, architecture: "amd64", rootfs_lock: lock, params: "" })
    }

    #[test]
    fn same_inputs_in_other_places_give_the_same_key() {
        let (_a, ta) = source(&[("dkms.conf", "PACKAGE_NAME=x"), ("x.c", "int x;")]);
        let (_b, tb) = source(&[("x.c", "int x;"), ("dkms.conf", "PACKAGE_NAME=x")]);
        assert_eq!(key(&ta, "k", "l"), key(&tb, "k", "l"));
    }

    #[test]
    fn each_input_changes_the_key() {
        let (_a, ta) = source(&[("dkms.conf", "PACKAGE_NAME=x"), ("x.c", "int x;")]);
        let (_b, tb) = source(&[("dkms.conf", "PACKAGE_NAME=x"), ("x.c", "int y;")]);
        let base = key(&ta, "k", "l");
        assert_ne!(base.hex, key(&tb, "k", "l").hex);
        assert_ne!(base.hex, key(&ta, "k2", "l").hex);
        assert_ne!(base.hex, key(&ta, "k", "l2").hex);
        let changed: Vec<_> = base
            .inputs
            .iter()
            .zip(&key(&tb, "k", "l").inputs)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.name.as_str())
            .collect();
        assert_eq!(changed, ["source"]);
    }

    #[test]
    fn renaming_a_file_changes_the_source_hash() {
        let (_a, ta) = source(&[("dkms.conf", "c"), ("a.c", "same")]);
        let (_b, tb) = source(&[("dkms.conf", "c"), ("b.c", "same")]);
        assert_ne!(source_hash(&ta), source_hash(&tb));
    }
}
