//! DKMS's directive semantics over the evaluated records (see the module docs
//! for each rule and where it differs from DKMS 3.0.10).

use std::collections::{BTreeMap, BTreeSet};

use super::{Context, DkmsConf, DkmsError, Module, Records, Semantics};

/// The arrays whose highest index sets the number of module records (DKMS 3.x).
const MODULE_ARRAYS: [&str; 4] =
    ["BUILT_MODULE_NAME", "BUILT_MODULE_LOCATION", "DEST_MODULE_NAME", "DEST_MODULE_LOCATION"];

impl Records {
    pub(super) fn array(&self, name: &str) -> Option<&BTreeMap<u64, String>> {
        self.arrays.get(name)
    }

    pub(super) fn element(&self, name: &str, index: u64) -> Option<&str> {
        self.array(name).and_then(|a| a.get(&index)).map(String::as_str)
    }

    /// Element `index`, unless unset or blank.
    pub(super) fn given(&self, name: &str, index: u64) -> Option<&str> {
        self.element(name, index).map(str::trim).filter(|v| !v.is_empty())
    }

    pub(super) fn matched(&self, name: &str, index: u64) -> bool {
        self.matched.contains(&(name.to_owned(), index))
    }

    /// Apply DKMS's directive semantics.
    pub fn interpret(&self, ctx: &Context<'_>) -> Result<DkmsConf, DkmsError> {
        let package_name = self.given("PACKAGE_NAME", 0).ok_or(DkmsError::Missing("PACKAGE_NAME"))?;
        let package_version = self.given("PACKAGE_VERSION", 0).ok_or(DkmsError::Missing("PACKAGE_VERSION"))?;
        // They name directories (`/usr/src/<name>-<version>`,
        // `/var/lib/dkms/<name>/<version>`): plain names, and one file name together.
        check_file_name("PACKAGE_NAME", package_name)?;
        check_file_name("PACKAGE_VERSION", package_version)?;
        if package_name.len() + 1 + package_version.len() > MAX_FILE_NAME {
            return Err(invalid(
                "PACKAGE_VERSION",
                package_version,
                "PACKAGE_NAME-PACKAGE_VERSION names a directory and must fit in one file name (255 bytes)",
            ));
        }

        let (modules, excluded, skip) = self.exclusive(ctx, self.modules(package_name)?);
        let patches = self.patches()?;
        let mut build_depends = Vec::new();
        for (_, name) in self.array("BUILD_DEPENDS").into_iter().flatten() {
            let name = name.trim();
            if !name.is_empty() {
                check_file_name("BUILD_DEPENDS", name)?;
                build_depends.push(name.to_owned());
            }
        }
        Ok(DkmsConf {
            package_name: package_name.to_owned(),
            package_version: package_version.to_owned(),
            modules,
            make_command: self.make_command(ctx),
            patches,
            // Untrimmed: DKMS puts `<build dir>/` before the value as it is.
            pre_build: self.given("PRE_BUILD", 0).and(self.element("PRE_BUILD", 0)).map(str::to_owned),
            post_build: self.given("POST_BUILD", 0).and(self.element("POST_BUILD", 0)).map(str::to_owned),
            clean: self.clean_command(ctx),
            semantics: ctx.semantics,
            build_depends,
            skip,
            excluded,
        })
    }

    fn modules(&self, package_name: &str) -> Result<Vec<Module>, DkmsError> {
        let mut indices = BTreeSet::new();
        for name in MODULE_ARRAYS {
            indices.extend(self.array(name).into_iter().flat_map(|a| a.keys().copied()));
        }
        let Some(&highest) = indices.last() else { return Err(DkmsError::NoModules) };
        let count = highest.saturating_add(1);
        let gap = |missing: u64| DkmsError::IndexGap { count, indices: indices.iter().copied().collect(), missing };
        // Sparse arrays: every index below the highest must be a record. Found
        // without walking up to a huge index.
        if let Some((expected, _)) = (0u64..).zip(&indices).find(|(expected, i)| expected != *i) {
            return Err(gap(expected));
        }
        let mut modules = Vec::new();
        for index in 0..count {
            let built_name = match self.given("BUILT_MODULE_NAME", index) {
                Some(name) => name.to_owned(),
                // A single record defaults to PACKAGE_NAME (DKMS 3.x).
                None if count == 1 => package_name.to_owned(),
                None => return Err(gap(index)),
            };
            check_module_name("BUILT_MODULE_NAME", &built_name)?;
            let built_location = self.given("BUILT_MODULE_LOCATION", index).unwrap_or("");
            check_relative("BUILT_MODULE_LOCATION", built_location)?;
            let dest_name = self.given("DEST_MODULE_NAME", index).unwrap_or(&built_name).to_owned();
            check_module_name("DEST_MODULE_NAME", &dest_name)?;
            let dest_location = self.given("DEST_MODULE_LOCATION", index).unwrap_or("");
            check_dest_location(dest_location)?;
            modules.push(Module {
                built_name,
                built_location: built_location.trim_matches('/').to_owned(),
                dest_name,
                dest_location: dest_location.to_owned(),
                strip: self.strip(index),
            });
        }
        for (index, module) in modules.iter().enumerate() {
            let built = |m: &Module| (m.built_location.clone(), m.built_name.clone());
            if modules[..index].iter().any(|m| built(m) == built(module)) {
                let name = format!("{}{}", slash(&module.built_location), module.built_name);
                return Err(DkmsError::Duplicate { name, directive: "BUILT_MODULE_NAME", index: index as u64 });
            }
            if modules[..index].iter().any(|m| m.dest_name == module.dest_name) {
                let name = module.dest_name.clone();
                return Err(DkmsError::Duplicate { name, directive: "DEST_MODULE_NAME", index: index as u64 });
            }
        }
        Ok(modules)
    }

    /// DKMS's `case ${STRIP[i]} in [nN]*) no;; [yY]*) yes;; '') ${strip[0]:-yes}`.
    fn strip(&self, index: u64) -> bool {
        match self.element("STRIP", index).and_then(|v| v.chars().next()) {
            Some('n' | 'N') => false,
            None if index > 0 => self.strip(0),
            _ => true,
        }
    }

    /// DKMS picks MAKE[0] unless MAKE_MATCH[0] is set, then the MAKE[i] of the
    /// last non-empty MAKE_MATCH[i] that matches the kernel release; without
    /// any, `make -C $kernel_source_dir M=$build_dir`. A command beginning with
    /// the word `make` gets `-jN KERNELRELEASE=<krel>` inserted after it,
    /// exactly as DKMS's `${cmd/#make/…}` does.
    fn make_command(&self, ctx: &Context<'_>) -> String {
        let mut chosen = match self.given("MAKE_MATCH", 0) {
            None => self.element("MAKE", 0).map(str::to_owned),
            Some(_) => None,
        };
        for (&i, cmd) in self.array("MAKE").into_iter().flatten() {
            if !cmd.is_empty() && self.given("MAKE_MATCH", i).is_some() && self.matched("MAKE_MATCH", i) {
                chosen = Some(cmd.clone());
            }
        }
        let command = chosen
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| format!("make -C {} M={}", ctx.kernel_source_dir, ctx.build_dir));
        match command.strip_prefix("make") {
            Some(rest) => format!("make -j{} KERNELRELEASE={}{}", ctx.parallel_jobs, ctx.kernel_release, rest),
            None => command,
        }
    }

    /// DKMS 3.0.10 runs CLEAN (default `make -C <headers> M=<build dir> clean`)
    /// before make, its status ignored; 3.2 runs nothing (the build directory
    /// is a fresh copy).
    fn clean_command(&self, ctx: &Context<'_>) -> Option<String> {
        match ctx.semantics {
            Semantics::V3_2 => None,
            Semantics::V3_0 => Some(match self.element("CLEAN", 0).filter(|c| !c.is_empty()) {
                Some(clean) => clean.to_owned(),
                None => format!("make -C {} M={} clean", ctx.kernel_source_dir, ctx.build_dir),
            }),
        }
    }

    /// PATCH[i] in index order, unless its PATCH_MATCH[i] is set and does not match.
    fn patches(&self) -> Result<Vec<String>, DkmsError> {
        let mut patches = Vec::new();
        for (&index, name) in self.array("PATCH").into_iter().flatten() {
            if name.is_empty() || (self.given("PATCH_MATCH", index).is_some() && !self.matched("PATCH_MATCH", index)) {
                continue;
            }
            if name.starts_with('/') || name.split('/').any(|part| part == "..") {
                return Err(DkmsError::PatchPath { index, value: name.clone() });
            }
            patches.push(name.clone());
        }
        Ok(patches)
    }
}

fn slash(location: &str) -> String {
    if location.is_empty() {
        String::new()
    } else {
        format!("{location}/")
    }
}

fn invalid(name: &str, value: &str, why: &'static str) -> DkmsError {
    DkmsError::Invalid { name: name.to_owned(), value: value.to_owned(), why }
}

/// The longest file name (NAME_MAX).
const MAX_FILE_NAME: usize = 255;

fn check_word(name: &str, value: &str) -> Result<(), DkmsError> {
    if value.chars().all(|c| c.is_ascii_alphanumeric() || "+-.~_".contains(c)) {
        Ok(())
    } else {
        Err(invalid(name, value, "only letters, digits and + - . ~ _ are allowed"))
    }
}

fn check_file_name(name: &str, value: &str) -> Result<(), DkmsError> {
    if value.contains('/') || value == "." || value == ".." {
        return Err(invalid(name, value, "it must be a plain file name"));
    }
    check_word(name, value)
}

fn check_module_name(name: &str, value: &str) -> Result<(), DkmsError> {
    if value.ends_with(".o") || value.ends_with(".ko") {
        return Err(invalid(name, value, "a module name is given without .o or .ko"));
    }
    if value.contains('/') || value == "." || value == ".." {
        return Err(invalid(name, value, "a module name must be a plain file name"));
    }
    check_word(name, value)
}

fn check_relative(name: &str, value: &str) -> Result<(), DkmsError> {
    if value.split('/').any(|part| part == "..") {
        return Err(invalid(name, value, "it must stay inside the source tree (no `..`)"));
    }
    Ok(())
}

/// DKMS accepts `/kernel*`, `/updates*` and `/extra*`; hermod also refuses `..`.
fn check_dest_location(value: &str) -> Result<(), DkmsError> {
    if value.is_empty() {
        return Ok(());
    }
    if !["/kernel", "/updates", "/extra"].iter().any(|p| value.starts_with(p)) {
        return Err(invalid(
            "DEST_MODULE_LOCATION",
            value,
            "it must begin with /kernel, /updates or /extra (hermod installs under updates/dkms in any case)",
        ));
    }
    check_relative("DEST_MODULE_LOCATION", value)
}
