//! [`DeploymentStore`] on Redis.
//!
//! # Keys (prefix `P`), all hash-tagged `{P}` as the membership keys (one slot: the pointer script touches two
//! of them, and all of them are small)
//!
//! - `{P}:deploy:d:{id}`: string, the deployment's JSON (identity and definition). Written with
//!   `NX`: a deployment never changes.
//! - `{P}:deploy:info`: hash, id → the identity's JSON (what listings read, without the
//!   definitions).
//! - `{P}:deploy:version`: integer, the pointers' version (absent: 0, nothing deployed).
//! - `{P}:deploy:stages`: string, the JSON of every stage's pointer.
//! - `{P}:deploy:nodes`: hash, node id → its heartbeat's JSON; entries older than the caller's
//!   horizon are deleted by `nodes`.
//!
//! Setting the pointers is one script: compare the version, write the stages, increment.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;

use super::{RedisStore, err};
use crate::StoreError;
use crate::deployments::{
    DeploymentInfo, DeploymentStore, NodeServing, Pointers, StagePointer, StoredDeployment,
};

/// `KEYS[1]` version, `KEYS[2]` stages; `ARGV[1]` expected version, `ARGV[2]` the stages'
/// JSON. Answers the new version, or -1 when the version moved.
const SET_POINTERS: &str = "local v = tonumber(redis.call('GET', KEYS[1]) or '0') \
                            if v ~= tonumber(ARGV[1]) then return -1 end \
                            redis.call('SET', KEYS[2], ARGV[2]) \
                            return redis.call('INCR', KEYS[1])";

fn malformed(op: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
    move |_| StoreError::Malformed { op }
}

fn encode(op: &'static str, value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|_| StoreError::Malformed { op })
}

impl RedisStore {
    fn deployment_key(&self, id: &str) -> String {
        self.keys.deploy(&format!("d:{id}"))
    }
}

#[async_trait]
impl DeploymentStore for RedisStore {
    async fn put_deployment(
        &self,
        deployment: &StoredDeployment,
        keep: usize,
        protect: &BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let op = "put_deployment";
        let value = encode(op, deployment)?;
        let info = encode(op, &deployment.info)?;
        let mut conn = self.conn.clone();
        let id = deployment.info.id.as_str();
        self.timed(op, async {
            redis::cmd("SET")
                .arg(self.deployment_key(id))
                .arg(value)
                .arg("NX")
                .exec_async(&mut conn)
                .await
                .map_err(err(op))?;
            redis::cmd("HSETNX")
                .arg(self.keys.deploy("info"))
                .arg(id)
                .arg(info)
                .exec_async(&mut conn)
                .await
                .map_err(err(op))
        })
        .await?;
        let mut infos = self.deployments().await?;
        infos.retain(|old| old.id != id);
        for old in infos.iter().skip(keep.max(1).saturating_sub(1)) {
            if protect.contains(&old.id) {
                continue;
            }
            self.timed(op, async {
                redis::cmd("HDEL")
                    .arg(self.keys.deploy("info"))
                    .arg(&old.id)
                    .exec_async(&mut conn)
                    .await
                    .map_err(err(op))?;
                redis::cmd("DEL")
                    .arg(self.deployment_key(&old.id))
                    .exec_async(&mut conn)
                    .await
                    .map_err(err(op))
            })
            .await?;
        }
        Ok(())
    }

    async fn deployment(&self, id: &str) -> Result<Option<StoredDeployment>, StoreError> {
        let op = "deployment";
        let mut conn = self.conn.clone();
        let raw: Option<String> = self
            .timed(op, async {
                redis::cmd("GET")
                    .arg(self.deployment_key(id))
                    .query_async(&mut conn)
                    .await
                    .map_err(err(op))
            })
            .await?;
        raw.map(|raw| serde_json::from_str(&raw).map_err(malformed(op)))
            .transpose()
    }

    async fn deployments(&self) -> Result<Vec<DeploymentInfo>, StoreError> {
        let op = "deployments";
        let mut conn = self.conn.clone();
        let raw: BTreeMap<String, String> = self
            .timed(op, async {
                redis::cmd("HGETALL")
                    .arg(self.keys.deploy("info"))
                    .query_async(&mut conn)
                    .await
                    .map_err(err(op))
            })
            .await?;
        let mut infos = raw
            .values()
            .map(|v| serde_json::from_str::<DeploymentInfo>(v).map_err(malformed(op)))
            .collect::<Result<Vec<_>, _>>()?;
        infos.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
        Ok(infos)
    }

    async fn pointers(&self) -> Result<Pointers, StoreError> {
        let op = "pointers";
        let mut conn = self.conn.clone();
        let (version, stages): (Option<u64>, Option<String>) = self
            .timed(op, async {
                redis::cmd("MGET")
                    .arg(self.keys.deploy("version"))
                    .arg(self.keys.deploy("stages"))
                    .query_async(&mut conn)
                    .await
                    .map_err(err(op))
            })
            .await?;
        let stages = match stages {
            Some(raw) => serde_json::from_str(&raw).map_err(malformed(op))?,
            None => BTreeMap::new(),
        };
        Ok(Pointers {
            version: version.unwrap_or(0),
            stages,
        })
    }

    async fn pointers_version(&self) -> Result<u64, StoreError> {
        let op = "pointers_version";
        let mut conn = self.conn.clone();
        let version: Option<u64> = self
            .timed(op, async {
                redis::cmd("GET")
                    .arg(self.keys.deploy("version"))
                    .query_async(&mut conn)
                    .await
                    .map_err(err(op))
            })
            .await?;
        Ok(version.unwrap_or(0))
    }

    async fn set_pointers(
        &self,
        expected: u64,
        stages: &BTreeMap<String, StagePointer>,
    ) -> Result<Option<u64>, StoreError> {
        let op = "set_pointers";
        let value = encode(op, stages)?;
        let mut conn = self.conn.clone();
        let answer: i64 = self
            .timed(op, async {
                redis::cmd("EVAL")
                    .arg(SET_POINTERS)
                    .arg(2)
                    .arg(self.keys.deploy("version"))
                    .arg(self.keys.deploy("stages"))
                    .arg(expected)
                    .arg(value)
                    .query_async(&mut conn)
                    .await
                    .map_err(err(op))
            })
            .await?;
        Ok(u64::try_from(answer).ok())
    }

    async fn heartbeat(&self, serving: &NodeServing) -> Result<(), StoreError> {
        let op = "deployment_heartbeat";
        let value = encode(op, serving)?;
        let mut conn = self.conn.clone();
        self.timed(op, async {
            redis::cmd("HSET")
                .arg(self.keys.deploy("nodes"))
                .arg(&serving.node_id)
                .arg(value)
                .exec_async(&mut conn)
                .await
                .map_err(err(op))
        })
        .await
    }

    async fn nodes(&self, since_ms: i64) -> Result<Vec<NodeServing>, StoreError> {
        let op = "deployment_nodes";
        let mut conn = self.conn.clone();
        let raw: BTreeMap<String, String> = self
            .timed(op, async {
                redis::cmd("HGETALL")
                    .arg(self.keys.deploy("nodes"))
                    .query_async(&mut conn)
                    .await
                    .map_err(err(op))
            })
            .await?;
        let mut nodes = Vec::new();
        let mut stale = Vec::new();
        for (node, value) in raw {
            match serde_json::from_str::<NodeServing>(&value) {
                Ok(serving) if serving.at_ms >= since_ms => nodes.push(serving),
                _ => stale.push(node),
            }
        }
        if !stale.is_empty() {
            self.timed(op, async {
                redis::cmd("HDEL")
                    .arg(self.keys.deploy("nodes"))
                    .arg(&stale)
                    .exec_async(&mut conn)
                    .await
                    .map_err(err(op))
            })
            .await?;
        }
        Ok(nodes)
    }
}
