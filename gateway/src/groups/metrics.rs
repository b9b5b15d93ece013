//! Group metrics: the fan-out counters and size gauges (names and descriptions in
//! [`crate::telemetry`]).

use super::fanout::Counts;
use crate::telemetry::{
    GROUP_DELIVERIES_TOTAL, GROUP_DROPS_TOTAL, GROUP_FANOUTS_TOTAL, GROUP_MEMBERS_CURRENT,
    GROUPS_CURRENT,
};

/// Records one fan-out.
pub(crate) fn record_fanout(kind: &'static str, counts: Counts) {
    metrics::counter!(GROUP_FANOUTS_TOTAL, "kind" => kind).increment(1);
    metrics::counter!(GROUP_DELIVERIES_TOTAL, "kind" => kind).increment(counts.delivered);
    if counts.dropped > 0 {
        metrics::counter!(GROUP_DROPS_TOTAL, "kind" => kind).increment(counts.dropped);
    }
}

/// Sets the gauges.
pub(crate) fn set_sizes(groups: usize, members: usize) {
    metrics::gauge!(GROUPS_CURRENT).set(groups as f64);
    metrics::gauge!(GROUP_MEMBERS_CURRENT).set(members as f64);
}
