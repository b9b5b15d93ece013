//! Integration tests: the real gateway on port 0, a real HTTP backend, real WebSocket clients.

mod api_keys;
mod autobahn;
mod aws_wire;
mod binary;
mod callback;
mod callback_hardening;
mod cluster;
mod cluster_measure;
mod cluster_nodes;
mod cluster_owed;
mod cluster_redis;
mod connect;
mod faults;
mod groups;
mod groups_cluster;
mod hardening;
mod jwks;
mod jwt;
mod lifecycle;
mod messages;
mod request_authorizer;
mod response_caps;
mod support;
mod throttle;
mod tls;
mod usage_plans;
