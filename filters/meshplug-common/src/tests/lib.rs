//! Tests of `lib` (kept apart from the filter code, which must never unwrap).

#[test]
fn prefixes_come_from_the_crate_name() {
    assert_eq!(super::log_prefix("rate_limit::logic"), "[rate-limit]");
    assert_eq!(super::log_prefix("fault"), "[fault]");
}
