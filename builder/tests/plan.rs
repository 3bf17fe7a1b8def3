//! `hermod plan`: the CI build matrix over the hello module and every kernel
//! the archive offers, each entry with the key `hermod build` computes and
//! whether the store already holds it. (The shared-cache mark is checked in
//! remote_cache.rs, where a signed shared cache runs on nginx.)

mod common;

use common::*;
use serde_json::Value;

fn plan(store: &std::path::Path, args: &[&str]) -> Value {
    let mut all = vec!["plan"];
    all.extend_from_slice(args);
    let out = run(store, &all);
    assert!(out.status.success(), "plan failed: {}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.trim_end().lines().count(), 1, "one line, as $GITHUB_OUTPUT takes it: {text}");
    serde_json::from_str(text.trim()).expect("JSON")
}

fn include(doc: &Value) -> Vec<Value> {
    doc["include"].as_array().expect("include: [...]").clone()
}

#[test]
fn plan_lists_every_kernel_once_and_marks_the_cached_build() {
    let store = private_store("plan");
    let hello = testdata("modules/hello");
    let hello = hello.to_str().unwrap();
    let k = kernel();

    let before = include(&plan(store.path(), &["--modules", hello, "--kernels", "all"]));
    let kernels: Vec<&str> = before.iter().map(|e| e["kernel"].as_str().unwrap()).collect();
    let unique: std::collections::BTreeSet<&str> = kernels.iter().copied().collect();
    assert_eq!(unique.len(), kernels.len(), "one entry per kernel: {kernels:?}");
    assert!(kernels.contains(&k.as_str()) && kernels.contains(&second_kernel().as_str()), "{kernels:?}");
    assert!(kernels.iter().all(|k| k.ends_with("-amd64") && !k.ends_with("-cloud-amd64")), "{kernels:?}");
    assert!(before.iter().all(|e| e["cached"] == false && e["source"] == hello), "an empty store holds nothing");
    let keys: std::collections::BTreeSet<&str> = before.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), before.len(), "every kernel has its own key");

    // Build for one kernel; plan then marks exactly that entry, with the key the build used.
    let out_dir = tempfile::tempdir().unwrap();
    let built =
        run(store.path(), &["build", hello, "--kernel", &k, "--json", "--out", out_dir.path().to_str().unwrap()]);
    assert!(built.status.success(), "{}", stderr(&built));
    let report: Value = serde_json::from_str(stdout(&built).trim()).unwrap();
    let after = include(&plan(store.path(), &["--modules", hello, "--kernels", "all"]));
    assert_eq!(after.len(), before.len());
    for entry in &after {
        let this = entry["kernel"] == k.as_str();
        assert_eq!(entry["cached"], this, "{entry}");
        assert_eq!(entry["cached_in"], if this { Value::from("local") } else { Value::Null }, "{entry}");
        if this {
            assert_eq!(entry["key"], report["key"], "plan computes the key build computed");
        }
    }
    assert_eq!(
        before.iter().map(|e| &e["key"]).collect::<Vec<_>>(),
        after.iter().map(|e| &e["key"]).collect::<Vec<_>>()
    );

    // --misses-only: what CI must build; GitLab's child pipeline of the same.
    let misses = include(&plan(store.path(), &["--modules", hello, "--kernels", "all", "--misses-only"]));
    assert_eq!(misses.len(), before.len() - 1);
    assert!(misses.iter().all(|e| e["kernel"] != k.as_str()));
    let gitlab = plan(
        store.path(),
        &["--modules", hello, "--kernels", &k, "--format", "gitlab", "--gitlab-include", "ci/hermod-build.yml"],
    );
    assert_eq!(gitlab["include"][0]["local"], "ci/hermod-build.yml");
    let matrix = gitlab["hermod-build"]["parallel"]["matrix"].as_array().unwrap();
    assert_eq!(matrix.len(), 1);
    assert_eq!(matrix[0]["HERMOD_CACHED"], "true");
    assert_eq!(matrix[0]["HERMOD_KEY"], report["key"]);
    let nothing = plan(store.path(), &["--modules", hello, "--kernels", &k, "--format", "gitlab", "--misses-only"]);
    assert!(nothing.get("hermod-nothing-to-build").is_some(), "{nothing}");
}

#[test]
fn plan_refuses_what_it_cannot_plan() {
    let store = shared_store();
    let hello = testdata("modules/hello");
    let hello = hello.to_str().unwrap();
    let missing = run(&store, &["plan", "--modules", hello, "--kernels-from", "/nonexistent/fleet.sources"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(stderr(&missing).contains("/nonexistent/fleet.sources"), "{}", stderr(&missing));
    let no_headers = run(&store, &["plan", "--modules", hello, "--kernels", "6.1.0-999-amd64"]);
    assert_eq!(no_headers.status.code(), Some(4));
    assert!(stderr(&no_headers).contains("linux-headers-6.1.0-999-amd64"), "{}", stderr(&no_headers));
    let bad_source = run(&store, &["plan", "--modules", "/nonexistent/module", "--kernels", &kernel()]);
    assert_eq!(bad_source.status.code(), Some(3), "{}", stderr(&bad_source));
}
