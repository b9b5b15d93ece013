//! wsgate: a WebSocket-first realtime API gateway, wire-compatible with Amazon API Gateway
//! WebSocket APIs.
//!
//! # Public API
//! [`Gateway::start`] serves a [`Config`] on bound [`Listeners`] until [`Gateway::shutdown`];
//! [`Gateway::reload`] swaps in the API definition of its re-read configuration file;
//! [`config`] holds the configuration as plain data (YAML + `WSGATE_*` environment), validated
//! on its own; [`init_logging`] sets up logs as the binary does; [`cli`] is the `wsgate`
//! command line. The store traits ([`ConnectionStore`], [`GroupStore`]) come from
//! `wsgate-connection-store`. Everything else is private to the crate.
//!
//! # Layout (dependencies point down; no import cycles between these modules)
//! - `server`: builds every runtime object from the configuration, staged shutdown; `accept`:
//!   the listening sockets and their accept loops (PROXY header, TLS, HTTP/1 with upgrades),
//!   moved to a new address by a reload.
//! - `callback` (`@connections`, `@groups`, `@broadcast`, bearer or SigV4 callers), `cluster`
//!   (node leases, the reaper, cross-node forwarding, the inbox), `ops` (health, readiness,
//!   metrics), `admin` (the admin page and its JSON API, behind the callback API's
//!   authentication), `management` (the apigatewayv2 management API over `rollout`, served
//!   with the admin API).
//! - `ws`: the connection lifecycle, one owner task per connection (handshake checks,
//!   `$connect` before the 101, the session loop, inbound dispatch, the end and its
//!   `$disconnect`), and `ws::connections`, the only way the layers above reach a connection:
//!   push, close, membership, joined, info.
//! - `consumer`: broker consumers (NATS, JetStream, RabbitMQ, Redis Streams) whose messages
//!   are delivered to connections, groups and stages as the callback API delivers them.
//! - `cache`: response caching of two-way routes (memory or Redis), keyed per route.
//! - `reload`: re-reading the configuration file (`SIGHUP`, `wsgate reload`, the admin API,
//!   the file watch), refusing keys fixed at start, swapping the definition and certificates.
//! - `state`: what the lifecycle shares (registry, store, groups, budgets, signals, the API
//!   definition in force, and the addresses the listeners are bound to).
//! - `deployment`: the API definition (routes, checks, throttling) built from one
//!   configuration, swappable (arc-swap), and its deployment id.
//! - `rollout`: deployments cluster-wide: the deployment store's stage pointers (with canaries),
//!   followed by every node; apply, rollback, promote, drop; `wsgate apply` and friends.
//! - `acks`: acknowledged client messages (a route's `ack:`): the client's message id, its
//!   scope, the claim each copy goes through in the store's seen ids, the ack/nack frames.
//! - `groups` (membership, fan-out, presence), `auth` (connect-time checks, `AWS_IAM` among
//!   them), `iam` (SigV4 verification, the configured principals and their IAM policies, used
//!   by `callback` and `auth`), `throttle`, `integration` (`aws_proxy`, `http_proxy`, `http`,
//!   `mock`; Lambda functions by ARN; HTTP/1.1 and HTTP/2), `validate` (request models: JSON
//!   Schema), `registry` (connections of this node and
//!   their bounded outboxes), `store` (metrics and the cluster fence around the store),
//!   `bus` (the node-to-node bus and group channels on Redis pub/sub), `tls` (the acceptor,
//!   certificates by SNI), `domains` (custom domains: `Host` and mapping path → `/{stage}/…`).
//! - `sdk`: typed client packages generated from the configuration (`wsgate sdk`).
//! - Leaves: `config`, `grammar` (value grammars the config checks and the runtime reads),
//!   `routing`, `transform` (mapping templates by `wsgate-vtl`, integration responses, request
//!   parameters, content handling), `activity` (this gateway's own counters, integration
//!   latency and recent errors, for the admin page), `events` (Lambda proxy event JSON), `error` (every client-visible failure,
//!   mapped to HTTP statuses and close codes in one place), `telemetry`, `ids`, `raw_head`,
//!   `proxy_protocol`, `systemd` (readiness, watchdog and stopping notifications for
//!   `Type=notify` units, used by `cli`).

mod accept;
mod access_log;
mod acks;
mod activity;
mod admin;
mod auth;
mod bus;
mod cache;
mod callback;
pub mod cli;
mod cluster;
pub mod config;
mod consumer;
mod deployment;
mod domains;
mod error;
mod events;
mod grammar;
mod groups;
mod iam;
mod ids;
mod integration;
mod management;
mod ops;
mod proxy_protocol;
mod raw_head;
mod registry;
mod reload;
mod rollout;
mod routing;
mod sdk;
mod server;
pub mod spec;
mod state;
mod store;
mod systemd;
mod telemetry;
mod throttle;
mod tls;
mod traces;
mod transform;
mod validate;
mod ws;

pub use config::Config;
pub use deployment::Deployment;
pub use error::ReloadError;
pub use ids::connection_id;
pub use server::{Gateway, Listeners, ReloadHandle, StartError};
pub use telemetry::init_logging;
pub use wsgate_connection_store::{ConnectionStore, GroupStore, StoreError};

/// Entry points into the parsers that take outside input, for the fuzz targets in `fuzz/` (the
/// `fuzzing` feature, off by default); not a stable interface.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

/// What the micro-benchmarks measure (the MESSAGE event and the Lambda proxy answer); not a
/// stable interface.
#[doc(hidden)]
pub mod bench {
    pub use crate::cache::bench::MemoryHit as CacheMemoryHit;
    pub use crate::events::{ConnectionMeta, EventKind, lambda_event};
    pub use crate::integration::{AwsRequest, MessageMapping, parse_proxy_response};
    pub use crate::validate::bench::RequestModels;
}
