//! The module dependency graph of a crate, for `cargo xtask tidy`.
//!
//! The crate's module tree is read from its `lib.rs` down (`mod NAME;`, with
//! `#[path]`; `#[cfg(test)]` modules and items are left out: tests may reach
//! anywhere). In each module's file, every path spelled from `crate::`,
//! `super::`, `self::` or a module name in scope (the file's own child modules,
//! and names a `use` brought in that are modules) is resolved to the module it
//! names. Two graphs come out of it:
//!
//! - between the crate's top-level modules (`apt`, `rootfs`, `cache`, …);
//! - within each directory (`rootfs/`, `apt/`, …) between its files, the
//!   directory's `mod.rs` being one node. A file that `#[path]` hangs below
//!   another (`rootfs/oci_import.rs` under `oci_image.rs`) counts as that one.
//!   `pub use child::Item` in a `mod.rs` is a re-export, not a dependency: a
//!   sibling naming `super::Item` depends on `child`.
//!
//! `cycles` gives each strongly connected component of more than one node;
//! `layer_violations` checks the graph against a declared order of layers.
//!
//! Known blind spots (it reads text, not the compiler's resolution): a path
//! inside an inline `mod x { … }` that says `super::` is taken as the file's
//! parent; glob imports and macros that build paths are not followed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// For each node, the nodes it uses, with the first place (`file:line`) each
/// edge was seen.
pub type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// One module of the crate: its path below the crate root and its file.
#[derive(Debug, Clone)]
struct Module {
    path: Vec<String>,
    file: String,
    /// A `mod.rs` (or `lib.rs`): its children live in its directory.
    dir_owner: bool,
}

/// The crate under `src` (relative names in the result are `src`-relative).
pub struct Crate {
    modules: Vec<Module>,
    /// `src`-relative file name → its (code-only, tests removed) text.
    texts: BTreeMap<String, String>,
}

impl Crate {
    /// Read the module tree from `src/lib.rs`.
    pub fn read(src: &Path) -> Result<Crate> {
        let mut files = BTreeMap::new();
        for entry in walkdir::WalkDir::new(src).sort_by_file_name() {
            let entry = entry?;
            if entry.path().extension().is_some_and(|e| e == "rs") {
                let rel = entry.path().strip_prefix(src)?.to_string_lossy().into_owned();
                let text = std::fs::read_to_string(entry.path()).with_context(|| format!("reading {rel}"))?;
                files.insert(rel, text);
            }
        }
        Ok(Crate::from_texts(files))
    }

    /// The crate from its files' texts (`src`-relative names; `lib.rs` the root).
    pub fn from_texts(files: BTreeMap<String, String>) -> Crate {
        let mut modules = Vec::new();
        let mut texts = BTreeMap::new();
        let mut stack = vec![Module { path: Vec::new(), file: "lib.rs".into(), dir_owner: true }];
        while let Some(module) = stack.pop() {
            let Some(text) = files.get(&module.file) else { continue };
            let dir = Path::new(&module.file).parent().unwrap_or(Path::new("")).to_owned();
            for child in declared_modules(text) {
                if child.test_only {
                    continue;
                }
                let mut path = module.path.clone();
                path.push(child.name.clone());
                let candidates: Vec<PathBuf> = match &child.path_attr {
                    Some(p) => vec![dir.join(p)],
                    None => {
                        let base = if module.dir_owner {
                            dir.clone()
                        } else {
                            dir.join(Path::new(&module.file).file_stem().unwrap())
                        };
                        vec![base.join(format!("{}.rs", child.name)), base.join(&child.name).join("mod.rs")]
                    }
                };
                if let Some(file) =
                    candidates.iter().map(|c| c.to_string_lossy().into_owned()).find(|c| files.contains_key(c))
                {
                    let dir_owner = is_dir_owner(&file);
                    stack.push(Module { path, file, dir_owner });
                }
            }
            texts.insert(module.file.clone(), without_cfg_test(&crate::tidy::code_only(text)));
            modules.push(module);
        }
        modules.sort_by(|a, b| a.path.cmp(&b.path));
        Crate { modules, texts }
    }

    fn is_module(&self, path: &[String]) -> bool {
        self.modules.iter().any(|m| m.path == path)
    }

    /// The graphs: first the top-level one (named `""`), then one per
    /// top-level directory module (named by its directory, e.g. `rootfs/`).
    /// `prefix` is put before file names in the places (`builder/src/`).
    pub fn graphs(&self, prefix: &str) -> Vec<(String, Graph)> {
        let top: BTreeSet<String> =
            self.modules.iter().filter(|m| m.path.len() == 1).map(|m| m.path[0].clone()).collect();
        // Directory modules: top-level modules whose file is a `mod.rs`.
        let dirs: BTreeSet<String> =
            self.modules.iter().filter(|m| m.path.len() == 1 && m.dir_owner).map(|m| m.path[0].clone()).collect();
        // Re-exports of each directory's mod.rs: item name → child.
        let mut reexports: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for m in self.modules.iter().filter(|m| m.path.len() == 1 && m.dir_owner) {
            let code = &self.texts[&m.file];
            let scope = self.scope(m, code);
            for stmt in reexport_statements(code) {
                for (segments, name, _) in parse_trees(&code[stmt.clone()], 0, &scope_starts(&scope)) {
                    if let Some(abs) = self.resolve(m, &scope, &segments) {
                        if abs.len() > 2 && abs[0] == m.path[0] {
                            reexports.entry(m.path[0].clone()).or_default().insert(name, abs[1].clone());
                        }
                    }
                }
            }
        }
        let mut top_graph = Graph::new();
        let mut dir_graphs: BTreeMap<String, Graph> = BTreeMap::new();
        for m in &self.modules {
            if m.path.is_empty() {
                continue;
            }
            let mut code = self.texts[&m.file].clone();
            if m.path.len() == 1 && m.dir_owner {
                for stmt in reexport_statements(&code.clone()) {
                    blank(&mut code, stmt);
                }
            }
            let scope = self.scope(m, &code);
            let from_top = m.path[0].clone();
            top_graph.entry(from_top.clone()).or_default();
            let node = |path: &[String]| -> String {
                if path.len() == 1 {
                    format!("{}/mod.rs", path[0])
                } else {
                    format!("{}/{}.rs", path[0], path[1])
                }
            };
            if dirs.contains(&from_top) {
                dir_graphs.entry(from_top.clone()).or_default().entry(node(&m.path)).or_default();
            }
            for (at, segments) in paths_in(&code, &scope_starts(&scope)) {
                let Some(abs) = self.resolve(m, &scope, &segments) else { continue };
                let line = code[..at].matches('\n').count() + 1;
                let place = format!("{prefix}{}:{line}", m.file);
                let Some(to_top) = abs.first() else { continue };
                if !top.contains(to_top) {
                    continue;
                }
                if *to_top != from_top {
                    top_graph.entry(from_top.clone()).or_default().entry(to_top.clone()).or_insert(place);
                } else if dirs.contains(&from_top) {
                    let target = match abs.get(1) {
                        Some(_) if self.is_module(&abs[..2]) => node(&abs[..2]),
                        Some(second) => match reexports.get(&from_top).and_then(|r| r.get(second)) {
                            Some(child) => node(&[from_top.clone(), child.clone()]),
                            None => node(&abs[..1]),
                        },
                        None => node(&abs[..1]),
                    };
                    let from = node(&m.path);
                    if target != from {
                        dir_graphs
                            .entry(from_top.clone())
                            .or_default()
                            .entry(from)
                            .or_default()
                            .entry(target)
                            .or_insert(place);
                    }
                }
            }
        }
        let mut graphs = vec![(String::new(), top_graph)];
        graphs.extend(dir_graphs.into_iter().map(|(d, g)| (format!("{d}/"), g)));
        graphs
    }

    /// Module names usable as the first segment of a path in `m`'s file: its
    /// children, and `use`d names that are modules, each with its absolute path.
    fn scope(&self, m: &Module, code: &str) -> BTreeMap<String, Vec<String>> {
        let mut scope: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for child in self.modules.iter().filter(|c| c.path.len() == m.path.len() + 1 && c.path.starts_with(&m.path)) {
            scope.insert(child.path.last().unwrap().clone(), child.path.clone());
        }
        // Two rounds: a `use` may start from a name another `use` brought in.
        for _ in 0..2 {
            let starts = scope_starts(&scope);
            for stmt in use_statements(code) {
                for (segments, name, _) in parse_trees(&code[stmt.clone()], 0, &starts) {
                    if let Some(abs) = self.resolve(m, &scope, &segments) {
                        if self.is_module(&abs) && name != "*" {
                            scope.insert(name, abs);
                        }
                    }
                }
            }
        }
        scope
    }

    /// The absolute path a path written in `m`'s file names.
    fn resolve(&self, m: &Module, scope: &BTreeMap<String, Vec<String>>, segments: &[String]) -> Option<Vec<String>> {
        let mut rest = segments;
        let mut abs: Vec<String> = match rest.first()?.as_str() {
            "crate" => {
                rest = &rest[1..];
                Vec::new()
            }
            "self" => {
                rest = &rest[1..];
                m.path.clone()
            }
            "super" => {
                let mut base = m.path.clone();
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
                base
            }
            first => {
                let base = scope.get(first)?.clone();
                rest = &rest[1..];
                base
            }
        };
        abs.extend(rest.iter().cloned());
        Some(abs)
    }
}

fn is_dir_owner(file: &str) -> bool {
    file == "lib.rs" || file == "main.rs" || file.ends_with("/mod.rs") || file == "mod.rs"
}

fn scope_starts(scope: &BTreeMap<String, Vec<String>>) -> BTreeSet<String> {
    let mut starts: BTreeSet<String> = ["crate", "super", "self"].iter().map(|s| s.to_string()).collect();
    starts.extend(scope.keys().cloned());
    starts
}

struct Declared {
    name: String,
    path_attr: Option<String>,
    test_only: bool,
}

/// `mod NAME;` declarations (outside inline modules' bodies too: they are
/// rare and found the same way), with their `#[path]` and `#[cfg(test)]`.
fn declared_modules(text: &str) -> Vec<Declared> {
    let mut found = Vec::new();
    let mut attrs: Vec<&str> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("#[") {
            attrs.push(line);
            continue;
        }
        let decl = line
            .strip_prefix("pub ")
            .or_else(|| line.strip_prefix("pub(crate) "))
            .or_else(|| line.strip_prefix("pub(super) "))
            .unwrap_or(line);
        if let Some(name) = decl.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            let path_attr = attrs
                .iter()
                .find_map(|a| a.strip_prefix("#[path = \"").and_then(|r| r.strip_suffix("\"]")))
                .map(str::to_owned);
            let test_only = attrs.contains(&"#[cfg(test)]");
            found.push(Declared { name: name.trim().to_owned(), path_attr, test_only });
        }
        if !line.is_empty() && !line.starts_with("//") {
            attrs.clear();
        }
    }
    found
}

/// Blank (keeping newlines) every item marked `#[cfg(test)]` in code-only text.
pub fn without_cfg_test(code: &str) -> String {
    let mut out = code.to_owned();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(found) = code[from..].find("#[cfg(test)]") {
        let start = from + found;
        let mut i = start + "#[cfg(test)]".len();
        // Further attributes, then the item up to its `;` or its closing `}`.
        let mut depth = 0i32;
        let mut end = code.len();
        while i < bytes.len() {
            match bytes[i] {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                b'{' if depth == 0 => {
                    end = matching_brace(bytes, i).map_or(code.len(), |e| e + 1);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        blank(&mut out, start..end);
        from = end;
    }
    out
}

fn matching_brace(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn blank(text: &mut String, range: std::ops::Range<usize>) {
    let blanked: String = text[range.clone()].chars().map(|c| if c == '\n' { '\n' } else { ' ' }).collect();
    text.replace_range(range, &blanked);
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Byte ranges of the `use …;` statements (any visibility).
fn use_statements(code: &str) -> Vec<std::ops::Range<usize>> {
    statements(code, false)
}

/// Byte ranges of the `pub use …;` statements (any `pub(…)`).
fn reexport_statements(code: &str) -> Vec<std::ops::Range<usize>> {
    statements(code, true)
}

fn statements(code: &str, only_pub: bool) -> Vec<std::ops::Range<usize>> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find("use ") {
        let at = from + i;
        from = at + 4;
        if at > 0 && is_ident(bytes[at - 1]) {
            continue;
        }
        let before = code[..at].trim_end();
        let is_pub = before.ends_with("pub")
            || (before.ends_with(')') && before.rfind('(').is_some_and(|p| before[..p].ends_with("pub")));
        if only_pub && !is_pub {
            continue;
        }
        let Some(end) = code[at..].find(';') else { break };
        found.push(at + 4..at + end);
        from = at + end;
    }
    found
}

/// Every path in `code` that starts with one of `starts` (not itself after
/// `::`, `$` or an identifier), expanded if it is a `use` tree: its byte
/// offset and its segments.
fn paths_in(code: &str, starts: &BTreeSet<String>) -> Vec<(usize, Vec<String>)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if is_ident(bytes[i]) && (i == 0 || !(is_ident(bytes[i - 1]) || bytes[i - 1] == b'$' || bytes[i - 1] == b'\''))
        {
            let after_colons = i >= 2 && &code[i - 2..i] == "::";
            let end = i + bytes[i..].iter().take_while(|b| is_ident(**b)).count();
            if !after_colons && starts.contains(&code[i..end]) && code[end..].starts_with("::") {
                let trees = parse_trees(code, i, starts);
                let consumed = trees.iter().map(|t| t.2).max().unwrap_or(end);
                found.extend(trees.into_iter().map(|(segments, _, _)| (i, segments)));
                i = consumed.max(end);
                continue;
            }
            i = end;
            continue;
        }
        i += 1;
    }
    found
}

/// The paths of the `use` tree (or plain path) at `at`: each with the name it
/// binds (alias, last segment, or the prefix for `self`) and the offset where
/// the whole tree ends. Starts at the first path starting with one of `starts`.
fn parse_trees(code: &str, at: usize, starts: &BTreeSet<String>) -> Vec<(Vec<String>, String, usize)> {
    let bytes = code.as_bytes();
    let mut i = at;
    // Skip to the first path start (for a statement's text).
    loop {
        while i < bytes.len() && !is_ident(bytes[i]) && bytes[i] != b'{' {
            i += 1;
        }
        if i >= bytes.len() {
            return Vec::new();
        }
        if bytes[i] == b'{' {
            break;
        }
        let end = i + bytes[i..].iter().take_while(|b| is_ident(**b)).count();
        if starts.contains(&code[i..end]) || code[end..].trim_start().starts_with("::") {
            break;
        }
        i = end;
    }
    let mut out = Vec::new();
    let end = tree(code, i, &mut Vec::new(), &mut out);
    out.into_iter().map(|(s, n)| (s, n, end)).collect()
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Parse one use tree at `i` below `prefix`; returns where it ends.
fn tree(code: &str, mut i: usize, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) -> usize {
    let bytes = code.as_bytes();
    let depth = prefix.len();
    loop {
        i = skip_ws(bytes, i);
        if i < bytes.len() && bytes[i] == b'{' {
            i += 1;
            loop {
                i = skip_ws(bytes, i);
                if i >= bytes.len() {
                    break;
                }
                if bytes[i] == b'}' {
                    i += 1;
                    break;
                }
                if bytes[i] == b',' {
                    i += 1;
                    continue;
                }
                let before = i;
                i = tree(code, i, prefix, out);
                if i == before {
                    i += 1;
                }
            }
            break;
        }
        if i < bytes.len() && bytes[i] == b'*' {
            out.push((prefix.clone(), String::from("*")));
            i += 1;
            break;
        }
        let end = i + bytes[i.min(bytes.len())..].iter().take_while(|b| is_ident(**b)).count();
        if end == i {
            break;
        }
        let segment = &code[i..end];
        i = skip_ws(bytes, end);
        if segment == "self" && !prefix.is_empty() {
            // `a::{self}`: the prefix itself, bound to its last name.
            let mut name = prefix.last().cloned().unwrap_or_default();
            i = alias(code, i, &mut name);
            out.push((prefix.clone(), name));
            break;
        }
        prefix.push(segment.to_owned());
        if code[i..].starts_with("::") {
            i += 2;
            continue;
        }
        let mut name = segment.to_owned();
        i = alias(code, i, &mut name);
        out.push((prefix.clone(), name));
        break;
    }
    prefix.truncate(depth);
    i
}

/// ` as NAME` after a use path: the bound name; returns where it ends.
fn alias(code: &str, i: usize, name: &mut String) -> usize {
    let bytes = code.as_bytes();
    let j = skip_ws(bytes, i);
    if code[j..].starts_with("as") && code.as_bytes().get(j + 2).is_some_and(|b| b.is_ascii_whitespace()) {
        let k = skip_ws(bytes, j + 2);
        let end = k + bytes[k..].iter().take_while(|b| is_ident(**b)).count();
        *name = code[k..end].to_owned();
        return end;
    }
    i
}

/// Every strongly connected component of more than one node (Tarjan), each
/// sorted, in order of their first node.
pub fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let edges: Vec<&'g str> = s.graph.get(v).map(|e| e.keys().map(String::as_str).collect()).unwrap_or_default();
        for w in edges {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found.sort();
    s.found
}

/// A shortest cycle through the component (the first node repeated last).
pub fn shortest_cycle(graph: &Graph, component: &[String]) -> Vec<String> {
    let mut best: Vec<String> = Vec::new();
    for start in component {
        // Breadth first from `start` back to it, inside the component.
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.as_str()]);
        'search: while let Some(v) = queue.pop_front() {
            for w in graph.get(v).into_iter().flat_map(|e| e.keys()) {
                if !component.contains(w) {
                    continue;
                }
                if w == start {
                    // v, its parent, … back to (not including) start.
                    let mut chain = Vec::new();
                    let mut at = v;
                    while at != start {
                        chain.push(at.to_owned());
                        at = parent[at];
                    }
                    chain.reverse();
                    let path: Vec<String> =
                        std::iter::once(start.clone()).chain(chain).chain([start.clone()]).collect();
                    if best.is_empty() || path.len() < best.len() {
                        best = path;
                    }
                    break 'search;
                }
                if !parent.contains_key(w.as_str()) && w != start {
                    parent.insert(w, v);
                    queue.push_back(w);
                }
            }
        }
    }
    best
}

/// The edges inside one component, as `a -> b (file:line)` lines.
pub fn describe(graph: &Graph, component: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    for from in component {
        for (to, place) in graph.get(from).into_iter().flatten() {
            if component.contains(to) {
                lines.push(format!("{from} -> {to} ({place})"));
            }
        }
    }
    lines
}

/// Edges that go up the declared layers (bottom first: a module may use its
/// own layer and those below), and modules of the graph no layer names. An
/// empty table checks nothing.
pub fn layer_violations(graph: &Graph, layers: &[&[&str]]) -> Vec<String> {
    if layers.is_empty() {
        return Vec::new();
    }
    let layer_of = |m: &str| layers.iter().position(|l| l.contains(&m));
    let mut problems = Vec::new();
    for (from, edges) in graph {
        let Some(lf) = layer_of(from) else {
            problems.push(format!("module `{from}` is in no layer of LAYERS"));
            continue;
        };
        for (to, place) in edges {
            if let Some(lt) = layer_of(to) {
                if lt > lf {
                    problems.push(format!("{place}: `{from}` (layer {lf}) uses `{to}` (layer {lt}, above it)"));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crate_of(files: &[(&str, &str)]) -> Crate {
        Crate::from_texts(files.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect())
    }

    fn edges(graph: &Graph) -> Vec<String> {
        graph.iter().flat_map(|(f, e)| e.keys().map(move |t| format!("{f}->{t}"))).collect()
    }

    #[test]
    fn top_level_edges_from_uses_and_paths() {
        let c = crate_of(&[
            ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n#[cfg(test)]\nmod t;\n"),
            ("a.rs", "use crate::{b::X, c};\nfn f() { c::g(); }\n"),
            (
                "b.rs",
                "// crate::a::Y in a comment\nconst S: &str = \"crate::a::Z\";\nfn f() -> crate::c::T { todo!() }\n",
            ),
            ("c.rs", "#[cfg(test)]\nmod tests {\n    use crate::a::A;\n}\n"),
            ("t.rs", "use crate::a::A;\n"),
        ]);
        let graphs = c.graphs("src/");
        assert_eq!(graphs[0].0, "");
        assert_eq!(edges(&graphs[0].1), ["a->b", "a->c", "b->c"]);
        assert_eq!(graphs[0].1["a"]["b"], "src/a.rs:1");
        assert!(cycles(&graphs[0].1).is_empty());
    }

    #[test]
    fn a_cycle_is_reported_with_its_places() {
        let c = crate_of(&[
            ("lib.rs", "mod a;\nmod b;\nmod c;\nmod d;\n"),
            ("a.rs", "use crate::b;\n"),
            ("b.rs", "\nuse crate::c::X;\n"),
            ("c.rs", "pub fn f() { crate::a::g() }\n"),
            ("d.rs", "use crate::a;\n"),
        ]);
        let graph = &c.graphs("")[0].1;
        let found = cycles(graph);
        assert_eq!(found, [vec!["a".to_string(), "b".into(), "c".into()]]);
        assert_eq!(describe(graph, &found[0]), ["a -> b (a.rs:1)", "b -> c (b.rs:2)", "c -> a (c.rs:1)"]);
        assert_eq!(shortest_cycle(graph, &found[0]), ["a", "b", "c", "a"]);
    }

    #[test]
    fn files_of_a_directory_form_their_own_graph() {
        let c = crate_of(&[
            ("lib.rs", "pub mod r;\npub mod other;\n"),
            ("r/mod.rs", "mod x;\nmod y;\npub use x::Thing;\npub use y::{Other as Renamed};\nfn f() { y::g(); }\n"),
            ("r/x.rs", "use super::Renamed;\nuse super::Base;\n"),
            ("r/y.rs", "use super::Thing;\nuse crate::other;\nfn h() { other::f() }\n"),
            ("other.rs", "use crate::r::Thing;\n"),
        ]);
        let graphs = c.graphs("");
        assert_eq!(edges(&graphs[0].1), ["other->r", "r->other"]);
        assert_eq!(graphs[1].0, "r/");
        let g = &graphs[1].1;
        // The re-exports are not edges; `super::Renamed` is y's, `super::Base` mod.rs's.
        assert_eq!(edges(g), ["r/mod.rs->r/y.rs", "r/x.rs->r/mod.rs", "r/x.rs->r/y.rs", "r/y.rs->r/x.rs"]);
        assert_eq!(cycles(g), [vec!["r/mod.rs".to_string(), "r/x.rs".into(), "r/y.rs".into()]]);
        assert_eq!(shortest_cycle(g, &cycles(g)[0]), ["r/x.rs", "r/y.rs", "r/x.rs"]);
        assert_eq!(cycles(&graphs[0].1), [vec!["other".to_string(), "r".into()]]);
    }

    #[test]
    fn path_attribute_modules_count_as_their_parent() {
        let c = crate_of(&[
            ("lib.rs", "pub mod r;\n"),
            ("r/mod.rs", "pub mod img;\nmod z;\n"),
            ("r/img.rs", "#[path = \"img_import.rs\"]\nmod import;\n"),
            ("r/img_import.rs", "use crate::r::z::Z;\nuse super::super::z;\n"),
            ("r/z.rs", "use super::img::import;\n"),
        ]);
        let g = &c.graphs("")[1].1;
        assert_eq!(edges(g), ["r/img.rs->r/z.rs", "r/z.rs->r/img.rs"]);
        assert_eq!(g["r/img.rs"]["r/z.rs"], "r/img_import.rs:1");
    }

    #[test]
    fn layers_allow_only_downward_edges() {
        let mut graph = Graph::new();
        graph.entry("low".into()).or_default();
        graph.entry("mid".into()).or_default().insert("low".into(), "mid.rs:1".into());
        graph.entry("mid".into()).or_default().insert("peer".into(), "mid.rs:2".into());
        graph.entry("peer".into()).or_default().insert("top".into(), "peer.rs:3".into());
        graph.entry("top".into()).or_default().insert("mid".into(), "top.rs:4".into());
        graph.entry("stray".into()).or_default();
        assert!(layer_violations(&graph, &[]).is_empty());
        let layers: &[&[&str]] = &[&["low"], &["mid", "peer"], &["top"]];
        assert_eq!(
            layer_violations(&graph, layers),
            ["peer.rs:3: `peer` (layer 1) uses `top` (layer 2, above it)", "module `stray` is in no layer of LAYERS"]
        );
    }

    #[test]
    fn use_trees_expand() {
        let starts: BTreeSet<String> = ["crate".to_string()].into();
        let code = "crate::{a::{self, B as C}, d::*, e};";
        let got: Vec<(Vec<String>, String)> =
            parse_trees(code, 0, &starts).into_iter().map(|(s, n, _)| (s, n)).collect();
        let p = |s: &[&str], n: &str| (s.iter().map(|x| x.to_string()).collect::<Vec<_>>(), n.to_string());
        assert_eq!(
            got,
            [p(&["crate", "a"], "a"), p(&["crate", "a", "B"], "C"), p(&["crate", "d"], "*"), p(&["crate", "e"], "e")]
        );
    }
}
