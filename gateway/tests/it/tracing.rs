//! OpenTelemetry traces: the span tree of one message across two nodes (OTLP/HTTP and
//! OTLP/gRPC receivers started here), `traceparent` and `X-Amzn-Trace-Id` on integration calls,
//! sampling, and a collector that never answers.

use std::time::{Duration, Instant};

use crate::support::cluster::*;
use crate::support::otlp::{Receiver, Span};
use crate::support::*;

/// The backend's own span id in the `traceparent` it sends with its callback.
const BACKEND_SPAN: &str = "0123456789abcdef";

fn find<'a>(spans: &'a [Span], name: &str, trace: &str) -> Option<&'a Span> {
    spans.iter().find(|s| s.name == name && s.trace_id == trace)
}

fn x_ray(trace: &str, parent: &str, sampled: bool) -> String {
    format!(
        "Root=1-{}-{};Parent={parent};Sampled={}",
        &trace[..8],
        &trace[8..],
        u8::from(sampled)
    )
}

/// The `traceparent` parts (trace id, span id, flags) of a backend request.
fn traceparent(received: &Received) -> (String, String, String) {
    let value = (received.headers.get("traceparent"))
        .and_then(|v| v.to_str().ok())
        .expect("the integration request carries a traceparent");
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00", "{value}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

fn header<'a>(received: &'a Received, name: &str) -> Option<&'a str> {
    received.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Client on node A sends a message; its integration (the backend) pushes through A's callback
/// API, with its own `traceparent`, to a connection held by node B.
async fn one_message_across_two_nodes(receiver: Receiver) {
    let backend = Backend::ok().await;
    let (store, _cleanup) = shared_store();
    let a = TestGateway::start(&node_config(
        &backend.url(),
        &store,
        &receiver.config("node-a", ""),
    ))
    .await;
    let b = TestGateway::start(&node_config(
        &backend.url(),
        &store,
        &receiver.config("node-b", ""),
    ))
    .await;
    let (mut b_ws, b_id) = connect_and_id(&backend, &b.ws_url("/prod")).await;
    let mut a_ws = connect(&a.ws_url("/prod")).await;
    let connect_event = backend.next_to("/connect").await;

    send_text(&mut a_ws, r#"{"action":"sendmessage","text":"hi"}"#).await;
    let call = backend.next_to("/sendmessage").await;
    let (trace, integration_id, flags) = traceparent(&call);
    assert_eq!(flags, "01");
    assert_eq!(
        header(&call, "x-amzn-trace-id"),
        Some(x_ray(&trace, &integration_id, true).as_str()),
        "X-Amzn-Trace-Id is the same trace in the X-Ray form"
    );

    // The backend answers through node A with its own span as the parent.
    let status = http()
        .post(a.http_url(&format!("/prod/@connections/{b_id}")))
        .header("traceparent", format!("00-{trace}-{BACKEND_SPAN}-01"))
        .body("pushed")
        .send()
        .await
        .expect("callback answered")
        .status();
    assert_eq!(status, 200);
    assert_eq!(next_text(&mut b_ws).await, "pushed");

    let spans = receiver
        .wait_for("the message's spans from both nodes", |spans| {
            [
                "message",
                "route_selection",
                "throttle",
                "integration",
                "callback",
                "forward",
                "deliver",
            ]
            .iter()
            .all(|name| find(spans, name, &trace).is_some())
        })
        .await;
    let span = |name: &str| find(&spans, name, &trace).expect(name).clone();
    let message = span("message");
    assert_eq!(message.parent_span_id, "", "a message starts its trace");
    assert_eq!(message.service, "node-a");
    assert_eq!(message.attr("wsgate.route_key"), Some("sendmessage"));
    for name in ["route_selection", "throttle", "integration"] {
        let child = span(name);
        assert_eq!(
            child.parent_span_id, message.span_id,
            "{name} under message"
        );
        assert_eq!(child.service, "node-a");
    }
    let integration = span("integration");
    assert_eq!(
        integration.span_id, integration_id,
        "the backend's traceparent names the integration span"
    );
    assert_eq!(
        integration.attr("wsgate.integration.type"),
        Some("aws_proxy")
    );
    assert_eq!(integration.attr("http.response.status_code"), Some("200"));
    assert!(
        find(&spans, "validation", &trace).is_none(),
        "no models, no validation"
    );

    let callback = span("callback");
    assert_eq!(callback.parent_span_id, BACKEND_SPAN, "child of the caller");
    assert_eq!(callback.service, "node-a");
    assert_eq!(callback.attr("http.response.status_code"), Some("200"));
    let forward = span("forward");
    assert_eq!(forward.parent_span_id, callback.span_id);
    assert_eq!(forward.service, "node-a");
    assert_eq!(forward.attr("wsgate.outcome"), Some("done"));
    let deliver = span("deliver");
    assert_eq!(deliver.parent_span_id, forward.span_id, "across the bus");
    assert_eq!(deliver.service, "node-b");

    // The handshake of the client on A: the CONNECT event's X-Amzn-Trace-Id is its trace.
    let amzn = connect_event.json()["headers"]["X-Amzn-Trace-Id"]
        .as_str()
        .expect("X-Amzn-Trace-Id on CONNECT")
        .to_string();
    let spans = receiver
        .wait_for("node A's handshake", |spans| {
            spans.iter().any(|s| {
                s.name == "handshake"
                    && s.service == "node-a"
                    && amzn == x_ray(&s.trace_id, &s.span_id, true)
            })
        })
        .await;
    let handshake = (spans.iter())
        .find(|s| s.name == "handshake" && amzn == x_ray(&s.trace_id, &s.span_id, true))
        .expect("handshake");
    assert_eq!(handshake.attr("http.response.status_code"), Some("200"));
    let connect_call = (spans.iter())
        .find(|s| s.name == "integration" && s.parent_span_id == handshake.span_id)
        .expect("$connect's integration span under the handshake");
    assert_eq!(connect_call.attr("wsgate.route_key"), Some("$connect"));
    let (connect_trace, connect_parent, _) = traceparent(&connect_event);
    assert_eq!(connect_trace, handshake.trace_id);
    assert_eq!(connect_parent, connect_call.span_id);
}

#[tokio::test]
async fn one_message_across_two_nodes_over_otlp_http() {
    one_message_across_two_nodes(Receiver::http().await).await;
}

#[tokio::test]
async fn one_message_across_two_nodes_over_otlp_grpc() {
    one_message_across_two_nodes(Receiver::grpc().await).await;
}

#[tokio::test]
async fn a_caller_traceparent_is_continued_by_the_handshake_and_replaced_towards_http_proxy() {
    let receiver = Receiver::http().await;
    let backend = Backend::ok().await;
    let yaml = config(&backend.url(), &receiver.config("solo", "")).replace(
        "$connect:\n      integration: { type: aws_proxy, uri: \"${stageVariables.backend}/connect\", timeout: 2s }",
        "$connect:\n      integration: { type: http_proxy, uri: \"${stageVariables.backend}/connect\", timeout: 2s }",
    );
    let gw = TestGateway::start(&yaml).await;
    let caller = "00-11111111111111111111111111111111-2222222222222222-01";
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            gw.ws_url("/prod"),
        )
        .expect("request");
    request
        .headers_mut()
        .insert("traceparent", caller.parse().expect("value"));
    let (_ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connected");
    let connect = backend.next_to("/connect").await;
    let forwarded: Vec<&str> = (connect.headers.get_all("traceparent").iter())
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(
        forwarded.len(),
        1,
        "{forwarded:?}: the client's is replaced"
    );
    let (trace, parent, _) = traceparent(&connect);
    assert_eq!(trace, "11111111111111111111111111111111");
    let spans = receiver
        .wait_for("handshake", |spans| {
            find(spans, "handshake", &trace).is_some()
                && find(spans, "integration", &trace).is_some()
        })
        .await;
    let handshake = find(&spans, "handshake", &trace).expect("handshake");
    assert_eq!(handshake.parent_span_id, "2222222222222222");
    assert_eq!(
        find(&spans, "integration", &trace)
            .expect("integration")
            .span_id,
        parent
    );
}

#[tokio::test]
async fn sampling_follows_the_ratio_and_the_callers_decision() {
    let receiver = Receiver::http().await;
    let backend = Backend::ok().await;
    let post = |gw: &TestGateway, id: &str, traceparent: &str| {
        http()
            .post(gw.http_url(&format!("/prod/@connections/{id}")))
            .header("traceparent", traceparent.to_string())
            .body("x")
            .send()
    };
    let sampled = "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-1111111111111111-01";
    let unsampled = "00-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-1111111111111111-00";

    // Ratio 0: nothing that starts here is recorded; a sampled caller still is (parent-based).
    let mut none = TestGateway::start(&config(
        &backend.url(),
        &receiver.config("ratio-0", "  sampler:\n    ratio: 0\n"),
    ))
    .await;
    let (mut ws, id) = connect_and_id(&backend, &none.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"action":"pong"}"#);
    let status = post(&none, &id, unsampled)
        .await
        .expect("answered")
        .status();
    assert_eq!(status, 200);
    let status = post(&none, &id, sampled).await.expect("answered").status();
    assert_eq!(status, 200);
    next_text(&mut ws).await;
    next_text(&mut ws).await;
    drop(ws);
    // Shutting down exports everything recorded.
    none.shutdown().await;
    let spans = receiver.spans();
    assert_eq!(
        spans.len(),
        1,
        "only the sampled caller's callback: {spans:#?}"
    );
    assert_eq!(spans[0].name, "callback");
    assert_eq!(spans[0].trace_id, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");

    // Ratio 1, parent-based: a caller that did not sample is not recorded; the rest is.
    let mut all =
        TestGateway::start(&config(&backend.url(), &receiver.config("ratio-1", ""))).await;
    let (mut ws, id) = connect_and_id(&backend, &all.ws_url("/prod")).await;
    let status = post(&all, &id, unsampled).await.expect("answered").status();
    assert_eq!(status, 200);
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    next_text(&mut ws).await;
    next_text(&mut ws).await;
    drop(ws);
    all.shutdown().await;
    let spans: Vec<Span> = (receiver.spans().into_iter())
        .filter(|s| s.service == "ratio-1")
        .collect();
    assert!(
        spans.iter().any(|s| s.name == "message"),
        "ratio 1 records messages: {spans:#?}"
    );
    assert!(
        !spans
            .iter()
            .any(|s| s.trace_id == "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
        "the unsampled caller's trace is not recorded: {spans:#?}"
    );
}

#[tokio::test]
async fn without_tracing_integrations_get_no_trace_headers_and_a_fresh_x_ray_id() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    let connect = backend.next_to("/connect").await;
    let amzn = connect.json()["headers"]["X-Amzn-Trace-Id"]
        .as_str()
        .expect("X-Amzn-Trace-Id")
        .to_string();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let rest = amzn.strip_prefix("Root=1-").expect(&amzn);
    let (time, random) = rest.split_once('-').expect(&amzn);
    assert!(hex(time, 8) && hex(random, 24), "{amzn}");
    assert!(connect.headers.get("traceparent").is_none());
    send_text(&mut ws, r#"{"action":"sendmessage"}"#).await;
    let call = backend.next_to("/sendmessage").await;
    for name in ["traceparent", "tracestate", "x-amzn-trace-id"] {
        assert!(
            call.headers.get(name).is_none(),
            "{name} sent with tracing off"
        );
    }
    send_text(&mut ws, r#"{"action":"other"}"#).await;
    let call = backend.next_to("/default").await;
    assert!(call.headers.get("traceparent").is_none());
}

/// A collector that accepts connections and never answers.
async fn silent_collector() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("http://{addr}/v1/traces"), task)
}

fn dropped(metrics: &str) -> f64 {
    (metrics.lines())
        .find_map(|l| l.strip_prefix("wsgate_trace_spans_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_collector_that_never_answers_costs_messages_nothing_but_dropped_spans() {
    let (endpoint, collector) = silent_collector().await;
    let backend = Backend::ok().await;
    let tracing = format!(
        "tracing:\n  enabled: true\n  otlp:\n    endpoint: {endpoint}\n    protocol: http_protobuf\n    timeout: 30s\n  batch:\n    max_queue_spans: 8\n    max_export_spans: 4\n    export_interval: 10ms\n"
    );
    let gw = TestGateway::start(&config(&backend.url(), &tracing)).await;
    let metrics_url = gw.http_url("/metrics");
    let before = dropped(&get_text(&http(), metrics_url.clone()).await);
    let (mut ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let started = Instant::now();
    for _ in 0..200 {
        send_text(&mut ws, r#"{"action":"ping"}"#).await;
        assert_eq!(next_text(&mut ws).await, r#"{"action":"pong"}"#);
    }
    // 200 local round trips; an export stuck for 30 s would hold any that waited for it.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let after = dropped(&get_text(&http(), metrics_url).await);
    // 800 spans (message, route_selection, throttle, integration), a queue of 8, one export
    // of 4 stuck: most were dropped and counted.
    assert!(after - before >= 700.0, "dropped {before} → {after}");
    collector.abort();
}

/// The span id of the `integration` span in `trace` (waits for the export).
async fn integration_span(receiver: &Receiver, trace: &str) -> Span {
    let spans = receiver
        .wait_for("the integration span", |spans| {
            find(spans, "integration", trace).is_some()
        })
        .await;
    find(&spans, "integration", trace)
        .expect("integration span")
        .clone()
}

#[tokio::test]
async fn http_integrations_and_lambda_functions_by_arn_carry_the_trace() {
    use crate::support::lambda::{REGION, aws_section, credentials_file};
    let receiver = Receiver::http().await;
    let backend = Backend::ok().await;
    // The Invoke API's stand-in: every invocation answers an empty 200.
    let invoke = Backend::start(|_| Reply::lambda(200, None)).await;
    let file = credentials_file();
    let routes = format!(
        "    plain:\n      integration: {{ type: http, uri: \"${{stageVariables.backend}}/plain\", timeout: 2s }}\n    \
         lambda:\n      integration: {{ type: aws_proxy, uri: \"arn:aws:lambda:{REGION}:123456789012:function:traced\", timeout: 2s }}\n    \
         ping:\n"
    );
    let extra = format!(
        "{}{}",
        receiver.config("solo", ""),
        aws_section(&invoke.url(), &file)
    );
    let yaml = config(&backend.url(), &extra).replacen("    ping:\n", &routes, 1);
    let gw = TestGateway::start(&yaml).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;

    // `http` (a mapped, non-proxy integration): traceparent and X-Amzn-Trace-Id, as the proxies.
    send_text(&mut ws, r#"{"action":"plain"}"#).await;
    let call = backend.next_to("/plain").await;
    let (trace, parent, flags) = traceparent(&call);
    assert_eq!(flags, "01");
    let span = integration_span(&receiver, &trace).await;
    assert_eq!(
        span.span_id, parent,
        "the traceparent names the integration span"
    );
    assert_eq!(span.attr("wsgate.integration.type"), Some("http"));
    assert_eq!(
        header(&call, "x-amzn-trace-id"),
        Some(x_ray(&trace, &parent, true).as_str())
    );

    // A Lambda function by ARN: the Invoke request carries X-Amzn-Trace-Id (what Lambda reads to
    // continue the trace in the function), its SigV4 signature untouched.
    send_text(&mut ws, r#"{"action":"lambda"}"#).await;
    let call = loop {
        let call = invoke.next().await;
        if call.path.contains("traced") {
            break call;
        }
    };
    let amzn = header(&call, "x-amzn-trace-id")
        .expect("the Invoke request carries X-Amzn-Trace-Id")
        .to_string();
    let root = amzn
        .strip_prefix("Root=1-")
        .and_then(|rest| rest.split(';').next())
        .expect(&amzn)
        .replace('-', "");
    let span = integration_span(&receiver, &root).await;
    assert_eq!(span.attr("wsgate.integration.type"), Some("aws_proxy"));
    assert_eq!(amzn, x_ray(&root, &span.span_id, true));
    assert!(
        header(&call, "authorization").is_some_and(|a| !a.contains("x-amzn-trace-id")),
        "X-Amzn-Trace-Id is outside the signed headers"
    );
}
