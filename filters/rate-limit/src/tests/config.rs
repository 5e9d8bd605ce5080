//! Tests of `config`.

use super::*;

#[test]
fn the_documented_example_parses() {
    let c = RateLimitConfig::from_json(
        br#"{
          "rules": [
            { "name": "per-user",
              "match": [{ "uri": { "prefix": "/api" } }],
              "key": { "header": "X-User-Id" },
              "limits": [ { "requests": 100, "per": "1s", "burst": 20 },
                          { "requests": 5000, "per": "1h" } ],
              "shadow": false }
          ],
          "maxKeys": 100000,
          "response": { "status": 429, "body": "rate limited\n", "headers": true }
        }"#,
    )
    .unwrap();
    let r = &c.rules[0];
    assert_eq!(r.key, KeySpec::Header("x-user-id".into()));
    assert_eq!(r.limits[0].capacity(), 120);
    assert_eq!(r.limits[0].emission_interval(), Duration::from_millis(10));
    assert_eq!(r.on_missing_key, OnMissingKey::Unknown);
    assert_eq!(c.on_error, OnError::Deny);
}

#[test]
fn key_kinds() {
    let parse = |key: &str| {
        let json = format!(r#"{{"rules":[{{"name":"r","key":{key},"limits":[{{"requests":1,"per":"1s"}}]}}]}}"#);
        RateLimitConfig::from_json(json.as_bytes()).map(|c| c.rules[0].key.clone())
    };
    assert_eq!(parse(r#"{"clientIp":{}}"#).unwrap(), KeySpec::ClientIp { trusted_hops: 0, ipv6_prefix: 64 });
    assert_eq!(
        parse(r#"{"clientIp":{"trustedHops":2}}"#).unwrap(),
        KeySpec::ClientIp { trusted_hops: 2, ipv6_prefix: 64 }
    );
    assert_eq!(parse(r#"{"path":{}}"#).unwrap(), KeySpec::Path);
    assert_eq!(parse(r#"{"claim":"sub"}"#).unwrap(), KeySpec::Claim("sub".into()));
    let e = parse(r#"{"cookie":"x"}"#).unwrap_err();
    assert_eq!(e.pointer, "/rules/0/key");
    assert!(e.reason.contains("unknown variant `cookie`"), "{e}");
}

#[test]
fn invalid_configs_name_the_field() {
    let cases = [
        (
            r#"{"rules":[{"name":"a","limits":[{"requests":0,"per":"1s"}]}]}"#,
            "/rules/0/limits/0/requests",
            "at least 1",
        ),
        (
            r#"{"rules":[{"name":"a","limits":[{"requests":5,"per":"soon"}]}]}"#,
            "/rules/0/limits/0/per",
            "invalid duration",
        ),
        (r#"{"rules":[{"name":"a","limits":[{"requests":5,"per":"0s"}]}]}"#, "/rules/0/limits/0/per", "longer than 0"),
        (
            r#"{"rules":[{"name":"a","limits":[{"requests":5,"per":"1s","burst":-1}]}]}"#,
            "/rules/0/limits/0/burst",
            "invalid value",
        ),
        (r#"{"rules":[{"name":"a","limits":[]}]}"#, "/rules/0/limits", "1 to 8"),
        (r#"{"rules":[{"name":"a"}]}"#, "/rules/0/limits", "or `global`"),
        (
            r#"{"rules":[{"name":"a","global":{"descriptors":[{"key":"u","header":"x"}]}}]}"#,
            "/rules/0/global",
            "needs `rateLimitService`",
        ),
        (
            r#"{"rateLimitService":{"cluster":"rls","domain":"d"},"rules":[{"name":"a","global":{"descriptors":[]}}]}"#,
            "/rules/0/global/descriptors",
            "1 to 16",
        ),
        (
            r#"{"rateLimitService":{"cluster":"rls","domain":"d"},"rules":[{"name":"a","global":{"descriptors":[{"key":"u","header":"x","value":"v"}]}}]}"#,
            "/rules/0/global/descriptors/0",
            "exactly one of",
        ),
        (
            r#"{"rateLimitService":{"cluster":"rls","domain":"d"},"rules":[{"name":"a","global":{"descriptors":[{"key":"u","clientIp":{"ipv6PrefixLength":0}}]}}]}"#,
            "/rules/0/global/descriptors/0",
            "ipv6PrefixLength",
        ),
        (
            r#"{"rateLimitService":{"cluster":"rls","domain":"d","timeout":"0s"}}"#,
            "/rateLimitService/timeout",
            "longer than 0",
        ),
        (r#"{"rateLimitService":{"cluster":"","domain":"d"}}"#, "/rateLimitService/cluster", "printable ASCII"),
        (
            r#"{"rateLimitService":{"cluster":"rls","domain":"d","statusOnError":99}}"#,
            "/rateLimitService/statusOnError",
            "out of range",
        ),
        (
            r#"{"rateLimitService":{"cluster":"rls","domain":"d","onError":"maybe"}}"#,
            "/rateLimitService/onError",
            "unknown variant",
        ),
        (r#"{"rules":[{"limits":[{"requests":1,"per":"1s"}]}]}"#, "/rules/0", "missing field `name`"),
        (
            r#"{"rules":[{"name":"a b","limits":[{"requests":1,"per":"1s"}]}]}"#,
            "/rules/0/name",
            "not a valid rule name",
        ),
        (
            r#"{"rules":[{"name":"a","limits":[{"requests":1,"per":"1s"}]},{"name":"a","limits":[{"requests":1,"per":"1s"}]}]}"#,
            "/rules/1/name",
            "duplicate",
        ),
        (
            r#"{"rules":[{"name":"a","key":{"header":""},"limits":[{"requests":1,"per":"1s"}]}]}"#,
            "/rules/0/key",
            "must not be empty",
        ),
        (
            r#"{"rules":[{"name":"a","onMissingKey":"deny","limits":[{"requests":1,"per":"1s"}]}]}"#,
            "/rules/0/onMissingKey",
            "unknown variant",
        ),
        (
            r#"{"rules":[{"name":"a","limits":[{"requests":4000000000,"per":"1ns"}]}]}"#,
            "/rules/0/limits/0/requests",
            "finer than 1 ns",
        ),
        (r#"{"rules":[{"name":"a","limits":[{"requests":1,"per":"366d"}]}]}"#, "/rules/0/limits/0/per", "unknown unit"),
        (
            r#"{"rules":[{"name":"a","limits":[{"requests":1,"per":"8000h","burst":4000}]}]}"#,
            "/rules/0/limits/0/burst",
            "ten years",
        ),
        (r#"{"maxKeys":0}"#, "/maxKeys", "must be in"),
        (r#"{"response":{"status":42}}"#, "/response/status", "out of range"),
        (r#"{"response":{"code":429}}"#, "/response/code", "unknown field"),
    ];
    for (json, pointer, reason) in cases {
        let e = RateLimitConfig::from_json(json.as_bytes()).unwrap_err();
        assert_eq!(e.pointer, pointer, "{json} → {e}");
        assert!(e.reason.contains(reason), "{json} → {e}");
    }
}
