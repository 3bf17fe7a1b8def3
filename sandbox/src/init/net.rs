//! Step 5: the network namespace's one interface, and the hostname.
//!
//! A new network namespace holds a single interface, `lo`, and it starts
//! *down*: without this step even `127.0.0.1` is unreachable, which breaks
//! tools that talk to themselves over loopback. Bringing it up is the
//! classic `SIOCGIFFLAGS`/`SIOCSIFFLAGS` ioctl pair on any socket of the
//! namespace; we hold `CAP_NET_ADMIN` over it thanks to the user namespace.
//! Nothing else is configured, so nothing outside is reachable.
//!
//! The UTS namespace gives us our own hostname to set.

use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

use super::{SetupError, Step};

pub(crate) fn loopback_up() -> Result<(), SetupError> {
    let step = || "bringing up the loopback interface in the sandbox".to_string();
    let sock = socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None).step(step)?;
    // SAFETY: ifreq is plain old data (names and integers in a union); all
    // zeroes is a valid value, and the name "lo" fits with room for the NUL.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: both ioctls read and write exactly one `ifreq`, which `req`
    // is, and the socket is open for the duration of the calls. Reading the
    // `ifru_flags` member is what SIOCGIFFLAGS just filled in.
    unsafe {
        Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req)).step(step)?;
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req)).step(step)?;
    }
    Ok(())
}

pub(crate) fn set_hostname(name: &str) -> Result<(), SetupError> {
    nix::unistd::sethostname(name).step(|| format!("setting the sandbox hostname to {name:?}"))
}
