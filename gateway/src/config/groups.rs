//! `groups:` section: limits of named groups, the slow-member policy, presence events, and
//! history (`history`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// What happens to a member whose outbound queue is full when a group message or a broadcast
/// reaches it.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SlowMember {
    /// Close it with 1013 (Try Again Later): the client reconnects and resynchronises, so no
    /// connection stays open having silently missed a message.
    #[default]
    Close,
    /// Skip the message for that member only; it stays open and in its groups.
    Drop,
}

/// `groups:` settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GroupsConfig {
    /// Groups one connection may be in at once; more joins answer 429.
    pub max_groups_per_connection: usize,
    /// Longest group name, bytes (names are letters, digits and `-_.:`).
    pub max_name_bytes: usize,
    /// What happens to a member whose outbound queue is full.
    pub slow_member: SlowMember,
    /// `$join`/`$leave` events (when those routes exist) are sent only while the group has at
    /// most this many members cluster-wide; 0 turns them off.
    pub presence_max_members: u64,
    /// Presence events being delivered at once on this node; more are dropped (counted).
    pub presence_concurrency: usize,
    /// Group posts and broadcasts being handled at once on this node; more answer 429.
    pub max_inflight_posts: usize,
    /// Group messages received from other nodes and waiting to be delivered; when full, more are
    /// dropped (counted).
    pub receive_queue_messages: usize,
    /// Largest page of a member or connection listing (`maxResults`) and of a history page
    /// (`limit`).
    pub max_page_size: usize,
    /// Which groups keep history, and the bounds of recovery on reconnect.
    pub history: super::HistoryConfig,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        Self {
            max_groups_per_connection: 64,
            max_name_bytes: 128,
            slow_member: SlowMember::Close,
            presence_max_members: 100,
            presence_concurrency: 64,
            max_inflight_posts: 1024,
            receive_queue_messages: 4096,
            max_page_size: 1000,
            history: super::HistoryConfig::default(),
        }
    }
}

impl GroupsConfig {
    /// Checks the ranges.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            (
                "groups.max_groups_per_connection",
                self.max_groups_per_connection,
            ),
            ("groups.presence_concurrency", self.presence_concurrency),
            ("groups.max_inflight_posts", self.max_inflight_posts),
            ("groups.receive_queue_messages", self.receive_queue_messages),
            ("groups.max_page_size", self.max_page_size),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than zero"));
            }
        }
        if !(1..=1024).contains(&self.max_name_bytes) {
            return Err(ConfigError::invalid(
                "groups.max_name_bytes",
                "must be between 1 and 1024",
            ));
        }
        self.history.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    const BASE: &str = "listen: 127.0.0.1:0\napi:\n  name: t\n  route_selection_expression: $request.body.action\n  stages: {prod: {}}\n  routes:\n    $join: {integration: {type: mock}}\n    $leave: {integration: {type: mock}}\n";

    #[test]
    fn defaults_keys_env_and_presence_routes() {
        let config = Config::from_yaml(BASE).expect("$join and $leave are route keys");
        assert_eq!(config.groups.max_groups_per_connection, 64);
        assert_eq!(config.groups.slow_member, SlowMember::Close);
        let yaml = format!("{BASE}groups:\n  slow_member: drop\n  presence_max_members: 0\n");
        let config = Config::from_yaml(&yaml).expect("loads");
        assert_eq!(config.groups.slow_member, SlowMember::Drop);
        assert_eq!(config.groups.presence_max_members, 0);
        let vars = [("WSGATE_GROUPS__MAX_PAGE_SIZE".to_string(), "50".to_string())];
        let config = Config::from_yaml_with_env(BASE, vars).expect("loads");
        assert_eq!(config.groups.max_page_size, 50);
    }

    #[test]
    fn invalid_values_name_their_key() {
        for (yaml, key) in [
            (
                "groups:\n  max_groups_per_connection: 0\n",
                "groups.max_groups_per_connection",
            ),
            ("groups:\n  max_name_bytes: 2000\n", "groups.max_name_bytes"),
            ("groups:\n  slow_member: wait\n", "groups.slow_member"),
            (
                "groups:\n  max_inflight_posts: 0\n",
                "groups.max_inflight_posts",
            ),
        ] {
            let error = Config::from_yaml(&format!("{BASE}{yaml}"))
                .expect_err("invalid")
                .to_string();
            assert!(error.contains(key), "{error}");
        }
    }
}
