//! Integration tests: real namespaces, real mounts, a real (tiny) rootfs.
//!
//! This is a `harness = false` test so that its `main()` can call
//! `enter_if_requested()` first: `run()` re-executes this very binary as the
//! sandbox init. The rootfs is built from the host's own `dash`, coreutils
//! and their shared libraries (found with `ldd`), laid out like Debian's
//! merged /usr (`/bin -> usr/bin`, `/lib -> usr/lib`, `/lib64 -> usr/lib64`).
//!
//! Works as root and as an unprivileged user, e.g.
//! `setpriv --reuid=65534 --regid=65534 --clear-groups <this binary>`.
//! Prints `N passed, N failed` and exits non-zero on failure.

mod bounds;
mod fixture;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use hermod_sandbox::{enter_if_requested, run, run_with_init, Bind, Exit, Limits, SandboxError};

use fixture::{expect, Fixture};

type Case = fn(&Fixture) -> Result<(), String>;

fn main() {
    enter_if_requested();
    println!("running as uid {} gid {}", nix::unistd::geteuid(), nix::unistd::getegid());
    let fx = Fixture::new();
    let filter: Option<String> = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let cases: &[(&str, Case)] = &[
        ("exit code is relayed", exit_code),
        ("death by signal is relayed", exit_signal),
        ("ids inside are the spec's", ids),
        ("rootfs read-only, binds and /tmp as asked", writability),
        ("host files are invisible", host_invisible),
        ("hostname is the spec's", hostname),
        ("only lo exists, and it is up", network),
        ("environment is exactly the spec's", environment),
        ("no capabilities, no_new_privs", capabilities),
        ("command is pid 2", pid_two),
        ("only fds 0-2 reach the command, stdin is /dev/null", descriptors),
        ("timeout kills the whole namespace", timeout),
        ("background children do not survive", no_survivors),
        ("log is appended to", log_appends),
        ("missing rootfs is a SandboxError", missing_rootfs),
        ("setup failures inside name the step and errno", setup_errors),
        ("exec failure is exit 127 with a message", exec_failure),
        ("an init exe without enter_if_requested is detected", wrong_init),
        ("runs from several threads at once", concurrent),
        ("mount table is as documented", mount_table),
        ("resource limits are set", rlimits),
        ("RLIMIT_FSIZE stops a big file", fsize),
        ("seccomp: plain commands still work", seccomp_plain),
        ("seccomp: no setuid/setgid chmod", seccomp_chmod),
        ("seccomp: denied calls fail with EPERM", seccomp_denied),
        ("seccomp: i386 and x32 syscalls kill", seccomp_foreign_abi),
        ("a root caller's command is never host root", never_host_root),
        ("kernel-wide /proc files are read-only or masked", proc_sealed),
        ("tmpfs sizes stop writes with ENOSPC", bounds::tmpfs_size),
        ("outputs: regular files copied out after exit", bounds::outputs_copied),
        ("outputs: bounded, and the host dir is never mounted", bounds::outputs_bounded),
        ("cgroup pids limit enforced or explained", bounds::cgroup_pids),
        ("cgroup memory limit kills and is reported, or explained", bounds::cgroup_memory),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in cases {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let start = Instant::now();
        match case(&fx) {
            Ok(()) => {
                passed += 1;
                println!("ok      {name} ({:.0?})", start.elapsed());
            }
            Err(msg) => {
                failed += 1;
                println!("FAILED  {name}: {msg}");
            }
        }
    }
    drop(fx); // process::exit skips destructors: remove the tempdir now
    println!("\n{passed} passed, {failed} failed");
    std::process::exit(if failed == 0 { 0 } else { 1 });
}

fn exit_code(fx: &Fixture) -> Result<(), String> {
    let out = run(&fx.sh("exit 7")).map_err(|e| e.to_string())?;
    expect("exit", out.exit, Exit::Code(7))?;
    expect("success", out.success(), false)?;
    expect("true succeeds", run(&fx.sh("true")).map_err(|e| e.to_string())?.success(), true)
}

fn exit_signal(fx: &Fixture) -> Result<(), String> {
    let out = run(&fx.sh("kill -TERM $$")).map_err(|e| e.to_string())?;
    expect("exit", out.exit, Exit::Signal(libc::SIGTERM))
}

fn ids(fx: &Fixture) -> Result<(), String> {
    expect("default ids", fx.output(fx.sh("id -u; id -g"))?, "1000\n1000\n".into())?;
    let mut spec = fx.sh("id -u; id -g");
    (spec.uid, spec.gid) = (4242, 777);
    expect("custom ids", fx.output(spec)?, "4242\n777\n".into())
}

fn proc_sealed(fx: &Fixture) -> Result<(), String> {
    // Shell builtins only: the test rootfs has no grep or wc.
    let out = fx.output(fx.sh(
        "for f in /proc/sys/kernel/printk_ratelimit /proc/sysrq-trigger; do (echo 5 > $f) 2>/dev/null && echo WROTE $f; done; \
         for f in /proc/keys /proc/timer_list; do if [ -e $f ] && read -r x < $f; then echo READ $f; fi; done; \
         while read -r a b c d mp rest; do case $mp in /proc/sys|/proc/keys) echo MOUNT $mp;; esac; done < /proc/self/mountinfo",
    ))?;
    expect("protections", out, "MOUNT /proc/sys\nMOUNT /proc/keys\n".into())
}

fn never_host_root(fx: &Fixture) -> Result<(), String> {
    let (uid, gid) = if nix::unistd::geteuid().is_root() {
        hermod_sandbox::NOBODY
    } else {
        (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw())
    };
    let maps = fx.output(fx.sh("cat /proc/self/uid_map /proc/self/gid_map"))?;
    let fields: Vec<Vec<&str>> = maps.lines().map(|l| l.split_whitespace().collect()).collect();
    expect("uid map", fields[0].clone(), vec!["1000", &uid.to_string(), "1"])?;
    expect("gid map", fields[1].clone(), vec!["1000", &gid.to_string(), "1"])?;
    // A sysctl write checks the global root uid: it must fail.
    let out = fx.output(fx.sh(
        "v=$(cat /proc/sys/kernel/printk_ratelimit); (echo $v > /proc/sys/kernel/printk_ratelimit) 2>/dev/null && echo WROTE || echo refused",
    ))?;
    expect("sysctl write", out, "refused\n".into())
}

fn writability(fx: &Fixture) -> Result<(), String> {
    let src = fx.base.join("work/src");
    let ro = fx.base.join("work/ro");
    fx.writable(&src);
    fs::create_dir_all(&ro).unwrap();
    let mut spec = fx.sh("for f in /usr/bin/new /new /etc/new /ro/new /dev/new; do \
           if (echo x > $f) 2>/dev/null; then echo WROTE $f; fi; done; \
         echo built > /build/src/out && echo t > /tmp/t && echo s > /dev/shm/s && echo > /dev/null && echo OK");
    spec.binds.push(Bind { source: src.clone(), target: "/build/src".into(), writable: true });
    spec.binds.push(Bind { source: ro, target: "/ro".into(), writable: false });
    expect("log", fx.output(spec)?, "OK\n".into())?;
    expect("file written through the bind", fs::read_to_string(src.join("out")).ok(), Some("built\n".into()))
}

fn host_invisible(fx: &Fixture) -> Result<(), String> {
    let secret = fx.base.join("host-secret");
    let script = format!("ls /; if cat {} 2>/dev/null; then echo LEAK; fi", secret.display());
    let listing = fx.output(fx.sh(&script))?;
    let want = "bin\ndev\netc\nlib\nlib64\nproc\nsbin\ntmp\nusr\n";
    expect("ls /", listing.as_str(), want)
}

fn hostname(fx: &Fixture) -> Result<(), String> {
    let mut spec = fx.spec(&["/bin/hostname"]);
    spec.hostname = "kbuild-box".into();
    expect("hostname", fx.output(spec)?, "kbuild-box\n".into())
}

fn network(fx: &Fixture) -> Result<(), String> {
    let dev = fx.output(fx.spec(&["/bin/cat", "/proc/net/dev"]))?;
    let ifaces: Vec<&str> = dev.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
    expect("interfaces", ifaces, vec!["lo"])?;
    // The kernel adds 127.0.0.1's local route only while lo is up.
    let fib = fx.output(fx.spec(&["/bin/cat", "/proc/net/fib_trie"]))?;
    if !(fib.contains("127.0.0.1") && fib.contains("host LOCAL")) {
        return Err(format!("no local route for 127.0.0.1, lo is down:\n{fib}"));
    }
    Ok(())
}

fn environment(fx: &Fixture) -> Result<(), String> {
    let mut spec = fx.spec(&["/usr/bin/env"]);
    spec.env = vec![("PATH".into(), "/usr/bin".into()), ("LANG".into(), "C.UTF-8".into()), ("EMPTY".into(), "".into())];
    expect("env", fx.output(spec)?, "PATH=/usr/bin\nLANG=C.UTF-8\nEMPTY=\n".into())?;
    expect("umask", fx.output(fx.sh("umask"))?, "0022\n".into())
}

fn capabilities(fx: &Fixture) -> Result<(), String> {
    let status = fx.output(fx.spec(&["/bin/cat", "/proc/self/status"]))?;
    let field =
        |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or("missing").to_string();
    for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        expect(cap, field(cap), "0000000000000000".into())?;
    }
    expect("NoNewPrivs", field("NoNewPrivs:"), "1".into())
}

fn pid_two(fx: &Fixture) -> Result<(), String> {
    expect("$$", fx.output(fx.sh("echo $$"))?, "2\n".into())
}

fn descriptors(fx: &Fixture) -> Result<(), String> {
    // ls itself opens the directory as fd 3.
    expect("fds", fx.output(fx.spec(&["/bin/ls", "/proc/self/fd"]))?, "0\n1\n2\n3\n".into())?;
    let target = fx.output(fx.sh("cat; ls -l /proc/self/fd/0"))?;
    if !target.trim_end().ends_with("-> /dev/null") {
        return Err(format!("stdin is not /dev/null: {target}"));
    }
    Ok(())
}

fn timeout(fx: &Fixture) -> Result<(), String> {
    let mut spec = fx.sh("while :; do :; done");
    spec.timeout = Some(Duration::from_millis(500));
    let out = run(&spec).map_err(|e| e.to_string())?;
    expect("exit", out.exit, Exit::TimedOut)?;
    if out.wall > Duration::from_secs(3) {
        return Err(format!("took {:?} to time out", out.wall));
    }
    // Same with a busy background writer: it must be gone too.
    let work = fx.base.join("work/timeout");
    fx.writable(&work);
    let mut spec = fx.sh("(i=0; while :; do i=$((i+1)); echo $i > /w/tick; done) & while :; do :; done");
    spec.binds.push(Bind { source: work.clone(), target: "/w".into(), writable: true });
    spec.timeout = Some(Duration::from_millis(500));
    expect("exit", run(&spec).map_err(|e| e.to_string())?.exit, Exit::TimedOut)?;
    still(&work.join("tick"))
}

fn no_survivors(fx: &Fixture) -> Result<(), String> {
    let work = fx.base.join("work/bg");
    fx.writable(&work);
    let mut spec = fx.sh("(i=0; while :; do i=$((i+1)); echo $i > /w/tick; done) & \
         while [ ! -s /w/tick ]; do :; done; exit 0");
    spec.binds.push(Bind { source: work.clone(), target: "/w".into(), writable: true });
    expect("exit", run(&spec).map_err(|e| e.to_string())?.exit, Exit::Code(0))?;
    still(&work.join("tick"))
}

/// The counter in `tick` no longer moves: its writer is dead.
fn still(tick: &Path) -> Result<(), String> {
    let before = fs::read_to_string(tick).map_err(|e| format!("{}: {e}", tick.display()))?;
    std::thread::sleep(Duration::from_millis(300));
    let after = fs::read_to_string(tick).unwrap_or_default();
    if before != after {
        return Err(format!("a sandboxed process survived: counter went {} -> {}", before.trim(), after.trim()));
    }
    Ok(())
}

fn log_appends(fx: &Fixture) -> Result<(), String> {
    let log = fx.base.join("append.log");
    fs::write(&log, "before\n").unwrap();
    for word in ["one", "two"] {
        let mut spec = fx.sh(&format!("echo {word}; echo {word}-err >&2"));
        spec.log = Some(log.clone());
        run(&spec).map_err(|e| e.to_string())?;
    }
    expect("log", fs::read_to_string(&log).unwrap(), "before\none\none-err\ntwo\ntwo-err\n".into())
}

fn missing_rootfs(fx: &Fixture) -> Result<(), String> {
    let mut spec = fx.sh("true");
    spec.rootfs = fx.base.join("no-such-rootfs");
    match run(&spec) {
        Err(e @ SandboxError::RootfsMissing(_)) => {
            expect("message", e.to_string(), format!("rootfs {} does not exist", spec.rootfs.display()))
        }
        other => Err(format!("got {other:?}")),
    }
}

fn setup_errors(fx: &Fixture) -> Result<(), String> {
    let mut spec = fx.sh("true");
    spec.cwd = "/no/such/dir".into();
    let err = run(&spec).err().ok_or("bad cwd was accepted")?;
    expect(
        "cwd",
        err.to_string(),
        "changing to the working directory /no/such/dir: ENOENT: No such file or directory".into(),
    )?;

    let mut spec = fx.sh("true");
    spec.binds.push(Bind { source: fx.base.join("work"), target: "/usr/new/dir".into(), writable: false });
    let err = run(&spec).err().ok_or("mount point in the read-only rootfs was created")?;
    match &err {
        SandboxError::Setup { errno: Some(nix::errno::Errno::EROFS), .. } => {}
        _ => return Err(format!("unexpected error: {err}")),
    }
    expect("rootfs untouched", fx.rootfs.join("usr/new").exists(), false)?;

    let mut spec = fx.sh("true");
    spec.binds.push(Bind { source: fx.base.join("work"), target: "/lib/x".into(), writable: false });
    let err = run(&spec).err().ok_or("mount point through a symlink was accepted")?.to_string();
    expect("symlink", err.contains("/lib is a symlink"), true)
}

fn exec_failure(fx: &Fixture) -> Result<(), String> {
    let (out, log) = fx.run_logged(fx.spec(&["/usr/bin/nope", "arg"]))?;
    expect("exit", out.exit, Exit::Code(127))?;
    expect("log", log.trim_end(), "hermod-sandbox: cannot execute /usr/bin/nope: ENOENT: No such file or directory")
}

fn wrong_init(fx: &Fixture) -> Result<(), String> {
    match run_with_init(&fx.sh("true"), Path::new("/bin/true")) {
        Err(e @ SandboxError::Protocol(_)) if e.to_string().contains("enter_if_requested") => Ok(()),
        other => Err(format!("got {other:?}")),
    }
}

fn concurrent(fx: &Fixture) -> Result<(), String> {
    let results: Vec<Result<String, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let mut spec = fx.spec(&["/bin/hostname"]);
                spec.hostname = format!("box{i}");
                s.spawn(move || fx.output(spec))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, r) in results.into_iter().enumerate() {
        expect("hostname", r?, format!("box{i}\n"))?;
    }
    Ok(())
}

fn mount_table(fx: &Fixture) -> Result<(), String> {
    let src = fx.base.join("work/mt");
    fx.writable(&src);
    let mut spec = fx.spec(&["/bin/cat", "/proc/self/mountinfo"]);
    spec.binds.push(Bind { source: src, target: "/build/src".into(), writable: true });
    let info = fx.output(spec)?;
    // mount point -> per-mount options; a later mount on the same point
    // (the /tmp tmpfs over the rootfs's /tmp) hides the earlier one.
    let mut table = std::collections::BTreeMap::new();
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let opts: Vec<&str> = f[5].split(',').filter(|o| !o.ends_with("time")).collect();
        // The /proc protections depend on what the kernel has: `proc_sealed` checks them.
        if !f[4].starts_with("/proc/") {
            table.insert(f[4].to_string(), opts.join(","));
        }
    }
    let want = [
        ("/", "ro,nosuid,nodev"),
        ("/build/src", "rw,nosuid,nodev"),
        ("/dev", "ro,nosuid,nodev"),
        ("/dev/full", "rw,nosuid"),
        ("/dev/null", "rw,nosuid"),
        ("/dev/random", "rw,nosuid"),
        ("/dev/shm", "rw,nosuid,nodev"),
        ("/dev/tty", "rw,nosuid"),
        ("/dev/urandom", "rw,nosuid"),
        ("/dev/zero", "rw,nosuid"),
        ("/etc", "ro,nosuid,nodev"),
        ("/proc", "rw,nosuid,nodev,noexec"),
        ("/tmp", "rw,nosuid,nodev"),
        ("/usr", "ro,nosuid,nodev"),
    ];
    let want = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    expect("mounts", table, want)
}

/// The caller's own hard limit caps what the sandbox can set.
fn host_hard_limit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    assert_eq!(unsafe { libc::getrlimit(resource, &mut l) }, 0);
    l.rlim_max
}

fn rlimits(fx: &Fixture) -> Result<(), String> {
    let nofile = 4096.min(host_hard_limit(libc::RLIMIT_NOFILE));
    let nproc = 4096.min(host_hard_limit(libc::RLIMIT_NPROC));
    expect(
        "ulimit -c -n -p -t -Hn",
        fx.output(fx.sh("ulimit -c; ulimit -n; ulimit -p; ulimit -t; ulimit -Hn"))?,
        format!("0\n{nofile}\n{nproc}\n3600\n{nofile}\n"),
    )?;
    let mut spec = fx.sh("ulimit -n; ulimit -t; ulimit -Ht");
    spec.limits = Limits { nofile: Some(64), cpu: Some(5), ..Limits::inherit() };
    expect("custom", fx.output(spec)?, "64\n5\n5\n".into())
}

fn fsize(fx: &Fixture) -> Result<(), String> {
    // Signal ignored: the write fails with EFBIG, the file stops at 1000.
    let mut spec = fx.sh("trap '' XFSZ; if printf '%2000s' x > /tmp/big; then echo WROTE; else echo REFUSED; fi; \
         ls -l /tmp/big");
    spec.limits.fsize = Some(1000);
    let log = fx.output(spec)?;
    if !(log.contains("REFUSED") && log.contains(" 1000 ")) {
        return Err(format!("big file was written:\n{log}"));
    }
    // Default disposition: SIGXFSZ kills the writer.
    let mut spec = fx.sh("printf '%2000s' x > /tmp/big; echo SURVIVED");
    spec.limits.fsize = Some(1000);
    expect("exit", run(&spec).map_err(|e| e.to_string())?.exit, Exit::Signal(libc::SIGXFSZ))
}

fn seccomp_plain(fx: &Fixture) -> Result<(), String> {
    let spec = fx.sh("echo hi; (echo sub) | cat; ls / >/dev/null");
    expect("seccomp on", spec.seccomp, true)?;
    expect("log", fx.output(spec)?, "hi\nsub\n".into())
}

fn seccomp_chmod(fx: &Fixture) -> Result<(), String> {
    let script = "echo > /tmp/f; chmod 600 /tmp/f && chmod 644 /tmp/f && echo MODE-OK; \
                  chmod u+s /tmp/f || echo SUID-REFUSED; chmod g+s /tmp/f || echo SGID-REFUSED; \
                  ls -l /tmp/f";
    let log = fx.output(fx.sh(script))?;
    for want in ["MODE-OK", "SUID-REFUSED", "SGID-REFUSED", "Operation not permitted", "-rw-r--r--"] {
        if !log.contains(want) {
            return Err(format!("no {want:?} in:\n{log}"));
        }
    }
    // Without the filter the same chmod works: it is the filter refusing.
    let mut spec = fx.sh(script);
    spec.seccomp = false;
    let log = fx.output(spec)?;
    if !log.contains("-rwSr-Sr--") {
        return Err(format!("without seccomp, u+s/g+s were not set:\n{log}"));
    }
    Ok(())
}

fn probe(fx: &Fixture, op: &str, seccomp: bool) -> Result<String, String> {
    let mut spec = fx.spec(&["/usr/bin/hermod-probe", op]);
    spec.seccomp = seccomp;
    fx.output(spec)
}

fn seccomp_denied(fx: &Fixture) -> Result<(), String> {
    if !fx.probe {
        println!("        (skipped: no hermod-probe, see the note above)");
        return Ok(());
    }
    for (op, want) in [
        ("unshare", "EPERM"),
        ("clone-newuser", "EPERM"),
        ("clone3", "ENOSYS"),
        ("mount", "EPERM"),
        ("tiocsti", "EPERM"),
        ("personality", "EPERM"),
        ("fork", "ok"),
    ] {
        expect(op, probe(fx, op, true)?, format!("{op}: {want}\n"))?;
    }
    // Without the filter TIOCSTI reaches the driver (stdout is the log file,
    // not a tty) and clone3 is implemented: the EPERM/ENOSYS above were the
    // filter's.
    expect("tiocsti unfiltered", probe(fx, "tiocsti", false)?, "tiocsti: ENOTTY\n".into())?;
    expect("clone3 unfiltered", probe(fx, "clone3", false)?, "clone3: EINVAL\n".into())
}

fn seccomp_foreign_abi(fx: &Fixture) -> Result<(), String> {
    if !fx.probe {
        println!("        (skipped: no hermod-probe, see the note above)");
        return Ok(());
    }
    for op in ["i386", "x32"] {
        let out = run(&fx.spec(&["/usr/bin/hermod-probe", op])).map_err(|e| e.to_string())?;
        expect(op, out.exit, Exit::Signal(libc::SIGSYS))?;
    }
    Ok(())
}
