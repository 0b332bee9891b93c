//! CPU time of processes (Linux `/proc`), so a run can report what a request cost the server and
//! the database: on a shared machine that figure holds steady where throughput does not.

use anyhow::{bail, Context, Result};
use std::str::FromStr;

/// `/proc`'s unit for `utime` and `stime` (`USER_HZ`, 100 on every Linux architecture).
const TICKS_PER_SECOND: f64 = 100.0;

/// A process whose CPU time a run reports (`LABEL=PID`), its live children counted with it:
/// PostgreSQL's backends and background workers are the postmaster's children.
#[derive(Clone, Debug)]
pub struct Watched {
    pub label: String,
    pub pid: u32,
}

impl FromStr for Watched {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let Some((label, pid)) = s.split_once('=') else {
            bail!("expected LABEL=PID, got {s:?}");
        };
        let pid = pid.parse().with_context(|| format!("pid of {label:?}"))?;
        Ok(Watched {
            label: label.to_string(),
            pid,
        })
    }
}

/// CPU seconds used so far by `pid` and its children, live or exited (0 for a process that is
/// gone): a child that exits moves its time from the live scan to its parent's `cutime`.
pub fn seconds(pid: u32) -> f64 {
    let own = stat(pid).map_or(0, |s| s.ticks + s.reaped_children_ticks);
    let children: u64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .filter(|s| s.parent == pid)
        .map(|s| s.ticks)
        .sum();
    (own + children) as f64 / TICKS_PER_SECOND
}

struct Stat {
    parent: u32,
    ticks: u64,
    reaped_children_ticks: u64,
}

/// `/proc/PID/stat`: after the command name (in parentheses, which may hold spaces) come the
/// state, the parent pid, … `utime`, `stime`, `cutime`, `cstime` (fields 14–17 of the line).
fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Stat {
        parent: u32::try_from(field(1)?).ok()?,
        ticks: field(11)? + field(12)?,
        reaped_children_ticks: field(13)? + field(14)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_spent_cpu() {
        let spin = std::time::Instant::now();
        while spin.elapsed().as_millis() < 50 {
            std::hint::black_box(spin.elapsed());
        }
        assert!(seconds(std::process::id()) >= 0.04);
        assert_eq!(seconds(u32::MAX), 0.0);
    }

    #[test]
    fn watched_parses_label_and_pid() {
        let w: Watched = "postgres=42".parse().unwrap();
        assert_eq!((w.label.as_str(), w.pid), ("postgres", 42));
        assert!("postgres".parse::<Watched>().is_err());
        assert!("postgres=x".parse::<Watched>().is_err());
    }
}
