//! Tests for [`super`] (`build.rs`).

use super::*;

#[test]
fn tail_keeps_the_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let body: String = (0..100).map(|i| format!("line {i}\n")).collect();
    fs::write(&log, body).unwrap();
    let t = tail(&log);
    assert!(t.contains("line 99") && t.contains("line 75") && !t.contains("line 74\n"));
    // A huge log with one endless line: only its end is read, cut short.
    let mut huge = "y".repeat(1 << 20);
    huge.push_str("\nlast words\n");
    fs::write(&log, huge).unwrap();
    let t = tail(&log);
    assert!(t.len() < 1000 && t.ends_with("  | last words"), "{t}");
    // Escape sequences a build prints reach no terminal through an error message.
    fs::write(&log, "error: \x1b]0;owned\x07 \x1b[2J done\r\n").unwrap();
    assert_eq!(tail(&log), "  | error: ?]0;owned? ?[2J done");
}
