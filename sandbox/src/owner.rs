//! Which process made a thing, in a form that survives pid reuse.
//!
//! A hermod killed with SIGKILL cannot remove what it made: its sandbox's
//! cgroups, its staging directories in the store. The next run may, but only
//! if it can tell a dead creator from a live one. A pid alone cannot: pids
//! are reused. So each such name carries an [`Owner`] tag
//! `o<pid>.<start>.<pidns>`: the pid, the process's start time (field 22 of
//! `/proc/<pid>/stat`, clock ticks since boot, which a reused pid does not
//! share) and the inode of its pid namespace. A tag is judged only by a
//! process of the same pid namespace (where the pid means the same process);
//! a tag from another namespace is never called dead.

use std::fs;
use std::sync::Mutex;

/// The creator of a cgroup or staging directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// Start time in clock ticks after boot (`/proc/<pid>/stat` field 22).
    pub start: u64,
    /// Inode of the pid namespace the pid belongs to.
    pub pidns: u64,
}

impl Owner {
    /// This process. Read from `/proc` once per process (every sandbox's
    /// group name carries it: two reads per start were measurable); a
    /// forked child, with another pid, reads its own.
    pub fn me() -> Owner {
        static ME: Mutex<Option<Owner>> = Mutex::new(None);
        let pid = std::process::id();
        let mut me = ME.lock().unwrap_or_else(|p| p.into_inner());
        match *me {
            Some(owner) if owner.pid == pid => owner,
            _ => {
                let owner = Owner { pid, start: start_time(pid).unwrap_or(0), pidns: own_pidns() };
                *me = Some(owner);
                owner
            }
        }
    }

    /// The tag put into names: `o<pid>.<start>.<pidns>`.
    pub fn tag(&self) -> String {
        format!("o{}.{}.{}", self.pid, self.start, self.pidns)
    }

    /// The tag found among the `-`-separated parts of `name`, if any.
    pub fn in_name(name: &str) -> Option<Owner> {
        name.split('-').find_map(|part| {
            let mut fields = part.strip_prefix('o')?.split('.');
            let owner = Owner {
                pid: fields.next()?.parse().ok()?,
                start: fields.next()?.parse().ok()?,
                pidns: fields.next()?.parse().ok()?,
            };
            fields.next().is_none().then_some(owner)
        })
    }

    /// Certainly gone: a process of our pid namespace that no longer runs
    /// (its pid is free, or now names a process started at another time).
    /// Anything uncertain — another namespace, an unreadable `/proc` — is
    /// not dead.
    pub fn is_dead(&self) -> bool {
        if self.pidns != own_pidns() || self.pidns == 0 {
            return false;
        }
        match fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(_) => false,
            Ok(stat) => parse_start(&stat).is_some_and(|start| start != self.start),
        }
    }
}

/// `/proc/<pid>/stat`'s field 22 (after the command name, which may hold
/// spaces and parentheses: counted from the last `)`).
fn parse_start(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields 3, 4, … follow; field 22 is the 20th of them.
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn start_time(pid: u32) -> Option<u64> {
    parse_start(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn own_pidns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self/ns/pid").map(|m| m.ino()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_inside_names() {
        let me = Owner::me();
        assert!(me.start > 0 && me.pidns > 0);
        assert_eq!(Owner::in_name(&format!("build-{}-Ab3xY9", me.tag())), Some(me));
        assert_eq!(Owner::in_name(&format!("hermod-{}-7", me.tag())), Some(me));
        assert_eq!(Owner::in_name("build-Ab3xY9"), None);
        assert_eq!(Owner::in_name("hermod-1234-7"), None, "an untagged name has no owner to judge");
        assert_eq!(Owner::in_name("o1.2.3.4"), None);
    }

    #[test]
    fn a_live_owner_is_alive_and_a_reused_or_free_pid_is_dead() {
        let me = Owner::me();
        assert!(!me.is_dead(), "this process");
        assert!(Owner { start: me.start + 1, ..me }.is_dead(), "the pid now names another process");
        // A pid above pid_max is never in use.
        assert!(Owner { pid: 4_194_304 + 1, ..me }.is_dead());
        assert!(!Owner { pid: 4_194_304 + 1, pidns: me.pidns + 1, ..me }.is_dead(), "another namespace");
    }

    #[test]
    fn the_start_time_is_counted_from_the_last_parenthesis() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start(stat), Some(987654));
        assert_eq!(parse_start("garbage"), None);
    }
}
