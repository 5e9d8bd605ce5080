//! Tests of `matching` (kept apart from the filter code, which must never unwrap).

use super::*;
use crate::config::parse_json;
use crate::testing::TestRequest;

fn list(json: &str) -> MatchList {
    parse_json(json.as_bytes()).unwrap()
}

#[test]
fn empty_list_matches_everything() {
    assert!(list("[]").matches(&TestRequest::new("GET", "/")));
}

#[test]
fn uri_forms_ignore_the_query_string() {
    let r = TestRequest::new("GET", "/api/v1/users?x=1");
    assert!(list(r#"[{"uri":{"prefix":"/api"}}]"#).matches(&r));
    assert!(list(r#"[{"uri":{"exact":"/api/v1/users"}}]"#).matches(&r));
    assert!(list(r#"[{"uri":{"regex":"/api/v[0-9]+/.*"}}]"#).matches(&r));
    assert!(!list(r#"[{"uri":{"regex":"v1"}}]"#).matches(&r), "regex is a full match");
    assert!(!list(r#"[{"uri":{"exact":"/API/v1/users"}}]"#).matches(&r));
    assert!(list(r#"[{"uri":{"exact":"/API/v1/users"},"ignoreUriCase":true}]"#).matches(&r));
    assert!(list(r#"[{"uri":{"prefix":"/API"},"ignoreUriCase":true}]"#).matches(&r));
}

#[test]
fn headers_present_absent_and_without() {
    let r = TestRequest::new("POST", "/").with("x-user", "alice").with("x-debug", "");
    assert!(list(r#"[{"headers":{"X-User":{"exact":"alice"}}}]"#).matches(&r));
    assert!(list(r#"[{"headers":{"x-debug":{"present":true}}}]"#).matches(&r));
    assert!(!list(r#"[{"headers":{"x-missing":{"present":true}}}]"#).matches(&r));
    assert!(list(r#"[{"headers":{"x-missing":{"present":false}}}]"#).matches(&r));
    assert!(!list(r#"[{"headers":{"x-missing":{"prefix":""}}}]"#).matches(&r));
    assert!(!list(r#"[{"withoutHeaders":{"x-user":{"prefix":"al"}}}]"#).matches(&r));
    assert!(list(r#"[{"withoutHeaders":{"x-user":{"exact":"bob"}}}]"#).matches(&r));
    assert!(list(r#"[{"withoutHeaders":{"x-other":{"exact":"bob"}}}]"#).matches(&r));
}

#[test]
fn method_authority_scheme_and_query() {
    let r = TestRequest::new("GET", "/p?a=1&b=two&flag");
    assert!(list(r#"[{"method":{"exact":"GET"}}]"#).matches(&r));
    assert!(list(r#"[{"authority":{"exact":"example.com"},"scheme":{"exact":"http"}}]"#).matches(&r));
    assert!(list(r#"[{"queryParams":{"b":{"exact":"two"},"flag":{"exact":""}}}]"#).matches(&r));
    assert!(!list(r#"[{"queryParams":{"c":{"exact":""}}}]"#).matches(&r));
    assert!(!list(r#"[{"method":{"exact":"POST"}}]"#).matches(&r));
}

#[test]
fn any_of_the_list_matches() {
    let l = list(r#"[{"method":{"exact":"PUT"}},{"uri":{"prefix":"/"}}]"#);
    assert!(l.matches(&TestRequest::new("GET", "/x")));
}

#[test]
fn bad_matches_are_refused_with_pointers() {
    let e = parse_json::<MatchList>(br#"[{"uri":{"regex":"("}}]"#).unwrap_err();
    assert_eq!(e.pointer, "/0/uri");
    assert!(e.reason.contains("invalid regex"), "{}", e.reason);
    let e = parse_json::<MatchList>(br#"[{"uri":{"suffix":"x"}}]"#).unwrap_err();
    assert_eq!(e.pointer, "/0/uri");
    let e = parse_json::<MatchList>(br#"[{"headers":{"x":{"exact":"a","prefix":"b"}}}]"#).unwrap_err();
    assert!(e.pointer.starts_with("/0/headers/x"), "{e}");
    let e = parse_json::<MatchList>(br#"[{"sourceLabels":{"app":"x"}}]"#).unwrap_err();
    assert!(e.reason.contains("sourceLabels"), "{e}");
}

#[test]
fn hostile_input_is_linear() {
    let l = list(r#"[{"headers":{"x":{"regex":"(a+)+b"}}}]"#);
    let evil = "a".repeat(100_000);
    assert!(!l.matches(&TestRequest::new("GET", "/").with("x", &evil)));
}

#[test]
fn cookies_are_found_by_exact_name() {
    use crate::path::cookie;
    let h = b"theme=dark; uid=user-1;session=abc=def";
    assert_eq!(cookie(h, "uid"), Some(&b"user-1"[..]));
    assert_eq!(cookie(h, "session"), Some(&b"abc=def"[..]));
    assert_eq!(cookie(h, "ui"), None);
    assert_eq!(cookie(b"", "uid"), None);
}

#[test]
fn uri_matches_see_the_normalized_path() {
    let deny_admin = list(r#"[{"uri":{"prefix":"/admin"}}]"#);
    for p in ["/public/../admin", "//admin", "/%61dmin", "/./admin/x", "\\admin"] {
        assert!(deny_admin.matches(&TestRequest::new("GET", p)), "{p}");
    }
    assert!(!deny_admin.matches(&TestRequest::new("GET", "/%2e%2e%2Fadmin")), "an escaped slash stays a byte");
}

#[test]
fn values_that_are_not_utf8_compare_as_bytes() {
    let r = TestRequest::new("GET", "/").with_bytes("x-ua", b"abc\xe4\xb8");
    assert!(list(r#"[{"headers":{"x-ua":{"prefix":"abc"}}}]"#).matches(&r));
    assert!(!list(r#"[{"headers":{"x-ua":{"exact":"abc"}}}]"#).matches(&r));
    assert!(list(r#"[{"headers":{"x-ua":{"regex":"abc.*"}}}]"#).matches(&r), "a regex sees U+FFFD");
    assert!(!list(r#"[{"headers":{"x-ua":{"regex":"[a-z]+"}}}]"#).matches(&r));
    assert!(list(r#"[{"headers":{"x-ua":{"present":true}}}]"#).matches(&r));
}

/// A header sent twice is matched as Envoy's route matching and RBAC see it: its values joined with `,`
/// (`getAllOfHeaderAsString`), not its first value. Fails when the matcher reads the first value only.
#[test]
fn a_repeated_header_is_matched_as_its_values_joined() {
    let r = TestRequest::new("GET", "/").with("x-client", "web").with("x-client", "mobile-legacy");
    assert!(list(r#"[{"headers":{"x-client":{"regex":".*-legacy"}}}]"#).matches(&r), "web,mobile-legacy");
    assert!(list(r#"[{"headers":{"x-client":{"exact":"web,mobile-legacy"}}}]"#).matches(&r));
    assert!(!list(r#"[{"headers":{"x-client":{"exact":"web"}}}]"#).matches(&r), "not the first value alone");
    assert!(!list(r#"[{"withoutHeaders":{"x-client":{"regex":".*legacy"}}}]"#).matches(&r));
    assert_eq!(r.header_joined("x-client").as_deref(), Some(&b"web,mobile-legacy"[..]));
    assert_eq!(r.header_joined("x-none"), None);
}
