//! The hierarchy on paused tokio time: which level refuses, refunds, one bucket per route.

use std::time::Duration;

use super::*;
use crate::config::Config;

fn throttle(throttling: &str) -> Throttle {
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
throttling:
{throttling}"#
    );
    let config = Config::from_yaml(&yaml).expect("valid");
    Throttle::build(&config.throttling, &config.api, None, Clock::new())
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
    let noisy = t.connection_bucket().expect("per_connection set");
    assert_eq!(admitted(&t, "a", Some(&noisy), 50).await, 2);
    let e = t
        .check_message("prod", "a", Some(&noisy))
        .await
        .expect_err("empty");
    assert_eq!(e.level, Level::Connection);
    // The route still has 3 of its 5 tokens for other connections.
    let quiet = t.connection_bucket().expect("set");
    let other = t.connection_bucket().expect("set");
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
    assert!(t.connection_bucket().is_none());
    assert_eq!(admitted(&t, "a", None, 1000).await, 1000);
    assert!(t.check_connect("prod").await.is_ok());
}
