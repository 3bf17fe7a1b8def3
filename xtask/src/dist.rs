//! `cargo xtask dist`: hermod as a Debian package, `hermod_<version>-1_amd64.deb`.
//!
//! The package is the hermod binary plus what a machine needs around it: the
//! kernel hooks, the apt hook, the boot unit (the files under `dist/`), a man
//! page per command generated from the clap grammar, and the Debian metadata.
//! `dist/` holds the hand-written parts:
//!
//! - `dist/root/` is installed as it is (mode 0755 where the file is
//!   executable in git, else 0644); everything under `root/etc` is a conffile.
//! - `dist/scripts/` holds the maintainer scripts (postinst, postrm).
//! - `dist/copyright` is the DEP-5 file; its `@CRATES@` line becomes the list
//!   of Rust crates statically linked into the binary (`dist_files.rs`).
//!
//! The rest is generated here: `/usr/bin/hermod` (stripped), the man pages,
//! `changelog.Debian.gz`, and `DEBIAN/{control,md5sums,conffiles}`. Depends is
//! what `dpkg-shlibdeps` finds for the binary's shared libraries plus what the
//! scripts run (`deb-systemd-helper`, `modprobe`).
//!
//! The same binary and commit give the same bytes: SOURCE_DATE_EPOCH is the
//! last commit's time and every mtime is set to it, modes are explicit, owners
//! root:root (`dpkg-deb --root-owner-group`, which also sorts the entries), xz
//! runs in one thread, gzip writes no name or time. `--check` proves it by
//! building twice in different directories (`dist_check.rs`).
//!
//! Without `--binary`, hermod is built here with `cargo build --release
//! --locked`, with the source directory, cargo's home and the target directory
//! remapped so that the binary names no path of this host.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};

use crate::dist_check;
use crate::dist_files;

pub const USAGE: &str =
    "cargo xtask dist [--binary PATH] [--out DIR] [--check]\n       cargo xtask dist --check-binary";

pub const PACKAGE: &str = "hermod";
/// The Debian revision added to the workspace version.
const DEBIAN_REVISION: &str = "1";
pub const MAINTAINER: &str = "hermod maintainers <maintainers@users.noreply.r-seed-841c88d8.example>";
/// What the maintainer scripts and the binary run, beyond its shared libraries:
/// postinst/postrm call deb-systemd-helper (this version has was-enabled and
/// update-state, as dh_installsystemd requires), `hermod boot` runs modprobe.
/// dpkg and apt are not listed: dpkg is Essential, and the apt hook is only
/// read when apt is there.
const SCRIPT_DEPENDS: &str = "init-system-helpers (>= 1.18~), kmod";
const DESCRIPTION: &str = "\
hermetic builder of out-of-tree Linux kernel modules into .debs
 hermod builds DKMS module sources once, in a namespaced read-only build root
 that holds only the matching kernel headers and toolchain (real Debian
 packages), into reproducible packages named <module>-modules-<kernel release>
 that dpkg tracks.
 .
 This package also holds the machine's side: kernel hooks that build or fetch
 the wanted module packages when a kernel or its headers are installed, an apt
 hook that installs them once dpkg is done, and hermod-boot.service, which does
 the same for the running kernel at boot. A farm machine fetches prebuilt
 packages from a signed APT repository and needs no compiler.";

/// What one package build needs, gathered once: `--check` builds twice from it.
pub struct Inputs {
    /// The binary to package (not yet stripped).
    pub binary: PathBuf,
    /// Debian version: the workspace version and [`DEBIAN_REVISION`].
    pub version: String,
    /// SOURCE_DATE_EPOCH: every mtime, the changelog's date.
    pub epoch: u64,
    /// The commit the package is built from, named in the changelog.
    pub commit: String,
    /// The repository's `dist/` directory.
    pub dist: PathBuf,
    /// Host paths that a binary built here must not contain (release builds).
    pub host_paths: Vec<PathBuf>,
}

pub fn run(args: &[String]) -> Result<()> {
    let mut binary = None;
    let mut out = None;
    let mut check = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--binary" => binary = Some(PathBuf::from(it.next().context("--binary needs a PATH")?)),
            "--out" => out = Some(PathBuf::from(it.next().context("--out needs a DIR")?)),
            "--check" => check = true,
            "--check-binary" => {
                ensure!(args.len() == 1, "--check-binary takes no other argument\nusage: {USAGE}");
                return dist_check::release_binary_reproducible();
            }
            other => bail!("dist: unknown argument {other:?}\nusage: {USAGE}"),
        }
    }
    let root = crate::repo_root();
    let target = crate::target_dir();
    let (binary, host_paths) = match binary {
        Some(b) => {
            ensure!(b.is_file(), "--binary {}: no such file", b.display());
            (b, Vec::new())
        }
        None => {
            let paths = HostPaths::of(&root, &target.join("dist-release"))?;
            (build_release(&root, &paths)?, paths.all())
        }
    };
    let inputs = Inputs {
        binary,
        version: format!("{}-{DEBIAN_REVISION}", env!("CARGO_PKG_VERSION")),
        epoch: source_date_epoch(&root)?,
        commit: git(&root, &["rev-parse", "HEAD"])?,
        dist: root.join("dist"),
        host_paths,
    };
    let out = out.unwrap_or_else(|| target.join("dist"));
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let deb = if check { dist_check::check(&inputs, &out)? } else { build_into(&inputs, &out)? };
    println!("{}", deb.display());
    Ok(())
}

/// The .deb's file name.
pub fn deb_name(inputs: &Inputs) -> String {
    format!("{PACKAGE}_{}_amd64.deb", inputs.version)
}

/// Builds the package in a fresh temporary directory and moves it into `out`.
pub fn build_into(inputs: &Inputs, out: &Path) -> Result<PathBuf> {
    let work = tempfile::Builder::new().prefix("hermod-dist-").tempdir()?;
    let built = build(inputs, work.path())?;
    let dest = out.join(deb_name(inputs));
    // Same directory as the destination, then rename: never a torn .deb there.
    let tmp = out.join(format!(".{}.tmp", deb_name(inputs)));
    fs::copy(&built, &tmp).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &dest).with_context(|| format!("renaming to {}", dest.display()))?;
    Ok(dest)
}

/// Builds the package under `work` (which must be empty) and returns its path there.
pub fn build(inputs: &Inputs, work: &Path) -> Result<PathBuf> {
    // dpkg-shlibdeps wants a debian/control and the package's tree at
    // debian/<package>; that is all of debian/ it reads.
    fs::create_dir_all(work.join("debian"))?;
    fs::write(work.join("debian/control"), format!("Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: amd64\n"))?;
    let root = work.join("debian").join(PACKAGE);
    copy_tree(&inputs.dist.join("root"), &root)?;

    let bin = root.join("usr/bin/hermod");
    make_dir(bin.parent().unwrap())?;
    strip(&inputs.binary, &bin)?;
    for path in &inputs.host_paths {
        ensure!(
            !contains(&fs::read(&bin)?, path.as_os_str().as_encoded_bytes()),
            "the stripped binary still contains the host path {}: a --remap-path-prefix is missing",
            path.display()
        );
    }

    let man = root.join("usr/share/man/man1");
    make_dir(&man)?;
    for (name, page) in dist_files::man_pages()? {
        write_file(&man.join(format!("{name}.gz")), &gzip(&page)?, 0o644)?;
    }
    for (path, script) in dist_files::completions() {
        let file = root.join(path);
        make_dir(file.parent().expect("a completion path has a directory"))?;
        write_file(&file, &script, 0o644)?;
    }
    let doc = root.join("usr/share/doc").join(PACKAGE);
    make_dir(&doc)?;
    let template = fs::read_to_string(inputs.dist.join("copyright"))?;
    let crates = dist_files::linked_crates(&crate::repo_root())?;
    write_file(&doc.join("copyright"), dist_files::copyright(&template, &crates)?.as_bytes(), 0o644)?;
    let changelog = dist_files::changelog(&inputs.version, &inputs.commit, inputs.epoch);
    write_file(&doc.join("changelog.Debian.gz"), &gzip(changelog.as_bytes())?, 0o644)?;

    let control = root.join("DEBIAN");
    make_dir(&control)?;
    for script in ["postinst", "postrm"] {
        fs::copy(inputs.dist.join("scripts").join(script), control.join(script))?;
        fs::set_permissions(control.join(script), fs::Permissions::from_mode(0o755))?;
    }
    let files = regular_files(&root)?;
    let conffiles: Vec<&String> = files.keys().filter(|p| p.starts_with("etc/")).collect();
    let conffiles_text: String = conffiles.iter().map(|p| format!("/{p}\n")).collect();
    write_file(&control.join("conffiles"), conffiles_text.as_bytes(), 0o644)?;
    let mut md5sums = String::new();
    for (path, bytes) in files.iter().filter(|(p, _)| !p.starts_with("etc/")) {
        md5sums += &format!("{}  {path}\n", md5_hex(bytes));
    }
    write_file(&control.join("md5sums"), md5sums.as_bytes(), 0o644)?;

    let depends = format!("{}, {SCRIPT_DEPENDS}", shlib_depends(work, &bin)?);
    let control_text = control_file(&inputs.version, installed_size_kib(&root)?, &depends);
    write_file(&control.join("control"), control_text.as_bytes(), 0o644)?;

    set_mtimes(&root, inputs.epoch)?;
    let deb = work.join(deb_name(inputs));
    let out = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "-z6", "--threads-max=1", "--build"])
        .arg(&root)
        .arg(&deb)
        .env("SOURCE_DATE_EPOCH", inputs.epoch.to_string())
        .output()
        .context("running dpkg-deb (package dpkg)")?;
    ensure!(
        out.status.success(),
        "dpkg-deb --build failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(deb)
}

/// The control file, fields in the order dpkg-gencontrol writes them.
fn control_file(version: &str, installed_size: u64, depends: &str) -> String {
    format!(
        "Package: {PACKAGE}\nVersion: {version}\nArchitecture: amd64\nMaintainer: {MAINTAINER}\n\
         Installed-Size: {installed_size}\nDepends: {depends}\nSection: admin\nPriority: optional\n\
         Description: {DESCRIPTION}\n"
    )
}

/// `${shlibs:Depends}` for the binary, from dpkg-shlibdeps (the libraries'
/// shlibs/symbols files say which package and version each needed symbol takes).
fn shlib_depends(work: &Path, binary: &Path) -> Result<String> {
    let rel = binary.strip_prefix(work).unwrap();
    let out = Command::new("dpkg-shlibdeps")
        .arg("-O")
        .arg(format!("-e{}", rel.display()))
        .current_dir(work)
        .output()
        .context("running dpkg-shlibdeps (package dpkg-dev)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "dpkg-shlibdeps failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    parse_shlibs(&stdout).with_context(|| format!("dpkg-shlibdeps printed no shlibs:Depends: {stdout:?}"))
}

fn parse_shlibs(substvars: &str) -> Option<String> {
    substvars
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
}

/// Strips `from` into `to` as dh_strip strips an executable.
fn strip(from: &Path, to: &Path) -> Result<()> {
    let out = Command::new("strip")
        .args(["--remove-section=.comment", "--remove-section=.note", "-o"])
        .arg(to)
        .arg(from)
        .output()
        .context("running strip (package binutils)")?;
    ensure!(out.status.success(), "strip {} failed: {}", from.display(), String::from_utf8_lossy(&out.stderr));
    fs::set_permissions(to, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Copies `from` to `to`: directories 0755, files 0755 if executable, else 0644.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    make_dir(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            let executable = entry.metadata()?.permissions().mode() & 0o111 != 0;
            write_file(&dest, &fs::read(entry.path())?, if executable { 0o755 } else { 0o644 })?;
        } else {
            bail!("{}: only files and directories belong in dist/root", entry.path().display());
        }
    }
    Ok(())
}

fn make_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Every regular file of the package's tree (not DEBIAN/), by path relative to
/// the root, sorted.
fn regular_files(root: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for (path, meta) in walk(root)? {
        if meta.is_file() {
            files.insert(
                path.strip_prefix(root).unwrap().to_str().context("non-UTF-8 path")?.to_owned(),
                fs::read(&path)?,
            );
        }
    }
    Ok(files)
}

/// Every entry under `root` except `root/DEBIAN`, children before their directory.
fn walk(root: &Path) -> Result<Vec<(PathBuf, fs::Metadata)>> {
    fn visit(dir: &Path, skip: &Path, out: &mut Vec<(PathBuf, fs::Metadata)>) -> Result<()> {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path == skip {
                continue;
            }
            let meta = fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                visit(&path, skip, out)?;
            }
            out.push((path, meta));
        }
        Ok(())
    }
    let mut out = Vec::new();
    visit(root, &root.join("DEBIAN"), &mut out)?;
    Ok(out)
}

/// Installed-Size as dpkg-gencontrol counts it: each regular file in KiB,
/// rounded up; 1 for every other object (directories, the root included).
fn installed_size_kib(root: &Path) -> Result<u64> {
    let mut kib = 1;
    for (_, meta) in walk(root)? {
        kib += if meta.is_file() { meta.len().div_ceil(1024) } else { 1 };
    }
    Ok(kib)
}

/// Sets the mtime of everything in the tree, DEBIAN/ and the root included.
fn set_mtimes(root: &Path, epoch: u64) -> Result<()> {
    let time = UNIX_EPOCH + Duration::from_secs(epoch);
    let mut entries: Vec<PathBuf> = walk(root)?.into_iter().map(|(p, _)| p).collect();
    let control = root.join("DEBIAN");
    for entry in fs::read_dir(&control)? {
        entries.push(entry?.path());
    }
    entries.push(control);
    entries.push(root.to_owned());
    for path in entries {
        set_mtime(&path, time).with_context(|| format!("setting the mtime of {}", path.display()))?;
    }
    Ok(())
}

fn set_mtime(path: &Path, time: SystemTime) -> std::io::Result<()> {
    // A directory opened read-only takes futimens like a file.
    fs::File::open(path)?.set_modified(time)
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    // No name, mtime 0: the bytes depend on the content alone.
    let mut gz = flate2::GzBuilder::new().mtime(0).operating_system(3).write(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes)?;
    Ok(gz.finish()?)
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex_string(&Md5::digest(bytes))
}

pub fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// SOURCE_DATE_EPOCH from the environment, else the last commit's time.
fn source_date_epoch(root: &Path) -> Result<u64> {
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        return epoch.parse().with_context(|| format!("SOURCE_DATE_EPOCH={epoch:?} is not a number of seconds"));
    }
    let ct = git(root, &["log", "-1", "--format=%ct"])?;
    ct.parse().with_context(|| format!("git log printed {ct:?} as the commit time"))
}

pub fn git(root: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git").arg("-C").arg(root).args(args).output().context("running git")?;
    ensure!(out.status.success(), "git {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// The directories whose names a release binary must not contain, and what
/// each becomes inside the binary.
pub struct HostPaths {
    source: PathBuf,
    cargo_home: PathBuf,
    target: PathBuf,
}

impl HostPaths {
    /// For a build of `source` into the target directory `target`.
    pub fn of(source: &Path, target: &Path) -> Result<HostPaths> {
        let cargo_home = match std::env::var_os("CARGO_HOME") {
            Some(h) => PathBuf::from(h),
            None => {
                PathBuf::from(std::env::var_os("HOME").context("neither CARGO_HOME nor HOME is set")?).join(".cargo")
            }
        };
        Ok(HostPaths { source: source.to_owned(), cargo_home, target: target.to_owned() })
    }

    fn all(&self) -> Vec<PathBuf> {
        vec![self.source.clone(), self.cargo_home.clone(), self.target.clone()]
    }

    /// `--remap-path-prefix` for rustc and `-ffile-prefix-map` for the C code
    /// of -sys crates. rustc applies the last matching remap, so the target
    /// directory (often inside the source) comes last.
    pub fn flags(&self) -> (Vec<String>, Vec<String>) {
        let pairs = [(&self.source, "/build/hermod"), (&self.cargo_home, "/cargo"), (&self.target, "/build/target")];
        let rust = pairs.iter().map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display())).collect();
        let c = pairs.iter().map(|(from, to)| format!("-ffile-prefix-map={}={to}", from.display())).collect();
        (rust, c)
    }
}

/// `cargo build --release --locked -p hermod` with the host's paths remapped,
/// into its own target directory: other flags than the usual builds' would
/// otherwise rebuild the shared dependencies back and forth.
pub fn build_release(source: &Path, paths: &HostPaths) -> Result<PathBuf> {
    let (rustflags, cflags) = paths.flags();
    // CFLAGS is split at whitespace (RUSTFLAGS goes through cargo's encoded form).
    for path in paths.all() {
        ensure!(
            !path.to_string_lossy().contains(char::is_whitespace),
            "{}: a path with whitespace cannot be remapped through CFLAGS",
            path.display()
        );
    }
    eprintln!("dist: cargo build --release --locked -p hermod (target {})", paths.target.display());
    let status = Command::new("cargo")
        .args(["build", "--release", "--locked", "-p", "hermod"])
        .current_dir(source)
        .env("CARGO_TARGET_DIR", &paths.target)
        .env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"))
        .env("CFLAGS", cflags.join(" "))
        .status()
        .context("running cargo")?;
    ensure!(status.success(), "cargo build --release -p hermod failed");
    Ok(paths.target.join("release/hermod"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shlibs_substvar_is_read() {
        assert_eq!(
            parse_shlibs("shlibs:Depends=libc6 (>= 2.34), libgcc-s1 (>= 4.2)\n").as_deref(),
            Some("libc6 (>= 2.34), libgcc-s1 (>= 4.2)")
        );
        assert_eq!(parse_shlibs("shlibs:Depends=\n"), None);
        assert_eq!(parse_shlibs("misc:Depends=x\n"), None);
    }

    #[test]
    fn control_file_has_the_fields_in_order() {
        let c = control_file("0.1.0-1", 1234, "libc6 (>= 2.34), kmod");
        let names: Vec<&str> =
            c.lines().filter(|l| !l.starts_with(' ')).map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(
            names,
            [
                "Package",
                "Version",
                "Architecture",
                "Maintainer",
                "Installed-Size",
                "Depends",
                "Section",
                "Priority",
                "Description"
            ]
        );
        // Every continuation line of the description is indented, none is empty.
        assert!(c.lines().all(|l| !l.is_empty()));
        assert!(c.ends_with("needs no compiler.\n"));
    }

    #[test]
    fn remaps_put_the_target_last() {
        let p = HostPaths {
            source: "/src/hermod".into(),
            cargo_home: "/root/.cargo".into(),
            target: "/src/hermod/target".into(),
        };
        let (rust, c) = p.flags();
        assert_eq!(rust.last().unwrap(), "--remap-path-prefix=/src/hermod/target=/build/target");
        assert_eq!(rust[0], "--remap-path-prefix=/src/hermod=/build/hermod");
        assert!(c.contains(&"-ffile-prefix-map=/root/.cargo=/cargo".to_owned()), "{c:?}");
    }

    #[test]
    fn installed_size_counts_like_dpkg_gencontrol() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        make_dir(&root.join("usr/bin")).unwrap();
        make_dir(&root.join("DEBIAN")).unwrap();
        write_file(&root.join("usr/bin/a"), &[0; 1025], 0o755).unwrap();
        write_file(&root.join("usr/b"), &[], 0o644).unwrap();
        write_file(&root.join("DEBIAN/control"), &[0; 5000], 0o644).unwrap();
        // root 1 + usr 1 + usr/bin 1 + a 2 + b 0; DEBIAN not counted.
        assert_eq!(installed_size_kib(root).unwrap(), 5);
    }
}
