//! Fuzz the Rust side of dkms.conf handling: the records eval.sh prints
//! (`dkms::parse_records`), DKMS's directive rules over them
//! (`Records::interpret`), the version comparison of
//! BUILD_EXCLUSIVE_KERNEL_MIN/_MAX and the override file names. The bash side
//! runs in the sandbox; its output is untrusted input here. No input may
//! panic, and an accepted conf must keep the invariants the build relies on.
#![no_main]

use hermod::dkms::{self, overrides, Context};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ctx = Context {
        kernel_release: "6.1.0-56-amd64",
        arch: "x86_64",
        kernel_source_dir: "/usr/src/linux-headers-6.1.0-56-amd64",
        build_dir: "/build/src",
        parallel_jobs: 2,
    };
    if let Ok(records) = dkms::parse_records(data) {
        if let Ok(conf) = records.interpret(&ctx) {
            assert!(!conf.modules.is_empty());
            for module in &conf.modules {
                assert!(!module.built_name.contains('/') && !module.dest_name.contains('/'));
                assert!(!module.built_location.split('/').any(|p| p == ".."));
            }
            for patch in &conf.patches {
                assert!(!patch.starts_with('/') && !patch.split('/').any(|p| p == ".."));
            }
        }
        if let Some((name, version)) = &records.first_pass {
            for file in overrides::names(name, version, ctx.kernel_release, ctx.arch) {
                assert!(file.ends_with(".conf"));
            }
        }
    }
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\n').unwrap_or((&text, ""));
    let (ka, kb) = (dkms::version_key(a), dkms::version_key(b));
    assert_eq!(ka.cmp(&kb), kb.cmp(&ka).reverse());
});
