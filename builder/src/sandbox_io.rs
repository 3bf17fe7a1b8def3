//! What the build stage and its generated scripts share (`build.rs`,
//! `build_script.rs`): the fixed paths inside the sandbox, the quoting of a
//! word put into a script, and the bounded read of what a step left in its
//! outputs. A module of its own so that neither of the two uses the other's.

use std::io;
use std::path::Path;

pub(crate) const SRC_INSIDE: &str = "/build/src";
pub(crate) const IN_INSIDE: &str = "/hermod/in";
pub(crate) const OUT_INSIDE: &str = "/hermod/out";

/// A file a step left in its `out/`, which belongs to the sandbox user: read
/// without following links, only if it is a regular file, and only up to
/// `max_module_size` (the build's outputs may total gigabytes; hermod, outside
/// the sandbox's memory limit, must not hold them).
pub(crate) fn read_sandbox_output(path: &Path) -> io::Result<Vec<u8>> {
    // By descriptor: another process of the sandbox's host user could have
    // left a link or a FIFO there, which is refused without being opened.
    let (parent, name) = (path.parent().unwrap_or(Path::new("/")), path.file_name().unwrap_or_default());
    let (file, meta) = hermod_hostfs::Dir::open_nofollow(parent)?.open_regular(name)?;
    let limits = crate::bounded::current();
    let limit = crate::bounded::Limit::ModuleSize;
    // The file no longer changes (the sandbox is gone): its size decides
    // before a byte is read, and the read is capped all the same.
    let len = meta.size;
    if len > limit.of(&limits) {
        return Err(crate::bounded::Exceeded::new(limit, &limits).into_io());
    }
    // Sized once: growing by doubling would touch up to twice the module.
    let mut contents = Vec::with_capacity(len as usize);
    io::Read::read_to_end(&mut crate::bounded::Bounded::new(file, limit, &limits), &mut contents)?;
    Ok(contents)
}

/// `s` as one single-quoted bash word, whatever it holds.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
