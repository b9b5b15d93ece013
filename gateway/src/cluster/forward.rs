//! Callbacks for connections held by another node (also group joins and leaves): the record
//! names the owner (remembered in [`super::owners`] once the owner answered as the holder, so
//! later callbacks skip the lookup); the request travels on the bus and the owner's `Ack`
//! decides the answer, so a cross-node POST answers exactly what a local one would (200 queued,
//! 429 queue full, 410 gone).
//!
//! Failure answers: a store or bus error, or no `Ack` within `cluster.forward_timeout`, is 503
//! (never 410: the connection may be alive). An owner with no subscriber is 410 when its lease
//! is gone (the reaper cleans up) and 503 while its lease is alive (it is only unreachable).
//!
//! A remembered owner is forgotten unless it answers as the holder: on `Gone` (410), on no
//! `Ack` (503; the next callback reads the record, which is gone once the owner was reaped),
//! and on no subscriber, where the record and the lease then decide as above. The owner only
//! answers as the holder while its lease is certainly held (see `inbox`), so a node that was
//! frozen and reaped never takes a post for a connection whose `$disconnect` already ran.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::Cluster;
use super::outbox::Outgoing;
use super::pending::Answer;
use crate::bus::wire::{self, Envelope, Outcome, WireError};
use crate::error::CallbackError;
use crate::telemetry;
use crate::traces::Parent;

impl Cluster {
    /// `POST @connections/{id}` for a connection not held here.
    ///
    /// # Errors
    /// The [`CallbackError`] the callback API answers.
    pub(crate) async fn post(
        &self,
        stage: &str,
        id: &str,
        payload: Bytes,
        trace: Parent<'_>,
    ) -> Result<(), CallbackError> {
        let outcome = self
            .forward("post", stage, id, trace, |request, reply_to| {
                wire::post(request, reply_to, id, &payload)
            })
            .await?;
        match outcome {
            Outcome::Done => Ok(()),
            Outcome::Full => Err(CallbackError::LimitExceeded),
            Outcome::Gone => Err(CallbackError::Gone),
            Outcome::TooManyGroups | Outcome::Unavailable => Err(CallbackError::Unavailable),
        }
    }

    /// `DELETE @connections/{id}` for a connection not held here.
    ///
    /// # Errors
    /// The [`CallbackError`] the callback API answers.
    pub(crate) async fn delete(
        &self,
        stage: &str,
        id: &str,
        code: u16,
        reason: String,
        trace: Parent<'_>,
    ) -> Result<(), CallbackError> {
        let outcome = self
            .forward("delete", stage, id, trace, |request, reply_to| {
                Envelope::Delete {
                    request,
                    reply_to: reply_to.to_owned(),
                    connection_id: id.to_owned(),
                    code,
                    reason: reason.clone(),
                }
                .encode()
            })
            .await?;
        match outcome {
            Outcome::Done => Ok(()),
            Outcome::Full | Outcome::Gone => Err(CallbackError::Gone),
            Outcome::TooManyGroups | Outcome::Unavailable => Err(CallbackError::Unavailable),
        }
    }

    /// `PUT` (`join`) or `DELETE @connections/{id}/groups/{group}` for a connection not held
    /// here: the owner joins or leaves (it holds the connection's local index and
    /// subscriptions) and answers with an `Ack`. Traced as a `forward` span under `trace`, which
    /// the owner continues (its `$join` or `$leave` event included).
    ///
    /// # Errors
    /// The [`CallbackError`] the callback API answers.
    pub(crate) async fn membership(
        &self,
        stage: &str,
        id: &str,
        group: &str,
        join: bool,
        max_groups: usize,
        trace: Parent<'_>,
    ) -> Result<(), CallbackError> {
        let method = if join { "join" } else { "leave" };
        let outcome = self
            .forward(method, stage, id, trace, |request, reply_to| {
                Envelope::Membership {
                    request,
                    reply_to: reply_to.to_owned(),
                    connection_id: id.to_owned(),
                    group: group.to_owned(),
                    join,
                }
                .encode()
            })
            .await?;
        match outcome {
            Outcome::Done => Ok(()),
            Outcome::Gone => Err(CallbackError::Gone),
            Outcome::TooManyGroups => Err(CallbackError::TooManyGroups { limit: max_groups }),
            Outcome::Full | Outcome::Unavailable => Err(CallbackError::Unavailable),
        }
    }

    /// The node holding `id` on `stage`, from its record.
    async fn owner(&self, stage: &str, id: &str) -> Result<Arc<str>, CallbackError> {
        let record = self
            .records
            .get(id)
            .await
            .map_err(|_| CallbackError::Unavailable)?
            .filter(|r| r.stage == stage)
            .ok_or(CallbackError::Gone)?;
        if record.node_id == self.node_id {
            // Ours, but not in the registry: it is closing (or a stale record).
            return Err(CallbackError::Gone);
        }
        Ok(record.node_id.into())
    }

    /// Forwards one request in a `forward` span (child of `trace`, tracing on), whose context
    /// the frame carries to the owner.
    async fn forward(
        &self,
        method: &'static str,
        stage: &str,
        id: &str,
        trace: Parent<'_>,
        envelope: impl Fn(u64, &str) -> Result<Bytes, WireError>,
    ) -> Result<Outcome, CallbackError> {
        let started = Instant::now();
        let mut span = trace.child("forward");
        let result = match span.context() {
            None => self.route(method, stage, id, envelope).await,
            Some(context) => {
                let (traceparent, tracestate) = crate::traces::propagate::header_values(context);
                let traced = |request, reply_to: &str| {
                    wire::traced(&traceparent, &tracestate, &envelope(request, reply_to)?)
                };
                self.route(method, stage, id, traced).await
            }
        };
        let label = match &result {
            Ok(Outcome::Done) => "done",
            Ok(Outcome::Full) => "full",
            Ok(Outcome::Gone) | Err(CallbackError::Gone) => "gone",
            Ok(Outcome::TooManyGroups) => "too_many_groups",
            Ok(Outcome::Unavailable) | Err(_) => "unavailable",
        };
        metrics::counter!(telemetry::FORWARD_TOTAL, "method" => method, "outcome" => label)
            .increment(1);
        if span.context().is_some() {
            span.set_str("wsgate.method", method);
            span.set_str("wsgate.connection_id", id);
            span.set_str("wsgate.outcome", label);
            if label != "done" {
                span.fail(label);
            }
        }
        metrics::histogram!(telemetry::FORWARD_LATENCY, "method" => method)
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// Sends to the remembered owner when there is one, else to the one the record names.
    async fn route(
        &self,
        method: &'static str,
        stage: &str,
        id: &str,
        envelope: impl Fn(u64, &str) -> Result<Bytes, WireError>,
    ) -> Result<Outcome, CallbackError> {
        if let Some(owner) = self.owners.get(stage, id) {
            metrics::counter!(telemetry::FORWARD_OWNER_TOTAL, "source" => "cache").increment(1);
            match self.send(method, &owner, &envelope).await? {
                Sent::Answered(outcome) => {
                    if !holds(outcome) {
                        self.owners.forget(stage, id);
                    }
                    return Ok(outcome);
                }
                Sent::NoAnswer => {
                    // Frozen, overloaded or cut off: the next callback reads the record again
                    // (gone once the owner was reaped).
                    self.owners.forget(stage, id);
                    return Err(CallbackError::Unavailable);
                }
                // Dead or gone: the record and the owner's lease decide, as without a cache.
                Sent::NoSubscriber => self.owners.forget(stage, id),
            }
        }
        metrics::counter!(telemetry::FORWARD_OWNER_TOTAL, "source" => "record").increment(1);
        let owner = self.owner(stage, id).await?;
        match self.send(method, &owner, &envelope).await? {
            Sent::Answered(outcome) => {
                if holds(outcome) {
                    self.owners.insert(stage, id, owner);
                }
                Ok(outcome)
            }
            Sent::NoAnswer => Err(CallbackError::Unavailable),
            Sent::NoSubscriber => match self.members.lease_alive(&owner).await {
                Ok(false) => Err(CallbackError::Gone),
                Ok(true) | Err(_) => Err(CallbackError::Unavailable),
            },
        }
    }

    /// Queues one request for `owner` (see [`super::outbox`]) and waits (bounded) for its
    /// `Ack`.
    async fn send(
        &self,
        method: &'static str,
        owner: &Arc<str>,
        envelope: &impl Fn(u64, &str) -> Result<Bytes, WireError>,
    ) -> Result<Sent, CallbackError> {
        let mut waiter = self.pending.wait().ok_or(CallbackError::Unavailable)?;
        let frame = envelope(waiter.request, &self.node_id)
            .map_err(|_| CallbackError::BadRequest("connection id or reason too long".into()))?;
        let outgoing = Outgoing {
            owner: Arc::clone(owner),
            request: waiter.request,
            kind: method,
            frame,
        };
        if self.outgoing.try_send(outgoing).is_err() {
            metrics::counter!(telemetry::BUS_DROPPED_TOTAL).increment(1);
            return Err(CallbackError::Unavailable);
        }
        match tokio::time::timeout(self.config.forward_timeout, &mut waiter.answer).await {
            Ok(Ok(Answer::Ack(outcome))) => Ok(Sent::Answered(outcome)),
            Ok(Ok(Answer::NoSubscriber)) => Ok(Sent::NoSubscriber),
            Ok(Ok(Answer::NotSent)) => Err(CallbackError::Unavailable),
            Ok(Err(_)) | Err(_) => Ok(Sent::NoAnswer),
        }
    }
}

/// Whether the owner answered as the holder of the connection.
fn holds(outcome: Outcome) -> bool {
    match outcome {
        Outcome::Done | Outcome::Full | Outcome::TooManyGroups => true,
        Outcome::Gone | Outcome::Unavailable => false,
    }
}

/// What became of one request published to an owner.
enum Sent {
    /// The owner's `Ack`.
    Answered(Outcome),
    /// Nobody listens on the owner's channel: the frame reached no node.
    NoSubscriber,
    /// No `Ack` within `cluster.forward_timeout`.
    NoAnswer,
}
