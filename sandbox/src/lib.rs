//! hermod's build sandbox: run one command in a throw-away, read-only world.
//!
//! Linux builds isolated environments out of *namespaces*: each one gives a
//! process its own copy of one kind of global resource. This crate uses six:
//!
//! * **user** — our own uid/gid mapping. Inside, the command runs as
//!   `spec.uid`/`spec.gid`, which maps to the caller's single host id; the
//!   namespace also grants the capabilities needed to set up the others
//!   without being root on the host (and they count only inside);
//! * **mount** — a private mount table, so the new root (a tmpfs holding
//!   read-only bind mounts of the rootfs) is invisible to the host;
//! * **pid** — the command's process tree is numbered from 1, and when pid 1
//!   dies the kernel kills everything left in it: no stray daemons;
//! * **net** — only a loopback interface: no network;
//! * **ipc**, **uts** — private System V IPC objects and hostname.
//!
//! The public API is [`Spec`] → [`run`] → [`Outcome`]. Because namespaces
//! cannot safely be created from a multithreaded program, `run()` re-executes
//! an init executable with [`INIT_ARG`]; that executable's `main()` must call
//! [`enter_if_requested`] before anything else. The process layout is:
//!
//! ```text
//! hermod (run)                       host namespaces
//!  └─ helper  (init exe INIT_ARG)    unshares everything, writes id maps
//!      └─ pid 1                      builds the root, pivot_root, reaps
//!          └─ pid 2: the command     no capabilities, no_new_privs, execve
//! ```
//!
//! The steps themselves live in `init/`, one function per step, in order.

mod cgroup;
mod init;
mod live;
pub mod oci;
pub mod owner;
mod report;
mod run;
mod spec;
mod vary;

pub use cgroup::Cgroup;
pub use live::{abort_all, Aborted};
pub use run::{run, run_with_init, Exit, Outcome, SandboxError, INIT_EXE_ENV};
pub use spec::{
    private_host_ids, Bind, Limits, Outputs, Secret, Spec, Tmpfs, MAX_SECRET_BYTES, NOBODY, PRIVATE_IDS_BASE,
};
pub use vary::{Variation, VaryError};

/// `argv[1]` that turns an executable into the sandbox init.
pub const INIT_ARG: &str = "__hermod-sandbox-init";

/// Becomes the sandbox init if this process was started as one by [`run`];
/// returns immediately otherwise.
///
/// Call it first thing in `main()`, before any thread is started: the init
/// must be single-threaded to unshare a user namespace. When it takes over,
/// it never returns; the process exits with the status `run()` expects.
pub fn enter_if_requested() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(INIT_ARG)) {
        return;
    }
    let rest: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    std::process::exit(init::main(&rest))
}
