//! `Archives`: what every command that reads the archive uses, builds or not:
//! the store, the platforms (each release's recipe, sources and archive) and
//! a given lock file. Which platform builds a kernel, the default kernel,
//! `all[:FLAVOURS]`, and the exact build-root package set of a kernel.

use std::collections::HashSet;

use super::PipelineError;
use crate::apt::Archive;
use crate::input::InputError;
use crate::platform::{Live, Platform, Platforms};
use crate::rootfs::{Lock, Recipe, RootfsError};
use crate::store::Store;

/// The platforms and their archives, loaded once for many builds, the store
/// they are kept in, and the lock file given, if any.
///
/// Nothing is fetched up front (see [`Live`]). With a lock given there are
/// no questions about any archive: a build reads no index and needs no
/// network when its packages are in the package cache.
pub struct Archives {
    store: Store,
    platforms: Platforms,
    /// A lock file's package set: then no index is ever read.
    lock: Option<Lock>,
    /// Downloads and new build roots say nothing (`--quiet`).
    quiet: bool,
}

impl Archives {
    /// `platforms` are the releases built for, each a recipe and its sources
    /// (see [`crate::platform`]), the machine's own first.
    pub fn new(store: Store, platforms: Vec<Platform>, lock: Option<Lock>, quiet: bool) -> Archives {
        Archives { store, platforms: Platforms::new(platforms), lock, quiet }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// The lock file's package set, when building from one.
    pub fn given_lock(&self) -> Option<&Lock> {
        self.lock.as_ref()
    }

    /// The platform that builds `kernel`: the lock's recipe's when building
    /// from one, else the one whose suites offer its headers
    /// ([`Platforms::for_kernel`]).
    pub fn platform(&self, kernel: &str) -> Result<&Live, PipelineError> {
        if let Some(lock) = &self.lock {
            return self.platforms.by_recipe(&lock.recipe).ok_or_else(|| {
                RootfsError::LockRecipe {
                    recipe: lock.recipe.clone(),
                    known: self.platforms.all().iter().map(|p| p.recipe().name.clone()).collect(),
                }
                .into()
            });
        }
        Ok(self.platforms.for_kernel(kernel, &self.store)?)
    }

    /// Every platform, the machine's own first.
    pub fn platforms(&self) -> &[Live] {
        self.platforms.all()
    }

    /// The recipe of `lock`'s build root, if it is one built for.
    pub fn recipe_of(&self, lock: &Lock) -> Option<&Recipe> {
        self.platforms.by_recipe(&lock.recipe).map(Live::recipe)
    }

    /// The archive of `kernel`'s platform (loaded on first use).
    pub fn archive(&self, kernel: &str) -> Result<&Archive, PipelineError> {
        Ok(self.platform(kernel)?.archive(&self.store.indices())?)
    }

    /// The kernel the machine's own release's meta package points at, or the lock's.
    pub fn default_kernel(&self) -> Result<String, PipelineError> {
        match &self.lock {
            Some(lock) => Ok(lock.kernel.clone()),
            None => Ok(self.platforms.default_kernel(&self.store)?),
        }
    }

    /// The exact build-root package set for `kernel`: the given lock, or
    /// resolved from the archive.
    pub fn lock(&self, kernel: &str) -> Result<Lock, PipelineError> {
        self.lock_with(kernel, &[])
    }

    /// [`Archives::lock`] with declared build needs (package names, see
    /// [`crate::input`]) as further roots. A given lock is used as it is, and
    /// must already contain them.
    pub fn lock_with(&self, kernel: &str, extras: &[String]) -> Result<Lock, PipelineError> {
        let platform = self.platform(kernel)?;
        let mut lock = match &self.lock {
            Some(lock) if lock.kernel == kernel => {
                let names: HashSet<&str> = lock.packages.iter().map(|p| p.name.as_str()).collect();
                let recipe = platform.recipe();
                if let Some(name) = extras.iter().find(|n| !names.contains(recipe.stand_in(n).as_str())) {
                    return Err(InputError::NotInLock { origin: "the source".into(), name: name.clone() }.into());
                }
                lock.clone()
            }
            Some(lock) => {
                return Err(PipelineError::LockedKernel { locked: lock.kernel.clone(), wanted: kernel.to_owned() })
            }
            None => {
                // Without extras, the question is the one it always was, so
                // remembered resolutions still answer it.
                let mut question = format!("lock {kernel}");
                if !extras.is_empty() {
                    question.push_str(&format!(" extras {}", extras.join(" ")));
                }
                let store = &self.store;
                let mut lock = platform.memo(store)?.get_or(&question, || {
                    Ok::<_, PipelineError>(Lock::resolve(
                        platform.archive(&store.indices())?,
                        platform.recipe(),
                        kernel,
                        extras,
                    )?)
                })?;
                lock.suites = platform.platform.sources.suites();
                lock
            }
        };
        // A resolved package comes from its own archive first; a locked one
        // only from these.
        lock.mirrors = platform.platform.sources.mirrors();
        Ok(lock)
    }

    /// `--kernel all[:FLAVOURS]` ([`Platforms::all_kernels`]); with a lock
    /// given, the lock's kernel alone.
    pub fn all_kernels(&self, flavours: &str) -> Result<Vec<String>, PipelineError> {
        match &self.lock {
            Some(lock) => Ok(vec![lock.kernel.clone()]),
            None => Ok(self.platforms.all_kernels(flavours, &self.store)?),
        }
    }

    /// The kernels a `--kernel` list names: `all[:FLAVOURS]` expanded (see
    /// [`Archives::all_kernels`]), others as given, each once, in order;
    /// none given is the default kernel.
    pub fn kernels(&self, asked: &[String]) -> Result<Vec<String>, PipelineError> {
        let mut kernels: Vec<String> = Vec::new();
        if asked.is_empty() {
            kernels.push(self.default_kernel()?);
        }
        for kernel in asked {
            let more = match kernel.strip_prefix("all") {
                Some("") => self.all_kernels("")?,
                Some(flavours) if flavours.starts_with(':') => self.all_kernels(&flavours[1..])?,
                _ => vec![kernel.clone()],
            };
            for k in more {
                if !kernels.contains(&k) {
                    kernels.push(k);
                }
            }
        }
        Ok(kernels)
    }
}

/// The input stage's view of the archives (see [`crate::input::Archives`]).
impl crate::input::Archives for Archives {
    type Error = PipelineError;
    fn platform(&self, kernel: &str) -> Result<&Live, PipelineError> {
        Archives::platform(self, kernel)
    }
    fn archive(&self, kernel: &str) -> Result<&Archive, PipelineError> {
        Archives::archive(self, kernel)
    }
    fn given_lock(&self) -> Option<&Lock> {
        Archives::given_lock(self)
    }
    fn store(&self) -> &Store {
        Archives::store(self)
    }
    fn quiet(&self) -> bool {
        Archives::quiet(self)
    }
}
