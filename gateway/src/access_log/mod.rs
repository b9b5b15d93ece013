//! Access logs and execution logs.
//!
//! An access log belongs to a stage (`api.stages.<stage>.access_log`): its format is compiled
//! once at start ([`Format`]), each event renders one line from a [`Record`] of borrowed fields,
//! and the line goes to a bounded writer thread ([`writer`]) that never blocks the connection.
//! A stage without an access log costs its events one branch (`StageRoutes::access_log` is
//! `None`) and no record is built. Lines never hold a body or a credential: no variable reads a
//! body, and `identity.apiKey` renders `-`.
//!
//! Execution logs ([`execution`]) go through `tracing` at target `wsgate::execution`, per
//! route at `OFF`, `ERROR` or `INFO`, with bodies only under `data_trace` and cut to a bound.

pub(crate) mod execution;
mod format;
mod record;
mod rotate;
mod writer;

pub(crate) use format::Format;
pub(crate) use record::{EventType, IntegrationOutcome, Record};

use crate::config::{AccessLogConfig, ConfigError};
use crate::events::ConnectionMeta;
use crate::integration::IntegrationError;

/// One stage's access log.
#[derive(Debug)]
pub(crate) struct AccessLog {
    format: Format,
    writer: writer::Writer,
}

/// What an event came to, filled in as it goes (only when the stage has an access log).
#[derive(Debug, Default)]
pub(crate) struct Outcome<'a> {
    /// `routeKey`.
    pub route_key: Option<&'a str>,
    /// `messageId`.
    pub message_id: Option<String>,
    /// `status`.
    pub status: Option<u16>,
    /// The integration's part.
    pub integration: Option<IntegrationOutcome>,
    /// `error.message`.
    pub error_message: Option<&'static str>,
    /// `error.validationErrorString`.
    pub validation_error: Option<String>,
}

impl AccessLog {
    /// Compiles the format and starts the writer.
    ///
    /// # Errors
    /// The key at fault: the format (config validation reports it first) or the destination.
    pub(crate) fn start(stage: &str, config: &AccessLogConfig) -> Result<Self, ConfigError> {
        let at = format!("api.stages.{stage}.access_log");
        let format = Format::compile(&config.format).map_err(|e| ConfigError::Invalid {
            key: format!("{at}.format"),
            message: e.to_string(),
        })?;
        let writer = writer::Writer::start(stage, config).map_err(|e| ConfigError::Invalid {
            key: format!("{at}.destination"),
            message: format!("cannot open: {e}"),
        })?;
        Ok(Self { format, writer })
    }

    /// Renders `record` and queues the line (dropped and counted when the queue is full).
    pub(crate) fn emit(&self, record: &Record<'_>) {
        let mut line = String::with_capacity(256);
        self.format.render(record, &mut line);
        self.writer.offer(line);
    }

    /// Logs an event of `meta`'s connection that started at `started_ms` and came to `outcome`.
    pub(crate) fn event(
        &self,
        meta: &ConnectionMeta,
        event_type: EventType,
        request_id: &str,
        started_ms: i64,
        outcome: &Outcome<'_>,
    ) {
        let mut record = Record::on(meta, event_type, request_id, started_ms);
        record.route_key = outcome.route_key;
        record.message_id = outcome.message_id.as_deref();
        record.status = outcome.status;
        record.integration = outcome.integration;
        record.error_message = outcome.error_message;
        record.validation_error = outcome.validation_error.as_deref();
        self.emit(&record);
    }
}

/// `integration.error`: what kind of failure, in a few words (never the error's text, which may
/// quote a backend's answer or address).
pub(crate) fn integration_error_name(error: &IntegrationError) -> &'static str {
    match error {
        IntegrationError::Timeout(_) => "timeout",
        IntegrationError::Transport(_) => "transport error",
        IntegrationError::Malformed(_) => "malformed response",
        IntegrationError::FunctionError(_) => "function error",
        IntegrationError::EndpointStatus(_) => "endpoint status",
        IntegrationError::LambdaApi { .. } => "lambda invoke error",
        IntegrationError::Credentials(_) => "no credentials",
        IntegrationError::UnsupportedMediaType => "unsupported media type",
        IntegrationError::Mapping(_) => "mapping error",
        IntegrationError::Broker(_) => "broker error",
        IntegrationError::ResponseTooLarge { .. } => "response too large",
    }
}

/// Milliseconds in `elapsed`, for `integrationLatency`.
pub(crate) fn millis(elapsed: std::time::Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}
