//! The connection record: what every node needs to know about a connection it does not own.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One client connection, as stored for the whole cluster.
///
/// Stored as camelCase JSON (`connectionId`, `nodeId`, `lastActiveAtMs`, …); the `None` options
/// are omitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionRecord {
    /// Opaque connection id, as handed to backends and used in `@connections/{id}`.
    pub connection_id: String,
    /// The gateway node that holds the socket; callbacks for this connection are routed there.
    pub node_id: String,
    /// API stage the client connected to.
    pub stage: String,
    /// When the upgrade completed, epoch milliseconds.
    pub connected_at_ms: i64,
    /// Last client activity, epoch milliseconds; only ever moves forward via `touch`.
    pub last_active_at_ms: i64,
    /// Client address as seen by the gateway (after trusted-proxy handling).
    pub source_ip: String,
    /// `User-Agent` header of the upgrade request, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Authorizer output (`principalId` plus context), passed to every later integration call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizer: Option<Map<String, Value>>,
    /// Id of the API key the client presented, if API keys are required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    /// `domainName` of the connection's events, so another node can send its `$disconnect`
    /// (when reaping a dead node) exactly as the owner would have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_json_is_camel_case_and_omits_empty_options() {
        let record = ConnectionRecord {
            connection_id: "c1".into(),
            node_id: "n1".into(),
            stage: "prod".into(),
            connected_at_ms: 1,
            last_active_at_ms: 2,
            source_ip: "127.0.0.1".into(),
            user_agent: None,
            authorizer: None,
            api_key_id: Some("k".into()),
            domain_name: None,
        };
        let json = serde_json::to_value(&record).expect("record serializes");
        let expected = serde_json::json!({
            "connectionId": "c1", "nodeId": "n1", "stage": "prod", "connectedAtMs": 1,
            "lastActiveAtMs": 2, "sourceIp": "127.0.0.1", "apiKeyId": "k"
        });
        assert_eq!(json, expected);
        let back: ConnectionRecord = serde_json::from_value(json).expect("record deserializes");
        assert_eq!(back, record);
    }
}
