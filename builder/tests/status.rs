//! `hermod status` against real builds, a real published repository and a
//! real dpkg:
//!
//! - a master: hello built into the shared store (then published into a
//!   fresh repository), a module that does not compile (`testdata/bad/make-fails`),
//!   one BUILD_EXCLUSIVE_KERNEL excludes (`testdata/modules/exclusive`), and a
//!   changed copy of hello never built: `status --json` says cached, then
//!   published / failed (with a log that exists) / skipped / missing, the text
//!   table says the same, and the exit status is 10 for the missing one.
//! - a farm machine, in a throwaway Debian root with the test kernel's image
//!   installed: `status` says what `dpkg-query -W` says (the installed
//!   kernels; the module package installed with its version), `available`
//!   before it is installed, `pending` after `hermod prepare`, and `missing`
//!   (exit 10) for a kernel nothing has a package for.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::debroot::{DebRoot, DebRootSpec};
use common::*;
use serde_json::Value;

fn status_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", stdout(out)))
}

fn run_with_config(config: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(hermod());
    cmd.args(args)
        .env("HERMOD_STORE", shared_store())
        .env("HERMOD_PACKAGE_CACHE", package_cache())
        .env("HERMOD_CONFIG", config)
        .arg("-q");
    run_logged(&mut cmd, args)
}

fn entry<'a>(report: &'a Value, source: &Path) -> &'a Value {
    let source = source.to_str().unwrap();
    let found: Vec<&Value> = report["entries"].as_array().unwrap().iter().filter(|e| e["source"] == source).collect();
    assert_eq!(found.len(), 1, "one entry for {source}: {report:#}");
    found[0]
}

/// A signed repository key pair under `dir`: (secret key file, public key file).
fn repo_key(dir: &Path) -> (PathBuf, PathBuf) {
    let prefix = dir.join("repo-key");
    let keygen = Command::new(hermod()).args(["repo", "keygen", "--out", prefix.to_str().unwrap()]).output().unwrap();
    assert!(keygen.status.success(), "keygen: {}", stderr(&keygen));
    (PathBuf::from(format!("{}.key", prefix.display())), PathBuf::from(format!("{}.asc", prefix.display())))
}

fn publish(repo: &Path, key: &Path, deb: &str) {
    let out = Command::new(hermod())
        .args(["publish", "--repo", repo.to_str().unwrap(), "--sign-key", key.to_str().unwrap(), deb])
        .env_remove("HERMOD_REPO_SIGN_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "publish: {}", stderr(&out));
}

fn build_hello(out_dir: &Path) -> String {
    let built = run(
        &shared_store(),
        &[
            "build",
            testdata("modules/hello").to_str().unwrap(),
            "--kernel",
            &kernel(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(built.status.success(), "building hello: {}", stderr(&built));
    stdout(&built).trim().to_owned()
}

#[test]
fn a_master_says_published_cached_failed_skipped_and_missing() {
    let dir = tempfile::tempdir().unwrap();
    let k = kernel();
    let hello = testdata("modules/hello");
    let broken = testdata("bad/make-fails");
    let exclusive = testdata("modules/exclusive");
    // hello with one more line: another key, never built.
    let changed = dir.path().join("hello-changed");
    copy_tree(&hello, &changed);
    let mut c = fs::read_to_string(changed.join("hello.c")).unwrap();
    c.push_str("\n/* changed: another cache key */\n");
    fs::write(changed.join("hello.c"), c).unwrap();

    let deb = build_hello(&dir.path().join("out"));
    let failed =
        run(&shared_store(), &["build", broken.to_str().unwrap(), "--kernel", &k, "--out", "/nonexistent-out"]);
    assert_eq!(failed.status.code(), Some(5), "make-fails fails to compile");
    let skipped = run(
        &shared_store(),
        &["build", exclusive.to_str().unwrap(), "--kernel", &k, "--out", dir.path().join("out").to_str().unwrap()],
    );
    assert_eq!(skipped.status.code(), Some(77), "exclusive is skipped for {k}");

    let repo = dir.path().join("repo");
    let config = dir.path().join("config.toml");
    let wanted: Vec<String> =
        [&hello, &broken, &exclusive, &changed].iter().map(|p| format!("{:?}", p.to_str().unwrap())).collect();
    fs::write(
        &config,
        format!("role = \"master\"\nwanted = [{}]\n[publish]\ndir = {:?}\n", wanted.join(", "), repo.to_str().unwrap()),
    )
    .unwrap();

    // Built, not yet published: cached (and lacking: a repository is configured).
    let out = run_with_config(&config, &["status", "--json", "--kernel", &k]);
    assert_eq!(out.status.code(), Some(10), "something wanted is missing");
    let report = status_json(&out);
    assert_eq!((report["role"].as_str(), report["ok"].as_bool()), (Some("master"), Some(false)));
    let row = entry(&report, &hello);
    assert_eq!((row["state"].as_str(), row["cached_in"].as_str()), (Some("cached"), Some("local")), "{row}");
    assert_eq!(row["package"], format!("hello-modules-{k}"));
    assert_eq!(row["kernel"], k.as_str());
    assert_eq!(row["architecture"], "amd64");
    assert_eq!(report["lacking"], 3, "cached-not-published, failed and missing: {report:#}");

    let (secret, _) = repo_key(dir.path());
    publish(&repo, &secret, &deb);
    let out = run_with_config(&config, &["status", "--json", "--kernel", &k]);
    assert_eq!(out.status.code(), Some(10), "the changed copy and the broken module are still missing");
    let report = status_json(&out);
    assert_eq!(report["lacking"], 2, "{report:#}");

    let row = entry(&report, &hello);
    assert_eq!(row["state"], "published", "{row}");
    let deb_version = tool("dpkg-deb", &["-f", &deb, "Version"]);
    assert_eq!(row["version"].as_str(), Some(deb_version.trim()));
    let key = row["key"].as_str().unwrap().to_owned();
    assert_eq!(tool("dpkg-deb", &["-f", &deb, "X-Hermod-Key"]).trim(), key, "the key a build of hello has");

    let row = entry(&report, &broken);
    assert_eq!((row["state"].as_str(), row["exit_code"].as_i64()), (Some("failed"), Some(5)), "{row}");
    let log = PathBuf::from(row["log"].as_str().expect("a failure names its log"));
    assert!(log.is_file(), "{} exists", log.display());
    assert!(fs::read_to_string(&log).unwrap().contains("error"), "the log holds the compiler's error");
    assert!(row["message"].as_str().unwrap().contains("build"), "{row}");
    let failed_key = row["key"].as_str().unwrap();
    assert!(shared_store().join("failed").join(failed_key).is_file(), "the record is in the store's failed/");

    let row = entry(&report, &exclusive);
    assert_eq!(row["state"], "skipped", "{row}");
    assert!(row["message"].as_str().unwrap().contains("BUILD_EXCLUSIVE_KERNEL"), "{row}");

    let row = entry(&report, &changed);
    assert_eq!(row["state"], "missing", "{row}");
    assert_ne!(row["key"].as_str().unwrap(), key, "another key");
    assert_eq!(
        row["repository_version"].as_str(),
        Some(deb_version.trim()),
        "the repository has hello from another build"
    );

    // The text table says the same.
    let out = run_with_config(&config, &["status", "--kernel", &k]);
    assert_eq!(out.status.code(), Some(10));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["MODULE", "KERNEL", "ARCH", "STATE", "DETAIL"]);
    let line_of = |module: &str, state: &str| {
        lines.iter().any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.len() >= 4 && words[0] == module && words[1] == k && words[3] == state
        })
    };
    assert!(line_of("hello", "published") && line_of("hello", "missing"), "{text}");
    assert!(line_of("broken", "failed") && line_of("exclusive", "skipped"), "{text}");
    assert!(text.contains(&format!("(log: {})", log.display())), "{text}");
    assert!(stderr(&out).contains("2 wanted module package(s) missing for"), "{}", stderr(&out));

    // Only what is there: exit 0.
    fs::write(
        &config,
        format!(
            "role = \"master\"\nwanted = [{}, {}]\n[publish]\ndir = {:?}\n",
            wanted[0],
            wanted[2],
            repo.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = run_with_config(&config, &["status", "--json", "--kernel", &k]);
    assert_eq!(out.status.code(), Some(0), "published and skipped are all that is wanted");
    assert_eq!(status_json(&out)["ok"], true);
}

#[test]
fn a_master_with_nothing_wanted_is_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    fs::write(&config, "role = \"master\"\nwanted = [{ package = \"hello\" }]\n").unwrap();
    let out = run_with_config(&config, &["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("no wanted module") && stderr(&out).contains("with a source"), "{}", stderr(&out));
}

fn farm_root(repo: &Path, public_key: &Path) -> DebRoot {
    let mut root = DebRoot::new(&DebRootSpec::farm(&kernel()));
    root.copy_in(&hermod(), "/usr/bin/hermod");
    root.ro_bind(repo, "/srv/repo");
    root.copy_in(public_key, "/etc/apt/keyrings/hermod.asc");
    root.write(
        "/etc/hermod/config.toml",
        "role = \"farm\"\nwanted = [{ package = \"hello\" }]\n[repository]\nuri = \"file:/srv/repo\"\nsigned_by = \"/etc/apt/keyrings/hermod.asc\"\n",
    );
    root
}

fn farm_status(root: &DebRoot, args: &str) -> (Option<i32>, Value) {
    let out = root.sh(&format!("hermod status --json {args}"));
    (out.status.code(), status_json(&out))
}

#[test]
fn a_farm_machine_agrees_with_dpkg() {
    let dir = tempfile::Builder::new().prefix("hermod-status-").tempdir_in("/var/tmp").unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let k = kernel();
    let package = format!("hello-modules-{k}");
    let deb = build_hello(&dir.path().join("out"));
    let repo = dir.path().join("repo");
    let (secret, public) = repo_key(dir.path());
    publish(&repo, &secret, &deb);
    let root = farm_root(&repo, &public);

    // The kernels are dpkg's.
    let images = root.sh_ok("dpkg-query -W -f '${db:Status-Status} ${Package}\\n' 'linux-image-*'");
    assert!(images.contains(&format!("installed linux-image-{k}")), "{images}");
    let running = root.sh_ok("uname -r").trim().to_owned();

    // Not installed yet: the repository offers it.
    let (code, report) = farm_status(&root, "");
    assert_eq!(code, Some(10), "{report:#}");
    assert_eq!(report["role"], "farm");
    assert_eq!(report["running_kernel"], running.as_str());
    assert_eq!(report["installed_kernels"], serde_json::json!([k]));
    assert_eq!(report["repository"]["state"], "read", "{report:#}");
    let row_for = |report: &Value, kernel: &str| -> Value {
        report["entries"].as_array().unwrap().iter().find(|e| e["kernel"] == kernel).cloned().unwrap()
    };
    let row = row_for(&report, &k);
    assert_eq!((row["state"].as_str(), row["package"].as_str()), (Some("available"), Some(package.as_str())), "{row}");
    assert_eq!(row["checked"], true, "the newest installed kernel is checked");

    // Installed with dpkg: status says what dpkg-query says.
    root.copy_in(Path::new(&deb), "/root/hello.deb");
    root.sh_ok("dpkg -i /root/hello.deb");
    let dpkg_version = root.sh_ok(&format!("dpkg-query -W -f '${{Version}}' {package}"));
    let (code, report) = farm_status(&root, &format!("--kernel {k}"));
    assert_eq!(code, Some(0), "everything wanted for {k} is installed: {report:#}");
    let row = row_for(&report, &k);
    assert_eq!((row["state"].as_str(), row["version"].as_str()), (Some("installed"), Some(dpkg_version.trim())));
    assert_eq!(report["ok"], true);
    let text = root.sh_ok(&format!("hermod status --kernel {k}"));
    assert!(
        text.lines().any(|l| l.starts_with("hello") && l.contains("installed") && l.contains(dpkg_version.trim())),
        "{text}"
    );

    // Purged, then prepared (the image hook's command): pending until install-pending.
    root.sh_ok(&format!("dpkg --purge {package}"));
    root.sh_ok(&format!("hermod prepare --kernel {k}"));
    let (code, report) = farm_status(&root, &format!("--kernel {k}"));
    assert_eq!(code, Some(10), "pending is not installed yet");
    let row = row_for(&report, &k);
    assert_eq!(row["state"], "pending", "{row}");
    assert!(row["deb"].as_str().unwrap().starts_with(&format!("/var/lib/hermod/pending/{package}_")), "{row}");

    // A kernel nothing has a package for: missing, exit 10, and said on stderr.
    let other = "6.1.0-1-amd64";
    let out = root.sh(&format!("hermod status --json --kernel {other}"));
    assert_eq!(out.status.code(), Some(10));
    let report = status_json(&out);
    assert_eq!(row_for(&report, other)["state"], "missing");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("missing for {other}")));

    // By default the running kernel is checked too (the repository has nothing for it
    // unless it is the test kernel).
    let (code, report) = farm_status(&root, "");
    if running != k {
        assert_eq!(code, Some(10));
        let row = row_for(&report, &running);
        assert_eq!((row["state"].as_str(), row["checked"].as_bool()), (Some("missing"), Some(true)), "{row}");
    }
    let checked = report["checked_kernels"].as_array().unwrap();
    assert!(checked.contains(&Value::from(k.as_str())), "the newest installed kernel is checked: {checked:?}");
}
