//! How many lanes of a pooled replay may be admitted at once: counted by the reader as
//! it admits them and by the lanes as they end.
//!
//! Two kinds, bounded apart. A lane with a queue (a unit of work still open when handed
//! over: a transaction, a pinned connection) costs the reader a look whenever it has
//! overflow, so few may wait: twice the pool. A whole unit (its steps in hand; one per
//! autocommit statement) costs only its steps, so many may: enough that the reader
//! admits them in batches and is woken once half have ended rather than once per unit,
//! which on a CPU shared with the target costs more than the unit.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Whole units admitted at once at least. Not more: units queued a whole horizon ahead
/// would have their records leave the CPU's caches before they run (every unit within
/// the horizon queued measured 0.84x sysbench at `--speed max` where 1,024 measured
/// 0.92x).
const MIN_UNITS: usize = 1024;

/// Lanes with a queue admitted at once at least.
const MIN_LANES: usize = 16;

#[derive(Debug)]
pub struct Admission {
    lanes: AtomicUsize,
    lane_limit: usize,
    units: AtomicUsize,
    unit_limit: usize,
}

impl Admission {
    /// For a pool of `max_connections`.
    pub fn new(max_connections: usize) -> Self {
        let twice = max_connections.saturating_mul(2);
        Admission {
            lanes: AtomicUsize::new(0),
            lane_limit: twice.max(MIN_LANES),
            units: AtomicUsize::new(0),
            unit_limit: twice.max(MIN_UNITS),
        }
    }

    /// Whether one more lane of this kind (`queued`: with a queue) may be admitted.
    pub fn has_room(&self, queued: bool) -> bool {
        let (count, limit) = self.kind(queued);
        count.load(Ordering::Relaxed) < limit
    }

    pub fn admitted(&self, queued: bool) {
        self.kind(queued).0.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a lane out; whether the reader, if it waits to admit, should be woken: for
    /// a lane with a queue at once, for whole units once half of them have ended.
    pub fn ended(&self, queued: bool) -> bool {
        let (count, limit) = self.kind(queued);
        let left = count.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
        queued || left <= limit / 2
    }

    fn kind(&self, queued: bool) -> (&AtomicUsize, usize) {
        if queued {
            (&self.lanes, self.lane_limit)
        } else {
            (&self.units, self.unit_limit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_and_whole_units_are_bounded_apart_and_wake_the_reader_as_they_should() {
        let a = Admission::new(4);
        for _ in 0..MIN_LANES {
            assert!(a.has_room(true));
            a.admitted(true);
        }
        assert!(!a.has_room(true));
        assert!(a.has_room(false), "whole units have their own bound");
        assert!(
            a.ended(true),
            "a lane with a queue wakes the reader when it ends"
        );
        assert!(a.has_room(true));

        for _ in 0..MIN_UNITS {
            a.admitted(false);
        }
        assert!(!a.has_room(false));
        let wakes = (0..MIN_UNITS).filter(|_| a.ended(false)).count();
        // Only from the half on.
        assert_eq!(wakes, MIN_UNITS / 2 + 1);
    }
}
