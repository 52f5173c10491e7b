//! A queue that gives back the earliest item first (by a time or a capture position),
//! items of the same time in the order they came: what the replay clock's timer thread
//! and the pool's queue of units both need.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Debug)]
pub struct EarliestFirst<K, T> {
    heap: BinaryHeap<Entry<K, T>>,
    pushed: u64,
}

impl<K: Ord + Copy, T> Default for EarliestFirst<K, T> {
    fn default() -> Self {
        EarliestFirst {
            heap: BinaryHeap::new(),
            pushed: 0,
        }
    }
}

impl<K: Ord + Copy, T> EarliestFirst<K, T> {
    pub fn push(&mut self, key: K, item: T) {
        self.pushed += 1;
        let seq = self.pushed;
        self.heap.push(Entry { key, seq, item });
    }

    /// The earliest key.
    pub fn first(&self) -> Option<K> {
        self.heap.peek().map(|e| e.key)
    }

    pub fn pop(&mut self) -> Option<T> {
        self.heap.pop().map(|e| e.item)
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[derive(Debug)]
struct Entry<K, T> {
    key: K,
    /// Arrival order: breaks ties, so items themselves are never compared.
    seq: u64,
    item: T,
}

impl<K: Ord, T> PartialEq for Entry<K, T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<K: Ord, T> Eq for Entry<K, T> {}
impl<K: Ord, T> PartialOrd for Entry<K, T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord, T> Ord for Entry<K, T> {
    /// Reversed: `BinaryHeap` is a max-heap and the earliest must come first.
    fn cmp(&self, other: &Self) -> Ordering {
        (&other.key, other.seq).cmp(&(&self.key, self.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_comes_first_and_equals_in_arrival_order() {
        let mut q = EarliestFirst::default();
        for (key, item) in [(30, 'a'), (10, 'b'), (20, 'c'), (10, 'd')] {
            q.push(key, item);
        }
        assert_eq!(q.first(), Some(10));
        let order: String = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, "bdca");
        assert!(q.is_empty());
    }
}
