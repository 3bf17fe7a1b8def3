//! The cache key: what a build's output may depend on, and nothing else.
//!
//! Each input is hashed on its own (so `hermod key --explain` can say which one
//! changed) and the key is blake3 over the sorted, length-prefixed list of
//! `(input name, input hash)`. The source is hashed from its scan: relative
//! paths, kinds, the execute bit, symlink targets and contents, never absolute
//! paths, owners or mtimes. Anything that does not change the .deb bytes
//! (host path, time, user, -j) stays out of the key.

use crate::dkms::OverrideFile;
use crate::source::{Kind, SourceTree};

/// Bump when the build or packaging changes what hermod produces from the same inputs
/// (3: dkms.conf's PATCH, PRE_BUILD/POST_BUILD, BUILD_EXCLUSIVE and DKMS 3.x module rules).
pub const BUILD_FORMAT_VERSION: u32 = 4;

/// One named input of a key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Input {
    pub name: String,
    pub hash: String,
    /// What the input is, for people (`hermod key --explain`); not hashed.
    #[serde(default)]
    pub detail: String,
}

impl Input {
    pub fn new(name: &str, hash: String, detail: impl Into<String>) -> Input {
        Input { name: name.to_owned(), hash, detail: detail.into() }
    }
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

pub fn text_hash(text: &str) -> String {
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
    /// More named inputs: the build root's parts (headers, compiler, tools),
    /// dkms overrides… Each is part of the key like the fixed ones.
    pub extra: Vec<Input>,
}

/// Hash of the `/etc/dkms` override files that apply: names and contents, in
/// the order they are sourced.
pub fn overrides_hash(files: &[OverrideFile]) -> String {
    let mut e = Encoder::new("hermod-dkms-overrides-v1");
    for file in files {
        e.field(file.name.as_bytes()).field(&file.contents);
    }
    e.finish()
}

/// The key input `dkms-overrides`, present only when some override files
/// apply (so a host without them keys builds as before they existed).
pub fn overrides_input(files: &[OverrideFile]) -> Option<Input> {
    if files.is_empty() {
        return None;
    }
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    Some(Input::new("dkms-overrides", overrides_hash(files), names.join(", ")))
}

impl Key {
    pub fn compute(inputs: &KeyInputs<'_>) -> Key {
        let files = inputs.source.entries.iter().filter(|e| matches!(e.kind, Kind::File { .. })).count();
        let mut list = vec![
            Input::new(
                "format",
                text_hash(&BUILD_FORMAT_VERSION.to_string()),
                format!("build format {BUILD_FORMAT_VERSION}"),
            ),
            Input::new(
                "source",
                source_hash(inputs.source),
                format!("{files} files, {} bytes", inputs.source.total_bytes()),
            ),
            Input::new("kernel", text_hash(inputs.kernel), inputs.kernel),
            Input::new("architecture", text_hash(inputs.architecture), inputs.architecture),
            Input::new("rootfs", inputs.rootfs_lock.to_owned(), "the build root's exact package set (lock hash)"),
            Input::new("params", text_hash(inputs.params), inputs.params.trim_end().replace('\n', "; ")),
        ];
        list.extend(inputs.extra.iter().cloned());
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let mut e = Encoder::new("hermod-key-v2");
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
        Key::compute(&KeyInputs {
            source: tree,
            kernel,
            architecture: "amd64",
            rootfs_lock: lock,
            params: "",
            extra: Vec::new(),
        })
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

    #[test]
    fn override_files_are_an_input_only_when_present() {
        let (_a, ta) = source(&[("dkms.conf", "c")]);
        let inputs = |files: &[OverrideFile]| KeyInputs {
            source: &ta,
            kernel: "k",
            architecture: "amd64",
            rootfs_lock: "l",
            params: "",
            extra: overrides_input(files).into_iter().collect(),
        };
        let none = Key::compute(&inputs(&[]));
        assert!(none.inputs.iter().all(|i| i.name != "dkms-overrides"));
        let one = [OverrideFile { name: "x.conf".into(), contents: b"MAKE[0]=make".to_vec() }];
        let with = Key::compute(&inputs(&one));
        assert!(with.inputs.iter().any(|i| i.name == "dkms-overrides"));
        assert_ne!(none.hex, with.hex);
        let other = [OverrideFile { name: "x-1.conf".into(), contents: b"MAKE[0]=make".to_vec() }];
        assert_ne!(with.hex, Key::compute(&inputs(&other)).hex);
    }
}
