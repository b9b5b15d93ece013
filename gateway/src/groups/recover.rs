//! Recovery on reconnect (see docs/recovery.md): a client that connects with
//! `?recover=GROUP:EPOCH:OFFSET,...` (or only `?envelope=1`) receives the messages of groups
//! with history in the envelope of `history`; for each group named in `recover`, once the
//! connection is a member again (through the `$connect` answer or a backend's join), the
//! messages after `OFFSET` are replayed from the store in order, then live ones follow with
//! no gap and no repeat.
//!
//! # How the switch is seamless
//! From the moment the connection is registered (before `$connect`), live messages of each
//! group it asked to recover are held, not sent. The replay starts once the connection is a
//! member (subscribed), so every message is in the store's history or among the held ones (or
//! both). The held messages follow the replay, skipping the offsets already replayed; after
//! that each live message with an offset at or below the last sent one is dropped.
//!
//! # Signals (text frames, JSON)
//! - `{"type":"recovered","group":G,"epoch":E,"offset":N,"replayed":K}` after the replay.
//! - `{"type":"notRecovered","group":G,"reason":R,"epoch":E,"offset":N}` when history does not
//!   cover the gap: `epoch_changed`, `trimmed`, `too_far` (more than
//!   `groups.history.replay_max_messages`), `unknown_offset` (beyond the latest), `overflow`
//!   (live messages held during the replay passed their bound), `unavailable` (the store
//!   failed). `epoch` and `offset` are the current ones when known (else null); live messages
//!   follow.
//!
//! # Bounds
//! The replay writes into the connection's outbox only while it is less than half full (so
//! live messages of other groups keep room), waiting for the client to read otherwise: its
//! rate is the client's, and its bytes count in `limits.outbound_queue_bytes` and the node's
//! `limits.node_queue_bytes`. Held live messages are bounded by
//! `groups.history.replay_buffer_messages`, by `limits.outbound_queue_bytes` and by the node's
//! budget.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dashmap::DashMap;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wsgate_connection_store::{GroupStore, Position, Retention};

use super::history;
use crate::registry::{BUDGET_RETRY, PushError, SessionHandle};

/// What a client asked for when it connected.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// Per group: the last position it saw.
    pub(crate) recover: Vec<(String, Position)>,
}

/// Reads `envelope` and `recover` from the upgrade's query string. `Ok(None)`: the client did
/// not opt in (raw payloads, as always).
///
/// # Errors
/// What is wrong with the parameters (answered 400).
pub(crate) fn parse(
    query: Option<&str>,
    max_groups: usize,
    max_name_bytes: usize,
) -> Result<Option<Request>, &'static str> {
    let mut opted = false;
    let mut request = Request::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*key {
            "envelope" => match &*value {
                "1" | "true" => opted = true,
                "0" | "false" => {}
                _ => return Err("envelope must be 1 or 0"),
            },
            "recover" => {
                opted = true;
                for item in value.split(',').filter(|item| !item.is_empty()) {
                    let mut parts = item.rsplitn(3, ':');
                    let (Some(offset), Some(epoch), Some(group)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        return Err("recover must be GROUP:EPOCH:OFFSET[,...]");
                    };
                    let offset = offset
                        .parse::<u64>()
                        .map_err(|_| "recover: OFFSET must be a whole number")?;
                    if epoch.is_empty() || epoch.len() > 64 {
                        return Err("recover: EPOCH must be 1 to 64 characters");
                    }
                    if super::name::validate(group, max_name_bytes).is_err() {
                        return Err("recover: invalid group name");
                    }
                    if request.recover.iter().any(|(g, _)| g == group) {
                        return Err("recover names a group twice");
                    }
                    request.recover.push((
                        group.to_owned(),
                        Position {
                            epoch: epoch.to_owned(),
                            offset,
                        },
                    ));
                    if request.recover.len() > max_groups {
                        return Err("recover names more groups than a connection may join");
                    }
                }
            }
            _ => {}
        }
    }
    Ok(opted.then_some(request))
}

/// Where one group of one connection stands.
#[derive(Debug)]
enum Cursor {
    /// Asked to recover: live messages are held until the replay is done.
    Catching {
        from: Position,
        started: bool,
        held: VecDeque<(Position, Message)>,
        bytes: usize,
        overflow: bool,
    },
    /// Live: the last offset sent in `epoch`.
    Live { epoch: String, last: u64 },
}

/// The recovery state of a connection that opted in.
#[derive(Debug, Default)]
pub(crate) struct Subscriber {
    cursors: Mutex<HashMap<String, Cursor>>,
}

/// What to do with one live message for one member.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Live {
    /// Send it (in the envelope).
    Send,
    /// Held for after the replay (counts as delivered).
    Held,
    /// Already sent, or dropped by an overflow the client will be told of.
    Skip,
}

/// Bounds of the held messages of one group.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HoldLimits {
    pub(crate) messages: usize,
    pub(crate) bytes: usize,
}

impl Subscriber {
    fn cursors(&self) -> MutexGuard<'_, HashMap<String, Cursor>> {
        self.cursors.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides for the live message at `position` of `group`; `message` makes its envelope
    /// (called only to hold it).
    pub(crate) fn live(
        &self,
        group: &str,
        position: &Position,
        message: impl FnOnce() -> Message,
        handle: &SessionHandle,
        limits: HoldLimits,
    ) -> Live {
        let mut cursors = self.cursors();
        let Some(cursor) = cursors.get_mut(group) else {
            cursors.insert(
                group.to_owned(),
                Cursor::Live {
                    epoch: position.epoch.clone(),
                    last: position.offset,
                },
            );
            return Live::Send;
        };
        match cursor {
            Cursor::Live { epoch, last } => {
                if *epoch != position.epoch {
                    // History was lost and restarted: the new epoch's offsets start again.
                    epoch.clone_from(&position.epoch);
                } else if position.offset <= *last {
                    return Live::Skip;
                }
                *last = position.offset;
                Live::Send
            }
            Cursor::Catching {
                held,
                bytes,
                overflow,
                ..
            } => {
                if *overflow {
                    return Live::Skip;
                }
                let message = message();
                let len = message.len();
                if held.len() >= limits.messages
                    || *bytes + len > limits.bytes
                    || !handle.budget().try_take(len)
                {
                    handle.budget().give_back(std::mem::take(bytes));
                    held.clear();
                    *overflow = true;
                    return Live::Skip;
                }
                *bytes += len;
                held.push_back((position.clone(), message));
                Live::Held
            }
        }
    }

    /// Marks the replay of `group` started; its starting position when it was waiting for one.
    fn start(&self, group: &str) -> Option<Position> {
        match self.cursors().get_mut(group) {
            Some(Cursor::Catching { from, started, .. }) if !*started => {
                *started = true;
                Some(from.clone())
            }
            _ => None,
        }
    }

    /// Takes the held messages of `group` (and whether some were lost to an overflow), or,
    /// when none is left, switches it to live after `last` of `epoch`.
    fn take_held(
        &self,
        group: &str,
        handle: &SessionHandle,
        epoch: &str,
        last: u64,
    ) -> Option<(VecDeque<(Position, Message)>, bool)> {
        let mut cursors = self.cursors();
        let cursor = cursors.get_mut(group)?;
        let Cursor::Catching {
            held,
            bytes,
            overflow,
            ..
        } = cursor
        else {
            return None;
        };
        if held.is_empty() && !*overflow {
            *cursor = Cursor::Live {
                epoch: epoch.to_owned(),
                last,
            };
            return None;
        }
        handle.budget().give_back(std::mem::take(bytes));
        Some((std::mem::take(held), std::mem::take(overflow)))
    }

    /// Gives back the node budget of everything held (the connection ended).
    fn release(&self, handle: &SessionHandle) {
        for cursor in self.cursors().values_mut() {
            if let Cursor::Catching { held, bytes, .. } = cursor {
                handle.budget().give_back(std::mem::take(bytes));
                held.clear();
            }
        }
    }
}

/// The connections of this node that opted in, and the recovery settings.
#[derive(Debug)]
pub(crate) struct Recovery {
    subscribers: DashMap<String, Arc<Subscriber>>,
    replay_max_messages: u64,
    replay_batch: usize,
    hold_messages: usize,
}

/// Why a group was not recovered, with the current position when known.
#[derive(Debug)]
struct NotRecovered {
    reason: &'static str,
    current: Option<Position>,
}

impl Recovery {
    pub(crate) fn new(config: &crate::config::HistoryConfig) -> Self {
        Self {
            subscribers: DashMap::new(),
            replay_max_messages: config.replay_max_messages,
            replay_batch: config.replay_batch,
            hold_messages: config.replay_buffer_messages,
        }
    }

    /// True when no connection of this node opted in (fan-outs then look nothing up).
    pub(crate) fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }

    /// The state of connection `id`, if it opted in.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Subscriber>> {
        self.subscribers.get(id).map(|s| Arc::clone(s.value()))
    }

    /// The bounds of what is held for a connection with outbox `handle`.
    pub(crate) fn hold_limits(&self, handle: &SessionHandle) -> HoldLimits {
        HoldLimits {
            messages: self.hold_messages,
            bytes: handle.limits().bytes,
        }
    }

    /// Registers a connection that opted in (before `$connect`, so before any join).
    pub(crate) fn opt_in(&self, id: &str, request: Request) {
        let subscriber = Subscriber::default();
        {
            let mut cursors = subscriber.cursors();
            for (group, from) in request.recover {
                cursors.insert(
                    group,
                    Cursor::Catching {
                        from,
                        started: false,
                        held: VecDeque::new(),
                        bytes: 0,
                        overflow: false,
                    },
                );
            }
        }
        self.subscribers.insert(id.to_owned(), Arc::new(subscriber));
    }

    /// Forgets a connection (it ended).
    pub(crate) fn forget(&self, handle: &SessionHandle) {
        if let Some((_, subscriber)) = self.subscribers.remove(&handle.meta.connection_id) {
            subscriber.release(handle);
        }
    }

    /// After `handle` joined `group` (of its stage): starts the replay when the connection asked
    /// to recover that group.
    pub(crate) fn joined(
        &self,
        handle: &Arc<SessionHandle>,
        group: &str,
        retention: Option<Retention>,
        store: &Arc<dyn GroupStore>,
    ) {
        let Some(subscriber) = self.get(&handle.meta.connection_id) else {
            return;
        };
        let Some(from) = subscriber.start(group) else {
            return;
        };
        let replay = Replay {
            store: Arc::clone(store),
            subscriber,
            handle: Arc::clone(handle),
            group: group.to_owned(),
            retention,
            from,
            max_messages: self.replay_max_messages,
            batch: self.replay_batch,
        };
        tokio::spawn(replay.run());
    }
}

/// One group's replay for one connection.
struct Replay {
    store: Arc<dyn GroupStore>,
    subscriber: Arc<Subscriber>,
    handle: Arc<SessionHandle>,
    group: String,
    /// `None`: the group keeps no history.
    retention: Option<Retention>,
    from: Position,
    max_messages: u64,
    batch: usize,
}

/// Queues `message` once the outbox is less than half full (both in frames and bytes), waiting
/// for the client to read; false when the connection is gone.
async fn send_paced(handle: &SessionHandle, message: Message) -> bool {
    loop {
        let (frames, bytes) = handle.queued();
        let limits = handle.limits();
        if frames == 0 || (frames < limits.messages / 2 && bytes < limits.bytes / 2) {
            match handle.push(message.clone()) {
                Ok(()) => return true,
                Err(PushError::Gone) => return false,
                Err(PushError::Full | PushError::NodeFull) => {}
            }
        }
        if handle.is_closed() {
            return false;
        }
        tokio::time::sleep(BUDGET_RETRY).await;
    }
}

impl Replay {
    async fn run(self) {
        let outcome = self.catch_up().await;
        let (mut epoch, mut last) = match &outcome {
            Ok((position, _)) => (position.epoch.clone(), position.offset),
            Err(not) => not
                .current
                .as_ref()
                .map_or((String::new(), 0), |p| (p.epoch.clone(), 0)),
        };
        let signal = match outcome {
            Ok((position, replayed)) => self.recovered(&position, replayed),
            Err(not) => self.not_recovered(&not),
        };
        if !send_paced(&self.handle, signal).await {
            return;
        }
        // The held live messages follow, skipping what the replay sent.
        while let Some((held, overflow)) =
            self.subscriber
                .take_held(&self.group, &self.handle, &epoch, last)
        {
            if overflow {
                let not = NotRecovered {
                    reason: "overflow",
                    current: None,
                };
                if !send_paced(&self.handle, self.not_recovered(&not)).await {
                    return;
                }
                // Whatever comes next is after the gap.
                epoch.clear();
                last = 0;
            }
            for (position, message) in held {
                if position.epoch == epoch && position.offset <= last {
                    continue;
                }
                if !send_paced(&self.handle, message).await {
                    return;
                }
                epoch = position.epoch;
                last = position.offset;
            }
        }
    }

    /// Sends the missed messages; the last position sent and how many.
    async fn catch_up(&self) -> Result<(Position, u64), NotRecovered> {
        let Some(retention) = &self.retention else {
            return Err(NotRecovered {
                reason: "no_history",
                current: None,
            });
        };
        let stage = &self.handle.meta.stage;
        let mut after = self.from.offset;
        let mut replayed = 0;
        let mut first = true;
        loop {
            let page = (self.store)
                .read(stage, &self.group, after, self.batch, retention)
                .await
                .map_err(|_| NotRecovered {
                    reason: "unavailable",
                    current: None,
                })?;
            let current = Some(Position {
                epoch: page.epoch.clone(),
                offset: page.latest,
            });
            let fail = |reason| NotRecovered {
                reason,
                current: current.clone(),
            };
            if page.epoch != self.from.epoch {
                return Err(fail("epoch_changed"));
            }
            if first {
                if after > page.latest {
                    return Err(fail("unknown_offset"));
                }
                if page.latest - after > self.max_messages {
                    return Err(fail("too_far"));
                }
                first = false;
            }
            if page.latest > after && page.earliest > after + 1 {
                return Err(fail("trimmed"));
            }
            let done = page.entries.len() < self.batch;
            for entry in page.entries {
                let position = Position {
                    epoch: page.epoch.clone(),
                    offset: entry.offset,
                };
                let message = history::envelope(&self.group, &position, &entry.payload);
                if !send_paced(&self.handle, message).await {
                    return Err(fail("gone"));
                }
                after = entry.offset;
                replayed += 1;
            }
            if done || after >= page.latest {
                return Ok((
                    Position {
                        epoch: page.epoch,
                        offset: after,
                    },
                    replayed,
                ));
            }
        }
    }

    fn recovered(&self, position: &Position, replayed: u64) -> Message {
        signal(json!({
            "type": "recovered",
            "group": self.group,
            "epoch": position.epoch,
            "offset": position.offset,
            "replayed": replayed,
        }))
    }

    fn not_recovered(&self, not: &NotRecovered) -> Message {
        signal(json!({
            "type": "notRecovered",
            "group": self.group,
            "reason": not.reason,
            "epoch": not.current.as_ref().map(|p| p.epoch.clone()),
            "offset": not.current.as_ref().map(|p| p.offset),
        }))
    }
}

fn signal(value: Value) -> Message {
    Message::Text(value.to_string().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recover_parameter() {
        assert_eq!(parse(None, 8, 64), Ok(None));
        assert_eq!(parse(Some("a=1"), 8, 64), Ok(None));
        assert_eq!(
            parse(Some("envelope=1"), 8, 64),
            Ok(Some(Request::default()))
        );
        let request = parse(Some("recover=room%3A1%3Aabc%3A17,news:e:0"), 8, 64)
            .expect("valid")
            .expect("opted in");
        assert_eq!(
            request.recover,
            [
                (
                    "room:1".to_owned(),
                    Position {
                        epoch: "abc".into(),
                        offset: 17
                    }
                ),
                (
                    "news".to_owned(),
                    Position {
                        epoch: "e".into(),
                        offset: 0
                    }
                ),
            ]
        );
        for bad in [
            "recover=room",
            "recover=room:e",
            "recover=room:e:x",
            "recover=room::1",
            "recover=a:e:1,a:e:2",
            "recover=a%20b:e:1",
            "recover=a:e:1,b:e:1,c:e:1",
            "envelope=yes",
        ] {
            assert!(parse(Some(bad), 2, 64).is_err(), "{bad}");
        }
    }
}
