//! The overview the admin page polls: this node, its connections (per stage, here and
//! cluster-wide), per-route calls and failures, rates and latency with their chart points,
//! the largest groups, the cluster's nodes with their leases and the deployments each serves,
//! and the recent errors. Every list is
//! bounded; store and cluster reads are bounded in time and shown as unavailable when slow.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};

use super::samples::Samples;
use crate::callback::Api;
use crate::rollout::Rollout;

/// Connections listed at most (the newest).
pub(crate) const MAX_CONNECTIONS: usize = 100;
/// Groups listed at most (the largest on this node).
pub(crate) const MAX_GROUPS: usize = 20;
/// Bound on each store or cluster read.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// The overview's JSON.
pub(crate) async fn build(api: &Api, samples: &Samples, rollout: &Rollout) -> Value {
    let shared = &api.shared;
    let activity = &shared.activity;
    let (per_stage, newest) = connections(api);
    let live = shared.definition();
    let serving = shared.serving();
    let mut stage_names: Vec<&String> = serving.stages.keys().collect();
    stage_names.sort();
    let cluster_sizes = futures_util::future::join_all(
        stage_names
            .iter()
            .map(|stage| async { bounded(shared.groups.store().stage_size(stage)).await }),
    )
    .await;
    let stages: Vec<Value> = (stage_names.iter().zip(cluster_sizes))
        .map(|(stage, cluster)| {
            json!({
                "stage": stage,
                "node": per_stage.get(stage.as_str()).copied().unwrap_or(0),
                "cluster": cluster,
            })
        })
        .collect();
    let mut routes = Vec::new();
    for stage in &stage_names {
        let Some(stage_routes) = serving.of(stage, false).stage(stage.as_str()) else {
            continue;
        };
        let mut keyed: Vec<_> = stage_routes.routes().collect();
        keyed.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        for route in keyed {
            let tally = &route.metrics.tally;
            routes.push(json!({
                "stage": stage,
                "route": &*route.key,
                "integration": route.integration.kind(),
                "calls": tally.calls.load(Ordering::Relaxed),
                "integrationErrors": tally.integration_errors.load(Ordering::Relaxed),
                "executionErrors": tally.execution_errors.load(Ordering::Relaxed),
            }));
        }
    }
    let (group_count, memberships) = shared.groups.local_counts();
    let largest = shared.groups.largest(MAX_GROUPS);
    let group_sizes = futures_util::future::join_all(
        largest
            .iter()
            .map(|(stage, group, _)| bounded(shared.groups.store().group_size(stage, group))),
    )
    .await;
    let groups: Vec<Value> = (largest.iter().zip(group_sizes))
        .map(|((stage, group, local), cluster)| {
            json!({ "stage": stage, "group": group, "node": local, "cluster": cluster })
        })
        .collect();
    let mut cluster = match &api.cluster {
        None => Value::Null,
        Some(cluster) => match tokio::time::timeout(READ_TIMEOUT, cluster.view()).await {
            Ok(Ok(view)) => serde_json::to_value(view).unwrap_or(Value::Null),
            Ok(Err(error)) => json!({ "error": error.to_string() }),
            Err(_) => json!({ "error": "the store did not answer in time" }),
        },
    };
    // What each node serves, from the heartbeats (a node without one for 15 s shows none).
    if let Some(nodes) = cluster.get_mut("nodes").and_then(Value::as_array_mut)
        && let Ok(Ok(serving)) = tokio::time::timeout(READ_TIMEOUT, rollout.nodes_serving()).await
    {
        for node in nodes {
            let found = serving.iter().find(|s| node["id"] == s.node_id.as_str());
            node["deployments"] = found.map_or(json!([]), |s| json!(deployments_of(s)));
        }
    }
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    json!({
        "node": {
            "id": &shared.node_id,
            "apiId": &*shared.api_id,
            "version": env!("CARGO_PKG_VERSION"),
            "uptimeSeconds": activity.started.elapsed().as_secs(),
            "draining": shared.is_draining(),
            "deployment": &live.deployment,
            "deployments": deployments_of(&rollout.serving_now()),
            "serving": serving.report(),
            "store": match &shared.config.store {
                crate::config::StoreConfig::Memory => "memory",
                crate::config::StoreConfig::Redis(_) => "redis",
            },
        },
        "connections": {
            "node": shared.registry.len(),
            "limit": shared.config.limits.max_connections,
            "stages": stages,
            "newest": newest,
        },
        "routes": routes,
        "totals": {
            "messagesIn": load(&activity.messages_in),
            "messagesOut": load(&activity.messages_out),
            "integrationErrors": load(&activity.integration_errors),
            "executionErrors": load(&activity.execution_errors),
            "refused": load(&activity.refused),
            "clientErrors": load(&activity.client_errors),
        },
        "rates": samples.rates(),
        "latency": samples.latency(activity),
        "series": samples.points(),
        "groups": { "count": group_count, "memberships": memberships, "largest": groups },
        "cluster": cluster,
        "recentErrors": activity.recent_errors(),
    })
}

/// A store read within [`READ_TIMEOUT`]; `null` when it failed or was late.
async fn bounded<T: serde::Serialize>(
    read: impl Future<Output = Result<T, wsgate_connection_store::StoreError>>,
) -> Value {
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(value)) => json!(value),
        _ => Value::Null,
    }
}

/// Connections held per stage, and the newest [`MAX_CONNECTIONS`] of them, newest first.
fn connections(api: &Api) -> (BTreeMap<String, usize>, Vec<Value>) {
    let shared = &api.shared;
    let mut per_stage: BTreeMap<String, usize> = BTreeMap::new();
    let mut newest = BinaryHeap::with_capacity(MAX_CONNECTIONS + 1);
    shared.registry.for_each(|handle| {
        let meta = &handle.meta;
        match per_stage.get_mut(&meta.stage) {
            Some(n) => *n += 1,
            None => {
                per_stage.insert(meta.stage.clone(), 1);
            }
        }
        newest.push(Reverse((meta.connected_at_ms, meta.connection_id.clone())));
        if newest.len() > MAX_CONNECTIONS {
            newest.pop();
        }
    });
    let mut newest: Vec<_> = newest.into_iter().map(|Reverse(entry)| entry).collect();
    newest.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let rows = newest
        .into_iter()
        .filter_map(|(connected_at, id)| {
            let handle = shared.registry.get(&id)?;
            let meta = &handle.meta;
            Some(json!({
                "id": id,
                "stage": meta.stage,
                "sourceIp": meta.source_ip,
                "userAgent": meta.user_agent,
                "connectedAt": connected_at,
                "lastActiveAt": handle.last_active_ms(),
                "open": handle.is_open(),
                "groups": shared.groups.joined(&id),
            }))
        })
        .collect();
    (per_stage, rows)
}

/// The deployments a node serves (its stages' and canaries'), sorted, each once.
fn deployments_of(serving: &wsgate_connection_store::NodeServing) -> Vec<String> {
    let mut ids: Vec<String> = (serving.stages.values())
        .flat_map(|s| std::iter::once(s.deployment.clone()).chain(s.canary.clone()))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}
