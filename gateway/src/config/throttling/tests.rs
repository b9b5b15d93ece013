//! Checks of the `throttling:` section: defaults, inheritance, and keys named on errors.

use crate::config::Config;

const BASE: &str = r#"
listen: 127.0.0.1:0
api:
  name: t
  route_selection_expression: $request.body.action
  stages: { prod: {}, dev: {} }
  routes:
    $connect: { integration: { type: mock } }
    $disconnect: { integration: { type: mock } }
    sendmessage: { integration: { type: mock } }
    $default: { integration: { type: mock } }
"#;

fn load(throttling: &str) -> Result<Config, String> {
    Config::from_yaml(&format!("{BASE}throttling:\n{throttling}")).map_err(|e| e.to_string())
}

fn err(throttling: &str) -> String {
    load(throttling).expect_err("must fail")
}

#[test]
fn defaults_mirror_aws_new_connection_rate() {
    let c = Config::from_yaml(BASE).expect("loads");
    let t = &c.throttling;
    let nc = t.new_connections.expect("on by default");
    assert_eq!((nc.rate_limit, nc.burst_limit), (500.0, 500));
    assert!(t.gateway.is_none() && t.callback.is_none() && t.per_connection.is_none());
    assert_eq!(t.route_limit("prod", "sendmessage"), None);
    let c = load("  new_connections: null\n").expect("loads");
    assert!(c.throttling.new_connections.is_none());
}

#[test]
fn route_settings_inherit_missing_values_from_the_level_above() {
    let c = load(
        "  gateway: { rate_limit: 1000, burst_limit: 500 }
  stages:
    prod:
      default_route_settings: { throttling_rate_limit: 100 }
      route_settings:
        sendmessage: { throttling_burst_limit: 5 }
",
    )
    .expect("loads");
    let t = &c.throttling;
    assert_eq!(t.route_limit("prod", "sendmessage"), Some((100.0, 5)));
    assert_eq!(t.route_limit("prod", "$default"), Some((100.0, 500)));
    assert_eq!(t.route_limit("prod", "$connect"), Some((100.0, 500)));
    assert_eq!(t.route_limit("prod", "$disconnect"), None);
    assert_eq!(t.route_limit("dev", "sendmessage"), None);
}

#[test]
fn a_looser_route_names_its_key() {
    let e = err("  stages:
    prod:
      default_route_settings: { throttling_rate_limit: 100, throttling_burst_limit: 50 }
      route_settings:
        sendmessage: { throttling_rate_limit: 200, throttling_burst_limit: 10 }
");
    assert!(
        e.starts_with(
            "config key `throttling.stages.prod.route_settings.sendmessage.throttling_rate_limit`"
        ),
        "{e}"
    );
    assert!(e.contains("may only tighten"), "{e}");
}

#[test]
fn a_looser_stage_default_or_top_level_bucket_names_its_key() {
    let e = err("  gateway: { rate_limit: 100, burst_limit: 50 }
  stages:
    prod:
      default_route_settings: { throttling_rate_limit: 10, throttling_burst_limit: 51 }
");
    assert!(
        e.contains("throttling.stages.prod.default_route_settings.throttling_burst_limit"),
        "{e}"
    );
    let e = err("  gateway: { rate_limit: 100, burst_limit: 50 }
  per_connection: { rate_limit: 101, burst_limit: 5 }
");
    assert!(e.contains("throttling.per_connection.rate_limit"), "{e}");
    // New connections and callback requests are separate kinds, each also under the gateway.
    load("  gateway: { rate_limit: 100, burst_limit: 50 }\n").expect("default 500/s is fine");
}

#[test]
fn unknown_stages_routes_and_disconnect_are_refused() {
    let e = err("  stages: { qa: {} }\n");
    assert!(e.contains("throttling.stages.qa"), "{e}");
    let e = err(
        "  stages: { prod: { route_settings: { nosuch: { throttling_rate_limit: 1, throttling_burst_limit: 1 } } } }\n",
    );
    assert!(
        e.contains("throttling.stages.prod.route_settings.nosuch"),
        "{e}"
    );
    let e = err(
        "  stages: { prod: { route_settings: { $disconnect: { throttling_rate_limit: 1, throttling_burst_limit: 1 } } } }\n",
    );
    assert!(e.contains("never throttled"), "{e}");
}

#[test]
fn a_value_with_no_level_to_inherit_from_is_required() {
    let e = err(
        "  stages: { prod: { route_settings: { sendmessage: { throttling_rate_limit: 5 } } } }\n",
    );
    assert!(
        e.contains("throttling.stages.prod.route_settings.sendmessage.throttling_burst_limit"),
        "{e}"
    );
    let e = err("  per_connection: { rate_limit: -1, burst_limit: 5 }\n");
    assert!(e.contains("throttling.per_connection.rate_limit"), "{e}");
    let e = err("  cluster: { lease: 0s }\n");
    assert!(e.contains("throttling.cluster.lease"), "{e}");
}

#[test]
fn environment_overrides_reach_the_section() {
    let vars = [
        (
            "WSGATE_THROTTLING__PER_CONNECTION__RATE_LIMIT".to_string(),
            "7".to_string(),
        ),
        (
            "WSGATE_THROTTLING__PER_CONNECTION__BURST_LIMIT".to_string(),
            "3".to_string(),
        ),
        (
            "WSGATE_THROTTLING__CLUSTER__ON_REDIS_ERROR".to_string(),
            "closed".to_string(),
        ),
    ];
    let c = Config::from_yaml_with_env(BASE, vars).expect("loads");
    let pc = c.throttling.per_connection.expect("set");
    assert_eq!((pc.rate_limit, pc.burst_limit), (7.0, 3));
    assert_eq!(
        c.throttling.cluster.on_redis_error,
        crate::config::OnRedisError::Closed
    );
}

#[test]
fn usage_plans_are_checked() {
    let keys = "api_keys:\n  - { id: k, value_sha256: \"0000000000000000000000000000000000000000000000000000000000000001\", usage_plan: gold }\n";
    let with = |plans: &str| {
        Config::from_yaml(&format!("{BASE}{keys}throttling:\n{plans}")).map_err(|e| e.to_string())
    };
    let c = with("  usage_plans: { gold: { rate_limit: 5, burst_limit: 10, quota: { limit: 1000, period: month } } }\n")
        .expect("loads");
    let gold = c.throttling.usage_plans["gold"];
    assert_eq!(gold.rate(), Some((5.0, 10)));
    assert_eq!(
        gold.quota.map(|q| q.period),
        Some(crate::config::Period::Month)
    );
    let e = with("  usage_plans: { silver: { rate_limit: 5, burst_limit: 10 } }\n")
        .expect_err("unused");
    assert!(
        e.contains("throttling.usage_plans.silver") && e.contains("no api_keys entry"),
        "{e}"
    );
    let e = with("  usage_plans: { gold: { rate_limit: 5 } }\n").expect_err("no burst");
    assert!(e.contains("throttling.usage_plans.gold.burst_limit"), "{e}");
    let e = with("  gateway: { rate_limit: 4, burst_limit: 100 }\n  usage_plans: { gold: { rate_limit: 5, burst_limit: 10 } }\n")
        .expect_err("looser");
    assert!(e.contains("throttling.usage_plans.gold.rate_limit"), "{e}");
    let e = with("  usage_plans: { gold: { quota: { limit: 5, period: year } } }\n")
        .expect_err("period");
    assert!(
        e.contains("throttling.usage_plans.gold.quota.period"),
        "{e}"
    );
}
