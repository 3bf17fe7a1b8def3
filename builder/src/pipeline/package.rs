//! The package a build makes: its name, version and metadata, all derived
//! from the inputs.

use crate::debpkg::{DebSpec, ModuleFile};
use crate::key::Key;
use crate::rootfs::Lock;

/// SOURCE_DATE_EPOCH for builds and the mtime of every packaged file
/// (2024-01-01T00:00:00Z): a constant, so it is derived from no host state.
pub const SOURCE_DATE_EPOCH: u64 = 1_704_067_200;

/// Debian package name for a module package: lower case, `_` → `-`.
pub fn package_name(module: &str, kernel: &str) -> String {
    format!("{module}-modules-{kernel}").to_ascii_lowercase().replace('_', "-")
}

/// `<PACKAGE_VERSION>+<headers version>`: derived from inputs only, and higher
/// when either the module or the kernel build moves forward.
pub fn package_version(module_version: &str, headers_version: &str) -> String {
    let mut v = module_version.replace('_', ".");
    if !v.starts_with(|c: char| c.is_ascii_digit()) {
        v = format!("0~{v}");
    }
    // A `-` in the upstream part would be misread as the start of the revision;
    // the headers' own revision supplies the one `-` of the result.
    format!("{}+{}", v.replace('-', "."), headers_version.replace(':', "."))
}

pub(super) fn deb_spec(
    conf: &crate::dkms::DkmsConf,
    lock: &Lock,
    key: &Key,
    maintainer: &str,
    files: Vec<ModuleFile>,
) -> DebSpec {
    let kernel = &lock.kernel;
    let module_names: Vec<&str> = files.iter().map(|f| f.file_name.as_str()).collect();
    DebSpec {
        package: package_name(&conf.package_name, kernel),
        version: package_version(&conf.package_version, &lock.headers_version),
        architecture: lock.architecture.clone(),
        kernel_release: kernel.clone(),
        maintainer: maintainer.to_owned(),
        description_short: format!("{} kernel modules for Linux {kernel}", conf.package_name),
        description_long: format!(
            "Built by hermod from the {} {} DKMS source against\nlinux-headers-{kernel} {} in a hermetic build root.\nModules: {}.",
            conf.package_name,
            conf.package_version,
            lock.headers_version,
            module_names.join(", ")
        ),
        source_name: conf.package_name.to_ascii_lowercase().replace('_', "-"),
        depends: format!("linux-image-{kernel} | linux-image-{kernel}-unsigned"),
        extra_fields: vec![
            ("X-Hermod-Key".into(), key.hex.clone()),
            ("X-Hermod-Rootfs".into(), lock.hash()),
        ],
        files,
        copyright: format!(
            "This package contains Linux kernel modules built by hermod from the\n{name} {version} module source (a DKMS source tree).\n\nCopyright: the authors of {name}, as stated in its source files.\nLicense: that of the {name} source; each module states its license in\nits modinfo (`modinfo -F license`).\n",
            name = conf.package_name,
            version = conf.package_version
        ),
        changelog_entry: format!(
            "Built from {} {} for Linux {kernel} (headers {}).",
            conf.package_name, conf.package_version, lock.headers_version
        ),
        mtime: SOURCE_DATE_EPOCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_versions_are_debian_valid() {
        assert_eq!(package_name("hello", "6.1.0-56-amd64"), "hello-modules-6.1.0-56-amd64");
        assert_eq!(package_name("My_Mod", "6.1.0-56-amd64"), "my-mod-modules-6.1.0-56-amd64");
        assert_eq!(package_version("0.1", "6.1.192-2"), "0.1+6.1.192-2");
        assert_eq!(package_version("v2-rc1", "6.12.117-1~deb12u1"), "0~v2.rc1+6.12.117-1~deb12u1");
        assert_eq!(package_version("1_2", "1:6.1-1"), "1.2+1.6.1-1");
    }
}
