//! Tests of `claims`.

use super::*;

#[test]
fn claims_become_key_strings() {
    let published = br#"{"sub":"alice","n":42,"admin":true,"groups":["a"],"obj":{"x":1},"nil":null}"#;
    assert_eq!(claim_value(published, "sub").as_deref(), Some("alice"));
    assert_eq!(claim_value(published, "n").as_deref(), Some("42"));
    assert_eq!(claim_value(published, "admin").as_deref(), Some("true"));
    for absent in ["groups", "obj", "nil", "missing"] {
        assert_eq!(claim_value(published, absent), None, "{absent}");
    }
    assert_eq!(claim_value(b"not json", "sub"), None);
    assert_eq!(claim_value(b"[1]", "sub"), None);
}
