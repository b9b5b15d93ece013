//! The offset ledger of `recovery`: for one client and one group, which history offsets arrived
//! (a bitmap from the first offset the client saw), so that at the end every offset from that
//! first one to the last post acknowledged must have arrived exactly once and in order.
//!
//! An arrival is `fresh` (first time, above everything seen), `out_of_order` (first time, but a
//! higher offset came before it, or it lies before the first offset), or a `duplicate`. Offsets
//! more than `cap` past the first are counted as `beyond_cap` and not booked (bounded memory).

use serde::{Deserialize, Serialize};

/// What one arrival was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Seen for the first time, in order.
    Fresh,
    /// Seen for the first time after a higher offset (or before the first offset).
    OutOfOrder,
    /// Seen before.
    Duplicate,
    /// Too far past the first offset to be booked.
    BeyondCap,
}

/// The book of one client and group.
#[derive(Clone, Debug)]
pub struct OffsetBook {
    cap: u64,
    first: Option<u64>,
    max_seen: u64,
    bits: Vec<u64>,
    epoch: Option<String>,
    /// Totals of this book.
    pub tally: Tally,
}

/// Counts of one book, or summed over many.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Distinct offsets received.
    pub received: u64,
    /// Offsets received again.
    pub duplicates: u64,
    /// Offsets received after a higher one.
    pub out_of_order: u64,
    /// Offsets from the first one seen to the last acknowledged post that never arrived.
    pub missing: u64,
    /// Envelopes whose epoch differed from the first one seen.
    pub epoch_changes: u64,
    /// Offsets too far past the first to be booked.
    pub beyond_cap: u64,
}

impl Tally {
    /// Adds `other` to this tally.
    pub fn add(&mut self, other: &Self) {
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.missing += other.missing;
        self.epoch_changes += other.epoch_changes;
        self.beyond_cap += other.beyond_cap;
    }

    /// Nothing wrong: no duplicate, nothing out of order or missing, one epoch.
    pub fn exact(&self) -> bool {
        self.duplicates == 0
            && self.out_of_order == 0
            && self.missing == 0
            && self.epoch_changes == 0
            && self.beyond_cap == 0
    }
}

impl OffsetBook {
    /// An empty book booking at most `cap` offsets past the first.
    pub fn new(cap: u64) -> Self {
        Self {
            cap,
            first: None,
            max_seen: 0,
            bits: Vec::new(),
            epoch: None,
            tally: Tally::default(),
        }
    }

    /// The highest offset seen and its epoch (the position to recover from).
    pub fn position(&self) -> Option<(&str, u64)> {
        Some((self.epoch.as_deref()?, self.first.map(|_| self.max_seen)?))
    }

    /// The highest offset seen (0 before the first).
    pub fn max_seen(&self) -> u64 {
        self.max_seen
    }

    /// Books the arrival of `offset` in `epoch`.
    pub fn arrive(&mut self, epoch: &str, offset: u64) -> Arrival {
        match &self.epoch {
            None => self.epoch = Some(epoch.to_owned()),
            Some(e) if e != epoch => self.tally.epoch_changes += 1,
            Some(_) => {}
        }
        let first = *self.first.get_or_insert(offset);
        if offset < first {
            self.tally.out_of_order += 1;
            self.tally.received += 1;
            return Arrival::OutOfOrder;
        }
        let i = offset - first;
        if i >= self.cap {
            self.tally.beyond_cap += 1;
            return Arrival::BeyondCap;
        }
        let (word, bit) = (usize::try_from(i / 64).unwrap_or(usize::MAX), i % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1 << bit) != 0 {
            self.tally.duplicates += 1;
            return Arrival::Duplicate;
        }
        self.bits[word] |= 1 << bit;
        self.tally.received += 1;
        if offset < self.max_seen {
            self.tally.out_of_order += 1;
            return Arrival::OutOfOrder;
        }
        self.max_seen = offset;
        Arrival::Fresh
    }

    /// Closes the book against the last acknowledged offset: counts the missing offsets from
    /// the first one seen up to `last_acked` (none when nothing arrived) and returns the tally.
    pub fn close(&mut self, last_acked: u64) -> Tally {
        if let Some(first) = self.first {
            let end = last_acked.min(first.saturating_add(self.cap).saturating_sub(1));
            let mut missing = 0;
            let mut o = first;
            while o <= end {
                let i = o - first;
                let word = self
                    .bits
                    .get(usize::try_from(i / 64).unwrap_or(usize::MAX))
                    .copied()
                    .unwrap_or(0);
                if word & (1 << (i % 64)) == 0 {
                    missing += 1;
                }
                o += 1;
            }
            self.tally.missing = missing;
        }
        self.tally.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn books_every_kind_of_arrival() {
        let mut b = OffsetBook::new(1000);
        assert_eq!(b.position(), None);
        assert_eq!(b.arrive("e", 5), Arrival::Fresh);
        assert_eq!(b.arrive("e", 6), Arrival::Fresh);
        assert_eq!(b.arrive("e", 6), Arrival::Duplicate);
        assert_eq!(b.arrive("e", 9), Arrival::Fresh);
        assert_eq!(b.arrive("e", 8), Arrival::OutOfOrder);
        assert_eq!(b.arrive("e", 4), Arrival::OutOfOrder);
        assert_eq!(b.arrive("f", 10), Arrival::Fresh);
        assert_eq!(b.arrive("e", 2000), Arrival::BeyondCap);
        assert_eq!(b.position(), Some(("e", 10)));
        // 7, 11 and 12 are missing up to 12.
        let t = b.close(12);
        assert_eq!(
            t,
            Tally {
                received: 6,
                duplicates: 1,
                out_of_order: 2,
                missing: 3,
                epoch_changes: 1,
                beyond_cap: 1,
            }
        );
        assert!(!t.exact());
    }

    #[test]
    fn an_exact_run_is_exact() {
        let mut b = OffsetBook::new(100);
        for o in 40..=140 {
            b.arrive("e", o);
        }
        let t = b.close(140);
        assert_eq!(t.beyond_cap, 1);
        let mut b = OffsetBook::new(1000);
        for o in 40..=140 {
            assert_eq!(b.arrive("e", o), Arrival::Fresh);
        }
        assert!(b.close(140).exact());
        assert!(OffsetBook::new(10).close(5).exact());
    }
}
