//! dkms.conf, read the way DKMS reads it.
//!
//! A dkms.conf is a bash script that DKMS *sources* with a few variables set
//! (`kernelver`, `arch`, `kernel_source_dir`, …); real packages compute their
//! directives with `find`, `grep` on the kernel config or `nproc`. hermod therefore
//! never parses the file itself: [`EVAL_SCRIPT`] sources it with bash inside the
//! sandbox and prints the resulting directives as NUL-separated records, which
//! [`parse_records`] reads and [`Records::interpret`] turns into a [`DkmsConf`].
//! Everything after that is plain data.
//!
//! # What DKMS provides, and how hermod provides it
//!
//! - Variables while sourcing: `kernelver`, `arch` (`x86_64`), `kernel_source_dir`
//!   (`/lib/modules/<KREL>/build`, as DKMS sets it: the headers package's link
//!   to `/usr/src/linux-headers-<KREL>`, beside its `source` link to the
//!   `-common` headers, which zfs's configure takes by `${kernel_source_dir/%build/source}`),
//!   `kernel_config` (its `include/config/auto.conf`, else `.config`, as DKMS 3.x),
//!   `dkms_tree` (`/var/lib/dkms`), `source_tree` (`/usr/src`), `install_tree`
//!   (`/lib/modules`), `tmp_location` (`/tmp`), `parallel_jobs`, `module`,
//!   `module_version`; and `/boot/config-<KREL>`, a copy of the headers' `.config`.
//! - `module` and `module_version`: DKMS knows them before sourcing (from
//!   `dkms build -m M -v V`, or, for `dkms add DIR`, from a first reading of
//!   DIR/dkms.conf with both empty). hermod does the latter: a first pass sources
//!   dkms.conf alone with both empty and takes its PACKAGE_NAME and
//!   PACKAGE_VERSION; the second pass sources it again with them set.
//! - Overrides ([`overrides`]): after dkms.conf, DKMS 3.x sources, if present,
//!   `/etc/dkms/<module>.conf`, `<module>-<version>.conf`,
//!   `<module>-<version>-<kernelver>.conf`, `<module>-<version>-<kernelver>-<arch>.conf`,
//!   `<module>--<kernelver>.conf` and `<module>--<kernelver>-<arch>.conf`, each in
//!   its own subshell that sees only the directives so far. hermod reads them from
//!   the host's `/etc/dkms` (`--dkms-overrides DIR`, `HERMOD_DKMS_OVERRIDES`),
//!   copies the ones that exist and apply into the sandbox, and hashes them into
//!   the cache key (input `dkms-overrides`).
//!
//! # Which DKMS: 3.0.10 (bookworm) or 3.2.2 (trixie)
//!
//! Each release's `dkms` reads dkms.conf its own way, and hermod reads it as the
//! build root's release does ([`Semantics`], from the recipe's `dkms`; the
//! eval script takes it as its last argument, [`Context::semantics`] and
//! [`DkmsConf::semantics`] carry it to the interpretation and the build script).
//! Read from DKMS's own `dkms.in` at tags v3.0.10 and v3.2.2, and from
//! Debian's `dkms_3.0.10-8+deb12u1` (which backports BUILD_EXCLUSIVE_CONFIG).
//! Every difference hermod implements, once:
//!
//! | what | 3.0.10 ([`Semantics::V3_0`]) | 3.2.2 ([`Semantics::V3_2`]) |
//! |---|---|---|
//! | a directive's value when read (safe_source) | expanded unquoted by `eval echo` (word-split, globbed, joined by spaces) and sourced again as `NAME[i]="…"`: parsed by bash a second time | the same, and one trailing CR cut from each value |
//! | PRE_BUILD, POST_BUILD | `(cd <build>/; exec $run)`: split and globbed, not parsed again; its status ignored | `( eval "cd <build>/ && $run" )`: parsed again; a failure ends DKMS with the script's status (77 reads as "skipped") |
//! | the make command | `eval "{ $cmd; } >> log"` in a subshell | `( eval "$cmd" )` |
//! | CLEAN | run before make (default `make -C <headers> M=<build> clean`), status ignored | not run (the build directory is a fresh copy) |
//! | BUILD_EXCLUSIVE_KERNEL_MIN/_MAX | not directives: ignored | skip outside the range |
//! | OBSOLETE_BY | read only when installing | acts as _KERNEL_MAX when that is unset |
//! | BUILD_EXCLUSIVE_CONFIG | `grep -E` on the headers' `.config` (Debian's backport) | `grep` on `kernel_config` (`include/config/auto.conf`, else `.config`) |
//! | `BUILD_EXCLUSIVE_*[i]`, i ≥ 1 (upstream 3.3's per-module form, read as 3.2's superset; `exclusive.rs`) | ignored (element 0 only) | module i left out of the package when its own condition fails |
//! | override files | `/etc/dkms/<m>.conf`, `<m>-<v>.conf`, `<m>-<v>-<krel>.conf`, `<m>-<v>-<krel>-<arch>.conf` | also `<m>--<krel>.conf`, `<m>--<krel>-<arch>.conf` (hermod's key hashes these for both) |
//!
//! In both, `[[ -x ${run%% *} ]]` decides whether PRE_BUILD/POST_BUILD runs
//! (`<build>/` and the value up to its first space; not executable: a warning),
//! and a failing make is DKMS's exit 10, never the make's status.
//!
//! # Exit 77 is DKMS's "skipped"; in hermod a step's 77 is a failure
//!
//! DKMS exits 77 when BUILD_EXCLUSIVE_* excludes the kernel, and 3.2 also
//! passes a failing PRE_BUILD's or POST_BUILD's own status through, so a
//! configure that exits 77 looks like a skip to DKMS's callers. hermod skips
//! only for BUILD_EXCLUSIVE_* (decided before the build step exists,
//! [`DkmsConf::skip`]); a patch, PRE_BUILD, make or POST_BUILD that fails,
//! with 77 or any status, is a failed build (exit 5) naming the step.
//!
//! # Directives, and where hermod differs from both
//!
//! - A bash syntax error (in dkms.conf or an override file) is refused; DKMS
//!   silently drops the rest of the file. CRLF line endings are accepted.
//! - Modules: their count is the highest index + 1 over BUILT_MODULE_NAME,
//!   BUILT_MODULE_LOCATION, DEST_MODULE_NAME and DEST_MODULE_LOCATION (3.x; 3.0.10
//!   used the largest array *length*, which miscounts sparse arrays). A record
//!   without BUILT_MODULE_NAME is an error (a gap), except that a single record
//!   defaults to PACKAGE_NAME. Zero records is refused (3.x only warns and builds
//!   nothing; an empty package is never what was meant). Names ending in `.o` or
//!   `.ko` and duplicates are refused, as in 3.x.
//! - DEST_MODULE_LOCATION, when given, must start with `/kernel`, `/updates` or
//!   `/extra` (as in DKMS). Debian's DKMS installs under `updates/dkms` whatever it
//!   says, and so does hermod. Unlike DKMS, a record *without* it is accepted: the
//!   value is never used on Debian.
//! - STRIP[#]: a value starting with `n`/`N` means no, `y`/`Y` yes, empty inherits
//!   STRIP[0], anything else yes (DKMS's `case`).
//! - MAKE/MAKE_MATCH: MAKE[0] is the default unless MAKE_MATCH[0] is set; the last
//!   MAKE[i] whose non-empty MAKE_MATCH[i] matches the kernel release (bash `=~`,
//!   evaluated by bash) wins; then DKMS's `make` → `make -jN KERNELRELEASE=<KREL>`
//!   rewrite. Every index is considered (DKMS loops to the array's *length*, so it
//!   misses the last entries of a sparse array); the same for PATCH.
//! - PATCH[#]/PATCH_MATCH[#]: `patch -p1 < patches/<p>` in index order, those
//!   without PATCH_MATCH or whose regex matches. A name with a `..` component or a
//!   leading `/` is refused before building (3.x refuses `..`; 3.0.10 neither), a
//!   missing file too, naming it; a failing patch fails the build.
//! - PRE_BUILD/POST_BUILD run from the build directory as the table says; hermod
//!   names it `/build/src` (a link to DKMS's build directory). POST_BUILD finds
//!   `/var/lib/dkms/<module>/<version>/<KREL>/x86_64/module/` holding the built
//!   modules under their DEST_MODULE_NAMEs, as DKMS leaves them (zfs's
//!   POST_BUILD copies files beside them).
//! - BUILD_EXCLUSIVE_KERNEL (regex), _KERNEL_MIN/_KERNEL_MAX (3.2; DKMS's padded
//!   string comparison, [`version_key`]), _ARCH (regex on `x86_64`), _CONFIG
//!   (`CONFIG_X` must be `y` or `m`, `!CONFIG_Y` must not be): not matching means
//!   the build is *skipped*, which is not a failure ([`DkmsConf::skip`]). The
//!   comparison is bytewise (DKMS compares in the caller's locale).
//! - BUILD_DEPENDS[#]: each named DKMS module's source must be in the build root
//!   (`/usr/src/<name>-*`), else a clear error (DKMS looks for it installed).
//! - AUTOINSTALL, REMAKE_INITRD, NO_WEAK_MODULES, BUILD_DEPENDS_REBUILD,
//!   MODULES_CONF*, POST_ADD, PRE_INSTALL, POST_INSTALL, POST_REMOVE: accepted and
//!   ignored (they are about installing on a host: PRE_INSTALL runs from DKMS's
//!   source tree at `dkms install`, which is the farm's dpkg, not a build; 3.2
//!   also rejects AUTOINSTALL values other than yes/no, hermod does not).
//! - A directive value's globs match in `/` (DKMS's working directory, not known).
//! - Not done: DKMS 3.x appends `LLVM=1` for clang-built kernels (Debian's are
//!   built with gcc), and DKMS exports `CC` from CONFIG_CC_VERSION_TEXT for
//!   PRE_BUILD (3.0.10; kbuild sets it for make).
//!
//! The build runs in `$dkms_tree/$module/$module_version/build` (DKMS's
//! build directory, which many MAKE lines name), a real directory: the
//! source copy made in `/build/src` is moved there and `/build/src` links to it.

mod exclusive;
mod interpret;
pub mod overrides;
mod semantics;
#[cfg(test)]
mod tests;
mod version;

use std::collections::{BTreeMap, BTreeSet};

pub use overrides::{OverrideFile, OverridesError};
pub use semantics::Semantics;
pub use version::version_key;

/// The bash program that evaluates a dkms.conf inside the sandbox.
pub const EVAL_SCRIPT: &str = include_str!("eval.sh");

/// Exit status of [`EVAL_SCRIPT`] when `bash -n` rejects the file.
pub const EXIT_SYNTAX_ERROR: i32 = 65;

/// Where DKMS keeps its trees; `$dkms_tree/<module>/<version>/build` is the build dir.
pub const DKMS_TREE: &str = "/var/lib/dkms";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DkmsError {
    #[error("dkms.conf does not set {0} (or sets it empty)")]
    Missing(&'static str),
    #[error("dkms.conf sets {} to {}, which is not usable: {why}", crate::bounded::excerpt(.name), crate::bounded::excerpt(.value))]
    Invalid { name: String, value: String, why: &'static str },
    #[error("dkms.conf declares no module: no BUILT_MODULE_NAME, BUILT_MODULE_LOCATION, DEST_MODULE_NAME or DEST_MODULE_LOCATION entry")]
    NoModules,
    #[error("dkms.conf declares {count} module records (indices {indices:?}) but record {missing} has no BUILT_MODULE_NAME: a gap in the module indices")]
    IndexGap { count: u64, indices: Vec<u64>, missing: u64 },
    #[error("dkms.conf declares module {} twice (in {directive}[{index}])", crate::bounded::excerpt(.name))]
    Duplicate { name: String, directive: &'static str, index: u64 },
    #[error("dkms.conf's PATCH[{index}] is {}: patch names must stay inside patches/ (no `..` component, no leading `/`)", crate::bounded::excerpt(.value))]
    PatchPath { index: u64, value: String },
    #[error("dkms.conf's PATCH[{index}] names {}, which is not in the source", crate::bounded::excerpt(&format!("patches/{}", .value)))]
    PatchMissing { index: u64, value: String },
    #[error("the dkms.conf evaluation printed a malformed record: {0}")]
    Malformed(String),
}

/// One module a dkms.conf declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// File name of the built module without `.ko`.
    pub built_name: String,
    /// Directory, relative to the build tree, where make leaves it ("" = top).
    pub built_location: String,
    /// Name it is installed under (DEST_MODULE_NAME, default: built_name).
    pub dest_name: String,
    /// DEST_MODULE_LOCATION as given ("" if not): validated, recorded, not used
    /// (Debian's DKMS, and hermod, install under `updates/dkms`).
    pub dest_location: String,
    /// Whether to `strip -g` it (STRIP[#], default yes).
    pub strip: bool,
}

/// The directives of one evaluated dkms.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkmsConf {
    pub package_name: String,
    pub package_version: String,
    pub modules: Vec<Module>,
    /// The make command DKMS would run, after MAKE_MATCH selection and the
    /// `make` → `make -jN KERNELRELEASE=…` rewrite.
    pub make_command: String,
    /// Patches to apply, in order (names under `patches/`).
    pub patches: Vec<String>,
    /// PRE_BUILD and POST_BUILD: a script relative to the build dir, maybe
    /// with arguments, as DKMS holds it (re-parsed once when it was read).
    pub pre_build: Option<String>,
    pub post_build: Option<String>,
    /// The clean command DKMS 3.0.10 runs before make (CLEAN, else
    /// `make -C <headers> M=<build dir> clean`); `None` for 3.2, which runs none.
    pub clean: Option<String>,
    /// Whose DKMS's reading applies: it also decides how the build script
    /// runs PRE_BUILD/POST_BUILD and the make command.
    pub semantics: Semantics,
    /// Other DKMS modules whose source must be in the build root.
    pub build_depends: Vec<String>,
    /// Why the build is skipped (a BUILD_EXCLUSIVE_* directive does not match).
    pub skip: Option<String>,
    /// Modules left out by their own `BUILD_EXCLUSIVE_*[i]` (3.3's per-module
    /// form, [`Semantics::V3_2`]), each with the reason; not in `modules`.
    pub excluded: Vec<String>,
}

/// The raw records printed by [`EVAL_SCRIPT`].
///
/// Every directive is printed as an array (in bash, `X=v` is `X[0]=v`), so a
/// scalar directive is element 0.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Records {
    pub arrays: BTreeMap<String, BTreeMap<u64, String>>,
    /// Regex directives whose entry matched (bash `=~`): (`MAKE_MATCH`, i), (`PATCH_MATCH`, i),
    /// (`BUILD_EXCLUSIVE_KERNEL`, i), (`BUILD_EXCLUSIVE_ARCH`, i).
    pub matched: BTreeSet<(String, u64)>,
    /// Words of `BUILD_EXCLUSIVE_CONFIG[i]` the kernel config does not satisfy: (i, word).
    pub config_unmet: Vec<(u64, String)>,
    /// PACKAGE_NAME and PACKAGE_VERSION of the first pass (module and
    /// module_version empty), which named `module` and `module_version`.
    pub first_pass: Option<(String, String)>,
}

/// Split the NUL-separated output of [`EVAL_SCRIPT`]:
/// `A NAME INDEX VALUE` (an array element; `S NAME VALUE` is element 0),
/// `R NAME INDEX` (a regex matched), `C INDEX WORD` (an unmet word of
/// `BUILD_EXCLUSIVE_CONFIG[INDEX]`), `N NAME VERSION` (the first pass).
pub fn parse_records(raw: &[u8]) -> Result<Records, DkmsError> {
    let text = String::from_utf8_lossy(raw);
    let mut fields = text.split('\0');
    let mut records = Records::default();
    let mut next = |what: &str| {
        fields
            .next()
            .map(str::to_owned)
            .ok_or_else(|| DkmsError::Malformed(format!("truncated record, expected {what}")))
    };
    let index = |name: &str, text: String| {
        text.parse::<u64>().map_err(|_| {
            DkmsError::Malformed(format!(
                "{} has the index {}, not a number",
                crate::bounded::excerpt(name),
                crate::bounded::excerpt(&text)
            ))
        })
    };
    loop {
        let tag = match next("tag") {
            Ok(tag) if tag.is_empty() => break,
            Ok(tag) => tag,
            Err(_) => break,
        };
        match tag.as_str() {
            "S" => {
                let name = next("name")?;
                let value = next("value")?;
                records.arrays.entry(name).or_default().insert(0, value);
            }
            "A" => {
                let name = next("name")?;
                let i = index(&name, next("index")?)?;
                let value = next("value")?;
                records.arrays.entry(name).or_default().insert(i, value);
            }
            "R" => {
                let name = next("name")?;
                let i = index(&name, next("index")?)?;
                records.matched.insert((name, i));
            }
            "C" => {
                let i = index("BUILD_EXCLUSIVE_CONFIG", next("index")?)?;
                records.config_unmet.push((i, next("config word")?));
            }
            "N" => {
                let name = next("name")?;
                let version = next("version")?;
                records.first_pass = Some((name, version));
            }
            other => return Err(DkmsError::Malformed(format!("unknown tag {}", crate::bounded::excerpt(other)))),
        }
    }
    Ok(records)
}

/// What the build needs to know besides the records.
pub struct Context<'a> {
    pub kernel_release: &'a str,
    pub arch: &'a str,
    pub kernel_source_dir: &'a str,
    pub build_dir: &'a str,
    pub parallel_jobs: usize,
    /// Which release's DKMS is imitated (from the build root's recipe).
    pub semantics: Semantics,
}
