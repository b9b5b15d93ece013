//! Process statistics from /proc: resident memory (VmRSS) and CPU time.

use serde::{Deserialize, Serialize};

/// Resident set size of `pid` in KiB, from `/proc/PID/status` (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// User + system CPU time of `pid` in clock ticks, from `/proc/PID/stat`.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    Some(ut + st)
}

/// Clock ticks per second used by /proc (USER_HZ, 100 on Linux).
pub const TICKS_PER_SEC: f64 = 100.0;

/// RSS and CPU of a set of processes at one moment.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct ProcSnap {
    /// Sum of VmRSS, KiB.
    pub rss_kib: u64,
    /// Sum of user + system CPU, seconds.
    pub cpu_s: f64,
    /// How many of the processes could be read.
    pub readable: usize,
}

/// Sums RSS and CPU over `pids`.
pub fn snap(pids: &[u32]) -> ProcSnap {
    let mut out = ProcSnap::default();
    for &pid in pids {
        if let (Some(r), Some(c)) = (rss_kib(pid), cpu_ticks(pid)) {
            out.rss_kib += r;
            // Tick counts stay far below 2^52, so the conversion is exact.
            #[allow(clippy::cast_precision_loss)]
            let c = c as f64;
            out.cpu_s += c / TICKS_PER_SEC;
            out.readable += 1;
        }
    }
    out
}

/// Linux kernel release, for the report.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap_or(0) > 0);
        assert!(cpu_ticks(me).is_some());
        assert_eq!(snap(&[me]).readable, 1);
    }
}
