//! The local cache: one compilation for concurrent builds of one key, keys
//! explained, corrupt entries quarantined and rebuilt, stats/gc/verify.

mod common;

use common::*;

/// A copy of hello whose key no other test uses (a unique comment).
fn unique_hello(tag: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&testdata("modules/hello"), dir.path());
    let c = dir.path().join("hello.c");
    let mut text = std::fs::read_to_string(&c).unwrap();
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    text.push_str(&format!("/* {tag} {stamp} {} */\n", std::process::id()));
    std::fs::write(&c, text).unwrap();
    dir
}

fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    stdout(out).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

#[test]
fn eight_concurrent_builds_of_one_key_compile_once() {
    let store = shared_store();
    let kernel = kernel();
    let source = unique_hello("concurrent");
    let src = source.path().to_str().unwrap();
    let outs: Vec<tempfile::TempDir> = (0..8).map(|_| tempfile::tempdir().unwrap()).collect();
    let children: Vec<_> = outs
        .iter()
        .map(|out| spawn(&store, &["build", src, "--kernel", &kernel, "--out", out.path().to_str().unwrap(), "--json"]))
        .collect();
    let results: Vec<std::process::Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let mut reports = Vec::new();
    for r in &results {
        assert!(r.status.success(), "a concurrent build failed: {}", stderr(r));
        reports.extend(json_lines(r));
    }
    let misses = reports.iter().filter(|r| r["cache"] == "miss").count();
    assert_eq!(misses, 1, "exactly one compilation: {reports:?}");
    assert!(reports.iter().all(|r| r["sha256"] == reports[0]["sha256"] && r["key"] == reports[0]["key"]));
    for out in &outs {
        let debs = list(out.path());
        assert_eq!(debs.len(), 1, "{debs:?}");
        assert_eq!(sha256(&out.path().join(&debs[0])), reports[0]["sha256"].as_str().unwrap());
    }
}

#[test]
fn keys_are_explained_and_compared() {
    let store = shared_store();
    let kernel = kernel();
    let a = unique_hello("explain");
    let a_path = a.path().to_str().unwrap();
    let explain = run(&store, &["key", a_path, "--kernel", &kernel, "--explain"]);
    assert!(explain.status.success(), "{}", stderr(&explain));
    let text = stdout(&explain);
    for input in ["source", "headers", "compiler", "tools", "rootfs", "kernel", "architecture", "params", "format"] {
        assert!(text.lines().any(|l| l.trim_start().starts_with(input)), "{input} missing in:\n{text}");
    }
    let json = run(&store, &["key", a_path, "--kernel", &kernel, "--json"]);
    let record: serde_json::Value = serde_json::from_str(stdout(&json).trim()).unwrap();
    let key = record["key"].as_str().unwrap().to_owned();

    // Another path, other mtimes: the same key.
    let b = tempfile::tempdir().unwrap();
    copy_tree(a.path(), b.path());
    filetime::set_file_mtime(b.path().join("hello.c"), filetime::FileTime::from_unix_time(1, 0)).unwrap();
    let same = run(&store, &["key", b.path().to_str().unwrap(), "--kernel", &kernel, "--against", &key]);
    assert!(stdout(&same).starts_with("same key"), "{}", stdout(&same));

    // A changed file and another maintainer: exactly those inputs are named.
    std::fs::write(b.path().join("hello.c"), "/* changed */\n").unwrap();
    let differs = run(
        &store,
        &[
            "key",
            b.path().to_str().unwrap(),
            "--kernel",
            &kernel,
            "--against",
            &key[..12],
            "--maintainer",
            "Other <o@x>",
            "--json",
        ],
    );
    let d: serde_json::Value = serde_json::from_str(stdout(&differs).trim()).unwrap();
    let names: Vec<&str> = d["differs"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["params", "source"], "{d}");

    // --against a file from `hermod key --json` (another machine's record).
    let file = b.path().join("record.json");
    std::fs::write(&file, stdout(&json)).unwrap();
    let by_file = run(&store, &["key", a_path, "--kernel", &kernel, "--against", file.to_str().unwrap()]);
    assert!(stdout(&by_file).starts_with("same key"), "{}", stdout(&by_file));

    // An unknown key is a clear error.
    let unknown = run(&store, &["key", a_path, "--kernel", &kernel, "--against", "0123456789abcdef"]);
    assert_eq!(unknown.status.code(), Some(3));
    assert!(stderr(&unknown).contains("no such key"), "{}", stderr(&unknown));
}

#[test]
fn a_corrupt_cache_entry_is_quarantined_and_rebuilt() {
    let store = private_store("corrupt");
    let kernel = kernel();
    let source = unique_hello("corrupt");
    let out = tempfile::tempdir().unwrap();
    let args = [
        "build",
        source.path().to_str().unwrap(),
        "--kernel",
        &kernel,
        "--out",
        out.path().to_str().unwrap(),
        "--json",
    ];
    let first = run(store.path(), &args);
    assert!(first.status.success(), "{}", stderr(&first));
    let first = &json_lines(&first)[0];

    // Flip a byte of the cached .deb.
    let cas = store.path().join("cas");
    let blob = cas.join(&list(&cas)[0]);
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();

    let stats = run(store.path(), &["cache", "stats", "--json"]);
    let s: serde_json::Value = serde_json::from_str(stdout(&stats).trim()).unwrap();
    assert_eq!(s["entries"], 1, "{s}");

    let again = run(store.path(), &args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("does not match its hash; quarantined"), "{}", stderr(&again));
    let again = &json_lines(&again)[0];
    assert_eq!(again["cache"], "miss", "rebuilt, not served");
    assert_eq!(again["sha256"], first["sha256"], "the rebuild gives the same bytes");
    assert_eq!(list(&store.path().join("quarantine")).iter().filter(|n| n.starts_with("cas-")).count(), 1);

    // verify: all good now; then corrupt again and verify finds it (exit 9).
    let ok = run(store.path(), &["cache", "verify"]);
    assert!(ok.status.success(), "{}", stdout(&ok));
    let blob = cas.join(&list(&cas)[0]);
    std::fs::write(&blob, b"garbage").unwrap();
    let bad = run(store.path(), &["cache", "verify"]);
    assert_eq!(bad.status.code(), Some(9), "{}", stdout(&bad));

    // gc: removes what no entry names and the quarantine.
    let gc = run(store.path(), &["cache", "gc", "--max-size", "0"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(list(&cas).is_empty(), "{:?}", list(&cas));
    let bad_size = run(store.path(), &["cache", "gc", "--max-size", "lots"]);
    assert_eq!(bad_size.status.code(), Some(2));
}

/// `build --dry-run` says what a build would do (key; cached or to build) and
/// builds nothing; `cache gc --dry-run` lists what gc would remove and removes
/// nothing.
#[test]
fn dry_runs_decide_without_doing() {
    let store = private_store("dry-run");
    let kernel = kernel();
    let source = unique_hello("dry-run");
    let out = tempfile::tempdir().unwrap();
    let src = source.path().to_str().unwrap();
    let dir = out.path().to_str().unwrap();

    let dry = run(store.path(), &["build", src, "--kernel", &kernel, "--out", dir, "--dry-run", "--json"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let planned = &json_lines(&dry)[0];
    assert_eq!(planned["status"], "to-build", "{planned}");
    assert!(list(out.path()).is_empty() && list(&store.path().join("ac")).is_empty(), "nothing built");

    let built = run(store.path(), &["build", src, "--kernel", &kernel, "--out", dir, "--json"]);
    assert!(built.status.success(), "{}", stderr(&built));
    assert_eq!(json_lines(&built)[0]["key"], planned["key"], "the dry run's key is the build's");
    let dry = run(store.path(), &["build", src, "--kernel", &kernel, "--out", dir, "--dry-run"]);
    assert!(stdout(&dry).contains(": cached (local store)"), "{}", stdout(&dry));

    let gc = run(store.path(), &["cache", "gc", "--max-size", "0", "--dry-run"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    let text = stdout(&gc);
    let key = planned["key"].as_str().unwrap();
    assert!(text.contains(&format!("would remove hello-modules-{kernel} for {kernel} ({key})")), "{text}");
    assert!(text.contains("dry run: would remove 1 entries"), "{text}");
    assert_eq!(list(&store.path().join("ac")).len(), 1, "a dry gc removes nothing");
    let gc = run(store.path(), &["cache", "gc", "--max-size", "0"]);
    assert!(stdout(&gc).contains(&format!("removed hello-modules-{kernel} for {kernel} ({key})")), "{}", stdout(&gc));
    assert!(list(&store.path().join("ac")).is_empty());
}
