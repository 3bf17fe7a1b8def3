//! Step 8, last part: the seccomp deny-list, installed right before `execve`
//! (after `no_new_privs`, which an unprivileged filter requires).
//!
//! The command already has no capabilities; the filter narrows the *kernel
//! attack surface* and closes the ways a capability-less process can still
//! gain some (a nested user namespace) or reach outside (ptrace, TIOCSTI).
//! Everything not listed is allowed. Two filters are installed; the kernel
//! runs both and the stricter answer wins:
//!
//! **deny** (`EPERM` unless noted), built with seccompiler for x86_64:
//! * unconditionally: mount, umount2, pivot_root, ptrace,
//!   process_vm_readv/writev, bpf, perf_event_open, keyctl, add_key,
//!   request_key, kexec_load, kexec_file_load, init_module, finit_module,
//!   delete_module, reboot, swapon, swapoff, open_by_handle_at, setns,
//!   unshare, and the xattr writers (set/lset/fset/remove/lremove/
//!   fremovexattr);
//! * `clone` with `CLONE_NEWUSER` in its flags (argument 0);
//! * `ioctl(_, TIOCSTI)` (argument 1, compared as the kernel's 32-bit
//!   `unsigned int`, so high bits cannot smuggle it past);
//! * `chmod`, `fchmod`, `fchmodat`, `fchmodat2` whose mode has `S_ISUID` or
//!   `S_ISGID` (masked compare on the 32-bit mode);
//! * `personality` with any value except those Docker's default profile
//!   allows: `PER_LINUX` (0), `PER_LINUX32` (8), `UNAME26` (0x20000),
//!   `UNAME26|PER_LINUX32` and the query 0xffffffff. Everything else
//!   (`READ_IMPLIES_EXEC`, `ADDR_NO_RANDOMIZE`, other execution domains…) is
//!   refused;
//! * the non-native ABIs, by killing the process: a syscall made with the
//!   i386 ABI (`int $0x80`, `AUDIT_ARCH_I386`) fails seccompiler's own
//!   architecture check, and x32 syscalls (x86_64 arch, number with bit
//!   `__X32_SYSCALL_BIT` = 0x40000000) are caught by a hand-written
//!   three-instruction prologue we put in front of seccompiler's program.
//!   Without these, the 32-bit numbers of the same calls would bypass every
//!   rule above.
//!
//! **ENOSYS**: `clone3`. Its flags live in a struct in memory that seccomp
//! cannot read, so it is refused as "not implemented", and glibc falls back
//! to `clone`, which the deny filter inspects.
//!
//! Not covered: `io_uring` stays allowed, and its `IORING_OP_SETXATTR`/
//! `FSETXATTR` operations (Linux 5.19+) are not syscalls, so they bypass the
//! xattr rule; `userfaultfd`, `name_to_handle_at`, the new mount API
//! (`fsopen`, `fsmount`, `move_mount`, `open_tree`, `mount_setattr`: they
//! need `CAP_SYS_ADMIN`, which only a nested user namespace would give, and
//! creating one is refused); other architectures (no filter at all). For
//! `mount`, `ptrace` of a non-child, `kexec_*`, `*_module`, `reboot` and
//! `swap*`, the capability-less command is refused by the kernel anyway:
//! the filter is a second line there.

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond,
    SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

use super::SetupError;

/// `__X32_SYSCALL_BIT` from the kernel's `asm/unistd.h`.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The `TIOCSTI` ioctl request (`libc::Ioctl` differs in type per target).
const TIOCSTI: u64 = 0x5412;

/// `fchmodat2` (Linux 6.6); same number on every architecture.
const SYS_FCHMODAT2: i64 = 452;

/// Personality values that stay allowed (see the module comment).
const PERSONALITY_ALLOWED: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// The two filters, in the order they are installed: the ENOSYS filter for
/// `clone3`, then the deny-list.
pub(crate) fn filters() -> Result<Vec<BpfProgram>, String> {
    Ok(vec![enosys_filter()?, deny_filter()?])
}

/// Installs the filters on the calling thread. `no_new_privs` must be set.
pub(crate) fn install() -> Result<(), SetupError> {
    let filters = filters().map_err(|e| SetupError::other("building the seccomp filter", e))?;
    for f in &filters {
        seccompiler::apply_filter(f).map_err(|e| SetupError::other("installing the seccomp filter", e.to_string()))?;
    }
    Ok(())
}

fn arch() -> Result<TargetArch, String> {
    if cfg!(target_arch = "x86_64") {
        Ok(TargetArch::x86_64)
    } else {
        Err(format!(
            "the seccomp filter exists only for x86_64, not {} (set Spec::seccomp to false)",
            std::env::consts::ARCH
        ))
    }
}

fn enosys_filter() -> Result<BpfProgram, String> {
    let rules = BTreeMap::from([(nr::CLONE3, vec![])]);
    compile(rules, SeccompAction::Errno(libc::ENOSYS as u32))
}

fn deny_filter() -> Result<BpfProgram, String> {
    let c = |arg, len, op, value| Cond::new(arg, len, op, value).map_err(|e| e.to_string());
    let rule = |conds: Vec<Cond>| SeccompRule::new(conds).map_err(|e| e.to_string());

    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = nr::ALWAYS_DENIED.iter().map(|&n| (n, Vec::new())).collect();

    let newuser = libc::CLONE_NEWUSER as u64;
    rules.insert(nr::CLONE, vec![rule(vec![c(0, Len::Qword, Op::MaskedEq(newuser), newuser)?])?]);
    rules.insert(nr::IOCTL, vec![rule(vec![c(1, Len::Dword, Op::Eq, TIOCSTI)?])?]);
    for (n, mode_arg) in [(nr::CHMOD, 1), (nr::FCHMOD, 1), (nr::FCHMODAT, 2), (SYS_FCHMODAT2, 2)] {
        let bit = |b: libc::mode_t| -> Result<SeccompRule, String> {
            rule(vec![c(mode_arg, Len::Dword, Op::MaskedEq(b as u64), b as u64)?])
        };
        rules.insert(n, vec![bit(libc::S_ISUID)?, bit(libc::S_ISGID)?]);
    }
    // One rule whose conditions are ANDed: "none of the allowed values".
    let not_allowed =
        PERSONALITY_ALLOWED.iter().map(|&v| c(0, Len::Dword, Op::Ne, v)).collect::<Result<Vec<_>, _>>()?;
    rules.insert(nr::PERSONALITY, vec![rule(not_allowed)?]);

    let mut program = x32_prologue();
    program.extend(compile(rules, SeccompAction::Errno(libc::EPERM as u32))?);
    Ok(program)
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, on_match: SeccompAction) -> Result<BpfProgram, String> {
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, on_match, arch()?).map_err(|e| e.to_string())?;
    BpfProgram::try_from(filter).map_err(|e| e.to_string())
}

// Classic BPF opcodes (linux/bpf_common.h) for the prologue.
/// `BPF_LD | BPF_W | BPF_ABS`
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JGE | BPF_K`
const BPF_JMP_JGE_K: u16 = 0x35;
/// `BPF_RET | BPF_K`
const BPF_RET_K: u16 = 0x06;
/// `offsetof(struct seccomp_data, nr)`.
const SECCOMP_DATA_NR: u32 = 0;

/// `if (nr >= X32_SYSCALL_BIT) kill the process;` Every jump in it is
/// relative and local, and seccompiler's jumps are relative too, so
/// prepending it leaves the rest of the program intact. (An i386 syscall
/// with such a number is killed here too, which is what its arch check would
/// do anyway.)
fn x32_prologue() -> Vec<sock_filter> {
    vec![
        sock_filter { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: SECCOMP_DATA_NR },
        sock_filter { code: BPF_JMP_JGE_K, jt: 0, jf: 1, k: X32_SYSCALL_BIT },
        sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: libc::SECCOMP_RET_KILL_PROCESS },
    ]
}

/// Syscall numbers; x86_64 only (the filter is refused elsewhere, see
/// [`arch`]), so other targets get placeholders that are never compiled in.
#[cfg(target_arch = "x86_64")]
mod nr {
    pub const CLONE: i64 = libc::SYS_clone;
    pub const CLONE3: i64 = libc::SYS_clone3;
    pub const IOCTL: i64 = libc::SYS_ioctl;
    pub const CHMOD: i64 = libc::SYS_chmod;
    pub const FCHMOD: i64 = libc::SYS_fchmod;
    pub const FCHMODAT: i64 = libc::SYS_fchmodat;
    pub const PERSONALITY: i64 = libc::SYS_personality;
    pub const ALWAYS_DENIED: &[i64] = &[
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_open_by_handle_at,
        libc::SYS_setns,
        libc::SYS_unshare,
        libc::SYS_setxattr,
        libc::SYS_lsetxattr,
        libc::SYS_fsetxattr,
        libc::SYS_removexattr,
        libc::SYS_lremovexattr,
        libc::SYS_fremovexattr,
    ];
}

#[cfg(not(target_arch = "x86_64"))]
mod nr {
    pub const CLONE: i64 = -1;
    pub const CLONE3: i64 = -1;
    pub const IOCTL: i64 = -1;
    pub const CHMOD: i64 = -1;
    pub const FCHMOD: i64 = -1;
    pub const FCHMODAT: i64 = -1;
    pub const PERSONALITY: i64 = -1;
    pub const ALWAYS_DENIED: &[i64] = &[];
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const AUDIT_ARCH_I386: u32 = 0x4000_0003;
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

    /// A classic-BPF interpreter for the instructions seccompiler emits,
    /// run over a `struct seccomp_data` (nr, arch, ip, args[6]).
    fn eval(prog: &[sock_filter], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
        let mut data = Vec::new();
        data.extend((nr as u32).to_ne_bytes());
        data.extend(arch.to_ne_bytes());
        data.extend(0u64.to_ne_bytes());
        for a in args {
            data.extend(a.to_ne_bytes());
        }
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let i = &prog[pc];
            pc += 1;
            match i.code {
                0x20 => {
                    let k = i.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                }
                0x54 => acc &= i.k,
                0x05 => pc += i.k as usize,
                0x15 | 0x25 | 0x35 => {
                    let taken = match i.code {
                        0x15 => acc == i.k,
                        0x25 => acc > i.k,
                        _ => acc >= i.k,
                    };
                    pc += if taken { i.jt } else { i.jf } as usize;
                }
                0x06 => return i.k,
                code => panic!("unexpected BPF opcode {code:#x} at {}", pc - 1),
            }
        }
    }

    /// What the kernel does with a syscall: the strictest answer of all
    /// filters (lowest action value; ERRNO's data does not matter here).
    fn verdict(arch: u32, nr: i64, args: [u64; 6]) -> u32 {
        filters()
            .unwrap()
            .iter()
            .map(|f| eval(f, arch, nr, args))
            .min_by_key(|r| (r & libc::SECCOMP_RET_ACTION_FULL) as i32)
            .unwrap()
    }

    fn x64(nr: i64, args: [u64; 6]) -> u32 {
        verdict(AUDIT_ARCH_X86_64, nr, args)
    }

    const NONE: [u64; 6] = [0; 6];

    #[test]
    fn builds_and_fits() {
        let f = filters().unwrap();
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|p| !p.is_empty() && p.len() < 4096));
        assert_eq!(&f[1][..3], &x32_prologue()[..]);
    }

    #[test]
    fn ordinary_syscalls_are_allowed() {
        for nr in
            [libc::SYS_read, libc::SYS_write, libc::SYS_openat, libc::SYS_execve, libc::SYS_wait4, libc::SYS_getpid]
        {
            assert_eq!(x64(nr, NONE), ALLOW, "syscall {nr}");
        }
        // fork()/pthread-style clone without CLONE_NEWUSER.
        let fork_flags = (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID) as u64 | libc::SIGCHLD as u64;
        assert_eq!(x64(libc::SYS_clone, [fork_flags, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(x64(libc::SYS_ioctl, [1, 0x5401 /* TCGETS */, 0, 0, 0, 0]), ALLOW);
        assert_eq!(x64(libc::SYS_personality, [0xffff_ffff, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(x64(libc::SYS_personality, NONE), ALLOW);
    }

    #[test]
    fn listed_syscalls_get_eperm() {
        for &nr in nr::ALWAYS_DENIED {
            assert_eq!(x64(nr, NONE), EPERM, "syscall {nr}");
        }
    }

    #[test]
    fn clone_newuser_and_clone3() {
        let newuser = libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64;
        assert_eq!(x64(libc::SYS_clone, [newuser, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(x64(libc::SYS_clone3, NONE), ENOSYS);
    }

    #[test]
    fn tiocsti_even_with_high_bits() {
        assert_eq!(libc::TIOCSTI, TIOCSTI);
        let sti = TIOCSTI;
        assert_eq!(x64(libc::SYS_ioctl, [0, sti, 0, 0, 0, 0]), EPERM);
        assert_eq!(x64(libc::SYS_ioctl, [0, sti | 1 << 32, 0, 0, 0, 0]), EPERM);
    }

    #[test]
    fn setuid_setgid_modes() {
        for (nr, arg) in [(libc::SYS_chmod, 1), (libc::SYS_fchmod, 1), (libc::SYS_fchmodat, 2), (SYS_FCHMODAT2, 2)] {
            let with = |mode: u64| {
                let mut a = NONE;
                a[arg] = mode;
                x64(nr, a)
            };
            assert_eq!(with(0o644), ALLOW, "{nr} 0644");
            assert_eq!(with(0o1777), ALLOW, "{nr} sticky");
            assert_eq!(with(0o4755), EPERM, "{nr} setuid");
            assert_eq!(with(0o2755), EPERM, "{nr} setgid");
            assert_eq!(with(0o6755 | 1 << 40), EPERM, "{nr} high bits");
        }
    }

    #[test]
    fn personality_values() {
        for v in PERSONALITY_ALLOWED {
            assert_eq!(x64(libc::SYS_personality, [v, 0, 0, 0, 0, 0]), ALLOW);
        }
        for v in [0x0040000u64 /* ADDR_NO_RANDOMIZE */, 0x0400000 /* READ_IMPLIES_EXEC */, 1] {
            assert_eq!(x64(libc::SYS_personality, [v, 0, 0, 0, 0, 0]), EPERM);
        }
    }

    #[test]
    fn foreign_abis_are_killed() {
        // i386 getpid (20), and i386 with an x86_64 "allowed" number.
        assert_eq!(verdict(AUDIT_ARCH_I386, 20, NONE), KILL);
        assert_eq!(verdict(AUDIT_ARCH_I386, libc::SYS_read, NONE), KILL);
        // x32 getpid and x32 unshare.
        let x32 = X32_SYSCALL_BIT as i64;
        assert_eq!(x64(x32 | libc::SYS_getpid, NONE), KILL);
        assert_eq!(x64(x32 | libc::SYS_unshare, NONE), KILL);
    }
}
