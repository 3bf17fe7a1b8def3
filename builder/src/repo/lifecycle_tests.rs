//! Revisions, dry runs, `remove` and `prune` on real .debs written by
//! hermod's package writer (the fixtures of `tests.rs`; apt itself reads the
//! results in `builder/tests/repo_lifecycle.rs`).

use std::collections::BTreeSet;

use super::*;

fn spec_for(kernel: &str, version: &str, contents: &[u8]) -> DebSpec {
    let mut s = spec("hello", version, contents);
    s.package = format!("hello-modules-{kernel}");
    s.kernel_release = kernel.into();
    s.depends = format!("linux-image-{kernel}");
    s.files[0].install_dir = format!("lib/modules/{kernel}/updates/dkms");
    s
}

fn packages(repo: &Path) -> String {
    fs::read_to_string(repo.join("dists/hermod/main/binary-amd64/Packages")).unwrap()
}

fn ids(repo: &Path) -> Vec<String> {
    index::parse_packages(&packages(repo), "P").unwrap().iter().map(Entry::id).collect()
}

fn remover<'a>(repo: &'a Path, key: Option<&'a SigningKey>) -> Remove<'a> {
    Remove {
        repo,
        suite: DEFAULT_SUITE,
        component: DEFAULT_COMPONENT,
        key,
        source_date_epoch: None,
        now: NOW,
        dry_run: false,
    }
}

fn revising(f: &Fixture, debs: &[PathBuf], dry_run: bool) -> Result<Report, RepoError> {
    let repo = f.repo();
    let p = Publish { repo: &repo, key: Some(&f.key), now: NOW, revision: true, dry_run, ..Publish::default() };
    publish(&p, debs)
}

#[test]
fn other_bytes_become_a_revision_and_the_same_bytes_again_mint_nothing() {
    let f = Fixture::new();
    let first = f.input("first.deb", &spec("hello", "1.0-1", b"first build"));
    f.publish(std::slice::from_ref(&first)).unwrap();
    let other = f.input("other.deb", &spec("hello", "1.0-1", b"another build"));
    let e = f.publish(std::slice::from_ref(&other)).unwrap_err().to_string();
    assert!(e.contains("--revision"), "the refusal names the way forward: {e}");

    let report = revising(&f, std::slice::from_ref(&other), false).unwrap();
    let id = format!("hello-modules-{KERNEL} 1.0-1 (amd64)");
    assert_eq!(report.revised, [Revised { original: id.clone(), version: "1.0-1+hermod1".into(), new: true }]);
    let pool = format!("pool/main/h/hello/hello-modules-{KERNEL}_1.0-1+hermod1_amd64.deb");
    assert_eq!(report.packages, [(pool.clone(), true)]);
    let listed = ids(&f.repo());
    assert!(listed.contains(&id) && listed.contains(&format!("hello-modules-{KERNEL} 1.0-1+hermod1 (amd64)")));
    let revised = fs::read(f.repo().join(&pool)).unwrap();
    let control = crate::apt::debfile::control_text_of(Path::new("r.deb"), &revised).unwrap();
    let original = crate::apt::debfile::control_text_of(&other, &fs::read(&other).unwrap()).unwrap();
    assert_eq!(control, original.replace("Version: 1.0-1\n", "Version: 1.0-1+hermod1\n"));
    // The metapackage points at (and orders by) the revision.
    assert!(packages(&f.repo()).contains("Depends: hello-modules-6.1.0-99-amd64 (>= 1.0-1+hermod1)\n"));
    assert!(packages(&f.repo()).contains("Version: 6.1.0.99+1.0-1+hermod1\n"));

    // The same input again: its revision is found, nothing is written.
    let before = snapshot(&f.repo());
    let again = revising(&f, std::slice::from_ref(&other), false).unwrap();
    assert_eq!(again.revised, [Revised { original: id.clone(), version: "1.0-1+hermod1".into(), new: false }]);
    assert!(again.written.is_empty(), "{:?}", again.written);
    assert_eq!(snapshot(&f.repo()), before);
    // The original bytes are still a no-op, with or without --revision.
    assert!(revising(&f, std::slice::from_ref(&first), false).unwrap().revised.is_empty());
    // A third build is +hermod2.
    let third = f.input("third.deb", &spec("hello", "1.0-1", b"third build"));
    let report = revising(&f, &[third], false).unwrap();
    assert_eq!(report.revised[0].version, "1.0-1+hermod2");
}

#[test]
fn a_dry_run_decides_everything_and_writes_nothing() {
    let f = Fixture::new();
    let first = f.input("first.deb", &spec("hello", "1.0-1", b"first build"));
    let fresh = f.dir.path().join("fresh");
    let p = Publish { repo: &fresh, key: Some(&f.key), now: NOW, dry_run: true, ..Publish::default() };
    let report = publish(&p, std::slice::from_ref(&first)).unwrap();
    assert!(report.dry_run && !fresh.exists(), "not even DIR is made");
    assert!(report.written.iter().any(|w| w.ends_with("InRelease")), "{:?}", report.written);
    assert_eq!(report.metapackages.len(), 1);

    f.publish(std::slice::from_ref(&first)).unwrap();
    let before = snapshot(&f.repo());
    let other = f.input("other.deb", &spec("hello", "1.0-1", b"another build"));
    let report = revising(&f, &[other], true).unwrap();
    assert_eq!(report.revised[0].version, "1.0-1+hermod1");
    assert!(!report.written.is_empty());
    assert_eq!(snapshot(&f.repo()), before, "a dry run wrote nothing");
}

#[test]
fn remove_takes_packages_out_and_the_metapackage_follows_without_going_down() {
    let f = Fixture::new();
    let old = f.input("old.deb", &spec_for("6.1.0-9-amd64", "1.0-1", b"old"));
    let new = f.input("new.deb", &spec_for("6.1.0-10-amd64", "1.0-1", b"new"));
    f.publish(&[old]).unwrap();
    f.publish(&[new]).unwrap();
    let repo = f.repo();
    let meta_new = "hello-modules-amd64 6.1.0.10+1.0-1 (amd64)".to_owned();
    assert!(ids(&repo).contains(&meta_new));
    let before = snapshot(&repo);

    // Errors change nothing.
    for (what, expect) in [
        ("hello-modules-6.1.0-8-amd64", "is not published"),
        ("hello-modules-6.1.0-9-amd64=2.0", "(published: 1.0-1)"),
        ("hello-modules-amd64", "is a metapackage"),
    ] {
        let e = remove(&remover(&repo, Some(&f.key)), &[what.parse().unwrap()]).unwrap_err();
        assert!(e.to_string().contains(expect), "{what}: {e}");
        assert_eq!(crate::exit::HasExitCode::exit_code(&e), crate::exit::Code::Refused);
    }
    let e = remove(&remover(&repo, None), &["hello-modules-6.1.0-10-amd64".parse().unwrap()]).unwrap_err();
    assert!(matches!(e, RepoError::RemoveWouldUnsign { .. }), "{e}");
    assert!("Bad_Name".parse::<Removal>().is_err());
    assert_eq!(snapshot(&repo), before);

    // A dry run says what would go.
    let dry = Remove { dry_run: true, ..remover(&repo, Some(&f.key)) };
    let report = remove(&dry, &["hello-modules-6.1.0-10-amd64".parse().unwrap()]).unwrap();
    assert_eq!(report.removed.len(), 2, "{:?}", report.removed);
    assert_eq!(snapshot(&repo), before);

    // The newest kernel's package goes: its pool file, its metapackage; a new one above it points back.
    let pool = repo.join("pool/main/h/hello/hello-modules-6.1.0-10-amd64_1.0-1_amd64.deb");
    assert!(pool.exists());
    let report = remove(&remover(&repo, Some(&f.key)), &["hello-modules-6.1.0-10-amd64".parse().unwrap()]).unwrap();
    assert_eq!(report.removed, ["hello-modules-6.1.0-10-amd64 1.0-1 (amd64)".to_owned(), meta_new.clone()]);
    assert!(!pool.exists());
    let listed = ids(&repo);
    assert!(!listed.iter().any(|id| id.contains("6.1.0-10") || *id == meta_new), "{listed:?}");
    let back = "6.1.0.10+1.0-1+really6.1.0.9+1.0-1";
    assert!(listed.contains(&format!("hello-modules-amd64 {back} (amd64)")), "{listed:?}");
    let v = |s: &str| crate::apt::version::Version::parse(s).unwrap();
    assert!(v(back) > v("6.1.0.10+1.0-1"), "the metapackage version never goes down");
    assert!(packages(&repo).contains("Depends: hello-modules-6.1.0-9-amd64 (>= 1.0-1)\n"));
    // The signature chain holds: InRelease verifies with the key and names the new index.
    let release_text = fs::read_to_string(repo.join("dists/hermod/Release")).unwrap();
    assert!(fs::read_to_string(repo.join("dists/hermod/InRelease")).unwrap().contains(&release_text));
    // A republish changes nothing (the metapackage is current).
    let same = f.input("old2.deb", &spec_for("6.1.0-9-amd64", "1.0-1", b"old"));
    assert!(f.publish(&[same]).unwrap().written.is_empty());
    // A newer kernel's natural version passes it again.
    let newer = f.input("newer.deb", &spec_for("6.1.0-11-amd64", "1.0-1", b"newer"));
    f.publish(&[newer]).unwrap();
    assert!(ids(&repo).contains(&"hello-modules-amd64 6.1.0.11+1.0-1 (amd64)".to_owned()));

    // Removing every module package of the flavour removes its metapackages too.
    let all: Vec<Removal> =
        ["hello-modules-6.1.0-9-amd64", "hello-modules-6.1.0-11-amd64"].iter().map(|s| s.parse().unwrap()).collect();
    remove(&remover(&repo, Some(&f.key)), &all).unwrap();
    let left = ids(&repo);
    assert!(!left.iter().any(|id| id.starts_with("hello-modules-amd64 6.1.0.11")), "{left:?}");
    assert!(!left.iter().any(|id| id.starts_with("hello-modules-6")), "{left:?}");
}

#[test]
fn prune_keeps_offered_kernels_and_the_newest_n() {
    let f = Fixture::new();
    let debs: Vec<PathBuf> = [1, 2, 3, 4]
        .iter()
        .map(|n| {
            f.input(&format!("{n}.deb"), &spec_for(&format!("6.1.0-{n}-amd64"), "1.0-1", format!("{n}").as_bytes()))
        })
        .collect();
    for deb in &debs {
        f.publish(std::slice::from_ref(deb)).unwrap();
    }
    let repo = f.repo();
    let published = state_of(&repo);
    let offered: BTreeSet<String> = ["6.1.0-1-amd64".to_owned()].into();
    let chosen = remove::prune_selection(&published, &offered, 2);
    let expect: BTreeSet<String> = [
        "hello-modules-6.1.0-2-amd64 1.0-1 (amd64)",
        // Superseded metapackage versions.
        "hello-modules-amd64 6.1.0.1+1.0-1 (amd64)",
        "hello-modules-amd64 6.1.0.2+1.0-1 (amd64)",
        "hello-modules-amd64 6.1.0.3+1.0-1 (amd64)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(chosen, expect);
    let p = Prune { repo: remover(&repo, Some(&f.key)), keep: 2, offered: &offered };
    let report = prune(&p).unwrap();
    assert_eq!(report.removed.iter().cloned().collect::<BTreeSet<_>>(), expect);
    assert!(report.metapackages.is_empty(), "the newest kernel is kept: the metapackage stays");
    let left: BTreeSet<String> = ids(&repo).into_iter().collect();
    assert_eq!(left.len(), 4, "{left:?}");
    // Nothing more to prune: nothing written.
    assert!(prune(&p).unwrap().written.is_empty());
}

fn state_of(repo: &Path) -> BTreeMap<String, Entry> {
    index::parse_packages(&packages(repo), "P").unwrap().into_iter().map(|e| (e.id(), e)).collect()
}

/// Pool paths carry no suite: a file two suites list stays when one suite
/// removes it, and another suite's file never gets other bytes.
#[test]
fn suites_sharing_the_pool_keep_each_others_files() {
    let f = Fixture::new();
    let repo = f.repo();
    let deb = f.input("a.deb", &spec("hello", "1.0-1", b"one build"));
    for suite in [DEFAULT_SUITE, "staging"] {
        let p = Publish { repo: &repo, suite, key: Some(&f.key), now: NOW, ..Publish::default() };
        publish(&p, std::slice::from_ref(&deb)).unwrap();
    }
    let pool = format!("pool/main/h/hello/hello-modules-{KERNEL}_1.0-1_amd64.deb");
    let staging = Remove { suite: "staging", ..remover(&repo, Some(&f.key)) };
    remove(&staging, &[format!("hello-modules-{KERNEL}").parse().unwrap()]).unwrap();
    assert!(repo.join(&pool).is_file(), "the hermod suite still lists it");
    assert!(ids(&repo).contains(&format!("hello-modules-{KERNEL} 1.0-1 (amd64)")));

    // Other bytes under that name and version, into the now empty staging suite: refused.
    let other = f.input("b.deb", &spec("hello", "1.0-1", b"another build"));
    let p = Publish { repo: &repo, suite: "staging", key: Some(&f.key), now: NOW, ..Publish::default() };
    let e = publish(&p, std::slice::from_ref(&other)).unwrap_err();
    assert!(matches!(e, RepoError::Immutable { .. }), "{e}");
    assert_eq!(fs::read(repo.join(&pool)).unwrap(), fs::read(&deb).unwrap(), "the file is unchanged");
}
