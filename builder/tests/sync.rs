//! `hermod sync --once`: the master's loop against the real archive, a real
//! signed repository (`hermod repo keygen`) and real builds of the hello
//! fixture. The shared test store answers most keys from its cache, so the
//! builds cost little; the repository is always a fresh directory.
//!
//! Bookworm's `cloud-amd64` flavour offers 13 kernels: `--dry-run` shows sync
//! wants every one of them (the same kernels and keys as `hermod plan`), and
//! those tests' real runs narrow them with `--kernel` to the two kernels the
//! other tests build. One test builds a whole wanted set with no `--kernel`:
//! trixie's cloud kernels, the fewest of any release and flavour.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// `hermod repo keygen` in `dir`: the secret key file.
fn keygen(dir: &Path) -> PathBuf {
    let prefix = dir.join("repo-key");
    let out = run(&shared_store(), &["repo", "keygen", "--out", prefix.to_str().unwrap()]);
    assert!(out.status.success(), "keygen: {}", stderr(&out));
    prefix.with_extension("key")
}

/// A master's config: `wanted` sources, bookworm's cloud kernels, `[publish]` into `repo`.
fn config(dir: &Path, wanted: &[&Path], repo: &Path, key: &Path) -> PathBuf {
    let wanted: Vec<String> = wanted.iter().map(|p| format!("{:?}", p.to_str().unwrap())).collect();
    let text = format!(
        "role = \"master\"\nwanted = [{}]\nreleases = [\"bookworm\"]\nflavours = [\"cloud-amd64\"]\n\n\
         [publish]\ndir = {:?}\nsign_key = {:?}\n",
        wanted.join(", "),
        repo.to_str().unwrap(),
        key.to_str().unwrap()
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `hermod --config CONFIG sync --once --json ARGS…`: the exit status and the parsed lines.
fn sync(config: &Path, args: &[&str]) -> (Option<i32>, Vec<Value>) {
    let mut all = vec!["--config", config.to_str().unwrap(), "sync", "--once", "--json"];
    all.extend_from_slice(args);
    let out = run(&shared_store(), &all);
    let lines = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line: {l:?}: {e}")))
        .collect();
    (out.status.code(), lines)
}

fn actions<'a>(lines: &'a [Value], action: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["action"] == action).collect()
}

/// Every file under `dir` with its bytes and mtime: a repository left alone keeps all three.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let meta = e.metadata().unwrap();
            (e.path().to_owned(), (std::fs::read(e.path()).unwrap(), meta.modified().unwrap()))
        })
        .collect()
}

/// The packages (name → version) of the repository's amd64 index.
fn packages(repo: &Path) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(repo.join("dists/hermod/main/binary-amd64/Packages")).unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned)).unwrap_or_default()
        };
        out.entry(field("Package")).or_default().push(field("Depends"));
    }
    out
}

#[test]
fn sync_builds_and_publishes_what_is_missing_and_a_second_run_does_nothing() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let hello = testdata("modules/hello");
    let config = config(work.path(), &[&hello], &repo, &keygen(work.path()));
    let (k1, k2) = (kernel(), second_kernel());

    // --dry-run: every kernel of the config's flavour, with the keys plan computes; nothing written.
    let (code, lines) = sync(&config, &["--dry-run"]);
    assert_eq!(code, Some(0));
    let planned: BTreeMap<String, String> = actions(&lines, "build")
        .iter()
        .inspect(|b| assert_eq!(b["outcome"], "planned", "{b}"))
        .map(|b| (b["kernel"].as_str().unwrap().to_owned(), b["key"].as_str().unwrap().to_owned()))
        .collect();
    let plan = run(
        &shared_store(),
        &[
            "--config",
            config.to_str().unwrap(),
            "plan",
            "--modules",
            hello.to_str().unwrap(),
            "--kernels",
            "all:cloud-amd64",
        ],
    );
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan: Value = serde_json::from_str(stdout(&plan).trim()).unwrap();
    let expected: BTreeMap<String, String> = plan["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kernel"].as_str().unwrap().to_owned(), e["key"].as_str().unwrap().to_owned()))
        .collect();
    assert!(expected.len() >= 2 && expected.keys().all(|k| k.ends_with("-cloud-amd64")), "{expected:?}");
    assert_eq!(planned, expected, "sync wants every bookworm cloud kernel, with the keys plan computes");
    let publish = actions(&lines, "publish");
    assert_eq!(publish.len(), 1);
    assert_eq!(publish[0]["dry_run"], true);
    assert_eq!(publish[0]["kernels"].as_array().unwrap().len(), expected.len());
    assert!(!repo.exists(), "a dry run writes nothing");

    // The real run, narrowed to two kernels: both built (or taken from the cache) and published.
    let narrow = ["--kernel", k1.as_str(), "--kernel", k2.as_str()];
    let (code, lines) = sync(&config, &narrow);
    assert_eq!(code, Some(0));
    let builds = actions(&lines, "build");
    assert_eq!(builds.len(), 2, "{lines:?}");
    for b in &builds {
        assert!(b["outcome"] == "built" || b["outcome"] == "cached", "{b}");
        assert_eq!(b["package"], format!("hello-modules-{}", b["kernel"].as_str().unwrap()));
    }
    let publish = actions(&lines, "publish");
    assert_eq!(publish.len(), 1, "one publish for the run: {lines:?}");
    assert_eq!(publish[0]["dry_run"], false);
    assert_eq!(publish[0]["packages"].as_array().unwrap().len(), 2);
    assert!(actions(&lines, "hold").is_empty());
    let index = packages(&repo);
    for k in [&k1, &k2] {
        assert!(index.contains_key(&format!("hello-modules-{k}")), "{index:?}");
    }
    // The metapackage follows the newer of the two kernels.
    let newest = if k1 > k2 { &k1 } else { &k2 };
    let meta = &index["hello-modules-amd64"];
    assert_eq!(meta.len(), 1);
    assert!(meta[0].starts_with(&format!("hello-modules-{newest} ")), "{meta:?}");
    assert!(repo.join("dists/hermod/InRelease").is_file(), "signed with [publish] sign_key");

    // Again: everything is published, so nothing is built and nothing is written.
    let before = snapshot(&repo);
    let (code, lines) = sync(&config, &narrow);
    assert_eq!(code, Some(0));
    assert!(lines.is_empty(), "no action on a second run: {lines:?}");
    assert_eq!(snapshot(&repo), before, "the repository is byte for byte (and mtime) unchanged");
    let (code, lines) = sync(&config, &["--dry-run", "--kernel", &k1]);
    assert_eq!((code, lines.len()), (Some(0), 0), "{lines:?}");
}

#[test]
fn a_failing_module_holds_its_kernel_back_and_the_others_are_published() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let hello = testdata("modules/hello");
    let (k1, k2) = (kernel(), second_kernel());
    // "flaky" builds for k1 and fails for k2: DKMS's MAKE_MATCH picks a failing command there.
    let flaky = work.path().join("flaky");
    std::fs::create_dir(&flaky).unwrap();
    std::fs::copy(hello.join("hello.c"), flaky.join("flaky.c")).unwrap();
    std::fs::write(flaky.join("Makefile"), "obj-m := flaky.o\n").unwrap();
    std::fs::write(
        flaky.join("dkms.conf"),
        format!(
            "PACKAGE_NAME=\"flaky\"\nPACKAGE_VERSION=\"0.1\"\nBUILT_MODULE_NAME[0]=\"flaky\"\n\
             DEST_MODULE_LOCATION[0]=\"/updates/dkms\"\nMAKE_MATCH[1]=\"^{}$\"\nMAKE[1]=\"false\"\n",
            k2.replace('.', "\\.")
        ),
    )
    .unwrap();
    let config = config(work.path(), &[&hello, &flaky], &repo, &keygen(work.path()));

    let (code, lines) = sync(&config, &["--kernel", &k1, "--kernel", &k2]);
    assert_eq!(code, Some(5), "a failed build's status, after the rest was done: {lines:?}");
    let failed: Vec<&Value> = actions(&lines, "build").into_iter().filter(|b| b["outcome"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{lines:?}");
    assert_eq!((failed[0]["kernel"].as_str(), failed[0]["exit_code"].as_i64()), (Some(k2.as_str()), Some(5)));
    assert!(Path::new(failed[0]["log"].as_str().unwrap()).is_file(), "{}", failed[0]);
    let holds = actions(&lines, "hold");
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0]["kernel"], k2.as_str());
    assert_eq!(holds[0]["withheld"], serde_json::json!([format!("hello-modules-{k2}")]));
    let publish = actions(&lines, "publish");
    assert_eq!(publish.len(), 1);
    assert_eq!(publish[0]["kernels"], serde_json::json!([k1]));

    let index = packages(&repo);
    assert!(index.contains_key(&format!("hello-modules-{k1}")) && index.contains_key(&format!("flaky-modules-{k1}")));
    assert!(!index.contains_key(&format!("hello-modules-{k2}")), "k2's set is held back whole: {index:?}");
    assert!(!index.contains_key(&format!("flaky-modules-{k2}")));
    for module in ["hello", "flaky"] {
        let meta = &index[&format!("{module}-modules-amd64")];
        assert!(meta[0].starts_with(&format!("{module}-modules-{k1} ")), "{meta:?}");
    }
}

#[test]
fn sync_without_a_repository_or_without_once_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("config.toml");
    let hello = testdata("modules/hello");
    std::fs::write(&path, format!("wanted = [{:?}]\n", hello.to_str().unwrap())).unwrap();
    let out = run(&shared_store(), &["--config", path.to_str().unwrap(), "sync", "--once"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("[publish]") && err.contains("--repo"), "names the fix: {err}");

    let out = run(&shared_store(), &["--config", path.to_str().unwrap(), "sync"]);
    assert_eq!(out.status.code(), Some(2), "--once is required");
    assert!(stderr(&out).contains("--once"));

    std::fs::write(&path, format!("[publish]\ndir = {:?}\n", work.path().join("repo").to_str().unwrap())).unwrap();
    let out = run(&shared_store(), &["--config", path.to_str().unwrap(), "sync", "--once"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("wanted"), "{}", stderr(&out));
    assert!(!work.path().join("repo").exists());
}

#[test]
fn a_version_published_from_another_build_is_kept_as_it_is() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let hello = testdata("modules/hello");
    let key = keygen(work.path());
    let config = config(work.path(), &[&hello], &repo, &key);
    let k1 = kernel();
    // hello for k1 with another Maintainer: another key, the same package name and version.
    let out = work.path().join("out");
    let other = ["build", hello.to_str().unwrap(), "--kernel", &k1, "--out", out.to_str().unwrap()];
    let built =
        run(&shared_store(), &[&other[..], &["--maintainer", "Another Builder <other@example.invalid>"]].concat());
    assert!(built.status.success(), "{}", stderr(&built));
    let deb = std::fs::read_dir(&out).unwrap().next().unwrap().unwrap().path();
    // `publish` takes the repository and its key from the config's [publish] too.
    let published = run(&shared_store(), &["--config", config.to_str().unwrap(), "publish", deb.to_str().unwrap()]);
    assert!(published.status.success(), "{}", stderr(&published));
    assert!(repo.join("dists/hermod/InRelease").is_file(), "signed with [publish] sign_key");

    let before = snapshot(&repo);
    let (code, lines) = sync(&config, &["--kernel", &k1]);
    assert_eq!(code, Some(0), "the kernel has its package: nothing failed");
    let keeps = actions(&lines, "keep");
    assert_eq!(keeps.len(), 1, "{lines:?}");
    assert_eq!(keeps[0]["package"], format!("hello-modules-{k1}"));
    assert!(actions(&lines, "publish").is_empty(), "{lines:?}");
    assert_eq!(snapshot(&repo), before, "the published build stays, nothing written");
}

/// The whole wanted set, no `--kernel`: trixie's cloud kernels (the fewest of
/// any release and flavour), every one built and published by one run,
/// nothing by the next.
#[test]
fn sync_once_on_a_fresh_repository_publishes_every_wanted_kernel() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let key = keygen(work.path());
    let hello = testdata("modules/hello");
    let config = work.path().join("config.toml");
    let text = format!(
        "role = \"master\"\nwanted = [{:?}]\nreleases = [\"trixie\"]\nflavours = [\"cloud-amd64\"]\n\n\
         [publish]\ndir = {:?}\nsign_key = {:?}\n",
        hello.to_str().unwrap(),
        repo.to_str().unwrap(),
        key.to_str().unwrap()
    );
    std::fs::write(&config, text).unwrap();

    let (code, lines) = sync(&config, &["--dry-run"]);
    assert_eq!(code, Some(0), "{lines:?}");
    let wanted: Vec<String> =
        actions(&lines, "build").iter().map(|b| b["kernel"].as_str().unwrap().to_owned()).collect();
    assert!(
        wanted.len() >= 2 && wanted.iter().all(|k| k.contains("+deb13") && k.ends_with("-cloud-amd64")),
        "{wanted:?}"
    );

    let (code, lines) = sync(&config, &["--jobs", "2"]);
    assert_eq!(code, Some(0), "{lines:?}");
    let index = packages(&repo);
    for k in &wanted {
        assert!(index.contains_key(&format!("hello-modules-{k}")), "{k} not published: {index:?}");
    }
    let newest = wanted.iter().max_by(|a, b| version_cmp(a, b)).unwrap();
    assert!(index["hello-modules-cloud-amd64"][0].starts_with(&format!("hello-modules-{newest} ")), "{index:?}");

    let before = snapshot(&repo);
    let (code, lines) = sync(&config, &[]);
    assert_eq!((code, lines.len()), (Some(0), 0), "a second run does nothing: {lines:?}");
    assert_eq!(snapshot(&repo), before);
}

/// dpkg's order of two kernel releases (`6.12.9+deb13` < `6.12.10+deb13`).
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let ok = std::process::Command::new("dpkg").args(["--compare-versions", a, "lt", b]).status().unwrap().success();
    if a == b {
        std::cmp::Ordering::Equal
    } else if ok {
        std::cmp::Ordering::Less
    } else {
        std::cmp::Ordering::Greater
    }
}
