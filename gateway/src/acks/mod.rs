//! Acknowledged client messages with duplicate suppression (a route's `ack:` block): reading
//! the client's message id, the scope it is remembered in, and the claim every copy of a
//! message goes through before its integration call. The frames are in `frames`; the seen ids
//! live in the store's [`AckStore`] side (memory or Redis), so a copy resent after a reconnect
//! is recognised on any node.
//!
//! One copy of an id runs at a time: it *claims* the id in the store, calls the integration,
//! then marks the id acknowledged for the route's window (accepted) or releases it (failed, so
//! the client's retry runs afresh). A copy arriving meanwhile on the same node waits for the
//! first and shares its outcome (acknowledged; or, when the first failed, it claims and runs
//! itself); on another node it is answered `pending`.

pub(crate) mod frames;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use wsgate_connection_store::{AckClaim, AckStore};

use crate::config::RouteAckConfig;
use crate::events::ConnectionMeta;
use crate::store::metered;
use crate::telemetry;

/// Longest client message id, in bytes (an integer counts its decimal digits).
pub(crate) const MAX_ID_BYTES: usize = 128;
/// Added to the integration's timeout for how long a claim holds (the call, the answer's
/// handling and the store round trips).
const HOLD_SLACK: Duration = Duration::from_secs(5);
/// Claim attempts of one copy: a copy that waited for a failed first copy claims again.
const MAX_TURNS: usize = 3;

/// A route's acknowledgement settings on one stage.
#[derive(Debug)]
pub(crate) struct RouteAck {
    /// The fields of the id path.
    fields: Vec<String>,
    /// The path as configured (for error frames).
    path: String,
    /// How long an acknowledged id is remembered.
    window: Duration,
    /// How long a claim holds when its holder never finishes (a node that died mid-call).
    hold: Duration,
    /// `stage \0 route \0`: the start of every key of this route.
    scope: String,
}

impl RouteAck {
    /// The settings of route `route` of stage `stage`; `timeout` is its integration's.
    ///
    /// # Errors
    /// The id path is invalid (configuration validation reports this first).
    pub(crate) fn new(
        config: &RouteAckConfig,
        stage: &str,
        route: &str,
        timeout: Option<Duration>,
    ) -> Result<Self, String> {
        Ok(Self {
            fields: crate::config::id_path_fields(&config.id)?,
            path: config.id.clone(),
            window: config.window,
            hold: timeout.unwrap_or_default() + HOLD_SLACK,
            scope: format!("{stage}\0{route}\0"),
        })
    }

    /// Reads the client's message id from a message body.
    ///
    /// # Errors
    /// The frame text naming what is missing or wrong.
    pub(crate) fn read_id(&self, raw: &[u8]) -> Result<MessageId, String> {
        let missing = || format!("Missing message id at {}", self.path);
        let body: Value = serde_json::from_slice(raw).map_err(|_| missing())?;
        let mut at = &body;
        for field in &self.fields {
            at = at.get(field).ok_or_else(missing)?;
        }
        let text = match at {
            Value::String(s) => s.clone(),
            Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            Value::Null => return Err(missing()),
            _ => String::new(),
        };
        if text.is_empty() || text.len() > MAX_ID_BYTES {
            return Err(format!(
                "Invalid message id at {}: a string or an integer of 1 to {MAX_ID_BYTES} bytes",
                self.path
            ));
        }
        Ok(MessageId {
            json: at.clone(),
            text,
        })
    }

    /// The store key of `id` sent by the connection `meta`: a hash of stage, route, principal
    /// and id, so keys have one length and ids of one principal never meet another's.
    pub(crate) fn key(&self, meta: &ConnectionMeta, id: &MessageId) -> String {
        let principal = principal(meta);
        let mut hash = Sha256::new();
        hash.update(self.scope.as_bytes());
        // Length-prefixed: no principal and id pair can pass for another.
        hash.update((principal.len() as u64).to_be_bytes());
        hash.update(principal.as_bytes());
        hash.update(id.text.as_bytes());
        hex::encode(hash.finalize())
    }
}

/// Who sent a message, as far as the client cannot choose it: the authorizer's `principalId`,
/// else the IAM caller's ARN, else nobody (the id alone scopes it).
fn principal(meta: &ConnectionMeta) -> String {
    let authorizer = (meta.authorizer.as_ref()).and_then(|a| a.get("principalId"));
    match (authorizer, &meta.iam) {
        (Some(Value::String(id)), _) => format!("p:{id}"),
        (Some(id @ Value::Number(_)), _) => format!("p:{id}"),
        (_, Some(iam)) => format!("iam:{}", iam.user_arn),
        _ => String::new(),
    }
}

/// A client's message id: as written (for the frames) and as text (for the key).
#[derive(Debug, Clone)]
pub(crate) struct MessageId {
    /// The JSON value (a string or an integer).
    pub json: Value,
    text: String,
}

/// How a copy of a message on this node ended, for copies waiting on it here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Accepted,
    Failed,
    Pending,
    Unavailable,
}

/// What a copy of a message does.
#[derive(Debug)]
pub(crate) enum Admission<'a> {
    /// Call the integration, then [`Claim::finish`].
    Run(Claim<'a>),
    /// Already acknowledged: acknowledge again, do not call the integration.
    Acknowledged,
    /// Another copy holds the id: answer `pending`.
    Pending,
    /// The store failed or is full (logged): answer a retryable nack.
    Unavailable,
}

/// The seen ids of every acknowledged route: the store, and the claims in flight on this node
/// (one entry per message being handled; nothing else is kept here).
#[derive(Debug)]
pub(crate) struct Acks {
    store: Arc<dyn AckStore>,
    node_id: String,
    local: Mutex<HashMap<String, watch::Receiver<Option<Settled>>>>,
}

impl Acks {
    pub(crate) fn new(store: Arc<dyn AckStore>, node_id: String) -> Self {
        Self {
            store,
            node_id,
            local: Mutex::default(),
        }
    }

    fn local(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, watch::Receiver<Option<Settled>>>> {
        self.local
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decides what the copy of a message with store key `key` does; `request_id` makes its
    /// claim token unique.
    pub(crate) async fn admit(
        &self,
        key: String,
        route: &RouteAck,
        request_id: &str,
    ) -> Admission<'_> {
        for _ in 0..MAX_TURNS {
            // A copy already being handled on this node: wait for it rather than ask the store.
            let (tx, rx) = watch::channel(None);
            let waiting = {
                let mut local = self.local();
                match local.get(&key) {
                    Some(first) => Some(first.clone()),
                    None => {
                        local.insert(key.clone(), rx.clone());
                        None
                    }
                }
            };
            if let Some(mut first) = waiting {
                metrics::counter!(telemetry::ACK_DUPLICATE_TOTAL, "outcome" => "waited")
                    .increment(1);
                let settled = first.wait_for(Option::is_some).await.map(|s| *s);
                match settled {
                    Ok(Some(Settled::Accepted)) => return Admission::Acknowledged,
                    Ok(Some(Settled::Failed)) => continue,
                    Ok(Some(Settled::Unavailable)) => return Admission::Unavailable,
                    _ => return Admission::Pending,
                }
            }
            let local = Local {
                acks: self,
                key,
                tx,
                rx,
            };
            let owner = format!("{}/{request_id}", self.node_id);
            let claimed = metered(
                "ack_claim",
                self.store.ack_claim(&local.key, &owner, route.hold),
            )
            .await;
            return match claimed {
                Ok(AckClaim::Claimed) => Admission::Run(Claim { local, owner }),
                Ok(AckClaim::Acknowledged) => {
                    metrics::counter!(telemetry::ACK_DUPLICATE_TOTAL, "outcome" => "acknowledged")
                        .increment(1);
                    local.settle(Settled::Accepted);
                    Admission::Acknowledged
                }
                Ok(AckClaim::InFlight { .. }) => {
                    metrics::counter!(telemetry::ACK_DUPLICATE_TOTAL, "outcome" => "pending")
                        .increment(1);
                    local.settle(Settled::Pending);
                    Admission::Pending
                }
                Err(error) => {
                    tracing::warn!(%error, "could not claim a client message id; the client is asked to retry");
                    local.settle(Settled::Unavailable);
                    Admission::Unavailable
                }
            };
        }
        Admission::Pending
    }
}

/// This node's entry for a key being decided or handled; dropping it (done, or the message's
/// handling cancelled) removes the entry, and copies waiting on it stop waiting.
struct Local<'a> {
    acks: &'a Acks,
    key: String,
    tx: watch::Sender<Option<Settled>>,
    rx: watch::Receiver<Option<Settled>>,
}

impl Local<'_> {
    /// Tells the copies waiting here how this one ended (after unlisting it, so a copy that
    /// goes round again finds the key free).
    fn settle(self, settled: Settled) {
        self.unlist();
        self.tx.send_replace(Some(settled));
    }

    fn unlist(&self) {
        let mut local = self.acks.local();
        if local
            .get(&self.key)
            .is_some_and(|e| e.same_channel(&self.rx))
        {
            local.remove(&self.key);
        }
    }
}

impl Drop for Local<'_> {
    fn drop(&mut self) {
        self.unlist();
    }
}

impl std::fmt::Debug for Local<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The claim of the one copy that calls the integration.
#[derive(Debug)]
pub(crate) struct Claim<'a> {
    local: Local<'a>,
    owner: String,
}

impl Claim<'_> {
    /// Records the integration's outcome: acknowledged for the route's window, or released so
    /// a retry runs afresh. Copies waiting on this node learn it after the store does.
    pub(crate) async fn finish(self, accepted: bool, route: &RouteAck) {
        let acks = self.local.acks;
        let key = &self.local.key;
        let stored = if accepted {
            metered(
                "ack_done",
                acks.store.ack_done(key, &self.owner, route.window),
            )
            .await
        } else {
            metered("ack_release", acks.store.ack_release(key, &self.owner)).await
        };
        if let Err(error) = stored {
            // The id stays in flight until its hold passes: copies get `pending` meanwhile,
            // and after it a copy of an acknowledged message would run again.
            tracing::warn!(%error, accepted, hold = ?route.hold, "could not record a message's acknowledgement outcome; its id stays in flight until the hold passes");
        }
        self.local.settle(if accepted {
            Settled::Accepted
        } else {
            Settled::Failed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::CallerIdentity;

    fn route(stage: &str, route: &str, id: &str) -> RouteAck {
        let config = RouteAckConfig {
            id: id.into(),
            window: Duration::from_secs(60),
        };
        RouteAck::new(&config, stage, route, Some(Duration::from_secs(2))).expect("valid")
    }

    fn with_principal(connection: &str, principal: Option<&str>) -> ConnectionMeta {
        let mut meta = ConnectionMeta::bare(connection);
        meta.authorizer = principal.map(|p| {
            let mut map = serde_json::Map::new();
            map.insert("principalId".into(), Value::from(p));
            map
        });
        meta
    }

    #[test]
    fn ids_are_read_from_their_path() {
        let ack = route("prod", "send", "$.meta.id");
        let id = ack.read_id(br#"{"meta":{"id":"abc"}}"#).expect("id");
        assert_eq!((id.json, id.text), (Value::from("abc"), "abc".to_string()));
        let id = ack.read_id(br#"{"meta":{"id":7}}"#).expect("id");
        assert_eq!(id.text, "7");
        for bad in [
            &br#"{"id":"x"}"#[..],
            b"not json",
            br#"{"meta":{"id":1.5}}"#,
            br#"{"meta":{"id":true}}"#,
        ] {
            assert!(
                ack.read_id(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(ack.hold, Duration::from_secs(7));
    }

    #[test]
    fn keys_are_scoped_by_stage_route_and_principal_not_connection() {
        let id = route("prod", "send", "$.id")
            .read_id(br#"{"id":"m1"}"#)
            .expect("id");
        let send = route("prod", "send", "$.id");
        let alice = send.key(&with_principal("c1", Some("alice")), &id);
        assert_eq!(alice.len(), 64);
        // Another connection of the same principal: the same key (a reconnect).
        assert_eq!(send.key(&with_principal("c2", Some("alice")), &id), alice);
        // Another principal, stage or route: another key.
        assert_ne!(send.key(&with_principal("c1", Some("bob")), &id), alice);
        assert_ne!(send.key(&with_principal("c1", None), &id), alice);
        let other_stage = route("dev", "send", "$.id");
        assert_ne!(
            other_stage.key(&with_principal("c1", Some("alice")), &id),
            alice
        );
        let other_route = route("prod", "post", "$.id");
        assert_ne!(
            other_route.key(&with_principal("c1", Some("alice")), &id),
            alice
        );
        // An IAM caller is its principal.
        let mut iam = ConnectionMeta::bare("c3");
        iam.iam = Some(Arc::new(CallerIdentity {
            access_key: "AKIA".into(),
            account_id: "1".into(),
            caller: "AIDA".into(),
            user: "AIDA".into(),
            user_arn: "arn:aws:iam::1:user/alice".into(),
        }));
        let by_iam = send.key(&iam, &id);
        assert_ne!(by_iam, send.key(&with_principal("c1", None), &id));
        // The separators keep a principal from passing as part of the id.
        let tricky = route("prod", "send", "$.id")
            .read_id(br#"{"id":"alice\u0000m1"}"#)
            .expect("id");
        assert_ne!(send.key(&with_principal("c1", None), &tricky), alice);
    }
}
