//! Integration tests: the real gateway on port 0, a real HTTP backend, real WebSocket clients.

mod callback;
mod cluster;
mod cluster_measure;
mod cluster_nodes;
mod cluster_redis;
mod connect;
mod lifecycle;
mod messages;
mod support;
