//! Group metrics (Prometheus names; described once at startup by `telemetry`).

use super::fanout::Counts;

/// Groups with members on this node.
pub const GROUPS_CURRENT: &str = "wsgate_groups_current";
/// Group memberships on this node.
pub const MEMBERS_CURRENT: &str = "wsgate_group_members_current";
/// Group messages and broadcasts fanned out on this node, by `kind` (`group`, `broadcast`).
pub const FANOUTS_TOTAL: &str = "wsgate_group_fanouts_total";
/// Messages queued for members by fan-outs, by `kind`.
pub const DELIVERIES_TOTAL: &str = "wsgate_group_deliveries_total";
/// Members skipped because their outbound queue was full, by `kind`.
pub const DROPS_TOTAL: &str = "wsgate_group_drops_total";
/// Group messages published to the other nodes, by `outcome` (`ok`, `error`).
pub const PUBLISH_TOTAL: &str = "wsgate_group_publish_total";
/// Presence events, by `outcome` (`sent`, `failed`, `dropped`).
pub const PRESENCE_TOTAL: &str = "wsgate_group_presence_events_total";

/// Records one fan-out.
pub(crate) fn record_fanout(kind: &'static str, counts: Counts) {
    metrics::counter!(FANOUTS_TOTAL, "kind" => kind).increment(1);
    metrics::counter!(DELIVERIES_TOTAL, "kind" => kind).increment(counts.delivered);
    if counts.dropped > 0 {
        metrics::counter!(DROPS_TOTAL, "kind" => kind).increment(counts.dropped);
    }
}

/// Sets the gauges.
pub(crate) fn set_sizes(groups: usize, members: usize) {
    metrics::gauge!(GROUPS_CURRENT).set(groups as f64);
    metrics::gauge!(MEMBERS_CURRENT).set(members as f64);
}

/// Describes every group metric.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(GROUPS_CURRENT, "Groups with members on this node");
    describe_gauge!(MEMBERS_CURRENT, "Group memberships on this node");
    describe_counter!(
        FANOUTS_TOTAL,
        "Group messages and broadcasts fanned out on this node, by kind"
    );
    describe_counter!(
        DELIVERIES_TOTAL,
        "Messages queued for group members by fan-outs, by kind"
    );
    describe_counter!(
        DROPS_TOTAL,
        "Group members skipped because their outbound queue was full, by kind"
    );
    describe_counter!(
        PUBLISH_TOTAL,
        "Group messages published to the other nodes, by outcome"
    );
    describe_counter!(PRESENCE_TOTAL, "Group presence events, by outcome");
}
