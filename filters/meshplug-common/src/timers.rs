//! Requests parked until a deadline. A root context keeps one `Timers` per worker and, on each tick,
//! takes the entries whose deadline has passed (see `wasm::Parking` for the proxy-wasm side).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

struct Entry<T> {
    deadline: Duration,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    // Reversed: BinaryHeap is a max-heap and we want the earliest deadline (then the oldest) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// Items ordered by deadline (time since the Unix epoch, from the host clock).
pub struct Timers<T> {
    heap: BinaryHeap<Entry<T>>,
    seq: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Self { heap: BinaryHeap::new(), seq: 0 }
    }
}

impl<T> Timers<T> {
    pub fn push(&mut self, deadline: Duration, item: T) {
        self.seq = self.seq.wrapping_add(1);
        self.heap.push(Entry { deadline, seq: self.seq, item });
    }

    /// Removes and returns every item whose deadline is ≤ `now`, earliest first.
    pub fn pop_due(&mut self, now: Duration) -> Vec<T> {
        let mut due = Vec::new();
        while self.heap.peek().is_some_and(|e| e.deadline <= now) {
            if let Some(e) = self.heap.pop() {
                due.push(e.item);
            }
        }
        due
    }

    /// The earliest deadline, if any item waits.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.heap.peek().map(|e| e.deadline)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
#[path = "tests/timers.rs"]
mod tests;
