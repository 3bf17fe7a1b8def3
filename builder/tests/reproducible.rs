//! The same source built from two paths, in two stores, at two times, gives a
//! .deb with the same bytes.

mod common;

use common::*;

#[test]
fn same_source_two_paths_two_stores_two_times_same_deb() {
    let kernel = kernel();
    let mut hashes = Vec::new();
    for round in 0..2 {
        // A fresh store each round: no cache hit, a fresh build root, a real compile.
        let store = tempfile::tempdir().unwrap();
        let place = tempfile::Builder::new().prefix(&format!("elsewhere-{round}-")).tempdir().unwrap();
        let source = place.path().join(if round == 0 { "hello" } else { "deeper/copy/of/hello" });
        copy_tree(&testdata("modules/hello"), &source);
        let out = tempfile::tempdir().unwrap();
        let result = run(
            store.path(),
            &["build", source.to_str().unwrap(), "--kernel", &kernel, "--out", out.path().to_str().unwrap(), "--json"],
        );
        assert!(result.status.success(), "{}", stderr(&result));
        let report: serde_json::Value = serde_json::from_str(stdout(&result).trim()).unwrap();
        assert_eq!(report["cache"], "miss", "a fresh store must compile");
        let deb = std::path::PathBuf::from(report["deb"].as_str().unwrap());
        hashes.push((sha256(&deb), report["key"].as_str().unwrap().to_owned()));
        // Two different wall-clock times (mtimes, timestamps must not leak).
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(hashes[0], hashes[1], "same inputs must give the same key and the same .deb bytes");
}
