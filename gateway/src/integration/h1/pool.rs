//! Idle keep-alive connections of one backend: at most `max_idle`, most recently used first,
//! none kept past `idle_timeout`, and none handed out after the backend closed or wrote to it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::conn::Conn;

/// One idle connection and when it went idle.
#[derive(Debug)]
struct Idle {
    conn: Conn,
    since: Instant,
}

/// The idle connections of one backend (host:port or socket path).
#[derive(Debug)]
pub(crate) struct Pool {
    /// Oldest first; taken from the back.
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub(crate) fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
        }
    }

    /// The most recently used idle connection that is still open and quiet, if any. Expired
    /// and stale ones met on the way are closed.
    pub(crate) fn checkout(&self) -> Option<Conn> {
        loop {
            let idle = {
                let mut idle = self.lock();
                let last = idle.pop()?;
                if last.since.elapsed() >= self.idle_timeout {
                    // Everything older has expired as well.
                    let expired = std::mem::take(&mut *idle);
                    drop(idle);
                    drop(expired);
                    return None;
                }
                last
            };
            if idle.conn.is_reusable() {
                return Some(idle.conn);
            }
        }
    }

    /// Returns a connection after a complete exchange; closed instead when the pool is full.
    pub(crate) fn checkin(&self, conn: Conn) {
        let now = Instant::now();
        let mut idle = self.lock();
        let expired = self.expired(&idle, now);
        let dropped: Vec<Idle> = idle.drain(..expired).collect();
        if idle.len() < self.max_idle {
            idle.push(Idle { conn, since: now });
        }
        drop(idle);
        drop(dropped);
    }

    /// Closes the connections idle for `idle_timeout` or longer.
    pub(crate) fn sweep(&self) {
        let mut idle = self.lock();
        let expired = self.expired(&idle, Instant::now());
        let dropped: Vec<Idle> = idle.drain(..expired).collect();
        drop(idle);
        drop(dropped);
    }

    /// How many of the oldest entries have expired at `now`.
    fn expired(&self, idle: &[Idle], now: Instant) -> usize {
        idle.partition_point(|i| now.saturating_duration_since(i.since) >= self.idle_timeout)
    }

    /// Idle connections held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // A panic while holding the lock cannot leave the list inconsistent (push/pop/drain).
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
