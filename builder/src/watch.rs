//! Watching a build log while the sandbox writes it: what a person at the
//! terminal sees during the compile step.
//!
//! The sandboxed commands write to one log file on the host (`build.rs`);
//! nothing else reaches hermod until the step ends, which for a large module
//! is minutes. A watcher thread polls that file (it never blocks the build):
//!
//! - [`Mode::Spinner`] (stderr is a terminal, not `-q`): one line per build,
//!   `compiling hello for 6.1.0-56-amd64 [12s] <the log's last line>`, among
//!   the download bars (`apt/fetch.rs` shares the same [`MultiProgress`]);
//! - [`Mode::Follow`] (`-v`): every new log line, prefixed with what is being
//!   built, as `hermod: [hello 6.1.0-56-amd64] LINE` (several builds at once
//!   interleave by line, never within one);
//! - [`Mode::Off`]: nothing (a pipe, `-q`).
//!
//! The log is written by untrusted build commands: each poll reads at most
//! [`POLL_BYTES`] new bytes, a line is cut at [`WIDTH`] characters, and bytes
//! that are not UTF-8 are shown replaced; what is skipped stays in the log.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the log is read.
const POLL: Duration = Duration::from_millis(250);
/// The most one poll reads; a build that writes faster is shown sampled.
pub const POLL_BYTES: u64 = 256 << 10;
/// The most of one line shown.
pub const WIDTH: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Off,
    Spinner,
    Follow,
}

static MODE: AtomicU8 = AtomicU8::new(0);

/// `-v`: follow the build logs line by line (set once, by `main`).
pub fn set_follow(follow: bool) {
    MODE.store(u8::from(follow), Ordering::Relaxed);
}

/// The mode for this process: `-v` follows; else a terminal gets a spinner.
pub fn mode() -> Mode {
    use std::io::IsTerminal;
    if MODE.load(Ordering::Relaxed) == 1 {
        Mode::Follow
    } else if !crate::say::quiet() && std::io::stderr().is_terminal() {
        Mode::Spinner
    } else {
        Mode::Off
    }
}

/// The progress lines of this process (download bars and build spinners).
pub fn bars() -> &'static MultiProgress {
    static BARS: std::sync::OnceLock<MultiProgress> = std::sync::OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// A running watcher; dropping it stops it (and clears its line).
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watch {
    /// Watch `log` (from its current end) for the build `what` (`hello
    /// 6.1.0-56-amd64`).
    pub fn start(log: &Path, what: String, mode: Mode) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        if mode == Mode::Off {
            return Watch { stop, thread: None };
        }
        let start = std::fs::metadata(log).map_or(0, |m| m.len());
        let (log, flag) = (log.to_owned(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("hermod-watch".into())
            .spawn(move || watch(&log, start, &what, mode, &flag))
            .ok();
        Watch { stop, thread }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn watch(log: &Path, mut offset: u64, what: &str, mode: Mode, stop: &AtomicBool) {
    let spinner = (mode == Mode::Spinner).then(|| {
        let bar = bars().add(ProgressBar::new_spinner());
        if let Ok(style) = ProgressStyle::with_template("{spinner} compiling {prefix} [{elapsed}] {wide_msg}") {
            bar.set_style(style);
        }
        bar.set_prefix(what.to_owned());
        bar
    });
    let mut lines = Lines::default();
    loop {
        let done = stop.load(Ordering::Relaxed);
        let (chunk, next) = read_from(log, offset);
        offset = next;
        for line in lines.push(&chunk) {
            match &spinner {
                Some(bar) => bar.set_message(line),
                None => crate::say::note(format_args!("[{what}] {line}")),
            }
        }
        if let Some(bar) = &spinner {
            bar.tick();
        }
        if done {
            break;
        }
        std::thread::sleep(POLL);
    }
    if let Some(rest) = lines.finish() {
        if spinner.is_none() {
            crate::say::note(format_args!("[{what}] {rest}"));
        }
    }
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
}

/// At most [`POLL_BYTES`] of `log` from `offset`, and the offset after them.
/// A file shorter than `offset` (truncated) is read from its start.
fn read_from(log: &Path, offset: u64) -> (Vec<u8>, u64) {
    let Ok(mut file) = std::fs::File::open(log) else { return (Vec::new(), offset) };
    let len = file.metadata().map_or(0, |m| m.len());
    let offset = if len < offset { 0 } else { offset };
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(offset)).is_ok() {
        let _ = file.take(POLL_BYTES).read_to_end(&mut bytes);
    }
    let next = offset + bytes.len() as u64;
    (bytes, next)
}

/// Complete lines out of a byte stream; a partial line waits for its end (up
/// to [`WIDTH`] bytes kept: a line without end is not memory).
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                out.push(shown(&std::mem::take(&mut self.partial)));
            } else if self.partial.len() < WIDTH * 4 {
                self.partial.push(b);
            }
        }
        out.retain(|l| !l.trim().is_empty());
        out
    }

    fn finish(self) -> Option<String> {
        Some(shown(&self.partial)).filter(|l| !l.trim().is_empty())
    }
}

/// `text` with its control characters (but tabs) as `?`: a build's output
/// shown on a terminal cannot move its cursor or send it escape sequences.
pub fn inert(text: &str) -> String {
    text.chars().map(|c| if c.is_control() && c != '\t' { '?' } else { c }).collect()
}

/// A line as shown: lossy UTF-8, [`inert`], at most [`WIDTH`] characters.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut line = inert(text.trim_end_matches('\r'));
    if let Some((cut, _)) = line.char_indices().nth(WIDTH) {
        line.truncate(cut);
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_whole_bounded_and_inert() {
        let mut lines = Lines::default();
        assert!(lines.push(b"CC [M]  hel").is_empty());
        assert_eq!(lines.push(b"lo.o\n\n  LD \x1b[2J x\r\nrest"), ["CC [M]  hello.o", "  LD ?[2J x"]);
        assert_eq!(lines.finish().as_deref(), Some("rest"));
        let long = vec![b'a'; 10 * WIDTH];
        let mut lines = Lines::default();
        let got = lines.push(&[&long[..], b"\n"].concat());
        assert_eq!(got[0].chars().count(), WIDTH + 1, "cut, with an ellipsis");
        assert!(lines.partial.is_empty());
    }

    #[test]
    fn the_log_is_read_from_the_offset_in_bounded_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, vec![b'x'; (POLL_BYTES + 10) as usize]).unwrap();
        let (first, next) = read_from(&log, 0);
        assert_eq!((first.len() as u64, next), (POLL_BYTES, POLL_BYTES));
        let (second, next) = read_from(&log, next);
        assert_eq!((second.len(), next), (10, POLL_BYTES + 10));
        std::fs::write(&log, b"new\n").unwrap();
        assert_eq!(read_from(&log, next), (b"new\n".to_vec(), 4), "a truncated log is read again from its start");
        assert_eq!(read_from(&dir.path().join("none"), 7), (Vec::new(), 7));
    }

    #[test]
    fn following_stops_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, b"before\n").unwrap();
        let watch = Watch::start(&log, "hello 6.1.0-56-amd64".into(), Mode::Follow);
        std::fs::write(&log, b"before\nafter\n").unwrap();
        drop(watch);
    }
}
