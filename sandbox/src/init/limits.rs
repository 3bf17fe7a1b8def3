//! Step 8, part: resource limits on the command (`spec.limits`).
//!
//! Each limit is set as both the soft and the hard value, so the command
//! cannot raise it again. A requested value above the inherited hard limit
//! is lowered to it: raising a hard limit needs `CAP_SYS_RESOURCE` in the
//! *initial* user namespace, which an unprivileged caller does not have,
//! and the capabilities our own user namespace grants do not count there.
//!
//! `RLIMIT_NPROC` is special: the kernel counts the processes of the real
//! uid (across the whole user namespace tree, i.e. including everything the
//! caller's host uid runs outside the sandbox), and host root is exempt. See
//! [`crate::Limits::nproc`].

use super::{SetupError, Step};
use crate::spec::Limits;

/// `(name, resource, value)` for every limit that is set.
fn wanted(limits: &Limits) -> Vec<(&'static str, libc::__rlimit_resource_t, u64)> {
    [
        ("RLIMIT_NPROC", libc::RLIMIT_NPROC, limits.nproc),
        ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE, limits.fsize),
        ("RLIMIT_CORE", libc::RLIMIT_CORE, limits.core),
        ("RLIMIT_CPU", libc::RLIMIT_CPU, limits.cpu),
        ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE, limits.nofile),
    ]
    .into_iter()
    .filter_map(|(name, res, v)| Some((name, res, v?)))
    .collect()
}

/// Sets the limits on the calling process (the command, before `execve`).
pub(crate) fn apply(limits: &Limits) -> Result<(), SetupError> {
    for (name, resource, value) in wanted(limits) {
        let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes one rlimit into the struct we own.
        nix::errno::Errno::result(unsafe { libc::getrlimit(resource, &mut old) }).step(|| format!("reading {name}"))?;
        // RLIM_INFINITY is u64::MAX, so min() also handles "unlimited".
        let value = value.min(old.rlim_max);
        let new = libc::rlimit { rlim_cur: value, rlim_max: value };
        // SAFETY: setrlimit only reads the struct.
        nix::errno::Errno::result(unsafe { libc::setrlimit(resource, &new) })
            .step(|| format!("setting {name} to {value}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_set_limits_are_applied() {
        assert_eq!(wanted(&Limits::inherit()), vec![]);
        let names: Vec<_> = wanted(&Limits::default()).iter().map(|w| w.0).collect();
        assert_eq!(names, ["RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_NOFILE"]);
        let l = Limits { core: Some(0), ..Limits::inherit() };
        assert_eq!(wanted(&l), vec![("RLIMIT_CORE", libc::RLIMIT_CORE, 0)]);
    }
}
