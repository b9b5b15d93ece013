//! Key names and the stored value format of the Redis store.

use crate::{ConnectionRecord, DecodeError, StoreError};

/// Width of the `lastActiveAt` header: `{:020}` fits every `i64`, sign included, so the touch
/// script can overwrite it in place with `SETRANGE`.
pub(super) const HEADER_LEN: usize = 20;

/// Key names under one prefix. Record and index keys carry no hash tag (each command touches one
/// of them); the membership keys share the tag `{prefix}` because lease scripts touch several.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}:conn:{id}`: the record value.
    pub(super) fn record(&self, connection_id: &str) -> String {
        format!("{}:conn:{connection_id}", self.prefix)
    }

    /// `{{prefix}:conn:{id}}:owed`: the `$disconnect` owed for a removed record, on the
    /// record key's slot (its hash tag is the record key's name).
    pub(super) fn owed(&self, connection_id: &str) -> String {
        format!("{{{}}}:owed", self.record(connection_id))
    }

    /// `{{prefix}}:owed`: sorted set of ids that may owe a `$disconnect` (see `owed`).
    pub(super) fn owed_index(&self) -> String {
        format!("{{{}}}:owed", self.prefix)
    }

    /// `{prefix}:node:{node_id}`: set of the ids owned by that node.
    pub(super) fn node(&self, node_id: &str) -> String {
        format!("{}:node:{node_id}", self.prefix)
    }

    /// `{prefix}:group:{{stage}:{group}}`: set of a group's members, hash-tagged by stage and
    /// group so that each group's key has a slot of its own.
    pub(super) fn group(&self, stage: &str, group: &str) -> String {
        format!("{}:group:{{{stage}:{group}}}", self.prefix)
    }

    /// `{prefix}:hpos:{{stage}:{group}}`: a group's history epoch and offset counter (the
    /// group's hash tag).
    pub(super) fn history_position(&self, stage: &str, group: &str) -> String {
        format!("{}:hpos:{{{stage}:{group}}}", self.prefix)
    }

    /// `{prefix}:hist:{{stage}:{group}}`: a group's history stream.
    pub(super) fn history(&self, stage: &str, group: &str) -> String {
        format!("{}:hist:{{{stage}:{group}}}", self.prefix)
    }

    /// `{{prefix}}:deploy:{name}`: the deployment keys (see `deployments`), in the slot of
    /// the membership keys.
    pub(super) fn deploy(&self, name: &str) -> String {
        format!("{{{}}}:deploy:{name}", self.prefix)
    }

    /// `{prefix}:joined:{connection_id}`: set of the groups a connection joined.
    pub(super) fn joined(&self, connection_id: &str) -> String {
        format!("{}:joined:{connection_id}", self.prefix)
    }

    /// `{prefix}:stage:{stage}`: set of a stage's connections.
    pub(super) fn stage(&self, stage: &str) -> String {
        format!("{}:stage:{stage}", self.prefix)
    }

    /// `{prefix}:ack:{{key}}`: a seen client message id (see `acks`), tagged by its own key.
    pub(super) fn ack(&self, key: &str) -> String {
        format!("{}:ack:{{{key}}}", self.prefix)
    }

    /// `{{prefix}}:lease:{node_id}`: the node's lease (value: its token; `PX` TTL).
    pub(super) fn lease(&self, node_id: &str) -> String {
        format!("{{{}}}:lease:{node_id}", self.prefix)
    }

    /// `{{prefix}}:reaped:{node_id}`: tombstone holding the token of a reaped lease.
    pub(super) fn reaped(&self, node_id: &str) -> String {
        format!("{{{}}}:reaped:{node_id}", self.prefix)
    }

    /// `{{prefix}}:nodes`: hash of every registered node id to its current lease token.
    pub(super) fn nodes(&self) -> String {
        format!("{{{}}}:nodes", self.prefix)
    }
}

/// The fixed-width header for a timestamp (also the `touch` script argument).
pub(super) fn header(at_ms: i64) -> String {
    format!("{at_ms:0HEADER_LEN$}")
}

/// Header followed by the record's camelCase JSON.
pub(super) fn encode(record: &ConnectionRecord) -> Result<Vec<u8>, StoreError> {
    let mut value = header(record.last_active_at_ms).into_bytes();
    serde_json::to_writer(&mut value, record).map_err(|source| StoreError::Encode {
        id: record.connection_id.clone(),
        source,
    })?;
    Ok(value)
}

/// Inverse of [`encode`]; the header, which `touch` moves forward, wins over the JSON field.
pub(super) fn decode(connection_id: &str, raw: &[u8]) -> Result<ConnectionRecord, StoreError> {
    let corrupt = |source| StoreError::Corrupt {
        id: connection_id.to_owned(),
        source,
    };
    let (head, body) = raw
        .split_at_checked(HEADER_LEN)
        .ok_or(corrupt(DecodeError::Header))?;
    let last_active_at_ms = std::str::from_utf8(head)
        .ok()
        .and_then(|h| h.parse::<i64>().ok())
        .ok_or(corrupt(DecodeError::Header))?;
    let mut record: ConnectionRecord =
        serde_json::from_slice(body).map_err(|e| corrupt(DecodeError::Json(e)))?;
    record.last_active_at_ms = last_active_at_ms;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(last_active_at_ms: i64) -> ConnectionRecord {
        ConnectionRecord {
            connection_id: "c".into(),
            node_id: "n".into(),
            stage: "s".into(),
            connected_at_ms: 1,
            last_active_at_ms,
            source_ip: "::1".into(),
            user_agent: None,
            authorizer: None,
            api_key_id: None,
            domain_name: None,
        }
    }

    #[test]
    fn header_is_fixed_width_for_every_i64() {
        for at in [i64::MIN, -5, 0, 1_700_000_000_000, i64::MAX] {
            assert_eq!(header(at).len(), HEADER_LEN, "{at}");
            assert_eq!(header(at).parse::<i64>().ok(), Some(at));
        }
    }

    #[test]
    fn round_trip_and_header_wins() {
        let encoded = encode(&record(7)).expect("encodes");
        assert_eq!(decode("c", &encoded).expect("decodes"), record(7));
        let mut touched = header(9).into_bytes();
        touched.extend_from_slice(&encoded[HEADER_LEN..]);
        assert_eq!(decode("c", &touched).expect("decodes").last_active_at_ms, 9);
    }

    #[test]
    fn corrupt_values_are_reported_with_their_id() {
        for raw in [
            &b"short"[..],
            b"xxxxxxxxxxxxxxxxxxxx{}",
            b"00000000000000000001{",
        ] {
            match decode("bad", raw) {
                Err(StoreError::Corrupt { id, .. }) => assert_eq!(id, "bad"),
                other => panic!("expected Corrupt for {raw:?}, got {other:?}"),
            }
        }
    }
}
