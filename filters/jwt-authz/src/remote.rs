//! Remote JWKS, fetched once per Envoy process rather than once per worker.
//!
//! Per rule, shared data holds the last good JWKS (`…jwks.<rule>`) and a small state record
//! (`…state.<rule>`): last success, last attempt, a fetch lease and the latest unknown-`kid` request.
//! Every worker's root context, on its tick, (1) loads a newer JWKS from shared data if there is one,
//! and (2) if a fetch is due and nobody holds the lease, takes the lease with compare-and-swap and
//! fetches. The worker that fetched stores the result for all. A failed refresh keeps the old keys
//! (stale-if-error); until a first fetch succeeds, tokens of that issuer are refused.

use crate::config::RemoteJwks;
use meshplug_common::host::{SharedData, SharedDataError, CREATE_ONLY};
use std::time::Duration;

/// Retry delay while no fetch has succeeded yet (tokens are refused meanwhile).
pub const FIRST_FETCH_RETRY: Duration = Duration::from_secs(1);
/// Retry delay after a failed refresh (the old keys keep working meanwhile); shorter when the
/// refresh interval is.
pub const REFRESH_RETRY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchState {
    pub last_success: u64,
    pub last_attempt: u64,
    pub lease_until: u64,
    pub kid_request: u64,
}

impl FetchState {
    fn encode(&self) -> Vec<u8> {
        [self.last_success, self.last_attempt, self.lease_until, self.kid_request]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }

    fn decode(bytes: &[u8]) -> FetchState {
        let mut w = bytes.chunks_exact(8).filter_map(|c| <[u8; 8]>::try_from(c).ok()).map(u64::from_le_bytes);
        FetchState {
            last_success: w.next().unwrap_or(0),
            last_attempt: w.next().unwrap_or(0),
            lease_until: w.next().unwrap_or(0),
            kid_request: w.next().unwrap_or(0),
        }
    }
}

/// The shared-data keys of one rule's remote JWKS.
#[derive(Debug, Clone)]
pub struct RemoteKeys {
    pub jwks_key: String,
    pub state_key: String,
    pub source: RemoteJwks,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl RemoteKeys {
    pub fn new(instance: &str, rule: usize, source: RemoteJwks) -> Self {
        Self {
            jwks_key: format!("meshplug.jwt_authz.{instance}.jwks.{rule}"),
            state_key: format!("meshplug.jwt_authz.{instance}.state.{rule}"),
            source,
        }
    }

    pub fn state(&self, shared: &dyn SharedData) -> (FetchState, Option<u32>) {
        let (bytes, cas) = shared.get(&self.state_key);
        (bytes.map(|b| FetchState::decode(&b)).unwrap_or_default(), cas)
    }

    /// The stored JWKS and its CAS token (which changes whenever a new JWKS is stored).
    pub fn stored(&self, shared: &dyn SharedData) -> (Option<Vec<u8>>, Option<u32>) {
        shared.get(&self.jwks_key)
    }

    fn due(&self, s: &FetchState, now: u64) -> bool {
        if s.lease_until > now {
            return false;
        }
        if s.last_success == 0 {
            // No keys yet: retry quickly.
            return now >= s.last_attempt.saturating_add(ns(FIRST_FETCH_RETRY));
        }
        let refresh = self.source.refresh_interval.0;
        if now >= s.last_success.saturating_add(ns(refresh)) {
            return now >= s.last_attempt.saturating_add(ns(REFRESH_RETRY.min(refresh)));
        }
        s.kid_request > s.last_attempt
            && now >= s.last_attempt.saturating_add(ns(self.source.unknown_kid_refetch_interval.0))
    }

    /// If a fetch is due and the lease is free, takes it: the caller must then fetch and report with
    /// [`RemoteKeys::finish`]. At most one worker of the process wins.
    pub fn try_lead(&self, shared: &dyn SharedData, now: u64) -> bool {
        let (s, cas) = self.state(shared);
        if !self.due(&s, now) {
            return false;
        }
        let lease = now.saturating_add(ns(self.source.timeout.0)).saturating_add(ns(Duration::from_secs(1)));
        let next = FetchState { last_attempt: now, lease_until: lease, ..s };
        shared.set(&self.state_key, &next.encode(), Some(cas.unwrap_or(CREATE_ONLY))).is_ok()
    }

    /// Records a fetch result; with `Some(jwks)` (already checked to parse) the new keys are stored.
    pub fn finish(&self, shared: &dyn SharedData, now: u64, jwks: Option<&[u8]>) {
        if let Some(body) = jwks {
            if let Err(e) = shared.set(&self.jwks_key, body, None) {
                log::warn!("cannot store the fetched JWKS: {e:?}");
            }
        }
        for _ in 0..meshplug_common::counter::MAX_CAS_RETRIES {
            let (s, cas) = self.state(shared);
            let next =
                FetchState { last_success: if jwks.is_some() { now } else { s.last_success }, lease_until: 0, ..s };
            match shared.set(&self.state_key, &next.encode(), Some(cas.unwrap_or(CREATE_ONLY))) {
                Err(SharedDataError::CasMismatch) => continue,
                _ => return,
            }
        }
    }

    /// Asks for an early refetch (a token named an unknown `kid`).
    pub fn request_refetch(&self, shared: &dyn SharedData, now: u64) {
        let (s, cas) = self.state(shared);
        if s.kid_request > s.last_attempt {
            return;
        }
        let next = FetchState { kid_request: now, ..s };
        let _ = shared.set(&self.state_key, &next.encode(), Some(cas.unwrap_or(CREATE_ONLY)));
    }
}

#[cfg(test)]
#[path = "tests/remote.rs"]
mod tests;
