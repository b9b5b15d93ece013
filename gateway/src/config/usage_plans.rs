//! `throttling.usage_plans.<name>`: a rate and burst per API key of the plan, and a quota per
//! day, week or month, as an API Gateway usage plan's `throttle` and `quota`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ApiKeyConfig, ConfigError};

/// One usage plan.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UsagePlanConfig {
    /// Steady requests per second of each key of the plan.
    pub rate_limit: Option<f64>,
    /// Burst of each key of the plan.
    pub burst_limit: Option<u32>,
    /// Requests each key of the plan may make per period.
    pub quota: Option<QuotaConfig>,
}

/// A quota.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Requests per period.
    pub limit: u64,
    /// `day`, `week` or `month` (UTC).
    pub period: Period,
}

impl UsagePlanConfig {
    /// The plan's rate and burst, when it has them.
    pub fn rate(&self) -> Option<(f64, u32)> {
        Some((self.rate_limit?, self.burst_limit?))
    }
}

fn invalid(key: String, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Checks the plans: complete rate settings, not looser than the gateway, each used by a key.
pub(crate) fn validate(
    plans: &BTreeMap<String, UsagePlanConfig>,
    gateway: Option<(f64, u32)>,
    api_keys: &[ApiKeyConfig],
) -> Result<(), ConfigError> {
    for (name, plan) in plans {
        let at = format!("throttling.usage_plans.{name}");
        match (plan.rate_limit, plan.burst_limit) {
            (Some(_), None) => {
                return Err(invalid(
                    format!("{at}.burst_limit"),
                    "required with rate_limit",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    format!("{at}.rate_limit"),
                    "required with burst_limit",
                ));
            }
            _ => {}
        }
        if let Some(rate) = plan.rate_limit
            && !(rate.is_finite() && rate >= 0.0)
        {
            return Err(invalid(
                format!("{at}.rate_limit"),
                "must be a number of requests per second, 0 or more",
            ));
        }
        if let (Some((rate, burst)), Some((g_rate, g_burst))) = (plan.rate(), gateway) {
            let looser = if rate > g_rate {
                Some(("rate_limit", rate.to_string(), g_rate.to_string()))
            } else if burst > g_burst {
                Some(("burst_limit", burst.to_string(), g_burst.to_string()))
            } else {
                None
            };
            if let Some((field, own, parent)) = looser {
                return Err(invalid(
                    format!("{at}.{field}"),
                    format!(
                        "{own} exceeds throttling.gateway ({parent}); lower levels may only tighten"
                    ),
                ));
            }
        }
        if !api_keys.iter().any(|k| &k.usage_plan == name) {
            return Err(invalid(
                at,
                format!("no api_keys entry has usage_plan `{name}`"),
            ));
        }
    }
    Ok(())
}

/// The period a quota counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// 00:00 UTC to 00:00 UTC.
    Day,
    /// Monday 00:00 UTC to the next Monday.
    Week,
    /// The 1st 00:00 UTC to the 1st of the next month.
    Month,
}
