//! The hierarchy on paused tokio time: which level refuses, refunds, one bucket per route.

use std::time::Duration;

use super::*;
use crate::config::Config;

fn throttle(throttling: &str) -> Throttle {
    throttle_with(throttling, "")
}

fn throttle_with(throttling: &str, top: &str) -> Throttle {
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
api:
  name: t
  route_selection_expression: $request.body.action
  stages: {{ prod: {{}} }}
  routes:
    $connect: {{ integration: {{ type: mock }} }}
    a: {{ integration: {{ type: mock }} }}
    b: {{ integration: {{ type: mock }} }}
{top}
throttling:
{throttling}"#
    );
    let config = Config::from_yaml(&yaml).expect("valid");
    Throttle::build(&config.throttling, &config.api, None, None, Clock::new())
}

async fn admitted(t: &Throttle, route: &str, conn: Option<&ConnectionBucket>, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        if t.check_message("prod", route, conn).await.is_ok() {
            ok += 1;
        }
    }
    ok
}

#[tokio::test(start_paused = true)]
async fn each_route_has_its_own_bucket_from_the_stage_default() {
    let t = throttle(
        "  stages: { prod: { default_route_settings: { throttling_rate_limit: 10, throttling_burst_limit: 3 } } }\n",
    );
    assert_eq!(admitted(&t, "a", None, 10).await, 3);
    assert_eq!(admitted(&t, "b", None, 10).await, 3);
    let e = t.check_message("prod", "a", None).await.expect_err("empty");
    assert_eq!(e.level, Level::Route);
    assert_eq!(e.retry_after, Duration::from_millis(100));
    tokio::time::advance(Duration::from_millis(200)).await;
    assert_eq!(admitted(&t, "a", None, 10).await, 2);
}

#[tokio::test(start_paused = true)]
async fn a_connection_refused_by_its_own_bucket_costs_the_route_nothing() {
    let t = throttle(
        "  per_connection: { rate_limit: 1, burst_limit: 2 }
  stages: { prod: { route_settings: { a: { throttling_rate_limit: 1, throttling_burst_limit: 5 } } } }\n",
    );
    let noisy = t.connection_bucket(None).expect("per_connection set");
    assert_eq!(admitted(&t, "a", Some(&noisy), 50).await, 2);
    let e = t
        .check_message("prod", "a", Some(&noisy))
        .await
        .expect_err("empty");
    assert_eq!(e.level, Level::Connection);
    // The route still has 3 of its 5 tokens for other connections.
    let quiet = t.connection_bucket(None).expect("set");
    let other = t.connection_bucket(None).expect("set");
    assert_eq!(admitted(&t, "a", Some(&quiet), 2).await, 2);
    assert_eq!(admitted(&t, "a", Some(&other), 2).await, 1);
    let e = t.check_message("prod", "a", None).await.expect_err("empty");
    assert_eq!(e.level, Level::Route);
}

#[tokio::test(start_paused = true)]
async fn a_gateway_refusal_refunds_the_narrower_buckets() {
    let t = throttle(
        "  gateway: { rate_limit: 1, burst_limit: 2 }
  stages: { prod: { route_settings: { a: { throttling_rate_limit: 1, throttling_burst_limit: 2 } } } }\n",
    );
    assert_eq!(admitted(&t, "b", None, 2).await, 2);
    let e = t
        .check_message("prod", "a", None)
        .await
        .expect_err("gateway empty");
    assert_eq!(e.level, Level::Gateway);
    tokio::time::advance(Duration::from_secs(2)).await;
    // Route `a` kept both tokens.
    assert_eq!(admitted(&t, "a", None, 5).await, 2);
}

#[tokio::test(start_paused = true)]
async fn connects_and_callbacks_have_their_own_buckets_under_the_gateway() {
    let t = throttle(
        "  gateway: { rate_limit: 100, burst_limit: 100 }
  new_connections: { rate_limit: 1, burst_limit: 2 }
  callback: { rate_limit: 1, burst_limit: 1 }\n",
    );
    assert!(t.check_connect("prod").await.is_ok());
    assert!(t.check_connect("prod").await.is_ok());
    let e = t.check_connect("prod").await.expect_err("third");
    assert_eq!(e.level, Level::NewConnections);
    assert_eq!(e.retry_after_secs(), 1);
    assert!(t.check_callback("prod").await.is_ok());
    let e = t.check_callback("prod").await.expect_err("second");
    assert_eq!(e.level, Level::Callback);
    assert_eq!(admitted(&t, "a", None, 200).await, 97);
}

#[tokio::test(start_paused = true)]
async fn unlimited_admits_everything() {
    let t = Throttle::unlimited();
    assert!(t.connection_bucket(None).is_none());
    assert_eq!(admitted(&t, "a", None, 1000).await, 1000);
    assert!(t.check_connect("prod").await.is_ok());
}

const KEYS: &str = "api_keys:
  - { id: k1, value_sha256: \"0000000000000000000000000000000000000000000000000000000000000001\", usage_plan: gold }
  - { id: k2, value_sha256: \"0000000000000000000000000000000000000000000000000000000000000002\", usage_plan: gold }";

#[tokio::test(start_paused = true)]
async fn each_key_of_a_plan_has_its_own_rate() {
    let t = throttle_with(
        "  usage_plans: { gold: { rate_limit: 1, burst_limit: 3 } }\n",
        KEYS,
    );
    assert!(t.check_usage_plan("prod", Some("gold"), "k1").await.is_ok());
    let k1 = t
        .connection_bucket(Some(("gold", "k1")))
        .expect("plan has limits");
    assert_eq!(admitted(&t, "a", Some(&k1), 10).await, 2);
    let e = t
        .check_message("prod", "a", Some(&k1))
        .await
        .expect_err("spent");
    assert_eq!(e.level, Level::UsagePlan);
    let k2 = t
        .connection_bucket(Some(("gold", "k2")))
        .expect("plan has limits");
    assert_eq!(admitted(&t, "a", Some(&k2), 10).await, 3);
    // A plan without limits, or no plan, changes nothing.
    assert!(t.connection_bucket(Some(("free", "k3"))).is_none());
    assert!(t.check_usage_plan("prod", Some("free"), "k3").await.is_ok());
    assert!(t.check_usage_plan("prod", None, "k3").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn quota_counts_connects_and_messages_and_resets_at_midnight() {
    let t = throttle_with(
        "  usage_plans: { gold: { quota: { limit: 4, period: day } } }
  stages: { prod: { route_settings: { b: { throttling_rate_limit: 1, throttling_burst_limit: 1 } } } }\n",
        KEYS,
    )
    .with_epoch_ms(
        chrono::DateTime::parse_from_rfc3339("2026-02-18T23:00:00Z")
            .expect("time")
            .timestamp_millis(),
    );
    let k1 = t.connection_bucket(Some(("gold", "k1"))).expect("quota");
    assert!(t.check_usage_plan("prod", Some("gold"), "k1").await.is_ok());
    // A message refused by its route takes nothing from the quota.
    assert!(t.check_message("prod", "b", Some(&k1)).await.is_ok());
    assert!(t.check_message("prod", "b", Some(&k1)).await.is_err());
    assert_eq!(admitted(&t, "a", Some(&k1), 10).await, 2);
    let e = t
        .check_usage_plan("prod", Some("gold"), "k1")
        .await
        .expect_err("spent");
    assert_eq!(e.level, Level::Quota);
    assert_eq!(e.retry_after_secs(), 1);
    // Another key has its own count.
    let k2 = t.connection_bucket(Some(("gold", "k2"))).expect("quota");
    assert_eq!(admitted(&t, "a", Some(&k2), 10).await, 4);
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_eq!(admitted(&t, "a", Some(&k1), 10).await, 4);
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_evicted() {
    let t = throttle_with(
        "  usage_plans: { gold: { rate_limit: 10, burst_limit: 10 } }\n",
        KEYS,
    );
    assert!(t.check_usage_plan("prod", Some("gold"), "k1").await.is_ok());
    assert!(t.check_usage_plan("prod", Some("gold"), "k2").await.is_ok());
    assert_eq!(t.plans.len(), 2);
    tokio::time::advance(Duration::from_secs(61)).await;
    // The sweep runs on the next request; only the key in use stays.
    assert!(t.check_usage_plan("prod", Some("gold"), "k1").await.is_ok());
    assert_eq!(t.plans.len(), 1);
}
