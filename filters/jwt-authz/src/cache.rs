//! A bounded cache of verified tokens, per worker: a client's repeated token is verified once.
//! Keyed by a 128-bit keyed hash of the whole token (SipHash-1-3 with a per-VM random key), so the
//! cache holds no tokens; an entry expires with its token's `exp` and is dropped when the keys change.
//! When full, the oldest entry goes first.

use siphasher::sip128::{Hasher128, SipHasher13};
use std::collections::{HashMap, VecDeque};
use std::hash::Hasher;
use std::rc::Rc;

/// What a verified token established.
#[derive(Debug, Clone)]
pub struct Verified {
    pub rule: usize,
    /// `iss/sub`, when the token has a `sub`.
    pub principal: Option<String>,
    pub claims: Rc<meshplug_common::claims::Claims>,
    /// The claims as JSON, for filter state.
    pub claims_json: Rc<Vec<u8>>,
    /// `exp` in seconds since the epoch (`f64::INFINITY` when the token has none).
    pub expires: f64,
    /// The key generation it was verified with.
    pub generation: u64,
}

pub struct TokenCache {
    capacity: usize,
    key: (u64, u64),
    map: HashMap<u128, Verified>,
    order: VecDeque<u128>,
}

impl TokenCache {
    pub fn new(capacity: usize, key: (u64, u64)) -> Self {
        Self { capacity, key, map: HashMap::new(), order: VecDeque::new() }
    }

    pub fn fingerprint(&self, token: &str) -> u128 {
        let mut h = SipHasher13::new_with_keys(self.key.0, self.key.1);
        h.write(token.as_bytes());
        h.finish128().as_u128()
    }

    /// The entry, if present, unexpired (with `skew` seconds of tolerance) and of this key generation.
    pub fn get(&mut self, fp: u128, now_secs: f64, skew: f64, generation: u64) -> Option<Verified> {
        let fresh = self.map.get(&fp).map(|v| v.generation == generation && now_secs <= v.expires + skew)?;
        if fresh {
            self.map.get(&fp).cloned()
        } else {
            self.map.remove(&fp);
            None
        }
    }

    pub fn insert(&mut self, fp: u128, v: Verified) {
        if self.capacity == 0 {
            return;
        }
        if self.map.insert(fp, v).is_none() {
            self.order.push_back(fp);
        }
        while self.map.len() > self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        // Entries dropped by `get` leave their fingerprint in `order`; keep it bounded.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let map = &self.map;
            self.order.retain(|f| map.contains_key(f));
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
#[path = "tests/cache.rs"]
mod tests;
