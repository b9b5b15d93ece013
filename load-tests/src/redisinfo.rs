//! Redis cost readings: `INFO all` (commands processed, CPU, per-command calls) read over one
//! short-lived connection, and the difference of two readings.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Longest `INFO all` answer read.
const MAX_INFO: usize = 1 << 20;

/// One reading of the counters that grow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RedisCounters {
    /// `total_commands_processed` (INFO stats).
    pub commands: u64,
    /// `used_cpu_sys + used_cpu_user` (INFO cpu), seconds.
    pub cpu_s: f64,
    /// `cmdstat_<name>` calls (INFO commandstats).
    pub calls: BTreeMap<String, u64>,
}

impl RedisCounters {
    /// What grew from `earlier` to `self` (counters reset by a restart count as 0).
    pub fn since(&self, earlier: &Self) -> Self {
        let calls = self
            .calls
            .iter()
            .map(|(k, v)| {
                let before = earlier.calls.get(k).copied().unwrap_or(0);
                (k.clone(), v.saturating_sub(before))
            })
            .filter(|(_, v)| *v > 0)
            .collect();
        Self {
            commands: self.commands.saturating_sub(earlier.commands),
            cpu_s: (self.cpu_s - earlier.cpu_s).max(0.0),
            calls,
        }
    }
}

/// Parses the text of an `INFO` answer.
pub fn parse_info(text: &str) -> RedisCounters {
    let mut out = RedisCounters::default();
    let mut cpu = 0.0;
    for line in text.lines() {
        let Some((key, value)) = line.trim_end().split_once(':') else {
            continue;
        };
        match key {
            "total_commands_processed" => out.commands = value.parse().unwrap_or(0),
            "used_cpu_sys" | "used_cpu_user" => cpu += value.parse::<f64>().unwrap_or(0.0),
            _ => {
                if let Some(name) = key.strip_prefix("cmdstat_") {
                    let calls = value
                        .split(',')
                        .find_map(|f| f.strip_prefix("calls="))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    out.calls.insert(name.to_owned(), calls);
                }
            }
        }
    }
    out.cpu_s = cpu;
    out
}

/// Reads `INFO all` from the Redis at `addr` (loopback only; bounded by a 2 s timeout).
pub async fn read(addr: SocketAddr) -> Option<RedisCounters> {
    crate::net::ensure_loopback(&addr).ok()?;
    let fut = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"*2\r\n$4\r\nINFO\r\n$3\r\nall\r\n")
            .await
            .ok()?;
        let mut buf = Vec::with_capacity(16 * 1024);
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(body) = bulk(&buf) {
                return Some(parse_info(std::str::from_utf8(body).ok()?));
            }
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 || buf.len() > MAX_INFO {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    timeout(Duration::from_secs(2), fut).await.ok().flatten()
}

/// The payload of a complete RESP bulk string at the start of `buf`.
fn bulk(buf: &[u8]) -> Option<&[u8]> {
    let rest = buf.strip_prefix(b"$")?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    let len: usize = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    rest.get(end + 2..end + 2 + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_subtracts() {
        let a = parse_info(
            "# Stats\r\ntotal_commands_processed:100\r\n# CPU\r\nused_cpu_sys:1.5\r\nused_cpu_user:2.25\r\n\
             # Commandstats\r\ncmdstat_xrange:calls=4,usec=40,usec_per_call=10.00\r\ncmdstat_evalsha:calls=9,usec=1\r\n",
        );
        assert_eq!(a.commands, 100);
        assert!((a.cpu_s - 3.75).abs() < 1e-9);
        assert_eq!(a.calls["xrange"], 4);
        let mut b = a.clone();
        b.commands = 130;
        b.cpu_s = 4.0;
        b.calls.insert("xrange".into(), 10);
        let d = b.since(&a);
        assert_eq!(d.commands, 30);
        assert!((d.cpu_s - 0.25).abs() < 1e-9);
        assert_eq!(d.calls, BTreeMap::from([("xrange".to_owned(), 6)]));
        assert_eq!(bulk(b"$3\r\nabc\r\n"), Some(&b"abc"[..]));
        assert_eq!(bulk(b"$5\r\nabc"), None);
    }
}
