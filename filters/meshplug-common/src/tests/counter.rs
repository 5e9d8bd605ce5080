//! Tests of `counter` (kept apart from the filter code, which must never unwrap).

use super::*;
use crate::testing::MemorySharedData;

#[test]
fn acquires_up_to_the_limit_and_releases() {
    let shared = MemorySharedData::default();
    let c = SharedCounter::new("meshplug.test.active");
    c.ensure(&shared).unwrap();
    assert!(c.try_acquire(&shared, 2).unwrap());
    assert!(c.try_acquire(&shared, 2).unwrap());
    assert!(!c.try_acquire(&shared, 2).unwrap());
    c.release(&shared).unwrap();
    assert_eq!(c.value(&shared), 1);
    c.release(&shared).unwrap();
    c.release(&shared).unwrap();
    assert_eq!(c.value(&shared), 0, "never below zero");
}

#[test]
fn retries_lost_races_and_gives_up_when_always_losing() {
    let shared = MemorySharedData::default();
    let c = SharedCounter::new("k");
    c.ensure(&shared).unwrap();
    shared.fail_next_cas(3);
    assert!(c.try_acquire(&shared, 10).unwrap());
    assert_eq!(c.value(&shared), 1);
    shared.fail_next_cas(MAX_CAS_RETRIES);
    assert_eq!(c.try_acquire(&shared, 10), Err(CounterError::Contended));
    assert_eq!(c.value(&shared), 1);
}
