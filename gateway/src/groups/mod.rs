//! Named groups of connections: join and leave from the backend or from the `$connect` answer,
//! one callback to reach every member on every node, broadcasts to a whole stage, member counts
//! and listings, and presence events.
//!
//! # Pieces
//! - `index`: this node's members of each group, and each connection's groups.
//! - `fanout`: delivery to this node's members without ever waiting for one of them, and the
//!   slow-member policy.
//! - `remote`: groups across nodes on Redis pub/sub (one channel per group, subscribed while
//!   this node holds members) with per-group order.
//! - `wire`: the frame of a group message between nodes.
//! - `presence`: `$join` / `$leave` events.
//! - `history`: groups that keep their recent messages (`groups.history`), their positions and
//!   the opt-in envelope.
//! - `recover`: replay of missed messages to a client that reconnects, then live without a gap.
//! - `connect`: groups named by the `$connect` integration's answer.
//! - `name`: the group-name rules.
//! - `metered`: the store's calls timed and counted for `/metrics`.
//!
//! The cluster-wide view (counts, listings, the reaper's cleanup) is the store's
//! [`GroupStore`]; delivery only ever uses the local index.

mod connect;
pub(crate) mod fanout;
mod history;
mod index;
mod metered;
mod metrics;
mod name;
mod presence;
pub(crate) mod recover;
mod remote;
mod wire;

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use wsgate_connection_store::{Announce, GroupStore, Position, StoreError};

pub(crate) use self::connect::admit;
pub(crate) use self::connect::groups_from_answer;
pub(crate) use self::fanout::Counts;
use self::fanout::Fanout;
pub(crate) use self::history::entry_json as history_entry_json;
use self::index::Index;
pub(crate) use self::metered::MeteredGroups;
pub(crate) use self::name::validate as validate_name;
use self::presence::Presence;
pub(crate) use self::presence::PresenceRoutes;
pub(crate) use self::remote::RemoteReceivers;
use self::remote::{Remote, RemoteSettings};
#[cfg(feature = "fuzzing")]
pub(crate) use self::wire::Frame as WireFrame;
use crate::bus::BusError;
use crate::bus::redis_bus::RedisTarget;
use crate::config::{Config, GroupsConfig, StoreConfig};
use crate::error::CallbackError;
use crate::events::ConnectionMeta;
use crate::registry::{Registry, SessionHandle};
use crate::traces::Parent;

/// What a group post or broadcast did (the answer of `POST @groups/{group}` and `@broadcast`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PostOutcome {
    /// Delivery on this node.
    pub local: Counts,
    /// The message was handed to Redis for the other nodes.
    pub published: bool,
    /// Other nodes that received it (nodes holding members; every node for a broadcast).
    pub remote_nodes: u64,
    /// Its position in the group's history (groups with history only).
    pub position: Option<Position>,
}

/// Groups on this node.
#[derive(Debug)]
pub(crate) struct Groups {
    config: GroupsConfig,
    store: Arc<dyn GroupStore>,
    index: Index,
    remote: Option<Remote>,
    posts: Semaphore,
    presence: Presence,
    history: history::History,
    recovery: recover::Recovery,
    /// This node's connections (a broadcast reaches every open one of its stage).
    registry: Arc<Registry>,
    stop: CancellationToken,
}

impl Groups {
    /// Groups for `config`: local only with the memory store; with Redis, connected to the
    /// group channels (the receivers go to [`Groups::spawn`]).
    ///
    /// # Errors
    /// [`BusError`] when Redis cannot be reached.
    pub(crate) async fn build(
        config: &Config,
        node_id: &str,
        store: Arc<dyn GroupStore>,
        registry: Arc<Registry>,
        presence: PresenceRoutes,
    ) -> Result<(Self, Option<RemoteReceivers>), BusError> {
        let (remote, receivers) = match &config.store {
            StoreConfig::Memory => (None, None),
            StoreConfig::Redis(redis) => {
                let settings = RemoteSettings {
                    target: RedisTarget::new(redis.seeds(), redis.is_cluster(), redis.timeout),
                    prefix: &redis.prefix,
                    node_id,
                    stages: config.api.stages.keys().cloned().collect(),
                    receive_queue: config.groups.receive_queue_messages,
                    echo_timeout: config.cluster.forward_timeout,
                    max_waiters: config.groups.max_inflight_posts,
                };
                let (remote, receivers) = Remote::connect(settings).await?;
                (Some(remote), Some(receivers))
            }
        };
        let g = &config.groups;
        let groups = Self {
            store,
            index: Index::default(),
            remote,
            posts: Semaphore::new(g.max_inflight_posts),
            presence: Presence::new(g.presence_max_members, g.presence_concurrency, presence),
            history: history::History::new(g.history.clone()),
            recovery: recover::Recovery::new(&g.history),
            registry,
            stop: CancellationToken::new(),
            config: g.clone(),
        };
        Ok((groups, receivers))
    }

    /// Starts the cross-node tasks (with Redis); they run until [`Groups::stop`].
    pub(crate) fn spawn(
        self: &Arc<Self>,
        receivers: Option<RemoteReceivers>,
        tasks: &mut tokio::task::JoinSet<()>,
    ) {
        if let Some(receivers) = receivers {
            remote::spawn(self, receivers, &self.stop, tasks);
        }
    }

    /// Stops the cross-node tasks (at shutdown, once every connection has closed).
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// The group settings.
    pub(crate) fn config(&self) -> &GroupsConfig {
        &self.config
    }

    /// The cluster-wide records.
    pub(crate) fn store(&self) -> &dyn GroupStore {
        &*self.store
    }

    fn gauges(&self) {
        metrics::set_sizes(self.index.group_count(), self.index.membership_count());
    }

    /// Records a new connection of its stage (for `GET @connections`).
    ///
    /// # Errors
    /// The store's error.
    pub(crate) async fn add_connection(&self, meta: &ConnectionMeta) -> Result<(), StoreError> {
        self.store
            .add_connection(&meta.stage, &meta.connection_id)
            .await
    }

    /// Adds a connection held by this node to `group`; idempotent. Its `$join` event, if any, is
    /// traced under `trace`.
    ///
    /// # Errors
    /// 400 for an invalid name, 410 when the connection is closing, 429 over the per-connection
    /// limit, 503 when Redis fails (the join is then undone).
    pub(crate) async fn join(
        &self,
        handle: &Arc<SessionHandle>,
        group: &str,
        trace: Parent<'_>,
    ) -> Result<(), CallbackError> {
        name::validate(group, self.config.max_name_bytes)?;
        if handle.is_closed() {
            return Err(CallbackError::Gone);
        }
        let meta = &handle.meta;
        let key = index::key(&meta.stage, group);
        let new = self
            .index
            .note_joined(
                &meta.connection_id,
                group,
                self.config.max_groups_per_connection,
            )
            .map_err(|limit| CallbackError::TooManyGroups { limit: limit.limit })?;
        if !new {
            return Ok(());
        }
        self.index.insert(&key, handle);
        let joined = async {
            let membership = self
                .store
                .join(&meta.stage, group, &meta.connection_id)
                .await
                .map_err(|_| CallbackError::Unavailable)?;
            if let Some(remote) = &self.remote {
                let channel = remote.group_channel(&meta.stage, group);
                if !remote.ensure_subscribed(&key, channel).await {
                    return Err(CallbackError::Unavailable);
                }
            }
            Ok(membership)
        }
        .await;
        match joined {
            // The session ended meanwhile, and its cleanup may have missed this group.
            Ok(_) if handle.is_closed() => {
                self.undo_join(handle, group, &key).await;
                Err(CallbackError::Gone)
            }
            Ok(membership) => {
                self.gauges();
                if !self.recovery.is_empty() {
                    let retention = self.history.retention(group);
                    self.recovery.joined(handle, group, retention, &self.store);
                }
                if membership.changed {
                    self.presence
                        .emit(&handle.meta, group, true, membership.size, trace);
                }
                Ok(())
            }
            Err(error) => {
                self.undo_join(handle, group, &key).await;
                Err(error)
            }
        }
    }

    async fn undo_join(&self, handle: &SessionHandle, group: &str, key: &str) {
        let meta = &handle.meta;
        self.index.note_left(&meta.connection_id, group);
        self.index.remove(key, &meta.connection_id);
        let _ = self
            .store
            .leave(&meta.stage, group, &meta.connection_id)
            .await;
        self.release(&meta.stage, group, key).await;
        self.gauges();
    }

    async fn release(&self, stage: &str, group: &str, key: &str) {
        if let Some(remote) = &self.remote
            && !self.index.has_members(key)
        {
            remote
                .release(key, remote.group_channel(stage, group))
                .await;
        }
    }

    /// Removes a connection held by this node from `group`; idempotent. Its `$leave` event, if
    /// any, is traced under `trace`.
    ///
    /// # Errors
    /// 400 for an invalid name, 503 when the store fails.
    pub(crate) async fn leave(
        &self,
        handle: &Arc<SessionHandle>,
        group: &str,
        trace: Parent<'_>,
    ) -> Result<(), CallbackError> {
        name::validate(group, self.config.max_name_bytes)?;
        let meta = &handle.meta;
        let key = index::key(&meta.stage, group);
        if !self.index.note_left(&meta.connection_id, group) {
            return Ok(());
        }
        self.index.remove(&key, &meta.connection_id);
        self.gauges();
        self.release(&meta.stage, group, &key).await;
        let membership = self
            .store
            .leave(&meta.stage, group, &meta.connection_id)
            .await
            .map_err(|_| CallbackError::Unavailable)?;
        if membership.changed {
            self.presence
                .emit(&handle.meta, group, false, membership.size, trace);
        }
        Ok(())
    }

    /// A closed connection leaves every group (locally at once, then in the store).
    /// False when the store part was wanted and failed: call [`Self::forget_in_store`] later.
    pub(crate) async fn forget(&self, handle: &SessionHandle, in_store: bool) -> bool {
        self.forget_recovery(handle);
        let meta = &handle.meta;
        for group in self.index.take_joined(&meta.connection_id) {
            let key = index::key(&meta.stage, &group);
            self.index.remove(&key, &meta.connection_id);
            self.release(&meta.stage, &group, &key).await;
        }
        self.gauges();
        !in_store || self.try_forget_in_store(&handle.meta).await.is_ok()
    }

    /// Registers a connection that opted in to positions or recovery (before `$connect`).
    pub(crate) fn opt_in(&self, handle: &SessionHandle, request: recover::Request) {
        self.recovery.opt_in(&handle.meta.connection_id, request);
    }

    /// Forgets a connection's recovery state (it ended or was refused).
    pub(crate) fn forget_recovery(&self, handle: &SessionHandle) {
        if !self.recovery.is_empty() {
            self.recovery.forget(handle);
        }
    }

    /// How much history `group` keeps (`None`: none).
    pub(crate) fn retention(&self, group: &str) -> Option<wsgate_connection_store::Retention> {
        self.history.retention(group)
    }

    /// Removes a connection's memberships from the store (also for connections reaped from a
    /// dead node), trying again while the store fails, and sends the `$leave` events. Callers
    /// try once first and call this after the `$disconnect`, so a store that refuses the
    /// removal never holds the `$disconnect` back.
    pub(crate) async fn forget_in_store(&self, meta: &Arc<ConnectionMeta>) {
        crate::store::until_ok(
            "remove the connection's group memberships",
            &meta.connection_id,
            || self.try_forget_in_store(meta),
        )
        .await;
    }

    /// One attempt at [`Self::forget_in_store`].
    pub(crate) async fn try_forget_in_store(
        &self,
        meta: &Arc<ConnectionMeta>,
    ) -> Result<(), StoreError> {
        let left = self.store.forget(&meta.stage, &meta.connection_id).await?;
        for (group, size) in left {
            self.presence.emit(meta, &group, false, size, Parent::NONE);
        }
        Ok(())
    }

    /// Writes an open connection's memberships to the store again (after Redis lost data).
    ///
    /// # Errors
    /// The store's error.
    pub(crate) async fn reassert(&self, handle: &SessionHandle) -> Result<(), StoreError> {
        let meta = &handle.meta;
        self.store
            .add_connection(&meta.stage, &meta.connection_id)
            .await?;
        for group in self.index.joined(&meta.connection_id) {
            self.store
                .join(&meta.stage, &group, &meta.connection_id)
                .await?;
        }
        Ok(())
    }

    /// Groups with members on this node, and memberships on this node.
    pub(crate) fn local_counts(&self) -> (usize, usize) {
        (self.index.group_count(), self.index.membership_count())
    }

    /// The `limit` groups with the most members on this node: `(stage, group, members)`.
    pub(crate) fn largest(&self, limit: usize) -> Vec<(String, String, usize)> {
        (self.index.largest(limit).into_iter())
            .filter_map(|(key, n)| {
                let (stage, group) = key.split_once('/')?;
                Some((stage.to_owned(), group.to_owned(), n))
            })
            .collect()
    }

    /// The groups a connection held by this node joined.
    pub(crate) fn joined(&self, connection_id: &str) -> Vec<String> {
        let mut groups = self.index.joined(connection_id);
        groups.sort_unstable();
        groups
    }

    /// Queues `message` for this node's members of `group` (or, for `None`, every open
    /// connection of `stage`), except `exclude`.
    pub(crate) fn deliver(
        &self,
        stage: &str,
        group: Option<&str>,
        message: &Message,
        exclude: Option<&str>,
    ) -> Counts {
        let mut fanout = Fanout::new(message, exclude, self.config.slow_member);
        match group {
            Some(group) => {
                if let Some(members) = self.index.members(&index::key(stage, group)) {
                    members.for_each(|id, handle| fanout.offer(id, handle));
                }
                fanout.finish("group")
            }
            None => {
                self.registry.for_each(|handle| {
                    if handle.is_open() && handle.meta.stage == stage {
                        fanout.offer(&handle.meta.connection_id, handle);
                    }
                });
                fanout.finish("broadcast")
            }
        }
    }

    /// Queues the message at `position` of `group` for this node's members, except `exclude`:
    /// the envelope for members that opted in (held while their replay runs, skipped when
    /// already sent), the raw payload for the others.
    pub(crate) fn deliver_positioned(
        &self,
        stage: &str,
        group: &str,
        payload: Bytes,
        position: &Position,
        exclude: Option<&str>,
    ) -> Counts {
        let raw = history::raw(payload.clone());
        let mut fanout = Fanout::new(&raw, exclude, self.config.slow_member);
        let Some(members) = self.index.members(&index::key(stage, group)) else {
            return fanout.finish("group");
        };
        if self.recovery.is_empty() {
            members.for_each(|id, handle| fanout.offer(id, handle));
            return fanout.finish("group");
        }
        let mut envelope: Option<Message> = None;
        let mut make = || {
            envelope
                .get_or_insert_with(|| history::envelope(group, position, &payload))
                .clone()
        };
        members.for_each(|id, handle| {
            let Some(subscriber) = self.recovery.get(id) else {
                fanout.offer(id, handle);
                return;
            };
            if exclude == Some(id) {
                return;
            }
            let limits = self.recovery.hold_limits(handle);
            match subscriber.live(group, position, &mut make, handle, limits) {
                recover::Live::Send => fanout.offer_message(id, handle, &make()),
                recover::Live::Held => fanout.count_held(),
                recover::Live::Skip => {}
            }
        });
        fanout.finish("group")
    }

    /// `POST @groups/{group}` to a group with history: appended to the store with a position,
    /// then delivered in offset order (see `history`).
    async fn post_positioned(
        &self,
        stage: &str,
        group: &str,
        retention: &wsgate_connection_store::Retention,
        body: Bytes,
        exclude: Option<&str>,
    ) -> Result<PostOutcome, CallbackError> {
        let Some(remote) = &self.remote else {
            let _serial = self.history.serial.lock().await;
            let appended = self
                .store
                .append(stage, group, &body, retention, None)
                .await
                .map_err(|_| CallbackError::Unavailable)?;
            let local = self.deliver_positioned(stage, group, body, &appended.position, exclude);
            return Ok(PostOutcome {
                local,
                published: false,
                remote_nodes: 0,
                position: Some(appended.position),
            });
        };
        let subscribed = remote.is_subscribed(&index::key(stage, group));
        let (id, waiting) = remote.next(subscribed);
        // Local members get it from the channel, in offset order; a post dropped midway only
        // loses its counts.
        let _forget = remote::ForgetWaiter { remote, id };
        let head = wire::Frame {
            origin: remote.node_id().to_owned(),
            id,
            stage: stage.to_owned(),
            group: Some(group.to_owned()),
            exclude: exclude.map(str::to_owned),
            position: None,
            payload: Bytes::new(),
        }
        .encode_head()
        .map_err(|_| CallbackError::BadRequest("exclude is too long".into()))?;
        let channel = remote.group_channel(stage, group);
        let announce = Announce {
            channel: &channel,
            head: &head,
        };
        let appended = self
            .store
            .append(stage, group, &body, retention, Some(announce))
            .await
            .map_err(|_| CallbackError::Unavailable)?;
        let local = match waiting {
            Some(answer) => tokio::time::timeout(remote.echo_timeout(), answer)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => Counts::default(),
        };
        let receivers = appended.receivers.unwrap_or(0);
        Ok(PostOutcome {
            local,
            published: true,
            remote_nodes: receivers.saturating_sub(u64::from(subscribed)),
            position: Some(appended.position),
        })
    }

    /// `POST @groups/{group}` (`group` given) or `@broadcast` (`None`): delivers `body` to every
    /// member on every node, once each, except `exclude`.
    ///
    /// # Errors
    /// 400 for an invalid name, 429 when too many posts are in flight on this node.
    pub(crate) async fn post(
        &self,
        stage: &str,
        group: Option<&str>,
        body: Bytes,
        exclude: Option<&str>,
    ) -> Result<PostOutcome, CallbackError> {
        if let Some(group) = group {
            name::validate(group, self.config.max_name_bytes)?;
        }
        let _slot = self
            .posts
            .try_acquire()
            .map_err(|_| CallbackError::GroupPostsBusy)?;
        if let Some(group) = group
            && !self.history.is_off()
            && let Some(retention) = self.history.retention(group)
        {
            return (self.post_positioned(stage, group, &retention, body, exclude)).await;
        }
        let Some(remote) = &self.remote else {
            let message = fanout::message(body);
            return Ok(PostOutcome {
                local: self.deliver(stage, group, &message, exclude),
                published: false,
                remote_nodes: 0,
                position: None,
            });
        };
        let (channel, subscribed) = match group {
            Some(group) => (
                remote.group_channel(stage, group),
                remote.is_subscribed(&index::key(stage, group)),
            ),
            None => (remote.broadcast_channel(stage), true),
        };
        let (id, waiting) = remote.next(subscribed);
        let frame = wire::Frame {
            origin: remote.node_id().to_owned(),
            id,
            stage: stage.to_owned(),
            group: group.map(str::to_owned),
            exclude: exclude.map(str::to_owned),
            position: None,
            payload: body.clone(),
        }
        .encode()
        .map_err(|_| CallbackError::BadRequest("exclude is too long".into()))?;
        let mut local = LocalDelivery {
            groups: self,
            stage,
            group,
            body,
            exclude,
            id,
            waiting: waiting.is_some(),
            done: false,
        };
        let published = remote.publish(&channel, frame).await;
        let local_counts = match waiting {
            Some(mut answer) if published.is_ok() => {
                match tokio::time::timeout(remote.echo_timeout(), &mut answer).await {
                    Ok(Ok(counts)) => {
                        local.done = true;
                        counts
                    }
                    _ => local.now(Some(answer)).await,
                }
            }
            answer => local.now(answer).await,
        };
        let receivers = published.as_ref().copied().unwrap_or(0);
        Ok(PostOutcome {
            local: local_counts,
            published: published.is_ok(),
            remote_nodes: receivers.saturating_sub(u64::from(subscribed)),
            position: None,
        })
    }
}

/// The local part of a post: delivered by the receiving task when this node's own copy comes
/// back, or here when it does not (publish failed, copy late, node not subscribed), also when
/// the request is dropped before it was done.
struct LocalDelivery<'a> {
    groups: &'a Groups,
    stage: &'a str,
    group: Option<&'a str>,
    body: Bytes,
    exclude: Option<&'a str>,
    id: u64,
    /// An entry waits for the receiving task (whoever removes it delivers).
    waiting: bool,
    /// Local delivery happened (here or by the receiving task).
    done: bool,
}

impl LocalDelivery<'_> {
    fn deliver(&self) -> Counts {
        let message = fanout::message(self.body.clone());
        self.groups
            .deliver(self.stage, self.group, &message, self.exclude)
    }

    /// True when this side must deliver: nothing waits, or it removed the waiting entry.
    fn ours(&self) -> bool {
        !self.waiting
            || self
                .groups
                .remote
                .as_ref()
                .is_none_or(|remote| remote.take(self.id))
    }

    /// Delivers now unless the receiving task took the message first (then waits for its
    /// counts, which follow at once).
    async fn now(&mut self, answer: Option<tokio::sync::oneshot::Receiver<Counts>>) -> Counts {
        self.done = true;
        if self.ours() {
            return self.deliver();
        }
        match answer {
            Some(answer) => answer.await.unwrap_or_default(),
            None => Counts::default(),
        }
    }
}

impl Drop for LocalDelivery<'_> {
    fn drop(&mut self) {
        if !self.done && self.ours() {
            self.deliver();
        }
    }
}
