//! Bad inputs: each gets a clear message naming the problem and a non-zero exit,
//! and nothing half-written is left in --out.

mod common;

use std::path::Path;

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
fn a_package_name_without_pkg_is_answered_with_the_pkg_form() {
    let scratch = tempfile::tempdir().unwrap();
    let result = run_in(
        &shared_store(),
        &["build", "v4l2loopback-dkms", "--kernel", &kernel(), "--out", "out"],
        Some(scratch.path()),
    );
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(3), "stderr:\n{err}");
    assert!(err.contains("say pkg:v4l2loopback-dkms"), "{err}");
}

#[test]
fn an_unusable_out_or_store_is_named_with_its_flag() {
    let hello = testdata("modules/hello");
    let result = run(
        &shared_store(),
        &["build", hello.to_str().unwrap(), "--kernel", &kernel(), "--out", "/proc/hermod-no-such-out"],
    );
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(9), "stderr:\n{err}");
    assert!(err.contains("/proc/hermod-no-such-out (the output directory, --out)"), "{err}");

    let result =
        run(Path::new("/proc/hermod-no-such-store"), &["build", hello.to_str().unwrap(), "--kernel", &kernel()]);
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(9), "stderr:\n{err}");
    assert!(
        err.contains("cannot use the store at /proc/hermod-no-such-store") && err.contains("--store or HERMOD_STORE"),
        "{err}"
    );
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
