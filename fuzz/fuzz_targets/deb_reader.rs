//! Fuzz the .deb reader: the ar members, the decompressors, the tar walk
//! with its long-name and pax records, the control file, under small input
//! limits. No input may panic, abort or read past a limit: the bytes handed
//! out never exceed `max_unpacked_size`, the control text never
//! `max_stanza_size`, and an error message stays short.
#![no_main]

use hermod::bounded::InputLimits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = InputLimits {
        max_unpacked_size: 1 << 20,
        max_file_size: 256 << 10,
        max_entries: 1000,
        max_path_length: 256,
        max_control_size: 256 << 10,
        max_stanza_size: 16 << 10,
        ..InputLimits::default()
    };
    match hermod::fuzzing::read_deb(data, &limits) {
        Ok((control, read)) => {
            assert!(control.len() as u64 <= limits.max_stanza_size);
            assert!(read <= limits.max_unpacked_size);
        }
        Err(e) => assert!(e.to_string().len() < 2048, "{e}"),
    }
});
