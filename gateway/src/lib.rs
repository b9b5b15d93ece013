//! wsgate: a WebSocket-first realtime API gateway, wire-compatible with Amazon API Gateway
//! WebSocket APIs.
//!
//! # Layout
//! - [`config`]: the YAML + environment configuration, validated at startup.
//! - [`server`]: [`Gateway::start`] on bound listeners, the accept loops, and staged shutdown.
//! - [`ws`]: the three paths of a connection: connect (handshake checks, `$connect` before the
//!   101), the session loop (frames, pings, timers, close codes) and the inbound dispatcher
//!   (route selection, integration, route response).
//! - [`auth`]: who may connect: origin allow-list, per-address limits, `jwt` and `request`
//!   authorizers, API keys.
//! - [`routing`]: the route selection expression grammar.
//! - [`integration`]: the backends (`aws_proxy`, `http_proxy`, `mock`).
//! - [`events`]: the Lambda proxy event JSON.
//! - [`callback`]: `@connections` (POST/GET/DELETE) with bearer or SigV4 authentication.
//! - [`groups`]: named groups of connections: membership, one call to reach every member on
//!   every node, broadcasts, counts and listings, presence events.
//! - [`registry`]: connections held by this node, with their bounded outboxes.
//! - [`cluster`]: several nodes as one gateway on Redis: cross-node callbacks over a bus,
//!   node leases, the reaper of dead nodes, recovery after Redis outages.
//! - [`store`]: the gateway's wrapper of the connection store (metrics, cluster fence).
//! - [`throttle`]: token buckets per gateway, route, connection, new connections and callback
//!   requests, local or shared by the cluster through Redis.
//! - [`error`]: every client-visible failure, mapped to HTTP statuses and close codes in one place.
//! - [`ops`], [`telemetry`]: health, readiness, metrics and logs.
//! - [`cli`]: the `wsgate` command line (the binary only calls it).

pub mod auth;
pub mod bus;
pub mod callback;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod error;
pub mod events;
pub mod grammar;
pub mod groups;
pub mod ids;
pub mod integration;
pub mod ops;
pub mod proxy_protocol;
pub mod raw_head;
pub mod registry;
pub mod routing;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod throttle;
pub mod tls;
pub mod ws;

pub use config::Config;
pub use server::{Gateway, Listeners, StartError};
