//! Tests of `metrics` (kept apart from the filter code, which must never unwrap).

#[test]
fn names_follow_the_scheme() {
    assert_eq!(super::metric_name("rate-limit", "allowed"), "meshplug.rate_limit.allowed");
}
