//! `wsgate-load`: load scenarios for WebSocket gateways, a raw baseline server and a report writer.
//!
//! The binary (`src/main.rs`) is a thin command-line layer over [`run::execute`]; the
//! integration tests drive the same entry points in-process.

pub mod backend;
pub mod cli;
pub mod client;
pub mod clock;
pub mod control;
pub mod faultproxy;
pub mod hist;
pub mod httpc;
pub mod httpd;
pub mod meter;
pub mod net;
pub mod orchestrate;
pub mod procfs;
pub mod progress;
pub mod raw;
pub mod recovery_cmd;
pub mod redisinfo;
pub mod report;
pub mod run;
pub mod scenario;
pub mod targets;
pub mod worker;
