//! Where a broker message goes: parsed from headers (`wsgate-connection-id`, `wsgate-group`,
//! `wsgate-broadcast`, `wsgate-stage`) or from a JSON envelope, and checked against the
//! configured stages and the message size limit.

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;

/// Header (or Redis field) naming the connection.
pub(crate) const CONNECTION_HEADER: &str = "wsgate-connection-id";
/// Header naming the group.
pub(crate) const GROUP_HEADER: &str = "wsgate-group";
/// Header `true` for every connection of the stage.
pub(crate) const BROADCAST_HEADER: &str = "wsgate-broadcast";
/// Header naming the stage (else the consumer's `stage`).
pub(crate) const STAGE_HEADER: &str = "wsgate-stage";
/// Redis Streams: the field that holds the payload.
pub(crate) const DATA_FIELD: &str = "data";

/// Who receives a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// One connection.
    Connection(String),
    /// Every member of a group, cluster-wide.
    Group(String),
    /// Every connection of the stage, cluster-wide.
    Broadcast,
}

/// A message with its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Addressed {
    pub(crate) stage: String,
    pub(crate) target: Target,
    /// The bytes sent: a text frame when valid UTF-8, else binary (as the callback API does).
    pub(crate) data: Bytes,
}

impl Addressed {
    /// What keeps messages in order: one connection, one group or one stage's broadcasts.
    pub(crate) fn order_key(&self) -> String {
        match &self.target {
            Target::Connection(id) => format!("c\n{id}"),
            Target::Group(group) => format!("g\n{}\n{group}", self.stage),
            Target::Broadcast => format!("b\n{}", self.stage),
        }
    }
}

/// Why a message cannot be delivered anywhere (acknowledged and counted, never retried).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AddressError {
    #[error("no address: give exactly one of connection id, group or broadcast")]
    Missing,
    #[error("more than one address: give exactly one of connection id, group or broadcast")]
    Ambiguous,
    #[error("no stage: the message names none and the consumer has no `stage`")]
    NoStage,
    #[error("unknown stage `{0}`")]
    UnknownStage(String),
    #[error("invalid JSON envelope: {0}")]
    Json(String),
    #[error("invalid dataBase64: {0}")]
    Base64(String),
    #[error("payload of {size} bytes exceeds limits.max_message_bytes ({limit})")]
    TooLarge { size: usize, limit: usize },
    #[error("no `data` field")]
    NoData,
    #[error("invalid header `{0}`: not UTF-8 text")]
    Header(&'static str),
}

/// What every address is checked against.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    /// The consumer's `stage`.
    pub(crate) default_stage: Option<String>,
    /// The configured stages.
    pub(crate) stages: Vec<String>,
    /// `limits.max_message_bytes`.
    pub(crate) max_bytes: usize,
}

impl Rules {
    fn finish(
        &self,
        stage: Option<String>,
        target: Target,
        data: Bytes,
    ) -> Result<Addressed, AddressError> {
        let stage = stage
            .or_else(|| self.default_stage.clone())
            .ok_or(AddressError::NoStage)?;
        if !self.stages.contains(&stage) {
            return Err(AddressError::UnknownStage(stage));
        }
        if data.len() > self.max_bytes {
            return Err(AddressError::TooLarge {
                size: data.len(),
                limit: self.max_bytes,
            });
        }
        Ok(Addressed {
            stage,
            target,
            data,
        })
    }

    /// An address from headers; `header` answers a header's value (`Err` when not text).
    pub(crate) fn parse_headers(
        &self,
        header: impl Fn(&'static str) -> Result<Option<String>, AddressError>,
        payload: Bytes,
    ) -> Result<Addressed, AddressError> {
        let connection = header(CONNECTION_HEADER)?.filter(|v| !v.is_empty());
        let group = header(GROUP_HEADER)?.filter(|v| !v.is_empty());
        let broadcast = header(BROADCAST_HEADER)?.is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let stage = header(STAGE_HEADER)?.filter(|v| !v.is_empty());
        let target = pick(connection, group, broadcast)?;
        self.finish(stage, target, payload)
    }

    /// An address from a JSON envelope.
    pub(crate) fn parse_json(&self, payload: &[u8]) -> Result<Addressed, AddressError> {
        let envelope: JsonEnvelope =
            serde_json::from_slice(payload).map_err(|e| AddressError::Json(e.to_string()))?;
        let target = pick(
            envelope.connection_id,
            envelope.group,
            envelope.broadcast.unwrap_or(false),
        )?;
        let data = match (envelope.data, envelope.data_base64) {
            (Some(_), Some(_)) => {
                return Err(AddressError::Json(
                    "give `data` or `dataBase64`, not both".into(),
                ));
            }
            (Some(text), None) => Bytes::from(text),
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map(Bytes::from)
                .map_err(|e| AddressError::Base64(e.to_string()))?,
            (None, None) => {
                return Err(AddressError::Json("missing `data` or `dataBase64`".into()));
            }
        };
        self.finish(envelope.stage, target, data)
    }
}

fn pick(
    connection: Option<String>,
    group: Option<String>,
    broadcast: bool,
) -> Result<Target, AddressError> {
    match (connection, group, broadcast) {
        (Some(id), None, false) => Ok(Target::Connection(id)),
        (None, Some(group), false) => Ok(Target::Group(group)),
        (None, None, true) => Ok(Target::Broadcast),
        (None, None, false) => Err(AddressError::Missing),
        _ => Err(AddressError::Ambiguous),
    }
}

/// `{"connectionId"|"group"|"broadcast", "stage"?, "data"|"dataBase64"}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonEnvelope {
    connection_id: Option<String>,
    group: Option<String>,
    broadcast: Option<bool>,
    stage: Option<String>,
    data: Option<String>,
    data_base64: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn rules() -> Rules {
        Rules {
            default_stage: Some("prod".into()),
            stages: vec!["prod".into(), "dev".into()],
            max_bytes: 8,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> Result<Addressed, AddressError> {
        let map: HashMap<&str, String> = pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
        rules().parse_headers(|name| Ok(map.get(name).cloned()), Bytes::from_static(b"hi"))
    }

    #[test]
    fn headers_address_one_target() {
        let a = headers(&[(CONNECTION_HEADER, "abc")]).expect("valid");
        assert_eq!(a.target, Target::Connection("abc".into()));
        assert_eq!(a.stage, "prod");
        let a = headers(&[(GROUP_HEADER, "room"), (STAGE_HEADER, "dev")]).expect("valid");
        assert_eq!(
            (a.target, a.stage.as_str()),
            (Target::Group("room".into()), "dev")
        );
        let a = headers(&[(BROADCAST_HEADER, "TRUE")]).expect("valid");
        assert_eq!(a.target, Target::Broadcast);
        assert_eq!(headers(&[]), Err(AddressError::Missing));
        assert_eq!(
            headers(&[(CONNECTION_HEADER, "a"), (GROUP_HEADER, "g")]),
            Err(AddressError::Ambiguous)
        );
        assert_eq!(
            headers(&[(CONNECTION_HEADER, "a"), (STAGE_HEADER, "x")]),
            Err(AddressError::UnknownStage("x".into()))
        );
    }

    #[test]
    fn json_envelopes() {
        let r = rules();
        let a = r
            .parse_json(br#"{"connectionId":"abc","data":"hello"}"#)
            .expect("valid");
        assert_eq!(a.data, Bytes::from_static(b"hello"));
        let a = r
            .parse_json(br#"{"group":"g","stage":"dev","dataBase64":"AAEC"}"#)
            .expect("valid");
        assert_eq!(a.data, Bytes::from_static(&[0, 1, 2]));
        assert!(matches!(
            r.parse_json(br#"{"broadcast":true,"data":"far too long"}"#),
            Err(AddressError::TooLarge { size: 12, .. })
        ));
        for bad in [
            &b"not json"[..],
            br#"{"connectionId":"a"}"#,
            br#"{"connectionId":"a","data":"x","dataBase64":"AA=="}"#,
            br#"{"data":"x"}"#,
            br#"{"connectionId":"a","dataBase64":"***"}"#,
        ] {
            assert!(
                r.parse_json(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let no_default = Rules {
            default_stage: None,
            ..rules()
        };
        assert_eq!(
            no_default.parse_json(br#"{"connectionId":"a","data":"x"}"#),
            Err(AddressError::NoStage)
        );
    }
}
