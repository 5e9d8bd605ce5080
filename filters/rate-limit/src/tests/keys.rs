//! Tests of `keys`.

use super::*;
use meshplug_common::testing::TestRequest;

fn req() -> TestRequest {
    TestRequest::new("GET", "/api/items?page=2").with_property(&["source", "address"], b"10.0.0.9:41000")
}

#[test]
fn header_path_global_and_claim_keys() {
    let r = req().with("x-user", "alice").with("x-empty", "");
    assert_eq!(key_of(&KeySpec::Global, &r), Some(vec![]));
    assert_eq!(key_of(&KeySpec::Header("x-user".into()), &r), Some(b"alice".to_vec()));
    assert_eq!(key_of(&KeySpec::Header("x-empty".into()), &r), None, "empty counts as missing");
    assert_eq!(key_of(&KeySpec::Header("x-none".into()), &r), None);
    assert_eq!(key_of(&KeySpec::Path, &r), Some(b"/api/items".to_vec()));
    assert_eq!(key_of(&KeySpec::Claim("sub".into()), &r), None, "no claims published");
    let r = r.with_property(&[CLAIMS_PROPERTY], br#"{"sub":"u-1"}"#);
    assert_eq!(key_of(&KeySpec::Claim("sub".into()), &r), Some(b"u-1".to_vec()));
}

#[test]
fn a_claim_is_never_read_from_a_header() {
    let r = req().with("meshplug_claims", r#"{"sub":"forged"}"#).with("x-jwt-claim-sub", "forged");
    assert_eq!(key_of(&KeySpec::Claim("sub".into()), &r), None);
}

#[test]
fn client_ip_with_and_without_trusted_hops() {
    let ip = |r: &TestRequest, hops| client_ip(r, hops).map(|i| i.to_string());
    let r = req().with("x-forwarded-for", "1.1.1.1, 2.2.2.2 ,3.3.3.3");
    assert_eq!(ip(&r, 0).as_deref(), Some("10.0.0.9"), "without trusted hops XFF is ignored");
    assert_eq!(ip(&r, 1).as_deref(), Some("3.3.3.3"));
    assert_eq!(ip(&r, 2).as_deref(), Some("2.2.2.2"));
    assert_eq!(ip(&r, 3).as_deref(), Some("1.1.1.1"));
    assert_eq!(ip(&r, 4).as_deref(), Some("10.0.0.9"), "too few entries: the source address");
    let r = req().with("x-forwarded-for", "garbage, 3.3.3.3");
    assert_eq!(ip(&r, 2), None);
    let r = TestRequest::new("GET", "/").with_property(&["source", "address"], b"[2001:db8::1]:443");
    assert_eq!(ip(&r, 0).as_deref(), Some("2001:db8::1"));
}

#[test]
fn huge_keys_are_truncated() {
    let big = "k".repeat(100_000);
    let r = req().with("x-user", &big);
    assert_eq!(key_of(&KeySpec::Header("x-user".into()), &r).unwrap().len(), MAX_KEY_BYTES);
}
