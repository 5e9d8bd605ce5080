//! Tests of `chain` (the bundle's config split).

use super::*;

const KNOWN: &[&str] = &["jwt-authz", "rate-limit", "canary", "fault"];

#[test]
fn entries_keep_their_order_and_config() {
    let entries =
        parse_chain(br#"{"chain":[{"filter":"fault","config":{"a":1}},{"filter":"canary"}]}"#, KNOWN).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!((entries[0].index, entries[0].filter.as_str()), (0, "fault"));
    assert_eq!(entries[0].config, br#"{"a":1}"#);
    assert_eq!((entries[1].index, entries[1].filter.as_str()), (1, "canary"));
    assert_eq!(entries[1].config, b"{}");
}

#[test]
fn filter_errors_are_located_under_the_entry() {
    let entries = parse_chain(br#"{"chain":[{"filter":"fault"},{"filter":"rate-limit"}]}"#, KNOWN).unwrap();
    let located = entries[1].locate(ConfigError::new("/rules/0/per", "bad"));
    assert_eq!(located.pointer, "/chain/1/config/rules/0/per");
    assert_eq!(located.to_string(), "invalid config at /chain/1/config/rules/0/per: bad");
}

#[test]
fn bad_chains_are_refused_with_a_pointer() {
    let cases: &[(&[u8], &str, &str)] = &[
        (b"{}", "", "missing field `chain`"),
        (br#"{"chain":[]}"#, "/chain", "the chain is empty"),
        (br#"{"chain":[{"filter":"waf"}]}"#, "/chain/0/filter", "unknown filter \"waf\""),
        (
            br#"{"chain":[{"filter":"fault"},{"filter":"fault"}]}"#,
            "/chain/1/filter",
            "already in the chain at /chain/0",
        ),
        (br#"{"chain":[{"filter":"fault","cfg":{}}]}"#, "/chain/0/cfg", "unknown field `cfg`"),
        (br#"{"chain":{"filter":"fault"}}"#, "/chain", "invalid type"),
        (br#"{"chain":[],"extra":1}"#, "/extra", "unknown field `extra`"),
    ];
    for (config, pointer, reason) in cases {
        let err = parse_chain(config, KNOWN).unwrap_err();
        assert_eq!(err.pointer, *pointer, "{}", String::from_utf8_lossy(config));
        assert!(err.reason.contains(reason), "{}: {}", String::from_utf8_lossy(config), err.reason);
    }
}
