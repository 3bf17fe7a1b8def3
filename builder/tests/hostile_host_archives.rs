//! Hostile .deb files as SOURCE: the real binary refuses each with exit 3 and
//! a short message naming the limit, and its peak RSS stays under 256 MiB
//! whatever the package claims or expands to (a property, not a timing).
//! The .debs are refused while being read, before any build root or archive.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// Peak RSS hermod may reach on any hostile input.
const RSS_GOAL: u64 = 256 << 20;

struct Outcome {
    code: Option<i32>,
    stderr: String,
    max_rss: u64,
}

/// `hermod build DEB` in a private store, waited for with `wait4` for its rusage.
fn build(store: &Path, deb: &Path) -> Outcome {
    let out = store.join("out");
    let args = ["build", deb.to_str().unwrap(), "--kernel", &kernel(), "--out", out.to_str().unwrap(), "-q"];
    let stderr_path = store.join("stderr");
    // Reaped by wait4 below (for its rusage), which clippy cannot see.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(hermod())
        .args(args)
        .env("HERMOD_STORE", store)
        .env("HERMOD_PACKAGE_CACHE", package_cache())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("hermod runs");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; status and usage are valid out-pointers.
    let waited = unsafe { libc::wait4(pid.as_raw(), &mut status, 0, &mut usage) };
    assert_eq!(waited, pid.as_raw(), "wait4: {}", std::io::Error::last_os_error());
    let status = std::process::ExitStatus::from_raw(status);
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    eprintln!("$ hermod {}\nstatus: {status:?}\nmax RSS: {} KiB\nstderr:\n{stderr}", args.join(" "), usage.ru_maxrss);
    Outcome { code: status.code(), stderr, max_rss: usage.ru_maxrss as u64 * 1024 }
}

fn refused(make: impl FnOnce(&Path) -> std::io::Result<()>, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let deb = dir.path().join("bomb-dkms_1_all.deb");
    make(&deb).unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let got = build(&store, &deb);
    assert_eq!(got.code, Some(3), "bad input is exit 3:\n{}", got.stderr);
    assert!(got.stderr.len() < 2048, "a short message, not the input: {} bytes", got.stderr.len());
    for needle in needles {
        assert!(got.stderr.contains(needle), "expected {needle:?} in:\n{}", got.stderr);
    }
    assert!(got.max_rss <= RSS_GOAL, "peak RSS {} MiB over the {} MiB goal", got.max_rss >> 20, RSS_GOAL >> 20);
    assert!(list(&store.join("out")).is_empty(), "nothing in --out");
}

#[test]
fn a_data_tar_expanding_to_2_gib() {
    refused(|p| hermod::bombs::data_bomb(p, 2 << 30), &["bomb-dkms_1_all.deb", "data.tar.zst", "max_file_size"]);
}

#[test]
fn a_data_tar_of_many_files_past_the_unpacked_limit() {
    // 1.25 GiB in 5 MiB files: each under max_file_size, the total over max_unpacked_size.
    refused(|p| hermod::bombs::many_files(p, 256, 5 << 20), &["data.tar.zst", "max_unpacked_size", "1 GiB"]);
}

#[test]
fn a_control_field_of_1_gib() {
    refused(|p| hermod::bombs::control_field_bomb(p, 1 << 30), &["control.tar.zst", "max_file_size"]);
    refused(|p| hermod::bombs::control_field_bomb(p, 200 << 20), &["control", "max_stanza_size"]);
}

#[test]
fn an_ar_header_claiming_10_gb() {
    refused(|p| hermod::bombs::ar_size_lie(p, 9_999_999_999), &["data.tar", "max_unpacked_size"]);
}

#[test]
fn huge_names_and_links() {
    refused(|p| hermod::bombs::long_name(p, 512 << 20), &["data.tar.zst", "max_path_length"]);
    refused(|p| hermod::bombs::long_link(p, 512 << 20), &["max_path_length"]);
    refused(|p| hermod::bombs::pax_bomb(p, 512 << 20), &["max_path_length"]);
}
