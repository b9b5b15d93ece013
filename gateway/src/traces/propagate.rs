//! W3C Trace Context (`traceparent`, `tracestate`) in and out of HTTP headers, through the
//! SDK's propagator, and the `X-Amzn-Trace-Id` value derived from the same trace.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// The caller's span context from `traceparent` (and `tracestate`), when one is present and
/// valid.
pub(crate) fn extract(headers: &http::HeaderMap) -> Option<SpanContext> {
    struct Headers<'a>(&'a http::HeaderMap);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(http::HeaderName::as_str).collect()
        }
    }
    let context = TraceContextPropagator::new().extract(&Headers(headers));
    let span = context.span();
    let remote = span.span_context();
    remote.is_valid().then(|| remote.clone())
}

/// The span context of a `traceparent` value (and its `tracestate`), e.g. from a bus frame.
pub(crate) fn parse(traceparent: &str, tracestate: &str) -> Option<SpanContext> {
    let mut headers = http::HeaderMap::new();
    headers.insert("traceparent", traceparent.parse().ok()?);
    if !tracestate.is_empty() {
        headers.insert("tracestate", tracestate.parse().ok()?);
    }
    extract(&headers)
}

/// Gives `put` the `traceparent` (and a non-empty `tracestate`) of `context`.
pub(crate) fn inject(context: &SpanContext, mut put: impl FnMut(&'static str, &str)) {
    struct Put<'a>(&'a mut dyn FnMut(&'static str, &str));
    impl Injector for Put<'_> {
        fn set(&mut self, key: &str, value: String) {
            match key {
                "traceparent" => (self.0)("traceparent", &value),
                "tracestate" if !value.is_empty() => (self.0)("tracestate", &value),
                _ => {}
            }
        }
    }
    let cx = Context::new().with_remote_span_context(context.clone());
    TraceContextPropagator::new().inject_context(&cx, &mut Put(&mut put));
}

/// `traceparent` and `tracestate` of `context` (what a bus frame carries).
pub(crate) fn header_values(context: &SpanContext) -> (String, String) {
    let (mut parent, mut state) = (String::new(), String::new());
    inject(context, |name, value| match name {
        "traceparent" => parent = value.to_string(),
        _ => state = value.to_string(),
    });
    (parent, state)
}

/// `X-Amzn-Trace-Id` for `context` in the X-Ray form: `Root=1-` and the 32 hex digits of the
/// W3C trace id split 8/24 (X-Ray puts the epoch seconds in the first 8; any value is accepted),
/// `Parent=` the span id, `Sampled=` 0 or 1.
pub(crate) fn amzn_trace_id(context: &SpanContext) -> String {
    let trace = context.trace_id().to_string();
    format!(
        "Root=1-{}-{};Parent={};Sampled={}",
        &trace[..8],
        &trace[8..],
        context.span_id(),
        u8::from(context.is_sampled())
    )
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    fn context(sampled: bool) -> SpanContext {
        SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex"),
            SpanId::from_hex("00f067aa0ba902b7").expect("hex"),
            if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            TraceState::from_key_value([("vendor", "x")]).expect("state"),
        )
    }

    #[test]
    fn traceparent_goes_out_and_comes_back() {
        let (parent, state) = header_values(&context(true));
        assert_eq!(
            parent,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(state, "vendor=x");
        let back = parse(&parent, &state).expect("valid");
        assert_eq!(back.trace_id(), context(true).trace_id());
        assert_eq!(back.span_id(), context(true).span_id());
        assert!(back.is_sampled());
        assert_eq!(back.trace_state().header(), "vendor=x");
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        assert!(parse("garbage", "").is_none());
        assert!(
            parse(
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                ""
            )
            .is_none()
        );
        assert!(extract(&http::HeaderMap::new()).is_none());
    }

    #[test]
    fn amzn_trace_id_splits_the_trace_id() {
        assert_eq!(
            amzn_trace_id(&context(false)),
            "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=0"
        );
        assert!(amzn_trace_id(&context(true)).ends_with("Sampled=1"));
    }
}
