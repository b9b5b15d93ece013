//! `type: redis_stream`: `XADD stream [MAXLEN ~ n] * data <payload> <context fields>`; done when
//! Redis answers with the entry id. One connection per URL, opened on first use through the
//! project's shared Redis connection code (`redis_conn`: a reconnecting `ConnectionManager`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OnceCell;
use wsgate_connection_store::redis_conn::{self, RedisConn, RedisTarget};

use super::headers::Outgoing;
use super::{Bounded, BrokerError, Slots, accepted, bounded};
use crate::config::{PayloadKind, RedisStreamConfig};
use crate::integration::{Integration, IntegrationError, IntegrationResponse, Invocation};

const BROKER: &str = "redis_stream";
/// Bound on opening the connection (each publish is bounded by its route's `timeout` as well).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The connection's own bound on an answer; each publish is bounded by its route's `timeout`
/// (at most 15 minutes) around it.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(900);

/// The connection to one Redis URL.
#[derive(Debug)]
pub(super) struct Link {
    url: String,
    conn: OnceCell<Conn>,
    slots: Slots,
}

/// `RedisConn` has no `Debug`.
struct Conn(RedisConn);

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisConn")
    }
}

impl Bounded for Link {
    fn slots(&self) -> &Slots {
        &self.slots
    }
}

impl Link {
    pub(super) fn new(url: &str, max_in_flight: usize) -> Self {
        Self {
            url: url.to_owned(),
            conn: OnceCell::new(),
            slots: Slots::new(max_in_flight),
        }
    }

    /// The connection; the first call opens it (and a failed attempt is tried again by the
    /// next publish). Once open it reconnects by itself.
    async fn conn(&self) -> Result<RedisConn, BrokerError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let target = RedisTarget {
                    seeds: vec![self.url.clone()],
                    cluster: false,
                    timeout: RESPONSE_TIMEOUT,
                    connect_timeout: CONNECT_TIMEOUT,
                };
                redis_conn::connect(&target, None)
                    .await
                    .map(Conn)
                    .map_err(|e| BrokerError::Connect {
                        broker: BROKER,
                        message: e.to_string(),
                    })
            })
            .await?;
        Ok(conn.0.clone())
    }
}

#[derive(Debug)]
pub(super) struct RedisStream {
    link: Arc<Link>,
    stream: String,
    max_len: u64,
    timeout: Duration,
    payload: Option<PayloadKind>,
}

impl RedisStream {
    pub(super) fn new(link: Arc<Link>, stream: String, config: &RedisStreamConfig) -> Self {
        Self {
            link,
            stream,
            max_len: config.max_len,
            timeout: config.timeout,
            payload: config.payload,
        }
    }

    async fn publish(&self, out: Outgoing) -> Result<String, BrokerError> {
        let mut conn = self.link.conn().await?;
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.stream);
        if self.max_len > 0 {
            cmd.arg("MAXLEN").arg("~").arg(self.max_len);
        }
        cmd.arg("*").arg("data").arg(&out.payload[..]);
        for (name, value) in &out.fields {
            cmd.arg(*name).arg(value);
        }
        cmd.query_async(&mut conn).await.map_err(|e| {
            let message = e.to_string();
            // An error reply (a wrong type at the key, out of memory...): Redis answered.
            if e.code().is_some() {
                BrokerError::Refused {
                    broker: BROKER,
                    message,
                }
            } else {
                BrokerError::Publish {
                    broker: BROKER,
                    message,
                }
            }
        })
    }
}

#[async_trait]
impl Integration for RedisStream {
    async fn invoke(&self, inv: &Invocation<'_>) -> Result<IntegrationResponse, IntegrationError> {
        let out = Outgoing::new(inv, self.payload);
        bounded(BROKER, &self.link.slots, self.timeout, self.publish(out)).await?;
        Ok(accepted())
    }

    fn kind(&self) -> &'static str {
        "redis_stream"
    }
}
