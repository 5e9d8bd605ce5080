//! Tests of `config` (kept apart from the filter code, which must never unwrap).

use super::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Outer {
    #[serde(default)]
    rules: Vec<Inner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Inner {
    #[allow(dead_code)]
    http_status: u16,
}

#[test]
fn unknown_field_is_named_with_its_pointer() {
    let err = parse_json::<Outer>(br#"{"rules":[{"httpStatus":500},{"httpStatus":500,"bogus":1}]}"#).unwrap_err();
    assert_eq!(err.pointer, "/rules/1/bogus");
    assert!(err.reason.contains("unknown field `bogus`"), "{}", err.reason);
    assert!(!err.reason.contains("line"), "{}", err.reason);
}

#[test]
fn wrong_type_is_named_with_its_pointer() {
    let err = parse_json::<Outer>(br#"{"rules":[{"httpStatus":"x"}]}"#).unwrap_err();
    assert_eq!(err.pointer, "/rules/0/httpStatus");
    assert_eq!(err.to_string(), format!("invalid config at /rules/0/httpStatus: {}", err.reason));
}

#[test]
fn empty_config_means_defaults_and_garbage_is_refused() {
    assert!(parse_json::<Outer>(b"  ").unwrap().rules.is_empty());
    assert!(parse_json::<Outer>(b"{} x").is_err());
    assert!(parse_json::<Outer>(b"not json").is_err());
}

#[test]
fn pointer_tokens_are_escaped() {
    assert_eq!(child("/headers", "a/b~c"), "/headers/a~1b~0c");
}

#[test]
fn a_duplicate_key_is_refused_with_its_pointer() {
    let err = parse_json::<Outer>(br#"{"rules":[{"httpStatus":500,"httpStatus":200}]}"#).unwrap_err();
    assert_eq!(err.pointer, "/rules/0");
    assert!(err.reason.contains("duplicate key \"httpStatus\""), "{}", err.reason);
}

/// Every shape a config type takes, read by `parse_json` (the pointer-tracking deserializer of
/// `json.rs`) and by serde_path_to_error over serde_json's own reader, which it replaced: the same
/// values and, for each broken config, the same pointer.
mod same_as_serde_path_to_error {
    use super::super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Config {
        name: Option<String>,
        #[serde(default)]
        on: bool,
        #[serde(default)]
        weights: Vec<u32>,
        #[serde(default)]
        headers: BTreeMap<String, Match>,
        #[serde(default)]
        mode: Option<Mode>,
        #[serde(default)]
        ratio: Option<f64>,
        #[serde(default)]
        offset: Option<i64>,
        #[serde(default)]
        pair: Option<(u8, u8)>,
        #[serde(default)]
        code: Option<Code>,
        #[serde(default)]
        nested: Option<Box<Config>>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    enum Match {
        Exact(String),
        Present(bool),
        Range { start: u32, end: u32 },
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase")]
    enum Mode {
        Fast,
        Slow,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(untagged)]
    enum Code {
        Number(u64),
        Name(String),
    }

    fn reference(json: &str) -> Result<Config, ConfigError> {
        let mut de = serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(&mut de).map_err(|e| ConfigError::new(path_to_pointer(e.path()), ""))
    }

    #[test]
    fn values_read_alike() {
        let json = r#"{"name":"a","on":true,"weights":[1,2],"headers":{"x/y":{"exact":"v"},"z":{"present":false},
            "r":{"range":{"start":1,"end":2}}},"mode":"slow","ratio":0.5,"offset":-3,"pair":[1,2],"code":"UNAVAILABLE",
            "nested":{"code":14,"ratio":1}}"#;
        let ours: Config = parse_json(json.as_bytes()).unwrap();
        assert_eq!(ours, reference(json).unwrap());
        assert_eq!(ours.headers["x/y"], Match::Exact("v".into()));
        assert_eq!(ours.nested.unwrap().code, Some(Code::Number(14)));
    }

    #[test]
    fn errors_point_alike() {
        for (json, pointer) in [
            (r#"{"name":1}"#, "/name"),
            (r#"{"on":"yes"}"#, "/on"),
            (r#"{"weights":[1,"2"]}"#, "/weights/1"),
            (r#"{"weights":{}}"#, "/weights"),
            (r#"{"weights":[1,-2]}"#, "/weights/1"),
            (r#"{"headers":{"a~b":{"exact":3}}}"#, "/headers/a~0b/exact"),
            (r#"{"headers":{"a":{"suffix":"x"}}}"#, "/headers/a"),
            (r#"{"headers":{"a":{"exact":"x","present":true}}}"#, "/headers/a"),
            (r#"{"headers":{"a":{"range":{"start":1}}}}"#, "/headers/a/range"),
            (r#"{"headers":{"a":{"range":{"start":1,"end":2,"step":3}}}}"#, "/headers/a/range/step"),
            (r#"{"mode":"medium"}"#, "/mode"),
            (r#"{"mode":7}"#, "/mode"),
            (r#"{"ratio":"half"}"#, "/ratio"),
            (r#"{"pair":[1,2,3]}"#, "/pair"),
            (r#"{"pair":[1,300]}"#, "/pair/1"),
            (r#"{"code":[]}"#, "/code"),
            (r#"{"nested":{"nested":{"bogus":1}}}"#, "/nested/nested/bogus"),
            (r#"{"nested":[]}"#, "/nested"),
            (r#"[]"#, ""),
        ] {
            let ours = parse_json::<Config>(json.as_bytes()).unwrap_err();
            let theirs = reference(json).unwrap_err();
            assert_eq!(ours.pointer, theirs.pointer, "{json}: {}", ours.reason);
            assert_eq!(ours.pointer, pointer, "{json}: {}", ours.reason);
            assert!(!ours.reason.is_empty(), "{json}");
        }
    }
}
