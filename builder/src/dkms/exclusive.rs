//! BUILD_EXCLUSIVE_*: which kernels a package, or one of its modules, is
//! built for. Element 0 of each directive (`BUILD_EXCLUSIVE_KERNEL=…` is
//! `[0]`) is the whole package's, in every DKMS; element `i` ≥ 1 is module
//! `i`'s own, upstream's per-module form (DKMS 3.3, read under
//! [`Semantics::V3_2`] as the superset of 3.2.2, which ignores those
//! elements). A module its own condition excludes is left out of the
//! package; the package's condition not holding skips the build (DKMS's exit
//! 77). Element 0 is also module 0's (3.3 checks both with the same
//! `${X[0]}`), so module 0 is only ever left out with the whole package.

use super::{version_key, Context, Module, Records, Semantics};

impl Records {
    /// The modules to build, those left out (with the reason), and why the
    /// whole build is skipped, if it is.
    pub(super) fn exclusive(
        &self,
        ctx: &Context<'_>,
        modules: Vec<Module>,
    ) -> (Vec<Module>, Vec<String>, Option<String>) {
        let per_module = ctx.semantics == Semantics::V3_2;
        let count = modules.len() as u64;
        // 3.3: OBSOLETE_BY stands in for the package's _KERNEL_MAX only
        // when no module has one of its own.
        let own_max = per_module && (1..count).any(|i| self.given("BUILD_EXCLUSIVE_KERNEL_MAX", i).is_some());
        if let Some(why) = self.excluded_by(ctx, 0, !own_max) {
            return (modules, Vec::new(), Some(why));
        }
        if !per_module {
            return (modules, Vec::new(), None);
        }
        let (mut kept, mut excluded) = (Vec::new(), Vec::new());
        for (i, module) in (0u64..).zip(modules) {
            match (i > 0).then(|| self.excluded_by(ctx, i, false)).flatten() {
                Some(why) => excluded.push(format!("module {} ([{i}]): {why}", module.built_name)),
                None => kept.push(module),
            }
        }
        (kept, excluded, None)
    }

    /// The first condition of element `index` the kernel does not satisfy,
    /// in DKMS's order; OBSOLETE_BY as _KERNEL_MAX when `obsolete_by` (3.2).
    fn excluded_by(&self, ctx: &Context<'_>, index: u64, obsolete_by: bool) -> Option<String> {
        let krel = ctx.kernel_release;
        let at = |name: &str| if index == 0 { name.to_owned() } else { format!("{name}[{index}]") };
        // 3.0.10 knows no _KERNEL_MIN/_MAX: eval.sh does not hand them over
        // for it, and they are not read here either.
        let v3_2 = ctx.semantics == Semantics::V3_2;
        if let Some(re) = self.given("BUILD_EXCLUSIVE_KERNEL", index) {
            if !self.matched("BUILD_EXCLUSIVE_KERNEL", index) {
                return Some(format!("{}={re:?} does not match kernel {krel}", at("BUILD_EXCLUSIVE_KERNEL")));
            }
        }
        if let Some(min) = self.given("BUILD_EXCLUSIVE_KERNEL_MIN", index).filter(|_| v3_2) {
            if version_key(krel) < version_key(min) {
                return Some(format!("kernel {krel} is older than {}={min:?}", at("BUILD_EXCLUSIVE_KERNEL_MIN")));
            }
        }
        let max = self.given("BUILD_EXCLUSIVE_KERNEL_MAX", index).filter(|_| v3_2);
        let max = max.map(|m| (at("BUILD_EXCLUSIVE_KERNEL_MAX"), m));
        // OBSOLETE_BY stands in for _KERNEL_MAX in 3.2 only (3.0.10 reads it
        // only when installing).
        let obsolete = || self.given("OBSOLETE_BY", 0).map(|m| ("OBSOLETE_BY".to_owned(), m));
        let max = if v3_2 && obsolete_by && index == 0 { max.or_else(obsolete) } else { max };
        if let Some((name, max)) = max {
            if version_key(krel) > version_key(max) {
                return Some(format!("kernel {krel} is newer than {name}={max:?}"));
            }
        }
        if let Some(re) = self.given("BUILD_EXCLUSIVE_ARCH", index) {
            if !self.matched("BUILD_EXCLUSIVE_ARCH", index) {
                return Some(format!("{}={re:?} does not match {}", at("BUILD_EXCLUSIVE_ARCH"), ctx.arch));
            }
        }
        let (_, unmet) = self.config_unmet.iter().find(|(i, _)| *i == index)?;
        let name = at("BUILD_EXCLUSIVE_CONFIG");
        Some(match unmet.strip_prefix('!') {
            Some(option) => format!("{name}: {option} is set in kernel {krel}'s config"),
            None => format!("{name}: {unmet} is not y or m in kernel {krel}'s config"),
        })
    }
}
