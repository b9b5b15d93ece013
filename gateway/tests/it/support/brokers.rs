//! Brokers for the broker integration and consumer tests: reachability checks naming the
//! broker, publishers for NATS, JetStream, RabbitMQ and Redis Streams
//! (on the shared local services, names unique per test), a private `nats-server`, a TCP proxy
//! that can cut every connection (RabbitMQ outages), and metric and probe helpers.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use futures_util::StreamExt;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use redis::AsyncCommands;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use wsgate_connection_store::conformance::servers::free_port;
use wsgate_connection_store::conformance::unique_suffix;

use super::Ws;

pub const NATS_URL: &str = "nats://127.0.0.1:4222";
pub const RABBIT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The four kinds of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nats,
    Jetstream,
    Rabbitmq,
    RedisStream,
}

/// A publisher to one test's source, and the `consumers:` entry that reads it.
pub enum Publisher {
    Nats {
        client: async_nats::Client,
        subject: String,
    },
    Jetstream {
        js: async_nats::jetstream::Context,
        stream: String,
        subject: String,
    },
    Rabbitmq {
        _connection: Connection,
        channel: lapin::Channel,
        queue: String,
    },
    RedisStream {
        client: redis::Client,
        stream: String,
    },
}

/// Fails the test, naming the broker, when nothing answers at `addr`.
pub async fn require(broker: &str, addr: &str) {
    let reachable = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .is_ok_and(|r| r.is_ok());
    assert!(
        reachable,
        "{broker} is not reachable at {addr}: start it (see scripts/test.sh) to run the broker tests"
    );
}

/// A connected NATS client for `url` (failing the test, naming NATS, when it is not there).
pub async fn nats_client(url: &str) -> async_nats::Client {
    async_nats::connect(url)
        .await
        .unwrap_or_else(|e| panic!("NATS at {url} is not reachable: {e}"))
}

/// A fresh name for one test.
pub fn unique(what: &str) -> String {
    format!("{what}{}", unique_suffix().replace(['-', ':', '.'], ""))
}

impl Publisher {
    /// Connects to the broker at `url` (the shared one unless given), creating what the test
    /// reads from (stream, queue, consumer group). Fails naming the broker when it is down.
    pub async fn new(kind: Kind, name: &str, url: Option<&str>) -> Self {
        match kind {
            Kind::Nats | Kind::Jetstream => {
                let url = url.unwrap_or(NATS_URL);
                let client = tokio::time::timeout(
                    Duration::from_secs(10),
                    async_nats::ConnectOptions::new()
                        .retry_on_initial_connect()
                        .connect(url),
                )
                .await
                .unwrap_or_else(|_| panic!("NATS at {url} not reachable (start nats-server -js)"))
                .unwrap_or_else(|e| panic!("NATS at {url} not reachable: {e}"));
                let subject = format!("t.{name}.out");
                if kind == Kind::Nats {
                    return Self::Nats { client, subject };
                }
                let js = async_nats::jetstream::new(client);
                let stream = format!("S{name}");
                js.get_or_create_stream(async_nats::jetstream::stream::Config {
                    name: stream.clone(),
                    subjects: vec![format!("t.{name}.>")],
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("NATS JetStream at {url} not usable: {e}"));
                Self::Jetstream {
                    js,
                    stream,
                    subject,
                }
            }
            Kind::Rabbitmq => {
                let url = url.unwrap_or(RABBIT_URL);
                let connection = tokio::time::timeout(
                    Duration::from_secs(10),
                    Connection::connect(url, ConnectionProperties::default()),
                )
                .await
                .unwrap_or_else(|_| panic!("RabbitMQ at {url} not reachable"))
                .unwrap_or_else(|e| panic!("RabbitMQ at {url} not reachable: {e}"));
                let channel = connection.create_channel().await.expect("RabbitMQ channel");
                let queue = format!("q.{name}");
                channel
                    .queue_declare(
                        queue.as_str().into(),
                        QueueDeclareOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .expect("RabbitMQ queue.declare");
                Self::Rabbitmq {
                    _connection: connection,
                    channel,
                    queue,
                }
            }
            Kind::RedisStream => {
                let url = url.unwrap_or(REDIS_URL);
                let client = redis::Client::open(url).expect("url");
                let mut conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap_or_else(|e| panic!("Redis at {url} not reachable: {e}"));
                let stream = format!("s:{name}");
                let _: Result<(), _> = conn.xgroup_create_mkstream(&stream, "wsgate", "$").await;
                Self::RedisStream { client, stream }
            }
        }
    }

    /// The `consumers:` entry (YAML flow mapping) that reads this source; `extra` is added
    /// inside the mapping (`, max_deliver: 3`).
    pub fn consumer(&self, name: &str, url: Option<&str>, extra: &str) -> String {
        let (kind, keys) = match self {
            Self::Nats { subject, .. } => (
                "nats",
                format!(
                    "url: '{}', subject: '{subject}', queue_group: wsgate",
                    url.unwrap_or(NATS_URL)
                ),
            ),
            Self::Jetstream {
                stream, subject, ..
            } => (
                "jetstream",
                format!(
                    "url: '{}', stream: {stream}, durable: wsgate, subject: '{subject}', create_stream: true",
                    url.unwrap_or(NATS_URL)
                ),
            ),
            Self::Rabbitmq { queue, .. } => (
                "rabbitmq",
                format!("url: '{}', queue: '{queue}'", url.unwrap_or(RABBIT_URL)),
            ),
            Self::RedisStream { stream, .. } => (
                "redis_stream",
                format!(
                    "url: '{}', stream: '{stream}', group: wsgate",
                    url.unwrap_or(REDIS_URL)
                ),
            ),
        };
        format!("  - {{name: {name}, type: {kind}, {keys}, stage: prod{extra}}}\n")
    }

    /// Publishes `payload` with `headers` (Redis: as fields, the payload in `data`).
    pub async fn publish(&self, headers: &[(&str, &str)], payload: &[u8]) {
        if let Err(error) = self.try_publish(headers, payload).await {
            panic!("publish: {error}");
        }
    }

    /// [`Publisher::publish`], answering the broker's error.
    pub async fn try_publish(
        &self,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) -> Result<(), String> {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        match self {
            Self::Nats { client, subject } => {
                client
                    .publish_with_headers(
                        subject.clone(),
                        nats_headers(headers),
                        payload.to_vec().into(),
                    )
                    .await
                    .map_err(|x| e(&x))?;
                client.flush().await.map_err(|x| e(&x))?;
            }
            Self::Jetstream { js, subject, .. } => {
                js.publish_with_headers(
                    subject.clone(),
                    nats_headers(headers),
                    payload.to_vec().into(),
                )
                .await
                .map_err(|x| e(&x))?
                .await
                .map_err(|x| e(&x))?;
            }
            Self::Rabbitmq { channel, queue, .. } => {
                let mut table = FieldTable::default();
                for (k, v) in headers {
                    table.insert(ShortString::from(*k), AMQPValue::LongString((*v).into()));
                }
                channel
                    .basic_publish(
                        "".into(),
                        queue.as_str().into(),
                        BasicPublishOptions::default(),
                        payload,
                        BasicProperties::default().with_headers(table),
                    )
                    .await
                    .map_err(|x| e(&x))?
                    .await
                    .map_err(|x| e(&x))?;
            }
            Self::RedisStream { client, stream } => {
                let mut fields: Vec<(&str, &[u8])> =
                    headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
                fields.push(("data", payload));
                let mut conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|x| e(&x))?;
                let _: String = conn.xadd(stream, "*", &fields).await.map_err(|x| e(&x))?;
            }
        }
        Ok(())
    }

    /// Publishes a text message to connection `id` by header.
    pub async fn to_connection(&self, id: &str, text: &str) {
        self.publish(&[("wsgate-connection-id", id)], text.as_bytes())
            .await;
    }

    /// Messages the broker still holds for the consumer (waiting or unacknowledged); `None`
    /// for core NATS, which holds nothing.
    pub async fn outstanding(&self) -> Option<u64> {
        match self {
            Self::Nats { .. } => None,
            Self::Jetstream { js, stream, .. } => {
                let stream = js.get_stream(stream).await.expect("stream");
                let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream
                    .get_consumer("wsgate")
                    .await
                    .expect("durable consumer");
                let info = consumer.info().await.expect("consumer info");
                Some(info.num_pending + info.num_ack_pending as u64)
            }
            Self::Rabbitmq { channel, queue, .. } => {
                let options = QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                };
                let declared = channel
                    .queue_declare(queue.as_str().into(), options, FieldTable::default())
                    .await
                    .expect("passive declare");
                // Ready messages only: unacknowledged ones are not counted by RabbitMQ here;
                // they would show again as ready once their consumer goes away.
                Some(u64::from(declared.message_count()))
            }
            Self::RedisStream { client, stream } => {
                let mut conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("Redis");
                let pending: redis::streams::StreamPendingReply =
                    conn.xpending(stream, "wsgate").await.expect("XPENDING");
                Some(pending.count() as u64)
            }
        }
    }

    /// Removes what the test created.
    pub async fn cleanup(&self) {
        match self {
            Self::Nats { .. } => {}
            Self::Jetstream { js, stream, .. } => {
                let _ = js.delete_stream(stream).await;
            }
            Self::Rabbitmq { channel, queue, .. } => {
                let _ = channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            Self::RedisStream { client, stream } => {
                if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                    let _: Result<(), _> = conn.del(stream).await;
                }
            }
        }
    }
}

fn nats_headers(headers: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, *v);
    }
    map
}

/// Publishes probes to connection `id` until one reaches `ws` (the consumer is reading).
/// Probes are `probe`; later ones may still arrive.
/// Answers what arrived that was not a probe (after an outage, a message published meanwhile may
/// be the first to come, and must not be lost to the caller).
pub async fn wait_consuming(publisher: &Publisher, ws: &mut Ws, id: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        // The broker may be coming back: errors are tried again.
        let _ = publisher
            .try_publish(&[("wsgate-connection-id", id)], b"probe")
            .await;
        // Any text will do: after an outage, a message whose acknowledgement was lost may come
        // again first (at least once).
        if let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_millis(300), ws.next()).await
        {
            return (text.as_str() != "probe")
                .then(|| text.to_string())
                .into_iter()
                .collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the consumer never delivered a probe"
        );
    }
}

/// The value of `name{consumer="…",outcome="…"}` (0 when absent) in a `/metrics` text.
pub fn consumer_metric(text: &str, consumer: &str, outcome: &str) -> u64 {
    let want_consumer = format!("consumer=\"{consumer}\"");
    let want_outcome = format!("outcome=\"{outcome}\"");
    text.lines()
        .filter(|l| l.starts_with("wsgate_consumer_messages_total{"))
        .filter(|l| l.contains(&want_consumer) && l.contains(&want_outcome))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// A `nats-server -js` of one test on a free port, its store in a temporary directory;
/// killed on drop.
pub struct NatsServer {
    pub port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("wsgate-nats-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and store (JetStream data is kept).
    pub async fn restart(&mut self) {
        self.kill();
        let binary = std::env::var("WSGATE_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
        let child = Command::new(&binary)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary} (NATS server): {e}"));
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nats-server did not listen on {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP proxy to `target` that can cut every connection and refuse new ones (a broker
/// outage, as the client sees it).
pub struct CuttingProxy {
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
    cut: Arc<std::sync::Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl CuttingProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let down = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (d, c, s) = (Arc::clone(&down), Arc::clone(&cut), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = s.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut client, _)) = accepted else {
                    continue;
                };
                if d.load(Ordering::SeqCst) {
                    continue;
                }
                let token = c.lock().expect("lock").clone();
                tokio::spawn(async move {
                    let Ok(mut upstream) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        () = token.cancelled() => {}
                    }
                });
            }
        });
        Self {
            addr,
            down,
            cut,
            stop,
        }
    }

    /// Cuts every connection; refuses new ones until [`CuttingProxy::restore`].
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        let mut token = self.cut.lock().expect("lock");
        token.cancel();
        *token = CancellationToken::new();
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut.lock().expect("lock").cancel();
    }
}
