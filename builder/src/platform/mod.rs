//! Platforms: the Debian releases (× architecture) hermod builds for, each a
//! recipe and the package sources read for it.
//!
//! A machine's APT sources name its own release (`bookworm`,
//! `bookworm-updates`, `bookworm-security`). A master builds for every
//! release its fleet runs, so hermod reads each builtin recipe's suites from
//! the *same mirrors*: a source whose suite plays a role (the release,
//! `-updates`, `-security`, `-backports`) for one release is the template of
//! that role for every other release. `deb http://deb.debian.org/debian-security
//! bookworm-security main` thus also gives `… trixie-security main` for the
//! trixie recipe, with the same keyring; `-updates` and `-backports` that no
//! source names come from the release's own archive, as on Debian's mirrors.
//! A source that already names a recipe's suite is used as it is (hermod's
//! config file can list other mirrors for any of them).
//!
//! A root is always resolved from one release: a platform reads only its
//! recipe's suites. Sources whose suite belongs to no recipe (a vendor's
//! `nodistro`, a local suite) go to the platform of the machine's own release,
//! the one they were configured for; local .deb directories go to every
//! platform (the administrator put them there; architectures still filter).
//!
//! Backports are read when enabled: config `backports = true`, or the
//! machine's sources name any recipe's backports suite. Their Release says
//! `NotAutomatic: yes`, so the archive ranks their packages last (see
//! [`crate::apt::Archive`]): a backports kernel's headers bring backports
//! packages only where the release has none that will do, as
//! `apt install linux-headers-…/trixie-backports` would.

mod live;
mod set;

pub use live::Live;
pub use set::Platforms;

use std::path::PathBuf;

use crate::apt::{PackageSources, Source};
use crate::rootfs::Recipe;

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("config file: releases = [{}]: no recipe for {name:?} (hermod has: {})", .asked.join(", "), .known.join(", "))]
    UnknownRelease { name: String, asked: Vec<String>, known: Vec<String> },
}

/// One release × architecture: its recipe and where its packages come from.
#[derive(Debug, Clone)]
pub struct Platform {
    pub recipe: Recipe,
    pub sources: PackageSources,
    /// Whether its backports suite is read.
    pub backports: bool,
    /// Whether `--kernel all` covers its kernels (config `architectures`;
    /// by default a native recipe's, not a cross one's).
    pub in_kernel_all: bool,
}

impl Platform {
    /// `bookworm-amd64 (bookworm, bookworm-updates, bookworm-security)`: for messages.
    pub fn describe(&self) -> String {
        let suites = self.sources.suites();
        if suites.is_empty() {
            format!("{} (no configured source)", self.recipe.name)
        } else {
            format!("{} ({})", self.recipe.name, suites.join(", "))
        }
    }

    /// Does any archive or local directory feed this platform?
    pub fn has_sources(&self) -> bool {
        !self.sources.archives.is_empty() || !self.sources.local_dirs.is_empty()
    }
}

/// What decides the platforms besides the recipes.
pub struct Choice<'a> {
    /// Archives in order of preference: the config file's, then the system's.
    pub archives: &'a [Source],
    /// Directories of .debs (config `local_debs`).
    pub local_dirs: &'a [PathBuf],
    /// Config `backports` (None: enabled if any source names a backports suite).
    pub backports: Option<bool>,
    /// Config `releases` (None: every recipe).
    pub releases: Option<&'a [String]>,
    /// Config `architectures`: what `--kernel all` covers (None: the
    /// native recipes, those without `cross`).
    pub architectures: Option<&'a [String]>,
}

/// The platforms for `recipes` (oldest release first), each with its sources;
/// the first of the result is the machine's own release (see [`host_index`]).
pub fn platforms(recipes: Vec<Recipe>, choice: &Choice<'_>) -> Result<Vec<Platform>, PlatformError> {
    // Every recipe tells which suites play which role, whether built for or not.
    let kept: Vec<&Recipe> = match choice.releases {
        None => recipes.iter().collect(),
        Some(asked) => {
            for name in asked {
                if !recipes.iter().any(|r| &r.release == name || &r.name == name) {
                    return Err(PlatformError::UnknownRelease {
                        name: name.clone(),
                        asked: asked.to_vec(),
                        known: recipes.iter().map(|r| r.release.clone()).collect(),
                    });
                }
            }
            recipes.iter().filter(|r| asked.iter().any(|a| a == &r.release || a == &r.name)).collect()
        }
    };
    let backports = choice.backports.unwrap_or_else(|| {
        choice.archives.iter().any(|s| recipes.iter().any(|r| r.backports.as_deref() == Some(s.suite.as_str())))
    });
    // Sources of no recipe's suites go with the machine's own release; when
    // that release is not built for, with none.
    let host = &recipes[host_index(&recipes, choice.archives).min(recipes.len().saturating_sub(1))];
    let mut out: Vec<Platform> = Vec::new();
    for recipe in kept {
        let mut archives = Vec::new();
        if recipe.suites.is_empty() {
            // A recipe that names no release reads every source, as before
            // recipes named one.
            archives = choice.archives.to_vec();
        } else {
            for suite in recipe.suites_with(backports) {
                archives.extend(sources_for(&recipes, recipe, &suite, choice.archives));
            }
            if recipe.name == host.name {
                archives.extend(choice.archives.iter().filter(|s| owner(&recipes, &s.suite).is_none()).cloned());
            }
        }
        let in_kernel_all = match choice.architectures {
            Some(asked) => asked.contains(&recipe.architecture),
            None => recipe.cross.is_none(),
        };
        out.push(Platform {
            recipe: recipe.clone(),
            sources: PackageSources { archives, local_dirs: choice.local_dirs.to_vec() },
            backports,
            in_kernel_all,
        });
    }
    // The machine's own release first: it answers "the default kernel".
    if let Some(own) = out.iter().position(|p| p.recipe.name == host.name) {
        let own = out.remove(own);
        out.insert(0, own);
    }
    Ok(out)
}

/// The recipe whose release the first release-role source names (the
/// config's sources come first, so a config that reads only trixie makes
/// trixie the default); the first recipe when none does.
pub fn host_index(recipes: &[Recipe], archives: &[Source]) -> usize {
    // The machine's own recipe is a native one: a cross recipe of the same
    // release builds for another architecture on it.
    archives
        .iter()
        .find_map(|s| recipes.iter().position(|r| r.cross.is_none() && !r.release.is_empty() && r.release == s.suite))
        .or_else(|| recipes.iter().position(|r| r.cross.is_none()))
        .unwrap_or(0)
}

/// The recipe reading `suite` (its release, -updates, -security or backports).
fn owner<'r>(recipes: &'r [Recipe], suite: &str) -> Option<&'r Recipe> {
    recipes.iter().find(|r| r.suites_with(true).iter().any(|s| s == suite))
}

/// The role a suite plays for its recipe: `""` for the release, `-updates`,
/// `-security`, `-backports`.
fn role<'s>(recipe: &Recipe, suite: &'s str) -> Option<&'s str> {
    if recipe.release.is_empty() {
        return None;
    }
    suite.strip_prefix(recipe.release.as_str())
}

/// The sources that serve `suite` for `recipe`: those naming it; else every
/// source of the same role for another release, with the suite renamed; else,
/// for -updates and -backports, the release's own archive (found the same way).
fn sources_for(recipes: &[Recipe], recipe: &Recipe, suite: &str, archives: &[Source]) -> Vec<Source> {
    let named: Vec<Source> = archives.iter().filter(|s| s.suite == suite).cloned().collect();
    if !named.is_empty() {
        return named;
    }
    let Some(wanted) = role(recipe, suite) else { return Vec::new() };
    let same_role = |wanted: &str| -> Vec<Source> {
        let mut out: Vec<Source> = Vec::new();
        for source in archives {
            let Some(other) = owner(recipes, &source.suite) else { continue };
            if other.name == recipe.name || role(other, &source.suite) != Some(wanted) {
                continue;
            }
            // One source per archive URI: two releases' templates of one
            // mirror would read it twice.
            if out.iter().any(|o| o.uri == source.uri) {
                continue;
            }
            let derived_from = Some(source.suite.clone());
            out.push(Source { suite: suite.to_owned(), derived_from, ..source.clone() });
        }
        out
    };
    let mut found = same_role(wanted);
    if found.is_empty() && !wanted.is_empty() && wanted != "-security" {
        // The release's own archive carries its -updates and -backports.
        found = sources_for(recipes, recipe, &recipe.release, archives);
        for source in &mut found {
            source.derived_from.get_or_insert_with(|| source.suite.clone());
            source.suite = suite.to_owned();
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apt::SignedBy;

    fn source(uri: &str, suite: &str) -> Source {
        Source {
            uri: uri.into(),
            suite: suite.into(),
            components: vec!["main".into()],
            architectures: Vec::new(),
            signed_by: SignedBy::Keyrings(vec!["/usr/share/keyrings/debian-archive-keyring.gpg".into()]),
            check_valid_until: true,
            declared_in: "/etc/apt/sources.list.d/debian.sources".into(),
            derived_from: None,
        }
    }

    const DEBIAN: &str = "http://deb.debian.org/debian";
    const SECURITY: &str = "http://deb.debian.org/debian-security";

    fn suites(p: &Platform) -> Vec<(String, String)> {
        p.sources.archives.iter().map(|s| (s.uri.clone(), s.suite.clone())).collect()
    }

    fn choice<'a>(archives: &'a [Source], backports: Option<bool>) -> Choice<'a> {
        Choice { archives, local_dirs: &[], backports, releases: None, architectures: None }
    }

    #[test]
    fn a_bookworm_machine_reads_trixie_from_the_same_mirrors() {
        let system = [
            source(DEBIAN, "bookworm"),
            source(DEBIAN, "bookworm-updates"),
            source(SECURITY, "bookworm-security"),
            source("https://deb.nodesource.com/node_20.x", "nodistro"),
        ];
        let all = platforms(Recipe::builtins(), &choice(&system, None)).unwrap();
        assert_eq!(
            all.iter().map(|p| p.recipe.name.as_str()).collect::<Vec<_>>(),
            ["bookworm-amd64", "bookworm-arm64", "trixie-amd64", "trixie-arm64"]
        );
        let trixie = all.iter().find(|p| p.recipe.name == "trixie-amd64").unwrap();
        // A cross recipe of the machine's release reads its release's suites, not the vendor's.
        assert_eq!(suites(&all[1]), suites(&all[0])[..3]);
        assert_eq!(suites(trixie), suites(&all[3]), "both architectures of a release read the same suites");
        assert!(all[0].in_kernel_all && trixie.in_kernel_all && !all[1].in_kernel_all && !all[3].in_kernel_all);
        assert_eq!(
            suites(&all[0]),
            [
                (DEBIAN.into(), "bookworm".into()),
                (DEBIAN.into(), "bookworm-updates".into()),
                (SECURITY.into(), "bookworm-security".into()),
                ("https://deb.nodesource.com/node_20.x".into(), "nodistro".into()),
            ],
            "the machine's own release keeps its sources, the vendor's too"
        );
        assert_eq!(
            suites(trixie),
            [
                (DEBIAN.into(), "trixie".into()),
                (DEBIAN.into(), "trixie-updates".into()),
                (SECURITY.into(), "trixie-security".into())
            ],
            "never the vendor's bookworm-era suite"
        );
        assert!(!all[0].backports && trixie.describe().contains("trixie-security"));
        // Derived suites say so (a mirror that lacks one is skipped, not fatal); configured ones do not.
        assert!(all[0].sources.archives.iter().all(|s| s.derived_from.is_none()));
        let from: Vec<Option<&str>> = trixie.sources.archives.iter().map(|s| s.derived_from.as_deref()).collect();
        assert_eq!(from, [Some("bookworm"), Some("bookworm-updates"), Some("bookworm-security")]);
        assert_eq!(trixie.sources.archives[2].signed_by, system[2].signed_by, "the same keyring verifies");
    }

    #[test]
    fn a_trixie_machine_reads_bookworm_and_puts_its_own_release_first() {
        let system =
            [source(DEBIAN, "trixie"), source(SECURITY, "trixie-security"), source(DEBIAN, "trixie-backports")];
        let all = platforms(Recipe::builtins(), &choice(&system, None)).unwrap();
        assert_eq!(all[0].recipe.release, "trixie");
        assert!(all[0].backports, "the machine's sources enable backports");
        assert_eq!(
            suites(&all[1]),
            [
                (DEBIAN.into(), "bookworm".into()),
                (DEBIAN.into(), "bookworm-updates".into()),
                (SECURITY.into(), "bookworm-security".into()),
                (DEBIAN.into(), "bookworm-backports".into())
            ],
            "-updates from the release's archive when no source names one"
        );
    }

    #[test]
    fn config_sources_win_and_releases_narrow_the_list() {
        let config_and_system = [
            source("http://mirror.example/debian", "trixie"),
            source(DEBIAN, "bookworm"),
            source(SECURITY, "bookworm-security"),
        ];
        let all = platforms(Recipe::builtins(), &choice(&config_and_system, Some(true))).unwrap();
        assert_eq!(all[0].recipe.release, "trixie", "the config's first release is the default");
        assert_eq!(suites(&all[0])[0], ("http://mirror.example/debian".into(), "trixie".into()));
        assert!(suites(&all[0]).contains(&("http://mirror.example/debian".into(), "trixie-backports".into())));
        let only = ["trixie".to_owned()];
        let system =
            [source(DEBIAN, "bookworm"), source(SECURITY, "bookworm-security"), source("http://v.example", "x")];
        let narrowed =
            platforms(Recipe::builtins(), &Choice { releases: Some(&only), ..choice(&system, None) }).unwrap();
        let names: Vec<&str> = narrowed.iter().map(|p| p.recipe.name.as_str()).collect();
        assert_eq!(names, ["trixie-amd64", "trixie-arm64"], "a release is built for on every architecture");
        assert_eq!(
            suites(&narrowed[0]),
            [
                (DEBIAN.into(), "trixie".into()),
                (DEBIAN.into(), "trixie-updates".into()),
                (SECURITY.into(), "trixie-security".into())
            ],
            "still read from bookworm's mirrors, without bookworm's vendor sources"
        );
        let unknown = ["buster".to_owned()];
        let err =
            platforms(Recipe::builtins(), &Choice { releases: Some(&unknown), ..choice(&config_and_system, None) })
                .unwrap_err()
                .to_string();
        assert!(err.contains("buster") && err.contains("bookworm, trixie"), "{err}");
    }

    #[test]
    fn a_given_trixie_recipe_reads_trixie_from_a_bookworm_machines_mirrors() {
        // `--recipe trixie-amd64.toml`: built for alone, its suites by role as a builtin's.
        let mut recipes: Vec<Recipe> = Recipe::builtins().into_iter().filter(|r| r.release != "trixie").collect();
        recipes.push(Recipe::named("trixie-amd64").unwrap());
        let system = [source(DEBIAN, "bookworm"), source(SECURITY, "bookworm-security")];
        let only = ["trixie-amd64".to_owned()];
        let all = platforms(recipes, &Choice { releases: Some(&only), ..choice(&system, None) }).unwrap();
        assert_eq!(all.len(), 1);
        assert!(suites(&all[0]).iter().all(|(_, suite)| suite.starts_with("trixie")), "{:?}", suites(&all[0]));
    }

    #[test]
    fn a_recipe_without_a_release_reads_every_source() {
        let mut recipe = Recipe::builtin();
        recipe.release.clear();
        recipe.suites.clear();
        let system = [source(DEBIAN, "bookworm"), source("http://vendor.example", "stable")];
        let all = platforms(vec![recipe], &choice(&system, None)).unwrap();
        assert_eq!(all[0].sources.archives.len(), 2);
    }
}
