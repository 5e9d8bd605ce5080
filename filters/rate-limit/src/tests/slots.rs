//! Tests of `slots`.

use super::*;
use meshplug_common::testing::MemorySharedData;

#[test]
fn encoding_round_trips_and_rejects_other_layouts() {
    let bytes = encode(7, &[1, 2]);
    assert_eq!(decode(&bytes, 2), Some((7, vec![1, 2])));
    assert_eq!(decode(&bytes, 3), None);
    assert_eq!(decode(&bytes[..5], 2), None);
    assert_eq!(decode(b"", 1), None);
}

#[test]
fn candidates_are_distinct_and_in_range() {
    let t = SlotTable::new("p".into(), 10, 1);
    for h in 0..100u64 {
        let (a, b) = t.candidates(h, h * 7);
        assert!(a < 10 && b < 10 && a != b);
    }
    let one = SlotTable::new("p".into(), 1, 1);
    assert_eq!(one.candidates(5, 9), (0, 0));
}

#[test]
fn own_then_idle_then_shared() {
    let shared = MemorySharedData::default();
    let t = SlotTable::new("r".into(), 2, 1);
    let now = 1_000;
    // Key 10 takes slot 0 (fresh), stores an active bucket.
    let s = t.locate(&shared, 10, 11, now);
    assert_eq!((s.index, s.claim), (0, Claim::Fresh { created: true }));
    t.store(&shared, &s, &[5_000]).unwrap();
    assert_eq!(t.locate(&shared, 10, 11, now).claim, Claim::Own);
    // Key 12 (candidates 0 and 1): slot 0 busy, slot 1 never used.
    let s = t.locate(&shared, 12, 13, now);
    assert_eq!((s.index, s.claim), (1, Claim::Fresh { created: true }));
    t.store(&shared, &s, &[9_000]).unwrap();
    // Key 14: both busy, shares the less used one (slot 0, TAT 5000) and keeps its owner.
    let s = t.locate(&shared, 14, 15, now);
    assert_eq!((s.index, s.claim, s.owner, s.tats.clone()), (0, Claim::Shared, 10, vec![5_000]));
    // Once slot 0's bucket is full again (TAT ≤ now), key 14 takes it over.
    let s = t.locate(&shared, 14, 15, 6_000);
    assert_eq!((s.index, s.claim), (0, Claim::Fresh { created: false }));
}

#[test]
fn two_workers_creating_one_slot_cannot_overwrite_each_other() {
    let shared = MemorySharedData::default();
    let t = SlotTable::new("r".into(), 4, 1);
    let a = t.locate(&shared, 10, 11, 1_000);
    let b = t.locate(&shared, 10, 11, 1_000);
    assert_eq!((a.cas, b.cas), (None, None), "both saw the slot absent");
    t.store(&shared, &b, &[2_000]).unwrap();
    assert_eq!(t.store(&shared, &a, &[2_000]), Err(SharedDataError::CasMismatch), "a re-reads instead");
    let again = t.locate(&shared, 10, 11, 1_000);
    assert_eq!((again.claim, again.tats), (Claim::Own, vec![2_000]));
}
