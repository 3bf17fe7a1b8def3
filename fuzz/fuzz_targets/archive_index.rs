//! Fuzz the archive index parsers: deb822 stanzas (with the stanza limit),
//! a Packages index, a Release file and the Depends syntax of what they
//! hold. No input may panic, and an error message quotes little input.
#![no_main]

use hermod::apt::{depends, packages, release::Release, stanza};
use hermod::bounded::InputLimits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = InputLimits { max_stanza_size: 4096, ..InputLimits::default() };
    let short = |e: &dyn std::fmt::Display| assert!(e.to_string().len() < 2048, "{e}");
    if let Err(e) = stanza::for_each_with(text, "fuzz", &limits, |st| {
        assert!(st.fields.iter().all(|(n, v)| n.len() + v.len() <= 4096));
        Ok::<(), stanza::StanzaError>(())
    }) {
        short(&e);
    }
    match packages::parse_packages(text, "http://x", "amd64", "Packages") {
        Ok(pkgs) => {
            for p in pkgs {
                if let Err(e) = depends::parse_depends(&p.depends) {
                    short(&e);
                }
            }
        }
        Err(e) => short(&e),
    }
    if let Err(e) = Release::parse(text, "InRelease") {
        short(&e);
    }
});
