//! The opt-in file watch (`reload.watch`): the configuration file's directory is watched (with
//! the `notify` crate: inotify, kqueue or FSEvents), so a file replaced by an editor's rename
//! or a Kubernetes ConfigMap's `..data` link swap is seen as well as one written in place. After
//! `reload.debounce` without further events the file is read; when its bytes differ from those
//! last seen it is reloaded as by `SIGHUP` (a refusal is logged once per content). Events only
//! wake the task up (a [`Notify`], which holds at most one): nothing queues however many arrive.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Reloader;

/// Starts watching `path`; the task ends when `stop` is cancelled.
///
/// # Errors
/// When the directory cannot be watched (the gateway serves on without the watch).
pub(crate) fn spawn(
    reloader: Arc<Reloader>,
    path: PathBuf,
    debounce: Duration,
    stop: CancellationToken,
) -> notify::Result<tokio::task::JoinHandle<()>> {
    let changed = Arc::new(Notify::new());
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(ToOwned::to_owned);
    let signal = Arc::clone(&changed);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        let ours = event.paths.iter().any(|p| {
            let file = p.file_name();
            file == name.as_deref() || file.is_some_and(|f| f.to_string_lossy().starts_with(".."))
        });
        if ours {
            signal.notify_one();
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    // Read now, before any change the caller makes once this returns.
    let mut last = std::fs::read(&path).ok().map(|bytes| digest(&bytes));
    tracing::info!(file = %path.display(), ?debounce, "watching the configuration file");
    Ok(tokio::spawn(async move {
        let _watching = watcher;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = changed.notified() => {}
            }
            // Quiet for `debounce` first: editors write in several steps.
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = changed.notified() => {}
                    () = tokio::time::sleep(debounce) => break,
                }
            }
            let now = fingerprint(&path).await;
            if now.is_none() || now == last {
                continue;
            }
            last = now;
            // Logged and counted by the reloader either way.
            let _ = reloader.reload().await;
        }
    }))
}

/// SHA-256 of the file's bytes (`None`: unreadable right now, e.g. between a delete and a
/// create).
async fn fingerprint(path: &Path) -> Option<[u8; 32]> {
    let bytes = tokio::fs::read(path).await.ok()?;
    Some(digest(&bytes))
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
