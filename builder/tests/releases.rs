//! Every Debian release a fleet runs, from this (bookworm) machine's own apt
//! sources: trixie's suites are read from the same mirrors, a kernel's
//! release is the one whose suites offer its headers, and trixie-backports
//! is read when backports are enabled. Real archive, real builds.

mod common;

use std::path::Path;

use common::*;

/// The kernels `hermod plan --kernels KERNELS` lists with `config`, in order.
fn planned(config: &Path, kernels: &str) -> Vec<String> {
    let hello = testdata("modules/hello");
    let out = run(
        &shared_store(),
        &["--config", config.to_str().unwrap(), "plan", "--modules", hello.to_str().unwrap(), "--kernels", kernels],
    );
    assert!(out.status.success(), "plan failed: {}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("the plan is JSON");
    plan["include"].as_array().unwrap().iter().map(|e| e["kernel"].as_str().unwrap().to_owned()).collect()
}

/// A config file in `dir` (named after its text: several may share a dir).
fn config(dir: &Path, text: &str) -> std::path::PathBuf {
    let name: String = text.chars().filter(char::is_ascii_alphanumeric).collect();
    let path = dir.join(format!("config-{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The newest of `kernels` by version (`6.12.118+deb13-amd64` > `6.12.99+deb13-amd64`).
fn newest(kernels: &[String]) -> String {
    let version = |k: &str| -> Vec<u32> { k.split(['.', '+', '-']).map_while(|n| n.parse().ok()).collect() };
    kernels.iter().max_by_key(|k| version(k)).expect("a kernel").clone()
}

fn trixie_kernels(dir: &Path) -> Vec<String> {
    let plain = config(dir, "");
    let all = planned(&plain, "all");
    let trixie: Vec<String> = all.iter().filter(|k| k.contains("+deb13-")).cloned().collect();
    assert!(all.iter().any(|k| k.starts_with("6.1.0-")), "bookworm's kernels are still there: {all:?}");
    assert!(!trixie.is_empty(), "the machine's mirrors offer trixie's kernels too: {all:?}");
    assert!(all.iter().all(|k| k.ends_with("-amd64") && !k.contains("cloud") && !k.contains("-rt-")), "{all:?}");
    trixie
}

#[test]
fn all_spans_every_release_and_flavours_are_chosen_by_glob() {
    let dir = tempfile::tempdir().unwrap();
    trixie_kernels(dir.path());
    let cloud = planned(&config(dir.path(), ""), "all:cloud-amd64");
    assert!(cloud.iter().all(|k| k.ends_with("-cloud-amd64")), "{cloud:?}");
    assert!(cloud.iter().any(|k| k.contains("+deb13-")) && cloud.iter().any(|k| k.contains("+deb12-")), "{cloud:?}");
}

#[test]
fn one_call_builds_for_a_bookworm_and_a_trixie_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let trixie = newest(&trixie_kernels(dir.path()));
    let bookworm = kernel();
    let out = tempfile::tempdir().unwrap();
    let hello = testdata("modules/hello");
    let args = ["build", hello.to_str().unwrap(), "--kernel", &trixie, "--kernel", &bookworm, "--json", "--out"];
    let result = run(&shared_store(), &[&args[..], &[out.path().to_str().unwrap()]].concat());
    assert!(result.status.success(), "{}", stderr(&result));
    let reports: Vec<serde_json::Value> = stdout(&result).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kernels: Vec<&str> = reports.iter().map(|r| r["kernel"].as_str().unwrap()).collect();
    assert_eq!(kernels, [trixie.as_str(), bookworm.as_str()], "in the order asked, across releases");

    // The trixie module: in /usr/lib/modules and xz-compressed as trixie's kernels have them, with its vermagic.
    let deb = reports[0]["deb"].as_str().unwrap();
    let x = tempfile::tempdir().unwrap();
    tool("dpkg-deb", &["-x", deb, x.path().to_str().unwrap()]);
    let ko = x.path().join(format!("usr/lib/modules/{trixie}/updates/dkms/hello.ko.xz"));
    let vermagic = tool("/sbin/modinfo", &["-F", "vermagic", ko.to_str().unwrap()]);
    assert!(vermagic.starts_with(&format!("{trixie} SMP preempt mod_unload modversions")), "{vermagic}");
    let depends = tool("dpkg-deb", &["-f", deb, "Depends"]);
    assert_eq!(depends.trim(), format!("linux-image-{trixie} | linux-image-{trixie}-unsigned"));

    // Each kernel's root is its release's: trixie's gcc-14, bookworm's gcc-12.
    let list = run(&shared_store(), &["rootfs", "list", "--json"]);
    let roots: Vec<serde_json::Value> = stdout(&list).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let root = |k: &str| roots.iter().find(|r| r["kernel"] == k).unwrap_or_else(|| panic!("a root for {k}: {roots:?}"));
    assert_eq!(root(&trixie)["recipe"], "trixie-amd64");
    assert!(root(&trixie)["compiler"].as_str().unwrap().starts_with("gcc-14 "), "{}", root(&trixie));
    assert_eq!(root(&bookworm)["recipe"], "bookworm-amd64");
    assert!(root(&bookworm)["compiler"].as_str().unwrap().starts_with("gcc-12 "), "{}", root(&bookworm));
}

#[test]
fn a_trixie_lock_file_names_its_recipe_and_suites_and_builds_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let trixie = newest(&trixie_kernels(dir.path()));
    let lock = dir.path().join("trixie.lock");
    let store = shared_store();
    let made = run(&store, &["rootfs", "lock", "--kernel", &trixie, "--out", lock.to_str().unwrap()]);
    assert!(made.status.success(), "{}", stderr(&made));
    let text = std::fs::read_to_string(&lock).unwrap();
    for line in ["recipe trixie-amd64", "suite trixie\n", "suite trixie-security", "package gcc-14 "] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    let hello = testdata("modules/hello");
    let build = |extra: &[&str]| -> String {
        let out = tempfile::tempdir().unwrap();
        let args =
            [&["build", hello.to_str().unwrap(), "--json", "--out", out.path().to_str().unwrap()], extra].concat();
        let result = run(&store, &args);
        assert!(result.status.success(), "{}", stderr(&result));
        let report: serde_json::Value = serde_json::from_str(stdout(&result).trim()).unwrap();
        assert_eq!(report["kernel"], trixie.as_str());
        report["sha256"].as_str().unwrap().to_owned()
    };
    assert_eq!(build(&["--lock", lock.to_str().unwrap()]), build(&["--kernel", &trixie]));
}

#[test]
fn a_trixie_backports_kernel_builds_once_backports_are_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let plain = config(dir.path(), "");
    let backports = config(dir.path(), "backports = true\n");
    let without = planned(&plain, "all");
    let with = planned(&backports, "all");
    let only_backports: Vec<String> =
        with.iter().filter(|k| k.contains("+deb13-") && !without.contains(k)).cloned().collect();
    assert!(!only_backports.is_empty(), "trixie-backports offers kernels trixie does not: {with:?}");
    let kernel = newest(&only_backports);

    // Not offered without backports: an error that names what was searched.
    let hello = testdata("modules/hello");
    let out = tempfile::tempdir().unwrap();
    let refused =
        run(&shared_store(), &["build", hello.to_str().unwrap(), "--kernel", &kernel, "--out", "/nonexistent"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("trixie-amd64 (trixie, trixie-updates, trixie-security)"),
        "{}",
        stderr(&refused)
    );

    let built = run(
        &shared_store(),
        &[
            "--config",
            backports.to_str().unwrap(),
            "build",
            hello.to_str().unwrap(),
            "--kernel",
            &kernel,
            "--json",
            "--out",
            out.path().to_str().unwrap(),
        ],
    );
    assert!(built.status.success(), "{}", stderr(&built));
    let report: serde_json::Value = serde_json::from_str(stdout(&built).trim()).unwrap();
    assert!(report["version"].as_str().unwrap().contains("~bpo13"), "the headers are backports': {report}");

    // NotAutomatic: only what the release lacks comes from backports; the
    // tools are trixie's own, as in a trixie root with the plain kernel.
    let lock = |config: &Path, k: &str| -> String {
        let out = run(&shared_store(), &["--config", config.to_str().unwrap(), "rootfs", "lock", "--kernel", k]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let version = |text: &str, name: &str| -> String {
        let prefix = format!("package {name} ");
        let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{name} in\n{text}"));
        line.split(' ').nth(2).unwrap().to_owned()
    };
    let (bp, release) = (lock(&backports, &kernel), lock(&plain, &newest(&trixie_kernels(dir.path()))));
    assert!(bp.contains("suite trixie-backports"), "{bp}");
    for tool in ["make", "libc6", "bash", "binutils"] {
        assert_eq!(version(&bp, tool), version(&release, tool), "{tool} is trixie's, not a backport");
    }
}

#[test]
fn an_unknown_kernel_names_every_release_searched_and_the_nearest() {
    let hello = testdata("modules/hello");
    let out = run(
        &shared_store(),
        &["build", hello.to_str().unwrap(), "--kernel", "6.12.1+deb13-amd64", "--out", "/nonexistent"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    for part in [
        "linux-headers-6.12.1+deb13-amd64",
        "bookworm-amd64 (bookworm",
        "trixie-amd64 (trixie",
        "nearest available: 6.12.",
    ] {
        assert!(err.contains(part), "{part:?} in {err}");
    }
    let nearest = err.split("nearest available: ").nth(1).unwrap();
    assert!(nearest.split(", ").next().unwrap().ends_with("+deb13-amd64"), "trixie's first: {err}");
}

#[test]
fn config_releases_keeps_only_the_releases_named() {
    let dir = tempfile::tempdir().unwrap();
    let only_trixie = config(dir.path(), "releases = [\"trixie\"]\n");
    let hello = testdata("modules/hello");
    let out = tempfile::tempdir().unwrap();
    // The default kernel is then trixie's newest, as its linux-headers-amd64 says.
    let built = run(
        &shared_store(),
        &[
            "--config",
            only_trixie.to_str().unwrap(),
            "build",
            hello.to_str().unwrap(),
            "--json",
            "--out",
            out.path().to_str().unwrap(),
        ],
    );
    assert!(built.status.success(), "{}", stderr(&built));
    let report: serde_json::Value = serde_json::from_str(stdout(&built).trim()).unwrap();
    assert!(report["kernel"].as_str().unwrap().ends_with("+deb13-amd64"), "{report}");
    // A bookworm kernel is then no one's.
    let refused = run(
        &shared_store(),
        &[
            "--config",
            only_trixie.to_str().unwrap(),
            "build",
            hello.to_str().unwrap(),
            "--kernel",
            &kernel(),
            "--out",
            "/nonexistent",
        ],
    );
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(!stderr(&refused).contains("bookworm-amd64 ("), "{}", stderr(&refused));
    // An unknown release is a config error naming what hermod has.
    let buster = config(dir.path(), "releases = [\"buster\"]\n");
    let bad = run(&shared_store(), &["--config", buster.to_str().unwrap(), "build", hello.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(3), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("buster") && stderr(&bad).contains("bookworm, trixie"), "{}", stderr(&bad));
}
