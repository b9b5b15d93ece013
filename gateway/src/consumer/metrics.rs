//! The consumers' metrics: `wsgate_consumer_messages_total{consumer,outcome}` and
//! `wsgate_consumer_connected{consumer}`.

/// Messages handled, by consumer and outcome.
pub(crate) const MESSAGES_TOTAL: &str = "wsgate_consumer_messages_total";
/// 1 while the consumer is connected to its broker, else 0.
pub(crate) const CONNECTED: &str = "wsgate_consumer_connected";

/// The outcome label.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Count {
    /// Queued for the connection or fanned out.
    Delivered,
    /// The connection was gone (acknowledged or dead-lettered).
    Gone,
    /// No valid address, or refused for good: acknowledged.
    Malformed,
    /// One more attempt after a 429/503 outcome.
    Retried,
    /// Still 429/503 after `max_deliver` attempts: dropped or dead-lettered.
    Dropped,
    /// Sent to the dead-letter destination (also counted as gone or dropped).
    DeadLettered,
}

impl Count {
    fn label(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Gone => "gone",
            Self::Malformed => "malformed",
            Self::Retried => "retried",
            Self::Dropped => "dropped",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

/// Counts one outcome.
pub(crate) fn count(consumer: &str, what: Count) {
    metrics::counter!(MESSAGES_TOTAL, "consumer" => consumer.to_owned(), "outcome" => what.label())
        .increment(1);
}

/// Records whether the consumer is connected.
pub(crate) fn connected(consumer: &str, up: bool) {
    metrics::gauge!(CONNECTED, "consumer" => consumer.to_owned()).set(if up { 1.0 } else { 0.0 });
}

/// Describes the metrics (once per process is enough; repeating is harmless).
pub(crate) fn describe() {
    metrics::describe_counter!(
        MESSAGES_TOTAL,
        "Broker messages handled by consumers, by consumer and outcome"
    );
    metrics::describe_gauge!(
        CONNECTED,
        "1 while a consumer is connected to its broker, else 0"
    );
}
