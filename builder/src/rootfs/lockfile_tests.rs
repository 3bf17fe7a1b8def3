use super::*;
use crate::apt::archive::tests::pkg;

fn lock() -> Lock {
    let mut make = pkg("make", "4.3-4.1", "libc6", "");
    make.sha256 = "ab".repeat(32);
    make.filename = "pool/main/m/make-dfsg/make_4.3-4.1_amd64.deb".into();
    make.source = "make-dfsg".into();
    let mut diff = pkg("diffutils", "1:3.8-4", "", "");
    diff.size = 12345;
    Lock {
        recipe: "bookworm-amd64".into(),
        kernel: "6.1.0-56-amd64".into(),
        architecture: "amd64".into(),
        host_architecture: None,
        packages: vec![make, diff],
        links: [("/usr/bin/awk".to_string(), "mawk".to_string())].into(),
        headers_version: "6.1.192-2".into(),
        extras: Vec::new(),
        mirrors: vec!["http://deb.example".into()],
        suites: Vec::new(),
    }
}

/// `suite` records say where the packages were resolved from: written after
/// the header, read back, checked, and never part of the root's name; a lock
/// written before them reads as it did (the round trip above has none).
#[test]
fn suites_are_recorded_but_do_not_name_the_root() {
    let mut lock = lock();
    let plain = lock.hash();
    lock.suites = vec!["trixie".into(), "trixie-security".into()];
    let text = lock.file_text();
    assert!(text.contains("headers-version 6.1.192-2\nsuite trixie\nsuite trixie-security\npackage "), "{text}");
    let back = Lock::parse_file(&text, "t.lock").unwrap();
    assert_eq!(back.suites, lock.suites);
    assert_eq!(back.hash(), plain);
    for (bad, why) in [("suite ../x", "not a suite name"), ("suite trixie", "twice"), ("suite", "suite NAME")] {
        let err = Lock::parse_file(&format!("{text}{bad}\n"), "t.lock").unwrap_err().to_string();
        assert!(err.contains(why), "{bad}: {err}");
    }
}

#[test]
fn round_trips_with_the_same_hash() {
    let lock = lock();
    let text = lock.file_text();
    assert_eq!(
        text,
        format!(
            "hermod-lock 1\n# package NAME VERSION ARCHITECTURE SHA256 SIZE FILENAME SOURCE\nrecipe bookworm-amd64\nkernel 6.1.0-56-amd64\narchitecture amd64\nheaders-version 6.1.192-2\npackage diffutils 1:3.8-4 amd64 {zero} 12345 pool/diffutils_1:3.8-4_amd64.deb diffutils\npackage make 4.3-4.1 amd64 {ab} 1000 pool/main/m/make-dfsg/make_4.3-4.1_amd64.deb make-dfsg\nlink /usr/bin/awk mawk\n",
            zero = "0".repeat(64),
            ab = "ab".repeat(32)
        )
    );
    let back = Lock::parse_file(&text, "t.lock").unwrap();
    assert_eq!(back.hash(), lock.hash(), "the root's name does not depend on where the lock came from");
    assert_eq!(back.file_text(), text);
    assert_eq!(back.headers_version, "6.1.192-2");
    assert_eq!(back.packages[1].size, 1000);
    assert_eq!(back.packages[1].source, "make-dfsg");
    assert!(back.packages.iter().all(|p| p.base_uri.is_empty()), "which mirror is the reader's business");
    // Comments, blank lines and order do not matter.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(6, 7);
    let shuffled = format!("{}\n\n# reviewed by ops\n", lines.join("\n"));
    assert_eq!(Lock::parse_file(&shuffled, "t.lock").unwrap().hash(), lock.hash());
}

/// Declared build needs are `extra` records after the links; without
/// them a lock's text (and so its hash and file) is what it always was.
#[test]
fn extras_round_trip_and_plain_locks_are_unchanged() {
    let plain = lock();
    assert_eq!(
        plain.text(),
        format!(
            "hermod-rootfs-lock 3\nrecipe bookworm-amd64\nkernel 6.1.0-56-amd64\narchitecture amd64\npackage diffutils 1:3.8-4 amd64 {zero}\npackage make 4.3-4.1 amd64 {ab}\nlink /usr/bin/awk mawk\n",
            zero = "0".repeat(64),
            ab = "ab".repeat(32)
        ),
        "the hashed text of a lock without extras"
    );
    let mut with = lock();
    with.extras = vec!["diffutils".into(), "make".into()];
    let text = with.file_text();
    assert!(
        text.starts_with("hermod-lock 1\n") && text.ends_with("link /usr/bin/awk mawk\nextra diffutils\nextra make\n")
    );
    assert_ne!(with.hash(), plain.hash());
    let back = Lock::parse_file(&text, "t.lock").unwrap();
    assert_eq!(back.extras, ["diffutils", "make"]);
    assert_eq!((back.hash(), back.file_text()), (with.hash(), text.clone()));
    // Malformed extras are named like any other line.
    let e = Lock::parse_file(&format!("{text}extra make\n"), "x.lock").unwrap_err().to_string();
    assert!(e.contains("line 12") && e.contains("extra make is listed twice (also on line 11)"), "{e}");
    let e = Lock::parse_file(&format!("{text}extra gawk\n"), "x.lock").unwrap_err().to_string();
    assert!(e.contains("line 12") && e.contains("extra gawk is not one of the lock's packages"), "{e}");
    let e = Lock::parse_file(&format!("{text}extra Gawk x\n"), "x.lock").unwrap_err().to_string();
    assert!(e.contains("expected `extra NAME`"), "{e}");
}

/// Each malformed line is refused, naming the line and the problem.
#[test]
fn malformed_lines_are_named() {
    let good = lock().file_text();
    let cases: &[(&str, &str, usize, &str)] = &[
        ("hermod-lock 1", "hermod-lock 2", 1, "format \"2\" is not supported"),
        ("hermod-lock 1", "garbage", 1, "not a hermod lock file"),
        ("recipe bookworm-amd64", "recipe sid-amd64", 3, "recipe \"sid-amd64\" is not a known recipe"),
        ("recipe bookworm-amd64", "recipe ../../x", 3, "is not a recipe name"),
        ("kernel 6.1.0-56-amd64", "kernel ../../etc", 4, "kernel: kernel release \"../../etc\""),
        ("kernel 6.1.0-56-amd64", "kernel ..", 4, "kernel release"),
        ("kernel 6.1.0-56-amd64", "kernel  6.1.0-56-amd64", 4, "single spaces"),
        ("architecture amd64", "architecture amd64 i386", 5, "exactly one value"),
        ("architecture amd64", "architecture amd64/..", 5, "architecture: architecture \"amd64/..\""),
        ("headers-version 6.1.192-2", "headers-version :", 6, "headers-version"),
        ("headers-version 6.1.192-2", "headers-version 6.1/../../x", 6, "headers-version: version"),
        ("package make 4.3-4.1 amd64", "package Make 4.3-4.1 amd64", 8, "not a Debian package name"),
        ("package make 4.3-4.1 amd64", "package m/ake 4.3-4.1 amd64", 8, "\"m/ake\" is not a Debian package name"),
        ("package make 4.3-4.1 amd64", "package .. 4.3-4.1 amd64", 8, "not a Debian package name"),
        ("package make 4.3-4.1 amd64", "package ma\0ke 4.3-4.1 amd64", 8, "\"ma\\0ke\" is not"),
        ("package make 4.3-4.1 amd64", "package make 4.3 4.1 amd64", 8, "7 fields"),
        // The crafted VERSION: a path out of the package cache.
        ("make 4.3-4.1 amd64", "make 4.3-4.1/../../../../tmp/x amd64", 8, "package make: VERSION: version"),
        ("make 4.3-4.1 amd64", "make 4.3-4.1 amd64/../x", 8, "package make: ARCHITECTURE"),
        ("make 4.3-4.1 amd64", "make 4.3-4.1 AMD64", 8, "package make: ARCHITECTURE"),
        (" 1000 pool/main/m", " 1k pool/main/m", 8, "SIZE: size \"1k\""),
        (" 1000 pool/main/m", " 99999999999999999999 pool/main/m", 8, "too large"),
        (" 1000 pool/main/m", " +1000 pool/main/m", 8, "decimal digits only"),
        (" 1000 pool/main/m", " 01000 pool/main/m", 8, "leading zero"),
        ("pool/main/m/make-dfsg/make", "../../../etc/make", 8, "FILENAME: file name \"../../../etc/"),
        ("pool/main/m/make-dfsg/make", "/etc/make", 8, "is absolute"),
        ("pool/main/m/make-dfsg/make", "pool//m/make", 8, "empty component"),
        ("pool/main/m/make-dfsg/make", "pool/./m/make", 8, "`.` or `..`"),
        ("_amd64.deb make-dfsg", "_amd64.tar make-dfsg", 8, "does not name a .deb"),
        ("_amd64.deb make-dfsg", "_amd64.deb make/dfsg", 8, "SOURCE: source package name"),
        ("link /usr/bin/awk mawk", "link usr/bin/awk mawk", 9, "must be absolute"),
        ("link /usr/bin/awk mawk", "link /usr/../etc/awk mawk", 9, "plain names"),
        ("link /usr/bin/awk mawk", "link /usr//bin/awk mawk", 9, "plain names"),
        ("link /usr/bin/awk mawk", "link /usr/bin/awk/ mawk", 9, "plain names"),
        ("link /usr/bin/awk mawk", "link /usr/bin/awk ../../../etc/shadow", 9, "leads above the root"),
        ("link /usr/bin/awk mawk", "link /usr/bin/awk /../etc", 9, "leads above the root"),
        ("link /usr/bin/awk mawk", "link /usr/bin/awk ../..", 9, "the root itself"),
        ("link /usr/bin/awk mawk", "link /usr/bin/awk", 9, "expected `link PATH TARGET`"),
        ("link /usr/bin/awk mawk", "symlink /usr/bin/awk mawk", 9, "unknown record \"symlink\""),
    ];
    for (from, to, line, message) in cases {
        let text = good.replacen(from, to, 1);
        assert_ne!(text, good, "{from}");
        let e = Lock::parse_file(&text, "x.lock").unwrap_err().to_string();
        assert!(e.starts_with(&format!("lock file x.lock: line {line}: ")) && e.contains(message), "{to}: {e}");
    }
    let upper = good.replace(&"ab".repeat(32), &"AB".repeat(32));
    let e = Lock::parse_file(&upper, "x.lock").unwrap_err().to_string();
    assert!(e.contains("line 8") && e.contains("package make: SHA256"), "{e}");
    let twice = format!("{good}{}", good.lines().nth(7).unwrap());
    let e = Lock::parse_file(&twice, "x.lock").unwrap_err().to_string();
    assert!(e.contains("line 10") && e.contains("also on line 8"), "{e}");
    let e = Lock::parse_file(&format!("{good}kernel 6.1.0-1-amd64\n"), "x.lock").unwrap_err().to_string();
    assert!(e.contains("line 10") && e.contains("first is on line 4"), "{e}");
    // Missing pieces are named too.
    let e = Lock::parse_file(&good.replace("recipe bookworm-amd64\n", ""), "x.lock").unwrap_err().to_string();
    assert_eq!(e, "lock file x.lock: no `recipe` line");
    let no_packages: String = good.lines().filter(|l| !l.starts_with("package ")).map(|l| format!("{l}\n")).collect();
    assert!(Lock::parse_file(&no_packages, "x.lock").unwrap_err().to_string().contains("no packages"));
    assert!(Lock::parse_file("", "x.lock").unwrap_err().to_string().contains("empty"));
}

/// Links: made by descriptor in the directory their path names, so one
/// below another link's path (which would be made through it) is refused,
/// in either order, whatever the target.
#[test]
fn a_link_below_another_link_is_refused() {
    let good = lock().file_text();
    // The crafted lock: an absolute target, then a path through it.
    let crafted = format!("{good}link /a /etc\nlink /a/cron.d/hermod /tmp/x\n");
    let e = Lock::parse_file(&crafted, "x.lock").unwrap_err().to_string();
    assert!(
        e.starts_with("lock file x.lock: line 11: ")
            && e.contains("link \"/a/cron.d/hermod\" lies below link \"/a\" (line 10)"),
        "{e}"
    );
    let reversed = format!("{good}link /a/cron.d/hermod /tmp/x\nlink /a /etc\n");
    let e = Lock::parse_file(&reversed, "x.lock").unwrap_err().to_string();
    assert!(e.contains("line 10: ") && e.contains("lies below link \"/a\" (line 11)"), "{e}");
    // Siblings sorted between a link and the one below it change nothing.
    let between = format!("{good}link /a /etc\nlink /a-b x\nlink /a.c x\nlink /a/b x\n");
    assert!(Lock::parse_file(&between, "x.lock").unwrap_err().to_string().contains("lies below link \"/a\""));
    // A common prefix that is not a path component is not below.
    let siblings = format!("{good}link /a /etc\nlink /ab x\n");
    assert_eq!(Lock::parse_file(&siblings, "x.lock").unwrap().links.len(), 3);
    // An absolute target alone is fine: it is read inside the root (chroot).
    let abs = format!("{good}link /usr/bin/cc /usr/bin/gcc-12\n");
    assert_eq!(Lock::parse_file(&abs, "x.lock").unwrap().links["/usr/bin/cc"], "/usr/bin/gcc-12");
    let twice = format!("{good}link /usr/bin/awk gawk\n");
    let e = Lock::parse_file(&twice, "x.lock").unwrap_err().to_string();
    assert!(e.contains("line 10") && e.contains("listed twice (also on line 9)"), "{e}");
}

/// A recipe given with --recipe is known besides the builtin ones.
#[test]
fn a_recipe_given_on_the_command_line_is_known() {
    let text = lock().file_text().replace("recipe bookworm-amd64", "recipe my-recipe");
    assert!(Lock::parse_file(&text, "x.lock").unwrap_err().to_string().contains("not a known recipe"));
    assert_eq!(Lock::parse_file_with(&text, "x.lock", &["my-recipe"]).unwrap().recipe, "my-recipe");
    assert_eq!(Lock::parse_file_with(&lock().file_text(), "x.lock", &["my-recipe"]).unwrap().recipe, "bookworm-amd64");
}

/// Errors quote at most ~200 bytes of what they refuse.
#[test]
fn errors_quote_a_bounded_part_of_the_input() {
    let good = lock().file_text();
    let huge = "x".repeat(100_000);
    for text in [
        good.replacen("package make ", &format!("package {huge} "), 1),
        good.replacen("4.3-4.1 amd64", &format!("4.3-4.1{huge} amd64"), 1),
        good.replacen("link /usr/bin/awk mawk", &format!("link /usr/bin/awk ../../{huge}"), 1),
        good.replacen("link /usr/bin/awk mawk", &format!("{huge} a"), 1),
        good.replacen("hermod-lock 1", &format!("hermod-lock {huge}"), 1),
    ] {
        let e = Lock::parse_file(&text, "x.lock").unwrap_err().to_string();
        assert!(e.len() < 600, "{} bytes: {}", e.len(), &e[..300]);
    }
}

/// Whatever parses, its file text parses back to the same lock (the fuzz
/// target's property, on the fixtures).
#[test]
fn parsed_locks_round_trip() {
    let mut with = lock();
    with.extras = vec!["make".into()];
    with.links.insert("/usr/bin/cc".into(), "/usr/bin/gcc-12".into());
    for lock in [lock(), with] {
        let back = Lock::parse_file(&lock.file_text(), "t").unwrap();
        assert_eq!(Lock::parse_file(&back.file_text(), "t").unwrap().file_text(), back.file_text());
        assert_eq!(back.hash(), lock.hash());
    }
}

/// A cross root's `host-architecture` is written, read back, and part of the
/// root's name; a native root's text has no such line.
#[test]
fn a_cross_roots_host_architecture_round_trips_and_names_the_root() {
    let native = lock();
    assert!(!native.file_text().contains("host-architecture"));
    assert!(!native.text().contains("host-architecture"));
    let mut cross = lock();
    cross.architecture = "arm64".into();
    cross.host_architecture = Some("amd64".into());
    let text = cross.file_text();
    assert!(text.contains("\narchitecture arm64\nhost-architecture amd64\n"), "{text}");
    let back = Lock::parse_file(&text, "t").unwrap();
    assert_eq!(back.host_architecture.as_deref(), Some("amd64"));
    assert_eq!(back.hash(), cross.hash());
    let mut other = cross.clone();
    other.host_architecture = Some("i386".into());
    assert_ne!(other.hash(), cross.hash(), "the host architecture names the root");
    let bad = text.replace("host-architecture amd64", "host-architecture AMD/64");
    assert!(Lock::parse_file(&bad, "t").unwrap_err().to_string().contains("host-architecture"));
}
