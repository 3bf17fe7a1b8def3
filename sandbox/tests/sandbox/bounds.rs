//! Cases for what bounds a build: tmpfs sizes, the outputs copy, cgroups.

use std::fs;

use hermod_sandbox::{run, Exit, Outputs, SandboxError, Tmpfs};

use crate::fixture::{expect, Fixture};

pub fn tmpfs_size(fx: &Fixture) -> Result<(), String> {
    let mut spec = fx.sh("if head -c 3000000 /dev/zero > /tmp/big 2>/dev/null; then echo WROTE; else echo FULL; fi; \
         if head -c 3000000 /dev/zero > /scratch/big 2>/dev/null; then echo WROTE; else echo FULL; fi");
    spec.tmpfs = vec![Tmpfs::new("/tmp", Some(1 << 20)), Tmpfs::new("/scratch", Some(2 << 20))];
    expect("log", fx.output(spec)?, "FULL\nFULL\n".into())
}

pub fn outputs_copied(fx: &Fixture) -> Result<(), String> {
    let host = fx.base.join("work/outputs");
    fx.writable(&host);
    let mut spec = fx.sh("echo a > /out/a && printf 12345 > /out/b && ln -s /etc/passwd /out/link && mkdir /out/d && \
         echo c > /out/d/c && mkfifo /out/fifo && echo done");
    spec.tmpfs.push(Tmpfs::new("/out", Some(1 << 20)));
    spec.outputs = Some(Outputs { inside: "/out".into(), host: host.clone(), max_bytes: 100 });
    expect("log", fx.output(spec)?, "done\n".into())?;
    let mut names: Vec<String> =
        fs::read_dir(&host).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    expect("copied: regular files only", names, vec!["a".to_string(), "b".to_string()])?;
    expect("contents", fs::read_to_string(host.join("b")).ok(), Some("12345".into()))
}

pub fn outputs_bounded(fx: &Fixture) -> Result<(), String> {
    let host = fx.base.join("work/outputs-bounded");
    fx.writable(&host);
    let mut spec = fx.sh("head -c 5000 /dev/zero > /out/big; echo done");
    spec.tmpfs.push(Tmpfs::new("/out", Some(1 << 20)));
    spec.outputs = Some(Outputs { inside: "/out".into(), host: host.clone(), max_bytes: 4096 });
    match run(&spec) {
        Err(SandboxError::Outputs(why)) if why.contains("limit of 4096 bytes") => {}
        other => return Err(format!("want an outputs error naming the limit, got {other:?}")),
    }
    expect("nothing copied", fs::read_dir(&host).unwrap().count(), 0)?;
    // The command itself cannot write the host directory: it is not mounted.
    let mut spec =
        fx.sh(&format!("if {{ echo x > {}/x; }} 2>/dev/null; then echo WROTE; fi; echo done", host.display()));
    spec.outputs = Some(Outputs { inside: "/out".into(), host: host.clone(), max_bytes: 4096 });
    expect("log", fx.output(spec)?, "done\n".into())?;
    expect("host dir untouched", fs::read_dir(&host).unwrap().count(), 0)
}

/// Enforced where this host lets the caller create a cgroup (root here);
/// otherwise the outcome must say why not.
pub fn cgroup_pids(fx: &Fixture) -> Result<(), String> {
    let mut spec = fx.sh("n=0; for i in $(seq 60); do sleep 5 2>/dev/null & n=$((n+1)); done; echo started $n");
    spec.limits.pids = Some(16);
    spec.limits.memory = None;
    let (outcome, log) = fx.run_logged(spec)?;
    if !outcome.cgroup.pids {
        let why = outcome.cgroup.not_enforced.unwrap_or_default();
        println!("        (pids limit not enforced here: {why})");
        return expect("a reason is given", why.contains("not enforced"), true);
    }
    // dash reports each failed fork; the 60 sleeps cannot all start.
    if !log.contains("fork") && !log.contains("Resource temporarily unavailable") {
        return Err(format!("60 processes started under a limit of 16:\n{log}"));
    }
    Ok(())
}

pub fn cgroup_memory(fx: &Fixture) -> Result<(), String> {
    let mut spec = fx.sh("x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo SURVIVED ${#x}");
    spec.limits.memory = Some(32 << 20);
    let (outcome, log) = fx.run_logged(spec)?;
    if !outcome.cgroup.memory {
        let why = outcome.cgroup.not_enforced.unwrap_or_default();
        println!("        (memory limit not enforced here: {why})");
        return expect("a reason is given", why.contains("not enforced"), true);
    }
    expect("OOM kill reported", outcome.cgroup.oom_killed, true)?;
    if log.contains("SURVIVED 200000000") {
        return Err(format!("200 MB held under a 32 MiB limit:\n{log}"));
    }
    expect("killed", outcome.exit != Exit::Code(0), true)
}
