//! hermod's configuration file, `/etc/hermod/config.toml` (or `--config FILE`).
//!
//! The file is optional: without it, hermod uses the machine's APT sources and
//! nothing else. Each feature owns one part of [`Config`]; unknown keys are
//! refused (a misspelt key that silently does nothing is worse than an error),
//! so a new feature adds its field or `[section]` here.
//!
//! Package sources, the first part:
//!
//! ```toml
//! # Read /etc/apt/sources.list{,.d} (default true).
//! use_system_sources = true
//! # Directories of .debs, indexed from their control files. No signature
//! # covers them: they are trusted because the administrator put them here.
//! local_debs = ["/srv/hermod/debs"]
//!
//! # More archives, like deb822 stanzas; tried before the system's.
//! [[sources]]
//! uri = "http://snapshot.debian.org/archive/debian/20250520T000000Z"
//! suites = ["bookworm"]
//! components = ["main"]
//! signed_by = "/usr/share/keyrings/debian-archive-keyring.gpg"
//! check_valid_until = false   # snapshots serve long-expired Release files
//! ```
//!
//! Releases (see [`crate::platform`]): every builtin recipe's release is read
//! from the same mirrors as the machine's own (its suites renamed), so a
//! bookworm master builds for trixie too:
//!
//! ```toml
//! releases = ["bookworm", "trixie"]   # default: every builtin recipe
//! backports = true                    # read <release>-backports too (default: if a source names one)
//! architectures = ["amd64", "arm64"]  # what `--kernel all` covers (default: the master's own, amd64)
//! ```
//!
//! Every archive's InRelease is verified with its `signed_by` keyrings (APT's
//! trusted.gpg.d when absent), and every index against that InRelease, exactly
//! as for the machine's own sources (see [`crate::apt`]).
//!
//! The shared cache (see [`crate::shared_cache`]; each key also an environment
//! variable, which wins):
//!
//! ```toml
//! remote = "http://cache.example:8080/hermod"   # HERMOD_REMOTE
//! remote_push = true                           # HERMOD_REMOTE_PUSH
//! signing_key = "/etc/hermod/cache.key"        # HERMOD_SIGNING_KEY
//! trusted_keys = ["cache:BASE64…"]             # HERMOD_TRUSTED_KEYS (comma-separated there)
//! remote_token = "…"                           # HERMOD_REMOTE_TOKEN
//! # or an S3 bucket (credentials: AWS_ACCESS_KEY_ID…, ~/.aws/credentials):
//! # remote = "s3://fleet-cache/hermod"
//! s3_endpoint = "http://minio.example:9000"    # HERMOD_S3_ENDPOINT (default: AWS)
//! s3_region = "eu-west-1"                      # AWS_REGION, AWS_DEFAULT_REGION
//! ```
//!
//! Budgets for untrusted input (.debs, archive indices, a build's outputs;
//! see [`crate::bounded`] for the defaults and why), each optional:
//!
//! ```toml
//! [input_limits]
//! max_unpacked_size = "1G"   # one package's data.tar, decompressed (and the disk an unpack fills)
//! max_file_size = "256M"     # one file inside a package
//! max_entries = 200000       # entries of one tar stream
//! max_path_length = 4096     # one path or link target inside a package
//! max_control_size = "16M"   # a package's control.tar, decompressed
//! max_stanza_size = "1M"     # a control file, one stanza of an index
//! max_index_size = "256M"    # a Packages index, decompressed
//! max_release_size = "16M"   # an InRelease file
//! max_module_size = "256M"   # one module a build leaves
//! max_layer_size = "32G"     # an OCI layer, decompressed (rootfs import)
//! max_names_size = "32M"     # a module source's paths, summed
//! max_deb_size = "1G"        # one .deb file read from the host (publish, verify, a farm's debs/)
//! ```
//!
//! The machine's part in a fleet (see [`crate::farm`]):
//!
//! ```toml
//! # "master": may build what it lacks; "farm" (the default): only fetches
//! # prebuilt packages, so it needs no compiler.
//! role = "farm"
//! # The modules this machine wants for every kernel it gets: a -dkms package
//! # (pkg:NAME[=VERSION], built from the archive's package on a master), a
//! # *-dkms .deb file or a DKMS source directory; or a table naming the module
//! # package when it is not the -dkms name without "-dkms".
//! wanted = ["pkg:v4l2loopback-dkms", { source = "/usr/src/hello-0.1", package = "hello" }]
//! state_dir = "/var/lib/hermod"                # pending/, debs/, queue/ (HERMOD_STATE_DIR)
//!
//! # The APT repository `hermod publish` writes, as a farm machine reads it.
//! [repository]
//! uri = "http://master.example/hermod"         # or file:/srv/hermod/repo
//! suite = "hermod"
//! component = "main"
//! signed_by = "/etc/apt/keyrings/hermod.asc"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::apt::{self, PackageSources, SignedBy, Source};
use crate::bounded::InputLimits;
use crate::platform::{self, Platform};
use crate::rootfs::Recipe;

/// Where the configuration is read from when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/hermod/config.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl crate::exit::HasExitCode for ConfigError {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            ConfigError::Read { .. } | ConfigError::Parse { .. } | ConfigError::Invalid { .. } => {
                crate::exit::Code::BadInput
            }
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Use `/etc/apt/sources.list` and `sources.list.d/` (default true).
    #[serde(default = "yes")]
    pub use_system_sources: bool,
    /// Directories of .debs (absolute paths).
    #[serde(default)]
    pub local_debs: Vec<PathBuf>,
    /// More archives, tried before the system's.
    #[serde(default)]
    pub sources: Vec<SourceEntry>,
    /// Read each release's backports suite [default: if any source names one].
    #[serde(default)]
    pub backports: Option<bool>,
    /// The releases built for (codenames or recipe names) [default: every builtin recipe].
    #[serde(default)]
    pub releases: Option<Vec<String>>,
    /// The kernel architectures `--kernel all` covers [default: the master's
    /// own: every recipe that is not a cross recipe]. A kernel named
    /// explicitly is built whatever its architecture.
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    /// The kernel flavours a master keeps built (`hermod sync`, `hermod status`), as
    /// `--kernel all:FLAVOURS` takes them (globs: `amd64`, `cloud-amd64`, `*`)
    /// [default: the plain flavour of each architecture, what `--kernel all` covers].
    #[serde(default)]
    pub flavours: Option<Vec<String>>,
    /// Sign modules with this private key (DKMS's `framework.conf` name; see `module_signing.rs`).
    #[serde(default)]
    pub mok_signing_key: Option<PathBuf>,
    /// The certificate of `mok_signing_key`.
    #[serde(default)]
    pub mok_certificate: Option<PathBuf>,
    /// The shared cache's base URL (`HERMOD_REMOTE`; see `remote.rs`).
    #[serde(default)]
    pub remote: Option<String>,
    /// Push local builds to the shared cache (`HERMOD_REMOTE_PUSH`).
    #[serde(default)]
    pub remote_push: Option<bool>,
    /// The secret key that signs pushed cache entries (`HERMOD_SIGNING_KEY`; see `trust.rs`).
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// Public keys `name:base64` whose signatures make a shared entry trusted
    /// (`HERMOD_TRUSTED_KEYS`): a list, or one comma-separated string.
    #[serde(default)]
    pub trusted_keys: Option<KeyList>,
    /// Bearer token for the shared cache (`HERMOD_REMOTE_TOKEN`).
    #[serde(default)]
    pub remote_token: Option<String>,
    /// An S3-compatible server for an `s3://` remote (`HERMOD_S3_ENDPOINT`; default: AWS).
    #[serde(default)]
    pub s3_endpoint: Option<String>,
    /// The region an `s3://` remote signs for (`AWS_REGION`; default: `~/.aws/config`, us-east-1).
    #[serde(default)]
    pub s3_region: Option<String>,
    /// May this machine build (`master`) or only fetch (`farm`, the default)?
    #[serde(default)]
    pub role: Role,
    /// The modules this machine wants for each of its kernels.
    #[serde(default)]
    pub wanted: Vec<WantedEntry>,
    /// Where pending, dropped-in and queued packages live [default: /var/lib/hermod].
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// The hermod APT repository this machine fetches module packages from.
    #[serde(default)]
    pub repository: Option<RepositoryEntry>,
    /// `[publish]`: the APT repository a master writes (`hermod sync` publishes there;
    /// `hermod status` reads it).
    #[serde(default)]
    pub publish: Option<PublishEntry>,
    /// Budgets for untrusted input (see [`crate::bounded`]).
    #[serde(default)]
    pub input_limits: InputLimits,
    /// The file this was read from (`None`: no file, the defaults).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

/// One `[[sources]]` entry: the fields of a deb822 `.sources` stanza.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    /// Archive root: `http://`, `https://` or `file:`.
    pub uri: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// Keyring file(s) whose keys may sign the InRelease [default: APT's trusted.gpg.d].
    #[serde(default)]
    pub signed_by: Option<OneOrMany>,
    /// Only for these architectures [default: any].
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Refuse an InRelease whose Valid-Until has passed (default true).
    #[serde(default = "yes")]
    pub check_valid_until: bool,
}

/// Whether a machine may compile modules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Builds what it lacks (it has, or may download, the build roots).
    Master,
    /// Only installs prebuilt packages: no compiler is ever run here.
    #[default]
    Farm,
}

/// One `wanted` item: a SOURCE as `hermod build` takes it, or a table that
/// also names the module package.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum WantedEntry {
    Source(String),
    Table(WantedTable),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WantedTable {
    /// A SOURCE (directory, *-dkms .deb, pkg:NAME); optional on a farm machine.
    #[serde(default)]
    pub source: Option<String>,
    /// The module package's name without `-modules-<KREL>` (dkms.conf's PACKAGE_NAME).
    #[serde(default)]
    pub package: Option<String>,
}

/// `[repository]`: one suite and component of an APT repository written by
/// `hermod publish`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryEntry {
    /// `http://`, `https://` or `file:`.
    pub uri: String,
    #[serde(default = "default_suite")]
    pub suite: String,
    #[serde(default = "default_component")]
    pub component: String,
    /// The repository's public key file(s) (`hermod repo keygen`'s PREFIX.asc).
    pub signed_by: OneOrMany,
}

/// `[publish]`: the directory of the APT repository a master maintains, as
/// `hermod publish --repo DIR --suite S --component C --sign-key FILE` takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishEntry {
    /// The repository's root directory (absolute).
    pub dir: PathBuf,
    #[serde(default = "default_suite")]
    pub suite: String,
    #[serde(default = "default_component")]
    pub component: String,
    /// The armored secret key that signs InRelease (`hermod repo keygen`'s PREFIX.key).
    #[serde(default)]
    pub sign_key: Option<PathBuf>,
}

fn default_suite() -> String {
    "hermod".into()
}

fn default_component() -> String {
    "main".into()
}

/// `"x"` or `["x", "y"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

/// `"a:…,b:…"` or `["a:…", "b:…"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KeyList {
    Joined(String),
    List(Vec<String>),
}

impl KeyList {
    pub fn items(&self) -> Vec<String> {
        match self {
            KeyList::Joined(s) => s.split(',').map(str::to_owned).collect(),
            KeyList::List(v) => v.clone(),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            use_system_sources: true,
            backports: None,
            releases: None,
            architectures: None,
            flavours: None,
            local_debs: Vec::new(),
            sources: Vec::new(),
            mok_signing_key: None,
            mok_certificate: None,
            remote: None,
            remote_push: None,
            signing_key: None,
            trusted_keys: None,
            remote_token: None,
            s3_endpoint: None,
            s3_region: None,
            role: Role::Farm,
            wanted: Vec::new(),
            state_dir: None,
            repository: None,
            publish: None,
            input_limits: InputLimits::default(),
            path: None,
        }
    }
}

impl Config {
    /// Read `path`, or [`DEFAULT_PATH`] if it exists, or use the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match path {
            Some(p) => p.to_owned(),
            None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
            None => return Ok(Config::default()),
        };
        let text = crate::bounded::read_user_text(&path, crate::bounded::MAX_USER_FILE)
            .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
        let config = Config::parse(&text, &path)?;
        // The readers of untrusted input take their budgets from here (see `bounded`).
        crate::bounded::install(config.input_limits);
        Ok(config)
    }

    /// Parse and check the text of a config file read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })?;
        config.path = Some(path.to_owned());
        let invalid = |message: String| ConfigError::Invalid { path: path.to_owned(), message };
        for dir in &config.local_debs {
            if !dir.is_absolute() {
                return Err(invalid(format!("local_debs: {} is not an absolute path", dir.display())));
            }
        }
        for (i, s) in config.sources.iter().enumerate() {
            let at = |what: &str| format!("sources[{i}] ({}): {what}", s.uri);
            if !["http://", "https://", "file:"].iter().any(|scheme| s.uri.starts_with(scheme)) {
                return Err(invalid(at("uri must start with http://, https:// or file:")));
            }
            if s.suites.is_empty() || s.components.is_empty() {
                return Err(invalid(at(
                    "needs at least one suite and one component (flat repositories are not supported)",
                )));
            }
            let words = s.suites.iter().chain(&s.components).chain(&s.architectures);
            if let Some(bad) = words.clone().find(|w| w.is_empty() || w.contains(char::is_whitespace)) {
                return Err(invalid(at(&format!("{bad:?} is not a suite, component or architecture name"))));
            }
            if let Some(key) = s.keyrings().iter().find(|k| !k.is_absolute()) {
                return Err(invalid(at(&format!("signed_by {} is not an absolute keyring path", key.display()))));
            }
        }
        if let Some(repo) = &config.repository {
            let at = |what: &str| format!("repository ({}): {what}", repo.uri);
            if !["http://", "https://", "file:"].iter().any(|scheme| repo.uri.starts_with(scheme)) {
                return Err(invalid(at("uri must start with http://, https:// or file:")));
            }
            if let Some(bad) = [&repo.suite, &repo.component].into_iter().find(|w| !is_word(w)) {
                return Err(invalid(at(&format!("{bad:?} is not a suite or component name"))));
            }
            let keys = repo.signed_by.paths();
            if keys.is_empty() {
                return Err(invalid(at("signed_by names no key file")));
            }
            if let Some(key) = keys.iter().find(|k| !k.is_absolute()) {
                return Err(invalid(at(&format!("signed_by {} is not an absolute path", key.display()))));
            }
        }
        if let Some(publish) = &config.publish {
            if !publish.dir.is_absolute() {
                return Err(invalid(format!("publish: dir {} is not an absolute path", publish.dir.display())));
            }
            if let Some(bad) = [&publish.suite, &publish.component].into_iter().find(|w| !is_word(w)) {
                return Err(invalid(format!("publish: {bad:?} is not a suite or component name")));
            }
            if let Some(key) = publish.sign_key.as_ref().filter(|k| !k.is_absolute()) {
                return Err(invalid(format!("publish: sign_key {} is not an absolute path", key.display())));
            }
        }
        if let Some(bad) = config.flavours.iter().flatten().find(|f| f.is_empty() || f.contains([',', ' '])) {
            return Err(invalid(format!("flavours: {bad:?} is not a kernel flavour (or glob)")));
        }
        if let Some(dir) = config.state_dir.as_ref().filter(|d| !d.is_absolute()) {
            return Err(invalid(format!("state_dir: {} is not an absolute path", dir.display())));
        }
        for (i, entry) in config.wanted.iter().enumerate() {
            if let Err(message) = entry.check() {
                return Err(invalid(format!("wanted[{i}]: {message}")));
            }
        }
        Ok(config)
    }

    /// The repository as an APT source (see [`crate::farm::repository`]).
    pub fn repository_source(&self) -> Option<Source> {
        let repo = self.repository.as_ref()?;
        Some(Source {
            uri: repo.uri.trim_end_matches('/').to_owned(),
            suite: repo.suite.clone(),
            components: vec![repo.component.clone()],
            architectures: Vec::new(),
            signed_by: SignedBy::Keyrings(repo.signed_by.paths()),
            check_valid_until: true,
            declared_in: self.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_PATH)),
            derived_from: None,
        })
    }

    /// The platforms built for (see [`crate::platform`]): `recipe` alone when
    /// given (`--recipe`), else every builtin one the config's `releases` keeps,
    /// each with its sources; the machine's own release first.
    pub fn platforms(&self, recipe: Option<Recipe>) -> Result<Vec<Platform>, ConfigError> {
        let all = self.package_sources().map_err(|e| self.invalid(e.to_string()))?;
        // A `--recipe` is built for alone, but the builtin recipes still say
        // which suite plays which role: a trixie recipe on a bookworm machine
        // reads trixie's suites from bookworm's mirrors, never bookworm's.
        let (recipes, only) = match recipe {
            Some(recipe) => {
                let only = vec![recipe.name.clone()];
                let mut recipes: Vec<Recipe> =
                    Recipe::builtins().into_iter().filter(|r| r.name != recipe.name).collect();
                recipes.push(recipe);
                (recipes, Some(only))
            }
            None => (Recipe::builtins(), self.releases.clone()),
        };
        let choice = platform::Choice {
            archives: &all.archives,
            local_dirs: &all.local_dirs,
            backports: self.backports,
            releases: only.as_deref(),
            architectures: self.architectures.as_deref(),
        };
        platform::platforms(recipes, &choice).map_err(|e| self.invalid(e.to_string()))
    }

    fn invalid(&self, message: String) -> ConfigError {
        ConfigError::Invalid { path: self.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_PATH)), message }
    }

    /// The package sources this configuration names: its own archives first,
    /// then the system's (if used), then the local directories.
    pub fn package_sources(&self) -> Result<PackageSources, apt::AptError> {
        let declared_in = self.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
        let defaults = apt::sources::default_keyrings(Path::new("/etc/apt"))?;
        let mut archives = Vec::new();
        for entry in &self.sources {
            let keyrings = entry.keyrings();
            let signed_by = SignedBy::Keyrings(if keyrings.is_empty() { defaults.clone() } else { keyrings });
            for suite in &entry.suites {
                archives.push(Source {
                    uri: entry.uri.trim_end_matches('/').to_owned(),
                    suite: suite.clone(),
                    components: entry.components.clone(),
                    architectures: entry.architectures.clone(),
                    signed_by: signed_by.clone(),
                    check_valid_until: entry.check_valid_until,
                    declared_in: declared_in.clone(),
                    derived_from: None,
                });
            }
        }
        if self.use_system_sources {
            archives.extend(PackageSources::system()?.archives);
        }
        Ok(PackageSources { archives, local_dirs: self.local_debs.clone() })
    }
}

impl SourceEntry {
    fn keyrings(&self) -> Vec<PathBuf> {
        self.signed_by.as_ref().map(OneOrMany::paths).unwrap_or_default()
    }
}

impl OneOrMany {
    pub fn paths(&self) -> Vec<PathBuf> {
        match self {
            OneOrMany::One(p) => vec![p.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

impl WantedEntry {
    /// The SOURCE to build it from, if given.
    pub fn source(&self) -> Option<&str> {
        match self {
            WantedEntry::Source(s) => Some(s),
            WantedEntry::Table(t) => t.source.as_deref(),
        }
    }

    /// The explicitly named module package, if given.
    pub fn package(&self) -> Option<&str> {
        match self {
            WantedEntry::Source(_) => None,
            WantedEntry::Table(t) => t.package.as_deref(),
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.source().is_none() && self.package().is_none() {
            return Err("names neither a source nor a package".into());
        }
        if let Some(source) = self.source().filter(|s| s.is_empty()) {
            return Err(format!("empty source {source:?}"));
        }
        if let Some(package) = self.package() {
            let valid = package.len() >= 2
                && package.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && package.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
            if !valid {
                return Err(format!("package {package:?} is not a Debian package name"));
            }
        }
        Ok(())
    }
}

fn is_word(w: &str) -> bool {
    !w.is_empty() && !w.contains(char::is_whitespace) && !w.contains('/')
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
