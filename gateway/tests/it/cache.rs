//! Response caching of two-way routes: hits never reach the backend and send the same frame,
//! keys, ttl, coalesced misses, what is not cached, invalidation through the callback API, the
//! Redis kind shared by two nodes, Redis down, the memory bound, `Cache-Control`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wsgate_connection_store::conformance::servers::{RedisCluster, RedisServer};

use crate::support::cluster::{
    cluster_store, eventually, redis_store, shared_store, unique_prefix,
};
use crate::support::*;

const TOKEN: &str = "cache-test-token-0123456789";

/// A backend that counts its calls and answers each with the call's number, so a cached answer
/// shows an old number: `/quote` JSON (500 for symbol `ERR`), `/bin` binary, `/cc` with the
/// `Cache-Control` the message asks for, `/lambda` a Lambda proxy answer.
async fn counting_backend() -> (Backend, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let backend = Backend::start(move |r| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let symbol = body["symbol"].as_str().unwrap_or_default().to_string();
        let answer = json!({ "symbol": symbol, "n": n }).to_string();
        match r.path.as_str() {
            _ if symbol == "ERR" => Reply::http(500, &answer),
            "/bin" => Reply {
                status: 200,
                body: format!("bin-{symbol}-{n}"),
                headers: vec![("content-type".into(), "application/octet-stream".into())],
                hold: None,
            },
            "/cc" => Reply {
                status: 200,
                body: answer,
                headers: vec![(
                    "cache-control".into(),
                    body["cc"].as_str().unwrap_or("public").to_string(),
                )],
                hold: None,
            },
            "/lambda" => Reply::lambda(200, Some(&answer)),
            // Never answered: the integration times out.
            "/slow" => Reply {
                status: 200,
                body: answer,
                headers: vec![],
                hold: Some(Arc::new(tokio::sync::Notify::new())),
            },
            _ => Reply::http(200, &answer),
        }
    })
    .await;
    (backend, calls)
}

/// A gateway config with cached routes on stage `stage`; `cache` is the `cache:` section,
/// `extra` more top-level sections.
fn cache_config(backend: &str, stage: &str, cache: &str, extra: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
callback:
  auth: {{ kind: bearer, tokens: ["{TOKEN}"] }}
cache: {cache}
api:
  name: quotes
  route_selection_expression: $request.body.action
  stages:
    {stage}:
      variables: {{ backend: "{backend}", region: eu }}
  routes:
    quote:
      integration: {{ type: http_proxy, uri: "${{stageVariables.backend}}/quote", timeout: 2s }}
      route_response: true
      cache:
        ttl: 30s
        key: ["$request.body.symbol", "$request.querystring.region", "$stageVariables.region"]
    bin:
      integration: {{ type: http_proxy, uri: "${{stageVariables.backend}}/bin", timeout: 2s }}
      route_response: true
      cache: {{ ttl: 30s, key: ["$request.body.symbol"] }}
    short:
      integration: {{ type: http_proxy, uri: "${{stageVariables.backend}}/short", timeout: 2s }}
      route_response: true
      cache: {{ ttl: 1s, key: ["$request.body.symbol"] }}
    cc:
      integration: {{ type: http_proxy, uri: "${{stageVariables.backend}}/cc", timeout: 2s }}
      route_response: true
      cache: {{ ttl: 30s, key: ["$request.body.symbol"], honour_cache_control: true }}
    lambda:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/lambda", timeout: 2s }}
      route_response: true
      cache: {{ ttl: 30s, key: ["$request.body.symbol"] }}
    plain:
      integration: {{ type: http_proxy, uri: "${{stageVariables.backend}}/plain", timeout: 2s }}
      route_response: true
    slow:
      integration: {{ type: http_proxy, uri: "${{stageVariables.backend}}/slow", timeout: 100ms }}
      route_response: true
      cache: {{ ttl: 30s, key: ["$request.body.symbol"] }}
{extra}
"#
    )
}

const MEMORY: &str = "{ kind: memory, max_bytes: 1MiB, max_entry_bytes: 64KiB }";

/// Sends `action`/`symbol` and answers the frame that comes back.
async fn ask(ws: &mut Ws, action: &str, symbol: &str) -> Message {
    let text = json!({ "action": action, "symbol": symbol }).to_string();
    send_text(ws, &text).await;
    next_frame(ws).await
}

/// Asks and answers the backend call number of the answer.
async fn quote_n(ws: &mut Ws, action: &str, symbol: &str) -> u64 {
    call_number(&ask(ws, action, symbol).await)
}

/// The `n` (backend call number) of a JSON answer.
fn call_number(frame: &Message) -> u64 {
    let Message::Text(text) = frame else {
        panic!("expected text, got {frame:?}");
    };
    let value: Value = serde_json::from_str(text).expect("JSON answer");
    value["n"].as_u64().expect("n")
}

/// A metric's value for `stage` (summed over its series with that stage).
async fn metric(gw_http: String, name: &str, stage: &str) -> f64 {
    let text = get_text(&http(), gw_http).await;
    let label = format!("stage=\"{stage}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A callback `DELETE` on `path` (with the bearer token); answers the status and JSON body.
async fn delete(base: &str, path: &str, body: &str) -> (u16, Value) {
    let response = http()
        .delete(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .body(body.to_string())
        .send()
        .await
        .expect("callback answered");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_repeated_request_is_answered_from_the_cache() {
    let (backend, calls) = counting_backend().await;
    let stage = "hits";
    let gw = TestGateway::start(&cache_config(&backend.url(), stage, MEMORY, "")).await;
    let mut ws = connect(&gw.ws_url(&format!("/{stage}?region=eu"))).await;

    let first = ask(&mut ws, "quote", "AAPL").await;
    let second = ask(&mut ws, "quote", "AAPL").await;
    assert_eq!(first, second, "the same frame, byte for byte");
    assert_eq!(call_number(&first), 1);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the backend was called once"
    );

    // Another symbol is another key; so is another region of the upgrade request.
    assert_eq!(call_number(&ask(&mut ws, "quote", "MSFT").await), 2);
    let mut other_region = connect(&gw.ws_url(&format!("/{stage}?region=us"))).await;
    assert_eq!(
        call_number(&ask(&mut other_region, "quote", "AAPL").await),
        3
    );
    // The same region on another connection shares the entry.
    let mut same_region = connect(&gw.ws_url(&format!("/{stage}?region=eu"))).await;
    assert_eq!(
        call_number(&ask(&mut same_region, "quote", "AAPL").await),
        1
    );
    // A message without the key's body part is a key of its own (null), not an error.
    send_text(&mut ws, r#"{"action":"quote"}"#).await;
    assert_eq!(call_number(&next_frame(&mut ws).await), 4);
    send_text(&mut ws, r#"{"action":"quote","symbol":null}"#).await;
    assert_eq!(call_number(&next_frame(&mut ws).await), 4);

    // aws_proxy answers are cached as well; a route without cache always calls.
    assert_eq!(call_number(&ask(&mut ws, "lambda", "AAPL").await), 5);
    assert_eq!(call_number(&ask(&mut ws, "lambda", "AAPL").await), 5);
    assert_eq!(call_number(&ask(&mut ws, "plain", "AAPL").await), 6);
    assert_eq!(call_number(&ask(&mut ws, "plain", "AAPL").await), 7);

    let url = gw.http_url("/metrics");
    assert_eq!(
        metric(url.clone(), "wsgate_cache_hit_total", stage).await,
        4.0
    );
    assert_eq!(metric(url, "wsgate_cache_miss_total", stage).await, 5.0);
}

#[tokio::test]
async fn errors_and_timeouts_are_not_cached_and_binary_answers_stay_binary() {
    let (backend, calls) = counting_backend().await;
    let gw = TestGateway::start(&cache_config(&backend.url(), "errs", MEMORY, "")).await;
    let mut ws = connect(&gw.ws_url("/errs")).await;

    assert_eq!(call_number(&ask(&mut ws, "quote", "ERR").await), 1);
    assert_eq!(call_number(&ask(&mut ws, "quote", "ERR").await), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "a 500 is never cached");
    for expected_calls in [3, 4] {
        let Message::Text(text) = ask(&mut ws, "slow", "X").await else {
            panic!("an error frame");
        };
        assert!(text.contains("Endpoint request timed out"), "{text}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            expected_calls,
            "a timeout is never cached"
        );
    }

    let first = ask(&mut ws, "bin", "X").await;
    assert_eq!(first, Message::Binary(b"bin-X-5".to_vec().into()));
    assert_eq!(ask(&mut ws, "bin", "X").await, first, "a hit is binary too");
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let (backend, _calls) = counting_backend().await;
    let gw = TestGateway::start(&cache_config(&backend.url(), "ttl", MEMORY, "")).await;
    let mut ws = connect(&gw.ws_url("/ttl")).await;
    assert_eq!(call_number(&ask(&mut ws, "short", "A").await), 1);
    assert_eq!(call_number(&ask(&mut ws, "short", "A").await), 1);
    // The ttl itself (1 s) is the only wait.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(call_number(&ask(&mut ws, "short", "A").await), 2);
    assert_eq!(call_number(&ask(&mut ws, "short", "A").await), 2);
}

#[tokio::test]
async fn concurrent_identical_misses_call_the_backend_once() {
    herd("herd", MEMORY, "").await;
}

#[tokio::test]
async fn concurrent_identical_misses_on_the_redis_kind_call_the_backend_once_per_node() {
    let (store, _cleanup) = shared_store();
    herd("herdredis", "{ kind: redis }", &store).await;
}

/// Eight connections send the same message while the backend holds its first answer: one call.
async fn herd(stage: &str, cache: &str, extra: &str) {
    let calls = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let (counter, gate) = (Arc::clone(&calls), Arc::clone(&release));
    let backend = Backend::start(move |_| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Reply {
            status: 200,
            body: json!({ "n": n }).to_string(),
            headers: vec![],
            hold: Some(Arc::clone(&gate)),
        }
    })
    .await;
    let gw = TestGateway::start(&cache_config(&backend.url(), stage, cache, extra)).await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(connect(&gw.ws_url(&format!("/{stage}"))).await);
    }
    let text = json!({ "action": "quote", "symbol": "HOT" }).to_string();
    for ws in &mut clients {
        ws.send(Message::text(text.clone())).await.expect("send");
    }
    // Every message is being handled (the first one holds the backend) before it answers.
    backend.next().await;
    let url = gw.http_url("/metrics");
    eventually("every message received", DEADLINE, || {
        let url = url.clone();
        async move { metric(url, "wsgate_message_total", stage).await >= 8.0 }
    })
    .await;
    release.notify_one();
    for ws in &mut clients {
        assert_eq!(call_number(&next_frame(ws).await), 1);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one call for eight misses");
}

#[tokio::test]
async fn invalidation_through_the_callback_api() {
    let (backend, _calls) = counting_backend().await;
    let stage = "inval";
    let gw = TestGateway::start(&cache_config(&backend.url(), stage, MEMORY, "")).await;
    let base = gw.http_url("");
    let mut ws = connect(&gw.ws_url(&format!("/{stage}?region=eu"))).await;
    assert_eq!(quote_n(&mut ws, "quote", "AAPL").await, 1);
    assert_eq!(quote_n(&mut ws, "quote", "MSFT").await, 2);
    assert_eq!(quote_n(&mut ws, "lambda", "AAPL").await, 3);

    // One entry, named by its key parts (the query form; the stage variable is the stage's).
    let key = json!({ "$request.body.symbol": "AAPL", "$request.querystring.region": "eu" });
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("key", &key.to_string())
        .finish();
    let (status, _) = delete(&base, &format!("/{stage}/@cache/quote?{query}"), "").await;
    assert_eq!(status, 204);
    assert_eq!(
        quote_n(&mut ws, "quote", "AAPL").await,
        4,
        "the entry was dropped"
    );
    assert_eq!(
        quote_n(&mut ws, "quote", "MSFT").await,
        2,
        "the others stay"
    );
    // The body form.
    let body = json!({ "$request.body.symbol": "MSFT", "$request.querystring.region": "eu" });
    let (status, _) = delete(&base, &format!("/{stage}/@cache/quote"), &body.to_string()).await;
    assert_eq!(status, 204);
    assert_eq!(quote_n(&mut ws, "quote", "MSFT").await, 5);

    // A route.
    let (status, _) = delete(&base, &format!("/{stage}/%40cache/quote"), "").await;
    assert_eq!(status, 204);
    assert_eq!(quote_n(&mut ws, "quote", "AAPL").await, 6);
    assert_eq!(quote_n(&mut ws, "quote", "MSFT").await, 7);
    assert_eq!(
        quote_n(&mut ws, "lambda", "AAPL").await,
        3,
        "another route keeps its entries"
    );

    // The stage.
    let (status, _) = delete(&base, &format!("/{stage}/@cache"), "").await;
    assert_eq!(status, 204);
    assert_eq!(quote_n(&mut ws, "lambda", "AAPL").await, 8);
    assert_eq!(quote_n(&mut ws, "quote", "AAPL").await, 9);

    // Errors, in the callback API's shapes.
    let (status, body) = delete(&base, &format!("/{stage}/@cache/plain"), "").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("plain")),
        "{body}"
    );
    let (status, body) = delete(&base, &format!("/{stage}/@cache/nosuch"), "").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = delete(&base, "/nostage/@cache", "").await;
    assert_eq!((status, body["message"].as_str()), (403, Some("Forbidden")));
    let (status, body) = delete(
        &base,
        &format!("/{stage}/@cache/quote"),
        r#"{"$request.body.other":1}"#,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let unauthenticated = http()
        .delete(format!("{base}/{stage}/@cache"))
        .send()
        .await
        .expect("answered");
    assert_eq!(unauthenticated.status().as_u16(), 403);
    assert_eq!(
        quote_n(&mut ws, "quote", "AAPL").await,
        9,
        "refused requests drop nothing"
    );
}

#[tokio::test]
async fn cache_control_is_obeyed_when_asked() {
    let (backend, _calls) = counting_backend().await;
    let gw = TestGateway::start(&cache_config(&backend.url(), "cc", MEMORY, "")).await;
    let mut ws = connect(&gw.ws_url("/cc")).await;
    let mut ask_cc = async |symbol: &str, cc: &str| {
        let text = json!({ "action": "cc", "symbol": symbol, "cc": cc }).to_string();
        send_text(&mut ws, &text).await;
        call_number(&next_frame(&mut ws).await)
    };
    for (symbol, cc) in [
        ("A", "no-store"),
        ("B", "private, max-age=60"),
        ("C", "max-age=0"),
    ] {
        let first = ask_cc(symbol, cc).await;
        assert_eq!(ask_cc(symbol, cc).await, first + 1, "{cc}: not cached");
    }
    let kept = ask_cc("D", "public, max-age=60").await;
    assert_eq!(ask_cc("D", "public, max-age=60").await, kept, "cached");
    // max-age=1 shortens the route's 30 s ttl to 1 s.
    let short = ask_cc("E", "max-age=1").await;
    assert_eq!(ask_cc("E", "max-age=1").await, short);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ask_cc("E", "max-age=1").await, short + 1);
}

#[tokio::test]
async fn the_memory_cache_stays_within_max_bytes() {
    let (backend, calls) = counting_backend().await;
    let stage = "bound";
    let cache = "{ kind: memory, max_bytes: 32KiB, max_entry_bytes: 4KiB }";
    let gw = TestGateway::start(&cache_config(&backend.url(), stage, cache, "")).await;
    let mut ws = connect(&gw.ws_url(&format!("/{stage}"))).await;
    let url = gw.http_url("/metrics");
    // 600 distinct keys of ~200 bytes each (with bookkeeping) is several times the bound.
    for i in 0..600 {
        let symbol = format!("S{i:04}-{}", "x".repeat(40));
        ask(&mut ws, "quote", &symbol).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 600);
    let text = get_text(&http(), url).await;
    let bytes: f64 = text
        .lines()
        .find(|l| l.starts_with("wsgate_cache_bytes"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .expect("wsgate_cache_bytes exported");
    assert!(bytes <= 32.0 * 1024.0, "held {bytes} bytes");
    // Early keys were evicted: asking again calls the backend.
    ask(&mut ws, "quote", &format!("S0000-{}", "x".repeat(40))).await;
    assert_eq!(calls.load(Ordering::SeqCst), 601);
    // An answer over max_entry_bytes is sent but not kept.
    let big = "y".repeat(5000);
    ask(&mut ws, "quote", &big).await;
    ask(&mut ws, "quote", &big).await;
    assert_eq!(calls.load(Ordering::SeqCst), 603);
    let too_large = metric(
        gw.http_url("/metrics"),
        "wsgate_cache_too_large_total",
        stage,
    )
    .await;
    assert_eq!(too_large, 2.0);
}

/// Two in-process nodes on the shared Redis, `cache` as their `cache:` section.
async fn two_nodes(
    backend: &Backend,
    stage: &str,
    store: &str,
    cache: &str,
) -> (TestGateway, TestGateway) {
    let node = |id: &str| {
        cache_config(
            &backend.url(),
            stage,
            cache,
            &format!("{store}node_id: {id}\n"),
        )
    };
    let first = TestGateway::start(&node("cache-a")).await;
    let second = TestGateway::start(&node("cache-b")).await;
    (first, second)
}

#[tokio::test]
async fn the_redis_kind_is_shared_by_the_nodes() {
    let (store, _cleanup) = shared_store();
    shared_by_two_nodes("shared", &store).await;
}

/// On a Redis Cluster: a route's generation and entries share a slot (one script reads both).
#[tokio::test]
async fn the_redis_kind_works_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let store = cluster_store(&cluster.urls(), &unique_prefix());
    shared_by_two_nodes("rcluster", &store).await;
}

/// Memory caches on a Redis Cluster hear invalidations over sharded pub/sub.
#[tokio::test]
async fn memory_caches_on_a_redis_cluster_hear_invalidations() {
    let cluster = RedisCluster::start().await;
    let store = cluster_store(&cluster.urls(), &unique_prefix());
    memory_cluster("memrcluster", &store).await;
}

/// One node fills, the other hits; invalidations on either node are seen by both.
async fn shared_by_two_nodes(stage: &str, store: &str) {
    let (backend, calls) = counting_backend().await;
    let store = store.to_string();
    let (a, b) = two_nodes(&backend, stage, &store, "{ kind: redis }").await;
    let mut on_a = connect(&a.ws_url(&format!("/{stage}?region=eu"))).await;
    let mut on_b = connect(&b.ws_url(&format!("/{stage}?region=eu"))).await;

    let filled = ask(&mut on_a, "quote", "AAPL").await;
    assert_eq!(call_number(&filled), 1);
    assert_eq!(
        ask(&mut on_b, "quote", "AAPL").await,
        filled,
        "the other node hits"
    );
    let binary = ask(&mut on_b, "bin", "Z").await;
    assert_eq!(ask(&mut on_a, "bin", "Z").await, binary);
    assert!(matches!(binary, Message::Binary(_)));
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Invalidated on one node: gone for both (one generation in Redis).
    let (status, _) = delete(&a.http_url(""), &format!("/{stage}/@cache/quote"), "").await;
    assert_eq!(status, 204);
    assert_eq!(call_number(&ask(&mut on_b, "quote", "AAPL").await), 3);
    assert_eq!(call_number(&ask(&mut on_a, "quote", "AAPL").await), 3);
    let key = json!({ "$request.body.symbol": "Z" }).to_string();
    let (status, _) = delete(&b.http_url(""), &format!("/{stage}/@cache/bin"), &key).await;
    assert_eq!(status, 204);
    assert_ne!(ask(&mut on_a, "bin", "Z").await, binary);
    let (status, _) = delete(&b.http_url(""), &format!("/{stage}/@cache"), "").await;
    assert_eq!(status, 204);
    assert_eq!(call_number(&ask(&mut on_a, "quote", "AAPL").await), 5);
    let url = a.http_url("/metrics");
    assert_eq!(
        metric(url.clone(), "wsgate_cache_hit_total", stage).await,
        3.0
    );
    assert_eq!(metric(url, "wsgate_cache_miss_total", stage).await, 5.0);
}

#[tokio::test]
async fn memory_caches_of_a_cluster_hear_each_others_invalidations() {
    let (store, _cleanup) = shared_store();
    memory_cluster("memcluster", &store).await;
}

/// Each node caches on its own; an invalidation on one reaches the other.
async fn memory_cluster(stage: &str, store: &str) {
    let (backend, calls) = counting_backend().await;
    let store = store.to_string();
    let (a, b) = two_nodes(&backend, stage, &store, MEMORY).await;
    let mut on_a = connect(&a.ws_url(&format!("/{stage}"))).await;
    let mut on_b = connect(&b.ws_url(&format!("/{stage}"))).await;
    assert_eq!(call_number(&ask(&mut on_a, "lambda", "AAPL").await), 1);
    assert_eq!(
        call_number(&ask(&mut on_b, "lambda", "AAPL").await),
        2,
        "each node its own"
    );
    assert_eq!(call_number(&ask(&mut on_b, "lambda", "AAPL").await), 2);

    let (status, _) = delete(&a.http_url(""), &format!("/{stage}/@cache/lambda"), "").await;
    assert_eq!(status, 204);
    assert_eq!(
        call_number(&ask(&mut on_a, "lambda", "AAPL").await),
        3,
        "at once here"
    );
    // On the other node once the published invalidation arrives (milliseconds).
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let before = calls.load(Ordering::SeqCst);
        ask(&mut on_b, "lambda", "AAPL").await;
        if calls.load(Ordering::SeqCst) > before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node b kept its entry"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn messages_are_answered_while_redis_is_down() {
    let (backend, calls) = counting_backend().await;
    let mut redis = RedisServer::start().await;
    let stage = "redisdown";
    let store = redis_store(&redis.url(), "wsgate-cache-down");
    let gw = TestGateway::start(&cache_config(
        &backend.url(),
        stage,
        "{ kind: redis }",
        &store,
    ))
    .await;
    let mut ws = connect(&gw.ws_url(&format!("/{stage}"))).await;
    assert_eq!(call_number(&ask(&mut ws, "quote", "A").await), 1);
    redis.freeze(true);
    // Lookups time out (the store's 500 ms): misses answered by the integration.
    for expected in [2, 3] {
        let frame = ask(&mut ws, "lambda", "A").await;
        assert_eq!(call_number(&frame), expected);
    }
    let errors = metric_any(gw.http_url("/metrics"), "wsgate_cache_errors_total").await;
    assert!(errors >= 2.0, "{errors} errors counted");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    redis.freeze(false);
    redis.kill();
}

/// The sum of every series of a metric.
async fn metric_any(url: String, name: &str) -> f64 {
    let text = get_text(&http(), url).await;
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn cache_settings_are_checked_at_startup() {
    let backend = "http://127.0.0.1:9";
    let base = cache_config(backend, "prod", MEMORY, "");
    let refused = |yaml: String, key: &str| {
        let error = wsgate::Config::from_yaml(&yaml)
            .expect_err("refused")
            .to_string();
        assert!(error.contains(key), "{key}: {error}");
    };
    refused(
        base.replace("ttl: 1s", "ttl: 2h"),
        "api.routes.short.cache.ttl",
    );
    refused(
        base.replace("ttl: 1s", "ttl: 0s"),
        "api.routes.short.cache.ttl",
    );
    refused(
        base.replace("\"$request.body.symbol\"]", "\"$request.path.x\"]"),
        "api.routes.bin.cache.key[0]",
    );
    refused(
        base.replace("cache: { kind: memory", "cache: { kind: redis"),
        "cache.kind",
    );
    refused(
        base.replace("max_bytes: 1MiB", "max_bytes: lots"),
        "cache.max_bytes",
    );
    refused(
        base.replace(
            "cache: { kind: memory, max_bytes: 1MiB, max_entry_bytes: 64KiB }",
            "",
        ),
        "api.routes",
    );
    let one_way = base.replace(
        "    plain:\n",
        "    oneway:\n      integration: { type: mock }\n      cache: { ttl: 1s }\n    plain:\n",
    );
    refused(one_way, "api.routes.oneway.cache");
    let connect_route = base.replace(
        "    plain:\n",
        "    $connect:\n      integration: { type: mock }\n      route_response: true\n      cache: { ttl: 1s }\n    plain:\n",
    );
    refused(connect_route, "api.routes.$connect.cache");
    refused(
        base.replace("honour_cache_control: true", "honor: true"),
        "api.routes",
    );
}

/// A SigV4 callback key's policy is checked for `execute-api:InvalidateCache` on
/// `{stage}/DELETE/@cache/{route}`: a key allowed only `ManageConnections` is refused with
/// `AccessDeniedException` naming that action, one allowed `InvalidateCache` drops the entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_keys_need_invalidate_cache() {
    let (backend, _calls) = counting_backend().await;
    let stage = "iamcache";
    let resource = format!("arn:aws:execute-api:us-east-1:123456789012:quotes/{stage}");
    let key = |id: &str, action: &str| {
        format!(
            "      - access_key_id: {id}\n        secret_access_key: secret-key-for-tests\n        policy:\n          Version: \"2012-10-17\"\n          Statement:\n            - {{ Effect: Allow, Action: \"{action}\", Resource: \"{resource}/*\" }}\n"
        )
    };
    let auth = format!(
        "iam:\n  account_id: \"123456789012\"\ncallback:\n  auth:\n    kind: sigv4\n    region: us-east-1\n    credentials:\n{}{}",
        key("AKIDMANAGE", "execute-api:ManageConnections"),
        key("AKIDINVALIDATE", "execute-api:InvalidateCache"),
    );
    let yaml = cache_config(&backend.url(), stage, MEMORY, &auth).replacen(
        &format!("callback:\n  auth: {{ kind: bearer, tokens: [\"{TOKEN}\"] }}\n"),
        "",
        1,
    );
    let gw = TestGateway::start(&yaml).await;
    let mut ws = connect(&gw.ws_url(&format!("/{stage}"))).await;
    assert_eq!(quote_n(&mut ws, "lambda", "A").await, 1);
    let url = gw.http_url(&format!("/{stage}/@cache/lambda"));
    let signed_delete = |id: &'static str| {
        let url = url.clone();
        async move {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/iam_client.py");
            let args = [
                "sign",
                "--url",
                &url,
                "--mode",
                "header",
                "--method",
                "DELETE",
                "--access-key-id",
                id,
                "--secret-access-key",
                "secret-key-for-tests",
            ];
            let signed = crate::support::boto::run_script(script, args, None, DEADLINE * 6).await;
            let mut request = http().delete(&url);
            for (name, value) in signed["headers"].as_object().expect("headers") {
                request = request.header(name, value.as_str().expect("value"));
            }
            let response = request.send().await.expect("answered");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    let (status, body) = signed_delete("AKIDMANAGE").await;
    assert_eq!(status, 403, "{body}");
    let message = body["Message"].as_str().unwrap_or_default();
    assert!(
        message.contains("execute-api:InvalidateCache")
            && message.contains(&format!("{resource}/DELETE/@cache/lambda")),
        "{body}"
    );
    assert_eq!(quote_n(&mut ws, "lambda", "A").await, 1, "still cached");
    let (status, body) = signed_delete("AKIDINVALIDATE").await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(quote_n(&mut ws, "lambda", "A").await, 2, "dropped");
}
