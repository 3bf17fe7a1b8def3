//! Step 5: the network namespace's one interface, and the hostname.
//!
//! A new network namespace holds a single interface, `lo`, and it starts
//! *down*: without this step even `127.0.0.1` is unreachable, which breaks
//! tools that talk to themselves over loopback. Bringing it up is the
//! classic `SIOCGIFFLAGS`/`SIOCSIFFLAGS` ioctl pair on any socket of the
//! namespace; we hold `CAP_NET_ADMIN` over it thanks to the user namespace.
//! Nothing else is configured, so nothing outside is reachable. (The ioctls
//! themselves are in `sys.rs`, `Real::interface_up`.)
//!
//! The UTS namespace gives us our own hostname to set.

use super::sys::Sys;
use super::{SetupError, Step};

pub(crate) fn loopback_up(sys: &dyn Sys) -> Result<(), SetupError> {
    sys.interface_up("lo").step(|| "bringing up the loopback interface in the sandbox".into())
}

pub(crate) fn set_hostname(sys: &dyn Sys, name: &str) -> Result<(), SetupError> {
    sys.sethostname(name).step(|| format!("setting the sandbox hostname to {name:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::recording::Recording;
    use nix::errno::Errno;

    #[test]
    fn brings_up_lo_and_sets_the_hostname() {
        let sys = Recording::new();
        loopback_up(&sys).unwrap();
        set_hostname(&sys, "hermod").unwrap();
        assert_eq!(sys.lines(), ["interface_up(lo)", "sethostname(\"hermod\")"]);
    }

    #[test]
    fn failures_name_the_step() {
        let sys = Recording::new().fail("interface_up", Errno::EPERM);
        let err = loopback_up(&sys).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bringing up the loopback interface in the sandbox: EPERM: Operation not permitted"
        );
    }
}
