//! Publishing end to end on real .debs written by hermod's package writer;
//! the signature checked by hermod's verifier and by gpgv. (apt itself reads
//! the repository in `builder/tests/apt_repository.rs`.)

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::*;
use crate::apt::keyring::Keyring;
use crate::apt::release::{verify_clearsigned, Release};
use crate::apt::sources::SignedBy;
use crate::debpkg::{build_deb, DebSpec, ModuleFile};

const KERNEL: &str = "6.1.0-99-amd64";
const MTIME: u64 = 1_704_067_200;
const KEY_TIME: u32 = 1_710_000_000;
const NOW: i64 = 1_800_000_000;

fn spec(module: &str, version: &str, contents: &[u8]) -> DebSpec {
    DebSpec {
        package: format!("{module}-modules-{KERNEL}"),
        version: version.into(),
        architecture: "amd64".into(),
        kernel_release: KERNEL.into(),
        maintainer: "hermod test <test@example.org>".into(),
        description_short: "a test module".into(),
        description_long: "A module for the repository tests.".into(),
        source_name: module.into(),
        depends: format!("linux-image-{KERNEL}"),
        extra_fields: vec![],
        files: vec![ModuleFile {
            install_dir: format!("lib/modules/{KERNEL}/updates/dkms"),
            file_name: format!("{module}.ko"),
            contents: contents.to_vec(),
        }],
        copyright: "Copyright: nobody\n".into(),
        changelog_entry: "Built for a test.".into(),
        mtime: MTIME,
    }
}

/// A .deb in `dir`, named as the input file (not as the pool will name it).
fn deb(dir: &Path, file: &str, spec: &DebSpec) -> PathBuf {
    let path = dir.join(file);
    fs::write(&path, build_deb(spec).unwrap()).unwrap();
    path
}

struct Fixture {
    dir: tempfile::TempDir,
    key: SigningKey,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate("hermod test <repo@example.org>", KEY_TIME).unwrap();
        key.write_new(&dir.path().join("key")).unwrap();
        Fixture { dir, key }
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn publish_into(&self, repo: &Path, key: Option<&SigningKey>, debs: &[PathBuf]) -> Result<Report, RepoError> {
        let p = Publish {
            repo,
            suite: DEFAULT_SUITE,
            component: DEFAULT_COMPONENT,
            key,
            source_date_epoch: None,
            now: NOW,
            ..Publish::default()
        };
        publish(&p, debs)
    }

    fn publish(&self, debs: &[PathBuf]) -> Result<Report, RepoError> {
        self.publish_into(&self.repo(), Some(&self.key), debs)
    }

    fn input(&self, file: &str, spec: &DebSpec) -> PathBuf {
        deb(self.dir.path(), file, spec)
    }
}

/// Every file of a tree with its SHA256 (to compare whole repositories).
fn snapshot(root: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            (rel, hex::encode(Sha256::digest(fs::read(e.path()).unwrap())))
        })
        .collect();
    files.sort();
    files
}

fn release(repo: &Path) -> Release {
    Release::parse(&fs::read_to_string(repo.join("dists/hermod/Release")).unwrap(), "Release").unwrap()
}

#[test]
fn layout_stanza_and_release_hashes() {
    let f = Fixture::new();
    let hello = f.input("whatever-name.deb", &spec("hello", "1.0+6.1.0-1", b"\x7fELF hello"));
    let report = f.publish(std::slice::from_ref(&hello)).unwrap();
    let repo = f.repo();
    let pool = format!("pool/main/h/hello/hello-modules-{KERNEL}_1.0+6.1.0-1_amd64.deb");
    assert_eq!(report.packages, [(pool.clone(), true)]);
    assert_eq!(fs::read(repo.join(&pool)).unwrap(), fs::read(&hello).unwrap());

    let packages = fs::read_to_string(repo.join("dists/hermod/main/binary-amd64/Packages")).unwrap();
    let control = crate::apt::debfile::control_text_of(&hello, &fs::read(&hello).unwrap()).unwrap();
    let sha = hex::encode(Sha256::digest(fs::read(&hello).unwrap()));
    let size = fs::metadata(&hello).unwrap().len();
    let (module, meta) = packages.split_once("\n\n").unwrap();
    assert_eq!(format!("{module}\n"), format!("{control}Filename: {pool}\nSize: {size}\nSHA256: {sha}\n"));
    // The metapackage publish made for it (meta.rs), indexed beside it.
    let meta_pool = "pool/main/h/hello/hello-modules-amd64_6.1.0.99+1.0+6.1.0-1_amd64.deb";
    assert_eq!(report.metapackages, [meta_pool]);
    assert!(meta.starts_with("Package: hello-modules-amd64\nSource: hello\nVersion: 6.1.0.99+1.0+6.1.0-1\n"), "{meta}");
    assert!(meta.contains(&format!("Depends: hello-modules-{KERNEL} (>= 1.0+6.1.0-1)\n")), "{meta}");
    assert!(meta.contains(&format!("Filename: {meta_pool}\n")) && repo.join(meta_pool).is_file(), "{meta}");

    // Release lists both indices with their true sizes and hashes, and is what InRelease signs.
    let r = release(&repo);
    assert_eq!((r.suite.as_str(), r.codename.as_str()), ("hermod", "hermod"));
    assert_eq!(r.architectures, ["amd64"]);
    assert_eq!(r.components, ["main"]);
    assert_eq!(r.sha256.len(), 2);
    for name in ["Packages", "Packages.xz"] {
        let rel = format!("main/binary-amd64/{name}");
        let bytes = fs::read(repo.join("dists/hermod").join(&rel)).unwrap();
        assert_eq!(r.sha256[&rel].size, bytes.len() as u64, "{rel}");
        assert_eq!(r.sha256[&rel].sha256, hex::encode(Sha256::digest(&bytes)), "{rel}");
    }
    let public = f.dir.path().join("key.asc");
    let keyring = Keyring::load(&SignedBy::Keyrings(vec![public])).unwrap();
    let in_release = fs::read(repo.join("dists/hermod/InRelease")).unwrap();
    let signed = verify_clearsigned(&in_release, &keyring, "InRelease").unwrap();
    assert_eq!(signed, fs::read_to_string(repo.join("dists/hermod/Release")).unwrap());

    // The Date: the key is newer than the packages' files, so its creation time.
    assert_eq!(report.date, f.key.created());
    assert_eq!(report.date_source, Some(DateSource::KeyCreation));
    assert_eq!(crate::apt::release::parse_rfc2822(&r.date), Some(f.key.created()));
    // Nothing else: no temporary file, no stray directory.
    let files: Vec<String> = snapshot(&repo).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        files,
        [
            ".hermod-publish.lock",
            "dists/hermod/InRelease",
            "dists/hermod/Release",
            "dists/hermod/main/binary-amd64/Packages",
            "dists/hermod/main/binary-amd64/Packages.xz",
            pool.as_str(),
            meta_pool,
        ]
    );
}

#[test]
fn same_inputs_same_bytes_in_any_order_and_a_republish_writes_nothing() {
    let f = Fixture::new();
    let a = f.input("a.deb", &spec("alpha", "1.0", b"alpha"));
    let b = f.input("b.deb", &spec("beta", "2.0", b"beta"));
    let at_once = f.dir.path().join("at-once");
    f.publish_into(&at_once, Some(&f.key), &[a.clone(), b.clone()]).unwrap();
    let one_by_one = f.dir.path().join("one-by-one");
    f.publish_into(&one_by_one, Some(&f.key), std::slice::from_ref(&b)).unwrap();
    f.publish_into(&one_by_one, Some(&f.key), std::slice::from_ref(&a)).unwrap();
    assert_eq!(snapshot(&at_once), snapshot(&one_by_one), "the order of publishing does not matter");

    let before = snapshot(&at_once);
    let mtime = |p: &Path| fs::metadata(p.join("dists/hermod/InRelease")).unwrap().modified().unwrap();
    let first = mtime(&at_once);
    let report = f.publish_into(&at_once, Some(&f.key), &[a, b]).unwrap();
    assert!(report.written.is_empty(), "a republish writes nothing: {:?}", report.written);
    assert!(report.packages.iter().all(|(_, new)| !new));
    assert_eq!(snapshot(&at_once), before);
    assert_eq!(mtime(&at_once), first);
}

#[test]
fn a_published_version_is_immutable() {
    let f = Fixture::new();
    let first = f.input("first.deb", &spec("hello", "1.0", b"first build"));
    f.publish(&[first]).unwrap();
    let before = snapshot(&f.repo());
    let other = f.input("other.deb", &spec("hello", "1.0", b"another build"));
    let newer = f.input("newer.deb", &spec("hello", "1.1", b"newer"));
    let e = f.publish(&[newer.clone(), other]).unwrap_err();
    assert!(matches!(e, RepoError::Immutable { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains(&format!("hello-modules-{KERNEL} 1.0 (amd64) is already published")), "{text}");
    assert!(text.contains("other.deb") && text.contains("Nothing was changed"), "{text}");
    assert_eq!(snapshot(&f.repo()), before, "not even the valid input was published");

    // Two inputs that claim the same package with different bytes.
    let x = f.input("x.deb", &spec("twin", "1.0", b"x"));
    let y = f.input("y.deb", &spec("twin", "1.0", b"y"));
    let e = f.publish(&[x, y]).unwrap_err();
    assert!(matches!(e, RepoError::InputsDiffer { .. }), "{e}");
    assert_eq!(snapshot(&f.repo()), before);

    // The repository still grows by new versions.
    f.publish(&[newer]).unwrap();
    let versions: Vec<String> = index::parse_packages(
        &fs::read_to_string(f.repo().join("dists/hermod/main/binary-amd64/Packages")).unwrap(),
        "Packages",
    )
    .unwrap()
    .into_iter()
    .map(|e| e.version)
    .collect();
    // The module package's versions, and the metapackage's for each (meta.rs): it only goes up.
    assert_eq!(versions, ["1.0", "1.1", "6.1.0.99+1.0", "6.1.0.99+1.1"]);
}

#[test]
fn bad_inputs_leave_the_repository_untouched() {
    let f = Fixture::new();
    let good = f.input("good.deb", &spec("hello", "1.0", b"ok"));
    f.publish(std::slice::from_ref(&good)).unwrap();
    let before = snapshot(&f.repo());
    let not_a_deb = f.dir.path().join("notes.deb");
    fs::write(&not_a_deb, "just text\n").unwrap();
    let e = f.publish(&[good.clone(), not_a_deb]).unwrap_err().to_string();
    assert!(e.contains("notes.deb") && e.contains("not a Debian package"), "{e}");
    let e = f.publish(&[f.dir.path().join("missing.deb")]).unwrap_err().to_string();
    assert!(e.contains("missing.deb"), "{e}");
    // A truncated package.
    let cut = f.dir.path().join("cut.deb");
    let bytes = fs::read(&good).unwrap();
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(f.publish(&[cut]).is_err());
    for (suite, component) in [("../x", "main"), ("hermod", "main/extra"), ("", "main"), ("hermod", "-x")] {
        let p = Publish { repo: &f.repo(), suite, component, key: Some(&f.key), now: NOW, ..Publish::default() };
        let e = publish(&p, std::slice::from_ref(&good)).unwrap_err();
        assert!(matches!(e, RepoError::BadName { .. }), "{suite} {component}: {e}");
    }
    // A time in the future.
    let p = Publish {
        repo: &f.repo(),
        suite: DEFAULT_SUITE,
        component: DEFAULT_COMPONENT,
        key: Some(&f.key),
        source_date_epoch: Some(NOW + 3600),
        now: NOW,
        ..Publish::default()
    };
    let e = publish(&p, std::slice::from_ref(&good)).unwrap_err().to_string();
    assert!(e.contains("in the future") && e.contains("SOURCE_DATE_EPOCH"), "{e}");
    // A refused first publish leaves no directory behind.
    let fresh = f.dir.path().join("fresh");
    let e = publish(&Publish { repo: &fresh, ..p }, std::slice::from_ref(&good)).unwrap_err();
    assert!(matches!(e, RepoError::FutureDate(_)), "{e}");
    assert!(!fresh.exists());
    // A signed repository is never continued unsigned.
    let e = f.publish_into(&f.repo(), None, &[good]).unwrap_err();
    assert!(matches!(e, RepoError::WouldUnsign { .. }), "{e}");
    assert_eq!(snapshot(&f.repo()), before);
}

#[test]
fn the_date_follows_the_inputs_and_never_goes_back() {
    let f = Fixture::new();
    let old = f.input("old.deb", &spec("hello", "1.0", b"old"));
    // Unsigned: the newest file time inside the .deb.
    let repo = f.dir.path().join("unsigned");
    let report = f.publish_into(&repo, None, std::slice::from_ref(&old)).unwrap();
    assert_eq!(report.date, MTIME as i64);
    assert!(matches!(report.date_source, Some(DateSource::NewestData(ref d)) if d.ends_with("old.deb")));
    assert!(!repo.join("dists/hermod/InRelease").exists());
    // A later package moves it forward; an older one published after it does not move it back.
    let mut later = spec("later", "1.0", b"later");
    later.mtime = MTIME + 1000;
    let later = f.input("later.deb", &later);
    assert_eq!(f.publish_into(&repo, None, &[later]).unwrap().date, MTIME as i64 + 1000);
    let mut older = spec("older", "1.0", b"older");
    older.mtime = MTIME - 1000;
    let older = f.input("older.deb", &older);
    let report = f.publish_into(&repo, None, &[older]).unwrap();
    assert_eq!((report.date, report.date_source), (MTIME as i64 + 1000, Some(DateSource::PreviousRelease)));
    // SOURCE_DATE_EPOCH replaces the packages' time.
    let p = Publish {
        repo: &f.dir.path().join("sde"),
        suite: DEFAULT_SUITE,
        component: DEFAULT_COMPONENT,
        key: None,
        source_date_epoch: Some(1_750_000_000),
        now: NOW,
        ..Publish::default()
    };
    assert_eq!(publish(&p, &[old]).unwrap().date, 1_750_000_000);
}

#[test]
fn a_crashed_publish_is_repaired_by_the_next() {
    let f = Fixture::new();
    let a = f.input("a.deb", &spec("alpha", "1.0", b"alpha"));
    let b = f.input("b.deb", &spec("beta", "1.0", b"beta"));
    let reference = f.dir.path().join("reference");
    f.publish_into(&reference, Some(&f.key), &[a.clone(), b.clone()]).unwrap();
    let pool_b = "pool/main/b/beta/beta-modules-6.1.0-99-amd64_1.0_amd64.deb";
    let packages = "dists/hermod/main/binary-amd64/Packages";

    // Killed after b's pool file (and a temporary file), before any index: the next publish of b completes it.
    let repo = f.dir.path().join("killed-early");
    f.publish_into(&repo, Some(&f.key), std::slice::from_ref(&a)).unwrap();
    fs::create_dir_all(repo.join(pool_b).parent().unwrap()).unwrap();
    fs::copy(reference.join(pool_b), repo.join(pool_b)).unwrap();
    fs::write(repo.join("dists/hermod/main/binary-amd64/.tmp-abc123"), b"Package: half").unwrap();
    f.publish_into(&repo, Some(&f.key), std::slice::from_ref(&b)).unwrap();
    assert_eq!(snapshot(&repo), snapshot(&reference), "the same repository as an uninterrupted publish");

    // Killed after the indices, before Release: any next publish rewrites Release and InRelease.
    // (The pool files were all written before the indices: b's and its metapackage's.)
    let repo = f.dir.path().join("killed-late");
    f.publish_into(&repo, Some(&f.key), std::slice::from_ref(&a)).unwrap();
    fs::create_dir_all(repo.join(pool_b).parent().unwrap()).unwrap();
    for file in [pool_b, "pool/main/b/beta/beta-modules-amd64_6.1.0.99+1.0_amd64.deb"] {
        fs::copy(reference.join(file), repo.join(file)).unwrap();
    }
    for name in ["Packages", "Packages.xz"] {
        let rel = format!("dists/hermod/main/binary-amd64/{name}");
        fs::copy(reference.join(&rel), repo.join(&rel)).unwrap();
    }
    f.publish_into(&repo, Some(&f.key), std::slice::from_ref(&a)).unwrap();
    assert_eq!(snapshot(&repo), snapshot(&reference));

    // A listed pool file damaged by something else: named, and repaired by publishing that package again.
    fs::write(repo.join(pool_b), b"damaged").unwrap();
    let e = f.publish_into(&repo, Some(&f.key), std::slice::from_ref(&a)).unwrap_err();
    assert!(matches!(e, RepoError::Damaged(_)) && e.to_string().contains(pool_b), "{e}");
    f.publish_into(&repo, Some(&f.key), std::slice::from_ref(&b)).unwrap();
    assert_eq!(snapshot(&repo), snapshot(&reference));
    // An index that is not ours is named, not overwritten.
    fs::write(repo.join(packages), "Package: x\nVersion: 1\n").unwrap();
    let e = f.publish_into(&repo, Some(&f.key), &[a]).unwrap_err().to_string();
    assert!(e.contains("Packages: stanza at line 1: no Size field"), "{e}");
}

#[test]
fn several_architectures_and_components() {
    let f = Fixture::new();
    let amd = f.input("a.deb", &spec("alpha", "1.0", b"alpha"));
    let mut arm = spec("alpha", "1.0", b"alpha arm");
    arm.architecture = "arm64".into();
    let arm = f.input("arm.deb", &arm);
    f.publish(&[amd, arm]).unwrap();
    let other = f.input("o.deb", &spec("other", "1.0", b"other"));
    let p = Publish {
        repo: &f.repo(),
        suite: DEFAULT_SUITE,
        component: "extra",
        key: Some(&f.key),
        source_date_epoch: None,
        now: NOW,
        ..Publish::default()
    };
    publish(&p, &[other]).unwrap();
    let r = release(&f.repo());
    assert_eq!(r.architectures, ["amd64", "arm64"]);
    assert_eq!(r.components, ["extra", "main"]);
    let listed: Vec<&str> = r.sha256.keys().map(String::as_str).collect();
    assert_eq!(
        listed,
        [
            "extra/binary-amd64/Packages",
            "extra/binary-amd64/Packages.xz",
            "main/binary-amd64/Packages",
            "main/binary-amd64/Packages.xz",
            "main/binary-arm64/Packages",
            "main/binary-arm64/Packages.xz",
        ]
    );
    assert!(f.repo().join("pool/extra/o/other").is_dir());
}

/// The farm side of hermod (`farm::repository`) reads the repository with hermod's own archive
/// code: InRelease against the key, the index against Release, the .deb against its SHA256.
#[test]
fn hermods_archive_reader_finds_and_downloads_the_published_package() {
    let f = Fixture::new();
    let hello = f.input("hello.deb", &spec("hello", "1.0", b"\x7fELF hello"));
    f.publish(std::slice::from_ref(&hello)).unwrap();
    let source = crate::apt::Source {
        uri: format!("file:{}", f.repo().display()),
        suite: DEFAULT_SUITE.into(),
        components: vec![DEFAULT_COMPONENT.into()],
        architectures: vec![],
        signed_by: SignedBy::Keyrings(vec![f.dir.path().join("key.asc")]),
        check_valid_until: true,
        declared_in: PathBuf::from("test"),
        derived_from: None,
    };
    let lists = f.dir.path().join("lists");
    let archive = crate::apt::Archive::from_sources(std::slice::from_ref(&source), &lists, "amd64", true).unwrap();
    let package = archive.newest(&format!("hello-modules-{KERNEL}")).expect("the package is in the index");
    assert_eq!(package.version, "1.0");
    let got = crate::apt::download(std::slice::from_ref(package), &f.dir.path().join("got"), true).unwrap();
    assert_eq!(fs::read(&got[0]).unwrap(), fs::read(&hello).unwrap());
    // Signed by another key: refused.
    let other = SigningKey::generate("other <o@example.org>", KEY_TIME).unwrap();
    let foreign = f.dir.path().join("foreign");
    f.publish_into(&foreign, Some(&other), &[hello]).unwrap();
    let source = crate::apt::Source { uri: format!("file:{}", foreign.display()), ..source };
    match crate::apt::Archive::from_sources(&[source], &lists, "amd64", true) {
        Ok(_) => panic!("a repository signed by another key was read"),
        Err(e) => assert!(e.to_string().contains("no signature verifies"), "{e}"),
    }
}

/// The exit status `hermod publish` gives for `e`.
fn exit_status(e: RepoError) -> i32 {
    crate::exit::HasExitCode::exit_code(&e).number()
}

/// A directory outside the repository that must stay empty.
fn sentinel(f: &Fixture) -> PathBuf {
    let outside = f.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    outside
}

fn assert_empty(dir: &Path) {
    let left: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "written outside the repository: {left:?}");
}

#[test]
fn pool_or_dists_linked_out_of_the_repository_is_refused_and_nothing_written_there() {
    let f = Fixture::new();
    let hello = f.input("h.deb", &spec("hello", "1.0", b"hello"));
    for linked in ["pool", "dists"] {
        let outside = sentinel(&f);
        let repo = f.dir.path().join(format!("linked-{linked}"));
        fs::create_dir(&repo).unwrap();
        std::os::unix::fs::symlink(&outside, repo.join(linked)).unwrap();
        let e = f.publish_into(&repo, Some(&f.key), std::slice::from_ref(&hello)).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(linked) && text.contains("symbolic link"), "{text}");
        assert_eq!(exit_status(e), 3, "bad input");
        assert_empty(&outside);
        fs::remove_dir(&outside).unwrap();
    }

    // An existing repository whose pool/ became a link: refused before any write.
    let repo = f.repo();
    f.publish(std::slice::from_ref(&hello)).unwrap();
    let outside = sentinel(&f);
    fs::rename(repo.join("pool"), f.dir.path().join("pool-moved")).unwrap();
    std::os::unix::fs::symlink(&outside, repo.join("pool")).unwrap();
    let before = snapshot(&repo.join("dists"));
    let other = f.input("o.deb", &spec("other", "1.0", b"other"));
    let e = f.publish(&[other]).unwrap_err();
    assert!(matches!(e, RepoError::Unsafe(_)), "{e}");
    assert_eq!(snapshot(&repo.join("dists")), before, "no index changed");
    assert_empty(&outside);
}

#[test]
fn a_link_inside_pool_is_refused() {
    let f = Fixture::new();
    let outside = sentinel(&f);
    let repo = f.repo();
    fs::create_dir_all(repo.join("pool/main/h")).unwrap();
    std::os::unix::fs::symlink(&outside, repo.join("pool/main/h/hello")).unwrap();
    let hello = f.input("h.deb", &spec("hello", "1.0", b"hello"));
    let e = f.publish(&[hello]).unwrap_err();
    assert!(e.to_string().contains("pool/main/h/hello"), "{e}");
    assert_eq!(exit_status(e), 3);
    assert_empty(&outside);
    assert!(!repo.join("dists").exists(), "no index written");
}

#[test]
fn linked_release_or_packages_are_refused_without_reading_them() {
    let f = Fixture::new();
    let hello = f.input("h.deb", &spec("hello", "1.0", b"hello"));
    let secret = f.dir.path().join("secret");
    fs::write(&secret, "TOP-SECRET first line of a host file\nDate: Mon, 01 Jan 2024 00:00:00 UTC\n").unwrap();
    for name in ["dists/hermod/Release", "dists/hermod/InRelease", "dists/hermod/main/binary-amd64/Packages"] {
        let repo = f.dir.path().join(format!("r-{}", name.replace('/', "-")));
        f.publish_into(&repo, Some(&f.key), std::slice::from_ref(&hello)).unwrap();
        fs::remove_file(repo.join(name)).unwrap();
        std::os::unix::fs::symlink(&secret, repo.join(name)).unwrap();
        let e = f.publish_into(&repo, Some(&f.key), std::slice::from_ref(&hello)).unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("TOP-SECRET"), "{text}");
        assert!(text.contains(name) && text.contains("symbolic link"), "{text}");
        assert_eq!(exit_status(e), 3);
        assert!(repo.join(name).is_symlink(), "the link is left as it is");
    }
}

#[test]
fn messages_quote_little_of_a_damaged_file() {
    let f = Fixture::new();
    let hello = f.input("h.deb", &spec("hello", "1.0", b"hello"));
    let repo = f.repo();
    f.publish(std::slice::from_ref(&hello)).unwrap();
    let long = "Q".repeat(5000);
    fs::write(repo.join("dists/hermod/Release"), format!("{long}\n{long}\n")).unwrap();
    let text = f.publish(std::slice::from_ref(&hello)).unwrap_err().to_string();
    assert!(text.len() < 600 && text.contains("QQQ"), "{} bytes: {text}", text.len());
    fs::write(repo.join("dists/hermod/main/binary-amd64/Packages"), format!("Package: {long}\nSize: 1\n")).unwrap();
    let text = f.publish(&[hello]).unwrap_err().to_string();
    assert!(text.len() < 600, "{} bytes: {text}", text.len());
}

#[test]
fn an_input_changed_after_it_was_read_is_not_copied_into_the_pool() {
    let f = Fixture::new();
    let path = f.input("a.deb", &spec("hello", "1.0", b"one"));
    let input = super::input::read_input(&path, "main", &crate::bounded::InputLimits::default()).unwrap();
    let mut out = tempfile::tempfile().unwrap();
    super::input::copy_checked(&input, &mut out).unwrap();
    // The same file (the descriptor publish holds), other bytes.
    let other = f.input("b.deb", &spec("hello", "1.0", b"two"));
    fs::write(&path, fs::read(&other).unwrap()).unwrap();
    let e = super::input::copy_checked(&input, &mut tempfile::tempfile().unwrap()).unwrap_err().to_string();
    assert!(e.contains("a.deb") && e.contains("changed while being read"), "{e}");
}

#[path = "lifecycle_tests.rs"]
mod lifecycle;
