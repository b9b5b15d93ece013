//! The `callback` span of a callback API request (tracing on): a child of the caller's
//! `traceparent` when it sent one, else a root, with the request's method, path template
//! (`http.route`), stage, connection or group, and the status answered.

use axum::extract::Request;
use axum::response::Response;

use super::Api;
use crate::traces::Span;

/// What a callback request names, for its span.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target<'a> {
    /// The path template, e.g. `/{stage}/@groups/{group}`.
    pub route: &'static str,
    pub stage: &'a str,
    pub connection_id: Option<&'a str>,
    pub group: Option<&'a str>,
}

/// Starts the span of `request` (nothing when tracing is off).
pub(super) fn start(api: &Api, request: &Request, target: Target<'_>) -> Span {
    let mut span = (api.shared.traces).continuing_caller("callback", request.headers());
    if span.context().is_some() {
        span.set_str("http.request.method", request.method().as_str());
        span.set_str("http.route", target.route);
        span.set_str("wsgate.stage", target.stage);
        if let Some(id) = target.connection_id {
            span.set_str("wsgate.connection_id", id);
        }
        if let Some(group) = target.group {
            span.set_str("wsgate.group", group);
        }
    }
    span
}

/// Records the answer on the span (a 5xx fails it) and ends it.
pub(super) fn finish(mut span: Span, response: &Response) {
    if span.context().is_some() {
        let status = response.status().as_u16();
        span.set_int("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.fail("the callback failed");
        }
    }
}
