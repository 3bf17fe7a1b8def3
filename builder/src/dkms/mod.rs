//! dkms.conf, read the way DKMS reads it.
//!
//! A dkms.conf is a bash script that DKMS *sources* with a few variables set
//! (`kernelver`, `arch`, `kernel_source_dir`, …); real packages compute their
//! directives with `find`, `grep` on the kernel config or `nproc`. hermod therefore
//! never parses the file itself: [`EVAL_SCRIPT`] sources it with bash inside the
//! sandbox and prints the resulting directives as NUL-separated records, which
//! [`parse_records`] turns into a [`DkmsConf`]. Everything after that is plain data.
//!
//! Directive semantics follow DKMS 3.x (see ARCHITECTURE.md for the choices made
//! where DKMS 3.0.10 has known bugs).

use std::collections::BTreeMap;

/// The bash program that evaluates a dkms.conf inside the sandbox.
pub const EVAL_SCRIPT: &str = include_str!("eval.sh");

/// Exit status of [`EVAL_SCRIPT`] when `bash -n` rejects the file.
pub const EXIT_SYNTAX_ERROR: i32 = 65;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DkmsError {
    #[error("dkms.conf does not set {0}")]
    Missing(&'static str),
    #[error("dkms.conf sets {name} to {value:?}, which is not usable: {why}")]
    Invalid { name: String, value: String, why: &'static str },
    #[error("dkms.conf declares no module (no BUILT_MODULE_NAME and PACKAGE_NAME unusable)")]
    NoModules,
    #[error("dkms.conf declares modules at indices {indices:?}: BUILT_MODULE_NAME[{missing}] is missing (a gap in the module indices)")]
    IndexGap { indices: Vec<usize>, missing: usize },
    #[error("the dkms.conf evaluation printed a malformed record: {0}")]
    Malformed(String),
}

/// One module a dkms.conf declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// File name of the built module without `.ko`.
    pub built_name: String,
    /// Directory, relative to the build tree, where make leaves it ("" = top).
    pub built_location: String,
    /// Name it is installed under (DEST_MODULE_NAME, default: built_name).
    pub dest_name: String,
    /// Whether to `strip -g` it (STRIP[#], default yes).
    pub strip: bool,
}

/// The directives of one evaluated dkms.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkmsConf {
    pub package_name: String,
    pub package_version: String,
    pub modules: Vec<Module>,
    /// The make command DKMS would run, after MAKE_MATCH selection and the
    /// `make` → `make -jN KERNELRELEASE=…` rewrite.
    pub make_command: String,
}

/// The raw records printed by [`EVAL_SCRIPT`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Records {
    pub scalars: BTreeMap<String, String>,
    pub arrays: BTreeMap<String, BTreeMap<usize, String>>,
    /// Indices of MAKE_MATCH entries whose regex matched the kernel release.
    pub make_matches: Vec<usize>,
}

/// Split the NUL-separated output of [`EVAL_SCRIPT`].
pub fn parse_records(raw: &[u8]) -> Result<Records, DkmsError> {
    let text = String::from_utf8_lossy(raw);
    let mut fields = text.split('\0');
    let mut records = Records::default();
    let mut next = |what: &str| {
        fields
            .next()
            .map(str::to_owned)
            .ok_or_else(|| DkmsError::Malformed(format!("truncated record, expected {what}")))
    };
    loop {
        let tag = match next("tag") {
            Ok(tag) if tag.is_empty() => break,
            Ok(tag) => tag,
            Err(_) => break,
        };
        match tag.as_str() {
            "S" => {
                let name = next("name")?;
                let value = next("value")?;
                records.scalars.insert(name, value);
            }
            "A" => {
                let name = next("name")?;
                let index = next("index")?;
                let value = next("value")?;
                let index = index.parse().map_err(|_| DkmsError::Malformed(format!("array index {index:?}")))?;
                records.arrays.entry(name).or_default().insert(index, value);
            }
            "M" => {
                let index = next("index")?;
                records
                    .make_matches
                    .push(index.parse().map_err(|_| DkmsError::Malformed(format!("MAKE_MATCH index {index:?}")))?);
            }
            other => return Err(DkmsError::Malformed(format!("unknown tag {other:?}"))),
        }
    }
    Ok(records)
}

/// What the build needs to know besides the records.
pub struct Context<'a> {
    pub kernel_release: &'a str,
    pub kernel_source_dir: &'a str,
    pub build_dir: &'a str,
    pub parallel_jobs: usize,
}

impl Records {
    fn scalar(&self, name: &str) -> Option<&str> {
        self.scalars.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    fn array(&self, name: &str) -> Option<&BTreeMap<usize, String>> {
        self.arrays.get(name)
    }

    fn element(&self, name: &str, index: usize) -> Option<&str> {
        self.array(name).and_then(|a| a.get(&index)).map(String::as_str)
    }

    /// Apply DKMS's directive semantics.
    pub fn interpret(&self, ctx: &Context<'_>) -> Result<DkmsConf, DkmsError> {
        let package_name = self.scalar("PACKAGE_NAME").ok_or(DkmsError::Missing("PACKAGE_NAME"))?;
        let package_version = self.scalar("PACKAGE_VERSION").ok_or(DkmsError::Missing("PACKAGE_VERSION"))?;
        check_word("PACKAGE_NAME", package_name)?;
        check_word("PACKAGE_VERSION", package_version)?;

        let modules = self.modules(package_name)?;
        let make_command = self.make_command(ctx);
        Ok(DkmsConf {
            package_name: package_name.to_owned(),
            package_version: package_version.to_owned(),
            modules,
            make_command,
        })
    }

    fn modules(&self, package_name: &str) -> Result<Vec<Module>, DkmsError> {
        // DKMS: the module count is the highest index + 1 of BUILT_MODULE_NAME;
        // with no BUILT_MODULE_NAME at all, a single module named PACKAGE_NAME.
        let names: BTreeMap<usize, String> = match self.array("BUILT_MODULE_NAME") {
            Some(names) if !names.is_empty() => names.clone(),
            _ => BTreeMap::from([(0, package_name.to_owned())]),
        };
        let count = names.keys().max().map_or(0, |m| m + 1);
        if let Some(missing) = (0..count).find(|i| !names.contains_key(i)) {
            return Err(DkmsError::IndexGap { indices: names.keys().copied().collect(), missing });
        }
        let mut modules = Vec::with_capacity(count);
        for (index, built_name) in names {
            let built_name = built_name.trim().to_owned();
            if built_name.is_empty() {
                return Err(DkmsError::NoModules);
            }
            check_file_name("BUILT_MODULE_NAME", &built_name)?;
            let built_location = self.element("BUILT_MODULE_LOCATION", index).unwrap_or("");
            check_relative("BUILT_MODULE_LOCATION", built_location)?;
            let dest_name = match self.element("DEST_MODULE_NAME", index) {
                Some(name) if !name.trim().is_empty() => name.trim().to_owned(),
                _ => built_name.clone(),
            };
            check_file_name("DEST_MODULE_NAME", &dest_name)?;
            let strip = !matches!(
                self.element("STRIP", index).map(str::to_ascii_lowercase).as_deref(),
                Some("no" | "n" | "false" | "0")
            );
            modules.push(Module {
                built_name,
                built_location: built_location.trim_matches('/').to_owned(),
                dest_name,
                strip,
            });
        }
        if modules.is_empty() {
            return Err(DkmsError::NoModules);
        }
        Ok(modules)
    }

    /// DKMS picks MAKE[0], then the MAKE[i] of the last MAKE_MATCH[i] that matches
    /// the kernel release; without MAKE, `make -C $kernel_source_dir M=$build_dir`.
    /// A command beginning with the word `make` gets `-jN KERNELRELEASE=<krel>`
    /// inserted after it, exactly as DKMS's `${cmd/#make/…}` does.
    fn make_command(&self, ctx: &Context<'_>) -> String {
        let mut chosen = self.element("MAKE", 0).map(str::to_owned);
        for &i in &self.make_matches {
            if let Some(cmd) = self.element("MAKE", i) {
                chosen = Some(cmd.to_owned());
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
}

fn check_word(name: &str, value: &str) -> Result<(), DkmsError> {
    let ok = value.chars().all(|c| c.is_ascii_alphanumeric() || "+-.~_".contains(c));
    if ok {
        Ok(())
    } else {
        Err(DkmsError::Invalid {
            name: name.to_owned(),
            value: value.to_owned(),
            why: "only letters, digits and + - . ~ _ are allowed",
        })
    }
}

fn check_file_name(name: &str, value: &str) -> Result<(), DkmsError> {
    if value.contains('/') || value == "." || value == ".." || value.contains('\0') {
        return Err(DkmsError::Invalid {
            name: name.to_owned(),
            value: value.to_owned(),
            why: "a module name must be a plain file name",
        });
    }
    check_word(name, value)
}

fn check_relative(name: &str, value: &str) -> Result<(), DkmsError> {
    if value.split('/').any(|part| part == "..") {
        return Err(DkmsError::Invalid {
            name: name.to_owned(),
            value: value.to_owned(),
            why: "it must stay inside the source tree (no `..`)",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in pairs {
            match name.split_once('[') {
                Some((array, index)) => {
                    let index = index.trim_end_matches(']');
                    out.extend_from_slice(format!("A\0{array}\0{index}\0{value}\0").as_bytes());
                }
                None => out.extend_from_slice(format!("S\0{name}\0{value}\0").as_bytes()),
            }
        }
        out
    }

    fn ctx() -> Context<'static> {
        Context {
            kernel_release: "6.1.0-56-amd64",
            kernel_source_dir: "/usr/src/linux-headers-6.1.0-56-amd64",
            build_dir: "/build/src",
            parallel_jobs: 2,
        }
    }

    fn interpret(raw: &[u8]) -> Result<DkmsConf, DkmsError> {
        parse_records(raw)?.interpret(&ctx())
    }

    #[test]
    fn minimal_conf_gets_dkms_defaults() {
        let conf = interpret(&records(&[("PACKAGE_NAME", "hello"), ("PACKAGE_VERSION", "0.1")])).unwrap();
        assert_eq!(conf.modules.len(), 1);
        assert_eq!(conf.modules[0].built_name, "hello");
        assert_eq!(conf.modules[0].dest_name, "hello");
        assert!(conf.modules[0].strip);
        assert_eq!(
            conf.make_command,
            "make -j2 KERNELRELEASE=6.1.0-56-amd64 -C /usr/src/linux-headers-6.1.0-56-amd64 M=/build/src"
        );
    }

    #[test]
    fn make_rewrite_only_for_leading_make_word() {
        let raw = records(&[
            ("PACKAGE_NAME", "v4l2loopback"),
            ("PACKAGE_VERSION", "0.12.7"),
            ("MAKE[0]", "make KERNEL_DIR=/usr/src/linux-headers-6.1.0-56-amd64 all"),
        ]);
        assert_eq!(
            interpret(&raw).unwrap().make_command,
            "make -j2 KERNELRELEASE=6.1.0-56-amd64 KERNEL_DIR=/usr/src/linux-headers-6.1.0-56-amd64 all"
        );
        let raw = records(&[("PACKAGE_NAME", "x"), ("PACKAGE_VERSION", "1"), ("MAKE[0]", "'make' all")]);
        assert_eq!(interpret(&raw).unwrap().make_command, "'make' all");
    }

    #[test]
    fn last_matching_make_match_wins() {
        let mut raw = records(&[
            ("PACKAGE_NAME", "x"),
            ("PACKAGE_VERSION", "1"),
            ("MAKE[0]", "make zero"),
            ("MAKE[1]", "make one"),
            ("MAKE[2]", "make two"),
        ]);
        raw.extend_from_slice(b"M\x001\x00M\x002\x00");
        assert_eq!(interpret(&raw).unwrap().make_command, "make -j2 KERNELRELEASE=6.1.0-56-amd64 two");
    }

    #[test]
    fn several_modules_with_locations_names_and_strip() {
        let raw = records(&[
            ("PACKAGE_NAME", "pair"),
            ("PACKAGE_VERSION", "2.0"),
            ("BUILT_MODULE_NAME[0]", "alpha"),
            ("BUILT_MODULE_NAME[1]", "beta"),
            ("BUILT_MODULE_LOCATION[1]", "drivers/beta/"),
            ("DEST_MODULE_NAME[1]", "beta2"),
            ("STRIP[1]", "no"),
        ]);
        let conf = interpret(&raw).unwrap();
        assert_eq!(conf.modules[1].built_location, "drivers/beta");
        assert_eq!(conf.modules[1].dest_name, "beta2");
        assert!(!conf.modules[1].strip);
        assert!(conf.modules[0].strip);
    }

    #[test]
    fn bad_inputs_are_named() {
        let missing = interpret(&records(&[("PACKAGE_VERSION", "1")])).unwrap_err();
        assert_eq!(missing, DkmsError::Missing("PACKAGE_NAME"));
        let missing = interpret(&records(&[("PACKAGE_NAME", "x")])).unwrap_err();
        assert_eq!(missing, DkmsError::Missing("PACKAGE_VERSION"));
        let gap = interpret(&records(&[
            ("PACKAGE_NAME", "x"),
            ("PACKAGE_VERSION", "1"),
            ("BUILT_MODULE_NAME[0]", "a"),
            ("BUILT_MODULE_NAME[2]", "c"),
        ]))
        .unwrap_err();
        assert!(matches!(gap, DkmsError::IndexGap { missing: 1, .. }), "{gap}");
        let escape = interpret(&records(&[
            ("PACKAGE_NAME", "x"),
            ("PACKAGE_VERSION", "1"),
            ("BUILT_MODULE_LOCATION[0]", "../../etc"),
        ]))
        .unwrap_err();
        assert!(escape.to_string().contains("BUILT_MODULE_LOCATION"), "{escape}");
        let slash =
            interpret(&records(&[("PACKAGE_NAME", "x"), ("PACKAGE_VERSION", "1"), ("BUILT_MODULE_NAME[0]", "a/b")]))
                .unwrap_err();
        assert!(slash.to_string().contains("plain file name"), "{slash}");
        assert!(interpret(&records(&[("PACKAGE_NAME", "x y"), ("PACKAGE_VERSION", "1")])).is_err());
    }

    #[test]
    fn malformed_records_are_rejected() {
        assert!(parse_records(b"Q\0x\0").is_err());
        assert!(parse_records(b"A\0MAKE\0notanumber\0x\0").is_err());
        assert_eq!(parse_records(b"").unwrap(), Records::default());
    }
}
