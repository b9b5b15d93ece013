//! The one way wsgate opens Redis connections (the store, the cluster bus, group channels and
//! shared throttling all use it): a single server through a reconnecting `ConnectionManager`
//! or a Redis Cluster, with the same timeouts and reconnect policy everywhere, and RESP3 pushes
//! to a handler when asked. [`RedisConn`] is one enum over both, so callers only see
//! `redis::aio::ConnectionLike`.
//!
//! Redis Cluster refuses pipelines whose keys live in different slots, and the store's
//! pipelines (`touch`, `list_node`) hold one single-key command per connection id. The
//! cluster variant therefore sends each command of a pipeline on its own (concurrently, over
//! the multiplexed node connections) and returns the replies in order, each reply as the
//! pipeline would have returned it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    Client, Cmd, IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo, RedisFuture, Value,
};

/// Longest pause between reconnect attempts to a single server, so recovery after an outage
/// stays quick.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Retries of a command on a Redis Cluster (after a MOVED, a connection error...).
const CLUSTER_RETRIES: u32 = 2;
/// Longest wait between those retries, in milliseconds.
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 200;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// `redis://` URLs: the server, or seed nodes of a Redis Cluster.
    pub seeds: Vec<String>,
    /// The seeds belong to a Redis Cluster.
    pub cluster: bool,
    /// Bound on each command's answer.
    pub timeout: Duration,
    /// Bound on (re)connecting.
    pub connect_timeout: Duration,
}

impl RedisTarget {
    /// `seeds` with one `timeout` for connecting and for answers.
    #[must_use]
    pub fn new(seeds: Vec<String>, cluster: bool, timeout: Duration) -> Self {
        Self {
            seeds,
            cluster,
            timeout,
            connect_timeout: timeout,
        }
    }
}

/// Receives the RESP3 pushes (pub/sub messages, disconnection notices) of a connection.
pub type PushHandler = Arc<dyn Fn(PushInfo) + Send + Sync>;

/// Why no connection could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Not connected within `connect_timeout`.
    #[error("no connection within {0:?}")]
    Timeout(Duration),
    /// Redis refused, or the URL is malformed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

/// Connects to `target`; with `push`, a RESP3 connection that hands pushes to it (and, on a
/// single server, subscribes again after a reconnect).
///
/// # Errors
/// [`ConnectError`].
pub async fn connect(
    target: &RedisTarget,
    push: Option<PushHandler>,
) -> Result<RedisConn, ConnectError> {
    let after = target.connect_timeout;
    let connecting = async {
        if target.cluster {
            let mut builder = ClusterClientBuilder::new(target.seeds.iter().map(String::as_str))
                .connection_timeout(after)
                .response_timeout(target.timeout)
                .retries(CLUSTER_RETRIES)
                .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS);
            if let Some(push) = push {
                builder = builder
                    .use_protocol(ProtocolVersion::RESP3)
                    .push_sender(sender(push));
            }
            let client = builder.build()?;
            return Ok(RedisConn::Cluster(client.get_async_connection().await?));
        }
        let url = target.seeds.first().map(String::as_str).unwrap_or_default();
        let mut info = url.into_connection_info()?;
        let mut config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(after))
            .set_response_timeout(Some(target.timeout))
            .set_max_delay(MAX_RECONNECT_DELAY);
        if let Some(push) = push {
            let settings = info
                .redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3);
            info = info.set_redis_settings(settings);
            config = config
                .set_push_sender(sender(push))
                .set_automatic_resubscription();
        }
        let client = Client::open(info)?;
        Ok(RedisConn::Single(
            ConnectionManager::new_with_config(client, config).await?,
        ))
    };
    tokio::time::timeout(after, connecting)
        .await
        .map_err(|_| ConnectError::Timeout(after))?
}

fn sender(
    push: PushHandler,
) -> impl Fn(PushInfo) -> Result<(), Infallible> + Send + Sync + 'static {
    move |info| {
        push(info);
        Ok(())
    }
}

/// A cheap-to-clone handle to the server(s).
#[derive(Clone)]
pub enum RedisConn {
    /// One server (or a proxy), reconnecting automatically with backoff.
    Single(ConnectionManager),
    /// A Redis Cluster: commands are routed by key slot; topology changes are followed.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => Box::pin(split_pipeline(conn.clone(), pipeline, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Sends every command of a (non-transactional) pipeline as a pipeline of one, so each is
/// routed to its own slot, and concatenates the replies.
async fn split_pipeline(
    conn: ClusterConnection,
    pipeline: &Pipeline,
    count: usize,
) -> redis::RedisResult<Vec<Value>> {
    let sends = pipeline.cmd_iter().map(|cmd| {
        let mut conn = conn.clone();
        let mut single = redis::pipe();
        single.add_command(cmd.clone());
        async move { conn.req_packed_commands(&single, 0, 1).await }
    });
    let replies: Vec<Value> = try_join_all(sends).await?.into_iter().flatten().collect();
    debug_assert_eq!(replies.len(), count, "one reply per command");
    Ok(replies)
}
