//! dkms.conf as DKMS reads it: the fixtures of testdata/modules (good) and
//! testdata/bad (malformed) built for real, all in the shared store so the
//! build root is made once.

mod common;

use std::path::Path;

use common::*;

/// `hermod build SOURCE... --kernel K --out DIR [extra]`.
fn build(sources: &[&Path], out: &Path, extra: &[&str]) -> std::process::Output {
    let kernel = kernel();
    let mut args = vec!["build"];
    let sources: Vec<String> = sources.iter().map(|s| s.to_str().unwrap().to_owned()).collect();
    args.extend(sources.iter().map(String::as_str));
    args.extend(["--kernel", &kernel, "--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    run(&shared_store(), &args)
}

fn refused(fixture: &str, code: i32, needles: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let result = build(&[&testdata(fixture)], &out, &[]);
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(code), "{fixture}: stderr:\n{err}");
    for needle in needles {
        assert!(err.contains(needle), "{fixture}: expected {needle:?} in:\n{err}");
    }
    assert!(list(&out).is_empty(), "nothing may be written to --out: {:?}", list(&out));
}

/// Build one good fixture, return its report and the unpacked .deb.
fn built(fixture: &str, extra: &[&str]) -> (serde_json::Value, tempfile::TempDir) {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let result = build(&[&testdata(fixture)], &out, &args);
    assert!(result.status.success(), "{fixture}: {}", stderr(&result));
    let report: serde_json::Value = serde_json::from_str(stdout(&result).trim()).unwrap();
    assert_eq!(report["status"], "built");
    let x = work.path().join("x");
    tool("dpkg-deb", &["-x", report["deb"].as_str().unwrap(), x.to_str().unwrap()]);
    (report, work)
}

/// The build log of `report`'s build in the shared store: a miss wrote it
/// just now, a hit has the one of the store's first build. Only a hit whose
/// log the store lost skips the checks on it (a failure under
/// `HERMOD_TEST_REQUIRE_TOOLS`); a miss without its log fails.
fn build_log(report: &serde_json::Value) -> Option<String> {
    let key = report["key"].as_str().unwrap();
    let log = shared_store().join("logs").join(format!("{}-{}.log", &key[..16], kernel()));
    match std::fs::read_to_string(&log) {
        Ok(text) => Some(text),
        Err(e) if report["cache"] == "hit" => {
            skip_or_panic(&format!("the log of the build a cache hit served ({}: {e})", log.display()));
            None
        }
        Err(e) => panic!("{}: {e}: the build missed the cache, so it wrote its log", log.display()),
    }
}

fn module_path(work: &tempfile::TempDir, name: &str) -> std::path::PathBuf {
    work.path().join("x/lib/modules").join(kernel()).join("updates/dkms").join(format!("{name}.ko"))
}

fn has_debug_info(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes.windows(11).any(|w| w == b".debug_info")
}

#[test]
fn empty_dkms_conf() {
    refused("bad/empty-conf", 3, &["dkms.conf does not set PACKAGE_NAME"]);
}

#[test]
fn missing_package_name() {
    refused("bad/no-package-name", 3, &["dkms.conf does not set PACKAGE_NAME"]);
}

#[test]
fn missing_package_version() {
    refused("bad/no-package-version", 3, &["dkms.conf does not set PACKAGE_VERSION"]);
}

#[test]
fn if_without_fi() {
    refused("bad/syntax-error", 3, &["not valid bash", "syntax error"]);
}

#[test]
fn zero_modules() {
    refused("bad/zero-modules", 3, &["declares no module"]);
}

#[test]
fn gap_in_module_indices() {
    refused("bad/module-gap", 3, &["record 1 has no BUILT_MODULE_NAME", "a gap in the module indices"]);
}

#[test]
fn patch_path_with_dotdot() {
    refused("bad/patch-dotdot", 3, &["PATCH[0]", "../../outside.patch", "no `..`"]);
}

#[test]
fn missing_patch() {
    refused("bad/patch-missing", 3, &["PATCH[1]", "patches/absent.patch", "not in the source"]);
}

#[test]
fn patch_that_does_not_apply_fails_the_build_with_the_log() {
    refused("bad/patch-fails", 5, &["the build failed", "patch broken.patch failed to apply", "full log: "]);
}

#[test]
fn declared_module_not_produced() {
    refused("bad/missing-module", 6, &["module ghost", "not built"]);
}

#[test]
fn symlink_out_of_the_source_tree() {
    refused("bad/escaping-symlink", 3, &["passwd", "points outside the source tree"]);
}

#[test]
fn build_depends_not_in_the_build_root() {
    refused(
        "bad/build-depends-missing",
        3,
        &["hermod-absent-base", "/usr/src/hermod-absent-base-*", "--build-depends"],
    );
}

#[test]
fn a_module_source_never_hides_a_tree_of_the_build_root() {
    refused("bad/hides-the-headers", 3, &[&format!("linux-headers-{}", kernel()), "already holds in /usr/src"]);
}

#[test]
fn package_version_dotdot() {
    refused("bad/dotdot-version", 3, &["PACKAGE_VERSION", "plain file name"]);
}

#[test]
fn crlf_line_endings_are_accepted() {
    let (report, work) = built("modules/crlf", &[]);
    assert_eq!(report["package"], format!("crlf-modules-{}", kernel()));
    assert!(module_path(&work, "crlf").is_file());
}

#[test]
fn patches_pre_build_and_post_build_run_in_dkms_order() {
    let (report, work) = built("modules/patched", &[]);
    assert!(module_path(&work, "patched").is_file());
    // POST_BUILD ran in the build directory after the modules were collected.
    if let Some(text) = build_log(&report) {
        // In DKMS's build directory by its real path, as DKMS runs it (not through /build/src).
        assert!(text.contains("hermod-fixture: POST_BUILD ran in /var/lib/dkms/patched/1.0/build"), "{text}");
        let found =
            format!("hermod-fixture: POST_BUILD found /var/lib/dkms/patched/1.0/{}/x86_64/module/patched.ko", kernel());
        assert!(text.contains(&found), "{text}");
        assert!(text.contains("applying patch kernel6.patch") && !text.contains("never.patch"), "{text}");
    }
}

#[test]
fn a_multi_line_pre_build_runs_as_one_command_as_dkms_reparses_it() {
    // zfs-dkms's PRE_BUILD: configure writes the Makefile the plain `make`
    // needs; its checks fail on a quote or newline in an argument.
    let (report, work) = built("modules/zfs-prebuild", &[]);
    let module = std::fs::read(module_path(&work, "zfsprebuild")).unwrap();
    // `$kernel_source_dir` is DKMS's /lib/modules/<KREL>/build, so zfs's
    // `${kernel_source_dir/%build/source}` names the headers package's
    // `source` link (the -common headers, where zfs greps objtool.h).
    for info in [
        format!("configure_linux=/lib/modules/{}/source\0", kernel()),
        format!("configure_linux_obj=/lib/modules/{}/build\0", kernel()),
    ] {
        assert!(module.windows(info.len()).any(|w| w == info.as_bytes()), "{info:?} not in the module");
    }
    if let Some(text) = build_log(&report) {
        let line = format!(
            "configure: --disable-dependency-tracking --prefix=/usr --with-config=kernel \
             --with-linux=/lib/modules/{k}/source --with-linux-obj=/lib/modules/{k}/build --with-qat= --host=\n",
            k = kernel()
        );
        assert!(text.contains(&line), "{text}");
    }
}

#[test]
fn exit_77_from_a_step_is_a_failure_naming_it_never_a_skip() {
    // Bookworm's DKMS 3.0.10 ignores PRE_BUILD's status and goes on to make.
    refused(
        "bad/exit-77",
        5,
        &[
            "the build failed at step \"make\" (exit status 77)",
            "PRE_BUILD exited with status 77, which DKMS 3.0.10 ignores",
            "unsupported.sh (make): this kernel is not supported",
            "77 is DKMS's exit status for a skipped build",
        ],
    );
}

#[test]
fn a_build_may_write_its_own_source_tree_and_nothing_else_of_usr_src() {
    // west-chamber-dkms's way: make in /usr/src/<name>-<version>, then the
    // module moved into DKMS's build directory.
    let (_, work) = built("modules/source-tree", &[]);
    assert!(module_path(&work, "srctree").is_file());
}

#[test]
fn several_modules_locations_and_dest_names() {
    let (_, work) = built("modules/multi", &[]);
    // DEST_MODULE_NAME renames; every module goes to updates/dkms whatever
    // DEST_MODULE_LOCATION says, as Debian's DKMS does.
    for name in ["alpha_renamed", "beta", "gamma"] {
        assert!(module_path(&work, name).is_file(), "{name}.ko in the .deb");
    }
    assert!(!module_path(&work, "alpha").exists());
    // STRIP[1]="no" keeps beta's debug info; the others are stripped.
    assert!(has_debug_info(&module_path(&work, "beta")));
    assert!(!has_debug_info(&module_path(&work, "gamma")));
}

#[test]
fn build_exclusive_skips_with_exit_77_and_the_reason() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let result = build(&[&testdata("modules/exclusive")], &out, &[]);
    assert_eq!(result.status.code(), Some(77), "{}", stderr(&result));
    let said = stdout(&result);
    assert!(said.starts_with("skipped: exclusive-modules-"), "{said}");
    assert!(said.contains("BUILD_EXCLUSIVE_KERNEL=") && said.contains("does not match kernel"), "{said}");
    assert!(list(&out).is_empty());

    // With --json, and beside a build that succeeds: exit 0.
    let result = build(&[&testdata("modules/exclusive"), &testdata("modules/crlf")], &out, &["--json"]);
    assert!(result.status.success(), "{}", stderr(&result));
    let lines: Vec<serde_json::Value> = stdout(&result).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["status"], "skipped");
    assert!(lines[0]["reason"].as_str().unwrap().contains("BUILD_EXCLUSIVE_KERNEL"));
    assert!(lines[0].get("deb").is_none());
    assert_eq!(lines[1]["status"], "built");
}

#[test]
fn etc_dkms_overrides_that_apply_change_the_build_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let overrides = dir.path().to_str().unwrap();
    std::fs::write(dir.path().join("other.conf"), "DEST_MODULE_NAME[0]=nope\n").unwrap();
    let (plain, _) = built("modules/crlf", &["--dkms-overrides", overrides]);
    // A file for this module (and one for its version and kernel) applies.
    std::fs::write(dir.path().join("crlf.conf"), "DEST_MODULE_NAME[0]=crlf_first\n").unwrap();
    let specific = format!("crlf-1.0-{}.conf", kernel());
    std::fs::write(dir.path().join(specific), "DEST_MODULE_NAME[0]=${DEST_MODULE_NAME[0]}_then_kernel\n").unwrap();
    let (changed, work) = built("modules/crlf", &["--dkms-overrides", overrides]);
    assert_ne!(plain["key"], changed["key"]);
    assert!(module_path(&work, "crlf_first_then_kernel").is_file());
    // other.conf never applied: the key without any override file is the same.
    let empty = tempfile::tempdir().unwrap();
    let (none, _) = built("modules/crlf", &["--dkms-overrides", empty.path().to_str().unwrap()]);
    assert_eq!(plain["key"], none["key"]);
}

/// `key` and `plan` match the overrides as a build does, in a store whose
/// build root must be made first (the root was once made inside a 1 s limit
/// on reading the source, which then failed).
#[test]
fn key_and_plan_match_etc_dkms_overrides_in_a_store_without_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let overrides = dir.path().to_str().unwrap();
    std::fs::write(dir.path().join("crlf.conf"), "DEST_MODULE_NAME[0]=crlf_first\n").unwrap();
    let (report, _) = built("modules/crlf", &["--dkms-overrides", overrides]);
    let (source, kernel) = (testdata("modules/crlf"), kernel());
    let source = source.to_str().unwrap();

    let fresh = tempfile::tempdir().unwrap();
    let key = run(fresh.path(), &["key", source, "--kernel", &kernel, "--dkms-overrides", overrides]);
    assert!(key.status.success(), "{}", stderr(&key));
    assert_eq!(stdout(&key).trim(), report["key"].as_str().unwrap());

    let fresh = tempfile::tempdir().unwrap();
    let plan = run(fresh.path(), &["plan", "--modules", source, "--kernels", &kernel, "--dkms-overrides", overrides]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    assert!(stdout(&plan).contains(report["key"].as_str().unwrap()), "{}", stdout(&plan));
}
