//! `hermod key`: a cache key with its inputs, remembered and compared.
//!
//! A cache miss is only useful if you can say *why* it missed. Every key
//! hermod computes is remembered in `<store>/keys/<key>.json` with each of
//! its inputs (name, hash, and a line for people), so `hermod key SOURCE
//! --against OLDKEY` can name exactly the inputs that differ: the source, the
//! headers, the compiler, the tools, a build parameter… `--against` also
//! takes a file written by `hermod key --json`, e.g. from another machine.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::key::{Input, Key};
use crate::store::{write_atomically, Store};

#[derive(Debug, thiserror::Error)]
pub enum KeyInfoError {
    #[error("--against {0}: no such key in this store's key records, and no such file")]
    Unknown(String),
    #[error("--against {spec}: the prefix matches {count} remembered keys; give more of it")]
    Ambiguous { spec: String, count: usize },
    #[error("--against {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("--against {path}: not a key record (as `hermod key --json` writes): {message}")]
    Malformed { path: PathBuf, message: String },
}

impl crate::exit::HasExitCode for KeyInfoError {
    /// `--against` names no usable key record.
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            KeyInfoError::Unknown { .. }
            | KeyInfoError::Ambiguous { .. }
            | KeyInfoError::Read { .. }
            | KeyInfoError::Malformed { .. } => crate::exit::Code::BadInput,
        }
    }
}

/// A key and its inputs, as stored and as `hermod key --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub key: String,
    pub inputs: Vec<Input>,
}

impl From<&Key> for KeyRecord {
    fn from(key: &Key) -> KeyRecord {
        KeyRecord { key: key.hex.clone(), inputs: key.inputs.clone() }
    }
}

fn keys_dir(store: &Store) -> PathBuf {
    store.keys_dir()
}

/// Remember `key`'s inputs (best effort: a failure only costs a later
/// explanation, so it is logged, not raised).
pub fn remember(store: &Store, key: &Key) {
    let dir = keys_dir(store);
    let path = dir.join(format!("{}.json", key.hex));
    if path.exists() {
        return;
    }
    let text = serde_json::to_vec_pretty(&KeyRecord::from(key)).expect("a key record serializes");
    if let Err(e) = fs::create_dir_all(&dir).and_then(|()| write_atomically(&path, &text)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remember the key's inputs");
    }
}

/// The record `spec` names: a file written by `hermod key --json`, or a key
/// (or a unique prefix of at least 8 hex digits) remembered in the store.
pub fn load(store: &Store, spec: &str) -> Result<KeyRecord, KeyInfoError> {
    let as_path = Path::new(spec);
    if as_path.is_file() {
        let text = crate::bounded::read_user_file(as_path, crate::bounded::MAX_USER_FILE)
            .map_err(|source| KeyInfoError::Read { path: as_path.to_owned(), source })?;
        return serde_json::from_slice(&text)
            .map_err(|e| KeyInfoError::Malformed { path: as_path.to_owned(), message: e.to_string() });
    }
    let hex = spec.len() >= 8 && spec.len() <= 64 && spec.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex {
        return Err(KeyInfoError::Unknown(spec.to_owned()));
    }
    let spec_lower = spec.to_ascii_lowercase();
    let mut matches: Vec<PathBuf> = fs::read_dir(keys_dir(store))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&spec_lower) && n.ends_with(".json"))
        })
        .collect();
    match matches.len() {
        0 => Err(KeyInfoError::Unknown(spec.to_owned())),
        1 => {
            let path = matches.remove(0);
            let text = crate::bounded::read_user_file(&path, crate::bounded::MAX_USER_FILE)
                .map_err(|source| KeyInfoError::Read { path: path.clone(), source })?;
            serde_json::from_slice(&text).map_err(|e| KeyInfoError::Malformed { path, message: e.to_string() })
        }
        count => Err(KeyInfoError::Ambiguous { spec: spec.to_owned(), count }),
    }
}

/// One input that is not the same in two records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub name: String,
    /// `None`: the input is not in that record (another hermod version).
    pub before: Option<Input>,
    pub now: Option<Input>,
}

/// The inputs of `now` that differ from `before`, by name, in name order.
pub fn diff(before: &KeyRecord, now: &KeyRecord) -> Vec<Difference> {
    let mut names: Vec<&str> = before.inputs.iter().chain(&now.inputs).map(|i| i.name.as_str()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let find = |r: &KeyRecord| r.inputs.iter().find(|i| i.name == name).cloned();
            let (b, n) = (find(before), find(now));
            let same = matches!((&b, &n), (Some(b), Some(n)) if b.hash == n.hash);
            (!same).then(|| Difference { name: name.to_owned(), before: b, now: n })
        })
        .collect()
}

/// `hermod key --explain`: the key, then one line per input.
pub fn explain(record: &KeyRecord) -> String {
    let width = record.inputs.iter().map(|i| i.name.len()).max().unwrap_or(0);
    let mut out = format!("key {}\n", record.key);
    for input in &record.inputs {
        let _ = writeln!(out, "  {:width$}  {}  {}", input.name, &input.hash[..16.min(input.hash.len())], input.detail);
    }
    out
}

/// `hermod key --against`: which inputs differ, each with both sides.
pub fn explain_diff(before: &KeyRecord, now: &KeyRecord, differences: &[Difference]) -> String {
    if differences.is_empty() {
        return format!("same key {}: no input differs\n", now.key);
    }
    let names: Vec<&str> = differences.iter().map(|d| d.name.as_str()).collect();
    let mut out = format!(
        "key {} differs from {} in {} input{}: {}\n",
        &now.key[..16],
        &before.key[..16.min(before.key.len())],
        differences.len(),
        if differences.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    let side = |i: &Option<Input>| match i {
        Some(i) => format!("{}  {}", &i.hash[..16.min(i.hash.len())], i.detail),
        None => "(not an input of that key)".to_owned(),
    };
    for d in differences {
        let _ = writeln!(out, "  {}:\n    was  {}\n    now  {}", d.name, side(&d.before), side(&d.now));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, inputs: &[(&str, &str)]) -> KeyRecord {
        KeyRecord {
            key: key.repeat(64 / key.len()),
            inputs: inputs.iter().map(|(n, h)| Input::new(n, h.repeat(16), format!("{n} detail"))).collect(),
        }
    }

    #[test]
    fn differences_are_named_by_input() {
        let a = record("a", &[("source", "1111"), ("headers", "2222"), ("params", "3333")]);
        let b = record("b", &[("source", "1111"), ("headers", "2229"), ("params", "3333"), ("new", "4444")]);
        let d = diff(&a, &b);
        assert_eq!(d.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["headers", "new"]);
        assert!(d[1].before.is_none());
        let text = explain_diff(&a, &b, &d);
        assert!(text.contains("in 2 inputs: headers, new"), "{text}");
        assert!(diff(&a, &a).is_empty());
        assert!(explain_diff(&a, &a, &[]).starts_with("same key"));
    }

    #[test]
    fn records_are_remembered_and_found_by_prefix_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None).unwrap();
        let key = Key { hex: "ab".repeat(32), inputs: vec![Input::new("source", "11".repeat(32), "3 files")] };
        remember(&store, &key);
        let found = load(&store, "abababab").unwrap();
        assert_eq!(found, KeyRecord::from(&key));
        assert!(matches!(load(&store, "cdcdcdcd"), Err(KeyInfoError::Unknown(_))));
        assert!(matches!(load(&store, "not-a-key"), Err(KeyInfoError::Unknown(_))));
        let file = dir.path().join("k.json");
        fs::write(&file, serde_json::to_vec(&found).unwrap()).unwrap();
        assert_eq!(load(&store, file.to_str().unwrap()).unwrap(), found);
        fs::write(&file, b"{").unwrap();
        assert!(matches!(load(&store, file.to_str().unwrap()), Err(KeyInfoError::Malformed { .. })));
    }
}
