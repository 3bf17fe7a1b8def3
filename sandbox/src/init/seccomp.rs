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
//!
//! The rules are data ([`rules`]): the BPF programs here and the OCI
//! runtime config that `crate::oci` exports are both made from them.

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

/// A system call: its name (as `syscalls(2)` and OCI runtimes spell it)
/// and its x86_64 number (`-1` on other targets, which have no filter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Syscall {
    pub name: &'static str,
    pub nr: i64,
}

/// One rule of the filters, as data. The BPF programs below and the OCI
/// export (`crate::oci`) are both made from [`rules`], so they cannot drift
/// apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    pub call: Syscall,
    /// What the refused call returns: `EPERM`, or `ENOSYS` for `clone3`.
    pub errno: i32,
    /// Refused always if empty, otherwise when any one of these holds.
    pub when: Vec<Check>,
}

/// A condition on one argument of a system call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// `(arg & mask) == value`. `wide` compares all 64 bits; otherwise only
    /// the low 32, because the kernel reads the argument as an `unsigned
    /// int` and high bits must not smuggle a call past the rule.
    Masked { arg: u8, wide: bool, mask: u64, value: u64 },
    /// The argument's low 32 bits are none of `allowed`.
    NoneOf { arg: u8, allowed: &'static [u64] },
}

impl Check {
    /// Whether the condition holds for these arguments (what the filter,
    /// and any faithful translation of it, must decide).
    #[cfg(test)]
    pub(crate) fn holds(&self, args: &[u64; 6]) -> bool {
        match *self {
            Check::Masked { arg, wide, mask, value } => {
                let a = if wide { args[arg as usize] } else { args[arg as usize] & 0xffff_ffff };
                a & mask == value
            }
            Check::NoneOf { arg, allowed } => !allowed.contains(&(args[arg as usize] & 0xffff_ffff)),
        }
    }
}

impl Rule {
    fn eperm(call: Syscall, when: Vec<Check>) -> Rule {
        Rule { call, errno: libc::EPERM, when }
    }
}

/// Everything the filters refuse (see the module comment); anything else
/// is allowed.
pub(crate) fn rules() -> Vec<Rule> {
    let mut rules: Vec<Rule> = nr::ALWAYS_DENIED.iter().map(|&call| Rule::eperm(call, Vec::new())).collect();
    let newuser = libc::CLONE_NEWUSER as u64;
    rules.push(Rule::eperm(nr::CLONE, vec![Check::Masked { arg: 0, wide: true, mask: newuser, value: newuser }]));
    rules.push(Rule::eperm(nr::IOCTL, vec![Check::Masked { arg: 1, wide: false, mask: 0xffff_ffff, value: TIOCSTI }]));
    for (call, arg) in [(nr::CHMOD, 1), (nr::FCHMOD, 1), (nr::FCHMODAT, 2), (nr::FCHMODAT2, 2)] {
        let bit = |b: libc::mode_t| Check::Masked { arg, wide: false, mask: b as u64, value: b as u64 };
        rules.push(Rule::eperm(call, vec![bit(libc::S_ISUID), bit(libc::S_ISGID)]));
    }
    rules.push(Rule::eperm(nr::PERSONALITY, vec![Check::NoneOf { arg: 0, allowed: &PERSONALITY_ALLOWED }]));
    rules.push(Rule { call: nr::CLONE3, errno: libc::ENOSYS, when: Vec::new() });
    rules
}

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
    compile(rule_map(libc::ENOSYS)?, SeccompAction::Errno(libc::ENOSYS as u32))
}

fn deny_filter() -> Result<BpfProgram, String> {
    let mut program = x32_prologue();
    program.extend(compile(rule_map(libc::EPERM)?, SeccompAction::Errno(libc::EPERM as u32))?);
    Ok(program)
}

/// The [`rules`] that return `errno`, in seccompiler's terms: a syscall
/// with no rules matches unconditionally, otherwise when any rule matches
/// (a rule's conditions are ANDed).
fn rule_map(errno: i32) -> Result<BTreeMap<i64, Vec<SeccompRule>>, String> {
    let c = |arg, len, op, value| Cond::new(arg, len, op, value).map_err(|e| e.to_string());
    let rule = |conds: Vec<Cond>| SeccompRule::new(conds).map_err(|e| e.to_string());
    let mut map = BTreeMap::new();
    for r in rules().into_iter().filter(|r| r.errno == errno) {
        let mut compiled = Vec::new();
        for check in &r.when {
            compiled.push(match *check {
                Check::Masked { arg, wide, mask, value } => {
                    let len = if wide { Len::Qword } else { Len::Dword };
                    rule(vec![c(arg, len, Op::MaskedEq(mask), value)?])?
                }
                // One rule whose conditions are ANDed: "none of the allowed values".
                Check::NoneOf { arg, allowed } => {
                    rule(allowed.iter().map(|&v| c(arg, Len::Dword, Op::Ne, v)).collect::<Result<Vec<_>, _>>()?)?
                }
            });
        }
        if map.insert(r.call.nr, compiled).is_some() {
            return Err(format!("two seccomp rules for {}", r.call.name));
        }
    }
    Ok(map)
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

/// Syscall names and numbers, one table for the BPF filter and the OCI
/// export. The numbers are x86_64's; other targets get `-1` placeholders,
/// never compiled into a filter (it is refused there, see [`arch`]).
mod nr {
    use super::Syscall;

    macro_rules! sys {
        ($name:literal, $sys:ident) => {
            Syscall { name: $name, nr: number!($sys) }
        };
    }

    #[cfg(target_arch = "x86_64")]
    macro_rules! number {
        ($sys:ident) => {
            libc::$sys
        };
    }

    #[cfg(not(target_arch = "x86_64"))]
    macro_rules! number {
        ($sys:ident) => {
            -1
        };
    }

    pub const CLONE: Syscall = sys!("clone", SYS_clone);
    pub const CLONE3: Syscall = sys!("clone3", SYS_clone3);
    pub const IOCTL: Syscall = sys!("ioctl", SYS_ioctl);
    pub const CHMOD: Syscall = sys!("chmod", SYS_chmod);
    pub const FCHMOD: Syscall = sys!("fchmod", SYS_fchmod);
    pub const FCHMODAT: Syscall = sys!("fchmodat", SYS_fchmodat);
    pub const FCHMODAT2: Syscall = Syscall { name: "fchmodat2", nr: super::SYS_FCHMODAT2 };
    pub const PERSONALITY: Syscall = sys!("personality", SYS_personality);
    pub const ALWAYS_DENIED: &[Syscall] = &[
        sys!("mount", SYS_mount),
        sys!("umount2", SYS_umount2),
        sys!("pivot_root", SYS_pivot_root),
        sys!("ptrace", SYS_ptrace),
        sys!("process_vm_readv", SYS_process_vm_readv),
        sys!("process_vm_writev", SYS_process_vm_writev),
        sys!("bpf", SYS_bpf),
        sys!("perf_event_open", SYS_perf_event_open),
        sys!("keyctl", SYS_keyctl),
        sys!("add_key", SYS_add_key),
        sys!("request_key", SYS_request_key),
        sys!("kexec_load", SYS_kexec_load),
        sys!("kexec_file_load", SYS_kexec_file_load),
        sys!("init_module", SYS_init_module),
        sys!("finit_module", SYS_finit_module),
        sys!("delete_module", SYS_delete_module),
        sys!("reboot", SYS_reboot),
        sys!("swapon", SYS_swapon),
        sys!("swapoff", SYS_swapoff),
        sys!("open_by_handle_at", SYS_open_by_handle_at),
        sys!("setns", SYS_setns),
        sys!("unshare", SYS_unshare),
        sys!("setxattr", SYS_setxattr),
        sys!("lsetxattr", SYS_lsetxattr),
        sys!("fsetxattr", SYS_fsetxattr),
        sys!("removexattr", SYS_removexattr),
        sys!("lremovexattr", SYS_lremovexattr),
        sys!("fremovexattr", SYS_fremovexattr),
    ];
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
        for call in nr::ALWAYS_DENIED {
            assert_eq!(x64(call.nr, NONE), EPERM, "syscall {}", call.name);
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
    fn the_programs_decide_what_the_rules_say() {
        let probes = [
            0,
            1,
            0o644,
            0o1777,
            0o4755,
            0o2755,
            0o6755 | 1 << 40,
            TIOCSTI,
            TIOCSTI | 1 << 32,
            0x5401,
            libc::SIGCHLD as u64,
            libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64,
            8,
            0x20000,
            0x20008,
            0x0040000,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX,
        ];
        for rule in rules() {
            for arg in 0..3 {
                for p in probes {
                    let mut args = NONE;
                    args[arg] = p;
                    let refused = rule.when.is_empty() || rule.when.iter().any(|c| c.holds(&args));
                    let expected = if refused { libc::SECCOMP_RET_ERRNO | rule.errno as u32 } else { ALLOW };
                    assert_eq!(x64(rule.call.nr, args), expected, "{} {args:x?}", rule.call.name);
                }
            }
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
