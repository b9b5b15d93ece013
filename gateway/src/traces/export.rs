//! The export side of traces: a span processor that hands ended spans to a bounded queue (never
//! waiting: a full queue drops the span and counts it in `wsgate_trace_spans_dropped_total`),
//! and one task on the gateway's runtime that sends them in batches to the OTLP exporter
//! (gRPC through tonic, HTTP/protobuf through reqwest), each export bounded by
//! `tracing.otlp.timeout`. A collector that is down or slow therefore costs the message path
//! nothing but the dropped spans.
//!
//! The SDK's own batch processor runs its exporter on a thread of its own with a blocking
//! executor, which the async OTLP clients cannot run on, and does not report what it drops;
//! this one runs on the gateway's tokio runtime and stops with the gateway.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_otlp::{
    ExporterBuildError, Protocol, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter as _, SpanProcessor};
use tokio::sync::{mpsc, oneshot};

use super::{EXPORT_ERRORS_TOTAL, SPANS_DROPPED_TOTAL};
use crate::config::{OtlpProtocol, TracingConfig};

/// What the export task receives.
enum Item {
    Span(Box<SpanData>),
    /// Export everything queued, stop, and say so.
    Stop(oneshot::Sender<()>),
}

/// The span processor the provider calls on every recorded span's end.
#[derive(Debug)]
pub(super) struct Processor {
    queue: mpsc::Sender<Item>,
    stopped: AtomicBool,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Span(_) => "Span",
            Self::Stop(_) => "Stop",
        })
    }
}

impl SpanProcessor for Processor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.stopped.load(Ordering::Relaxed)
            || self.queue.try_send(Item::Span(Box::new(span))).is_err()
        {
            metrics::counter!(SPANS_DROPPED_TOTAL).increment(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        // Batches go out every `tracing.batch.export_interval`; `Traces::shutdown` flushes.
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.stopped.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// Stops the export task.
#[derive(Debug)]
pub(super) struct Handle {
    queue: mpsc::Sender<Item>,
    timeout: Duration,
}

impl Handle {
    /// Exports what is queued, then stops the task; at most the export timeout (twice: the
    /// batch in flight and the last one).
    pub(super) async fn flush_and_stop(&self) {
        let (done, stopped) = oneshot::channel();
        let bounded = tokio::time::timeout(self.timeout * 2, async {
            if self.queue.send(Item::Stop(done)).await.is_ok() {
                let _ = stopped.await;
            }
        });
        if bounded.await.is_err() {
            tracing::warn!("traces: the last spans could not be exported in time");
        }
    }
}

/// Builds the exporter for `config` and starts its task on the current runtime.
///
/// # Errors
/// The exporter builder's, for an endpoint or header it refuses.
pub(super) fn start(
    config: &TracingConfig,
    resource: &Resource,
) -> Result<(Processor, Handle), ExporterBuildError> {
    let otlp = &config.otlp;
    let mut exporter = match otlp.protocol {
        OtlpProtocol::Grpc => {
            let mut headers = http::HeaderMap::new();
            for (name, value) in &otlp.headers {
                // Checked by config validation; a pair that still fails is left out.
                if let (Ok(name), Ok(value)) = (
                    http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
                    http::HeaderValue::from_str(value),
                ) {
                    headers.append(name, value);
                }
            }
            let metadata =
                opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers);
            let mut builder = SpanExporter::builder()
                .with_tonic()
                .with_timeout(otlp.timeout)
                .with_metadata(metadata);
            if let Some(endpoint) = &otlp.endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            builder.build()?
        }
        OtlpProtocol::HttpProtobuf => {
            let headers: HashMap<String, String> = otlp.headers.clone().into_iter().collect();
            let client = reqwest::Client::builder()
                .no_proxy()
                .connect_timeout(otlp.timeout)
                .build()
                .map_err(|e| ExporterBuildError::InternalFailure(e.to_string()))?;
            let mut builder = SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_http_client(client)
                .with_timeout(otlp.timeout)
                .with_headers(headers);
            if let Some(endpoint) = &otlp.endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            builder.build()?
        }
    };
    exporter.set_resource(resource);
    let (queue, items) = mpsc::channel(config.batch.max_queue_spans);
    let protocol = match otlp.protocol {
        OtlpProtocol::Grpc => "grpc",
        OtlpProtocol::HttpProtobuf => "http_protobuf",
    };
    tokio::spawn(run(
        exporter,
        items,
        Batching {
            max_spans: config.batch.max_export_spans,
            interval: config.batch.export_interval,
            timeout: otlp.timeout,
            protocol,
        },
    ));
    Ok((
        Processor {
            queue: queue.clone(),
            stopped: AtomicBool::new(false),
        },
        Handle {
            queue,
            timeout: otlp.timeout,
        },
    ))
}

struct Batching {
    max_spans: usize,
    interval: Duration,
    timeout: Duration,
    protocol: &'static str,
}

/// Collects spans into batches of at most `max_spans`, exporting a batch when it is full or
/// `interval` after its first span, one export at a time.
async fn run(exporter: SpanExporter, mut items: mpsc::Receiver<Item>, batching: Batching) {
    let mut batch: Vec<SpanData> = Vec::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let item = match deadline {
            Some(at) => tokio::select! {
                item = items.recv() => item,
                () = tokio::time::sleep_until(at) => {
                    export(&exporter, &mut batch, &batching).await;
                    deadline = None;
                    continue;
                }
            },
            None => items.recv().await,
        };
        match item {
            Some(Item::Span(span)) => {
                if batch.is_empty() {
                    deadline = Some(tokio::time::Instant::now() + batching.interval);
                }
                batch.push(*span);
                if batch.len() >= batching.max_spans {
                    export(&exporter, &mut batch, &batching).await;
                    deadline = None;
                }
            }
            Some(Item::Stop(done)) => {
                export(&exporter, &mut batch, &batching).await;
                let _ = exporter.shutdown();
                let _ = done.send(());
                return;
            }
            None => {
                export(&exporter, &mut batch, &batching).await;
                return;
            }
        }
    }
}

async fn export(exporter: &SpanExporter, batch: &mut Vec<SpanData>, batching: &Batching) {
    if batch.is_empty() {
        return;
    }
    let spans = std::mem::take(batch);
    let count = spans.len();
    let failed = match tokio::time::timeout(batching.timeout, exporter.export(spans)).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error.to_string()),
        Err(_) => Some("timed out".to_string()),
    };
    if let Some(error) = failed {
        metrics::counter!(EXPORT_ERRORS_TOTAL, "protocol" => batching.protocol).increment(1);
        tracing::debug!(%error, spans = count, "traces: export failed; spans lost");
    }
}
