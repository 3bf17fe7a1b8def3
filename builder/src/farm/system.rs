//! The machine's package manager and module loader, behind a trait.
//!
//! [`SystemTools`] runs the real `dpkg`, `dpkg-query` and `modprobe`; tests use
//! a recording double so the farm's decisions (what to install, what to skip,
//! what stays pending) are checked without touching the host's dpkg database.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::FarmError;

pub trait System {
    /// The installed version of `package`, if dpkg says it is installed.
    fn installed_version(&self, package: &str) -> Option<String>;
    /// `dpkg -i` these files, in one transaction.
    fn install(&self, debs: &[PathBuf]) -> Result<(), FarmError>;
    /// The files dpkg lists for an installed package.
    fn files(&self, package: &str) -> Result<Vec<PathBuf>, FarmError>;
    /// `modprobe NAME`.
    fn load_module(&self, name: &str) -> Result<(), FarmError>;
    /// The running kernel's release (`uname -r`).
    fn running_kernel(&self) -> Result<String, FarmError>;
    /// The kernel releases whose `linux-image-<KREL>` (or `-unsigned`) dpkg
    /// says is installed, in no particular order.
    fn installed_kernels(&self) -> Result<Vec<String>, FarmError>;
}

/// The real tools, from `PATH`.
#[derive(Debug, Default)]
pub struct SystemTools;

fn run(what: &str, command: &mut Command) -> Result<String, FarmError> {
    let tool = |detail: String| FarmError::Tool { what: what.to_owned(), detail };
    let out = command.output().map_err(|e| tool(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let said = if stderr.trim().is_empty() { stdout } else { stderr };
        return Err(tool(format!("{}: {}", out.status, said.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl System for SystemTools {
    fn installed_version(&self, package: &str) -> Option<String> {
        let out = Command::new("dpkg-query")
            .args(["-W", "-f", "${db:Status-Status} ${Version}", "--", package])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let (status, version) = text.split_once(' ')?;
        (out.status.success() && status == "installed").then(|| version.trim().to_owned())
    }

    fn install(&self, debs: &[PathBuf]) -> Result<(), FarmError> {
        // dpkg's output goes to the terminal as it comes: it is what the
        // administrator expects to see from an install.
        let status = Command::new("dpkg")
            .arg("-i")
            .args(debs)
            .status()
            .map_err(|e| FarmError::Tool { what: "dpkg -i".into(), detail: e.to_string() })?;
        if status.success() {
            Ok(())
        } else {
            Err(FarmError::Tool { what: "dpkg -i".into(), detail: status.to_string() })
        }
    }

    fn files(&self, package: &str) -> Result<Vec<PathBuf>, FarmError> {
        let text = run(&format!("dpkg -L {package}"), Command::new("dpkg-query").args(["-L", "--", package]))?;
        Ok(text.lines().map(PathBuf::from).collect())
    }

    fn load_module(&self, name: &str) -> Result<(), FarmError> {
        run(&format!("modprobe {name}"), Command::new("modprobe").args(["--", name])).map(drop)
    }

    fn running_kernel(&self) -> Result<String, FarmError> {
        Ok(nix::sys::utsname::uname()
            .map_err(|e| FarmError::Tool { what: "uname".into(), detail: e.to_string() })?
            .release()
            .to_string_lossy()
            .into_owned())
    }

    fn installed_kernels(&self) -> Result<Vec<String>, FarmError> {
        let tool = |detail: String| FarmError::Tool { what: "dpkg-query -W 'linux-image-*'".into(), detail };
        let out = Command::new("dpkg-query")
            .args(["-W", "-f", "${db:Status-Status} ${Package}\n", "--", "linux-image-*"])
            .output()
            .map_err(|e| tool(e.to_string()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // No package matching is dpkg-query's exit 1 with nothing listed: no kernel.
        if !out.status.success() && !text.trim().is_empty() {
            return Err(tool(format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim())));
        }
        Ok(kernels_of_images(&text))
    }
}

/// The kernel releases of `<status> <package>` lines whose status is
/// `installed` and package `linux-image-<KREL>[-unsigned]` (not `-dbg`, not a
/// metapackage such as `linux-image-amd64`), each once.
pub fn kernels_of_images(text: &str) -> Vec<String> {
    let mut kernels: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("installed "))
        .filter_map(|package| package.trim().strip_prefix("linux-image-"))
        .filter(|release| !release.ends_with("-dbg"))
        .map(|release| release.strip_suffix("-unsigned").unwrap_or(release))
        .filter(|release| crate::rootfs::is_release(release))
        .map(str::to_owned)
        .collect();
    kernels.sort();
    kernels.dedup();
    kernels
}

/// The module names a package's file list holds (`…/hello.ko.xz` → `hello`).
pub fn module_names(files: &[PathBuf]) -> Vec<String> {
    let mut names: Vec<String> = files
        .iter()
        .filter(|f| f.starts_with("/lib/modules") || f.starts_with("/usr/lib/modules"))
        .filter_map(|f| f.file_name()?.to_str())
        .filter_map(|name| {
            [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().find_map(|ext| name.strip_suffix(ext)).map(str::to_owned)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Is this process running inside a dpkg maintainer script (where dpkg holds
/// its lock, so installing anything would fail or deadlock)?
pub fn inside_dpkg(env: &dyn Fn(&str) -> Option<String>) -> bool {
    env("DPKG_MAINTSCRIPT_NAME").is_some() || env("DPKG_MAINTSCRIPT_PACKAGE").is_some()
}

/// Does `path` name a .deb by its file name?
pub fn is_deb(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "deb") && path.is_file()
}

#[cfg(test)]
pub mod recording {
    //! A [`System`] that records what it was asked and answers from a table.
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Default)]
    pub struct Recording {
        /// package → version dpkg has installed.
        pub installed: RefCell<BTreeMap<String, String>>,
        /// package → file list.
        pub file_lists: BTreeMap<String, Vec<PathBuf>>,
        /// Install calls fail for debs whose file name contains this.
        pub fail_install_of: Option<String>,
        pub calls: RefCell<Vec<String>>,
        pub kernel: String,
        /// What `installed_kernels` answers.
        pub kernels: Vec<String>,
    }

    impl System for Recording {
        fn installed_version(&self, package: &str) -> Option<String> {
            self.installed.borrow().get(package).cloned()
        }
        fn install(&self, debs: &[PathBuf]) -> Result<(), FarmError> {
            let names: Vec<String> =
                debs.iter().map(|d| d.file_name().unwrap().to_string_lossy().into_owned()).collect();
            self.calls.borrow_mut().push(format!("install {}", names.join(" ")));
            let mut failed = false;
            for name in names {
                if self.fail_install_of.as_ref().is_some_and(|f| name.contains(f.as_str())) {
                    failed = true;
                    continue;
                }
                let mut parts = name.trim_end_matches(".deb").split('_');
                let (package, version) = (parts.next().unwrap(), parts.next().unwrap());
                self.installed.borrow_mut().insert(package.to_owned(), version.replace("%3a", ":"));
            }
            if failed {
                return Err(FarmError::Tool { what: "dpkg -i".into(), detail: "exit status: 1".into() });
            }
            Ok(())
        }
        fn files(&self, package: &str) -> Result<Vec<PathBuf>, FarmError> {
            Ok(self.file_lists.get(package).cloned().unwrap_or_default())
        }
        fn load_module(&self, name: &str) -> Result<(), FarmError> {
            self.calls.borrow_mut().push(format!("modprobe {name}"));
            Ok(())
        }
        fn running_kernel(&self) -> Result<String, FarmError> {
            Ok(self.kernel.clone())
        }
        fn installed_kernels(&self) -> Result<Vec<String>, FarmError> {
            Ok(self.kernels.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_from_a_file_list() {
        let files: Vec<PathBuf> = [
            "/lib/modules/6.1.0-56-amd64/updates/dkms/hello.ko.xz",
            "/lib/modules/6.1.0-56-amd64/updates/dkms/other.ko",
            "/usr/share/doc/hello-modules-6.1.0-56-amd64/copyright",
            "/lib/modules/6.1.0-56-amd64/updates/dkms",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(module_names(&files), ["hello", "other"]);
    }

    #[test]
    fn installed_kernels_are_the_images_dpkg_has_installed() {
        let text = "installed linux-image-6.1.0-9-amd64\n\
                    installed linux-image-amd64\n\
                    config-files linux-image-6.1.0-8-amd64\n\
                    installed linux-image-6.1.0-10-cloud-amd64-unsigned\n\
                    installed linux-image-6.1.0-10-amd64-dbg\n\
                    not-installed linux-image-6.1.0-11-amd64\n";
        assert_eq!(kernels_of_images(text), ["6.1.0-10-cloud-amd64", "6.1.0-9-amd64"]);
    }

    #[test]
    fn maintainer_scripts_are_recognised() {
        assert!(inside_dpkg(&|v| (v == "DPKG_MAINTSCRIPT_NAME").then(|| "postinst".into())));
        assert!(!inside_dpkg(&|_| None));
    }
}
