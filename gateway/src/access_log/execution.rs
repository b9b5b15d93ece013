//! Execution logs: what happened to each event on a route, through `tracing` at target
//! `wsgate::execution`, at the route's `logging_level` (AWS's `LoggingLevel`): `ERROR` logs
//! integration failures and refusals, `INFO` each step too (route selected, integration called
//! with its status and latency). With `data_trace`, message and answer bodies are logged as
//! well, cut to `data_trace_max_bytes`. Every line names the stage, route, connection and
//! request. Upgrade request headers are never logged (they carry credentials).

use std::borrow::Cow;
use std::time::Duration;

use crate::config::{ExecutionLogConfig, LoggingLevel};
use crate::events::ConnectionMeta;
use crate::integration::{IntegrationError, IntegrationResponse};

/// The `tracing` target of execution logs.
pub(crate) const TARGET: &str = "wsgate::execution";

/// The execution logging of one route of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExecutionLog {
    level: LoggingLevel,
    data_trace: bool,
    max_bytes: usize,
}

/// Which event a line is about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event<'a> {
    pub meta: &'a ConnectionMeta,
    pub route_key: &'a str,
    pub request_id: &'a str,
}

impl ExecutionLog {
    /// From a route's settings.
    pub(crate) fn new(config: &ExecutionLogConfig) -> Self {
        Self {
            level: config.logging_level,
            data_trace: config.data_trace,
            max_bytes: config.data_trace_max_bytes,
        }
    }

    /// True when failures are logged.
    pub(crate) fn errors(&self) -> bool {
        self.level >= LoggingLevel::Error
    }

    /// True when every step is logged.
    pub(crate) fn steps(&self) -> bool {
        self.level >= LoggingLevel::Info
    }

    /// True when bodies are logged.
    pub(crate) fn traces(&self) -> bool {
        self.data_trace && self.level != LoggingLevel::Off
    }

    /// INFO: the route a message was routed to.
    pub(crate) fn route_selected(&self, at: Event<'_>) {
        if self.steps() {
            tracing::info!(target: TARGET, stage = %at.meta.stage, route_key = at.route_key, connection_id = %at.meta.connection_id, request_id = at.request_id, "route selected");
        }
    }

    /// ERROR: the event was refused before its integration (`status` as the client sees it).
    pub(crate) fn refused(&self, at: Event<'_>, status: u16, reason: &str) {
        if self.errors() {
            tracing::error!(target: TARGET, stage = %at.meta.stage, route_key = at.route_key, connection_id = %at.meta.connection_id, request_id = at.request_id, status, reason, "refused before the integration");
        }
    }

    /// DATA TRACE: the body sent to the integration.
    pub(crate) fn request_body(&self, at: Event<'_>, body: &[u8]) {
        if self.traces() {
            let (text, truncated) = self.cut(body);
            tracing::info!(target: TARGET, stage = %at.meta.stage, route_key = at.route_key, connection_id = %at.meta.connection_id, request_id = at.request_id, body_bytes = body.len(), truncated, body = %text, "request body");
        }
    }

    /// INFO (answer) or ERROR (failure or an error status): the integration's outcome, and
    /// under data trace the answer's body.
    pub(crate) fn integration(
        &self,
        at: Event<'_>,
        kind: &str,
        result: &Result<IntegrationResponse, IntegrationError>,
        latency: Duration,
    ) {
        let latency_ms = super::millis(latency);
        match result {
            Ok(response) => {
                if response.status >= 500 && self.errors() {
                    tracing::error!(target: TARGET, stage = %at.meta.stage, route_key = at.route_key, connection_id = %at.meta.connection_id, request_id = at.request_id, integration = kind, status = response.status, latency_ms, "integration answered an error");
                } else if self.steps() {
                    tracing::info!(target: TARGET, stage = %at.meta.stage, route_key = at.route_key, connection_id = %at.meta.connection_id, request_id = at.request_id, integration = kind, status = response.status, latency_ms, "integration called");
                }
                if let Some(body) = &response.body
                    && self.traces()
                {
                    let (text, truncated) = self.cut(body);
                    tracing::info!(target: TARGET, stage = %at.meta.stage, route_key = at.route_key, connection_id = %at.meta.connection_id, request_id = at.request_id, body_bytes = body.len(), truncated, body = %text, "response body");
                }
            }
            Err(error) => {
                if self.errors() {
                    tracing::error!(target: TARGET, stage = %at.meta.stage, route_key = at.route_key, connection_id = %at.meta.connection_id, request_id = at.request_id, integration = kind, latency_ms, error = super::integration_error_name(error), "integration failed");
                }
            }
        }
    }

    /// At most `data_trace_max_bytes` of `body` as text (cut on a character boundary, invalid
    /// UTF-8 replaced), and whether it was cut.
    fn cut<'a>(&self, body: &'a [u8]) -> (Cow<'a, str>, bool) {
        if body.len() <= self.max_bytes {
            return (String::from_utf8_lossy(body), false);
        }
        let mut end = self.max_bytes;
        if let Err(e) = std::str::from_utf8(&body[..end]) {
            // Drop a character split by the cut (a real invalid byte earlier stays replaced).
            if e.error_len().is_none() {
                end = e.valid_up_to();
            }
        }
        (String::from_utf8_lossy(&body[..end]), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traced(max: usize) -> ExecutionLog {
        ExecutionLog::new(&ExecutionLogConfig {
            logging_level: LoggingLevel::Info,
            data_trace: true,
            data_trace_max_bytes: max,
        })
    }

    #[test]
    fn bodies_are_cut_on_character_boundaries() {
        assert_eq!(traced(4).cut(b"abc"), ("abc".into(), false));
        assert_eq!(traced(4).cut(b"abcdef"), ("abcd".into(), true));
        // "é" is two bytes: a cut through it leaves it out.
        assert_eq!(traced(4).cut("abcé".as_bytes()), ("abc".into(), true));
    }

    #[test]
    fn levels_gate_what_is_logged() {
        let off = ExecutionLog::new(&ExecutionLogConfig {
            data_trace: true,
            ..ExecutionLogConfig::default()
        });
        assert!(!off.errors() && !off.steps() && !off.traces());
        let errors = ExecutionLog::new(&ExecutionLogConfig {
            logging_level: LoggingLevel::Error,
            ..ExecutionLogConfig::default()
        });
        assert!(errors.errors() && !errors.steps() && !errors.traces());
        assert!(traced(1).steps() && traced(1).traces());
    }
}
