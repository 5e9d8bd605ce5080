//! Tests of `remote`: one fetch per process, refresh, early refetch, stale-if-error.

use super::*;
use meshplug_common::duration::ConfigDuration;
use meshplug_common::testing::MemorySharedData;

const S: u64 = 1_000_000_000;

fn keys() -> RemoteKeys {
    RemoteKeys::new(
        "t",
        0,
        RemoteJwks {
            cluster: "auth".into(),
            path: "/jwks".into(),
            authority: None,
            timeout: ConfigDuration(Duration::from_secs(2)),
            refresh_interval: ConfigDuration(Duration::from_secs(600)),
            unknown_kid_refetch_interval: ConfigDuration(Duration::from_secs(30)),
        },
    )
}

#[test]
fn one_leader_per_fetch_and_refresh_on_schedule() {
    let shared = MemorySharedData::default();
    let (w1, w2) = (keys(), keys());
    let t0 = 1_000 * S;
    assert!(w1.try_lead(&shared, t0), "first fetch is due");
    assert!(!w2.try_lead(&shared, t0), "the lease is taken");
    w1.finish(&shared, t0, Some(b"{}"));
    assert_eq!(w2.stored(&shared).0.as_deref(), Some(&b"{}"[..]));
    assert!(!w2.try_lead(&shared, t0 + 599 * S), "not due before refreshInterval");
    assert!(w2.try_lead(&shared, t0 + 600 * S));
    // The refresh fails: the old JWKS stays, and the retry waits.
    w2.finish(&shared, t0 + 600 * S, None);
    assert_eq!(w1.stored(&shared).0.as_deref(), Some(&b"{}"[..]));
    assert!(!w1.try_lead(&shared, t0 + 605 * S));
    assert!(w1.try_lead(&shared, t0 + 611 * S));
}

#[test]
fn unknown_kids_trigger_at_most_one_early_refetch_per_interval() {
    let shared = MemorySharedData::default();
    let k = keys();
    let t0 = 1_000 * S;
    assert!(k.try_lead(&shared, t0));
    k.finish(&shared, t0, Some(b"{}"));
    k.request_refetch(&shared, t0 + 5 * S);
    assert!(!k.try_lead(&shared, t0 + 10 * S), "within unknownKidRefetchInterval of the last fetch");
    assert!(k.try_lead(&shared, t0 + 31 * S));
    k.finish(&shared, t0 + 31 * S, Some(b"{}"));
    assert!(!k.try_lead(&shared, t0 + 70 * S), "the request was served");
}

#[test]
fn a_failed_first_fetch_is_retried_quickly() {
    let shared = MemorySharedData::default();
    let k = keys();
    assert!(k.try_lead(&shared, 10 * S));
    k.finish(&shared, 10 * S, None);
    assert!(!k.try_lead(&shared, 10 * S + S / 2));
    assert!(k.try_lead(&shared, 11 * S));
}
