//! What the soak samples besides its own counters (the gateways' RSS and open fds from /proc,
//! Redis `used_memory` from `INFO memory`), and its verdict: RSS and fds flat after warm-up.
//!
//! Flat means: the least-squares line through the post-warm-up samples rises over the window
//! by no more than the noise around it (3 standard deviations of the residuals) plus a small
//! floor (2 % of the mean for RSS, 16 fds), so allocator jitter and a few connections more or
//! less pass, and steady growth fails. The gateway exposes no task count, so none is sampled.

use crate::procfs::rss_kib;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::faults::Sample;

/// Reads the sampled processes and Redis.
pub struct Probe {
    pids: Vec<u32>,
    redis: Option<SocketAddr>,
}

/// One reading.
#[derive(Clone, Copy, Debug, Default)]
pub struct Probed {
    /// Sum of VmRSS, KiB (None without pids or when none could be read).
    pub rss_kib: Option<u64>,
    /// Sum of open fds.
    pub fds: Option<u64>,
    /// Redis `used_memory`, bytes.
    pub redis_used_memory: Option<u64>,
}

impl Probe {
    /// A probe of `pids` and the Redis at `redis` (loopback only).
    pub fn new(pids: Vec<u32>, redis: Option<SocketAddr>) -> Self {
        let redis = redis.filter(|a| crate::net::ensure_loopback(a).is_ok());
        Self { pids, redis }
    }

    /// Reads everything it can now.
    pub async fn read(&self) -> Probed {
        let mut out = Probed::default();
        if !self.pids.is_empty() {
            let rss: Vec<u64> = self.pids.iter().filter_map(|&p| rss_kib(p)).collect();
            out.rss_kib = (!rss.is_empty()).then(|| rss.iter().sum());
            let fds: Vec<u64> = self.pids.iter().filter_map(|&p| open_fds(p)).collect();
            out.fds = (!fds.is_empty()).then(|| fds.iter().sum());
        }
        if let Some(addr) = self.redis {
            out.redis_used_memory = redis_used_memory(addr).await;
        }
        out
    }
}

/// Open file descriptors of `pid` (entries of `/proc/PID/fd`).
pub fn open_fds(pid: u32) -> Option<u64> {
    let n = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    u64::try_from(n).ok()
}

/// `used_memory` from `INFO memory` (one short-lived connection, bounded by a 2 s timeout).
pub async fn redis_used_memory(addr: SocketAddr) -> Option<u64> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nmemory\r\n")
            .await
            .ok()?;
        let mut buf = Vec::with_capacity(8192);
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 || buf.len() > 64 * 1024 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(v) = parse_used_memory(&buf) {
                return Some(v);
            }
        }
        parse_used_memory(&buf)
    };
    timeout(Duration::from_secs(2), fut).await.ok().flatten()
}

fn parse_used_memory(buf: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(buf).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The flatness check of one series.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Trend {
    /// Samples after warm-up.
    pub samples: usize,
    /// Mean of the samples.
    pub mean: f64,
    /// Rise of the fitted line over the window (slope × span).
    pub rise: f64,
    /// Allowed rise: 3 × residual standard deviation + the floor.
    pub allowed: f64,
    /// `rise <= allowed`.
    pub flat: bool,
}

/// The soak's verdict.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SoakVerdict {
    /// Warm-up excluded, seconds.
    pub warmup_s: f64,
    /// RSS of the gateways, KiB.
    pub rss_kib: Option<Trend>,
    /// Open fds of the gateways.
    pub fds: Option<Trend>,
    /// Redis `used_memory`, bytes (reported, not judged: Redis frees lazily).
    pub redis_used_memory: Option<Trend>,
    /// Every judged series is flat.
    pub passed: bool,
}

/// Least-squares trend of `(t, y)` points with the given floor.
pub fn trend(points: &[(f64, f64)], floor: f64) -> Option<Trend> {
    if points.len() < 3 {
        return None;
    }
    #[allow(clippy::cast_precision_loss)]
    let n = points.len() as f64;
    let mt = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mt).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mt) * (p.1 - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let resid = points
        .iter()
        .map(|p| (p.1 - (my + slope * (p.0 - mt))).powi(2))
        .sum::<f64>()
        / n;
    let span = points[points.len() - 1].0 - points[0].0;
    let rise = slope * span;
    let allowed = 3.0 * resid.sqrt() + floor;
    Some(Trend {
        samples: points.len(),
        mean: my,
        rise,
        allowed,
        flat: rise <= allowed,
    })
}

/// The verdict over a timeline that started at `start_ms`.
pub fn verdict(timeline: &[Sample], start_ms: u64, warmup_s: f64) -> SoakVerdict {
    let after = |f: fn(&Sample) -> Option<u64>| -> Vec<(f64, f64)> {
        timeline
            .iter()
            .filter_map(|s| {
                #[allow(clippy::cast_precision_loss)]
                let t = s.t_ms.saturating_sub(start_ms) as f64 / 1000.0;
                #[allow(clippy::cast_precision_loss)]
                f(s).filter(|_| t >= warmup_s).map(|v| (t, v as f64))
            })
            .collect()
    };
    // The last row is taken after the connections closed: not part of the steady state.
    let steady = |mut v: Vec<(f64, f64)>| {
        v.pop();
        v
    };
    let rss = steady(after(|s| s.rss_kib));
    let rss_floor = rss.iter().map(|p| p.1).sum::<f64>() / rss.len().max(1) as f64 * 0.02;
    let rss_kib = trend(&rss, rss_floor);
    let fds = trend(&steady(after(|s| s.fds)), 16.0);
    let redis_used_memory = trend(&steady(after(|s| s.redis_used_memory)), 0.0);
    let passed = rss_kib.as_ref().is_none_or(|t| t.flat) && fds.as_ref().is_none_or(|t| t.flat);
    SoakVerdict {
        warmup_s,
        rss_kib,
        fds,
        redis_used_memory,
        passed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_noise_passes_and_growth_fails() {
        let noisy: Vec<(f64, f64)> = (0..60)
            .map(|i| {
                (
                    f64::from(i) * 10.0,
                    100_000.0 + if i % 2 == 0 { 900.0 } else { -900.0 },
                )
            })
            .collect();
        assert!(trend(&noisy, 0.0).is_some_and(|t| t.flat));
        let growing: Vec<(f64, f64)> = (0..60)
            .map(|i| (f64::from(i) * 10.0, 100_000.0 + f64::from(i) * 500.0))
            .collect();
        assert!(trend(&growing, 2_000.0).is_some_and(|t| !t.flat));
        assert!(trend(&growing[..2], 0.0).is_none());
    }

    #[test]
    fn reads_used_memory() {
        let info = b"$40\r\n# Memory\r\nused_memory:1048576\r\nused_memory_human:1M\r\n";
        assert_eq!(parse_used_memory(info), Some(1_048_576));
        assert!(open_fds(std::process::id()).is_some_and(|n| n > 0));
    }
}
