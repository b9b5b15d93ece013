//! A lean HTTP/1.1 client for `http://` and `unix:` integrations: per backend a pool of at most
//! `limits.backend_connections` keep-alive connections, a request head built once per
//! integration, one vectored write per request and the answer parsed in place, all in the
//! calling task (no connection task, no channel). `https://` integrations use the general
//! client instead.

mod answer;
mod conn;
mod pool;
pub(crate) mod target;

use std::collections::HashMap;
use std::io::{self, IoSlice, Write as _};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

pub(crate) use answer::{Answer, Keep};
use target::Address;
pub(crate) use target::Target;

use answer::ReadError;
use conn::Conn;
use pool::{Checkout, Pool};
use tokio::sync::OwnedSemaphorePermit;

/// Idle connections kept per backend (at most `limits.backend_connections`).
const MAX_IDLE: usize = 512;
/// An idle connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Opening a connection may take this long (within the call's own timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often expired idle connections are closed when no call takes them out.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Why a call over this client failed (besides its timeout and the size cap).
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    /// The connection could not be opened.
    #[error("connecting to {address} failed: {source}")]
    Connect {
        /// The backend.
        address: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Writing the request failed.
    #[error("sending the request to {address} failed: {source}")]
    Write {
        /// The backend.
        address: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Reading the answer failed.
    #[error("reading the answer from {address} failed: {source}")]
    Read {
        /// The backend.
        address: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The backend closed the connection before its answer was complete.
    #[error("{address} closed the connection before a complete answer")]
    Closed {
        /// The backend.
        address: String,
    },
    /// The backend's bytes are not an HTTP/1.x answer.
    #[error("malformed answer from {address}: {reason}")]
    Malformed {
        /// The backend.
        address: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The request target with the client's query string appended is not a valid URL.
    #[error("invalid request URL `{0}`")]
    Url(String),
}

/// How a call ended without an answer.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The call's timeout (or the connect timeout) passed.
    Timeout,
    /// The answer is larger than the cap.
    TooLarge {
        /// The cap passed.
        limit: usize,
    },
    /// Anything else.
    Failed(H1Error),
}

/// The pools of every backend, shared by the integrations of all stages.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pools: Arc<Mutex<HashMap<Address, Arc<Pool>>>>,
    /// `limits.backend_connections`: connections open to one backend at most.
    max_connections: usize,
    /// `security.integration_hosts`: the addresses a host name resolves to are checked too.
    hosts: Arc<crate::config::HostPolicy>,
}

impl Default for Client {
    fn default() -> Self {
        Self {
            pools: Arc::default(),
            max_connections: crate::config::LimitsConfig::default().backend_connections,
            hosts: Arc::default(),
        }
    }
}

impl Client {
    /// A client with no connections yet. Inside a runtime, one task closes idle connections
    /// past their timeout until the client is dropped.
    pub(crate) fn new() -> Self {
        let client = Self::default();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&client.pools)));
        }
        client
    }

    /// Opens at most `max` connections to one backend at once.
    #[must_use]
    pub(crate) fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max;
        self
    }

    /// Checks the addresses host names resolve to against `hosts` before connecting.
    #[must_use]
    pub(crate) fn with_hosts(mut self, hosts: crate::config::HostPolicy) -> Self {
        self.hosts = Arc::new(hosts);
        self
    }

    /// The pool of `address`, created on first use.
    fn pool(&self, address: &Address) -> Arc<Pool> {
        let mut pools = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(
            pools.entry(address.clone()).or_insert_with(|| {
                Arc::new(Pool::new(self.max_connections, MAX_IDLE, IDLE_TIMEOUT))
            }),
        )
    }

    /// An endpoint sending `method` to `target`, with `fixed` headers (lowercase names) on
    /// every request besides `host`, `user-agent`, `accept` and credentials from the URI.
    pub(crate) fn endpoint(
        &self,
        target: Target,
        method: &str,
        fixed: &[(&str, &str)],
    ) -> Endpoint {
        let mut head = format!("host: {}\r\n", target.host);
        for (name, value) in fixed {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let mut defaults = vec![
            (
                "user-agent",
                concat!("user-agent: wsgate/", env!("CARGO_PKG_VERSION"), "\r\n").to_string(),
            ),
            ("accept", "accept: */*\r\n".to_string()),
        ];
        if let Some(credentials) = &target.authorization {
            defaults.push(("authorization", format!("authorization: {credentials}\r\n")));
        }
        let all: String = defaults.iter().map(|(_, line)| line.as_str()).collect();
        Endpoint {
            pool: self.pool(&target.address),
            hosts: Arc::clone(&self.hosts),
            line: format!("{method} {} HTTP/1.1\r\n", target.path_and_query)
                .into_bytes()
                .into(),
            method: method.into(),
            head_only: method == "HEAD",
            replayable: matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE"),
            fixed: head.into_bytes().into(),
            defaults: defaults
                .into_iter()
                .map(|(name, line)| (name, line.into_bytes().into()))
                .collect(),
            all_defaults: all.into_bytes().into(),
            target,
        }
    }
}

/// Closes expired idle connections every [`SWEEP_INTERVAL`] until the client is gone.
async fn sweep(pools: Weak<Mutex<HashMap<Address, Arc<Pool>>>>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(pools) = pools.upgrade() else {
            return;
        };
        let all: Vec<Arc<Pool>> = pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        drop(pools);
        for pool in all {
            pool.sweep();
        }
    }
}

/// One call's variable parts.
#[derive(Debug, Default)]
pub(crate) struct Request<'a> {
    /// A query string to append to the target (`$connect` forwards the client's).
    pub query: Option<&'a str>,
    /// Header lines of this call (`name: value\r\n`), written as they are: names keep their case.
    pub headers: &'a [u8],
    /// `headers` may hold `user-agent`, `accept` or `authorization`, which then replace the
    /// endpoint's own.
    pub replaces_defaults: bool,
    /// The body; `Content-Length` is sent when it is not empty.
    pub body: &'a [u8],
}

/// An integration's backend and the request head that is the same for every call to it.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pool: Arc<Pool>,
    hosts: Arc<crate::config::HostPolicy>,
    target: Target,
    /// `METHOD /path?query HTTP/1.1\r\n`.
    line: Box<[u8]>,
    method: Box<str>,
    /// The request is HEAD: the answer has no body.
    head_only: bool,
    /// The method is safe to send again after the connection failed without an answer.
    replayable: bool,
    /// `host` and the integration's own header lines.
    fixed: Box<[u8]>,
    /// `user-agent`, `accept` and credentials from the URI: (name, line).
    defaults: Vec<(&'static str, Box<[u8]>)>,
    /// Every line of `defaults`.
    all_defaults: Box<[u8]>,
}

impl Endpoint {
    /// Sends one request and reads its answer under `cap` bytes, all within `timeout`.
    ///
    /// # Errors
    /// [`CallError`].
    pub(crate) async fn call(
        &self,
        request: &Request<'_>,
        timeout: Duration,
        cap: usize,
        keep: Keep,
    ) -> Result<Answer, CallError> {
        let joined;
        let line: &[u8] = match request.query {
            Some(query) => {
                let target = self
                    .target
                    .with_query(query)
                    .map_err(|e| CallError::Failed(H1Error::Url(e.to_string())))?;
                joined = format!("{} {target} HTTP/1.1\r\n", self.method);
                joined.as_bytes()
            }
            None => &self.line,
        };
        let kept;
        let defaults: &[u8] = if request.replaces_defaults {
            kept = self.defaults_not_in(request.headers);
            &kept
        } else {
            &self.all_defaults
        };
        let mut length = [0u8; 48];
        let length = end_of_head(&mut length, request.body.len());
        let parts = [
            line,
            &self.fixed,
            defaults,
            request.headers,
            length,
            request.body,
        ];
        match tokio::time::timeout(timeout, self.exchange(parts, cap, keep)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// Writes the request on a pooled connection (or a new one) and reads the answer. A pooled
    /// connection that fails before the request is written, or whose write fails, is replaced
    /// by a new one once; after a written request the call is not repeated, as the backend
    /// may have acted on it (except for methods that are safe to repeat, when not one byte of
    /// an answer came), as Go's `net/http` does.
    async fn exchange(
        &self,
        parts: [&[u8]; 6],
        cap: usize,
        keep: Keep,
    ) -> Result<Answer, CallError> {
        let mut replacing = None;
        loop {
            let (mut conn, reused) = match replacing.take() {
                // A pooled connection failed: a new one takes its slot.
                Some(slot) => (self.open(slot).await?, false),
                None => match self.pool.checkout().await {
                    Checkout::Idle(conn) => (conn, true),
                    Checkout::Room(slot) => (self.open(slot).await?, false),
                },
            };
            let mut slices = parts.map(IoSlice::new);
            if let Err(source) = conn.write_all(&mut slices).await {
                if reused {
                    replacing = Some(conn.into_slot());
                    continue;
                }
                return Err(CallError::Failed(H1Error::Write {
                    address: self.target.address.to_string(),
                    source,
                }));
            }
            match answer::read(&mut conn, self.head_only, cap, keep).await {
                Ok((answer, reusable)) => {
                    if reusable {
                        conn.trim();
                        self.pool.checkin(conn);
                    }
                    return Ok(answer);
                }
                Err(ReadError::Closed { nothing: true } | ReadError::Io { nothing: true, .. })
                    if reused && self.replayable =>
                {
                    replacing = Some(conn.into_slot());
                }
                Err(error) => return Err(self.failed(error)),
            }
        }
    }

    /// A new connection, within [`CONNECT_TIMEOUT`] (passing it counts as the call's timeout,
    /// as with the general client).
    async fn open(&self, slot: OwnedSemaphorePermit) -> Result<Conn, CallError> {
        match tokio::time::timeout(
            CONNECT_TIMEOUT,
            Conn::open(&self.target.address, &self.hosts, slot),
        )
        .await
        {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(source)) => Err(CallError::Failed(H1Error::Connect {
                address: self.target.address.to_string(),
                source,
            })),
            Err(_) => Err(CallError::Timeout),
        }
    }

    fn failed(&self, error: ReadError) -> CallError {
        let address = self.target.address.to_string();
        CallError::Failed(match error {
            ReadError::TooLarge { limit } => return CallError::TooLarge { limit },
            ReadError::Malformed(reason) => H1Error::Malformed { address, reason },
            ReadError::Closed { .. } => H1Error::Closed { address },
            ReadError::Io { error, .. } => H1Error::Read {
                address,
                source: error,
            },
        })
    }

    /// The default lines whose header `headers` does not carry itself.
    fn defaults_not_in(&self, headers: &[u8]) -> Vec<u8> {
        let mut kept = Vec::new();
        for (name, line) in &self.defaults {
            if !has_header(headers, name) {
                kept.extend_from_slice(line);
            }
        }
        kept
    }

    /// Idle connections pooled for this endpoint's backend.
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.pool.len()
    }
}

/// `content-length: n\r\n\r\n`, or only the blank line when there is no body.
fn end_of_head(buf: &mut [u8; 48], body: usize) -> &[u8] {
    let total = buf.len();
    let mut rest = &mut buf[..];
    let written = if body == 0 {
        rest.write_all(b"\r\n")
    } else {
        write!(rest, "content-length: {body}\r\n\r\n")
    };
    let used = match written {
        Ok(()) => total - rest.len(),
        // A usize always fits in 48 bytes with the header name.
        Err(_) => 0,
    };
    &buf[..used]
}

/// Whether the header block has a line named `name` (given lowercase; matched in any case).
fn has_header(block: &[u8], name: &str) -> bool {
    block.split(|b| *b == b'\n').any(|line| {
        line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            && line[name.len()] == b':'
    })
}

#[cfg(test)]
mod tests;
