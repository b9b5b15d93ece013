//! The `x-wsgate-*` context of one call, as `http_proxy` sends it in HTTP headers and the
//! broker integrations in message headers: the same names and values for both.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::Invocation;

/// What `x-wsgate-disconnect-reason` encodes: RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`)
/// are kept, every other byte of the reason's UTF-8 becomes `%XX`, so any close reason (control
/// characters, non-ASCII) fits in a header and decodes back exactly.
const UNRESERVED_KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Gives `put` the fields every event carries, in this order: connection id, route key, event
/// type, stage, request id, API id, source IP.
pub(crate) fn put_common(inv: &Invocation<'_>, mut put: impl FnMut(&'static str, &str)) {
    let meta = inv.meta;
    put("x-wsgate-connection-id", &meta.connection_id);
    put("x-wsgate-route-key", inv.route_key);
    put("x-wsgate-event-type", inv.kind.event_type());
    put("x-wsgate-stage", &meta.stage);
    put("x-wsgate-request-id", inv.request_id);
    put("x-wsgate-api-id", &meta.api_id);
    put("x-wsgate-source-ip", &meta.source_ip);
}

/// Gives `put` the trace headers of a call made with tracing on: `traceparent`, `tracestate`
/// (when not empty) and, except on `$connect` (whose forwarded upgrade request carries its
/// own), `x-amzn-trace-id` for the same trace. Nothing with tracing off.
pub(crate) fn put_trace(inv: &Invocation<'_>, mut put: impl FnMut(&'static str, &str)) {
    let Some(context) = inv.trace.context() else {
        return;
    };
    crate::traces::propagate::inject(context, &mut put);
    if !matches!(inv.kind, crate::events::EventKind::Connect(_)) {
        put_amzn_trace(inv, put);
    }
}

/// Gives `put` the `x-amzn-trace-id` of a call made with tracing on: the header the Lambda
/// Invoke API reads to continue a trace inside the function (AWS's SDKs send it the same way,
/// outside the signature). Nothing with tracing off.
pub(crate) fn put_amzn_trace(inv: &Invocation<'_>, mut put: impl FnMut(&'static str, &str)) {
    if let Some(context) = inv.trace.context() {
        put(
            "x-amzn-trace-id",
            &crate::traces::propagate::amzn_trace_id(context),
        );
    }
}

/// [`put_trace`] as header lines (`name: value\r\n`); empty with tracing off.
pub(crate) fn trace_lines(inv: &Invocation<'_>) -> Vec<u8> {
    let mut lines = Vec::new();
    put_trace(inv, |name, value| {
        for part in [name.as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
            lines.extend_from_slice(part);
        }
    });
    lines
}

/// A close reason as `x-wsgate-disconnect-reason` carries it.
pub(crate) fn encode_reason(reason: &str) -> String {
    utf8_percent_encode(reason, UNRESERVED_KEPT).to_string()
}
