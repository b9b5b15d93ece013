//! The child side of a multi-process run: read a share on stdin, report on stdout.

use crate::control::{Control, WorkerMsg};
use crate::scenario::{ShareSpec, run_share};
use anyhow::{Context, Result};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Runs one worker: the first stdin line is the [`ShareSpec`]; each later `go` line releases
/// a barrier; stdin closing ends the process. Every message goes to stdout as a JSON line.
pub async fn run_child() -> Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("no share on stdin")??
        .context("stdin closed before the share")?;
    let spec: ShareSpec = serde_json::from_str(&first).context("parsing the share")?;
    let bound = spec.plan.time_bound(Duration::from_secs_f64(
        spec.connect_timeout_s.clamp(0.1, 120.0),
    ));

    let (go_tx, go_rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.trim() == "go" && go_tx.send(()).await.is_err() {
                break;
            }
        }
        // The orchestrator is gone (or done with us): stop at once.
        std::process::exit(0);
    });

    let (tx, mut rx) = mpsc::channel::<WorkerMsg>(1024);
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(m) = rx.recv().await {
            let mut line = serde_json::to_string(&m)?;
            line.push('\n');
            out.write_all(line.as_bytes()).await?;
            out.flush().await?;
        }
        anyhow::Ok(())
    });
    let ctl = Control::new(tx.clone(), go_rx, bound);
    let msg = match run_share(spec, ctl).await {
        Ok(r) => WorkerMsg::Done(Box::new(r)),
        Err(e) => WorkerMsg::Failed {
            error: format!("{e:#}"),
        },
    };
    tx.send(msg).await.ok();
    drop(tx);
    writer.await??;
    Ok(())
}
