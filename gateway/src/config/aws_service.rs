//! `type: aws` integrations (an AWS service action called directly): their settings and the
//! startup checks of service, action, parameters, region and endpoint.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::transform::{ContentHandling, IntegrationResponseConfig, PassthroughBehavior};
use super::{ApiConfig, AwsConfig, ConfigError, duration, substitute_stage_variables};
use crate::integration::aws_service::Action;

/// `integration: {type: aws, ...}`: one AWS service action (`SendMessage` of `sqs`, ...).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsServiceConfig {
    /// `sqs`, `sns`, `kinesis`, `events`, `states`, `dynamodb` or `lambda`.
    pub service: String,
    /// The action of `service` (`SendMessage`, `Publish`, `PutRecord`, `PutEvents`,
    /// `StartExecution`, `PutItem`, `Invoke`).
    pub action: String,
    /// Region of the service (default: `aws.region`).
    #[serde(default)]
    pub region: Option<String>,
    /// Send the requests here (default: `aws.endpoint_url`, else the regional endpoint).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Per-request timeout (50 ms to 15 min; default 29 s as in AWS).
    #[serde(
        default = "default_timeout",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub timeout: Duration,
    /// The action's targets and options (`QueueUrl`, `TopicArn`, ...; stage variables allowed)
    /// used by the simple mapping when no request template makes the body.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Picks a request template, as `http`'s.
    #[serde(default)]
    pub template_selection_expression: Option<String>,
    /// Request templates (VTL) making the whole request body of the action.
    #[serde(default)]
    pub request_templates: BTreeMap<String, String>,
    /// When no template is selected (the payload then goes through the simple mapping).
    #[serde(default)]
    pub passthrough_behavior: PassthroughBehavior,
    /// Converts the client's payload before templates see it.
    #[serde(default)]
    pub content_handling_strategy: Option<ContentHandling>,
    /// Integration responses by `$default` or `/status regex/`.
    #[serde(default)]
    pub integration_responses: BTreeMap<String, IntegrationResponseConfig>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(29)
}

impl AwsServiceConfig {
    /// The action this integration calls (checked by [`validate`]).
    ///
    /// # Errors
    /// The reason the service or action is not supported, in words.
    pub(crate) fn action(&self) -> Result<Action, String> {
        Action::find(&self.service, &self.action)
    }
}

/// Checks a `type: aws` integration at `at` (`api.routes.x.integration`).
///
/// # Errors
/// [`ConfigError::Invalid`] naming the key.
pub(super) fn validate(
    at: &str,
    config: &AwsServiceConfig,
    api: &ApiConfig,
    aws: &AwsConfig,
) -> Result<(), ConfigError> {
    let action = Action::find(&config.service, &config.action).map_err(|e| {
        let key = if Action::service_known(&config.service) {
            "action"
        } else {
            "service"
        };
        ConfigError::invalid(format!("{at}.{key}"), e)
    })?;
    if !(Duration::from_millis(50)..=Duration::from_secs(900)).contains(&config.timeout) {
        return Err(ConfigError::invalid(
            format!("{at}.timeout"),
            "must be between 50ms and 15m",
        ));
    }
    match (&config.region, &aws.region) {
        (Some(region), _) if !valid_region(region) => {
            return Err(ConfigError::invalid(
                format!("{at}.region"),
                "must be a region name such as `us-east-1`",
            ));
        }
        (None, None) => {
            return Err(ConfigError::invalid(
                format!("{at}.region"),
                "no region: set it here or in `aws.region`",
            ));
        }
        _ => {}
    }
    if let Some(url) = &config.endpoint_url {
        super::aws::check_endpoint(url)
            .map_err(|m| ConfigError::invalid(format!("{at}.endpoint_url"), m))?;
    }
    for name in config.parameters.keys() {
        if !action.accepts(name) {
            return Err(ConfigError::invalid(
                format!("{at}.parameters.{name}"),
                format!(
                    "`{}` of `{}` takes {}",
                    action.name(),
                    action.service(),
                    action.parameter_list()
                ),
            ));
        }
    }
    // A request template makes the whole body, targets included (not the URL).
    let needed = if config.request_templates.is_empty() {
        action.required()
    } else {
        action.in_url()
    };
    for name in needed {
        if !config.parameters.contains_key(*name) {
            return Err(ConfigError::invalid(
                format!("{at}.parameters.{name}"),
                format!(
                    "`{}` of `{}` needs `{name}`{}",
                    action.name(),
                    action.service(),
                    if action.in_url().contains(name) {
                        ""
                    } else {
                        " (or a request template making the whole body)"
                    }
                ),
            ));
        }
    }
    for (stage, settings) in &api.stages {
        for (name, value) in &config.parameters {
            let resolved =
                substitute_stage_variables(value, &settings.variables).map_err(|missing| {
                    ConfigError::invalid(
                        format!("{at}.parameters.{name}"),
                        format!("stage `{stage}` has no variable `{missing}`"),
                    )
                })?;
            if resolved.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{at}.parameters.{name}"),
                    format!("is empty in stage `{stage}`"),
                ));
            }
        }
    }
    Ok(())
}

fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && (region.bytes()).all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
