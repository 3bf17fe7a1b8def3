//! Unit tests of `status.rs`: the farm view over a recording dpkg, the
//! table, the JSON and the verdict.

use std::fs;

use super::*;
use crate::farm::system::recording::Recording;

fn wanted(base: &str) -> Wanted {
    Wanted { label: format!("pkg:{base}-dkms"), base: base.into(), source: Some(format!("pkg:{base}-dkms")) }
}

fn system(running: &str, kernels: &[&str]) -> Recording {
    Recording { kernel: running.into(), kernels: kernels.iter().map(|k| k.to_string()).collect(), ..Default::default() }
}

fn nothing_offered(_: &str) -> Option<String> {
    None
}

#[test]
fn the_farm_view_follows_dpkg_pending_queue_and_repository() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path());
    let (old, new, running) = ("6.1.0-9-amd64", "6.1.0-10-amd64", "6.1.0-9-amd64");
    let sys = system(running, &[new, old]);
    sys.installed.borrow_mut().insert(format!("a-modules-{old}"), "1+6.1".into());
    fs::create_dir_all(state.pending()).unwrap();
    fs::write(state.pending().join(format!("a-modules-{new}_1+6.1_amd64.deb")), b"!<arch>\n").unwrap();
    fs::create_dir_all(state.queue()).unwrap();
    fs::write(state.queue().join(new), "pkg:b-dkms\n").unwrap();
    let offered = |p: &str| (p == format!("c-modules-{new}")).then(|| "2+6.1".to_owned());
    let all = [wanted("a"), wanted("b"), wanted("c")];
    let inputs = FarmInputs {
        wanted: &all,
        state: &state,
        kernels: &[],
        repository: RepositoryState::Read("file:/srv hermod/main".into()),
        offered: &offered,
    };
    let report = farm(&sys, &inputs).unwrap();
    assert_eq!(report.installed_kernels, [old, new], "oldest first, by version, not by text");
    assert_eq!(report.checked_kernels, [running, new]);
    let states: Vec<(&str, &str, FarmState)> =
        report.entries.iter().map(|r| (r.module.as_str(), r.kernel.as_str(), r.state)).collect();
    assert_eq!(
        states,
        [
            ("a", old, FarmState::Installed),
            ("b", old, FarmState::Missing),
            ("c", old, FarmState::Missing),
            ("a", new, FarmState::Pending),
            ("b", new, FarmState::Queued),
            ("c", new, FarmState::Available),
        ]
    );
    assert_eq!(report.entries[0].version.as_deref(), Some("1+6.1"));
    assert_eq!(report.entries[5].version.as_deref(), Some("2+6.1"));
    assert_eq!(report.lacking().len(), 5);
    let e = report.verdict().unwrap_err();
    assert_eq!(crate::exit::HasExitCode::exit_code(&e).number(), 10);
    assert!(e.to_string().contains(&format!("5 wanted module package(s) missing for {new}, {old}")), "{e}");

    let json = report.json();
    assert_eq!(json["role"], "farm");
    assert_eq!(json["ok"], false);
    assert_eq!(json["running_kernel"], running);
    assert_eq!(json["entries"][3]["state"], "pending");
    assert!(json["entries"][3]["deb"].as_str().unwrap().ends_with("_amd64.deb"));
    assert_eq!(json["entries"][0]["checked"], true);
    assert_eq!(json["repository"]["state"], "read");

    let text = report.table();
    assert!(text.starts_with(&format!("running kernel: {running}\ninstalled kernels: {old} {new}\n")), "{text}");
    let row = text.lines().find(|l| l.starts_with("c ") && l.contains(new)).unwrap();
    assert!(row.contains("available") && row.contains("2+6.1"), "{row}");
}

#[test]
fn kernels_asked_for_are_the_ones_checked_and_an_unreadable_repository_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path());
    let k = "6.1.0-9-amd64";
    let sys = system("6.12.0-1-amd64", &[k]);
    sys.installed.borrow_mut().insert(format!("a-modules-{k}"), "1".into());
    let asked = [k.to_owned()];
    let one = [wanted("a")];
    let inputs = FarmInputs {
        wanted: &one,
        state: &state,
        kernels: &asked,
        repository: RepositoryState::Unreadable("connection refused".into()),
        offered: &nothing_offered,
    };
    let report = farm(&sys, &inputs).unwrap();
    assert_eq!(report.entries.len(), 1, "only the kernel asked for");
    assert!(report.verdict().is_ok(), "everything wanted for the asked kernel is installed");
    assert_eq!(report.json()["ok"], true);

    // Not installed, and the repository could not be read: unknown, and lacking.
    let other = ["6.1.0-10-amd64".to_owned()];
    let report = farm(&sys, &FarmInputs { kernels: &other, repository: inputs.repository.clone(), ..inputs }).unwrap();
    assert_eq!(report.entries[0].state, FarmState::Unknown);
    assert!(report.verdict().is_err());
    assert!(report.table().contains("unreadable: connection refused"));

    let bad = ["../etc".to_owned()];
    let e = farm(&sys, &FarmInputs { kernels: &bad, ..inputs }).unwrap_err();
    assert!(e.to_string().starts_with("--kernel \"../etc\" is not a kernel release"), "{e}");
    assert_eq!(crate::exit::HasExitCode::exit_code(&e).number(), 2);
}

#[test]
fn the_running_kernel_counts_even_when_dpkg_has_no_image_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path());
    let sys = system("6.1.0-9-amd64", &[]);
    let one = [wanted("a")];
    let inputs = FarmInputs {
        wanted: &one,
        state: &state,
        kernels: &[],
        repository: RepositoryState::None,
        offered: &nothing_offered,
    };
    let report = farm(&sys, &inputs).unwrap();
    assert_eq!(report.checked_kernels, ["6.1.0-9-amd64"]);
    assert_eq!(report.entries[0].state, FarmState::Missing);
    assert!(report.table().contains("installed kernels: none"));
}

fn master_row(kernel: &str, state: MasterState) -> MasterRow {
    MasterRow {
        module: "hello".into(),
        source: "/src/hello".into(),
        kernel: kernel.into(),
        architecture: "amd64".into(),
        key: Some("k".repeat(64)),
        state,
        package: Some(format!("hello-modules-{kernel}")),
        version: Some("0.1+6.1".into()),
        cached_in: (state == MasterState::Cached).then_some(crate::plan::Cached::Local),
        exit_code: (state == MasterState::Failed).then_some(5),
        message: (state == MasterState::Failed).then(|| "make failed".into()),
        log: (state == MasterState::Failed).then(|| "/store/logs/x.log".into()),
        repository_version: None,
    }
}

#[test]
fn a_master_lacks_what_is_missing_or_failed_and_with_a_repository_what_is_only_cached() {
    let mut report = MasterReport {
        repository: None,
        kernels: vec!["6.1.0-9-amd64".into()],
        entries: vec![
            master_row("6.1.0-9-amd64", MasterState::Published),
            master_row("6.1.0-9-amd64", MasterState::Cached),
            master_row("6.1.0-9-amd64", MasterState::Skipped),
        ],
    };
    assert!(report.verdict().is_ok(), "cached is enough without a repository");
    report.repository = Some("/srv/repo hermod/main".into());
    assert_eq!(report.lacking().len(), 1, "a repository is configured: cached is not yet published");
    report.repository = None;
    report.entries.push(master_row("6.1.0-10-amd64", MasterState::Failed));
    report.entries.push(master_row("6.1.0-11-amd64", MasterState::Missing));
    let e = report.verdict().unwrap_err().to_string();
    assert!(e.starts_with("2 wanted module package(s) missing for 6.1.0-10-amd64, 6.1.0-11-amd64"), "{e}");

    let json = report.json();
    assert_eq!(
        (json["role"].as_str(), json["ok"].as_bool(), json["lacking"].as_u64()),
        (Some("master"), Some(false), Some(2))
    );
    let failed = &json["entries"][3];
    assert_eq!((failed["state"].as_str(), failed["exit_code"].as_i64()), (Some("failed"), Some(5)));
    assert_eq!(failed["log"], "/store/logs/x.log");
    assert_eq!(json["entries"][1]["cached_in"], "local");
    assert!(json["entries"][0].get("log").is_none());

    let text = report.table();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["MODULE", "KERNEL", "ARCH", "STATE", "DETAIL"]);
    // Columns line up: every row's STATE starts where the header's does.
    let at = lines[0].find("STATE").unwrap();
    for line in &lines[1..] {
        assert!(line[at..].starts_with(|c: char| c.is_ascii_lowercase()), "{line}");
    }
    assert!(
        lines[4].contains("failed") && lines[4].contains("exit 5: make failed (log: /store/logs/x.log)"),
        "{}",
        lines[4]
    );
    assert!(lines[2].contains("cached") && lines[2].contains("(local)"), "{}", lines[2]);
}

#[test]
fn kernels_sort_by_version() {
    let mut k: Vec<String> = ["6.1.0-10-amd64", "6.12.1+deb13-amd64", "6.1.0-9-amd64"].map(String::from).to_vec();
    sort_kernels(&mut k);
    assert_eq!(k, ["6.1.0-9-amd64", "6.1.0-10-amd64", "6.12.1+deb13-amd64"]);
}
