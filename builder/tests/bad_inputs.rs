//! Bad inputs: each gets a clear message naming the problem and a non-zero exit,
//! and nothing half-written is left in --out.

mod common;

use common::*;

fn build_expecting_failure(source: &std::path::Path, kernel: &str, code: i32, needles: &[&str]) {
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("out");
    let result = run(
        &shared_store(),
        &["build", source.to_str().unwrap(), "--kernel", kernel, "--out", out_dir.to_str().unwrap()],
    );
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(code), "stderr:\n{err}");
    for needle in needles {
        assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    }
    assert!(list(&out_dir).is_empty(), "nothing may be written to --out: {:?}", list(&out_dir));
}

#[test]
fn source_without_dkms_conf() {
    build_expecting_failure(&testdata("bad/no-dkms-conf"), &kernel(), 3, &["no dkms.conf"]);
}

#[test]
fn source_that_does_not_exist() {
    build_expecting_failure(&testdata("bad/nowhere"), &kernel(), 3, &["does not exist"]);
}

#[test]
fn kernel_without_headers_lists_the_nearest() {
    build_expecting_failure(
        &testdata("modules/hello"),
        "6.1.0-999-amd64",
        4,
        &["linux-headers-6.1.0-999-amd64", "nearest available", "-amd64"],
    );
}

#[test]
fn make_failure_shows_the_log_tail_and_path() {
    build_expecting_failure(
        &testdata("bad/make-fails"),
        &kernel(),
        5,
        &["this_function_does_not_exist", "full log: ", ".log"],
    );
}

#[test]
fn declared_module_not_built() {
    build_expecting_failure(&testdata("bad/missing-module"), &kernel(), 6, &["module ghost", "not built"]);
}

#[test]
fn dkms_conf_with_bash_syntax_error() {
    build_expecting_failure(&testdata("bad/syntax-error"), &kernel(), 3, &["not valid bash", "syntax error"]);
}
