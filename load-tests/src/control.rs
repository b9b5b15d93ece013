//! The link between a share of a scenario and the orchestrator: samples, barriers and marks.
//!
//! In-process the messages travel over a channel; in a worker process they are JSON lines on
//! stdout, and the orchestrator's "go" answers to barriers arrive as lines on stdin.

use crate::meter::Sample;
use crate::scenario::ShareResult;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// A message from a share to the orchestrator.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMsg {
    /// A timeline sample.
    Sample(Sample),
    /// The share reached barrier `name` with `open` connections and waits for "go".
    Ready {
        /// Barrier name.
        name: String,
        /// Connections open.
        open: i64,
    },
    /// The share passed point `name` (no waiting).
    Mark {
        /// Mark name.
        name: String,
    },
    /// The share finished.
    Done(Box<ShareResult>),
    /// The share failed.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// The share's end of the link.
pub struct Control {
    tx: mpsc::Sender<WorkerMsg>,
    go: mpsc::Receiver<()>,
    barrier_timeout: Duration,
}

impl Control {
    /// A control sending on `tx` and receiving "go" on `go`.
    pub fn new(
        tx: mpsc::Sender<WorkerMsg>,
        go: mpsc::Receiver<()>,
        barrier_timeout: Duration,
    ) -> Self {
        Self {
            tx,
            go,
            barrier_timeout,
        }
    }

    /// Sends a message (dropped if the orchestrator is gone).
    pub async fn send(&self, msg: WorkerMsg) {
        let _ = self.tx.send(msg).await;
    }

    /// A sender for the sampler task.
    pub fn sender(&self) -> mpsc::Sender<WorkerMsg> {
        self.tx.clone()
    }

    /// Reports barrier `name` and waits for every share to reach it.
    pub async fn barrier(&mut self, name: &str, open: i64) -> Result<()> {
        self.send(WorkerMsg::Ready {
            name: name.to_owned(),
            open,
        })
        .await;
        match timeout(self.barrier_timeout, self.go.recv()).await {
            Ok(Some(())) => Ok(()),
            Ok(None) => bail!("orchestrator went away at barrier {name}"),
            Err(_) => bail!(
                "barrier {name} not released within {:?}",
                self.barrier_timeout
            ),
        }
    }

    /// Reports that point `name` was passed.
    pub async fn mark(&self, name: &str) {
        self.send(WorkerMsg::Mark {
            name: name.to_owned(),
        })
        .await;
    }
}
