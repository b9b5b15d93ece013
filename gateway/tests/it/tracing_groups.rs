//! Traces of groups: a membership change through the callback API is one trace down to its
//! `$join` or `$leave` event's integration call, also when the connection is held by another
//! node; a leave by closing starts a trace of its own; group posts and broadcasts get their
//! `callback` span; and a route with models records its `validation` span.

use crate::support::cluster::*;
use crate::support::otlp::{Receiver, Span};
use crate::support::*;

/// The caller's own span id in the `traceparent` it sends.
const CALLER: &str = "0123456789abcdef";

fn find<'a>(spans: &'a [Span], name: &str, trace: &str) -> Option<&'a Span> {
    spans.iter().find(|s| s.name == name && s.trace_id == trace)
}

/// The trace id and span id of a backend request's `traceparent`.
fn traceparent(received: &Received) -> (String, String) {
    let value = (received.headers.get("traceparent"))
        .and_then(|v| v.to_str().ok())
        .expect("the presence event carries a traceparent");
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    (parts[1].into(), parts[2].into())
}

/// A node's configuration with `$join` and `$leave` routes (both to `/presence`).
fn presence_config(backend: &str, store: &str, tracing: &str) -> String {
    let routes = "    $join:\n      integration: { type: aws_proxy, uri: \"${stageVariables.backend}/presence\" }\n    $leave:\n      integration: { type: aws_proxy, uri: \"${stageVariables.backend}/presence\" }\n";
    node_config(backend, store, tracing).replacen("  routes:\n", &format!("  routes:\n{routes}"), 1)
}

/// A callback request with the caller's `traceparent` for `trace`; its status.
async fn traced(request: reqwest::RequestBuilder, trace: &str) -> u16 {
    request
        .header("traceparent", format!("00-{trace}-{CALLER}-01"))
        .send()
        .await
        .expect("callback answered")
        .status()
        .as_u16()
}

#[tokio::test]
async fn membership_changes_are_traced_down_to_their_presence_events() {
    let receiver = Receiver::http().await;
    let backend = Backend::ok().await;
    let (store, _cleanup) = shared_store();
    let a = TestGateway::start(&presence_config(
        &backend.url(),
        &store,
        &receiver.config("node-a", ""),
    ))
    .await;
    let b = TestGateway::start(&presence_config(
        &backend.url(),
        &store,
        &receiver.config("node-b", ""),
    ))
    .await;
    let (ws, id) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    let client = http();
    let membership =
        |gw: &TestGateway| gw.http_url(&format!("/prod/@connections/{id}/groups/team"));

    // Joined through node A: forwarded to node B, which holds the connection and sends $join.
    let joined = "4bf92f3577b34da6a3ce929d0e0e4736";
    assert_eq!(traced(client.put(membership(&a)), joined).await, 204);
    let event = backend.next_to("/presence").await;
    assert_eq!(event.json()["requestContext"]["routeKey"], "$join");
    let (trace, integration_id) = traceparent(&event);
    assert_eq!(trace, joined, "the caller's trace reaches the backend");
    let names = ["callback", "forward", "deliver", "presence", "integration"];
    let spans = receiver
        .wait_for("the join's spans from both nodes", |spans| {
            names.iter().all(|name| find(spans, name, joined).is_some())
        })
        .await;
    let span = |name: &str| find(&spans, name, joined).expect(name).clone();
    let callback = span("callback");
    assert_eq!(callback.parent_span_id, CALLER);
    assert_eq!(callback.service, "node-a");
    assert_eq!(callback.attr("http.request.method"), Some("PUT"));
    assert_eq!(
        callback.attr("http.route"),
        Some("/{stage}/@connections/{id}/groups/{group}")
    );
    assert_eq!(callback.attr("wsgate.group"), Some("team"));
    assert_eq!(callback.attr("wsgate.connection_id"), Some(id.as_str()));
    assert_eq!(callback.attr("http.response.status_code"), Some("204"));
    let forward = span("forward");
    assert_eq!(forward.parent_span_id, callback.span_id);
    assert_eq!(forward.attr("wsgate.method"), Some("join"));
    assert_eq!(forward.attr("wsgate.outcome"), Some("done"));
    let deliver = span("deliver");
    assert_eq!(deliver.parent_span_id, forward.span_id, "across the bus");
    assert_eq!(deliver.service, "node-b");
    let presence = span("presence");
    assert_eq!(presence.parent_span_id, deliver.span_id);
    assert_eq!(presence.service, "node-b");
    assert_eq!(presence.attr("wsgate.route_key"), Some("$join"));
    assert_eq!(presence.attr("wsgate.group"), Some("team"));
    assert_eq!(presence.attr("wsgate.member_count"), Some("1"));
    assert_eq!(presence.attr("wsgate.connection_id"), Some(id.as_str()));
    assert!(!presence.failed);
    let integration = span("integration");
    assert_eq!(integration.parent_span_id, presence.span_id);
    assert_eq!(integration.span_id, integration_id, "the backend's parent");
    assert_eq!(integration.attr("wsgate.route_key"), Some("$join"));
    assert_eq!(integration.attr("http.response.status_code"), Some("200"));

    // Left through node B, which holds it: no forward.
    let left = "5bf92f3577b34da6a3ce929d0e0e4737";
    assert_eq!(traced(client.delete(membership(&b)), left).await, 204);
    let event = backend.next_to("/presence").await;
    assert_eq!(event.json()["requestContext"]["routeKey"], "$leave");
    let spans = receiver
        .wait_for("the leave's spans", |spans| {
            ["callback", "presence", "integration"]
                .iter()
                .all(|name| find(spans, name, left).is_some())
        })
        .await;
    let span = |name: &str| find(&spans, name, left).expect(name).clone();
    let callback = span("callback");
    assert_eq!(callback.service, "node-b");
    assert_eq!(callback.attr("http.request.method"), Some("DELETE"));
    assert!(find(&spans, "forward", left).is_none(), "held here");
    let presence = span("presence");
    assert_eq!(presence.parent_span_id, callback.span_id);
    assert_eq!(presence.attr("wsgate.route_key"), Some("$leave"));
    assert_eq!(presence.attr("wsgate.member_count"), Some("0"));
    assert_eq!(span("integration").parent_span_id, presence.span_id);

    // A group post and a broadcast: their callback spans name what they reached.
    let posted = "6bf92f3577b34da6a3ce929d0e0e4738";
    let post = client.post(a.http_url("/prod/@groups/team")).body("hi");
    assert_eq!(traced(post, posted).await, 200);
    let broadcast = "7bf92f3577b34da6a3ce929d0e0e4739";
    let post = client.post(a.http_url("/prod/@broadcast")).body("hi");
    assert_eq!(traced(post, broadcast).await, 200);
    let spans = receiver
        .wait_for("the posts' callback spans", |spans| {
            find(spans, "callback", posted).is_some()
                && find(spans, "callback", broadcast).is_some()
        })
        .await;
    let group_post = find(&spans, "callback", posted).expect("group post");
    assert_eq!(
        group_post.attr("http.route"),
        Some("/{stage}/@groups/{group}")
    );
    assert_eq!(group_post.attr("wsgate.group"), Some("team"));
    assert_eq!(group_post.parent_span_id, CALLER);
    let stage_post = find(&spans, "callback", broadcast).expect("broadcast");
    assert_eq!(stage_post.attr("http.route"), Some("/{stage}/@broadcast"));
    assert_eq!(stage_post.attr("http.response.status_code"), Some("200"));

    // Joined again, then closed: the $leave of a closed connection starts its own trace.
    let rejoined = "8bf92f3577b34da6a3ce929d0e0e473a";
    assert_eq!(traced(client.put(membership(&b)), rejoined).await, 204);
    backend.next_to("/presence").await;
    drop(ws);
    let event = loop {
        let event = backend.next().await;
        if event.path == "/presence" {
            break event;
        }
    };
    assert_eq!(event.json()["requestContext"]["routeKey"], "$leave");
    let (trace, _) = traceparent(&event);
    let spans = receiver
        .wait_for("the closing leave's span", |spans| {
            find(spans, "presence", &trace).is_some()
        })
        .await;
    let presence = find(&spans, "presence", &trace).expect("presence");
    assert_eq!(presence.parent_span_id, "", "a root");
    assert_eq!(presence.service, "node-b");
    assert_eq!(presence.attr("wsgate.route_key"), Some("$leave"));
}

#[tokio::test]
async fn a_route_with_models_records_its_validation_span() {
    let receiver = Receiver::http().await;
    let backend = Backend::ok().await;
    let yaml = config(&backend.url(), &receiver.config("models", ""))
        .replacen(
            "  routes:\n",
            "  models:\n    Note:\n      schema: {type: object, required: [text]}\n  routes:\n    checked:\n      integration: { type: mock, response: '{\"ok\":true}' }\n      route_response: true\n      request_models: {\"$default\": Note}\n",
            1,
        );
    let gw = TestGateway::start(&yaml).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"checked"}"#).await;
    assert!(next_text(&mut ws).await.contains("Bad request body"));
    send_text(&mut ws, r#"{"action":"checked","text":"hi"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"ok":true}"#);
    // A message span ends after its children, so once both are here their children are too.
    let spans = receiver
        .wait_for("both messages' spans", |spans| {
            (spans.iter())
                .filter(|s| s.name == "message" && s.attr("wsgate.route_key") == Some("checked"))
                .count()
                == 2
        })
        .await;
    for validation in spans.iter().filter(|s| s.name == "validation") {
        let message = find(&spans, "message", &validation.trace_id).expect("its message");
        assert_eq!(validation.parent_span_id, message.span_id);
        assert_eq!(message.attr("wsgate.route_key"), Some("checked"));
        let refused = find(&spans, "integration", &validation.trace_id).is_none();
        assert_eq!(validation.failed, refused, "{validation:#?}");
        assert_eq!(message.failed, refused, "{message:#?}");
    }
    let validations: Vec<bool> = (spans.iter())
        .filter(|s| s.name == "validation")
        .map(|s| s.failed)
        .collect();
    assert_eq!(validations.len(), 2, "one per message");
    assert_eq!(validations.iter().filter(|failed| **failed).count(), 1);
}
