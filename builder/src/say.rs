//! The one reporter of user-facing lines: what hermod tells the person
//! running it, on stderr, each line starting `hermod: `.
//!
//! Results go to stdout (text or `--json`, from `cli/`); diagnostics go
//! through `tracing` (`-v`, `HERMOD_LOG`). Library code never writes to
//! stderr itself, nor does `cli/`: they call [`note`] (progress and remarks,
//! silenced by `--quiet`), [`warning`] (something the user should act on,
//! always shown), [`failure`] or [`notice`], so `--quiet` and the line format
//! are decided here only.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`: from now on [`note`] prints nothing (set once, by `main`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// A progress line or remark: `hermod: MESSAGE`, unless quiet.
pub fn note(message: impl Display) {
    if !quiet() {
        eprintln!("hermod: {message}");
    }
}

/// A problem the user should know of even when quiet: `hermod: warning: MESSAGE`.
pub fn warning(message: impl Display) {
    eprintln!("hermod: warning: {message}");
}

/// An error that does not stop the command (one of several items failed):
/// `hermod: MESSAGE`, always shown; the command's exit status reports it.
pub fn failure(message: impl Display) {
    eprintln!("hermod: {message}");
}

/// What the user must know even when quiet, though nothing failed (an
/// install deferred until dpkg is done, a repository left unsigned):
/// `hermod: MESSAGE`, always shown.
pub fn notice(message: impl Display) {
    eprintln!("hermod: {message}");
}
