//! Acknowledged client messages (a route's `ack:`): a real HTTP backend counting the calls per
//! client message id, real WebSocket clients, the memory store and the shared Redis. Duplicates
//! are acknowledged on every send and reach the integration once: on one connection, across a
//! reconnect (also while the first copy is still in flight), across two nodes; a failure is
//! nacked and its retry runs once; ids are forgotten after their window; a store that fails or
//! is full answers a retryable nack and nothing reaches the integration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use wsgate_connection_store::conformance::servers::RedisServer;

use crate::faults::acl;
use crate::support::cluster::*;
use crate::support::*;

/// What the backend does with one client message, by the message's `do` field.
#[derive(Clone, Default)]
struct Calls {
    /// Calls per client message id.
    per_id: Arc<Mutex<HashMap<String, usize>>>,
    /// Answers held until notified, per client message id.
    holds: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl Calls {
    fn count(&self, id: &str) -> usize {
        self.per_id.lock().unwrap().get(id).copied().unwrap_or(0)
    }

    fn hold(&self, id: &str) -> Arc<Notify> {
        let gate = Arc::new(Notify::new());
        self.holds
            .lock()
            .unwrap()
            .insert(id.into(), Arc::clone(&gate));
        gate
    }
}

/// A backend for the `send` and `reply` routes: counts calls per id (`id` or `meta.id`); `"do":"fail-once"` answers 502 to the
/// first call of an id, `"do":"reject"` answers a Lambda 400; held ids wait for their gate.
async fn backend(calls: &Calls) -> Backend {
    let calls = calls.clone();
    Backend::start(move |r| {
        if r.path != "/send" {
            return Reply::lambda(200, None);
        }
        let event = r.json();
        let body: Value = serde_json::from_str(event["body"].as_str().unwrap_or("{}")).unwrap();
        let raw_id = if body["id"].is_null() {
            &body["meta"]["id"]
        } else {
            &body["id"]
        };
        let id = match raw_id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let n = {
            let mut per_id = calls.per_id.lock().unwrap();
            let n = per_id.entry(id.clone()).or_default();
            *n += 1;
            *n
        };
        let mut reply = match body["do"].as_str() {
            Some("fail-once") if n == 1 => Reply::http(502, "bad gateway"),
            Some("reject") => Reply::lambda(400, Some("no")),
            _ => Reply::lambda(200, Some("done")),
        };
        reply.hold = calls.holds.lock().unwrap().get(&id).cloned();
        reply
    })
    .await
}

/// A config with the acknowledged routes `send` (`$.id`) and `reply` (two-way, `$.meta.id`).
fn ack_config(backend: &str, window: &str, extra: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: acks
  route_selection_expression: $request.body.action
  stages:
    prod: {{ variables: {{ backend: {backend} }} }}
  routes:
    $connect: {{ integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/connect" }} }}
    $disconnect: {{ integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/disconnect" }} }}
    send:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/send", timeout: 5s }}
      ack: {{ id: $.id, window: {window} }}
    reply:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/send", timeout: 5s }}
      route_response: true
      ack: {{ id: $.meta.id, window: {window} }}
{extra}
"#
    )
}

/// Waits until the first call for `id` reached the backend.
async fn reached(calls: &Calls, id: &str) {
    eventually("the call reached the backend", DEADLINE, || async {
        calls.count(id) == 1
    })
    .await;
}

fn send_msg(id: &str, what: &str) -> String {
    json!({"action": "send", "id": id, "do": what}).to_string()
}

async fn next_json(ws: &mut Ws) -> Value {
    serde_json::from_str(&next_text(ws).await).expect("a JSON frame")
}

/// Sends `send` with `id` and returns the frame it gets.
async fn send(ws: &mut Ws, id: &str, what: &str) -> Value {
    send_text(ws, &send_msg(id, what)).await;
    next_json(ws).await
}

#[tokio::test]
async fn duplicates_are_acknowledged_each_time_and_reach_the_integration_once() {
    let calls = Calls::default();
    let backend = backend(&calls).await;
    let gw = TestGateway::start(&ack_config(&backend.url(), "5m", "")).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    for _ in 0..3 {
        assert_eq!(send(&mut ws, "m1", "").await, json!({"ack": "m1"}));
    }
    assert_eq!(calls.count("m1"), 1);
    // Integer ids come back as integers; other ids are separate.
    send_text(&mut ws, r#"{"action":"send","id":42}"#).await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 42}));
    assert_eq!(send(&mut ws, "m2", "").await, json!({"ack": "m2"}));
    assert_eq!((calls.count("42"), calls.count("m2")), (1, 1));
    // A two-way route answers, then acknowledges; its duplicate is only acknowledged.
    let reply = json!({"action": "reply", "meta": {"id": "r1"}}).to_string();
    send_text(&mut ws, &reply).await;
    assert_eq!(next_text(&mut ws).await, "done");
    assert_eq!(next_json(&mut ws).await, json!({"ack": "r1"}));
    send_text(&mut ws, &reply).await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": "r1"}));
    assert_eq!(calls.count("r1"), 1);
}

#[tokio::test]
async fn a_message_without_a_usable_id_gets_an_error_frame() {
    let calls = Calls::default();
    let backend = backend(&calls).await;
    let gw = TestGateway::start(&ack_config(&backend.url(), "5m", "")).await;
    let (mut ws, connection_id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    for (message, error) in [
        (r#"{"action":"send"}"#, "Missing message id at $.id"),
        (
            r#"{"action":"send","id":null}"#,
            "Missing message id at $.id",
        ),
        (
            r#"{"action":"send","id":""}"#,
            "Invalid message id at $.id: a string or an integer of 1 to 128 bytes",
        ),
        (
            r#"{"action":"send","id":{"a":1}}"#,
            "Invalid message id at $.id: a string or an integer of 1 to 128 bytes",
        ),
    ] {
        send_text(&mut ws, message).await;
        let frame = next_json(&mut ws).await;
        assert_eq!(frame["message"], error, "{message}");
        assert_eq!(frame["connectionId"], connection_id.as_str());
        assert!(frame["requestId"].is_string());
    }
    let long = "x".repeat(129);
    let frame = send(&mut ws, &long, "").await;
    assert!(
        frame["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid message id")
    );
    // Nothing reached the integration; the connection still works.
    assert_eq!(send(&mut ws, "ok", "").await, json!({"ack": "ok"}));
    assert_eq!(calls.per_id.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_resend_after_a_reconnect_is_acknowledged_without_a_second_call() {
    let calls = Calls::default();
    let backend = backend(&calls).await;
    let gw = TestGateway::start(&ack_config(&backend.url(), "5m", "")).await;
    let mut first = connect(&gw.ws_url("/prod")).await;
    assert_eq!(send(&mut first, "a1", "").await, json!({"ack": "a1"}));
    first.close(None).await.expect("close");
    let mut second = connect(&gw.ws_url("/prod")).await;
    assert_eq!(send(&mut second, "a1", "").await, json!({"ack": "a1"}));
    assert_eq!(calls.count("a1"), 1);
}

#[tokio::test]
async fn a_resend_while_the_first_copy_is_in_flight_waits_for_it_on_the_same_node() {
    let calls = Calls::default();
    let gate = calls.hold("slow");
    let backend = backend(&calls).await;
    let gw = TestGateway::start(&ack_config(&backend.url(), "5m", "")).await;
    let mut first = connect(&gw.ws_url("/prod")).await;
    send_text(&mut first, &send_msg("slow", "")).await;
    reached(&calls, "slow").await;
    // The client gives up on the connection before the ack and resends on a new one; the
    // first copy is still being handled (a closed connection's messages still drain).
    drop(first);
    let mut second = connect(&gw.ws_url("/prod")).await;
    send_text(&mut second, &send_msg("slow", "")).await;
    // Nothing is answered before the first copy completes.
    let early = tokio::time::timeout(Duration::from_millis(200), next_text(&mut second)).await;
    assert!(
        early.is_err(),
        "answered before the first copy completed: {early:?}"
    );
    gate.notify_one();
    assert_eq!(next_json(&mut second).await, json!({"ack": "slow"}));
    assert_eq!(calls.count("slow"), 1);
}

#[tokio::test]
async fn a_copy_waiting_on_a_first_copy_that_fails_runs_itself() {
    let calls = Calls::default();
    let gate = calls.hold("doomed");
    let backend = backend(&calls).await;
    let gw = TestGateway::start(&ack_config(&backend.url(), "5m", "")).await;
    let mut first = connect(&gw.ws_url("/prod")).await;
    send_text(&mut first, &send_msg("doomed", "fail-once")).await;
    reached(&calls, "doomed").await;
    let mut second = connect(&gw.ws_url("/prod")).await;
    send_text(&mut second, &send_msg("doomed", "fail-once")).await;
    gate.notify_one();
    // The first copy fails (its sender gets the nack); the waiting copy then claims the id,
    // is held at the same gate, and succeeds.
    let nack = next_json(&mut first).await;
    assert_eq!(
        (nack["nack"].clone(), nack["retryable"].clone()),
        (json!("doomed"), json!(true))
    );
    eventually("the second copy reached the backend", DEADLINE, || async {
        calls.count("doomed") == 2
    })
    .await;
    gate.notify_one();
    assert_eq!(next_json(&mut second).await, json!({"ack": "doomed"}));
    assert_eq!(
        send(&mut first, "doomed", "").await,
        json!({"ack": "doomed"})
    );
    assert_eq!(calls.count("doomed"), 2);
}

#[tokio::test]
async fn a_failed_call_is_nacked_and_its_retry_runs_once() {
    let calls = Calls::default();
    let backend = backend(&calls).await;
    let gw = TestGateway::start(&ack_config(&backend.url(), "5m", "")).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    let nack = send(&mut ws, "f1", "fail-once").await;
    assert_eq!(nack["nack"], "f1");
    assert_eq!(nack["retryable"], true);
    assert_eq!(nack["message"], "Internal server error");
    assert!(nack["requestId"].is_string());
    assert_eq!(send(&mut ws, "f1", "fail-once").await, json!({"ack": "f1"}));
    assert_eq!(send(&mut ws, "f1", "fail-once").await, json!({"ack": "f1"}));
    assert_eq!(calls.count("f1"), 2, "the failed call and the retry");
    // A 4xx answer is not worth a retry.
    let nack = send(&mut ws, "x1", "reject").await;
    assert_eq!(
        (nack["nack"].clone(), nack["retryable"].clone()),
        (json!("x1"), json!(false))
    );
}

#[tokio::test]
async fn ids_are_forgotten_after_their_window() {
    let calls = Calls::default();
    let backend = backend(&calls).await;
    let gw = TestGateway::start(&ack_config(&backend.url(), "300ms", "")).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    assert_eq!(send(&mut ws, "w1", "").await, json!({"ack": "w1"}));
    assert_eq!(send(&mut ws, "w1", "").await, json!({"ack": "w1"}));
    assert_eq!(calls.count("w1"), 1, "a duplicate within the window");
    // Resent until the window has passed: the copy after it reaches the integration again.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while calls.count("w1") < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the id never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(send(&mut ws, "w1", "").await, json!({"ack": "w1"}));
    }
    assert_eq!(calls.count("w1"), 2);
}

#[tokio::test]
async fn a_full_memory_table_answers_a_retryable_nack() {
    let calls = Calls::default();
    let backend = backend(&calls).await;
    let extra = "limits:\n  ack_ids: 2\n";
    let gw = TestGateway::start(&ack_config(&backend.url(), "300ms", extra)).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    assert_eq!(send(&mut ws, "t1", "").await, json!({"ack": "t1"}));
    assert_eq!(send(&mut ws, "t2", "").await, json!({"ack": "t2"}));
    let nack = send(&mut ws, "t3", "").await;
    assert_eq!(nack["nack"], "t3");
    assert_eq!(nack["retryable"], true);
    assert_eq!(nack["message"], "Service Unavailable");
    assert_eq!(calls.count("t3"), 0, "refused before the integration");
    // Known ids are still recognised while full; once the others expire, t3 goes through.
    assert_eq!(send(&mut ws, "t1", "").await, json!({"ack": "t1"}));
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while send(&mut ws, "t3", "").await != json!({"ack": "t3"}) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "t3 never found room"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(calls.count("t3"), 1);
}

#[tokio::test]
async fn duplicates_are_recognised_across_two_nodes_on_redis() {
    let calls = Calls::default();
    let backend = backend(&calls).await;
    let (store, _cleanup) = shared_store();
    let extra = format!("{store}{TEST_PROFILE}");
    let a = TestGateway::start(&ack_config(&backend.url(), "5m", &extra)).await;
    let b = TestGateway::start(&ack_config(&backend.url(), "5m", &extra)).await;
    let mut on_a = connect(&a.ws_url("/prod")).await;
    assert_eq!(send(&mut on_a, "n1", "").await, json!({"ack": "n1"}));
    let mut on_b = connect(&b.ws_url("/prod")).await;
    assert_eq!(send(&mut on_b, "n1", "").await, json!({"ack": "n1"}));
    assert_eq!(calls.count("n1"), 1);

    // While the first copy is in flight on A, B answers `pending`; after it, an ack.
    let gate = calls.hold("n2");
    send_text(&mut on_a, &send_msg("n2", "")).await;
    reached(&calls, "n2").await;
    assert_eq!(send(&mut on_b, "n2", "").await, json!({"pending": "n2"}));
    gate.notify_one();
    assert_eq!(next_json(&mut on_a).await, json!({"ack": "n2"}));
    assert_eq!(send(&mut on_b, "n2", "").await, json!({"ack": "n2"}));
    assert_eq!(calls.count("n2"), 1);

    // A failure on A is retried through B and runs once more.
    let nack = send(&mut on_a, "n3", "fail-once").await;
    assert_eq!(nack["retryable"], true);
    assert_eq!(
        send(&mut on_b, "n3", "fail-once").await,
        json!({"ack": "n3"})
    );
    assert_eq!(
        send(&mut on_a, "n3", "fail-once").await,
        json!({"ack": "n3"})
    );
    assert_eq!(calls.count("n3"), 2);
}

#[tokio::test]
async fn a_failing_store_answers_a_retryable_nack_and_calls_nothing() {
    let redis = RedisServer::start().await;
    let calls = Calls::default();
    let backend = backend(&calls).await;
    let store = redis_store(&redis.url(), &unique_prefix());
    let extra = format!("{store}{TEST_PROFILE}");
    let gw = TestGateway::start(&ack_config(&backend.url(), "5m", &extra)).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    assert_eq!(send(&mut ws, "s0", "").await, json!({"ack": "s0"}));
    // The store refuses scripts (a real Redis error): the claim fails.
    acl(&redis, "-@scripting").await;
    let nack = send(&mut ws, "s1", "").await;
    assert_eq!(nack["nack"], "s1");
    assert_eq!(nack["retryable"], true);
    assert_eq!(nack["message"], "Service Unavailable");
    assert_eq!(calls.count("s1"), 0, "not sent without its claim");
    acl(&redis, "+@scripting").await;
    assert_eq!(send(&mut ws, "s1", "").await, json!({"ack": "s1"}));
    assert_eq!(send(&mut ws, "s1", "").await, json!({"ack": "s1"}));
    assert_eq!(calls.count("s1"), 1);
}
