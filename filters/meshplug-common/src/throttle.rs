//! Log lines about per-request events (a shadow refusal, a lost CAS race) can flood Envoy's log under
//! load. A `LogThrottle` lets one line through per period and counts what it held back.

use std::cell::Cell;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct LogThrottle {
    last: Cell<Option<Duration>>,
    held: Cell<u64>,
}

impl LogThrottle {
    pub const fn new() -> Self {
        Self { last: Cell::new(None), held: Cell::new(0) }
    }

    /// Records one event at `now`. Returns `Some(n)` — log now, covering `n` events (this one and
    /// those held back since the last line) — at most once per `period`.
    pub fn event(&self, now: Duration, period: Duration) -> Option<u64> {
        let held = self.held.get().saturating_add(1);
        match self.last.get() {
            Some(last) if now.saturating_sub(last) < period && now >= last => {
                self.held.set(held);
                None
            }
            _ => {
                self.last.set(Some(now));
                self.held.set(0);
                Some(held)
            }
        }
    }
}

#[cfg(test)]
#[path = "tests/throttle.rs"]
mod tests;
