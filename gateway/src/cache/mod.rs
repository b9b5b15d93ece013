//! Response caching of two-way routes: a repeated request is answered from the cache without
//! calling the integration. Entries live in this node's memory ([`memory`], moka, bounded in
//! bytes) or in the store's Redis ([`redis`], shared by every node); [`key`] names them.
//!
//! Only 2xx answers with a body no larger than `cache.max_entry_bytes` are kept (with
//! `honour_cache_control`, as the answer's `Cache-Control` allows); errors and timeouts never.
//! Concurrent misses of one key on one node make one integration call, whose answer all of
//! them get. Invalidation (the callback API's `DELETE /{stage}/@cache...`) drops a key, a route
//! or a stage; on a cluster with memory caches it reaches the other nodes over Redis pub/sub.
//! See `docs/transform.md`.

pub(crate) mod key;
mod memory;
mod redis;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::task::JoinSet;

use self::key::{KeySpec, RequestCaptures};
use crate::config::{CacheKind, Config, StoreConfig};
use crate::events::{ConnectRequest, EventKind};
use crate::integration::{IntegrationError, IntegrationResponse, Invocation};
use crate::telemetry;

pub(crate) use self::redis::AttachError;

/// What an integration call answers.
type Answer = Result<IntegrationResponse, IntegrationError>;

/// A cached answer: what a two-way route sends, and its status.
#[derive(Debug)]
pub(crate) struct Entry {
    status: u16,
    body: Bytes,
    binary: bool,
}

impl Entry {
    /// The answer as the integration gave it (headers are not kept: a message's answer sends
    /// its body alone).
    fn response(&self) -> IntegrationResponse {
        IntegrationResponse {
            status: self.status,
            headers: Vec::new(),
            body: Some(self.body.clone()),
            binary: self.binary,
        }
    }
}

/// An answer that was not cached, as the other requests of a coalesced miss get it.
#[derive(Debug, Clone)]
enum Uncached {
    /// The integration answered (not 2xx, no body, too large, or not to be stored).
    Response(IntegrationResponse),
    /// The call failed; `Some` when it timed out.
    Failed(Option<Duration>),
}

impl Uncached {
    fn of(answer: &Answer) -> Self {
        match answer {
            Ok(response) => Self::Response(response.clone()),
            Err(IntegrationError::Timeout(after)) => Self::Failed(Some(*after)),
            Err(_) => Self::Failed(None),
        }
    }

    fn into_answer(self) -> Answer {
        match self {
            Self::Response(response) => Ok(response),
            Self::Failed(Some(after)) => Err(IntegrationError::Timeout(after)),
            Self::Failed(None) => Err(IntegrationError::Malformed(
                "the integration call this request waited for failed",
            )),
        }
    }
}

/// The metrics of one cached route, registered once.
#[derive(Debug)]
struct CacheMetrics {
    hit: metrics::Counter,
    miss: metrics::Counter,
    too_large: metrics::Counter,
}

/// Where entries live, shared by every route.
#[derive(Debug)]
enum Backend {
    Memory(memory::Memory),
    Redis(redis::Shared),
}

/// The cache of one route of one stage.
#[derive(Debug)]
pub(crate) struct RouteCache {
    /// Unique per (stage, route) on this node.
    id: u32,
    route: String,
    key: KeySpec,
    ttl: Duration,
    honour_cache_control: bool,
    max_entry_bytes: usize,
    /// Bumped by every invalidation of the route: a memory entry is looked up under the
    /// generation current when its request came, so a fill that began before an invalidation
    /// can never be found after it.
    generation: AtomicU64,
    /// `{prefix}:cache:{prefix:stage:route}` (Redis kind and the invalidation channel).
    redis_base: String,
    metrics: CacheMetrics,
    backend: Arc<Backend>,
}

impl RouteCache {
    /// The answer to `invocation` (a MESSAGE): from the cache, or from `call` (then stored
    /// when it may be). `call` runs at most once, and not at all on a hit.
    pub(crate) async fn through<F>(&self, invocation: &Invocation<'_>, call: F) -> Answer
    where
        F: Future<Output = Answer> + Send,
    {
        let raw = match invocation.kind {
            EventKind::Message { raw, .. } => raw,
            _ => return call.await,
        };
        let hash = self.key.of_message(invocation.meta, raw);
        match &*self.backend {
            Backend::Memory(memory) => memory.through(self, hash, call).await,
            Backend::Redis(redis) => redis.through(self, hash, call).await,
        }
    }

    /// The entry to store for `answer` and its ttl, when it may be stored.
    fn storable(&self, answer: &Answer) -> Option<(Entry, Duration)> {
        let response = answer.as_ref().ok()?;
        if !(200..300).contains(&response.status) {
            return None;
        }
        let body = response.body.as_ref()?;
        if body.len() > self.max_entry_bytes {
            self.metrics.too_large.increment(1);
            return None;
        }
        let ttl = if self.honour_cache_control {
            cache_control_ttl(
                response
                    .headers
                    .iter()
                    .filter(|(k, _)| k == "cache-control")
                    .map(|(_, v)| v.as_str()),
                self.ttl,
            )?
        } else {
            self.ttl
        };
        let entry = Entry {
            status: response.status,
            body: body.clone(),
            binary: response.binary,
        };
        Some((entry, ttl))
    }

    fn count(&self, hit: bool) {
        if hit {
            self.metrics.hit.increment(1);
        } else {
            self.metrics.miss.increment(1);
        }
    }
}

/// The ttl an answer's `Cache-Control` values allow (a shared cache's reading): `None` for
/// `no-store`, `no-cache`, `private` or a max age of 0; `s-maxage`, else `max-age`, shortens
/// `ttl`; anything else leaves it.
fn cache_control_ttl<'a>(values: impl Iterator<Item = &'a str>, ttl: Duration) -> Option<Duration> {
    let (mut max_age, mut s_maxage) = (None, None);
    for directive in values.flat_map(|v| v.split(',')) {
        let directive = directive.trim();
        let (name, value) = match directive.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (directive, None),
        };
        let seconds = || value.and_then(|v| v.parse::<u64>().ok());
        match name.to_ascii_lowercase().as_str() {
            "no-store" | "no-cache" | "private" => return None,
            "max-age" => max_age = Some(seconds().unwrap_or(0)),
            "s-maxage" => s_maxage = Some(seconds().unwrap_or(0)),
            _ => {}
        }
    }
    match s_maxage.or(max_age) {
        Some(0) => None,
        Some(seconds) => Some(ttl.min(Duration::from_secs(seconds))),
        None => Some(ttl),
    }
}

/// Every route cache of the gateway.
#[derive(Debug)]
pub(crate) struct ResponseCache {
    routes: HashMap<(String, String), Arc<RouteCache>>,
    captures: Arc<RequestCaptures>,
    backend: Arc<Backend>,
}

/// What one stage knows of caching: the upgrade-request values its connections keep for cache
/// keys, and the caches (for invalidation).
#[derive(Debug, Default)]
pub(crate) struct StageCache {
    captures: Arc<RequestCaptures>,
    all: Option<Arc<ResponseCache>>,
}

impl StageCache {
    /// The stage's view of `cache`.
    pub(crate) fn new(cache: Option<&Arc<ResponseCache>>) -> Self {
        match cache {
            None => Self::default(),
            Some(cache) => Self {
                captures: Arc::clone(&cache.captures),
                all: Some(Arc::clone(cache)),
            },
        }
    }

    /// What a new connection keeps of its upgrade request (nothing when no cache key names
    /// a header or query parameter).
    #[allow(clippy::box_collection)]
    pub(crate) fn capture(&self, request: &ConnectRequest) -> Option<Box<Vec<Option<Box<str>>>>> {
        self.captures.capture(request)
    }

    /// The gateway's caches, when `cache:` is configured.
    pub(crate) fn all(&self) -> Option<&Arc<ResponseCache>> {
        self.all.as_ref()
    }
}

/// Why an invalidation could not be done.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InvalidateError {
    /// The route has no cache in this stage.
    #[error("route `{route}` of stage `{stage}` does not cache answers")]
    NoSuchRoute {
        /// The stage.
        stage: String,
        /// The route key asked for.
        route: String,
    },
    /// The key named is not one of the route's key.
    #[error("{0}")]
    BadKey(String),
    /// Redis failed: entries of other nodes (memory kind) or the shared entries (Redis kind)
    /// may still be served until their ttl; retrying is safe.
    #[error("the cache could not be reached: {0}")]
    Unavailable(String),
}

/// What an invalidation drops.
#[derive(Debug)]
pub(crate) enum Scope<'a> {
    /// Every route of the stage.
    Stage,
    /// One route.
    Route(&'a str),
    /// One entry of one route, named by its key parts.
    Key(&'a str, &'a Map<String, Value>),
}

impl ResponseCache {
    /// The caches `config` asks for; `None` without a `cache:` section.
    ///
    /// # Errors
    /// A key part that cannot be parsed (config validation reports these first).
    pub(crate) fn build(config: &Config) -> Result<Option<Arc<Self>>, String> {
        let Some(settings) = &config.cache else {
            return Ok(None);
        };
        let max_entry_bytes = usize::try_from(settings.max_entry_bytes).unwrap_or(usize::MAX);
        let prefix = match &config.store {
            StoreConfig::Redis(redis) => redis.prefix.clone(),
            StoreConfig::Memory => "wsgate".to_string(),
        };
        let backend = Arc::new(match settings.kind {
            CacheKind::Memory => Backend::Memory(memory::Memory::new(settings.max_bytes)),
            CacheKind::Redis => Backend::Redis(redis::Shared::new(&config.store)),
        });
        let mut captures = RequestCaptures::default();
        let mut routes = HashMap::new();
        let mut next_id = 0u32;
        for (stage, stage_settings) in &config.api.stages {
            for (route, route_config) in &config.api.routes {
                let Some(route_cache) = &route_config.cache else {
                    continue;
                };
                let key = KeySpec::new(
                    stage,
                    route,
                    &route_cache.key,
                    &stage_settings.variables,
                    &mut captures,
                )?;
                let labels = [("stage", stage.clone()), ("route", route.clone())];
                next_id += 1;
                let cache = RouteCache {
                    id: next_id,
                    route: route.clone(),
                    key,
                    ttl: route_cache.ttl,
                    honour_cache_control: route_cache.honour_cache_control,
                    max_entry_bytes,
                    generation: AtomicU64::new(0),
                    redis_base: format!("{prefix}:cache:{{{prefix}:{stage}:{route}}}"),
                    metrics: CacheMetrics {
                        hit: metrics::counter!(telemetry::CACHE_HIT_TOTAL, &labels),
                        miss: metrics::counter!(telemetry::CACHE_MISS_TOTAL, &labels),
                        too_large: metrics::counter!(telemetry::CACHE_TOO_LARGE_TOTAL, &labels),
                    },
                    backend: Arc::clone(&backend),
                };
                routes.insert((stage.clone(), route.clone()), Arc::new(cache));
            }
        }
        Ok(Some(Arc::new(Self {
            routes,
            captures: Arc::new(captures),
            backend,
        })))
    }

    /// The cache of `route` in `stage`, if it caches.
    pub(crate) fn route(&self, stage: &str, route: &str) -> Option<Arc<RouteCache>> {
        self.routes
            .get(&(stage.to_string(), route.to_string()))
            .cloned()
    }

    /// Connects what needs Redis once the store is up: the shared entries (Redis kind, on the
    /// store's own connection `redis`), or the invalidation channel between nodes (memory kind
    /// on a Redis store), whose reader is spawned on `tasks`.
    ///
    /// # Errors
    /// When the channel cannot be subscribed.
    pub(crate) async fn attach(
        self: &Arc<Self>,
        config: &Config,
        node_id: &str,
        redis: Option<wsgate_connection_store::redis_conn::RedisConn>,
        tasks: &mut JoinSet<()>,
    ) -> Result<(), AttachError> {
        match (&*self.backend, &config.store) {
            (Backend::Redis(shared), _) => {
                shared.attach(redis);
                Ok(())
            }
            (Backend::Memory(memory), StoreConfig::Redis(store)) => {
                let inbox = memory.channel.attach(store, node_id.to_string()).await?;
                tasks.spawn(redis::Channel::read(inbox, Arc::clone(self)));
                Ok(())
            }
            (Backend::Memory(_), StoreConfig::Memory) => Ok(()),
        }
    }

    /// Drops what `scope` names in `stage`, everywhere: this node, the other nodes' memory
    /// caches (published), or the shared Redis entries.
    ///
    /// # Errors
    /// See [`InvalidateError`].
    pub(crate) async fn invalidate(
        &self,
        stage: &str,
        scope: Scope<'_>,
    ) -> Result<(), InvalidateError> {
        let routes: Vec<&Arc<RouteCache>> = match scope {
            Scope::Stage => self
                .routes
                .iter()
                .filter(|((s, _), _)| s == stage)
                .map(|(_, cache)| cache)
                .collect(),
            Scope::Route(route) | Scope::Key(route, _) => {
                let cache = self
                    .routes
                    .get(&(stage.to_string(), route.to_string()))
                    .ok_or_else(|| InvalidateError::NoSuchRoute {
                        stage: stage.to_string(),
                        route: route.to_string(),
                    })?;
                vec![cache]
            }
        };
        let hash = match scope {
            Scope::Key(_, given) => {
                Some((routes[0].key.of_given(given)).map_err(InvalidateError::BadKey)?)
            }
            _ => None,
        };
        match &*self.backend {
            Backend::Memory(memory) => {
                for cache in &routes {
                    memory.invalidate(cache, hash).await;
                }
                memory
                    .channel
                    .publish(stage, routes.iter().map(|r| r.route.as_str()), hash)
                    .await
            }
            Backend::Redis(shared) => shared.invalidate(&routes, hash).await,
        }
    }

    /// Applies an invalidation published by another node.
    async fn apply_local(&self, scope: redis::Published) {
        let Backend::Memory(memory) = &*self.backend else {
            return;
        };
        for route in &scope.routes {
            if let Some(cache) = self.routes.get(&(scope.stage.clone(), route.clone())) {
                memory.invalidate(cache, scope.key).await;
            }
        }
    }
}

/// Counts a Redis failure of the cache and logs it at most once per [`LOG_EVERY`].
fn redis_failed(op: &'static str, error: &dyn std::fmt::Display) {
    metrics::counter!(telemetry::CACHE_ERROR_TOTAL, "op" => op).increment(1);
    static LAST_LOG: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST_LOG.load(Ordering::Relaxed);
    if now >= last + LOG_EVERY.as_secs()
        && LAST_LOG
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(op, %error, "response cache: Redis failed; answering from the integration (logged at most every 10 s, counted in wsgate_cache_errors_total)");
    }
}

/// Shortest interval between two logs of Redis failures.
const LOG_EVERY: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ConnectionMeta;

    fn quote_cache() -> Arc<ResponseCache> {
        let yaml = "listen: 127.0.0.1:0\ncache: {kind: memory}\napi:\n  name: t\n  route_selection_expression: $request.body.action\n  stages: {prod: {}}\n  routes:\n    quote:\n      integration: {type: mock, response: x}\n      route_response: true\n      cache: {ttl: 1h, key: [\"$request.body.symbol\"]}\n";
        let config = Config::from_yaml(yaml).expect("valid");
        ResponseCache::build(&config)
            .expect("builds")
            .expect("configured")
    }

    fn meta() -> ConnectionMeta {
        ConnectionMeta::bare("c")
    }

    fn answer(body: &'static str) -> Answer {
        Ok(IntegrationResponse {
            status: 200,
            headers: Vec::new(),
            body: Some(Bytes::from_static(body.as_bytes())),
            binary: false,
        })
    }

    /// A fill that began before its route was invalidated is never served after it.
    #[tokio::test]
    async fn a_fill_in_flight_during_an_invalidation_is_not_served_after_it() {
        let cache = quote_cache();
        let route = cache.route("prod", "quote").expect("cached");
        let meta = meta();
        let message = r#"{"action":"quote","symbol":"A"}"#;
        let invocation = Invocation {
            meta: &meta,
            route_key: "quote",
            request_id: "r",
            trace: crate::traces::Parent::NONE,
            kind: EventKind::Message {
                body: message,
                raw: message.as_bytes(),
                is_base64: false,
                message_id: "m",
            },
        };
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let slow = route.through(&invocation, async {
            let _ = released.await;
            answer("old")
        });
        let invalidate = async {
            tokio::task::yield_now().await;
            cache
                .invalidate("prod", Scope::Route("quote"))
                .await
                .expect("local");
            let _ = release.send(());
        };
        let (old, ()) = tokio::join!(slow, invalidate);
        assert_eq!(old.expect("answered").body.as_deref(), Some(&b"old"[..]));
        let after = route.through(&invocation, async { answer("new") }).await;
        assert_eq!(after.expect("answered").body.as_deref(), Some(&b"new"[..]));
        let again = route.through(&invocation, async { answer("newer") }).await;
        assert_eq!(
            again.expect("answered").body.as_deref(),
            Some(&b"new"[..]),
            "a hit"
        );
    }

    #[test]
    fn cache_control_is_read_as_a_shared_cache() {
        let ttl = Duration::from_secs(30);
        let read = |v: &[&str]| cache_control_ttl(v.iter().copied(), ttl);
        assert_eq!(read(&[]), Some(ttl));
        assert_eq!(read(&["public"]), Some(ttl));
        assert_eq!(read(&["max-age=5"]), Some(Duration::from_secs(5)));
        assert_eq!(read(&["max-age=500"]), Some(ttl));
        assert_eq!(
            read(&["public, max-age=5, s-maxage=7"]),
            Some(Duration::from_secs(7))
        );
        assert_eq!(read(&["max-age=0"]), None);
        assert_eq!(read(&["max-age=\"9\""]), Some(Duration::from_secs(9)));
        for refused in [
            "no-store",
            "No-Cache",
            "private, max-age=60",
            "max-age=60, no-store",
        ] {
            assert_eq!(read(&[refused]), None, "{refused}");
        }
        assert_eq!(read(&["max-age=5", "no-store"]), None);
    }
}

/// The memory-cache hit path, for the micro-benchmarks; not a stable interface.
pub(crate) mod bench {
    use std::sync::Arc;

    use futures_util::FutureExt;

    use super::{ResponseCache, RouteCache};
    use crate::config::Config;
    use crate::events::{ConnectionMeta, EventKind};
    use crate::integration::{IntegrationResponse, Invocation};

    /// A memory cache with one route (`quote`, keyed by `$request.body.symbol`).
    #[derive(Debug)]
    pub struct MemoryHit {
        route: Arc<RouteCache>,
        meta: ConnectionMeta,
    }

    impl MemoryHit {
        /// The cache, with the answer to `message` stored.
        ///
        /// # Panics
        /// If the built-in configuration is refused (a bug).
        pub fn new(message: &str) -> Self {
            let yaml = "listen: 127.0.0.1:0\ncache: {kind: memory}\napi:\n  name: b\n  route_selection_expression: $request.body.action\n  stages: {prod: {}}\n  routes:\n    quote:\n      integration: {type: mock, response: x}\n      route_response: true\n      cache: {ttl: 1h, key: [\"$request.body.symbol\"]}\n";
            let config = Config::from_yaml(yaml).expect("valid");
            let cache = ResponseCache::build(&config)
                .expect("builds")
                .expect("configured");
            let route = cache.route("prod", "quote").expect("cached route");
            let meta = ConnectionMeta::bare("L0SM9cOFvHcCIhw=");
            let this = Self { route, meta };
            let answer = IntegrationResponse {
                status: 200,
                headers: Vec::new(),
                body: Some(bytes::Bytes::from_static(
                    br#"{"symbol":"AAPL","price":123.45}"#,
                )),
                binary: false,
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            runtime
                .block_on(
                    this.route
                        .through(&this.invocation(message), async { Ok(answer) }),
                )
                .expect("stored");
            this
        }

        fn invocation<'a>(&'a self, message: &'a str) -> Invocation<'a> {
            Invocation {
                meta: &self.meta,
                route_key: "quote",
                request_id: "r",
                trace: crate::traces::Parent::NONE,
                kind: EventKind::Message {
                    body: message,
                    raw: message.as_bytes(),
                    is_base64: false,
                    message_id: "m",
                },
            }
        }

        /// Looks `message` up; answers the cached body's length (0 on a miss).
        pub fn hit(&self, message: &str) -> usize {
            let miss = async { Err(crate::integration::IntegrationError::Malformed("miss")) };
            match self
                .route
                .through(&self.invocation(message), miss)
                .now_or_never()
            {
                Some(Ok(response)) => response.body.map_or(0, |b| b.len()),
                _ => 0,
            }
        }
    }
}
