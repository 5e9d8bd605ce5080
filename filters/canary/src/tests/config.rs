//! Tests of `config`.

use super::*;
use serde_json::json;

fn parse(v: serde_json::Value) -> Result<CanaryConfig, ConfigError> {
    CanaryConfig::from_json(v.to_string().as_bytes())
}

#[test]
fn the_documented_example_parses() {
    let c = parse(json!({
        "header": "x-meshplug-variant",
        "rules": [{"match": [{"headers": {"x-version": {"exact": "v2"}}}], "variant": "canary"}],
        "split": {"stickyBy": {"cookie": "uid"},
                  "variants": [{"name": "stable", "weight": 90}, {"name": "canary", "weight": 10}],
                  "setCookie": {"name": "meshplug-variant", "maxAge": "24h"}},
        "override": {"header": "x-meshplug-override", "allowed": ["canary", "stable"]}
    }))
    .unwrap();
    assert_eq!(c.split.sticky_by, Some(StickyBy::Cookie("uid".into())));
    assert_eq!(c.split.set_cookie.unwrap().max_age.0, Duration::from_secs(86400));
    assert!(!c.expose_variant);
}

#[test]
fn invalid_configs_name_the_field() {
    let split = json!({"variants": [{"name": "stable", "weight": 90}, {"name": "canary", "weight": 10}]});
    let cases = [
        (json!({"rules": [{"variant": "beta"}], "split": split}), "/rules/0/variant", "unknown variant"),
        (
            json!({"split": {"variants": [{"name": "a", "weight": 1}, {"name": "a", "weight": 1}]}}),
            "/split/variants/1/name",
            "duplicate",
        ),
        (json!({"split": {"variants": [{"name": "a", "weight": -1}]}}), "/split/variants/0/weight", "invalid value"),
        (json!({"split": {"variants": []}}), "/split/variants", "at least one variant"),
        (json!({"split": {"variants": [{"name": "a", "weight": 0}]}}), "/split/variants", "above 0"),
        (json!({}), "", "missing field `split`"),
        (
            json!({"split": split, "override": {"header": "x-o", "allowed": ["nope"]}}),
            "/override/allowed/0",
            "unknown variant",
        ),
        (
            json!({"split": {"variants": [{"name": "a b", "weight": 1}]}}),
            "/split/variants/0/name",
            "not a valid variant",
        ),
        (
            json!({"split": {"stickyBy": {"session": "x"}, "variants": [{"name": "a", "weight": 1}]}}),
            "/split/stickyBy",
            "unknown variant",
        ),
        (
            json!({"split": {"setCookie": {"name": "c", "maxAge": "forever"}, "variants": [{"name": "a", "weight": 1}]}}),
            "/split/setCookie/maxAge",
            "invalid duration",
        ),
        (json!({"header": "bad header", "split": split}), "/header", "not a valid header"),
    ];
    for (config, pointer, reason) in cases {
        let e = parse(config.clone()).unwrap_err();
        assert_eq!(e.pointer, pointer, "{config} → {e}");
        assert!(e.reason.contains(reason), "{config} → {e}");
    }
}
