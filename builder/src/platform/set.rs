//! Which platform builds a kernel: the one whose suites offer its headers.
//!
//! A kernel release names one Debian release in practice (`6.1.0-57-amd64`
//! is bookworm's, `6.12.118+deb13-amd64` trixie's), but only the archives can
//! say so. The order of questions keeps a cache hit cheap: a kernel found in
//! another release before is asked there alone (a hint in the store, checked
//! against the archive); else the machine's own release is asked first, and
//! a kernel it offers is its own; only then every other release at once.

use std::collections::HashMap;
use std::fs;
use std::sync::Mutex;

use super::{Live, Platform};
use crate::apt;
use crate::rootfs::{self, RootfsError};
use crate::store::Store;

/// The platforms built for, the machine's own first, and the kernels placed so far.
pub struct Platforms {
    list: Vec<Live>,
    /// kernel → index into `list`, once found.
    chosen: Mutex<HashMap<String, usize>>,
}

impl Platforms {
    pub fn new(platforms: Vec<Platform>) -> Platforms {
        Platforms { list: platforms.into_iter().map(Live::new).collect(), chosen: Mutex::new(HashMap::new()) }
    }

    /// Every platform, the machine's own first.
    pub fn all(&self) -> &[Live] {
        &self.list
    }

    /// The platform of the recipe called `name`.
    pub fn by_recipe(&self, name: &str) -> Option<&Live> {
        self.list.iter().find(|p| p.recipe().name == name)
    }

    fn place(&self, kernel: &str, i: usize) {
        self.chosen.lock().unwrap_or_else(|e| e.into_inner()).entry(kernel.to_owned()).or_insert(i);
    }

    /// The platform whose archive offers `kernel`'s headers: the only one
    /// when there is one; else the machine's own release if its suites have
    /// `linux-headers-<kernel>`, else the one other release whose suites
    /// have it. An unknown kernel is an error listing what each release
    /// offers nearest; one that two other releases offer (odd sources), an
    /// error naming both.
    pub fn for_kernel(&self, kernel: &str, store: &Store) -> Result<&Live, RootfsError> {
        if self.list.len() == 1 {
            return Ok(&self.list[0]);
        }
        if let Some(&i) = self.chosen.lock().unwrap_or_else(|e| e.into_inner()).get(kernel) {
            return Ok(&self.list[i]);
        }
        if !rootfs::kernel_name_ok(kernel) {
            return Err(RootfsError::BadKernelName(kernel.to_owned()));
        }
        // Where this kernel was found last time (a hint, checked below: a
        // kernel release names one Debian release, so it seldom moves).
        let hint_path = store.locks_dir().join(format!("release-of-{}", blake3::hash(kernel.as_bytes()).to_hex()));
        let hinted = fs::read(&hint_path)
            .ok()
            .and_then(|name| self.list.iter().skip(1).position(|p| p.recipe().name.as_bytes() == name).map(|i| i + 1));
        let remember = |i: usize| {
            self.place(kernel, i);
            if i != 0 && hinted != Some(i) {
                let name = self.list[i].recipe().name.as_bytes();
                let _ = fs::create_dir_all(store.locks_dir())
                    .and_then(|()| crate::store::write_atomically(&hint_path, name));
            }
            &self.list[i]
        };
        // Another release than the machine's, found there before: asked
        // alone, so a cache hit fetches that release's Release files only.
        if let Some(i) = hinted {
            if self.list[i].offers(kernel, store).unwrap_or(false) {
                return Ok(remember(i));
            }
        }
        // The machine's own release first: a kernel it offers is its own,
        // and a cache hit for it fetches no other release's Release files.
        let host = &self.list[0];
        if host.platform.has_sources() && host.offers(kernel, store)? {
            return Ok(remember(0));
        }
        // Then every other release at once (their Release files fetched in
        // parallel; answered from the memo while the archives are unchanged).
        let answers: Vec<Result<bool, apt::AptError>> = std::thread::scope(|scope| {
            let asks: Vec<_> = self.list[1..]
                .iter()
                .map(|p| {
                    scope.spawn(move || if p.platform.has_sources() { p.offers(kernel, store) } else { Ok(false) })
                })
                .collect();
            asks.into_iter().map(|a| a.join().expect("an archive question does not panic")).collect()
        });
        let offering: Vec<usize> =
            answers.iter().enumerate().filter(|(_, a)| matches!(a, Ok(true))).map(|(i, _)| i + 1).collect();
        match offering[..] {
            [i] => Ok(remember(i)),
            [] => {
                if let Some(error) = answers.into_iter().find_map(Result::err) {
                    return Err(error.into());
                }
                let mut nearest = Vec::new();
                for p in self.list.iter().filter(|p| p.platform.has_sources()) {
                    nearest.extend(rootfs::nearest_headers(p.archive(&store.indices())?, p.recipe(), kernel));
                }
                rootfs::rank_nearest(&mut nearest, kernel);
                Err(RootfsError::NoHeaders {
                    kernel: kernel.to_owned(),
                    package: self.list[0].recipe().headers_package(kernel),
                    nearest,
                    searched: self.list.iter().map(|p| p.platform.describe()).collect(),
                })
            }
            _ => Err(RootfsError::AmbiguousKernel {
                kernel: kernel.to_owned(),
                platforms: offering.iter().map(|&i| self.list[i].platform.describe()).collect(),
            }),
        }
    }

    /// The kernel the machine's own release's meta package points at.
    pub fn default_kernel(&self, store: &Store) -> Result<String, RootfsError> {
        let host = &self.list[0];
        let kernel: String = host
            .memo(store)?
            .get_or("default-kernel", || host.recipe().default_kernel(host.archive(&store.indices())?))?;
        // The machine's own release offers its meta package's kernel: no
        // other release need be asked.
        self.place(&kernel, 0);
        Ok(kernel)
    }

    /// Every kernel of every platform whose flavour matches one of the
    /// comma-separated globs in `flavours` (`all:arm64`, `all:cloud-*`); empty:
    /// each recipe's plain flavour, its architecture (`amd64`, not
    /// `cloud-amd64` or `rt-amd64`), of the platforms `--kernel all` covers
    /// ([`super::Platform::in_kernel_all`]),
    /// oldest first within each release, the machine's own release first.
    pub fn all_kernels(&self, flavours: &str, store: &Store) -> Result<Vec<String>, RootfsError> {
        let mut out = Vec::new();
        for (i, p) in self.list.iter().enumerate().filter(|(_, p)| p.platform.has_sources()) {
            let globs: Vec<String> = if flavours.is_empty() {
                if !p.platform.in_kernel_all {
                    continue; // another architecture than asked for (config `architectures`)
                }
                vec![p.recipe().architecture.clone()]
            } else {
                flavours.split(',').map(str::to_owned).collect()
            };
            let question = format!("all-kernels {}", globs.join(","));
            let kernels: Vec<String> = p.memo(store)?.get_or(&question, || {
                Ok::<_, RootfsError>(p.recipe().all_kernels(p.archive(&store.indices())?, &globs))
            })?;
            for kernel in kernels {
                // The first release that offers a kernel builds it (they are
                // distinct in practice: +deb12 and +deb13).
                if !out.contains(&kernel) {
                    self.place(&kernel, i);
                    out.push(kernel);
                }
            }
        }
        Ok(out)
    }
}
