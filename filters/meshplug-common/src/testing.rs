//! In-memory hosts for tests of filter logic (native and Wasm test runs alike).

use crate::host::{Clock, Metrics, RequestHeaders, RequestProperties, SharedData, SharedDataError};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

/// Request headers from a list of pairs (names lower-case, pseudo-headers included), and properties.
#[derive(Debug, Clone, Default)]
pub struct TestRequest(pub Vec<(String, Vec<u8>)>, pub Vec<(Vec<String>, Vec<u8>)>);

impl TestRequest {
    /// A request with `:method`, `:path`, `:authority` and `:scheme` set.
    pub fn new(method: &str, path: &str) -> Self {
        Self(
            vec![
                (":method".into(), method.into()),
                (":path".into(), path.into()),
                (":authority".into(), "example.com".into()),
                (":scheme".into(), "http".into()),
            ],
            vec![],
        )
    }

    /// Sets the attribute at `path` (e.g. `["source", "address"]`).
    pub fn with_property(mut self, path: &[&str], value: &[u8]) -> Self {
        self.1.push((path.iter().map(|s| s.to_string()).collect(), value.to_vec()));
        self
    }

    /// Adds a header (a repeated name adds a second value).
    pub fn with(self, name: &str, value: &str) -> Self {
        self.with_bytes(name, value.as_bytes())
    }

    /// Adds a header whose value is any bytes (e.g. not UTF-8).
    pub fn with_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.0.push((name.to_ascii_lowercase(), value.to_vec()));
        self
    }

    /// Replaces every value of header `name`.
    pub fn set(mut self, name: &str, value: &[u8]) -> Self {
        let name = name.to_ascii_lowercase();
        self.0.retain(|(k, _)| *k != name);
        self.0.push((name, value.to_vec()));
        self
    }
}

impl RequestHeaders for TestRequest {
    fn header(&self, name: &str) -> Option<Vec<u8>> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn header_values(&self, name: &str) -> Vec<Vec<u8>> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}

impl RequestProperties for TestRequest {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.1.iter().find(|(p, _)| p.iter().map(String::as_str).eq(path.iter().copied())).map(|(_, v)| v.clone())
    }
}

/// Shared data in a map, with CAS tokens like Envoy's, and a way to lose CAS races on purpose.
#[derive(Default)]
pub struct MemorySharedData {
    map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    fail_cas: Cell<usize>,
    next_cas: Cell<u32>,
}

impl MemorySharedData {
    /// How many keys exist.
    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.borrow().is_empty()
    }

    /// The next `n` CAS writes fail as if another worker had won the race.
    pub fn fail_next_cas(&self, n: usize) {
        self.fail_cas.set(n);
    }
}

impl SharedData for MemorySharedData {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.map.borrow().get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SharedDataError> {
        let mut map = self.map.borrow_mut();
        // As in proxy-wasm-cpp-host: the token is checked only for an existing key, and 0 means none.
        if let (Some((_, current)), Some(token)) = (map.get(key), cas.filter(|t| *t != 0)) {
            if self.fail_cas.get() > 0 {
                self.fail_cas.set(self.fail_cas.get() - 1);
                return Err(SharedDataError::CasMismatch);
            }
            if *current != token {
                return Err(SharedDataError::CasMismatch);
            }
        }
        let next = self.next_cas.get().wrapping_add(1).max(1);
        self.next_cas.set(next);
        map.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }
}

/// Counts increments per metric index.
#[derive(Default)]
pub struct RecordingMetrics(RefCell<HashMap<usize, u64>>);

impl RecordingMetrics {
    pub fn get(&self, metric: usize) -> u64 {
        self.0.borrow().get(&metric).copied().unwrap_or(0)
    }
}

impl Metrics for RecordingMetrics {
    fn increment(&self, metric: usize) {
        *self.0.borrow_mut().entry(metric).or_default() += 1;
    }
}

/// A clock that stands still until moved.
#[derive(Default)]
pub struct ManualClock(pub Cell<Duration>);

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        self.0.set(self.0.get() + by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        self.0.get()
    }
}
