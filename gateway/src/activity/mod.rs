//! What this gateway did, counted per gateway (the Prometheus recorder is process-wide): messages
//! in and out, integration calls and their failures per route, refused upgrades and messages,
//! integration latency, and a bounded ring of the most recent errors. The admin page reads it;
//! the message path only adds to atomics (and, on an error, takes the ring's lock once).
//! `latency` is the histogram.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

pub(crate) mod latency;

use self::latency::Histogram;

/// Errors kept in the ring.
pub(crate) const RECENT_ERRORS: usize = 100;
/// Longest error detail kept, in bytes.
const DETAIL_BYTES: usize = 240;

/// A counter kept twice: in the Prometheus recorder and in this gateway's [`Activity`].
#[derive(Debug, Clone)]
pub(crate) struct Counted {
    metric: metrics::Counter,
    local: Arc<AtomicU64>,
}

impl Counted {
    /// `metric`, also added to `local`.
    pub(crate) fn new(metric: metrics::Counter, local: &Arc<AtomicU64>) -> Self {
        Self {
            metric,
            local: Arc::clone(local),
        }
    }

    /// Adds `n`.
    pub(crate) fn increment(&self, n: u64) {
        self.metric.increment(n);
        self.local.fetch_add(n, Ordering::Relaxed);
    }
}

/// One route's calls and failures on this gateway.
#[derive(Debug, Default)]
pub(crate) struct RouteTally {
    /// Integration calls.
    pub calls: AtomicU64,
    /// Answers with a 4xx or 5xx status.
    pub integration_errors: AtomicU64,
    /// Calls without a usable answer.
    pub execution_errors: AtomicU64,
}

/// One entry of the recent-errors ring.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ErrorEvent {
    /// Epoch milliseconds.
    pub at_ms: i64,
    /// `integration` (4xx/5xx answer), `execution` (no usable answer), `refused` (upgrade
    /// refused by a connect check) or `client` (a message refused before its integration).
    pub kind: &'static str,
    /// The stage.
    pub stage: String,
    /// The route key, when one was selected.
    pub route: Option<String>,
    /// The connection, when there was one.
    pub connection_id: Option<String>,
    /// What happened, cut to a few hundred bytes.
    pub detail: String,
}

/// This gateway's activity (see the module docs).
#[derive(Debug)]
pub(crate) struct Activity {
    /// When the gateway started.
    pub started: Instant,
    /// Messages from clients.
    pub messages_in: Arc<AtomicU64>,
    /// Frames written to clients.
    pub messages_out: Arc<AtomicU64>,
    /// Integration answers with 4xx/5xx.
    pub integration_errors: AtomicU64,
    /// Integration calls without a usable answer.
    pub execution_errors: AtomicU64,
    /// Upgrades refused by the connect checks.
    pub refused: AtomicU64,
    /// Messages refused before their integration (no route, throttled).
    pub client_errors: AtomicU64,
    /// Integration latency (mock integrations excluded, as in `IntegrationLatency`).
    pub latency: Histogram,
    recent: Mutex<VecDeque<ErrorEvent>>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            messages_in: Arc::default(),
            messages_out: Arc::default(),
            integration_errors: AtomicU64::new(0),
            execution_errors: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            client_errors: AtomicU64::new(0),
            latency: Histogram::default(),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_ERRORS)),
        }
    }
}

/// What an integration call came to, for [`Activity::call`].
#[derive(Debug)]
pub(crate) enum CallOutcome<'a> {
    /// A usable answer with this status.
    Answered(u16),
    /// No usable answer.
    Failed(&'a (dyn std::error::Error + Send + Sync)),
}

impl Activity {
    /// Records an integration call of `route` (latency `None` for mocks).
    pub(crate) fn call(
        &self,
        route: &RouteTally,
        latency: Option<Duration>,
        outcome: &CallOutcome<'_>,
        at: (&str, &str, &str),
    ) {
        route.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(latency) = latency {
            self.latency.record(latency);
        }
        let (stage, route_key, connection_id) = at;
        let (kind, detail) = match outcome {
            CallOutcome::Answered(status) if *status >= 400 => {
                route.integration_errors.fetch_add(1, Ordering::Relaxed);
                self.integration_errors.fetch_add(1, Ordering::Relaxed);
                ("integration", format!("integration answered {status}"))
            }
            CallOutcome::Answered(_) => return,
            CallOutcome::Failed(error) => {
                route.execution_errors.fetch_add(1, Ordering::Relaxed);
                self.execution_errors.fetch_add(1, Ordering::Relaxed);
                ("execution", error.to_string())
            }
        };
        self.push(ErrorEvent {
            at_ms: chrono::Utc::now().timestamp_millis(),
            kind,
            stage: stage.to_owned(),
            route: Some(route_key.to_owned()),
            connection_id: Some(connection_id.to_owned()),
            detail,
        });
    }

    /// Records an upgrade refused by a connect check.
    pub(crate) fn refused(&self, stage: &str, reason: &dyn std::fmt::Display, client: &str) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.push(ErrorEvent {
            at_ms: chrono::Utc::now().timestamp_millis(),
            kind: "refused",
            stage: stage.to_owned(),
            route: Some("$connect".to_owned()),
            connection_id: None,
            detail: format!("{reason} (from {client})"),
        });
    }

    /// Records a message refused before its integration.
    pub(crate) fn client_error(&self, stage: &str, connection_id: &str, detail: &str) {
        self.client_errors.fetch_add(1, Ordering::Relaxed);
        self.push(ErrorEvent {
            at_ms: chrono::Utc::now().timestamp_millis(),
            kind: "client",
            stage: stage.to_owned(),
            route: None,
            connection_id: Some(connection_id.to_owned()),
            detail: detail.to_owned(),
        });
    }

    fn push(&self, mut event: ErrorEvent) {
        if event.detail.len() > DETAIL_BYTES {
            let mut cut = DETAIL_BYTES;
            while !event.detail.is_char_boundary(cut) {
                cut -= 1;
            }
            event.detail.truncate(cut);
        }
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT_ERRORS {
            recent.pop_front();
        }
        recent.push_back(event);
    }

    /// The recent errors, newest first.
    pub(crate) fn recent_errors(&self) -> Vec<ErrorEvent> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().rev().cloned().collect()
    }

    /// Every error counted so far (integration, execution, refused, client).
    pub(crate) fn errors_total(&self) -> u64 {
        [
            &self.integration_errors,
            &self.execution_errors,
            &self.refused,
            &self.client_errors,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_errors_and_cuts_details() {
        let activity = Activity::default();
        let route = RouteTally::default();
        for i in 0..(RECENT_ERRORS + 5) {
            activity.client_error("prod", &format!("c{i}"), "Forbidden");
        }
        let long = std::io::Error::other("é".repeat(DETAIL_BYTES));
        activity.call(
            &route,
            Some(Duration::from_millis(3)),
            &CallOutcome::Failed(&long),
            ("prod", "sendmessage", "x"),
        );
        activity.call(
            &route,
            None,
            &CallOutcome::Answered(200),
            ("prod", "r", "y"),
        );
        let recent = activity.recent_errors();
        assert_eq!(recent.len(), RECENT_ERRORS);
        assert_eq!(recent[0].kind, "execution");
        assert!(recent[0].detail.len() <= DETAIL_BYTES);
        assert_eq!(recent[1].connection_id.as_deref(), Some("c104"));
        assert_eq!(route.calls.load(Ordering::Relaxed), 2);
        assert_eq!(route.execution_errors.load(Ordering::Relaxed), 1);
        assert_eq!(activity.errors_total(), RECENT_ERRORS as u64 + 6);
    }
}
