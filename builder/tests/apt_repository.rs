//! The farm's side of a published repository, with the real apt and dpkg in a
//! throwaway Debian root (`common/debroot.rs`: mmdebstrap, its own namespaces) that
//! has the test kernel's real `linux-image` package installed:
//! hermod builds hello, `hermod repo keygen` makes the key and prints the
//! `.sources` stanza, `hermod publish` signs the repository; apt installs
//! `hello-modules-KREL` from it over `file:` and over http (nginx on
//! loopback); dpkg owns the module, debsums finds it intact, purge leaves
//! nothing behind; an unsigned repository, one signed by another key, a
//! tampered index and a tampered package are refused by apt. A farm root
//! with Debian's sources, hermod's and the metapackage `hello-modules-amd64`
//! (no hermod installed) follows a new kernel with `apt full-upgrade`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::debroot::{DebRoot, DebRootSpec};
use common::nginx::Nginx;
use common::*;

/// hermod without the repository settings of the caller's environment.
fn hermod_cmd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(hermod());
    cmd.args(args).env_remove("HERMOD_REPO_SIGN_KEY").env_remove("SOURCE_DATE_EPOCH");
    for (var, value) in env {
        cmd.env(var, value);
    }
    run_logged(&mut cmd, args)
}

/// The hello module's package for the test kernel, built by the real binary
/// (a cache hit after the first test that builds it).
fn hello_deb(out: &Path) -> PathBuf {
    hello_deb_for(out, &kernel())
}

/// [`hello_deb`] for `kernel`.
fn hello_deb_for(out: &Path, kernel: &str) -> PathBuf {
    let source = testdata("modules/hello");
    let built =
        run(&shared_store(), &["build", source.to_str().unwrap(), "--kernel", kernel, "--out", out.to_str().unwrap()]);
    assert!(built.status.success(), "building hello for {kernel}: {}", stderr(&built));
    PathBuf::from(stdout(&built).trim())
}

fn package() -> String {
    format!("hello-modules-{}", kernel())
}

fn module_path() -> String {
    format!("/lib/modules/{}/updates/dkms/hello.ko", kernel())
}

/// A world-readable scratch directory (apt's `_apt` user and nginx's `nobody` read it).
fn scratch(tag: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(&format!("hermod-{tag}-")).tempdir_in("/var/tmp").unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `hermod repo keygen` in `dir`: the key prefix and the printed stanza.
fn keygen(dir: &Path, name: &str, url: &str) -> (PathBuf, String) {
    let prefix = dir.join(name);
    let out = hermod_cmd(&["repo", "keygen", "--out", prefix.to_str().unwrap(), "--url", url], &[]);
    assert!(out.status.success(), "keygen: {}", stderr(&out));
    (prefix, stdout(&out))
}

fn with_ext(prefix: &Path, ext: &str) -> PathBuf {
    PathBuf::from(format!("{}.{ext}", prefix.display()))
}

/// Every path of the root (minus the kernel's and the test's mounts), for before/after comparisons.
fn tree(root: &DebRoot, also_prune: &Path) -> Vec<String> {
    let script = format!(
        "find / -xdev \\( -path /proc -o -path /dev -o -path /tmp -o -path /sys -o -path {} \\) -prune -o -print | sort",
        also_prune.display()
    );
    root.sh_ok(&script).lines().map(str::to_owned).collect()
}

/// Paths apt and dpkg rewrite for their own bookkeeping on any install and removal.
fn bookkeeping(path: &str) -> bool {
    ["/var/lib/dpkg/", "/var/lib/apt/", "/var/cache/apt/", "/var/cache/debconf/", "/var/log/"]
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

/// A root whose only apt source is `stanza` (the Debian sources mmdebstrap left are removed).
fn farm_root(bound: &Path) -> DebRoot {
    let mut root = DebRoot::new(&DebRootSpec::farm(&kernel()));
    // The scratch directory at the same path inside: the stanza's Signed-By and file: URI hold as printed.
    root.ro_bind(bound, bound.to_str().unwrap());
    root.sh_ok("rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*");
    root
}

fn use_source(root: &DebRoot, stanza: &str) {
    root.write("/etc/apt/sources.list.d/hermod.sources", stanza);
    root.sh_ok("rm -rf /var/lib/apt/lists/*");
}

#[test]
fn signed_repository_installs_over_file_and_http() {
    let work = scratch("repo");
    let deb = hello_deb(&work.path().join("out"));
    let repo = work.path().join("repo");
    let (prefix, stanza) = keygen(work.path(), "farm", &format!("file:{}", repo.display()));
    let asc = with_ext(&prefix, "asc");
    assert_eq!(
        stanza,
        format!(
            "Types: deb\nURIs: file:{}\nSuites: hermod\nComponents: main\nSigned-By: {}\n",
            repo.display(),
            asc.display()
        )
    );
    // The secret key comes from the environment here (HERMOD_REPO_SIGN_KEY), as a publish job sets it.
    let key = with_ext(&prefix, "key");
    let published = hermod_cmd(
        &["publish", "--repo", repo.to_str().unwrap(), deb.to_str().unwrap()],
        &[("HERMOD_REPO_SIGN_KEY", key.to_str().unwrap())],
    );
    assert!(published.status.success(), "{}", stderr(&published));
    assert!(!stderr(&published).contains("NOT SIGNED"));
    let pool = PathBuf::from(stdout(&published).trim());
    assert!(pool.starts_with(repo.join("pool/main/h/hello")), "{}", pool.display());
    assert_eq!(sha256(&pool), sha256(&deb));

    let root = farm_root(work.path());
    use_source(&root, &stanza);
    let before = tree(&root, work.path());
    let package = package();
    let module = module_path();

    // Over file:.
    let update = root.sh_ok("apt-get update 2>&1");
    assert!(!update.contains("W:") && !update.contains("E:"), "apt warned:\n{update}");
    root.sh_ok(&format!("apt-get install -y --no-install-recommends {package}"));
    let owner = root.sh_ok(&format!("dpkg -S {module}"));
    assert_eq!(owner.trim(), format!("{package}: {module}"));
    assert!(
        root.sh_ok(&format!("grep -c updates/dkms/hello.ko /lib/modules/{}/modules.dep", kernel())).trim() == "1",
        "depmod ran"
    );
    let vermagic = root.sh_ok(&format!("modinfo -F vermagic {module}"));
    assert!(vermagic.starts_with(&format!("{} ", kernel())), "{vermagic}");
    assert_eq!(root.sh_ok(&format!("debsums -s {package}")), "", "debsums finds every file intact");
    // debsums does check the file: a changed byte is reported.
    let damaged = root.sh(&format!("cp {module} /root/hello.ko && printf x >> {module} && debsums -s {package}"));
    assert!(!damaged.status.success(), "debsums missed a changed module");
    assert!(String::from_utf8_lossy(&damaged.stderr).contains("hello.ko"), "debsums names the file");
    root.sh_ok(&format!("mv /root/hello.ko {module} && debsums -s {package}"));

    // Purge leaves no file of the package behind: the tree is as it was before the install.
    root.sh_ok(&format!("apt-get purge -y {package}"));
    assert!(!root.sh(&format!("dpkg -S {module}")).status.success());
    let after = tree(&root, work.path());
    let added: Vec<&String> = after.iter().filter(|p| !before.contains(p) && !bookkeeping(p)).collect();
    let removed: Vec<&String> = before.iter().filter(|p| !after.contains(p) && !bookkeeping(p)).collect();
    assert!(added.is_empty() && removed.is_empty(), "purge left {added:?}, took {removed:?}");

    // Over http, from nginx on loopback (the same files).
    let nginx = Nginx::serve(&repo, "hermod");
    let url = format!("http://127.0.0.1:{}/hermod", nginx.port);
    use_source(&root, &stanza.replace(&format!("file:{}", repo.display()), &url));
    let update = root.sh_ok("apt-get update 2>&1");
    assert!(update.contains(&url) && !update.contains("W:"), "{update}");
    let install = root.sh_ok(&format!("apt-get install -y --no-install-recommends {package}"));
    assert!(install.contains(&format!("Get:1 {url} hermod/main amd64 {package}")), "{install}");
    assert_eq!(root.sh_ok(&format!("dpkg -S {module}")).trim(), format!("{package}: {module}"));
    assert_eq!(root.sh_ok(&format!("debsums -s {package}")), "");
}

/// `apt-get update` in `root` must fail saying one of `expect`, and the package must stay uninstallable.
fn assert_refused(root: &DebRoot, what: &str, expect: &[&str]) {
    let update = root.sh("apt-get update 2>&1");
    let text = String::from_utf8_lossy(&update.stdout).into_owned();
    assert_eq!(update.status.code(), Some(100), "apt-get update accepted the {what} repository:\n{text}");
    assert!(expect.iter().any(|e| text.contains(e)), "{what}: expected one of {expect:?} from apt:\n{text}");
    let install = root.sh(&format!("apt-get install -y --no-install-recommends {}", package()));
    assert!(!install.status.success(), "apt installed from the {what} repository");
    assert!(!root.sh(&format!("dpkg -s {}", package())).status.success(), "{what}: the package is not installed");
}

#[test]
fn unsigned_foreign_and_tampered_repositories_are_refused() {
    let work = scratch("refused");
    let deb = hello_deb(&work.path().join("out"));
    let (prefix, stanza) = keygen(work.path(), "farm", "URL");
    let (other, _) = keygen(work.path(), "other", "URL");
    let key = with_ext(&prefix, "key");
    let publish = |name: &str, key: Option<&Path>| -> (PathBuf, String) {
        let repo = work.path().join(name);
        let mut args = vec!["publish", "--repo", repo.to_str().unwrap()];
        if let Some(key) = key {
            args.extend(["--sign-key", key.to_str().unwrap()]);
        }
        args.push(deb.to_str().unwrap());
        let out = hermod_cmd(&args, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        (repo.clone(), stanza.replace("URIs: URL", &format!("URIs: file:{}", repo.display())))
    };
    let (unsigned, unsigned_source) = publish("unsigned", None);
    assert!(!unsigned.join("dists/hermod/InRelease").exists());
    let (_, foreign_source) = publish("foreign", Some(&with_ext(&other, "key")));
    let (bad_index, bad_index_source) = publish("bad-index", Some(&key));
    let (bad_deb, bad_deb_source) = publish("bad-deb", Some(&key));
    // Someone rewrites the index after signing (both forms, consistently).
    let packages = bad_index.join("dists/hermod/main/binary-amd64/Packages");
    // (One letter changed: the same size, another hash.)
    let text = fs::read_to_string(&packages).unwrap().replace("hermod module builder", "hermod module Builder");
    fs::write(&packages, &text).unwrap();
    tool("sh", &["-c", &format!("xz -T1 -c {0} > {0}.xz", packages.display())]);
    // ... or flips a byte of the package in the pool (the module's, not its metapackage's).
    let module = format!("{}_", package());
    let pool = walkdir::WalkDir::new(bad_deb.join("pool"))
        .into_iter()
        .map(Result::unwrap)
        .find(|e| e.file_type().is_file() && e.file_name().to_string_lossy().starts_with(&module));
    let pool = pool.unwrap().into_path();
    let mut bytes = fs::read(&pool).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&pool, bytes).unwrap();

    let root = farm_root(work.path());
    use_source(&root, &unsigned_source);
    assert_refused(&root, "unsigned", &["is not signed"]);
    use_source(&root, &foreign_source);
    assert_refused(&root, "foreign-key", &["NO_PUBKEY"]);
    use_source(&root, &bad_index_source);
    assert_refused(&root, "tampered-index", &["Hash Sum mismatch", "unexpected size"]);

    // A tampered package: the index is fine, the download is refused.
    use_source(&root, &bad_deb_source);
    root.sh_ok("apt-get update");
    let install = root.sh(&format!("apt-get install -y --no-install-recommends {} 2>&1", package()));
    let text = String::from_utf8_lossy(&install.stdout);
    assert!(!install.status.success(), "apt installed a tampered package:\n{text}");
    assert!(text.contains("Hash Sum mismatch") || text.contains("unexpected size"), "{text}");
    assert!(!root.sh(&format!("dpkg -s {}", package())).status.success());
}

#[test]
fn publish_command_line() {
    let work = scratch("publish-cli");
    let deb = hello_deb(&work.path().join("out"));
    let (prefix, _) = keygen(work.path(), "k", "http://repo.invalid/hermod");
    let key = with_ext(&prefix, "key");
    let asc = with_ext(&prefix, "asc");
    assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(fs::read_to_string(&asc).unwrap().starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    // Never over an existing key.
    let again = hermod_cmd(&["repo", "keygen", "--out", prefix.to_str().unwrap()], &[]);
    assert_eq!(again.status.code(), Some(3), "{}", stderr(&again));
    assert!(stderr(&again).contains("never overwritten"));

    let publish = |repo: &Path, extra: &[&str]| {
        let mut args = vec!["publish", "--repo", repo.to_str().unwrap(), "--sign-key", key.to_str().unwrap()];
        args.extend(extra);
        hermod_cmd(&args, &[])
    };
    // Two fresh repositories, same bytes.
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    for repo in [&a, &b] {
        assert!(publish(repo, &[deb.to_str().unwrap()]).status.success());
    }
    for rel in ["dists/hermod/InRelease", "dists/hermod/main/binary-amd64/Packages.xz"] {
        assert_eq!(sha256(&a.join(rel)), sha256(&b.join(rel)), "{rel}");
    }
    // Bad inputs: exit 3, the repository untouched.
    let before = sha256(&a.join("dists/hermod/InRelease"));
    let text = work.path().join("notes.deb");
    fs::write(&text, "not a package\n").unwrap();
    let bad = publish(&a, &[deb.to_str().unwrap(), text.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(3));
    assert!(stderr(&bad).contains("notes.deb") && stderr(&bad).contains("not a Debian package"), "{}", stderr(&bad));
    let bad = publish(&a, &["--suite", "../etc", deb.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(3));
    assert!(stderr(&bad).contains("suite"), "{}", stderr(&bad));
    let bad = hermod_cmd(
        &["publish", "--repo", a.to_str().unwrap(), "--sign-key", asc.to_str().unwrap(), deb.to_str().unwrap()],
        &[],
    );
    assert_eq!(bad.status.code(), Some(3));
    assert!(stderr(&bad).contains("that is a public key"), "{}", stderr(&bad));
    let bad = hermod_cmd(
        &["publish", "--repo", a.to_str().unwrap(), deb.to_str().unwrap()],
        &[("SOURCE_DATE_EPOCH", "yesterday")],
    );
    assert_eq!(bad.status.code(), Some(3));
    // A signed repository is not continued unsigned; exit 12, a refused change.
    let unsigned = hermod_cmd(&["publish", "--repo", a.to_str().unwrap(), deb.to_str().unwrap()], &[]);
    assert_eq!(unsigned.status.code(), Some(12), "{}", stderr(&unsigned));
    // Another build under the same name and version: refused, exit 12.
    // (dpkg-deb repacks the same files and control file with another compressor.)
    let unpacked = work.path().join("unpacked");
    let rebuilt = work.path().join("rebuilt.deb");
    tool("dpkg-deb", &["-R", deb.to_str().unwrap(), unpacked.to_str().unwrap()]);
    tool("dpkg-deb", &["-b", "--root-owner-group", "-Zgzip", unpacked.to_str().unwrap(), rebuilt.to_str().unwrap()]);
    assert_ne!(sha256(&rebuilt), sha256(&deb));
    let refused = publish(&a, &[rebuilt.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(12), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("is already published with other bytes"), "{}", stderr(&refused));
    assert_eq!(sha256(&a.join("dists/hermod/InRelease")), before);
    // The same bytes again: success, nothing written.
    let same = publish(&a, &[deb.to_str().unwrap()]);
    assert!(
        same.status.success() && stderr(&same).contains("0 added, 1 already published; 0 files written"),
        "{}",
        stderr(&same)
    );
    // Unsigned into a new directory: written, with the warning, even with -q.
    let c = work.path().join("c");
    let loud = hermod_cmd(&["publish", "-q", "--repo", c.to_str().unwrap(), deb.to_str().unwrap()], &[]);
    assert!(loud.status.success());
    assert!(stderr(&loud).contains("WARNING: the repository is NOT SIGNED"), "{}", stderr(&loud));
    assert!(c.join("dists/hermod/Release").exists() && !c.join("dists/hermod/InRelease").exists());
}

/// How the tests' roots of another release name their sources: the host's
/// files with only the suites of the host's release renamed.
#[test]
fn sources_of_another_release_rename_only_the_releases_suites() {
    use common::debroot::sources_renamed;
    let deb822 = "Types: deb\n# http://mirror.invalid/bookworm/20250520T000000Z\nURIs: http://mirror.invalid/debian\n\
                  Suites: bookworm bookworm-updates  bookworm-backports\nComponents: main\nSigned-By: /k/bookworm.gpg\n\n\
                  Types: deb\nURIs: http://mirror.invalid/debian-security\nsuites: bookworm-security\n\n\
                  Types: deb\nURIs: http://vendor.invalid/bookworm\nSuites: nodistro bookwormish\n";
    assert_eq!(
        sources_renamed(deb822, true, "bookworm", "trixie"),
        "Types: deb\n# http://mirror.invalid/bookworm/20250520T000000Z\nURIs: http://mirror.invalid/debian\n\
         Suites: trixie trixie-updates trixie-backports\nComponents: main\nSigned-By: /k/bookworm.gpg\n\n\
         Types: deb\nURIs: http://mirror.invalid/debian-security\nsuites: trixie-security\n\n\
         Types: deb\nURIs: http://vendor.invalid/bookworm\nSuites: nodistro bookwormish\n"
    );
    let list = "# deb http://mirror.invalid/debian bookworm main\ndeb http://mirror.invalid/debian bookworm main contrib\n\
                deb [signed-by=/k/bookworm.gpg arch=amd64] http://mirror.invalid/debian-security bookworm-security main\n\
                deb-src http://mirror.invalid/debian bookworm-updates main\ndeb http://vendor.invalid/bookworm stable main\n";
    assert_eq!(
        sources_renamed(list, false, "bookworm", "trixie"),
        "# deb http://mirror.invalid/debian bookworm main\ndeb http://mirror.invalid/debian trixie main contrib\n\
         deb [signed-by=/k/bookworm.gpg arch=amd64] http://mirror.invalid/debian-security trixie-security main\n\
         deb-src http://mirror.invalid/debian trixie-updates main\ndeb http://vendor.invalid/bookworm stable main\n"
    );
}

/// The farm: Debian's sources plus hermod's, `linux-image-amd64` and
/// `hello-modules-amd64` installed, no hermod. The root runs the test kernel
/// (older than the archive's newest); its `linux-image-amd64` is a stand-in
/// at a version below the archive's that depends on that kernel, as Debian's
/// did when it was the newest. The repository first has hello for that kernel
/// only; then hello for the newest kernel is published, and one `apt-get
/// full-upgrade` brings the newest kernel and its hello package together.
#[test]
fn full_upgrade_brings_the_newest_kernel_and_its_module_through_the_metapackage() {
    let old = kernel();
    let new = common::debroot::newest_kernel("bookworm", "amd64");
    assert_ne!(old, new, "the test kernel must be older than the archive's newest (HERMOD_TEST_KERNEL)");
    let work = scratch("meta");
    let old_deb = hello_deb_for(&work.path().join("out-old"), &old);
    let new_deb = hello_deb_for(&work.path().join("out-new"), &new);
    let repo = work.path().join("repo");
    let (prefix, stanza) = keygen(work.path(), "farm", &format!("file:{}", repo.display()));
    let key = with_ext(&prefix, "key");
    let publish = |deb: &Path| {
        let args = ["publish", "--repo", repo.to_str().unwrap(), "--sign-key", key.to_str().unwrap()];
        let out = hermod_cmd(&[&args[..], &[deb.to_str().unwrap()]].concat(), &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stderr(&out).contains("metapackage"), "{}", stderr(&out));
    };
    publish(&old_deb);

    let mut root = DebRoot::new(&DebRootSpec::farm(&old));
    root.ro_bind(work.path(), work.path().to_str().unwrap());
    root.write("/etc/apt/sources.list.d/hermod.sources", &stanza);
    // The new kernel's 390 MB of modules are not needed to see dpkg and apt's decisions.
    root.write("/etc/dpkg/dpkg.cfg.d/hermod-test", "path-exclude=/lib/modules/*/kernel/*\n");
    root.sh_ok(&format!(
        "mkdir -p /tmp/li/DEBIAN && printf '%s\\n' 'Package: linux-image-amd64' 'Version: 6.1~hermodtest' \
         'Architecture: amd64' 'Maintainer: test <test@example.org>' 'Depends: linux-image-{old}' \
         'Description: linux-image-amd64 as it was when {old} was the newest' > /tmp/li/DEBIAN/control && \
         dpkg-deb -b /tmp/li /tmp/li.deb >/dev/null && dpkg -i /tmp/li.deb"
    ));
    root.sh_ok("apt-get update 2>&1");
    root.sh_ok("DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends hello-modules-amd64");
    let status = |package: &str| {
        root.sh(&format!("dpkg-query -W -f '${{Status}}' {package}"))
            .stdout
            .iter()
            .map(|&b| b as char)
            .collect::<String>()
    };
    assert_eq!(status(&format!("hello-modules-{old}")), "install ok installed");
    assert_ne!(status(&format!("linux-image-{new}")), "install ok installed");

    publish(&new_deb);
    root.sh_ok("apt-get update 2>&1");
    let upgrade = root.sh_ok("DEBIAN_FRONTEND=noninteractive apt-get full-upgrade -y --no-install-recommends 2>&1");
    for package in [format!("linux-image-{new}"), format!("hello-modules-{new}"), "hello-modules-amd64".into()] {
        assert_eq!(status(&package), "install ok installed", "{package} after full-upgrade:\n{upgrade}");
    }
    assert!(status("linux-image-amd64").contains("installed"));
    assert!(root.sh_ok("dpkg-query -W -f '${Version}' linux-image-amd64") != "6.1~hermodtest", "{upgrade}");
    let module = format!("/lib/modules/{new}/updates/dkms/hello.ko");
    assert_eq!(root.sh_ok(&format!("dpkg -S {module}")).trim(), format!("hello-modules-{new}: {module}"));
    // The older kernel keeps its module; hermod was never on the machine.
    assert_eq!(status(&format!("hello-modules-{old}")), "install ok installed");
    assert!(!root.sh("dpkg -s hermod").status.success(), "hermod is not installed");
    assert!(!root.sh("command -v hermod").status.success(), "no hermod on PATH");
}
