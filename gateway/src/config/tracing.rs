//! `tracing:` section: OpenTelemetry traces exported over OTLP (gRPC or HTTP/protobuf), the
//! sampler and the export queue. Off by default; see `docs/operations.md#traces`.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `tracing:` settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// Record spans and export them. Off: no exporter, no span is built, nothing is propagated.
    pub enabled: bool,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Where spans go.
    pub otlp: OtlpConfig,
    /// Which traces are recorded.
    pub sampler: SamplerConfig,
    /// The export queue and batches.
    pub batch: BatchConfig,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            service_name: "wsgate".into(),
            otlp: OtlpConfig::default(),
            sampler: SamplerConfig::default(),
            batch: BatchConfig::default(),
        }
    }
}

/// `tracing.otlp`: the OTLP exporter.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// The collector's URL (`http://` or `https://`). Absent: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// or `OTEL_EXPORTER_OTLP_ENDPOINT` when set, else `http://localhost:4317` (gRPC) or
    /// `http://localhost:4318/v1/traces` (HTTP). For `http_protobuf` it is the whole URL, path
    /// included (`.../v1/traces`).
    pub endpoint: Option<String>,
    /// `grpc` or `http_protobuf`.
    pub protocol: OtlpProtocol,
    /// Headers (gRPC metadata) sent with every export, e.g. an API key; written as `***` by
    /// `wsgate config defaults`.
    #[serde(serialize_with = "hide_values")]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: BTreeMap<String, String>,
    /// Time one export may take.
    #[serde(with = "super::duration")]
    #[schemars(with = "super::duration::Text")]
    pub timeout: Duration,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            protocol: OtlpProtocol::default(),
            headers: BTreeMap::new(),
            timeout: default_export_timeout(),
        }
    }
}

fn default_export_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Header values written as `***`, names kept.
fn hide_values<S: serde::Serializer>(
    headers: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(headers.keys().map(|k| (k, "***")))
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OtlpProtocol {
    /// OTLP/gRPC (port 4317 by convention).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318 by convention).
    HttpProtobuf,
}

/// `tracing.sampler`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SamplerConfig {
    /// Share of new traces recorded, 0 to 1 (by trace id, so every node decides alike).
    pub ratio: f64,
    /// Follow the caller's decision when a `traceparent` came with the request (its sampled
    /// flag); the ratio then applies to traces that start here only.
    pub parent_based: bool,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            ratio: 1.0,
            parent_based: true,
        }
    }
}

/// `tracing.batch`: the export queue.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Ended spans waiting for export at most; more are dropped (counted in
    /// `wsgate_trace_spans_dropped_total`), never waited for.
    pub max_queue_spans: usize,
    /// Spans in one export at most.
    pub max_export_spans: usize,
    /// Longest a span waits for its batch to fill before it is exported.
    #[serde(with = "super::duration")]
    #[schemars(with = "super::duration::Text")]
    pub export_interval: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_queue_spans: 2048,
            max_export_spans: 512,
            export_interval: default_export_interval(),
        }
    }
}

fn default_export_interval() -> Duration {
    Duration::from_secs(5)
}

/// Checks what the types alone cannot (also when tracing is off, so a typo waits for nobody).
///
/// # Errors
/// The key at fault.
pub(super) fn validate(config: &TracingConfig) -> Result<(), ConfigError> {
    if config.service_name.trim().is_empty() {
        return Err(ConfigError::invalid(
            "tracing.service_name",
            "must not be empty",
        ));
    }
    let ratio = config.sampler.ratio;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(ConfigError::invalid(
            "tracing.sampler.ratio",
            format!("must be between 0 and 1, got {ratio}"),
        ));
    }
    if let Some(endpoint) = &config.otlp.endpoint {
        let valid = endpoint
            .parse::<http::Uri>()
            .ok()
            .filter(|uri| matches!(uri.scheme_str(), Some("http" | "https")))
            .is_some_and(|uri| uri.host().is_some());
        if !valid {
            return Err(ConfigError::invalid(
                "tracing.otlp.endpoint",
                format!("`{endpoint}` is not an http:// or https:// URL"),
            ));
        }
    }
    for (name, value) in &config.otlp.headers {
        let key = format!("tracing.otlp.headers.{name}");
        // gRPC metadata keys are lowercase header names.
        if http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).is_err() {
            return Err(ConfigError::invalid(key, "not a valid header name"));
        }
        if http::HeaderValue::from_str(value).is_err() {
            return Err(ConfigError::invalid(key, "not a valid header value"));
        }
    }
    if config.otlp.timeout.is_zero() {
        return Err(ConfigError::invalid(
            "tracing.otlp.timeout",
            "must be greater than zero",
        ));
    }
    let batch = &config.batch;
    if batch.max_queue_spans == 0 {
        return Err(ConfigError::invalid(
            "tracing.batch.max_queue_spans",
            "must be greater than zero",
        ));
    }
    if batch.max_export_spans == 0 || batch.max_export_spans > batch.max_queue_spans {
        return Err(ConfigError::invalid(
            "tracing.batch.max_export_spans",
            "must be between 1 and tracing.batch.max_queue_spans",
        ));
    }
    if batch.export_interval.is_zero() {
        return Err(ConfigError::invalid(
            "tracing.batch.export_interval",
            "must be greater than zero",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::tests::REFERENCE;
    use super::*;

    fn with(tracing: &str) -> Result<Config, String> {
        Config::from_yaml(&format!("{REFERENCE}tracing:\n{tracing}")).map_err(|e| e.to_string())
    }

    #[test]
    fn off_by_default_with_documented_defaults() {
        let config = Config::from_yaml(REFERENCE).expect("loads");
        let tracing = &config.tracing;
        assert!(!tracing.enabled);
        assert_eq!(tracing.service_name, "wsgate");
        assert_eq!(tracing.otlp.protocol, OtlpProtocol::Grpc);
        assert!(tracing.sampler.parent_based);
        assert!((tracing.sampler.ratio - 1.0).abs() < f64::EPSILON);
        assert_eq!(tracing.batch.export_interval, Duration::from_secs(5));
    }

    #[test]
    fn invalid_values_name_their_key() {
        let cases = [
            ("  sampler: { ratio: 1.5 }\n", "tracing.sampler.ratio"),
            (
                "  otlp: { endpoint: 'collector:4317' }\n",
                "tracing.otlp.endpoint",
            ),
            ("  otlp: { protocol: http_json }\n", "tracing.otlp.protocol"),
            (
                "  otlp: { headers: { 'bad name': x } }\n",
                "tracing.otlp.headers.bad name",
            ),
            ("  otlp: { timeout: 0s }\n", "tracing.otlp.timeout"),
            (
                "  batch: { max_queue_spans: 4, max_export_spans: 8 }\n",
                "tracing.batch.max_export_spans",
            ),
            ("  service_name: ''\n", "tracing.service_name"),
            ("  sample: {}\n", "tracing.sample"),
        ];
        for (yaml, key) in cases {
            let error = with(yaml).expect_err(yaml);
            assert!(
                error.starts_with(&format!("config key `{key}`")),
                "{yaml}: {error}"
            );
        }
    }

    #[test]
    fn header_values_are_masked_when_written_out() {
        let config = with(
            "  enabled: true\n  otlp:\n    protocol: http_protobuf\n    endpoint: https://otlp.example.com/v1/traces\n    headers: { x-api-key: s3cret }\n",
        )
        .expect("loads");
        assert_eq!(config.tracing.otlp.headers["x-api-key"], "s3cret");
        let written = super::super::reference::defaults(&config).expect("written");
        assert!(
            written.contains("x-api-key: '***'")
                || written.contains("x-api-key: \"***\"")
                || written.contains("x-api-key: ***"),
            "{written}"
        );
        assert!(!written.contains("s3cret"));
    }
}
