//! The Redis connection behind `RedisStore`: one enum so a cluster connection can join later
//! without touching the store logic, which only sees `redis::aio::ConnectionLike`.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A cheap-to-clone handle to the server(s).
#[derive(Clone)]
pub(super) enum Backend {
    /// One server (or a proxy), reconnecting automatically with backoff.
    Single(ConnectionManager),
}

impl ConnectionLike for Backend {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
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
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
        }
    }
}
