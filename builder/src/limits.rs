//! The resource limits of a build, as the user states them.
//!
//! `hermod build --limit NAME=VALUE` (repeatable) overrides one limit of
//! every sandboxed step. Sizes take binary suffixes (`512M`, `4G`); `none`
//! lifts a limit. The names and defaults:
//!
//! | name          | default | enforced by                                         |
//! |---------------|---------|-----------------------------------------------------|
//! | `memory`      | 8G      | cgroup `memory.max` (v2) / `limit_in_bytes` (v1)    |
//! | `pids`        | 2048    | cgroup `pids.max`                                   |
//! | `build-space` | 4G      | size of each writable tmpfs (`/build`, outputs, `/var/lib/dkms`, `/usr/src/<m>-<v>`), and of the outputs |
//! | `tmp-space`   | 1G      | size of the `/tmp` tmpfs                            |
//! | `nproc`       | 4096    | `RLIMIT_NPROC` (per host uid, see the sandbox docs) |
//! | `fsize`       | 4G      | `RLIMIT_FSIZE`: the largest file, the log included  |
//! | `cpu`         | 3600    | `RLIMIT_CPU`, seconds per process                   |
//! | `nofile`      | 4096    | `RLIMIT_NOFILE`                                     |
//! | `core`        | 0       | `RLIMIT_CORE`                                       |
//!
//! The wall-clock limit is `--timeout`. Whether the cgroup limits could be
//! enforced on this host is reported per build (see `hermod_sandbox::Cgroup`).

use hermod_sandbox::Limits;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("--limit {0:?}: expected NAME=VALUE, e.g. memory=4G")]
    Syntax(String),
    #[error("--limit {name}: unknown limit; known: {}", NAMES.join(", "))]
    UnknownName { name: String },
    #[error("--limit {name}={value}: {why}")]
    BadValue { name: String, value: String, why: String },
}

impl crate::exit::HasExitCode for LimitError {
    /// A `--limit` that cannot be read is a usage error.
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            LimitError::Syntax { .. } | LimitError::UnknownName { .. } | LimitError::BadValue { .. } => {
                crate::exit::Code::Usage
            }
        }
    }
}

const NAMES: [&str; 9] = ["memory", "pids", "build-space", "tmp-space", "nproc", "fsize", "cpu", "nofile", "core"];

/// Every limit of a build's sandboxed steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildLimits {
    /// Per-sandbox limits: rlimits and cgroup limits.
    pub sandbox: Limits,
    /// Bytes of the `/build` tmpfs (the outputs tmpfs gets the same).
    pub build_space: u64,
    /// Bytes of the `/tmp` tmpfs.
    pub tmp_space: u64,
}

impl Default for BuildLimits {
    fn default() -> BuildLimits {
        BuildLimits { sandbox: Limits::default(), build_space: 4 << 30, tmp_space: 1 << 30 }
    }
}

impl BuildLimits {
    /// The defaults with each `NAME=VALUE` applied in order.
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<BuildLimits, LimitError> {
        let mut limits = BuildLimits::default();
        for arg in args {
            limits.apply(arg.as_ref())?;
        }
        Ok(limits)
    }

    /// Applies one `NAME=VALUE`.
    pub fn apply(&mut self, arg: &str) -> Result<(), LimitError> {
        let (name, value) = arg.split_once('=').ok_or_else(|| LimitError::Syntax(arg.to_owned()))?;
        let (name, value) = (name.trim(), value.trim());
        if !NAMES.contains(&name) {
            return Err(LimitError::UnknownName { name: name.into() });
        }
        let bad = |why: &str| LimitError::BadValue { name: name.into(), value: value.into(), why: why.into() };
        let is_size = matches!(name, "memory" | "build-space" | "tmp-space" | "fsize" | "core");
        let parsed = if value == "none" || value == "unlimited" {
            None
        } else if is_size {
            Some(parse_size(value).map_err(|why| bad(&why))?)
        } else {
            Some(value.parse::<u64>().map_err(|_| bad("expected a whole number"))?)
        };
        let space = |v: Option<u64>| match v {
            None => Err(bad("a tmpfs needs a size")),
            Some(0) => Err(bad("must be more than 0")),
            Some(n) => Ok(n),
        };
        let l = &mut self.sandbox;
        match name {
            "memory" => l.memory = parsed,
            "pids" => l.pids = parsed,
            "build-space" => self.build_space = space(parsed)?,
            "tmp-space" => self.tmp_space = space(parsed)?,
            "nproc" => l.nproc = parsed,
            "fsize" => l.fsize = parsed,
            "cpu" => l.cpu = parsed,
            "nofile" => l.nofile = parsed,
            "core" => l.core = parsed,
            _ => return Err(LimitError::UnknownName { name: name.into() }),
        }
        if matches!(name, "memory" | "pids" | "nproc" | "nofile") && parsed == Some(0) {
            return Err(bad("0 would stop every build; use a positive value or none"));
        }
        Ok(())
    }
}

/// `4096`, `64K`, `512M`, `4G`, `1T` (binary multiples; a trailing `B` or
/// `iB` is accepted too).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim_end_matches("iB").trim_end_matches(['B', 'b']);
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown size suffix {c:?}; use K, M, G or T")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = digits.parse().map_err(|_| "expected a size such as 512M or 4G".to_string())?;
    n.checked_mul(1 << shift).ok_or_else(|| "too large".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1t"), Ok(1 << 40));
        assert!(parse_size("4X").unwrap_err().contains("suffix"));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999T").unwrap_err().contains("too large"));
    }

    #[test]
    fn each_name_sets_its_limit() {
        let l = BuildLimits::from_args(&[
            "memory=2G",
            "pids=100",
            "build-space=64M",
            "tmp-space=32M",
            "nproc=none",
            "fsize=1G",
            "cpu=60",
            "nofile=256",
            "core=unlimited",
        ])
        .unwrap();
        assert_eq!(l.sandbox.memory, Some(2 << 30));
        assert_eq!(l.sandbox.pids, Some(100));
        assert_eq!((l.build_space, l.tmp_space), (64 << 20, 32 << 20));
        assert_eq!(l.sandbox.nproc, None);
        assert_eq!(l.sandbox.fsize, Some(1 << 30));
        assert_eq!((l.sandbox.cpu, l.sandbox.nofile, l.sandbox.core), (Some(60), Some(256), None));
    }

    #[test]
    fn no_arguments_give_the_defaults() {
        let none: [&str; 0] = [];
        assert_eq!(BuildLimits::from_args(&none).unwrap(), BuildLimits::default());
        assert_eq!(BuildLimits::default().sandbox, Limits::default());
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(BuildLimits::from_args(&["memory"]).unwrap_err(), LimitError::Syntax("memory".into()));
        assert!(matches!(BuildLimits::from_args(&["ram=1G"]), Err(LimitError::UnknownName { .. })));
        assert!(matches!(BuildLimits::from_args(&["ram=lots"]), Err(LimitError::UnknownName { .. })));
        let e = BuildLimits::from_args(&["pids=many"]).unwrap_err().to_string();
        assert!(e.contains("pids=many") && e.contains("whole number"), "{e}");
        let e = BuildLimits::from_args(&["tmp-space=none"]).unwrap_err().to_string();
        assert!(e.contains("needs a size"), "{e}");
        assert!(BuildLimits::from_args(&["pids=0"]).is_err());
        assert!(BuildLimits::from_args(&["build-space=0"]).is_err());
    }
}
