//! Tests of `policy`.

use super::*;

#[test]
fn globs_are_istio_string_matches() {
    assert!(glob("*", "anything"));
    assert!(glob("/api/*", "/api/x"));
    assert!(!glob("/api/*", "/apix"));
    assert!(glob("*/info", "/v1/info"));
    assert!(glob("exact", "exact") && !glob("exact", "exactly"));
}

#[test]
fn condition_keys_parse() {
    assert_eq!(
        ConditionKey::parse("request.auth.claims[a][b]").unwrap(),
        ConditionKey::Claim(vec!["a".into(), "b".into()])
    );
    assert_eq!(
        ConditionKey::parse("request.auth.claims[https://example.com/roles]").unwrap(),
        ConditionKey::Claim(vec!["https://example.com/roles".into()])
    );
    assert_eq!(ConditionKey::parse("request.headers[X-Env]").unwrap(), ConditionKey::Header("x-env".into()));
    assert_eq!(ConditionKey::parse("request.auth.principal").unwrap(), ConditionKey::Principal);
    for bad in
        ["request.auth.claims", "request.auth.claims[]", "request.auth.claims[a", "source.ip", "request.headers[a][b]"]
    {
        assert!(ConditionKey::parse(bad).is_err(), "{bad}");
    }
}
