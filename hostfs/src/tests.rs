use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};

use super::*;

fn tree() -> (tempfile::TempDir, Dir) {
    let t = tempfile::tempdir().unwrap();
    let d = Dir::open(t.path()).unwrap();
    (t, d)
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn open_dir_refuses_symlinks_and_escapes() {
    let (t, d) = tree();
    fs::create_dir(t.path().join("real")).unwrap();
    symlink("real", t.path().join("link")).unwrap();
    symlink("/etc", t.path().join("abs")).unwrap();
    assert!(d.open_dir("real").is_ok());
    assert!(matches!(d.open_dir("link"), Err(Error::Symlink { .. })));
    assert!(matches!(d.open_dir("abs/ssl"), Err(Error::Symlink { .. })));
    assert!(matches!(d.open_dir("../x"), Err(Error::BadPath { .. })));
    assert!(matches!(d.open_dir("/etc"), Err(Error::BadPath { .. })));
}

#[test]
fn open_regular_refuses_links_fifos_and_directories_without_opening_them() {
    let (t, d) = tree();
    fs::write(t.path().join("f"), "data").unwrap();
    symlink("f", t.path().join("l")).unwrap();
    nix_mkfifo(&t.path().join("fifo"));
    fs::create_dir(t.path().join("dir")).unwrap();
    let (mut f, meta) = d.open_regular("f").unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!((s.as_str(), meta.size, meta.kind), ("data", 4, Kind::File));
    assert!(matches!(d.open_regular("l"), Err(Error::Symlink { .. })));
    // Would block forever if it were opened for reading.
    assert!(matches!(d.open_regular("fifo"), Err(Error::NotRegular { kind: Kind::Fifo, .. })));
    assert!(matches!(d.open_regular("dir"), Err(Error::NotRegular { kind: Kind::Dir, .. })));
}

fn nix_mkfifo(p: &Path) {
    rustix::fs::mknodat(CWD, p, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
}

#[test]
fn set_mode_and_owner_never_follow_links() {
    let (t, d) = tree();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    fs::write(&secret, "x").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    symlink(&secret, t.path().join("l")).unwrap();
    assert!(matches!(d.set_mode("l", 0o755), Err(Error::Symlink { .. })));
    assert_eq!(mode(&secret), 0o600);
    let me = rustix::process::geteuid().as_raw();
    d.set_owner("l", me, rustix::process::getegid().as_raw()).unwrap();
    fs::write(t.path().join("f"), "").unwrap();
    d.set_mode("f", 0o640).unwrap();
    assert_eq!(mode(&t.path().join("f")), 0o640);
}

#[test]
fn create_file_never_writes_through_a_link() {
    let (t, d) = tree();
    let outside = tempfile::tempdir().unwrap();
    symlink(outside.path().join("planted"), t.path().join("out")).unwrap();
    assert!(d.write_file("out", b"x", 0o644).is_err());
    assert!(!outside.path().join("planted").exists());
    d.write_file("new", b"x", 0o640).unwrap();
    assert_eq!(mode(&t.path().join("new")), 0o640);
    fs::create_dir(t.path().join("sub")).unwrap();
    symlink(outside.path(), t.path().join("sub/esc")).unwrap();
    assert!(matches!(d.write_file("sub/esc/x", b"x", 0o644), Err(Error::Symlink { .. })));
}

#[test]
fn create_dir_all_refuses_a_symlinked_component() {
    let (t, d) = tree();
    let outside = tempfile::tempdir().unwrap();
    symlink(outside.path(), t.path().join("pool")).unwrap();
    assert!(d.create_dir_all("pool/main/h", 0o755).is_err());
    assert!(!outside.path().join("main").exists());
    let made = d.create_dir_all("a/b/c", 0o750).unwrap();
    assert_eq!(made.path(), t.path().join("a/b/c"));
    assert_eq!(mode(&t.path().join("a/b")), 0o750);
}

#[test]
fn walk_is_sorted_and_does_not_enter_links() {
    let (t, d) = tree();
    fs::create_dir_all(t.path().join("b/c")).unwrap();
    fs::write(t.path().join("b/c/f"), "").unwrap();
    fs::write(t.path().join("a"), "").unwrap();
    symlink("/etc", t.path().join("etc")).unwrap();
    let mut seen = Vec::new();
    d.walk::<Error>(&mut |v| {
        seen.push((v.rel.to_str().unwrap().to_owned(), v.meta.kind));
        Ok(true)
    })
    .unwrap();
    let expect =
        [("a", Kind::File), ("b", Kind::Dir), ("b/c", Kind::Dir), ("b/c/f", Kind::File), ("etc", Kind::Symlink)];
    let expect: Vec<_> = expect.iter().map(|(p, k)| (p.to_string(), *k)).collect();
    assert_eq!(seen, expect);
}

#[test]
fn remove_all_removes_links_not_their_targets() {
    let (t, d) = tree();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("keep"), "").unwrap();
    fs::create_dir_all(t.path().join("x/ro")).unwrap();
    symlink(outside.path(), t.path().join("x/link")).unwrap();
    fs::set_permissions(t.path().join("x/ro"), fs::Permissions::from_mode(0o555)).unwrap();
    d.remove_all("x").unwrap();
    assert!(!t.path().join("x").exists());
    assert!(outside.path().join("keep").exists());
    d.remove_all("missing").unwrap();
}

#[test]
fn resolve_follows_chains_as_the_kernel_would() {
    let (t, d) = tree();
    fs::create_dir_all(t.path().join("sub/deep")).unwrap();
    // d -> . alone is harmless, and so is e's text read lexically from the
    // top; together they climb out.
    symlink(".", t.path().join("d")).unwrap();
    symlink("d/d/d/../../../etc/shadow", t.path().join("e")).unwrap();
    assert_eq!(d.resolve("e", true).unwrap(), Resolved::Outside);
    symlink("../../x", t.path().join("sub/deep/up")).unwrap();
    assert_eq!(d.resolve("sub/deep/up", true).unwrap(), Resolved::Inside("x".into()));
    symlink("../../../x", t.path().join("sub/deep/out")).unwrap();
    assert_eq!(d.resolve("sub/deep/out", true).unwrap(), Resolved::Outside);
    symlink("/etc", t.path().join("abs")).unwrap();
    assert_eq!(d.resolve("abs", true).unwrap(), Resolved::Outside);
    assert_eq!(d.resolve("abs", false).unwrap(), Resolved::Inside("abs".into()));
    // A link through a link to a directory: sub/deep via `s`.
    symlink("sub", t.path().join("s")).unwrap();
    symlink("s/deep/../../..", t.path().join("via")).unwrap();
    assert_eq!(d.resolve("via", true).unwrap(), Resolved::Outside);
    symlink("loop", t.path().join("loop")).unwrap();
    assert_eq!(d.resolve("loop", true).unwrap(), Resolved::Loop);
    // Missing components are judged lexically.
    symlink("missing/../../y", t.path().join("m")).unwrap();
    assert_eq!(d.resolve("m", true).unwrap(), Resolved::Outside);
}

#[test]
fn open_dir_in_root_follows_links_inside_the_root_only() {
    let (t, d) = tree();
    fs::create_dir_all(t.path().join("usr/lib")).unwrap();
    symlink("usr/lib", t.path().join("lib")).unwrap();
    symlink("/usr/lib", t.path().join("lib2")).unwrap();
    symlink("../../../../..", t.path().join("up")).unwrap();
    let lib = d.open_dir_in_root("lib").unwrap();
    lib.write_file("x", b"", 0o644).unwrap();
    assert!(t.path().join("usr/lib/x").exists());
    d.open_dir_in_root("lib2").unwrap().write_file("y", b"", 0o644).unwrap();
    assert!(t.path().join("usr/lib/y").exists());
    // `..` at the root stays at the root.
    let up = d.open_dir_in_root("up").unwrap();
    assert_eq!(up.own_meta().unwrap().ino, d.own_meta().unwrap().ino);
}

#[test]
fn read_limited_refuses_more_than_the_limit() {
    let (t, d) = tree();
    fs::write(t.path().join("f"), vec![0u8; 100]).unwrap();
    assert_eq!(d.read_limited("f", 100).unwrap().len(), 100);
    assert!(d.read_limited("f", 99).is_err());
}

#[test]
fn open_regular_path_follows_the_users_path_but_refuses_a_fifo() {
    let (t, _) = tree();
    fs::write(t.path().join("x.deb"), "!<arch>").unwrap();
    symlink("x.deb", t.path().join("current.deb")).unwrap();
    nix_mkfifo(&t.path().join("fifo.deb"));
    assert_eq!(open_regular_path(&t.path().join("current.deb")).unwrap().1.size, 7);
    assert!(matches!(open_regular_path(&t.path().join("fifo.deb")), Err(Error::NotRegular { kind: Kind::Fifo, .. })));
}

#[test]
fn make_dir_in_root_makes_what_a_dangling_link_names_inside_the_root() {
    let (t, d) = tree();
    symlink("/usr/lib", t.path().join("lib64")).unwrap();
    symlink("../../..", t.path().join("up")).unwrap();
    fs::write(t.path().join("file"), "").unwrap();
    d.make_dir_in_root("lib64/x86_64", 0o755).unwrap();
    assert!(t.path().join("usr/lib/x86_64").is_dir());
    d.make_dir_in_root("up/opt", 0o755).unwrap();
    assert!(t.path().join("opt").is_dir(), "`..` above the root stays at the root");
    d.make_dir_in_root("file/sub", 0o755).unwrap();
    assert!(t.path().join("file/sub").is_dir(), "a file in the way is replaced");
}

#[test]
fn a_walk_stops_listing_at_its_budget() {
    let (t, d) = tree();
    fs::create_dir(t.path().join("sub")).unwrap();
    for i in 0..20 {
        fs::write(t.path().join(format!("sub/{i}")), "").unwrap();
    }
    let mut seen = 0;
    let err = d
        .walk_limited::<Error>(10, &mut |_| {
            seen += 1;
            Ok(true)
        })
        .unwrap_err();
    assert!(matches!(&err, Error::TooMany { path, limit: 10 } if path.ends_with("sub")), "{err}");
    assert_eq!(seen, 1, "refused while sub/ was listed, before any of its entries was visited");
    // 21 entries in all: a budget of exactly that is enough.
    d.walk_limited::<Error>(21, &mut |_| Ok(true)).unwrap();
    assert!(d.walk_limited::<Error>(20, &mut |_| Ok(true)).is_err());
}

#[test]
fn listings_can_be_limited_or_cut() {
    let (t, d) = tree();
    for i in 0..5 {
        fs::write(t.path().join(i.to_string()), "").unwrap();
    }
    assert_eq!(d.entries_limited(5).unwrap().len(), 5);
    assert!(matches!(d.entries_limited(4), Err(Error::TooMany { limit: 4, .. })));
    assert_eq!(d.entries_up_to(3).unwrap().len(), 3);
    assert_eq!(d.entries_up_to(9).unwrap().len(), 5);
}
