//! The documented exit statuses, typed. Each module's error says its own
//! status by implementing [`HasExitCode`] next to its definition, so a new
//! variant cannot be added without deciding its status (every match is
//! exhaustive); the `--help` table is made from [`Code::DOCUMENTED`], so the
//! help and the code cannot drift apart. At the bottom of the crate: every
//! layer uses it, it uses nothing.

/// An exit status of `hermod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The command did what was asked.
    Success,
    /// A bug, or a failure hermod cannot attribute (packaging a .deb, a child's missing report).
    Internal,
    /// The command line (or a value given on it) cannot work as asked.
    Usage,
    /// An input is unusable: source, dkms.conf, recipe, lock file, config, keys, a .deb, an image.
    BadInput,
    /// The archive has no headers for the requested kernel (or no such kernel).
    NoHeaders,
    /// The build failed: make error, timeout, signing, a module too large.
    BuildFailed,
    /// A module dkms.conf declares was not built.
    ModuleMissing,
    /// The archive failed: network, signature or checksum verification.
    Archive,
    /// The sandbox (or qemu, or a verify child's conditions) could not be set up.
    Sandbox,
    /// Reading or writing the store, the output or another local file failed.
    Io,
    /// A wanted module package is available nowhere and this machine may not build it
    /// (`status`: something wanted is missing).
    NotAvailable,
    /// dpkg or modprobe failed.
    Install,
    /// The repository refused the change (immutable version, unsigned into signed).
    Refused,
    /// `verify`: the two builds (or the rebuild and `--against`) differ.
    Differs,
    /// `load-test`, `verify --boot`: a module did not load or unload in its kernel.
    LoadFailed,
    /// Every requested build was skipped by dkms.conf's BUILD_EXCLUSIVE_* (DKMS's 77).
    NothingBuilt,
    /// SIGINT (130) or SIGTERM (143): from `interrupt.rs`, never from an error;
    /// listed for the help table.
    Interrupted,
    /// `verify`: a child build's own status, passed on (a make error stays 5).
    Relayed(i32),
}

impl Code {
    /// The statuses the help lists, in its order.
    pub const DOCUMENTED: [Code; 17] = [
        Code::Success,
        Code::Internal,
        Code::Usage,
        Code::BadInput,
        Code::NoHeaders,
        Code::BuildFailed,
        Code::ModuleMissing,
        Code::Archive,
        Code::Sandbox,
        Code::Io,
        Code::NotAvailable,
        Code::Install,
        Code::Refused,
        Code::Differs,
        Code::LoadFailed,
        Code::NothingBuilt,
        Code::Interrupted,
    ];

    /// The number the process exits with.
    pub fn number(self) -> i32 {
        match self {
            Code::Success => 0,
            Code::Internal => 1,
            Code::Usage => 2,
            Code::BadInput => 3,
            Code::NoHeaders => 4,
            Code::BuildFailed => 5,
            Code::ModuleMissing => 6,
            Code::Archive => 7,
            Code::Sandbox => 8,
            Code::Io => 9,
            Code::NotAvailable => 10,
            Code::Install => 11,
            Code::Refused => 12,
            Code::Differs => 13,
            Code::LoadFailed => 14,
            Code::NothingBuilt => 77,
            Code::Interrupted => 130,
            Code::Relayed(n) => n,
        }
    }

    /// Its line(s) of the `--help` table (continuations indented to the text).
    pub fn help(self) -> &'static str {
        match self {
            Code::Success => "success",
            Code::Internal => "internal error",
            Code::Usage => "usage error",
            Code::BadInput => {
                "bad input: the source, its dkms.conf, a recipe, a lock file, the config file, a shared-cache setting
     or key, a .deb to publish or the repository's signing key, or an image is unusable (a shared cache
     that fails is only a warning)"
            }
            Code::NoHeaders => "no headers in the archive for the requested kernel",
            Code::BuildFailed => "the build failed (make error or timeout); the log's tail is shown",
            Code::ModuleMissing => "a module declared in dkms.conf was not built",
            Code::Archive => "archive error: network, signature or checksum verification (an image's digests too)",
            Code::Sandbox => "the sandbox could not be set up",
            Code::Io => {
                "store or output I/O error (also: a push to the shared cache that `cache push` or `build --require-push`\n     needed)"
            }
            Code::NotAvailable => {
                "a wanted module package is not available: not in debs/, the repository or the shared cache,
     and this machine may not build it (config role = farm); `prepare` queued it for the boot service;
     `status`: a wanted module package is missing (farm: for the running or newest installed kernel)"
            }
            Code::Install => "dpkg or modprobe failed (what dpkg did not install stays in /var/lib/hermod/pending)",
            Code::Refused => {
                "the repository refused the change: a published name+version+architecture with other bytes
     (a published version is immutable), or an unsigned publish into a signed repository"
            }
            Code::Differs => {
                "verify: the two builds (or the rebuild and the --against package) differ; the report names
     each differing file in the .deb and, for a module, its differing ELF sections"
            }
            Code::LoadFailed => {
                "load-test, verify --boot: a module failed to load or unload in its kernel under qemu (or that kernel lacks a
     module it depends on, or crashed or hung during the test); the report says what the kernel said"
            }
            Code::NothingBuilt => {
                "nothing built: dkms.conf's BUILD_EXCLUSIVE_* directives exclude every requested kernel
     (as DKMS's 77); with some builds done and the rest skipped, the status is 0"
            }
            Code::Interrupted => {
                "interrupted by SIGINT (143: by SIGTERM): the running sandboxes were killed, this run's
     staging directories and cgroups removed"
            }
            Code::Relayed(_) => "the status of a child build, passed on",
        }
    }

    /// The `--help` table of exit statuses.
    pub fn table() -> String {
        let mut text = String::from("Exit status:");
        for code in Code::DOCUMENTED {
            text.push_str(&format!("\n{:>3}  {}", code.number(), code.help()));
        }
        text
    }
}

/// An error that knows its documented exit status. Implemented by each
/// module for its own error type, beside it; a wrapper asks the wrapped.
pub trait HasExitCode {
    fn exit_code(&self) -> Code;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table as it was written by hand before it was generated: the
    /// help text is part of the CLI, and must not change by accident.
    const PINNED: &str = "\
Exit status:
  0  success
  1  internal error
  2  usage error
  3  bad input: the source, its dkms.conf, a recipe, a lock file, the config file, a shared-cache setting
     or key, a .deb to publish or the repository's signing key, or an image is unusable (a shared cache
     that fails is only a warning)
  4  no headers in the archive for the requested kernel
  5  the build failed (make error or timeout); the log's tail is shown
  6  a module declared in dkms.conf was not built
  7  archive error: network, signature or checksum verification (an image's digests too)
  8  the sandbox could not be set up
  9  store or output I/O error (also: a push to the shared cache that `cache push` or `build --require-push`
     needed)
 10  a wanted module package is not available: not in debs/, the repository or the shared cache,
     and this machine may not build it (config role = farm); `prepare` queued it for the boot service;
     `status`: a wanted module package is missing (farm: for the running or newest installed kernel)
 11  dpkg or modprobe failed (what dpkg did not install stays in /var/lib/hermod/pending)
 12  the repository refused the change: a published name+version+architecture with other bytes
     (a published version is immutable), or an unsigned publish into a signed repository
 13  verify: the two builds (or the rebuild and the --against package) differ; the report names
     each differing file in the .deb and, for a module, its differing ELF sections
 14  load-test, verify --boot: a module failed to load or unload in its kernel under qemu (or that kernel lacks a
     module it depends on, or crashed or hung during the test); the report says what the kernel said
 77  nothing built: dkms.conf's BUILD_EXCLUSIVE_* directives exclude every requested kernel
     (as DKMS's 77); with some builds done and the rest skipped, the status is 0
130  interrupted by SIGINT (143: by SIGTERM): the running sandboxes were killed, this run's
     staging directories and cgroups removed";

    #[test]
    fn the_help_table_is_the_documented_one() {
        assert_eq!(Code::table(), PINNED);
    }

    #[test]
    fn documented_numbers_are_distinct_and_increasing() {
        let numbers: Vec<i32> = Code::DOCUMENTED.iter().map(|c| c.number()).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    }
}
