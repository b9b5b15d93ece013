//! The chat worker: reads what the gateway published to the `CHAT_IN` stream (connects,
//! disconnects, messages), keeps the members in the JetStream key-value bucket `chat_members`
//! (so a restarted worker, or a second one, knows them), and answers by publishing one message
//! per recipient on `chat.out.<connection id>` with the `wsgate-connection-id` header, which the
//! gateway's consumer delivers. A message is acknowledged only after every answer is stored, so
//! a worker that dies mid-way has it redelivered; one message is in flight at a time, so order
//! holds across such a crash (at the cost of throughput: this is an example, not a load design).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer, kv, stream};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wsgate_example_chat::backend::{display_name, room_name};

/// The stream the gateway's routes publish to.
pub const IN_STREAM: &str = "CHAT_IN";
/// The stream the gateway's consumer reads.
pub const OUT_STREAM: &str = "CHAT_OUT";
/// The bucket of members.
pub const MEMBERS_BUCKET: &str = "chat_members";
/// The worker's durable consumer on [`IN_STREAM`] (workers sharing it share the work).
pub const WORKER_DURABLE: &str = "worker";
/// The header the gateway's consumer reads the recipient from.
pub const CONNECTION_HEADER: &str = "wsgate-connection-id";

/// How long a message may wait unacknowledged before JetStream hands it out again (the delay
/// after a worker crash).
const ACK_WAIT: Duration = Duration::from_secs(5);
/// Delay before a message that failed is tried again.
const RETRY_DELAY: Duration = Duration::from_millis(500);
/// Attempts per message before JetStream gives up on it.
const MAX_DELIVER: i64 = 10;
/// Both streams keep at most this much (bytes) and this long: a bounded queue.
const STREAM_MAX_BYTES: i64 = 64 * 1024 * 1024;
const STREAM_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// A connected member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Display name.
    pub name: String,
    /// Room.
    pub room: String,
}

/// Members by connection id, mirrored from the bucket.
pub type Members = BTreeMap<String, Member>;

/// Creates the two streams and the members bucket if they do not exist (idempotent; the
/// gateway's routes fail until `CHAT_IN` exists, so this runs before the gateway starts).
///
/// # Errors
/// JetStream unreachable or refusing the configuration.
pub async fn prepare(js: &jetstream::Context) -> anyhow::Result<kv::Store> {
    for (name, subjects) in [(IN_STREAM, "chat.in.>"), (OUT_STREAM, "chat.out.>")] {
        js.get_or_create_stream(stream::Config {
            name: name.to_string(),
            subjects: vec![subjects.to_string()],
            max_bytes: STREAM_MAX_BYTES,
            max_age: STREAM_MAX_AGE,
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating the stream {name}"))?;
    }
    // The bucket's stream is made here with the key-value conventions (what
    // `create_key_value` would make) because that call asks for account information that
    // nats-server 2.9, still common in distributions, answers in an older shape.
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{MEMBERS_BUCKET}"),
        description: Some("chat members by connection id".to_string()),
        subjects: vec![format!("$KV.{MEMBERS_BUCKET}.>")],
        max_messages_per_subject: 1,
        max_bytes: STREAM_MAX_BYTES,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .context("creating the members bucket")?;
    let members = js
        .get_key_value(MEMBERS_BUCKET)
        .await
        .context("opening the members bucket")?;
    Ok(members)
}

/// The worker, ready to run.
#[derive(Debug)]
pub struct Worker {
    js: jetstream::Context,
    bucket: kv::Store,
    members: Arc<Mutex<Members>>,
}

impl Worker {
    /// Connects to `url`, prepares the streams and the bucket, and loads the members.
    ///
    /// # Errors
    /// NATS unreachable, JetStream off or refusing the streams.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let client = async_nats::connect(url)
            .await
            .with_context(|| format!("connecting to NATS at {url}"))?;
        let js = jetstream::new(client);
        let bucket = prepare(&js).await?;
        Ok(Self {
            js,
            bucket,
            members: Arc::new(Mutex::new(Members::new())),
        })
    }

    /// Handles messages until the stream ends or an error that retrying cannot fix.
    ///
    /// # Errors
    /// The consumer cannot be created or its stream fails.
    pub async fn run(self) -> anyhow::Result<()> {
        // The members as they are now, before the first message is handled (the mirror's
        // first entries could come after it); the mirror then follows every change.
        let mut keys = self.bucket.keys().await.context("listing the members")?;
        while let Some(key) = keys.next().await {
            let key = key.context("listing the members")?;
            if let Some(value) = self.bucket.get(&key).await.context("reading a member")?
                && let Ok(member) = serde_json::from_slice::<Member>(&value)
            {
                self.lock().insert(key, member);
            }
        }
        let mirror = tokio::spawn(mirror_members(
            self.bucket.clone(),
            Arc::clone(&self.members),
        ));
        let result = self.consume().await;
        mirror.abort();
        result
    }

    async fn consume(&self) -> anyhow::Result<()> {
        let consumer = self
            .js
            .get_stream(IN_STREAM)
            .await?
            .get_or_create_consumer(
                WORKER_DURABLE,
                consumer::pull::Config {
                    durable_name: Some(WORKER_DURABLE.to_string()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    max_deliver: MAX_DELIVER,
                    // One message in flight: messages keep their order even when a worker
                    // dies holding one (it comes again before anything after it).
                    max_ack_pending: 1,
                    ..Default::default()
                },
            )
            .await
            .context("creating the worker's consumer")?;
        let mut messages = consumer.messages().await?;
        while let Some(message) = messages.next().await {
            let message = message.context("reading CHAT_IN")?;
            match self.handle(&message).await {
                Ok(()) => {
                    if let Err(error) = message.double_ack().await {
                        tracing::warn!(%error, "acknowledging a handled message failed; it will come again");
                    }
                }
                Err(error) => {
                    tracing::warn!(subject = %message.subject, error = %format!("{error:#}"), "handling failed; retrying later");
                    let _ = message.ack_with(AckKind::Nak(Some(RETRY_DELAY))).await;
                }
            }
        }
        Ok(())
    }

    async fn handle(&self, message: &jetstream::Message) -> anyhow::Result<()> {
        let connection_id = header(message.headers.as_ref(), "x-wsgate-connection-id");
        match message.subject.as_str() {
            "chat.in.connect" => {
                let event: Event = serde_json::from_slice(&message.payload)
                    .context("a connect event that is not the gateway's JSON event")?;
                let query = event.query_string_parameters.as_ref();
                let member = Member {
                    name: display_name(query),
                    room: room_name(query),
                };
                let id = event.request_context.connection_id;
                self.bucket
                    .put(&id, serde_json::to_vec(&member)?.into())
                    .await
                    .context("storing a member")?;
                tracing::info!(connection_id = %id, name = %member.name, room = %member.room, "joined");
                self.lock().insert(id, member);
            }
            "chat.in.disconnect" => {
                let id = connection_id.context("a disconnect event without its connection id")?;
                self.bucket
                    .delete(&id)
                    .await
                    .context("forgetting a member")?;
                self.lock().remove(&id);
            }
            "chat.in.sendmessage" => {
                let id = connection_id.context("a message without its connection id")?;
                self.send(&id, &message.payload).await?;
            }
            other => tracing::debug!(subject = other, "ignored"),
        }
        Ok(())
    }

    /// Publishes `payload`'s `data` from member `from` to everyone in its room, each answer
    /// stored by JetStream before this returns.
    async fn send(&self, from: &str, payload: &[u8]) -> anyhow::Result<()> {
        let Ok(SendMessage { data }) = serde_json::from_slice::<SendMessage>(payload) else {
            tracing::debug!(connection_id = from, "a message without data; ignored");
            return Ok(());
        };
        let (sender, recipients) = {
            let members = self.lock();
            let sender = members.get(from).cloned().unwrap_or_else(|| Member {
                name: "anonymous".to_string(),
                room: wsgate_example_chat::backend::DEFAULT_ROOM.to_string(),
            });
            let recipients: Vec<String> = members
                .iter()
                .filter(|(_, m)| m.room == sender.room)
                .map(|(id, _)| id.clone())
                .collect();
            (sender, recipients)
        };
        let outgoing = json!({
            "from": sender.name,
            "room": sender.room,
            "data": data,
            "at": epoch_ms(),
        })
        .to_string();
        let mut acks = Vec::with_capacity(recipients.len());
        for id in recipients {
            let mut headers = HeaderMap::new();
            headers.insert(CONNECTION_HEADER, id.as_str());
            let ack = self
                .js
                .publish_with_headers(format!("chat.out.{id}"), headers, outgoing.clone().into())
                .await
                .context("publishing an answer")?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.context("JetStream did not store an answer")?;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Members> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps `members` equal to the bucket (another worker's changes included).
async fn mirror_members(bucket: kv::Store, members: Arc<Mutex<Members>>) {
    let mut watch = match bucket.watch_with_history(">").await {
        Ok(watch) => watch,
        Err(error) => {
            tracing::warn!(%error, "cannot watch the members bucket");
            return;
        }
    };
    while let Some(entry) = watch.next().await {
        let Ok(entry) = entry else { continue };
        let mut members = members.lock().unwrap_or_else(|e| e.into_inner());
        match entry.operation {
            kv::Operation::Put => {
                if let Ok(member) = serde_json::from_slice::<Member>(&entry.value) {
                    members.insert(entry.key, member);
                }
            }
            kv::Operation::Delete | kv::Operation::Purge => {
                members.remove(&entry.key);
            }
        }
    }
}

fn header(headers: Option<&HeaderMap>, name: &str) -> Option<String> {
    headers?.get(name).map(|v| v.as_str().to_string())
}

/// The parts of the gateway's connect event the worker reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    request_context: RequestContext,
    #[serde(default)]
    query_string_parameters: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext {
    connection_id: String,
}

/// `{"action":"sendmessage","data":...}`.
#[derive(Debug, Deserialize)]
struct SendMessage {
    data: Value,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}
