//! Groups across nodes (Redis store): one channel per group, `{prefix}:grp:{stage:group}`,
//! that a node subscribes to while it holds at least one member of the group, and one channel
//! per stage, `{prefix}:bcast:{stage}`, that every node subscribes to for broadcasts. A message
//! is published once, whatever the number of nodes, and reaches only nodes with members.
//!
//! # Order
//! Every frame a node receives arrives on one subscription and is fanned out by one task, in
//! arrival order, and Redis keeps the order of publishes. A node that holds members of the
//! group it posts to does not deliver to them directly: it waits for its own copy to come back
//! on its subscription and delivers then, so its members see the messages in Redis's order too,
//! whichever node each message was posted through. Whoever removes the waiting entry (the
//! receiving task, or the poster when the copy is late or publishing failed) delivers locally,
//! so local members get each message once.
//!
//! # Subscriptions
//! One task applies subscription changes one at a time, comparing what the index holds with what
//! is subscribed when it runs, so a quick leave-then-join can never end unsubscribed. A join is
//! answered only once the node is subscribed, so a message posted after the join's answer
//! reaches the new member.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dashmap::{DashMap, DashSet};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Groups;
use super::fanout::{self, Counts};
use super::wire::Frame;
use crate::bus::BusError;
use crate::bus::channels::Channels;
use crate::bus::redis_bus::RedisTarget;
use crate::bus::redis_channels::RedisChannels;
use crate::telemetry::GROUP_PUBLISH_TOTAL;

/// Subscription changes waiting for the subscription task.
const REQUEST_QUEUE: usize = 4096;

/// A request to make the subscription of one group match the index.
#[derive(Debug)]
pub(crate) struct SubRequest {
    key: String,
    channel: String,
    done: Option<oneshot::Sender<bool>>,
}

/// The receiving ends consumed by [`spawn`].
#[derive(Debug)]
pub(crate) struct RemoteReceivers {
    frames: mpsc::Receiver<Bytes>,
    requests: mpsc::Receiver<SubRequest>,
}

/// This node's side of the group channels.
#[derive(Debug)]
pub(crate) struct Remote {
    node_id: String,
    prefix: String,
    channels: Arc<dyn Channels>,
    requests: mpsc::Sender<SubRequest>,
    active: DashSet<String>,
    waiters: DashMap<u64, oneshot::Sender<Counts>>,
    next_id: AtomicU64,
    echo_timeout: Duration,
    max_waiters: usize,
}

/// Settings of [`Remote::connect`].
#[derive(Debug)]
pub(crate) struct RemoteSettings<'a> {
    pub(crate) target: RedisTarget,
    pub(crate) prefix: &'a str,
    pub(crate) node_id: &'a str,
    pub(crate) stages: Vec<String>,
    pub(crate) receive_queue: usize,
    pub(crate) echo_timeout: Duration,
    pub(crate) max_waiters: usize,
}

impl Remote {
    /// Connects to Redis and subscribes to every stage's broadcast channel.
    ///
    /// # Errors
    /// [`BusError`] when Redis cannot be reached.
    pub(crate) async fn connect(
        settings: RemoteSettings<'_>,
    ) -> Result<(Self, RemoteReceivers), BusError> {
        let (frames_tx, frames) = mpsc::channel(settings.receive_queue);
        let (requests_tx, requests) = mpsc::channel(REQUEST_QUEUE);
        let channels = RedisChannels::connect(settings.target, &frames_tx).await?;
        let remote = Self {
            node_id: settings.node_id.to_owned(),
            prefix: settings.prefix.to_owned(),
            channels: Arc::new(channels),
            requests: requests_tx,
            active: DashSet::new(),
            waiters: DashMap::new(),
            next_id: AtomicU64::new(rand::random()),
            echo_timeout: settings.echo_timeout,
            max_waiters: settings.max_waiters,
        };
        for stage in &settings.stages {
            remote
                .channels
                .subscribe(&remote.broadcast_channel(stage))
                .await?;
        }
        Ok((remote, RemoteReceivers { frames, requests }))
    }

    /// `{prefix}:grp:{stage:group}` (hash-tagged like the group's member set).
    pub(crate) fn group_channel(&self, stage: &str, group: &str) -> String {
        format!("{}:grp:{{{stage}:{group}}}", self.prefix)
    }

    /// `{prefix}:bcast:{stage}`.
    pub(crate) fn broadcast_channel(&self, stage: &str) -> String {
        format!("{}:bcast:{stage}", self.prefix)
    }

    /// This node's id (the origin of its frames).
    pub(crate) fn node_id(&self) -> &str {
        &self.node_id
    }

    /// True while this node's subscription to the group at `key` is in place.
    pub(crate) fn is_subscribed(&self, key: &str) -> bool {
        self.active.contains(key)
    }

    /// Waits until this node is subscribed to the group at `key` (after a local member was
    /// added to the index); false when subscribing failed.
    pub(crate) async fn ensure_subscribed(&self, key: &str, channel: String) -> bool {
        if self.active.contains(key) {
            return true;
        }
        let (done, answer) = oneshot::channel();
        let request = SubRequest {
            key: key.to_owned(),
            channel,
            done: Some(done),
        };
        if self.requests.send(request).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// Asks for the subscription of the group at `key` to be dropped if it has no local member
    /// any more (not waiting for it).
    pub(crate) async fn release(&self, key: &str, channel: String) {
        if !self.active.contains(key) {
            return;
        }
        let request = SubRequest {
            key: key.to_owned(),
            channel,
            done: None,
        };
        let _ = self.requests.send(request).await;
    }

    /// A new message number and, when `wait`, the receiver of the local delivery counts that
    /// the receiving task sends when this node's own copy comes back. `None` for the receiver
    /// when too many posts already wait (the poster then delivers locally itself).
    pub(crate) fn next(&self, wait: bool) -> (u64, Option<oneshot::Receiver<Counts>>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if !wait || self.waiters.len() >= self.max_waiters {
            return (id, None);
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.insert(id, tx);
        (id, Some(rx))
    }

    /// Takes the waiting entry of message `id`; true when the caller took it (and so must
    /// deliver locally).
    pub(crate) fn take(&self, id: u64) -> bool {
        self.waiters.remove(&id).is_some()
    }

    /// How long a poster waits for its own copy.
    pub(crate) fn echo_timeout(&self) -> Duration {
        self.echo_timeout
    }

    /// Publishes one frame; answers the number of receiving nodes.
    pub(crate) async fn publish(&self, channel: &str, frame: Bytes) -> Result<u64, BusError> {
        let result = self.channels.publish(channel, frame).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(GROUP_PUBLISH_TOTAL, "outcome" => outcome).increment(1);
        if let Err(error) = &result {
            tracing::warn!(%error, channel, "cannot publish a group message");
        }
        result
    }
}

/// Removes a post's waiting entry when the post is done or dropped (the receiving task then
/// only delivers).
pub(crate) struct ForgetWaiter<'a> {
    pub(crate) remote: &'a Remote,
    pub(crate) id: u64,
}

impl Drop for ForgetWaiter<'_> {
    fn drop(&mut self) {
        self.remote.take(self.id);
    }
}

/// Starts the receiving and subscription tasks; they run until `stop`.
pub(crate) fn spawn(
    groups: &Arc<Groups>,
    receivers: RemoteReceivers,
    stop: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    tasks.spawn(receive(Arc::clone(groups), receivers.frames, stop.clone()));
    tasks.spawn(subscriptions(
        Arc::clone(groups),
        receivers.requests,
        stop.clone(),
    ));
}

/// Fans out every frame received, in arrival order.
async fn receive(groups: Arc<Groups>, mut frames: mpsc::Receiver<Bytes>, stop: CancellationToken) {
    let Some(remote) = &groups.remote else {
        return;
    };
    loop {
        let bytes = tokio::select! {
            () = stop.cancelled() => break,
            bytes = frames.recv() => match bytes {
                Some(bytes) => bytes,
                None => break,
            },
        };
        let mut frame = match Frame::decode(bytes) {
            Ok(frame) => frame,
            Err(error) => {
                tracing::warn!(%error, "dropped a malformed group frame");
                continue;
            }
        };
        let own = frame.origin == remote.node_id;
        if let (Some((epoch, offset)), Some(group)) = (frame.position.take(), &frame.group) {
            // Groups with history: every copy is delivered here, the poster's own too.
            let waiter = own.then(|| remote.waiters.remove(&frame.id)).flatten();
            let position = wsgate_connection_store::Position { epoch, offset };
            let counts = groups.deliver_positioned(
                &frame.stage,
                group,
                frame.payload,
                &position,
                frame.exclude.as_deref(),
            );
            if let Some((_, waiter)) = waiter {
                let _ = waiter.send(counts);
            }
            continue;
        }
        let waiter = if own {
            match remote.waiters.remove(&frame.id) {
                Some((_, waiter)) => Some(waiter),
                // Its poster delivered locally already (late copy or failed wait).
                None => continue,
            }
        } else {
            None
        };
        let message = fanout::message(frame.payload);
        let counts = groups.deliver(
            &frame.stage,
            frame.group.as_deref(),
            &message,
            frame.exclude.as_deref(),
        );
        if let Some(waiter) = waiter {
            let _ = waiter.send(counts);
        }
    }
}

/// Applies subscription requests one at a time.
async fn subscriptions(
    groups: Arc<Groups>,
    mut requests: mpsc::Receiver<SubRequest>,
    stop: CancellationToken,
) {
    let Some(remote) = &groups.remote else {
        return;
    };
    loop {
        let request = tokio::select! {
            () = stop.cancelled() => break,
            request = requests.recv() => match request {
                Some(request) => request,
                None => break,
            },
        };
        let index = &groups.index;
        let key = &request.key;
        let ok = if index.has_members(key) {
            if remote.active.contains(key) {
                true
            } else {
                match remote.channels.subscribe(&request.channel).await {
                    Ok(()) => {
                        remote.active.insert(key.clone());
                        true
                    }
                    Err(error) => {
                        tracing::warn!(%error, channel = %request.channel, "cannot subscribe to a group channel");
                        false
                    }
                }
            }
        } else if remote.active.remove(key).is_some() {
            // A join that saw the subscription just before it was removed is seen here.
            if index.has_members(key) {
                remote.active.insert(key.clone());
            } else if let Err(error) = remote.channels.unsubscribe(&request.channel).await {
                tracing::debug!(%error, channel = %request.channel, "cannot unsubscribe from a group channel");
            }
            true
        } else {
            true
        };
        if let Some(done) = request.done {
            let _ = done.send(ok);
        }
    }
}
