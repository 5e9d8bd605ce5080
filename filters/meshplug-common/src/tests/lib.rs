//! Tests of `lib` (kept apart from the filter code, which must never unwrap).

#[test]
fn prefixes_come_from_the_crate_name() {
    assert_eq!(super::log_prefix("rate_limit::logic"), "[rate-limit]");
    assert_eq!(super::log_prefix("fault"), "[fault]");
}

#[test]
fn instance_keys_tell_plugins_apart() {
    assert_eq!(crate::instance_key(Some("payments.jwt"), Some("jwt-authz"), "jwt-authz"), "payments.jwt/jwt-authz");
    assert_eq!(crate::instance_key(Some("rate-limit.2"), Some("rate-limit"), "rate-limit"), "rate-limit.2/rate-limit");
    assert_eq!(crate::instance_key(Some("fault"), Some("fault"), "fault"), "fault");
    assert_eq!(crate::instance_key(None, None, "canary"), "canary");
}
