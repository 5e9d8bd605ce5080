//! Bounded bucket storage in Envoy's shared data.
//!
//! Each rule owns `maxKeys` slots, shared-data keys `meshplug.rate_limit.<plugin>.<rule>.<n>`, created
//! on first use and never more (Envoy never frees a shared-data key, so the key space itself must be
//! bounded). A slot holds one bucket: the fingerprint of the key that owns it and one GCRA
//! theoretical arrival time (TAT) per limit of the rule.
//!
//! A key hashes (SipHash-1-3 with a per-process random seed, so clients cannot aim at a slot) to two
//! candidate slots. Its bucket is, in this order:
//! 1. the candidate holding its fingerprint (its own bucket);
//! 2. an **idle** candidate — never used, or whose bucket is full again (every TAT ≤ now). A full
//!    bucket holds no information (it is what a new key starts with), so taking it over resets nobody;
//! 3. when both candidates hold other keys' non-full buckets, the less used of the two, **shared**:
//!    the request is charged to that bucket too. Sharing can only make a bucket emptier, never fuller.
//!
//! Hence a flood of distinct keys cannot grow memory past `maxKeys` slots per rule, and cannot reset
//! any bucket that is not already full: not a victim's, and not the flooder's own. The price, when
//! more keys are active at once than there are slots, is that some keys share a bucket (counted in
//! the `shared_bucket` metric) and may be limited together.

use meshplug_common::host::{SharedData, SharedDataError, CREATE_ONLY};
use std::cell::RefCell;
use std::fmt::Write as _;

const VERSION: u8 = 1;

/// How the request's bucket was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The key's own bucket.
    Own,
    /// An idle slot taken over (`created`: the shared-data key did not exist yet).
    Fresh { created: bool },
    /// Another key's bucket, shared because both candidates were busy.
    Shared,
}

/// A located bucket: where it is, what it holds, and the CAS token to write it back.
#[derive(Debug, Clone)]
pub struct Slot {
    pub index: u32,
    /// The fingerprint to store with the bucket (the owner's, when shared).
    pub owner: u64,
    /// One TAT per limit, in nanoseconds since the Unix epoch; 0 = no state (a full bucket).
    pub tats: Vec<u64>,
    pub cas: Option<u32>,
    pub claim: Claim,
}

/// The slots of one rule.
#[derive(Debug, Clone)]
pub struct SlotTable {
    /// `<prefix>.` then the index of the slot last named: every slot's shared-data key is written
    /// here in place, so naming one allocates nothing per request.
    key: RefCell<String>,
    /// The length of `<prefix>.`.
    prefix_len: usize,
    max_keys: u32,
    limits: usize,
}

struct Read {
    state: Option<(u64, Vec<u64>)>,
    exists: bool,
    cas: Option<u32>,
}

impl Read {
    fn owned_by(&self, fp: u64) -> bool {
        self.state.as_ref().is_some_and(|(owner, _)| *owner == fp)
    }

    fn idle(&self, now_ns: u64) -> bool {
        self.state.as_ref().is_none_or(|(_, tats)| tats.iter().all(|t| *t <= now_ns))
    }

    /// How far in the future the bucket's latest TAT lies (a measure of how used it is).
    fn load(&self) -> u64 {
        self.state.as_ref().map(|(_, tats)| tats.iter().copied().max().unwrap_or(0)).unwrap_or(0)
    }
}

impl SlotTable {
    /// `prefix` names the plugin and rule, e.g. `meshplug.rate_limit.rate-limit.per-user`.
    pub fn new(prefix: String, max_keys: u32, limits: usize) -> Self {
        let mut key = prefix;
        key.push('.');
        // Room for any index: the buffer never grows on a request.
        key.reserve(10);
        let prefix_len = key.len();
        Self { key: RefCell::new(key), prefix_len, max_keys: max_keys.max(1), limits }
    }

    /// Calls `f` with slot `index`'s shared-data key, `<prefix>.<index>`, written in place.
    fn with_key<R>(&self, index: u32, f: impl FnOnce(&str) -> R) -> R {
        let mut key = self.key.borrow_mut();
        key.truncate(self.prefix_len);
        let _ = write!(key, "{index}");
        f(&key)
    }

    /// The two candidate slots of a key with hashes `h1`, `h2` (distinct when `maxKeys` > 1).
    pub fn candidates(&self, h1: u64, h2: u64) -> (u32, u32) {
        let n = u64::from(self.max_keys);
        let a = (h1 % n) as u32;
        let mut b = (h2 % n) as u32;
        if a == b && self.max_keys > 1 {
            b = (b + 1) % self.max_keys;
        }
        (a, b)
    }

    fn read(&self, shared: &dyn SharedData, index: u32) -> Read {
        let (bytes, cas) = self.with_key(index, |key| shared.get(key));
        let exists = bytes.is_some();
        Read { state: bytes.and_then(|b| decode(&b, self.limits)), exists, cas }
    }

    /// Finds the bucket for the key with fingerprint `fp` (and second hash `h2`) at `now_ns`.
    pub fn locate(&self, shared: &dyn SharedData, fp: u64, h2: u64, now_ns: u64) -> Slot {
        let (a, b) = self.candidates(fp, h2);
        let ra = self.read(shared, a);
        if ra.owned_by(fp) {
            return self.slot(a, fp, ra, Claim::Own);
        }
        let rb = if b == a { None } else { Some(self.read(shared, b)) };
        if let Some(rb) = rb.as_ref().filter(|r| r.owned_by(fp)) {
            return self.slot(b, fp, rb.clone_read(), Claim::Own);
        }
        if ra.idle(now_ns) {
            let created = !ra.exists;
            return Slot {
                index: a,
                owner: fp,
                tats: vec![0; self.limits],
                cas: ra.cas,
                claim: Claim::Fresh { created },
            };
        }
        match rb {
            Some(rb) if rb.idle(now_ns) => {
                let created = !rb.exists;
                Slot { index: b, owner: fp, tats: vec![0; self.limits], cas: rb.cas, claim: Claim::Fresh { created } }
            }
            Some(rb) if rb.load() < ra.load() => {
                let owner = rb.state.as_ref().map(|(o, _)| *o).unwrap_or(fp);
                self.slot(b, owner, rb, Claim::Shared)
            }
            _ => {
                let owner = ra.state.as_ref().map(|(o, _)| *o).unwrap_or(fp);
                self.slot(a, owner, ra, Claim::Shared)
            }
        }
    }

    fn slot(&self, index: u32, owner: u64, read: Read, claim: Claim) -> Slot {
        let tats = read.state.map(|(_, t)| t).unwrap_or_else(|| vec![0; self.limits]);
        Slot { index, owner, tats, cas: read.cas, claim }
    }

    /// Writes the bucket back with compare-and-swap against the token it was read with.
    pub fn store(&self, shared: &dyn SharedData, slot: &Slot, tats: &[u64]) -> Result<(), SharedDataError> {
        // A slot that did not exist has no token: create it only if no other worker has meanwhile.
        let value = encode(slot.owner, tats);
        self.with_key(slot.index, |key| shared.set(key, &value, Some(slot.cas.unwrap_or(CREATE_ONLY))))
    }
}

impl Read {
    fn clone_read(&self) -> Read {
        Read { state: self.state.clone(), exists: self.exists, cas: self.cas }
    }
}

/// `[version][n][fingerprint u64][tat u64 × n]`, little-endian.
pub fn encode(fp: u64, tats: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + 8 * tats.len());
    out.push(VERSION);
    out.push(tats.len() as u8);
    out.extend_from_slice(&fp.to_le_bytes());
    for t in tats {
        out.extend_from_slice(&t.to_le_bytes());
    }
    out
}

/// The owner and TATs; `None` for anything else (another layout after a config change, garbage),
/// which then counts as an idle slot.
pub fn decode(bytes: &[u8], limits: usize) -> Option<(u64, Vec<u64>)> {
    let (&version, rest) = bytes.split_first()?;
    let (&n, rest) = rest.split_first()?;
    if version != VERSION || usize::from(n) != limits || rest.len() != 8 * (limits + 1) {
        return None;
    }
    let mut words = rest.chunks_exact(8).filter_map(|c| <[u8; 8]>::try_from(c).ok()).map(u64::from_le_bytes);
    let fp = words.next()?;
    Some((fp, words.collect()))
}

#[cfg(test)]
#[path = "tests/slots.rs"]
mod tests;
