//! Tests of `keys`.

use super::*;
use meshplug_common::claims::CLAIMS_PROPERTY;
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

#[test]
fn keys_are_bytes_and_paths_are_normalized() {
    let r = req().with_bytes("x-user", b"\xe4\xb8").with_bytes("x-other", b"\xe4\xb9");
    assert_eq!(key_of(&KeySpec::Header("x-user".into()), &r), Some(b"\xe4\xb8".to_vec()));
    assert_ne!(
        key_of(&KeySpec::Header("x-user".into()), &r),
        key_of(&KeySpec::Header("x-other".into()), &r),
        "two different invalid values are two keys (no U+FFFD collapse)"
    );
    for p in ["/a/../api/items", "//api//items", "/%61pi/items?x"] {
        let r = TestRequest::new("GET", p);
        assert_eq!(key_of(&KeySpec::Path, &r), Some(b"/api/items".to_vec()), "{p}");
    }
}

#[test]
fn ipv6_clients_are_keyed_by_their_prefix() {
    let spec = |p| KeySpec::ClientIp { trusted_hops: 0, ipv6_prefix: p };
    let at = |a: &str| TestRequest::new("GET", "/").with_property(&["source", "address"], a.as_bytes());
    let a = at("[2001:db8:1:2:aaaa::1]:443");
    let b = at("[2001:db8:1:2:bbbb::9]:443");
    let c = at("[2001:db8:1:3::1]:443");
    assert_eq!(key_of(&spec(64), &a), key_of(&spec(64), &b), "one /64, one key");
    assert_ne!(key_of(&spec(64), &a), key_of(&spec(64), &c));
    assert_eq!(key_of(&spec(64), &a), Some(b"2001:db8:1:2::".to_vec()));
    assert_ne!(key_of(&spec(128), &a), key_of(&spec(128), &b));
    assert_eq!(key_of(&spec(48), &a), key_of(&spec(48), &c));
    assert_eq!(key_of(&spec(64), &at("10.0.0.1:1")), Some(b"10.0.0.1".to_vec()));
    assert_eq!(key_of(&spec(64), &at("[::ffff:10.0.0.1]:1")), Some(b"10.0.0.1".to_vec()));
}
