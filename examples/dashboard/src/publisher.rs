//! The publisher: simulated figures (several series, each a bounded random walk around its own
//! level) posted to the group with one callback per update:
//! `POST /{stage}/@groups/dashboard` with `{"seq": n, "t": epoch_ms, "series": {...}}`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{GROUP, STAGE};

/// Upper bound on one post.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// One simulated series: name, unit, level, spread, lower and upper bound.
const SERIES: [(&str, &str, f64, f64, f64, f64); 4] = [
    ("cpu", "%", 40.0, 4.0, 0.0, 100.0),
    ("memory", "%", 62.0, 1.5, 0.0, 100.0),
    ("requests", "/s", 1200.0, 90.0, 0.0, 5000.0),
    ("latency", "ms", 18.0, 3.0, 1.0, 250.0),
];

/// A small xorshift generator (the figures only need to look alive).
#[derive(Debug)]
struct Noise(u64);

impl Noise {
    /// Uniform in [-1, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // The top 53 bits give an exact f64 in [0, 1).
        #[allow(clippy::cast_precision_loss)]
        let unit = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        unit * 2.0 - 1.0
    }
}

/// The current values of every series.
#[derive(Debug)]
pub struct Figures {
    values: Vec<f64>,
    noise: Noise,
}

impl Default for Figures {
    fn default() -> Self {
        Self {
            values: SERIES.iter().map(|s| s.2).collect(),
            noise: Noise(0x9E37_79B9_7F4A_7C15),
        }
    }
}

impl Figures {
    /// Moves every series one step (a walk pulled back towards its level) and answers them.
    pub fn step(&mut self) -> Map<String, Value> {
        let mut out = Map::new();
        for (value, (name, _, level, spread, low, high)) in self.values.iter_mut().zip(SERIES) {
            let pull = (level - *value) * 0.1;
            *value = (*value + pull + self.noise.next() * spread).clamp(low, high);
            out.insert(name.to_string(), json!((*value * 10.0).round() / 10.0));
        }
        out
    }
}

/// The units of the series, by name (sent with every update, so a page needs nothing else).
pub fn units() -> Map<String, Value> {
    SERIES
        .iter()
        .map(|(name, unit, ..)| (name.to_string(), json!(unit)))
        .collect()
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// Posts an update to the group `rate` times a second.
#[derive(Debug)]
pub struct Publisher {
    http: reqwest::Client,
    url: String,
    period: Duration,
    published: watch::Sender<u64>,
}

impl Publisher {
    /// A publisher posting through the callback API at `callback_base` (`http://host:port`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(callback_base: String, rate: f64) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(POST_TIMEOUT)
            .build()?;
        let rate = if rate.is_finite() {
            rate.clamp(0.1, 100.0)
        } else {
            5.0
        };
        Ok(Self {
            http,
            url: format!(
                "{}/{STAGE}/@groups/{GROUP}",
                callback_base.trim_end_matches('/')
            ),
            period: Duration::from_secs_f64(1.0 / rate),
            published: watch::Sender::new(0),
        })
    }

    /// Watches the number of updates the gateway accepted.
    pub fn published(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Publishes until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut figures = Figures::default();
        let units = units();
        let mut tick = tokio::time::interval(self.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq = 0u64;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let update = json!({
                "seq": seq,
                "t": epoch_ms(),
                "series": figures.step(),
                "units": units,
            });
            seq += 1;
            match self
                .http
                .post(&self.url)
                .body(update.to_string())
                .send()
                .await
            {
                Ok(response) if response.status().is_success() => {
                    self.published.send_modify(|n| *n += 1);
                }
                Ok(response) => {
                    tracing::warn!(status = %response.status(), "the gateway refused an update");
                }
                Err(error) => tracing::warn!(%error, "cannot post an update"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_stay_within_their_bounds() {
        let mut figures = Figures::default();
        for _ in 0..10_000 {
            let step = figures.step();
            assert_eq!(step.len(), SERIES.len());
            for (name, _, _, _, low, high) in SERIES {
                let v = step[name].as_f64().expect("number");
                assert!((low..=high).contains(&v), "{name} = {v}");
            }
        }
        assert_eq!(units()["latency"], "ms");
    }
}
