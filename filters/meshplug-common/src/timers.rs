//! Requests parked until a deadline. A root context keeps one `Timers` per worker and, on each tick,
//! takes the entries whose deadline has passed (see `wasm::chain` for the proxy-wasm side). An entry
//! can also be taken out early by its [`TimerId`] (a parked request whose client went away), so what a
//! worker holds is bounded by the requests that are really waiting.

use std::collections::BTreeMap;
use std::time::Duration;

/// Names one parked entry (its deadline and arrival order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerId(Duration, u64);

/// Items ordered by deadline (time since the Unix epoch, from the host clock), then arrival.
pub struct Timers<T> {
    items: BTreeMap<TimerId, T>,
    seq: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Self { items: BTreeMap::new(), seq: 0 }
    }
}

impl<T> Timers<T> {
    pub fn push(&mut self, deadline: Duration, item: T) -> TimerId {
        self.seq = self.seq.wrapping_add(1);
        let id = TimerId(deadline, self.seq);
        self.items.insert(id, item);
        id
    }

    /// Takes one entry out before its deadline; `None` when it is no longer there.
    pub fn remove(&mut self, id: TimerId) -> Option<T> {
        self.items.remove(&id)
    }

    /// Removes and returns every item whose deadline is ≤ `now`, earliest first.
    pub fn pop_due(&mut self, now: Duration) -> Vec<T> {
        let mut due = Vec::new();
        while let Some(entry) = self.items.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        due
    }

    /// The earliest deadline, if any item waits.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.items.keys().next().map(|id| id.0)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
#[path = "tests/timers.rs"]
mod tests;
