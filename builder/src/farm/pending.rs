//! `hermod install-pending`: install what [`super::prepare`] left in `pending/`.
//!
//! It runs after dpkg is done (apt's `DPkg::Post-Invoke`, the boot service, or
//! by hand), never inside a maintainer script: there dpkg holds its lock, so it
//! only says it defers. Packages dpkg then has at their version are removed
//! from `pending/`; anything else stays for the next run and the run fails.
//!
//! A package whose Depends nothing installed (or in the same batch) satisfies
//! is left waiting, not handed to dpkg, which would leave it unpacked but
//! unconfigured: headers installed without their kernel image give a module
//! package that must wait for `linux-image-<KREL>`, whose own hook and apt's
//! Post-Invoke then install it.

use std::fs;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::system::{inside_dpkg, is_deb, System};
use super::{io_error, FarmError, StateDir};
use crate::apt::depends::{parse_depends, Alternative, Dependency};
use crate::apt::Version;

/// What one run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Installed {
    /// Inside a maintainer script: nothing was tried.
    pub deferred: bool,
    /// `(package, version)` now installed and removed from `pending/`.
    pub installed: Vec<(String, String)>,
    /// `(package, unmet dependency)` left in `pending/` for later.
    pub waiting: Vec<(String, String)>,
}

/// The pending .debs, sorted by file name.
pub fn list(state: &StateDir) -> Result<Vec<PathBuf>, FarmError> {
    let dir = state.pending();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FarmError::Io { path: dir, source: e }),
    };
    let mut debs = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_error(&dir))?.path();
        if is_deb(&path) {
            debs.push(path);
        }
    }
    debs.sort();
    Ok(debs)
}

/// Hold `pending/.lock`: one installer at a time, and no `prepare` writing
/// into `pending/` while it is read.
pub fn lock(state: &StateDir) -> Result<Flock<fs::File>, FarmError> {
    let dir = state.pending();
    state.ensure(&dir)?;
    let path = dir.join(".lock");
    let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_error(&path))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| FarmError::Io { path, source: std::io::Error::from(errno) })
}

/// Install every pending package in one dpkg run; clear those dpkg now has.
pub fn install(
    state: &StateDir,
    system: &dyn System,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Installed, FarmError> {
    if inside_dpkg(env) {
        return Ok(Installed { deferred: true, ..Installed::default() });
    }
    let _lock = lock(state)?;
    let debs = list(state)?;
    if debs.is_empty() {
        return Ok(Installed::default());
    }
    let mut batch = Vec::new();
    for deb in &debs {
        batch.push((deb.clone(), identity(deb)?, depends(deb)?));
    }
    let mut done = Installed::default();
    // Leave out what cannot be configured now; repeat, since leaving one out
    // may unsatisfy another that depended on it.
    loop {
        let names: Vec<String> = batch.iter().map(|(_, (name, _), _)| name.clone()).collect();
        let Some(i) = batch.iter().position(|(_, _, deps)| unmet(deps, &names, system).is_some()) else { break };
        let (_, (package, _), deps) = batch.remove(i);
        let dependency = unmet(&deps, &[], system).expect("unmet without the batch too");
        done.waiting.push((package, dependency));
    }
    if batch.is_empty() {
        return Ok(done);
    }
    let debs: Vec<PathBuf> = batch.iter().map(|(deb, _, _)| deb.clone()).collect();
    let wanted: Vec<(PathBuf, (String, String))> = batch.into_iter().map(|(deb, id, _)| (deb, id)).collect();
    // One transaction, so packages that depend on each other go in together.
    let result = system.install(&debs);
    let mut left = 0;
    for (deb, (package, version)) in wanted {
        if system.installed_version(&package).as_deref() == Some(version.as_str()) {
            fs::remove_file(&deb).map_err(io_error(&deb))?;
            done.installed.push((package, version));
        } else {
            left += 1;
        }
    }
    match result {
        Err(e) if left > 0 => {
            crate::say::failure(&e);
            Err(FarmError::InstallFailed(left, state.pending()))
        }
        // dpkg said yes but does not have one of them at that version.
        Ok(()) if left > 0 => Err(FarmError::InstallFailed(left, state.pending())),
        _ => Ok(done),
    }
}

/// The first dependency of `deps` that neither an installed package nor one
/// of `batch` satisfies (versions checked against installed packages).
fn unmet(deps: &[Dependency], batch: &[String], system: &dyn System) -> Option<String> {
    let satisfied = |alt: &Alternative| {
        if batch.contains(&alt.name) {
            return true;
        }
        match (system.installed_version(&alt.name), &alt.constraint) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(v), Some(c)) => Version::parse(&v).is_ok_and(|v| c.allows(&v)),
        }
    };
    deps.iter().find(|d| !d.alternatives.iter().any(satisfied)).map(|d| d.to_string())
}

/// The Depends and Pre-Depends of a .deb.
fn depends(deb: &Path) -> Result<Vec<Dependency>, FarmError> {
    let bad = |detail: String| FarmError::BadDeb { path: deb.to_owned(), detail };
    let control = crate::apt::control(deb).map_err(|e| bad(e.to_string()))?;
    let mut deps = Vec::new();
    for field in ["Pre-Depends", "Depends"] {
        if let Some(value) = control.get(field) {
            deps.extend(parse_depends(value).map_err(|e| bad(format!("{field}: {e}")))?);
        }
    }
    Ok(deps)
}

/// `(Package, Version)` of a .deb's control file.
pub fn identity(deb: &Path) -> Result<(String, String), FarmError> {
    let bad = |detail: String| FarmError::BadDeb { path: deb.to_owned(), detail };
    let control = crate::apt::control(deb).map_err(|e| bad(e.to_string()))?;
    let field = |name: &str| control.get(name).map(str::to_owned).ok_or_else(|| bad(format!("no {name} field")));
    Ok((field("Package")?, field("Version")?))
}

#[cfg(test)]
mod tests {
    use super::super::system::recording::Recording;
    use super::*;
    use crate::debpkg::tests_support::module_deb;

    fn state_with(debs: &[(&str, &str)]) -> (tempfile::TempDir, StateDir) {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        state.ensure(&state.pending()).unwrap();
        for (package, version) in debs {
            let (name, bytes) = module_deb(package, version);
            fs::write(state.pending().join(name), bytes).unwrap();
        }
        (dir, state)
    }

    #[test]
    fn installs_all_in_one_run_and_clears_them() {
        let (_dir, state) = state_with(&[("a-modules-k", "1.0+1"), ("b-modules-k", "2.0+1")]);
        let system = Recording::default();
        let done = install(&state, &system, &|_| None).unwrap();
        assert_eq!(done.installed.len(), 2);
        assert_eq!(
            system.calls.borrow().as_slice(),
            ["install a-modules-k_1.0+1_amd64.deb b-modules-k_2.0+1_amd64.deb"]
        );
        assert!(list(&state).unwrap().is_empty());
        // Nothing pending: nothing run.
        assert_eq!(install(&state, &system, &|_| None).unwrap(), Installed::default());
        assert_eq!(system.calls.borrow().len(), 1);
    }

    #[test]
    fn what_dpkg_refused_stays_pending_and_the_run_fails() {
        let (_dir, state) = state_with(&[("a-modules-k", "1.0+1"), ("b-modules-k", "2.0+1")]);
        let system = Recording { fail_install_of: Some("b-modules".into()), ..Default::default() };
        let e = install(&state, &system, &|_| None).unwrap_err().to_string();
        assert!(e.starts_with("1 package(s) could not be installed"), "{e}");
        let left: Vec<String> =
            list(&state).unwrap().iter().map(|p| p.file_name().unwrap().to_string_lossy().into()).collect();
        assert_eq!(left, ["b-modules-k_2.0+1_amd64.deb"]);
    }

    #[test]
    fn a_package_whose_kernel_is_missing_waits() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        state.ensure(&state.pending()).unwrap();
        for (package, depends) in [
            ("a-modules-k", "linux-image-k | linux-image-k-unsigned"),
            ("b-modules-k", "a-modules-k"),
            ("c-modules-k", ""),
        ] {
            let (name, bytes) = crate::debpkg::tests_support::module_deb_depending(package, "1", depends);
            fs::write(state.pending().join(name), bytes).unwrap();
        }
        let system = Recording::default();
        let done = install(&state, &system, &|_| None).unwrap();
        assert_eq!(done.installed, [("c-modules-k".to_owned(), "1".to_owned())]);
        let waiting: Vec<String> = done.waiting.iter().map(|(p, d)| format!("{p}: {d}")).collect();
        assert_eq!(waiting, ["a-modules-k: linux-image-k | linux-image-k-unsigned", "b-modules-k: a-modules-k"]);
        assert_eq!(list(&state).unwrap().len(), 2);
        // The image arrives: both go in, together.
        system.installed.borrow_mut().insert("linux-image-k-unsigned".into(), "6.1".into());
        let done = install(&state, &system, &|_| None).unwrap();
        assert_eq!(done.installed.len(), 2);
        assert!(done.waiting.is_empty() && list(&state).unwrap().is_empty());
    }

    #[test]
    fn inside_a_maintainer_script_it_defers() {
        let (_dir, state) = state_with(&[("a-modules-k", "1.0+1")]);
        let system = Recording::default();
        let env = |v: &str| (v == "DPKG_MAINTSCRIPT_NAME").then(|| "postinst".to_owned());
        assert!(install(&state, &system, &env).unwrap().deferred);
        assert!(system.calls.borrow().is_empty());
        assert_eq!(list(&state).unwrap().len(), 1);
    }

    #[test]
    fn a_broken_file_is_named_and_nothing_is_installed() {
        let (_dir, state) = state_with(&[("a-modules-k", "1.0+1")]);
        fs::write(state.pending().join("junk_1_amd64.deb"), b"not an archive").unwrap();
        let system = Recording::default();
        let e = install(&state, &system, &|_| None).unwrap_err().to_string();
        assert!(e.contains("junk_1_amd64.deb: not a usable .deb"), "{e}");
        assert!(system.calls.borrow().is_empty());
        assert_eq!(list(&state).unwrap().len(), 2);
    }
}
