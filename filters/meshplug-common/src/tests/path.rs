//! Tests of `path`: normalization as Istio documents it, and query/cookie parsing on bytes.

use super::*;

fn n(p: &str) -> String {
    String::from_utf8(normalize(p.as_bytes())).unwrap()
}

#[test]
fn dot_segments_slashes_and_unreserved_escapes() {
    assert_eq!(n("/public/../admin"), "/admin");
    assert_eq!(n("//admin"), "/admin");
    assert_eq!(n("/%61dmin"), "/admin");
    assert_eq!(n("/a/./b"), "/a/b");
    assert_eq!(n("/a/b/.."), "/a/");
    assert_eq!(n("/a/."), "/a/");
    assert_eq!(n("/.."), "/");
    assert_eq!(n("/../../x"), "/x");
    assert_eq!(n("/"), "/");
    assert_eq!(n(""), "");
    assert_eq!(n("/a//b///c/"), "/a/b/c/");
    assert_eq!(n("\\admin"), "/admin", "a backslash is a slash (Envoy's normalize_path)");
    assert_eq!(n("/%2e%2e/admin"), "/admin", "escaped dots are dots");
    assert_eq!(n("/%2E%2e%2fadmin"), "/..%2Fadmin", "an escaped slash stays escaped (Istio's default)");
    assert_eq!(n("/a%5cb"), "/a%5Cb");
    assert_eq!(n("/a%2561"), "/a%2561", "an escaped % is never decoded (no double decoding)");
    assert_eq!(n("/%%361dmin"), "/admin", "an escape that decoding forms is decoded: a fixpoint");
    assert_eq!(n("/%%%3361dmin"), "/admin");
    assert_eq!(n("/%a%31"), "/%A1", "an escape formed by decoding, of a reserved byte, is upper-cased");
    assert_eq!(n("/a%zz%4"), "/a%zz%4", "a broken escape is kept");
    assert_eq!(n("/%7Euser"), "/~user");
}

#[test]
fn non_ascii_bytes_are_kept() {
    assert_eq!(normalize(b"/a/\xff/../b\xe4"), b"/a/b\xe4".to_vec());
}

#[test]
fn split_query_and_fragment() {
    assert_eq!(split_path(b"/a?b=1#f"), (&b"/a"[..], &b"b=1"[..]));
    assert_eq!(split_path(b"/a#f?x"), (&b"/a"[..], &b""[..]));
    assert_eq!(normalized_path(b"/x/../y?z=/../"), b"/y".to_vec());
}

#[test]
fn query_parameters_and_cookies_repeat() {
    let q = b"a=1&access_token=x&b&access_token=y";
    assert_eq!(query_param(q, "access_token"), Some(&b"x"[..]));
    assert_eq!(query_params(q, "access_token").count(), 2);
    assert_eq!(query_param(q, "b"), Some(&b""[..]));
    assert_eq!(query_param(q, "c"), None);
    let c = b"a=1; session=\xff\xfe;  session=two ;x";
    assert_eq!(cookie(c, "session"), Some(&b"\xff\xfe"[..]));
    assert_eq!(cookies(c, "session").count(), 2);
    assert_eq!(cookie(c, "x"), None);
}
