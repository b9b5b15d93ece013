//! Throttling: token buckets at every level Amazon API Gateway has them, each level only
//! tightening the one above.

pub mod clock;
pub mod config;
pub mod gcra;
pub mod lease;
pub mod redis_gcra;
pub mod shared;

pub use self::config::{
    ClusterThrottling, OnRedisError, RateLimit, RouteThrottle, Scope, StageThrottling,
    ThrottlingConfig,
};
