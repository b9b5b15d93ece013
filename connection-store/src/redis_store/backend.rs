//! The Redis connection behind `RedisStore`: one enum over a single server and a Redis Cluster,
//! so the store logic only sees `redis::aio::ConnectionLike`.
//!
//! Redis Cluster refuses pipelines whose keys live in different slots, and the store's
//! pipelines (`touch`, `list_node`) hold one single-key command per connection id. The
//! cluster variant therefore sends each command of a pipeline on its own (concurrently, over
//! the multiplexed node connections) and returns the replies in order, each reply as the
//! pipeline would have returned it.

use futures_util::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A cheap-to-clone handle to the server(s).
#[derive(Clone)]
pub(super) enum Backend {
    /// One server (or a proxy), reconnecting automatically with backoff.
    Single(ConnectionManager),
    /// A Redis Cluster: commands are routed by key slot; topology changes are followed.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Backend {
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
