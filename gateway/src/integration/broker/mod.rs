//! Broker integrations: a route publishes its events to NATS (JetStream or core), RabbitMQ or a
//! Redis stream, and an event counts as delivered only once the broker acknowledged it. One
//! client per broker URL per gateway ([`Brokers`]), connected on first use (a broker that is
//! down at startup does not stop the gateway), with a bounded number of publishes in flight.
//! See `docs/brokers.md`.

mod headers;
mod nats;
mod rabbitmq;
mod redis_stream;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use super::{Integration, IntegrationError, IntegrationResponse};
use crate::config::{IntegrationConfig, StageConfig, substitute_stage_variables};

/// Why a broker did not take a message.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No connection to the broker.
    #[error("{broker}: not connected: {message}")]
    Connect {
        /// `nats`, `rabbitmq` or `redis_stream`.
        broker: &'static str,
        /// What failed.
        message: String,
    },
    /// Sending the message or reading the acknowledgement failed.
    #[error("{broker}: publish failed: {message}")]
    Publish {
        /// `nats`, `rabbitmq` or `redis_stream`.
        broker: &'static str,
        /// What failed.
        message: String,
    },
    /// No acknowledgement within the route's `timeout` (the wait for a slot included). Not
    /// [`IntegrationError::Timeout`]: the client gets "Internal server error", as for any
    /// publish that failed, since the message may or may not have been stored.
    #[error("{broker}: no acknowledgement within {after:?}")]
    Timeout {
        /// `nats`, `rabbitmq` or `redis_stream`.
        broker: &'static str,
        /// The route's `timeout`.
        after: Duration,
    },
    /// The broker answered, but did not take the message (a nack, an unroutable message
    /// returned, no stream for the subject).
    #[error("{broker}: message refused: {message}")]
    Refused {
        /// `nats`, `rabbitmq` or `redis_stream`.
        broker: &'static str,
        /// What the broker said.
        message: String,
    },
}

/// The broker clients of one gateway, one per URL, shared by every route and stage that names
/// the URL.
#[derive(Debug, Default)]
pub(crate) struct Brokers {
    nats: Mutex<HashMap<String, Arc<nats::Link>>>,
    rabbitmq: Mutex<HashMap<String, Arc<rabbitmq::Link>>>,
    redis: Mutex<HashMap<String, Arc<redis_stream::Link>>>,
}

/// The link for `url` in `links`, made by `make` the first time; a later route with a larger
/// `max_in_flight` raises the bound.
fn link<L: Bounded>(
    links: &Mutex<HashMap<String, Arc<L>>>,
    url: &str,
    max_in_flight: usize,
    make: impl FnOnce() -> L,
) -> Arc<L> {
    let mut links = links
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let link = links
        .entry(url.to_owned())
        .or_insert_with(|| Arc::new(make()));
    link.slots().raise(max_in_flight);
    Arc::clone(link)
}

/// A link with a bound on publishes in flight.
trait Bounded {
    fn slots(&self) -> &Slots;
}

/// Publishes in flight on one link: at most `max` at once; more wait (within their timeout).
#[derive(Debug)]
pub(super) struct Slots {
    semaphore: Semaphore,
    max: Mutex<usize>,
}

impl Slots {
    fn new(max: usize) -> Self {
        Self {
            semaphore: Semaphore::new(max),
            max: Mutex::new(max),
        }
    }

    fn raise(&self, to: usize) {
        let mut max = self
            .max
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if to > *max {
            self.semaphore.add_permits(to - *max);
            *max = to;
        }
    }
}

/// Runs `publish` in one of `slots`, all within `timeout` (the wait for a slot included).
async fn bounded<T>(
    broker: &'static str,
    slots: &Slots,
    timeout: Duration,
    publish: impl Future<Output = Result<T, BrokerError>>,
) -> Result<T, IntegrationError> {
    let run = async {
        // The semaphore is never closed.
        let _slot = slots.semaphore.acquire().await;
        publish.await
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(IntegrationError::Broker(error)),
        Err(_) => Err(IntegrationError::Broker(BrokerError::Timeout {
            broker,
            after: timeout,
        })),
    }
}

/// What a broker integration answers once the broker took the message: 200 without a body, so
/// a two-way route sends nothing back and `$connect` accepts.
fn accepted() -> IntegrationResponse {
    IntegrationResponse {
        status: 200,
        ..IntegrationResponse::default()
    }
}

/// The integration for a broker `config` on one stage.
///
/// # Errors
/// A missing stage variable (config validation reports these first), or `config` is not a
/// broker's.
pub(super) fn build(
    config: &IntegrationConfig,
    stage: &StageConfig,
    brokers: &Brokers,
) -> Result<Arc<dyn Integration>, String> {
    let vars = &stage.variables;
    let missing = |name: String| format!("missing stage variable `{name}`");
    match config {
        IntegrationConfig::Nats(c) => substitute_stage_variables(&c.subject, vars)
            .map_err(missing)
            .map(|subject| {
                let link = link(&brokers.nats, &c.url, c.max_in_flight, || {
                    nats::Link::new(&c.url, c.max_in_flight)
                });
                Arc::new(nats::Nats::new(link, subject, c)) as Arc<dyn Integration>
            }),
        IntegrationConfig::Rabbitmq(c) => substitute_stage_variables(&c.routing_key, vars)
            .map_err(missing)
            .map(|routing_key| {
                let link = link(&brokers.rabbitmq, &c.url, c.max_in_flight, || {
                    rabbitmq::Link::new(&c.url, c.max_in_flight)
                });
                Arc::new(rabbitmq::Rabbitmq::new(link, routing_key, c)) as Arc<dyn Integration>
            }),
        IntegrationConfig::RedisStream(c) => substitute_stage_variables(&c.stream, vars)
            .map_err(missing)
            .map(|stream| {
                let link = link(&brokers.redis, &c.url, c.max_in_flight, || {
                    redis_stream::Link::new(&c.url, c.max_in_flight)
                });
                Arc::new(redis_stream::RedisStream::new(link, stream, c)) as Arc<dyn Integration>
            }),
        _ => Err("not a broker integration".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_publish_waits_for_a_slot_within_its_timeout() {
        let slots = Slots::new(1);
        let held = slots.semaphore.acquire().await.expect("open");
        let started = tokio::time::Instant::now();
        let waited = bounded("nats", &slots, Duration::from_secs(2), async { Ok(()) }).await;
        assert!(matches!(
            waited,
            Err(IntegrationError::Broker(BrokerError::Timeout {
                broker: "nats",
                ..
            }))
        ));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        drop(held);
        bounded("nats", &slots, Duration::from_secs(2), async { Ok(()) })
            .await
            .expect("a free slot");
        // A later route with a larger bound raises it.
        slots.raise(3);
        let held: Vec<_> =
            futures_util::future::join_all((0..3).map(|_| slots.semaphore.acquire())).await;
        assert_eq!(held.len(), 3);
    }
}
