//! Tests of the .deb writer, against the real dpkg-deb, dpkg and lintian.

use super::*;
use std::io::Read;
use std::process::Command;

/// All members of a .deb's ar archive.
fn ar_members(deb: &[u8]) -> Vec<(ar::Header, Vec<u8>)> {
    let mut a = ar::Archive::new(deb);
    let mut out = Vec::new();
    while let Some(e) = a.next_entry() {
        let mut e = e.unwrap();
        let mut v = Vec::new();
        e.read_to_end(&mut v).unwrap();
        out.push((e.header().clone(), v));
    }
    out
}

const KREL: &str = "6.1.0-56-amd64";
const MTIME: u64 = 1_700_000_000; // Tue, 14 Nov 2023 22:13:20 +0000

/// A small real ELF relocatable object (built with gcc if available) so lintian
/// sees something module-like; falls back to fixed bytes.
fn ko_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("hello.c");
    std::fs::write(
        &c,
        "static const char __mod_license[] __attribute__((used, section(\".modinfo\"))) = \"license=GPL\";\n\
         static const char __mod_desc[] __attribute__((used, section(\".modinfo\"))) = \"description=hello\";\n\
         int init_module(void) { return 0; }\nvoid cleanup_module(void) {}\n",
    )
    .unwrap();
    let o = dir.path().join("hello.o");
    let ok = Command::new("gcc")
        .args(["-c", "-O2", "-fno-asynchronous-unwind-tables", "-o"])
        .arg(&o)
        .arg(&c)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        std::fs::read(&o).unwrap()
    } else {
        eprintln!("note: gcc unavailable, using fake .ko bytes");
        b"\x7fELF not really a module\n".to_vec()
    }
}

fn spec() -> DebSpec {
    let pkg = format!("hello-modules-{KREL}");
    DebSpec {
        package: pkg,
        version: "0.1+6.1.192-2".into(),
        architecture: "amd64".into(),
        kernel_release: KREL.into(),
        maintainer: "Hermod Builder <hermod@example.org>".into(),
        description_short: "hello kernel module for Linux 6.1.0-56-amd64".into(),
        description_long: "This package provides the hello kernel module built by hermod\n\
                           for the kernel 6.1.0-56-amd64.\n\
                           \n\
                           It was built hermetically from the DKMS source."
            .into(),
        source_name: "hello".into(),
        depends: format!("linux-image-{KREL} | linux-image-{KREL}-unsigned"),
        extra_fields: vec![
            ("Built-Using".into(), "linux (= 6.1.192-2)".into()),
            ("X-Hermod-Key".into(), "0123456789abcdef".into()),
        ],
        files: vec![ModuleFile {
            install_dir: format!("lib/modules/{KREL}/updates/dkms"),
            file_name: "hello.ko".into(),
            contents: ko_bytes(),
        }],
        copyright: "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
                    Upstream-Name: hello\n\n\
                    Files: *\n\
                    Copyright: 2024 Example Author <author@example.org>\n\
                    License: GPL-2\n \
                    On Debian systems, the full text of the GNU General Public License\n \
                    version 2 can be found in the file `/usr/share/common-licenses/GPL-2'.\n"
            .into(),
        changelog_entry: "Built hello 0.1 for Linux 6.1.0-56-amd64 with hermod.".into(),
        mtime: MTIME,
    }
}

/// Whether `tool` is installed; if not, the test says it skips, or fails when
/// `HERMOD_TEST_REQUIRE_TOOLS` is set (as builder/tests/common's `require_tool`).
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        let test = std::thread::current().name().unwrap_or("this test").to_owned();
        let package = if tool == "dpkg-deb" { "dpkg" } else { tool };
        if std::env::var_os("HERMOD_TEST_REQUIRE_TOOLS").is_some_and(|v| !v.is_empty()) {
            panic!("{test} needs {tool} (apt-get install {package}), and HERMOD_TEST_REQUIRE_TOOLS is set");
        }
        eprintln!("skipped: {test} needs {tool} (apt-get install {package})");
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn unxz(data: &[u8]) -> Vec<u8> {
    let mut d = liblzma::read::XzDecoder::new(data);
    let mut v = Vec::new();
    d.read_to_end(&mut v).unwrap();
    v
}

/// (name, mode, uid, gid, uname, gname, mtime, contents) of a tar member.
type TarMember = (String, u32, u64, u64, String, String, u64, Vec<u8>);

fn tar_listing(tar_bytes: &[u8]) -> Vec<TarMember> {
    let mut a = tar::Archive::new(tar_bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let h = e.header().clone();
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            (
                name,
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.username().unwrap().unwrap().to_string(),
                h.groupname().unwrap().unwrap().to_string(),
                h.mtime().unwrap(),
                v,
            )
        })
        .collect()
}

fn write_tmp(deb: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(file_name(&spec()));
    std::fs::write(&p, deb).unwrap();
    (dir, p)
}

#[test]
fn deterministic_and_sorted() {
    let a = build_deb(&spec()).unwrap();
    let b = build_deb(&spec()).unwrap();
    assert_eq!(a, b, "same spec must give the same bytes");

    let members = ar_members(&a);
    let names: Vec<_> = members.iter().map(|(h, _)| String::from_utf8(h.identifier().to_vec()).unwrap()).collect();
    assert_eq!(names, ["debian-binary", "control.tar.xz", "data.tar.xz"]);
    for (h, _) in &members {
        assert_eq!((h.mtime(), h.uid(), h.gid(), h.mode()), (MTIME, 0, 0, 0o100644));
    }
    assert_eq!(members[0].1, b"2.0\n");
    // xz stream flags: check type 0x04 = CRC64.
    assert_eq!(&members[2].1[..6], b"\xfd7zXZ\0");
    assert_eq!(members[2].1[7], 0x04);

    let data = tar_listing(&unxz(&members[2].1));
    let names: Vec<&str> = data.iter().map(|e| e.0.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "data.tar entries sorted");
    let pkg = spec().package;
    assert_eq!(
        names,
        [
            "./".to_string(),
            "./lib/".into(),
            "./lib/modules/".into(),
            format!("./lib/modules/{KREL}/"),
            format!("./lib/modules/{KREL}/updates/"),
            format!("./lib/modules/{KREL}/updates/dkms/"),
            format!("./lib/modules/{KREL}/updates/dkms/hello.ko"),
            "./usr/".into(),
            "./usr/share/".into(),
            "./usr/share/doc/".into(),
            format!("./usr/share/doc/{pkg}/"),
            format!("./usr/share/doc/{pkg}/changelog.Debian.gz"),
            format!("./usr/share/doc/{pkg}/copyright"),
        ]
    );
    for (name, mode, uid, gid, un, gn, mt, _) in &data {
        assert_eq!((*uid, *gid, un.as_str(), gn.as_str(), *mt), (0, 0, "root", "root", MTIME), "{name}");
        assert_eq!(*mode, if name.ends_with('/') { 0o755 } else { 0o644 }, "{name}");
    }

    let control = tar_listing(&unxz(&members[1].1));
    let cnames: Vec<(&str, u32)> = control.iter().map(|e| (e.0.as_str(), e.1)).collect();
    assert_eq!(
        cnames,
        [("./", 0o755), ("./control", 0o644), ("./md5sums", 0o644), ("./postinst", 0o755), ("./postrm", 0o755)]
    );
}

#[test]
fn every_field_changes_the_bytes() {
    let base = build_deb(&spec()).unwrap();
    type Mutator = fn(&mut DebSpec);
    let mutators: &[(&str, Mutator)] = &[
        ("package", |s| s.package = "hello-modules-other".into()),
        ("version", |s| s.version = "0.1+6.1.192-3".into()),
        ("architecture", |s| s.architecture = "arm64".into()),
        ("kernel_release", |s| s.kernel_release = "6.1.0-57-amd64".into()),
        ("maintainer", |s| s.maintainer = "Someone Else <x@example.org>".into()),
        ("description_short", |s| s.description_short.push('!')),
        ("description_long", |s| s.description_long.push_str("\nMore.")),
        ("source_name", |s| s.source_name = "hello2".into()),
        ("depends", |s| s.depends = "linux-image-6.1.0-56-amd64".into()),
        ("extra_fields", |s| s.extra_fields[1].1 = "fedcba9876543210".into()),
        ("extra_fields order", |s| s.extra_fields.reverse()),
        ("install_dir", |s| s.files[0].install_dir = format!("lib/modules/{KREL}/extra")),
        ("file_name", |s| s.files[0].file_name = "hello2.ko".into()),
        ("contents", |s| s.files[0].contents.push(0)),
        ("copyright", |s| s.copyright.push_str("\nextra\n")),
        ("changelog_entry", |s| s.changelog_entry.push_str(" Again.")),
        ("mtime", |s| s.mtime += 1),
    ];
    for (what, m) in mutators {
        let mut s = spec();
        m(&mut s);
        let other = build_deb(&s).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_ne!(base, other, "changing {what} must change the bytes");
    }
}

#[test]
fn control_and_changelog_text() {
    let s = spec();
    let c = control_file(&s, 42);
    assert_eq!(
        c,
        format!(
            "Package: hello-modules-{KREL}\nSource: hello\nVersion: 0.1+6.1.192-2\nArchitecture: amd64\n\
             Maintainer: Hermod Builder <hermod@example.org>\nInstalled-Size: 42\n\
             Depends: linux-image-{KREL} | linux-image-{KREL}-unsigned\nSection: kernel\nPriority: optional\n\
             Built-Using: linux (= 6.1.192-2)\nX-Hermod-Key: 0123456789abcdef\n\
             Description: hello kernel module for Linux 6.1.0-56-amd64\n \
             This package provides the hello kernel module built by hermod\n \
             for the kernel 6.1.0-56-amd64.\n .\n It was built hermetically from the DKMS source.\n"
        )
    );
    assert_eq!(
        changelog_text(&s),
        format!(
            "hello-modules-{KREL} (0.1+6.1.192-2) unstable; urgency=medium\n\n  \
             * Built hello 0.1 for Linux 6.1.0-56-amd64 with hermod.\n\n \
             -- Hermod Builder <hermod@example.org>  Tue, 14 Nov 2023 22:13:20 +0000\n"
        )
    );
    assert_eq!(rfc2822(MIN_MTIME), "Wed, 01 Jan 1975 00:00:00 +0000");
    assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    assert_eq!(changelog_name("0.1+6.1.192-2"), "changelog.Debian.gz");
    assert_eq!(changelog_name("1:0.1"), "changelog.gz");
    assert_eq!(format_long_description("\n a\n\n\nb  \n\n"), "  a\n .\n .\n b\n");
}

#[test]
fn file_names() {
    let mut s = spec();
    assert_eq!(file_name(&s), format!("hello-modules-{KREL}_0.1+6.1.192-2_amd64.deb"));
    s.version = "1:0.1-1".into();
    assert_eq!(file_name(&s), format!("hello-modules-{KREL}_0.1-1_amd64.deb"));
}

#[test]
fn validation_errors() {
    type Mutator = fn(&mut DebSpec);
    let bad: &[(&str, Mutator)] = &[
        ("package name", |s| s.package = "Hello".into()),
        ("package name", |s| s.package = "h".into()),
        ("package name", |s| s.package = "-hello".into()),
        ("source name", |s| s.source_name = "Hello_World".into()),
        ("version", |s| s.version = "".into()),
        ("version", |s| s.version = "a1.0".into()),
        ("version", |s| s.version = "1.0-".into()),
        ("version", |s| s.version = "x:1.0".into()),
        ("version", |s| s.version = "1.0 1".into()),
        ("version", |s| s.version = "1_0".into()),
        ("version", |s| s.version = "1:".into()),
        ("architecture", |s| s.architecture = "AMD64".into()),
        ("kernel release", |s| s.kernel_release = "6.1; rm -rf /".into()),
        ("maintainer", |s| s.maintainer = "nobody".into()),
        ("maintainer", |s| s.maintainer = "A <a@b>\nB <c@d>".into()),
        ("short description", |s| s.description_short = "".into()),
        ("Depends", |s| s.depends = "a,\n b".into()),
        ("extra field", |s| s.extra_fields.push(("Package".into(), "x".into()))),
        ("extra field", |s| s.extra_fields.push(("Bad Name".into(), "x".into()))),
        ("extra field", |s| s.extra_fields.push(("X-Multi".into(), "a\nb".into()))),
        ("changelog entry", |s| s.changelog_entry = " \n".into()),
        ("mtime", |s| s.mtime = 100),
        ("install_dir", |s| s.files[0].install_dir = "/lib/modules".into()),
        ("install_dir", |s| s.files[0].install_dir = "lib/../etc".into()),
        ("install_dir", |s| s.files[0].install_dir = "lib//modules".into()),
        ("module file name", |s| s.files[0].file_name = "a/b.ko".into()),
        ("no files", |s| s.files.clear()),
        ("twice", |s| {
            let f = s.files[0].clone();
            s.files.push(f)
        }),
        ("twice", |s| {
            let mut f = s.files[0].clone();
            f.install_dir = format!("lib/modules/{KREL}/updates");
            f.file_name = "dkms".into();
            s.files.push(f)
        }),
    ];
    for (want, m) in bad {
        let mut s = spec();
        m(&mut s);
        let err = build_deb(&s).expect_err(want).to_string();
        eprintln!("{want}: {err}");
        assert!(err.contains(want), "error {err:?} should mention {want:?}");
    }
    // Multi-line extra fields with proper continuation lines are fine, epochs too.
    let mut s = spec();
    s.extra_fields.push(("X-Multi".into(), "first\n second\n .".into()));
    s.version = "2:1.0~rc1+dfsg-1.1~bpo12+1".into();
    build_deb(&s).unwrap();
}

#[test]
fn long_paths_use_gnu_longname() {
    let mut s = spec();
    s.files[0].install_dir = format!("lib/modules/{KREL}/updates/dkms/{}", "d".repeat(90));
    let deb = build_deb(&s).unwrap();
    let data = tar_listing(&unxz(&ar_members(&deb)[2].1));
    let want = format!("./{}/{}", s.files[0].install_dir, s.files[0].file_name);
    assert!(want.len() > 100);
    assert!(data.iter().any(|e| e.0 == want), "{want} missing");
    if have("dpkg-deb") {
        let (_d, p) = write_tmp(&deb);
        let listing = run(Command::new("dpkg-deb").arg("-c").arg(&p));
        assert!(listing.contains(&want), "{listing}");
    }
}

#[test]
fn write_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_deb_atomically(&spec(), dir.path()).unwrap();
    assert_eq!(p, dir.path().join(file_name(&spec())));
    assert_eq!(std::fs::read(&p).unwrap(), build_deb(&spec()).unwrap());
    // Overwrite in place, still no leftovers.
    write_deb_atomically(&spec(), dir.path()).unwrap();
    let names: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, [file_name(&spec())]);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
    // Invalid spec: nothing written.
    let mut s = spec();
    s.files.clear();
    let empty = tempfile::tempdir().unwrap();
    assert!(write_deb_atomically(&s, empty.path()).is_err());
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

#[test]
fn dpkg_deb_parses_it() {
    if !have("dpkg-deb") {
        return;
    }
    let s = spec();
    let deb = build_deb(&s).unwrap();
    let (dir, p) = write_tmp(&deb);

    let info = run(Command::new("dpkg-deb").arg("--info").arg(&p));
    eprintln!("{info}");
    assert!(info.contains(&format!("Package: {}", s.package)));
    assert!(info.contains("control.tar.xz") || info.contains("control"));

    let f =
        run(Command::new("dpkg-deb").arg("-f").arg(&p).args(["Package", "Version", "Architecture", "X-Hermod-Key"]));
    assert_eq!(
        f,
        format!(
            "Package: {}\nVersion: {}\nArchitecture: amd64\nX-Hermod-Key: 0123456789abcdef\n",
            s.package, s.version
        )
    );
    let inst = run(Command::new("dpkg-deb").arg("-f").arg(&p).arg("Installed-Size"));
    // 7 directories + usr/share/doc/<pkg> tree (4) + root … every dir 1 KiB, files rounded up.
    eprintln!("Installed-Size: {inst}");

    let listing = run(Command::new("dpkg-deb").arg("-c").arg(&p));
    eprintln!("{listing}");
    let ko = format!("./lib/modules/{KREL}/updates/dkms/hello.ko");
    let line = listing.lines().find(|l| l.ends_with(&ko)).expect("module listed");
    assert!(line.starts_with("-rw-r--r-- root/root"), "{line}");
    assert!(line.contains("2023-11-14 22:13"), "{line}");
    for l in listing.lines() {
        assert!(l.contains(" root/root "), "{l}");
        assert!(l.contains("2023-11-14 22:13"), "{l}");
    }

    // Extract and compare md5sums with the real files.
    let x = dir.path().join("x");
    let e = dir.path().join("e");
    run(Command::new("dpkg-deb").arg("-x").arg(&p).arg(&x));
    run(Command::new("dpkg-deb").arg("-e").arg(&p).arg(&e));
    let md5sums = std::fs::read_to_string(e.join("md5sums")).unwrap();
    let mut n = 0;
    for l in md5sums.lines() {
        let (sum, path) = l.split_once("  ").unwrap();
        assert!(!path.starts_with('/') && !path.starts_with("./"));
        let out = run(Command::new("md5sum").arg(x.join(path)));
        assert_eq!(out.split_whitespace().next().unwrap(), sum, "{path}");
        n += 1;
    }
    assert_eq!(n, 3);
    assert_eq!(std::fs::read(x.join(&ko[2..])).unwrap(), s.files[0].contents);
    let cl = run(Command::new("zcat").arg(x.join(format!("usr/share/doc/{}/changelog.Debian.gz", s.package))));
    assert_eq!(cl, changelog_text(&s));
    // Scripts are syntactically valid sh.
    for sc in ["postinst", "postrm"] {
        run(Command::new("sh").arg("-n").arg(e.join(sc)));
    }
}

#[test]
fn lintian_has_no_errors() {
    if !have("lintian") {
        return;
    }
    let deb = build_deb(&spec()).unwrap();
    let (_d, p) = write_tmp(&deb);
    let out = Command::new("lintian")
        .args(["--tag-display-limit", "0", "--display-info", "--pedantic"])
        .arg(&p)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("lintian says:\n{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
}

/// Install into a throwaway root with the real dpkg and check `dpkg -L`; the
/// maintainer scripts run chrootless (they honour $DPKG_ROOT) with a fake
/// `depmod` that records its arguments.
#[test]
fn dpkg_installs_into_throwaway_root() {
    if !have("dpkg") {
        return;
    }
    let s = spec();
    let deb = build_deb(&s).unwrap();
    let (dir, p) = write_tmp(&deb);
    let root = dir.path().join("root");
    let admin = root.join("var/lib/dpkg");
    for d in ["updates", "info", "triggers"] {
        std::fs::create_dir_all(admin.join(d)).unwrap();
    }
    std::fs::write(admin.join("status"), "").unwrap();
    std::fs::write(admin.join("available"), "").unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = dir.path().join("depmod-calls");
    let fail = dir.path().join("depmod-fails");
    std::fs::write(
        bin.join("depmod"),
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n[ ! -e '{}' ]\n", calls.display(), fail.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("depmod"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display());
    let dpkg = |args: &[&str]| {
        let mut c = Command::new("dpkg");
        c.arg(format!("--root={}", root.display()))
            .args([
                "--force-depends",
                "--force-not-root",
                "--force-script-chrootless",
                "--force-unsafe-io",
                "--log=/dev/null",
            ])
            .args(args)
            .env("PATH", &path);
        c
    };
    let calls_text = || std::fs::read_to_string(&calls).unwrap_or_default();
    let ko = root.join(format!("lib/modules/{KREL}/updates/dkms/hello.ko"));

    // 1. No kernel in the root: install works, depmod is not called.
    run(&mut dpkg(&["-i", p.to_str().unwrap()]));
    let listed = run(&mut dpkg(&["-L", &s.package]));
    eprintln!("dpkg -L:\n{listed}");
    assert!(listed.lines().any(|l| l == format!("/lib/modules/{KREL}/updates/dkms/hello.ko")), "{listed}");
    let status = run(&mut dpkg(&["-s", &s.package]));
    assert!(status.contains("Status: install ok installed"), "{status}");
    assert_eq!(std::fs::read(&ko).unwrap(), s.files[0].contents);
    run(&mut dpkg(&["-V", &s.package]));
    assert_eq!(calls_text(), "");
    run(&mut dpkg(&["--purge", &s.package]));
    assert!(!ko.exists());

    // 2. "Kernel" present (modules.order): depmod runs against $DPKG_ROOT on
    // configure and on remove; a failing depmod does not fail removal.
    std::fs::create_dir_all(root.join(format!("lib/modules/{KREL}"))).unwrap();
    std::fs::write(root.join(format!("lib/modules/{KREL}/modules.order")), "").unwrap();
    run(&mut dpkg(&["-i", p.to_str().unwrap()]));
    let want = format!("-a -b {} {KREL}\n", root.display());
    assert_eq!(calls_text(), want);
    std::fs::write(&fail, "").unwrap();
    run(&mut dpkg(&["--remove", &s.package]));
    assert_eq!(calls_text(), want.repeat(2));
    assert!(!ko.exists());
}
