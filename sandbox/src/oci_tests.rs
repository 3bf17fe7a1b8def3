//! Unit tests of the OCI export (`oci.rs`).

use super::*;
use crate::spec::{Bind, Outputs, Tmpfs};
use serde_json::{json, Value};

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    spec: Spec,
}

/// A small rootfs (`etc/`, `usr/`, `tmp/`, `proc/`, `dev/`, a file and a
/// symlink) and a spec shaped like hermod's build step.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let rootfs = root.join("tree");
    for d in ["etc", "usr/bin", "tmp", "proc", "dev"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::write(rootfs.join("marker"), b"").unwrap();
    symlink("usr/bin", rootfs.join("bin")).unwrap();
    for d in ["in", "out"] {
        fs::create_dir(root.join(d)).unwrap();
    }
    let mut spec = Spec::new(&rootfs, vec!["/bin/bash".into(), "/hermod/in/enter.sh".into()]);
    spec.binds = vec![Bind { source: root.join("in"), target: "/hermod/in".into(), writable: false }];
    spec.tmpfs = vec![
        Tmpfs::new("/build", Some(1 << 30)),
        Tmpfs::new("/hermod/out", Some(1 << 30)),
        Tmpfs::new("/tmp", Some(512 << 20)),
    ];
    spec.outputs = Some(Outputs { inside: "/hermod/out".into(), host: root.join("out"), max_bytes: 1 << 30 });
    spec.env.push(("HOME".into(), "/tmp".into()));
    spec.cwd = "/build".into();
    Fixture { _dir: dir, root, spec }
}

fn config_json(spec: &Spec) -> Value {
    serde_json::to_value(runtime_config(spec).unwrap()).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

#[test]
fn process_runs_as_the_build_user_with_nothing_else() {
    let f = fixture();
    let c = config_json(&f.spec);
    assert_eq!(c["ociVersion"], "1.0.2");
    assert_eq!(c["root"], json!({"path": "rootfs", "readonly": true}));
    assert_eq!(c["hostname"], "hermod");
    let p = &c["process"];
    assert_eq!(p["terminal"], false);
    assert_eq!(p["noNewPrivileges"], true);
    assert_eq!(p["oomScoreAdj"], 1000);
    assert_eq!(p["user"], json!({"uid": 1000, "gid": 1000, "umask": 0o022}));
    assert_eq!(p["args"], json!(["/bin/bash", "/hermod/in/enter.sh"]));
    assert_eq!(p["env"], json!(["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/tmp"]));
    assert_eq!(p["cwd"], "/build");
    let caps = p["capabilities"].as_object().unwrap();
    assert_eq!(caps.len(), 5, "{caps:?}");
    for set in ["bounding", "effective", "inheritable", "permitted", "ambient"] {
        assert_eq!(caps[set], json!([]), "{set}");
    }
    assert!(c.get("annotations").is_none());
}

#[test]
fn rlimits_are_soft_equals_hard_and_unset_ones_are_omitted() {
    let mut f = fixture();
    let c = config_json(&f.spec);
    let want = json!([
        {"type": "RLIMIT_NPROC", "hard": 4096, "soft": 4096},
        {"type": "RLIMIT_FSIZE", "hard": 4u64 << 30, "soft": 4u64 << 30},
        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
        {"type": "RLIMIT_CPU", "hard": 3600, "soft": 3600},
        {"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096},
    ]);
    assert_eq!(c["process"]["rlimits"], want);
    assert_eq!(c["linux"]["resources"]["memory"], json!({"limit": 8u64 << 30}));
    assert_eq!(c["linux"]["resources"]["pids"], json!({"limit": 2048}));
    assert_eq!(c["linux"]["resources"]["devices"], json!([{"allow": false, "access": "rwm"}]));

    f.spec.limits = Limits { core: Some(0), ..Limits::inherit() };
    let c = config_json(&f.spec);
    assert_eq!(c["process"]["rlimits"], json!([{"type": "RLIMIT_CORE", "hard": 0, "soft": 0}]));
    assert!(c["linux"]["resources"].get("memory").is_none());
    assert!(c["linux"]["resources"].get("pids").is_none());
}

#[test]
fn mounts_mirror_the_sandbox() {
    let f = fixture();
    let c = config_json(&f.spec);
    let mounts = c["mounts"].as_array().unwrap();
    let dests: Vec<&str> = mounts.iter().map(|m| m["destination"].as_str().unwrap()).collect();
    assert_eq!(
        dests,
        ["/etc", "/marker", "/tmp", "/usr", "/proc", "/dev", "/dev/shm", "/build", "/tmp", "/hermod/in", "/hermod/out"]
    );
    let tree = f.root.join("tree");
    let find = |i: usize| &mounts[i];
    assert_eq!(
        find(0),
        &json!({"destination": "/etc", "type": "bind", "source": tree.join("etc"),
                "options": ["bind", "ro", "nosuid", "nodev"]})
    );
    assert_eq!(
        find(4),
        &json!({"destination": "/proc", "type": "proc", "source": "proc",
                                "options": ["nosuid", "noexec", "nodev"]})
    );
    assert_eq!(strings(&find(5)["options"]), ["nosuid", "nodev", "mode=755"]);
    assert_eq!(strings(&find(6)["options"]), ["nosuid", "nodev", "mode=1777", "size=67108864"]);
    assert_eq!(strings(&find(7)["options"]), ["nosuid", "nodev", "mode=1777", "size=1073741824"]);
    assert_eq!(strings(&find(8)["options"]), ["nosuid", "nodev", "mode=1777", "size=536870912"]);
    assert_eq!(find(9)["source"], json!(f.root.join("in")));
    assert_eq!(strings(&find(9)["options"]), ["bind", "ro", "nosuid", "nodev"]);
    // The outputs tmpfs becomes a writable bind of the host directory.
    assert_eq!(find(10)["type"], "bind");
    assert_eq!(find(10)["source"], json!(f.root.join("out")));
    assert_eq!(strings(&find(10)["options"]), ["bind", "rw", "nosuid", "nodev"]);
    for m in mounts {
        assert!(!strings(&m["options"]).contains(&"rbind".to_string()), "{m}");
    }
}

#[test]
fn a_shadowed_directory_is_a_tmpfs_of_read_only_binds_then_read_only() {
    let mut f = fixture();
    let tree = f.root.join("tree");
    fs::create_dir_all(tree.join("usr/src/linux-headers-6")).unwrap();
    f.spec.shadowed = vec!["/usr/src".into()];
    f.spec.tmpfs.push(Tmpfs::new("/usr/src/m-1", Some(1 << 20)));
    let c = config_json(&f.spec);
    let mounts = c["mounts"].as_array().unwrap();
    let dests: Vec<&str> = mounts.iter().map(|m| m["destination"].as_str().unwrap()).collect();
    assert_eq!(dests[3..6], ["/usr", "/usr/src", "/usr/src/linux-headers-6"]);
    assert_eq!(dests.last(), Some(&"/usr/src/m-1"));
    assert_eq!(strings(&mounts[4]["options"]), ["nosuid", "nodev", "mode=755"]);
    assert_eq!(mounts[5]["source"], json!(tree.join("usr/src/linux-headers-6")));
    assert_eq!(strings(&mounts[5]["options"]), ["bind", "ro", "nosuid", "nodev"]);
    assert!(strings(&c["linux"]["readonlyPaths"]).contains(&"/usr/src".to_string()));
    // A runtime makes no links: a link's target is bound in its place, if
    // it lies inside the rootfs.
    symlink("linux-headers-6", tree.join("usr/src/linux")).unwrap();
    let c = config_json(&f.spec);
    let linux = c["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/usr/src/linux").unwrap().clone();
    assert_eq!(linux["source"], json!(tree.join("usr/src/linux-headers-6")));
    // Resolved as the container resolves it, inside the rootfs: an absolute
    // target names the rootfs's own file, never the host's.
    symlink("/usr/src/linux-headers-6", tree.join("usr/src/abs")).unwrap();
    symlink("../../../../../../usr/src/linux-headers-6", tree.join("usr/src/up")).unwrap();
    let c = config_json(&f.spec);
    let source =
        |d: &str| c["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == d).unwrap()["source"].clone();
    assert_eq!(source("/usr/src/abs"), json!(tree.join("usr/src/linux-headers-6")));
    assert_eq!(source("/usr/src/up"), json!(tree.join("usr/src/linux-headers-6")));
    // A link that resolves nowhere in the rootfs is refused.
    symlink("/no/such/dir", tree.join("usr/src/dangling")).unwrap();
    assert!(matches!(runtime_config(&f.spec), Err(OciError::Unsupported(_))));
}

#[test]
fn namespaces_ids_devices_and_proc_paths() {
    let f = fixture();
    let c = config_json(&f.spec);
    let l = &c["linux"];
    let types: Vec<&str> = l["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["user", "mount", "pid", "network", "ipc", "uts"]);
    let maps = json!([{"hostID": 0, "containerID": 0, "size": 1}, {"hostID": 65534, "containerID": 1000, "size": 1}]);
    assert_eq!(l["uidMappings"], maps);
    assert_eq!(l["gidMappings"], maps);
    // The six devices of init/dev.rs are the runtime spec's default devices.
    assert!(l.get("devices").is_none());
    assert_eq!(strings(&l["maskedPaths"]), procfs::MASKED);
    assert!(strings(&l["maskedPaths"]).contains(&"/proc/kcore".to_string()));
    let mut ro = procfs::READ_ONLY.to_vec();
    ro.push("/dev");
    assert_eq!(strings(&l["readonlyPaths"]), ro);
    assert_eq!(l["rootfsPropagation"], "rprivate");
}

#[test]
fn ids_a_runtime_cannot_map_are_refused() {
    let mut f = fixture();
    f.spec.host_ids = None;
    assert!(matches!(runtime_config(&f.spec), Err(OciError::Unsupported(_))));
    let mut f = fixture();
    f.spec.uid = 0;
    let c = config_json(&f.spec);
    assert_eq!(c["linux"]["uidMappings"], json!([{"hostID": 65534, "containerID": 0, "size": 1}]));
    let mut f = fixture();
    f.spec.argv[0] = "bash".into();
    assert!(matches!(runtime_config(&f.spec), Err(OciError::InvalidSpec(_))));
}

#[test]
fn seccomp_profile_names_and_conditions() {
    let f = fixture();
    let c = config_json(&f.spec);
    let s = &c["linux"]["seccomp"];
    assert_eq!(s["defaultAction"], "SCMP_ACT_ALLOW");
    assert_eq!(s["architectures"], json!(["SCMP_ARCH_X86_64"]));
    let calls = s["syscalls"].as_array().unwrap();
    let eperm = &calls[0];
    assert_eq!((&eperm["action"], &eperm["errnoRet"]), (&json!("SCMP_ACT_ERRNO"), &json!(libc::EPERM)));
    for name in ["mount", "umount2", "pivot_root", "ptrace", "bpf", "keyctl", "init_module", "setns", "unshare"] {
        assert!(strings(&eperm["names"]).contains(&name.to_string()), "{name}");
    }
    let entries = |name: &str| -> Vec<&Value> { calls.iter().filter(|e| strings(&e["names"]) == [name]).collect() };
    assert_eq!(entries("clone3")[0]["errnoRet"], json!(libc::ENOSYS));
    assert_eq!(
        entries("clone")[0]["args"],
        json!([{"index": 0, "value": 0x1000_0000, "valueTwo": 0x1000_0000, "op": "SCMP_CMP_MASKED_EQ"}])
    );
    assert_eq!(
        entries("ioctl")[0]["args"],
        json!([{"index": 1, "value": 0xffff_ffffu64, "valueTwo": 0x5412, "op": "SCMP_CMP_MASKED_EQ"}])
    );
    for name in ["chmod", "fchmod", "fchmodat", "fchmodat2"] {
        let values: Vec<&Value> = entries(name).iter().map(|e| &e["args"][0]["valueTwo"]).collect();
        assert_eq!(values, [&json!(0o4000), &json!(0o2000)], "{name}");
    }
    assert_eq!(entries("personality").len(), 32);

    let mut f = fixture();
    f.spec.seccomp = false;
    assert!(config_json(&f.spec)["linux"].get("seccomp").is_none());
}

/// What a runtime's libseccomp decides from the profile, evaluated the way
/// runc loads it: entries ORed, one entry's conditions ANDed, 64-bit masked
/// compares. Must be what hermod's own rules decide.
#[test]
fn seccomp_profile_decides_what_the_rules_say() {
    let profile = seccomp().unwrap();
    let decide = |name: &str, args: &[u64; 6]| -> Option<u32> {
        profile.syscalls().as_ref().unwrap().iter().find_map(|e| {
            let named = e.names().iter().any(|n| n == name);
            let holds = e.args().iter().flatten().all(|a| args[a.index()] & a.value() == a.value_two().unwrap());
            (named && holds).then(|| e.errno_ret().unwrap())
        })
    };
    let mut probes = vec![0u64, 1, 8, 0x20000, 0x20008, 0x20009, 0xffff_ffff, 0xffff_fffe, 0x1_0000_0000, u64::MAX];
    probes.extend([0o644, 0o1777, 0o4755, 0o2755, 0o6755 | 1 << 40, 0x5412, 0x5412 | 1 << 32, 0x5401]);
    probes.extend([libc::SIGCHLD as u64, libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64, 0x0040000, 0x0400000]);
    probes.extend((0..32).map(|i| 1u64 << i));
    probes.extend((0..32).map(|i| 0xffff_ffff ^ (1u64 << i)));
    for rule in filter::rules() {
        for arg in 0..3 {
            for &p in &probes {
                let mut args = [0u64; 6];
                args[arg] = p;
                let refused = rule.when.is_empty() || rule.when.iter().any(|c| c.holds(&args));
                let want = refused.then_some(rule.errno as u32);
                assert_eq!(decide(rule.call.name, &args), want, "{} {args:x?}", rule.call.name);
            }
        }
    }
}

/// Every 8-bit value, for many allowed sets: the cubes match exactly the
/// values that are not allowed.
#[test]
fn complement_cubes_are_exact() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut sets: Vec<Vec<u64>> = vec![vec![], vec![0], vec![0xff], vec![0, 0xff], vec![0x5a]];
    for _ in 0..300 {
        let n = (next() % 9) as usize;
        sets.push((0..n).map(|_| next() & 0xff).collect());
    }
    for allowed in sets {
        let cubes = complement_cubes(&allowed, 8);
        for x in 0..=0xffu64 {
            let matched = cubes.iter().any(|&(m, v)| x & m == v);
            assert_eq!(matched, !allowed.contains(&x), "x={x:#x} allowed={allowed:x?} cubes={cubes:x?}");
        }
    }
    // The high bits beyond `width` are ignored, as hermod's 32-bit compares do.
    let cubes = complement_cubes(&[0, 8, 0x20000, 0x20008, 0xffff_ffff], 32);
    assert!(cubes.iter().all(|&(m, v)| m >> 32 == 0 && v & !m == 0));
    for _ in 0..200_000 {
        let x = next() & 0xffff_ffff;
        let x = if x & 1 == 0 { x & 0x20008 } else { x };
        assert_eq!(cubes.iter().any(|&(m, v)| x & m == v), ![0, 8, 0x20000, 0x20008, 0xffff_ffff].contains(&x));
    }
}

#[test]
fn bundle_has_config_and_the_rootfs_symlinks() {
    let f = fixture();
    let bundle = f.root.join("bundle");
    fs::create_dir(&bundle).unwrap();
    let config = write_bundle(&f.spec, &bundle).unwrap();
    assert_eq!(fs::read_link(bundle.join("rootfs/bin")).unwrap(), Path::new("usr/bin"));
    assert_eq!(fs::read_dir(bundle.join("rootfs")).unwrap().count(), 1);
    let text = fs::read_to_string(bundle.join("config.json")).unwrap();
    assert!(text.contains("\n  \"ociVersion\": \"1.0.2\""), "pretty JSON");
    let back = oci_spec::runtime::Spec::load(bundle.join("config.json")).unwrap();
    assert_eq!(back, config);
    assert_eq!(back.root().as_ref().unwrap().path(), &bundle.join("rootfs"));
    // A second bundle in the same place is refused rather than mixed.
    assert!(matches!(write_bundle(&f.spec, &bundle), Err(OciError::Io { .. })));
}
