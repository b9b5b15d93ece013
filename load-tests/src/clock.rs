//! Wall-clock timestamps shared between processes, open-loop schedules and a small RNG.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch (the same clock in every process on the machine).
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    wall_ns() / 1_000_000
}

/// Microseconds elapsed since a wall-clock timestamp in nanoseconds (0 if it lies in the future).
pub fn us_since_wall(ns: u64) -> u64 {
    wall_ns().saturating_sub(ns) / 1_000
}

/// Microseconds in a duration, saturating.
pub fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Seconds (fractional) to a `Duration`, clamped to `[0, max]`.
pub fn secs(s: f64, max: Duration) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::from_secs_f64(s).min(max)
    } else {
        Duration::ZERO
    }
}

/// Maps monotonic instants to wall-clock nanoseconds, so that an intended send time can be
/// embedded in a payload and compared with the receive time, possibly in another task.
#[derive(Clone, Copy, Debug)]
pub struct Anchor {
    inst: Instant,
    wall: u64,
}

impl Anchor {
    /// Anchors now.
    pub fn now() -> Self {
        Self {
            inst: Instant::now(),
            wall: wall_ns(),
        }
    }

    /// The wall-clock nanoseconds of `t` (which should not precede the anchor).
    pub fn wall_ns_of(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.inst);
        self.wall
            .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// An open-loop schedule: event `k` is due at `start + offset + k * interval`.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    start: Instant,
    interval: Duration,
}

impl Schedule {
    /// A schedule of `rate` events per second starting at `start` (rate must be > 0).
    pub fn new(start: Instant, rate: f64, offset_fraction: f64) -> Self {
        let interval = Duration::from_secs_f64(1.0 / rate.max(1e-6));
        let offset = interval.mul_f64(offset_fraction.clamp(0.0, 1.0));
        Self {
            start: start + offset,
            interval,
        }
    }

    /// When event `k` is due.
    pub fn due(&self, k: u64) -> Instant {
        let k = u32::try_from(k).unwrap_or(u32::MAX);
        self.start + self.interval.saturating_mul(k)
    }
}

/// xorshift64*: fast, seedable, good enough to pick targets uniformly.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced by a constant).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        let n64 = u64::try_from(n.max(1)).unwrap_or(u64::MAX);
        usize::try_from(self.next_u64() % n64).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_linear() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 1000.0, 0.0);
        assert_eq!(s.due(0), t0);
        assert_eq!(s.due(10) - t0, Duration::from_millis(10));
    }

    #[test]
    fn rng_stays_in_range() {
        let mut r = Rng::new(7);
        assert!((0..1000).all(|_| r.below(13) < 13));
    }
}
