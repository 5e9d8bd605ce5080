//! Tests of `config` (kept apart from the filter code, which must never unwrap).

use super::*;

fn err(json: &str) -> ConfigError {
    FaultConfig::from_json(json.as_bytes()).unwrap_err()
}

#[test]
fn the_documented_example_parses() {
    let c = FaultConfig::from_json(
        br#"{
          "rules": [
            { "match": [{ "headers": { "x-test-fault": { "exact": "inject" } } }],
              "delay": { "fixedDelay": "150ms", "percentage": { "value": 50 } },
              "abort": { "httpStatus": 503, "percentage": { "value": 10 } } }
          ],
          "headerControl": { "enabled": false },
          "maxActiveFaults": 1000
        }"#,
    )
    .unwrap();
    let rule = &c.rules[0];
    assert_eq!(rule.delay.as_ref().unwrap().fixed_delay.0, Duration::from_millis(150));
    assert_eq!(rule.delay.as_ref().unwrap().percentage.ppm(), 500_000);
    assert_eq!(rule.abort.as_ref().unwrap().status, AbortStatus::Http(503));
    assert_eq!(rule.abort.as_ref().unwrap().percentage.ppm(), 100_000);
}

#[test]
fn defaults_are_safe() {
    let c = FaultConfig::from_json(b"").unwrap();
    assert!(c.rules.is_empty());
    assert!(!c.header_control.enabled);
    assert_eq!(c.header_control.max_delay.0, DEFAULT_MAX_HEADER_DELAY);
    assert_eq!(c.max_active_faults, DEFAULT_MAX_ACTIVE_FAULTS);
    let c = FaultConfig::from_json(br#"{"rules":[{"abort":{"grpcStatus":"unavailable"}}]}"#).unwrap();
    assert_eq!(c.rules[0].abort.as_ref().unwrap().status, AbortStatus::Grpc(14));
    assert_eq!(c.rules[0].abort.as_ref().unwrap().percentage, Percentage::ALWAYS);
}

#[test]
fn invalid_configs_name_the_field() {
    let cases = [
        (r#"{"rules":[{"abort":{"httpStatus":42}}]}"#, "/rules/0/abort/httpStatus", "out of range"),
        (r#"{"rules":[{"abort":{"httpStatus":600}}]}"#, "/rules/0/abort/httpStatus", "out of range"),
        (r#"{"rules":[{"abort":{"grpcStatus":17}}]}"#, "/rules/0/abort/grpcStatus", "out of range"),
        (r#"{"rules":[{"abort":{"grpcStatus":"NOPE"}}]}"#, "/rules/0/abort/grpcStatus", "unknown gRPC"),
        (r#"{"rules":[{"abort":{}}]}"#, "/rules/0/abort", "exactly one"),
        (r#"{"rules":[{"abort":{"httpStatus":500,"grpcStatus":1}}]}"#, "/rules/0/abort", "exactly one"),
        (r#"{"rules":[{},{"delay":{"fixedDelay":"10"}}]}"#, "/rules/1/delay/fixedDelay", "no unit"),
        (r#"{"rules":[{"delay":{"fixedDelay":"-1s"}}]}"#, "/rules/0/delay/fixedDelay", "negative"),
        (r#"{"rules":[{"delay":{"fixedDelay":"0s"}}]}"#, "/rules/0/delay/fixedDelay", "does nothing"),
        (
            r#"{"rules":[{"delay":{"fixedDelay":"1s","percentage":{"value":-1}}}]}"#,
            "/rules/0/delay/percentage",
            "out of range",
        ),
        (
            r#"{"rules":[{"delay":{"fixedDelay":"1s","percentage":{"value":101}}}]}"#,
            "/rules/0/delay/percentage",
            "out of range",
        ),
        (r#"{"rules":[{"delay":{"fixedDelay":"1s","percent":5}}]}"#, "/rules/0/delay/percent", "unknown field"),
        (r#"{"maxActiveFaults":0}"#, "/maxActiveFaults", "at least 1"),
        (r#"{"maxActiveFaults":-3}"#, "/maxActiveFaults", "invalid value"),
        (r#"{"headerControl":{"enabled":"yes"}}"#, "/headerControl/enabled", "invalid type"),
        (r#"{"rules":[{"match":[{"uri":{"regex":"["}}]}]}"#, "/rules/0/match/0/uri", "invalid regex"),
        (r#"{"rule":[]}"#, "/rule", "unknown field"),
    ];
    for (json, pointer, reason) in cases {
        let e = err(json);
        assert_eq!(e.pointer, pointer, "{json} → {e}");
        assert!(e.reason.contains(reason), "{json} → {e}");
    }
}
