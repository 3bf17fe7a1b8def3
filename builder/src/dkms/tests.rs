//! Unit tests of the records and DKMS's directive rules.

use super::*;

/// Records as eval.sh prints them: `NAME` (element 0) or `NAME[i]`.
fn records(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in pairs {
        match name.split_once('[') {
            Some((array, index)) => {
                let index = index.trim_end_matches(']');
                out.extend_from_slice(format!("A\0{array}\0{index}\0{value}\0").as_bytes());
            }
            None => out.extend_from_slice(format!("S\0{name}\0{value}\0").as_bytes()),
        }
    }
    out
}

fn matched(raw: &mut Vec<u8>, name: &str, index: u64) {
    raw.extend_from_slice(format!("R\0{name}\0{index}\0").as_bytes());
}

fn ctx() -> Context<'static> {
    Context {
        kernel_release: "6.1.0-56-amd64",
        arch: "x86_64",
        kernel_source_dir: "/usr/src/linux-headers-6.1.0-56-amd64",
        build_dir: "/build/src",
        parallel_jobs: 2,
        semantics: Semantics::V3_2,
    }
}

fn interpret(raw: &[u8]) -> Result<DkmsConf, DkmsError> {
    parse_records(raw)?.interpret(&ctx())
}

fn with_base(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut all = vec![("PACKAGE_NAME", "x"), ("PACKAGE_VERSION", "1")];
    all.extend_from_slice(pairs);
    records(&all)
}

#[test]
fn single_record_gets_dkms_defaults() {
    let conf = interpret(&records(&[
        ("PACKAGE_NAME", "hello"),
        ("PACKAGE_VERSION", "0.1"),
        ("DEST_MODULE_LOCATION[0]", "/updates/dkms"),
    ]))
    .unwrap();
    assert_eq!(conf.modules.len(), 1);
    assert_eq!(conf.modules[0].built_name, "hello");
    assert_eq!(conf.modules[0].dest_name, "hello");
    assert_eq!(conf.modules[0].dest_location, "/updates/dkms");
    assert!(conf.modules[0].strip);
    assert_eq!(conf.skip, None);
    assert_eq!(
        conf.make_command,
        "make -j2 KERNELRELEASE=6.1.0-56-amd64 -C /usr/src/linux-headers-6.1.0-56-amd64 M=/build/src"
    );
}

#[test]
fn make_rewrite_only_for_leading_make_word() {
    let raw = with_base(&[
        ("BUILT_MODULE_NAME[0]", "x"),
        ("MAKE[0]", "make KERNEL_DIR=/usr/src/linux-headers-6.1.0-56-amd64 all"),
    ]);
    assert_eq!(
        interpret(&raw).unwrap().make_command,
        "make -j2 KERNELRELEASE=6.1.0-56-amd64 KERNEL_DIR=/usr/src/linux-headers-6.1.0-56-amd64 all"
    );
    let raw = with_base(&[("BUILT_MODULE_NAME[0]", "x"), ("MAKE[0]", "'make' all")]);
    assert_eq!(interpret(&raw).unwrap().make_command, "'make' all");
}

#[test]
fn last_matching_make_match_wins_and_make_match_0_guards_make_0() {
    let mut raw = with_base(&[
        ("BUILT_MODULE_NAME[0]", "x"),
        ("MAKE[0]", "make zero"),
        ("MAKE[1]", "make one"),
        ("MAKE[3]", "make three"),
        ("MAKE_MATCH[1]", "^6"),
        ("MAKE_MATCH[3]", "^6\\.1"),
    ]);
    matched(&mut raw, "MAKE_MATCH", 1);
    matched(&mut raw, "MAKE_MATCH", 3);
    // Index 3 counts although MAKE has 3 elements (DKMS would stop at index 2).
    assert_eq!(interpret(&raw).unwrap().make_command, "make -j2 KERNELRELEASE=6.1.0-56-amd64 three");
    // MAKE_MATCH[0] set and not matching: not MAKE[0] but the default.
    let raw = with_base(&[("BUILT_MODULE_NAME[0]", "x"), ("MAKE[0]", "make zero"), ("MAKE_MATCH[0]", "^5")]);
    assert!(interpret(&raw).unwrap().make_command.ends_with("M=/build/src"));
}

#[test]
fn modules_count_over_all_four_arrays() {
    let raw = with_base(&[
        ("BUILT_MODULE_NAME[1]", "beta"),
        ("BUILT_MODULE_NAME[0]", "alpha"),
        ("BUILT_MODULE_NAME[2]", "gamma"),
        ("BUILT_MODULE_LOCATION[1]", "drivers/beta/"),
        ("DEST_MODULE_NAME[1]", "beta2"),
        ("DEST_MODULE_LOCATION[2]", "/extra"),
        ("STRIP[0]", "No"),
        ("STRIP[1]", ""),
        ("STRIP[2]", "false"),
    ]);
    let conf = interpret(&raw).unwrap();
    let names: Vec<_> = conf.modules.iter().map(|m| m.built_name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
    assert_eq!(conf.modules[1].built_location, "drivers/beta");
    assert_eq!(conf.modules[1].dest_name, "beta2");
    // DKMS's case: n* no, '' inherits STRIP[0], anything else yes.
    let strips: Vec<_> = conf.modules.iter().map(|m| m.strip).collect();
    assert_eq!(strips, [false, false, true]);
    // A DEST_MODULE_LOCATION alone makes a record, which has no name: a gap.
    let raw = with_base(&[("BUILT_MODULE_NAME[0]", "a"), ("DEST_MODULE_LOCATION[1]", "/extra")]);
    assert!(matches!(interpret(&raw).unwrap_err(), DkmsError::IndexGap { count: 2, missing: 1, .. }));
}

#[test]
fn gaps_and_zero_modules_are_refused() {
    let gap = interpret(&with_base(&[("BUILT_MODULE_NAME[0]", "a"), ("BUILT_MODULE_NAME[2]", "c")])).unwrap_err();
    assert!(matches!(gap, DkmsError::IndexGap { missing: 1, .. }), "{gap}");
    assert!(gap.to_string().contains("a gap in the module indices"), "{gap}");
    let huge = interpret(&with_base(&[("BUILT_MODULE_NAME[18446744073709551615]", "z")])).unwrap_err();
    assert!(matches!(huge, DkmsError::IndexGap { missing: 0, .. }), "{huge}");
    assert_eq!(interpret(&with_base(&[])).unwrap_err(), DkmsError::NoModules);
    // Several records, none named: the first is missing.
    let unnamed =
        interpret(&with_base(&[("DEST_MODULE_LOCATION[0]", "/extra"), ("DEST_MODULE_LOCATION[1]", "/extra")]));
    assert!(matches!(unnamed.unwrap_err(), DkmsError::IndexGap { missing: 0, .. }));
}

#[test]
fn bad_names_are_named() {
    assert_eq!(interpret(&records(&[("PACKAGE_VERSION", "1")])).unwrap_err(), DkmsError::Missing("PACKAGE_NAME"));
    assert_eq!(interpret(&records(&[("PACKAGE_NAME", "x")])).unwrap_err(), DkmsError::Missing("PACKAGE_VERSION"));
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[("BUILT_MODULE_LOCATION[0]", "../../etc")], "BUILT_MODULE_LOCATION"),
        (&[("BUILT_MODULE_NAME[0]", "a/b")], "plain file name"),
        (&[("BUILT_MODULE_NAME[0]", "a.ko")], "without .o or .ko"),
        (&[("BUILT_MODULE_NAME[0]", "a"), ("DEST_MODULE_NAME[0]", "a.o")], "without .o or .ko"),
        (&[("BUILT_MODULE_NAME[0]", "a"), ("DEST_MODULE_LOCATION[0]", "/lib")], "/kernel, /updates or /extra"),
        (&[("BUILT_MODULE_NAME[0]", "a"), ("BUILT_MODULE_NAME[1]", "a")], "twice"),
        (&[("BUILT_MODULE_NAME[0]", "a"), ("BUILT_MODULE_NAME[1]", "b"), ("DEST_MODULE_NAME[1]", "a")], "twice"),
    ];
    for (pairs, needle) in cases {
        let err = interpret(&with_base(pairs)).unwrap_err().to_string();
        assert!(err.contains(needle), "{pairs:?}: {err}");
    }
    assert!(interpret(&records(&[("PACKAGE_NAME", "x y"), ("PACKAGE_VERSION", "1")])).is_err());
}

#[test]
fn patches_in_order_filtered_by_patch_match() {
    let mut raw = with_base(&[
        ("BUILT_MODULE_NAME[0]", "x"),
        ("PATCH[0]", "a.patch"),
        ("PATCH[1]", "b.patch"),
        ("PATCH_MATCH[1]", "^5"),
        ("PATCH[2]", "sub/c.patch"),
        ("PATCH_MATCH[2]", "^6"),
        ("PATCH[4]", "e.patch"),
    ]);
    matched(&mut raw, "PATCH_MATCH", 2);
    assert_eq!(interpret(&raw).unwrap().patches, ["a.patch", "sub/c.patch", "e.patch"]);
    for bad in ["../x.patch", "sub/../../x.patch", "/etc/x.patch", ".."] {
        let err = interpret(&with_base(&[("BUILT_MODULE_NAME[0]", "x"), ("PATCH[3]", bad)])).unwrap_err();
        assert!(matches!(&err, DkmsError::PatchPath { index: 3, .. }), "{bad}: {err}");
    }
    // A patch that does not apply to this kernel is not checked, as in DKMS.
    let raw = with_base(&[("BUILT_MODULE_NAME[0]", "x"), ("PATCH[0]", "../x"), ("PATCH_MATCH[0]", "^5")]);
    assert!(interpret(&raw).unwrap().patches.is_empty());
}

#[test]
fn build_exclusive_skips_with_a_reason() {
    let skip = |pairs: &[(&str, &str)], extra: &[u8]| {
        let mut raw = with_base(&[("BUILT_MODULE_NAME[0]", "x")]);
        raw.extend(records(pairs));
        raw.extend_from_slice(extra);
        interpret(&raw).unwrap().skip
    };
    assert_eq!(
        skip(&[("BUILD_EXCLUSIVE_KERNEL", "^5\\.")], b""),
        Some("BUILD_EXCLUSIVE_KERNEL=\"^5\\\\.\" does not match kernel 6.1.0-56-amd64".into())
    );
    assert_eq!(skip(&[("BUILD_EXCLUSIVE_KERNEL", "^6\\.")], b"R\0BUILD_EXCLUSIVE_KERNEL\x000\0"), None);
    assert!(skip(&[("BUILD_EXCLUSIVE_KERNEL_MIN", "6.2")], b"")
        .unwrap()
        .contains("older than BUILD_EXCLUSIVE_KERNEL_MIN"));
    assert_eq!(skip(&[("BUILD_EXCLUSIVE_KERNEL_MIN", "6.1")], b""), None);
    assert!(skip(&[("BUILD_EXCLUSIVE_KERNEL_MAX", "6.1")], b"")
        .unwrap()
        .contains("newer than BUILD_EXCLUSIVE_KERNEL_MAX"));
    assert!(skip(&[("OBSOLETE_BY", "5.10")], b"").unwrap().contains("OBSOLETE_BY"));
    assert_eq!(skip(&[("OBSOLETE_BY", "5.10"), ("BUILD_EXCLUSIVE_KERNEL_MAX", "6.2")], b""), None);
    assert!(skip(&[("BUILD_EXCLUSIVE_ARCH", "arm")], b"").unwrap().contains("x86_64"));
    assert!(skip(&[], b"C\x000\0CONFIG_FOO\0").unwrap().contains("CONFIG_FOO is not y or m"));
    assert!(skip(&[], b"C\x000\0!CONFIG_BAR\0").unwrap().contains("CONFIG_BAR is set"));
    assert_eq!(skip(&[("BUILD_EXCLUSIVE_KERNEL", "")], b""), None);
}

#[test]
fn build_depends_and_scripts() {
    let conf = interpret(&with_base(&[
        ("BUILT_MODULE_NAME[0]", "x"),
        ("BUILD_DEPENDS[0]", "base"),
        ("BUILD_DEPENDS[1]", ""),
        ("PRE_BUILD", "configure --fast"),
        ("POST_BUILD", ""),
        ("CLEAN", "make clean"),
        ("AUTOINSTALL", "maybe"),
    ]))
    .unwrap();
    assert_eq!(conf.build_depends, ["base"]);
    assert_eq!(conf.pre_build.as_deref(), Some("configure --fast"));
    assert_eq!(conf.post_build, None);
    let err = interpret(&with_base(&[("BUILT_MODULE_NAME[0]", "x"), ("BUILD_DEPENDS[0]", "../x")])).unwrap_err();
    assert!(err.to_string().contains("BUILD_DEPENDS"), "{err}");
}

#[test]
fn malformed_records_are_rejected() {
    assert!(parse_records(b"Q\0x\0").is_err());
    assert!(parse_records(b"A\0MAKE\0notanumber\0x\0").is_err());
    assert!(parse_records(b"A\0MAKE\0-1\0x\0").is_err());
    assert!(parse_records(b"R\0MAKE_MATCH\0").is_err());
    assert_eq!(parse_records(b"").unwrap(), Records::default());
    let r = parse_records(b"N\0hello\x000.1\0C\x000\0!CONFIG_X\0").unwrap();
    assert_eq!(r.first_pass, Some(("hello".into(), "0.1".into())));
    assert_eq!(r.config_unmet, [(0, "!CONFIG_X".to_owned())]);
}

/// [`EVAL_SCRIPT`] run by the real bash on `conf` (a file in a fresh
/// directory), as the sandbox runs it, under `semantics`.
fn evaluated(conf: &std::path::Path, semantics: Semantics) -> Records {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("eval.sh");
    std::fs::write(&script, EVAL_SCRIPT).unwrap();
    let out = dir.path().join("records");
    let status = std::process::Command::new("bash")
        .env("TMPDIR", dir.path())
        .arg(&script)
        .args(["all", conf.to_str().unwrap(), "6.1.0-56-amd64", "x86_64", ctx().kernel_source_dir, "2"])
        .args([dir.path().join("no-overrides").to_str().unwrap(), out.to_str().unwrap(), semantics.series()])
        .status()
        .expect("bash runs");
    assert!(status.success(), "eval.sh: {status}");
    parse_records(&std::fs::read(&out).unwrap()).unwrap()
}

fn evaluated_text(text: &str, semantics: Semantics) -> Records {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dkms.conf");
    std::fs::write(&conf, text).unwrap();
    evaluated(&conf, semantics)
}

#[test]
fn values_are_parsed_again_as_dkms_safe_source_does() {
    // zfs-dkms's 20-line PRE_BUILD (testdata/modules/zfs-prebuild): one
    // command line, the `""` of --with-qat=""/--host="" gone, in both.
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/modules/zfs-prebuild/dkms.conf");
    for semantics in [Semantics::V3_0, Semantics::V3_2] {
        let conf = evaluated(&conf, semantics).interpret(&Context { semantics, ..ctx() }).unwrap();
        let headers = ctx().kernel_source_dir;
        assert_eq!(
            conf.pre_build.unwrap(),
            format!(
                "configure --disable-dependency-tracking --prefix=/usr --with-config=kernel \
                 --with-linux={headers} --with-linux-obj={headers} --with-qat= --host= "
            )
        );
    }
    // `$` escaped once expands on the second reading; DKMS 3.2 cuts a trailing CR.
    let text = "PACKAGE_NAME=x\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=\"\\$kernelver\"\nCLEAN=$'c\\r'\n";
    let first = |records: &Records, name: &str| records.arrays[name][&0].clone();
    let v30 = evaluated_text(text, Semantics::V3_0);
    assert_eq!(first(&v30, "BUILT_MODULE_NAME"), "6.1.0-56-amd64");
    assert_eq!(first(&v30, "CLEAN"), "c\r");
    assert_eq!(first(&evaluated_text(text, Semantics::V3_2), "CLEAN"), "c");
}

#[test]
fn kernel_min_max_and_obsolete_by_are_3_2_only() {
    let text = "PACKAGE_NAME=x\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=x\nBUILD_EXCLUSIVE_KERNEL_MIN=6.2\n";
    let skip = |text: &str, semantics| {
        evaluated_text(text, semantics).interpret(&Context { semantics, ..ctx() }).unwrap().skip
    };
    assert_eq!(skip(text, Semantics::V3_0), None, "bookworm's DKMS builds it");
    assert!(skip(text, Semantics::V3_2).unwrap().contains("older than BUILD_EXCLUSIVE_KERNEL_MIN"));
    let text = "PACKAGE_NAME=x\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=x\nOBSOLETE_BY=5.10\n";
    assert_eq!(skip(text, Semantics::V3_0), None);
    assert!(skip(text, Semantics::V3_2).unwrap().contains("OBSOLETE_BY"));
    // 3.0.10 runs CLEAN (or its default) before make; 3.2 runs none.
    let records = evaluated_text("PACKAGE_NAME=x\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=x\n", Semantics::V3_0);
    let conf = records.interpret(&Context { semantics: Semantics::V3_0, ..ctx() }).unwrap();
    assert_eq!(conf.clean.unwrap(), "make -C /usr/src/linux-headers-6.1.0-56-amd64 M=/build/src clean");
    assert_eq!(records.interpret(&ctx()).unwrap().clean, None);
}

#[test]
fn per_module_build_exclusive_leaves_modules_out_in_3_2() {
    // Upstream 3.3's form: element i ≥ 1 is module i's own condition.
    let text = "PACKAGE_NAME=x\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=a\nBUILT_MODULE_NAME[1]=b\n\
                BUILT_MODULE_NAME[2]=c\nBUILD_EXCLUSIVE_ARCH[1]=arm\nBUILD_EXCLUSIVE_KERNEL_MIN[2]=6.0\n\
                BUILD_EXCLUSIVE_KERNEL[2]='^6\\.1\\.'\n";
    let conf = |semantics| evaluated_text(text, semantics).interpret(&Context { semantics, ..ctx() }).unwrap();
    let v32 = conf(Semantics::V3_2);
    assert_eq!(v32.skip, None);
    let names: Vec<&str> = v32.modules.iter().map(|m| m.built_name.as_str()).collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(v32.excluded, ["module b ([1]): BUILD_EXCLUSIVE_ARCH[1]=\"arm\" does not match x86_64"]);
    // 3.0.10 reads element 0 only: every module is built.
    let v30 = conf(Semantics::V3_0);
    assert_eq!((v30.modules.len(), v30.excluded.len()), (3, 0));
    // OBSOLETE_BY stands in for the package's _KERNEL_MAX only when no
    // module has a _KERNEL_MAX of its own.
    let text = "PACKAGE_NAME=x\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=a\nBUILT_MODULE_NAME[1]=b\nOBSOLETE_BY=6.0\n";
    assert!(conf_of(text, Semantics::V3_2).skip.unwrap().contains("newer than OBSOLETE_BY=\"6.0\""));
    let own = format!("{text}BUILD_EXCLUSIVE_KERNEL_MAX[1]=7\n");
    let v32 = conf_of(&own, Semantics::V3_2);
    assert_eq!((v32.skip, v32.modules.len()), (None, 2));
    // Element 0 is the package's: it skips the whole build.
    let all = "PACKAGE_NAME=x\nPACKAGE_VERSION=1\nBUILT_MODULE_NAME[0]=a\nBUILT_MODULE_NAME[1]=b\n\
               BUILD_EXCLUSIVE_ARCH[1]=arm\nBUILD_EXCLUSIVE_KERNEL[0]='^5'\n";
    assert!(conf_of(all, Semantics::V3_2).skip.unwrap().starts_with("BUILD_EXCLUSIVE_KERNEL=\"^5\""));
}

fn conf_of(text: &str, semantics: Semantics) -> DkmsConf {
    evaluated_text(text, semantics).interpret(&Context { semantics, ..ctx() }).unwrap()
}

#[test]
fn name_and_version_are_directory_names() {
    let long = "v".repeat(254);
    let conf = |name: &str, version: &str| {
        interpret(&records(&[("PACKAGE_NAME", name), ("PACKAGE_VERSION", version), ("BUILT_MODULE_NAME[0]", "m")]))
    };
    assert!(conf("x", &long[..253]).is_ok(), "x-<253 bytes> is 255 bytes");
    assert!(conf("x", &long).unwrap_err().to_string().contains("255 bytes"));
    assert!(conf("..", "1").unwrap_err().to_string().contains("plain file name"));
    assert!(conf("x", ".").unwrap_err().to_string().contains("plain file name"));
}
