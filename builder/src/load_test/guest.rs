//! The guest side of a boot test: the `/init` script that runs inside the
//! booted kernel, and the parser of what it prints on the serial console.
//!
//! The script is the only process of the guest. It loads the modules in the
//! order given (in-kernel dependencies first), then unloads the modules
//! under test that loaded, and powers off. Every step prints its result as a
//! *marker line*, `@@hermod-boot@@ OP NAME rc=N`, preceded by the step's own
//! lines: `@@hermod-boot@@ out NAME TEXT` for what insmod/rmmod said and
//! `@@hermod-boot@@ kmsg NAME TEXT` for each kernel log line the step caused
//! (the log is cleared before each step, so the lines are that step's).
//! The kernel prints to the console only at `loglevel=1` (emergencies), so
//! the markers are not torn; they are still looked for anywhere in a line.

/// Prefix of every line the init script means for the host.
pub const MARKER: &str = "@@hermod-boot@@";

/// What one module is in the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An in-kernel module of the image that a module under test depends on.
    Dependency,
    /// A module under test.
    Tested,
}

/// One module to load: its name and its path inside the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    pub name: String,
    pub path: String,
    pub role: Role,
}

/// The `/init` script for `loads` (in order). Modules under test that
/// loaded are unloaded afterwards, in reverse order.
pub fn init_script(loads: &[Load]) -> String {
    let mut s = String::from(
        r#"#!/bin/busybox sh
# hermod boot test: load the modules, unload those under test, report, power off.
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox --install -s /bin
export PATH=/bin
say() { echo "@@hermod-boot@@ $*"; }
# step OP NAME ARG: run OP ARG; its output, the kernel's log lines and rc.
step() {
    op=$1; name=$2; shift 2
    dmesg -c >/dev/null
    say begin "$op" "$name"
    out=$($op "$@" 2>&1); rc=$?
    printf '%s\n' "$out" | while IFS= read -r line; do [ -n "$line" ] && say out "$name" "$line"; done
    dmesg -c | while IFS= read -r line; do say kmsg "$name" "$line"; done
    say "$op" "$name" "rc=$rc"
}
say start "$(uname -r)"
"#,
    );
    for (i, load) in loads.iter().enumerate() {
        s.push_str(&format!("step insmod {} {}; ok_{i}=$rc\n", quote(&load.name), quote(&load.path)));
    }
    for (i, load) in loads.iter().enumerate().rev().filter(|(_, l)| l.role == Role::Tested) {
        s.push_str(&format!("if [ \"$ok_{i}\" = 0 ]; then step rmmod {0} {0}; fi\n", quote(&load.name)));
    }
    s.push_str("say done\nsync\npoweroff -f\n");
    s
}

/// Single-quoted for sh.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Insmod,
    Rmmod,
}

/// One step as the guest reported it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    pub op: Op,
    pub name: String,
    pub rc: i32,
    /// What insmod/rmmod printed.
    pub output: Vec<String>,
    /// The kernel's log lines during the step, without their timestamps.
    pub kernel: Vec<String>,
}

/// Everything the guest reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    /// `uname -r` in the guest: the kernel that booted.
    pub kernel_release: Option<String>,
    pub steps: Vec<Step>,
    /// The script reached its end (the kernel did not hang or crash first).
    pub finished: bool,
    /// The step that began and never reported its result: the kernel
    /// crashed or hung in it.
    pub interrupted: Option<(Op, String)>,
}

/// Read the marker lines out of the console output.
pub fn parse(console: &str) -> Transcript {
    let mut t = Transcript::default();
    let mut output: Vec<(String, String)> = Vec::new();
    let mut kernel: Vec<(String, String)> = Vec::new();
    for line in console.lines() {
        let Some(at) = line.find(MARKER) else { continue };
        let rest = line[at + MARKER.len()..].trim_end_matches('\r').trim_start();
        let (word, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        match word {
            "start" => t.kernel_release = Some(rest.trim().to_owned()),
            "begin" => {
                let op = match rest.split_once(' ') {
                    Some(("insmod", name)) => Some((Op::Insmod, name)),
                    Some(("rmmod", name)) => Some((Op::Rmmod, name)),
                    _ => None,
                };
                t.interrupted = op.map(|(op, name)| (op, name.trim().to_owned()));
            }
            "done" => t.finished = true,
            "out" | "kmsg" => {
                let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let text = if word == "kmsg" { strip_timestamp(text) } else { text };
                let list = if word == "out" { &mut output } else { &mut kernel };
                list.push((name.to_owned(), text.to_owned()));
            }
            "insmod" | "rmmod" => {
                let Some((name, rc)) = rest.rsplit_once(" rc=") else { continue };
                let Ok(rc) = rc.trim().parse() else { continue };
                let take = |list: &mut Vec<(String, String)>| -> Vec<String> {
                    let (mine, others) = std::mem::take(list).into_iter().partition(|(n, _)| n == name);
                    *list = others;
                    mine.into_iter().map(|(_, text)| text).collect()
                };
                let op = if word == "insmod" { Op::Insmod } else { Op::Rmmod };
                if t.interrupted.as_ref().is_some_and(|(o, n)| *o == op && n == name) {
                    t.interrupted = None;
                }
                t.steps.push(Step {
                    op,
                    name: name.to_owned(),
                    rc,
                    output: take(&mut output),
                    kernel: take(&mut kernel),
                });
            }
            _ => {}
        }
    }
    t
}

/// `[    1.234567] hello: loaded` → `hello: loaded`.
pub(crate) fn strip_timestamp(line: &str) -> &str {
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix('[') {
        if let Some((stamp, text)) = rest.split_once(']') {
            if stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.') {
                return text.trim_start();
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_loads_in_order_and_unloads_the_tested_modules_in_reverse() {
        let loads = [
            Load { name: "videodev".into(), path: "/lib/modules/k/kernel/videodev.ko".into(), role: Role::Dependency },
            Load { name: "a".into(), path: "/test/a.ko".into(), role: Role::Tested },
            Load { name: "b".into(), path: "/test/it's.ko".into(), role: Role::Tested },
        ];
        let s = init_script(&loads);
        assert!(s.starts_with("#!/bin/busybox sh\n"));
        let at = |needle: &str| s.find(needle).unwrap_or_else(|| panic!("{needle} not in\n{s}"));
        assert!(at("step insmod 'videodev'") < at("step insmod 'a' '/test/a.ko'; ok_1=$rc"));
        assert!(at("step insmod 'a'") < at(r"step insmod 'b' '/test/it'\''s.ko'; ok_2=$rc"));
        assert!(at("step rmmod 'b' 'b'") < at("step rmmod 'a' 'a'"));
        assert!(!s.contains("rmmod 'videodev'"));
        assert!(at("say done") < at("poweroff -f"));
    }

    #[test]
    fn parses_the_markers_between_kernel_noise() {
        let console = "\
[    0.000000] Linux version 6.1.0-1-amd64\r
@@hermod-boot@@ start 6.1.0-1-amd64\r
@@hermod-boot@@ kmsg videodev [    1.100000] videodev: Linux video capture interface: v2.00\r
@@hermod-boot@@ insmod videodev rc=0\r
@@hermod-boot@@ out hello insmod: can't insert '/test/hello.ko': invalid module format\r
@@hermod-boot@@ kmsg hello [    1.200000] hello: disagrees about version of symbol module_layout\r
@@hermod-boot@@ insmod hello rc=1\r
garbage [  1.3] random kernel line @@hermod-boot@@ kmsg other [    1.300000] other: hi\r
@@hermod-boot@@ insmod other rc=0\r
@@hermod-boot@@ rmmod other rc=0\r
@@hermod-boot@@ done\r
";
        let t = parse(console);
        assert_eq!(t.kernel_release.as_deref(), Some("6.1.0-1-amd64"));
        assert!(t.finished);
        assert_eq!(t.interrupted, None);
        assert_eq!(t.steps.len(), 4);
        assert_eq!(t.steps[0].kernel, ["videodev: Linux video capture interface: v2.00"]);
        let hello = &t.steps[1];
        assert_eq!((hello.op, hello.name.as_str(), hello.rc), (Op::Insmod, "hello", 1));
        assert_eq!(hello.output, ["insmod: can't insert '/test/hello.ko': invalid module format"]);
        assert_eq!(hello.kernel, ["hello: disagrees about version of symbol module_layout"]);
        assert_eq!(t.steps[2].kernel, ["other: hi"]);
        assert_eq!((t.steps[3].op, t.steps[3].rc), (Op::Rmmod, 0));
        assert!(t.steps[3].kernel.is_empty());
    }

    #[test]
    fn a_guest_that_never_finished_says_so() {
        let t = parse(
            "@@hermod-boot@@ start 6.1.0-1-amd64\n@@hermod-boot@@ begin insmod a\n@@hermod-boot@@ insmod a rc=0\n\
             @@hermod-boot@@ begin insmod b\n[    1.8] Kernel panic - not syncing: b\n",
        );
        assert!(!t.finished);
        assert_eq!(t.steps.len(), 1);
        assert_eq!(t.interrupted, Some((Op::Insmod, "b".to_owned())), "b began and never ended");
        assert_eq!(parse(""), Transcript::default());
        // A torn or foreign marker line is ignored, not misread.
        assert!(parse("@@hermod-boot@@ insmod a rc=x\n").steps.is_empty());
    }
}
