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
