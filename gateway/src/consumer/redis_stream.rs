//! Redis Streams source: `XREADGROUP` in the consumer group shared by every node (consumer
//! name = node id), `XACK` once settled, and `XAUTOCLAIM` of entries left pending longer than
//! `claim_idle` by a consumer that died, so a crash loses nothing. Undeliverable entries are
//! copied to the `dead_letter` stream when set, then acknowledged. Connections come from the
//! project's one Redis connection factory (`redis_conn`); the loop reconnects with a bounded
//! backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::AsyncCommands;
use redis::streams::{StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use wsgate_connection_store::redis_conn::{self, RedisConn, RedisTarget};

use super::address::{AddressError, DATA_FIELD};
use super::lanes::{Incoming, Lanes, Settle};
use super::{Context, bounded, metrics};
use crate::config::Envelope;

/// How long one `XREADGROUP` waits for new entries.
const BLOCK: Duration = Duration::from_secs(1);
/// Bound of every other Redis command, and of connecting.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Most entries read at once.
const MAX_BATCH: usize = 256;
/// Field added to dead-lettered entries: why.
const REASON_FIELD: &str = "wsgate-dead-letter-reason";

/// Where one entry came from.
#[derive(Clone)]
struct Stream {
    conn: RedisConn,
    key: Arc<str>,
    group: Arc<str>,
    dead_letter: Option<Arc<str>>,
}

struct Acker {
    stream: Stream,
    id: String,
    delivered: u32,
    /// The entry's fields, kept only when there is a dead-letter stream.
    fields: Vec<(String, Vec<u8>)>,
}

#[async_trait::async_trait]
impl Settle for Acker {
    fn delivered(&self) -> u32 {
        self.delivered
    }

    async fn ack(self: Box<Self>) {
        let mut conn = self.stream.conn.clone();
        let ids = [self.id.as_str()];
        let acked = conn.xack::<_, _, _, i64>(&*self.stream.key, &*self.stream.group, &ids);
        if let Err(error) = bounded("XACK", acked).await {
            tracing::debug!(%error, "XACK failed; the entry will be claimed again");
        }
    }

    async fn reject(self: Box<Self>, reason: &str) -> bool {
        let Some(dead_letter) = self.stream.dead_letter.clone() else {
            self.ack().await;
            return false;
        };
        let mut fields = self.fields.clone();
        fields.push((REASON_FIELD.into(), reason.as_bytes().to_vec()));
        let mut conn = self.stream.conn.clone();
        let added = conn.xadd::<_, _, _, _, String>(&*dead_letter, "*", &fields);
        match bounded("XADD", added).await {
            Ok(_) => {
                self.ack().await;
                true
            }
            Err(error) => {
                tracing::warn!(%error, "cannot add to the dead-letter stream; the entry stays pending");
                false
            }
        }
    }

    async fn release(self: Box<Self>) {}
}

/// A field as text.
fn field(entry: &StreamId, name: &'static str) -> Result<Option<String>, AddressError> {
    match entry.map.get(name) {
        None => Ok(None),
        Some(value) => redis::from_redis_value_ref::<String>(value)
            .map(Some)
            .map_err(|_| AddressError::Header(name)),
    }
}

fn incoming(context: &Context, stream: &Stream, entry: StreamId, delivered: u32) -> Incoming {
    let data = entry
        .map
        .get(DATA_FIELD)
        .and_then(|v| redis::from_redis_value_ref::<Vec<u8>>(v).ok())
        .map(Bytes::from);
    let parsed = match data {
        None => Err(AddressError::NoData),
        Some(data) => match context.config.envelope {
            Envelope::Headers => context.parse(|n| field(&entry, n), data),
            Envelope::Json => context.parse(|_| Ok(None), data),
        },
    };
    let fields = if stream.dead_letter.is_some() {
        (entry.map.iter())
            .filter_map(|(k, v)| {
                let bytes = redis::from_redis_value_ref::<Vec<u8>>(v).ok()?;
                Some((k.clone(), bytes))
            })
            .collect()
    } else {
        Vec::new()
    };
    Incoming {
        parsed,
        settle: Box::new(Acker {
            stream: stream.clone(),
            id: entry.id,
            delivered,
            fields,
        }),
    }
}

/// What one read brings: entries and how often each was delivered before.
type Read = Vec<(StreamId, u32)>;

struct Session {
    reader: RedisConn,
    stream: Stream,
    /// Read this consumer's own pending entries first (once per process).
    backlog: bool,
    next_claim: Instant,
}

impl Session {
    async fn open(context: &Context, backlog: bool) -> Result<Self, String> {
        let c = &context.config;
        // The reader's answers wait up to BLOCK; everything else is bounded by COMMAND_TIMEOUT.
        let mut reading = RedisTarget::new(vec![c.url.clone()], false, BLOCK + COMMAND_TIMEOUT);
        reading.connect_timeout = COMMAND_TIMEOUT;
        let reader = bounded("connect", redis_conn::connect(&reading, None)).await?;
        let writing = RedisTarget::new(vec![c.url.clone()], false, COMMAND_TIMEOUT);
        let conn = bounded("connect", redis_conn::connect(&writing, None)).await?;
        let key: Arc<str> = Arc::from(c.stream.clone().unwrap_or_default());
        let group: Arc<str> = Arc::from(c.group.clone().unwrap_or_default());
        let mut admin = conn.clone();
        let created = admin.xgroup_create_mkstream::<_, _, _, ()>(&*key, &*group, "$");
        match bounded("XGROUP CREATE", created).await {
            Ok(()) => {}
            Err(error) if error.contains("BUSYGROUP") => {}
            Err(error) => return Err(error),
        }
        Ok(Self {
            reader,
            stream: Stream {
                conn,
                key,
                group,
                dead_letter: c.dead_letter.as_deref().map(Arc::from),
            },
            backlog,
            next_claim: Instant::now(),
        })
    }

    /// Up to `count` entries: claimed from dead consumers when it is time, else this
    /// consumer's own backlog, else new ones (waiting up to [`BLOCK`]).
    async fn read(&mut self, context: &Context, count: usize) -> Result<Read, String> {
        let consumer = context.node_id.as_str();
        let key = &*self.stream.key;
        let group = &*self.stream.group;
        if Instant::now() >= self.next_claim {
            let idle = context.config.claim_idle();
            self.next_claim = Instant::now() + idle / 2;
            let options = StreamAutoClaimOptions::default().count(count);
            let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
            let claim = self
                .reader
                .xautoclaim_options::<_, _, _, _, _, StreamAutoClaimReply>(
                    key, group, consumer, idle_ms, "0-0", options,
                );
            let claimed = bounded("XAUTOCLAIM", claim).await?.claimed;
            if !claimed.is_empty() {
                tracing::info!(consumer = %context.config.name, count = claimed.len(), "claimed entries left pending by another consumer");
                return Ok(claimed.into_iter().map(|e| (e, 2)).collect());
            }
        }
        let options = StreamReadOptions::default()
            .group(group, consumer)
            .count(count);
        let keys = [key];
        if self.backlog {
            let ids = ["0"];
            let read = self
                .reader
                .xread_options::<_, _, redis::streams::StreamReadReply>(&keys, &ids, &options);
            let entries = flatten(bounded("XREADGROUP", read).await?);
            if entries.is_empty() {
                self.backlog = false;
            } else {
                return Ok(entries.into_iter().map(|e| (e, 2)).collect());
            }
        }
        let options = options.block(BLOCK.as_millis() as usize);
        let ids = [">"];
        let read = self
            .reader
            .xread_options::<_, _, Option<redis::streams::StreamReadReply>>(&keys, &ids, &options);
        let reply = match tokio::time::timeout(BLOCK + Duration::from_secs(5), read).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(error)) => return Err(format!("XREADGROUP: {error}")),
            Err(_) => return Err("XREADGROUP: timed out".into()),
        };
        Ok(reply
            .map(flatten)
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e, 1))
            .collect())
    }
}

fn flatten(reply: redis::streams::StreamReadReply) -> Vec<StreamId> {
    reply.keys.into_iter().flat_map(|k| k.ids).collect()
}

/// Takes one permit (waiting) and up to `max - 1` more (not waiting).
async fn permits(context: &Context, lanes: &Lanes) -> Option<Vec<OwnedSemaphorePermit>> {
    let first = tokio::select! {
        () = context.stop.cancelled() => return None,
        permit = lanes.reserve() => permit,
    };
    let max = context.config.max_in_flight.min(MAX_BATCH);
    let mut taken = vec![first];
    while taken.len() < max {
        match lanes.try_reserve() {
            Some(permit) => taken.push(permit),
            None => break,
        }
    }
    Some(taken)
}

pub(super) async fn run(context: Context) {
    let mut lane_tasks = JoinSet::new();
    let mut lanes = Lanes::start(
        &context.config,
        &context.deliverer,
        &context.stop,
        &mut lane_tasks,
    );
    let name = context.config.name.clone();
    let mut attempt = 0;
    let mut first = true;
    'connect: while !context.stop.is_cancelled() {
        let mut session = match Session::open(&context, first).await {
            Ok(session) => session,
            Err(error) => {
                attempt += 1;
                tracing::warn!(consumer = %name, url = %context.url(), %error, attempt, "Redis consumer down; reconnecting");
                metrics::connected(&name, false);
                if !context.pause(attempt).await {
                    break;
                }
                continue;
            }
        };
        first = false;
        attempt = 0;
        tracing::info!(consumer = %name, url = %context.url(), "consumer connected");
        metrics::connected(&name, true);
        loop {
            let Some(mut permits) = permits(&context, &lanes).await else {
                break 'connect;
            };
            let read = tokio::select! {
                () = context.stop.cancelled() => break 'connect,
                read = session.read(&context, permits.len()) => read,
            };
            let entries = match read {
                Ok(entries) => entries,
                Err(error) => {
                    tracing::warn!(consumer = %name, %error, "Redis read failed; reconnecting");
                    metrics::connected(&name, false);
                    attempt += 1;
                    if !context.pause(attempt).await {
                        break 'connect;
                    }
                    continue 'connect;
                }
            };
            for (entry, delivered) in entries {
                let Some(permit) = permits.pop() else { break };
                let incoming = incoming(&context, &session.stream, entry, delivered);
                lanes.push(incoming, permit).await;
            }
        }
    }
    drop(lanes);
    while lane_tasks.join_next().await.is_some() {}
    metrics::connected(&name, false);
}
