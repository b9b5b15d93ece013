//! The ordered, bounded pipeline every source feeds: messages are spread over lanes by their
//! order key (connection, group or stage broadcast), each lane delivers one message at a time
//! in arrival order, retrying in place, and settles it with the broker (ack, dead-letter or
//! release) before taking the next. At most `max_in_flight` messages are unsettled at once.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::address::{AddressError, Addressed};
use super::deliver::{Deliverer, Outcome};
use super::metrics::{self, Count};
use crate::config::{ConsumerConfig, consumer_backoff};

/// Most lanes per consumer (more connections share a lane).
const MAX_LANES: usize = 64;

/// How a source settles one message with its broker.
#[async_trait]
pub(crate) trait Settle: Send + 'static {
    /// How many times the broker has delivered it (1 the first time), when it says.
    fn delivered(&self) -> u32 {
        1
    }
    /// Done with it.
    async fn ack(self: Box<Self>);
    /// It can never be delivered: to the dead-letter destination when there is one, else
    /// acknowledged. Answers whether it was dead-lettered.
    async fn reject(self: Box<Self>, reason: &str) -> bool {
        let _ = reason;
        self.ack().await;
        false
    }
    /// Still not delivered after `max_deliver` attempts: [`Settle::reject`] unless the broker
    /// has its own way (SQS leaves it to its redrive policy). Answers whether it was
    /// dead-lettered.
    async fn give_up(self: Box<Self>, reason: &str) -> bool {
        self.reject(reason).await
    }
    /// Not handled (shutdown): left for the broker to deliver again, here or elsewhere.
    async fn release(self: Box<Self>);
}

/// One message read from a broker.
pub(crate) struct Incoming {
    pub(crate) parsed: Result<Addressed, AddressError>,
    pub(crate) settle: Box<dyn Settle>,
}

/// The lanes of one consumer.
pub(crate) struct Lanes {
    name: Arc<str>,
    senders: Vec<mpsc::Sender<Queued>>,
    permits: Arc<Semaphore>,
    malformed_seen: u64,
}

impl Lanes {
    /// Starts the lane tasks on `tasks`; they end when every sender is dropped (queued
    /// messages are released if `stop` is cancelled).
    pub(crate) fn start(
        config: &ConsumerConfig,
        deliverer: &Deliverer,
        stop: &CancellationToken,
        tasks: &mut JoinSet<()>,
    ) -> Self {
        let lanes = config.max_in_flight.min(MAX_LANES);
        let name: Arc<str> = Arc::from(config.name.as_str());
        let mut senders = Vec::with_capacity(lanes);
        for _ in 0..lanes {
            let (tx, rx) = mpsc::channel(config.max_in_flight);
            senders.push(tx);
            tasks.spawn(lane(
                rx,
                Worker {
                    name: Arc::clone(&name),
                    deliverer: deliverer.clone(),
                    max_deliver: config.max_deliver,
                    backoff: config.retry_backoff,
                    stop: stop.clone(),
                },
            ));
        }
        Self {
            name,
            senders,
            permits: Arc::new(Semaphore::new(config.max_in_flight)),
            malformed_seen: 0,
        }
    }

    /// Waits for room (fewer than `max_in_flight` unsettled): call before reading the next
    /// message from the broker.
    pub(crate) async fn reserve(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .unwrap_or_else(|_| unreachable!("the semaphore is never closed"))
    }

    /// Room for one more without waiting, when there is.
    pub(crate) fn try_reserve(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.permits).try_acquire_owned().ok()
    }

    /// Hands a message to its lane. A malformed one is acknowledged here (never retried).
    pub(crate) async fn push(&mut self, incoming: Incoming, permit: OwnedSemaphorePermit) {
        let Incoming { parsed, settle } = incoming;
        let message = match parsed {
            Ok(message) => message,
            Err(error) => {
                self.malformed_seen += 1;
                // Logged at warn for the first few, then at debug: a stream of bad messages
                // must not flood the log.
                if self.malformed_seen <= 10 {
                    tracing::warn!(consumer = %self.name, %error, "message with no valid address acknowledged and dropped");
                } else {
                    tracing::debug!(consumer = %self.name, %error, "message with no valid address acknowledged and dropped");
                }
                metrics::count(&self.name, Count::Malformed);
                settle.ack().await;
                return;
            }
        };
        let lane = BuildHasherDefault::<DefaultHasher>::default().hash_one(message.order_key())
            as usize
            % self.senders.len();
        let queued = Queued {
            message,
            settle,
            _permit: permit,
        };
        if let Err(mpsc::error::SendError(queued)) = self.senders[lane].send(queued).await {
            queued.settle.release().await;
        }
    }
}

struct Worker {
    name: Arc<str>,
    deliverer: Deliverer,
    max_deliver: u32,
    backoff: std::time::Duration,
    stop: CancellationToken,
}

/// A message waiting in its lane, holding its slot of `max_in_flight` until settled.
struct Queued {
    message: Addressed,
    settle: Box<dyn Settle>,
    _permit: OwnedSemaphorePermit,
}

async fn lane(mut rx: mpsc::Receiver<Queued>, worker: Worker) {
    while let Some(queued) = rx.recv().await {
        if worker.stop.is_cancelled() {
            queued.settle.release().await;
            continue;
        }
        worker.handle(&queued.message, queued.settle).await;
    }
}

impl Worker {
    async fn handle(&self, message: &Addressed, settle: Box<dyn Settle>) {
        let mut attempt = settle.delivered().max(1);
        loop {
            match self.deliverer.deliver(message).await {
                Outcome::Delivered => {
                    metrics::count(&self.name, Count::Delivered);
                    settle.ack().await;
                    return;
                }
                Outcome::Gone => {
                    metrics::count(&self.name, Count::Gone);
                    let dead = settle.reject("connection gone").await;
                    if dead {
                        metrics::count(&self.name, Count::DeadLettered);
                    }
                    return;
                }
                Outcome::Rejected(error) => {
                    tracing::warn!(consumer = %self.name, %error, stage = %message.stage, "message refused; acknowledged and dropped");
                    metrics::count(&self.name, Count::Malformed);
                    settle.ack().await;
                    return;
                }
                Outcome::Retry(error) if attempt >= self.max_deliver => {
                    tracing::warn!(consumer = %self.name, %error, attempts = attempt, "message not delivered after max_deliver attempts; dropped");
                    metrics::count(&self.name, Count::Dropped);
                    if settle.give_up(&error.to_string()).await {
                        metrics::count(&self.name, Count::DeadLettered);
                    }
                    return;
                }
                Outcome::Retry(error) => {
                    tracing::debug!(consumer = %self.name, %error, attempt, "delivery to be retried");
                    metrics::count(&self.name, Count::Retried);
                    let pause = consumer_backoff(self.backoff, attempt);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = self.stop.cancelled() => {
                            settle.release().await;
                            return;
                        }
                    }
                    attempt += 1;
                }
            }
        }
    }
}
