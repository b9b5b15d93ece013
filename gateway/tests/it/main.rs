//! Integration tests: the real gateway on port 0, a real HTTP backend, real WebSocket clients.

mod autobahn;
mod binary;
mod callback;
mod connect;
mod lifecycle;
mod messages;
mod support;
mod throttle;
