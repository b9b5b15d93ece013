//! The keys of `type: sqs` consumers: the queue URL, and the region and endpoint its requests
//! use (given, from the `aws:` section, or read off the queue URL).

use std::time::Duration;

use super::aws::check_endpoint;
use super::consumers::{ConsumerConfig, DEFAULT_WAIT_TIME};
use super::{AwsConfig, ConfigError};

/// Largest `visibility_timeout` (SQS's own limit).
const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);

impl ConsumerConfig {
    /// sqs: the region requests are signed for: `region`, else `aws_region`, else the one in
    /// an AWS queue URL (`sqs.{region}.amazonaws.com` or `{region}.queue.amazonaws.com`).
    pub fn sqs_region(&self, aws_region: Option<&str>) -> Option<String> {
        if let Some(region) = self.region.as_deref().or(aws_region) {
            return Some(region.to_string());
        }
        let url = reqwest::Url::parse(self.queue_url.as_deref()?).ok()?;
        let labels: Vec<&str> = url.host_str()?.split('.').collect();
        match labels.as_slice() {
            ["sqs", region, "amazonaws", ..] | [region, "queue", "amazonaws", ..] => {
                Some((*region).to_string())
            }
            _ => None,
        }
    }

    /// sqs: where requests are sent (no trailing `/`): `endpoint_url`, else `aws_endpoint`,
    /// else the queue URL's scheme and authority.
    pub fn sqs_endpoint(&self, aws_endpoint: Option<&str>) -> Option<String> {
        if let Some(url) = self.endpoint_url.as_deref().or(aws_endpoint) {
            return Some(url.trim_end_matches('/').to_string());
        }
        let url = reqwest::Url::parse(self.queue_url.as_deref()?).ok()?;
        let host = url.host_str()?;
        Some(match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        })
    }
}

/// Checks the sqs keys of consumer `c` (`key` names them).
///
/// # Errors
/// A [`ConfigError`] naming the key.
pub(super) fn validate(
    c: &ConsumerConfig,
    aws: &AwsConfig,
    key: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    let queue_url = c.queue_url.as_deref().unwrap_or_default();
    let parsed = reqwest::Url::parse(queue_url)
        .map_err(|e| ConfigError::invalid(key("queue_url"), format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || parsed.path().trim_matches('/').is_empty()
    {
        return Err(ConfigError::invalid(
            key("queue_url"),
            "must be an http:// or https:// queue URL such as https://sqs.us-east-1.amazonaws.com/123456789012/replies",
        ));
    }
    if let Some(url) = &c.endpoint_url {
        check_endpoint(url).map_err(|m| ConfigError::invalid(key("endpoint_url"), m))?;
    }
    if let Some(region) = &c.region {
        let valid = !region.is_empty()
            && (region.bytes()).all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(ConfigError::invalid(
                key("region"),
                "must be a region name such as `us-east-1`",
            ));
        }
    }
    if c.sqs_region(aws.region.as_deref()).is_none() {
        return Err(ConfigError::invalid(
            key("region"),
            "no region: set it here or in `aws.region` (the queue URL does not name one)",
        ));
    }
    if c.wait_time.is_some_and(|w| w > DEFAULT_WAIT_TIME) {
        return Err(ConfigError::invalid(
            key("wait_time"),
            "must be at most 20s",
        ));
    }
    let visibility = c.visibility_timeout();
    if visibility < Duration::from_secs(1) || visibility > MAX_VISIBILITY_TIMEOUT {
        return Err(ConfigError::invalid(
            key("visibility_timeout"),
            "must be between 1s and 12h",
        ));
    }
    if c.retry_window() >= visibility {
        return Err(ConfigError::invalid(
            key("visibility_timeout"),
            format!(
                "must exceed the retry window ({:?}: max_deliver attempts with retry_backoff)",
                c.retry_window()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    const BASE: &str = "listen: 127.0.0.1:0\napi:\n  name: t\n  route_selection_expression: $request.body.action\n  stages: {prod: {}}\n  routes:\n    $default: {integration: {type: mock}}\n";

    fn load(top: &str, consumers: &str) -> Result<Config, String> {
        Config::from_yaml(&format!("{BASE}{top}consumers:\n{consumers}")).map_err(|e| e.to_string())
    }

    #[test]
    fn region_and_endpoint_come_from_the_queue_url() {
        let config = load(
            "",
            "  - {name: a, type: sqs, queue_url: 'https://sqs.eu-west-1.amazonaws.com/123456789012/replies', stage: prod}\n",
        )
        .expect("loads");
        let c = &config.consumers[0];
        assert_eq!(c.sqs_region(None).as_deref(), Some("eu-west-1"));
        assert_eq!(
            c.sqs_endpoint(None).as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com")
        );
        assert_eq!(
            c.sqs_region(Some("us-east-2")).as_deref(),
            Some("us-east-2")
        );
        assert_eq!(
            c.sqs_endpoint(Some("http://127.0.0.1:4566/")).as_deref(),
            Some("http://127.0.0.1:4566")
        );
        assert_eq!(c.wait_time().as_secs(), 20);
        assert_eq!(c.visibility_timeout().as_secs(), 30);
        let local = load(
            "aws: {region: us-east-1}\n",
            "  - {name: a, type: sqs, queue_url: 'http://127.0.0.1:5000/123456789012/q', wait_time: 5s}\n",
        )
        .expect("loads");
        assert_eq!(
            local.consumers[0].sqs_endpoint(None).as_deref(),
            Some("http://127.0.0.1:5000")
        );
    }

    #[test]
    fn invalid_values_name_their_key() {
        let url = "queue_url: 'http://127.0.0.1:5000/123456789012/q'";
        for (yaml, key) in [
            (
                "  - {name: a, type: sqs, stage: prod}\n".to_string(),
                "consumers[0].queue_url",
            ),
            (
                "  - {name: a, type: sqs, queue_url: 'not a url'}\n".to_string(),
                "consumers[0].queue_url",
            ),
            (
                format!("  - {{name: a, type: sqs, {url}}}\n"),
                "consumers[0].region",
            ),
            (
                format!("  - {{name: a, type: sqs, {url}, region: us-east-1, wait_time: 21s}}\n"),
                "consumers[0].wait_time",
            ),
            (
                format!(
                    "  - {{name: a, type: sqs, {url}, region: us-east-1, visibility_timeout: 5s}}\n"
                ),
                "consumers[0].visibility_timeout",
            ),
            (
                format!("  - {{name: a, type: sqs, {url}, region: us-east-1, dead_letter: dl}}\n"),
                "consumers[0].dead_letter",
            ),
            (
                format!(
                    "  - {{name: a, type: sqs, {url}, region: us-east-1, url: 'nats://h:1'}}\n"
                ),
                "consumers[0].url",
            ),
            (
                format!(
                    "  - {{name: a, type: sqs, {url}, region: us-east-1, endpoint_url: 'ftp://h'}}\n"
                ),
                "consumers[0].endpoint_url",
            ),
            (
                "  - {name: a, type: rabbitmq, url: 'amqp://h', queue: q, wait_time: 1s}\n"
                    .to_string(),
                "consumers[0].wait_time",
            ),
            (
                "  - {name: a, type: rabbitmq, queue: q}\n".to_string(),
                "consumers[0].url",
            ),
        ] {
            let error = load("", &yaml).expect_err(&yaml);
            assert!(error.contains(key), "{key}: {error}");
        }
    }
}
