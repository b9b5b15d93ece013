//! The delivery ledger of `faults` and `soak`: every push (and every upstream message) carries a
//! unique id; the sender books it with the connection it was addressed to and whether the
//! gateway acknowledged it, the receiving client books each arrival, and the balance says what
//! was acknowledged and lost, delivered without an acknowledgement, or delivered twice.
//!
//! A loss is also split by the fate of the connection it was addressed to: a frame written to
//! a connection that then died (its node killed, its TCP reset) can be lost in kernel buffers
//! after the gateway acknowledged it; a loss on a connection that stayed open is a bug.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// What happened to one id.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// The connection (serial number) it was addressed to.
    conn: u64,
    /// The gateway acknowledged it (push: 2xx; upstream: the message was sent).
    acked: bool,
    /// Arrivals at the client.
    arrivals: u32,
    /// Unix ms when it was booked.
    t_ms: u64,
}

#[derive(Default)]
struct Book {
    entries: HashMap<u64, Entry>,
    dropped: HashSet<u64>,
    unknown_arrivals: u64,
}

/// A bounded ledger of ids (at most `cap` ids are booked; later ones are counted as refused).
pub struct Ledger {
    book: Mutex<Book>,
    cap: usize,
}

/// The balance of a ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Ids booked (sent).
    pub sent: u64,
    /// Acknowledged and delivered.
    pub acked_and_delivered: u64,
    /// Acknowledged and never delivered.
    pub acked_but_lost: u64,
    /// Of `acked_but_lost`: the connection it was addressed to died before the end.
    pub lost_on_dropped_conn: u64,
    /// Of `acked_but_lost`: the connection stayed open to the end.
    pub lost_on_live_conn: u64,
    /// Delivered although the acknowledgement failed (a timeout or reset after delivery).
    pub delivered_without_ack: u64,
    /// Not acknowledged, not delivered (the client saw the failure).
    pub failed_not_delivered: u64,
    /// Extra arrivals of an id already delivered.
    pub duplicates: u64,
    /// Arrivals of ids never booked.
    pub unknown_arrivals: u64,
    /// Up to 10 of the ids lost on a live connection, with when they were sent (unix ms), to
    /// look for in the gateways' logs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost_on_live_samples: Vec<(u64, u64)>,
}

impl Ledger {
    /// An empty ledger holding at most `cap` ids.
    pub fn new(cap: usize) -> Self {
        Self {
            book: Mutex::new(Book::default()),
            cap,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Books `id` as sent to connection `conn`; false when the ledger is full (do not send).
    pub fn book(&self, id: u64, conn: u64) -> bool {
        let mut b = self.lock();
        if b.entries.len() >= self.cap {
            return false;
        }
        b.entries.insert(
            id,
            Entry {
                conn,
                t_ms: crate::clock::wall_ms(),
                ..Entry::default()
            },
        );
        true
    }

    /// The gateway acknowledged `id`.
    pub fn ack(&self, id: u64) {
        if let Some(e) = self.lock().entries.get_mut(&id) {
            e.acked = true;
        }
    }

    /// `id` arrived at a client; returns false for a duplicate or an unknown id.
    pub fn arrive(&self, id: u64) -> bool {
        let mut b = self.lock();
        match b.entries.get_mut(&id) {
            Some(e) => {
                e.arrivals += 1;
                e.arrivals == 1
            }
            None => {
                b.unknown_arrivals += 1;
                false
            }
        }
    }

    /// Connection `conn` ended before the end of the run.
    pub fn dropped(&self, conn: u64) {
        self.lock().dropped.insert(conn);
    }

    /// Ids not delivered yet on connections still open (for the bounded drain at the end):
    /// the acknowledged ones, or with `unacked` also those whose acknowledgement is still
    /// pending (a message being sent when the load stopped).
    pub fn outstanding(&self, unacked: bool) -> u64 {
        let b = self.lock();
        let n = b
            .entries
            .values()
            .filter(|e| (e.acked || unacked) && e.arrivals == 0 && !b.dropped.contains(&e.conn))
            .count();
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// The balance so far.
    pub fn balance(&self) -> Balance {
        let b = self.lock();
        let mut out = Balance {
            unknown_arrivals: b.unknown_arrivals,
            ..Balance::default()
        };
        for (&id, e) in &b.entries {
            out.sent += 1;
            out.duplicates += u64::from(e.arrivals.saturating_sub(1));
            match (e.acked, e.arrivals > 0) {
                (true, true) => out.acked_and_delivered += 1,
                (true, false) => {
                    out.acked_but_lost += 1;
                    if b.dropped.contains(&e.conn) {
                        out.lost_on_dropped_conn += 1;
                    } else {
                        out.lost_on_live_conn += 1;
                        if out.lost_on_live_samples.len() < 10 {
                            out.lost_on_live_samples.push((id, e.t_ms));
                        }
                    }
                }
                (false, true) => out.delivered_without_ack += 1,
                (false, false) => out.failed_not_delivered += 1,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balances_every_outcome() {
        let l = Ledger::new(10);
        for id in 1..=6 {
            assert!(l.book(id, id % 2));
        }
        // 1: acked and delivered twice; 2: acked, lost on a dropped conn (0);
        // 3: acked, lost on a live conn (1); 4: delivered without ack; 5: failed; 6: acked ok.
        for id in [1, 2, 3, 6] {
            l.ack(id);
        }
        assert!(l.arrive(1));
        assert!(!l.arrive(1));
        assert!(l.arrive(4));
        assert!(l.arrive(6));
        assert!(!l.arrive(99));
        l.dropped(0);
        assert_eq!(l.outstanding(false), 1);
        assert_eq!(l.outstanding(true), 2);
        let mut b = l.balance();
        assert_eq!(b.lost_on_live_samples.len(), 1);
        assert_eq!(b.lost_on_live_samples[0].0, 3);
        b.lost_on_live_samples.clear();
        assert_eq!(
            b,
            Balance {
                sent: 6,
                acked_and_delivered: 2,
                acked_but_lost: 2,
                lost_on_dropped_conn: 1,
                lost_on_live_conn: 1,
                delivered_without_ack: 1,
                failed_not_delivered: 1,
                duplicates: 1,
                unknown_arrivals: 1,
                lost_on_live_samples: Vec::new(),
            }
        );
    }

    #[test]
    fn refuses_beyond_its_cap() {
        let l = Ledger::new(2);
        assert!(l.book(1, 0));
        assert!(l.book(2, 0));
        assert!(!l.book(3, 0));
        assert_eq!(l.balance().sent, 2);
    }
}
