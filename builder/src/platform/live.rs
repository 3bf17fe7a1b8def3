//! A platform's archive, fetched and parsed only when a question needs it.

use std::path::Path;
use std::sync::OnceLock;

use super::Platform;
use crate::apt::{self, Archive, Snapshot};
use crate::rootfs::{Memo, Recipe};
use crate::store::Store;

/// A platform with its archive, fetched and parsed on first use.
///
/// The signed Release files are fetched on the first question about the
/// archive, and the Packages indices parsed on the first question not already
/// answered in the store's memo for this exact archive content (see
/// [`crate::rootfs::Memo`]).
pub struct Live {
    pub platform: Platform,
    /// The verified Release files and their identity.
    snapshot: OnceLock<(Snapshot, String)>,
    archive: OnceLock<Archive>,
}

impl Live {
    pub fn new(platform: Platform) -> Live {
        Live { platform, snapshot: OnceLock::new(), archive: OnceLock::new() }
    }

    pub fn recipe(&self) -> &Recipe {
        &self.platform.recipe
    }

    /// The verified Release files of every source (fetched on first use).
    pub fn snapshot(&self) -> Result<&(Snapshot, String), apt::AptError> {
        if let Some(snapshot) = self.snapshot.get() {
            return Ok(snapshot);
        }
        let recipe = &self.platform.recipe;
        let host = recipe.cross.as_ref().map(|c| c.host.as_str());
        let snapshot = self.platform.sources.snapshot(&recipe.architecture, host)?;
        let identity = snapshot.identity();
        Ok(self.snapshot.get_or_init(|| (snapshot, identity)))
    }

    /// The parsed archive (loaded on first use; `indices` caches the files).
    pub fn archive(&self, indices: &Path) -> Result<&Archive, apt::AptError> {
        if let Some(archive) = self.archive.get() {
            return Ok(archive);
        }
        let archive = self.snapshot()?.0.load(indices)?;
        Ok(self.archive.get_or_init(|| archive))
    }

    /// Answers remembered for this archive's exact content.
    pub fn memo<'a>(&'a self, store: &Store) -> Result<Memo<'a>, apt::AptError> {
        Ok(Memo::new(store, &self.snapshot()?.1, &self.platform.recipe))
    }

    /// Does this platform's archive offer `kernel`'s headers? Remembered.
    pub fn offers(&self, kernel: &str, store: &Store) -> Result<bool, apt::AptError> {
        let headers = self.platform.recipe.headers_package(kernel);
        self.memo(store)?
            .get_or(&format!("offers {kernel}"), || Ok(self.archive(&store.indices())?.newest(&headers).is_some()))
    }
}
