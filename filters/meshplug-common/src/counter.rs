//! A counter of things in progress, shared by all Envoy workers through shared data with CAS.
//! Used to bound concurrent work across the whole proxy (e.g. the fault filter's `maxActiveFaults`).

use crate::host::{SharedData, SharedDataError, CREATE_ONLY};

/// How many times a CAS race is retried before giving up. Each retry means another worker changed the
/// value in between, so even under heavy contention a few rounds suffice.
pub const MAX_CAS_RETRIES: usize = 16;

/// Why the counter could not be changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterError {
    /// Lost the CAS race [`MAX_CAS_RETRIES`] times in a row.
    Contended,
    /// The host refused the write.
    Host(String),
}

/// A `u32` in shared data under one key, changed only with compare-and-swap.
#[derive(Debug, Clone)]
pub struct SharedCounter {
    key: String,
}

impl SharedCounter {
    pub fn new(key: impl Into<String>) -> Self {
        Self { key: key.into() }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Creates the key with value 0 if it does not exist yet (call at configure time, so that every
    /// later update can use a real CAS token).
    pub fn ensure(&self, shared: &dyn SharedData) -> Result<(), CounterError> {
        if shared.get(&self.key).0.is_none() {
            match shared.set(&self.key, &0u32.to_le_bytes(), Some(CREATE_ONLY)) {
                Ok(()) | Err(SharedDataError::CasMismatch) => {}
                Err(SharedDataError::Host(e)) => return Err(CounterError::Host(e)),
            }
        }
        Ok(())
    }

    /// The current value (0 when absent or unreadable).
    pub fn value(&self, shared: &dyn SharedData) -> u32 {
        decode(shared.get(&self.key).0.as_deref())
    }

    /// Adds one if the value is below `limit`. `Ok(true)`: acquired; `Ok(false)`: at the limit.
    pub fn try_acquire(&self, shared: &dyn SharedData, limit: u32) -> Result<bool, CounterError> {
        self.update(shared, |v| if v < limit { Some(v + 1) } else { None })
    }

    /// Subtracts one (never below zero).
    pub fn release(&self, shared: &dyn SharedData) -> Result<(), CounterError> {
        self.update(shared, |v| Some(v.saturating_sub(1))).map(|_| ())
    }

    fn update(&self, shared: &dyn SharedData, f: impl Fn(u32) -> Option<u32>) -> Result<bool, CounterError> {
        for _ in 0..MAX_CAS_RETRIES {
            let (bytes, cas) = shared.get(&self.key);
            let Some(next) = f(decode(bytes.as_deref())) else { return Ok(false) };
            // No token: the key does not exist yet; create it only if no other worker has meanwhile.
            match shared.set(&self.key, &next.to_le_bytes(), Some(cas.unwrap_or(CREATE_ONLY))) {
                Ok(()) => return Ok(true),
                Err(SharedDataError::CasMismatch) => continue,
                Err(SharedDataError::Host(e)) => return Err(CounterError::Host(e)),
            }
        }
        Err(CounterError::Contended)
    }
}

fn decode(bytes: Option<&[u8]>) -> u32 {
    bytes.and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_le_bytes).unwrap_or(0)
}

#[cfg(test)]
#[path = "tests/counter.rs"]
mod tests;
