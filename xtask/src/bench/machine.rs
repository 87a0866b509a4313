//! The machine a run was on, for the report: CPU, cores, load, toolchain, commit, Redis, date.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::cmd;

/// What the report says about the machine and the code.
pub(super) struct Machine {
    model: String,
    cores: usize,
    load_start: String,
    load_end: String,
    rustc: String,
    commit: String,
    dirty: bool,
    redis_url: String,
    date: String,
}

impl Machine {
    /// Reads the machine now (the end of the run); `load_start` is [`load_average`] at its
    /// start, `root` the workspace (for its commit).
    pub(super) fn probe(root: &Path, redis_url: &str, load_start: String) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown", |(_, m)| m.trim())
            .to_owned();
        let load_end = load_average();
        let rustc = cmd::read(Command::new("rustc").arg("-V")).unwrap_or_default();
        let date =
            cmd::read(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])).unwrap_or_default();
        let git = |args: &[&str]| cmd::read(Command::new("git").current_dir(root).args(args));
        let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_default();
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
            .is_ok_and(|s| !s.trim().is_empty());
        Machine {
            model,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_start,
            load_end,
            rustc: rustc.trim().to_owned(),
            commit: commit.trim().to_owned(),
            dirty,
            redis_url: redis_url.to_owned(),
            date: date.trim().to_owned(),
        }
    }

    /// The report's machine table.
    pub(super) fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| | |\n|---|---|");
        let _ = writeln!(out, "| CPU model (`/proc/cpuinfo`) | {} |", self.model);
        let _ = writeln!(out, "| cores (available parallelism) | {} |", self.cores);
        let _ = writeln!(
            out,
            "| 1-minute load average (`/proc/loadavg`) | {} at the start, {} at the end |",
            self.load_start, self.load_end
        );
        let _ = writeln!(out, "| rustc | {} |", self.rustc);
        let _ = writeln!(
            out,
            "| code | commit `{}`{} |",
            self.commit,
            if self.dirty {
                " + uncommitted changes in the tree"
            } else {
                ""
            }
        );
        let _ = writeln!(out, "| Redis | {} |", redact(&self.redis_url));
        let _ = writeln!(out, "| date | {} |", self.date);
        out
    }
}

/// `url` without its credentials.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!(
                "{}://…@{}",
                url.get(..scheme).unwrap_or(""),
                url.get(at + 1..).unwrap_or("")
            )
        }
        _ => url.to_owned(),
    }
}

/// The 1-minute load average, `?` where `/proc/loadavg` cannot be read.
pub(super) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_credentials() {
        assert_eq!(redact("redis://:pw@h:1"), "redis://…@h:1");
        assert_eq!(redact("redis://u:p@ss@h:1"), "redis://…@h:1");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn table_lists_the_machine() {
        let machine = Machine {
            model: "Some CPU @ 2.10GHz".to_owned(),
            cores: 2,
            load_start: "0.50".to_owned(),
            load_end: "1.75".to_owned(),
            rustc: "rustc 1.91.0".to_owned(),
            commit: "99377dc".to_owned(),
            dirty: true,
            redis_url: "redis://:secret@127.0.0.1:6379".to_owned(),
            date: "2026-12-05 10:00 UTC".to_owned(),
        };
        assert_eq!(
            machine.table(),
            "| | |\n|---|---|\n\
             | CPU model (`/proc/cpuinfo`) | Some CPU @ 2.10GHz |\n\
             | cores (available parallelism) | 2 |\n\
             | 1-minute load average (`/proc/loadavg`) | 0.50 at the start, 1.75 at the end |\n\
             | rustc | rustc 1.91.0 |\n\
             | code | commit `99377dc` + uncommitted changes in the tree |\n\
             | Redis | redis://…@127.0.0.1:6379 |\n\
             | date | 2026-12-05 10:00 UTC |\n"
        );
    }

    #[test]
    fn probing_reads_this_machine() {
        let machine = Machine::probe(&crate::workspace_root(), "redis://h:1", "0.1".to_owned());
        assert!(machine.cores > 0);
        assert!(machine.rustc.starts_with("rustc "), "{}", machine.rustc);
        assert!(machine.table().contains("| Redis | redis://h:1 |"));
    }
}
