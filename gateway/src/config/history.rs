//! `groups.history:` which groups keep their recent messages (per group-name pattern), and the
//! bounds of recovery on reconnect (see docs/recovery.md).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::duration;

/// History kept for the groups whose name matches `pattern`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HistoryRule {
    /// A group name (`news`), a prefix ending in `*` (`room:*`), or `*` for every group.
    pub pattern: String,
    /// Messages kept per group (the oldest go first).
    #[serde(default = "default_max_messages")]
    pub max_messages: u64,
    /// Payload bytes kept per group by the memory store (Redis keeps `max_messages`).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Messages older than this are dropped; none: kept until pushed out by count.
    #[serde(
        default,
        deserialize_with = "duration::deserialize_opt",
        serialize_with = "duration::serialize_opt"
    )]
    #[schemars(with = "Option<duration::Text>")]
    pub max_age: Option<Duration>,
}

fn default_max_messages() -> u64 {
    1000
}

fn default_max_bytes() -> u64 {
    1 << 20
}

impl HistoryRule {
    /// True when this rule covers `group`.
    #[must_use]
    pub fn matches(&self, group: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => group.starts_with(prefix),
            None => self.pattern == group,
        }
    }
}

/// `groups.history:` settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// The groups that keep history; the first rule whose pattern matches a group applies.
    /// Empty (the default): no group keeps history and group delivery is unchanged.
    pub groups: Vec<HistoryRule>,
    /// Most messages one recovery replays for one group; a larger gap answers the client
    /// "not recovered" (reason `too_far`).
    pub replay_max_messages: u64,
    /// Messages read from the store at a time while replaying.
    pub replay_batch: usize,
    /// Live messages of one group held for a connection while its replay runs (they follow
    /// the replay); more give "not recovered" (reason `overflow`). Their bytes count against
    /// `limits.outbound_queue_bytes` and the node's `limits.node_queue_bytes`.
    pub replay_buffer_messages: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            groups: Vec::new(),
            replay_max_messages: 10_000,
            replay_batch: 256,
            replay_buffer_messages: 4096,
        }
    }
}

impl HistoryConfig {
    /// The rule for `group`, if it keeps history.
    #[must_use]
    pub fn rule(&self, group: &str) -> Option<&HistoryRule> {
        self.groups.iter().find(|rule| rule.matches(group))
    }

    /// Checks the ranges.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, rule) in self.groups.iter().enumerate() {
            let key = |field: &str| format!("groups.history.groups[{i}].{field}");
            let body = rule.pattern.strip_suffix('*').unwrap_or(&rule.pattern);
            if rule.pattern.is_empty() || body.contains('*') {
                return Err(ConfigError::invalid(
                    key("pattern"),
                    "must be a group name, a prefix ending in `*`, or `*`",
                ));
            }
            if !(1..=10_000_000).contains(&rule.max_messages) {
                return Err(ConfigError::invalid(
                    key("max_messages"),
                    "must be between 1 and 10000000",
                ));
            }
            if rule.max_bytes == 0 {
                return Err(ConfigError::invalid(
                    key("max_bytes"),
                    "must be greater than zero",
                ));
            }
            if rule
                .max_age
                .is_some_and(|age| age < Duration::from_millis(1))
            {
                return Err(ConfigError::invalid(key("max_age"), "must be at least 1ms"));
            }
        }
        for (key, value) in [
            ("groups.history.replay_batch", self.replay_batch),
            (
                "groups.history.replay_buffer_messages",
                self.replay_buffer_messages,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than zero"));
            }
        }
        if self.replay_max_messages == 0 {
            return Err(ConfigError::invalid(
                "groups.history.replay_max_messages",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    const BASE: &str = "listen: 127.0.0.1:0\napi:\n  name: t\n  route_selection_expression: $request.body.action\n  stages: {prod: {}}\n  routes: {}\n";

    #[test]
    fn rules_match_names_and_prefixes_and_bad_values_name_their_key() {
        let yaml = format!(
            "{BASE}groups:\n  history:\n    groups:\n      - {{pattern: 'room:*', max_messages: 5, max_age: 1h}}\n      - {{pattern: news}}\n"
        );
        let config = Config::from_yaml(&yaml).expect("loads");
        let history = &config.groups.history;
        assert_eq!(history.rule("room:1").map(|r| r.max_messages), Some(5));
        assert_eq!(history.rule("news").map(|r| r.max_messages), Some(1000));
        assert!(history.rule("newsroom").is_none());
        assert!(history.rule("other").is_none());
        for (bad, key) in [
            ("{pattern: 'a*b'}", "groups.history.groups[0].pattern"),
            ("{pattern: ''}", "groups.history.groups[0].pattern"),
            (
                "{pattern: a, max_messages: 0}",
                "groups.history.groups[0].max_messages",
            ),
        ] {
            let yaml = format!("{BASE}groups:\n  history:\n    groups:\n      - {bad}\n");
            let error = Config::from_yaml(&yaml).expect_err(bad).to_string();
            assert!(error.contains(key), "{error}");
        }
    }
}
