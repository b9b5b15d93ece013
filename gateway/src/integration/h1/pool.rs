//! The connections of one backend: at most `max_connections` open at once (idle or carrying a
//! call; a call that finds none idle and no room waits for one within its own timeout), of
//! those at most `max_idle` idle, most recently used first, none kept past `idle_timeout`, and
//! none handed out after the backend closed or wrote to it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::conn::Conn;

/// One idle connection and when it went idle.
#[derive(Debug)]
struct Idle {
    conn: Conn,
    since: Instant,
}

/// The connections of one backend (host:port or socket path).
#[derive(Debug)]
pub(crate) struct Pool {
    /// Oldest first; taken from the back.
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
    /// Connections open at once at most (the permits of `slots`).
    #[cfg(test)]
    max_connections: usize,
    /// One permit per open connection, idle or in use (held by the [`Conn`]).
    slots: Arc<Semaphore>,
    /// Told when a connection goes back idle, for a call waiting for room.
    returned: Notify,
}

/// What a call gets from the pool.
pub(crate) enum Checkout {
    /// An idle connection, open and quiet.
    Idle(Conn),
    /// Room for a new connection: open one and let it hold this.
    Room(OwnedSemaphorePermit),
}

impl Pool {
    pub(crate) fn new(max_connections: usize, max_idle: usize, idle_timeout: Duration) -> Self {
        let max_connections = max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.min(max_connections),
            idle_timeout,
            #[cfg(test)]
            max_connections,
            slots: Arc::new(Semaphore::new(max_connections)),
            returned: Notify::new(),
        }
    }

    /// An idle connection when there is one, else room for a new one; while every connection
    /// is open and busy, waits until one goes back idle or closes. Waits as long as the caller
    /// does (the call's timeout bounds it).
    pub(crate) async fn checkout(&self) -> Checkout {
        loop {
            // Registered before looking, so a connection returned in between is not missed.
            let returned = self.returned.notified();
            if let Some(conn) = self.take_idle() {
                return Checkout::Idle(conn);
            }
            tokio::select! {
                biased;
                slot = Arc::clone(&self.slots).acquire_owned() => {
                    // The semaphore is never closed.
                    if let Ok(slot) = slot {
                        return Checkout::Room(slot);
                    }
                }
                () = returned => {}
            }
        }
    }

    /// The most recently used idle connection that is still open and quiet, if any. Expired
    /// and stale ones met on the way are closed.
    fn take_idle(&self) -> Option<Conn> {
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
        let kept = idle.len() < self.max_idle;
        if kept {
            idle.push(Idle { conn, since: now });
        }
        drop(idle);
        drop(dropped);
        if kept {
            self.returned.notify_one();
        }
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

    /// Connections open now (idle or carrying a call).
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.max_connections - self.slots.available_permits()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // A panic while holding the lock cannot leave the list inconsistent (push/pop/drain).
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
