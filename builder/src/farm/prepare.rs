//! `hermod prepare --kernel K`: put the wanted module packages for K into
//! `pending/`, without dpkg.
//!
//! For each wanted module, in order: already installed → nothing; already
//! pending → nothing; else each [`Provider`] in turn (the administrator's
//! `debs/` directory, the repository, the shared cache or a build); the first
//! that has it wins, and a provider that fails (an unreachable repository, a
//! build error) is reported and the next one is asked. What no provider has is
//! written to `queue/K`, for the boot service to try again; the run then fails.

use std::fs;
use std::path::{Path, PathBuf};

use super::system::{is_deb, System};
use super::{io_error, FarmError, StateDir, Wanted};

/// Something that may have a module package.
pub trait Provider {
    /// For messages: "debs/", "the repository …", "a build".
    fn name(&self) -> String;
    /// Put `<base>-modules-<kernel>`'s .deb into `dir` and return its path;
    /// `Ok(None)` when this provider does not have it.
    fn provide(&self, wanted: &Wanted, kernel: &str, dir: &Path) -> Result<Option<PathBuf>, String>;
}

/// What became of one wanted module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// dpkg already has it at this version.
    Installed(String),
    /// Already waiting in `pending/`.
    AlreadyPending(PathBuf),
    /// Now in `pending/`, from this provider.
    Pending { deb: PathBuf, from: String },
    /// Nothing had it; each provider's answer.
    Queued(Vec<String>),
}

#[derive(Debug)]
pub struct PrepareReport {
    pub kernel: String,
    pub outcomes: Vec<(Wanted, Outcome)>,
}

impl PrepareReport {
    pub fn queued(&self) -> usize {
        self.outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Queued(_))).count()
    }
}

/// The packages of `debs/` (dropped in by an administrator) for a kernel:
/// the newest version, by dpkg's order, of `<base>-modules-<kernel>`.
pub struct LocalDebs {
    pub dir: PathBuf,
}

impl Provider for LocalDebs {
    fn name(&self) -> String {
        format!("{}/", self.dir.display())
    }

    fn provide(&self, wanted: &Wanted, kernel: &str, dir: &Path) -> Result<Option<PathBuf>, String> {
        let prefix = format!("{}_", wanted.package(kernel));
        let Ok(entries) = fs::read_dir(&self.dir) else { return Ok(None) };
        let mut best: Option<(crate::apt::Version, PathBuf)> = None;
        for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if !name.starts_with(&prefix) || !is_deb(&path) {
                continue;
            }
            let (_, version) = super::pending::identity(&path).map_err(|e| e.to_string())?;
            let version = crate::apt::Version::parse(&version).map_err(|e| format!("{}: {e}", path.display()))?;
            if best.as_ref().is_none_or(|(v, _)| &version > v) {
                best = Some((version, path));
            }
        }
        let Some((_, path)) = best else { return Ok(None) };
        let dest = dir.join(path.file_name().expect("a file name"));
        fs::copy(&path, &dest).map_err(|e| format!("copying {}: {e}", path.display()))?;
        Ok(Some(dest))
    }
}

/// Make each wanted module of `kernel` installed or pending.
pub fn prepare(
    kernel: &str,
    wanted: &[Wanted],
    state: &StateDir,
    system: &dyn System,
    providers: &[&dyn Provider],
) -> Result<PrepareReport, FarmError> {
    let pending_dir = state.pending();
    state.ensure(&pending_dir)?;
    let mut outcomes = Vec::new();
    for w in wanted {
        let package = w.package(kernel);
        if let Some(version) = system.installed_version(&package) {
            outcomes.push((w.clone(), Outcome::Installed(version)));
            continue;
        }
        let prefix = format!("{package}_");
        let pending = super::pending::list(state)?;
        if let Some(deb) =
            pending.into_iter().find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)))
        {
            outcomes.push((w.clone(), Outcome::AlreadyPending(deb)));
            continue;
        }
        // Each provider writes into a staging directory beside pending/, and
        // the finished file is renamed in: install-pending never sees half a file.
        let staging =
            tempfile::Builder::new().prefix(".incoming-").tempdir_in(&pending_dir).map_err(io_error(&pending_dir))?;
        let found = obtain(w, kernel, providers, staging.path())?;
        let outcome = match found {
            Ok((deb, from)) => {
                let dest = pending_dir.join(deb.file_name().expect("a file name"));
                super::move_file(&deb, &dest)?;
                Outcome::Pending { deb: dest, from }
            }
            Err(missing) => Outcome::Queued(missing.answers),
        };
        outcomes.push((w.clone(), outcome));
    }
    let prepared = PrepareReport { kernel: kernel.to_owned(), outcomes };
    write_queue(state, &prepared)?;
    Ok(prepared)
}

/// Every provider's answer when none had a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub answers: Vec<String>,
    /// Some provider failed (unreachable, or a signature or hash refused),
    /// rather than simply not having it.
    pub failed: bool,
}

/// Ask each provider in turn for `wanted`'s package into `dir`: the .deb and
/// who gave it, or every provider's answer. A provider's failure is reported
/// on stderr and the next one asked; a package of the wrong name is an error.
pub fn obtain(
    wanted: &Wanted,
    kernel: &str,
    providers: &[&dyn Provider],
    dir: &Path,
) -> Result<Result<(PathBuf, String), Missing>, FarmError> {
    let package = wanted.package(kernel);
    let mut answers = Vec::new();
    let mut failed = false;
    for provider in providers {
        match provider.provide(wanted, kernel, dir) {
            Ok(Some(deb)) => {
                let (name, _) = super::pending::identity(&deb)?;
                if name != package {
                    let detail = format!("{} gave package {name}, not {package}", provider.name());
                    return Err(FarmError::BadDeb { path: deb, detail });
                }
                return Ok(Ok((deb, provider.name())));
            }
            Ok(None) => answers.push(format!("{}: not there", provider.name())),
            Err(e) => {
                crate::say::failure(format_args!("{}: {package} from {}: {e}", wanted.label, provider.name()));
                answers.push(format!("{}: {e}", provider.name()));
                failed = true;
            }
        }
    }
    Ok(Err(Missing { answers, failed }))
}

/// `queue/<kernel>`: one wanted label per line, or no file when nothing is queued.
fn write_queue(state: &StateDir, prepared: &PrepareReport) -> Result<(), FarmError> {
    let path = state.queue().join(&prepared.kernel);
    let queued: Vec<&str> = prepared
        .outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Queued(_)))
        .map(|(w, _)| w.label.as_str())
        .collect();
    if queued.is_empty() {
        return match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(FarmError::Io { path, source: e }),
            _ => Ok(()),
        };
    }
    state.ensure(&state.queue())?;
    let text = queued.iter().map(|l| format!("{l}\n")).collect::<String>();
    crate::store::write_atomically(&path, text.as_bytes()).map_err(io_error(&path))
}

/// The kernels with something queued.
pub fn queued_kernels(state: &StateDir) -> Vec<String> {
    let mut kernels: Vec<String> = fs::read_dir(state.queue())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    kernels.sort();
    kernels
}

#[cfg(test)]
mod tests {
    use super::super::system::recording::Recording;
    use super::*;
    use crate::debpkg::tests_support::module_deb;

    struct Fixed {
        name: &'static str,
        debs: Vec<(String, Vec<u8>)>,
        fails: bool,
        asked: std::cell::Cell<usize>,
    }

    impl Provider for Fixed {
        fn name(&self) -> String {
            self.name.into()
        }
        fn provide(&self, wanted: &Wanted, kernel: &str, dir: &Path) -> Result<Option<PathBuf>, String> {
            self.asked.set(self.asked.get() + 1);
            if self.fails {
                return Err("connection refused".into());
            }
            let prefix = format!("{}_", wanted.package(kernel));
            let Some((name, bytes)) = self.debs.iter().find(|(n, _)| n.starts_with(&prefix)) else { return Ok(None) };
            fs::write(dir.join(name), bytes).unwrap();
            Ok(Some(dir.join(name)))
        }
    }

    fn provider(name: &'static str, packages: &[(&str, &str)], fails: bool) -> Fixed {
        let debs = packages.iter().map(|(p, v)| module_deb(p, v)).collect();
        Fixed { name, debs, fails, asked: Default::default() }
    }

    fn wanted(base: &str) -> Wanted {
        Wanted { label: format!("pkg:{base}-dkms"), base: base.into(), source: None }
    }

    #[test]
    fn first_provider_that_has_it_wins_and_failures_fall_through() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let system = Recording::default();
        system.installed.borrow_mut().insert("c-modules-k".into(), "3".into());
        let down = provider("repository", &[], true);
        let build = provider("a build", &[("a-modules-k", "1+1"), ("b-modules-k", "1+1")], false);
        let all = [wanted("a"), wanted("b"), wanted("c"), wanted("d")];
        let got = prepare("k", &all, &state, &system, &[&down, &build]).unwrap();
        let summary: Vec<String> = got
            .outcomes
            .iter()
            .map(|(w, o)| match o {
                Outcome::Installed(v) => format!("{} installed {v}", w.base),
                Outcome::Pending { from, .. } => format!("{} from {from}", w.base),
                Outcome::AlreadyPending(_) => format!("{} already pending", w.base),
                Outcome::Queued(why) => format!("{} queued: {}", w.base, why.join("; ")),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "a from a build",
                "b from a build",
                "c installed 3",
                "d queued: repository: connection refused; a build: not there"
            ]
        );
        assert_eq!(got.queued(), 1);
        let names: Vec<String> = super::super::pending::list(&state)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into())
            .collect();
        assert_eq!(names, ["a-modules-k_1+1_amd64.deb", "b-modules-k_1+1_amd64.deb"]);
        assert_eq!(fs::read_to_string(state.queue().join("k")).unwrap(), "pkg:d-dkms\n");
        assert_eq!(queued_kernels(&state), ["k"]);
        // Again: the pending ones are not fetched twice; once d is there the queue is gone.
        let build = provider("a build", &[("d-modules-k", "1+1")], false);
        let again = prepare("k", &all, &state, &system, &[&build]).unwrap();
        assert!(matches!(again.outcomes[0].1, Outcome::AlreadyPending(_)));
        assert_eq!(build.asked.get(), 1);
        assert_eq!(again.queued(), 0);
        assert!(queued_kernels(&state).is_empty());
    }

    #[test]
    fn local_debs_offer_their_newest_version() {
        let dir = tempfile::tempdir().unwrap();
        let debs = dir.path().join("debs");
        fs::create_dir(&debs).unwrap();
        for version in ["1.2+1", "1.10+1", "1.9+1"] {
            let (name, bytes) = module_deb("a-modules-k", version);
            fs::write(debs.join(name), bytes).unwrap();
        }
        let (name, bytes) = module_deb("a-modules-other", "9+1");
        fs::write(debs.join(name), bytes).unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        let local = LocalDebs { dir: debs };
        let got = local.provide(&wanted("a"), "k", &out).unwrap().unwrap();
        assert_eq!(got.file_name().unwrap(), "a-modules-k_1.10+1_amd64.deb");
        assert_eq!(local.provide(&wanted("b"), "k", &out).unwrap(), None);
    }

    #[test]
    fn a_provider_giving_the_wrong_package_is_refused() {
        struct Liar;
        impl Provider for Liar {
            fn name(&self) -> String {
                "liar".into()
            }
            fn provide(&self, _: &Wanted, _: &str, dir: &Path) -> Result<Option<PathBuf>, String> {
                let (name, bytes) = module_deb("evil-modules-k", "1");
                fs::write(dir.join(&name), bytes).unwrap();
                Ok(Some(dir.join(name)))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let e = prepare("k", &[wanted("a")], &state, &Recording::default(), &[&Liar]).unwrap_err().to_string();
        assert!(e.contains("liar gave package evil-modules-k, not a-modules-k"), "{e}");
        assert!(super::super::pending::list(&state).unwrap().is_empty());
    }
}
