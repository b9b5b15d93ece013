//! OpenTelemetry traces (`tracing:` in the configuration): one tracer provider per gateway
//! (several gateways in one process keep theirs apart; nothing global is installed), spans built
//! directly with the `opentelemetry` API and exported over OTLP by [`export`].
//!
//! Off (the default), [`Traces`] holds nothing: every [`Span`] is `None`, nothing is allocated,
//! nothing is propagated. A span's place in a trace is handed down as a [`Parent`] (the tracer
//! and the span's context), so code that makes child spans needs no gateway state.

mod export;
pub(crate) mod propagate;

use std::sync::Arc;

use opentelemetry::trace::{Span as _, SpanContext, TraceContextExt, Tracer as _, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use crate::config::TracingConfig;

/// Spans dropped because the export queue was full (`tracing.batch.max_queue_spans`).
pub(crate) const SPANS_DROPPED_TOTAL: &str = "wsgate_trace_spans_dropped_total";
/// Span exports that failed or timed out (their spans are lost), by `protocol`.
pub(crate) const EXPORT_ERRORS_TOTAL: &str = "wsgate_trace_export_errors_total";

/// Why tracing could not be started.
#[derive(Debug, thiserror::Error)]
#[error("tracing: cannot build the OTLP exporter: {0}")]
pub struct TraceError(#[source] opentelemetry_otlp::ExporterBuildError);

/// This gateway's tracer, when tracing is on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Traces {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    exporter: export::Handle,
}

impl Traces {
    /// Tracing as `config` says: nothing when off; else the exporter and its task (on the
    /// current tokio runtime) and the provider.
    ///
    /// # Errors
    /// When the OTLP exporter cannot be built from the configuration.
    pub(crate) fn start(config: &TracingConfig) -> Result<Self, TraceError> {
        if !config.enabled {
            return Ok(Self::default());
        }
        let resource = Resource::builder_empty()
            .with_service_name(config.service_name.clone())
            .build();
        let (processor, exporter) = export::start(config, &resource).map_err(TraceError)?;
        // Present from the start, so an alert on its rate sees the node before any drop.
        metrics::counter!(SPANS_DROPPED_TOTAL).increment(0);
        let ratio = Sampler::TraceIdRatioBased(config.sampler.ratio);
        let sampler = if config.sampler.parent_based {
            Sampler::ParentBased(Box::new(ratio))
        } else {
            ratio
        };
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(sampler)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("wsgate");
        Ok(Self {
            inner: Some(Arc::new(Inner {
                provider,
                tracer,
                exporter,
            })),
        })
    }

    /// True when spans are made.
    pub(crate) fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    /// A span that starts a trace.
    pub(crate) fn root(&self, name: &'static str) -> Span {
        match &self.inner {
            Some(inner) => Span::start(&inner.tracer, name, &Context::new()),
            None => Span::none(),
        }
    }

    /// A span continuing `remote` (a caller's `traceparent`, a frame from another node), or a
    /// root span when there is none.
    pub(crate) fn continuing(&self, name: &'static str, remote: Option<SpanContext>) -> Span {
        match (&self.inner, remote) {
            (Some(inner), Some(remote)) => Span::start(
                &inner.tracer,
                name,
                &Context::new().with_remote_span_context(remote),
            ),
            _ => self.root(name),
        }
    }

    /// A span continuing the caller's `traceparent` (and `tracestate`) in `headers`, if valid.
    pub(crate) fn continuing_caller(&self, name: &'static str, headers: &http::HeaderMap) -> Span {
        if !self.is_on() {
            return Span::none();
        }
        self.continuing(name, propagate::extract(headers))
    }

    /// Exports what is queued and stops the exporter (at most `tracing.otlp.timeout`).
    pub(crate) async fn shutdown(&self) {
        if let Some(inner) = &self.inner {
            inner.exporter.flush_and_stop().await;
            // The processor has nothing left; this only marks the provider shut down.
            let _ = inner.provider.shutdown();
        }
    }
}

/// One span; ended when dropped. `None` inside when tracing is off (then it costs nothing).
#[derive(Debug, Default)]
pub(crate) struct Span {
    inner: Option<Box<Active>>,
}

#[derive(Debug)]
struct Active {
    span: opentelemetry_sdk::trace::Span,
    tracer: SdkTracer,
}

impl Span {
    /// No span (tracing off).
    pub(crate) const fn none() -> Self {
        Self { inner: None }
    }

    fn start(tracer: &SdkTracer, name: &'static str, parent: &Context) -> Self {
        Self {
            inner: Some(Box::new(Active {
                span: tracer.start_with_context(name, parent),
                tracer: tracer.clone(),
            })),
        }
    }

    /// What children of this span start from.
    pub(crate) fn parent(&self) -> Parent<'_> {
        Parent {
            inner: (self.inner.as_deref()).map(|a| (&a.tracer, a.span.span_context())),
        }
    }

    /// A child span.
    pub(crate) fn child(&self, name: &'static str) -> Span {
        self.parent().child(name)
    }

    /// This span's context (`None` when tracing is off).
    pub(crate) fn context(&self) -> Option<&SpanContext> {
        self.parent().context()
    }

    fn recording(&mut self) -> Option<&mut opentelemetry_sdk::trace::Span> {
        (self.inner.as_deref_mut())
            .map(|a| &mut a.span)
            .filter(|s| s.is_recording())
    }

    /// Sets a string attribute (copied only when the span is recorded).
    pub(crate) fn set_str(&mut self, key: &'static str, value: &str) {
        if let Some(span) = self.recording() {
            span.set_attribute(KeyValue::new(key, value.to_string()));
        }
    }

    /// Sets an integer attribute.
    pub(crate) fn set_int(&mut self, key: &'static str, value: i64) {
        if let Some(span) = self.recording() {
            span.set_attribute(KeyValue::new(key, value));
        }
    }

    /// Marks the span failed with `message`.
    pub(crate) fn fail(&mut self, message: &str) {
        if let Some(span) = self.recording() {
            span.set_status(opentelemetry::trace::Status::error(message.to_string()));
        }
    }
}

/// Where a span starts from: the tracer and its parent's context, or nothing (tracing off).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Parent<'a> {
    inner: Option<(&'a SdkTracer, &'a SpanContext)>,
}

impl<'a> Parent<'a> {
    /// No parent, no span (tracing off).
    pub(crate) const NONE: Parent<'static> = Parent { inner: None };

    /// A child span of this parent (none when tracing is off).
    pub(crate) fn child(self, name: &'static str) -> Span {
        match self.inner {
            Some((tracer, context)) => Span::start(
                tracer,
                name,
                &Context::new().with_remote_span_context(context.clone()),
            ),
            None => Span::none(),
        }
    }

    /// The parent's context, to propagate.
    pub(crate) fn context(self) -> Option<&'a SpanContext> {
        self.inner.map(|(_, context)| context)
    }

    /// An owned copy, for work moved onto a task of its own (nothing when tracing is off).
    pub(crate) fn detach(self) -> Detached {
        Detached {
            inner: self
                .inner
                .map(|(tracer, context)| (tracer.clone(), context.clone())),
        }
    }
}

/// A [`Parent`] that owns its tracer and context, so it can cross a `tokio::spawn`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Detached {
    inner: Option<(SdkTracer, SpanContext)>,
}

impl Detached {
    /// The parent to start children from.
    pub(crate) fn parent(&self) -> Parent<'_> {
        Parent {
            inner: self
                .inner
                .as_ref()
                .map(|(tracer, context)| (tracer, context)),
        }
    }
}
